"""How much the nccl-allreduce workload costs over a bare torch.distributed.all_reduce loop.

    python benchmarks/allreduce_overhead.py [--profile cpu] [--pairs 3] [--timed-iters N]

In pairs after a warm-up pair, alternately: the workload the `nccl-allreduce` check runs
(preflight.workloads.allreduce through preflight.run.torchrun, the same sizes, world,
warm-up and iterations as the profile) and a bare loop under the same torchrun (this file
with --bare: init, warm-up, timed all_reduce, nothing else). Per size the median busbw of
each; per pair the ratio workload / bare of the mean busbw over the sizes that carry the
bandwidth (the top 1/16 of the profile's sweep: a fixed window, not one that follows a
noisy peak), with its median and min-max. Target: the workload within 10% of the bare
loop. Not a test: timings on a shared box are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pairs import paired

HERE = Path(__file__).resolve().parent


def bare(out: str, min_bytes: int, max_bytes: int, warmup: int, iters: int) -> None:
    """Rank body of the bare loop: what any all_reduce benchmark does, nothing more."""
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    local = int(os.environ["LOCAL_RANK"])
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(1)  # as the workload does on CPU
    dist.init_process_group("nccl" if cuda else "gloo")
    n = dist.get_world_size()
    rows = []
    size = min_bytes
    while size <= max_bytes:
        buf = torch.zeros(size // 4, device=device)
        for _ in range(warmup):
            dist.all_reduce(buf)
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(buf)
        if cuda:
            torch.cuda.synchronize()
        took = torch.tensor([(time.perf_counter() - start) / iters], dtype=torch.float64,
                            device=device)
        dist.all_reduce(took, op=dist.ReduceOp.MAX)
        algbw = size / float(took) / 1e9
        rows.append({"bytes": size, "busbw_gbps": algbw * 2 * (n - 1) / n})
        size *= 2
    dist.destroy_process_group()
    rank = os.environ["RANK"]
    stem = Path(out) / f"rank{rank}-local{local}"
    stem.with_suffix(".json").write_text(json.dumps({"rank": int(rank), "rows": rows}))
    stem.with_suffix(".phase").write_text("done")


def measure(profile_name: str, pairs: int, iters: int | None) -> None:
    from preflight.profiles import load_profiles
    from preflight.run import torchrun

    profile = load_profiles([])[profile_name]
    wl = profile.workload
    nproc = wl.world_size or profile.gpu.count or 2
    sweep = ("--min-bytes", str(max(8, wl.min_size_bytes)), "--max-bytes",
             str(wl.max_size_bytes), "--warmup", str(wl.warmup_iters), "--iters",
             str(iters or wl.iters))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    window = wl.max_size_bytes // 16
    runs: dict[str, list[dict[int, float]]] = {"workload": [], "bare": []}

    with tempfile.TemporaryDirectory(prefix="allreduce-overhead-") as tmp:
        def sweep_of(kind: str) -> float:
            module = "preflight.workloads.allreduce" if kind == "workload" \
                else "allreduce_overhead"
            out = Path(tmp) / f"{kind}{len(runs[kind])}"
            args = ("--out", str(out), *sweep, *(("--bare",) if kind == "bare" else ()))
            outcome = torchrun.launch(torchrun.Spec(kind, module, args, nproc, out,
                                                    wl.timeout_s), env)
            if not outcome.ok:
                sys.exit(f"{kind}: {outcome.error or outcome.unfinished}")
            rows = min(outcome.results, key=lambda r: r["rank"])["rows"]
            table = {row["bytes"]: row["busbw_gbps"] for row in rows}
            runs[kind].append(table)
            return statistics.mean(v for k, v in table.items() if k >= window)

        result = paired(lambda: sweep_of("bare"), lambda: sweep_of("workload"), pairs)
    kept = {kind: tables[1:] for kind, tables in runs.items()}  # drop the warm-up pair
    print(f"profile {profile_name}: {nproc} ranks, {pairs} pair(s) after a warm-up pair; "
          "median busbw per size (GB/s)")
    print(f"{'size':>10} {'workload':>10} {'bare':>10} {'ratio':>7}")
    for size in sorted(kept["bare"][0]):
        w = statistics.median(t[size] for t in kept["workload"])
        b = statistics.median(t[size] for t in kept["bare"])
        mark = " *" if size >= window else ""
        print(f"{size:>10} {w:>10.4g} {b:>10.4g} {w / b if b else float('nan'):>7.3f}{mark}")
    print(f"* = the window (>= {window} B) whose mean busbw each pair compares")
    print(result.line("bare loop (mean busbw in window)", "workload", unit="GB/s"))
    print("target: workload / bare >= 0.90")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--timed-iters", type=int, default=None,
                        help="timed iterations per size for both (default: the profile's)")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--min-bytes", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--max-bytes", type=int, default=16 * 2**20, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--iters", type=int, default=20, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare(args.out, args.min_bytes, args.max_bytes, args.warmup, args.iters)
    else:
        measure(args.profile, args.pairs, args.timed_iters)


if __name__ == "__main__":
    main()
