"""The process table, read cheaply, and the leftovers of earlier runs.

A program is identified by what it is (its executable, argv[0], the script or `-m
module` a Python runs, or the process title Ray and SGLang set), never by a substring
of the whole command line: another preflight whose --launch-cmd mentions torchrun, or
`python -c "import torch.distributed.run"`, is not torchrun. The scan reads only
/proc/*/cmdline; owner, parent and start time are read for the matches alone.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

import psutil

from preflight.redact import redact_argv

# `ray stop` kills these (ray/scripts/scripts.py, RAY_PROCESSES): (name, match the
# process name / title only). The name is the first 15 characters of the executable.
RAY_PROCESSES: tuple[tuple[str, bool], ...] = (
    ("raylet", True),
    ("plasma_store", True),
    ("gcs_server", True),
    ("monitor.py", False),
    ("ray.util.client.server", False),
    ("default_worker.py", False),
    ("setup_worker.py", False),
    ("ray::", True),
    ("io.ray.runtime.runner.worker.DefaultWorker", False),
    ("log_monitor.py", False),
    ("reporter.py", False),
    ("dashboard/agent.py", False),
    ("dashboard/dashboard.py", False),
    ("runtime_env/agent/main.py", False),
    ("ray_process_reaper.py", False),
)
# Serving and launcher processes the incidents found still holding GPUs and ports.
STACK_PROCESSES: tuple[tuple[str, bool], ...] = (
    ("sglang.launch_server", False),
    ("sglang::", True),  # setproctitle names: sglang::scheduler, sglang::detokenizer
    ("sglang_router", False),
    ("vllm.entrypoints", False),
    ("vllm serve", False),
    ("VLLM::", True),
    ("torchrun", False),
    ("torch.distributed.run", False),
    ("torch.distributed.launch", False),
    ("swift/cli/", False),
    ("swift.cli.", False),
)
# Process titles (setproctitle rewrites argv[0]): matched at the start of argv[0].
TITLES = ("ray::", "sglang::", "VLLM::")
# Executables / console scripts, by basename.
PROGRAMS = {"raylet": "raylet", "plasma_store": "plasma_store", "gcs_server": "gcs_server",
            "torchrun": "torchrun", "swift": "swift", "sglang_router": "sglang_router",
            "vllm": "vllm serve"}
# `python -m MODULE` (a prefix ending at a dot also matches: vllm.entrypoints.openai...).
MODULES = ("sglang.launch_server", "sglang_router", "vllm.entrypoints", "torch.distributed.run",
           "torch.distributed.launch", "swift.cli.", "ray.util.client.server")
# Scripts a Python runs: the path ends with one of these (Ray's own files, swift's cli).
SCRIPTS = ("default_worker.py", "setup_worker.py", "log_monitor.py", "ray_process_reaper.py",
           "dashboard/agent.py", "dashboard/dashboard.py", "runtime_env/agent/main.py",
           "autoscaler/_private/monitor.py", "_private/log_monitor.py", "reporter.py")
_PYTHON = re.compile(r"python[0-9.]*[a-z]?$")
# pytest on the preflight checks: the package dir, its checks, or the plugin by name
# (a checkout's own tests/ under a dir named preflight are not a preflight run).
_PREFLIGHT_ARG = re.compile(r"(?:^|/)preflight(?:/checks(?:/\S*)?)?/?$|^preflight\.plugin$")

@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    name: str
    user: str
    cmdline: tuple[str, ...]
    create_time: float

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) or f"[{self.name}]"

    def redacted(self, limit: int = 300) -> str:
        """The command line as evidence may show it: secrets masked, bounded."""
        return " ".join(redact_argv(self.cmdline))[:limit]

    def age_s(self, now: float | None = None) -> float:
        return round((now or time.time()) - self.create_time, 1)


@lru_cache(maxsize=512)
def user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def _argv(raw: bytes) -> tuple[str, ...]:
    parts = raw.split(b"\0")
    while parts and parts[-1] == b"":  # a process title pads argv with NULs
        parts.pop()
    if len(parts) == 1 and b" " in parts[0] and not os.path.exists(parts[0]):
        # setproctitle may leave one space-separated title in argv[0]
        return (os.fsdecode(parts[0]),)
    return tuple(os.fsdecode(p) for p in parts)


def cmdlines(proc_root: str = "/proc") -> Iterator[tuple[int, tuple[str, ...]]]:
    """(pid, argv) of every process we can read: one small read per process. Kernel
    threads (empty cmdline) and processes that vanish mid-read are left out."""
    try:
        entries = os.scandir(proc_root)
    except OSError:
        for proc in psutil.process_iter(["pid", "cmdline"], ad_value=None):
            if proc.info.get("cmdline"):
                yield proc.info["pid"], tuple(proc.info["cmdline"])
        return
    with entries:
        for entry in entries:
            name = entry.name
            if not (name.isascii() and name.isdigit()):
                continue
            try:
                with open(f"{proc_root}/{name}/cmdline", "rb") as fh:
                    raw = fh.read(1 << 16)
            except OSError:
                continue
            if raw:
                yield int(name), _argv(raw)


def details(pid: int, argv: tuple[str, ...] | None = None) -> ProcInfo | None:
    """Owner, parent, name and start time of one process (None when it is gone)."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            ppid = proc.ppid()
            name = proc.name()
            uid = proc.uids().real
            created = proc.create_time()
            if argv is None:
                argv = tuple(proc.cmdline())
    except (psutil.Error, OSError):
        return None
    return ProcInfo(pid, ppid, name, user_name(uid), tuple(argv), created)


