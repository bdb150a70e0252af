"""`preflight triage LOG --launch-script SCRIPT`: a helper the script itself killed with
`kill -9 %1`, `kill -9 $HPID`, `pkill -9 -f PATTERN`, `killall -9 NAME`, without `set -x`.

Real bash 5.2 (non-interactive, no trap) reports a background job a signal ended exactly
as it reports a foreground command the OOM killer ended ("run.sh: line 5:  15223 Killed
sleep 100"; bash 5.2 jobs.c:4310 notify_of_job_status, one branch for both). Before: read
FATAL (`sleep 100` died by SIGKILL) unless the script's `set -x` trace showed `kill -9
PID` with the very pid; `kill -9 %1` and `pkill -9 -f NAME` were never matched. Now the
script's own text (its `CMD &` jobs and kill lines) tells the helper's end from a death;
without the script or a trace the report stays fatal and the text says how to tell.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from support import bash_signalled

from preflight import triage

# Every helper carries a name of its own ({tok}: a symlink to sleep, or an argument), so the
# pkill/killall under test can only reach the process the test started.
HELPER = "python3 -c 'import time, sys; time.sleep(100)' {tok} > helper.log 2>&1"
# (script body, the reported command of the helper the script kills)
SCRIPTS = {
    "jobspec": ("./{tok} 100 &\necho 'step 1 loss 2.31'\nsleep 0.2\nkill -9 %1\nsleep 0.3\n"
                "echo done\n", "./{tok} 100"),
    "variable": ("./{tok} 100 &\nHPID=$!\necho 'step 1 loss 2.31'\nsleep 0.2\n"
                 "kill -s KILL \"$HPID\"  # stop the helper\nsleep 0.3\necho done\n",
                 "./{tok} 100"),
    "pkill-f": (f"{HELPER} &\necho 'step 1 loss 2.31'\nsleep 0.5\n"
                "pkill -9 -f 'sleep.100. {tok}'\nsleep 0.3\necho done\n", HELPER),
    "killall": ("./{tok} 100 & echo 'step 1 loss 2.31'\nsleep 0.2\nkillall -9 {tok} || true\n"
                "sleep 0.3\necho done\n", "./{tok} 100"),
    "jobspec-prefix": ("./{tok} 100 &\necho 'step 1 loss 2.31'\nsleep 0.2\n"
                       "kill -KILL %./{tok}\nsleep 0.3\necho done\n", "./{tok} 100"),
}


TOKENS: list[str] = []


def token(tmp_path: Path) -> str:
    """A process name of this test's own: a symlink to sleep in tmp_path (the kernel names
    the process after the path it ran, 15 characters at most)."""
    tok = f"pf{uuid.uuid4().hex[:10]}"
    (tmp_path / tok).symlink_to(shutil.which("sleep") or "/bin/sleep")
    TOKENS.append(tok)
    return tok


@pytest.fixture(autouse=True)
def _no_helper_left():
    """A helper a failed kill left running (100 s) is ended: only this test's token."""
    yield
    while TOKENS:
        subprocess.run(["pkill", "-KILL", "-f", TOKENS.pop()], timeout=10, check=False)


def run_bash(tmp_path: Path, body: str, name: str = "run.sh") -> tuple[Path, Path, str]:
    script = tmp_path / name
    script.write_text(body)
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        subprocess.run(["bash", name], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                       timeout=30, check=True)
    return script, log, log.read_text()


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_the_scripts_own_kill_of_its_helper_is_not_fatal(name, tmp_path):
    tok = token(tmp_path)
    body, command = (x.format(tok=tok) for x in SCRIPTS[name])
    script, log, text = run_bash(tmp_path, body)
    assert text.rstrip().endswith("done") and "+ " not in text, text  # no trace
    assert re.search(r"^run\.sh: line \d+: +\d+ Killed +" + re.escape(command) + "$", text,
                     re.M), text
    plain = triage.triage([str(log)])
    assert plain["fatal"] is True and plain["died_by_signal"]["command"] == command
    assert "--launch-script SCRIPT" in triage.render(plain)
    given = triage.triage([str(log)], script=str(script))
    assert (given["fatal"], given["causes"]) == (False, []), given
    assert "died_by_signal" not in given and given["launch_script"] == str(script)
    (killed,) = given["killed_by_script"]
    assert (killed["command"], killed["signal"]) == (command, "SIGKILL")
    kill = killed["kill"]
    assert (kill["file"], kill["from"]) == (str(script), "script")
    assert re.search(r"\b(?:kill|pkill|killall)\b", body.splitlines()[kill["line"] - 1])
    out = triage.render(given)
    assert "no fatal error found" in out and "read from the script" in out


