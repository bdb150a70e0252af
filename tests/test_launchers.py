"""Launchers by their own rules, on real files: deepspeed's hostfile and resource
options, ms-swift's config-file argument and option prefixes, torchrun from a script."""

from __future__ import annotations

from pathlib import Path

import pytest

from preflight.launch import launchers
from preflight.launch import spec as launch
from preflight.launch.shell import Var, Word


def _ds(argv: str, tmp_path: Path, **env: str) -> launchers.DeepspeedConfig:
    return launchers.deepspeed([Word(a, a) for a in argv.split()],
                               {k: Var(v, True) for k, v in env.items()}, str(tmp_path))


@pytest.mark.parametrize("argv, env, nproc, nnodes, port", [
    ("--num_gpus 4 train.py", {}, 4, 1, 29500),
    ("--num_gpus=2 --master_port 6000 train.py --deepspeed ds.json", {}, 2, 1, 6000),
    ("--num_g 2 train.py", {}, 2, 1, 29500),  # argparse prefix of --num_gpus
    ("--include localhost:0,1,2 train.py", {}, 3, 1, 29500),
    ("train.py", {"CUDA_VISIBLE_DEVICES": "0,1"}, 2, 1, 29500),
    ("--num_gpus 1 train.py", {"CUDA_VISIBLE_DEVICES": "0,1"}, 1, 1, 29500),
    ("train.py", {}, None, 1, 29500),  # every visible GPU: the machine decides
])
def test_deepspeed_single_node(tmp_path, argv, env, nproc, nnodes, port):
    got = _ds(argv, tmp_path, **env)
    assert not got.error, got.error
    assert (got.nproc, got.nnodes, got.port) == (nproc, nnodes, port)
    assert got.program is not None and got.program.text == "train.py"


def test_deepspeed_hostfile_include_exclude(tmp_path):
    (tmp_path / "hostfile").write_text("# cluster\nnode-a slots=8\nnode-b slots=8\n"
                                       "node-c slots=4\n")
    got = _ds("--hostfile hostfile train.py", tmp_path)
    assert (got.nnodes, got.nproc) == (3, None) and "per host" in got.nproc_text
    got = _ds("-H hostfile --num_nodes 2 train.py", tmp_path)
    assert (got.nnodes, got.nproc) == (2, 8)
    got = _ds("-H hostfile --num_nodes 2 --num_gpus 2 train.py", tmp_path)
    assert (got.nnodes, got.nproc) == (2, 2)
    got = _ds("-H hostfile --include node-a:0,1@node-b:2,3 train.py", tmp_path)
    assert (got.nnodes, got.nproc) == (2, 2)
    got = _ds("-H hostfile --exclude node-c train.py", tmp_path)
    assert (got.nnodes, got.nproc) == (2, 8)


@pytest.mark.parametrize("argv, hostfile, error", [
    ("--num_gpus 2 --include localhost:0 train.py", None, "include/exclude"),
    ("--num_nodes 2 train.py", None, "no extra nodes"),
    ("-H hostfile --include node-z train.py", "node-a slots=8\n", "not found in hostfile"),
    ("-H hostfile train.py", "node-a 8\n", "bad entry"),
    ("--bogus train.py", None, "unrecognized"),
])
def test_deepspeed_stops(tmp_path, argv, hostfile, error):
    if hostfile:
        (tmp_path / "hostfile").write_text(hostfile)
    got = _ds(argv, tmp_path)
    assert error in got.error


def test_deepspeed_layer_from_a_script(tmp_path):
    (tmp_path / "hostfile").write_text("node-a slots=4\nnode-b slots=4\n")
    spec = launch.load(None, "deepspeed --hostfile hostfile --module openrlhf.cli.train_sft "
                             "--max_len 2048", {"PATH": "/usr/bin"}, str(tmp_path))
    outer, inner = spec.jobs[0].layers
    assert (outer.launcher, outer.nproc, outer.nnodes, outer.port) == ("deepspeed", 4, 2, 29500)
    assert inner.program == "-m openrlhf.cli.train_sft"


def test_swift_config_file_is_read_as_swift_reads_it(tmp_path):
    """swift/cli/main.py `parse_yaml_args`: ENV is exported before the relaunch decision,
    the keys become arguments (ahead of the ones after the file)."""
    (tmp_path / "grpo.yaml").write_text(
        "ENV:\n  NPROC_PER_NODE: 4\n  MASTER_PORT: 29611\nrlhf_type: grpo\n"
        "num_generations: 3\nper_device_train_batch_size: 2\n"
        "dataset: [a.jsonl, b.jsonl]\n")
    spec = launch.load(None, "swift rlhf grpo.yaml --num_gen 4", {"PATH": "/usr/bin"},
                       str(tmp_path))
    layers = spec.jobs[0].layers
    assert layers[1].nproc == 4 and layers[1].port == 29611
    (run, args, outer), = launch.grpo_runs(spec)
    assert outer is layers[1]
    assert args["num_generations"].text == "3"  # --num_gen is ambiguous: not read as one
    assert args["per_device_train_batch_size"].text == "2"


