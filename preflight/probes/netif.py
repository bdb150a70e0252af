"""Network interfaces (psutil) and NCCL_SOCKET_IFNAME's selection syntax."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psutil


@dataclass(frozen=True)
class Interface:
    name: str
    up: bool
    loopback: bool


def interfaces(stats: Callable[[], Mapping[str, Any]] = psutil.net_if_stats) -> list[Interface]:
    found = []
    for name, st in sorted(stats().items()):
        found.append(Interface(name, bool(st.isup), name == "lo" or name.startswith("lo:")))
    return found


def select(spec: str, names: list[str]) -> list[str]:
    """Interfaces NCCL_SOCKET_IFNAME selects (NCCL docs, "NCCL_SOCKET_IFNAME"):
    a comma list of prefixes; `^` excludes the listed ones; `=` makes the match exact
    (`^=` both)."""
    spec = spec.strip()
    exclude = spec.startswith("^")
    if exclude:
        spec = spec[1:]
    exact = spec.startswith("=")
    if exact:
        spec = spec[1:]
    wanted = [w for w in (part.strip() for part in spec.split(",")) if w]

    def hit(name: str) -> bool:
        return any(name == w if exact else name.startswith(w) for w in wanted)

    if exclude:
        return [n for n in names if not hit(n)]
    return [n for n in names if hit(n)]
