"""The launch-script reader stays bounded on hostile scripts: deep nesting and deep or
exploding recursion finish in seconds or are refused with one clear line (exit 4)."""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import base_env

from preflight.launch import spec as launch
from preflight.launch.shell import ScriptFileError, evaluate, evaluate_command
from preflight.launch.spec import LaunchError

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/root"}


def _load(tmp_path: Path, text: str) -> launch.LaunchSpec:
    script = tmp_path / "run.sh"
    script.write_text(text)
    return launch.load(str(script), None, ENV, cwd=str(tmp_path))


@pytest.mark.parametrize("text", [
    "".join("if [ -f x ]; then\n" for _ in range(5000)) + "torchrun t.py\n" + "fi\n" * 5000,
    "X=" + "$(echo " * 10000 + ")" * 10000 + "\n",
    "(" * 5000 + "torchrun t.py" + ")" * 5000 + "\n",
    "".join("case $X in a)\n" for _ in range(5000)) + "torchrun\n" + ";; esac\n" * 5000,
    # every call doubles: 2**4 programs per line, 2,000 lines
    "f() { g; g; }\ng() { h; h; }\nh() { i; i; }\ni() { torchrun x; torchrun y; }\n" + "f\n" * 2000,
], ids=["5000-nested-ifs", "10000-nested-substitutions", "5000-subshells", "5000-cases",
        "exploding-calls"])
def test_hostile_scripts_are_refused_with_one_line(tmp_path, text):
    start = time.perf_counter()
    with pytest.raises(LaunchError) as err:
        _load(tmp_path, text)
    assert time.perf_counter() - start < 5
    assert "\n" not in str(err.value) and "not a launch script" in str(err.value)


def test_deep_recursion_finishes_and_says_what_it_did_not_follow(tmp_path):
    start = time.perf_counter()
    spec = _load(tmp_path, "f() { local n=$1; if [ $n -gt 0 ]; then f $((n-1)); fi; "
                           "torchrun t.py; }\nf 10000\ntorchrun --nproc_per_node $N last.py\n")
    assert time.perf_counter() - start < 5
    assert any("nested too deep" in u.reason for u in spec.unknowns)
    # past the depth it stopped following, variables are unknown, never empty
    last = spec.commands[-1]
    assert [w.text for w in last.argv][-1] == "last.py" and not last.argv[2].known


def test_nesting_as_deep_as_the_limit_allows_is_read(tmp_path):
    (tmp_path / "x").touch()
    spec = _load(tmp_path, "".join("if [ -f x ]; then\n" for _ in range(99))
                 + "torchrun t.py\n" + "fi\n" * 99)
    assert [w.text for w in spec.commands[0].argv] == ["torchrun", "t.py"]
    assert not spec.commands[0].conditional


def test_cli_refuses_a_hostile_script_with_exit_4(run_preflight, tmp_path):
    script = tmp_path / "deep.sh"
    script.write_text("".join("if true; then\n" for _ in range(5000)) + "fi\n" * 5000)
    run = run_preflight("--profile", "cpu", "--launch-script", str(script), "-k", "launch")
    assert run.returncode == 4, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "nested more than" in errors[0]
    assert "Traceback" not in run.output


def test_single_quoted_expansions_do_not_hang_the_parser():
    # bashlex 0.18 loops forever expanding `${A[` inside quotes; the parser never sees it
    start = time.perf_counter()
    trace = evaluate_command("declare -a then $' ${A[ | $' ' [[ ]]' & torchrun '${A[x' $'${B'",
                             ENV, cwd="/")
    assert time.perf_counter() - start < 5
    assert [w.text for w in trace.commands[-1].argv] == ["torchrun", "${A[x", "${B"]


BITS = ["case", "esac", "in", ")", "(", ";;", ";&", "A=(", "A+=(", "${A[@]}", "${#A[@]}",
        "${A[", "]}", "$((", "))", "((", "[[", "]]", "&&", "||", "=~", "if", "then", "elif",
        "else", "fi", "for", "do", "done", "while", "{", "}", "$(", "`", "'", '"', "\n", ";",
        "|", "&", "x", "torchrun", "local", "declare -a", "let", "eval", "read -d ''",
        "<<EOF", "EOF", "${V%", "${V/", "${V:1:", "${V^^}", "set -eu", "bash -c", "srun",
        "export $(", "~", "*", "{a,b}", "{1..3}", "time", "-p", "\\", "$'", "=", "1", "$@",
        "$#", "shift", "source", "break"]


def test_random_fragments_never_crash_or_hang():
    import random

    rng = random.Random(5)
    for _ in range(400):
        text = " ".join(rng.choice(BITS) for _ in range(rng.randrange(1, 30)))
        start = time.perf_counter()
        try:
            evaluate_command(text, {**ENV, "V": "abc"}, cwd="/tmp")
        except ScriptFileError:
            pass  # refused with one line: fine
        assert time.perf_counter() - start < 5, text


