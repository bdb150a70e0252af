"""The node environment: the judgements of `checks/test_node.py`, pure and typed.

Every judge takes frozen facts (what the probes read: environment values, files found,
sockets, processes; all I/O done by the adapter) and returns a `Verdict`. Where the fix
of a check was one command line for all of its problems (sourcing the `.env`, the
cudart repair), every problem carries that same line, so the report shows it once.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from preflight.judges.gpu import toolkit_fix, undo_setting
from preflight.matching import gpu_match
from preflight.model import Problem, Verdict
from preflight.probes.cuda import Kit, LibLayout, choose
from preflight.probes.http import Answer, safe_url
from preflight.probes.nccl import Setting as NcclSetting
from preflight.probes.netif import Interface, select
from preflight.probes.wandb import Setting
from preflight.profiles import Profile

# -- profile-match -------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileMatchFacts:
    profile: Profile
    gpus: Sequence[str]  # the NVML device names (empty off a GPU profile)
    nvml_error: str | None
    source: str | None


def profile_match(f: ProfileMatchFacts) -> Verdict:
    profile = f.profile
    if not profile.is_gpu:
        return Verdict(ok=f"profile {profile.name} requires no GPU")
    match = gpu_match(profile, list(f.gpus))
    v = Verdict(evidence=dict(expected=match.expected, detected=match.detected,
                              nvml_error=f.nvml_error, source=f.source))
    v.fix = (f"preflight info   # the GPUs and the profile of this node (pass --profile "
             f"NAME); or run on a node with {match.expected}")
    if not match.ok:
        why = "; ".join(match.problems) + (f" ({f.nvml_error})" if f.nvml_error else "")
        v.problems.append(Problem(f"this node does not match profile {profile.name}: {why}",
                                  v.fix))
    return v


# -- ray-path ------------------------------------------------------------------------


@dataclass(frozen=True)
class RayFacts:
    profile: str
    profile_runs_ray: bool
    launch_runs_ray: bool
    prefix: str  # the launch env (CONDA_PREFIX, else the suite's Python)
    installed: bool  # PREFIX/bin/ray exists
    resolved: str | None  # `which ray` on the launch PATH
    resolved_in_env: bool  # it lies in PREFIX/bin
    path: Sequence[str]  # PATH entries
    env_bin_on_path: bool
    missing_on_path: Sequence[str] = ()  # entries the launch script adds that do not exist
    launch_given: bool = False  # a launch was analysed; every program it starts is known
    prefix_python: bool = True  # PREFIX/bin/python exists (the env is on this node)


def ray_path(f: RayFacts) -> Verdict:
    env_bin = str(PurePosixPath(f.prefix) / "bin")
    installed = f"{env_bin}/ray"
    reasons = ([f"profile {f.profile} runs Ray"] if f.profile_runs_ray else []) + \
        ([f"{installed} is installed"] if f.installed else []) + \
        (["the launch script runs ray"] if f.launch_runs_ray else [])
    if not reasons:
        return Verdict(skip=f"Ray is not in play (no {installed}, profile and launch script "
                            "do not use it)")
    v = Verdict(evidence=dict(in_play=reasons, launch_prefix=f.prefix, resolves_to=f.resolved,
                              PATH=list(f.path), env_bin=env_bin,
                              env_bin_on_path=f.env_bin_on_path, env_bin_has_ray=f.installed,
                              missing_on_path=list(f.missing_on_path)))
    put_on_path = f'export PATH="{f.prefix}/bin:$PATH"; which ray python3'
    if f.installed:
        v.fix = put_on_path
    elif not f.prefix_python:
        # No Python to pip-install into: the env the launch activates is not on this node.
        # The envs beside it are where the one that has ray usually is.
        envs = shlex.quote(str(PurePosixPath(f.prefix).parent))
        v.fix = (f"ls -d {envs}/*/bin/ray   # the envs beside {f.prefix} that have ray: "
                 f"activate one, or create {f.prefix} on this node (it has no bin/python) "
                 "and pip install ray into it")
    else:
        # The install alone leaves PATH without the env's bin/ (or another env's ray
        # first): pasted as one, the fix must do both.
        stale = not f.env_bin_on_path or (f.resolved is not None and not f.resolved_in_env)
        v.fix = (f'"{f.prefix}/bin/python" -m pip install "ray[default]"'
                 + (f"; {put_on_path}" if stale else "")
                 + "  # or activate the env that has ray")
    # Say only what the evidence shows: PATH may hold the env's bin/ without a ray in it.
    if not f.resolved:
        # The env a script means to run in is the bin/ it puts on PATH: when that is not
        # on this node, that is the finding (a slime run on 4xA800: `ray: command not found`).
        gone = "".join(f"; {d} (put on PATH by the launch script) does not exist"
                       for d in f.missing_on_path)
        if not f.prefix_python:
            gone += f"; the launch env {f.prefix} has no bin/python"
        where = (f"PATH lacks {env_bin}" if not f.env_bin_on_path else
                 "" if env_bin in f.missing_on_path else
                 f"{env_bin} is on PATH but has no ray")
        v.problems.append(Problem(f"ray: command not found ({where}{gone})".replace("(; ", "("),
                                  v.fix))
    elif not f.resolved_in_env:
        v.problems.append(Problem(
            f"ray resolves to {f.resolved}, not to the launch env {f.prefix}", v.fix))
    if f.launch_given and not f.launch_runs_ray:
        # The analysed launch never runs `ray`: `command not found` cannot stop it (an
        # ms-swift torchrun job on a node whose profile also serves slime). Said, not NO-GO.
        v.problems = [Problem.warning(p.text + " (the launch script does not run ray)", p.fix,
                                      p.why) for p in v.problems]
    elif not f.profile_runs_ray and not f.launch_runs_ray:
        # Ray is only installed in the launch env (vLLM depends on it): nothing says the job
        # runs it, and without a launch script whose every program is known nothing can.
        # `/venv/bin/python -m preflight` without the venv's bin/ on PATH is no NO-GO.
        v.problems = [Problem.warning(
            p.text + f" (ray is only installed in the launch env; profile {f.profile} does not "
            "run Ray and no launch script says whether the job does: preflight cannot know)",
            p.fix + ("" if "#" in p.fix else "  #") + " if the job runs ray (pass "
            "--launch-script to tell)", p.why) for p in v.problems]
    return v


# -- cudart-link ---------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A real `cc -shared ... -L$cuda_home/lib64 -lcudart` link."""

    argv_tail: str
    returncode: int | None  # None: it did not finish
    error: str  # its first `cannot find` / `error` line
    stderr: str


