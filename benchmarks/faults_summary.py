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
from summary import FAILURE_COUNTS, as_expected, summary_counts, summary_line  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda c: run_case(c, Path(tmp) / c.name), CASES))
    unexpected = [r for c, r in zip(CASES, results, strict=True) if not as_expected(c, r)]
    for r in unexpected:
        print(f"unexpected: {r.case}: {r.outcome} (exit {r.returncode})", file=sys.stderr)
    counts = summary_counts(results, len(unexpected))
    print(summary_line(counts))
    return 1 if any(counts[k] for k in FAILURE_COUNTS) else 0


if __name__ == "__main__":
    sys.exit(main())
