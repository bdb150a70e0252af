"""Launch-script pitfalls from real lost jobs, read from --launch-script / --launch-cmd.

The script is evaluated (never run) by `preflight.launch.spec`; each check judges one
pitfall of the resulting LaunchSpec. Without a launch script every check skips.
"""

from __future__ import annotations

import os
import posixpath

import pytest

from preflight.launch.spec import LaunchSpec, display, grpo_runs
from preflight.numbers import maybe_int
from preflight.probes import ports
from preflight.stack import grpo_batch

pytestmark = pytest.mark.static

LAUNCHER_WORDS = ("torchrun", "torch.distributed", "swift", "megatron", "deepspeed",
                  "accelerate", "ray")


def _spec(node, finding) -> LaunchSpec:
    spec = node.launch
    if spec is None:
        finding.skip("no launch script (--launch-script PATH or --launch-cmd STRING)")
    return spec


def _distributed(node, finding) -> tuple[LaunchSpec, list]:
    """The spec and every distributed launcher layer in it; skips when there is none."""
    spec = _spec(node, finding)
    layers = [x for job in spec.jobs for x in job.distributed]
    if not layers:
        finding.skip("no distributed launcher in the launch script")
    return spec, layers


def _unknowns(spec: LaunchSpec, words: tuple[str, ...] = ()) -> list[str]:
    return [f"{posixpath.basename(u.file)}:{u.line}: {u.reason}" for u in spec.unknowns
            if not words or any(w in u.text for w in words)]


def _short(path: str) -> str:
    return posixpath.basename(path) if path.startswith("/") else path


def _at(layer) -> str:
    return f"{_short(layer.file)}:{layer.line}"


# -- nested-launcher -------------------------------------------------------------------


@pytest.mark.pitfall("nested-launcher")
def test_one_launcher_layer(node, profile, finding):
    spec = _spec(node, finding)
    nested = [job for job in spec.jobs if len(job.distributed) > 1]
    under = {k: node.environ[k] for k in ("TORCHELASTIC_RUN_ID", "LOCAL_RANK")
             if k in node.environ}
    launching = [job for job in spec.jobs if job.distributed]
    finding.evidence(
        jobs=[{"command": display(job.command.argv), "layers": [x.describe() for x in job.layers]}
              for job in spec.jobs],
        suite_under_torchrun=under or None,
    )
    problems = []
    for job in nested:
        outer, inner = job.distributed[0], job.distributed[1]
        problems.append(f"{outer.launcher} at {_at(outer)} (port {outer.port or outer.port_text})"
                        f" starts {inner.launcher} at {_at(inner)} "
                        f"(port {inner.port or inner.port_text})")
    if under and launching:
        first = launching[0].distributed[0]
        problems.append(f"preflight itself runs under torchrun ({', '.join(under)} set) and the "
                        f"script starts {first.launcher} at {_at(first)}")
    fixes = []
    for job in nested:
        outer, inner = job.distributed[0], job.distributed[1]
        if inner.implicit and "swift" in inner.launcher:
            n = outer.nproc or inner.nproc or "N"
            fixes.append(f"{_at(outer)}: drop the outer {outer.launcher} and run "
                         f"`NPROC_PER_NODE={n} swift ...` (swift relaunches itself once), or keep "
                         "torchrun and call `python -m swift.cli.rlhf` (or .sft) with "
                         "NPROC_PER_NODE unset")
        else:
            fixes.append(f"{_at(outer)}: keep one launcher: drop {outer.launcher} or the "
                         f"{inner.launcher} it starts")
    if under and launching:
        fixes.append("run preflight from a plain shell, not under torchrun "
                     "(unset TORCHELASTIC_RUN_ID LOCAL_RANK)")
    finding.fix("; ".join(fixes) or "keep one distributed launcher per job")
    if not problems:
        unknown = _unknowns(spec, LAUNCHER_WORDS) + [
            f"{_short(c.file)}:{c.line}: {c.argv[0].reason}" for c in spec.commands
            if c.argv and not c.argv[0].known]
        if unknown:
            finding.evidence(unknowns=unknown)
            finding.unknown("cannot tell the launch layers: " + "; ".join(unknown[:3]))
        if spec.exit and not launching and (spec.exit.empty or spec.exit.missing):
            finding.skip(f"the script exits at line {spec.exit.line} before it launches anything "
                         "(see empty-variable / launch-inputs)")
        if spec.exit and not launching:
            finding.unknown(f"the script exits at line {spec.exit.line} "
                            f"({spec.exit.guard or 'exit ' + spec.exit.status}) before it "
                            "launches anything")
        layers = [x.launcher for job in launching for x in job.distributed]
        finding.summary(f"one launcher layer per job ({', '.join(dict.fromkeys(layers))})"
                        if layers
                        else "no distributed launcher in the script")
    assert not problems, "nested launchers: " + "; ".join(problems)


