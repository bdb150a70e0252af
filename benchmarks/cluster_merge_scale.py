"""Time `preflight merge` on 100 and on 1,000 synthetic node reports: the cost model of N.

    python benchmarks/cluster_merge_scale.py [--pairs 5] [--report PATH] [--baseline SRC]

The node reports are copies of one real report (PATH, else a fresh `preflight -q` run of
this machine), indented as a node writes them, each with its own hostname and node id.
Each figure is the real command (`python -m preflight merge DIR`) in a subprocess:

- paired: 100 and 1,000 nodes alternate (A B A B ..., benchmarks/pairs.py) so that load
  drifting on a shared machine hits both alike; wall-clock medians and their ratio;
- idle: the CPU time (user + sys) of the same runs, what the wall time is on an idle
  machine (merge is one thread and the reports are in the page cache);
- the cost model: time(N) = fixed + N x per-node, from the two sizes, and the sizes of
  the inputs and of cluster-report.json.

With --baseline SRC (a source tree of another preflight, e.g. `git archive OLD | tar -x
-C /tmp/old`), 1,000 nodes are also timed paired against that tree.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pairs import paired, user_env  # noqa: E402


def node_report(path: str | None, tmp: Path) -> dict:
    if path:
        return json.loads(Path(path).read_text())
    out = tmp / "one-node"
    subprocess.run([sys.executable, "-m", "preflight", "-q", "--report-dir", str(out)],
                   capture_output=True, env=user_env(), timeout=300, cwd=tmp)
    return json.loads((out / "preflight-report.json").read_text())


def synthesize(base: dict, root: Path, count: int) -> int:
    """`count` node reports under root/<host>/; returns their total size in bytes."""
    total = 0
    for i in range(count):
        base["node"]["node_id"] = f"n{i:05d}"
        base["node"]["hostname"] = f"gpu-{i:05d}"
        path = root / f"gpu-{i:05d}" / "preflight-report.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(base, indent=2) + "\n"  # as report.py writes it
        path.write_text(text)
        total += len(text)
    return total


def timed_merge(root: Path, out: Path, cpu: list[float], pythonpath: str = ""
                ) -> Callable[[], float]:
    env = user_env()
    if pythonpath:
        env["PYTHONPATH"] = pythonpath

    def run() -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "preflight", "merge", str(root),
                               "--report-dir", str(out)], capture_output=True, text=True,
                              env=env, timeout=600)
        took = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode not in (0, 1):
            sys.exit(f"preflight merge failed ({proc.returncode}): {proc.stderr[-500:]}")
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        return took

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--report", help="a node's preflight-report.json to copy")
    parser.add_argument("--baseline", help="another preflight source tree to pair against")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="merge-scale-") as tmp_name:
        tmp = Path(tmp_name)
        base = node_report(opts.report, tmp)
        size = {n: synthesize(base, tmp / f"n{n}", n) for n in (100, 1000)}
        cpu: dict[int, list[float]] = {100: [], 1000: []}
        runs = {n: timed_merge(tmp / f"n{n}", tmp / f"out{n}", cpu[n]) for n in (100, 1000)}
        result = paired(runs[100], runs[1000], opts.pairs)
        idle = {n: statistics.median(cpu[n][1:]) for n in cpu}  # the warm-up pair left out
        out_bytes = (tmp / "out1000" / "cluster-report.json").stat().st_size
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print("paired wall  " + result.line("merge 100 nodes", "merge 1,000 nodes"))
        print(f"idle (CPU)   100 nodes: median {idle[100]:.3f} s  |  1,000 nodes: median "
              f"{idle[1000]:.3f} s")
        for label, t100, t1000 in (
                ("wall", statistics.median(result.a), statistics.median(result.b)),
                ("CPU ", idle[100], idle[1000])):
            per = (t1000 - t100) / 900
            print(f"cost model ({label}): {t100 - 100 * per:.3f} s fixed + {per * 1e3:.3f} ms "
                  f"per node -> 100 nodes {t100:.2f} s, 1,000 nodes {t1000:.2f} s, "
                  f"10,000 nodes ~{t100 + 9900 * per:.1f} s")
        print(f"sizes: node report {size[1000] / 1000 / 1024:.1f} KiB each; inputs "
              f"{size[100] / 2**20:.1f} MiB (100) / {size[1000] / 2**20:.1f} MiB (1,000); "
              f"cluster-report.json for 1,000 nodes {out_bytes / 2**20:.1f} MiB")
        if opts.baseline:
            old: list[float] = []
            new: list[float] = []
            base_run = timed_merge(tmp / "n1000", tmp / "out-old", old, opts.baseline)
            ours = timed_merge(tmp / "n1000", tmp / "out-new", new)
            vs = paired(base_run, ours, opts.pairs)
            print("baseline     " + vs.line("1,000 nodes, baseline", "1,000 nodes, this tree"))
            print(f"baseline CPU median {statistics.median(old[1:]):.3f} s  |  this tree "
                  f"{statistics.median(new[1:]):.3f} s")


if __name__ == "__main__":
    main()