@dataclass(frozen=True)
class CudartFacts:
    home: str  # cuda_home as flashinfer resolves it
    found_by: str
    home_exists: bool
    layouts: Sequence[LibLayout]  # home, then CONDA_PREFIX when it is another dir
    link: Link | None  # None: no cc on PATH
    kits: tuple[Kit, ...] = ()  # installed toolkits (cuda.toolkits), for the fix
    torch_cuda: str | None = None  # the job's torch.version.cuda (None: CPU-only or no torch)


def cudart_link(f: CudartFacts) -> Verdict:
    if not f.home_exists and not any(lay.present for lay in f.layouts):
        return Verdict(skip=f"no CUDA toolkit or runtime (cuda_home {f.home} from {f.found_by} "
                            "does not exist)")
    texts = [f"{lay.prefix}/lib has {lay.lib_cudart[0]} but lib64/ "
             f"{'lacks libcudart.so' if lay.lib64_exists else 'is missing'}"
             for lay in f.layouts if lay.broken]
    link = None
    if f.link is not None:
        link = {"argv": f.link.argv_tail, "returncode": f.link.returncode, "error": f.link.error}
        if f.link.returncode != 0:
            texts.append(f"linking with -L{f.home}/lib64 -lcudart (cuda_home {f.home} from "
                         f"{f.found_by}) fails: {f.link.error or f.link.stderr.strip()[:200]}")
    elif not f.layouts[0].lib64_has_linker_name:
        texts.append(f"{f.home}/lib64/libcudart.so does not exist (no cc to try a real link)")
    fixes = [f"ln -sfn {lay.prefix}/lib {lay.prefix}/lib64" for lay in f.layouts if lay.broken]
    # The toolkit cuda-stack names too: one of torch's CUDA major (gpu.toolkit_fix).
    if choose(f.kits, f.torch_cuda, exclude=f.home) is not None or not fixes:
        fixes.append(toolkit_fix(f.kits, f.torch_cuda, exclude=f.home))
    fix = " && ".join(fixes)  # one repair for every problem: the link fails because of them
    return Verdict(
        problems=[Problem(t, fix) for t in texts], fix=fix,
        headline="flashinfer's JIT link would fail (cannot find -lcudart)",
        evidence=dict(cuda_home=f.home, found_by=f.found_by, link=link, torch_cuda=f.torch_cuda,
                      toolkits=[{"path": k.path, "version": k.version, "cudart": k.cudart}
                                for k in f.kits],
                      layouts=[{"prefix": lay.prefix, "lib": list(lay.lib_cudart),
                                "lib64_exists": lay.lib64_exists,
                                "lib64_libcudart_so": lay.lib64_has_linker_name}
                               for lay in f.layouts]))


