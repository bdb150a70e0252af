"""Every launch check, end to end through the real plugin in a subprocess: a broken
script in the style of a real lost job (fixtures/launch/) fails with its id, evidence and
fix, and its fixed twin passes. Real files, real sockets, a real fake `swift` on PATH;
nothing runs the scripts."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from support import FIXTURES, base_env

LAUNCH = FIXTURES / "launch"


def _swift_on_path(tmp_path: Path, name: str = "swift") -> str:
    """A real executable named swift (what `command -v swift` finds) on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    swift = bindir / name
    swift.write_text("#!/bin/sh\nexit 0\n")
    swift.chmod(0o755)
    return f"{bindir}:/usr/bin:/bin"


def _run(run_preflight, check: str, script: str | None = None, cmd: str | None = None,
         **env):
    args = ["--profile", "cpu", "--check", check]
    if script:
        args += ["--launch-script", str(LAUNCH / script)]
    if cmd:
        args += ["--launch-cmd", cmd]
    # the variables the fixtures read start unset, whatever this machine exports
    scrubbed = {k: None for k in os.environ if k.startswith("PRL_")}
    scrubbed.update(DATASET=None, ROOT=None, JOB_PORT=None, MODEL=None)
    return run_preflight(*args, env=base_env(**{**scrubbed, **env}))


# -- nested-launcher -------------------------------------------------------------------


def test_nested_swift_under_torchrun_then_one_layer(run_preflight, tmp_path):
    path = _swift_on_path(tmp_path)
    broken = _run(run_preflight, "nested-launcher", "nested_swift.sh", PATH=path)
    assert broken.returncode == 1, broken.output
    result = broken.one("nested-launcher")
    assert result["severity"] == "blocker"
    assert "torchrun at nested_swift.sh:16 (port 29501)" in result["summary"]
    assert "relaunched by swift rlhf" in result["summary"]
    layers = result["evidence"]["jobs"][0]["layers"]
    outer, inner = layers[0], layers[2]
    assert outer["launcher"] == "torchrun" and outer["port"] == 29501
    assert outer["line"].endswith("nested_swift.sh:16") and outer["nproc_per_node"] == 2
    assert inner["implicit"] and inner["port"] == 29501
    assert inner["port_from"].startswith("MASTER_PORT")
    assert "NPROC_PER_NODE=2 swift" in result["why"]
    assert "python -m swift.cli.rlhf" in result["why"]
    assert result["runbook"].endswith("runbooks/nested-launcher.md")

    fixed = _run(run_preflight, "nested-launcher", "nested_swift_fixed.sh", PATH=path)
    assert fixed.returncode == 0, fixed.output
    assert fixed.one("nested-launcher")["outcome"] == "passed"


def _checks(run_preflight, checks: tuple[str, ...], script: str | None = None,
            cmd: str | None = None, **env):
    args = ["--profile", "cpu", *[a for c in checks for a in ("--check", c)]]
    args += ["--launch-script", str(LAUNCH / script)] if script else ["--launch-cmd", cmd]
    return run_preflight(*args, env=base_env(**env))


def test_nested_llamafactory_under_torchrun_then_one_layer(run_preflight, tmp_path):
    """torchrun around `llamafactory-cli train` with FORCE_TORCHRUN: each worker relaunches
    torchrun on the MASTER_PORT torchrun gave it (LLaMA-Factory launcher.py:60-132)."""
    path = _swift_on_path(tmp_path, "llamafactory-cli")
    checks = ("nested-launcher", "launch-ports", "launch-gpus")
    broken = _checks(run_preflight, checks, "nested_lmf.sh", PATH=path)
    assert broken.returncode == 1, broken.output
    nested = broken.one("nested-launcher")
    assert nested["severity"] == "blocker"
    assert "torchrun at nested_lmf.sh:10 (port 29502) starts torchrun (relaunched by " \
           "llamafactory-cli train)" in nested["summary"]
    assert "FORCE_TORCHRUN=1 NPROC_PER_NODE=2 llamafactory-cli train" in nested["why"]
    assert "both use port 29502" in broken.one("launch-ports")["summary"]

    fixed = _checks(run_preflight, checks, "nested_lmf_fixed.sh", PATH=path)
    assert fixed.returncode == 0, fixed.output
    assert all(fixed.one(c)["outcome"] == "passed" for c in checks), fixed.output
    layer = fixed.one("launch-ports")["evidence"]["layers"][0]
    assert layer["implicit"] and layer["port"] == "free"
    gpus = fixed.one("launch-gpus")["evidence"]["layers"][0]
    assert (gpus["nproc_per_node"], gpus["visible"]) == (2, 2)


