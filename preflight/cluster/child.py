"""`python -m preflight.cluster.child PARENT_PID ARGS...`: run `python -m preflight ARGS`
under this small supervisor, so that nothing preflight started outlives the Ray worker
running the node task.

Two layers, because Ray SIGKILLs a worker's *direct* children when the worker exits
(`RAY_kill_child_processes_on_worker_exit`, default true; not recursive: ray
doc/source/ray-core/user-spawn-processes.rst): this supervisor is that direct child and
dies with the worker (PR_SET_PDEATHSIG=SIGKILL); preflight, its child, then gets SIGTERM
(PR_SET_PDEATHSIG=SIGTERM), ends as interrupted and kills its workloads' process trees,
which run in sessions of their own. A SIGKILLed preflight left torchrun and its ranks
running until their own deadline. SIGTERM / SIGHUP / SIGINT sent to the supervisor (the
node task's bound) are passed on to preflight the same way; preflight runs in the
supervisor's process group, so a kill of that group (the last resort) takes both.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from types import FrameType
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>; survives execv (cleared only by a setuid exec)
PASSED_ON = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: the task's timeout still bounds it


def main() -> None:
    parent = int(sys.argv[1])
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the worker died before prctl took effect
        sys.exit(3)
    me = os.getpid()

    def tether() -> None:  # in preflight's process, before exec
        for sig in PASSED_ON:  # an ignored signal stays ignored over exec
            signal.signal(sig, signal.SIG_DFL)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != me:
            os._exit(3)

    # Not run.Runner.popen: preflight stays in this process group (see above).
    proc = subprocess.Popen([sys.executable, "-m", "preflight", *sys.argv[2:]],
                            preexec_fn=tether)

    def pass_on(signum: int, frame: FrameType | None) -> None:
        proc.send_signal(signal.SIGTERM)

    for sig in PASSED_ON:
        signal.signal(sig, pass_on)
    code = proc.wait()
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
