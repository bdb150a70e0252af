"""The training stack: swift-smoke-10, swift-grpo-10, sglang-generate (what a real run
left behind), and colocate-memory (statically, the engines' GPU memory shares).

The adapters (`preflight/checks/test_stack.py`) start the processes bounded and read what
they left (`preflight.stack`); these judges only decide from those facts.
"""

from __future__ import annotations

import math
import posixpath
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from preflight.launch.spec import TORCHRUN_LAUNCHERS, LaunchSpec, grpo_runs
from preflight.model import Problem, Verdict
from preflight.stack import sglang, swift
from preflight.stack.colocate import Share
from preflight.stack.watch import Watched

STEPS = 10  # the 10-step smoke run before a 4-GPU GRPO job: `--max_steps 10`
SWIFT_FIX = ('pip install "ms-swift>=4.6,<5"  # into the env the job runs in, after its '
             "torch; or put that env's bin/ first on PATH")


def absent(stage: str, why: str, fix: str, required: bool, profile: str,
           evidence: Mapping[str, Any]) -> Verdict:
    """A stage that is not installed: skipped, unless the profile requires it."""
    if not required:
        return Verdict(evidence=dict(evidence), fix=fix,
                       skip=f"{why}; profile {profile} does not require the {stage} stage")
    return Verdict(evidence=dict(evidence), problems=[Problem(
        f"profile {profile} requires the {stage} stage but {why}", fix)])


def no_tiny_model(python: str, why: str, evidence: Mapping[str, Any]) -> Verdict:
    return Verdict(evidence=dict(evidence), problems=[Problem.unknown(
        f"could not build the tiny model with {python}: {why}")])


# -- swift-smoke-10, swift-grpo-10 ---------------------------------------------------------


@dataclass(frozen=True)
class SmokeFacts:
    check: str  # the check id (its runbook explains a death at teardown)
    name: str  # "swift sft", "swift rlhf"
    command: str  # how to reproduce it, environment included
    timeout_s: float
    run: Watched
    log: str
    result: swift.SmokeRun
    model: str = ""
    dataset: str = ""
    before: Mapping[str, Any] = field(default_factory=dict)  # evidence gathered before it ran
    nproc: int = 1
    backend: str = ""


def _smoke(f: SmokeFacts) -> tuple[Verdict, list[str]]:
    """What a 10-step run must show: exit 0, every step logged, finite losses, a checkpoint
    with optimizer state, nothing left running; (the verdict so far, its blockers' texts)."""
    run, result = f.run, f.result
    v = Verdict(evidence={
        **f.before, "command": f.command, "model": f.model, "dataset": f.dataset,
        "returncode": run.returncode,
        "timed_out": run.timed_out, "wall_s": run.elapsed_s, "steps_logged": list(result.steps),
        "losses": [round(x, 4) for x in result.losses], "steps_per_s": result.steps_per_s,
        "peak_rss_mib": run.peak_rss_bytes // 2**20,
        "peak_gpu_memory_gib": result.peak_gpu_memory_gib, "checkpoint": result.checkpoint,
        "optimizer_state": result.optimizer_state, "first_error": result.first_error,
        "error_lines": list(result.error_lines), "left_running": list(run.survivors),
        "log": run.log_path, "run_sh": result.run_sh})
    # The log lies under the report dir (preflight-logs/): it outlives the run.
    log = shlex.quote(run.log_path)
    v.fix = (f"tail -n 40 {log}   # fix what swift reports first "
             f"({result.first_error or 'see the log'}), then re-run: {f.command}")
    texts = []
    died = swift.died_after_save(result, run.returncode, f.log, STEPS)
    if run.timed_out:
        v.fix = (f"tail -n 40 {log}   # the smoke hung past {f.timeout_s:g}s: a hang after "
                 "`failed to bind` is a nested launcher (run `swift` alone with "
                 "NPROC_PER_NODE, no outer torchrun). Reproduce: " + f.command)
        texts.append(f"no exit within {f.timeout_s:g}s")
    elif died:
        # Every step ran, swift finished and the checkpoint is whole; then a rank died by
        # a signal in teardown (seen with gloo; likely the process group ms-swift never
        # destroys). The job trains, but its exit code says it failed.
        v.evidence["died_after_save"] = died
        v.fix = (f"grep -n last_model_checkpoint {log}   # the run finished and saved, then "
                 f"exited {run.returncode} ({died}): judge the job by `last_model_checkpoint:` "
                 "and the checkpoint's optimizer.pt, not by its exit code (the "
                 f"{f.check} runbook). Reproduce: {f.command}")
        v.problems.append(Problem.warning(
            f"{f.name} trained {STEPS} steps and saved checkpoint-{STEPS}, then exited "
            f"{run.returncode} at teardown ({died}): a scheduler will mark the job failed",
            v.fix))
    elif run.returncode != 0:
        texts.append(f"{f.name} exited {run.returncode}: "
                     f"{result.first_error or 'no error line'}")
    if len(result.steps) < STEPS:
        texts.append(f"{len(result.steps)}/{STEPS} steps logged")
    if not all(math.isfinite(x) for x in result.losses):
        texts.append("a loss is not finite")
    if run.returncode == 0 and not result.checkpoint:
        texts.append(f"no checkpoint-{STEPS} written")
    elif result.checkpoint and not result.optimizer_state:
        texts.append(f"checkpoint-{STEPS} has no optimizer state")
    if run.survivors:
        texts.append(f"processes left running: {list(run.survivors)}")
    return v, texts