# -- leftover-processes --------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """A program of interest found running (procs.scan), as evidence may show it."""

    pid: int
    user: str
    age_s: float
    matched: str  # what it was identified as (procs.identify, or a profile pattern)
    cmdline: str  # redacted
    mine: bool
    listening: Sequence[int]  # its listening ports
    holds_gpu: bool  # memory on a GPU the job will use (CUDA_VISIBLE_DEVICES; all if unset)
    ppid: int = 0
    launcher_gone: str = ""  # why its launcher is known to be gone ("": alive, or not known)
    launcher: str = ""  # its parent's command line, redacted (when alive)


@dataclass(frozen=True)
class LeftoverFacts:
    found: Sequence[Proc]
    patterns: Sequence[str]  # the profile's processes.patterns
    job_ports: frozenset[int]  # MASTER_PORT and the profile's ports


# Seconds a leftover has to exit on SIGTERM before the fix sends SIGKILL.
KILL_GRACE_S = 5


def kill_exactly(pids: Sequence[int]) -> str:
    """Bash lines that stop these pids and nothing else: SIGTERM, up to KILL_GRACE_S
    seconds for them to exit, then SIGKILL to those still there (`ps -p` lists only live
    ones: a pid that exited is not signalled again). Never `ray stop`: it has no option to
    narrow it (ray 2.60 `ray stop --help`: --force, --grace-period only) and kills every
    process of the node whose name or command line contains one of its words
    (python/ray/scripts/scripts.py:1379-1400, RAY_PROCESSES): another live Ray cluster of
    the same account too, or any job whose command line holds `monitor.py`."""
    listed, joined = " ".join(map(str, pids)), ",".join(map(str, pids))
    return (f"kill {listed}; timeout {KILL_GRACE_S} bash -c 'while ps -p {joined} >/dev/null; "
            f"do sleep 0.2; done'; ps -o pid= -p {joined} | xargs -r kill -9")


def _left_over_why(found: Sequence[Proc]) -> dict[int, list[str]]:
    """Of our processes, those with evidence they are left over, and the evidence: the
    launcher of a program that only runs as a launcher's child gone (the probe says which:
    procs.CHILD_KINDS, torchrun's workers), the preflight that started it gone, or a
    launcher that is itself left over (a worker of an orphaned torchrun agent or raylet)."""
    why = {p.pid: [p.launcher_gone] for p in found if p.launcher_gone}
    grew = True
    while grew:  # a launcher's leftover-ness passes down its tree
        grew = False
        for p in found:
            if p.pid not in why and p.ppid in why:
                why[p.pid] = [f"its launcher {p.ppid} is left over"]
                grew = True
    return why


def _holds(p: Proc, job_ports: frozenset[int]) -> list[str]:
    """What of the new job's this process holds: a job port, memory on a job GPU."""
    return [f"holds port {n}" for n in sorted(set(p.listening) & job_ports)] + \
        (["holds GPU memory on a GPU of the job"] if p.holds_gpu else [])


def _proc_evidence(p: Proc, why: Sequence[str], holds: Sequence[str] = ()) -> dict[str, object]:
    return {"pid": p.pid, "user": p.user, "age_s": p.age_s, "matched": p.matched,
            "cmdline": p.cmdline, "listening": sorted(set(p.listening)), "ppid": p.ppid,
            "launcher": p.launcher, "left_over_because": [*why, *holds], "holds": list(holds)}


def inspect_only(pids: Sequence[int]) -> str:
    """A fix that only looks: a live job of the user is theirs to judge, never ours to kill."""
    return f"ps -o pid,ppid,etime,args -p {','.join(map(str, pids))}"


def _busy_others(f: LeftoverFacts) -> list[tuple[Proc, list[str]]]:
    """Another user's running job is theirs, not a leftover: it matters only when it holds
    what this job needs (a job port, a GPU), and it is never ours to kill."""
    busy = []
    for p in f.found:
        holds = [f"port {n}" for n in sorted(set(p.listening) & f.job_ports)]
        holds += ["a GPU"] if p.holds_gpu else []
        if not p.mine and holds:
            busy.append((p, holds))
    return busy


def _named(procs: Sequence[Proc], why: dict[int, list[str]]) -> str:
    return ", ".join(f"{p.matched}[{p.pid}] ({'; '.join(why[p.pid])})" for p in procs[:5])


