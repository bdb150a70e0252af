"""`python -m preflight.cluster.child PARENT_PID ARGS...`: become `python -m preflight ARGS`
in a process the kernel kills when its parent (the Ray worker running the node task)
dies, so a cancelled task or a dead raylet leaves no preflight behind on the node."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>; survives execv (cleared only by a setuid exec)


def main() -> None:
    parent = int(sys.argv[1])
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the task's timeout still bounds it
    if os.getppid() != parent:  # the worker died before prctl took effect
        sys.exit(3)
    os.execv(sys.executable, [sys.executable, "-m", "preflight", *sys.argv[2:]])


if __name__ == "__main__":
    main()
