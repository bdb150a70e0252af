"""grpo-batch against ms-swift 4.6's own argument validation (swift CI stage).

Random GRPO command lines (`NPROC_PER_NODE=.. swift rlhf --rlhf_type grpo ...`) are read
by preflight (launch analysis -> stack/grpo_batch.py) and judged by ms-swift's own
functions, in the order `RLHFArguments.__post_init__` runs them, on the parsed values
(no model is loaded): `_set_default`, `DataArguments._init_val_dataset_exists`,
`SftArguments._init_eval_strategy`, the no-validation-data rule of
`SftArguments.__post_init__` (sft_args.py:232, inline there), GRPOConfig's
`_init_generation_batch_params` and `RLHFArguments._check_teacher`.
0 misses, 0 false alarms, and every fix preflight suggests is accepted by ms-swift.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from preflight.launch import spec as launch
from preflight.stack import grpo_batch

pytestmark = pytest.mark.slow
args_mixin = pytest.importorskip("swift.rlhf_trainers.args_mixin")
from swift.arguments.base_args.data_args import DataArguments  # noqa: E402
from swift.arguments.rlhf_args import RLHFArguments  # noqa: E402
from swift.arguments.sft_args import SftArguments  # noqa: E402
from swift.cli.main import parse_yaml_args  # noqa: E402
from swift.utils.utils import _patch_get_type_hints  # noqa: E402
from transformers import HfArgumentParser  # noqa: E402

with _patch_get_type_hints():
    PARSER = HfArgumentParser([RLHFArguments])

CASES = 1500
FIELDS = {f.name: f for f in dataclasses.fields(RLHFArguments)}


def default(name: str):
    f = FIELDS[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def swift_verdict(flags: dict, world_size: int) -> str | None:
    """ms-swift's own validation of these flags; None: accepted."""
    get = {name: flags[name] if flags.get(name) is not None else default(name) for name in (
        "per_device_train_batch_size", "per_device_eval_batch_size",
        "gradient_accumulation_steps", "num_generations", "steps_per_generation",
        "generation_batch_size", "num_generations_eval", "eval_strategy", "save_strategy",
        "split_dataset_ratio", "val_dataset", "teacher_model")}
    a = SimpleNamespace(rlhf_type="grpo", beta=None, loss_type=None, dataset=["train.jsonl"],
                        cached_val_dataset=[], eval_dataset=[], eval_steps=None,
                        save_steps=500, teacher_model_server=None, use_liger_kernel=False,
                        model="Qwen/Qwen3-0.6B", tuner_type="lora", teacher_adapters=[],
                        world_size=world_size, **get)
    try:
        RLHFArguments._set_default(a)  # rlhf_args.py:528: GRPO accumulates 1 by default
        DataArguments._init_val_dataset_exists(a)
        SftArguments._init_eval_strategy(a)
        if not (a.eval_dataset or a._val_dataset_exists):  # sft_args.py:232-233
            a.eval_strategy = "no"
        args_mixin.RolloutTrainerArgumentsMixin._init_generation_batch_params(a)
        RLHFArguments._check_teacher(a)
    except ValueError as exc:
        return str(exc)
    return None


NUMBERS = {
    "per_device_train_batch_size": [1, 1, 2, 2, 3, 4, 8],
    "per_device_eval_batch_size": [1, 2, 3, 4, 8],
    "gradient_accumulation_steps": [1, 2, 3, 4],
    "num_generations": [1, 2, 3, 4, 5, 6, 8, 8, 16],
    "steps_per_generation": [1, 2, 3, 4, 0],
    "generation_batch_size": [4, 6, 8, 12, 16, 24, 32, 48, 64, 96],
    "num_generations_eval": [1, 2, 3, 4, 8],
}


def swift_parse(argv: list[str]) -> dict:
    """The flags as ms-swift itself reads them: swift/cli/main.py `parse_yaml_args` (a
    config file as the first argument) and its HfArgumentParser (prefixes included)."""
    argv = list(argv)
    parse_yaml_args(argv)
    ns, _ = PARSER.parse_known_args(argv)
    return vars(ns)


def random_config(rng: random.Random) -> tuple[dict, int, int]:
    flags: dict = {k: rng.choice(v) for k, v in NUMBERS.items() if rng.random() < 0.45}
    if "steps_per_generation" in flags and "generation_batch_size" in flags and \
            rng.random() < 0.5:  # both given and consistent half of the time
        flags["generation_batch_size"] = None
    if rng.random() < 0.3:
        flags["split_dataset_ratio"] = rng.choice([0.0, 0.1])
    if rng.random() < 0.25:
        flags["val_dataset"] = ["val.jsonl"]
    if rng.random() < 0.3:
        flags["eval_strategy"] = rng.choice(["no", "steps", "epoch"])
    if rng.random() < 0.25:
        flags["save_strategy"] = rng.choice(["no", "steps"])
    if rng.random() < 0.1:
        flags["teacher_model"] = "Qwen/Qwen3-8B"
    return flags, rng.choice([1, 1, 2, 2, 3, 4, 8]), rng.choice([1, 1, 1, 2])


