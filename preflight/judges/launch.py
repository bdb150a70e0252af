"""Launch-script pitfalls from real lost jobs: nested-launcher, empty-variable,
launch-inputs, grpo-batch, launch-ports, launch-gpus, launcher-args, launch-syntax.

Each judge reads the frozen `LaunchSpec` (`preflight.launch.spec`: the script evaluated,
never run) and what the adapter read of the node (paths, ports, GPU count) and returns a
`Verdict`. Without a launch script every judge skips.
"""

from __future__ import annotations

import difflib
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from preflight.launch.shell import UNKNOWN_OPEN, Read, Word
from preflight.launch.spec import (
    LMF_PER_GPU,
    LMF_PROGRAMS,
    SWIFT_ROUTES,
    Job,
    LaunchSpec,
    Layer,
    PathArg,
    display,
    grpo_runs,
    visible,
)
from preflight.model import Kind, Problem, Verdict
from preflight.numbers import maybe_int
from preflight.probes.bash_syntax import BashSyntax
from preflight.redact import MASK, is_secret_name, redact_argv, redact_text, secret_values
from preflight.stack import grpo_batch

NO_SCRIPT = "no launch script (--launch-script PATH or --launch-cmd STRING)"
NO_LAUNCHER = "no distributed launcher in the launch script"
LAUNCHER_WORDS = ("torchrun", "torch.distributed", "swift", "megatron", "deepspeed",
                  "accelerate", "ray", "llamafactory", "lmf ")


def short(path: str) -> str:
    return posixpath.basename(path) if path.startswith("/") else path


def at(layer: Layer) -> str:
    return layer.at


def distributed(spec: LaunchSpec) -> list[Layer]:
    return [x for job in spec.jobs for x in job.distributed]


@dataclass(frozen=True)
class GpuCount:
    """This node's GPUs as NVML lists them, read only for a layer whose start hangs on
    the GPU count (`Layer.gpu_gate`: llamafactory-cli's relaunch); count None: not read
    (`error` says why)."""

    count: int | None = None
    error: str = "not read"


def _count(gpus: GpuCount) -> int | str:
    return gpus.count if gpus.count is not None else f"not known: {gpus.error}"


def gated(spec: LaunchSpec | None) -> bool:
    """Whether a layer's start hangs on the node's GPU count (the adapters then read it)."""
    return spec is not None and any(x.gpu_gate is not None for x in distributed(spec))


def not_read(spec: LaunchSpec) -> Verdict:
    """A script not read to its end (LaunchSpec.unread): what it starts is not known."""
    return Verdict(evidence=dict(launch=spec.source, unread=spec.unread),
                   problems=[Problem.unknown(
                       f"{short(spec.source)} not read: {spec.unread}",
                       why="bash stops there with a syntax error (status 2) and never "
                           "starts what follows; see check launch-syntax" if spec.syntax_error
                       else "preflight reads no further (bashlex would take minutes); give it "
                           "the launch command itself: --launch-cmd '<the launcher's line>'")])


def unseen(spec: LaunchSpec, found: str) -> Verdict:
    """A check that found no `found` in what it read, where the script also runs what
    preflight could not read (LaunchSpec.unseen): that may hold one, so not "none"."""
    return Verdict(evidence=dict(launch=spec.source, unseen=list(spec.unseen)),
                   problems=[Problem.unknown(
                       f"{found} in what preflight read, but the script also runs what it "
                       "could not read: " + "; ".join(spec.unseen[:3]),
                       why="a file it sources or runs that preflight cannot read, or whose "
                           "path only the run decides, may start one; to check the launch "
                           "itself, give its line: --launch-cmd '<the launcher's line>'")])


def unseen_fix(spec: LaunchSpec) -> str:
    """`sed -n 'Np' SCRIPT`: the first line of the launch script where it runs what
    preflight could not read, to see what it is; "" when that is in another file or the
    launch is a --launch-cmd."""
    for place in spec.unseen:
        name, _, rest = place.partition(":")
        line = rest.split(":", 1)[0]
        if spec.source != "--launch-cmd" and name == posixpath.basename(spec.source) and \
                line.isdigit():
            return f"sed -n '{line}p' {shlex.quote(spec.source)}   # runs what preflight " \
                   "did not read: check its launch with --launch-cmd"
    return ""


def also_unseen(v: Verdict, spec: LaunchSpec) -> Verdict:
    """A check that judged the launchers it read, where the script also runs what
    preflight could not read (LaunchSpec.unseen): a launcher started there is not judged,
    so its PASS becomes UNKNOWN naming file:line, its own verdict on what it read kept in
    the message (`v.ok`); a NO-GO on what it read still decides (the evidence names the
    unread part)."""
    if not spec.unseen:
        return v
    v.evidence["unseen"] = list(spec.unseen)
    if v.of(Kind.BLOCKER):
        return v
    fix = unseen_fix(spec)
    if not v.problems:  # the check's own fix is about what it read, which passed
        v.fix = fix
    # its own verdict on what it read: the warnings when there are any (the UNKNOWN now
    # decides the message), else what passed
    said = "; ".join(f"WARN {p.text}" for p in v.of(Kind.WARNING)) or v.ok or "judged"
    v.problems.append(Problem.unknown(
        f"{said} in what preflight read, but the script also runs what it "
        "could not read: " + "; ".join(spec.unseen[:3]), fix=fix,
        why="a launcher that a file it sources or runs (unreadable, or its path only the "
            "run decides) starts is not judged; to check that launch itself, give its "
            "line: --launch-cmd '<the launcher's line>'"))
    return v


def _none_found(v: Verdict, spec: LaunchSpec, found: str, skip: str) -> None:
    """`v` skips with `skip`, or is UNKNOWN (`unseen`) where the script runs what
    preflight could not read."""
    if spec.unseen:
        v.problems += unseen(spec, found).problems
        v.evidence["unseen"] = list(spec.unseen)
    else:
        v.skip = skip


def _unknowns(spec: LaunchSpec, words: tuple[str, ...] = ()) -> list[str]:
    return [f"{posixpath.basename(u.file)}:{u.line}: {u.reason}" for u in spec.unknowns
            if not words or any(w in u.text for w in words)]


# -- nested-launcher -------------------------------------------------------------------


@dataclass(frozen=True)
class NestedFacts:
    spec: LaunchSpec | None
    under: Mapping[str, str]  # TORCHELASTIC_RUN_ID / LOCAL_RANK the suite itself runs with
    gpus: GpuCount = GpuCount()  # for a relaunch the GPU count decides (Layer.starts)


def live(layers: Sequence[Layer], gpus: GpuCount) -> list[tuple[Layer, str]]:
    """The layers that start on this node, each with why it may not ("": it does); a
    relaunch the node's GPU count rules out is left out."""
    out = []
    for layer in layers:
        starts, why = layer.starts(gpus.count, gpus.error)
        if starts is not False:
            out.append((layer, why))
    return out


def _relaunched_by_lmf(layer: Layer) -> bool:
    return layer.implicit and any(f"relaunched by {p} " in layer.launcher
                                  for p in LMF_PROGRAMS)


def _nested_fix(outer: Layer, inner: Layer) -> str:
    if inner.implicit and "swift" in inner.launcher:
        n = outer.nproc or inner.nproc or "N"
        return (f"{at(outer)}: drop the outer {outer.launcher} and run "
                f"`NPROC_PER_NODE={n} swift ...` (swift relaunches itself once), or keep "
                "torchrun and call `python -m swift.cli.rlhf` (or .sft) with "
                "NPROC_PER_NODE unset")
    if _relaunched_by_lmf(inner):
        # LLaMA-Factory launcher.py:60-68: it relaunches itself once, with NPROC_PER_NODE
        n = outer.nproc or inner.nproc or "N"
        return (f"{at(outer)}: drop the outer {outer.launcher} and run "
                f"`FORCE_TORCHRUN=1 NPROC_PER_NODE={n} llamafactory-cli train ...` "
                "(it relaunches itself under torchrun once)")
    return f"{at(outer)}: keep one launcher: drop {outer.launcher} or the {inner.launcher} " \
           "it starts"