def leftover_processes(f: LeftoverFacts) -> Verdict:
    ours = [p for p in f.found if p.mine]
    why = _left_over_why(ours)
    holds = {p.pid: _holds(p, f.job_ports) for p in ours}
    mine = [p for p in ours if p.pid in why]  # left over: the blocker, the kill fix
    # Running, not known to be left over (a live launcher; or a program a user starts,
    # whose shell may be gone on purpose), but holding what the new job needs.
    in_way = [p for p in ours if p.pid not in why and holds[p.pid]]
    live = [p for p in ours if p.pid not in why and not holds[p.pid]]  # another job of yours
    busy = _busy_others(f)
    v = Verdict(evidence=dict(
        processes=[_proc_evidence(p, why[p.pid], holds[p.pid]) for p in mine],
        in_the_way=[_proc_evidence(p, (), holds[p.pid]) for p in in_way],
        other_jobs=[_proc_evidence(p, ()) for p in live],
        patterns_extra=list(f.patterns),
        busy_other_users=[{"pid": p.pid, "user": p.user, "matched": p.matched, "holds": h,
                           "cmdline": p.cmdline} for p, h in busy]))
    busy_text = "; ".join(f"busy: user {p.user}, pid {p.pid} ({', '.join(h)})" for p, h in busy)
    if mine:
        v.problems.append(Problem(
            f"{len(mine)} process(es) left from an earlier run: "
            f"{_named(mine, {p.pid: why[p.pid] + holds[p.pid] for p in mine})}"
            + (f"; also {busy_text}" if busy else "")
            + (f"; not left over (running): {', '.join(str(p.pid) for p in in_way + live)}"
               if in_way or live else ""),
            f"{kill_exactly([p.pid for p in mine])}  # check each pid first; "
            "preflight kills nothing"))
    if in_way:
        pids = [p.pid for p in in_way]
        v.problems.append(Problem(
            f"{len(in_way)} process(es) of yours still running hold what this job needs "
            "(not known to be left over): " + ", ".join(
                f"{p.matched}[{p.pid}] ({'; '.join(holds[p.pid])}; launcher: "
                f"{p.launcher or 'not read'})" for p in in_way[:5]),
            f"{inspect_only(pids)}  # yours and running: if it is left from an earlier "
            f"run, stop it (kill {' '.join(map(str, pids))}); else give this job another "
            "port / other GPUs. preflight kills nothing"))
    if live:
        names = ", ".join(f"{p.matched}[{p.pid}] (age {p.age_s:.0f} s, launcher "
                          f"{p.launcher or 'not read'}: {p.cmdline[:80]})" for p in live[:5])
        v.problems.append(Problem.warning(
            f"{len(live)} process(es) of yours still running, holding no job port or GPU of "
            f"the job (another job of yours?): {names}",
            f"{inspect_only([p.pid for p in live])}  # another job of yours: stop it only if "
            "it is not running on purpose; preflight kills nothing"))
    if busy and not mine:
        v.problems.append(Problem.warning(
            f"no leftover of yours; {busy_text}",
            "use another port / GPU, or ask the owner: another user's processes are not "
            "yours to stop"))
    if not v.problems:
        v.ok = "no ray / sglang / vllm / torchrun / swift process from an earlier run"
    return v


# -- port-free -----------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    pid: int | None
    addr: str
    user: str | None  # None: the pid is not visible
    cmdline: str | None


@dataclass(frozen=True)
class Bind:
    """A real bind of the port, as c10d binds it; holders read only when it fails."""

    ok: bool
    error: str
    holders: Sequence[Holder]
    listening_users: Sequence[str] | None  # users of its LISTEN sockets (failed binds only)


@dataclass(frozen=True)
class PortFacts:
    label: str  # "MASTER_PORT" or "port N" (the profile's)
    raw: str  # as given
    number: int | None  # None: not a port number
    free: int | None  # a free port to suggest
    remote_master: str | None  # MASTER_ADDR when it is another node (for MASTER_PORT)
    bind: Bind | None  # None when not bound (not a number, or another node's port)
    me: str  # the user running preflight


