"""preflight's `deepspeed` reading against deepspeed's own runner (nothing launched).

Random command lines, hostfiles and CUDA_VISIBLE_DEVICES go through deepspeed's
`deepspeed.launcher.runner.main` itself, stopped where it has decided the hosts and slots
it launches on (`encode_world_info`), on a fake node of 8 GPUs with ssh answered locally;
preflight's `launchers.deepspeed` must agree: the same usage errors and resource errors,
the same nodes, processes per node and port, the same script and arguments. Where
deepspeed asks the machine (no hostfile, no --include/--num_gpus: every GPU of the node),
preflight says so ("all GPUs") and never states a number.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
from pathlib import Path
from typing import Any

import pytest

from preflight.launch import launchers
from preflight.launch.shell import Var, Word

runner = pytest.importorskip("deepspeed.launcher.runner")

DEVICES = 8  # the fake node's GPUs (what get_accelerator().device_count() answers)
HOSTFILES = [
    "node-a slots=4\nnode-b slots=4\n", "node-a slots=8\nnode-b slots=2\nnode-c slots=2\n",
    "# the rack\n\nnode-a slots=2\n", "node-a 8\n", "node-a slots=2\nnode-a slots=2\n", "",
    "node-a slots=0\nnode-b slots=2\n", "localhost slots=4\n",
]
SPECS = ["localhost:0,1", "localhost", "localhost:", "localhost:1,1,3", "node-a",
         "node-a:0@node-b:1", "node-a:0:1", "node-z", "localhost:0,x", "node-a@node-a:3",
         "localhost:9", "node-b:0,1", "node-c"]


class _Decided(Exception):
    """deepspeed has decided its resources: stop before it launches anything."""


class _Accelerator:
    def visible_devices_envs(self) -> list[str]:
        return ["CUDA_VISIBLE_DEVICES"]

    def device_count(self) -> int:
        return DEVICES


def deepspeed_reading(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What deepspeed 0.19.8's runner.main decides for ARGV in the current directory."""
    got: dict[str, Any] = {}
    parse = runner.parse_args

    def parse_args(args: list[str] | None = None) -> Any:
        got["args"] = parse(args)
        return got["args"]

    def encode(world: dict[str, list[int]]) -> str:
        got["active"] = {h: list(v) for h, v in world.items()}
        raise _Decided

    def autotune(args: Any, active: Any) -> None:
        got["autotuning"] = True
        raise _Decided

    with monkeypatch.context() as m:
        m.setattr(runner, "parse_args", parse_args)
        m.setattr(runner, "encode_world_info", encode)
        m.setattr(runner, "run_autotuning", autotune)
        m.setattr(runner, "get_accelerator", _Accelerator)
        m.setattr(runner.subprocess, "check_call", lambda *a, **k: 0)
        m.setattr(runner.subprocess, "check_output", lambda *a, **k: b"10.0.0.1\n")
        try:
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                runner.main(argv)
        except _Decided:
            if got.get("active") == {}:  # deepspeed/launcher/launch.py:155 node_list[rank]
                return {"ok": False, "usage": False, "error": "no host left to launch on"}
            return {"ok": True, **got}
        except SystemExit:
            return {"ok": False, "usage": True}
        except (ValueError, RuntimeError, AssertionError, IndexError) as exc:
            return {"ok": False, "usage": False, "error": str(exc)}
    raise AssertionError("deepspeed's runner went past its resource decision")