def swift_smoke(f: SmokeFacts) -> Verdict:
    v, texts = _smoke(f)
    v.headline = "swift smoke (10 steps) failed"
    v.problems += [Problem(t, v.fix) for t in texts]
    if f.run.returncode == 0 and not texts:
        r = f.result
        v.ok = (f"{STEPS} steps on {f.nproc} {f.backend} processes in {f.run.elapsed_s}s "
                f"(loss {r.losses[0]:.3g} -> {r.losses[-1]:.3g}), checkpoint-{STEPS} with "
                "optimizer state")
    return v


def swift_grpo(f: SmokeFacts, via: str) -> Verdict:
    v, texts = _smoke(f)
    r = f.result
    v.evidence.update(rewards=[round(x, 4) for x in r.rewards],
                      reward_stds=[round(x, 4) for x in r.reward_stds])
    if len(r.rewards) < len(r.steps):
        texts.append("no reward logged: the reward function did not run")
    elif not all(math.isfinite(x) for x in r.rewards):
        texts.append("a reward is not finite")
    elif r.steps and not any(x > 0 for x in r.reward_stds):
        texts.append("the rewards never differed within a group: every advantage was 0, "
                     "so no step could move the weights")
    v.headline = "GRPO smoke (10 steps) failed"
    v.problems += [Problem(t, v.fix) for t in texts]
    if f.run.returncode == 0 and not texts:
        v.ok = (f"GRPO {STEPS} steps on {f.nproc} {f.backend} processes via {via} in "
                f"{f.run.elapsed_s}s (reward {r.rewards[0]:.3g} -> {r.rewards[-1]:.3g}), "
                f"checkpoint-{STEPS} with optimizer state")
    return v


def grpo_launcher(spec: LaunchSpec | None) -> tuple[str | None, str]:
    """(launcher path, why): "torchrun" when the launch script's GRPO run sits under an
    explicit torchrun (`torchrun -m swift.cli.rlhf`), "swift" when swift launches itself
    (or under a launcher the smoke does not run: accelerate, deepspeed; said in `why`),
    None when the script runs no GRPO."""
    for layer, _, outer in grpo_runs(spec) if spec is not None else ():
        where = f"{posixpath.basename(layer.file)}:{layer.line}"
        if outer is None or outer.implicit:
            return "swift", f"swift rlhf relaunches itself (NPROC_PER_NODE) at {where}"
        if outer.launcher in TORCHRUN_LAUNCHERS:
            return "torchrun", f"{outer.launcher} runs swift.cli.rlhf at {where}"
        return "swift", (f"{outer.launcher} runs swift.cli.rlhf at {where}; the smoke runs "
                         "swift's own launcher instead")
    if spec is not None and spec.unread:
        return None, f"no GRPO run known: the launch script was not read ({spec.unread})"
    if spec is not None and spec.unseen:
        return None, ("no GRPO run known: the launch script runs what preflight could not "
                      f"read ({'; '.join(spec.unseen[:2])})")
    return None, "no GRPO run in the launch script"


# -- sglang-generate -----------------------------------------------------------------------


@dataclass(frozen=True)
class SglangFacts:
    argv: Sequence[str]
    ready: sglang.Readiness
    answer: sglang.Generation | None  # None: never asked (the server was not ready)
    left: tuple[int, ...]  # its processes still alive after the shutdown
    log: str
    log_path: str
    timeout_s: float
    before: Mapping[str, Any] = field(default_factory=dict)


def _sglang_problem(f: SglangFacts, errors: Sequence[str]) -> str:
    """The first thing wrong, in the order a server goes: start, health, answer, stop."""
    answer = f.answer
    if f.ready.exited is not None:
        return (f"the SGLang server exited {f.ready.exited} while starting: "
                f"{errors[0] if errors else 'no error line'}")
    if not f.ready.ready or answer is None:
        return f"GET /health never answered 200 within {f.timeout_s:g}s ({f.ready.statuses})"
    if answer.status != 200:
        return f"POST /generate answered {answer.status}: {answer.error}"
    if not answer.text.strip():
        return "POST /generate answered 200 with empty text"
    if f.left:
        return f"SGLang processes left running after shutdown: {list(f.left)}"
    return ""


