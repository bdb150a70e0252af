"""Where the script runs what preflight cannot read (a sourced file that is not read, a
path only known at run time, a script it runs that is not read, a command substitution
past the reading budget), the launch checks do not say "no launcher": real bash, with
recording launcher shims (bash_oracle.py), shows the launcher such a file starts; the
checks that found no launcher in what they read are UNKNOWN, naming file:line.

Before: each of these scripts passed nested-launcher with "no distributed launcher in the
script" (or "one launcher layer per job"), and skipped launch-ports / launch-gpus /
launcher-args with "no distributed launcher in the launch script", while bash ran one."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bash_oracle import Case, base_env, compare, make_shims, run_bash  # noqa: E402

from preflight.judges import launch as judge  # noqa: E402
from preflight.judges import multinode as multinode_judge  # noqa: E402
from preflight.judges import stack as stack_judge  # noqa: E402
from preflight.launch import spec as launch  # noqa: E402
from preflight.launch.shell import evaluate  # noqa: E402
from preflight.model import Kind  # noqa: E402
from preflight.probes import multinode, ports  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

NESTED = "torchrun --nproc_per_node 2 -m torch.distributed.run t.py\n"
# 101 nested `if`s: one level past what preflight reads (source.MAX_NESTING)
TOO_DEEP = "".join("if true; then\n" for _ in range(101)) + "fi\n" * 101


def _big(path: Path) -> None:  # past source.MAX_BYTES: bash reads it, preflight does not
    path.write_text(NESTED + "#" * (3 * 2**20) + "\n")


def _deep(path: Path) -> None:
    path.write_text(NESTED + TOO_DEEP)


def _named(path: Path) -> None:  # the file is there; its name comes from a file's content
    path.write_text(NESTED)
    (path.parent / "name.txt").write_text(path.stem + "\n")


# (name, the script, the file it sources or runs, how that file is made)
CASES = [
    ("source of a path only known at run time", 'X="$(cat name.txt)"\nsource "./$X.sh"\n',
     "env.sh", _named),
    ("source of a file too large to read", "source ./big.sh\n", "big.sh", _big),
    ("source of a file nested too deep", ". ./deep.sh\n", "deep.sh", _deep),
    ("bash runs a script only known at run time", 'X="$(cat name.txt)"\nbash "$X.sh"\n',
     "inner.sh", _named),
    ("exec of a script only known at run time", 'X="$(cat name.txt)"\nexec "./$X.sh"\n',
     "inner.sh", _named),
    ("bash runs a script too large to read", "bash ./big.sh\n", "big.sh", _big),
]


def _bash_and_preflight(tmp_path: Path, script: str, make=None, rel: str = ""
                        ) -> tuple[list, launch.LaunchSpec, dict[str, str]]:
    shims = make_shims(tmp_path / "shims")
    work = tmp_path / "w"
    work.mkdir()
    if make is not None:
        make(work / rel)
        (work / rel).chmod(0o755)
    case = Case("unseen", script)
    calls = run_bash(case, work, shims)
    env = base_env(shims, str(work))
    spec = launch.load(str(work / "run.sh"), None, env, cwd=str(work))
    return calls, spec, env


@pytest.mark.parametrize("script, rel, make", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_launcher_in_what_preflight_cannot_read_is_unknown_not_absent(
        tmp_path, script, rel, make):
    calls, spec, _ = _bash_and_preflight(tmp_path, script, make, rel)
    # the oracle: bash really runs the nested launcher from that file
    assert [(c.program, c.argv[:2]) for c in calls] == [("torchrun", ("--nproc_per_node",
                                                                      "2"))], calls
    assert not spec.jobs  # preflight did not read it ...
    (where,) = spec.unseen  # ... and says where, by file:line (the line it stopped at)
    assert where.split(":")[0] in ("run.sh", rel) and where.split(":")[1].isdigit(), where
    nested = judge.nested_launcher(judge.NestedFacts(spec, {}))
    assert nested.deciding[0].kind is Kind.UNKNOWN and where in nested.message, nested
    assert not nested.ok  # was: "no distributed launcher in the script"
    for verdict in (judge.launch_ports(judge.PortsFacts(spec, {}, {}, "29501")),
                    judge.launch_gpus(judge.GpusFacts(spec, 8, None)),
                    judge.launcher_args(judge.ArgsFacts(spec))):
        assert not verdict.skip, verdict.skip  # was: "no distributed launcher in the ..."
        assert verdict.deciding[0].kind is Kind.UNKNOWN, verdict
        assert verdict.message.startswith("no ") and where in verdict.message, verdict.message


def test_the_bash_oracle_counts_such_a_launcher_unknown_not_missed(tmp_path):
    """compare(): a launcher bash ran that preflight did not see is wrong, unless preflight
    said where it could not read (Trace.unseen)."""
    shims = make_shims(tmp_path / "shims")
    work = tmp_path / "w"
    work.mkdir()
    _named(work / "env.sh")
    case = Case("unseen", 'X="$(cat name.txt)"\nsource "./$X.sh"\n')
    calls = run_bash(case, work, shims)
    env = base_env(shims, str(work))
    trace = evaluate.evaluate_script(str(work / "run.sh"), env, cwd=str(work))
    assert trace.unseen and compare(case, trace, calls, env).kind == "unknown"
    blind = evaluate.Trace(trace.commands, trace.variables, trace.unknowns, trace.exit,
                           trace.files)  # the same reading, not saying where it was blind
    assert compare(case, blind, calls, env).kind == "wrong"


def test_a_sourced_fifo_is_unknown_and_never_opened(tmp_path):
    """bash reads what a writer puts in the FIFO (here a nested launcher); preflight never
    opens it (no hang) and says the checks cannot tell."""
    shims = make_shims(tmp_path / "shims")
    work = tmp_path / "w"
    work.mkdir()
    os.mkfifo(work / "env.sh")

    def feed() -> None:
        with open(work / "env.sh", "w") as fifo:  # blocks until bash opens it
            fifo.write(NESTED)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    calls = run_bash(Case("fifo", "source ./env.sh\n"), work, shims)
    writer.join(timeout=20)
    assert [c.program for c in calls] == ["torchrun"], calls
    env = base_env(shims, str(work))
    spec = launch.load(str(work / "run.sh"), None, env, cwd=str(work))  # the FIFO: no writer
    assert spec.unseen == (f"run.sh:1: source not read: {work / 'env.sh'}: not a regular "
                           "file",)
    nested = judge.nested_launcher(judge.NestedFacts(spec, {}))
    assert nested.deciding[0].kind is Kind.UNKNOWN, nested


def test_eval_past_the_nesting_depth_is_unknown_not_skipped(tmp_path):
    """An eval 10 function calls deep: bash runs it; preflight read it as if it were not
    there (A stayed 2: `--nproc_per_node 2` stated, bash ran 4)."""
    script = ('A=2\nf() { if [ "$1" -gt 0 ]; then f $(($1 - 1)); else eval "A=4"; fi; }\n'
              "f 10\ntorchrun --nproc_per_node $A t.py\n")
    calls, spec, _ = _bash_and_preflight(tmp_path, script)
    assert [c.argv for c in calls] == [("--nproc_per_node", "4", "t.py")]
    (job,) = spec.jobs
    nproc = job.command.argv[2]
    assert not nproc.known and "eval at run.sh:2" in nproc.reason, nproc  # was: "2"
    assert "run.sh:2: eval nested too deep: not read" in spec.unseen


@pytest.mark.parametrize("script", [
    "bash -o pipefail ./inner.sh\n",  # was: `pipefail` read as the script, inner.sh unread
    "OUT=$(bash ./inner.sh)\n",  # was: what inner.sh starts dropped (another file's lines)
], ids=["bash -o pipefail", "in a command substitution"])
def test_a_script_bash_runs_is_read_for_its_launchers(tmp_path, script):
    def inner(path: Path) -> None:
        path.write_text(NESTED)

    calls, spec, _ = _bash_and_preflight(tmp_path, script, inner, "inner.sh")
    assert [c.program for c in calls] == ["torchrun"]
    nested = judge.nested_launcher(judge.NestedFacts(spec, {}))
    # was: PASS "no distributed launcher in the script"
    assert nested.deciding[0].kind is Kind.BLOCKER, nested
    assert "torchrun at inner.sh:1" in nested.message


def test_bash_reading_its_commands_from_a_here_document_is_unknown(tmp_path):
    calls, spec, _ = _bash_and_preflight(tmp_path, "bash <<EOF\n" + NESTED + "EOF\n")
    assert [c.program for c in calls] == ["torchrun"]
    assert spec.unseen == ("run.sh:1: bash reads the commands it runs from its input, not "
                           "read",)
    assert judge.nested_launcher(judge.NestedFacts(spec, {})).deciding[0].kind is Kind.UNKNOWN


def test_a_missing_script_stays_known_absent(tmp_path):
    """bash fails on a sourced file or script that is not there: nothing runs, so the
    checks still say so (unknown only where the file may be there at run time)."""
    calls, spec, _ = _bash_and_preflight(
        tmp_path, "source /nonexistent/env.sh\nbash /nonexistent/run.sh\n")
    assert calls == [] and spec.unseen == ()
    assert judge.nested_launcher(judge.NestedFacts(spec, {})).ok == \
        "no distributed launcher in the script"
    assert judge.launch_ports(judge.PortsFacts(spec, {}, {}, "1")).skip == judge.NO_LAUNCHER


def test_checks_that_found_their_facts_keep_them(tmp_path):
    """A launcher seen keeps its verdict (a nested one is still NO-GO; launch-gpus still
    counts it and says so), the unread file named in the evidence; what launch-gpus read
    passes, but the unread file may start another launcher: UNKNOWN, not PASS."""
    script = NESTED + 'X="$(cat name.txt)"\nsource "./$X.sh"\n'
    calls, spec, _ = _bash_and_preflight(tmp_path, script, _named, "env.sh")
    assert [c.program for c in calls] == ["torchrun", "torchrun"]
    nested = judge.nested_launcher(judge.NestedFacts(spec, {}))
    assert nested.deciding[0].kind is Kind.BLOCKER
    gpus = judge.launch_gpus(judge.GpusFacts(spec, 8, None))
    assert [p.kind for p in gpus.problems] == [Kind.UNKNOWN], gpus  # was: PASS
    assert gpus.message.startswith(f"{gpus.ok} in what preflight read") and \
        "run.sh:3" in gpus.message and gpus.evidence["unseen"] == list(spec.unseen), gpus


def test_a_launchers_child_script_that_is_not_known_is_unknown(tmp_path):
    """torchrun --no-python bash SCRIPT: a script not known (or one that sources a file
    that is not read) may start a second launcher. Was: one launcher layer per job."""
    (tmp_path / "inner.sh").write_text('source "$(cat name.txt)"\n')
    for line in ('torchrun --nproc_per_node 2 --no-python bash "$(cat s.txt)"',
                 "torchrun --nproc_per_node 2 --no-python bash inner.sh"):
        spec = launch.load(None, line, {"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
        nested = judge.nested_launcher(judge.NestedFacts(spec, {}))
        assert nested.deciding[0].kind is Kind.UNKNOWN, (line, nested)
        assert "cannot tell what torchrun at <--launch-cmd>:1 starts" in nested.message


def test_the_other_no_x_checks_say_unknown(tmp_path):
    script = 'X="$(cat name.txt)"\nsource "./$X.sh"\n'
    _, spec, _ = _bash_and_preflight(tmp_path, script, _named, "env.sh")
    grpo = judge.grpo_batch_divisible(spec)  # was: skip "no GRPO run ... in the script"
    assert grpo.deciding[0].kind is Kind.UNKNOWN and "run.sh:2" in grpo.message
    inputs = judge.launch_inputs(judge.InputsFacts(spec))  # was: skip "gives no ... paths"
    assert inputs.deciding[0].kind is Kind.UNKNOWN and "run.sh:2" in inputs.message
    via, why = stack_judge.grpo_launcher(spec)  # was: "no GRPO run in the launch script"
    assert via is None and why.startswith("no GRPO run known: the launch script runs what "
                                          "preflight could not read (run.sh:2: ")
    memory = stack_judge.colocate_memory(stack_judge.ColocateFacts(
        [], "run.sh", 0.1, 0.3, 80.0, "", spec.unseen))  # was: skip "no ... share"
    assert memory.deciding[0].kind is Kind.UNKNOWN and "run.sh:2" in memory.message


# -- a command substitution past the reading budget --------------------------------------


def test_a_substitution_past_the_budget_is_unknown_naming_its_line(tmp_path, monkeypatch):
    """Was: its reading stopped unsaid (no unknown, LaunchSpec.unread empty): nested-launcher
    PASS "no distributed launcher in the script" while bash ran the launcher in it."""
    monkeypatch.setattr(evaluate, "MAX_LINES", 50)

    def gen(path: Path) -> None:
        path.write_text("true\n" * 60 + NESTED)

    calls, spec, _ = _bash_and_preflight(tmp_path, "echo start\nOUT=$(source ./gen.sh)\n",
                                         gen, "gen.sh")
    assert [c.program for c in calls] == ["torchrun"]
    assert not spec.unread  # the script itself was read to its end
    (hit,) = [u for u in spec.unknowns if u.line == 2 and "not read to its end" in u.reason]
    assert f"by the end of {tmp_path / 'w' / 'gen.sh'}" in hit.reason, hit
    assert spec.unseen[0].startswith("run.sh:2: $(source ./gen.sh): a command substitution "
                                     "not read to its end (")
    nested = judge.nested_launcher(judge.NestedFacts(spec, {}))
    assert nested.deciding[0].kind is Kind.UNKNOWN and "run.sh:2" in nested.message


def test_substitutions_share_the_scripts_budget(tmp_path, monkeypatch):
    """Each substitution had a budget of its own: 60 substitutions that source a long file
    parsed it 60 times (MAX_LINES each). Now they draw on the script's one budget."""
    monkeypatch.setattr(evaluate, "MAX_LINES", 300)
    (tmp_path / "lib.sh").write_text("true\n" * 100)
    parsed: list[int] = []
    real = evaluate.parse_chunks

    def counting(text: str):
        parsed.append(sum(1 for ln in text.split("\n") if ln.strip()))
        return real(text)

    monkeypatch.setattr(evaluate, "parse_chunks", counting)
    script = tmp_path / "run.sh"
    script.write_text("".join(f"O{i}=$(source ./lib.sh)\n" for i in range(60)))
    spec = launch.load(str(script), None, {"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    assert sum(parsed) <= 300 + 60 * 2, sum(parsed)  # was: 60 x 100 lines of lib.sh
    assert spec.unseen and all("not read to its end" in u for u in spec.unseen)


def test_a_line_the_parser_cannot_read_is_where_a_launcher_may_start(tmp_path):
    """bashlex 0.18 has no `coproc`; bash runs the launcher in it. Was: launch-ports and
    launch-gpus skipped with "no distributed launcher in the launch script"."""
    calls, spec, _ = _bash_and_preflight(tmp_path, "coproc torchrun --nproc_per_node 2 t.py\n"
                                                   "wait\n")
    assert [c.program for c in calls] == ["torchrun"]
    assert spec.unseen == ("run.sh:1: not parsed: coproc torchrun --nproc_per_node 2 t.py",)
    for verdict in (judge.launch_ports(judge.PortsFacts(spec, {}, {}, "29501")),
                    judge.launch_gpus(judge.GpusFacts(spec, 8, None))):
        assert verdict.deciding[0].kind is Kind.UNKNOWN and "run.sh:1" in verdict.message


def test_preflight_says_unknown_where_a_sourced_file_is_not_read(tmp_path):
    """The real command: the launch checks that found no launcher are UNKNOWN naming the
    line (an unknown blocks GO: exit 1); no usage error, no traceback."""
    import json
    import subprocess

    from support import base_env as suite_env

    (tmp_path / "env.sh").write_text(NESTED)
    (tmp_path / "name.txt").write_text("env\n")
    script = tmp_path / "run.sh"
    script.write_text('X="$(cat name.txt)"\nsource "./$X.sh"\n')
    report = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "preflight", "--profile", "cpu", "--launch-script", str(script),
         "--report-dir", str(report), "--check", "nested-launcher", "--check", "launch-ports",
         "--check", "launcher-args"],
        cwd=tmp_path, env=suite_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    checks = {c["id"]: c for c in
              json.loads((report / "preflight-report.json").read_text())["checks"]}
    for check in ("nested-launcher", "launch-ports", "launcher-args"):
        assert checks[check]["severity"] == "unknown", checks[check]
        assert 'run.sh:2: source "./$X.sh": the path is not known' in \
            checks[check]["summary"], checks[check]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")  # the check module
def test_ray_path_does_not_count_the_launch_as_ray_free_where_it_is_blind(tmp_path):
    """ray-path downgrades `ray: command not found` to a warning only when every program
    the launch starts is known not to be ray; a sourced file not read may run ray. Was:
    downgraded (launch_given True)."""
    from types import SimpleNamespace

    from preflight.checks.test_node import _programs_known

    _, seen, _ = _bash_and_preflight(tmp_path / "a", "python train.py\n")
    assert _programs_known(SimpleNamespace(launch=seen))
    _, blind, _ = _bash_and_preflight(tmp_path / "b", 'X="$(cat name.txt)"\nsource "./$X.sh"\n'
                                                      "python train.py\n", _named, "env.sh")
    assert not _programs_known(SimpleNamespace(launch=blind))


# An interactive-only ~/.bashrc: the guard bash's own skeleton bashrc starts with (Debian's
# /etc/skel/.bashrc), then the lines a login set-up appends that preflight cannot read (a
# tool's generated code run by eval) and, to make the guard matter, a launcher.
INTERACTIVE_ONLY = {
    "case $-": "case $- in\n    *i*) ;;\n      *) return;;\nesac\n",
    "[ -z $PS1 ]": '[ -z "$PS1" ] && return\n',
}
AFTER_GUARD = 'eval "$(pyenv init -)"\n. "$HOME/.cargo/env"\n' + NESTED


@pytest.mark.parametrize("guard", list(INTERACTIVE_ONLY.values()), ids=list(INTERACTIVE_ONLY))
def test_ordinary_environment_setup_is_read_not_unseen(tmp_path, guard):
    """What a launch script sets up before the launch on most nodes is read to its end, so
    it does not make the checks UNKNOWN (a gate that cries wolf on every script gets
    deleted): `source ~/.bashrc` returns at its interactive-only guard in the
    non-interactive bash that runs a script (bash runs nothing after it here), and a
    virtualenv's own bin/activate (made by `python -m venv`) only sets the environment.
    Measured on 741 public launch scripts (verl, ms-swift, slime, OpenRLHF, Megatron-LM,
    LLaMA-Factory, torchtitan examples): none of these idioms was unseen."""
    import subprocess

    def make(work: Path) -> None:
        (work / ".bashrc").write_text(guard + AFTER_GUARD)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / "venv")],
                       check=True, timeout=120)
        for exe in (work / "venv" / "bin").glob("python*"):
            exe.unlink()  # `python` below is the oracle's recording shim, not this venv's

    calls, spec, _ = _bash_and_preflight(
        tmp_path, "source ~/.bashrc\nsource venv/bin/activate\npython train.py\n", make, ".")
    assert [(c.program, c.argv) for c in calls] == [("python", ("train.py",))], calls
    assert spec.unseen == ()
    assert [c.program for c in spec.commands if c.program in ("torchrun", "python")] == \
        ["python"]
    nested = judge.nested_launcher(judge.NestedFacts(spec, {}))
    assert nested.ok and not nested.problems, nested
    for verdict in (judge.launch_ports(judge.PortsFacts(spec, {}, {}, "29501")),
                    judge.launch_gpus(judge.GpusFacts(spec, 8, None))):
        assert verdict.skip and not verdict.problems, verdict