def _command_line(rng: random.Random) -> tuple[list[str], str | None, str | None]:
    """(argv, hostfile text or None, CUDA_VISIBLE_DEVICES or None)."""
    argv: list[str] = []
    hostfile = rng.choice(HOSTFILES) if rng.random() < 0.45 else None
    if hostfile is not None or rng.random() < 0.1:
        argv += [rng.choice(["--hostfile", "-H", "--hostf"]),
                 "hostfile" if hostfile is not None else "missing.txt"]
    if rng.random() < 0.35:
        argv += [rng.choice(["--num_gpus", "--num_accelerators", "--num_g"]),
                 rng.choice(["-1", "0", "1", "2", "3", "8", "x"])]
    if rng.random() < 0.2:
        argv.append(f"--num_nodes={rng.choice(['-1', '0', '1', '2', '3'])}")
    if rng.random() < 0.2:
        argv += [rng.choice(["--include", "-i"]), rng.choice(SPECS)]
    if rng.random() < 0.1:
        argv += [rng.choice(["--exclude", "-e"]), rng.choice(SPECS)]
    if rng.random() < 0.3:
        argv += rng.choice([["--master_port", "6000"], ["--master_p=6001"],
                            ["--master_port", "abc"], ["--master_port", "0"]])
    if rng.random() < 0.15:
        argv += rng.choice([["--no_ssh"], ["--no_ssh", "--node_rank", "0"],
                            ["--no_ssh", "--node_rank=1"], ["--force_multi"]])
    if rng.random() < 0.25:
        argv += rng.choice([["--module"], ["--no_python"], ["-q"], ["--quiet"],
                            ["--log_level", "warning"], ["--log_level", "loud"],
                            ["--autotuning", "run"], ["--autotuning", "never"],
                            ["--launcher", "openmpi"], ["--bogus"], ["--num", "2"],
                            ["--bind_cores_to_rank"], ["--venv_script", "v.sh"]])
    argv += [rng.choice(["train.py", "openrlhf.cli.train_sft"]),
             *rng.choice([[], ["--lr", "1"], ["--deepspeed", "ds.json", "--num_gpus", "9"]])]
    visible = rng.choice([None, None, None, "", "0,1", "2", "0,1,2,3", "GPU-x"])
    return argv, hostfile, visible


def disagreement(argv: list[str], want: dict[str, Any], got: launchers.DeepspeedConfig
                 ) -> str:
    if not want["ok"]:
        if got.error:
            return ""
        if not want["usage"] and "No slot" in want["error"] and "localhost" in \
                want["error"] and not got.hostfile:
            return ""  # a slot past this node's GPUs: the machine decides, launch-gpus checks
        return f"deepspeed stops ({want.get('error', 'usage')}), preflight does not: {got}"
    if got.error:
        return f"preflight says deepspeed stops ({got.error}); deepspeed goes on"
    if want.get("autotuning"):
        return "" if got.unknown else "--autotuning: preflight states values"
    if got.unknown:
        return f"preflight unknown ({got.unknown}) with every word known"
    args, active = want["args"], want["active"]
    counts = {len(v) for v in active.values()}
    problems = []
    if got.nnodes != len(active):
        problems.append(f"nnodes {got.nnodes} vs {len(active)}")
    if got.nproc is not None and counts != {got.nproc}:
        problems.append(f"nproc {got.nproc} vs {counts}")
    if got.nproc is None and len(counts) == 1 and not (
            got.nproc_text.startswith("all GPUs") and "localhost" in active):
        problems.append(f"nproc unknown ({got.nproc_text}) vs {counts}")
    if got.port != args.master_port:
        problems.append(f"port {got.port} vs {args.master_port}")
    if got.program is None or got.program.text != args.user_script or \
            [w.text for w in got.args] != args.user_args:
        problems.append(f"script {got.program} {got.args} vs {args.user_script} "
                        f"{args.user_args}")
    if (got.module, got.no_python) != (args.module, args.no_python):
        problems.append("--module / --no_python")
    return "; ".join(problems)


def test_deepspeed_reading_matches_deepspeed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("DeepSpeed").setLevel(logging.CRITICAL)
    rng = random.Random(20261130)
    monkeypatch.chdir(tmp_path)
    counts = {"cases": 0, "agree": 0, "deepspeed_error": 0, "machine_decides": 0}
    bad = []
    for _ in range(1000):
        argv, hostfile, visible = _command_line(rng)
        path = tmp_path / "hostfile"
        path.unlink(missing_ok=True)
        if hostfile is not None:
            path.write_text(hostfile)
        if visible is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": Var(visible, True)}
        got = launchers.deepspeed([Word(a, a) for a in argv], environ, str(tmp_path))
        want = deepspeed_reading(argv, monkeypatch)
        counts["cases"] += 1
        counts["deepspeed_error"] += not want["ok"]
        counts["machine_decides"] += want["ok"] and got.nproc is None
        why = disagreement(argv, want, got)
        if why:
            bad.append(f"deepspeed {' '.join(argv)} [hostfile={hostfile!r} "
                       f"CUDA_VISIBLE_DEVICES={visible!r}]: {why}")
        else:
            counts["agree"] += 1
    with capsys.disabled():
        print(f"\ndeepspeed oracle: {counts}")
    assert not bad, "\n".join(bad[:15])
    # the generator reaches every side: errors, stated values, machine-decided counts
    assert counts["deepspeed_error"] > 100 and counts["machine_decides"] > 100
    assert counts["cases"] - counts["deepspeed_error"] - counts["machine_decides"] > 150