def _unknown_programs(spec: LaunchSpec) -> list[str]:
    """A launcher whose program is not known (`torchrun $(which swift) rlhf` where swift
    does not resolve here) may start a second launcher: one layer is not shown."""
    out = []
    for job in spec.jobs:
        if not job.distributed:
            continue
        last, outer = job.layers[-1], job.distributed[-1]
        if last.kind == "distributed" and not last.program and not last.error:
            why = last.nproc_text if last.nproc is None else last.port_text
            out.append(f"cannot tell what {last.launcher} at {at(last)} starts"
                       + (f": {why[1:-1]}" if why.startswith("⟨") else ""))
        elif last.kind == "program" and "⟨" in last.program:
            out.append(f"cannot tell what {outer.launcher} at {at(outer)} starts: "
                       f"{last.program}")
        elif last.kind == "other" and last.unread:  # a child script not known (spec.py)
            out.append(f"cannot tell what {outer.launcher} at {at(outer)} starts: "
                       f"{last.unread}")
    return out


def nested_launcher(f: NestedFacts) -> Verdict:
    spec = f.spec
    if spec is None:
        return Verdict(skip=NO_SCRIPT)
    if spec.unread:
        return not_read(spec)
    running = [[x for x, _ in live(job.distributed, f.gpus)] for job in spec.jobs]
    launching = [layers for layers in running if layers]
    v = Verdict(
        evidence=dict(jobs=[{"command": display(job.command.argv),
                             "layers": [x.describe() for x in job.layers]}
                            for job in spec.jobs],
                      suite_under_torchrun=dict(f.under) or None),
        headline="nested launchers", fix="keep one distributed launcher per job")
    for job in spec.jobs:
        layers = live(job.distributed, f.gpus)
        if len(layers) > 1:
            (outer, outer_maybe), (inner, inner_maybe) = layers[0], layers[1]
            text = (f"{outer.launcher} at {at(outer)} (port {outer.port or outer.port_text}) "
                    f"starts {inner.launcher} at {at(inner)} "
                    f"(port {inner.port or inner.port_text})")
            maybe = outer_maybe or inner_maybe
            v.problems.append(Problem.unknown(f"{text}, if it starts at all: {maybe}")
                              if maybe else Problem(text, _nested_fix(outer, inner)))
    if gated(spec):
        v.evidence["gpus_on_node"] = _count(f.gpus)
    if f.under and launching:
        first = launching[0][0]
        v.problems.append(Problem(
            f"preflight itself runs under torchrun ({', '.join(f.under)} set) and the "
            f"script starts {first.launcher} at {at(first)}",
            "unset TORCHELASTIC_RUN_ID LOCAL_RANK   # run preflight from a plain shell, not "
            "under torchrun"))
    if v.of(Kind.BLOCKER):
        return v
    # where the script runs what preflight did not read (a program not known, a source it
    # cannot read): a launcher there is not seen, so neither "one layer" nor "none"
    places = {u.split(": ", 1)[0] for u in spec.unseen}
    unknown = [*spec.unseen, *(u for u in _unknowns(spec, LAUNCHER_WORDS)
                               if u.split(": ", 1)[0] not in places), *_unknown_programs(spec)]
    if unknown:
        v.evidence["unknowns"] = unknown
        v.problems.append(Problem.unknown(
            "cannot tell the launch layers: " + "; ".join(unknown[:3])))
    if v.problems:
        return v
    end = spec.exit
    if end and not launching:
        if end.empty or end.missing:
            v.skip = (f"the script exits at line {end.line} before it launches anything "
                      "(see empty-variable / launch-inputs)")
        else:
            v.problems.append(Problem.unknown(
                f"the script exits at line {end.line} ({end.guard or 'exit ' + end.status}) "
                "before it launches anything"))
        return v
    names = [x.launcher for job in launching for x in job]
    v.ok = (f"one launcher layer per job ({', '.join(dict.fromkeys(names))})" if names
            else "no distributed launcher in the script")
    return v


# -- empty-variable --------------------------------------------------------------------


def _set_it(name: str) -> str:
    return (f"export {name}=<value> before the script (or give it a default: "
            f"${{{name}:-value}}, or fail fast: ${{{name}:?set {name}}})")


def empty_variable(spec: LaunchSpec | None) -> Verdict:
    if spec is None:
        return Verdict(skip=NO_SCRIPT)
    if spec.unread:
        return not_read(spec)
    guard = spec.exit if spec.exit and spec.exit.empty else None
    uses = [{"variable": u.variable, "line": f"{short(u.file)}:{u.line}",
             "program": u.program, "argument": u.argument, "expands_to": u.expands_to}
            for u in spec.empties]
    v = Verdict(evidence=dict(empty=uses, exits_at=None if guard is None else {
        "line": f"{short(guard.file)}:{guard.line}", "guard": guard.guard,
        "empty": list(guard.empty)}), fix="set the variable",
        ok="no variable expands empty inside an argument or path")
    # Each variable's fix goes with the first problem naming it; the first four only.
    names = list(dict.fromkeys([u.variable for u in spec.empties] +
                               (list(guard.empty) if guard else [])))[:4]
    unfixed = list(names)

    def fix_for(variables: Sequence[str]) -> str:
        mine = [n for n in variables if n in unfixed]
        for n in mine:
            unfixed.remove(n)
        return "\n".join(_set_it(n) for n in mine)

    for u in uses[:5]:
        v.problems.append(Problem(
            f"{u['variable']} is empty at {u['line']}: {u['argument']} -> {u['expands_to']}",
            fix_for([str(u["variable"])])))
    if guard:
        v.problems.append(Problem(
            f"the script exits at line {guard.line} because {', '.join(guard.empty)} is "
            f"empty ({guard.guard})", fix_for(guard.empty)))
    return v


# -- launch-inputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class InputsFacts:
    spec: LaunchSpec | None
    exists: Mapping[str, bool] = field(default_factory=dict)  # input path -> exists
    is_dir: Mapping[str, bool] = field(default_factory=dict)  # output directory -> isdir
    nearest: Mapping[str, str] = field(default_factory=dict)  # dir -> nearest existing
    writable: Mapping[str, bool] = field(default_factory=dict)  # that one: a dir we may write


def input_paths(spec: LaunchSpec) -> list[str]:
    """The input paths the judge asks `exists` about."""
    return [a.path for a in spec.inputs if a.known and a.path]


def output_dirs(spec: LaunchSpec) -> list[str]:
    """The output directories the judge asks `is_dir` / `nearest` about."""
    return [o.directory for o in spec.outputs if o.directory]


def _output(out: PathArg, f: InputsFacts) -> dict[str, Any] | str | None:
    """An output's problem (a dict for the evidence), an unknown (str), or None: fine."""
    if not out.directory:
        return None if out.known else f"{out.flag} {out.path} ({out.reason})"
    where = f"{short(out.file)}:{out.line}"
    base = f.nearest.get(out.directory, "/")
    if out.needs_dir and not f.is_dir.get(out.directory, False):
        # bash (`> dir/x.log`) and tee open the file: a missing directory fails there
        if out.made:
            return None
        if out.made is None:
            return f"{out.flag} {out.path} at {where}: {out.directory} may be created by " \
                   f"{out.made_by}"
        return {"flag": out.flag, "path": out.path, "line": where, "nearest_existing": base,
                "missing_dir": out.directory}
    if f.writable.get(base, False):
        return None
    return {"flag": out.flag, "path": out.path, "line": where, "nearest_existing": base}