# -- a check that found launchers, where an unread file starts more ------------------


def _taken_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock, sock.getsockname()[1]


def _master(spec: launch.LaunchSpec, env: dict[str, str]) -> Any:
    cfg = multinode.launch_config(env, spec, 8, "")
    return multinode_judge.master_addr(multinode_judge.MasterFacts(
        cfg, {"eth0": ["10.0.0.5"]}, ["eth0"], multinode.Resolved("node1", ("10.0.0.5",)),
        None, None, None, None))


def _ports(spec: launch.LaunchSpec) -> judge.PortsFacts:
    """What the adapter gives launch-ports: each port the layers bind, tried here."""
    binds = {}
    for layer in judge.distributed(spec):
        if layer.port is not None:
            bound = ports.try_bind(layer.port)
            binds[layer.port] = judge.Bind(bound.error if not bound.ok else "")
    return judge.PortsFacts(spec, {}, binds, "29999")


def _verdicts(spec: launch.LaunchSpec, env: dict[str, str]) -> dict[str, Any]:
    inputs = judge.InputsFacts(spec, {p: os.path.exists(p) for p in judge.input_paths(spec)})
    return {"launch-inputs": judge.launch_inputs(inputs),  # (no output paths here)
            "launch-ports": judge.launch_ports(_ports(spec)),
            "launch-gpus": judge.launch_gpus(judge.GpusFacts(spec, 8, None)),
            "launcher-args": judge.launcher_args(judge.ArgsFacts(spec)),
            "master-addr": _master(spec, env)}


