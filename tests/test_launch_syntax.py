"""launch-syntax: a launch script with a bash syntax error (an unfilled `<PLACEHOLDER>`,
an unclosed quote, an `if` without `fi`). Real bash is the oracle: under recording
launcher shims (bash_oracle.py) `bash run.sh` runs the lines before the error, exits with
status 2 there and never starts the launcher after it; preflight says NO-GO naming
file:line, and the other launch checks are UNKNOWN naming the error instead of judging
that launcher.

Before: the bashlex reader marked the line not parsed and went on, so nested-launcher
judged (and passed) a torchrun bash never reaches."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bash_oracle import Case, make_shims, run_bash  # noqa: E402
from support import base_env  # noqa: E402

from preflight.judges import launch as judge  # noqa: E402
from preflight.launch import spec as launch  # noqa: E402
from preflight.model import Kind  # noqa: E402
from preflight.probes.bash_syntax import BashSyntax, check  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

LAUNCHER = "torchrun --nproc_per_node 1 train.py\n"
TOKEN = "hf_Zq8sX1uV7kLm3NpR5tY9wB2c"  # a secret written on the offending line
BROKEN = {
    "placeholder": ("echo start\nVOCAB=<PATH_OF_VOCAB_FILE>\n" + LAUNCHER, 2),
    "unclosed quote": ('echo start\nNAME="run\n' + LAUNCHER, 2),  # bash names the quote
    "if without fi": ("echo start\nif true; then\n  " + LAUNCHER, 4),
}
FIXED = "echo start\nVOCAB=/data/vocab.txt\n" + LAUNCHER


def _bash(tmp_path: Path, script: str) -> tuple[int, list]:
    """What real bash does with it: its exit status and the launchers it started."""
    work = tmp_path / "w"
    work.mkdir(exist_ok=True)
    shims = make_shims(tmp_path / "shims")
    calls = run_bash(Case("syntax", script), work, shims)
    rc = subprocess.run(["bash", "run.sh"], cwd=work, stdin=subprocess.DEVNULL,
                        env={"PATH": f"{shims}:/usr/bin:/bin", "HOME": str(work),
                             "ORACLE_LOG": "/dev/null"},
                        capture_output=True, timeout=20, check=False).returncode
    return rc, calls


def _preflight(run_preflight, script: Path, *checks: str, **env):
    """preflight run where bash ran the script (the job's working directory)."""
    args = ["--profile", "cpu", *[a for c in checks for a in ("--check", c)],
            "--launch-script", str(script)]
    return run_preflight(*args, env=base_env(**env), cwd=script.parent)


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_script_is_nogo_as_bash_stops_then_fixed_passes(run_preflight, tmp_path,
                                                               name):
    script, line = BROKEN[name]
    rc, calls = _bash(tmp_path, script)
    assert rc == 2 and calls == []  # the oracle: bash stops, torchrun never starts
    path = tmp_path / "w" / "run.sh"
    broken = _preflight(run_preflight, path, "launch-syntax", "nested-launcher",
                        "launch-gpus")
    assert broken.returncode == 1, broken.output
    result = broken.one("launch-syntax")
    assert result["severity"] == "blocker"
    assert f"run.sh:{line}" in result["summary"] and "syntax error" in result["summary"]
    assert result["evidence"]["line"] == line
    assert f"sed -n '{line}p' " in result["fix"] and "bash -n" in result["fix"]
    assert result["runbook"].endswith("runbooks/launch-syntax.md")
    for other in ("nested-launcher", "launch-gpus"):  # not judged past where bash stops
        found = broken.one(other)
        assert found["severity"] == "unknown", found
        assert f"run.sh:{line}" in found["summary"] and "syntax error" in found["summary"]

    path.write_text(FIXED)
    rc, calls = _bash(tmp_path, FIXED)
    assert rc == 0 and [c.program for c in calls] == ["torchrun"]
    fixed = _preflight(run_preflight, path, "launch-syntax", "nested-launcher")
    assert fixed.returncode == 0, fixed.output
    assert fixed.one("launch-syntax")["outcome"] == "passed"
    assert fixed.one("nested-launcher")["outcome"] == "passed"


def test_extglob_script_bash_runs_is_not_nogo(run_preflight, tmp_path):
    """bash -n executes no `shopt -s extglob`, so it rejects `!(x)` that bash runs."""
    script = "shopt -s extglob\nls -d !(nothing) >/dev/null\n" + LAUNCHER
    rc, calls = _bash(tmp_path, script)
    assert rc == 0 and [c.program for c in calls] == ["torchrun"]  # bash runs it all
    path = tmp_path / "w" / "run.sh"
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True,
                          check=False).returncode == 2  # while -n complains
    run = _preflight(run_preflight, path, "launch-syntax", "nested-launcher")
    result = run.one("launch-syntax")
    assert result["severity"] == "unknown" and "shopt/alias" in result["summary"]
    assert "run.sh:2" in result["summary"]
    # not cut at line 2: the torchrun after it is still read (bashlex cannot parse `!(x)`,
    # which nested-launcher says on its own, without a syntax error)
    assert "syntax error" not in run.one("nested-launcher")["summary"]


