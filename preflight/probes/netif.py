"""Network interfaces (psutil) and NCCL_SOCKET_IFNAME's selection syntax."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psutil


@dataclass(frozen=True)
class Interface:
    name: str
    up: bool
    loopback: bool
    # Its IPv4 / IPv6 addresses as NCCL counts them (IPv6 loopback left out); None: not read.
    addresses: tuple[str, ...] | None = None


def _nccl_addresses(addrs: Sequence[Any]) -> tuple[str, ...]:
    """NCCL takes an interface only through an AF_INET / AF_INET6 address, never ::1
    (NVIDIA/nccl 5067397 src/os/linux.cc:379 ncclOsFindInterfaces, called by
    src/misc/socket.cc:190 ncclFindInterfaces: `if (family != AF_INET && family !=
    AF_INET6) continue;` :399, `IN6_IS_ADDR_LOOPBACK` :413). IPv6 link-local counts."""
    return tuple(a.address for a in addrs
                 if a.family == socket.AF_INET or
                 (a.family == socket.AF_INET6 and a.address.split("%")[0] != "::1"))


def interfaces(stats: Callable[[], Mapping[str, Any]] = psutil.net_if_stats,
               addrs: Callable[[], Mapping[str, Any]] = psutil.net_if_addrs) -> list[Interface]:
    found = []
    known = addrs()
    for name, st in sorted(stats().items()):
        found.append(Interface(name, bool(st.isup), name == "lo" or name.startswith("lo:"),
                               _nccl_addresses(known.get(name, ()))))
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
