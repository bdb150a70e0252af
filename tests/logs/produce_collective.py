"""Reproduces the collective-timeout and dataloader-killed logs under tests/logs/real/ with
real torchrun + gloo and torch's DataLoader (torch 2.13 CPU) on this box:

    python tests/logs/produce_collective.py OUTDIR [NAME...]     # default: every shape

A collective times out when one rank never reaches it: its peers wait `timeout` (here 3 s,
`init_process_group("gloo", timeout=timedelta(seconds=3))`) and raise. The shapes: a rank
stuck in data loading (all_reduce), rank 0 alone saving a checkpoint while rank 1 waits at a
barrier, the same all_reduce under TORCH_DISTRIBUTED_DEBUG=DETAIL (gloo then names the rank
that did not arrive), a peer SIGKILLed while the other waits in all_reduce (as the kernel's
OOM killer does), a peer whose shard ran out and exited while the other waits. A DataLoader
worker that dies by SIGKILL (the OOM killer's signal), alone and under torchrun where rank
0 then waits in its all_reduce. TORCH_NCCL_ASYNC_ERROR_HANDLING is not set anywhere: gloo
has no watchdog, its timeout is raised by the waiting call itself.

Each launch is bounded (produce_nested.TIMEOUT_S) and its whole process tree is killed
afterwards (produce_nested.run_nodes); ports are free ones found by binding 127.0.0.1:0 and
gloo is kept on loopback (GLOO_SOCKET_IFNAME=lo). Paths and the host name are replaced by
neutral ones (produce_nested.redact); each log gets a two-line header.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from produce_nested import PY, TORCHRUN, Node, cli, free_port, redact, run_nodes  # noqa: E402

# Each rank prints its step, then rank WAIT_RANK does what keeps it from the collective.
COLLECTIVE = """\
import os, signal, sys, time, torch, torch.distributed as dist
from datetime import timedelta
mode = sys.argv[1]
dist.init_process_group("gloo", timeout=timedelta(seconds=3))
r = dist.get_rank()
print(f"rank {r}: step 0 loss 2.31", flush=True)
if mode == "save" and r == 0:
    print("rank 0: saving checkpoint-10 (rank 0 only)", flush=True)
    time.sleep(8)
if mode in ("allreduce", "detail") and r == 1:
    print("rank 1: loading the next shard", flush=True)
    time.sleep(8)
if mode == "sigkill" and r == 1:
    time.sleep(1)
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "exit" and r == 1:
    print("rank 1: shard exhausted after 1 batch, leaving the loop", flush=True)
    sys.exit(0)
if mode == "save":
    dist.barrier()
else:
    dist.all_reduce(torch.ones(4))
print(f"rank {r}: step 1", flush=True)
dist.destroy_process_group()
"""
# A text dataset whose item 20 kills the worker that loads it by SIGKILL, as the kernel's
# OOM killer ends the largest process of a memory cgroup; under torchrun only rank 1's does.
# Items are strings: a tensor batch crosses to the main process by fd passing, and a worker
# killed while the main process fetches its fd fails that fetch first with a plain
# ConnectionResetError that hides the worker's death (two runs of three here).
LOADER = """\
import os, signal, torch
from torch.utils.data import DataLoader, Dataset
ranked = "RANK" in os.environ
if ranked:
    import torch.distributed as dist
    from datetime import timedelta
    dist.init_process_group("gloo", timeout=timedelta(seconds=3))
rank = int(os.environ.get("RANK", "0"))
class Lines(Dataset):
    def __len__(self): return 64
    def __getitem__(self, i):
        if i == 20 and (not ranked or rank == 1):
            os.kill(os.getpid(), signal.SIGKILL)
        return f"sample {i}"
for step, batch in enumerate(DataLoader(Lines(), batch_size=4, num_workers=2)):
    if ranked:
        dist.all_reduce(torch.tensor([len(batch)]))
    print(f"rank {rank}: step {step}", flush=True)
"""


@dataclass
class Shape:
    made_by: str
    argv: Callable[[int], list[str]]
    env: dict[str, str]


def _torchrun(script: str, *args: str) -> Callable[[int], list[str]]:
    return lambda port: [*TORCHRUN, "--nnodes", "1", "--nproc-per-node", "2",
                         "--master-addr", "127.0.0.1", "--master-port", str(port), script, *args]


SHAPES: dict[str, Shape] = {
    "collective-timeout-allreduce": Shape(
        "torchrun --nproc-per-node 2 collective.py allreduce (gloo, timeout 3 s; rank 1 is "
        "still loading data for 8 s when rank 0 enters all_reduce)",
        _torchrun("collective.py", "allreduce"), {}),
    "collective-timeout-barrier": Shape(
        "torchrun --nproc-per-node 2 collective.py save (gloo, timeout 3 s; rank 0 alone saves "
        "a checkpoint for 8 s while rank 1 waits at dist.barrier())",
        _torchrun("collective.py", "save"), {}),
    "collective-timeout-detail": Shape(
        "TORCH_DISTRIBUTED_DEBUG=DETAIL torchrun --nproc-per-node 2 collective.py detail "
        "(gloo, timeout 3 s; rank 1 is still loading data when rank 0 enters all_reduce)",
        _torchrun("collective.py", "detail"), {"TORCH_DISTRIBUTED_DEBUG": "DETAIL"}),
    "collective-peer-sigkill": Shape(
        "torchrun --nproc-per-node 2 collective.py sigkill (gloo; rank 1 is SIGKILLed, as by "
        "the OOM killer, while rank 0 waits in all_reduce)",
        _torchrun("collective.py", "sigkill"), {}),
    "collective-peer-exit": Shape(
        "torchrun --nproc-per-node 2 collective.py exit (gloo; rank 1's shard ran out: it "
        "exits 0 while rank 0 waits in all_reduce)",
        _torchrun("collective.py", "exit"), {}),
    "dataloader-killed": Shape(
        "python loader.py (DataLoader, 2 workers; the worker loading item 20 is SIGKILLed, "
        "as by the OOM killer)",
        lambda port: [PY, "loader.py"], {}),
    "dataloader-killed-torchrun": Shape(
        "torchrun --nproc-per-node 2 loader.py (gloo, timeout 3 s; rank 1's DataLoader worker "
        "is SIGKILLed while rank 0 waits in all_reduce)",
        _torchrun("loader.py"), {}),
}


def produce(name: str, out_dir: Path) -> Path:
    shape = SHAPES[name]
    with tempfile.TemporaryDirectory(prefix="preflight-collective-") as tmp:
        work = Path(tmp)
        (work / "collective.py").write_text(COLLECTIVE)
        (work / "loader.py").write_text(LOADER)
        env = {"GLOO_SOCKET_IFNAME": "lo", **shape.env}
        raw = run_nodes([Node(shape.argv(free_port()), env)], work, concat=False)
        text = raw.decode("utf-8", errors="replace")
        header = (f"# fixture {name} (real run, tests/logs/produce_collective.py)\n"
                  f"# made by: {shape.made_by}\n")
        out = out_dir / f"{name}.log"
        out.write_text(header + redact(text, work), encoding="utf-8")
    return out


def main(argv: list[str]) -> int:
    return cli(argv, SHAPES, produce)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
