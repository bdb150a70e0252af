"""Every workload check in one torchrun launch: the launch floor (agent start, torch
import in the ranks, exit) is paid once instead of once per workload.

Run under torchrun: `python -m torch.distributed.run --nproc-per-node N -m
preflight.workloads.suite --out DIR --tasks allreduce,train,resume,store ...`. In order:

  allreduce  the all_reduce sweep (preflight/workloads/allreduce.py)
  train      train-10-steps' training, checkpoint and uninterrupted reference step
  resume     destroy the process group, start a fresh one in the same ranks (a new
             init_process_group through torchrun's store), load the checkpoint, step N+1
  store      local rank 0 of each node creates the TCPStores torchrun and its workers
             create (preflight/workloads/store.py); last, because it rewrites MASTER_*
             in os.environ and, under PREFLIGHT_TEST_NO_LIBUV, TCPStore itself

Each task writes its own `<stem>.<task>.json` as soon as it is done, and `<stem>.task`
names the task a rank is in, so a hang or crash in one still names its own check and
what every rank was doing. After the last result the rank leaves with os._exit: torch's
interpreter teardown takes about a second per rank and proves nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

from preflight.workloads import allreduce, common, train
from preflight.workloads.common import Backend

TASKS = ("allreduce", "train", "resume", "store")


def _up(backend: Backend | None) -> Backend:
    """The process group every task but `store` runs in (set up before the first)."""
    if backend is None:
        raise RuntimeError("no process group: only the store task runs without one")
    return backend


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tasks", required=True,
                        help=f"comma-separated, from {','.join(TASKS)}")
    parser.add_argument("--require-cuda", action="store_true")
    parser.add_argument("--min-bytes", type=int, default=8)
    parser.add_argument("--max-bytes", type=int, default=16 * 2**20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--checkpoint", default="")
    args = parser.parse_args(argv)
    tasks = [t for t in TASKS if t in args.tasks.split(",")]
    if "resume" in tasks and "train" not in tasks:
        parser.error("resume needs train")

    rank = common.Rank.from_env(args.out)
    rank.task(tasks[0] if tasks else "none")
    rank.phase("importing torch")
    common.start_deadline(rank)
    import torch
    import torch.distributed as dist

    timings: dict[str, float] = {}
    backend: Backend | None = None
    if any(t != "store" for t in tasks):
        started = time.perf_counter()
        backend = common.init_process_group(rank, args.require_cuda)
        timings["init_process_group_s"] = round(time.perf_counter() - started, 3)
        # The fault knobs act before the first task that talks, whichever it is: planted in
        # the sweep alone, train-10-steps run by itself ignored them (a false GO).
        allreduce.plant_faults(rank)
    ckpt = Path(args.checkpoint or Path(args.out) / "checkpoint.pt")

    def facts(started: float) -> dict[str, Any]:
        return {"backend": backend.name if backend else None,
                "device": str(backend.device) if backend else None,
                "cuda": bool(backend and backend.cuda), "torch": torch.__version__,
                "elapsed_s": round(time.perf_counter() - started, 3), **timings}

    if "allreduce" in tasks:
        rank.task("allreduce")
        started = time.perf_counter()
        result = allreduce.sweep(torch, dist, _up(backend), rank, args.min_bytes, args.max_bytes,
                                 args.warmup, args.iters)
        rank.result(result | {"elapsed_s": round(time.perf_counter() - started, 3)},
                    task="allreduce")
    if "train" in tasks:
        rank.task("train")
        started = time.perf_counter()
        data = train.phase_train(torch, dist, _up(backend), rank, args.steps, ckpt)
        rank.result({"phase": "train", **train.MODEL, **data} | facts(started), task="train")
        del data
    if "resume" in tasks:
        rank.task("resume")
        started = time.perf_counter()
        # What a restarted job does: the old process group is gone, a new one is built
        # (torchrun's store hands out a fresh prefix), nothing is carried in memory.
        rank.phase("destroy_process_group (before the resume)")
        dist.destroy_process_group()
        gc.collect()
        if _up(backend).cuda:
            torch.cuda.empty_cache()
        rank.phase("init_process_group (fresh, for the resume)")
        backend = common.init_process_group(rank, args.require_cuda, prefix="resume/")
        data = train.phase_resume(torch, dist, backend, rank, args.steps, ckpt)
        rank.result({"phase": "resume", "fresh_process_group": True, **train.MODEL, **data}
                    | facts(started), task="resume")
    if backend is not None:
        rank.phase("destroy_process_group")
        dist.destroy_process_group()
    if "store" in tasks and rank.local_rank == 0:
        from preflight.workloads import store  # reads preflight.probes: only where needed

        rank.task("store")
        rank.phase("creating the agent and worker TCPStores")
        started = time.perf_counter()
        rank.result(store.check_stores(torch) | {"elapsed_s": round(
            time.perf_counter() - started, 3)}, task="store")
    rank.phase("done")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
