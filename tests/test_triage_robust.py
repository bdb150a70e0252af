"""`preflight triage` on real logs of runs that succeeded or failed for a plain reason, and
on the failure logs of tests/logs/ in the shapes they reach a person in: compressed, cut to
their last 200 lines, coloured, under tqdm bars, interleaved with other ranks' lines.

The logs of tests/logs/real/ used here were made by tests/logs/produce_noisy.py (torchrun
+ gloo with NCCL_DEBUG=INFO, LOGLEVEL=INFO, TORCH_CPP_LOG_LEVEL=INFO,
TORCH_DISTRIBUTED_DEBUG=DETAIL, warnings, a coloured tqdm bar). The transformed logs are
built in the test from the committed ones, in memory-sized pieces: no new fixtures.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from preflight import triage
from tests.test_triage import CASES, CITED, LOGS, REAL

SUCCEEDED = ["real/ok-noisy-torchrun.log", "real/ok-logged-exception.log", "real/ok-ray-job.log",
             "real/ok-http-retry.log", "real/ok-after-restart.log"]
NOT_FATAL_IDS = {"real/ok-after-restart.log": {"unknown", "collective-timeout"},
                 "real/ok-noisy-torchrun.log": {"empty-variable"},
                 "real/ok-logged-exception.log": {"unknown", "empty-variable"}}


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "preflight", "triage", *args], input=stdin,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("name", sorted(NOT_FATAL_IDS))
def test_a_run_that_succeeded_names_no_root_cause(name):
    """All exited 0. One warned 'cache file not found at out//cache/train.arrow'
    (a logging WARNING; the doubled slash is a trailing-slash OUT, no empty variable):
    triage said ROOT CAUSE empty-variable (certain), exit 1. The other logged a skipped
    row's KeyError with logger.exception: exit 1, 'unknown'. One failed its first attempt
    (rank 1's KeyError) and finished after torchrun restarted it: exit 1, 'unknown'. Now:
    no fatal error, the lines listed as not fatal."""
    result = triage.triage([str(LOGS / name)])
    assert (result["fatal"], result["causes"]) == (False, []), result["causes"][:1]
    assert {c["id"] for c in result["not_fatal"]} == NOT_FATAL_IDS[name]
    proc = run_cli(str(LOGS / name))
    out = proc.stdout.decode()
    assert proc.returncode == 0 and "no fatal error found" in out and "ROOT CAUSE" not in out
    assert "not fatal here (a warning, a retry, an exception the run logged, or a " in out


def test_a_logged_exception_is_the_cause_when_the_run_then_failed(tmp_path):
    """The same logged KeyError followed by torchrun's failure table (the run did fail):
    it is then the first error, as an unknown exception."""
    log = tmp_path / "failed.log"
    table = (REAL / "user-keyerror-logdir.log").read_text(encoding="utf-8")
    log.write_text((REAL / "ok-logged-exception.log").read_text(encoding="utf-8") + table)
    result = triage.triage([str(log)])
    first = result["causes"][0]
    assert result["fatal"] is True and (first["id"], first["match"]) == (
        "unknown", "KeyError: 'labels'")


@pytest.mark.parametrize("name", SUCCEEDED)
def test_a_run_that_succeeded_is_not_fatal(name):
    """Warnings, "error"/"timeout"/"Killed" in loss lines and paths, torchrun's and c10d's
    INFO lines, a Ray driver's task output: exit 0, no cause. urllib3's WARNING that it
    retries after 'Connection reset by peer' (a consequence line when a rank dies) read as
    'FATAL: ... only consequences were found', exit 1."""
    result = triage.triage([str(LOGS / name)])
    assert (result["fatal"], result["causes"]) == (False, [])


@pytest.mark.parametrize("name", ["real/user-keyerror-torchrun.log",
                                  "real/user-keyerror-logdir-ranks"])
def test_a_plain_user_bug_is_unknown_and_the_waiting_rank_comes_after(name):
    """Rank 1's Dataset raised KeyError (a user bug, no runbook); rank 0 then failed its
    monitoredBarrier. The KeyError is named, as no known cause, before the timeout."""
    result = triage.triage([str(LOGS / name)])
    first, *later = result["causes"]
    assert (first["id"], first["runbook"], first["check"]) == ("unknown", None, None)
    assert first["match"].endswith("KeyError: 'labels'")
    assert later and {c["id"] for c in later} == {"collective-timeout"}
    assert "collective" not in result


def test_a_ray_tasks_user_bug_is_unknown():
    """ray.get re-raises the task's KeyError as RayTaskError(KeyError) (a consequence
    line); the KeyError itself is named, as no known cause."""
    result = triage.triage([str(REAL / "user-keyerror-ray-job.log")])
    first = result["causes"][0]
    assert (first["id"], first["match"], first["runbook"]) == ("unknown", "KeyError: 'labels'",
                                                               None)


def test_a_console_without_the_ranks_output_names_the_log_dir():
    """torchrun --log-dir ranks --redirects 3: the console holds only the launcher's lines
    (its failure table); the KeyError is in ranks/.../attempt_0/1/stderr.log. Triage said
    only that the cause is not in these logs; it now names the folder torchrun wrote."""
    result = triage.triage([str(REAL / "user-keyerror-logdir.log")])
    assert result["fatal"] is True and result["causes"] == []
    assert result["log_dirs"] == ["ranks"]
    out = triage.render(result)
    assert "--log-dir ranks" in out and "preflight triage THIS_LOG ranks" in out
    both = triage.triage([str(REAL / "user-keyerror-logdir.log"),
                          str(REAL / "user-keyerror-logdir-ranks")])
    assert both["causes"][0]["file"].endswith("attempt_0/1/stderr.log")


def test_a_taken_store_port_outranks_the_other_nodes_rendezvous_timeout():
    """Node 0 cannot bind its c10d store (the port is bound by another program); node 1's
    connects are refused until its 5 s timeout, which reads as master-addr: that comes
    after, as a later error."""
    result = triage.triage([str(REAL / "port-then-rendezvous.log")])
    first, *later = result["causes"]
    assert first["id"] == "port-free" and first["match"].startswith("node0: ")
    assert later and all(c["id"] == "master-addr" and c["match"].startswith("node1: ")
                         for c in later)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_per_node_files_name_the_taken_port_before_the_other_nodes_timeout(tmp_path, order):
    """The same two nodes, each in its own file (node0.log ends with the bind failure and
    has no time stamps; node1.log starts with its client timing out): triage named node 1's
    timeout (master-addr, likely) as the root cause, whichever order the files came in."""
    merged = (REAL / "port-then-rendezvous.log").read_text(encoding="utf-8").splitlines()
    files = []
    for node in order:
        path = tmp_path / f"node{node}.log"
        path.write_text("".join(x[len("node0: "):] + "\n" for x in merged
                                if x.startswith(f"node{node}: ")))
        files.append(str(path))
    first, *later = triage.triage(files)["causes"]
    assert (first["id"], Path(first["file"]).name) == ("port-free", "node0.log")
    assert later and {c["id"] for c in later} == {"master-addr"}


def _as_received(raw: bytes) -> bytes:
    """The last 200 lines, each in ANSI colour, after a tqdm bar redrawn with \\r."""
    bar = b"".join(b"\rTrain: %3d%%|\x1b[32m##\x1b[0m | %d/100 [00:01<00:09]" % (i, i)
                   for i in (0, 50, 99)) + b"\r"
    lines = raw.split(b"\n")[-201:]
    return b"\n".join(bar + b"\x1b[1;31m" + x + b"\x1b[0m" if x else x for x in lines)


@pytest.mark.parametrize(("name", "rid", "line"), CASES, ids=[c[0] for c in CASES])
def test_a_gzipped_coloured_tail_names_the_same_cause(tmp_path, name, rid, line):
    """Before: a gzipped log read as bytes, 'no fatal error found', exit 0, for every
    cause. Now compressed logs are read through their decompressor."""
    raw = (LOGS / name).read_bytes()
    cut = max(0, raw.count(b"\n") - 200)   # lines the tail drops
    log = tmp_path / "train.log.gz"
    log.write_bytes(gzip.compress(_as_received(raw), compresslevel=1))
    cause = triage.triage([str(log)])["causes"][0]
    assert (cause["id"], cause["line"] + cut) == (rid, line), cause


def test_bz2_xz_stdin_and_a_cut_stream(tmp_path):
    raw = (REAL / "ray-path.log").read_bytes()
    for name, data in (("a.bz2", bz2.compress(raw)), ("a.xz", lzma.compress(raw))):
        (tmp_path / name).write_bytes(data)
        assert triage.triage([str(tmp_path / name)])["causes"][0]["id"] == "ray-path"
    proc = run_cli("-", "--json", stdin=gzip.compress(raw))
    assert proc.returncode == 1 and json.loads(proc.stdout)["causes"][0]["id"] == "ray-path"
    # a copy taken while the log was still being gzipped: what it holds is read
    big = (REAL / "host-limits-shm.log").read_bytes()
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(gzip.compress(big)[:-20])
    assert triage.triage([str(cut)])["causes"][0]["id"] == "host-limits"
    # gzip's magic and nothing behind it: one ERROR line, exit 4
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    bad = run_cli(str(tmp_path / "bad.gz"))
    err = bad.stderr.decode()
    assert bad.returncode == 4 and err.startswith("ERROR: ") and err.count("\n") == 1


def test_a_text_log_that_starts_with_bzh_is_read_as_text(tmp_path):
    """bzip2's magic is "BZh": a plain log whose first line starts so ("BZh9 tokenizer
    ...") was bad input ("cannot decompress: Invalid data stream", exit 4). bzip2's decoder
    also requires the block size digit and a block (or end-of-stream) header behind it; a
    real bzip2 file still decompresses, and so does an empty one (its end-of-stream
    header)."""
    raw = b"BZh9 tokenizer: vocab 32000, merges 31743\n" + (REAL / "ray-path.log").read_bytes()
    log = tmp_path / "train.log"
    log.write_bytes(raw)
    proc = run_cli(str(log), "--json")
    assert proc.returncode == 1, proc.stderr.decode()
    assert json.loads(proc.stdout)["causes"][0]["id"] == "ray-path"
    packed = tmp_path / "train.log.bz2"
    packed.write_bytes(bz2.compress(raw))
    assert triage.triage([str(packed)])["causes"][0]["id"] == "ray-path"
    (tmp_path / "empty.bz2").write_bytes(bz2.compress(b""))
    empty = triage.triage([str(tmp_path / "empty.bz2")])  # decompressed: no line, not one
    assert empty["files"][0]["lines"] == 0


@pytest.mark.parametrize("name", ["cited/resume-memory-mmf.log", "cited/resume-memory-slime.log",
                                  "cited/colocate-memory-vllm.log"])
def test_eight_ranks_interleaved_keep_the_cause_that_needs_its_traceback(tmp_path, name):
    """An OOM inside optimizer.load_state_dict is resume-memory only with the frame near
    it; with seven other ranks' lines between each of its lines the frame was 60 lines
    away and triage said cuda-oom. The window is read by the line's own source."""
    rid = next(r for n, r, _ in CASES if n == name)
    lines = (LOGS / name).read_bytes().split(b"\n")
    mixed = []
    for i, x in enumerate(lines):
        mixed.append(x)
        mixed += [b"[rank%d]: step %d loss 2.31" % (r, i) for r in range(1, 8)]
    log = tmp_path / "ranks.log"
    log.write_bytes(b"\n".join(mixed))
    assert triage.triage([str(log)])["causes"][0]["id"] == rid
    ranked = tmp_path / "ranked.log"
    ranked.write_bytes(b"\n".join(
        b"\n".join([b"[rank0]: " + x] + [b"[rank%d]: step %d" % (r, i) for r in range(1, 8)])
        for i, x in enumerate(lines)))
    assert triage.triage([str(ranked)])["causes"][0]["id"] == rid


