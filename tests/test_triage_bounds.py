"""`preflight triage` on a run its own launch script bounded with coreutils timeout(1), and
the launch-syntax fix naming the log's own file and line.

Real bash 5.2 and coreutils 9.1 (tests/logs/produce_stopped.py makes the committed logs
with real torchrun; the option variants here run real `timeout` around `sleep`). What each
prints: at the bound timeout(1) signals the command and, unless --foreground, its own
process group (coreutils 9.1 src/timeout.c cleanup(): send_sig (0, sig)); with KILL (-s
KILL, or --kill-after's KILL) it ends itself too and bash reports it: "run.sh: line 3:
19416 Killed  timeout -s KILL 20 ...". With TERM it exits 124 and prints nothing: torchrun
still says it got SIGTERM (a stop, sender unknown), a bare python says nothing at all.
Before: `timeout -s KILL` read "FATAL: `timeout -s KILL 20 ...` died by SIGKILL".
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from support import bash_signalled, produce_live

from preflight import triage

REAL = Path(__file__).parent / "logs" / "real"
sys.path.insert(0, str(Path(__file__).parent / "logs"))

import produce_stopped  # noqa: E402


def _script_of(name: str, tmp_path: Path) -> Path:
    """The run.sh the producer ran for `name` (its text is the producer's, not the log's)."""
    script = tmp_path / "run.sh"
    script.write_text(produce_stopped.SHAPES[name].script)
    return script


# (log, root-cause line, the script's line bash names, duration, --kill-after, command);
# the torchrun command spans two lines (a backslash): bash names the last
@pytest.mark.parametrize(("name", "line", "at", "duration", "kill_after", "command"), [
    ("job-stopped-timeout-kill", 10, 3, "20", None,
     "$PYTHON -m torch.distributed.run --nproc-per-node 2 --master-addr 127.0.0.1 "
     "--master-port $1 train.py"),
    ("job-stopped-timeout-kill-after", 6, 2, "8", "3", "$PYTHON slow_save.py")])
def test_timeout_s_kill_reads_as_the_scripts_own_bound(name, line, at, duration, kill_after,
                                                       command, tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    result = triage.triage([str(REAL / f"{name}.log")])
    cause = result["causes"][0]
    assert (result["fatal"], cause["id"], cause["line"]) == (True, "job-stopped", line), result
    assert "died_by_signal" not in result
    stopped = result["stopped"]
    assert (stopped["reason"], stopped["signal"]) == ("timeout", "SIGKILL")
    # bash saw SIGKILL end it; timeout's own signal at the bound is TERM under --kill-after
    assert stopped["timeout"] == {"duration": duration,
                                  "signal": "SIGTERM" if kill_after else "SIGKILL",
                                  "kill_after": kill_after, "command": command,
                                  "script": "run.sh", "line": at, "from": "report"}
    assert stopped["commands"] == ["grep -nw timeout run.sh"]
    # the fix is the runbook's timeout line for this log's script, and finds the bound there
    assert cause["fix_from"] == "log"
    (fix,) = cause["fix"].splitlines()
    assert fix.startswith("grep -nw timeout run.sh ") and "timeout(1)" in fix
    _script_of(name, tmp_path)
    found = subprocess.run(["bash", "-c", fix], cwd=tmp_path, text=True, capture_output=True,
                           timeout=30, check=True).stdout
    assert re.match(rf"2:timeout {'-k 3 ' if kill_after else '-s KILL '}{duration} ", found)
    out = triage.render(triage_scrubbed(result))
    sent = "SIGTERM" if kill_after else "SIGKILL"
    assert f"sent {sent} after {duration} s, its bound" in out
    assert f"(bash's report at run.sh line {at})" in out
    assert "FATAL:" not in out and "where its bound is set:" in out


def test_a_live_timeout_s_kill_reads_as_the_committed_log(tmp_path, monkeypatch):
    """Real bash, coreutils timeout and torchrun (tests/logs/produce_stopped.py, bounded,
    its tree killed: the ranks a SIGKILLed torchrun leaves running among it): bash's
    report names timeout's pid, and the reading is the committed log's."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    name = "job-stopped-timeout-kill"
    log = produce_live(REAL.parent / "produce_stopped.py", tmp_path, name)
    report = re.search(r"^run\.sh: line 3: +(\d+) Killed +timeout -s KILL 20 ", log.read_text(),
                       re.M)
    assert report is not None, log.read_text()
    for result in (triage.triage([str(log)]), triage.triage([str(REAL / f"{name}.log")])):
        assert result["causes"][0]["id"] == "job-stopped" and result["fatal"] is True
        assert (result["stopped"]["reason"], result["stopped"]["timeout"]["duration"]) == \
            ("timeout", "20")
    live = triage.triage([str(log)])
    assert live["stopped"]["command"]["pid"] == int(report.group(1))


def triage_scrubbed(result: dict) -> dict:
    return triage.scrubber()(result)