# -- empty-variable --------------------------------------------------------------------


@pytest.mark.pitfall("empty-variable")
def test_no_empty_variable(node, profile, finding):
    spec = _spec(node, finding)
    uses = [{"variable": u.variable, "line": f"{_short(u.file)}:{u.line}",
             "program": u.program, "argument": u.argument, "expands_to": u.expands_to}
            for u in spec.empties]
    guard = spec.exit if spec.exit and spec.exit.empty else None
    finding.evidence(empty=uses, exits_at=None if guard is None else
                     {"line": f"{_short(guard.file)}:{guard.line}", "guard": guard.guard,
                      "empty": list(guard.empty)})
    names = list(dict.fromkeys([u.variable for u in spec.empties] +
                               (list(guard.empty) if guard else [])))
    finding.fix("; ".join(f"export {n}=<value> before the script (or give it a default: "
                          f"${{{n}:-value}}, or fail fast: ${{{n}:?set {n}}})" for n in names[:4])
                or "set the variable")
    problems = [f"{u['variable']} is empty at {u['line']}: {u['argument']} -> {u['expands_to']}"
                for u in uses[:5]]
    if guard:
        problems.append(f"the script exits at line {guard.line} because "
                        f"{', '.join(guard.empty)} is empty ({guard.guard})")
    if not problems:
        finding.summary("no variable expands empty inside an argument or path")
    assert not problems, "; ".join(problems)


# -- launch-inputs ---------------------------------------------------------------------


def _nearest_existing(path: str) -> str:
    while path and not os.path.exists(path):
        parent = posixpath.dirname(path.rstrip("/"))
        if parent == path:
            break
        path = parent
    return path or "/"


@pytest.mark.pitfall("launch-inputs")
def test_launch_inputs_exist(node, profile, finding):
    spec = _spec(node, finding)
    missing, unknown, outputs_bad = [], [], []
    checked = []
    for arg in spec.inputs:
        where = f"{_short(arg.file)}:{arg.line}"
        if not arg.known:
            unknown.append(f"{arg.flag} {arg.path} at {where} ({arg.reason})")
            continue
        if arg.path in checked:
            continue
        checked.append(arg.path)
        if not arg.path or not os.path.exists(os.path.expanduser(arg.path)):
            missing.append({"flag": arg.flag, "path": arg.path or "(empty)", "line": where})
    for out in spec.outputs:
        if not out.directory:
            if not out.known:
                unknown.append(f"{out.flag} {out.path} ({out.reason})")
            continue
        if out.needs_dir and not os.path.isdir(out.directory):
            # bash (`> dir/x.log`) and tee open the file: a missing directory fails there
            where = f"{_short(out.file)}:{out.line}"
            if out.made:
                continue
            if out.made is None:
                unknown.append(f"{out.flag} {out.path} at {where}: {out.directory} may be "
                               f"created by {out.made_by}")
                continue
            outputs_bad.append({"flag": out.flag, "path": out.path, "line": where,
                                "nearest_existing": _nearest_existing(out.directory),
                                "missing_dir": out.directory})
            continue
        base = _nearest_existing(out.directory)
        ok = os.path.isdir(base) and os.access(base, os.W_OK | os.X_OK)
        if not ok:
            outputs_bad.append({"flag": out.flag, "path": out.path, "line":
                                f"{_short(out.file)}:{out.line}", "nearest_existing": base})
    if spec.exit and spec.exit.missing:
        for path in spec.exit.missing:
            missing.append({"flag": f"guard `{spec.exit.guard}`", "path": path,
                            "line": f"{_short(spec.exit.file)}:{spec.exit.line}"})
    finding.evidence(inputs_checked=checked, missing=missing, outputs=[
        {"flag": o.flag, "directory": o.directory} for o in spec.outputs],
        outputs_not_writable=outputs_bad, unknown=unknown)
    fixes = [f"fix {m['flag']} at {m['line']}: {m['path']} does not exist (check the variables "
             "it is built from, or download/convert it first)" for m in missing[:3]]
    fixes += [f"mkdir -p {o['missing_dir']}  # before {o['line']}: {o['flag']} does not "
              "create its directory" if "missing_dir" in o else
              f"mkdir -p {o['path']} on a writable disk, or point {o['flag']} elsewhere "
              f"({o['nearest_existing']} is not writable)" for o in outputs_bad[:3]]
    finding.fix("; ".join(fixes) or "point the flags at paths that exist")
    if not missing and not outputs_bad and unknown:
        finding.unknown("cannot check: " + "; ".join(unknown[:3]))
    if not spec.inputs and not spec.outputs and not missing:
        finding.skip("the launch command gives no model/dataset/checkpoint/output paths")
    problems = [f"{m['flag']} {m['path']} does not exist ({m['line']})" for m in missing[:4]]
    problems += [f"{o['flag']} {o['path']} ({o['line']}): directory {o['missing_dir']} does "
                 "not exist, bash/tee fail there" if "missing_dir" in o else
                 f"{o['flag']} {o['path']}: {o['nearest_existing']} is not writable"
                 for o in outputs_bad[:4]]
    finding.summary(f"{len(checked)} input path(s) exist, {len(spec.outputs)} output(s) writable")
    assert not problems, "; ".join(problems)