def port_free(f: PortFacts) -> Verdict:
    free: int | str = f.free if f.free is not None else "<a free port>"
    v = Verdict(fix=f"export MASTER_PORT={free}  # torchrun itself reads --master_port / "
                    f"PET_MASTER_PORT: pass --master_port {free}")
    if f.number is None:  # `²`, `abc`, 295000, 10^400: ASCII digits in 1..65535
        v.evidence.update(role=f.label, value=f.raw[:40])
        v.problems.append(Problem(f"{f.label}={f.raw[:40]!r} is not a port number (1..65535)",
                                  v.fix))
        return v
    if f.remote_master:
        v.skip = f"MASTER_ADDR {f.remote_master} is another node: its rank 0 binds the port"
        return v
    bind = f.bind or Bind(True, "", (), None)
    holders = [{"pid": h.pid, "addr": h.addr, "user": h.user, "cmdline": h.cmdline}
               for h in bind.holders]
    v.evidence.update(port=f.number, role=f.label, bind=bind.error or "ok", holders=holders)
    mine = sorted({h.pid for h in bind.holders if h.pid is not None and h.user == f.me})
    others = [h for h in bind.holders if h.pid is not None and h.user not in (f.me, None)]
    fix = v.fix
    if mine:
        fix = (f"kill {' '.join(map(str, mine))}  # or: export MASTER_PORT={free} "
               f"(torchrun: --master_port {free})")
        v.fix = fix
    why = [f"held by pid {', '.join(map(str, mine))}"] if mine else []
    # Another user's process is theirs: say who, never suggest killing it.
    why += [f"busy: user {h.user}, pid {h.pid}" for h in others]
    if not bind.ok:  # a holder whose pid we may not see is still named by its user
        seen = {h.user for h in bind.holders if h.pid is not None}
        users = list(bind.listening_users or ())
        v.evidence.update(listening_users=users)
        why += [f"busy: user {u} (pid not visible to {f.me})" for u in users
                if u not in seen and u != f.me]
        v.problems.append(Problem(f"{f.label} {f.number} cannot be bound: {bind.error}" + (
            f" ({'; '.join(why)})" if why else ""), fix))
    return v


# -- dotenv-exported -----------------------------------------------------------------


@dataclass(frozen=True)
class DotenvFacts:
    profile: str
    path: str | None  # the .env (None: none)
    keys_in_file: int
    required: Sequence[str]  # the profile's env.required
    wandb_key_exported: bool  # WANDB_KEY is in the environment
    missing: Sequence[str]  # in the file, not exported (names only)
    different: Sequence[str]  # exported with another value
    required_missing: Sequence[str]
    wandb_key_trap: bool  # WANDB_KEY set, WANDB_API_KEY (what wandb reads) not
    environment: str = "this shell"  # whose environment: this shell's, or the launch's jobs
    bash_alike: bool = True  # bash's `source` reads every line of the file as dotenv does
    loader: str = ""  # a command that prints the file's keys as `export K='v'` lines


def dotenv_fix(f: DotenvFacts) -> str:
    """The shell line that exports the file's keys with the values the check compares:
    `source` where bash reads the file as python-dotenv does, else dotenv's own reading
    (sourcing `KEY=a b` would run `b`, `KEY = v` would run `KEY`)."""
    path = shlex.quote(f.path or ".env")
    if f.bash_alike or not f.loader:
        return f"set -a; source {path}; set +a"
    return (f'eval "$({f.loader})"  # {f.path} is not bash: `source` would read it otherwise '
            "and run words of it as commands")


def dotenv_exported(f: DotenvFacts) -> Verdict:
    if f.path is None and not f.required and not f.wandb_key_exported:
        return Verdict(skip="no .env file (./.env or --env-file) and the profile requires no "
                            "keys")
    fix = dotenv_fix(f)
    if f.wandb_key_trap:
        fix += '; export WANDB_API_KEY="$WANDB_KEY"  # wandb reads WANDB_API_KEY'
    texts = []
    if f.missing:
        whose = "" if f.environment == "this shell" else f" to {f.environment}"
        texts.append(f"not exported{whose}: {', '.join(f.missing)}")
    if f.different:
        texts.append(f"exported with another value: {', '.join(f.different)}")
    if f.required_missing:
        texts.append(f"required by profile {f.profile} but unset: "
                     f"{', '.join(f.required_missing)}")
    if f.wandb_key_trap:
        texts.append("WANDB_KEY is set but WANDB_API_KEY (what wandb reads) is not")
    return Verdict(
        problems=[Problem(t, fix) for t in texts], fix=fix,
        evidence=dict(file=f.path, keys_in_file=f.keys_in_file,
                      not_exported=list(f.missing), exported_with_other_value=list(f.different),
                      required_missing=list(f.required_missing),
                      wandb_key_without_api_key=f.wandb_key_trap,
                      environment=f.environment))


# -- hf-endpoint ---------------------------------------------------------------------

OFFLINE = ("1", "true", "yes", "on")  # huggingface_hub's truthy env values
MIRROR = "https://hf-mirror.com"  # the mirror the fix offers


