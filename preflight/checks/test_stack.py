"""The training stack itself, in the order a slime run on 4×A800 validates it: the training backend
alone (a real `swift sft` smoke), the rollout backend alone (a real SGLang server), and,
statically, whether the engines' GPU memory shares leave the profile's headroom.

A stack that is not installed is skipped with the reason, unless the profile lists it
under `[stack] required`: then its absence blocks.
"""

from __future__ import annotations

import json
import math
import posixpath
from pathlib import Path

import pytest

from preflight.launch.spec import TORCHRUN_LAUNCHERS, grpo_runs
from preflight.probes import ports
from preflight.stack import colocate, sglang, swift, watch

STEPS = 10  # the 10-step smoke run before a 4-GPU GRPO job: `--max_steps 10`
STACK = (pytest.mark.workload, pytest.mark.stack)


def _stack(func):
    for mark in STACK:
        func = mark(func)
    return func


def _absent(finding, profile, stage: str, why: str, fix: str) -> None:
    finding.fix(fix)
    if stage not in profile.stack.required:
        finding.skip(f"{why}; profile {profile.name} does not require the {stage} stage")
    raise AssertionError(f"profile {profile.name} requires the {stage} stage but {why}")


def _tiny_assets(node, finding, python: str, out: Path) -> dict:
    """Build the tiny random Qwen2 + jsonl with the stack's own Python, offline."""
    built = node.runner.run(swift.tiny_assets_argv(python, out), timeout=180,
                            env={**node.environ, **swift.OFFLINE_ENV})
    if built.returncode != 0:
        why = (built.stderr.strip().splitlines() or ["timed out"])[-1]
        finding.unknown(f"could not build the tiny model with {python}: {why}")
    return json.loads(built.stdout.strip().splitlines()[-1])


def _processes(profile) -> int:
    if profile.workload.world_size:
        return profile.workload.world_size
    return profile.gpu.count if profile.is_gpu else 2


def _swift_install(node, profile, finding) -> swift.SwiftInstall:
    install = swift.find(node.environ, node.runner)
    finding.evidence(swift=install.executable, python=install.python, version=install.version)
    if not install.usable:
        _absent(finding, profile, "swift", install.error,
                'pip install "ms-swift>=4.6,<5"  # into the env the job runs in, after its torch; '
                "or put that env's bin/ first on PATH")
    return install


def _swift_setup(node, profile, finding, tmp_path: Path) -> swift.SmokeSetup:
    install = _swift_install(node, profile, finding)
    model, dataset = profile.stack.swift_model, profile.stack.swift_dataset
    if not model or not dataset:
        tiny = _tiny_assets(node, finding, install.python, tmp_path / "tiny")
        model, dataset = model or tiny["model"], dataset or tiny["dataset"]
    return swift.SmokeSetup(install, model, dataset, _processes(profile),
                            "nccl" if profile.is_gpu else "gloo", ports.free_port(),
                            tmp_path / "output")