def spell(rng: random.Random, key: str) -> str:
    """--key, --key-with-dashes, or a prefix argparse resolves to the same option."""
    name = f"--{key}" if rng.random() < 0.7 else f"--{key.replace('_', '-')}"
    if rng.random() < 0.3:
        for cut in range(len(name) - 1, 4, -1):
            if launch.swift_option(name[:cut]) == key:
                return name[:cut]
    return name


def command(flags: dict, nproc: int, nnodes: int, rng: random.Random, tmp: Path
            ) -> tuple[str, list[str]]:
    """The shell command line and swift's argv (after `swift rlhf`)."""
    env = f"NPROC_PER_NODE={nproc} " + (f"NNODES={nnodes} MASTER_ADDR=10.0.0.1 "
                                        if nnodes > 1 else "")
    flags = {k: v for k, v in flags.items() if v is not None}
    argv: list[str] = []
    if rng.random() < 0.2:  # some flags in a config file given as the first argument
        moved = {k: v for k, v in flags.items() if rng.random() < 0.6}
        config = tmp / f"grpo{rng.randrange(10**9)}.yaml"
        config.write_text(yaml.safe_dump(moved))
        argv.append(str(config))
        flags = {k: v for k, v in flags.items() if k not in moved}
    argv += ["--rlhf_type", "grpo", "--model", "Qwen/Qwen3-0.6B", "--dataset", "train.jsonl"]
    for k, v in flags.items():
        argv.append(spell(rng, k))
        argv += [str(i) for i in (v if isinstance(v, list) else [v])]
    return env + "swift rlhf " + " ".join(argv), argv


def preflight_reading(cmd: str, tmp: str):
    spec = launch.load(None, cmd, {"PATH": "/usr/bin:/bin"}, tmp)
    (layer, args, launcher), = grpo_batch_runs(spec)
    ws = launcher.nproc * launcher.nnodes
    cfg, flipped, unknown = grpo_batch.from_args(args, ws)
    assert cfg is not None and flipped is None, unknown
    return cfg, frozenset(args)


def grpo_batch_runs(spec):
    return list(launch.grpo_runs(spec))


def apply(flags: dict, change: dict) -> dict:
    out = dict(flags)
    for k, v in change.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def test_defaults_are_ms_swifts():
    for name, value in grpo_batch.DEFAULTS.items():
        if name == "gradient_accumulation_steps":  # None, then 1 for GRPO (rlhf_args.py:528)
            assert default(name) is None
            continue
        assert default(name) == value, name


def test_option_table_is_ms_swifts():
    """preflight resolves `swift rlhf` option prefixes from a copy of ms-swift's table."""
    mine = launch.swift_rlhf_options()
    theirs = {o: a.dest for a in PARSER._actions for o in a.option_strings if o.startswith("--")}
    assert mine == theirs


def test_grpo_rules_match_ms_swift(tmp_path, capsys):
    rng = random.Random(4_6_0)
    counts = {"cases": 0, "rejected": 0, "accepted": 0, "misses": 0, "false_alarms": 0,
              "fixes_checked": 0, "fixes_rejected": 0, "rejections_without_fix": 0}
    bad = []
    start = time.monotonic()
    for _ in range(CASES):
        flags, nproc, nnodes = random_config(rng)
        flags = {k: v for k, v in flags.items() if v is not None}
        ws = nproc * nnodes
        cmd, argv = command(flags, nproc, nnodes, rng, tmp_path)
        parsed = swift_parse(argv)
        want = swift_verdict(parsed, ws)
        cfg, given = preflight_reading(cmd, str(tmp_path))
        got = grpo_batch.rejections(cfg)
        counts["cases"] += 1
        counts["rejected" if want else "accepted"] += 1
        if want and not got:
            counts["misses"] += 1
            bad.append(f"miss: {cmd}: ms-swift says {want}")
        elif got and not want:
            counts["false_alarms"] += 1
            bad.append(f"false alarm: {cmd}: preflight says {got}")
        if not got:
            continue
        fixes = grpo_batch.fixes(cfg, given)
        if not fixes:
            counts["rejections_without_fix"] += 1
            bad.append(f"no fix: {cmd}")
        for change in fixes:
            counts["fixes_checked"] += 1
            verdict = swift_verdict(apply(parsed, change), ws)
            if verdict:
                counts["fixes_rejected"] += 1
                bad.append(f"fix {grpo_batch.flags(change)} for {cmd}: ms-swift says {verdict}")
    with capsys.disabled():
        print(f"\ngrpo oracle vs ms-swift 4.6: {counts} in {time.monotonic() - start:.1f}s")
    assert counts["cases"] >= 1000
    assert not bad, f"{len(bad)} disagreements:\n" + "\n".join(bad[:15])