def sglang_generate(f: SglangFacts) -> Verdict:
    errors = swift.first_errors(f.log)
    answer, ready = f.answer, f.ready
    v = Verdict(evidence={
        **f.before, "command": " ".join(f.argv), "ready": ready.ready,
        "ready_s": ready.elapsed_s, "health_statuses": ready.statuses,
        "exited_while_starting": ready.exited, "ready_line": sglang.READY_LINE in f.log,
        "first_error": errors[0] if errors else "",
        "generate_status": answer.status if answer else None,
        "generated": answer.text[:80] if answer else None,
        "generate_s": answer.elapsed_s if answer else None, "left_running": list(f.left),
        "log": f.log_path})
    v.fix = (f"tail -n 40 {shlex.quote(f.log_path)}   # fix what the server reports first "
             f"({errors[0] if errors else 'see the log'}); lower --mem-fraction-static if it "
             f"ran out of memory. Reproduce: {' '.join(f.argv)}")
    if problem := _sglang_problem(f, errors):
        v.problems.append(Problem(problem, v.fix))
    elif answer is not None:
        v.ok = (f"ready in {ready.elapsed_s}s, POST /generate 200 in {answer.elapsed_s}s, "
                "nothing left running")
    return v


# -- colocate-memory -----------------------------------------------------------------------


@dataclass(frozen=True)
class ColocateFacts:
    shares: Sequence[Share]  # the engines' shares the launch gives (stack/colocate.py)
    launch: str | None  # --launch-cmd or the script's path
    headroom: float  # the profile's [stack] memory_headroom
    trainer: float  # the profile's [stack] trainer_memory_fraction
    memory_gb: float | None  # the profile's GPU memory
    unread: str = ""  # why the launch script was not read to its end (LaunchSpec.unread)
    # where the script runs what preflight could not read (LaunchSpec.unseen)
    unseen: Sequence[str] = ()


def _shares(found: Sequence[Share]) -> list[dict[str, str]]:
    return [{"engine": s.engine, "value": s.raw, "from": s.source} for s in found]


def colocate_memory(f: ColocateFacts) -> Verdict:
    found = f.shares
    if f.unread:  # the shares the script gives (or overrides) are not known
        return Verdict(evidence=dict(shares=_shares(found), launch=f.launch),
                       problems=[Problem.unknown(f"the launch script was not read: {f.unread}")])
    if not found and f.unseen:  # a file it cannot read may give one
        return Verdict(evidence=dict(launch=f.launch, unseen=list(f.unseen)),
                       problems=[Problem.unknown(
                           "no SGLang / vLLM GPU memory share in what preflight read, but the "
                           "launch script also runs what it could not read: "
                           + "; ".join(f.unseen[:3]))])
    if not found:
        return Verdict(skip="no SGLang / vLLM GPU memory share in the launch command or "
                            "environment")
    unknown = [s for s in found if not s.known]
    if unknown:
        return Verdict(evidence=dict(shares=_shares(found), launch=f.launch),
                       problems=[Problem.unknown("GPU memory share not known: " + "; ".join(
                           f"{s.source} = {s.raw} ({s.reason})" for s in unknown))])
    valid = [s for s in found if s.fraction is not None and 0 < s.fraction <= 1]
    total = round(sum(s.fraction or 0 for s in valid) + f.trainer, 4)
    allowed = round(1 - f.headroom, 4)
    room = allowed - f.trainer
    engines = valid or list(found)
    scale = sum(s.fraction or 0 for s in engines) or 1
    suggestion = {s.engine: max(0.05, int(room * (s.fraction or 1) / scale * 20) / 20)
                  for s in engines}
    fix = "; ".join(
        f"export {s.source.removeprefix('env ')}={suggestion[s.engine]:g}"
        if s.source.startswith("env ") else f"{s.source} {suggestion[s.engine]:g}"
        for s in engines) + f"  # engines + trainer must stay <= {allowed:g} of each GPU"
    v = Verdict(evidence=dict(
        shares=_shares(found), launch=f.launch, trainer_fraction=f.trainer, total=total,
        allowed=allowed, headroom=f.headroom,
        free_gb_per_gpu=round((1 - total) * f.memory_gb, 1) if f.memory_gb else None),
        fix=fix, ok=f"engines + trainer take {total:g} of each GPU, leaving {1 - total:.2g}")
    invalid = [s for s in found if s not in valid]
    if invalid:
        v.problems.append(Problem("not a fraction in (0, 1]: " + ", ".join(
            f"{s.source}={s.raw!r}" for s in invalid), fix))
    elif total > allowed + 1e-9:
        trainer = f" + trainer {f.trainer:g}" if f.trainer else ""
        v.problems.append(Problem(
            f"GPU memory shares add up to {total:g} "
            f"({' + '.join(f'{s.engine} {s.raw}' for s in found)}{trainer}), leaving less "
            f"than the profile's headroom {f.headroom:g}", fix))
    return v
