"""The process table, read through psutil, and the leftovers of earlier runs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil

from preflight.redact import redact_argv

# `ray stop` kills these (ray/scripts/scripts.py, RAY_PROCESSES): (substring, match the
# process name only). The name is the first 15 characters of the executable on Linux.
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
# Serving and launcher processes the seeds found still holding GPUs and ports.
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


def snapshot(process_iter: Callable = psutil.process_iter) -> list[ProcInfo]:
    """Every process we can see; ones that vanish or hide mid-read are left out."""
    found = []
    attrs = ["pid", "ppid", "name", "username", "cmdline", "create_time"]
    for proc in process_iter(attrs, ad_value=None):
        info = proc.info
        if info.get("pid") is None:
            continue
        found.append(
            ProcInfo(
                pid=info["pid"],
                ppid=info.get("ppid") or 0,
                name=info.get("name") or "",
                user=info.get("username") or "?",
                cmdline=tuple(info.get("cmdline") or ()),
                create_time=info.get("create_time") or 0.0,
            )
        )
    return found


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


def _swift_entry(proc: ProcInfo) -> bool:
    """`swift sft ...` run as a console script: argv[0] or python's argv[1] is .../swift."""
    head = proc.cmdline[:2]
    return any(os.path.basename(arg) == "swift" for arg in head)


def match(proc: ProcInfo, patterns: Iterable[tuple[str, bool]]) -> str | None:
    command = proc.command
    for needle, by_name in patterns:
        haystack = proc.name if by_name else command
        if needle in haystack or (by_name and command.startswith(needle)):
            return needle
    if _swift_entry(proc):
        return "swift"
    return None


def live_preflight_owner(pid: int) -> int | None:
    """The pid of a running preflight that started `pid` (its PREFLIGHT_OWNER), if any."""
    from preflight.probes import OWNER_VAR

    try:
        owner = psutil.Process(pid).environ().get(OWNER_VAR, "")
    except (psutil.Error, OSError):
        return None
    return int(owner) if owner.isdigit() and psutil.pid_exists(int(owner)) else None


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