def test_llamafactory_relaunch_gpus_and_held_port(run_preflight):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    cmd = ("CUDA_VISIBLE_DEVICES=0,1 NPROC_PER_NODE=4 FORCE_TORCHRUN=1 "
           "llamafactory-cli train examples/train_lora/llama3_lora_sft.yaml")
    try:
        broken = _checks(run_preflight, ("launch-gpus", "launch-ports"), cmd=cmd,
                         MASTER_PORT=str(port))
    finally:
        holder.close()
    assert broken.returncode == 1, broken.output
    assert "starts 4 processes per node but 2 GPU(s) are visible" in \
        broken.one("launch-gpus")["summary"]
    ports = broken.one("launch-ports")
    assert f"port {port} of torchrun (relaunched by llamafactory-cli train)" in \
        ports["summary"]
    assert "for swift or llamafactory-cli, MASTER_PORT=" in ports["why"]
    # MASTER_PORT came from this shell: exporting a free one is the fix, and it binds
    assert ports["fix"].startswith("export MASTER_PORT="), ports
    chosen = int(ports["fix"].removeprefix("export MASTER_PORT="))
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", chosen))
    # without NPROC_PER_NODE nor CUDA_VISIBLE_DEVICES: one per visible GPU, never a number
    free = _checks(run_preflight, ("launch-gpus", "launch-ports"),
                   cmd="FORCE_TORCHRUN=1 lmf train examples/train_lora/llama3_lora_sft.yaml")
    assert free.returncode == 0, free.output
    row = free.one("launch-gpus")["evidence"]["layers"][0]
    assert row["nproc_per_node"] == "one per visible GPU" and "visible" not in row
    assert free.one("launch-ports")["evidence"]["layers"][0]["port"] == "free"

def _replay(tmp_path: Path, gpus: int) -> Path:
    """An NVML snapshot of `gpus` GPUs (the hardware seam: `--nvml-replay`)."""
    snapshot = {"schema": 1, "source": "nvml", "error": None, "driver_version": "550.54.15",
                "cuda_driver_version": 12040, "gpus": [
                    {"index": i, "name": "NVIDIA H200", "uuid": f"GPU-{i:08d}",
                     "memory_total_bytes": 150754820096, "memory_used_bytes": 0,
                     "compute_capability": "9.0"} for i in range(gpus)]}
    replay = tmp_path / f"gpus{gpus}.json"
    replay.write_text(json.dumps(snapshot))
    return replay


def test_llamafactory_relaunch_on_a_held_port_hangs_on_the_gpu_count(run_preflight, tmp_path):
    """`llamafactory-cli train` with MASTER_PORT held and neither FORCE_TORCHRUN nor
    CUDA_VISIBLE_DEVICES: it relaunches under torchrun (binding MASTER_PORT) only when more
    than one GPU is visible (LLaMA-Factory launcher.py:61). One GPU: nothing binds the port,
    GO; two: NO-GO; the count not readable: UNKNOWN naming NVML, never a NO-GO."""
    path = _swift_on_path(tmp_path, "llamafactory-cli")
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    script = tmp_path / "train_lmf.sh"
    script.write_text(f"#!/bin/bash\nset -e\nexport MASTER_PORT={port}\n"
                      "llamafactory-cli train examples/train_lora/llama3_lora_sft.yaml\n")
    runs = {}
    try:
        for name, replay in (("one", _replay(tmp_path, 1)), ("two", _replay(tmp_path, 2)),
                             ("unread", FIXTURES / "nvml" / "no-nvml.json")):
            runs[name] = run_preflight(
                "--profile", "cpu", "--check", "launch-ports", "--nvml-replay", str(replay),
                "--launch-script", str(script),
                env=base_env(PATH=path, FORCE_TORCHRUN=None, CUDA_VISIBLE_DEVICES=None,
                             USE_RAY=None, USE_KT=None, USE_MCA=None))
    finally:
        holder.close()
    one = runs["one"].one("launch-ports")
    assert runs["one"].returncode == 0, runs["one"].output
    assert one["outcome"] == "passed" and one["evidence"]["gpus_on_node"] == 1
    row = one["evidence"]["layers"][0]
    assert row["port"] == port and row["bind"].startswith("not started: 1 GPU on the node")
    two = runs["two"].one("launch-ports")
    assert runs["two"].returncode == 1, runs["two"].output
    assert two["severity"] == "blocker", two
    assert f"port {port} of torchrun (relaunched by llamafactory-cli train) at " \
           "train_lmf.sh:4 cannot be bound: EADDRINUSE" in two["summary"]
    # the script sets MASTER_PORT itself: an export before it would not win
    assert "export MASTER_PORT" not in two["fix"], two
    unread = runs["unread"].one("launch-ports")
    assert runs["unread"].returncode == 1, runs["unread"].output
    assert unread["severity"] == "unknown", unread
    assert f"port {port} of torchrun" in unread["summary"]
    assert "the node's GPU count could not be read (NVML unavailable" in unread["summary"]


def test_torchrun_around_a_script_that_runs_torchrun(run_preflight):
    run = _run(run_preflight, "nested-launcher", "nested_torchrun_script.sh")
    assert run.returncode == 1, run.output
    result = run.one("nested-launcher")
    assert "nested_torchrun_script.sh:3" in result["summary"]
    assert "inner_torchrun.sh:2" in result["summary"]


