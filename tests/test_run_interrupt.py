"""A Ray task cancel is `_thread.interrupt_main()` in the worker (python/ray/_raylet.pyx
`kill_main_task`): a flag, no signal, that a blocked wait on a child never sees. The
Runner waits in slices, so the interrupt acts within a tick and the child is killed."""

from __future__ import annotations

import _thread
import os
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from preflight.run import TICK_S, Runner


def test_an_interrupt_of_the_waiting_thread_kills_the_child_at_once(tmp_path):
    pidfile = tmp_path / "pid"
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Runner().run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"], timeout=30)
    took = time.monotonic() - started
    timer.join()
    assert took < 0.5 + TICK_S + 1.0, took  # not the child's 30 s
    pid = int(pidfile.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


# A child that cleans up on SIGTERM (a preflight node run: it kills its torchrun tree), and
# one that ignores it. Each says when it is ready, so the interrupt never lands before the
# trap is set.
TRAPS = """
import os, signal, sys, time
def done(*_):
    open(sys.argv[1] + ".cleaned", "w").close()
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[2] == "ignore" else done)
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(60)
"""


def _interrupted_run(tmp_path, grace_s: float, mode: str) -> tuple[float, int]:
    """Runner.run interrupted once the child is ready; (seconds it took, child pid)."""
    ready = tmp_path / f"child-{mode}-{grace_s}"

    def interrupt() -> None:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        _thread.interrupt_main()

    timer = threading.Thread(target=interrupt)
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Runner().run([sys.executable, "-c", TRAPS, str(ready), mode], timeout=60,
                     stop_grace_s=grace_s)
    took = time.monotonic() - started
    timer.join()
    return took, int(ready.read_text())


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_grace_lets_the_interrupted_child_clean_up_before_it_is_killed(tmp_path):
    """`cluster --ray` cancelled mid-run: the node task's Runner gives the node's preflight
    SIGTERM and a grace, so it kills its own torchrun tree (sessions of their own, out of
    reach of the group kill) instead of being SIGKILLed with its ranks left running and
    writing into the task's report dir while the task removed it."""
    _, pid = _interrupted_run(tmp_path, 5.0, "clean")
    assert (tmp_path / "child-clean-5.0.cleaned").exists() and _gone(pid)
    _, pid = _interrupted_run(tmp_path, 0.0, "clean")  # the default: SIGKILL at once
    assert not (tmp_path / "child-clean-0.0.cleaned").exists() and _gone(pid)


def test_a_child_that_ignores_sigterm_is_killed_when_the_grace_ends(tmp_path):
    took, pid = _interrupted_run(tmp_path, 1.0, "ignore")
    assert _gone(pid) and 1.0 <= took < 1.0 + 10, took  # waited the grace, then killed


def test_a_cancel_during_the_node_tasks_clean_up_still_removes_its_dir(tmp_path):
    """A Ray cancel that lands while the node task removes its temporary report dir (the
    node's run had just ended): the interrupt goes on, the dir is gone all the same."""
    from preflight.cluster.fanout_ray import remove_tree

    tree = tmp_path / "preflight-node-x"
    for d in range(20):
        (tree / "preflight-logs" / f"workloads{d}").mkdir(parents=True)
        for f in range(200):
            (tree / "preflight-logs" / f"workloads{d}" / f"rank{f}.phase").write_text("x")
    first = tree / "preflight-logs" / "workloads0"
    keep = os.open(first, os.O_RDONLY)  # listdir through an fd: no error once it is removed
    first = Path(f"/proc/self/fd/{keep}")

    def interrupt_once_removal_began() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(os.listdir(first)) == 200:
            time.sleep(0.001)
        _thread.interrupt_main()

    timer = threading.Thread(target=interrupt_once_removal_began)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        remove_tree(str(tree))
        time.sleep(30)  # the interrupt arrived after the removal: not the case under test
    timer.join()
    os.close(keep)
    assert not tree.exists()
