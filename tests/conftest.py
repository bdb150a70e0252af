"""Fixtures and hooks for the tests (pytest loads this file; tests import tests/support.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import snapshots
from support import CHECKS, GATE_PLUGINS, REPO, Run, base_env, gate_env


@pytest.fixture
def run_preflight(tmp_path):
    """Run `pytest preflight/` for real; returns a Run. `env` replaces the environment.
    Each call gets its own report dir so a later run never hides an earlier report."""
    calls = iter(range(1000))

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 180, report_dir: Path | None = None) -> Run:
        report_dir = report_dir or tmp_path / f"report-{next(calls)}"
        argv = [sys.executable, "-m", "pytest", str(CHECKS), "-p", "no:cacheprovider",
                *GATE_PLUGINS, "--rootdir", str(REPO), "--report-dir", str(report_dir), "-q",
                *args]
        proc = subprocess.run(argv, cwd=cwd or tmp_path, env=gate_env(env or base_env()),
                              capture_output=True, text=True, timeout=timeout)
        return Run(proc.returncode, proc.stdout, proc.stderr, report_dir)

    return run


# -- the faults summary line (tests/faults/) -------------------------------------------


@pytest.fixture
def fault_results(request) -> list:
    from faults.summary import RESULTS

    return request.config.stash.setdefault(RESULTS, [])


def pytest_terminal_summary(terminalreporter, config):
    from faults.summary import RESULTS, summary_counts, summary_line

    results = config.stash.get(RESULTS, [])
    if results:
        unexpected = sum(not ok for _, ok in results)
        terminalreporter.section("faults summary")
        terminalreporter.write_line(summary_line(
            summary_counts([r for r, _ in results], unexpected)))


def pytest_configure(config):
    # PREFLIGHT_SNAPSHOT_DIR=DIR records every report the tests write, normalized
    # (tests/snapshots.py), so the reports of two trees can be compared.
    if snapshots.enabled() and not config.pluginmanager.has_plugin("snapshots"):
        config.pluginmanager.register(snapshots, "snapshots")