# -- grpo-batch ------------------------------------------------------------------------


def _value(args: dict, key: str, default: int | None) -> tuple[int | None, str]:
    w = args.get(key)
    if w is None:
        return default, "default"
    if not w.known:
        return None, f"{w.text} ({w.reason})"
    try:
        return int(w.text), ("--" + key + (f" <- {' <- '.join(w.refs)}" if w.refs else ""))
    except ValueError:
        return None, f"--{key} {w.text!r} is not an integer"


@pytest.mark.pitfall("grpo-batch")
def test_grpo_batch_divisible(node, profile, finding):
    spec = _spec(node, finding)
    runs = list(grpo_runs(spec))
    if not runs:
        finding.skip("no GRPO run (swift rlhf --rlhf_type grpo) in the launch script")
    problems, unknown, arithmetic, fixes = [], [], [], []
    for layer, args, launcher in runs:
        # The rules and their ms-swift 4.6 file:line: preflight/stack/grpo_batch.py.
        if launcher is None:
            ws, ws_from = 1, "one process (no launcher)"
        elif launcher.nproc is None or launcher.nnodes is None:
            ws, ws_from = None, f"{launcher.launcher} nproc {launcher.nproc_text}"
        else:
            ws = launcher.nproc * launcher.nnodes
            ws_from = f"{launcher.launcher} {launcher.nproc_source}={launcher.nproc}" + (
                f" x {launcher.nnodes} nodes" if launcher.nnodes > 1 else "")
        cfg, flipped, missing = grpo_batch.from_args(args, ws, ws_from)
        if cfg is None:
            unknown.append(f"{_at(layer)}: " + ", ".join(missing))
            continue
        found = grpo_batch.rejections(cfg)
        if flipped is not None and bool(found) != bool(grpo_batch.rejections(flipped)):
            unknown.append(f"{_at(layer)}: whether GRPO evaluates (--eval_strategy / "
                           "--save_strategy / --split_dataset_ratio not known) decides it")
            continue
        b, g = cfg.per_device_train_batch_size, cfg.num_generations
        spg = cfg.steps_per_generation
        gbs = cfg.generation_batch_size
        if gbs is None:
            spg = spg if spg is not None else cfg.gradient_accumulation_steps
            gbs = b * ws * spg
            how = (f"generation_batch_size = per_device_train_batch_size {b} x world_size {ws} "
                   f"x steps_per_generation {spg} = {gbs}")
        else:
            how = f"generation_batch_size {gbs} (given)"
        g_from = _value(args, "num_generations", 8)[1]
        arithmetic.append({"line": f"{_short(layer.file)}:{layer.line}", "formula": how,
                           "world_size_from": ws_from, "num_generations": g,
                           "num_generations_from": g_from,
                           "remainder": gbs % g if g else None,
                           "eval": cfg.eval_on, "teacher": cfg.teacher})
        for r in found:
            text = r.message
            if "divisible by num_generations (" in text:
                text = f"generation_batch_size {gbs} % num_generations {g} = {gbs % g}"
            elif "eval batch" in text:
                geval = cfg.num_generations_eval or g
                eb = cfg.per_device_eval_batch_size * ws
                text = (f"global eval batch {ws} x {cfg.per_device_eval_batch_size} = {eb} % "
                        f"num_generations_eval {geval} = {eb % geval}")
            problems.append(f"{_at(layer)}: {text} (ms-swift {r.where})")
        if found:
            given = frozenset(args)
            fixes.append(_fix_text(grpo_batch.fixes(cfg, given), args) + (
                ", or --eval_strategy no" if cfg.eval_on and
                any("eval" in r.message for r in found) else "") + (
                ", or --teacher_model <a teacher> (on-policy distillation allows 1)"
                if any("greater than 1" in r.message for r in found) else ""))
    finding.evidence(runs=arithmetic, unknown=unknown)
    finding.fix("; ".join(fixes) or "make num_generations divide the generation batch")
    if not problems and unknown:
        finding.unknown("cannot do the GRPO batch arithmetic: " + "; ".join(unknown))
    finding.summary("; ".join(a["formula"] + f", divisible by {a['num_generations']}"
                              for a in arithmetic))
    assert not problems, "; ".join(problems)


