"""The static stage and a workload launch on a busy process table: at about 3,000
processes against about 100, measured in pairs (few, many, few, many, ...) after a
warm-up pair. Prints the medians and the per-pair ratio (many / few) with its min-max.

    python benchmarks/process_scale.py [--pairs 5] [--many 3000] [--few 100]
                                       [--skip-static] [--skip-launch]

The extra processes are real and idle: `sleep` children of one spawner process. They are
bounded (at most 5,000, and never more than RLIMIT_NPROC or pid_max leave room for), live
in the spawner's own process group, and all die when the benchmark ends, on Ctrl-C and
SIGTERM too (the group is killed; each sleeper also has PR_SET_PDEATHSIG, so even a
SIGKILL of the benchmark takes them down, and `sleep` itself ends after --idle-s).
When the machine already runs more than --few processes, "few" is what it runs.

The static stage is `preflight -q -m static` (leftover-processes scans the whole table);
the workload launch is one `preflight.run.torchrun.launch` (the watchdog that polls the
launched tree while it runs) of a bare rank body (import torch, init_process_group,
barrier, destroy). Acceptance (issue 14): static at 3,000 <= 1.3x at 100; a workload
launch at 3,000 <= 1.2x at 100.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pairs import Paired, paired, user_env

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CAP = 5000

# The spawner: reads counts on stdin ("+N" start N more, "-N" end N, "q" quit), answers
# with the number of sleepers alive. Each sleeper dies with the spawner (PDEATHSIG), the
# spawner dies with the benchmark (PDEATHSIG) and `sleep` ends by itself after IDLE_S.
SPAWNER = r"""
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
if os.getppid() != int(sys.argv[2]):  # the benchmark died before prctl
    sys.exit(1)
idle = sys.argv[1]
me = os.getpid()
kids = []
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "q":
        break
    n = int(cmd)
    if n > 0:
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() != me:
                    os._exit(1)
                os.execv("/bin/sleep", ["sleep", idle])
            kids.append(pid)
    else:
        for _ in range(min(-n, len(kids))):
            pid = kids.pop()
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    print(len(kids), flush=True)
"""


def table_size() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


class Sleepers:
    """Idle processes we started, in one process group that is killed at the end."""

    def __init__(self, idle_s: int):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SPAWNER, str(idle_s), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            start_new_session=True)  # its own group: killpg reaches it and its sleepers
        self.count = 0

    def _say(self, cmd: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the spawner died (see its stderr)")
        self.count = int(line)

    def resize(self, total: int) -> int:
        """Start or end sleepers until the table holds about `total` processes."""
        want = max(0, self.count + total - table_size())
        if want != self.count:
            self._say(f"{want - self.count:+d}")
        return table_size()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the spawner is its group's leader
            except ProcessLookupError:
                pass
        self.proc.wait()
        deadline = time.monotonic() + 30  # the sleepers are reaped by init, not by us
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        print(f"warning: process group {self.proc.pid} still has members", file=sys.stderr)


def _raise_on(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def room_for(many: int) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    limit = min(pid_max // 2, soft if soft != resource.RLIM_INFINITY else pid_max)
    if many > CAP or many > limit:
        raise SystemExit(f"--many {many} exceeds the bound {min(CAP, limit)} (cap {CAP}, "
                         f"RLIMIT_NPROC {soft}, pid_max {pid_max})")


def static_run(tmp: str, cpu: list[float]) -> float:
    """Wall seconds; the run's CPU seconds (user + system) appended to `cpu`."""
    argv = [sys.executable, "-m", "preflight", "-q", "-m", "static", "--report-dir", tmp]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=300, env=user_env())
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return took


def launch_run(tmp: str, nproc: int) -> float:
    from preflight.run import torchrun

    env = user_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    spec = torchrun.Spec("scale", "workload_floor", ("--bare",), nproc, Path(tmp) / "launch",
                         300.0)
    start = time.perf_counter()
    out = torchrun.launch(spec, env)
    took = time.perf_counter() - start
    if not out.ok:
        raise SystemExit(f"the bare launch failed: {out.error or out.log_tail[-3:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--few", type=int, default=100)
    parser.add_argument("--many", type=int, default=3000)
    parser.add_argument("--nproc", type=int, default=2, help="ranks of the workload launch")
    parser.add_argument("--idle-s", type=int, default=1800,
                        help="each sleeper ends by itself after this long")
    parser.add_argument("--skip-static", action="store_true")
    parser.add_argument("--skip-launch", action="store_true")
    args = parser.parse_args()
    room_for(args.many)
    signal.signal(signal.SIGTERM, _raise_on)
    signal.signal(signal.SIGHUP, _raise_on)
    sleepers = Sleepers(args.idle_s)
    seen: dict[str, list[int]] = {"few": [], "many": []}
    try:
        with tempfile.TemporaryDirectory(prefix="process-scale-") as tmp:

            def at(level: str, body: Callable[[], float]) -> Callable[[], float]:
                def run() -> float:
                    seen[level].append(sleepers.resize(getattr(args, level)))
                    return body()
                return run

            if not args.skip_static:
                few: list[float] = []
                many: list[float] = []
                result = paired(at("few", lambda: static_run(tmp, few)),
                                at("many", lambda: static_run(tmp, many)), args.pairs)
                print(result.line("static stage, few processes", "static stage, many"))
                cpu = Paired(few[-args.pairs:], many[-args.pairs:])  # without the warm-up
                print(cpu.line("static stage CPU, few", "static stage CPU, many"))
            if not args.skip_launch:
                result = paired(at("few", lambda: launch_run(tmp, args.nproc)),
                                at("many", lambda: launch_run(tmp, args.nproc)), args.pairs)
                print(result.line("workload launch, few processes", "workload launch, many"))
    finally:
        sleepers.close()
    for level, counts in seen.items():
        if counts:
            print(f"{level}: {min(counts)}-{max(counts)} processes in the table")
    print(f"after: {table_size()} processes (every sleeper ended)")


if __name__ == "__main__":
    main()
