"""Environment pitfalls from real lost jobs: one check per pitfall, judged against the profile.

Adapters: gather the facts through the probes, call the judge
(`preflight/judges/node.py`), conclude. A subject that is absent and not required by the
profile is skipped with the reason; a subject that is present is judged, whatever the
profile.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import socket
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from preflight import numbers
from preflight.judges import node as judge
from preflight.plugin import Recorder
from preflight.probes import Node, cuda, dotenv, gpus, http, nccl, netif, paths, ports, procs, wandb
from preflight.profiles import Profile

pytestmark = pytest.mark.static


@pytest.mark.pitfall("profile-match")
def test_profile_matches_node(node: Node, profile: Profile, finding: Recorder) -> None:
    snap = node.gpus if profile.is_gpu else None
    finding.conclude(judge.profile_match(judge.ProfileMatchFacts(
        profile, [g.name for g in snap.gpus] if snap else [],
        snap.error if snap else None, snap.source if snap else None)))


def ray_facts(node: Node, profile: Profile) -> judge.RayFacts:
    # As the script's `ray` command gets them (`ray start` is no job), else the job's.
    prefix = Path(node.program_env("ray", "CONDA_PREFIX") or node.launch_prefix)
    path = node.program_env("ray", "PATH") or ""  # the script may put the env's bin/ on PATH
    resolved = paths.which("ray", {**node.environ, "PATH": path})
    path_list = path.split(":")
    own = {os.path.realpath(e) for e in node.environ.get("PATH", "").split(":") if e}
    missing = [e for e in dict.fromkeys(path_list)
               if e and os.path.isabs(e) and os.path.realpath(e) not in own
               and not os.path.isdir(e)]
    return judge.RayFacts(
        profile=profile.name, profile_runs_ray=profile.stack.ray,
        launch_runs_ray=node.launch is not None and "ray" in node.launch.programs,
        prefix=str(prefix), installed=(prefix / "bin" / "ray").exists(), resolved=resolved,
        resolved_in_env=bool(resolved) and paths.same_dir(Path(str(resolved)).parent,
                                                          prefix / "bin"),
        path=path_list,
        env_bin_on_path=any(e and paths.same_dir(e, prefix / "bin") for e in path_list),
        missing_on_path=missing, launch_given=_programs_known(node),
        prefix_python=(prefix / "bin" / "python").exists())


def _programs_known(node: Node) -> bool:
    """A launch was analysed and every program it starts is known (`$(pick) start` is not:
    it may be ray)."""
    spec = node.launch
    return spec is not None and not spec.unread and not spec.unseen and \
        all(c.argv[0].known for c in spec.commands if c.argv) and \
        not any("program is not known" in u.reason for u in spec.unknowns)


@pytest.mark.pitfall("ray-path")
def test_ray_on_path(node: Node, profile: Profile, finding: Recorder) -> None:
    finding.conclude(judge.ray_path(ray_facts(node, profile)))


# What requests reads to pick a proxy (requests.utils.get_environ_proxies).
PROXY_VARS = tuple(f"{k}_proxy" for k in ("http", "https", "all", "no")) + \
    tuple(f"{k.upper()}_PROXY" for k in ("http", "https", "all", "no"))


def cudart_facts(node: Node, tmp_path: Path) -> judge.CudartFacts:
    # flashinfer resolves cuda_home in the job (flashinfer/jit/cpp_ext.py get_cuda_path:
    # CUDA_HOME, CUDA_PATH, `which nvcc`): a launch script's `export CUDA_HOME=...` counts.
    env = node.job_environ("CUDA_HOME", "CUDA_PATH", "PATH", "CONDA_PREFIX")
    home, how = cuda.cuda_home(env)
    conda = env.get("CONDA_PREFIX")
    prefixes = [home] + ([conda] if conda and not paths.same_dir(conda, home) else [])
    layouts = [cuda.layout(p) for p in prefixes]
    if not Path(home).is_dir() and not any(lay.present for lay in layouts):
        return judge.CudartFacts(home, how, False, layouts, None)
    link = None
    cc = paths.which("cc", env) or paths.which("gcc", env)
    if cc:
        result = node.runner.run(cuda.link_argv(cc, tmp_path, home), timeout=30)
        errors = [ln for ln in result.stderr.splitlines() if "cannot find" in ln or "error" in ln]
        link = judge.Link(" ".join(result.argv[-3:]), result.returncode,
                          errors[0] if errors else "", result.stderr)
    # The fix names the toolkit cuda-stack would name too (cuda.choose): torch's CUDA major.
    return judge.CudartFacts(home, how, Path(home).is_dir(), layouts, link,
                             cuda.installed(node.runner, env, home),
                             cuda.torch_cuda(node.runner, node.launch_python, node.environ))


@pytest.mark.pitfall("cudart-link")
def test_cudart_links(node: Node, profile: Profile, finding: Recorder, tmp_path: Path) -> None:
    finding.conclude(judge.cudart_link(cudart_facts(node, tmp_path)))


def _job_ports(profile: Profile, node: Node) -> frozenset[int]:
    master = numbers.maybe_int(node.environ.get("MASTER_PORT", "29500"), 1, 65535)
    return frozenset(profile.ports.probe) | ({master} if master is not None else set())


def _gpu_pids(node: Node) -> set[int]:
    try:
        snap = node.gpus
    except Exception:  # a GPU read that fails is judged by the GPU checks, not here
        return set()
    if not snap.pids_are_here(socket.gethostname()):  # another host's pids (a replay)
        return set()
    # A process on a GPU the job will not use is not in its way: the job's GPUs are those
    # CUDA_VISIBLE_DEVICES names (all when unset, or when it cannot be resolved here).
    visible = gpus.resolve(node.environ.get("CUDA_VISIBLE_DEVICES"), snap.gpus)
    job = set(visible.indices) if visible.indices and not (visible.problems or visible.mig) \
        else {g.index for g in snap.gpus}
    return {p.pid for g in snap.gpus if g.index in job for p in g.processes or ()}


def leftover_facts(node: Node, profile: Profile) -> judge.LeftoverFacts:
    found = procs.scan(node.process_table, profile.processes.patterns, node.own_pid,
                       exempt=node.own_family)
    ports_by_pid: dict[int, list[int]] = {}
    if found:  # sockets, job ports and GPUs are read only when there is something to explain
        for entry in node.listeners:
            if entry.pid is not None:
                ports_by_pid.setdefault(entry.pid, []).append(entry.port)
    job_ports, gpu_pids = (_job_ports(profile, node), _gpu_pids(node)) if found else \
        (frozenset[int](), set[int]())
    return judge.LeftoverFacts(
        found=[judge.Proc(f.proc.pid, f.proc.user, f.proc.age_s(), f.hit,
                          f.proc.redacted() or f.proc.name, f.mine,
                          ports_by_pid.get(f.proc.pid, []), f.proc.pid in gpu_pids,
                          ppid=f.proc.ppid, launcher_gone=f.gone, launcher=f.launcher)
               for f in found],
        patterns=profile.processes.patterns, job_ports=job_ports)


@pytest.mark.pitfall("leftover-processes")
def test_no_leftover_processes(node: Node, profile: Profile, finding: Recorder) -> None:
    finding.conclude(judge.leftover_processes(leftover_facts(node, profile)))


def _ports(profile: Profile, node: Node) -> list[tuple[str, tuple[str, str]]]:
    raw = node.environ.get("MASTER_PORT", "29500")
    label = raw if numbers.maybe_int(raw) is not None else "invalid"
    values = [(f"MASTER_PORT-{label}", ("MASTER_PORT", raw))]
    values += [(f"port-{p}", (f"port {p}", str(p))) for p in profile.ports.probe]
    return values


def _proc(table: procs.Table, pid: int | None) -> procs.ProcInfo | None:
    return table.get(pid) if pid is not None else None


def _bind(port: int, node: Node) -> judge.Bind:
    bound = ports.try_bind(port)
    if bound.ok:  # the socket table is read only when the bind fails (the costly part)
        return judge.Bind(True, bound.error, (), None)
    by_pid = node.process_by_pid
    holders = [judge.Holder(h.pid, h.addr,
                            info.user if (info := _proc(by_pid, h.pid)) else None,
                            info.redacted() if info else None)
               for h in ports.holders(port, node.listeners)]
    users = sorted({procs.user_name(uid) for uid in ports.listening_uids(port)})
    return judge.Bind(False, bound.error, holders, users)


def port_facts(node: Node, label: str, raw: str) -> judge.PortFacts:
    free = ports.suggest_port()
    try:
        number: int | None = numbers.parse_port(raw, label)
    except numbers.NumberError:
        number = None
    master_addr = node.environ.get("MASTER_ADDR", "")
    remote = (number is not None and label == "MASTER_PORT" and bool(master_addr)
              and not ports.is_local_address(master_addr))
    bind = _bind(number, node) if number is not None and not remote else None
    return judge.PortFacts(label, raw, number, free, master_addr if remote else None, bind,
                           procs.user_name(os.getuid()))


@pytest.mark.pitfall("port-free")
@pytest.mark.each("port", _ports)
def test_port_free(node: Node, profile: Profile, finding: Recorder,
                   port: tuple[str, str]) -> None:
    finding.conclude(judge.port_free(port_facts(node, *port)))


def job_environs(node: Node) -> list[tuple[str, dict[str, str]]]:
    """The environment each job of the launch script starts with (`set -a; source .env`
    in the script exports the keys for the job, not for this shell), else this shell's.
    A value the script sets but preflight cannot know, or an opaque step (`eval`, an
    unreadable source), keeps this shell's value: never a guessed one."""
    spec = node.launch
    if spec is None or not spec.jobs:
        return [("this shell", dict(node.environ))]
    out = []
    for job in spec.jobs:
        cmd = job.command
        env = {k: v.value for k, v in cmd.env.items() if v.exported and v.value is not None}
        for k, v in cmd.env.items():
            if v.value is None and k in node.environ:
                env[k] = node.environ[k]
        if cmd.opaque:
            env = {**node.environ, **env}
        out.append((f"the launch at {Path(cmd.file).name}:{cmd.line}", env))
    return out


