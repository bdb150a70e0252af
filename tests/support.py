"""Helpers the tests import: the repo's paths, a controlled environment, a finished run.
(tests/conftest.py holds only fixtures and hooks: pytest loads it, tests never import it.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    # set in the test process itself by `import deepspeed` (deepspeed/__init__.py:14,
    # os.environ.setdefault) in the oracle tests: the test order would decide it
    "PYTORCH_NVML_BASED_CUDA_CHECK",
)


# The plugins a preflight child of the tests loads: those the `preflight` command loads
# (cli._base_args: preflight itself, pytest-timeout), not every pytest plugin installed for
# this test suite; hypothesis's alone is a third of a static run's CPU. The entry shim
# (pytest_entry) stays in the path: it is what `pytest preflight/` loads.
GATE_PLUGINS = ("-p", "preflight.pytest_entry", "-p", "pytest_timeout")


def gate_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a preflight child that loads only GATE_PLUGINS."""
    return {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


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
    def report(self) -> dict[str, Any] | None:
        path = self.report_dir / "preflight-report.json"
        return json.loads(path.read_text()) if path.exists() else None

    def checks(self, check_id: str) -> list[dict[str, Any]]:
        report = self.report
        assert report is not None, f"no report written:\n{self.output[-3000:]}"
        return [c for c in report["checks"] if c["id"] == check_id]

    def one(self, check_id: str) -> dict[str, Any]:
        found = self.checks(check_id)
        assert len(found) == 1, f"{check_id}: {len(found)} results\n{self.output[-3000:]}"
        return found[0]


def produce_live(producer: Path, out_dir: Path, name: str) -> Path:
    """Runs a tests/logs/produce_*.py producer for one fixture NAME into OUT_DIR (real
    processes) and returns the log it wrote. The producer bounds its launch itself (60 s);
    past 150 s, SIGTERM makes it kill its tree."""
    proc = subprocess.Popen([sys.executable, str(producer), str(out_dir), name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.communicate(timeout=30)
        raise
    assert proc.returncode == 0, err.decode()[-2000:]
    return out_dir / f"{name}.log"


def bash_signalled(cwd: Path, find: Callable[[str, int], int | None], sig: str) -> int:
    """Real bash runs `cwd/run.sh` (output to `cwd/run.log`); once `find(log text, bash's
    pid)` names a process (polled, 20 s), another shell sends it `kill -SIG`; bash is
    waited for (20 s) and killed if still there. Returns the pid signalled."""
    log = cwd / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "run.sh"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd)
        try:
            pid = None
            deadline = time.monotonic() + 20
            while pid is None and time.monotonic() < deadline:
                pid = find(log.read_text(), proc.pid)
                time.sleep(0.05)
            assert pid is not None, log.read_text()
            subprocess.run(["kill", f"-{sig}", str(pid)], check=True, timeout=10)
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return pid