def _fix_text(changes: list[dict], args: dict) -> str:
    """Fixes grouped by flag: `--num_generations one of [2, 4] (PRL_NUM_GENERATIONS=...)`."""
    single: dict[str, list] = {}
    parts = []
    for change in changes:
        if len(change) == 1 and None not in change.values():
            (key, value), = change.items()
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


# -- launch-ports ----------------------------------------------------------------------


@pytest.mark.pitfall("launch-ports")
def test_launch_ports_free(node, profile, finding):
    spec, layers = _distributed(node, finding)
    by_pid = node.process_by_pid
    seen: dict[int, str] = {}
    problems, unknown, warnings, rows = [], [], [], []
    free = ports.suggest_port() or "<a free port>"
    for job in spec.jobs:
        used: dict[int, str] = {}
        for layer in job.distributed:
            row = layer.describe()
            rows.append(row)
            if layer.port is None:
                if layer.port_text != "free":
                    unknown.append(f"{layer.launcher} at {_at(layer)}: port "
                                   f"{layer.port_text}")
                continue
            if layer.port in used:
                problems.append(f"{layer.launcher} at {_at(layer)} and {used[layer.port]} "
                                f"both use port {layer.port}")
                continue
            used[layer.port] = f"{layer.launcher} at {_at(layer)}"
            if layer.port in seen:
                continue
            seen[layer.port] = used[layer.port]
            addr = layer.master_addr or (layer.env.get("MASTER_ADDR").value
                                         if layer.implicit and layer.env.get("MASTER_ADDR")
                                         else "")
            if addr and not ports.is_local_address(addr):
                row["bind"] = f"skipped: {addr} is another node"
                continue
            bound = ports.try_bind(layer.port)
            held = ports.holders(layer.port, node.listeners) if not bound.ok else []
            row["bind"] = bound.error or "ok"
            row["holders"] = [{"pid": h.pid, "cmdline": by_pid[h.pid].redacted(200)
                               if h.pid in by_pid else None} for h in held]
            if not bound.ok and layer.port_fallback:
                # accelerate on one machine takes another free port (utils/launch.py:233)
                warnings.append(f"port {layer.port} of {layer.launcher} at {_at(layer)} is "
                                "taken: accelerate will pick a free one instead")
            elif not bound.ok:
                pids = sorted({h.pid for h in held if h.pid})
                problems.append(f"port {layer.port} of {layer.launcher} at {_at(layer)} "
                                f"cannot be bound: {bound.error}" +
                                (f" (held by pid {', '.join(map(str, pids))})" if pids else ""))
        for layer in job.distributed:
            if layer.implicit or not layer.launcher.startswith(("torchrun", "python -m torch")):
                continue
            env_port = layer.master_port_env
            if env_port and env_port != (str(layer.port) if layer.port else None):
                really = layer.port if layer.port is not None else "a free port"
                warnings.append(f"MASTER_PORT={env_port} is exported for {layer.launcher} at "
                                f"{_at(layer)}, which does not read it: it uses {really} "
                                f"({layer.port_source})")
    finding.evidence(layers=rows, unknown=unknown, ignored_master_port=warnings)
    finding.fix(f"give each layer its own free port: torchrun --master_port {free} (or "
                f"PET_MASTER_PORT={free}); for swift, MASTER_PORT={free}; kill only holders "
                "that are yours")
    if not problems and unknown:
        finding.unknown("cannot check the ports: " + "; ".join(unknown))
    if not problems and warnings:
        finding.warn("; ".join(warnings))
        return
    finding.summary("ports free: " + ", ".join(map(str, sorted(seen))) if seen else
                    "every launcher picks a free port itself")
    assert not problems, "; ".join(problems)


