"""Wall time of preflight's static stage against `python -m torch.utils.collect_env`,
measured in one run, on this machine, in pairs (static, collect_env, static, ...) after a
warm-up pair. Prints the medians and the per-pair ratio with its min-max.

    python benchmarks/static_vs_collect_env.py [--pairs 5]
    python benchmarks/static_vs_collect_env.py --gpu   # 8x H100 replayed, torch installed

`--gpu` replays fixtures/nvml/h100x8-healthy.json (`--nvml-replay`) so the GPU checks run
with the h100 profile, as on a GPU node with torch installed (issue goal: median <= 1.0 s and
>= 3x faster than collect_env). `--nvml-replay FILE --profile NAME` for another node.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pairs import Paired, paired, user_env

REPO = Path(__file__).resolve().parent.parent


def wall(argv: list[str], cwd: str, cpu: list[float] | None = None) -> float:
    """Wall seconds of one run; its CPU seconds (user + system, its children included)
    appended to `cpu`: on a shared box the CPU time hardly moves with the load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=300, env=user_env())
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--gpu", action="store_true",
                        help="replay an 8x H100 node (fixtures/nvml/h100x8-healthy.json)")
    parser.add_argument("--nvml-replay", default=None)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    replay = args.nvml_replay or (str(REPO / "fixtures/nvml/h100x8-healthy.json")
                                  if args.gpu else None)
    profile = args.profile or ("h100" if args.gpu else None)
    with tempfile.TemporaryDirectory() as tmp:
        # The README's gate command: `preflight -m static`.
        static_argv = [sys.executable, "-m", "preflight", "-q", "-m", "static",
                       "--report-dir", tmp]
        if replay:
            static_argv += ["--nvml-replay", replay]
        if profile:
            static_argv += ["--profile", profile]
        collect_argv = [sys.executable, "-m", "torch.utils.collect_env"]
        cpu_a: list[float] = []
        cpu_b: list[float] = []
        result = paired(lambda: wall(static_argv, tmp, cpu_a),
                        lambda: wall(collect_argv, tmp, cpu_b), args.pairs)
        report = json.loads((Path(tmp) / "preflight-report.json").read_text())
    stack = next((c for c in report["checks"] if c["id"] == "cuda-stack"), None)
    print(f"node: {'replay ' + Path(replay).name if replay else 'this machine'}, profile "
          f"{report['profile']}, {len(report['checks'])} checks, last session "
          f"{report['duration_s']:.2f} s inside pytest")
    if stack:
        ev = stack.get("evidence") or {}
        print(f"cuda-stack: {stack['severity']}, torch {ev.get('torch')}, "
              f"torch imported: {ev.get('torch_imported')}, read from {ev.get('read_from')}")
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        print("(PYTHONDONTWRITEBYTECODE is set here; both sides ran without it, as after pip "
              "install)")
    print(result.line("preflight static stage (wall, pytest start-up included)",
                      "torch.utils.collect_env"))
    cpu = Paired(cpu_a[-args.pairs:], cpu_b[-args.pairs:])  # without the warm-up pair
    print(cpu.line("preflight static stage (CPU user+sys)", "collect_env (CPU)"))


if __name__ == "__main__":
    main()