def test_a_long_runs_warnings_do_not_hide_the_error_at_its_end(tmp_path):
    """A 500 MB log with a UserWarning every logging interval holds more warnings than the
    hits triage keeps per file (2,000): they filled the cap and the OOM at the end was not
    read ('no fatal error found', exit 0). The same shape, small: 2,001 warnings, then the
    traceback."""
    warn = (REAL / "ok-noisy-torchrun.log").read_text(encoding="utf-8").splitlines()
    line = next(x for x in warn if "FutureWarning" in x) + "\n"
    log = tmp_path / "long.log"
    log.write_text(line * (triage.MAX_HITS + 1) + (CITED / "cuda-oom-dora.log").read_text())
    cause = triage.triage([str(log)])["causes"][0]
    assert cause["id"] == "cuda-oom"


@pytest.mark.parametrize(("signal", "name", "code"), [("KILL", "SIGKILL", -9),
                                                       ("SEGV", "SIGSEGV", -11)])
def test_a_command_bash_reports_killed_by_a_signal_is_fatal(tmp_path, signal, name, code):
    """A training command the OOM killer ends prints nothing; the script's bash reports it
    ("run.sh: line 2:  457 Killed  python train.py"). Triage said 'no fatal error found',
    exit 0. Real bash, a child shell that sends itself the signal."""
    script = tmp_path / "run.sh"
    script.write_text("echo 'step 1 loss 2.31 Killed=0 eval_error 0.2'\n"
                      f"bash -c 'kill -{signal} $$'\necho \"exit status $?\"\n")
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        subprocess.run(["bash", str(script)], stdout=out, stderr=subprocess.STDOUT,
                       cwd=tmp_path, timeout=30, check=True)
    result = triage.triage([str(log)])
    death = result.get("died_by_signal")
    assert result["fatal"] is True and death is not None, log.read_text()
    assert (death["rank"], death["signal"], death["exitcode"], death["line"]) == (
        None, name, code, 2)
    assert death["command"] == f"bash -c 'kill -{signal} $$'"
    out = triage.render(result)
    assert f"FATAL: `bash -c 'kill -{signal} $$'` (pid {death['pid']}) died by {name}" in out