def _run_swift(node, profile, finding, tmp_path: Path, name: str, argv: list[str],
               env: dict[str, str], shown_env: str, out: Path, **evidence):
    """Run one swift smoke bounded, record its evidence and fix, and fail on what a
    10-step run must show: exit 0, every step logged, finite losses, a checkpoint with
    optimizer state, nothing left running."""
    timeout = profile.stack.swift_timeout_s
    run = watch.watch(node.runner, argv, log_path=tmp_path / f"{name.replace(' ', '-')}.log",
                      timeout_s=timeout, env=env, cwd=tmp_path)
    result = swift.read_run(out, run.log, STEPS)
    command = f"{shown_env} HF_HUB_OFFLINE=1 " + " ".join(argv)
    finding.evidence(
        command=command, **evidence, returncode=run.returncode,
        timed_out=run.timed_out, wall_s=run.elapsed_s, steps_logged=list(result.steps),
        losses=[round(x, 4) for x in result.losses], steps_per_s=result.steps_per_s,
        peak_rss_mib=run.peak_rss_bytes // 2**20, peak_gpu_memory_gib=result.peak_gpu_memory_gib,
        checkpoint=result.checkpoint, optimizer_state=result.optimizer_state,
        first_error=result.first_error, error_lines=list(result.error_lines),
        left_running=list(run.survivors), log=run.log_path, run_sh=result.run_sh,
    )
    if run.timed_out:
        finding.fix(f"the smoke hung past {timeout:g}s: read {run.log_path}; a hang after "
                    "`failed to bind` is a nested launcher (run `swift` alone with "
                    "NPROC_PER_NODE, no outer torchrun). Reproduce: " + command)
    else:
        finding.fix(f"fix what swift reports first ({result.first_error or 'see the log'}), then "
                    f"re-run: {command}")
    problems = []
    died = swift.died_after_save(result, run.returncode, run.log, STEPS)
    if run.timed_out:
        problems.append(f"no exit within {timeout:g}s")
    elif died:
        # Every step ran, swift finished and the checkpoint is whole; then a rank died by
        # a signal in teardown (seen with gloo; likely the process group ms-swift never
        # destroys). The job trains, but its exit code says it failed.
        finding.evidence(died_after_save=died)
        finding.fix(f"the run finished and saved, then exited {run.returncode} ({died}): judge "
                    "the job by `last_model_checkpoint:` and the checkpoint's optimizer.pt, not "
                    f"by its exit code; see the {finding.check} runbook. Reproduce: {command}")
        finding.warn(f"{name} trained {STEPS} steps and saved checkpoint-{STEPS}, then exited "
                     f"{run.returncode} at teardown ({died}): a scheduler will mark the job "
                     "failed")
    elif run.returncode != 0:
        first = result.first_error or "no error line"
        problems.append(f"{name} exited {run.returncode}: {first}")
    if len(result.steps) < STEPS:
        problems.append(f"{len(result.steps)}/{STEPS} steps logged")
    if not all(math.isfinite(x) for x in result.losses):
        problems.append("a loss is not finite")
    if run.returncode == 0 and not result.checkpoint:
        problems.append(f"no checkpoint-{STEPS} written")
    elif result.checkpoint and not result.optimizer_state:
        problems.append(f"checkpoint-{STEPS} has no optimizer state")
    if run.survivors:
        problems.append(f"processes left running: {list(run.survivors)}")
    return run, result, problems


@_stack
@pytest.mark.pitfall("swift-smoke-10")
def test_swift_smoke_10(node, profile, finding, tmp_path):
    job = _swift_setup(node, profile, finding, tmp_path)
    argv = swift.sft_argv(job.install.executable, job.model, job.dataset, job.out, steps=STEPS,
                          backend=job.backend)
    run, result, problems = _run_swift(
        node, profile, finding, tmp_path, "swift sft", argv,
        swift.launch_env(node.environ, job.nproc, job.port),
        f"NPROC_PER_NODE={job.nproc} MASTER_PORT={job.port}", job.out,
        model=job.model, dataset=job.dataset)
    assert not problems, "swift smoke (10 steps) failed: " + "; ".join(problems)
    if run.returncode == 0:
        finding.summary(f"{STEPS} steps on {job.nproc} {job.backend} processes in {run.elapsed_s}s "
                        f"(loss {result.losses[0]:.3g} -> {result.losses[-1]:.3g}), "
                        f"checkpoint-{STEPS} with optimizer state")


def _grpo_launcher(node) -> tuple[str | None, str]:
    """(launcher path, why): "torchrun" when the launch script's GRPO run sits under an
    explicit torchrun (`torchrun -m swift.cli.rlhf`), "swift" when swift launches itself
    (or under a launcher the smoke does not run: accelerate, deepspeed; said in `why`),
    None when the script runs no GRPO."""
    spec = node.launch
    for layer, _, outer in grpo_runs(spec) if spec is not None else ():
        where = f"{posixpath.basename(layer.file)}:{layer.line}"
        if outer is None or outer.implicit:
            return "swift", f"swift rlhf relaunches itself (NPROC_PER_NODE) at {where}"
        if outer.launcher in TORCHRUN_LAUNCHERS:
            return "torchrun", f"{outer.launcher} runs swift.cli.rlhf at {where}"
        return "swift", (f"{outer.launcher} runs swift.cli.rlhf at {where}; the smoke runs "
                         "swift's own launcher instead")
    return None, "no GRPO run in the launch script"