def dotenv_facts(node: Node, profile: Profile,
                 env_file: dotenv.EnvFile | None) -> judge.DotenvFacts:
    missing: list[str] = []
    different: list[str] = []
    required_missing: list[str] = []
    environs = job_environs(node)
    for _, environ in environs:
        result = dotenv.compare(env_file, environ, profile.env.required)
        missing += [k for k in result.missing if k not in missing]
        different += [k for k in result.different if k not in different]
        required_missing += [k for k in result.required_missing if k not in required_missing]
    return judge.DotenvFacts(
        profile=profile.name, path=env_file.path if env_file else None,
        keys_in_file=len(env_file.keys) if env_file else 0, required=profile.env.required,
        wandb_key_exported=any("WANDB_KEY" in e for _, e in environs), missing=missing,
        different=different, required_missing=required_missing,
        wandb_key_trap=any(dotenv.wandb_key_trap(env_file, e) for _, e in environs),
        environment=", ".join(dict.fromkeys(w for w, _ in environs)),
        bash_alike=env_file.bash_alike if env_file else True,
        loader=_dotenv_loader(node, env_file.path) if env_file else "")


def _dotenv_loader(node: Node, path: str) -> str:
    """python-dotenv's own reading of `path` as `export K='v'` lines: its CLI (needs
    click), else the same through dotenv_values (dotenv/cli.py list_values)."""
    py, file = shlex.quote(node.python), shlex.quote(path)
    if importlib.util.find_spec("click") is not None:
        return f"{py} -m dotenv -f {file} list --format=export"
    return (f"{py} -c 'import shlex, sys; from dotenv import dotenv_values; "
            '[print(f"export {k}={shlex.quote(v)}") for k, v in '
            "dotenv_values(sys.argv[1]).items() if v is not None]' " + file)


