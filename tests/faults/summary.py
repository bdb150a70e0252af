"""The faults summary line. tests/conftest.py prints it at the end of any run that
executed fault cases, so CI shows the counts without running the cases twice;
benchmarks/faults_summary.py prints the same line standalone."""

from __future__ import annotations

import pytest

RESULTS: pytest.StashKey[list] = pytest.StashKey()


def summary_line(results, unexpected: int) -> str:
    counts = {
        "bad inputs tried": sum(r.kind == "bad-input" for r in results),
        "faults injected": sum(r.kind == "fault" for r in results),
        "tracebacks": sum(r.traceback for r in results),
        "leaks": sum(bool(r.leaks) for r in results),
        "leftover processes": sum(len(r.leftover) for r in results),
        "hangs": sum(r.hang for r in results),
        "unexpected outcomes": unexpected,
    }
    return ", ".join(f"{k}: {v}" for k, v in counts.items())
