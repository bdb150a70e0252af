"""Bounded subprocesses: the only place preflight spawns processes.

Every child runs in its own session, is bounded in time and, on timeout or when the
caller dies, is killed with its whole process group. `torchrun` (a workload under
torchrun) and `tree` (the process tree a workload grew) build on it. This room may
import `preflight.probes` (ports, process identity), never the checks or the plugin.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OWNER_VAR = "PREFLIGHT_OWNER"


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int | None  # None when killed on timeout
    stdout: str
    stderr: str
    timed_out: bool
    elapsed_s: float


class Runner:
    """The only place preflight spawns processes: each in its own session, bounded."""

    def __init__(self, default_timeout: float = 30.0):
        self.default_timeout = default_timeout

    def run(
        self,
        argv: Sequence[str],
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Completed:
        import time

        timeout = self.default_timeout if timeout is None else timeout
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            return Completed(tuple(argv), 127, "", str(exc), False, time.monotonic() - start)
        try:
            out, err = communicate(proc, timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, err = proc.communicate()
            timed_out = True
        except BaseException:
            kill_group(proc)
            proc.wait()
            raise
        code = None if timed_out else proc.returncode
        return Completed(tuple(argv), code, out, err, timed_out, time.monotonic() - start)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """A long-running child (a workload) in its own session; the caller bounds it.

        Its environment carries PREFLIGHT_OWNER=<our pid>, inherited by everything it
        starts, so a second preflight running beside us does not report our workload as
        a leftover of an earlier run (procs.leftovers)."""
        env = dict(kwargs.pop("env", None) or os.environ)
        env[OWNER_VAR] = str(os.getpid())
        return subprocess.Popen(list(argv), start_new_session=True, env=env, **kwargs)


# How often a wait on a child returns to Python: a Ray task cancel (ray.cancel) is
# `_thread.interrupt_main()` in the worker (python/ray/_raylet.pyx `kill_main_task`), a
# flag Python checks between bytecodes, which does not wake a blocked select(); one long
# communicate() left the cancelled task, and the child it must kill, running until the
# child's own bound.
TICK_S = 0.2


def communicate(proc: subprocess.Popen[Any], timeout: float) -> tuple[Any, Any]:
    """proc.communicate(timeout=timeout) in TICK_S slices (subprocess keeps what was read
    across a TimeoutExpired), so an interrupt of this thread acts within a tick."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            return proc.communicate(timeout=max(0.0, min(TICK_S, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise


# SIGTERM (a CI timeout, `scancel`, pod shutdown) and SIGHUP (a dropped ssh) end a run as
# Ctrl-C does: KeyboardInterrupt unwinds it, and whatever it started is killed on the way
# out (Runner, torchrun.py, the cluster's node tasks). Used by the node run (plugin.py)
# and `cluster --ray` (cluster/fanout_ray.py).
INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _interrupted_by(signum: int, frame: Any) -> None:
    for sig in INTERRUPT_SIGNALS:  # a second signal must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(f"preflight interrupted by {signal.Signals(signum).name}")


def interrupt_on_signals(before: Mapping[signal.Signals, Any] | None = None
                         ) -> dict[signal.Signals, Any]:
    """Make INTERRUPT_SIGNALS raise KeyboardInterrupt where their handler was the default
    (`before`: the handlers as they were, e.g. before a library put its own; read now when
    None), never over nohup's SIG_IGN or a caller's handler. Main thread only (Python's
    rule for signal.signal). Returns the handlers replaced, to restore."""
    import threading

    saved: dict[signal.Signals, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return saved
    for sig in INTERRUPT_SIGNALS:
        previous = signal.getsignal(sig) if before is None else before[sig]
        if previous == signal.SIG_DFL:
            saved[sig] = previous
            signal.signal(sig, _interrupted_by)
    return saved


def restore_signals(saved: Mapping[signal.Signals, Any]) -> None:
    """Put back the handlers interrupt_on_signals replaced."""
    for sig, previous in saved.items():
        signal.signal(sig, previous)


def kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Kill a child we started together with everything it spawned."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
