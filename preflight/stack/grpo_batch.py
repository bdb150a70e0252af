"""GRPO batch arithmetic exactly as ms-swift 4.6 validates it, with fixes it accepts.

Pure rules: a `GrpoBatch` (numbers as the job gives them) in, the rejections ms-swift
would raise out, each with fix values that are themselves checked against the same
rules (so every suggestion is one ms-swift then accepts). Line numbers are ms-swift
4.6.0; tests/test_grpo_oracle.py runs these rules against ms-swift's own functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from preflight.launch.shell import Word

# swift/trainers/arguments.py:130-131 (per_device_*_batch_size = 1),
# swift/arguments/rlhf_args.py:528-530 (gradient_accumulation_steps = 1 for GRPO),
# swift/arguments/rlhf_args.py:164 (num_generations = 8),
# swift/rlhf_trainers/args_mixin.py:195-196,471 (None).
DEFAULTS = {"per_device_train_batch_size": 1, "per_device_eval_batch_size": 1,
            "gradient_accumulation_steps": 1, "num_generations": 8,
            "steps_per_generation": None, "generation_batch_size": None,
            "num_generations_eval": None}


@dataclass(frozen=True)
class GrpoBatch:
    world_size: int
    per_device_train_batch_size: int = 1
    per_device_eval_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    num_generations: int = 8
    steps_per_generation: int | None = None
    generation_batch_size: int | None = None
    num_generations_eval: int | None = None
    teacher: bool = False  # --teacher_model / --teacher_model_server given
    eval_on: bool = False  # see eval_enabled()


@dataclass(frozen=True)
class Rejection:
    message: str
    where: str  # ms-swift file:line


def eval_enabled(eval_strategy: str | None, save_strategy: str | None, val_dataset: bool,
                 split_dataset_ratio: float, dataset: bool = True) -> bool:
    """Whether GRPO evaluates at all, so that the eval batch rules apply."""
    # swift/arguments/sft_args.py:406-408 `_init_eval_strategy`: eval inherits save_strategy
    # (TrainingArguments default "steps").
    strategy = eval_strategy if eval_strategy is not None else (save_strategy or "steps")
    if strategy == "no":
        return False
    # swift/arguments/base_args/data_args.py:142 `_init_val_dataset_exists` and
    # swift/arguments/sft_args.py:232-233: no validation data -> eval_strategy 'no'.
    return bool(dataset and split_dataset_ratio > 0 or val_dataset)


def rejections(c: GrpoBatch) -> list[Rejection]:
    """What ms-swift raises for this configuration; empty: it accepts it."""
    out = []
    spg, gbs = c.steps_per_generation, c.generation_batch_size
    g = c.num_generations
    global_batch = c.per_device_train_batch_size * c.world_size
    mixin = "swift/rlhf_trainers/args_mixin.py"
    # args_mixin.py:200-242 `_init_generation_batch_params` (GRPOConfig.__post_init__)
    if gbs is None and spg is None:
        spg = c.gradient_accumulation_steps
        gbs = global_batch * spg
    elif gbs is not None and spg is None:
        if global_batch == 0 or gbs % global_batch:
            return [Rejection(f"generation_batch_size ({gbs}) must be divisible by the global "
                              f"batch size ({global_batch})", f"{mixin}:209")]
        spg = gbs // global_batch
    elif gbs is None and spg is not None:
        gbs = global_batch * spg
    elif spg is not None and gbs != global_batch * spg:
        return [Rejection(f"generation_batch_size ({gbs}) must equal per_device_train_batch_"
                          f"size * world_size * steps_per_generation = {global_batch * spg}",
                          f"{mixin}:216")]
    assert spg is not None and gbs is not None  # every branch above sets both
    if spg <= 0:
        return [Rejection(f"steps_per_generation must be > 0, got {spg}", f"{mixin}:221")]
    if g > 1:
        if gbs % g:
            return [Rejection(f"generation_batch_size ({gbs}) must be evenly divisible by "
                              f"num_generations ({g})", f"{mixin}:225")]
        if c.eval_on:
            ge = c.num_generations_eval or g
            geb = c.per_device_eval_batch_size * c.world_size
            if geb % ge:
                out.append(Rejection(
                    f"the global eval batch size ({c.world_size} x "
                    f"{c.per_device_eval_batch_size}) must be evenly divisible by "
                    f"num_generations_eval ({ge})", f"{mixin}:235"))
    # swift/arguments/rlhf_args.py:403-410 `_check_teacher`: without a teacher (OPD-RL)
    # GRPO needs num_generations > 1.
    if not c.teacher and g == 1:
        out.append(Rejection("num_generations must be greater than 1 for GRPO",
                             "swift/arguments/rlhf_args.py:409"))
    return out


def _with(c: GrpoBatch, change: Mapping[str, int | None]) -> GrpoBatch:
    """`c` with some numbers changed (None: an optional number dropped)."""
    fields: dict[str, Any] = dict(change)
    return replace(c, **fields)


def _divisors(n: int, start: int) -> list[int]:
    return [d for d in range(start, n + 1) if n % d == 0]


def fixes(c: GrpoBatch, given: frozenset[str] = frozenset()) -> list[dict[str, int | None]]:
    """Changes (flag -> value; None: drop the flag) after which ms-swift accepts `c`.

    Every candidate is checked with `rejections`: all num_generations that work, then the
    nearest one or two values of each other number. `given` names the flags the job sets
    (a fix may drop one of those)."""
    if not rejections(c):
        return []
    found: list[dict[str, int | None]] = []

    def accepted(change: dict[str, int | None]) -> bool:
        return bool(change) and change not in found and not rejections(
            _with(c, change))

    def nearest(key: str, values: Iterable[int], now: int | None, keep: int) -> None:
        ok = [v for v in sorted(set(values), key=lambda v: (abs(v - (now or 0)), v))
              if accepted({key: v})]
        found.extend({key: v} for v in sorted(ok[:keep]))

    g, b = c.num_generations, c.per_device_train_batch_size
    global_batch = b * c.world_size
    spg, gbs = c.steps_per_generation, c.generation_batch_size
    # Both given and disagreeing: drop one (ms-swift derives it), or the expected value.
    if gbs is not None and spg is not None:
        for key in ("steps_per_generation", "generation_batch_size"):
            if key in given and accepted({key: None}):
                found.append({key: None})
    effective = gbs if gbs is not None else global_batch * (
        spg if spg is not None else c.gradient_accumulation_steps)
    nearest("num_generations", range(2, max(effective, 2) + 1), g, 64)
    top = 4 * max(g, 2)
    if gbs is not None:
        nearest("generation_batch_size", range(1, top * global_batch + 1), gbs, 2)
    else:
        nearest("per_device_train_batch_size", range(1, top + 1), b, 2)
        key = "steps_per_generation" if spg is not None else "gradient_accumulation_steps"
        nearest(key, range(1, top + 1), spg if spg is not None else
                c.gradient_accumulation_steps, 2)
    if c.eval_on:
        nearest("num_generations_eval", range(1, c.per_device_eval_batch_size *
                                              c.world_size + 1), c.num_generations_eval, 64)
        nearest("per_device_eval_batch_size", range(1, top + 1), c.per_device_eval_batch_size,
                2)
    if not found:  # more than one number is wrong: repair one rule after the other
        change = _repair(c, given, {}, 4)
        if change:
            found.append(change)
    return found


def _candidates(c: GrpoBatch, rule: str, given: frozenset[str]
                ) -> Iterator[Mapping[str, int | None]]:
    """Single changes that address one rejected rule (by its ms-swift line)."""
    global_batch = c.per_device_train_batch_size * c.world_size
    spg = c.steps_per_generation
    gen = c.generation_batch_size
    if rule.endswith((":216", ":209")):
        if spg is not None and gen is not None:
            yield {"generation_batch_size": global_batch * spg}
        for key in ("steps_per_generation", "generation_batch_size"):
            if key in given and getattr(c, key) is not None:
                yield {key: None}
        if gen is not None and global_batch:
            yield {"generation_batch_size": max(global_batch, gen // global_batch *
                                                global_batch)}
    elif rule.endswith(":221"):
        yield {"steps_per_generation": max(c.gradient_accumulation_steps, 1)}
        if "steps_per_generation" in given:
            yield {"steps_per_generation": None}
    elif rule.endswith((":225", ":409")):
        effective = gen if gen is not None else global_batch * (
            spg if spg is not None else c.gradient_accumulation_steps)
        divisors = [n for n in range(2, effective + 1) if effective % n == 0]
        yield from ({"num_generations": n} for n in sorted(
            divisors, key=lambda n: abs(n - c.num_generations)))
        g = max(c.num_generations, 2)
        if gen is not None:
            yield {"num_generations": g, "generation_batch_size": global_batch * g}
        else:
            yield {"num_generations": g, "per_device_train_batch_size":
                   c.per_device_train_batch_size * g}
    elif rule.endswith(":235"):
        geb = c.per_device_eval_batch_size * c.world_size
        yield from ({"num_generations_eval": n} for n in range(geb, 0, -1) if geb % n == 0)


def _repair(c: GrpoBatch, given: frozenset[str], done: dict[str, int | None], depth: int
            ) -> dict[str, int | None] | None:
    found = rejections(c)
    if not found:
        return done
    if depth == 0:
        return None
    for change in _candidates(c, found[0].where, given):
        after = _with(c, change)
        later = rejections(after)
        if later and later[0].where == found[0].where:
            continue  # no progress on this rule
        result = _repair(after, given, {**done, **change}, depth - 1)
        if result:
            return result
    return None


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def flags(change: dict[str, int | None]) -> str:
    """A fix as swift flags: `--num_generations 4`; a dropped flag as `(drop --x)`."""
    return " ".join(f"--{k} {v}" if v is not None else f"(drop --{k})"
                    for k, v in change.items())


NUMBERS = tuple(DEFAULTS)


def from_args(args: Mapping[str, Word], world_size: int | None, world_from: str = ""
              ) -> tuple[GrpoBatch | None, GrpoBatch | None, list[str]]:
    """The GRPO numbers of a `swift rlhf` command line: (config with eval as read, the same
    with eval flipped when whether eval runs is not known, else None; what is unknown)."""
    unknown = []
    values: dict[str, int | None] = {}
    for key, default in DEFAULTS.items():
        w = args.get(key)
        if w is None:
            values[key] = default
        elif not w.known:
            unknown.append(f"--{key} {w.text} ({w.reason or 'not evaluated'})")
        else:
            try:
                values[key] = int(w.text)
            except ValueError:
                unknown.append(f"--{key} {w.text!r} is not an integer")
    if world_size is None:
        unknown.append(f"world size ({world_from})")
    text = {k: (w.text if w.known else None) for k, w in args.items()}
    eval_words = ("eval_strategy", "save_strategy", "split_dataset_ratio")
    eval_unknown = [k for k in eval_words if k in args and not args[k].known]
    try:
        ratio = float(text.get("split_dataset_ratio") or 0)
    except ValueError:
        ratio, eval_unknown = 0.0, [*eval_unknown, "split_dataset_ratio"]
    eval_on = eval_enabled(text.get("eval_strategy"), text.get("save_strategy"),
                           bool(args.get("val_dataset") or args.get("eval_dataset")), ratio)
    if unknown:
        return None, None, unknown
    teacher = "teacher_model" in args or "teacher_model_server" in args
    cfg = _with(GrpoBatch(world_size=world_size or 1, teacher=teacher, eval_on=eval_on),
                values)
    return cfg, replace(cfg, eval_on=not eval_on) if eval_unknown else None, []