@_stack
@pytest.mark.pitfall("swift-grpo-10")
def test_swift_grpo_10(node, profile, finding, tmp_path):
    via, why = _grpo_launcher(node)
    if via is None and not profile.stack.swift_grpo:
        finding.skip(f"{why}, and profile {profile.name} does not ask for GRPO "
                     "([stack] swift_grpo = true)")
    via = via or "swift"
    finding.evidence(launcher=via, launcher_from=why)
    job = _swift_setup(node, profile, finding, tmp_path)
    argv = swift.grpo_argv(job.install, job.model, job.dataset, job.out, steps=STEPS,
                           backend=job.backend, via=via, nproc=job.nproc, port=job.port)
    if via == "torchrun":
        env, shown = swift.torchrun_env(node.environ), "env -u NPROC_PER_NODE -u NNODES"
    else:
        env, shown = (swift.launch_env(node.environ, job.nproc, job.port),
                      f"NPROC_PER_NODE={job.nproc} MASTER_PORT={job.port}")
    run, result, problems = _run_swift(
        node, profile, finding, tmp_path, "swift rlhf", argv, env, shown, job.out,
        model=job.model, dataset=job.dataset)
    finding.evidence(rewards=[round(x, 4) for x in result.rewards],
                     reward_stds=[round(x, 4) for x in result.reward_stds])
    if len(result.rewards) < len(result.steps):
        problems.append("no reward logged: the reward function did not run")
    elif not all(math.isfinite(x) for x in result.rewards):
        problems.append("a reward is not finite")
    elif result.steps and not any(x > 0 for x in result.reward_stds):
        problems.append("the rewards never differed within a group: every advantage was 0, "
                        "so no step could move the weights")
    assert not problems, "GRPO smoke (10 steps) failed: " + "; ".join(problems)
    if run.returncode == 0:
        finding.summary(f"GRPO {STEPS} steps on {job.nproc} {job.backend} processes via {via} in "
                        f"{run.elapsed_s}s (reward {result.rewards[0]:.3g} -> "
                        f"{result.rewards[-1]:.3g}), checkpoint-{STEPS} with optimizer state")


@_stack
@pytest.mark.pitfall("sglang-generate")
def test_sglang_generate(node, profile, finding, tmp_path):
    if not profile.is_gpu:
        finding.skip(f"SGLang serves on GPUs; profile {profile.name} has none")
    if not node.gpus.gpus:
        finding.skip(f"no GPU on this node ({node.gpus.error or 'NVML lists none'})")
    python = node.launch_python
    found = node.runner.run(
        [python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('sglang') "
         "is None)"], timeout=60, env=node.environ)
    finding.evidence(python=python)
    if found.returncode != 0:
        _absent(finding, profile, "sglang", f"sglang is not importable by {python}",
                f'"{python}" -m pip install "sglang"  # the version your rollout uses')
    model = profile.stack.sglang_model or _tiny_assets(node, finding, python,
                                                        tmp_path / "tiny")["model"]
    port = ports.free_port()
    argv = sglang.server_argv(python, model, port, profile.stack.sglang_mem_fraction)
    base = f"http://127.0.0.1:{port}"
    with watch.Started(node.runner, argv, log_path=tmp_path / "sglang.log",
                       env={**node.environ, **swift.OFFLINE_ENV}, cwd=tmp_path) as server:
        ready = sglang.wait_ready(base, server.poll, profile.stack.sglang_timeout_s)
        answer = sglang.generate(base, "<|im_start|>user\nSay hello.<|im_end|>\n"
                                       "<|im_start|>assistant\n") if ready.ready else None
        left = server.stop(grace_s=15)
        log = server.log
    errors = swift.first_errors(log)
    finding.evidence(
        command=" ".join(argv), ready=ready.ready, ready_s=ready.elapsed_s,
        health_statuses=ready.statuses, exited_while_starting=ready.exited,
        ready_line=sglang.READY_LINE in log, first_error=errors[0] if errors else "",
        generate_status=answer.status if answer else None,
        generated=answer.text[:80] if answer else None,
        generate_s=answer.elapsed_s if answer else None, left_running=list(left),
        log=str(server.log_path),
    )
    finding.fix(f"fix what the server reports first ({errors[0] if errors else 'see the log'}); "
                f"lower --mem-fraction-static if it ran out of memory. Reproduce: {' '.join(argv)}")
    if ready.exited is not None:
        raise AssertionError(f"the SGLang server exited {ready.exited} while starting: "
                             f"{errors[0] if errors else 'no error line'}")
    assert ready.ready, (f"GET /health never answered 200 within "
                         f"{profile.stack.sglang_timeout_s:g}s ({ready.statuses})")
    assert answer.status == 200, f"POST /generate answered {answer.status}: {answer.error}"
    assert answer.text.strip(), "POST /generate answered 200 with empty text"
    assert not left, f"SGLang processes left running after shutdown: {list(left)}"
    finding.summary(f"ready in {ready.elapsed_s}s, POST /generate 200 in {answer.elapsed_s}s, "
                    "nothing left running")


