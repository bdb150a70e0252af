"""preflight's `accelerate launch` reading against accelerate itself (nothing launched).

Random config files (yaml/json, given with --config_file or at the default path under
$HF_HOME) and command lines go through accelerate's own `launch_command_parser` and
`_validate_launch_command` (its config loading and defaults); preflight must agree on
num_processes, num_machines, main_process_port and gpu_ids, or say unknown where
accelerate asks the machine (no config: every visible GPU).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import pytest

from preflight.launch import launchers
from preflight.launch.shell import Var, Word

launch_mod = pytest.importorskip("accelerate.commands.launch")
yaml = pytest.importorskip("yaml")
config_args = pytest.importorskip("accelerate.commands.config.config_args")

CASES = 300


def config(rng: random.Random) -> dict:
    out = {"compute_environment": "LOCAL_MACHINE",
           "distributed_type": rng.choice(["MULTI_GPU", "NO", "MULTI_GPU"]),
           "mixed_precision": "no", "use_cpu": False, "debug": False}
    for key, values in (("num_processes", [1, 2, 4, 8]), ("num_machines", [1, 1, 2]),
                        ("main_process_port", [29500, 29600, 0, 6000]),
                        ("gpu_ids", ["all", "0,1", "0,1,2,3", "0"]),
                        ("machine_rank", [0]), ("main_process_ip", ["10.0.0.1"])):
        if rng.random() < 0.7:
            out[key] = rng.choice(values)
    return out


def command_line(rng: random.Random) -> list[str]:
    argv = []
    for key, values in (("num_processes", ["1", "2", "4"]), ("num_machines", ["1", "2"]),
                        ("main_process_port", ["29501", "0"]), ("gpu_ids", ["all", "0,1"])):
        if rng.random() < 0.25:
            name = f"--{key}" if rng.random() < 0.5 else f"--{key.replace('_', '-')}"
            value = rng.choice(values)
            argv += [f"{name}={value}"] if rng.random() < 0.3 else [name, value]
    if rng.random() < 0.15:
        argv.append("--multi_gpu")
    return argv


def accelerate_reading(argv: list[str], default_path: Path, monkeypatch) -> dict:
    monkeypatch.setattr(launch_mod, "default_config_file", str(default_path))
    monkeypatch.setattr(config_args, "default_config_file", str(default_path))
    parser = launch_mod.launch_command_parser()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = parser.parse_args([*argv, "train.py", "--lr", "1"])
            args, _, _ = launch_mod._validate_launch_command(args)
    except (ValueError, FileNotFoundError, SystemExit) as exc:
        return {"error": str(exc)}
    port = args.main_process_port
    return {"nproc": args.num_processes, "nnodes": args.num_machines,
            "port": 29500 if port is None else port, "gpu_ids": args.gpu_ids}


def _differences(got: launchers.AccelerateConfig, want: dict) -> list[str]:
    """Everything but nproc: nodes, port, gpu_ids, the script and its arguments."""
    problems = []
    if got.nnodes != want["nnodes"]:
        problems.append(f"nnodes {got.nnodes} != {want['nnodes']}")
    if want["port"] == 0:
        if got.port is not None or got.port_text != launchers.RANDOM:
            problems.append(f"port {got.port} for port 0")
    elif got.port != want["port"]:
        problems.append(f"port {got.port} != {want['port']}")
    if want["gpu_ids"] is not None and got.gpu_ids != str(want["gpu_ids"]):
        problems.append(f"gpu_ids {got.gpu_ids} != {want['gpu_ids']}")
    if got.program is None or got.program.text != "train.py" or \
            [a.text for a in got.args] != ["--lr", "1"]:
        problems.append(f"program {got.program} {got.args}")
    return problems


def test_accelerate_reading_matches_accelerate(tmp_path, monkeypatch, capsys):
    rng = random.Random(115)
    counts = {"cases": 0, "agree": 0, "accelerate_error": 0, "unknown_allowed": 0}
    bad = []
    for n in range(CASES):
        home = tmp_path / f"hf{n}"
        default = home / "accelerate" / "default_config.yaml"
        argv = command_line(rng)
        where = rng.choice(["default", "given-yaml", "given-json", "none"])
        if where != "none":
            cfg = config(rng)
            path = default if where == "default" else tmp_path / f"c{n}.{where[6:]}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(cfg) if where == "given-json" else yaml.safe_dump(cfg))
            if where != "default":
                argv = ["--config_file", str(path), *argv]
        want = accelerate_reading(argv, default, monkeypatch)
        got = launchers.accelerate([Word(a, a) for a in [*argv, "train.py", "--lr", "1"]],
                                   {"HF_HOME": Var(str(home), True)}, str(tmp_path))
        counts["cases"] += 1
        if "error" in want:
            counts["accelerate_error"] += 1
            if not (got.error or got.unknown):
                bad.append(f"{argv}: accelerate fails ({want['error']}), preflight reads "
                           f"{got}")
            continue
        if got.error or got.unknown:
            bad.append(f"{argv}: accelerate reads {want}, preflight says "
                       f"{got.error or got.unknown}")
            continue
        problems = []
        if got.nproc is None and where == "none" and "--num_processes" not in " ".join(
                argv).replace("-", "_").replace("__", "--"):
            counts["unknown_allowed"] += 1  # no config: accelerate counts the GPUs
        elif got.nproc != want["nproc"]:
            problems.append(f"nproc {got.nproc} != {want['nproc']}")
        problems += _differences(got, want)
        if problems:
            bad.append(f"{where} {argv}: " + "; ".join(problems))
        else:
            counts["agree"] += 1
    with capsys.disabled():
        print(f"\naccelerate oracle: {counts}")
    assert not bad, f"{len(bad)} disagreements:\n" + "\n".join(bad[:15])


def test_missing_config_file_is_an_error(tmp_path):
    got = launchers.accelerate([Word("--config_file", ""), Word(str(tmp_path / "no.yaml"), ""),
                                Word("t.py", "")], {}, str(tmp_path))
    assert "does not exist" in got.error


# -- a config the launch script writes itself (`cat > acc.yaml <<EOF`) ------------------

# Config bodies (${...} as the script writes them) x the ways scripts write them.
BODIES = {
    "vars": "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\n"
            "num_processes: ${NGPU}\nmain_process_port: ${PORT:-29555}\nnum_machines: 1\n",
    "arith": "distributed_type: MULTI_GPU\nnum_processes: $(( NGPU * 2 ))\n"
             "gpu_ids: ${GPUS:-all}\n",
    "no-type": "num_processes: ${NGPU}\n",
    "type-no": "distributed_type: NO\nmain_process_port: 0\n",
    "gpu-ids": "distributed_type: MULTI_GPU\nnum_processes: 2\ngpu_ids: \"0\"\n",
    "unknown": "distributed_type: MULTI_GPU\nnum_processes: $(nvidia-smi -L | wc -l)\n",
    "literal": "distributed_type: MULTI_GPU\nnum_processes: 4\nnum_machines: ${NNODES:-1}\n",
    "json": "{\"distributed_type\": \"MULTI_GPU\", \"num_processes\": ${NGPU},"
            " \"main_process_port\": ${PORT:-6000}}\n",
}
WRITERS = {
    "cat": "cat > {f} <<EOF\n{body}EOF\n",
    "tee": "tee {f} <<EOF >/dev/null\n{body}EOF\n",
    "tabs": "cat > {f} <<-EOF\n{tabbed}\tEOF\n",
    "quoted": "cat > {f} <<'EOF'\n{body}EOF\n",
    "append": "cat > {f} <<EOF\n{head}EOF\ncat >> {f} <<EOF\n{tail}EOF\n",
    "rewrite": "cat > {f} <<EOF\ndistributed_type: NO\nEOF\ncat > {f} <<EOF\n{body}EOF\n",
    "if-undecided": "if [ -n \"$(cat /nonexistent)\" ]; then\n  cat > {f} <<EOF\n{body}EOF\n"
                    "fi\n",
    "function": "write() {{\n  cat > \"$1\" <<EOF\n{body}EOF\n}}\nwrite {f}\n",
}
ENVS = [{"NGPU": "4"}, {"NGPU": "2", "PORT": "29600", "GPUS": "0,1"}, {"NGPU": "8"}]


def _script(body: str, writer: str, path: str) -> str:
    lines = body.splitlines(keepends=True)
    text = WRITERS[writer].format(f=path, body=body, tabbed="".join("\t" + x for x in lines),
                                  head="".join(lines[:1]), tail="".join(lines[1:]))
    return text + f"accelerate launch --config_file {path} train.py --lr 1\n"


def test_a_config_the_script_writes_is_read_as_accelerate_reads_it(tmp_path, monkeypatch,
                                                                   capsys):
    """Each script runs under real bash (a recording `accelerate` shim first on PATH);
    the file bash wrote and the argv the shim got go through accelerate's own
    `_validate_launch_command`; preflight's reading of the same script (spec.load, before
    bash ran) must agree on processes, machines and port, or say it does not know."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bash_oracle import Case, base_env, make_shims, run_bash

    from preflight.launch import spec as launch_spec

    shims = make_shims(tmp_path / "shims")
    counts = {"cases": 0, "agree": 0, "accelerate_error": 0, "unknown": 0}
    bad = []
    # every body x writer once, the environments in turn (the shapes of the writing
    # itself, every quoting and expansion, are tests/test_heredoc_oracle.py's)
    for n, (body, writer) in enumerate((b, w) for b in BODIES for w in WRITERS):
        env = ENVS[n % len(ENVS)]
        work = tmp_path / f"w{n}"
        work.mkdir()
        disk = n % 4 == 0  # an older config on disk: the script's content wins
        name = "acc.json" if body == "json" else "acc.yaml"
        if disk:
            (work / name).write_text("distributed_type: MULTI_GPU\nnum_processes: 3\n")
        script = _script(BODIES[body], writer, name)
        (work / "run.sh").write_text(script)
        full_env = {**base_env(shims, str(work)), **env, "HF_HOME": str(work / "hf"),
                    "ORACLE_LOG": str(work / ".log")}
        layer = launch_spec.load(str(work / "run.sh"), None, full_env,
                                 str(work)).jobs[-1].distributed[0]
        calls = run_bash(Case(f"{body}-{writer}", script, {**env, "HF_HOME": str(work / "hf")}),
                         work, shims)
        argv = list(calls[-1].argv)
        assert argv[0] == "launch" and argv[-3:] == ["train.py", "--lr", "1"], argv
        with monkeypatch.context() as m:
            m.chdir(work)  # the shim's cwd: where accelerate opens acc.yaml
            want = accelerate_reading(argv[1:-3], work / "hf" / "default_config.yaml", m)
        counts["cases"] += 1
        written = (work / name).read_text() if (work / name).exists() else "(no file)"
        where = f"{body}/{writer}/{env}: {written!r}"
        if layer.unread or layer.nproc is None and layer.port is None and not layer.error:
            counts["unknown"] += 1  # not known: allowed, never a wrong number
            continue
        if "error" in want:
            counts["accelerate_error"] += 1
            if not layer.error:
                bad.append(f"{where}: accelerate fails ({want['error']}), preflight reads "
                           f"{layer.nproc} processes")
            continue
        got = (layer.nproc, layer.nnodes, layer.port if want["port"] else "free")
        expect = (want["nproc"], want["nnodes"], want["port"] or "free")
        if layer.error or got != expect:
            bad.append(f"{where}: accelerate {expect}, preflight {got} {layer.error}")
        else:
            counts["agree"] += 1
    with capsys.disabled():
        print(f"\naccelerate oracle, configs the script writes: {counts}")
    assert not bad, f"{len(bad)} disagreements:\n" + "\n".join(bad[:15])
    # decided (the same numbers, or the same stop) far more often than not known
    assert counts["agree"] + counts["accelerate_error"] > 2 * counts["unknown"]