def test_swift_option_prefixes():
    assert launch.swift_option("--num_generations_e") == "num_generations_eval"
    assert launch.swift_option("--per_device_train") == "per_device_train_batch_size"
    assert launch.swift_option("--num_gen") is None  # ambiguous: swift stops
    args = launch.swift_args((Word("--per_device_train", ""), Word("4", "")))
    assert args["per_device_train_batch_size"].text == "4"


def test_missing_swift_config_is_a_missing_input(tmp_path):
    spec = launch.load(None, "swift rlhf grpo.yaml", {"PATH": "/usr/bin"}, str(tmp_path))
    assert [i.path for i in spec.inputs] == [str(tmp_path / "grpo.yaml")]


def test_torchrun_from_a_script_with_prefixes_and_pet(tmp_path):
    spec = launch.load(None, "PET_NPROC_PER_NODE=4 torchrun --master_p=29622 -t3 train.py",
                       {"PATH": "/usr/bin"}, str(tmp_path))
    layer = spec.jobs[0].layers[0]
    assert (layer.nproc, layer.port, layer.program) == (4, 29622, "train.py")
    assert layer.nproc_source == "PET_NPROC_PER_NODE"


def test_torchrun_options_from_unknown_words_are_unknown(tmp_path):
    """`torchrun $(cat dist_args) train.py`: the unquoted unknown may be any options."""
    spec = launch.load(None, "torchrun --nproc_per_node 2 $(cat dist_args) train.py",
                       {"PATH": "/usr/bin"}, str(tmp_path))
    layer = spec.jobs[0].layers[0]
    assert layer.nproc is None and layer.port is None
    assert "may hold torchrun options" in layer.port_text


def test_accelerate_gpu_ids_become_the_workers_visible_gpus(tmp_path):
    (tmp_path / "acc.yaml").write_text("compute_environment: LOCAL_MACHINE\n"
                                       "distributed_type: MULTI_GPU\nnum_processes: 4\n"
                                       "gpu_ids: 0,1\nmain_process_port: 29633\n")
    spec = launch.load(None, "accelerate launch --config_file acc.yaml train.py",
                       {"PATH": "/usr/bin"}, str(tmp_path))
    layer = spec.jobs[0].layers[0]
    assert (layer.nproc, layer.port) == (4, 29633)
    assert layer.env["CUDA_VISIBLE_DEVICES"].value == "0,1"


def test_accelerate_option_without_its_value_stops_accelerate(tmp_path):
    """An empty variable between two options (`--num_machines $NNODES --rdzv_backend c10d`
    with NNODES unset): argparse takes no option word as a value, so accelerate stops
    there; no program is read from the words after it (`c10d` is not a script)."""
    got = launchers.accelerate([Word(a, a) for a in "--num_processes 4 --num_machines "
                                "--rdzv_backend c10d train.py".split()], {}, str(tmp_path))
    assert "--num_machines: expected one argument" in got.error
    assert got.program is None
    # a negative number is a value, not an option (argparse's own rule)
    got = launchers.accelerate([Word(a, a) for a in "--num_processes -1 --cpu t.py".split()],
                               {}, str(tmp_path))
    assert not got.error.endswith("expected one argument") and got.program.text == "t.py"


@pytest.mark.parametrize("argv, error", [
    ("--include localhost: train.py", "invalid literal"),  # runner.py:276 int('')
    ("--include localhost:0:1 train.py", "too many values"),  # a second `:`
    ("--exclude localhost train.py", "no GPU"),  # launch.py:155: an empty world
    ("--no_ssh train.py", "--node_rank"),  # runner.py:535: --node_rank stays -1
    ("--quiet --log_level loud train.py", "invalid choice"),
])
def test_deepspeed_stops_where_its_runner_stops(tmp_path, argv, error):
    assert error in _ds(argv, tmp_path).error


def test_deepspeed_options_it_has_are_not_usage_errors(tmp_path):
    got = _ds("-q --venv_script v.sh --num_gpus 2 train.py", tmp_path)
    assert not got.error and got.nproc == 2


def test_a_missing_deepspeed_hostfile_is_this_node_not_a_missing_input(tmp_path):
    """deepspeed/launcher/runner.py:212-216 `fetch_hostfile`: a hostfile that is not there
    is a warning and a launch on this node's GPUs, not a stop."""
    (tmp_path / "train.py").write_text("")
    spec = launch.load(None, "deepspeed --hostfile missing.txt --num_gpus 2 train.py",
                       {"PATH": "/usr/bin"}, str(tmp_path))
    outer = spec.jobs[0].layers[0]
    assert (outer.nproc, outer.nnodes, outer.error) == (2, 1, "")
    assert not [i for i in spec.inputs if i.path.endswith("missing.txt")]


def test_python_c_is_named_as_written(tmp_path):
    # verl's sapo_trainer/run_qwen30b_sapo.sh checks Ray with `python -c "import ray; ..."`:
    # the layer read `python -m -c` (the code flag taken for a module)
    script = tmp_path / "run.sh"
    script.write_text("python -c 'import ray; print(1)'\npython3 -u -m verl.trainer.main_ppo a=1\n")
    spec = launch.load(str(script), None, {"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    assert [x.launcher for x in spec.layers] == ["python -c", "python3 -m verl.trainer.main_ppo"]
