"""Listening sockets (psutil) and whether a port can be bound the way c10d binds it."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psutil


@dataclass(frozen=True)
class Listener:
    addr: str
    port: int
    pid: int | None


def listeners(connections: Callable[..., list[Any]] = psutil.net_connections) -> list[Listener]:
    try:
        conns = connections(kind="inet")
    except (psutil.AccessDenied, PermissionError, OSError):
        return []
    return [
        Listener(c.laddr.ip, c.laddr.port, c.pid)
        for c in conns
        if c.status == psutil.CONN_LISTEN and c.laddr
    ]


def listening_uids(port: int, proc_net: str = "/proc/net") -> set[int]:
    """The users whose sockets listen on `port`. /proc/net/tcp names the owner (uid)
    even where the pid is hidden (another user's process, seen by a non-root user),
    which psutil.net_connections cannot tell."""
    uids: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{proc_net}/{name}", encoding="ascii", errors="replace") as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # sl local_address rem_address st ... uid: state 0A is LISTEN
            if len(fields) > 7 and fields[3] == "0A":
                try:
                    if int(fields[1].rsplit(":", 1)[1], 16) == port:
                        uids.add(int(fields[7]))
                except ValueError:
                    continue
    return uids


def holders(port: int, table: Iterable[Listener]) -> list[Listener]:
    return [entry for entry in table if entry.port == port]


@dataclass(frozen=True)
class BindResult:
    addr: str
    port: int
    ok: bool
    error: str = ""


def try_bind(port: int, addr: str = "0.0.0.0") -> BindResult:
    """Bind and listen as TCPStore's server does (SO_REUSEADDR, all interfaces)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((addr, port))
            sock.listen(1)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "")
            return BindResult(addr, port, False, f"{name} {exc.strerror}".strip())
    return BindResult(addr, port, True)


def free_port(addr: str = "127.0.0.1") -> int:
    """A port the kernel just handed out; callers still race, so bind late."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((addr, 0))
        port: int = sock.getsockname()[1]
        return port


def suggest_port(addr: str = "127.0.0.1") -> int | None:
    """A free port to put in a fix, or None when the kernel has none to hand out (every
    ephemeral port taken): the check still judges the port it was given."""
    try:
        return free_port(addr)
    except OSError:
        return None


def is_local_address(host: str) -> bool:
    """Whether `host` names this machine (so a server here would bind it)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return False
    local = {"0.0.0.0", "::"}
    for addrs in psutil.net_if_addrs().values():
        local.update(a.address.split("%")[0] for a in addrs)
    return any(info[4][0] in local for info in infos)