def test_timeouts_verbose_line_names_the_bound_it_hit(monkeypatch):
    """`timeout -v`: "timeout: sending signal TERM to command '...'" before torchrun's
    agent reports the SIGTERM: the stop is the bound, said by timeout itself."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    result = triage.triage([str(REAL / "job-stopped-timeout-verbose.log")])
    cause = result["causes"][0]
    assert (cause["id"], cause["line"], cause["confidence"]) == ("job-stopped", 10, "certain")
    assert cause["match"].startswith("timeout: sending signal TERM to command ")
    stopped = result["stopped"]
    assert (stopped["reason"], stopped["signal"], stopped["launcher_pid"]) == \
        ("timeout", "SIGTERM", 21414)
    assert (stopped["timeout"]["command"], stopped["timeout"]["from"]) == \
        ("/opt/venv/bin/python", "verbose")
    assert stopped["timeout"]["duration"] is None and stopped["commands"] == []
    assert "timeout(1)" in cause["fix"] and cause["fix_from"] == "runbook"


def test_a_traced_timeout_whose_signal_the_launcher_got_is_named_as_likely(monkeypatch):
    """`set -x` shows "+ timeout 20 python -m torch.distributed.run ...", then torchrun
    reports SIGTERM, the signal that bound sends: named as the likely sender, with the
    trace line; the reason stays `signal` (the trace has no time: a scheduler's SIGTERM
    before the bound reads the same)."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    log = REAL / "job-stopped-timeout-xtrace.log"
    result = triage.triage([str(log)])
    stopped = result["stopped"]
    assert (result["causes"][0]["id"], stopped["reason"], stopped["signal"]) == \
        ("job-stopped", "signal", "SIGTERM")
    bound = stopped["timeout"]
    assert (bound["duration"], bound["signal"], bound["from"]) == ("20", "SIGTERM", "trace")
    line = log.read_text().splitlines()[bound["trace"]["line"] - 1]
    assert line.startswith("+ timeout 20 ") and bound["command"] in line
    assert "whose bound sends SIGTERM: likely it" in stopped["what"]
    assert "find out which:" in triage.render(result)


