"""Wall time of preflight's static stage against `python -m torch.utils.collect_env`,
measured in one run, on this machine. Prints the figures and the ratio.

    python benchmarks/static_vs_collect_env.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(argv: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=300)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # The README's gate command: `preflight -m static`.
        static_argv = [sys.executable, "-m", "preflight", "-q", "-m", "static",
                       "--report-dir", tmp]
        collect_argv = [sys.executable, "-m", "torch.utils.collect_env"]
        static = [wall(static_argv, tmp) for _ in range(args.repeat)]
        session = json.loads((Path(tmp) / "preflight-report.json").read_text())["duration_s"]
        collect = [wall(collect_argv, tmp) for _ in range(args.repeat)]
    s, c = statistics.median(static), statistics.median(collect)
    print(f"preflight static stage: {s:.2f} s wall (pytest start-up included), "
          f"{session:.2f} s in the session")
    print(f"torch.utils.collect_env: {c:.2f} s wall")
    print(f"ratio collect_env / preflight static: {c / s:.1f}x  (median of {args.repeat})")


if __name__ == "__main__":
    main()