def launch_inputs(f: InputsFacts) -> Verdict:
    spec = f.spec
    if spec is None:
        return Verdict(skip=NO_SCRIPT)
    if spec.unread:
        return not_read(spec)
    missing: list[dict[str, str]] = []
    unknown: list[str] = []
    bad: list[dict[str, Any]] = []
    checked: list[str] = []
    for arg in spec.inputs:
        if not arg.known:
            unknown.append(f"{arg.flag} {arg.path} at {short(arg.file)}:{arg.line} "
                           f"({arg.reason})")
        elif arg.path not in checked:
            checked.append(arg.path)
            if not arg.path or not f.exists.get(arg.path, False):
                missing.append({"flag": arg.flag, "path": arg.path or "(empty)",
                                "line": f"{short(arg.file)}:{arg.line}"})
    for out in spec.outputs:
        found = _output(out, f)
        if isinstance(found, str):
            unknown.append(found)
        elif found is not None:
            bad.append(found)
    end = spec.exit
    if end is not None:
        missing += [{"flag": f"guard `{end.guard}`", "path": path,
                     "line": f"{short(end.file)}:{end.line}"} for path in end.missing]
    v = Verdict(evidence=dict(
        inputs_checked=checked, missing=missing,
        outputs=[{"flag": o.flag, "directory": o.directory} for o in spec.outputs],
        outputs_not_writable=bad, unknown=unknown),
        fix="point the flags at paths that exist",
        ok=f"{len(checked)} input path(s) exist, {len(spec.outputs)} output(s) writable")
    # The first three of each kind carry their fix, as the report always listed them.
    for i, m in enumerate(missing[:4]):
        v.problems.append(Problem(
            f"{m['flag']} {m['path']} does not exist ({m['line']})",
            # what is there instead (a typo, a version suffix) is the first thing to see
            f"ls -la {shlex.quote(posixpath.dirname(str(m['path'])) or '.')}   # fix "
            f"{m['flag']} at {m['line']}: {m['path']} does not exist (check the variables it "
            "is built from, or download/convert it first)" if i < 3 else ""))
    for i, o in enumerate(bad[:4]):
        fix = (f"mkdir -p {o['missing_dir']}  # before {o['line']}: {o['flag']} does not "
               "create its directory" if "missing_dir" in o else
               # no `; ` in the comment: split would read what follows as a new command
               f"ls -ld {shlex.quote(str(o['nearest_existing']))}   # its owner and mode: "
               f"{o['nearest_existing']} is not writable, so create {o['path']} on a "
               f"writable disk or point {o['flag']} elsewhere")
        v.problems.append(Problem(
            f"{o['flag']} {o['path']} ({o['line']}): directory {o['missing_dir']} does not "
            "exist, bash/tee fail there" if "missing_dir" in o else
            f"{o['flag']} {o['path']}: {o['nearest_existing']} is not writable",
            fix if i < 3 else ""))
    if not v.problems and unknown:
        v.problems.append(Problem.unknown("cannot check: " + "; ".join(unknown[:3])))
    elif not spec.inputs and not spec.outputs and not missing:
        _none_found(v, spec, "no model/dataset/checkpoint/output path",
                    "the launch command gives no model/dataset/checkpoint/output paths")
        return v
    return also_unseen(v, spec)  # a launcher the unread part starts has paths too


# -- grpo-batch ------------------------------------------------------------------------


def _value(args: Mapping[str, Word], key: str, default: int | None
           ) -> tuple[int | None, str]:
    w = args.get(key)
    if w is None:
        return default, "default"
    if not w.known:
        return None, f"{w.text} ({w.reason})"
    try:
        return int(w.text), ("--" + key + (f" <- {' <- '.join(w.refs)}" if w.refs else ""))
    except ValueError:
        return None, f"--{key} {w.text!r} is not an integer"


def _world(launcher: Layer | None) -> tuple[int | None, str]:
    if launcher is None:
        return 1, "one process (no launcher)"
    if launcher.nproc is None or launcher.nnodes is None:
        return None, f"{launcher.launcher} nproc {launcher.nproc_text}"
    return launcher.nproc * launcher.nnodes, (
        f"{launcher.launcher} {launcher.nproc_source}={launcher.nproc}"
        + (f" x {launcher.nnodes} nodes" if launcher.nnodes > 1 else ""))


def _fix_text(changes: list[dict[str, int | None]], args: Mapping[str, Word]) -> str:
    """Fixes grouped by flag: `--num_generations one of [2, 4] (PRL_NUM_GENERATIONS=...)`."""
    single: dict[str, list[int]] = {}
    parts = []
    for change in changes:
        if len(change) == 1 and None not in change.values():
            (key, value), = change.items()
            assert value is not None
            single.setdefault(key, []).append(value)
        else:
            parts.append(grpo_batch.flags(change))
    for key, values in single.items():
        w = args.get(key)
        via = f" ({w.refs[-1]}=...)" if w is not None and w.refs else ""
        parts.insert(len(parts) if parts else 0, f"--{key} one of {values}{via}" if
                     key.startswith("num_generations") else
                     f"--{key} {' or '.join(map(str, values))}{via}")
    return ", or ".join(parts)


def _rejected(text: str, c: grpo_batch.GrpoBatch, gbs: int) -> str:
    """ms-swift's message, with this job's numbers in it."""
    g = c.num_generations
    if "divisible by num_generations (" in text:
        return f"generation_batch_size {gbs} % num_generations {g} = {gbs % g}"
    if "eval batch" in text:
        geval = c.num_generations_eval or g
        eb = c.per_device_eval_batch_size * c.world_size
        return (f"global eval batch {c.world_size} x {c.per_device_eval_batch_size} = {eb} % "
                f"num_generations_eval {geval} = {eb % geval}")
    return text


def _one_run(layer: Layer, args: Mapping[str, Word], launcher: Layer | None, v: Verdict,
             runs: list[dict[str, Any]], unknown: list[str]) -> None:
    # The rules and their ms-swift 4.6 file:line: preflight/stack/grpo_batch.py.
    ws, ws_from = _world(launcher)
    cfg, flipped, missing = grpo_batch.from_args(args, ws, ws_from)
    if cfg is None:
        unknown.append(f"{at(layer)}: " + ", ".join(missing))
        return
    found = grpo_batch.rejections(cfg)
    if flipped is not None and bool(found) != bool(grpo_batch.rejections(flipped)):
        unknown.append(f"{at(layer)}: whether GRPO evaluates (--eval_strategy / "
                       "--save_strategy / --split_dataset_ratio not known) decides it")
        return
    b, g, gbs = cfg.per_device_train_batch_size, cfg.num_generations, cfg.generation_batch_size
    if gbs is None:
        spg = cfg.steps_per_generation
        spg = spg if spg is not None else cfg.gradient_accumulation_steps
        gbs = b * cfg.world_size * spg
        how = (f"generation_batch_size = per_device_train_batch_size {b} x world_size "
               f"{cfg.world_size} x steps_per_generation {spg} = {gbs}")
    else:
        how = f"generation_batch_size {gbs} (given)"
    runs.append({"line": f"{short(layer.file)}:{layer.line}", "formula": how,
                 "world_size_from": ws_from, "num_generations": g,
                 "num_generations_from": _value(args, "num_generations", 8)[1],
                 "remainder": gbs % g if g else None, "eval": cfg.eval_on,
                 "teacher": cfg.teacher})
    if not found:
        return
    fix = _fix_text(grpo_batch.fixes(cfg, frozenset(args)), args) + (
        ", or --eval_strategy no" if cfg.eval_on and
        any("eval" in r.message for r in found) else "") + (
        ", or --teacher_model <a teacher> (on-policy distillation allows 1)"
        if any("greater than 1" in r.message for r in found) else "")
    for r in found:
        v.problems.append(Problem(f"{at(layer)}: {_rejected(r.message, cfg, gbs)} "
                                  f"(ms-swift {r.where})", fix))