@pytest.mark.pitfall("dotenv-exported")
def test_dotenv_exported(node: Node, profile: Profile, finding: Recorder,
                         env_file: dotenv.EnvFile | None) -> None:
    finding.conclude(judge.dotenv_exported(dotenv_facts(node, profile, env_file)))


def hf_facts(node: Node, profile: Profile) -> judge.HfFacts:
    url = node.job_env("HF_ENDPOINT") or ""
    is_url = http.is_http_url(url)
    return judge.HfFacts(
        profile=profile.name, mirror_required=profile.env.hf_mirror,
        timeout_s=profile.env.hf_timeout_s, url=url, shown_url=http.safe_url(url),
        is_url=is_url,
        offline=(node.job_env("HF_HUB_OFFLINE") or "").lower() in judge.OFFLINE,
        answer=http.probe_as_job(url, profile.env.hf_timeout_s,
                                 node.job_environ(*PROXY_VARS))
        if is_url else None)


@pytest.mark.pitfall("hf-endpoint")
def test_hf_endpoint(node: Node, profile: Profile, finding: Recorder) -> None:
    finding.conclude(judge.hf_endpoint(hf_facts(node, profile)))


@pytest.mark.pitfall("conda-env")
def test_conda_env(node: Node, profile: Profile, finding: Recorder,
                   settings: dict[str, Any]) -> None:
    expected = settings["expect_env"] or profile.env.conda_env
    prefix = node.job_env("CONDA_PREFIX")
    finding.conclude(judge.conda_env(judge.CondaFacts(
        expected, node.job_env("CONDA_DEFAULT_ENV"), prefix,
        "/" in expected and bool(prefix) and paths.same_dir(expected, str(prefix)))))