def test_a_check_that_found_launchers_is_unknown_where_an_unread_file_starts_more(tmp_path):
    """run.sh starts one sound torchrun, then sources a file whose name only the run
    decides. Real bash (recording shims) runs what that file holds too: a torchrun on a
    port that is taken here, 16 processes per node on an 8-GPU node, two nodes with no
    MASTER_ADDR, and one whose `--nnodes=2:1` torchrun rejects. Judged alone (its lines
    given as --launch-cmd) each check is NO-GO there, so the unread part decides: before,
    launch-ports, launch-gpus and launcher-args said PASS (on the sound launcher) and
    master-addr skipped ("one node"); now each is UNKNOWN naming run.sh:3, its verdict on
    what it read kept in the message."""
    sock, taken = _taken_port()
    with sock:
        hidden = (f"torchrun --nnodes 2 --nproc_per_node 16 --master_port {taken} t.py\n"
                  "torchrun --nnodes=2:1 t.py\ntorchrun --nproc_per_node 2 missing.py\n")

        def make(path: Path) -> None:
            path.write_text(hidden)
            (path.parent / "name.txt").write_text("env\n")
            (path.parent / "t.py").write_text("print('train')\n")

        script = ('torchrun --nproc_per_node 2 --master_port 0 t.py\n'
                  'X="$(cat name.txt)"\nsource "./$X.sh"\n')
        calls, spec, env = _bash_and_preflight(tmp_path, script, make, "env.sh")
        assert [c.argv[-1] for c in calls if c.program == "torchrun"] == \
            ["t.py"] * 3 + ["missing.py"], calls
        assert spec.unseen and spec.unseen[0].startswith("run.sh:3: source"), spec.unseen
        for line in hidden.splitlines():  # what the unread file runs, judged as read
            alone = launch.load(None, line, env, cwd=str(tmp_path / "w"))
            assert any(v.deciding and v.deciding[0].kind is Kind.BLOCKER
                       for v in _verdicts(alone, env).values()), line
        for check, verdict in _verdicts(spec, env).items():
            assert not verdict.skip, (check, verdict.skip)  # master-addr: was "one node"
            assert [p.kind for p in verdict.deciding] == [Kind.UNKNOWN], (check, verdict)
            assert "in what preflight read, but" in verdict.message and \
                "run.sh:3: source" in verdict.message, (check, verdict.message)
            assert verdict.evidence["unseen"] == list(spec.unseen), check
            if check != "master-addr":  # the fix shows the line; never the check's own
                assert verdict.deciding[0].fix.startswith(
                    f"sed -n '3p' {tmp_path / 'w' / 'run.sh'}"), verdict.deciding[0].fix