# Programs that logged and then ended: each log is the real interpreter's output.
LOGGED_THEN_ENDED = {
    # A training loop's INFO progress line stands right above the uncaught traceback.
    "info-then-crash": 'import logging\nlogging.basicConfig(level=logging.INFO, format='
                       '"%(asctime)s %(levelname)s %(name)s: %(message)s")\n'
                       'logging.getLogger("train").info("step 2 loss 2.3")\n'
                       'batch = {}\nbatch["input_ids"]\n',
    # logger.error, then raise: the record is right above the interpreter's traceback.
    "error-then-raise": 'import logging\nlogging.basicConfig(format='
                        '"%(asctime)s %(levelname)s %(name)s: %(message)s")\n'
                        'try:\n    open("/nonexistent/ckpt.pt")\nexcept OSError:\n'
                        '    logging.getLogger("train").error("cannot load checkpoint")\n'
                        '    raise\n',
    # A tokenizer's warning, then an uncaught KeyError, then wandb's run summary from its
    # exit handler: the warning is not what logged the traceback, and the summary is not
    # the program going on.
    "warning-then-crash-then-atexit": 'import atexit, logging, sys\nlogging.basicConfig(format='
                                      '"%(asctime)s %(levelname)s %(message)s")\n'
                                      'atexit.register(print, "wandb: Find logs at: wandb/'
                                      'run-20261201_101010-abc123/logs", file=sys.stderr)\n'
                                      'logging.warning("tokenizer has no pad token")\n'
                                      'batch = {}\nbatch["input_ids"]\n',
    # logger.error, then raise, then an exit handler's summary.
    "error-then-raise-then-atexit": 'import atexit, logging, sys\nlogging.basicConfig(format='
                                    '"%(asctime)s %(levelname)s %(message)s")\n'
                                    'atexit.register(print, "wandb: 🚀 View run dry-sun-3", '
                                    'file=sys.stderr)\n'
                                    'try:\n    open("/nonexistent/ckpt.pt")\n'
                                    'except OSError:\n'
                                    '    logging.error("cannot load checkpoint")\n    raise\n',
    # An OOM the program reports with logger.warning, then exit 1: its last line.
    "oom-warning-then-exit": 'import logging, sys\nlogging.basicConfig(format='
                             '"%(asctime)s %(levelname)s %(name)s: %(message)s")\n'
                             'logging.getLogger("train").warning("batch failed: CUDA out of '
                             'memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity '
                             'of 79.15 GiB of which 1.20 GiB is free.")\nsys.exit(1)\n',
}


