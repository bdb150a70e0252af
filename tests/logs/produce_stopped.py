"""Reproduces the job-stopped logs under tests/logs/real/ with real torchrun (torch 2.13 CPU,
gloo) and real bash on this box: a run stopped from outside, as a scheduler's time limit,
a preemption, `scancel`, a user's `kill` or Ctrl-C stops it:

    python tests/logs/produce_stopped.py OUTDIR [NAME...]     # default: every shape

Each launch starts in a session of its own; once its ranks have printed their first step,
the producer sends the signal to the launcher's pid (torchrun) or to the foreground command
of a bash script (`kill PID` from another shell), waits for the launch to end, and kills
whatever of its tree is left (produce_nested's bound, TIMEOUT_S). Ports are free ones found
by binding; gloo stays on loopback. Paths and the host name are replaced by neutral ones
(produce_nested.redact); each log gets a two-line header.

The two-node shapes run two torchruns (--nnodes 2) on this box and keep each node's output
apart: the log is node 0's, then node 1's, as `cat node0.log node1.log` joins them.

The `timeout` shapes bound the launch from inside its own script (`timeout -s KILL 20
torchrun ...`, `timeout 20 ...`, `timeout -v 20 ...`, `timeout -k 3 8 python ...` around a
trainer whose SIGTERM handler outlasts the grace, `timeout 8 python ...`): nothing is sent
from outside, the bound passes while the ranks train, and the tree left (the ranks that
`-s KILL` leaves running) is killed after.

The Slurm shapes (a real slurmstepd's `*** JOB N ON host CANCELLED AT ... ***`) are made by
tests/logs/produce_slurm.sh on a one-node Slurm.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from produce_nested import (  # noqa: E402
    PY,
    TIMEOUT_S,
    TORCHRUN,
    _pump,
    cli,
    free_port,
    launch_env,
    stop_launches,
    write_fixture,
)

from preflight.run.tree import ProcessTree  # noqa: E402

# Each rank prints its first step and then trains on (sleeps) until it is stopped. Mode
# "error": rank 1 fails with a KeyError first, but a non-daemon thread it started (a
# prefetcher) keeps the process alive after the traceback, so the job hangs until it is
# stopped from outside: the KeyError is the root cause, the stop its consequence.
TRAIN = """\
import os, sys, threading, time, torch.distributed as dist
mode = sys.argv[1] if len(sys.argv) > 1 else "sleep"
dist.init_process_group("gloo")
r = dist.get_rank()
print(f"rank {r}: step 0 loss 2.31", flush=True)
if mode == "error-exit" and r == 1:
    time.sleep(1)
    raise KeyError("labels")
if mode == "error" and r == 1:
    threading.Thread(target=time.sleep, args=(600,), name="prefetcher").start()
    batch = {"input_ids": [1, 2, 3]}
    batch["labels"]
if mode == "loop":  # a step's all_reduce every 0.2 s: a peer that leaves fails the others
    import torch
    t = torch.ones(1)
    while True:
        dist.all_reduce(t)
        time.sleep(0.2)
time.sleep(600)
"""
# A single-process trainer in a bash launch script, in the foreground.
ONE = """\
import os, time
print(f"train: step 0 loss 2.31 (pid {os.getpid()})", flush=True)
time.sleep(600)
"""
# A trainer that handles SIGTERM by saving a checkpoint, which takes longer than the
# grace timeout(1)'s --kill-after gives it.
SLOW_SAVE = """\
import os, signal, time
def save(signum, frame):
    print(f"train: got signal {signum}, saving a checkpoint", flush=True)
    time.sleep(600)
