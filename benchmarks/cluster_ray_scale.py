"""Time `preflight cluster --ray` on a local Ray cluster of 1 node, then of 4 nodes.

    python benchmarks/cluster_ray_scale.py [--rounds 2] [-- PREFLIGHT ARGS]

Starts the Ray nodes itself (ray.cluster_utils, this machine's address), runs the cluster
verdict `rounds` times per size and prints the best wall time of each and their ratio. The
node tasks run in parallel, so the ratio stays near 1 while the machine has a core per
node; on fewer cores the node runs share them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def timed(address: str, args: list[str], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "preflight", "cluster", "--ray",
                                   address, "--report-dir", out, *args],
                                  capture_output=True, text=True)
            took = time.perf_counter() - start
        if proc.returncode not in (0, 1):
            sys.exit(f"preflight cluster failed ({proc.returncode}): {proc.stderr[-500:]}")
        best = min(best, took)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    opts = parser.parse_args(argv[:cut])
    args = argv[cut + 1:] or ["-m", "static"]
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                            "include_dashboard": False})
    try:
        one = timed(cluster.address, args, opts.rounds)
        for _ in range(3):
            cluster.add_node(num_cpus=1)
        four = timed(cluster.address, args, opts.rounds)
    finally:
        cluster.shutdown()
    print(f"preflight cluster --ray {' '.join(args)}: 1 node {one:.1f} s, 4 nodes {four:.1f} s, "
          f"ratio {four / one:.2f} (cores: {os.cpu_count()})")


if __name__ == "__main__":
    main()