def test_a_check_that_found_launchers_keeps_pass_where_everything_was_read(tmp_path):
    """The same sound launcher with the file read (its name known) or with nothing unread:
    PASS stays (no cry-wolf where preflight read it all), and a NO-GO on what was read
    still decides over an unread file."""
    def sound(path: Path) -> None:
        path.write_text("export FOO=1\n")

    def sound_and_trainer(path: Path) -> None:
        sound(path)
        (path.parent / "t.py").write_text("print('train')\n")

    _, read, env = _bash_and_preflight(
        tmp_path / "a", "source ./env.sh\ntorchrun --nproc_per_node 2 --master_port 0 t.py\n",
        sound_and_trainer, "env.sh")
    assert read.unseen == ()
    verdicts = _verdicts(read, env)
    assert verdicts["master-addr"].skip.startswith("one node")
    for check in ("launch-inputs", "launch-ports", "launch-gpus", "launcher-args"):
        assert verdicts[check].ok and not verdicts[check].problems, (check, verdicts[check])
    _, broken, env = _bash_and_preflight(
        tmp_path / "b", 'torchrun --nproc_per_node 16 t.py\nX="$(cat name.txt)"\n'
                        'source "./$X.sh"\n', _named, "env.sh")
    gpus = judge.launch_gpus(judge.GpusFacts(broken, 8, None))
    assert gpus.deciding[0].kind is Kind.BLOCKER and "16 processes" in gpus.message, gpus
    assert gpus.evidence["unseen"] == list(broken.unseen)


def test_a_warning_on_what_was_read_stays_in_the_unknown_message(tmp_path):
    """The UNKNOWN decides the message, so a WARN on what was read is said in it."""
    (tmp_path / "run.sh").write_text('export MASTER_PORT=1234\ntorchrun --nproc_per_node 2 '
                                     't.py\nsource "$(cat n)"\n')
    spec = launch.load(str(tmp_path / "run.sh"), None, {"PATH": "/usr/bin:/bin"},
                       cwd=str(tmp_path))
    ports_v = judge.launch_ports(judge.PortsFacts(spec, {}, {}, "29999"))
    assert [p.kind for p in ports_v.problems] == [Kind.WARNING, Kind.UNKNOWN], ports_v
    assert ports_v.message.startswith("WARN MASTER_PORT=1234 is exported for torchrun at "
                                      "run.sh:2") and "run.sh:3: source" in ports_v.message
