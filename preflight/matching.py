"""Does a node's GPU inventory match a profile. Pure: NVML snapshot in, verdict out."""

from __future__ import annotations

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
    matching = [g for g in gpus if want.model.lower() in str(g.get("name", "")).lower()]
    if len(matching) < want.count:
        problems.append(f"{len(matching)} of {want.count} expected {want.model} GPU(s) present")
    return GpuMatch(not problems, expected, detected, problems)
