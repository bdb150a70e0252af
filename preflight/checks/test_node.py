"""Environment pitfalls from real lost jobs: one check per pitfall, judged against the profile.

Each check reads facts through a probe, records them as evidence, states the exact
fix, and asserts. A subject that is absent and not required by the profile is skipped
with the reason; a subject that is present is judged, whatever the profile.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from preflight import numbers
from preflight.matching import gpu_match
from preflight.probes import cuda, dotenv, http, netif, paths, ports, procs

pytestmark = pytest.mark.static


@pytest.mark.pitfall("profile-match")
def test_profile_matches_node(node, profile, finding):
    if not profile.is_gpu:
        finding.summary(f"profile {profile.name} requires no GPU")
        return
    snapshot = node.gpus
    match = gpu_match(profile, [g.name for g in snapshot.gpus])
    finding.evidence(expected=match.expected, detected=match.detected,
                     nvml_error=snapshot.error, source=snapshot.source)
    finding.fix(f"run on a node with {match.expected}, or choose the profile of this node "
                "(`preflight info` lists the GPUs; pass --profile NAME)")
    why = "; ".join(match.problems)
    if snapshot.error:
        why += f" ({snapshot.error})"
    assert match.ok, f"this node does not match profile {profile.name}: {why}"


def _ray_in_play(profile, node, installed: Path) -> list[str]:
    reasons = []
    if profile.stack.ray:
        reasons.append(f"profile {profile.name} runs Ray")
    if installed.exists():
        reasons.append(f"{installed} is installed")
    if "ray" in getattr(node.launch, "programs", ()):
        reasons.append("the launch script runs ray")
    return reasons


@pytest.mark.pitfall("ray-path")
def test_ray_on_path(node, profile, finding):
    prefix = node.launch_prefix
    installed = prefix / "bin" / "ray"
    reasons = _ray_in_play(profile, node, installed)
    if not reasons:
        finding.skip(f"Ray is not in play (no {installed}, profile and launch script "
                     "do not use it)")
    resolved = paths.which("ray", node.environ)
    path_list = node.environ.get("PATH", "").split(":")
    env_bin = prefix / "bin"
    on_path = any(entry and paths.same_dir(entry, env_bin) for entry in path_list)
    finding.evidence(in_play=reasons, launch_prefix=str(prefix), resolves_to=resolved,
                     PATH=path_list, env_bin=str(env_bin), env_bin_on_path=on_path,
                     env_bin_has_ray=installed.exists())
    if installed.exists():
        finding.fix(f'export PATH="{prefix}/bin:$PATH"; which ray python3')
    else:
        finding.fix(f'"{prefix}/bin/python" -m pip install "ray[default]"  # or activate the '
                    "env that has ray")
    # Say only what the evidence shows: PATH may hold the env's bin/ without a ray in it.
    assert resolved, ("ray: command not found " + (
        f"({env_bin} is on PATH but has no ray)" if on_path else f"(PATH lacks {env_bin})"))
    assert paths.same_dir(Path(resolved).parent, prefix / "bin"), (
        f"ray resolves to {resolved}, not to the launch env {prefix}")


@pytest.mark.pitfall("cudart-link")
def test_cudart_links(node, profile, finding, tmp_path):
    home, how = cuda.cuda_home(node.environ)
    prefixes = [home]
    conda = node.environ.get("CONDA_PREFIX")
    if conda and not paths.same_dir(conda, home):
        prefixes.append(conda)
    layouts = [cuda.layout(p) for p in prefixes]
    if not Path(home).is_dir() and not any(lay.present for lay in layouts):
        finding.skip(f"no CUDA toolkit or runtime (cuda_home {home} from {how} does not exist)")
    problems = [
        f"{lay.prefix}/lib has {lay.lib_cudart[0]} but lib64/ "
        f"{'lacks libcudart.so' if lay.lib64_exists else 'is missing'}"
        for lay in layouts if lay.broken
    ]
    link = None
    cc = paths.which("cc", node.environ) or paths.which("gcc", node.environ)
    if cc:
        result = node.runner.run(cuda.link_argv(cc, tmp_path, home), timeout=30)
        errors = [ln for ln in result.stderr.splitlines() if "cannot find" in ln or "error" in ln]
        link = {"argv": " ".join(result.argv[-3:]), "returncode": result.returncode,
                "error": errors[0] if errors else ""}
        if result.returncode != 0:
            problems.append(f"linking with -L{home}/lib64 -lcudart fails: "
                            f"{link['error'] or result.stderr.strip()[:200]}")
    elif not layouts[0].lib64_has_linker_name:
        problems.append(f"{home}/lib64/libcudart.so does not exist (no cc to try a real link)")
    finding.evidence(cuda_home=home, found_by=how, link=link,
                     layouts=[{"prefix": lay.prefix, "lib": list(lay.lib_cudart),
                               "lib64_exists": lay.lib64_exists,
                               "lib64_libcudart_so": lay.lib64_has_linker_name}
                              for lay in layouts])
    fixes = [f"ln -sfn {lay.prefix}/lib {lay.prefix}/lib64" for lay in layouts if lay.broken]
    good = next((c for c in ("/usr/local/cuda", conda or "")
                 if c and cuda.layout(c).lib64_has_linker_name), None)
    if good and not paths.same_dir(good, home):
        fixes.append(f"export CUDA_HOME={good}")
    elif not fixes:
        fixes.append("export CUDA_HOME=<a CUDA toolkit whose lib64/ has libcudart.so>")
    finding.fix(" && ".join(fixes))
    assert not problems, "flashinfer's JIT link would fail (cannot find -lcudart): " + \
        "; ".join(problems)


def _job_ports(profile, node) -> set[int]:
    ports_ = {p for p in profile.ports.probe}
    master = numbers.maybe_int(node.environ.get("MASTER_PORT", "29500"), 1, 65535)
    if master is not None:
        ports_.add(master)
    return ports_


def _gpu_pids(node) -> set[int]:
    try:
        gpus = node.gpus.gpus
    except Exception:  # a GPU read that fails is judged by the GPU checks, not here
        return set()
    return {p.pid for g in gpus for p in g.processes or ()}


@pytest.mark.pitfall("leftover-processes")
def test_no_leftover_processes(node, profile, finding):
    found = procs.scan(node.process_table, profile.processes.patterns, node.own_pid,
                       exempt=node.own_family)
    ports_by_pid: dict[int, list[int]] = {}
    if found:  # sockets are read only when there is something to explain
        for entry in node.listeners:
            if entry.pid is not None:
                ports_by_pid.setdefault(entry.pid, []).append(entry.port)
    job_ports, gpu_pids = (_job_ports(profile, node), _gpu_pids(node)) if found else (set(), set())
    mine, busy = [], []
    for f in found:
        if f.mine:
            mine.append(f)
            continue
        # Another user's running job is theirs, not a leftover: it matters only when it
        # holds what this job needs (a job port, a GPU), and it is never ours to kill.
        held = sorted(set(ports_by_pid.get(f.proc.pid, [])) & job_ports)
        if held or f.proc.pid in gpu_pids:
            busy.append({"pid": f.proc.pid, "user": f.proc.user, "matched": f.hit,
                         "holds": ([f"port {p}" for p in held]
                                   + (["a GPU"] if f.proc.pid in gpu_pids else [])),
                         "cmdline": f.proc.redacted() or f.proc.name})
    evidence = [
        {"pid": f.proc.pid, "user": f.proc.user, "age_s": f.proc.age_s(), "matched": f.hit,
         "cmdline": f.proc.redacted() or f.proc.name,
         "listening": sorted(set(ports_by_pid.get(f.proc.pid, [])))}
        for f in mine
    ]
    finding.evidence(processes=evidence, patterns_extra=profile.processes.patterns,
                     busy_other_users=busy)
    busy_text = "; ".join(f"busy: user {b['user']}, pid {b['pid']} ({', '.join(b['holds'])})"
                          for b in busy)
    if not mine:
        if busy:
            finding.fix("use another port / GPU, or ask the owner: another user's processes "
                        "are not yours to stop")
            finding.warn(f"no leftover of yours; {busy_text}")
            return
        finding.summary("no ray / sglang / vllm / torchrun / swift process from an earlier run")
        return
    pids = " ".join(str(f.proc.pid) for f in mine)
    fix = f"kill {pids}"
    if any(f.hit in dict(procs.RAY_PROCESSES) for f in mine):
        fix = f"ray stop --force; {fix}"  # only your own Ray: `ray stop` stops the caller's
    finding.fix(f"{fix}  # check each pid first; preflight kills nothing")
    names = ", ".join(f"{f.hit}[{f.proc.pid}]" for f in mine[:5])
    message = f"{len(mine)} process(es) left from an earlier run: {names}"
    assert not mine, message + (f"; also {busy_text}" if busy else "")


def _ports(profile, node):
    raw = node.environ.get("MASTER_PORT", "29500")
    label = raw if numbers.maybe_int(raw) is not None else "invalid"
    values = [(f"MASTER_PORT-{label}", ("MASTER_PORT", raw))]
    values += [(f"port-{p}", (f"port {p}", str(p))) for p in profile.ports.probe]
    return values


@pytest.mark.pitfall("port-free")
@pytest.mark.each("port", _ports)
def test_port_free(node, profile, finding, port):
    label, raw = port
    free = ports.suggest_port()
    if free is None:  # no free port to suggest: the port is still judged
        free = "<a free port>"
    finding.fix(f"export MASTER_PORT={free}  # torchrun itself reads --master_port / "
                f"PET_MASTER_PORT: pass --master_port {free}")
    try:
        number = numbers.parse_port(raw, label)
    except numbers.NumberError:  # `²`, `abc`, 295000, 10^400: ASCII digits in 1..65535
        finding.evidence(role=label, value=raw[:40])
        raise AssertionError(f"{label}={raw[:40]!r} is not a port number (1..65535)") from None
    raw = str(number)
    master_addr = node.environ.get("MASTER_ADDR", "")
    if label == "MASTER_PORT" and master_addr and not ports.is_local_address(master_addr):
        finding.skip(f"MASTER_ADDR {master_addr} is another node: its rank 0 binds the port")
    bound = ports.try_bind(int(raw))
    # The socket table is read only when the bind fails (it is the costly part).
    held = ports.holders(int(raw), node.listeners) if not bound.ok else []
    by_pid = node.process_by_pid
    me = procs.user_name(os.getuid())
    holders = [{"pid": h.pid, "addr": h.addr,
                "user": by_pid[h.pid].user if h.pid in by_pid else None,
                "cmdline": by_pid[h.pid].redacted() if h.pid in by_pid else None}
               for h in held]
    finding.evidence(port=int(raw), role=label, bind=bound.error or "ok", holders=holders)
    mine = sorted({h["pid"] for h in holders if h["pid"] is not None and h["user"] == me})
    others = [h for h in holders if h["pid"] is not None and h["user"] not in (me, None)]
    if mine:
        finding.fix(f"kill {' '.join(map(str, mine))}  # or: export MASTER_PORT={free} "
                    f"(torchrun: --master_port {free})")
    why = [f"held by pid {', '.join(map(str, mine))}"] if mine else []
    # Another user's process is theirs: say who, never suggest killing it.
    why += [f"busy: user {h['user']}, pid {h['pid']}" for h in others]
    if not bound.ok:  # a holder whose pid we may not see is still named by its user
        seen = {h["user"] for h in holders if h["pid"] is not None}
        users = sorted({procs.user_name(uid) for uid in ports.listening_uids(int(raw))})
        finding.evidence(listening_users=users)
        why += [f"busy: user {u} (pid not visible to {me})" for u in users
                if u not in seen and u != me]
    assert bound.ok, f"{label} {raw} cannot be bound: {bound.error}" + (
        f" ({'; '.join(why)})" if why else "")


@pytest.mark.pitfall("dotenv-exported")
def test_dotenv_exported(node, profile, finding, env_file):
    required = profile.env.required
    if env_file is None and not required and "WANDB_KEY" not in node.environ:
        finding.skip("no .env file (./.env or --env-file) and the profile requires no keys")
    result = dotenv.compare(env_file, node.environ, required)
    trap = dotenv.wandb_key_trap(env_file, node.environ)
    finding.evidence(
        file=env_file.path if env_file else None,
        keys_in_file=len(env_file.keys) if env_file else 0,
        not_exported=result.missing, exported_with_other_value=result.different,
        required_missing=result.required_missing, wandb_key_without_api_key=trap,
    )
    source = env_file.path if env_file else ".env"
    fixes = [f"set -a; source {source}; set +a"]
    if trap:
        fixes.append('export WANDB_API_KEY="$WANDB_KEY"  # wandb reads WANDB_API_KEY')
    finding.fix("; ".join(fixes))
    problems = []
    if result.missing:
        problems.append(f"not exported: {', '.join(result.missing)}")
    if result.different:
        problems.append(f"exported with another value: {', '.join(result.different)}")
    if result.required_missing:
        problems.append(f"required by profile {profile.name} but unset: "
                        f"{', '.join(result.required_missing)}")
    if trap:
        problems.append("WANDB_KEY is set but WANDB_API_KEY (what wandb reads) is not")
    assert not problems, "; ".join(problems)


OFFLINE = ("1", "true", "yes", "on")


@pytest.mark.pitfall("hf-endpoint")
def test_hf_endpoint(node, profile, finding):
    url = node.environ.get("HF_ENDPOINT", "")
    offline = node.environ.get("HF_HUB_OFFLINE", "").lower() in OFFLINE
    if not url and not profile.env.hf_mirror:
        finding.skip("HF_ENDPOINT unset and the profile requires no mirror")
    finding.fix("export HF_ENDPOINT=https://hf-mirror.com  # or HF_HUB_OFFLINE=1 with local "
                "model paths")
    if not url:
        finding.evidence(HF_ENDPOINT=None, HF_HUB_OFFLINE=offline)
        if offline:
            finding.summary("HF_HUB_OFFLINE=1: models and data load from local paths")
            return
        raise AssertionError(f"profile {profile.name} needs a HuggingFace mirror but "
                             "HF_ENDPOINT is unset")
    assert http.is_http_url(url), f"HF_ENDPOINT={http.safe_url(url)!r} is not an http(s) URL"
    answer = http.probe(url, profile.env.hf_timeout_s)
    finding.evidence(HF_ENDPOINT=answer.url, status=answer.status, error=answer.error,
                     elapsed_s=answer.elapsed_s, HF_HUB_OFFLINE=offline)
    if not answer.answered and offline:
        finding.warn(f"{answer.url} does not answer ({answer.error}); HF_HUB_OFFLINE=1 "
                     "keeps loads local")
        return
    assert answer.answered, (f"HF_ENDPOINT {answer.url} does not answer within "
                             f"{profile.env.hf_timeout_s:g}s: {answer.error}")
    finding.summary(f"{answer.url} answered HTTP {answer.status} in {answer.elapsed_s}s")


@pytest.mark.pitfall("conda-env")
def test_conda_env(node, profile, finding, settings):
    expected = settings["expect_env"] or profile.env.conda_env
    if not expected:
        finding.skip("no expected conda env (--expect-env or the profile's env.conda_env)")
    actual = node.environ.get("CONDA_DEFAULT_ENV")
    finding.evidence(expected=expected, CONDA_DEFAULT_ENV=actual,
                     CONDA_PREFIX=node.environ.get("CONDA_PREFIX"))
    finding.fix(f"conda activate {expected}  # (or micromamba activate {expected}) in the "
                "shell that submits the job")
    assert actual == expected, f"CONDA_DEFAULT_ENV is {actual!r}, expected {expected!r}"


VIRTUAL = ("docker", "veth", "virbr", "br-", "ifb", "cni", "flannel")


@pytest.mark.pitfall("nccl-ifname")
def test_nccl_socket_ifname(node, profile, finding):
    found = netif.interfaces()
    up = {i.name for i in found if i.up}
    candidates = [i.name for i in found
                  if i.up and not i.loopback and not i.name.startswith(VIRTUAL)]
    spec = node.environ.get("NCCL_SOCKET_IFNAME")
    finding.evidence(NCCL_SOCKET_IFNAME=spec,
                     interfaces={i.name: "up" if i.up else "down" for i in found},
                     candidates=candidates)
    suggestion = candidates[0] if candidates else "^lo,docker0"
    finding.fix(f"export NCCL_SOCKET_IFNAME={suggestion}")
    if spec is None:
        if len(candidates) > 1:
            finding.warn(f"NCCL_SOCKET_IFNAME unset with {len(candidates)} candidate "
                         f"interfaces ({', '.join(candidates)}): NCCL may pick the wrong one")
            return
        finding.skip(f"NCCL_SOCKET_IFNAME unset; only {candidates or 'loopback'} to choose from")
    selected = netif.select(spec, [i.name for i in found])
    finding.evidence(selected=selected)
    assert [n for n in selected if n in up], (
        f"NCCL_SOCKET_IFNAME={spec!r} selects no interface that is up on this node")