def test_secret_on_the_offending_line_is_not_printed(run_preflight, tmp_path):
    script = f"echo start\nHF_TOKEN={TOKEN} VOCAB=<PATH_OF_VOCAB_FILE>\n" + LAUNCHER
    rc, _ = _bash(tmp_path, script)
    assert rc == 2
    run = _preflight(run_preflight, tmp_path / "w" / "run.sh", "launch-syntax")
    assert run.returncode == 1, run.output
    assert "run.sh:2" in run.one("launch-syntax")["summary"]
    texts = [run.output, *(p.read_text() for p in run.report_dir.rglob("*") if p.is_file())]
    assert not any(TOKEN in t for t in texts)


def test_launch_cmd_with_a_syntax_error(run_preflight, tmp_path):
    bad = 'torchrun --nproc_per_node 1 train.py --name "run'
    assert subprocess.run(["bash", "-n", "-c", bad], capture_output=True,
                          check=False).returncode == 2
    run = run_preflight("--profile", "cpu", "--check", "launch-syntax", "--launch-cmd", bad,
                        env=base_env())
    assert run.returncode == 1, run.output
    assert "--launch-cmd:1" in run.one("launch-syntax")["summary"]
    good = run_preflight("--profile", "cpu", "--check", "launch-syntax", "--launch-cmd",
                         bad + '"', env=base_env())
    assert good.returncode == 0 and good.one("launch-syntax")["outcome"] == "passed"