@pytest.mark.parametrize("name", sorted(LOGGED_THEN_ENDED))
def test_a_log_record_that_ends_the_log_stays_fatal(name, tmp_path):
    """A warning or a traceback under a log record is not fatal only when the program went
    on: these ended there (exit 1) and were 'no fatal error found', exit 0."""
    script = tmp_path / f"{name}.py"
    script.write_text(LOGGED_THEN_ENDED[name])
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 1
    log = tmp_path / f"{name}.log"
    log.write_bytes(proc.stdout + proc.stderr)
    result = triage.triage([str(log)])
    assert result["fatal"] is True and result["causes"], result.get("not_fatal")
    assert result["causes"][0]["id"] == ("cuda-oom" if "oom" in name else "unknown")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_signal_mid_spool_removes_the_spool_dir(sig, tmp_path):
    """SIGTERM or SIGHUP while triage spools its input (stdin here; a decompressed gzip log
    the same way) killed it by their default action and left preflight-triage-*/ with the
    spooled text in $TMPDIR (a 20 MB gzip log: 180 MB). Now: exit 2, one line, dir gone."""
    import os
    import signal
    import time

    spool = tmp_path / "tmp"
    spool.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "preflight", "triage", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(spool)})
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"[rank0]: RuntimeError: CUDA error: out of memory\n" * 100)
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not list(spool.glob("preflight-triage-*/stdin.log")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2 and err.decode().strip() == "ERROR: preflight triage: interrupted"
    assert list(spool.iterdir()) == []


def test_a_failed_torchrun_followed_by_one_that_finished_stays_fatal(tmp_path):
    """`torchrun train.py; torchrun eval.py` in one log: the first failed (rank 1's
    KeyError, its failure table), the second finished (LOGLEVEL=INFO: 'WorkerState.
    SUCCEEDED'). Read as a failure torchrun restarted from: 'no fatal error found', exit 0.
    Only a restart ('will restart worker group') that the success follows recovers."""
    log = tmp_path / "train-then-eval.log"
    log.write_text((REAL / "user-keyerror-torchrun.log").read_text(encoding="utf-8")
                   + (REAL / "ok-noisy-torchrun.log").read_text(encoding="utf-8"))
    result = triage.triage([str(log)])
    first = result["causes"][0]
    assert result["fatal"] is True and (first["id"], first["match"]) == (
        "unknown", "[rank1]: KeyError: 'labels'")


def test_a_compressed_log_is_not_spooled_into_a_full_tmpdir(tmp_path, monkeypatch, capsys):
    """A log directory's compressed files are all decompressed into $TMPDIR before the
    scan: a large one filled the node's /tmp, and a write that then failed (ENOSPC) was
    taken for a cut stream, its text so far judged as the whole log. Now it stops while
    KEEP_FREE is still free: one ERROR line naming the decompressor to use elsewhere,
    exit 4, nothing left in $TMPDIR."""
    import os

    log = tmp_path / "train.log.gz"
    log.write_bytes(gzip.compress((REAL / "user-keyerror-torchrun.log").read_bytes()))
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    monkeypatch.setattr(triage.tempfile, "tempdir", None)  # re-read $TMPDIR
    st = os.statvfs(spool)
    monkeypatch.setattr(triage, "KEEP_FREE", st.f_bavail * st.f_frsize + (1 << 30))
    assert triage.main([str(log)]) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ERROR: {log}: no room for its decompressed text in {spool} ")
    assert f"zcat {log} > DIR_WITH_ROOM/log && preflight triage DIR_WITH_ROOM/log" in err
    assert list(spool.iterdir()) == []


def test_stdin_is_not_spooled_into_a_full_tmpdir(tmp_path):
    """`preflight triage -` spools stdin into $TMPDIR: with no room there it was a
    traceback (an OSError from the write); now one ERROR line, exit 4, nothing left."""
    import os

    spool = tmp_path / "tmp"
    spool.mkdir()
    st = os.statvfs(spool)
    code = (f"from preflight import triage; triage.KEEP_FREE = {st.f_bavail * st.f_frsize}"
            " + (1 << 30); raise SystemExit(triage.main(['-']))")
    proc = subprocess.run([sys.executable, "-c", code], input=b"a log line\n" * 1000,
                          capture_output=True, timeout=60, env={**os.environ,
                                                                "TMPDIR": str(spool)})
    err = proc.stderr.decode().strip()
    assert proc.returncode == 4 and "Traceback" not in err, err
    assert err.startswith(f"ERROR: <stdin>: no room to hold it in {spool} "), err
    assert list(spool.iterdir()) == []


# Real bash 5.2, non-interactive, no trap: what it prints for a job a signal ended. One
# branch of jobs.c notify_of_job_status (bash 5.2 jobs.c:4310) prints "NAME: line N:  PID
# Killed  CMD" for a foreground command and for a background job alike (N: the line bash
# was at when it noticed); SIGTERM is not reported for either (DONT_REPORT_SIGTERM,
# config-top.h), except a foreground one as a bare "Terminated" (jobs.c:4313) and, under
# `set -m`, a background one in the job-report form "[1]+  Terminated  CMD" (jobs.c:4324).
BASH_RUNS = {
    # a helper the script stops with kill -9 after the work finished, under set -x
    "helper-kill9-xtrace": ("set -x\nsleep 100 & HPID=$!\necho 'step 1 loss 2.31'\n"
                            "echo 'training finished'\nkill -9 $HPID\nsleep 0.3\necho done\n"),
    # the same with a PS4 that names the line, the signal by name, from a function
    "helper-kill-fn-ps4": ("PS4='+ ${BASH_SOURCE}:${LINENO}: '\nset -x\n"
                           "stop() { kill -s KILL \"$1\"; }\nsleep 100 & HPID=$!\n"
                           "echo 'step 1 loss 2.31'\nstop $HPID\nwait $HPID\necho done\n"),
    # job control on: the helper's SIGTERM in the job-report form
    "helper-term-set-m": ("set -m\nsleep 100 & HPID=$!\necho 'step 1 loss 2.31'\n"
                          "kill $HPID\nsleep 0.3\necho done\n"),
}


@pytest.mark.parametrize("name", sorted(BASH_RUNS))
def test_a_helper_the_script_killed_itself_is_not_fatal(name, tmp_path):
    """`helper & HPID=$!; ...; kill -9 $HPID` under `set -x`: bash reports the helper
    ("run.sh: line 6:  6172 Killed  sleep 100") exactly as it reports a command the OOM
    killer ended. Triage said FATAL: `sleep 100` died by SIGKILL, exit 1, on a run that
    finished. The xtrace's `+ kill -9 6172` names that pid: not a failure, exit 0."""
    script = tmp_path / "run.sh"
    script.write_text(BASH_RUNS[name])
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        subprocess.run(["bash", "run.sh"], stdout=out, stderr=subprocess.STDOUT,
                       cwd=tmp_path, timeout=30, check=True)
    text = log.read_text()
    assert text.rstrip().endswith("done"), text
    result = triage.triage([str(log)])
    assert (result["fatal"], result["causes"]) == (False, []), text
    assert "died_by_signal" not in result
    if "term" in name:  # nothing reads as a death: no report of a kill either
        assert "[1]+  Terminated" in text and "killed_by_script" not in result
        return
    (killed,) = result["killed_by_script"]
    report = text.splitlines()[killed["line"] - 1]
    assert report.startswith("run.sh: line ") and f" {killed['pid']} Killed " in report
    assert (killed["signal"], killed["command"]) == ("SIGKILL", "sleep 100")
    kill = text.splitlines()[killed["kill"]["line"] - 1]
    assert kill.startswith("+") and kill.endswith(f"kill {'-s KILL' if 'fn' in name else '-9'} "
                                                  f"{killed['pid']}"), kill
    proc = run_cli(str(log))
    out = proc.stdout.decode()
    assert proc.returncode == 0 and "no fatal error found" in out, out
    assert f"not a failure: `sleep 100` (pid {killed['pid']}) died by SIGKILL" in out


def test_a_killed_helper_does_not_hide_the_command_that_died(tmp_path):
    """The script kill -9s its helper (set -x), then its main command dies by SIGKILL: the
    helper is not a failure, the main command is, by pid. Without set -x the helper's line
    is bash's same report: it stays fatal (the text says why it cannot tell)."""
    body = ("sleep 100 & HPID=$!\nsleep 0.2\nkill -9 $HPID\nsleep 0.3\n"
            "bash -c 'kill -KILL $$'\necho \"exit status $?\"\n")
    results = {}
    for xtrace in ("set -x\n", ""):
        script = tmp_path / "run.sh"
        script.write_text(xtrace + body)
        log = tmp_path / "run.log"
        with open(log, "wb") as out:
            subprocess.run(["bash", "run.sh"], stdout=out, stderr=subprocess.STDOUT,
                           cwd=tmp_path, timeout=30, check=True)
        results[xtrace] = (triage.triage([str(log)]), log.read_text())
    traced, text = results["set -x\n"]
    death, (helper,) = traced["died_by_signal"], traced["killed_by_script"]
    assert traced["fatal"] is True and death["command"] == "bash -c 'kill -KILL $$'", text
    assert helper["command"] == "sleep 100" and helper["pid"] != death["pid"]
    plain, text = results[""]
    reports = [x for x in text.splitlines() if " Killed " in x]
    form = r"run\.sh: line \d+: +\d+ Killed +\S"
    assert len(reports) == 2 and all(re.match(form, x) for x in reports), text  # one form
    assert plain["fatal"] is True and plain["died_by_signal"]["command"] == "sleep 100"
    assert "killed_by_script" not in plain
    assert "bash prints the same line for a background job" in triage.render(plain)


# Two programs, one log (a script without `set -e`, or two ranks on one console): the first
# logs an ERROR record and then ends on an exception, or logs the exception and goes on;
# the second, another process, prints on. Each is the real interpreter's output.
FORMAT = ('import logging, sys\nlogging.basicConfig(level=logging.INFO, format='
          '"%(asctime)s %(levelname)s %(name)s: %(message)s")\nlog = logging.getLogger("prep")\n')
PRINTS_ON = FORMAT + ('for step in range(3):\n'
                      '    log.info("step %d loss %.2f", step, 2.3 - step / 10)\n')
TWO_PROGRAMS = {
    # logger.error, then the uncaught KeyError from main(): sys.excepthook's report starts
    # at the script's <module> frame
    "error-then-uncaught": (FORMAT + 'def main():\n    shards = {"shard-0": [1]}\n'
                            '    log.error("shard-3 is missing from the index")\n'
                            '    return shards["shard-3"]\nmain()\n', True),
    # ... after init_process_group: torch's excepthook writes "[rank0]: " before each line
    "error-then-uncaught-rank": (FORMAT + 'import torch.distributed as dist\n'
                                 'dist.init_process_group("gloo", store=dist.FileStore('
                                 'sys.argv[1], 1), rank=0, world_size=1)\n'
                                 'log.error("shard-3 is missing from the index")\n'
                                 'print({"shard-0": [1]}["shard-3"])\n', True),
    # logger.exception in the loop that skips the row, then on (rows 2, 3): not fatal
    "logged-in-loop-then-on": (FORMAT + 'def main():\n    for i in range(4):\n        try:\n'
                               '            {"text": i}["labels"]\n        except KeyError:\n'
                               '            log.exception("row %d has no labels, skipped", i)\n'
                               '            continue\nmain()\n', False),
    # ... the same under torch.distributed: logging's traceback has no [rank0]: prefix
    "logged-rank-then-on": (FORMAT + 'import torch.distributed as dist\n'
                            'dist.init_process_group("gloo", store=dist.FileStore('
                            'sys.argv[1], 1), rank=0, world_size=1)\ndef main():\n'
                            '    try:\n        {"text": 0}["labels"]\n    except KeyError:\n'
                            '        log.exception("row 0 has no labels, skipped")\n'
                            '    log.info("row 1 ok")\nmain()\ndist.destroy_process_group()\n',
                            False),
}


@pytest.mark.parametrize("name", sorted(TWO_PROGRAMS))
def test_an_uncaught_traceback_under_an_error_record_is_fatal(name, tmp_path):
    """An ERROR record, then the interpreter's report of the exception that ended the
    process, then another process's lines: read as an exception the program logged and went
    on after ('no fatal error found', exit 0). The report starts at the program's outermost
    frame, or carries torch's [rank0]: prefix its record has not, and the lines after it
    are not its own: fatal. A traceback logger.exception printed in a function, followed by
    the same program's lines, stays not fatal."""
    script, fatal = TWO_PROGRAMS[name]
    (tmp_path / "first.py").write_text(script)
    (tmp_path / "second.py").write_text(PRINTS_ON)
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        subprocess.run(["bash", "-c", f'"{sys.executable}" first.py store; '
                        f'"{sys.executable}" second.py'], stdout=out, stderr=subprocess.STDOUT,
                       cwd=tmp_path, timeout=120, check=True)
    text = log.read_text()
    assert "Traceback (most recent call last):" in text and " ERROR prep: " in text, text
    assert text.rstrip().endswith("step 2 loss 2.10"), text
    result = triage.triage([str(log)])
    assert result["fatal"] is fatal, text
    if fatal:
        first = result["causes"][0]
        assert (first["id"], first["match"].removeprefix("[rank0]: ")) == (
            "unknown", "KeyError: 'shard-3'"), first
    else:
        assert result["causes"] == [] and {c["id"] for c in result["not_fatal"]} == {"unknown"}


# A flat training script (no main(): the loop at module level, as many research scripts are)
# that logs a bad row with logger.exception and goes on, run alone (`python train.py >
# train.log 2>&1`, exit 0): logging's traceback starts at the handler's frame, here
# <module>, exactly as sys.excepthook's report of an uncaught exception does, and the lines
# after it are unprefixed. b865e8d's OUTERMOST rule read it as fatal (exit 1, "FIRST FATAL
# ERROR ... KeyError"). What tells it from error-then-uncaught above (another program with
# the same logger and format printing on): its logger wrote records before the ERROR
# record and goes on with new ones after the traceback (triage._same_program_on).
FLAT_LOGGED = FORMAT.replace('"prep"', '"train"') + (
    'rows = [{"text": "a", "labels": 1}, {"text": "b"}, {"text": "c", "labels": 0}]\n'
    'for i, row in enumerate(rows):\n    try:\n        y = row["labels"]\n'
    '    except KeyError:\n        log.exception("row %d has no labels, skipped", i)\n'
    '        continue\n    log.info("step %d loss %.2f", i, 2.3 - i / 10)\nlog.info("done")\n')


def test_a_flat_script_that_logs_an_exception_and_goes_on_is_not_fatal(tmp_path):
    (tmp_path / "train.py").write_text(FLAT_LOGGED)
    log = tmp_path / "train.log"
    with open(log, "wb") as out:
        done = subprocess.run([sys.executable, "train.py"], stdout=out,
                              stderr=subprocess.STDOUT, cwd=tmp_path, timeout=60, check=False)
    text = log.read_text()
    assert done.returncode == 0 and 'in <module>' in text and text.rstrip().endswith(
        "INFO train: done"), text
    result = triage.triage([str(log)])
    assert result["fatal"] is False and result["causes"] == [], result["causes"]
    assert [c["id"] for c in result["not_fatal"]] == ["unknown"]


# torchrun at its default log level restarting its workers (--max-restarts 1): rank 1 dies
# by a signal in the first attempt (or in every attempt). torch 2.13's agent logs the
# restart and the success at INFO only (agent/server/api.py:942, :932): the console shows
# the failed attempt (multiprocessing/api.py:1002, :1028) and then the new workers' lines,
# or, when no attempt is left, the ChildFailedError table.
FLAKY_WORKER = '''import os, signal, sys, time
attempt = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
rank = int(os.environ["RANK"])
print(f"rank {rank} attempt {attempt} start", flush=True)
time.sleep(0.5)
if rank == 1 and (attempt == 0 or sys.argv[1] == "always"):
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))
time.sleep(0.5)
print(f"rank {rank} attempt {attempt} done", flush=True)
'''


@pytest.mark.parametrize("sig,dies", [("SIGTERM", "once"), ("SIGKILL", "once"),
                                      ("SIGTERM", "always")])
def test_a_torchrun_restart_at_the_default_log_level(sig, dies, tmp_path):
    """Recovered (rc 0): 'FATAL: the run failed, but only consequences were found', exit 1,
    since only LOGLEVEL=INFO's 'will restart worker group' counted as a restart. Now no
    fatal error. Dying in every attempt (rc 1) stays fatal: the rank died by the signal."""
    pytest.importorskip("torch")
    (tmp_path / "w.py").write_text(FLAKY_WORKER)
    log = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items()
           if k not in ("LOGLEVEL", "TORCH_CPP_LOG_LEVEL")}
    with open(log, "wb") as out:
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                               "2", "--max-restarts", "1", "--monitor-interval", "0.2",
                               "--master-addr", "127.0.0.1", "--master-port", "0", "w.py",
                               dies, sig], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                              env={**env, "GLOO_SOCKET_IFNAME": "lo",
                                   "TMPDIR": str(tmp_path)},  # torchrun's torchelastic_* dirs
                              timeout=120)
    text = log.read_text()
    assert done.returncode == (0 if dies == "once" else 1), text
    assert "will restart worker group" not in text and "rank 0 attempt 1 start" in text, text
    assert text.count("failed (exitcode: ") == (1 if dies == "once" else 2), text
    result = triage.triage([str(log)])
    if dies == "once":
        assert (result["fatal"], result["causes"]) == (False, []), text
        assert "died_by_signal" not in result
        (recovered,) = result["recovered"]
        assert "failed (exitcode: " in text.splitlines()[recovered["line"] - 1]
        # ... but not a torchrun that failed before it in the same log
        both = tmp_path / "train-then-flaky.log"
        both.write_text((REAL / "user-keyerror-torchrun.log").read_text(encoding="utf-8")
                        + text)
        first = triage.triage([str(both)])["causes"][0]
        assert (first["id"], first["match"]) == ("unknown", "[rank1]: KeyError: 'labels'")
    else:
        assert result["fatal"] is True and result["died_by_signal"]["signal"] == sig, text
        assert result["died_by_signal"]["rank"] == "1" and "recovered" not in result