def test_suite_under_torchrun_is_nested(run_preflight):
    run = _run(run_preflight, "nested-launcher", "grpo_batch_fixed.sh",
               TORCHELASTIC_RUN_ID="abc", LOCAL_RANK="0")
    assert run.returncode == 1, run.output
    result = run.one("nested-launcher")
    assert "preflight itself runs under torchrun" in result["summary"]
    assert result["evidence"]["suite_under_torchrun"] == {"TORCHELASTIC_RUN_ID": "abc",
                                                          "LOCAL_RANK": "0"}


def test_launch_checks_skip_without_a_script(run_preflight):
    run = run_preflight("--profile", "cpu", "--check", "nested-launcher", "--check",
                        "grpo-batch", "--check", "launcher-args", env=base_env())
    assert run.returncode == 0, run.output
    for check in ("nested-launcher", "grpo-batch", "launcher-args"):
        result = run.one(check)
        assert result["outcome"] == "skipped" and "--launch-script" in result["summary"]


# -- empty-variable --------------------------------------------------------------------


def test_empty_dataset_collapses_the_path_then_set(run_preflight):
    broken = _run(run_preflight, "empty-variable", "empty_dataset.sh")
    assert broken.returncode == 1, broken.output
    result = broken.one("empty-variable")
    use = result["evidence"]["empty"][0]
    assert use == {"variable": "DATASET", "line": "empty_dataset.sh:4", "program": "swift",
                   "argument": '"datasets/${DATASET}/_train.jsonl"',
                   "expands_to": "datasets//_train.jsonl"}
    assert "export DATASET=" in result["why"] and "${DATASET:?" in result["why"]

    fixed = _run(run_preflight, "empty-variable", "empty_dataset_fixed.sh", DATASET="sim")
    assert fixed.returncode == 0, fixed.output
    assert fixed.one("empty-variable")["outcome"] == "passed"


def test_guard_that_exits_on_empty_variable_is_reported(run_preflight):
    run = _run(run_preflight, "empty-variable", "empty_dataset_fixed.sh")
    assert run.returncode == 1
    result = run.one("empty-variable")
    assert result["evidence"]["exits_at"]["empty"] == ["DATASET"]
    assert "exits at line 6" in result["summary"]


# -- launch-inputs ---------------------------------------------------------------------


def _data_disk(root: Path) -> None:
    (root / "models" / "poker-qwen3-8b-merged").mkdir(parents=True)
    (root / "models" / "poker-qwen3-8b-merged_torch_dist").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "pokerbench_holdem_smoke.jsonl").write_text('{"prompt": "x"}\n')
    (root / "exp").mkdir()


def test_slime_prompt_data_missing_then_fixed(run_preflight, tmp_path):
    root = tmp_path / "autodl-tmp"
    _data_disk(root)
    broken = _run(run_preflight, "launch-inputs", "slime_inputs.sh", ROOT=str(root))
    assert broken.returncode == 1, broken.output
    result = broken.one("launch-inputs")
    missing = result["evidence"]["missing"]
    assert missing == [{"flag": "--prompt-data",
                        "path": f"{root}/data/pokerbench_holdem_smoke.json",
                        "line": "slime_inputs.sh:9"}]
    assert f"{root}/models/poker-qwen3-8b-merged_torch_dist" in \
        result["evidence"]["inputs_checked"]
    assert "--prompt-data" in result["why"]

    fixed = _run(run_preflight, "launch-inputs", "slime_inputs_fixed.sh", ROOT=str(root))
    assert fixed.returncode == 0, fixed.output
    assert fixed.one("launch-inputs")["outcome"] == "passed"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_dir_under_read_only_dir_fails(run_preflight, tmp_path):
    root = tmp_path / "autodl-tmp"
    _data_disk(root)
    (root / "exp").chmod(0o555)
    try:
        run = _run(run_preflight, "launch-inputs", "slime_inputs_fixed.sh", ROOT=str(root))
    finally:
        (root / "exp").chmod(0o755)
    assert run.returncode == 1
    assert run.one("launch-inputs")["evidence"]["outputs_not_writable"][0]["flag"] == "--save"