def grpo_batch_divisible(spec: LaunchSpec | None) -> Verdict:
    if spec is None:
        return Verdict(skip=NO_SCRIPT)
    if spec.unread:
        return not_read(spec)
    found = list(grpo_runs(spec))
    if not found and spec.unseen:
        return unseen(spec, "no GRPO run (swift rlhf --rlhf_type grpo)")
    if not found:
        return Verdict(skip="no GRPO run (swift rlhf --rlhf_type grpo) in the launch script")
    runs: list[dict[str, Any]] = []
    unknown: list[str] = []
    v = Verdict(fix="make num_generations divide the generation batch")
    for layer, args, launcher in found:
        _one_run(layer, args, launcher, v, runs, unknown)
    v.evidence = dict(runs=runs, unknown=unknown)
    if unknown:
        v.problems.append(Problem.unknown(
            "cannot do the GRPO batch arithmetic: " + "; ".join(unknown)))
    v.ok = "; ".join(a["formula"] + f", divisible by {a['num_generations']}" for a in runs)
    return also_unseen(v, spec)


# -- launch-ports ----------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    pid: int | None
    cmdline: str | None  # redacted; None when the process is gone or not readable


@dataclass(frozen=True)
class Bind:
    """One port tried on this node: bound (error "") or not, and who listens on it."""

    error: str = ""
    holders: tuple[Holder, ...] = ()


@dataclass(frozen=True)
class PortsFacts:
    spec: LaunchSpec | None
    local: Mapping[str, bool]  # master address -> one of this node's
    binds: Mapping[int, Bind]  # port -> what binding it did (ports on this node only)
    free: str  # a port the fix may suggest
    gpus: GpuCount = GpuCount()  # for a relaunch the GPU count decides (Layer.starts)


def master_of(layer: Layer) -> str:
    """The address the layer's rendezvous binds ("" or local: this node)."""
    master = layer.env.get("MASTER_ADDR") if layer.implicit else None
    return layer.master_addr or (master.value or "" if master else "")


MAYBE_WHY = ("The port is taken, but the layer that would bind it may not start on this "
             "node. A free port (the fix) settles it either way; `nvidia-smi -L` lists the "
             "GPUs a relaunch that hangs on the GPU count would see.")


def _taken(layer: Layer, bound: Bind, fix: str, maybe: str) -> Problem:
    pids = sorted({h.pid for h in bound.holders if h.pid})
    text = (f"port {layer.port} of {layer.launcher} at {at(layer)} cannot be bound: "
            f"{bound.error}" + (f" (held by pid {', '.join(map(str, pids))})" if pids else ""))
    if maybe:
        # a layer that may never start binds nothing: taken is not a NO-GO yet
        return Problem.unknown(f"{text}, if {layer.launcher} starts at all: {maybe}", fix,
                               MAYBE_WHY)
    return Problem(text, fix)


def _port_fix(layer: Layer, free: str, fix: str) -> str:
    """`export MASTER_PORT=FREE` when the layer's port is MASTER_PORT from the caller's
    environment (swift and llamafactory-cli pass it on to their torchrun): exported before
    the script, it decides the port. Set by the script itself or a launcher option: the
    change is named, not written (an export would not win over it)."""
    var = layer.env.get("MASTER_PORT")
    if layer.port_source.startswith("MASTER_PORT") and var is not None and not var.where:
        return f"export MASTER_PORT={free}   # a free port, before the launch script\n{fix}"
    return fix


def _job_ports(layers: Sequence[Layer], f: PortsFacts, seen: dict[int, str], v: Verdict,
               rows: list[dict[str, Any]], unknown: list[str], idle: list[str], fix: str
               ) -> None:
    used: dict[int, tuple[str, str]] = {}  # port -> (the layer, why it may not start)
    for layer in layers:
        row = layer.describe()
        rows.append(row)
        starts, maybe = layer.starts(f.gpus.count, f.gpus.error)
        if starts is False:
            row["bind"] = maybe  # "not started: ...": it binds nothing on this node
            idle.append(f"{layer.launcher} at {at(layer)}: {maybe}")
            continue
        if layer.port is None:
            if layer.port_text != "free":
                # "⟨unknown⟩" alone names nothing: say what decided it could not be read
                why = f" ({layer.port_source})" if layer.port_text == "⟨unknown⟩" and \
                    layer.port_source else ""
                unknown.append(f"{layer.launcher} at {at(layer)}: port {layer.port_text}{why}")
            continue
        if layer.port in used:
            other, other_maybe = used[layer.port]
            text = f"{layer.launcher} at {at(layer)} and {other} both use port {layer.port}"
            either = maybe or other_maybe
            v.problems.append(Problem.unknown(f"{text}, if both start: {either}", fix,
                                              MAYBE_WHY) if either else Problem(text, fix))
            continue
        used[layer.port] = (f"{layer.launcher} at {at(layer)}", maybe)
        if seen.get(layer.port):
            continue
        # "": only layers that may not start saw it; one that surely starts is still judged
        seen[layer.port] = "" if maybe else used[layer.port][0]
        addr = master_of(layer)
        if addr and not f.local.get(addr, UNKNOWN_OPEN in addr):
            row["bind"] = f"skipped: {addr} is another node"
            continue
        bound = f.binds.get(layer.port, Bind())
        row["bind"] = bound.error or "ok"
        row["holders"] = [{"pid": h.pid, "cmdline": h.cmdline} for h in bound.holders]
        if bound.error and UNKNOWN_OPEN in addr:
            # taken here, but whether this node hosts the rendezvous is not known
            unknown.append(f"{layer.launcher} at {at(layer)}: port {layer.port} is taken "
                           f"here ({bound.error}) and its master address {addr} is not known")
        elif bound.error and layer.port_fallback:
            # accelerate on one machine takes another free port (utils/launch.py:233)
            v.problems.append(Problem.warning(
                f"port {layer.port} of {layer.launcher} at {at(layer)} is taken: accelerate "
                "will pick a free one instead", fix))
        elif bound.error:
            v.problems.append(_taken(layer, bound, _port_fix(layer, f.free, fix), maybe))


def _ignored_master_port(layer: Layer) -> str:
    """torchrun reads PET_MASTER_PORT, never MASTER_PORT: an exported one is a trap."""
    if layer.implicit or not layer.launcher.startswith(("torchrun", "python -m torch")):
        return ""
    env_port = layer.master_port_env
    if not env_port or env_port == (str(layer.port) if layer.port else None):
        return ""
    really = layer.port if layer.port is not None else "a free port"
    return (f"MASTER_PORT={env_port} is exported for {layer.launcher} at {at(layer)}, which "
            f"does not read it: it uses {really} ({layer.port_source})")