signal.signal(signal.SIGTERM, save)
print(f"train: step 0 loss 2.31 (pid {os.getpid()})", flush=True)
time.sleep(600)
"""
TRAIN_SH = """\
echo "train.sh: starting"
"$PYTHON" one.py
echo "train.sh: python exited with $?"
"""
# A torchrun worker that is a bash script running the trainer in the foreground; rank 1's
# trainer fails, and torchrun closes rank 0 (SIGTERM to its process group,
# torch/distributed/elastic/multiprocessing/subprocess_handler/subprocess_handler.py:85
# os.killpg): the bash of rank 0 may report its trainer "Terminated" (a consequence).
WORKER_SH = """\
"$PYTHON" train.py error-exit
rc=$?
echo "worker.sh: trainer exited with $rc"
exit $rc
"""


# A launch script that bounds the launch with coreutils timeout(1) ({opts}: its options and
# duration); $1: the master port. The bound passes while the ranks train (they print their
# step ~5 s after the start on a loaded 2-core box). Under -s KILL timeout kills itself and
# torchrun (its process group) but not the ranks (sessions of their own): they are left
# running, and the producer kills them with the rest of the tree.
BOUNDED_SH = """\
echo "run.sh: training under a time bound"
timeout {opts} "$PYTHON" -m torch.distributed.run --nproc-per-node 2 --master-addr 127.0.0.1 \\
  --master-port "$1" train.py