def snapshot(process_iter: Callable[..., Iterator[psutil.Process]] | None = None
             ) -> list[ProcInfo]:
    """Every process we can see with full details (the expensive way: tests and small
    tables; checks use `Table`)."""
    found = []
    for pid, argv in cmdlines():
        info = details(pid, argv)
        if info is not None:
            found.append(info)
    return found


class Table(Mapping[int, ProcInfo]):
    """The process table as the checks need it: all command lines (one read each), the
    details of a pid only when asked for, each read once."""

    def __init__(self, proc_root: str = "/proc"):
        self.argv: dict[int, tuple[str, ...]] = dict(cmdlines(proc_root))
        self._details: dict[int, ProcInfo | None] = {}

    def get_info(self, pid: int) -> ProcInfo | None:
        if pid not in self._details:
            self._details[pid] = details(pid, self.argv.get(pid))
        return self._details[pid]

    def __getitem__(self, pid: int) -> ProcInfo:
        info = self.get_info(pid) if pid in self.argv else None
        if info is None:
            raise KeyError(pid)
        return info

    def __contains__(self, pid: object) -> bool:
        return isinstance(pid, int) and pid in self.argv and self.get_info(pid) is not None

    def __iter__(self) -> Iterator[int]:
        return iter(self.argv)

    def __len__(self) -> int:
        return len(self.argv)

    def ppid(self, pid: int) -> int:
        info = self.get_info(pid)
        return info.ppid if info else 0

    def family(self, pid: int) -> Family:
        return Family(self, pid)

    def ancestors(self, pid: int, limit: int = 64) -> list[int]:
        chain: list[int] = []
        cursor = self.ppid(pid)
        while cursor > 1 and cursor not in chain and len(chain) < limit:
            chain.append(cursor)
            cursor = self.ppid(cursor)
        return chain


class Family:
    """`pid`, its ancestors and all its descendants, as a membership test that reads only
    the chain of the pid asked about."""

    def __init__(self, table: Table, pid: int):
        self.table = table
        self.pid = pid
        self.up = {pid, *table.ancestors(pid)}

    def __contains__(self, other: object) -> bool:
        if not isinstance(other, int):
            return False
        return other in self.up or self.pid in self.table.ancestors(other)


class AnyFamily:
    """Membership in any of several families."""

    def __init__(self, families: Iterable[Family]):
        self.families = list(families)

    def __contains__(self, other: object) -> bool:
        return any(other in f for f in self.families)


