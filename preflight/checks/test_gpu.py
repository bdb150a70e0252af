"""GPU and CUDA-stack checks, judged against the profile.

GPU checks are parametrized per GPU the profile expects (`gpu0..gpuN-1`), so a missing
GPU is a failing case, not a vanished test. On a profile without GPUs they skip with
the reason; on a GPU profile where NVML cannot be read they fail with it.

Adapters: gather the facts, call the judge (`preflight/judges/gpu.py`), conclude.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from preflight.judges import gpu as judge
from preflight.plugin import Recorder
from preflight.probes import Node, cuda, nccl, procs, torch_build
from preflight.profiles import Profile

pytestmark = pytest.mark.static


def _gpu_params(profile: Profile, node: Node) -> list[tuple[str, int | None]]:
    if not profile.is_gpu:
        return [("no-gpu", None)]
    return [(f"gpu{i}", i) for i in range(profile.gpu.count)]


def slot(node: Node, profile: Profile, position: int | None) -> judge.Slot:
    return judge.Slot(judge.GpuWant.of(profile), node.gpus, position,
                      node.environ.get("CUDA_VISIBLE_DEVICES"))


def launched_processes_per_node(node: Node) -> int | None:
    spec = node.launch
    if spec is None or not spec.gated:
        return spec.processes_per_node if spec is not None else None
    # llamafactory-cli relaunches under torchrun only with more than one GPU: NVML decides
    snap = node.gpus
    return spec.processes_on(None if snap.error else len(snap.gpus), snap.error or "")


@pytest.mark.pitfall("gpu-inventory")
@pytest.mark.each("gpu", _gpu_params)
def test_gpu_inventory(node: Node, profile: Profile, finding: Recorder, gpu: int | None) -> None:
    finding.conclude(judge.inventory(slot(node, profile, gpu)))


@pytest.mark.pitfall("gpu-inventory")
def test_gpus_visible_to_job(node: Node, profile: Profile, finding: Recorder) -> None:
    finding.conclude(judge.visible_to_job(judge.JobFacts(
        judge.GpuWant.of(profile), node.gpus, node.environ.get("CUDA_VISIBLE_DEVICES"),
        launched_processes_per_node(node))))


def process_facts(node: Node) -> judge.ProcessFacts:
    me = procs.user_name(os.getuid())
    if not node.gpus.pids_are_here(socket.gethostname()):
        return judge.ProcessFacts(frozenset(), {}, me, node.gpus.recorded_on)
    listed = judge.listed_pids(node.gpus)
    ours = frozenset(pid for pid in listed if pid in node.own_family)
    holders = {}
    for pid in listed:
        if pid not in ours and (proc := node.process_by_pid.get(pid)) is not None:
            holders[pid] = judge.Holder(proc.user, proc.redacted() or proc.name)
    return judge.ProcessFacts(ours, holders, me)


@pytest.mark.pitfall("gpu-free")
@pytest.mark.each("gpu", _gpu_params)
def test_gpu_free(node: Node, profile: Profile, finding: Recorder, gpu: int | None) -> None:
    finding.conclude(judge.free(slot(node, profile, gpu), process_facts(node)))


@pytest.mark.pitfall("gpu-health")
@pytest.mark.each("gpu", _gpu_params)
def test_gpu_health(node: Node, profile: Profile, finding: Recorder, gpu: int | None) -> None:
    finding.conclude(judge.health(slot(node, profile, gpu)))


def cuda_facts(node: Node) -> judge.CudaFacts:
    build = torch_build.read(node.runner, node.launch_python, node.environ)
    if not build.installed:
        return judge.CudaFacts(build, None)
    # The toolkit of the job: a launch script's `export CUDA_HOME=...` counts.
    env = node.job_environ("CUDA_HOME", "CUDA_PATH", "PATH", "CONDA_PREFIX")
    home, how = cuda.cuda_home(env)
    var = env.get("CUDA_HOME")
    is_dir = var is not None and Path(var).is_dir()
    return judge.CudaFacts(build, judge.Toolkit(
        home, how, torch_build.nvcc(node.runner, home), var, is_dir,
        cuda.installed(node.runner, env, home)))


@pytest.mark.pitfall("cuda-stack")
def test_cuda_stack(node: Node, profile: Profile, finding: Recorder) -> None:
    facts = cuda_facts(node) if profile.is_gpu else None
    finding.conclude(judge.cuda_stack(judge.GpuWant.of(profile), node.gpus, facts))


@pytest.mark.pitfall("nccl-env")
def test_nccl_env(node: Node, profile: Profile, finding: Recorder) -> None:
    # As the launch's job gets them: a script's `export NCCL_P2P_DISABLE=1` cripples the
    # job, its `unset` repairs this shell's; NCCL_CONF_FILE / HOME pick NCCL's files.
    environ, lines = node.job_environ_prefixed("NCCL_", "HOME")
    found = nccl.settings(environ, lines=lines) if profile.is_gpu else {}
    topo = found.get("NCCL_TOPO_FILE")
    command = node.job_command()
    facts = judge.NcclFacts(found, None if topo is None else Path(topo.value).is_file(),
                            (command.file, command.line) if command is not None else None)
    finding.conclude(judge.nccl_env(judge.GpuWant.of(profile), facts))
