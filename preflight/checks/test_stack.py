"""The training stack itself, in the order a slime run on 4×A800 validates it: the training backend
alone (a real `swift sft` smoke), the rollout backend alone (a real SGLang server), and,
statically, whether the engines' GPU memory shares leave the profile's headroom.

A stack that is not installed is skipped with the reason, unless the profile lists it
under `[stack] required`: then its absence blocks. Adapters: run the stage bounded, read
what it left (`preflight.stack`), judge it (`preflight/judges/stack.py`), conclude.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

from preflight.judges import stack as judge
from preflight.judges.stack import STEPS
from preflight.launch.spec import LaunchSpec
from preflight.model import Verdict
from preflight.plugin import Recorder
from preflight.probes import Node, ports
from preflight.profiles import Profile
from preflight.stack import colocate, sglang, swift, watch

STACK = (pytest.mark.workload, pytest.mark.stack)
F = TypeVar("F", bound=Callable[..., None])


def _stack(func: F) -> F:
    for mark in STACK:
        func = mark(func)
    return func


def _tiny_assets(node: Node, python: str, out: Path) -> dict[str, str] | str:
    """Build the tiny random Qwen2 + jsonl with the stack's own Python, offline: its
    paths, or why it could not."""
    built = node.runner.run(swift.tiny_assets_argv(python, out), timeout=180,
                            env={**node.environ, **swift.OFFLINE_ENV})
    if built.returncode != 0:
        return (built.stderr.strip().splitlines() or ["timed out"])[-1]
    paths: dict[str, str] = json.loads(built.stdout.strip().splitlines()[-1])
    return paths


def _processes(profile: Profile) -> int:
    if profile.workload.world_size:
        return int(profile.workload.world_size)
    return int(profile.gpu.count) if profile.is_gpu else 2


def _swift_setup(node: Node, profile: Profile, tmp_path: Path, before: dict[str, Any]
                 ) -> swift.SmokeSetup | Verdict:
    """The smoke's install, model, data and launch; or the verdict that ends the check
    (swift absent, no tiny model). Adds the install to `before` (evidence)."""
    install = swift.find(node.environ, node.runner)
    before.update(swift=install.executable, python=install.python, version=install.version)
    if not install.usable:
        return judge.absent("swift", install.error, judge.SWIFT_FIX,
                            "swift" in profile.stack.required, profile.name, before)
    model, dataset = profile.stack.swift_model, profile.stack.swift_dataset
    if not model or not dataset:
        python = install.python or ""
        tiny = _tiny_assets(node, python, tmp_path / "tiny")
        if isinstance(tiny, str):
            return judge.no_tiny_model(python, tiny, before)
        model, dataset = model or tiny["model"], dataset or tiny["dataset"]
    return swift.SmokeSetup(install, model, dataset, _processes(profile),
                            "nccl" if profile.is_gpu else "gloo", ports.free_port(),
                            tmp_path / "output")


def _run_swift(node: Node, profile: Profile, finding: Recorder, tmp_path: Path,
               job: swift.SmokeSetup, name: str, argv: list[str], env: Mapping[str, str],
               shown_env: str, before: Mapping[str, Any]) -> judge.SmokeFacts:
    """Run one swift smoke bounded; what it left, for the judge."""
    timeout = float(profile.stack.swift_timeout_s)
    run = watch.watch(node.runner, argv, log_path=tmp_path / f"{name.replace(' ', '-')}.log",
                      timeout_s=timeout, env=swift.with_log_dir(env, tmp_path / "torchelastic"),
                      cwd=tmp_path)
    log = run.log
    return judge.SmokeFacts(
        check=finding.check, name=name, command=f"{shown_env} HF_HUB_OFFLINE=1 " + " ".join(argv),
        timeout_s=timeout, run=run, log=log, result=swift.read_run(job.out, log, STEPS),
        model=job.model, dataset=job.dataset, before=before, nproc=job.nproc,
        backend=job.backend)


@_stack
@pytest.mark.pitfall("swift-smoke-10")
def test_swift_smoke_10(node: Node, profile: Profile, finding: Recorder,
                        tmp_path: Path) -> None:
    before: dict[str, Any] = {}
    job = _swift_setup(node, profile, tmp_path, before)
    if isinstance(job, Verdict):
        finding.conclude(job)
        return
    argv = swift.sft_argv(job.install.executable or "swift", job.model, job.dataset, job.out,
                          steps=STEPS, backend=job.backend)
    facts = _run_swift(node, profile, finding, tmp_path, job, "swift sft", argv,
                       swift.launch_env(node.environ, job.nproc, job.port),
                       f"NPROC_PER_NODE={job.nproc} MASTER_PORT={job.port}", before)
    finding.conclude(judge.swift_smoke(facts))


@_stack
@pytest.mark.pitfall("swift-grpo-10")
def test_swift_grpo_10(node: Node, profile: Profile, finding: Recorder,
                       tmp_path: Path) -> None:
    spec: LaunchSpec | None = node.launch
    via, why = judge.grpo_launcher(spec)
    if via is None and not profile.stack.swift_grpo:
        finding.conclude(Verdict(
            skip=f"{why}, and profile {profile.name} does not ask for GRPO "
                 "([stack] swift_grpo = true)"))
        return
    via = via or "swift"
    before: dict[str, Any] = {"launcher": via, "launcher_from": why}
    job = _swift_setup(node, profile, tmp_path, before)
    if isinstance(job, Verdict):
        finding.conclude(job)
        return
    argv = swift.grpo_argv(job.install, job.model, job.dataset, job.out, steps=STEPS,
                           backend=job.backend, via=via, nproc=job.nproc, port=job.port)
    if via == "torchrun":
        env, shown = swift.torchrun_env(node.environ), "env -u NPROC_PER_NODE -u NNODES"
    else:
        env, shown = (swift.launch_env(node.environ, job.nproc, job.port),
                      f"NPROC_PER_NODE={job.nproc} MASTER_PORT={job.port}")
    facts = _run_swift(node, profile, finding, tmp_path, job, "swift rlhf", argv, env, shown,
                       before)
    finding.conclude(judge.swift_grpo(facts, via))


@_stack
@pytest.mark.pitfall("sglang-generate")
def test_sglang_generate(node: Node, profile: Profile, finding: Recorder,
                         tmp_path: Path) -> None:
    if not profile.is_gpu:
        finding.conclude(Verdict(
            skip=f"SGLang serves on GPUs; profile {profile.name} has none"))
        return
    if not node.gpus.gpus:
        finding.conclude(Verdict(
            skip=f"no GPU on this node ({node.gpus.error or 'NVML lists none'})"))
        return
    python = node.launch_python
    found = node.runner.run(
        [python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('sglang') "
         "is None)"], timeout=60, env=node.environ)
    before = {"python": python}
    if found.returncode != 0:
        finding.conclude(judge.absent(
            "sglang", f"sglang is not importable by {python}",
            f'"{python}" -m pip install "sglang"  # the version your rollout uses',
            "sglang" in profile.stack.required, profile.name, before))
        return
    model = profile.stack.sglang_model
    if not model:
        tiny = _tiny_assets(node, python, tmp_path / "tiny")
        if isinstance(tiny, str):
            finding.conclude(judge.no_tiny_model(python, tiny, before))
            return
        model = tiny["model"]
    port = ports.free_port()
    argv = sglang.server_argv(python, model, port, profile.stack.sglang_mem_fraction)
    base = f"http://127.0.0.1:{port}"
    timeout = float(profile.stack.sglang_timeout_s)
    with watch.Started(node.runner, argv, log_path=tmp_path / "sglang.log",
                       env={**node.environ, **swift.OFFLINE_ENV}, cwd=tmp_path) as server:
        ready = sglang.wait_ready(base, server.poll, timeout)
        answer = sglang.generate(base, "<|im_start|>user\nSay hello.<|im_end|>\n"
                                       "<|im_start|>assistant\n") if ready.ready else None
        left = server.stop(grace_s=15)
        log = server.log
    finding.conclude(judge.sglang_generate(judge.SglangFacts(
        argv, ready, answer, left, log, str(server.log_path), timeout, before)))


def _launch_source(settings: Mapping[str, Any]) -> str:
    if settings.get("launch_cmd"):
        return "--launch-cmd"
    return str(settings.get("launch_script") or "")


@pytest.mark.static
@pytest.mark.pitfall("colocate-memory")
def test_colocate_memory(node: Node, profile: Profile, finding: Recorder,
                         settings: dict[str, Any]) -> None:
    facts = judge.ColocateFacts(
        colocate.from_launch(node.launch, node.environ), _launch_source(settings) or None,
        profile.stack.memory_headroom, profile.stack.trainer_memory_fraction,
        profile.gpu.memory_gb, node.launch.unread if node.launch else "",
        node.launch.unseen if node.launch else ())
    finding.conclude(judge.colocate_memory(facts))