def family(pid: int, procs: Iterable[ProcInfo]) -> frozenset[int]:
    """`pid`, its ancestors and all its descendants."""
    by_pid = {p.pid: p for p in procs}
    members = {pid}
    cursor = by_pid.get(pid)
    while cursor is not None and cursor.ppid and cursor.ppid not in members:
        members.add(cursor.ppid)
        cursor = by_pid.get(cursor.ppid)
    children: dict[int, list[int]] = {}
    for p in by_pid.values():
        children.setdefault(p.ppid, []).append(p.pid)
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in members:
                members.add(child)
                stack.append(child)
    return frozenset(members)


def identify(argv: tuple[str, ...], name: str = "") -> str | None:
    """What program this is, by its own identity (None: nothing of interest)."""
    if not argv:
        argv = (name,) if name else ()
    if not argv:
        return None
    head = argv[0]
    for title in TITLES:
        if head.startswith(title) or name.startswith(title):
            return title
    base = os.path.basename(head.split(" ", 1)[0])
    if base in PROGRAMS:
        return PROGRAMS[base]
    if base == "java" and "io.ray.runtime.runner.worker.DefaultWorker" in argv:
        return "io.ray.runtime.runner.worker.DefaultWorker"
    if not _PYTHON.match(base):
        return None
    return _python_identity(*python_target(argv))


def _python_identity(module: str | None, script: str | None) -> str | None:
    """What a Python runs: a known `-m` module, or a known script (by its path's end)."""
    if module is not None:
        for known in MODULES:
            if module == known.rstrip(".") or module.startswith(known.rstrip(".") + "."):
                return known
        return None
    if script is None:
        return None
    script_base = os.path.basename(script)
    if script_base in PROGRAMS:
        return PROGRAMS[script_base]
    if "/swift/cli/" in "/" + script:
        return "swift/cli/"
    for known in SCRIPTS:
        if script == known or script.endswith("/" + known):
            return "monitor.py" if known == "autoscaler/_private/monitor.py" else known
    return None


# Options of the python interpreter that take a value (python --help).
_PY_VALUE_OPTS = {"-W", "-X", "--check-hash-based-pycs"}