def launch_ports(f: PortsFacts) -> Verdict:
    spec = f.spec
    if spec is None:
        return Verdict(skip=NO_SCRIPT)
    if spec.unread:
        return not_read(spec)
    if not distributed(spec):
        return unseen(spec, "no distributed launcher") if spec.unseen else \
            Verdict(skip=NO_LAUNCHER)
    # llamafactory-cli passes MASTER_PORT on as --master_port too (launcher.py:68)
    lmf = any(_relaunched_by_lmf(x) for x in distributed(spec))
    fix = (f"give each layer its own free port: torchrun --master_port {f.free} (or "
           f"PET_MASTER_PORT={f.free}); for swift{' or llamafactory-cli' if lmf else ''}, "
           f"MASTER_PORT={f.free}; kill only holders that are yours")
    v = Verdict(fix=fix)
    seen: dict[int, str] = {}
    rows: list[dict[str, Any]] = []
    unknown: list[str] = []
    idle: list[str] = []  # layers that do not start on this node
    for job in spec.jobs:
        _job_ports(job.distributed, f, seen, v, rows, unknown, idle, fix)
        for layer in job.distributed:
            if warning := _ignored_master_port(layer):
                v.problems.append(Problem.warning(warning, fix))
    warnings = [p.text for p in v.of(Kind.WARNING)]
    v.evidence = dict(layers=rows, unknown=unknown, ignored_master_port=warnings)
    if gated(spec):
        v.evidence["gpus_on_node"] = _count(f.gpus)
    if unknown:
        v.problems.append(Problem.unknown("cannot check the ports: " + "; ".join(unknown)))
    v.ok = ("ports free: " + ", ".join(map(str, sorted(seen))) if seen else
            "no launcher binds a port on this node (" + "; ".join(idle) + ")" if idle else
            "every launcher picks a free port itself")
    return also_unseen(v, spec)


# -- launch-gpus -----------------------------------------------------------------------


@dataclass(frozen=True)
class GpusFacts:
    spec: LaunchSpec | None
    gpus: int  # GPUs NVML lists on this node
    nvml_error: str | None


def _gpus_fix(rows: Sequence[Mapping[str, Any]], gpus: int) -> str:
    counts = [r["visible"] for r in rows if r.get("visible") is not None]
    n = min(counts) if counts else gpus
    if counts and not n and gpus:  # every GPU hidden: list the ones the launch needs
        want = min(max([n for r in rows if isinstance(n := r.get("nproc_per_node"), int)]
                       or [gpus]), gpus)
        return (f"export CUDA_VISIBLE_DEVICES={','.join(str(i) for i in range(want))}  # where "
                "the job gets it (this shell or the launch script): an empty value hides "
                "every GPU")
    return (f"--nproc_per_node {n} (NPROC_PER_NODE={n}), or list more GPUs: "
            f"CUDA_VISIBLE_DEVICES={','.join(str(i) for i in range(max(n, 1)))}" if n else
            "expose GPUs: CUDA_VISIBLE_DEVICES=0,1,... ")


def launch_gpus(f: GpusFacts) -> Verdict:
    spec = f.spec
    if spec is None:
        return Verdict(skip=NO_SCRIPT)
    if spec.unread:
        return not_read(spec)
    layers = distributed(spec)
    if not layers:
        return unseen(spec, "no distributed launcher") if spec.unseen else \
            Verdict(skip=NO_LAUNCHER)
    blockers: list[tuple[str, str]] = []  # (text, why the layer may not start)
    unknown: list[str] = []
    rows: list[dict[str, Any]] = []
    counted = GpuCount(None if f.nvml_error else f.gpus, f.nvml_error or "")
    for layer in layers:
        cvd = layer.env.get("CUDA_VISIBLE_DEVICES")
        row = {**layer.describe(), "CUDA_VISIBLE_DEVICES": None if cvd is None else
               (cvd.value if cvd.value is not None else cvd.text)}
        rows.append(row)
        starts, maybe = layer.starts(counted.count, counted.error)
        if starts is False:
            row["not_started"] = maybe  # llamafactory-cli on one GPU: one process, no torchrun
            continue
        if layer.nproc is None:
            if layer.nproc_text not in ("auto", "gpu", "all GPUs", LMF_PER_GPU):  # one per GPU
                unknown.append(f"{layer.launcher} at {at(layer)}: nproc {layer.nproc_text}")
            continue
        if cvd is not None and cvd.value is None:
            unknown.append(f"CUDA_VISIBLE_DEVICES for {at(layer)}: {cvd.reason}")
            continue
        if cvd is not None and cvd.value is not None:
            shown = visible(cvd.value)
            row["visible"] = count = len(shown)
            absent = [d for d in shown if (i := maybe_int(d)) is not None and i >= f.gpus]
            if f.gpus and absent:
                blockers.append((f"CUDA_VISIBLE_DEVICES={cvd.value} names GPU "
                                 f"{', '.join(absent)} but the node has {f.gpus}", ""))
        elif f.gpus:
            row["visible"] = count = f.gpus
        else:
            return Verdict(skip="no GPU to count: CUDA_VISIBLE_DEVICES unset and NVML "
                                f"reports none ({f.nvml_error or 'no GPU'})")
        if layer.nproc > count:
            seen = f"{count} GPU(s) are visible" if count or cvd is None else \
                f"the job sees no GPU (CUDA_VISIBLE_DEVICES={cvd.value!r} hides every GPU)"
            blockers.append((f"{layer.launcher} at {at(layer)} starts {layer.nproc} "
                             f"processes per node but {seen}", maybe))
    fix = _gpus_fix(rows, f.gpus)
    v = Verdict(evidence=dict(layers=rows, gpus_on_node=f.gpus, nvml_error=f.nvml_error),
                problems=[Problem.unknown(f"{text}, if it starts at all: {maybe}", fix)
                          if maybe else Problem(text, fix) for text, maybe in blockers],
                fix=fix)
    if unknown:
        v.problems.append(Problem.unknown("cannot count: " + "; ".join(unknown)))
    v.ok = ", ".join(f"{r['launcher']}: {r['not_started']}" if
                     "not_started" in r else f"{r['launcher']}: {r.get('nproc_per_node')} "
                     f"process(es), {r.get('visible', '?')} GPU(s) visible" for r in rows)
    return also_unseen(v, spec)


# -- launcher-args ---------------------------------------------------------------------


@dataclass(frozen=True)
class ArgsFacts:
    spec: LaunchSpec | None
    gpus: GpuCount = GpuCount()  # for a relaunch the GPU count decides (Layer.starts)
    # the script files the launch lines are written in, as read (path -> text): the fix
    # edits the wrong token there in place; a file not here gets the option named
    texts: Mapping[str, str] = field(default_factory=dict)


RELAUNCHER_PROGRAMS = ("swift", "megatron", *LMF_PROGRAMS)
# The variables swift and llamafactory-cli pass on to their torchrun relaunch as options
# (swift/cli/main.py:98; LLaMA-Factory launcher.py:93-132).
RELAUNCH_VARS = {"--nproc-per-node": "NPROC_PER_NODE", "--nnodes": "NNODES",
                 "--node-rank": "NODE_RANK", "--master-addr": "MASTER_ADDR",
                 "--master-port": "MASTER_PORT", "--rdzv-endpoint": "MASTER_ADDR:MASTER_PORT",
                 "--max-restarts": "MAX_RESTARTS"}
# swift methods people type from other tools: `swift train` (LLaMA-Factory's word) is
# `swift sft`; preference methods are `swift rlhf --rlhf_type X`.
SWIFT_ALIASES = {"train": "sft", "finetune": "sft", "pretrain": "pt"}
SWIFT_RLHF_TYPES = ("dpo", "grpo", "kto", "orpo", "simpo", "cpo", "ppo", "gkd", "gspo")
NNODES_REVERSED = re.compile(r"min_nodes must be > 0 and <= max_nodes, got "
                             r"min_nodes=(\d+), max_nodes=(\d+)")
