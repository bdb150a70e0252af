"""Hostile input and injected faults against the real plugin: every outcome is a verdict
or one usage line; no traceback, no leaked canary, no process left, no hang."""

from __future__ import annotations

import json

import pytest
from cases import CASES
from harness import run_case
from summary import as_expected


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case, tmp_path, fault_results):
    result = run_case(case, tmp_path / "work")
    fault_results.append((result, as_expected(case, result) and result.ok_shape))
    where = f"{case.name}: exit {result.returncode}\n{result.output[-3000:]}"
    assert not result.hang, where
    assert not result.traceback, where
    assert result.leaks == [], where
    assert result.leftover == [], where
    assert not result.wrong, f"{result.wrong}\n{where}"
    if case.expect == "no-go":
        report = json.loads((tmp_path / "work" / "report" / "preflight-report.json").read_text())
        assert (result.outcome, result.returncode, report["verdict"]) == ("verdict", 1, "NO-GO"), \
            where
    else:
        assert result.outcome == case.expect, where
