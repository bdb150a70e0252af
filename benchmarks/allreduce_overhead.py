"""How much the nccl-allreduce workload costs over a bare torch.distributed.all_reduce loop.

    python benchmarks/allreduce_overhead.py [--profile cpu] [--rounds 2] [--timed-iters N]

In one run, alternately: the workload the `nccl-allreduce` check launches
(preflight.workloads.allreduce through preflight.probes.torchrun, the same sizes,
world, warm-up and iterations as the profile) and a bare loop under the same torchrun
(this file with --bare: init, warm-up, timed all_reduce, nothing else). For each size
the best busbw of the rounds; prints both and the ratio workload / bare.
Target: the workload within 10% of the bare loop at the sizes that carry the bandwidth.
Not a test: timings on a shared box are noisy.
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


def measure(profile_name: str, rounds: int, iters: int | None) -> None:
    from preflight.probes import torchrun
    from preflight.profiles import load_profiles

    profile = load_profiles([])[profile_name]
    wl = profile.workload
    nproc = wl.world_size or profile.gpu.count or 2
    sweep = ("--min-bytes", str(max(8, wl.min_size_bytes)), "--max-bytes",
             str(wl.max_size_bytes), "--warmup", str(wl.warmup_iters), "--iters",
             str(iters or wl.iters))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    best: dict[str, dict[int, float]] = {"workload": {}, "bare": {}}
    with tempfile.TemporaryDirectory(prefix="allreduce-overhead-") as tmp:
        for index in range(rounds):
            for kind, module in (("workload", "preflight.workloads.allreduce"),
                                 ("bare", "allreduce_overhead")):
                out = Path(tmp) / f"{kind}{index}"
                args = ("--out", str(out), *sweep, *(("--bare",) if kind == "bare" else ()))
                spec = torchrun.Spec(kind, module, args, nproc, out, wl.timeout_s)
                outcome = torchrun.launch(spec, env)
                if not outcome.ok:
                    sys.exit(f"{kind}: {outcome.error or outcome.unfinished}")
                rows = min(outcome.results, key=lambda r: r["rank"])["rows"]
                for row in rows:
                    prev = best[kind].get(row["bytes"], 0.0)
                    best[kind][row["bytes"]] = max(prev, row["busbw_gbps"])
    print(f"profile {profile_name}: {nproc} ranks, {rounds} round(s), best busbw per size (GB/s)")
    print(f"{'size':>10} {'workload':>10} {'bare':>10} {'ratio':>7}")
    ratios = []
    peak_bytes = max(best["bare"], key=best["bare"].get)
    for size in sorted(best["bare"]):
        w, b = best["workload"][size], best["bare"][size]
        ratio = w / b if b else float("nan")
        if size >= peak_bytes // 16:  # the sizes that carry the bandwidth
            ratios.append(ratio)
        print(f"{size:>10} {w:>10.4g} {b:>10.4g} {ratio:>7.3f}")
    peak_w, peak_b = max(best["workload"].values()), max(best["bare"].values())
    print(f"peak busbw: workload {peak_w:.4g} GB/s, bare {peak_b:.4g} GB/s, "
          f"ratio {peak_w / peak_b:.3f}")
    print(f"median ratio over sizes >= {peak_bytes // 16} B: {statistics.median(ratios):.3f} "
          "(target >= 0.90)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--rounds", type=int, default=2)
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
        measure(args.profile, args.rounds, args.timed_iters)


if __name__ == "__main__":
    main()