# What else stands around an unprefixed traceback from <module> under an ERROR record, each
# a real run: (the shell command, whether the log is fatal). `FORMAT` + a logger "train".
TRAIN = FORMAT.replace('"prep"', '"train"')
CRASH = ('log.info("loading shards from the index")\nif sys.argv[1] == "bad":\n'
         '    log.error("shard-3 is missing from the index")\n'
         '    print({"shard-0": [1]}["shard-3"])\n'
         'for step in range(2):\n    log.info("step %d loss %.2f", step, 2.3 - step / 10)\n')
AROUND = {
    # the same script run twice (no `set -e`): the first run logged, erred and crashed,
    # the second starts over with the same first record: fatal
    "same-script-twice": ({"run.py": TRAIN + CRASH}, "{py} run.py bad; {py} run.py good", True),
    # a flat script under a tqdm bar (stderr, \r-drawn, the records written over it):
    # logger.exception of a bad row, then on to the end: not fatal
    "flat-under-tqdm": ({"run.py": TRAIN + (
        'from tqdm import tqdm\nrows = [{"labels": 1}, {}, {"labels": 0}]\n'
        'for i, row in enumerate(tqdm(rows, desc="train", mininterval=0)):\n    try:\n'
        '        y = row["labels"]\n    except KeyError:\n'
        '        log.exception("row %d has no labels, skipped", i)\n        continue\n'
        '    log.info("step %d loss %.2f", i, 2.3 - i / 10)\nlog.info("done")\n')},
        "{py} run.py", False),
    # two ranks under torchrun, one logger, no rank prefix (no process group: torch's
    # excepthook prefixes nothing): rank 1 logs, errs and crashes; rank 0 logs on until
    # torchrun (polling each second) stops it, then its failure table: fatal, the KeyError
    # first
    "two-ranks-one-logger": ({"run.py": TRAIN + (
        'import os, time\nrank = int(os.environ["RANK"])\nlog.info("rank %d loading", rank)\n'
        'time.sleep(0.3 * rank)\nif rank == 1:\n    log.error("shard-3 is missing")\n'
        '    print({"shard-0": [1]}["shard-3"])\nfor step in range(60):\n'
        '    log.info("step %d", step)\n    time.sleep(0.05)\n')},
        "{py} -m torch.distributed.run --nproc-per-node 2 --master-port 0 "
        "--monitor-interval 1 run.py", True),
    # known limits: another program whose logger and format are the first's, after it
    # logged, erred and crashed (two scripts' getLogger(__name__), "__main__"); an atexit
    # handler of the crashed program logging through its logger: read as going on
    "two-scripts-main-logger": ({"prep.py": TRAIN.replace('"train"', '__name__') + CRASH,
                                 "train.py": TRAIN.replace('"train"', '__name__')
                                 + 'log.info("step 0 loss 2.30")\n'},
                                "{py} prep.py bad; {py} train.py", True),
    "atexit-after-crash": ({"run.py": TRAIN + 'import atexit\n'
                            'atexit.register(log.info, "shut down")\n' + CRASH},
                           "{py} run.py bad", True),
}
LIMITS = {"two-scripts-main-logger", "atexit-after-crash"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(
    strict=True, reason="known limit: the same logger and format, another program")) if n in
    LIMITS else n for n in sorted(AROUND)])
def test_what_stands_around_an_outermost_traceback_under_an_error_record(name, tmp_path):
    pytest.importorskip("torch" if "ranks" in name else "tqdm")
    files, command, fatal = AROUND[name]
    for file, text in files.items():
        (tmp_path / file).write_text(text)
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        subprocess.run(["bash", "-c", command.format(py=f'"{sys.executable}"')], stdout=out,
                       stderr=subprocess.STDOUT, cwd=tmp_path, timeout=120, check=False,
                       env={**os.environ, "TMPDIR": str(tmp_path)})  # torchrun's temp dirs
    text = log.read_text()
    assert "in <module>" in text and "Traceback (most recent call last):" in text, text
    result = triage.triage([str(log)])
    assert result["fatal"] is fatal, text
    first = (result["causes"] or result.get("not_fatal"))[0]
    assert first["id"] == "unknown" and first["match"].startswith("KeyError: "), (first, text)
