"""cluster-reach: can every node open TCP to MASTER_ADDR:MASTER_PORT and to every other node?

Each node listens on a free port (and, on the node that owns MASTER_ADDR, on MASTER_PORT
when it is free) for the duration of the probe; then every node connects to every
listener, each connection bounded. NCCL and gloo connect back on ports they pick at run
time, so a firewall that lets only the rendezvous port through still fails the job: the
per-node port stands for "any port".
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

CONNECT_TIMEOUT_S = 3.0
# What a listener says first: a connection that does not hear it reached something else
# (a proxy that accepts any TCP connection, another program on that port).
BANNER = b"preflight-reach 1\n"
MAX_PARALLEL = 64


class Listener:
    """A TCP socket that greets (BANNER) and closes every connection, until `close()`."""

    def __init__(self, port: int = 0, host: str = "0.0.0.0"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                with conn:
                    conn.sendall(BANNER)
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)


@dataclass(frozen=True)
class Target:
    name: str  # "node-b" or "MASTER_ADDR"
    host: str
    port: int


def connect(target: Target, timeout: float = CONNECT_TIMEOUT_S) -> dict[str, Any]:
    start = time.monotonic()
    connected, heard = False, b""
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
            connected = True
            sock.settimeout(max(0.1, timeout - (time.monotonic() - start)))
            while len(heard) < len(BANNER) and (chunk := sock.recv(64)):
                heard += chunk
        error = ""
    except TimeoutError:
        error = "" if connected else f"no answer within {timeout:g}s (packets dropped: a " \
                                     "firewall?)"
    except OSError as exc:
        error = "" if connected else (exc.strerror or str(exc))
    if connected and not heard.startswith(BANNER):
        error = ("connected, but not to preflight's listener (a proxy, or another program on "
                 "that port)")
    return {"to": target.name, "address": f"{target.host}:{target.port}", "ok": not error,
            "error": error, "ms": round((time.monotonic() - start) * 1000, 1)}


def probe(targets: list[Target], timeout: float = CONNECT_TIMEOUT_S) -> list[dict[str, Any]]:
    """Every target at once (bounded by `timeout`, not by their number)."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(targets))) as pool:
        return list(pool.map(lambda t: connect(t, timeout), targets))


def master_env(environ: dict[str, str] | None = None) -> tuple[str, int] | None:
    """(MASTER_ADDR, MASTER_PORT) when this node is part of a multi-node launch."""
    env = os.environ if environ is None else environ
    addr = env.get("MASTER_ADDR", "").strip()
    port = env.get("MASTER_PORT", "29500").strip()
    if not addr or not port.isdigit():
        return None
    return addr, int(port)


class NodeProbe:
    """What runs on one node (a Ray actor in `cluster --ray`): listen, then probe."""

    def __init__(self, own_addresses: set[str] | None = None):
        from preflight.probes import multinode

        self.listener = Listener()
        self.master = master_env()
        self.master_listener: Listener | None = None
        mine = own_addresses if own_addresses is not None else {
            a for addrs in multinode.local_addresses().values() for a in addrs}
        if self.master and self.master[0] in mine:
            try:  # the rendezvous port the job's node 0 will bind
                self.master_listener = Listener(self.master[1])
            except OSError:
                self.master_listener = None  # taken: port-free / launch-ports say by whom

    def where(self) -> dict[str, Any]:
        return {"port": self.listener.port, "master": list(self.master) if self.master else None,
                "master_listening": self.master_listener is not None}

    def probe(self, targets: list[tuple[str, str, int]],
              timeout: float = CONNECT_TIMEOUT_S) -> list[dict[str, Any]]:
        found = [Target(*t) for t in targets]
        if self.master:
            found.append(Target("MASTER_ADDR", *self.master))
        return probe(found, timeout)

    def close(self) -> None:
        self.listener.close()
        if self.master_listener is not None:
            self.master_listener.close()