# -- launch-gpus -----------------------------------------------------------------------


def _visible(value: str) -> list[str]:
    if value.strip() in ("", "-1", "NoDevFiles"):
        return []
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break  # CUDA stops at the first invalid entry
        out.append(item)
    return out


@pytest.mark.pitfall("launch-gpus")
def test_launch_gpus_enough(node, profile, finding):
    _, layers = _distributed(node, finding)
    snapshot = node.gpus
    present = snapshot.gpus
    problems, unknown, rows = [], [], []
    for layer in layers:
        cvd = layer.env.get("CUDA_VISIBLE_DEVICES")
        row = {**layer.describe(), "CUDA_VISIBLE_DEVICES": None if cvd is None else
               (cvd.value if cvd.value is not None else cvd.text)}
        rows.append(row)
        if layer.nproc is None:
            if layer.nproc_text in ("auto", "gpu", "all GPUs"):
                continue  # one process per visible GPU
            unknown.append(f"{layer.launcher} at {_at(layer)}: nproc {layer.nproc_text}")
            continue
        if cvd is not None and cvd.value is None:
            unknown.append(f"CUDA_VISIBLE_DEVICES for {_at(layer)}: {cvd.reason}")
            continue
        if cvd is not None:
            visible = _visible(cvd.value)
            row["visible"] = len(visible)
            if present:
                absent = [v for v in visible
                          if (i := maybe_int(v)) is not None and i >= len(present)]
                if absent:
                    problems.append(f"CUDA_VISIBLE_DEVICES={cvd.value} names GPU "
                                    f"{', '.join(absent)} but the node has {len(present)}")
            count = len(visible)
        elif present:
            count = len(present)
            row["visible"] = count
        else:
            finding.skip(f"no GPU to count: CUDA_VISIBLE_DEVICES unset and NVML reports none "
                         f"({snapshot.error or 'no GPU'})")
        if layer.nproc > count:
            problems.append(f"{layer.launcher} at {_at(layer)} starts {layer.nproc} "
                            f"processes per node but {count} GPU(s) are visible")
    finding.evidence(layers=rows, gpus_on_node=len(present), nvml_error=snapshot.error)
    counts = [r.get("visible") for r in rows if r.get("visible") is not None]
    n = min(counts) if counts else len(present)
    finding.fix(f"--nproc_per_node {n} (NPROC_PER_NODE={n}), or list more GPUs: "
                f"CUDA_VISIBLE_DEVICES={','.join(str(i) for i in range(max(n, 1)))}" if n else
                "expose GPUs: CUDA_VISIBLE_DEVICES=0,1,... ")
    if not problems and unknown:
        finding.unknown("cannot count: " + "; ".join(unknown))
    finding.summary(", ".join(f"{r['launcher']}: {r.get('nproc_per_node')} process(es), "
                              f"{r.get('visible', '?')} GPU(s) visible" for r in rows))
    assert not problems, "; ".join(problems)
