"""Paired timing for the benchmarks: A and B alternate (A B A B ...) after a warm-up pair,
so load that drifts during a run hits both alike; the figures are medians and the ratio of
each pair, with its spread."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Paired:
    a: list[float]
    b: list[float]

    @property
    def ratios(self) -> list[float]:
        """b / a of each pair."""
        return [b / a for a, b in zip(self.a, self.b, strict=True) if a > 0]

    def line(self, name_a: str, name_b: str, unit: str = "s") -> str:
        r = self.ratios
        return (f"{name_a}: median {statistics.median(self.a):.3f} {unit}  |  {name_b}: median "
                f"{statistics.median(self.b):.3f} {unit}  |  {name_b} / {name_a} per pair: "
                f"median {statistics.median(r):.2f}x, min {min(r):.2f}x, max {max(r):.2f}x "
                f"({len(r)} pairs after {1} warm-up pair)")


def paired(run_a: Callable[[], float], run_b: Callable[[], float], pairs: int,
           warmup: int = 1) -> Paired:
    for _ in range(warmup):
        run_a()
        run_b()
    a, b = [], []
    for _ in range(pairs):
        a.append(run_a())
        b.append(run_b())
    return Paired(a, b)


def user_env() -> dict[str, str]:
    """The environment of an ordinary install: bytecode caching on. pip compiles .pyc at
    install time; a sandbox's PYTHONDONTWRITEBYTECODE=1 would make every run recompile
    preflight and its checks (pytest's assertion rewriting alone ~0.6 s) and measure that."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env