@dataclass(frozen=True)
class HfFacts:
    profile: str
    mirror_required: bool  # the profile's env.hf_mirror
    timeout_s: float
    url: str  # HF_ENDPOINT ("" unset)
    shown_url: str  # the URL without credentials
    is_url: bool  # an http(s) URL
    offline: bool  # HF_HUB_OFFLINE
    answer: Answer | None  # None: not probed (unset, or not a URL)


def _unprobed(what: str, a: Answer, timeout_s: float) -> Problem:
    """A URL the job reaches through a proxy this probe does not speak (http.probe_as_job):
    not asked, so not known; the fix asks it the job's way."""
    return Problem.unknown(f"{what}: {a.error}",
                           f"curl -sSI --max-time {timeout_s:g} {a.url}  # run where the proxy "
                           "variables are set: any HTTP status line means the server answers")


def hf_endpoint(f: HfFacts) -> Verdict:
    if not f.url and not f.mirror_required:
        return Verdict(skip="HF_ENDPOINT unset and the profile requires no mirror")
    v = Verdict(fix=f"export HF_ENDPOINT={MIRROR}  # or HF_HUB_OFFLINE=1 with "
                    "local model paths")
    if not f.url:
        v.evidence.update(HF_ENDPOINT=None, HF_HUB_OFFLINE=f.offline)
        if f.offline:
            v.ok = "HF_HUB_OFFLINE=1: models and data load from local paths"
        else:
            v.problems.append(Problem(f"profile {f.profile} needs a HuggingFace mirror but "
                                      "HF_ENDPOINT is unset", v.fix))
        return v
    if not f.is_url or f.answer is None:
        v.problems.append(Problem(f"HF_ENDPOINT={f.shown_url!r} is not an http(s) URL", v.fix))
        return v
    a = f.answer
    v.evidence.update(HF_ENDPOINT=a.url, status=a.status, error=a.error, elapsed_s=a.elapsed_s,
                      HF_HUB_OFFLINE=f.offline, proxy=a.proxy)
    if a.unprobed:
        v.problems.append(_unprobed(f"HF_ENDPOINT {a.url}", a, f.timeout_s))
        return v
    if not a.answered and a.url.rstrip("/") == MIRROR:
        # Exporting the value that is already set changes nothing: the job can only load
        # from local paths (or the node's DNS / proxy gets fixed).
        v.fix = (f"export HF_HUB_OFFLINE=1  # {MIRROR} does not answer from this node: load "
                 "the model and data from local paths, or fix its DNS / proxy")
    if not a.answered and f.offline:
        v.problems.append(Problem.warning(
            f"{a.url} does not answer ({a.error}); HF_HUB_OFFLINE=1 keeps loads local", v.fix))
    elif not a.answered:
        via = f" through the proxy {a.proxy}" if a.proxy else ""
        v.problems.append(Problem(f"HF_ENDPOINT {a.url} does not answer{via}"
                                  f"{a.within(f.timeout_s)}: "
                                  f"{a.error}", v.fix))
    v.ok = f"{a.url} answered HTTP {a.status} in {a.elapsed_s}s"
    return v


# -- conda-env -----------------------------------------------------------------------


@dataclass(frozen=True)
class CondaFacts:
    expected: str  # --expect-env, else the profile's env.conda_env ("" none)
    actual: str | None  # CONDA_DEFAULT_ENV
    prefix: str | None  # CONDA_PREFIX
    # expected is a path (it has a `/`) naming the directory CONDA_PREFIX names (symlinks
    # resolved): the env activated by name (`conda activate slime` sets CONDA_DEFAULT_ENV
    # to `slime`, conda/activate.py _default_env) is the expected one
    expected_is_prefix: bool = False


def conda_env(f: CondaFacts) -> Verdict:
    if not f.expected:
        return Verdict(skip="no expected conda env (--expect-env or the profile's "
                            "env.conda_env)")
    fix = (f"conda activate {f.expected}  # (or micromamba activate {f.expected}) in the "
           "shell that submits the job")
    v = Verdict(fix=fix, evidence=dict(expected=f.expected, CONDA_DEFAULT_ENV=f.actual,
                                       CONDA_PREFIX=f.prefix))
    if f.actual != f.expected and not f.expected_is_prefix:
        actual = "unset" if f.actual is None else repr(f.actual)
        v.problems.append(Problem(f"CONDA_DEFAULT_ENV is {actual}, expected {f.expected!r}",
                                  fix))
    return v


# -- nccl-ifname ---------------------------------------------------------------------

# Bridges and virtual links NCCL should not pick for inter-node traffic.
VIRTUAL = ("docker", "veth", "virbr", "br-", "ifb", "cni", "flannel")