NO_METHOD = re.compile(r"no method '([^']*)'")
# (what the error says, the option that decides it, what it takes): the errors of
# launchers.torchrun / deepspeed / accelerate and spec._swift_config_file
ERROR_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("nproc_per_node", "--nproc-per-node", "an integer, or auto, cpu, gpu, xpu"),
    ("nnodes", "--nnodes", "N or MIN:MAX, integers with 0 < MIN <= MAX"),
    ("max_restarts", "--max-restarts", "an integer >= 0"),
    ("rendezvous configuration", "--rdzv-conf", "key1=value1,key2=value2 (every key a "
                                                "value)"),
    ("rdzv-backend", "--rdzv-backend", "one of c10d, static, etcd, etcd-v2"),
    ("endpoint", "--rdzv-endpoint", "host:port (the static rendezvous builds it from "
                                    "--master-addr and --master-port)"),
    ("local_ranks_filter", "--local-ranks-filter", "a comma-separated list of integers"),
    ("--redirects", "--redirects", "0-3, or rank:0-3,... (e.g. 0:3,1:0)"),
    ("--tee", "--tee", "0-3, or rank:0-3,... (e.g. 0:3,1:0)"),
    ("logs_specs", "--logs-specs", "the name of an installed torchrun.logs_specs entry point"),
    ("--no-python", "--no-python", "not with --module; with torch.distributed.launch, "
                                   "--use-env too"),
    ("without ssh", "--node_rank", "this node's index in the hostfile, 0 to hosts-1"),
    ("include_str and exclude_str", "--include", "--include or --exclude, not both"),
    ("num_nodes/gpus with include", "--include", "--include/--exclude, or --num_nodes/"
                                                 "--num_gpus, not both"),
    ("Num nodes is >1", "--num_nodes", "at most the hosts of the hostfile (--hostfile)"),
    ("not found in hostfile", "--include", "hosts of the hostfile (--hostfile)"),
    ("No slot", "--include", "GPU slots the hostfile gives that host"),
    ("leave no GPU", "--exclude", "at least one GPU left to launch on"),
    ("--config_file", "--config_file", "an existing accelerate config (`accelerate config` "
                                       "writes one)"),
    ("has no num_processes", "--num_processes", "the number of processes (the config "
                                                "has none)"),
    ("has no distributed_type", "--config_file", "a config with distributed_type "
                                                 "(`accelerate config`)"),
    ("is not a mapping", "--config_file", "a YAML/JSON mapping (`accelerate config`)"),
    ("cannot read", "--config_file", "a readable YAML/JSON file (`accelerate config`)"),
    ("num_processes", "--num_processes", "an integer (2 or more with --multi_gpu)"),
    ("--gpu_ids", "--gpu_ids", "at least two GPU ids for --multi_gpu"),
    ("only one of", "--multi_gpu", "one of the modes it names"),
    ("swift reads it as a mapping", "config", "a YAML/JSON mapping of option: value (and ENV:"
                                              " a mapping of VARIABLE: value)"),
)


def _tool(layer: Layer) -> str:
    """The command whose `--help` lists the layer's options."""
    name = layer.launcher
    if name.startswith("torchrun") or layer.implicit:
        return "torchrun"
    if name.startswith(("swift", "megatron")) and name.split()[-1] not in SWIFT_ROUTES:
        return f"{name.split()[0]} sft" if name.startswith("swift") else "megatron sft"
    return name


def _flag_of(error: str) -> tuple[str, str]:
    """(the option the error is about, what it takes); ("", "") when not known."""
    for words, flag, takes in ERROR_FLAGS:
        if words in error:
            return flag, takes
    found = re.search(r"(--?[A-Za-z][\w-]*)", error)
    return (found.group(1), "") if found else ("", "")


def _same_flag(word: str, flag: str) -> bool:
    """`--nnodes`, `--nnodes=..`, `--nproc_per_node` for `--nproc-per-node`."""
    name = word.partition("=")[0]
    return name.startswith("--") and name.replace("_", "-") == flag.replace("_", "-")


def _shell_line(words: Sequence[Word], changed: Mapping[int, list[str]]) -> str:
    """The command line to paste: literal words quoted, words built from variables or
    not known as the script wrote them (`"$HF_TOKEN"`, once for a `$ARGS` that split),
    secret-named options' literal values masked, `changed` words replaced."""
    out: list[tuple[str, bool]] = []  # (the word, pasted as written)
    for i, w in enumerate(words):
        if i in changed:
            out += [(t, "$" in t) for t in changed[i]]
        elif (w.refs or not w.known) and "$" in w.source or not w.known:
            split = not (w.source.startswith('"') and "@" not in w.source)
            if not (split and i and i - 1 not in changed and words[i - 1].source == w.source):
                out.append((w.source, True))
        else:
            out.append((w.text, False))
    masked = redact_argv([t for t, _ in out])
    return " ".join(redact_text(t) if raw else shlex.quote(m)
                    for m, (t, raw) in zip(masked, out, strict=True))


def _set_flag(words: Sequence[Word], flag: str, value: str,
              after: str = "") -> dict[int, list[str]] | None:
    """The argv change that gives `flag` this value (`--f=v` or `--f v`); a flag not on
    the line goes right after the program named `after`; None: not derivable."""
    for i, w in enumerate(words):
        if not w.known or not _same_flag(w.text, flag):
            continue
        name, eq, _ = w.text.partition("=")
        if eq:
            return {i: [f"{name}={value}"]}
        if i + 1 < len(words) and words[i + 1].known:
            return {i + 1: [value]}
        return None
    for i, w in enumerate(words):
        if after and w.known and posixpath.basename(w.text) == after:
            return {i: [w.text, f"{flag}={value}"]}
    return None


def _derived(layer: Layer, job: Job) -> tuple[dict[int, list[str]], str]:
    """(the argv change, what it changes) where the error tells the right value; ({}, "")
    otherwise."""
    argv = job.command.argv
    error = layer.error
    if (m := NNODES_REVERSED.search(error)) and 0 < int(m[2]) < int(m[1]) \
            and not layer.implicit:
        lo, hi = m[2], m[1]
        change = _set_flag(argv, "--nnodes", f"{lo}:{hi}")
        return (change, f"--nnodes MIN:MAX is {lo}:{hi}") if change else ({}, "")
    if (m := NO_METHOD.search(error)) and " " in layer.launcher:
        prog, method = layer.launcher.split()[0], m[1]
        routes = list(SWIFT_ROUTES.get(prog, {}))
        extra: list[str] = []
        if method in SWIFT_RLHF_TYPES and "rlhf" in routes:
            new, extra = "rlhf", ["--rlhf_type", method]
        else:
            close = difflib.get_close_matches(method, routes, n=1, cutoff=0.6)
            alias = SWIFT_ALIASES.get(method, "")
            new = alias if alias in routes else close[0] if close else ""
        for i, w in enumerate(argv[:-1]):
            if new and w.known and posixpath.basename(w.text) == prog and \
                    argv[i + 1].text.replace("_", "-") == method:
                return ({i + 1: [new, *extra]},
                        f"{prog} {new}{' ' + ' '.join(extra) if extra else ''}, not "
                        f"{prog} {method}")
    return {}, ""


SED_PATTERN = re.compile(r"([\\/.*\[\]^$])")  # special in a sed BRE (and the delimiter)
SED_REPLACEMENT = re.compile(r"([\\/&])")


def _sed(line: int, old: str, new: str, path: str) -> str:
    """`sed -i 'Ns/OLD/NEW/' FILE`: the first OLD on line N, matched literally."""
    pattern = SED_PATTERN.sub(r"\\\1", old)
    replacement = SED_REPLACEMENT.sub(r"\\\1", new)
    return f"sed -i {shlex.quote(f'{line}s/{pattern}/{replacement}/')} {shlex.quote(path)}"


def _tokens(line: str, token: str) -> int:
    """How often `token` stands on `line` as a whole shell word (or `NAME=value` word)."""
    return len(re.findall(rf"(?<![^\s;&|(]){re.escape(token)}(?![^\s;&|)])", line))