def test_a_last_line_ending_in_a_backslash_is_read_at_once(tmp_path):
    # verl's fully_async shell scripts end their 120-line launch command with `\` and
    # then the end of the file: bash ends the command there; bashlex 0.18 reports an
    # unexpected EOF, which sent the whole script through the line-by-line fallback
    # (chunks of at most 80 lines): the launch was not read, after 18 s of parsing
    text = ("set -x\npython -m torch.distributed.run --nproc_per_node 4 train.py \\\n"
            + "".join(f"    opt{i}=v{i} \\\n" for i in range(120)))
    start = time.process_time()
    spec = _load(tmp_path, text)
    assert time.process_time() - start < 3
    (job,) = spec.jobs
    assert job.distributed[0].nproc == 4
    assert job.layers[-1].args[-1].text == "opt119=v119"


# torchtitan's .ci/docker/common/install_base.sh ends its install with `rm -rf
# /var/lib/apt/lists/* /tmp/* /var/tmp/*`: on a node whose /tmp holds 34,000 files every
# removed file copied the map of written files (quadratic: over 120 s). After `torchrun ...
# &` (before a `wait`) each removed file is also recorded against that launch, whose read
# of its files it races: that record was a tuple rebuilt per file (30,000 files: 6 s).
MANY_FILES = {
    "after the launch": (15000, "rm -rf {many}/*\ntorchrun --nproc_per_node 2 t.py\n"),
    "racing a background launch": (
        30000, "torchrun --nproc_per_node 2 t.py &\nrm -rf {many}/*\nwait\n"),
}


@pytest.mark.parametrize("case", sorted(MANY_FILES))
def test_a_glob_naming_many_files_is_recorded_in_linear_time(case, tmp_path):
    count, script = MANY_FILES[case]
    many = tmp_path / "many"
    many.mkdir()
    for i in range(count):
        (many / f"f{i}").touch()
    start = time.process_time()
    spec = _load(tmp_path, script.format(many=many))
    assert time.process_time() - start < 3  # CPU time: other processes' load is not ours
    assert spec.jobs[0].distributed[0].nproc == 2


# -- a refusal names the file and line that hold the problem ---------------------------

DEEP_WORD = "B=" + "${X:-" * 200 + "x" + "}" * 200 + "\n"


def test_the_script_nested_too_deep_is_refused_naming_its_line(tmp_path):
    with pytest.raises(LaunchError) as err:
        _load(tmp_path, "A=0\n\n" + DEEP_WORD + "torchrun t.py\n")
    assert str(err.value).startswith("--launch-script ") and ": line 3: ${...} nested" in \
        str(err.value), err.value


@pytest.mark.parametrize("body, line", [
    (DEEP_WORD, 3),
    # the 101st `if` (line 2 + 101) is one level too many
    ("".join("if true; then\n" for _ in range(500)) + "fi\n" * 500, 103),
], ids=["deep-word", "500-nested-ifs"])
def test_a_sourced_file_nested_too_deep_is_not_read_and_named(tmp_path, body, line):
    # bash reads such a .env; preflight does not: the .env (file and line) is named, and
    # what it sets is unknown (never the value from before the source)
    (tmp_path / ".env").write_text("A=8\n\n" + body)
    spec = _load(tmp_path, "A=2\nsource .env\ntorchrun --nproc_per_node $A t.py\n")
    (hit,) = [u for u in spec.unknowns if "nested" in u.reason]
    assert posixpath.basename(hit.file) == ".env" and hit.line == line, hit
    nproc = spec.commands[0].argv[2]
    assert not nproc.known and ".env" in nproc.reason, nproc


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _huge(path: Path) -> None:
    path.write_text("A=9\n" + "#" * (3 * 2**20) + "\n")


def _binary(path: Path) -> None:
    path.write_bytes(b"A=9\n\0\0\0")


@pytest.mark.parametrize("make", [_fifo, _huge, _binary], ids=["fifo", "huge", "binary"])
def test_a_sourced_file_that_cannot_be_read_is_named_and_what_it_sets_unknown(
        tmp_path, make):
    make(tmp_path / "vars.env")
    start = time.perf_counter()
    spec = _load(tmp_path, "A=2\n. ./vars.env\ntorchrun --nproc_per_node $A t.py\n")
    assert time.perf_counter() - start < 5  # a FIFO is never opened (no hang)
    (hit,) = [u for u in spec.unknowns if "vars.env" in u.reason]
    assert hit.line == 2 and str(tmp_path / "vars.env") in hit.reason, hit
    assert not spec.commands[0].argv[2].known  # not A=2 from before the source


