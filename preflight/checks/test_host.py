"""Host checks: what a training job inherits from the machine (/dev/shm, rlimits, disks).

Adapters: gather the facts, call the judge (`preflight/judges/host.py`), conclude.
"""

from __future__ import annotations

import os

import pytest

from preflight import numbers
from preflight.judges import host as judge
from preflight.judges.gpu import GpuWant, processes_per_node
from preflight.launch.spec import LaunchSpec, trainer_option
from preflight.plugin import Recorder
from preflight.probes import Node, host
from preflight.profiles import Profile

pytestmark = pytest.mark.static


@pytest.mark.pitfall("host-limits")
def test_host_limits(node: Node, profile: Profile, finding: Recorder) -> None:
    spec = node.launch
    launched = spec.processes_per_node if spec is not None else None
    if spec is not None and spec.gated:
        # llamafactory-cli relaunches under torchrun only with more than one GPU (NVML)
        snap = node.gpus
        launched = spec.processes_on(None if snap.error else len(snap.gpus),
                                     snap.error or "")
    ranks, ranks_from = processes_per_node(GpuWant.of(profile), launched)
    workers, workers_from = _launch_workers(spec)
    shm = host.shm()
    finding.conclude(judge.host_limits(judge.LimitFacts(
        judge.HostWant.of(profile), shm, host.limits(), ranks, ranks_from, os.geteuid(),
        workers, workers_from, host.largest_files() if shm is not None else ())))


def _launch_workers(spec: LaunchSpec | None) -> tuple[int | None, str]:
    """Dataloader workers per rank as the launch's trainer is told (ms-swift / HF Trainer
    `--dataloader_num_workers`): (count, where), or (None, why not) / (None, "")."""
    found = trainer_option(spec, "dataloader_num_workers") if spec is not None else None
    if found is None:
        return None, ""
    word, layer = found
    n = numbers.maybe_int(word.text, 0, 4096) if word.known else None
    if n is None:
        return None, (f"the launch's --dataloader_num_workers at {layer.where} is not known: "
                      f"{word.reason or word.text!r}")
    return n, f"--dataloader_num_workers {n} at {layer.where}"


@pytest.mark.pitfall("disk-space")
def test_disk_space(node: Node, profile: Profile, finding: Recorder) -> None:
    want = judge.DiskWant.of(profile)
    paths = judge.disk_paths(want, node.launch.output_dirs if node.launch is not None else ())
    finding.conclude(judge.disk_space(judge.DiskFacts(
        want, [host.space(p) for p in paths],
        host.space(want.data_disk) if want.data_disk and paths else None)))