def test_a_command_that_died_is_still_fatal_with_the_script(tmp_path):
    """The script kills its helper (`kill -9 %1`), then its foreground command dies by
    SIGKILL from elsewhere: the helper is the script's doing, the foreground command is
    no background job of the script: fatal, named."""
    tok = token(tmp_path)
    body = (f"./{tok} 100 &\nsleep 0.2\nkill -9 %1\nsleep 0.3\nbash -c 'kill -KILL $$'\n"
            "echo \"exit status $?\"\n")
    script, log, text = run_bash(tmp_path, body)
    result = triage.triage([str(log)], script=str(script))
    assert result["fatal"] is True, text
    assert result["died_by_signal"]["command"] == "bash -c 'kill -KILL $$'"
    assert [k["command"] for k in result["killed_by_script"]] == [f"./{tok} 100"]


@pytest.mark.parametrize("cleanup", ["trap", "or"])
def test_a_cleanup_kill_that_runs_after_the_death_does_not_excuse_it(cleanup, tmp_path):
    """The job dies by a SIGKILL from outside (the test sends it, as the OOM killer would);
    the script's own kills run only after that: a cleanup function its `trap ... EXIT`
    names, or `wait $P || pkill -9 -f ...`. They do not make the death the script's doing:
    fatal."""
    tok = token(tmp_path)
    head = (f"cleanup() {{\n  pkill -9 -f '{tok}' || true\n}}\ntrap cleanup EXIT\n"
            if cleanup == "trap" else "")
    tail = "wait $P\n" if cleanup == "trap" else f"wait $P || pkill -9 -f '{tok}'\n"
    script = tmp_path / "run.sh"
    script.write_text(f"{head}./{tok} 100 &\nP=$!\necho \"training pid $P\"\n{tail}"
                      "echo \"exit status $?\"\n")
    pid = bash_signalled(tmp_path, lambda text, _: int(m.group(1)) if (
        m := re.search(r"training pid (\d+)", text)) else None, "KILL")
    log = tmp_path / "run.log"
    text = log.read_text()
    assert re.search(rf"^run\.sh: line \d+: +{pid} Killed +\./{tok} 100$", text, re.M), text
    result = triage.triage([str(log)], script=str(script))
    assert result["fatal"] is True and "killed_by_script" not in result, text
    assert result["died_by_signal"]["pid"] == pid


def test_another_scripts_report_is_not_matched(tmp_path):
    """The report names train.sh; the script given is another: nothing is read from it."""
    body = SCRIPTS["jobspec"][0].format(tok=token(tmp_path))
    _, log, _ = run_bash(tmp_path, body, name="train.sh")
    other = tmp_path / "run.sh"
    other.write_text(body)
    result = triage.triage([str(log)], script=str(other))
    assert result["fatal"] is True and "killed_by_script" not in result
    assert f"{other} has no kill of a background job" in triage.render(result)


@pytest.mark.parametrize(("kill", "matched"), [
    ("pkill -9 -f '{tok} 1[0-9]+'", True), ("killall -9 {tok}", True),
    ("kill -9 %./{tok}", True), ("kill -9 %1", False)])
def test_a_traced_kill_by_name_is_matched_and_a_job_number_is_not(kill, matched, tmp_path):
    """Under `set -x` the trace shows `pkill -9 -f 'NAME 1[0-9]+'` as run: its pattern
    matches the reported command. `kill -9 %1` names a job number the trace does not map
    to a command: fatal (the script, given, would tell)."""
    tok = token(tmp_path)
    kill = kill.format(tok=tok)
    body = (f"set -x\n./{tok} 100 &\necho 'step 1'\nsleep 0.2\n{kill} || true\nsleep 0.3\n"
            "echo done\n")
    script, log, text = run_bash(tmp_path, body)
    assert re.search(rf"^run\.sh: line \d+: +\d+ Killed +\./{tok} 100$", text, re.M), text
    result = triage.triage([str(log)])
    assert result["fatal"] is (not matched), text
    if matched:
        (killed,) = result["killed_by_script"]
        assert killed["kill"]["from"] == "trace" and kill.split()[0] in killed["kill"]["match"]
    else:
        given = triage.triage([str(log)], script=str(script))
        assert given["fatal"] is False and given["killed_by_script"][0]["kill"]["line"] == 5


def test_the_cli_takes_the_script_and_refuses_a_missing_one(tmp_path):
    script, log, _ = run_bash(tmp_path, SCRIPTS["jobspec"][0].format(tok=token(tmp_path)))
    base = [sys.executable, "-m", "preflight", "triage", str(log)]
    done = subprocess.run([*base, "--launch-script", str(script)], text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0 and "not a failure: `./pf" in done.stdout, done.stdout
    for bad in (["--launch-script", str(tmp_path / "missing.sh")], ["--launch-script"]):
        done = subprocess.run([*base, *bad], text=True, capture_output=True, timeout=120)
        assert done.returncode == 4 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