def test_probe_reads_bash_and_judge_kinds(tmp_path):
    path = tmp_path / "run.sh"
    path.write_text("exit 0\nX=<foo>\n")
    found = check(str(path), None, path.read_text())
    assert found.ok is False and found.line == 2 and "syntax error" in found.message
    spec = launch.load(str(path), None, {"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    # bash exits at line 1 and never parses line 2: not a NO-GO
    assert subprocess.run(["bash", str(path)], capture_output=True,
                          check=False).returncode == 0
    v = judge.launch_syntax(judge.SyntaxFacts(spec, found))
    assert [p.kind for p in v.problems] == [Kind.WARNING]
    unknown = judge.launch_syntax(judge.SyntaxFacts(spec, BashSyntax(str(path), None,
                                                                     error="timed out")))
    assert [p.kind for p in unknown.problems] == [Kind.UNKNOWN]
    assert judge.launch_syntax(judge.SyntaxFacts(None, None)).skip


# -- a file the script sources or runs -------------------------------------------------

INNER_BROKEN = "echo inner\nVOCAB=<PATH_OF_VOCAB_FILE>\n" + LAUNCHER


@pytest.mark.parametrize("how, script", [
    ("sourced", "echo start\nsource ./env.sh\necho after\n"),
    ("run", "echo start\nbash ./env.sh\necho after\n"),
], ids=["source", "bash X"])
def test_a_syntax_error_in_a_file_the_script_reads_is_nogo(run_preflight, tmp_path, how,
                                                           script):
    """bash stops reading env.sh at its line 2 (status 2) and never starts the torchrun
    after it; the script itself parses. Before: launch-syntax passed (only run.sh was given
    to bash -n) and nested-launcher judged the torchrun on env.sh:3 bash never reaches."""
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "env.sh").write_text(INNER_BROKEN)
    rc, calls = _bash(tmp_path, script)
    assert rc == 0 and calls == []  # the oracle: the script goes on, torchrun never starts
    path = tmp_path / "w" / "run.sh"
    run = _preflight(run_preflight, path, "launch-syntax", "nested-launcher")
    assert run.returncode == 1, run.output
    result = run.one("launch-syntax")
    assert result["severity"] == "blocker", result
    assert f"bash stops reading env.sh ({how} at run.sh:2) at line 2 with a syntax error" \
        in result["summary"], result["summary"]
    inner = tmp_path / "w" / "env.sh"
    assert f"sed -n '2p' {inner}\nbash -n {inner}" in result["fix"]
    (read,) = result["evidence"]["read_files"]
    assert read["file"] == str(inner) and read["ok"] is False and read["line"] == 2
    nested = run.one("nested-launcher")  # not judged past where bash stops
    assert nested["severity"] == "unknown" and "env.sh:2" in nested["summary"], nested

    inner.write_text("echo inner\nVOCAB=/data/vocab.txt\n" + LAUNCHER)
    rc, calls = _bash(tmp_path, script)
    assert [c.program for c in calls] == ["torchrun"]
    fixed = _preflight(run_preflight, path, "launch-syntax", "nested-launcher")
    assert fixed.returncode == 0, fixed.output
    assert fixed.one("launch-syntax")["outcome"] == "passed"
    assert fixed.one("launch-syntax")["evidence"]["read_files"][0]["ok"] is True


def test_a_broken_file_sourced_on_a_branch_that_may_not_run_is_unknown(run_preflight,
                                                                         tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "env.sh").write_text(f"HF_TOKEN={TOKEN} X=<PLACEHOLDER>\n")
    script = 'if [ -n "$(cat flag)" ]; then\n  source ./env.sh\nfi\n' + LAUNCHER
    (tmp_path / "w" / "run.sh").write_text(script)
    run = _preflight(run_preflight, tmp_path / "w" / "run.sh", "launch-syntax")
    result = run.one("launch-syntax")
    assert result["severity"] == "unknown", result
    assert "env.sh (sourced at run.sh:2) at line 1" in result["summary"]
    assert "branch that may not" in result["summary"]
    texts = [run.output, *(p.read_text() for p in run.report_dir.rglob("*") if p.is_file())]
    assert not any(TOKEN in t for t in texts)  # bash's message echoes the line: masked


def test_extglob_set_by_the_script_for_a_sourced_file_is_not_nogo(run_preflight, tmp_path):
    """bash -n of the sourced file alone knows nothing of the script's `shopt -s extglob`."""
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "env.sh").write_text("ls -d !(nothing) >/dev/null\n")
    script = "shopt -s extglob\nsource ./env.sh\n" + LAUNCHER
    rc, calls = _bash(tmp_path, script)
    assert rc == 0 and [c.program for c in calls] == ["torchrun"]
    run = _preflight(run_preflight, tmp_path / "w" / "run.sh", "launch-syntax")
    result = run.one("launch-syntax")
    assert result["severity"] == "unknown" and "shopt/alias" in result["summary"], result


def test_files_past_the_bound_are_not_known(tmp_path, monkeypatch):
    from preflight.probes import bash_syntax

    monkeypatch.setattr(bash_syntax, "MAX_FILES", 1)
    good, bad = tmp_path / "good.sh", tmp_path / "bad.sh"
    good.write_text("echo ok\n")
    bad.write_text("X=<foo>\n")
    first, second = bash_syntax.check_files([(str(good), ""), (str(bad), "")])
    assert first.ok is True and second.ok is None and "at most 1 files" in second.error
    (alone,) = bash_syntax.check_files([(str(bad), "")])
    assert alone.ok is False and alone.line == 1


def test_an_error_after_the_scripts_exit_leaves_the_other_checks_judged(run_preflight,
                                                                         tmp_path):
    """`exit 0` before the bad line (the script given relative, as typed): bash never
    parses it, so launch-syntax only warns and nested-launcher still judges the script."""
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "run.sh").write_text(LAUNCHER + "exit 0\nX=<foo>\n")
    rc, calls = _bash(tmp_path, LAUNCHER + "exit 0\nX=<foo>\n")
    assert rc == 0 and [c.program for c in calls] == ["torchrun"]
    run = run_preflight("--profile", "cpu", "--check", "launch-syntax", "--check",
                        "nested-launcher", "--launch-script", "run.sh", env=base_env(),
                        cwd=tmp_path / "w")
    assert run.one("launch-syntax")["severity"] == "warning", run.output
    assert run.one("nested-launcher")["outcome"] == "passed", run.output