def _command_lines(text: str, first: int) -> list[tuple[int, str]]:
    """The physical lines of the command written at line `first` (backslash-continued)."""
    lines = text.splitlines()
    span: list[tuple[int, str]] = []
    n = first
    while 0 < n <= len(lines):
        span.append((n, lines[n - 1]))
        if not lines[n - 1].endswith("\\"):
            break
        n += 1
    return span


def _in_variable(w: Word, new: str, f: ArgsFacts) -> str:
    """`sed` on the assignment `NAME=value` the wrong word came from (`--nnodes=$NN`,
    `NN=2:1` earlier in the script) when it is written there literally; "" otherwise."""
    var = f.spec.variables.get(w.refs[0]) if f.spec and len(w.refs) == 1 else None
    if var is None or not var.value or not var.where or w.text.count(var.value) != 1 or \
            is_secret_name(w.refs[0]):
        return ""
    pre, suf = w.text.split(var.value)
    if not (new.startswith(pre) and new.endswith(suf)) or len(new) <= len(pre) + len(suf):
        return ""
    value = new[len(pre):len(new) - len(suf)]
    path, _, n = var.where.rpartition(":")
    text = f.texts.get(path)
    lines = text.splitlines() if text is not None and n.isdigit() else []
    line = lines[int(n) - 1] if 0 < int(n or 0) <= len(lines) else ""
    for written in (var.value, f'"{var.value}"', f"'{var.value}'"):
        old = f"{w.refs[0]}={written}"
        if _tokens(line, old) == 1 and line.count(old) == 1:
            return _sed(int(n), old, f"{w.refs[0]}={shlex.quote(value)}", path)
    return ""


def _in_place(job: Job, changed: Mapping[int, list[str]], f: ArgsFacts) -> str:
    """The `sed -i` commands that make `changed` in the launch script itself, each on the
    one line where the wrong token is written (a variable's assignment for `$NN`): the
    rest of the line (secrets, redirects, variables) stays as written; "" when a token is
    not written there exactly once."""
    cmd = job.command
    text = f.texts.get(cmd.file)
    if text is None or not changed:
        return ""
    span = _command_lines(text, cmd.line)
    edits = []
    for i, words in sorted(changed.items()):
        w = cmd.argv[i]
        new = " ".join(t if "$" in t else shlex.quote(t) for t in words)
        if not w.known or not words:
            return ""
        if "$" in w.source or "`" in w.source:
            edit = _in_variable(w, " ".join(words), f) if len(words) == 1 else ""
        else:
            hits = [(n, line) for n, line in span if _tokens(line, w.source)]
            edit = _sed(hits[0][0], w.source, new, cmd.file) if len(hits) == 1 and \
                _tokens(hits[0][1], w.source) == 1 and hits[0][1].count(w.source) == 1 else ""
        if not edit:
            return ""
        edits.append(edit)
    return "\n".join(edits)


def _safe(fix: str, job: Job, f: ArgsFacts) -> bool:
    """A fix runs as pasted: no masked value in it, and no secret either."""
    secrets = [*secret_values(w.text for w in job.command.argv),
               *(f.spec.secrets if f.spec else ())]
    return MASK not in fix and redact_text(fix) == fix and \
        not any(x and x in fix for x in secrets)


def _change_fix(layer: Layer, job: Job, changed: Mapping[int, list[str]],
                f: ArgsFacts) -> str:
    """The script edited in place where the wrong tokens are written in it; the corrected
    line for a --launch-cmd that has nothing but its argv to lose (no redirect, no masked
    value); else the change named after `<tool> --help`."""
    fix = _in_place(job, changed, f)
    cmd = job.command
    # a --launch-cmd is one line: rebuilt from the argv only when that is all there is
    # (no `X=1` prefix or earlier assignment, no redirect, no pipe or other command)
    alone = f.spec is not None and len(f.spec.commands) == 1 and not cmd.redirects and \
        not cmd.writes and not any(v.where.startswith(f"{cmd.file}:") for v in cmd.env.values())
    if not fix and cmd.file not in f.texts and alone:
        fix = _shell_line(cmd.argv, changed)
    if fix and _safe(fix, job, f):
        return fix
    was = " ".join(cmd.argv[i].source for i in sorted(changed))
    now = " ".join(t for i in sorted(changed) for t in changed[i])
    fix = f"{_tool(layer)} --help  # in {at(layer)} write {now} for {was}"
    return fix if _safe(fix, job, f) else f"{_tool(layer)} --help  # fix its options"


def _args_fix(layer: Layer, job: Job, f: ArgsFacts) -> tuple[str, str]:
    """(a copy-paste fix, why): the wrong token replaced where it is written, where the
    right value follows from the error; else the option to fix and the tool's `--help`."""
    changed, what = _derived(layer, job)
    if changed:
        return _change_fix(layer, job, changed, f), f"{what} ({at(layer)})"
    flag, takes = _flag_of(layer.error)
    if flag == "config":  # swift's config file: "run.yaml: swift reads it as a mapping"
        flag = layer.error.split(":")[0]
    tool = _tool(layer)
    parent = layer.launcher.partition("(relaunched by ")[2].rstrip(")")
    var = RELAUNCH_VARS.get(flag.replace("_", "-")) if layer.implicit else None
    if var:
        return (f"torchrun --help  # set {var} (passed on as {flag}): {takes}",
                f"{parent} relaunches itself under torchrun and passes {var} on as {flag} "
                f"({at(layer)})")
    if flag == "--node_rank" and layer.launcher == "deepspeed":
        # the rank is this node's own: a variable set per node, failing fast when unset
        rank = '"${NODE_RANK:?the index of this node in the hostfile, from 0}"'
        change = _set_flag(job.command.argv, "--node_rank", rank, after="deepspeed")
        if change:
            return (_change_fix(layer, job, change, f),
                    f"deepspeed --no_ssh starts only this node's workers: it needs "
                    f"--node_rank, {takes} ({at(layer)})")
    if flag:
        return (f"{tool} --help  # fix {flag}" + (f": {takes}" if takes else ""),
                f"{tool} stops on {flag} before it starts anything ({at(layer)})")
    return (f"{tool} --help  # fix its options",
            f"{tool} stops on its options before it starts anything ({at(layer)})")


def _launcher_like(layer: Layer) -> bool:
    return layer.kind in ("distributed", "wrapper") or bool(layer.error or layer.unread) or \
        layer.launcher.split()[0] in RELAUNCHER_PROGRAMS


def _unknown_options(layer: Layer, job: Job) -> list[str]:
    """The launcher's own option values the script does not tell (`--nnodes=$(n)`,
    NPROC_PER_NODE set where preflight cannot read): the launcher may stop on them."""
    if UNKNOWN_OPEN in layer.launcher:  # `swift "$(pick)"`: the method itself
        return [f"the method {layer.launcher.split(' ', 1)[1]}"]
    if layer.kind != "distributed":
        return []
    if layer.implicit:  # what the relaunch passes on, from the environment
        return [f"{what} {text}" for what, value, text in (
            ("nproc", layer.nproc, layer.nproc_text), ("port", layer.port, layer.port_text))
            if value is None and UNKNOWN_OPEN in text]
    argv = job.command.argv
    head = layer.launcher.split()[0]
    first = next((i for i, w in enumerate(argv) if posixpath.basename(w.text) == head), -1)
    if first < 0:
        return []
    ids = [id(w) for w in argv]
    end = ids.index(id(layer.args[0])) - 1 if layer.args and id(layer.args[0]) in ids \
        else len(argv) - (1 if layer.program else 0)  # the program word is not an option
    return [f"{w.source} ({w.reason})" if w.reason else w.source
            for w in argv[first + 1:end] if not w.known]


