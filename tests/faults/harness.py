"""Run the real plugin against one hostile input or injected fault and classify what
happened. Shared by tests/faults/ and benchmarks/faults_summary.py, so the summary
line is computed by running the same cases.

Every case plants a secret canary (an exported token and a .env value), runs preflight
in its own process group with a tag in its environment, and afterwards looks for:
a traceback, the canary in any output or file, a process still alive carrying the tag,
and a hang (the run outliving its bound).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
CHECKS = REPO / "preflight"
sys.path.insert(0, str(REPO / "tests"))
from support import GATE_PLUGINS, base_env, gate_env  # noqa: E402

TRACEBACK = re.compile(r"Traceback \(most recent call last\)|INTERNALERROR")


@dataclass
class Setup:
    args: list[str] = field(default_factory=list)
    env: dict[str, str | None] = field(default_factory=dict)
    interrupt_after_s: float | None = None  # a signal to the suite after this long
    interrupt_signal: int = signal.SIGINT
    interrupt_group: bool = True  # Ctrl-C / a dropped ssh reach the group; kill(1) one pid
    preexec: Callable[[], None] | None = None
    cleanup: Callable[[], None] | None = None
    report_dir: Path | None = None
    junit: bool = True
    # Secrets the case plants where no scrubber knows their value (a URL password, a
    # token shape): they must be masked by shape.
    extra_canaries: list[str] = field(default_factory=list)
    # A case's own check of the report / output: returns what is wrong, or "".
    verify: Callable[[dict, str], str] | None = None


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "bad-input" or "fault"
    build: Callable[[Path, str], Setup]  # (workdir, canary) -> Setup
    expect: str  # "usage" (exit 4), "verdict" (0/1 with a report), "no-go", "interrupted"
    bound_s: float = 60.0


@dataclass
class Result:
    case: str
    kind: str
    returncode: int | None
    outcome: str  # usage / verdict / interrupted / crash / hang
    traceback: bool
    leaks: list[str]
    leftover: list[int]
    hang: bool
    elapsed_s: float
    output: str
    wrong: str = ""  # the case's own verify, or a summary contradicting its evidence

    @property
    def ok_shape(self) -> bool:
        return not (self.traceback or self.leaks or self.leftover or self.hang)


_QUOTED_ERROR = re.compile(r"\b[A-Za-z_.]*(?:Error|Exception|Warning)\b:")
# Non-ASCII counts as part of a path: an undecodable byte is shown as U+FFFD or \xNN.
_ABS_PATH = re.compile(r"(?<![\w.~$:/*\u0080-\uffff-])/[\w.+@%\u0080-\uffff-]+"
                       r"(?:/[\w.+@%\u0080-\uffff-]+)*")


def contradictions(report: dict) -> str:
    """A summary that names a path its evidence does not show (itself or an ancestor):
    summaries state only what the evidence shows."""
    import json

    for check in report.get("checks", []):
        if check.get("outcome") not in ("failed", "passed") or not check.get("evidence"):
            continue
        shown = json.dumps(check["evidence"], ensure_ascii=False)
        # A quoted error of the tool (`RuntimeError: [/__w/pytorch/.../pair.cc:553] ...`)
        # is its words, not preflight's claim: only what precedes it is held to evidence.
        claim = _QUOTED_ERROR.split(check.get("summary", ""), maxsplit=1)[0]
        for path in _ABS_PATH.findall(claim):
            path = path.rstrip(".,;:")
            parts = path.split("/")
            ancestors = ["/".join(parts[:i]) for i in range(len(parts), 1, -1)]
            if not any(f'"{a}' in shown or f"{a}/" in shown or f" {a}" in shown
                       for a in ancestors):
                return f"{check['id']}: summary names {path}, its evidence does not"
    return ""


def _tagged(tag: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("PREFLIGHT_FAULT_TAG") == tag:
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def _left_over(tag: str, settle_s: float = 0.2) -> list[int]:
    """Processes with the tag still alive `settle_s` after the run: a grandchild killed with
    its group may take that long to be reaped. No tagged process at the first look is final
    (a process that could start one later would carry the tag itself), so the common case
    costs no wait."""
    deadline = time.monotonic() + settle_s
    found = _tagged(tag)
    while found and time.monotonic() < deadline:
        time.sleep(0.02)
        found = _tagged(tag)
    return found


def _classify(code: int | None, report_dir: Path, output: str) -> str:
    if code is None:
        return "hang"
    if code == 4:
        errors = [ln for ln in output.splitlines() if ln.startswith("ERROR:")]
        return "usage" if len(errors) == 1 else "crash"
    report = report_dir / "preflight-report.json"
    if code == 2 and report.exists() and '"complete": false' in report.read_text():
        return "interrupted"
    if code in (0, 1) and report.exists():
        return "verdict"
    return "crash"


def run_case(case: Case, workdir: Path) -> Result:
    workdir.mkdir(parents=True, exist_ok=True)
    canary = f"canary-{uuid.uuid4().hex}"
    tag = uuid.uuid4().hex
    (workdir / ".env").write_text(f"HF_TOKEN={canary}\nWANDB_API_KEY={canary}-w\n")
    setup = case.build(workdir, canary)
    report_dir = setup.report_dir or workdir / "report"
    env = gate_env(base_env(HF_TOKEN=canary, PREFLIGHT_FAULT_TAG=tag))
    for key, value in setup.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    argv = [sys.executable, "-m", "pytest", str(CHECKS), "-p", "no:cacheprovider", "-q",
            *GATE_PLUGINS, "--rootdir", str(REPO), f"--report-dir={report_dir}", *setup.args]
    if setup.junit:
        argv.append(f"--junitxml={workdir / 'junit.xml'}")
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace",
                            start_new_session=True, preexec_fn=setup.preexec)
    try:
        code, output = _finish(proc, setup, case.bound_s)
    finally:
        if setup.cleanup:
            setup.cleanup()
    elapsed = time.monotonic() - start
    leftover = _left_over(tag)
    for pid in leftover:  # started by this case: ours to clean up
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    texts = {"output": output}
    for path in [*report_dir.glob("*"), workdir / "junit.xml"]:
        if path.is_file():
            texts[path.name] = path.read_text(errors="replace")
    secrets = [canary, *setup.extra_canaries]
    leaks = [f"{name}:{secret[:12]}" for name, text in texts.items() for secret in secrets
             if secret in text]
    hang = code is None
    return Result(case.name, case.kind, code, "hang" if hang else
                  _classify(code, report_dir, output), bool(TRACEBACK.search(output)), leaks,
                  leftover, hang, round(elapsed, 2), output,
                  _wrong(setup, report_dir / "preflight-report.json", code, output))


def _finish(proc: subprocess.Popen[str], setup: Setup, bound_s: float) -> tuple[int | None, str]:
    """(exit code, output) after the case's interrupt, if any; code None: a hang, killed."""
    if setup.interrupt_after_s is not None:
        try:
            proc.wait(timeout=setup.interrupt_after_s)
        except subprocess.TimeoutExpired:
            if setup.interrupt_group:
                os.killpg(proc.pid, setup.interrupt_signal)
            else:
                os.kill(proc.pid, setup.interrupt_signal)
    try:
        output, _ = proc.communicate(timeout=bound_s)
        return proc.returncode, output
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return None, output


def _wrong(setup: Setup, report_path: Path, code: int | None, output: str) -> str:
    """What the report or the case's own verify finds wrong ("" when nothing)."""
    if report_path.is_file():
        import json

        try:
            report = json.loads(report_path.read_text(errors="replace"))
        except ValueError:
            return "the report is not JSON"
        wrong = contradictions(report)
        if not wrong and setup.verify is not None:
            wrong = setup.verify(report, output)
        return wrong
    if setup.verify is not None and code is not None and code != 4:
        return setup.verify({}, output)
    return ""
