"""Shared helpers: run the real plugin in a subprocess against a controlled environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import snapshots

REPO = Path(__file__).resolve().parent.parent
CHECKS = REPO / "preflight"
FIXTURES = REPO / "fixtures"

# Variables the checks read: tests start without them so the machine's own settings
# never decide a test.
CONTROLLED = (
    "MASTER_PORT", "MASTER_ADDR", "CUDA_HOME", "CUDA_PATH", "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV", "HF_ENDPOINT", "HF_HUB_OFFLINE", "NCCL_SOCKET_IFNAME",
    "WANDB_KEY", "WANDB_API_KEY", "WANDB_MODE", "PET_MASTER_PORT", "NPROC_PER_NODE",
    "NNODES", "LOCAL_RANK", "WORLD_SIZE", "RANK", "TORCHELASTIC_RUN_ID",
    "CUDA_VISIBLE_DEVICES", "USE_LIBUV",
)


def base_env(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in CONTROLLED and not k.startswith(("PREFLIGHT_", "PYTEST_"))}
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    report_dir: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def report(self) -> dict | None:
        path = self.report_dir / "preflight-report.json"
        return json.loads(path.read_text()) if path.exists() else None

    def checks(self, check_id: str) -> list[dict]:
        report = self.report
        assert report is not None, f"no report written:\n{self.output[-3000:]}"
        return [c for c in report["checks"] if c["id"] == check_id]

    def one(self, check_id: str) -> dict:
        found = self.checks(check_id)
        assert len(found) == 1, f"{check_id}: {len(found)} results\n{self.output[-3000:]}"
        return found[0]


@pytest.fixture
def run_preflight(tmp_path):
    """Run `pytest preflight/` for real; returns a Run. `env` replaces the environment.
    Each call gets its own report dir so a later run never hides an earlier report."""
    calls = iter(range(1000))

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 180, report_dir: Path | None = None) -> Run:
        report_dir = report_dir or tmp_path / f"report-{next(calls)}"
        argv = [sys.executable, "-m", "pytest", str(CHECKS), "-p", "no:cacheprovider",
                "--rootdir", str(REPO), "--report-dir", str(report_dir), "-q", *args]
        proc = subprocess.run(argv, cwd=cwd or tmp_path, env=env or base_env(),
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
