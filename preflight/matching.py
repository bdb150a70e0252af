"""Does a node's GPU inventory match a profile. Pure: NVML snapshot in, verdict out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from preflight.profiles import Profile


@dataclass(frozen=True)
class GpuMatch:
    ok: bool
    expected: str
    detected: list[str]
    problems: list[str] = field(default_factory=list)


def gpu_match(profile: Profile, gpus: list[dict[str, Any]]) -> GpuMatch:
    want = profile.gpu
    expected = f"{want.count}x {want.model or 'any GPU'}" if want.count else "no GPU required"
    detected = [g.get("name", "?") for g in gpus]
    if want.count == 0:
        return GpuMatch(True, expected, detected)
    problems = []
    matching = [g for g in gpus if model_matches(want.model, str(g.get("name", "")))]
    if len(matching) < want.count:
        problems.append(f"{len(matching)} of {want.count} expected {want.model} GPU(s) present")
    return GpuMatch(not problems, expected, detected, problems)


def model_matches(model: str, name: str) -> bool:
    """`model` as a whole word of the NVML name: "H20" is not "NVIDIA H200"."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(model)}(?![A-Za-z0-9])", name, re.I) is not None
