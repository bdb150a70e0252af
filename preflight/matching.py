"""Does a node's GPU inventory match a profile. Pure: NVML snapshot in, verdict out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from preflight.profiles import Profile


@dataclass(frozen=True)
class GpuMatch:
    ok: bool
    expected: str
    detected: list[str]
    problems: list[str] = field(default_factory=list)


def gpu_match(profile: Profile, names: Sequence[str]) -> GpuMatch:
    """`names`: the NVML device names of the node's GPUs (`Gpu.name`)."""
    want = profile.gpu
    expected = f"{want.count}x {want.model or 'any GPU'}" if want.count else "no GPU required"
    detected = list(names)
    if want.count == 0:
        return GpuMatch(True, expected, detected)
    problems = []
    matching = [name for name in names if model_matches(want.model, name)]
    if len(matching) < want.count:
        problems.append(f"{len(matching)} of {want.count} expected {want.model} GPU(s) present")
    return GpuMatch(not problems, expected, detected, problems)


def model_matches(model: str, name: str) -> bool:
    """`model` as a whole word of the NVML name: "H20" is not "NVIDIA H200"."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(model)}(?![A-Za-z0-9])", name, re.I) is not None
