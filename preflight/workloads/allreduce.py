"""A size sweep of all_reduce, checked element by element and timed like nccl-tests.

Run under torchrun: `python -m torch.distributed.run --nproc-per-node N -m
preflight.workloads.allreduce --out DIR`. Each rank writes its table to DIR.

Warm-up as nccl-tests does it (src/common.cu TimeTest): --warmup all_reduces at
--max-bytes, then --warmup at --min-bytes, once for the whole sweep. Then per size
(doubling from --min-bytes to --max-bytes, float32): one all_reduce of integer-valued
data whose sum is known, every element compared; one untimed all_reduce of the timed
buffer (BenchTime's "Sync"); --iters timed all_reduces (nccl-tests' defaults: -w 5,
-n 20). The slowest rank's time counts. algbw = bytes / time and busbw = algbw * 2
(n - 1) / n, the definition in nccl-tests' doc/PERFORMANCE.md for all_reduce.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from preflight.workloads import common
from preflight.workloads.common import Backend, Rank

# torch / dist are the modules the rank imported, passed in; `Any` here (see train.py).

ELEMENT = 4  # float32
MODULUS = 251  # keeps every value and every sum an exact float32 integer


def sizes(min_bytes: int, max_bytes: int) -> list[int]:
    size = max(ELEMENT, min_bytes - min_bytes % ELEMENT)
    out: list[int] = []
    while size <= max_bytes:
        out.append(size)
        size *= 2
    return out


def bus_bandwidth(algbw: float, world: int) -> float:
    return algbw * 2 * (world - 1) / world if world > 1 else algbw


def check_size(dist: Any, torch: Any, backend: Backend, rank: Rank, size: int,
               corrupt: bool) -> dict[str, Any] | None:
    """One all_reduce of known data; the first wrong element, or None when all are right."""
    n = rank.world_size
    numel = size // ELEMENT
    base = (torch.arange(numel, device=backend.device) % MODULUS).to(torch.float32)
    data = base + rank.rank
    if corrupt:  # PREFLIGHT_TEST_CORRUPT_RANK: this rank contributes one wrong element
        data[numel // 2] += 1
    dist.all_reduce(data)
    expected = base * n + n * (n - 1) // 2
    wrong = (data != expected).nonzero()
    if wrong.numel() == 0:
        return None
    index = int(wrong[0, 0])
    return {"index": index, "got": float(data[index]), "expected": float(expected[index]),
            "count": int(wrong.shape[0])}


def warm_up(dist: Any, torch: Any, backend: Backend, size: int, count: int) -> None:
    buf = torch.zeros(size // ELEMENT, dtype=torch.float32, device=backend.device)
    for _ in range(count):
        dist.all_reduce(buf)
    common.synchronize(backend)


def time_size(dist: Any, torch: Any, backend: Backend, size: int, iters: int) -> float:
    """Seconds per all_reduce on the slowest rank."""
    buf = torch.zeros(size // ELEMENT, dtype=torch.float32, device=backend.device)
    dist.all_reduce(buf)  # nccl-tests BenchTime's untimed "Sync" before the timed loop
    common.synchronize(backend)
    start = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(buf)
    common.synchronize(backend)
    elapsed = torch.tensor([(time.perf_counter() - start) / iters], dtype=torch.float64,
                           device=backend.device)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    return float(elapsed)


def plant_faults(rank: Rank) -> None:
    """The PREFLIGHT_TEST_* fault knobs (test-only), right after the process group is up."""
    if common.knob_int("PREFLIGHT_TEST_HANG_RANK") == rank.rank:
        rank.phase("sleeping before the first collective (PREFLIGHT_TEST_HANG_RANK)")
        time.sleep(3600)
    if common.knob_int("PREFLIGHT_TEST_KILL_RANK") == rank.rank:
        rank.phase("killing itself with SIGKILL (PREFLIGHT_TEST_KILL_RANK)")
        os.kill(os.getpid(), signal.SIGKILL)
    if common.knob_int("PREFLIGHT_TEST_EXIT_RANK") == rank.rank:
        rank.phase("exiting with status 3 (PREFLIGHT_TEST_EXIT_RANK)")
        sys.exit(3)


def sweep(torch: Any, dist: Any, backend: Backend, rank: Rank, min_bytes: int, max_bytes: int,
          warmup: int, iters: int) -> dict[str, Any]:
    """The whole sweep on an initialised process group; the rank's result."""
    corrupt_rank = common.knob_int("PREFLIGHT_TEST_CORRUPT_RANK")
    corrupt_bytes = common.knob_int("PREFLIGHT_TEST_CORRUPT_BYTES")
    rows: list[dict[str, Any]] = []
    n = rank.world_size
    steps = sizes(min_bytes, max_bytes)
    for size in dict.fromkeys([steps[-1], steps[0]] if steps else []):
        rank.phase(f"all_reduce {common.human_bytes(size)}: {warmup} warm-up")
        warm_up(dist, torch, backend, size, warmup)
    for size in steps:
        label = common.human_bytes(size)
        rank.phase(f"all_reduce {label}: correctness pass")
        corrupt = corrupt_rank == rank.rank and corrupt_bytes in (None, size)
        wrong = check_size(dist, torch, backend, rank, size, corrupt)
        rank.phase(f"all_reduce {label}: {iters} timed")
        seconds = time_size(dist, torch, backend, size, iters)
        algbw = size / seconds / 1e9
        rows.append({"size": label, "bytes": size, "time_us": round(seconds * 1e6, 1),
                     "algbw_gbps": float(f"{algbw:.4g}"),
                     "busbw_gbps": float(f"{bus_bandwidth(algbw, n):.4g}"),
                     "wrong": wrong})
    return {
        "backend": backend.name,
        "device": str(backend.device),
        "cuda": backend.cuda,
        "torch": torch.__version__,
        "nccl": ".".join(map(str, torch.cuda.nccl.version())) if backend.cuda else None,
        "warmup": warmup,
        "iters": iters,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--require-cuda", action="store_true")
    parser.add_argument("--min-bytes", type=int, default=8)
    parser.add_argument("--max-bytes", type=int, default=16 * 2**20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args(argv)

    rank = common.Rank.from_env(args.out)
    rank.phase("importing torch")
    common.start_deadline(rank)
    import torch
    import torch.distributed as dist

    backend = common.init_process_group(rank, args.require_cuda)
    plant_faults(rank)
    result = sweep(torch, dist, backend, rank, args.min_bytes, args.max_bytes, args.warmup,
                   args.iters)
    rank.phase("destroy_process_group")
    dist.destroy_process_group()
    rank.result(result)


if __name__ == "__main__":
    main()
