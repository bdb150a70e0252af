"""A Ray task cancel is `_thread.interrupt_main()` in the worker (python/ray/_raylet.pyx
`kill_main_task`): a flag, no signal, that a blocked wait on a child never sees. The
Runner waits in slices, so the interrupt acts within a tick and the child is killed."""

from __future__ import annotations

import _thread
import os
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
