"""Reproduces the nested-launch logs under tests/logs/real/, and the launches that must NOT
read as nested, with real torchrun (torch 2.13 CPU, gloo) on this box:

    python tests/logs/produce_nested.py OUTDIR [NAME...]     # default: every shape

A nested launch is torchrun started by a worker of another torchrun: every outer rank runs
its own inner launcher, and the inner launchers fight over one port. Each run is bounded
(TIMEOUT_S) and its whole process tree is killed afterwards (torchrun starts every worker
in a session of its own, so the tree, not the process group, is what is killed). Ports are
free ports found by binding, never 29500. The logs name no path or host of this machine:
the work dir, the interpreter, its site-packages and the host name are replaced by
neutral ones. Each log gets a two-line header saying how it was made.

`nested-accelerate` is not committed: accelerate under torchrun does not fail on the taken
port, it moves to a free one (accelerate/utils/launch.py, `prepare_multi_gpu_env`: "Port
... is already in use. Accelerate will attempt to launch in a standalone-like mode") and
every outer rank runs the whole job; the run exits 0 and triage rightly finds no failure.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from preflight.run import kill_group  # noqa: E402
from preflight.run.tree import ProcessTree  # noqa: E402

TIMEOUT_S = 60.0
TMP_NAME = "tmp"  # run_nodes: the launches' TMPDIR inside their work dir
PY = sys.executable
TORCHRUN = [PY, "-m", "torch.distributed.run"]

TRAIN = """\
import torch, torch.distributed as dist
dist.init_process_group("gloo")
r = dist.get_rank()
t = torch.ones(4) * r
dist.all_reduce(t)
print(f"rank {r}/{dist.get_world_size()}: all_reduce ok {t.tolist()}", flush=True)
dist.destroy_process_group()
"""
# The launch script a user wraps: it runs torchrun itself (not exec'd: bash stays the worker).
INNER_SH = """\
echo "train.sh: launching on port $INNER_PORT"
"$PYTHON" -m torch.distributed.run --nproc-per-node 2 --master-port "$INNER_PORT" train.py
"""
# A trainer whose rank BIND_RANK opens its metrics server on METRICS_PORT, which another
# program holds: a bind failure inside ONE launch (the negatives).
METRICS = """\
import os, socket, torch, torch.distributed as dist
dist.init_process_group("gloo")
r = dist.get_rank()
t = torch.ones(4)
dist.all_reduce(t)
print(f"rank {r}: step 0 ok", flush=True)
if r == int(os.environ["BIND_RANK"]):
    print(f"rank {r}: starting the metrics server on {os.environ['METRICS_PORT']}", flush=True)
    socket.socket().bind(("127.0.0.1", int(os.environ["METRICS_PORT"])))
dist.all_reduce(t)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def hold_port() -> socket.socket:
    """A listening socket on a free port: 'another program holds the port'."""
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    s.listen()
    return s


@dataclass
class Node:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    label: str = ""      # prefix of each line (a merged multi-node log), or none


@dataclass
class Shape:
    made_by: str
    nodes: Callable[[dict[str, object]], list[Node]]
    concat: bool = False   # the nodes' logs one after the other instead of interleaved
    ports: Sequence[str] = ("A", "B")
    held: Sequence[str] = ()
    needs: str = "torch"   # a module the shape runs; without it the shape is skipped


def _nested(outer: list[str], inner: list[str], env: dict[str, str] | None = None
            ) -> Callable[[dict[str, object]], list[Node]]:
    def build(p: dict[str, object]) -> list[Node]:
        fill = [a.format(**p) for a in outer + inner]
        return [Node([*TORCHRUN, *fill], {k: v.format(**p) for k, v in (env or {}).items()})]
    return build


def _venv_path() -> dict[str, str]:
    """PATH with the torchrun of this interpreter's torch first (`--no-python torchrun`)."""
    dirs = [str(Path(p) / "bin") for p in (sys.prefix, sys.base_prefix)]
    return {"PATH": ":".join([*dirs, os.environ.get("PATH", "")])}