def _job(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "run.sh"
    script.write_text(f'#!/bin/bash\ncd "$WORK"\n{body}\n')
    return script


@pytest.mark.parametrize("body, directory", [
    ("python train.py > logs/run.log 2> logs/err.log", "logs"),
    ("torchrun --nproc_per_node 1 train.py 2>&1 | tee out/run.log", "out"),
    ("torchrun --nproc_per_node 1 train.py >> out/deep/run.log", "out/deep"),
])
def test_log_into_missing_directory_then_created(run_preflight, tmp_path, body, directory):
    """bash and tee open the log file themselves; neither creates its directory."""
    work = tmp_path / "job"
    work.mkdir()
    (work / "train.py").write_text("print('train')\n")
    script = _job(tmp_path, body)
    broken = run_preflight("--profile", "cpu", "--check", "launch-inputs", "--launch-script",
                           str(script), env=base_env(WORK=str(work)))
    assert broken.returncode == 1, broken.output
    result = broken.one("launch-inputs")
    assert f"directory {work / directory} does not exist" in result["summary"]
    assert f"mkdir -p {work / directory}" in result["fix"]
    # fixed by the script itself (mkdir -p before the line), or by creating it beforehand
    mkdir_first = _job(tmp_path, f"mkdir -p {directory}\n{body}")
    fixed = run_preflight("--profile", "cpu", "--check", "launch-inputs", "--launch-script",
                          str(mkdir_first), env=base_env(WORK=str(work)))
    assert fixed.returncode == 0, fixed.output
    (work / directory).mkdir(parents=True)
    script = _job(tmp_path, body)
    fixed = run_preflight("--profile", "cpu", "--check", "launch-inputs", "--launch-script",
                          str(script), env=base_env(WORK=str(work)))
    assert fixed.returncode == 0, fixed.output


@pytest.mark.parametrize("body, create", [
    ("python train.py --lr 1e-4", "train.py"),
    ("torchrun --nproc_per_node 2 scripts/train.py", "scripts/train.py"),
    ("deepspeed --num_gpus 2 train.py --deepspeed ds.json", "train.py"),
    ("torchrun --nproc_per_node 2 -m pkg.train", "pkg/train.py"),
])
def test_trainer_script_missing_then_present(run_preflight, tmp_path, body, create):
    """python exits 2 ("can't open file" / "No module named") before any training."""
    work = tmp_path / "job"
    (work / "pkg").mkdir(parents=True)
    (work / "scripts").mkdir()
    (work / "ds.json").write_text("{}")
    script = _job(tmp_path, body)
    broken = run_preflight("--profile", "cpu", "--check", "launch-inputs", "--launch-script",
                           str(script), env=base_env(WORK=str(work)))
    assert broken.returncode == 1, broken.output
    missing = broken.one("launch-inputs")["evidence"]["missing"]
    assert [m["path"] for m in missing] == [str(work / create)]
    (work / create).write_text("print('train')\n")
    fixed = run_preflight("--profile", "cpu", "--check", "launch-inputs", "--launch-script",
                          str(script), env=base_env(WORK=str(work)))
    assert fixed.returncode == 0, fixed.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_log_into_read_only_directory_fails(run_preflight, tmp_path):
    work = tmp_path / "job"
    (work / "logs").mkdir(parents=True)
    (work / "train.py").write_text("print('train')\n")
    (work / "logs").chmod(0o555)
    try:
        run = run_preflight("--profile", "cpu", "--check", "launch-inputs", "--launch-script",
                            str(_job(tmp_path, "python train.py > logs/run.log")),
                            env=base_env(WORK=str(work)))
    finally:
        (work / "logs").chmod(0o755)
    assert run.returncode == 1, run.output
    assert run.one("launch-inputs")["evidence"]["outputs_not_writable"][0]["flag"] == \
        "> (redirect)"


# -- grpo-batch ------------------------------------------------------------------------


def test_grpo_generations_do_not_divide_then_fixed(run_preflight):
    broken = _run(run_preflight, "grpo-batch", "grpo_batch.sh")
    assert broken.returncode == 1, broken.output
    result = broken.one("grpo-batch")
    run = result["evidence"]["runs"][0]
    assert run["formula"] == ("generation_batch_size = per_device_train_batch_size 4 x "
                              "world_size 4 x steps_per_generation 1 = 16")
    assert run["remainder"] == 1 and run["num_generations"] == 3
    assert "NUM_GENERATIONS" in run["num_generations_from"]
    assert "PRL_NUM_GENERATIONS" in run["num_generations_from"]
    assert "[2, 4, 8, 16]" in result["why"] and "PRL_NUM_GENERATIONS" in result["why"]
    assert "--per_device_train_batch_size 3" in result["why"]
    assert "16 % num_generations 3 = 1" in result["summary"]

    fixed = _run(run_preflight, "grpo-batch", "grpo_batch_fixed.sh")
    assert fixed.returncode == 0, fixed.output
    assert fixed.one("grpo-batch")["outcome"] == "passed"


def test_grpo_prl_variables_decide(run_preflight):
    # The same broken script is fine when the platform passes a divisor ...
    ok = _run(run_preflight, "grpo-batch", "grpo_batch.sh", PRL_NUM_GENERATIONS="4")
    assert ok.returncode == 0, ok.output
    # ... and the fixed one breaks on 3 GPUs with a batch of 1 (3 % 2).
    bad = _run(run_preflight, "grpo-batch", "grpo_batch_fixed.sh", PRL_NPROC_PER_NODE="3",
               PRL_PER_DEVICE_TRAIN_BATCH_SIZE="1")
    assert bad.returncode == 1
    assert "generation_batch_size 3 % num_generations 2" in bad.one("grpo-batch")["summary"]


def test_grpo_eval_batch_and_swift_world_size(run_preflight):
    # Eval is on only with validation data (ms-swift sft_args.py:232); this test used to
    # expect a NO-GO without any, which ms-swift 4.6 accepts.
    cmd = ("NPROC_PER_NODE=2 swift rlhf --rlhf_type grpo --num_generations 4 "
           "--per_device_train_batch_size 2 --num_generations_eval 4 --split_dataset_ratio 0.1")
    run = _run(run_preflight, "grpo-batch", cmd=cmd)
    assert run.returncode == 1, run.output
    result = run.one("grpo-batch")
    assert "global eval batch 2 x 1 = 2 % num_generations_eval 4" in result["summary"]
    assert "NPROC_PER_NODE" in result["evidence"]["runs"][0]["world_size_from"]
    advice = result["fix"] + "\n" + result["why"]  # the values are advice, not commands
    assert "--num_generations_eval one of [1, 2]" in advice
    assert "--eval_strategy no" in advice


@pytest.mark.parametrize("off", ["", "--split_dataset_ratio 0.1 --eval_strategy no",
                                 "--val_dataset v.jsonl --save_strategy no"])
def test_grpo_eval_rules_only_when_eval_runs(run_preflight, off):
    """No validation data, --eval_strategy no, or --save_strategy no (which eval
    inherits): ms-swift never checks the eval batch."""
    cmd = ("NPROC_PER_NODE=2 swift rlhf --rlhf_type grpo --num_generations 4 "
           f"--per_device_train_batch_size 2 --num_generations_eval 4 {off}")
    run = _run(run_preflight, "grpo-batch", cmd=cmd)
    assert run.returncode == 0, run.output
    assert run.one("grpo-batch")["outcome"] == "passed"


def test_grpo_generation_batch_and_steps_both_given(run_preflight):
    # ms-swift args_mixin.py:216: both given must agree (2 x 2 x 2 = 8, not 12).
    base = ("NPROC_PER_NODE=2 swift rlhf --rlhf_type grpo --num_generations 4 "
            "--per_device_train_batch_size 2 --steps_per_generation 2 ")
    broken = _run(run_preflight, "grpo-batch", cmd=base + "--generation_batch_size 12")
    assert broken.returncode == 1, broken.output
    result = broken.one("grpo-batch")
    assert "must equal" in result["summary"] and "args_mixin.py:216" in result["summary"]
    assert "--generation_batch_size 8" in result["fix"] + "\n" + result["why"]
    fixed = _run(run_preflight, "grpo-batch", cmd=base + "--generation_batch_size 8")
    assert fixed.returncode == 0, fixed.output


def test_grpo_one_generation_needs_a_teacher(run_preflight):
    # ms-swift rlhf_args.py:409: num_generations 1 only with --teacher_model (OPD-RL).
    base = "swift rlhf --rlhf_type grpo --num_generations 1 "
    broken = _run(run_preflight, "grpo-batch", cmd=base)
    assert broken.returncode == 1, broken.output
    # one process with batch 1: 2 generations need a batch of 2 as well
    result = broken.one("grpo-batch")
    fix = result["fix"] + "\n" + result["why"]
    assert "--num_generations 2 --per_device_train_batch_size 2" in fix
    assert "--teacher_model" in fix
    fixed = _run(run_preflight, "grpo-batch", cmd=base + "--teacher_model Qwen/Qwen3-8B")
    assert fixed.returncode == 0, fixed.output


# -- launch-ports ----------------------------------------------------------------------


def test_launch_port_held_then_free(run_preflight):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        broken = _run(run_preflight, "launch-ports", "ports_fixed.sh", MASTER_PORT=str(port))
    finally:
        holder.close()
    assert broken.returncode == 1, broken.output
    result = broken.one("launch-ports")
    layer = result["evidence"]["layers"][0]
    assert layer["port"] == port and "EADDRINUSE" in layer["bind"]
    assert os.getpid() in [h["pid"] for h in layer["holders"]]
    assert f"port {port} of torchrun" in result["summary"]
    assert "--master_port" in result["why"]

    fixed = _run(run_preflight, "launch-ports", "ports_fixed.sh", MASTER_PORT=str(port))
    assert fixed.returncode == 0, fixed.output
    assert fixed.one("launch-ports")["outcome"] == "passed"


@pytest.mark.parametrize("machines, held_fails", [(2, True), (1, False)])
def test_accelerate_config_port_is_the_one_checked(run_preflight, tmp_path, machines,
                                                   held_fails):
    """The port comes from accelerate's config file (--config_file, else $HF_HOME/
    accelerate/default_config.yaml). On one machine accelerate takes another free port
    when it is held (utils/launch.py:233): a warning; on two it stops: a NO-GO."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    home = tmp_path / "hf"
    (home / "accelerate").mkdir(parents=True)
    (home / "accelerate" / "default_config.yaml").write_text(
        f"compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\n"
        f"num_processes: {2 * machines}\nnum_machines: {machines}\n"
        f"main_process_ip: 127.0.0.1\nmain_process_port: {port}\nmachine_rank: 0\n")
    try:
        run = _run(run_preflight, "launch-ports", cmd="accelerate launch train.py",
                   HF_HOME=str(home))
    finally:
        holder.close()
    result = run.one("launch-ports")
    assert result["evidence"]["layers"][0]["port"] == port
    assert "default_config.yaml" in result["evidence"]["layers"][0]["port_from"]
    assert (run.returncode == 1) == held_fails, run.output
    if not held_fails:
        assert "accelerate will pick a free one" in json.dumps(result["evidence"])
    free = _run(run_preflight, "launch-ports", cmd="accelerate launch train.py",
                HF_HOME=str(home))
    assert free.returncode == 0, free.output


def test_exported_master_port_that_torchrun_ignores_warns(run_preflight):
    import socket

    # torchrun's default 29500 is the point of the fixture; on a shared box another
    # program may hold it, and then the check rightly blocks on it as well
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", 29500))
            held = False
        except OSError:
            held = True
    run = _run(run_preflight, "launch-ports", "ignored_master_port.sh")
    result = run.one("launch-ports")
    ignored = " ".join(result["evidence"]["ignored_master_port"])
    assert "MASTER_PORT=29511 is exported for torchrun" in ignored and "it uses 29500" in ignored
    if held:
        assert run.returncode == 1 and "29500" in result["summary"], run.output
        return
    assert run.returncode == 0, run.output
    assert result["severity"] == "warning"
    assert "MASTER_PORT=29511" in result["summary"] and "it uses 29500" in result["summary"]


def test_nested_layers_share_a_port(run_preflight, tmp_path):
    run = _run(run_preflight, "launch-ports", "nested_swift.sh", PATH=_swift_on_path(tmp_path))
    assert run.returncode == 1
    assert "both use port 29501" in run.one("launch-ports")["summary"]


# -- launch-gpus -----------------------------------------------------------------------


def test_more_processes_than_visible_gpus_then_fixed(run_preflight):
    broken = _run(run_preflight, "launch-gpus", "gpus.sh")
    assert broken.returncode == 1, broken.output
    result = broken.one("launch-gpus")
    assert "starts 4 processes per node but 2 GPU(s) are visible" in result["summary"]
    assert result["evidence"]["layers"][0]["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert "--nproc_per_node 2" in result["why"]

    fixed = _run(run_preflight, "launch-gpus", "gpus_fixed.sh")
    assert fixed.returncode == 0, fixed.output
    assert fixed.one("launch-gpus")["outcome"] == "passed"


def test_visible_gpu_absent_from_the_node(run_preflight, tmp_path):
    snapshot = {"schema": 1, "source": "nvml", "error": None, "driver_version": "535.104.05",
                "cuda_driver_version": 12020, "gpus": [
                    {"index": i, "name": "NVIDIA A800-SXM4-80GB", "uuid": f"GPU-{i:08d}",
                     "memory_total_bytes": 85899345920, "memory_used_bytes": 0,
                     "compute_capability": "8.0"} for i in range(4)]}
    replay = tmp_path / "a800.json"
    replay.write_text(json.dumps(snapshot))
    run = run_preflight("--profile", "a800", "--check", "launch-gpus", "--nvml-replay",
                        str(replay), "--launch-script", str(LAUNCH / "gpus.sh"),
                        env=base_env(PRL_CUDA_VISIBLE_DEVICES="0,1,2,3,4,5",
                                     PRL_NPROC_PER_NODE="6"))
    assert run.returncode == 1, run.output
    result = run.one("launch-gpus")
    assert "names GPU 4, 5 but the node has 4" in result["summary"]
    assert result["evidence"]["gpus_on_node"] == 4


# -- bad input and odd scripts ---------------------------------------------------------


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "nope.sh", "does not exist"),
    (lambda p: p, "is a directory"),
    (lambda p: (p / "bin.sh").write_bytes(b"\x7fELF\x00\x01\x02") and p / "bin.sh",
     "binary file"),
    (lambda p: (p / "big.sh").write_text("echo x\n" * 400_000) and p / "big.sh",
     "too large"),
])
def test_unusable_script_is_a_usage_error(run_preflight, tmp_path, make, message):
    path = make(tmp_path)
    run = run_preflight("--profile", "cpu", "--check", "nested-launcher", "--launch-script",
                        str(path), env=base_env())
    assert run.returncode == 4, run.output
    assert message in run.output and "Traceback" not in run.output


@pytest.mark.parametrize("content", [
    b"",
    b"torchrun --nproc_per_node 2 --master_port 0 train.py\r\necho done\r\n",
    b"# caf\xe9 latin-1 comment\ntorchrun --nproc_per_node 2 --master_port 0 train.py\n",
])
def test_odd_text_never_crashes(run_preflight, tmp_path, content):
    script = tmp_path / "odd.sh"
    script.write_bytes(content)
    run = run_preflight("--profile", "cpu", "--launch-script", str(script), "-k", "launch",
                        env=base_env())
    assert run.returncode in (0, 1), run.output
    assert all("crashed" not in c["summary"] and c["outcome"] != "error"
               for c in run.report["checks"]), run.output


def test_unusual_script_reports_unknowns_not_crashes(run_preflight):
    run = run_preflight("--profile", "cpu", "--launch-script", str(LAUNCH / "unusual.sh"),
                        "-k", "launch", env=base_env())
    assert run.returncode in (0, 1), run.output
    checks = {c["id"]: c for c in run.report["checks"]}
    assert all(c["outcome"] != "error" and "crashed" not in c["summary"]
               for c in checks.values()), run.output
    # nproc comes from $(( 2 * 2 )) and the arguments from an array: both evaluated
    job = checks["nested-launcher"]["evidence"]["jobs"][0]
    assert job["layers"][0]["nproc_per_node"] == 4
    assert job["command"].endswith("train.py --max_steps 10 --eval_steps 5 --logging_steps 1")
    # STEPS is set inside a `case`: its arm is taken, never reported empty
    assert "STEPS" not in json.dumps(checks["empty-variable"]["evidence"])


def test_script_secrets_stay_out_of_reports(run_preflight, tmp_path):
    script = tmp_path / "secret.sh"
    script.write_text("export WANDB_API_KEY=wandb-secret-value-123\n"
                      "torchrun --nproc_per_node 2 --master_port 0 train.py "
                      "--report_to wandb --api_key $WANDB_API_KEY --dataset ${NOPE}/x.jsonl\n")
    run = run_preflight("--profile", "cpu", "--launch-script", str(script), "-k", "launch",
                        env=base_env())
    assert run.returncode == 1, run.output
    text = run.output + json.dumps(run.report) + \
        (run.report_dir / "preflight-report.md").read_text()
    assert "wandb-secret-value-123" not in text


@pytest.mark.parametrize("processes, fails", [(4, True), (2, False)])
def test_accelerate_config_processes_against_its_gpu_ids(run_preflight, tmp_path, processes,
                                                         fails):
    """num_processes and gpu_ids come from accelerate's config file; accelerate makes
    gpu_ids the workers' CUDA_VISIBLE_DEVICES."""
    (tmp_path / "acc.yaml").write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\n"
        f"num_processes: {processes}\ngpu_ids: 0,1\n")
    run = _run(run_preflight, "launch-gpus",
               cmd=f"accelerate launch --config_file {tmp_path / 'acc.yaml'} train.py")
    assert (run.returncode == 1) == fails, run.output
    if fails:
        assert "starts 4 processes per node but 2 GPU(s) are visible" in \
            run.one("launch-gpus")["summary"]