@dataclass(frozen=True)
class NcclIfnameFacts:
    spec: str | None  # NCCL_SOCKET_IFNAME (None: unset)
    interfaces: Sequence[Interface]
    setting: NcclSetting | None = None  # where it comes from (environment, launch, NCCL's files)
    launch_at: tuple[str, int] | None = None  # the launch command's (file, line)


def _addressed(i: Interface) -> bool:
    """NCCL takes only an interface with an IPv4 / IPv6 address (netif._nccl_addresses);
    addresses not read: not judged."""
    return i.addresses is None or bool(i.addresses)


def nccl_ifname(f: NcclIfnameFacts) -> Verdict:
    up = {i.name for i in f.interfaces if i.up}
    candidates = [i.name for i in f.interfaces if i.up and not i.loopback and _addressed(i)
                  and not i.name.startswith(VIRTUAL)]
    source = f.setting.source if f.setting is not None else "environment"
    v = Verdict(evidence=dict(NCCL_SOCKET_IFNAME=f.spec,
                              interfaces={i.name: "up" if i.up else "down"
                                          for i in f.interfaces},
                              candidates=candidates))
    if f.spec is not None and source != "environment":
        v.evidence["NCCL_SOCKET_IFNAME_from"] = source + (
            f":{f.setting.line}" if f.setting is not None and f.setting.line else "")
    if any(i.addresses is not None for i in f.interfaces):
        v.evidence["addresses"] = {i.name: list(i.addresses or ()) for i in f.interfaces}
    value = candidates[0] if candidates else "^lo,docker0"
    # The environment wins over NCCL's files (setenv without overwrite); a launch script's
    # own export wins over this shell's, so that line is the one to repair.
    v.fix = undo_setting(f.setting, f.launch_at, value) if f.setting is not None and \
        f.setting.line else f"export NCCL_SOCKET_IFNAME={value}"
    named = f"NCCL_SOCKET_IFNAME={f.spec!r}" + (
        f" (from {v.evidence['NCCL_SOCKET_IFNAME_from']})" if source != "environment" else "")
    # NCCL reads the variable only when `strlen(env) > 1` (NVIDIA/nccl src/misc/socket.cc
    # ncclFindInterfaces) and picks an interface itself otherwise, as when it is unset.
    ignored = f.spec is not None and len(f.spec) <= 1
    if f.spec is None or ignored:
        state = (f"{named} is ignored by NCCL (one character or less)"
                 if ignored else "NCCL_SOCKET_IFNAME unset")
        if len(candidates) > 1:
            v.problems.append(Problem.warning(
                f"{state} with {len(candidates)} candidate interfaces "
                f"({', '.join(candidates)}): NCCL may pick the wrong one", v.fix))
        else:
            v.skip = f"{state}; only {candidates or 'loopback'} to choose from"
        return v
    selected = select(f.spec, [i.name for i in f.interfaces])
    v.evidence.update(selected=selected)
    selected_up = [i for i in f.interfaces if i.name in selected and i.name in up]
    if not selected_up:
        v.problems.append(Problem(
            f"{named} selects no interface that is up on this node",
            v.fix))
    elif not any(_addressed(i) for i in selected_up):
        names = ", ".join(i.name for i in selected_up)
        v.problems.append(Problem(
            f"{named} selects {names}, which has no IPv4/IPv6 address: "
            "NCCL takes only an interface with one, and stops with `Bootstrap : no socket "
            "interface found`", v.fix))  # NVIDIA/nccl src/bootstrap.cc:126
    return v


# -- wandb-offline -------------------------------------------------------------------

# wandb/sdk/wandb_settings.py (wandb 0.19, commit 004cb779): `mode` defaults to "online"
# (:375) and is set from WANDB_MODE like every `WANDB_<NAME>` variable (:1459-1484);
# `_offline` is mode "offline" or "dryrun" (:1243-1244), `_noop` is "disabled" (:1233-1234).
WANDB_LOCAL = ("offline", "dryrun", "disabled")
WANDB_MODES = ("online", "run", "shared", *WANDB_LOCAL)
WANDB_CLOUD = "https://api.wandb.ai"  # wandb_settings.py:248, `base_url`'s default


@dataclass(frozen=True)
class WandbFacts:
    installed: str | None  # where wandb is installed in the launch env (None: it is not)
    prefix: str  # the launch env
    report_to: Sequence[str] | None  # what the launch names (`--report_to a b`); None: silent
    report_to_where: str  # the argument or config line that says it
    mode: Setting  # WANDB_MODE
    base_url: Setting  # WANDB_BASE_URL
    key_from: str | None  # where an API key was found (never the key); None: nowhere
    key_places: Sequence[str]  # every place looked in, for the message
    host: str | None  # base_url's host, the netrc machine wandb looks up (None: not a URL)
    answer: Answer | None  # the bounded probe of base_url (None: not probed, see wandb_probe)
    timeout_s: float


