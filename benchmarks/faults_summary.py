"""Run every hostile-input and fault case of tests/faults/ against the real plugin and
print one line of counts. Exits 1 when any count of failures is not 0.

    python benchmarks/faults_summary.py [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "faults"))

from cases import CASES  # noqa: E402
from harness import run_case  # noqa: E402
from summary import summary_line  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda c: run_case(c, Path(tmp) / c.name), CASES))
    expected = {c.name: c.expect for c in CASES}
    unexpected = [r for r in results
                  if r.outcome != expected[r.case]
                  and not (expected[r.case] == "no-go" and r.outcome == "verdict"
                           and r.returncode == 1)]
    for r in unexpected:
        print(f"unexpected: {r.case}: {r.outcome} (exit {r.returncode})", file=sys.stderr)
    line = summary_line(results, len(unexpected))
    print(line)
    failures = sum(int(part.rsplit(": ", 1)[1]) for part in line.split(", ")[2:])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
