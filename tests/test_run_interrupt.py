"""A Ray task cancel is `_thread.interrupt_main()` in the worker (python/ray/_raylet.pyx
`kill_main_task`): a flag, no signal, that a blocked wait on a child never sees. The
Runner waits in slices, so the interrupt acts within a tick and the child is killed."""

from __future__ import annotations

import _thread
import threading
import time

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