def test_what_the_log_cannot_tell_stays_unsaid(monkeypatch):
    """`timeout 20 torchrun`: torchrun reports the SIGTERM, nothing names timeout: a stop
    whose sender the text does not guess. `timeout 8 python one.py`: python dies silently,
    timeout exits 124, bash reports nothing: no failure is read (only the script's own echo
    of $? says 124, and triage does not read a script's own words)."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    term = triage.triage([str(REAL / "job-stopped-timeout-term.log")])
    assert term["causes"][0]["id"] == "job-stopped"
    assert (term["stopped"]["reason"], term["stopped"]["timeout"]) == ("signal", None)
    assert "timeout(1) around the launcher" in term["stopped"]["why"]
    silent = triage.triage([str(REAL / "timeout-term-silent.log")])
    assert (silent["fatal"], silent["causes"]) == (False, [])
    assert "exit status 124" in (REAL / "timeout-term-silent.log").read_text()


# timeout's option spellings (getopt_long "+k:s:v", abbreviated long options); the command
# ignores TERM where only --kill-after's KILL ends it.
BOUNDS = {
    "-s KILL 1": ("1", None), "--signal=KILL 1": ("1", None), "-s 9 1": ("1", None),
    "-sKILL 1": ("1", None), "-v -s SIGKILL 1": ("1", None), "--sig KILL 1": ("1", None),
    "-k 1 1": ("1", "1"), "--kill-after=1 1": ("1", "1"), "-k1 --preserve-status 1": ("1", "1"),
}


@pytest.mark.parametrize("opts", sorted(BOUNDS))
def test_real_timeout_spellings_that_end_in_kill(opts, tmp_path):
    script = tmp_path / "run.sh"
    script.write_text(f"echo start\ntimeout {opts} bash -c 'trap \"\" TERM; sleep 20'\n"
                      "echo \"exit status $?\"\n")
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        subprocess.run(["bash", "run.sh"], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                       timeout=30, check=True)
    text = log.read_text()
    assert f" Killed                  timeout {opts} " in text, text
    result = triage.triage([str(log)])
    assert result["causes"][0]["id"] == "job-stopped", text
    bound = result["stopped"]["timeout"]
    assert (bound["duration"], bound["kill_after"], bound["script"], bound["line"]) == \
        (*BOUNDS[opts], "run.sh", 2)
    assert bound["signal"] == ("SIGTERM" if BOUNDS[opts][1] else "SIGKILL")


def test_foreground_and_term_bounds_print_nothing(tmp_path):
    """--foreground: timeout KILLs only the command and exits 137 itself; TERM: exit 124.
    bash reports neither: nothing is read."""
    (tmp_path / "run.sh").write_text("timeout --foreground -s KILL 1 sleep 20\necho \"rc $?\"\n"
                                     "timeout 1 sleep 20\necho \"rc $?\"\n")
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        subprocess.run(["bash", "run.sh"], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                       timeout=30, check=True)
    assert log.read_text().split() == ["rc", "137", "rc", "124"]
    assert triage.triage([str(log)])["fatal"] is False


def test_a_timeout_someone_else_killed_is_no_bound(tmp_path):
    """`timeout 100 sleep 100` (TERM at its bound) SIGKILLed from another shell: bash
    reports timeout Killed, but its own bound sends TERM: not the bound, still a death by
    SIGKILL whose sender the log does not name."""
    (tmp_path / "run.sh").write_text("timeout 100 sleep 100\necho after\n")
    sleeps: list[psutil.Process] = []  # psutil: killed only while still that process

    def children(parent: int, name: str) -> list[int]:
        return [int(pid) for pid in subprocess.run(
            ["pgrep", "-P", str(parent), "-x", name], text=True, capture_output=True,
            timeout=10).stdout.split()]

    def timeout_child(text: str, bash: int) -> int | None:
        """timeout, once its sleep runs (noted: the killed timeout leaves it reparented)."""
        for pid in children(bash, "timeout"):
            sleeps.extend(psutil.Process(s) for s in children(pid, "sleep"))
            if sleeps:
                return pid
        return None

    try:
        bash_signalled(tmp_path, timeout_child, "KILL")
    finally:  # the sleep the killed timeout left: this test's own, by pid
        for sleep in sleeps:
            try:
                sleep.kill()
            except psutil.NoSuchProcess:
                pass
    log = tmp_path / "run.log"
    text = log.read_text()
    assert re.search(r"line 1: +\d+ Killed +timeout 100 sleep 100", text), text
    result = triage.triage([str(log)])
    assert result["causes"] == [] and result["died_by_signal"]["command"] == \
        "timeout 100 sleep 100"


# -- launch-syntax: the fix names the log's own file and line ---------------------------------

def test_the_launch_syntax_fix_names_the_files_line_from_the_log(tmp_path):
    """bash's "DIR/my run.sh: line 3: syntax error ...": the fix was the runbook's example
    (`sed -n '7p' run.sh`); now it is that file, shell-quoted, and that line, and running
    it prints the line bash refused."""
    sub = tmp_path / "sub dir"
    sub.mkdir()
    script = sub / "my run.sh"
    script.write_text('echo "preparing data"\nexport N=2\nMODEL=<PATH_OF_MODEL>\n'
                      'torchrun --nproc_per_node "$N" train.py --model "$MODEL"\n')
    log = tmp_path / "job.log"
    with open(log, "wb") as out:
        done = subprocess.run(["bash", "sub dir/my run.sh"], stdout=out,
                              stderr=subprocess.STDOUT, cwd=tmp_path, timeout=30)
    assert done.returncode == 2
    result = triage.triage([str(log)])
    cause = result["causes"][0]
    assert (cause["id"], cause["fix_from"]) == ("launch-syntax", "log"), result
    quoted = shlex.quote("sub dir/my run.sh")
    assert f"sed -n '3p' {quoted} " in cause["fix"] and "run.sh " not in \
        cause["fix"].replace(quoted, "")
    assert cause["check_command"] == \
        f"preflight --check launch-syntax --launch-script {quoted}"
    for command in cause["fix"].splitlines():
        assert subprocess.run(["bash", "-n"], input=command, text=True,
                              timeout=30).returncode == 0
    sed = next(x for x in cause["fix"].splitlines() if x.startswith("sed "))
    shown = subprocess.run(["bash", "-c", sed], cwd=tmp_path, text=True, capture_output=True,
                           timeout=30, check=True).stdout
    assert shown == "MODEL=<PATH_OF_MODEL>\n"
    assert f"with this log's values, from bash's message at {log}:" in triage.render(result)


@pytest.mark.parametrize(("name", "file", "line"), [
    ("launch-syntax-placeholder", "launch-syntax-placeholder.sh", 2),
    ("launch-syntax-quote", "launch-syntax-quote.sh", 2),
    ("launch-syntax-if", "launch-syntax-if.sh", 5)])
def test_the_committed_launch_syntax_logs_fix_their_own_line(name, file, line):
    cause = triage.triage([str(REAL / f"{name}.log")])["causes"][0]
    assert f"sed -n '{line}p' {file} " in cause["fix"] and "'7p'" not in cause["fix"]
    assert cause["fix"].splitlines()[0].startswith(f"bash -n {file} ")


def test_bash_c_names_no_file_and_keeps_the_runbooks_example(tmp_path):
    log = tmp_path / "job.log"
    with open(log, "wb") as out:
        subprocess.run(["bash", "-c", "echo x\nif true; then\n  echo y\n"], stdout=out,
                       stderr=subprocess.STDOUT, timeout=30)
    assert log.read_text().startswith("x\nbash: -c: line ")
    cause = triage.triage([str(log)])["causes"][0]
    assert (cause["id"], cause["fix_from"]) == ("launch-syntax", "runbook")
    assert "sed -n '7p' run.sh" in cause["fix"]
