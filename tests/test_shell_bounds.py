"""The launch-script reader stays bounded on hostile scripts: deep nesting and deep or
exploding recursion finish in seconds or are refused with one clear line (exit 4)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from preflight.launch import spec as launch
from preflight.launch.shell import ScriptFileError, evaluate_command
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
    start = time.perf_counter()
    spec = _load(tmp_path, text)
    assert time.perf_counter() - start < 3
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
    start = time.perf_counter()
    spec = _load(tmp_path, script.format(many=many))
    assert time.perf_counter() - start < 3
    assert spec.jobs[0].distributed[0].nproc == 2