# -- a hostfile the launch script writes itself (`cat > hostfile <<EOF`) -----------------

HOSTFILE_BODIES = [
    "node-a slots=${G:-4}\nnode-b slots=${G:-4}\n", "localhost slots=$((G * 2))\n",
    "# the rack\nnode-a slots=2\nnode-a slots=2\n", "localhost slots=$(nproc)\n",
    "localhost slots=${G:-8}\n"]
HOSTFILE_WRITERS = [
    "cat > hostfile <<EOF\n{body}EOF\n", "tee hostfile <<EOF >/dev/null\n{body}EOF\n",
    "cat > hostfile <<-EOF\n{tabbed}\tEOF\n", "cat > hostfile <<'EOF'\n{body}EOF\n",
    "if [ -n \"$(cat /nonexistent)\" ]; then\ncat > hostfile <<EOF\n{body}EOF\nfi\n"]
HOSTFILE_ARGS = [[], ["--include", "localhost:0,1"], ["--num_gpus", "2"], ["--num_nodes", "1"]]


def test_a_hostfile_the_script_writes_is_read_as_deepspeed_reads_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Real bash writes the hostfile (a recording `deepspeed` shim first on PATH), then
    deepspeed's runner.main decides from that file and the argv the shim got; preflight's
    reading of the same script (before bash ran, through Command.files) must agree, or
    say it does not know."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bash_oracle import Case, base_env, make_shims, run_bash

    from preflight.launch.shell import evaluate_script

    logging.getLogger("DeepSpeed").setLevel(logging.CRITICAL)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    shims = make_shims(tmp_path / "shims")
    counts = {"cases": 0, "agree": 0, "deepspeed_error": 0, "unknown": 0}
    bad = []
    n = 0
    for body in HOSTFILE_BODIES:
        for writer in HOSTFILE_WRITERS:
            for args in HOSTFILE_ARGS[n % 2::2]:  # half of them, in turn
                n += 1
                work = tmp_path / f"w{n}"
                work.mkdir()
                env = {"G": "2"} if n % 2 else {}
                script = writer.format(body=body, tabbed="".join(
                    "\t" + x for x in body.splitlines(keepends=True)))
                script += f"deepspeed --hostfile hostfile {' '.join(args)} train.py --lr 1\n"
                (work / "run.sh").write_text(script)
                trace = evaluate_script(str(work / "run.sh"), {
                    **base_env(shims, str(work)), **env}, cwd=str(work))
                cmd = next(c for c in trace.commands if c.program == "deepspeed")
                got = launchers.deepspeed(list(cmd.argv[1:]), cmd.env, cmd.cwd, cmd.files)
                calls = run_bash(Case("hostfile", script, env), work, shims)
                with monkeypatch.context() as m:
                    m.chdir(work)
                    want = deepspeed_reading(list(calls[-1].argv), m)
                counts["cases"] += 1
                if got.unknown:
                    counts["unknown"] += 1  # not known: allowed, never a wrong number
                    continue
                counts["deepspeed_error"] += not want["ok"]
                why = disagreement(list(calls[-1].argv), want, got)
                if why:
                    bad.append(f"{script!r}: {why}")
                else:
                    counts["agree"] += 1
    with capsys.disabled():
        print(f"\ndeepspeed oracle, hostfiles the script writes: {counts}")
    assert not bad, "\n".join(bad[:15])
    assert counts["agree"] > 2 * counts["unknown"]