echo "run.sh: exit status $?"
"""
# ... and around a single-process trainer: with TERM, python dies silently, timeout exits
# 124 and prints nothing, bash reports nothing: the log cannot tell.
BOUNDED_ONE_SH = """\
echo "run.sh: training under a time bound"
timeout {opts} "$PYTHON" one.py
echo "run.sh: exit status $?"
"""


@dataclass
class Shape:
    made_by: str
    argv: list[str]            # {P}: a free port, {W}: the work dir
    sig: signal.Signals | None  # None: not stopped from outside, the launch ends itself
    ready: str                 # regex: the output that says the ranks are running
    target: str = "launcher"   # or "child": the pid the output names ("(pid N)")
    script: str = ""           # written to run.sh in the work dir


def _torchrun(*args: str) -> list[str]:
    return [*TORCHRUN, "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
            "--master-port", "{P}", *args]


TWO_STEPS = r"(?s)(?=.*rank 0: step 0)(?=.*rank 1: step 0)"
# Two nodes (one box, two torchruns: --nnodes 2, 2 ranks each, all_reduce every 0.2 s):
# node 1's torchrun gets SIGTERM from outside (its node's scheduler, a preemption); its ranks
# stop, node 0's ranks fail on the closed connections and node 0's agent closes its other
# rank. Each node's output is kept apart and the log is node 0's then node 1's (`cat
# node0.log node1.log`, no labels): node 1's stop stands after node 0's closing lines.
# BOTH_NODES: the same, `kill -TERM` to node 0's torchrun and at once to node 1's (a
# scheduler ending the job on every node): node 1's stop stands after node 0's closing
# lines, milliseconds after them.
SECOND_NODE = ("two torchruns --nnodes 2 --node-rank 0|1 --nproc-per-node 2 train.py loop "
               "(gloo, all_reduce every 0.2 s); `kill -TERM` to node 1's torchrun; node 0's "
               "log then node 1's (cat node0.log node1.log)")
BOTH_NODES = ("two torchruns --nnodes 2 --node-rank 0|1 --nproc-per-node 2 train.py loop "
              "(gloo, all_reduce every 0.2 s); `kill -TERM` to node 0's torchrun, then at "
              "once to node 1's; node 0's log then node 1's (cat node0.log node1.log)")
SHAPES: dict[str, Shape] = {
    "job-stopped-torchrun-sigterm": Shape(
        "torchrun --nproc-per-node 2 train.py (gloo; both ranks train on; `kill -TERM` to "
        "torchrun's pid, as a scheduler's time limit, preemption or scancel sends)",
        _torchrun("train.py"), signal.SIGTERM, TWO_STEPS),
    "job-stopped-torchrun-sigint": Shape(
        "torchrun --nproc-per-node 2 train.py (gloo; `kill -INT` to torchrun's pid, as Ctrl-C "
        "in its terminal sends)",
        _torchrun("train.py"), signal.SIGINT, TWO_STEPS),
    "job-stopped-torchrun-sighup": Shape(
        "torchrun --nproc-per-node 2 train.py (gloo; `kill -HUP` to torchrun's pid, as a "
        "closed terminal or ssh session sends)",
        _torchrun("train.py"), signal.SIGHUP, TWO_STEPS),
    "job-stopped-torchrun-tee": Shape(
        "torchrun --nproc-per-node 2 --tee 3 train.py (gloo; `kill -TERM` to torchrun's pid)",
        _torchrun("--tee", "3", "train.py"), signal.SIGTERM, TWO_STEPS),
    "job-stopped-torchrun-logdir": Shape(
        "torchrun --nproc-per-node 2 --log-dir DIR --redirects 3 train.py (gloo; `kill -TERM` "
        "to torchrun's pid; the console; the ranks' output is in DIR)",
        _torchrun("--log-dir", "{W}/ranks", "--redirects", "3", "train.py"), signal.SIGTERM,
        TWO_STEPS),
    "job-stopped-bash": Shape(
        "bash train.sh (runs `python one.py` in the foreground; `kill -TERM` to python's pid "
        "from another shell)",
        ["bash", "train.sh"], signal.SIGTERM, r"\(pid \d+\)", target="child"),
    "job-stopped-bash-hup": Shape(
        "bash train.sh (runs `python one.py` in the foreground; `kill -HUP` to python's pid, "
        "as the closing of the terminal it ran in sends)",
        ["bash", "train.sh"], signal.SIGHUP, r"\(pid \d+\)", target="child"),
    "job-stopped-after-error": Shape(
        "torchrun --nproc-per-node 2 train.py error (gloo; rank 1 fails with a KeyError but "
        "a non-daemon thread keeps it alive, so the job hangs; then `kill -TERM` to "
        "torchrun's pid, as the time limit does)",
        _torchrun("train.py", "error"), signal.SIGTERM,
        r"(?s)(?=.*rank 0: step 0)(?=.*KeyError: 'labels')"),
    "job-stopped-timeout-kill": Shape(
        "bash run.sh PORT (run.sh: `timeout -s KILL 20 python -m torch.distributed.run "
        "--nproc-per-node 2 ... train.py`, the ranks training on; the bound passes)",
        ["bash", "run.sh", "{P}"], None, "", script=BOUNDED_SH.format(opts="-s KILL 20")),
    "job-stopped-timeout-term": Shape(
        "bash run.sh PORT (run.sh: `timeout 20 python -m torch.distributed.run "
        "--nproc-per-node 2 ... train.py`; TERM at the bound)",
        ["bash", "run.sh", "{P}"], None, "", script=BOUNDED_SH.format(opts="20")),
    "job-stopped-timeout-xtrace": Shape(
        "bash run.sh PORT (run.sh under `set -x`: `timeout 20 python -m "
        "torch.distributed.run --nproc-per-node 2 ... train.py`; TERM at the bound, the "
        "trace shows the timeout line)",
        ["bash", "run.sh", "{P}"], None, "", script="set -x\n" + BOUNDED_SH.format(opts="20")),
    "job-stopped-timeout-verbose": Shape(
        "bash run.sh PORT (run.sh: `timeout -v 20 python -m torch.distributed.run "
        "--nproc-per-node 2 ... train.py`; TERM at the bound, timeout says so)",
        ["bash", "run.sh", "{P}"], None, "", script=BOUNDED_SH.format(opts="-v 20")),
    "job-stopped-timeout-kill-after": Shape(
        "bash run.sh (run.sh: `timeout -k 3 8 python slow_save.py`, a trainer whose SIGTERM "
        "handler saves a checkpoint for longer than the 3 s grace: TERM at the bound, KILL 3 s "
        "later)",
        ["bash", "run.sh"], None, "", script=BOUNDED_ONE_SH.format(opts="-k 3 8")
        .replace("one.py", "slow_save.py")),
    "timeout-term-silent": Shape(
        "bash run.sh (run.sh: `timeout 8 python one.py`, a single-process trainer; TERM at "
        "the bound: nothing says so)",
        ["bash", "run.sh"], None, "", script=BOUNDED_ONE_SH.format(opts="8")),
    "job-stopped-second-node-concat": Shape(SECOND_NODE, [], None, ""),
    "job-stopped-both-nodes-concat": Shape(BOTH_NODES, [], None, ""),
    "worker-closed-bash": Shape(
        "torchrun --nproc-per-node 2 --tee 3 --no-python bash worker.sh (worker.sh runs "
        "python train.py; rank 1's fails with a KeyError, torchrun closes rank 0 with "
        "SIGTERM to its process group; nothing from outside)",
        _torchrun("--tee", "3", "--no-python", "bash", "worker.sh"), None, ""),
}


def run_stopped(shape: Shape, work: Path) -> bytes:
    """The launch, stopped by `shape.sig` once it is ready; bounded, its tree killed after."""
    env = _launch_env(work)
    fill = {"P": str(free_port()), "W": str(work)}
    argv = [a.format(**fill) for a in shape.argv]
    sink: list[bytes] = []
    lock = threading.Lock()
    proc = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    tree = ProcessTree(proc.pid)
    assert proc.stdout is not None
    pump = threading.Thread(target=_pump, args=(proc.stdout, "", sink, lock), daemon=True)
    pump.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        sent = shape.sig is None
        while time.monotonic() < deadline and proc.poll() is None:
            tree.refresh()
            with lock:
                text = b"".join(sink).decode("utf-8", errors="replace")
            # under --log-dir --redirects the ranks print into their own files
            text += "".join(p.read_text(errors="replace") for p in work.glob("ranks/**/*.log"))
            if not sent and shape.sig is not None and re.search(shape.ready, text):
                time.sleep(1.0)
                os.kill(_target(shape, proc, text), shape.sig)
                sent = True
            time.sleep(0.1)
        if not sent:
            raise SystemExit(f"produce_stopped: {shape.made_by}: never ready")
    finally:
        stop_launches([proc], [tree], [pump])
    return b"".join(sink)


def run_nodes_stopped(work: Path, stop: tuple[int, ...]) -> bytes:
    env = _launch_env(work)
    port = str(free_port())
    lock = threading.Lock()
    sinks: list[list[bytes]] = [[], []]
    procs, trees, pumps = [], [], []
    try:
        for node in (0, 1):
            argv = [*TORCHRUN, "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node",
                    "2", "--master-addr", "127.0.0.1", "--master-port", port, "train.py", "loop"]
            proc = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            procs.append(proc)
            trees.append(ProcessTree(proc.pid))
            assert proc.stdout is not None
            pump = threading.Thread(target=_pump, args=(proc.stdout, "", sinks[node], lock),
                                    daemon=True)
            pump.start()
            pumps.append(pump)
        deadline = time.monotonic() + TIMEOUT_S
        sent = False
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            for tree in trees:
                tree.refresh()
            with lock:
                text = b"".join(sinks[0] + sinks[1]).decode("utf-8", errors="replace")
            if not sent and all(f"rank {r}: step 0" in text for r in range(4)):
                time.sleep(1.0)
                for node in stop:
                    os.kill(procs[node].pid, signal.SIGTERM)
                sent = True
            time.sleep(0.1)
        if not sent:
            raise SystemExit(f"produce_stopped: nodes {stop} to stop: never ready")
    finally:
        stop_launches(procs, trees, pumps)
    return b"".join(sinks[0]) + b"".join(sinks[1])


def _launch_env(work: Path) -> dict[str, str]:
    return {**launch_env(work), "GLOO_SOCKET_IFNAME": "lo", "PYTHON": PY}


def _target(shape: Shape, proc: subprocess.Popen[bytes], text: str) -> int:
    if shape.target == "launcher":
        return proc.pid
    m = re.search(r"\(pid (\d+)\)", text)
    assert m is not None
    return int(m.group(1))


def produce(name: str, out_dir: Path) -> Path:
    shape = SHAPES[name]
    with tempfile.TemporaryDirectory(prefix="preflight-stopped-") as tmp:
        work = Path(tmp)
        (work / "train.py").write_text(TRAIN)
        (work / "one.py").write_text(ONE)
        (work / "slow_save.py").write_text(SLOW_SAVE)
        (work / "train.sh").write_text(TRAIN_SH)
        (work / "worker.sh").write_text(WORKER_SH)
        if shape.script:
            (work / "run.sh").write_text(shape.script)
        stop = {SECOND_NODE: (1,), BOTH_NODES: (0, 1)}.get(shape.made_by)
        raw = run_nodes_stopped(work, stop) if stop else run_stopped(shape, work)
        return write_fixture(out_dir, name, "produce_stopped.py", shape.made_by,
                             raw.decode("utf-8", errors="replace"), work)


def main(argv: list[str]) -> int:
    return cli(argv, SHAPES, produce)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