def python_target(argv: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(module of `-m`, script path) of a python command line; `-c` runs neither."""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return (argv[i + 1] if i + 1 < len(argv) else None), None
        if arg.startswith("-m") and len(arg) > 2 and not arg.startswith("--"):
            return arg[2:], None
        if arg == "-c" or (arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]
                           and arg[1:].isalpha()):
            return None, None
        if arg in _PY_VALUE_OPTS:
            i += 2
            continue
        if arg == "-" or not arg.startswith("-"):
            return None, (arg if arg != "-" else None)
        i += 1
    return None, None


def is_preflight(argv: tuple[str, ...]) -> bool:
    """A running preflight: the console script, `python -m preflight`, or pytest on the
    preflight checks / with the preflight plugin."""
    if not argv:
        return False
    base = os.path.basename(argv[0])
    module, script = (python_target(argv) if _PYTHON.match(base) else (None, None))
    program = os.path.basename(script) if script else base
    if program == "preflight" or (module or "").split(".")[0] == "preflight":
        return True
    if program in ("pytest", "py.test") or module == "pytest":
        return any(_PREFLIGHT_ARG.search(arg) for arg in argv[1:])
    return False


def match(proc: ProcInfo, patterns: Iterable[tuple[str, bool]] = ()) -> str | None:
    """The program `proc` is, if it is one of interest; extra (profile) patterns match
    inside the program's own identity: executable, script or module, not arguments."""
    hit = identify(proc.cmdline, proc.name)
    if hit:
        return hit
    extra = [needle for needle, _ in patterns if (needle, False) not in STACK_PROCESSES
             and (needle, False) not in RAY_PROCESSES and (needle, True) not in RAY_PROCESSES
             and (needle, True) not in STACK_PROCESSES]
    if not extra or not proc.cmdline:
        return None
    base = os.path.basename(proc.cmdline[0])
    parts = [proc.cmdline[0]]
    if _PYTHON.match(base):
        module, script = python_target(proc.cmdline)
        parts = [p for p in (module, script) if p]
    for needle in extra:
        if any(needle in part for part in parts):
            return needle
    return None


def live_preflight_owner(pid: int) -> int | None:
    """The pid of a running preflight that started `pid` (its PREFLIGHT_OWNER), if any.
    Only readable for our own processes; other users' are told apart by their tree."""
    value = preflight_owner(pid)
    return value if value is not None and psutil.pid_exists(value) else None


# Programs that only ever run as a launcher's child: Ray's workers (`ray::` titles, its
# worker scripts; the raylet starts them), SGLang's and vLLM's worker processes
# (`sglang::scheduler`, `VLLM::EngineCore`: their server starts them). Reparented, the
# launcher that started them is gone. A program a user starts (torchrun, `vllm serve`,
# sglang.launch_server, swift, `ray start`'s head daemons, a profile pattern) outlives its
# shell on purpose under nohup or setsid, and `ray start` leaves its daemons to init: for
# those, being reparented says nothing.
CHILD_KINDS = frozenset({*TITLES, "default_worker.py", "setup_worker.py",
                         "io.ray.runtime.runner.worker.DefaultWorker"})


def environ(pid: int) -> Mapping[str, str]:
    """`pid`'s environment ({} when it cannot be read: another user's, or gone)."""
    try:
        return psutil.Process(pid).environ()
    except (psutil.Error, OSError):
        return {}


def owner_in(env: Mapping[str, str]) -> int | None:
    """The pid in PREFLIGHT_OWNER of this environment, alive or not."""
    from preflight.run import OWNER_VAR

    owner = env.get(OWNER_VAR, "")
    return int(owner) if owner.isascii() and owner.isdigit() else None


def preflight_owner(pid: int) -> int | None:
    """The pid in `pid`'s PREFLIGHT_OWNER, alive or not (None: not started by a preflight,
    or not readable: another user's)."""
    return owner_in(environ(pid))


# torchrun's agent puts it in every worker's environment (torch/distributed/elastic/agent/
# server/local_elastic_agent.py, _start_workers): a process that has it is a worker.
WORKER_VAR = "TORCHELASTIC_RUN_ID"


# Parents that adopt orphans rather than start them: an orphan is reparented to the nearest
# living ancestor marked PR_SET_CHILD_SUBREAPER, else to its pid namespace's init
# (prctl(2), PR_SET_CHILD_SUBREAPER). Container inits (tini, dumb-init, docker-init,
# catatonit) and `systemd --user` are subreapers.
ADOPTERS = frozenset({"systemd", "init", "tini", "dumb-init", "docker-init", "catatonit",
                      "s6-svscan", "runit"})


def _service_started(pid: int, proc_root: str = "/proc") -> bool:
    """Started on purpose by a service manager: its cgroup is a systemd `.service` of its
    own (an orphan of a login keeps its `session-N.scope`; `user@UID.service` is the user
    manager's own unit, not a service it runs)."""
    try:
        with open(f"{proc_root}/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
            paths = [line.rsplit(":", 1)[-1].strip() for line in fh]
    except OSError:
        return False
    leaves = [p.rstrip("/").rsplit("/", 1)[-1] for p in paths]
    return any(leaf.endswith(".service") and not leaf.startswith("user@") for leaf in leaves)


_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})


def _launches_as_init(argv: tuple[str, ...]) -> bool:
    """A pid 1 that is itself a launch (a container's `bash run.sh`, `python train.py`,
    `torchrun ...` entrypoint) starts its children: they are not reparented orphans."""
    base = os.path.basename(argv[0].split(" ", 1)[0])
    return base in _SHELLS or bool(_PYTHON.match(base)) or identify(argv) is not None


