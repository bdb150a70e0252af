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