@pytest.mark.pitfall("nccl-ifname")
def test_nccl_socket_ifname(node: Node, profile: Profile, finding: Recorder) -> None:
    # NCCL reads NCCL_SOCKET_IFNAME from its config files too (nccl.settings): an
    # /etc/nccl.conf line naming another node's interface stops it as the variable does.
    environ, lines = node.job_environ_prefixed("NCCL_", "HOME")
    setting = nccl.settings(environ, lines=lines).get("NCCL_SOCKET_IFNAME")
    command = node.job_command()
    finding.conclude(judge.nccl_ifname(judge.NcclIfnameFacts(
        setting.value if setting else None, netif.interfaces(), setting,
        (command.file, command.line) if command is not None else None)))


# -- wandb-offline -------------------------------------------------------------------

WANDB_TIMEOUT_S = 3.0  # the bound of the probe of wandb's server (hf-endpoint's default)


def wandb_facts(node: Node, env_file: dotenv.EnvFile | None) -> judge.WandbFacts:
    said, where, cmd = wandb.report_to(node.launch)
    job = cmd or (node.launch.jobs[0].command if node.launch and node.launch.jobs else None)
    installed = wandb.installed(node.launch_prefix)
    mode = wandb.flag(cmd, "--wandb-mode")
    mode = mode if mode.value else wandb.setting("WANDB_MODE", job, node.environ, env_file)
    base = wandb.setting("WANDB_BASE_URL", job, node.environ, env_file)
    url = base.value or judge.WANDB_CLOUD
    host = urllib.parse.urlsplit(url).hostname if http.is_http_url(url) else None
    key = wandb.flag(cmd, "--wandb-key")
    key = key if key.value else wandb.setting("WANDB_API_KEY", job, node.environ, env_file)
    netrc_from, netrc_looked = wandb.netrc_key(node.environ, host)
    looked = ["WANDB_API_KEY unset in the environment" + (" and the launch script" if job
              else "") + (f" and {env_file.path}" if env_file else ""), netrc_looked]
    probe = judge.wandb_probe(said, installed, mode.value)
    return judge.WandbFacts(
        installed=installed, prefix=str(node.launch_prefix), report_to=said,
        report_to_where=where, mode=mode, base_url=base, key_from=key.source or netrc_from,
        key_places=looked, host=host,
        answer=http.probe_as_job(url, WANDB_TIMEOUT_S, node.job_environ(*PROXY_VARS))
        if probe and host else None,
        timeout_s=WANDB_TIMEOUT_S)


@pytest.mark.pitfall("wandb-offline")
def test_wandb_offline(node: Node, profile: Profile, finding: Recorder,
                       env_file: dotenv.EnvFile | None) -> None:
    finding.conclude(judge.wandb_offline(wandb_facts(node, env_file)))