def launcher_gone(table: Table, info: ProcInfo) -> str:
    """Why `info`'s launcher is known to be gone ("": its parent is alive and may be the
    program that started it). A namespace's pid 1 and a service's main process have no
    launcher to lose."""
    if info.pid == 1 or info.ppid == 0 or _service_started(info.pid):
        return ""
    if info.ppid == 1:
        init = table.argv.get(1, ())
        if init and _launches_as_init(init):
            return ""  # a container whose pid 1 is the launch (`bash run.sh`): alive
        return "its launcher is gone (reparented to pid 1)"
    parent = table.get_info(info.ppid)
    if parent is None:
        return f"its launcher {info.ppid} is gone"
    base = os.path.basename(parent.cmdline[0]) if parent.cmdline else parent.name
    if parent.name in ADOPTERS or base in ADOPTERS:
        return f"its launcher is gone (reparented to {parent.name or base} {parent.pid})"
    return ""


@dataclass(frozen=True)
class Found:
    proc: ProcInfo
    hit: str
    mine: bool  # owned by the user running preflight
    gone: str = ""  # evidence it is left over: why its launcher is gone ("" none)
    launcher: str = ""  # its parent's command line, redacted; why none is alive ("": not read)


def scan(table: Table, extra_patterns: Iterable[str], own_pid: int,
         own_uid: int | None = None,
         owner_of: Callable[[int], int | None] = live_preflight_owner,
         exempt: Container[int] = (),
         environ_of: Callable[[int], Mapping[str, str]] = environ) -> list[Found]:
    """Programs of interest that no running preflight (ours or anyone's) owns: ours are
    leftovers; other users' are reported only where they hold something the job needs.
    `exempt`: pids that are never leftovers (the Ray cluster `preflight cluster` runs on)."""
    own_uid = os.getuid() if own_uid is None else own_uid
    own_user = user_name(own_uid)
    own_ancestors = set(table.ancestors(own_pid)) | {own_pid}
    patterns = [(p, False) for p in extra_patterns]
    found = []
    for pid, argv in table.argv.items():
        if pid in own_ancestors:
            continue
        bare = ProcInfo(pid, 0, "", "", argv, 0.0)
        hit = match(bare, patterns)
        if hit is None or pid in exempt:
            continue
        info = table.get_info(pid)
        if info is None:
            continue
        hit = match(info, patterns) or hit
        chain = table.ancestors(pid)
        if own_pid in chain or any(is_preflight(table.argv.get(a, ())) for a in chain):
            continue  # our own workload, or the workload of a running preflight
        mine = info.user == own_user
        if mine and owner_of(pid) is not None:
            continue
        found.append(_found(table, info, hit, environ_of(pid)) if mine
                     else Found(info, hit, mine))
    return found


def _found(table: Table, info: ProcInfo, hit: str, env: Mapping[str, str]) -> Found:
    """One of ours (`env`: its environment), with what says whether it is left over: the
    launcher of a program that only runs as a launcher's child gone (CHILD_KINDS, a
    torchrun worker), or the preflight that started it gone (its PREFLIGHT_OWNER names a
    dead pid)."""
    gone = launcher_gone(table, info)
    background = ""
    if gone and hit not in CHILD_KINDS and WORKER_VAR not in env:
        background, gone = f"none alive ({gone}: nohup, setsid and `ray start` leave " \
            "what they start so)", ""
    owner = owner_in(env)
    if not gone and owner is not None and not psutil.pid_exists(owner):
        gone = f"the preflight that started it ({owner}) is gone"
    parent = None if gone or background or info.ppid <= 1 else table.get_info(info.ppid)
    launcher = parent.redacted(120) or parent.name if parent else background
    return Found(info, hit, True, gone, launcher)


def leftovers(
    procs: Iterable[ProcInfo], extra_patterns: Iterable[str], exclude: frozenset[int],
    owner_of: Callable[[int], int | None] = live_preflight_owner,
) -> list[tuple[ProcInfo, str]]:
    """Matching processes, less our own family and the bounded workloads of another
    preflight that is still running (one whose preflight died is a leftover)."""
    patterns = (*RAY_PROCESSES, *STACK_PROCESSES, *((p, False) for p in extra_patterns))
    found = []
    for proc in procs:
        if proc.pid in exclude:
            continue
        hit = match(proc, patterns)
        if hit and owner_of(proc.pid) is None:
            found.append((proc, hit))
    return found
