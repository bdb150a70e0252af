"""triage on real ms-swift 4.6 logs (tests/logs/produce_swift.py made them: `swift sft` and
`swift rlhf --rlhf_type grpo` on a tiny offline Qwen2, CPU, alone and under the torchrun
that NPROC_PER_NODE makes swift start; stdout and stderr merged as `> train.log 2>&1`).
Runs that succeeded must not read as failures; each failure must name its root cause on
the right line. In-process and without ms-swift: the committed logs are the input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from preflight import triage

REAL = Path(__file__).parent / "logs" / "real"

# Runs that exited 0 with swift's `last_model_checkpoint:`: swift's trust_remote_code and
# transformers' `torch_dtype` warnings, the 340-line argument dump (with `*error*`,
# `*timeout*` argument names), tqdm bars, checkpoint saves.
OK = ["swift-sft-ok.log", "swift-sft-ok-torchrun.log", "swift-grpo-ok-torchrun.log",
      # swift logs a bad row's KeyError under "[INFO:swift] Traceback ...", warns that the
      # row is deleted and trains on (was: unknown, fatal: a success read as a failure)
      "swift-sft-ok-bad-row.log"]

# (log, cause id, confidence, line of the cause)
FAILED = [
    # swift/dataset/loader.py:92: a --dataset path that is not there (was: unknown)
    ("swift-dataset-missing.log", "launch-inputs", "certain", 443),
    # swift/utils/utils.py:615 to_abspath: a --resume_from_checkpoint dir that is not
    # there (was: unknown)
    ("swift-resume-missing.log", "launch-inputs", "certain", 31),
    # --output_dir under a file: os.makedirs in swift's argument __post_init__ (was: unknown)
    ("swift-outdir-unwritable.log", "launch-inputs", "certain", 40),
    # the same under swift's torchrun (NPROC_PER_NODE=2): both ranks' "[rankN]:" tracebacks
    ("swift-dataset-missing-torchrun.log", "launch-inputs", "certain", 394),
    ("swift-outdir-unwritable-torchrun.log", "launch-inputs", "certain", 45),
    # no row has `messages`: swift logs and drops each, then fails on the empty dataset
    # (ZeroDivisionError); the line that says why is swift's "filtered dataset length: 0"
    # (was: unknown on the first dropped row's AssertionError)
    ("swift-dataset-column.log", "swift-smoke-10", "certain", 500),
    # MASTER_PORT held by another program: torchrun's store cannot listen
    ("swift-port-held.log", "port-free", "certain", 48),
    # a 1 MB tmpfs as --output_dir: torch.save's stream fails at the first checkpoint
    ("swift-disk-full.log", "disk-space", "likely", 483),
]
# Failures no runbook names: the first fatal line, as unknown (unknown beats wrong).
UNKNOWN = [("swift-bad-arg.log", 449),
           # argparse's "sft.py: error: argument --max_steps...: invalid int value", exit 2,
           # no traceback (was: no fatal error found)
           ("swift-bad-arg-type.log", 303),
           # ... under torchrun: each rank's, then torchrun's failure table (was: fatal,
           # no cause)
           ("swift-bad-arg-type-torchrun.log", 306)]


@pytest.mark.parametrize("name", OK)
def test_a_swift_run_that_succeeded_is_not_a_failure(name):
    result = triage.triage([str(REAL / name)])
    assert (result["fatal"], result["causes"]) == (False, [])
    assert "last_model_checkpoint:" in (REAL / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(("name", "rid", "confidence", "line"), FAILED,
                         ids=[f[0] for f in FAILED])
def test_a_failed_swift_run_names_its_root_cause(name, rid, confidence, line):
    result = triage.triage([str(REAL / name)])
    assert result["fatal"] is True
    cause = result["causes"][0]
    assert (cause["id"], cause["confidence"], cause["line"]) == (rid, confidence, line), cause
    assert cause["fix"] and cause["runbook"].endswith(f"{rid}.md")


@pytest.mark.parametrize(("name", "line"), UNKNOWN, ids=[u[0] for u in UNKNOWN])
def test_a_swift_failure_no_runbook_names_is_unknown_on_its_line(name, line):
    result = triage.triage([str(REAL / name)])
    cause = result["causes"][0]
    assert (result["fatal"], cause["id"], cause["line"]) == (True, "unknown", line)


def test_a_rank_killed_mid_run_under_swifts_torchrun_is_named_with_its_signal():
    result = triage.triage([str(REAL / "swift-rank-killed.log")])
    dead = result["died_by_signal"]
    assert result["fatal"] is True
    assert (dead["rank"], dead["signal"], dead["exitcode"], dead["line"]) == ("1", "SIGKILL", -9,
                                                                              545)
    # rank 0's "Connection reset by peer" is the consequence, not a cause
    assert [c["id"] for c in dead["consequences"]] == ["collective-timeout"]


# swift's own way to log a row's exception (swift/dataset/preprocessor/core.py:251), and
# the interpreter's report of an uncaught one after a progress bar left on the line: the
# first goes on (not fatal), the second ended the run.
LOGGED_THEN_ON = """\
import logging, sys, traceback
logging.basicConfig(format="[%(levelname)s:swift] %(message)s", level=logging.INFO)
log = logging.getLogger("swift")
sys.stderr.write("Map:   0%|          | 0/4 [00:00<?, ? examples/s]")
try:
    {}["content"]
except KeyError:
    log.info(traceback.format_exc())
    log.warning("There are errors in the dataset, the data will be deleted")
print("{'loss': '6.07', 'global_step/max_steps': '10/10'}")
"""
BAR_THEN_CRASH = """\
import sys
sys.stderr.write("Map:   0%|          | 0/4 [00:00<?, ? examples/s]")
{}["content"]
"""


@pytest.mark.parametrize(("script", "fatal"), [(LOGGED_THEN_ON, False), (BAR_THEN_CRASH, True)],
                         ids=["logged-at-info-then-on", "bar-then-uncaught"])
def test_a_traceback_on_a_log_records_line_is_logged_not_the_crash(tmp_path, script, fatal):
    log = tmp_path / "train.log"
    with log.open("wb") as out:
        done = subprocess.run([sys.executable, "-c", script], stdout=out,
                              stderr=subprocess.STDOUT, timeout=60)
    assert (done.returncode != 0) is fatal
    result = triage.triage([str(log)])
    assert result["fatal"] is fatal
    if fatal:
        assert result["causes"][0]["id"] == "unknown"
        assert result["causes"][0]["match"].endswith("KeyError: 'content'")
