"""`preflight triage` on runs stopped from outside (runbook job-stopped): torchrun's agent
getting SIGTERM, SIGINT or SIGHUP, a bash script's foreground command getting SIGTERM or
SIGHUP (real torchrun and bash: tests/logs/produce_stopped.py), and a real Slurm 22.05.8
cancelling the job at its time limit, on scancel, on preemption, and counting a cgroup OOM
kill (tests/logs/produce_slurm.py). Before: "FATAL: the run failed, but only consequences
were found ... the cause is not in these logs". The Slurm lines no captured log holds
(25.05's `DUE to SIGNAL`, node failure, requeue, 23.02's `oom_kill event`, task failure)
are Slurm's format strings (src/slurmd/slurmstepd/req.c:1122-1150,
src/plugins/task/cgroup/task_cgroup_memory.c:291 at SchedMD/slurm 284c3b95), put into a
real log in place of its own line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import bash_signalled, produce_live

from preflight import triage

REAL = Path(__file__).parent / "logs" / "real"

# (log, root-cause line, signal, reason, launcher pid, Slurm job id)
STOPPED = [
    ("job-stopped-torchrun-sigterm.log", 9, "SIGTERM", "signal", 7614, None),
    ("job-stopped-torchrun-sigint.log", 9, "SIGINT", "signal", 7775, None),
    ("job-stopped-torchrun-sighup.log", 9, "SIGHUP", "signal", 7901, None),
    ("job-stopped-torchrun-tee.log", 9, "SIGTERM", "signal", 8127, None),
    ("job-stopped-torchrun-logdir.log", 7, "SIGTERM", "signal", 8282, None),
    # an earlier torchrun in the log closed its workers to restart them: not what stopped
    # this one 24 s later (was "FATAL: ... only consequences were found")
    ("job-stopped-second-torchrun.log", 94, "SIGTERM", "signal", 28645, None),
    ("job-stopped-bash.log", 5, "SIGTERM", "signal", None, None),
    ("job-stopped-bash-hup.log", 5, "SIGHUP", "signal", None, None),
    ("job-stopped-slurm-time-limit.log", 10, None, "time_limit", None, "7"),
    ("job-stopped-slurm-step.log", 11, "SIGTERM", "time_limit", 13955, "8"),
    ("job-stopped-slurm-scancel.log", 10, None, "cancelled", None, "9"),
    ("job-stopped-slurm-preemption.log", 10, None, "preemption", None, "10"),
    ("job-stopped-slurm-oom.log", 51, None, "oom_kill", None, "12"),
    # the launch script's own `timeout 20 torchrun ...` (TERM): torchrun's report, no word
    # of timeout; `timeout -s KILL 20 ...`, `timeout -k 3 8 ...`: bash's report of timeout
    # Killed (tests/test_triage_bounds.py)
    ("job-stopped-timeout-term.log", 10, "SIGTERM", "signal", 20745, None),
    ("job-stopped-timeout-kill.log", 10, "SIGKILL", "timeout", None, None),
    ("job-stopped-timeout-kill-after.log", 6, "SIGKILL", "timeout", None, None),
]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "preflight", "triage", *args], text=True,
                          capture_output=True, timeout=120, env=env)


@pytest.mark.parametrize(("name", "line", "sig", "reason", "pid", "job"), STOPPED,
                         ids=[s[0] for s in STOPPED])
def test_a_run_stopped_from_outside_names_the_stop(name, line, sig, reason, pid, job,
                                                   monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    result = triage.triage([str(REAL / name)])
    cause = result["causes"][0]
    assert (result["fatal"], cause["id"], cause["line"]) == (True, "job-stopped", line), cause
    stopped = result["stopped"]
    assert (stopped["signal"], stopped["reason"], stopped["launcher_pid"], stopped["job_id"]) \
        == (sig, reason, pid, job), stopped
    assert cause["fix"] and cause["check"] is None
    # what to run is commands, each a line bash parses; the words are in `why`
    assert stopped["commands"] and stopped["why"]
    for command in stopped["commands"]:
        done = subprocess.run(["bash", "-n"], input=command, text=True, capture_output=True,
                              timeout=30, check=False)
        assert done.returncode == 0 and not re.search(r"<[a-z]", command), command
    if job:
        assert stopped["commands"][0].startswith(f"sacct -j {job} -o JobID,")
    if pid:
        assert f"torchrun's agent (pid {pid}) got {sig} from outside the job" in stopped["what"]


def test_a_live_torchrun_given_sigterm_reads_as_the_committed_log(tmp_path, monkeypatch):
    """Real torchrun (2 gloo ranks training on), a real SIGTERM to its pid
    (tests/logs/produce_stopped.py, bounded, its tree killed): the same root cause as the
    committed log, and the pid named is the one the agent printed."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    name = "job-stopped-torchrun-sigterm"
    log = produce_live(REAL.parent / "produce_stopped.py", tmp_path, name)
    text = log.read_text()
    live = triage.triage([str(log)])
    kept = triage.triage([str(REAL / f"{name}.log")])
    agent = int(re.search(r"SignalException: Process (\d+) got signal: 15", text).group(1))
    assert live["stopped"]["launcher_pid"] == agent
    for result in (live, kept):
        assert result["causes"][0]["id"] == "job-stopped"
        assert "Received 15 death signal" in result["causes"][0]["match"]
        assert (result["stopped"]["signal"], result["stopped"]["reason"]) == ("SIGTERM", "signal")


