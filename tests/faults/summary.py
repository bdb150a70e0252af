"""The faults summary line. tests/conftest.py prints it at the end of any run that
executed fault cases, so CI shows the counts without running the cases twice;
benchmarks/faults_summary.py prints the same line standalone."""

from __future__ import annotations

import pytest

RESULTS: pytest.StashKey[list] = pytest.StashKey()


# Counts that must all be 0 for the faults suite to pass (the first two say how much ran).
FAILURE_COUNTS = ("tracebacks", "leaks", "leftover processes", "hangs", "unexpected outcomes")


def as_expected(case, result) -> bool:
    """The outcome the case expects: a NO-GO is a verdict that exits 1."""
    if result.wrong:
        return False
    if case.expect == "no-go":
        return result.outcome == "verdict" and result.returncode == 1
    return result.outcome == case.expect


def summary_counts(results, unexpected: int) -> dict[str, int]:
    return {
        "bad inputs tried": sum(r.kind == "bad-input" for r in results),
        "faults injected": sum(r.kind == "fault" for r in results),
        "tracebacks": sum(r.traceback for r in results),
        "leaks": sum(bool(r.leaks) for r in results),
        "leftover processes": sum(len(r.leftover) for r in results),
        "hangs": sum(r.hang for r in results),
        "unexpected outcomes": unexpected,
    }


def summary_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())