@pytest.mark.parametrize("processes, fails", [(8, True), (4, False)])
def test_accelerate_config_the_script_writes_on_a_four_gpu_node(run_preflight, tmp_path,
                                                                 processes, fails):
    """The config accelerate reads is the one the script writes just before the launch
    (a here-document, expanded): 8 processes on 4 GPUs is the NO-GO the same file on disk
    gets; 4 is GO. (Before preflight read here-documents, both were UNKNOWN; an older
    acc.yaml on disk loses to the script's: tests/judges/test_launch.py.)"""
    script = tmp_path / "run.sh"
    script.write_text(f"#!/bin/bash\nset -e\nNGPU=${{NGPU:-{processes}}}\n"
                      "cat > acc.yaml <<'EOF'\nnot: read\nEOF\n"
                      "tee acc.yaml < /dev/null > /dev/null\n"
                      "cat > acc.yaml <<EOF\ncompute_environment: LOCAL_MACHINE\n"
                      "distributed_type: MULTI_GPU\nnum_processes: ${NGPU}\n"
                      "main_process_port: $((29500 + 1))\nEOF\n"
                      "accelerate launch --config_file acc.yaml train.py\n")
    run = run_preflight("--profile", "cpu", "--check", "launch-gpus", "--nvml-replay",
                        str(_replay(tmp_path, 4)), "--launch-script", str(script),
                        env=base_env(NGPU=None), cwd=tmp_path)
    assert (run.returncode == 1) == fails, run.output
    result = run.one("launch-gpus")
    row = result["evidence"]["layers"][0]
    assert row["nproc_per_node"] == processes and row["visible"] == 4, row
    assert row["nproc_from"] == f"num_processes in {tmp_path}/acc.yaml"
    if fails:
        assert result["severity"] == "blocker"
        assert "starts 8 processes per node but 4 GPU(s) are visible" in result["summary"]