def _job_args(job: Job, f: ArgsFacts, v: Verdict, rows: list[dict[str, Any]],
              unknown: list[str]) -> None:
    """The first layer of the job that would stop on its options (nothing inside it
    starts): a NO-GO where it surely runs, unknown where it may not."""
    maybe = "the line is in a branch that may not run" if job.command.conditional else ""
    for layer in job.layers:
        if not _launcher_like(layer):
            continue
        row: dict[str, Any] = {"launcher": layer.launcher, "line": f"{at(layer)}"}
        rows.append(row)
        starts, why = layer.starts(f.gpus.count, f.gpus.error)
        if starts is False:
            row["status"] = why  # it does not start here: its options are never read
            return
        maybe = maybe or why
        if layer.unread:
            row["status"] = f"not read: {layer.unread}"
            unknown.append(f"{layer.launcher} at {at(layer)}: {layer.unread}")
            return
        if not layer.error:
            hidden = _unknown_options(layer, job)
            if hidden:
                # it may stop on a value the script does not tell: so may all it starts
                row["status"] = "not known: " + ", ".join(hidden)
                unknown.append(f"{layer.launcher} at {at(layer)}: " + ", ".join(hidden))
                maybe = maybe or f"{layer.launcher} may stop on " + ", ".join(hidden)
                continue
            row["status"] = "accepted" + (f" (if it starts: {maybe})" if maybe else "")
            continue
        error = redact_text(layer.error)
        for secret in secret_values(w.text for w in job.command.argv):  # `--token X` echoed
            error = error.replace(secret, MASK)
        row["status"], row["error"] = "stops", error
        row["command"] = display(job.command.argv)
        fix, why_fix = _args_fix(layer, job, f)
        text = f"{layer.launcher} at {at(layer)} stops at once: {error}"
        v.problems.append(Problem.unknown(f"{text}, if it starts at all: {maybe}", fix,
                                          why_fix) if maybe else
                          Problem(text, fix, why_fix))
        return


def launcher_args(f: ArgsFacts) -> Verdict:
    spec = f.spec
    if spec is None:
        return Verdict(skip=NO_SCRIPT)
    if spec.unread:
        return not_read(spec)
    if not any(_launcher_like(x) for x in spec.layers):
        if spec.unseen:
            return unseen(spec, "no launcher")
        end = spec.exit
        return Verdict(skip=f"the script exits at line {end.line} before it launches "
                            "anything" if end else NO_LAUNCHER)
    v = Verdict(fix="run preflight in the shell that launches the job, with the variables "
                    "the launcher options come from set")
    rows: list[dict[str, Any]] = []
    unknown: list[str] = []
    for job in spec.jobs:
        _job_args(job, f, v, rows, unknown)
    v.evidence = dict(layers=rows, unknown=unknown)
    if gated(spec):
        v.evidence["gpus_on_node"] = _count(f.gpus)
    if unknown:
        v.problems.append(Problem.unknown(
            "the launch script does not tell these launcher options (the launcher may stop "
            "on them): " + "; ".join(unknown[:3])))
    v.ok = "every launcher accepts its command line (" + ", ".join(
        dict.fromkeys(r["launcher"] for r in rows)) + ")"
    return also_unseen(v, spec)


# -- launch-syntax ---------------------------------------------------------------------


@dataclass(frozen=True)
class SyntaxFacts:
    spec: LaunchSpec | None
    syntax: BashSyntax | None  # `bash -n` of the script or command (probes.bash_syntax)
    # `bash -n` of each file on disk the script sources or runs as a script, and where
    # (LaunchSpec.reads, one per file)
    reads: Sequence[tuple[Read, BashSyntax]] = ()


def _syntax_fix(s: BashSyntax) -> str:
    if s.target == "--launch-cmd":
        return ""  # the command itself is not repeated (it may hold secrets); `why` says it
    q = shlex.quote(s.target)
    # the line bash stops at, then bash's own word on it (rerun after fixing the line)
    return f"sed -n '{s.line}p' {q}; bash -n {q}"


def launch_syntax(f: SyntaxFacts) -> Verdict:
    """NO-GO where real bash (`bash -n`) finds a syntax error: `bash FILE` runs what comes
    before it, then exits with status 2 there, and never starts the launcher after it."""
    s = f.syntax
    if f.spec is None or s is None:
        return Verdict(skip=NO_SCRIPT)
    v = Verdict(evidence=dict(launch=f.spec.source, bash_n=s.target, ok=s.ok, line=s.line,
                              message=s.message, error=s.error))
    ex = f.spec.exit
    _one_syntax(v, s, ex.line if ex is not None and s.target != "--launch-cmd" and
                posixpath.basename(ex.file) == posixpath.basename(s.target) else None)
    for read, syntax in f.reads:
        how = "sourced" if read.how == "source" else "run"
        _one_syntax(v, syntax, ex.line if ex is not None and ex.file == read.path else None,
                    f"{how} at {short(read.file)}:{read.line}", read.maybe)
    if f.reads:
        v.evidence["read_files"] = [
            {"file": r.path, "by": f"{short(r.file)}:{r.line}", "how": r.how,
             "maybe": r.maybe, "ok": x.ok, "line": x.line, "message": x.message,
             "error": x.error} for r, x in f.reads]
    return v


def _one_syntax(v: Verdict, s: BashSyntax, exit_line: int | None, by: str = "",
                maybe: bool = False) -> None:
    """`bash -n`'s word on the launch script, or (`by`: "sourced at run.sh:2") on a file
    it sources or runs, which bash stops reading at its bad line the same way (status 2:
    a `source` returns 2, a child bash exits 2) and never runs what follows in it.
    `exit_line`: the script exits there in that file first; `maybe`: the line that
    sources or runs the file is on a branch that may not run."""
    where, of = f"{short(s.target)}:{s.line}", f" ({by})" if by else ""
    if s.ok is None:
        v.problems.append(Problem.unknown(
            f"bash -n could not judge {short(s.target)}{of}: {s.error}",
            why=f"whether bash parses {'that file' if by else 'the script'} to its end is "
                "not known"))
    elif s.ok is False and s.parse_changing:
        # bash -n executes nothing, so `shopt -s extglob` / `alias` are not in force
        # while it parses: `ls !(x)` after `shopt -s extglob` runs under bash, fails -n
        v.problems.append(Problem.unknown(
            f"bash -n reports a syntax error at {where}{of} ({s.said}), but "
            "the script sets shopt/alias, which bash -n does not apply",
            fix=_syntax_fix(s),
            why="an extglob pattern or alias parses under bash once that line has run"))
    elif s.ok is False and exit_line is not None and s.line is not None and \
            exit_line < s.line:
        v.problems.append(Problem.warning(
            f"{where}{of} has a syntax error bash never reaches: the script exits at line "
            f"{exit_line} first", fix=_syntax_fix(s),
            why="bash parses one command at a time; it stops at the exit before that line"))
    elif s.ok is False and not by:
        v.problems.append(Problem(
            f"bash stops at {where} with a syntax error (status 2) and never starts what "
            f"follows: {s.said}", _syntax_fix(s),
            "bash reads and runs a script one command at a time; at a line it cannot parse "
            "(an unfilled <PLACEHOLDER>, an unclosed quote, an `if` without `fi`) it exits "
            "with status 2, right after the job is scheduled"))
    elif s.ok is False:
        text = (f"bash stops reading {short(s.target)}{of} at line {s.line} with a syntax "
                f"error (status 2) and never runs what follows in it: {s.said}")
        why = ("bash parses a sourced or run file one command at a time too; at a line it "
               "cannot parse it stops that file with status 2 (the script goes on after "
               "a `source`, or stops there under `set -e`)")
        v.problems.append(Problem.unknown(
            f"{text}, if the line that {'sources' if by.startswith('sourced') else 'runs'} "
            "it runs (it is on a branch that may not)", _syntax_fix(s), why) if maybe
            else Problem(text, _syntax_fix(s), why))