def _launch_source(settings) -> str:
    if settings.get("launch_cmd"):
        return "--launch-cmd"
    return settings.get("launch_script") or ""


@pytest.mark.static
@pytest.mark.pitfall("colocate-memory")
def test_colocate_memory(node, profile, finding, settings):
    where = _launch_source(settings)
    found = colocate.from_launch(node.launch, node.environ)
    if not found:
        finding.skip("no SGLang / vLLM GPU memory share in the launch command or environment")
    unknown = [s for s in found if not s.known]
    if unknown:
        finding.evidence(shares=[{"engine": s.engine, "value": s.raw, "from": s.source}
                                 for s in found], launch=where or None)
        finding.unknown("GPU memory share not known: " + "; ".join(
            f"{s.source} = {s.raw} ({s.reason})" for s in unknown))
    headroom = profile.stack.memory_headroom
    trainer = profile.stack.trainer_memory_fraction
    invalid = [s for s in found if s.fraction is None or not 0 < s.fraction <= 1]
    total = round(sum(s.fraction for s in found if s not in invalid) + trainer, 4)
    allowed = round(1 - headroom, 4)
    memory = profile.gpu.memory_gb
    finding.evidence(
        shares=[{"engine": s.engine, "value": s.raw, "from": s.source} for s in found],
        launch=where or None, trainer_fraction=trainer, total=total, allowed=allowed,
        headroom=headroom,
        free_gb_per_gpu=round((1 - total) * memory, 1) if memory else None,
    )
    room = allowed - trainer
    engines = [s for s in found if s not in invalid] or found
    scale = sum(s.fraction or 0 for s in engines) or 1
    suggestion = {s.engine: max(0.05, int(room * (s.fraction or 1) / scale * 20) / 20)
                  for s in engines}
    finding.fix("; ".join(
        f"export {s.source.removeprefix('env ')}={suggestion[s.engine]:g}"
        if s.source.startswith("env ") else f"{s.source} {suggestion[s.engine]:g}"
        for s in engines) + f"  # engines + trainer must stay <= {allowed:g} of each GPU")
    assert not invalid, "not a fraction in (0, 1]: " + ", ".join(
        f"{s.source}={s.raw!r}" for s in invalid)
    assert total <= allowed + 1e-9, (
        f"GPU memory shares add up to {total:g} ({' + '.join(f'{s.engine} {s.raw}' for s in found)}"
        f"{f' + trainer {trainer:g}' if trainer else ''}), leaving less than the profile's "
        f"headroom {headroom:g}")
    finding.summary(f"engines + trainer take {total:g} of each GPU, leaving {1 - total:.2g}")