INNER = ["--nproc-per-node", "2", "--master-port", "{B}", "train.py"]
SHAPES: dict[str, Shape] = {
    "nested-c10d-plain": Shape(
        "torchrun --nproc-per-node 2 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:A "
        "-m torch.distributed.run --nproc-per-node 2 --master-port B train.py",
        _nested(["--nproc-per-node", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                 "127.0.0.1:{A}", "-m", "torch.distributed.run"], INNER)),
    "nested-standalone-plain": Shape(
        "torchrun --standalone --nproc-per-node 2 -m torch.distributed.run "
        "--nproc-per-node 2 --master-port B train.py",
        _nested(["--standalone", "--nproc-per-node", "2", "-m", "torch.distributed.run"],
                INNER)),
    "nested-standalone-tee": Shape(
        "torchrun --standalone --nproc-per-node 2 --tee 3 -m torch.distributed.run "
        "--nproc-per-node 2 --master-port B train.py",
        _nested(["--standalone", "--nproc-per-node", "2", "--tee", "3", "-m",
                 "torch.distributed.run"], INNER)),
    "nested-standalone-info": Shape(
        "LOGLEVEL=INFO torchrun --standalone --nproc-per-node 2 -m torch.distributed.run "
        "--nproc-per-node 2 --master-port B train.py",
        _nested(["--standalone", "--nproc-per-node", "2", "-m", "torch.distributed.run"],
                INNER, env={"LOGLEVEL": "INFO"})),
    "nested-logdir-console": Shape(
        "torchrun --standalone --nproc-per-node 2 --redirects 3 --log-dir DIR "
        "-m torch.distributed.run --nproc-per-node 2 --master-port B train.py "
        "(the console; the inner launchers' output is in DIR)",
        _nested(["--standalone", "--nproc-per-node", "2", "--redirects", "3", "--log-dir",
                 "{W}/ranks", "-m", "torch.distributed.run"], INNER)),
    "nested-no-python": Shape(
        "torchrun --standalone --nproc-per-node 2 --no-python torchrun "
        "--nproc-per-node 2 --master-port B train.py",
        _nested(["--standalone", "--nproc-per-node", "2", "--no-python", "torchrun"], INNER,
                env=_venv_path())),
    "nested-legacy-launch": Shape(
        "torchrun --standalone --nproc-per-node 2 -m torch.distributed.launch "
        "--nproc-per-node 2 --master-port B train.py (the deprecated launcher inside)",
        _nested(["--standalone", "--nproc-per-node", "2", "-m", "torch.distributed.launch"],
                INNER)),
    "nested-bash-script": Shape(
        "torchrun --standalone --nproc-per-node 2 --no-python bash train.sh "
        "(train.sh runs torchrun --nproc-per-node 2 --master-port B train.py)",
        _nested(["--standalone", "--nproc-per-node", "2", "--no-python", "bash", "train.sh"],
                [], env={"INNER_PORT": "{B}", "PYTHON": PY})),
    "nested-accelerate": Shape(
        "torchrun --standalone --nproc-per-node 2 -m accelerate.commands.launch --multi_gpu "
        "--num_processes 2 --main_process_port B train.py",
        _nested(["--standalone", "--nproc-per-node", "2", "-m", "accelerate.commands.launch",
                 "--multi_gpu", "--num_processes", "2", "--main_process_port", "{B}",
                 "train.py"], []), needs="accelerate"),
    # -- the launches that are not nested ---------------------------------------------------
    "single-port-held": Shape(
        "torchrun --nproc-per-node 2 --master-port H train.py (H held by another program)",
        lambda p: [Node([*TORCHRUN, "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                         "--master-port", str(p["H"]), "train.py"])],
        held=("H",)),
    "multinode-labelled": Shape(
        "LOGLEVEL=INFO torchrun --nnodes 2 --node-rank 0|1 --nproc-per-node 1 --master-port A "
        "metrics.py on one box, lines labelled by node as they arrive (srun --label); "
        "rank 1's metrics port H is held by another program",
        lambda p: [Node([*TORCHRUN, "--nnodes", "2", "--node-rank", str(n),
                         "--nproc-per-node", "1", "--master-addr", "127.0.0.1",
                         "--master-port", str(p["A"]), "metrics.py"],
                        {"BIND_RANK": "1", "METRICS_PORT": str(p["H"]), "LOGLEVEL": "INFO"},
                        f"node{n}: ")
                   for n in (0, 1)],
        held=("H",)),
    "multinode-concat": Shape(
        "the same two nodes, node 0's log then node 1's (cat node0.log node1.log)",
        lambda p: [Node([*TORCHRUN, "--nnodes", "2", "--node-rank", str(n),
                         "--nproc-per-node", "1", "--master-addr", "127.0.0.1",
                         "--master-port", str(p["A"]), "metrics.py"],
                        {"BIND_RANK": "1", "METRICS_PORT": str(p["H"])})
                   for n in (0, 1)],
        concat=True, held=("H",)),
    "restarted-port-held": Shape(
        "LOGLEVEL=INFO torchrun --nproc-per-node 2 --master-port A --max-restarts 1 metrics.py "
        "(rank 0's metrics port H held by another program; the agent restarts the workers once)",
        lambda p: [Node([*TORCHRUN, "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                         "--master-port", str(p["A"]), "--max-restarts", "1", "metrics.py"],
                        {"BIND_RANK": "0", "METRICS_PORT": str(p["H"]), "LOGLEVEL": "INFO"})],
        held=("H",)),
}


def _pump(stream: IO[bytes], label: str, sink: list[bytes], lock: threading.Lock) -> None:
    for raw in stream:
        with lock:
            sink.append(label.encode() + raw)


def run_nodes(nodes: list[Node], cwd: Path, concat: bool) -> bytes:
    """Every node's launcher at once, bounded; the whole tree killed afterwards."""
    env_base = launch_env(cwd)
    lock = threading.Lock()
    sinks: list[list[bytes]] = [[] for _ in nodes]
    procs, trees, pumps = [], [], []
    try:
        for node, sink in zip(nodes, sinks, strict=True):
            proc = subprocess.Popen(node.argv, cwd=cwd, env={**env_base, **node.env},
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            procs.append(proc)
            trees.append(ProcessTree(proc.pid))
            assert proc.stdout is not None
            pump = threading.Thread(target=_pump, daemon=True,
                                    args=(proc.stdout, node.label,
                                          sinks[0] if not concat else sink, lock))
            pump.start()
            pumps.append(pump)
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            for tree in trees:
                tree.refresh()
            time.sleep(0.1)
    finally:
        stop_launches(procs, trees, pumps)
    return b"".join(b"".join(sink) for sink in sinks)


def launch_env(cwd: Path) -> dict[str, str]:
    """This environment without the launch settings a caller's own torchrun set, with
    $TMPDIR in `cwd`: torchrun's agent makes its per-attempt log dirs there (torchelastic_*,
    never removed; torch/distributed/elastic/multiprocessing/api.py:260-262), inside the
    producer's own work dir, removed with it; redact() shows them as /tmp, where a user's
    run puts them. Set here, not as --log-dir: the command lines are the users'."""
    env = {k: v for k, v in os.environ.items()
           if k != "OMP_NUM_THREADS" and not k.startswith(("PET_", "TORCHELASTIC_"))}
    env.pop("MASTER_PORT", None)
    env.pop("MASTER_ADDR", None)
    (cwd / TMP_NAME).mkdir(exist_ok=True)
    env["TMPDIR"] = str(cwd / TMP_NAME)
    return env


def stop_launches(procs: list[subprocess.Popen[bytes]], trees: list[ProcessTree],
                  pumps: list[threading.Thread]) -> None:
    """Every launcher's whole tree killed (its group, then what left the group), reaped, and
    its output drained."""
    for proc, tree in zip(procs, trees, strict=True):
        tree.refresh()
        kill_group(proc)
        tree.kill()
        proc.wait()
    for pump in pumps:
        pump.join(timeout=10)


def redact(text: str, work: Path) -> str:
    """This machine's paths and host name replaced by neutral ones; any left is an error."""
    site = str(Path(re.sub(r"/torch/__init__\.py$", "", _torch_file())))
    text = text.replace(site, "/opt/venv/lib/python3.11/site-packages")
    text = text.replace(str(work / TMP_NAME), "/tmp")  # run_nodes' TMPDIR: a user's /tmp
    text = text.replace(str(work), "/tmp/work").replace(PY, "/opt/venv/bin/python")
    for prefix in sorted({sys.prefix, sys.base_prefix}, key=len, reverse=True):
        text = text.replace(prefix + "/", "/opt/venv/")
    for host in {socket.gethostname(), socket.getfqdn()} - {"localhost", ""}:
        text = re.sub(rf"(?<![\w.-]){re.escape(host)}(?![\w.-])", "node-a", text)
    left = [x for x in (str(work), sys.prefix, sys.base_prefix, str(ROOT), str(Path.home()))
            if x not in ("/", "") and x in text]
    if left:
        raise SystemExit(f"produce_nested: {left} left in a log after redaction")
    return text


def _torch_file() -> str:
    """Where torch is installed, found without importing it (an import costs seconds)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        raise SystemExit("produce_nested: no torch for this interpreter")
    return spec.origin


def produce(name: str, out_dir: Path) -> Path:
    shape = SHAPES[name]
    with tempfile.TemporaryDirectory(prefix="preflight-nested-") as tmp:
        work = Path(tmp)
        (work / "train.py").write_text(TRAIN)
        (work / "metrics.py").write_text(METRICS)
        (work / "train.sh").write_text(INNER_SH)
        held = {key: hold_port() for key in shape.held}
        try:
            ports = {key: free_port() for key in shape.ports}
            ports.update({key: s.getsockname()[1] for key, s in held.items()})
            fmt: dict[str, object] = {**ports, "W": str(work)}
            nodes = shape.nodes(fmt)
            raw = run_nodes(nodes, work, shape.concat)
        finally:
            for s in held.values():
                s.close()
        return write_fixture(out_dir, name, "produce_nested.py", shape.made_by,
                             raw.decode("utf-8", errors="replace"), work)


def write_fixture(out_dir: Path, name: str, producer: str, made_by: str, text: str,
                  work: Path) -> Path:
    """NAME.log with its two-line header; a --log-dir tree left in WORK/ranks (the
    launchers' own output, per rank) as NAME-ranks/; WORK's paths redacted in both."""
    header = (f"# fixture {name} (real run, tests/logs/{producer})\n"
              f"# made by: {made_by}\n")
    out = out_dir / f"{name}.log"
    out.write_text(header + redact(text, work), encoding="utf-8")
    ranks = work / "ranks"
    if ranks.is_dir():
        dest = out_dir / f"{name}-ranks"
        shutil.rmtree(dest, ignore_errors=True)
        for path in sorted(ranks.rglob("*.log")):
            rel = Path(*path.relative_to(ranks).parts[1:])  # drop the random run dir
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(redact(path.read_text(errors="replace"), work))
    return out


def cli(argv: list[str], shapes: Mapping[str, Any], produce: Callable[[str, Path], Path],
        needs: Callable[[str], str | None] = lambda name: None) -> int:
    """`PRODUCER OUTDIR [NAME...]` for the real-log producers: every named shape (all when
    none is named) made into OUTDIR, with its time; `needs(name)`: a module the shape needs
    that is not installed here (skipped, said)."""
    if not argv or argv[0].startswith("-"):
        print(f"usage: {Path(sys.argv[0]).name} OUTDIR [NAME...]; names: {', '.join(shapes)}",
              file=sys.stderr)
        return 4
    unknown = [n for n in argv[1:] if n not in shapes]
    if unknown:
        print(f"ERROR: unknown shape(s) {', '.join(unknown)}; names: {', '.join(shapes)}",
              file=sys.stderr)
        return 4
    # Stopped from outside (a test's timeout): end as SystemExit, so run_nodes' finally kills
    # the launch trees it started; they are in sessions of their own and outlive us otherwise.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in argv[1:] or list(shapes):
        missing = needs(name)
        if missing:
            print(f"{name}: skipped, no {missing} here", flush=True)
            continue
        start = time.monotonic()
        path = produce(name, out_dir)
        print(f"{path}  {time.monotonic() - start:.1f} s", flush=True)
    return 0


def main(argv: list[str]) -> int:
    def needs(name: str) -> str | None:
        module = SHAPES[name].needs
        return module if importlib.util.find_spec(module) is None else None

    return cli(argv, SHAPES, produce, needs)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