def test_a_budget_spent_in_a_sourced_file_names_that_file(tmp_path):
    (tmp_path / "lib.sh").write_text(
        "f() { g; g; }\ng() { h; h; }\nh() { i; i; }\ni() { echo x; echo y; }\n" + "f\n" * 2000)
    with pytest.raises(LaunchError) as err:
        _load(tmp_path, "source lib.sh\ntorchrun t.py\n")
    assert f"{tmp_path / 'lib.sh'}: line " in str(err.value), err.value
    assert "not a launch script" in str(err.value)


# -- a script longer than the reader's line budget: the launch checks are UNKNOWN ---------


def test_a_script_past_the_line_budget_is_not_read_and_says_so(tmp_path):
    start = time.perf_counter()
    spec = _load(tmp_path, "export MASTER_ADDR=10.0.0.1\n" + "true\n" * 40_000
                 + "torchrun --nproc_per_node 2 t.py\n")
    assert time.perf_counter() - start < 5  # counted, not parsed
    assert spec.unread == "40002 lines of commands, more than the 40000 preflight reads"
    # nothing past the budget is guessed: no exit, MASTER_ADDR not the value it had
    assert spec.exit is None and spec.variable("MASTER_ADDR") != "10.0.0.1"


def test_a_grpo_smoke_does_not_claim_the_unread_script_has_no_grpo_run(tmp_path):
    from preflight.judges.stack import grpo_launcher

    spec = _load(tmp_path, "true\n" * 40_001 + "swift rlhf --rlhf_type grpo\n")
    assert grpo_launcher(spec) == (None, "no GRPO run known: the launch script was not "
                                         "read (40002 lines of commands, more than the "
                                         "40000 preflight reads)")


def test_a_sourced_file_past_the_line_budget_is_named(tmp_path):
    (tmp_path / "gen.sh").write_text("true\n" * 40_001)
    spec = _load(tmp_path, "source gen.sh\ntorchrun t.py\n")
    # 2 + 40,001: the lines counted up to the file that crosses the budget, named
    assert spec.unread == (f"40003 lines of commands by the end of {tmp_path / 'gen.sh'}, "
                           "more than the 40000 preflight reads")
    assert not spec.commands


def test_preflight_says_unknown_for_a_script_past_the_line_budget(tmp_path):
    """The real command: the launch checks are UNKNOWN naming the budget (exit 1, NO-GO:
    an unknown blocks GO), the other checks still run; no usage error (exit 4)."""
    script = tmp_path / "run.sh"
    script.write_text("true\n" * 40_001 + "torchrun --nproc_per_node 2 t.py\n")
    report = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "preflight", "--profile", "cpu", "--launch-script", str(script),
         "--report-dir", str(report), "--check", "nested-launcher", "--check", "launch-ports",
         "--check", "master-addr", "--check", "colocate-memory", "--check", "profile-match"],
        cwd=tmp_path, env=base_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    checks = {c["id"]: c for c in
              json.loads((report / "preflight-report.json").read_text())["checks"]}
    for check in ("nested-launcher", "launch-ports"):
        assert checks[check]["severity"] == "unknown", checks[check]
        assert checks[check]["summary"] == ("run.sh not read: 40002 lines of commands, more "
                                            "than the 40000 preflight reads")
    for check in ("master-addr", "colocate-memory"):  # they read the launch too
        assert checks[check]["severity"] == "unknown", checks[check]
    assert checks["profile-match"]["outcome"] == "passed", checks["profile-match"]


def test_a_million_word_array_stops_at_the_word_budget_at_once(tmp_path):
    # one line, 1,000,000 words: bashlex's tokenizer took 75 s over it; counted, not parsed
    start = time.perf_counter()
    spec = _load(tmp_path, "A=(" + " x" * 1_000_000 + ")\ntorchrun --nproc_per_node 2 t.py\n")
    assert time.perf_counter() - start < 5
    # `A=(` is one word, then 1,000,000, then the 4 of the torchrun line
    assert spec.unread == "1000005 words of commands, more than the 200000 preflight reads"
    assert not spec.commands


def test_the_word_budget_counts_every_file_read(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate, "MAX_WORDS", 60)
    (tmp_path / "a.env").write_text("A=(" + " x" * 50 + ")\n")  # 51 words
    read = _load(tmp_path, "source a.env\ntorchrun --nproc_per_node ${#A[@]} t.py\n")
    assert not read.unread and read.commands[0].argv[2].text == "50"
    (tmp_path / "b.env").write_text("B=(x x x x x)\n")
    spec = _load(tmp_path, "source a.env\nsource b.env\ntorchrun t.py\n")
    assert spec.unread == (f"63 words of commands by the end of {tmp_path / 'b.env'}, more "
                           "than the 60 preflight reads")  # 6 + 51 + 6
    assert not spec.commands