def test_the_text_says_who_was_stopped_by_what_and_how_to_find_out(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    proc = run_cli(str(REAL / "job-stopped-torchrun-sigterm.log"),
                   env={k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"})
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "ROOT CAUSE: job-stopped (certain)" in out
    assert ("stopped: torchrun's agent (pid 7614) got SIGTERM from outside the job and "
            "stopped its workers") in out
    assert "why: SIGTERM is sent by a scheduler (time limit, preemption, scancel)" in out
    finds = out.split("find out which:\n", 1)[1].split("\n  context:", 1)[0].splitlines()
    assert [x.strip() for x in finds] == [
        'sacct -u "$USER" -S now-2days -o JobID,JobName,State,Elapsed,Timelimit',
        "last -x -n 5 shutdown reboot",
        "journalctl -k --since yesterday | grep -iE 'oom|killed process'"]
    assert "only consequences were found" not in out
    slurm = run_cli(str(REAL / "job-stopped-slurm-time-limit.log")).stdout
    assert "stopped: Slurm cancelled JOB 7 on node-a due to its time limit" in slurm
    assert "    sacct -j 7 -o JobID,JobName,State,ExitCode,Elapsed,Timelimit,MaxRSS,ReqMem" in slurm
    assert "job ids: 7" in slurm


@pytest.mark.parametrize("name", ["job-stopped-torchrun-sigterm.log",
                                  "job-stopped-torchrun-tee.log", "job-stopped-timeout-term.log"])
def test_the_agents_signal_exception_is_the_same_stop_not_a_later_error(name):
    """torchrun's agent prints "Received 15 death signal" and, once its workers are closed,
    the SignalException of the same signal: one stop. It was listed again under later
    errors; it stays among the stop's `lines`."""
    result = triage.triage([str(REAL / name)])
    pid = result["stopped"]["launcher_pid"]
    assert not [c for c in result["causes"][1:] if f"Process {pid} got signal" in c["match"]]
    assert any(f"Process {pid} got signal" in x["match"] for x in result["stopped"]["lines"])
    assert "later errors" not in triage.render(result)


def test_two_nodes_logs_joined_without_labels_name_each_nodes_stop():
    """Real torchrun, two nodes (--nnodes 2) on one box, node 0's log then node 1's
    (tests/logs/produce_stopped.py). Both agents got SIGTERM at once: node 1's stop stands
    after node 0's closing lines, 6 ms later, and read as a launcher node 0 had closed (a
    nested one): it was dropped. node 0's run had ended (its SignalException) before it:
    not a closing of node 0's. Only node 1 stopped: node 0's ranks failed on the closed
    connections, its agent closed the other rank 2 s later; node 1's stop is the cause
    (a closing stamped after a stop did not cause it)."""
    both = triage.triage([str(REAL / "job-stopped-both-nodes-concat.log")])
    assert [(c["id"], c["line"]) for c in both["causes"]] == [("job-stopped", 9),
                                                              ("job-stopped", 47)]
    assert [x["line"] for x in both["stopped"]["lines"]] == [9, 40, 47, 78]
    assert "torchrun's agents (pids 1061, 1063: one per node or launch) got SIGTERM" in \
        both["stopped"]["what"]
    assert both["stopped"]["launcher_pid"] == 1061
    second = triage.triage([str(REAL / "job-stopped-second-node-concat.log")])
    assert (second["causes"][0]["id"], second["causes"][0]["line"]) == ("job-stopped", 74)
    assert second["stopped"]["launcher_pid"] == 32756
    assert {c["id"] for c in second["causes"][1:]} == {"collective-timeout"}


def test_the_slurm_job_id_of_the_environment_is_used_and_said(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    result = triage.triage([str(REAL / "job-stopped-torchrun-sigterm.log")])
    stopped = result["stopped"]
    assert (stopped["job_id"], stopped["job_id_from"]) == ("4242", "environment")
    assert stopped["commands"][0].startswith("sacct -j 4242 ")
    assert "is this shell's $SLURM_JOB_ID, not read from the logs" in triage.render(result)
    # a log that names its job wins over the environment
    slurm = triage.triage([str(REAL / "job-stopped-slurm-scancel.log")])["stopped"]
    assert (slurm["job_id"], slurm["job_id_from"]) == ("9", "log")


def test_the_slurm_oom_kill_names_the_rank_torchrun_saw_die():
    result = triage.triage([str(REAL / "job-stopped-slurm-oom.log")])
    stopped = result["stopped"]
    assert stopped["oom_kills"] == 1 and "died_by_signal" not in result
    assert "rank 1 died by SIGKILL (exitcode -9)" in stopped["what"]
    assert "more host memory than its cgroup allows" in stopped["why"]
    assert any(c.startswith("dmesg -T") for c in stopped["commands"])


def test_a_console_and_its_log_dir_name_the_stop():
    result = triage.triage([str(REAL / "job-stopped-torchrun-logdir.log"),
                            str(REAL / "job-stopped-torchrun-logdir-ranks")])
    cause = result["causes"][0]
    assert (cause["id"], cause["line"]) == ("job-stopped", 7)
    assert result["stopped"]["launcher_pid"] == 8282 and "log_dirs" not in result


@pytest.mark.parametrize("name", ["job-stopped-after-error.log",
                                  "job-stopped-slurm-after-error.log"])
def test_an_error_before_the_stop_is_the_root_cause(name):
    """Rank 1's KeyError left it hanging (a non-daemon thread) until the job was stopped:
    the KeyError is the cause, the stop its consequence."""
    result = triage.triage([str(REAL / name)])
    lines = (REAL / name).read_text().splitlines()
    cause = result["causes"][0]
    assert cause["id"] == "unknown" and cause["match"] == "[rank1]: KeyError: 'labels'"
    assert lines[cause["line"] - 1] == cause["match"]
    later = [c for c in result["causes"][1:] if c["id"] == "job-stopped"]
    assert later and all(c["line"] > cause["line"] for c in later)
    assert "stopped" not in result


def test_an_error_in_another_file_without_comparable_times_comes_first(tmp_path):
    rank = tmp_path / "rank1.log"
    rank.write_text("\n".join(x for x in (REAL / "job-stopped-after-error.log").read_text()
                              .splitlines() if x.startswith("[rank1]:")) + "\n")
    result = triage.triage([str(REAL / "job-stopped-torchrun-sigterm.log"), str(rank)])
    assert [c["id"] for c in result["causes"][:2]] == ["unknown", "job-stopped"]


def test_a_worker_torchrun_closed_is_a_consequence():
    """torchrun closing rank 0 (SIGTERM to its process group) after rank 1's KeyError: the
    KeyError is the cause; nothing stopped the job from outside."""
    result = triage.triage([str(REAL / "worker-closed-bash.log")])
    assert result["causes"][0]["id"] == "unknown"
    assert "KeyError: 'labels'" in result["causes"][0]["match"]
    assert all(c["id"] != "job-stopped" for c in result["causes"]) and "stopped" not in result


@pytest.mark.parametrize("name", ["nested-c10d-plain.log", "nested-standalone-tee.log",
                                  "nested-logdir-console.log", "nested-bash-script.log",
                                  "nested-no-python.log", "nested-standalone-info.log"])
def test_an_inner_launcher_its_outer_torchrun_closed_is_no_stop(name):
    """The inner torchruns (workers of the outer) print "Received 15 death signal" and
    SignalException when the outer one closes them ("Sending process N closing signal"
    names their pid): a consequence, never job-stopped."""
    text = (REAL / name).read_text()
    assert "death signal" in text or "got signal" in text
    result = triage.triage([str(REAL / name)])
    assert result["causes"][0]["id"] == "nested-launcher"
    assert all(c["id"] != "job-stopped" for c in result["causes"]) and "stopped" not in result


def _swap(tmp_path: Path, line: str, name: str = "job-stopped-slurm-time-limit.log") -> Path:
    """The real log with its slurmstepd line replaced by `line` (a format string of Slurm's
    source, filled in: no captured log holds it)."""
    text = (REAL / name).read_text()
    swapped = re.sub(r"^slurmstepd-node-a: error: \*\*\*.*$", lambda _: line, text, flags=re.M)
    assert swapped != text
    log = tmp_path / "job.log"
    log.write_text(swapped)
    return log


# Slurm's formats (SchedMD/slurm 284c3b95 src/slurmd/slurmstepd/req.c:1122-1150;
# 22.05.8 req.c:723-749; task_cgroup_memory.c:291), and Python < 3.11's enum str.
SOURCE_LINES = [
    ("slurmstepd: error: *** JOB 77 ON gpu-a01 CANCELLED AT 2026-12-01T14:30:17 DUE TO NODE "
     "FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***", "node_failure"),
    ("slurmstepd: error: *** STEP 77.0 ON gpu-a01 CANCELLED AT 2026-12-01T14:30:17 DUE TO "
     "JOB REQUEUE ***", "requeue"),
    ("slurmstepd-gpu-a01: error: *** JOB 77 ON gpu-a01 CANCELLED AT 2026-12-01T14:30:17 DUE "
     "to SIGNAL Terminated ***", "cancelled"),
    ("slurmstepd: error: *** STEP 77.0 CANCELLED AT 2026-12-01T14:30:17 DUE TO TIME LIMIT ***",
     "time_limit"),
    ("slurmstepd-gpu-a01: error: Detected 2 oom_kill events in StepId=77.0. Some of the step "
     "tasks have been OOM Killed.", "oom_kill"),
    ("slurmstepd-gpu-a01: error: Detected 1 oom_kill event in StepId=77.batch. Some of the "
     "step tasks have been OOM Killed.", "oom_kill"),
]


@pytest.mark.parametrize(("line", "reason"), SOURCE_LINES, ids=[r for _, r in SOURCE_LINES])
def test_slurms_other_formats_from_its_source(tmp_path, line, reason):
    result = triage.triage([str(_swap(tmp_path, line))])
    assert (result["causes"][0]["id"], result["causes"][0]["line"]) == ("job-stopped", 10)
    stopped = result["stopped"]
    assert (stopped["reason"], stopped["job_id"], stopped["scheduler"]) == (reason, "77", "slurm")
    assert stopped["commands"][0].startswith("sacct -j 77 ")


@pytest.mark.parametrize("line", [
    "slurmstepd: error: *** STEP 77.0 ON gpu-a01 CANCELLED AT 2026-12-01T14:30:17 DUE TO TASK "
    "FAILURE ***",
    "slurmstepd: error: *** STEP 77.0 ON gpu-a01 FAILED (non-zero exit code or other failure "
    "mode) ***"])
def test_a_step_ended_for_another_tasks_failure_is_a_consequence(tmp_path, line):
    result = triage.triage([str(_swap(tmp_path, line))])
    assert result["causes"] == [] and result["fatal"] is True
    assert result["files"][0]["consequences"] == 1


def test_python_before_311_prints_the_signal_by_enum_name(tmp_path):
    text = (REAL / "job-stopped-torchrun-sigterm.log").read_text()
    old = re.sub(r"Received 15 death", "Received Signals.SIGTERM death", text)
    old = re.sub(r"got signal: 15", "got signal: Signals.SIGTERM", old)
    assert old != text
    log = tmp_path / "py310.log"
    log.write_text(old)
    result = triage.triage([str(log)])
    assert result["causes"][0]["line"] == 9
    assert (result["stopped"]["signal"], result["stopped"]["launcher_pid"]) == ("SIGTERM", 7614)


@pytest.mark.parametrize(("sig", "report"), [("TERM", "Terminated"), ("HUP", "Hangup")])
def test_real_bash_reports_its_foreground_command_stopped(tmp_path, sig, report):
    """Real bash 5.2: a foreground command another shell signals. SIGTERM: a bare
    `Terminated`; SIGHUP: `run.sh: line 1: PID Hangup CMD`."""
    (tmp_path / "run.sh").write_text("bash -c 'echo \"pid $$\"; exec sleep 30'\necho after\n")
    bash_signalled(tmp_path, lambda text, _: int(m.group(1)) if (
        m := re.search(r"pid (\d+)", text)) else None, sig)
    log = tmp_path / "run.log"
    lines = log.read_text().splitlines()
    assert report in lines[1] and lines[2] == "after", lines
    result = triage.triage([str(log)])
    cause = result["causes"][0]
    assert (result["fatal"], cause["id"], cause["line"]) == (True, "job-stopped", 2)
    assert result["stopped"]["signal"] == f"SIG{sig}"


def test_a_script_that_hangs_up_its_own_helper_is_not_stopped(tmp_path):
    """`kill -HUP $HPID` of the script's own background helper under `set -x`: bash's
    `Hangup` report is listed in killed_by_script, as a traced kill -9's `Killed` is."""
    (tmp_path / "run.sh").write_text("set -x\nsleep 100 & HPID=$!\necho 'step 1'\n"
                                     "kill -HUP $HPID\nsleep 0.3\necho done\n")
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        subprocess.run(["bash", "run.sh"], stdout=out, stderr=subprocess.STDOUT,
                       cwd=tmp_path, timeout=30, check=True)
    result = triage.triage([str(log)])
    text = log.read_text()
    assert " Hangup " in text, text
    assert (result["fatal"], result["causes"]) == (False, []), text
    (killed,) = result["killed_by_script"]
    assert killed["signal"] == "SIGHUP"


def test_a_runbook_error_before_the_stop_is_the_cause_and_one_after_it_is_not(tmp_path):
    """A CUDA OOM (cuda-oom's cited log), then the stop: cuda-oom. The stop, then what
    the stopped ranks printed (a DataLoader's worker dying with them): the stop."""
    oom = (Path(__file__).parent / "logs" / "cited" / "cuda-oom-dora.log").read_text()
    stop = (REAL / "job-stopped-slurm-step.log").read_text()
    loader = (REAL / "dataloader-killed.log").read_text()
    first = tmp_path / "oom-then-stop.log"
    first.write_text(oom + stop)
    ids = [c["id"] for c in triage.triage([str(first)])["causes"]]
    assert ids[0] == "cuda-oom" and "job-stopped" in ids[1:], ids
    after = tmp_path / "stop-then-loader.log"
    after.write_text(stop + loader)
    result = triage.triage([str(after)])
    ids = [c["id"] for c in result["causes"]]
    assert ids[0] == "job-stopped" and "dataloader-killed" in ids[1:], ids
    assert result["stopped"]["reason"] == "time_limit"