# -- launcher-args ---------------------------------------------------------------------

TORCHRUN_STOPS = "min_nodes must be > 0 and <= max_nodes, got min_nodes=2, max_nodes=1"


def test_launcher_rejecting_its_args_then_fixed_then_no_launcher(run_preflight, tmp_path):
    """A two-node job whose --nnodes is MIN:MAX the wrong way round: torchrun would stop
    in its first second. The fix preflight names, run with bash, edits only that token
    in the script: the secrets (an env prefix, a secret-named option), the variables and
    the redirect stay as written, and preflight then passes it."""
    (tmp_path / "train.py").write_text("print('training')\n")
    broken = tmp_path / "run.sh"
    text = ("#!/bin/bash\nset -euo pipefail\nexport HF_TOKEN=hf_notarealsecret01\n"
            "mkdir -p logs\n"
            "WANDB_API_KEY=wandbnotarealsecret02 torchrun --nnodes=2:1 --nproc-per-node=1 "
            "train.py --wandb-key wandbnotarealsecret02 --hf_token \"$HF_TOKEN\" "
            "> logs/run.log 2>&1\n")
    broken.write_text(text)
    run = run_preflight("--profile", "cpu", "--check", "launcher-args", "--launch-script",
                        str(broken), env=base_env(), cwd=tmp_path)
    assert run.returncode == 1, run.output
    result = run.one("launcher-args")
    assert result["severity"] == "blocker"
    assert f"torchrun at run.sh:5 stops at once: {TORCHRUN_STOPS}" in result["summary"]
    fix = f"sed -i 5s/--nnodes=2:1/--nnodes=1:2/ {broken}"
    assert result["fix"].startswith(fix), result["fix"]
    assert result["runbook"].endswith("runbooks/launcher-args.md")
    for secret in ("hf_notarealsecret01", "wandbnotarealsecret02"):
        assert secret not in run.output + json.dumps(run.report)
    assert "***" not in result["fix"]

    edited = subprocess.run(["bash", "-c", fix], cwd=tmp_path, capture_output=True,
                            text=True, timeout=10)
    assert edited.returncode == 0, edited.stderr
    assert broken.read_text() == text.replace("--nnodes=2:1", "--nnodes=1:2")
    assert subprocess.run(["bash", "-n", str(broken)], timeout=10).returncode == 0
    run = run_preflight("--profile", "cpu", "--check", "launcher-args", "--launch-script",
                        str(broken), env=base_env(), cwd=tmp_path)
    assert run.returncode == 0, run.output
    assert run.one("launcher-args")["outcome"] == "passed"

    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/bash\npython train.py --lr 1e-4\n")
    run = run_preflight("--profile", "cpu", "--check", "launcher-args", "--launch-script",
                        str(plain), env=base_env(), cwd=tmp_path)
    assert run.returncode == 0, run.output
    result = run.one("launcher-args")
    assert result["outcome"] == "skipped" and "no distributed launcher" in result["summary"]