def wandb_named(report_to: Sequence[str] | None, installed: str | None) -> bool:
    """The launch reports to wandb (`all`: every integration installed, as HF Trainer)."""
    said = [r.lower() for r in report_to or ()]
    return "wandb" in said or ("all" in said and installed is not None)


def wandb_probe(report_to: Sequence[str] | None, installed: str | None,
                mode: str | None) -> bool:
    """Whether the adapter sends its one request to WANDB_BASE_URL: only when the launch
    names wandb and it runs online (a wandb that is only installed is judged by its key
    alone: the default run sends nothing off the node)."""
    return wandb_named(report_to, installed) and \
        (mode or "online").strip().lower() not in WANDB_LOCAL


def wandb_offline(f: WandbFacts) -> Verdict:
    explicit = wandb_named(f.report_to, f.installed)
    if f.report_to is not None and not explicit:
        return Verdict(skip=f"the launch reports to {' '.join(f.report_to) or 'nothing'}, not "
                            f"wandb ({f.report_to_where})")
    if not explicit and f.installed is None:
        return Verdict(skip=f"wandb is not in play (not installed in {f.prefix}; the launch "
                            "does not report to it)")
    mode = (f.mode.value or "online").strip().lower()
    url = f.base_url.value or WANDB_CLOUD
    v = Verdict(evidence=dict(
        wandb_installed=f.installed, launch_report_to=list(f.report_to or []) or None,
        launch_report_to_where=f.report_to_where or None,
        WANDB_MODE=f.mode.value, WANDB_MODE_from=f.mode.source or None,
        WANDB_BASE_URL=safe_url(url),
        api_key_from=f.key_from))
    v.fix = "export WANDB_MODE=offline  # `wandb sync` uploads the run later"
    if mode in WANDB_LOCAL:
        v.ok = f"WANDB_MODE={f.mode.value}: wandb logs locally (no key, no network needed)"
        return v
    # A launch that names wandb will call wandb.init; a wandb that is only installed may
    # be unused (HF Trainer's report_to="all" default before transformers 5 does use it).
    problem, lead = (Problem, "") if explicit else (
        Problem.warning, f"wandb is installed in {f.prefix} and WANDB_MODE is not offline: ")
    if mode not in WANDB_MODES:  # the settings' Literal type rejects it (pydantic)
        v.problems.append(problem(f"{lead}WANDB_MODE={f.mode.value} is not a wandb mode "
                                  f"({', '.join(WANDB_MODES)}): wandb.init rejects it", v.fix))
        return v
    v.headline = f"the launch reports to wandb ({f.report_to_where}) online"
    # No key, no terminal: wandb/sdk/wandb_login.py:234 raises "api_key not configured
    # (no-tty)". No answer: wandb_init.py:979 gives up after init_timeout, 90 s by default
    # (wandb_settings.py:351).
    if f.key_from is None:
        login = "\nwandb login  # with network: stores the key in ~/.netrc" if f.installed else ""
        v.problems.append(problem(
            f"{lead}no API key ({'; '.join(p for p in f.key_places if p)}): wandb.init in a "
            "job without a terminal fails with `api_key not configured (no-tty)`",
            "export WANDB_MODE=offline  # or give the job WANDB_API_KEY" + login))
    if f.host is None:
        v.problems.append(problem(f"{lead}WANDB_BASE_URL={safe_url(url)!r} is not an http(s) URL",
                                  "unset WANDB_BASE_URL  # or set it to your server's URL"))
    elif f.answer is not None and f.answer.unprobed:
        v.problems.append(_unprobed(f"{lead}{f.answer.url}", f.answer, f.timeout_s))
    elif f.answer is not None and not f.answer.answered:
        v.problems.append(problem(
            f"{lead}{f.answer.url} does not answer{f.answer.within(f.timeout_s)} "
            f"({f.answer.error}): wandb.init times out after 90 s", v.fix))
    v.ok = f"wandb online: API key from {f.key_from}"
    if f.answer is not None:
        v.evidence.update(status=f.answer.status, error=f.answer.error or None,
                          elapsed_s=f.answer.elapsed_s)
        v.ok += f"; {f.answer.url} answered HTTP {f.answer.status} in {f.answer.elapsed_s}s"
    return v