# (torchrun's options, what preflight names); each run through torch's own main below
TORCHRUN_ERRORS = [
    (["--nnodes=2:1"], TORCHRUN_STOPS),
    (["--rdzv-conf=timeout="], "The rendezvous configuration option 'timeout' must have a "
                               "value specified."),
    (["--nproc-per-node=abc"], "Unsupported nproc_per_node value: abc"),
    (["--nnodes", "x"], "invalid literal for int() with base 10: 'x'"),
    (["--nnodes=1:2:3"], 'nnodes=1:2:3 is not in "MIN:MAX" format'),
    (["--max-restarts=-1"], "max_restarts must be >= 0"),
    (["--redirects=9"], "9 does not match: <^[0123]$> or <^(\\d:[0123],)*(\\d:[0123])$>"),
    (["--rdzv-backend=bogus"], "The rendezvous backend 'bogus' is not registered."),
    (["--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.filterwarnings("ignore:Unable to enable fault handler")
@pytest.mark.parametrize("options, error", TORCHRUN_ERRORS,
                         ids=[" ".join(o) for o, _ in TORCHRUN_ERRORS])
def test_the_error_named_is_the_one_torchrun_prints(options, error, monkeypatch,
                                                    tmp_path):
    """torch's own `python -m torch.distributed.run` entry (`main`), in-process, with the
    same options: it stops before it launches anything (a launch fails the test), and
    what it says is the error launcher-args names."""
    from preflight.judges import launch as judge
    from preflight.launch.spec import load

    torch_run = pytest.importorskip("torch.distributed.run")
    launcher_api = pytest.importorskip("torch.distributed.launcher.api")

    def launched(*args, **kwargs):
        raise AssertionError("torchrun went on to launch workers")

    # the agent is what starts workers; the rendezvous handler is made before it
    # (torch/distributed/launcher/api.py `launch_agent`), where a bad backend stops
    monkeypatch.setattr(launcher_api, "LocalElasticAgent", launched)
    # config_from_args makes torchrun's log dir before the agent (mkdtemp in $TMPDIR,
    # torch/distributed/elastic/multiprocessing/api.py:260-262): not in the machine's /tmp
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for key in [k for k in os.environ if k.startswith(("PET_", "TORCHELASTIC"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TORCHELASTIC_SIGNALS_TO_HANDLE", "")  # launch_agent sets it
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises((Exception, SystemExit)) as stopped:
        torch_run.main([*options, "train.py"])
    said = err.getvalue() if stopped.type is SystemExit else str(stopped.value)
    assert "went on to launch" not in said
    assert error in said, said

    spec = load(None, " ".join(["torchrun", *options, "train.py"]), {"PATH": "/usr/bin"}, "/")
    verdict = judge.launcher_args(judge.ArgsFacts(spec))
    assert [p.kind.name for p in verdict.problems] == ["BLOCKER"], verdict.problems
    assert error in verdict.problems[0].text, (error, verdict.problems[0].text)
