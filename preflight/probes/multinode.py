"""What a multi-node launch will use: NNODES / NODE_RANK / MASTER_ADDR (environment or
the launch script), how names resolve here, and which interface routes to an address.

Plain reads, no judgement: the checks in checks/test_multinode.py decide.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psutil

from preflight.launch.shell.model import UNKNOWN_CLOSE, UNKNOWN_OPEN

RESOLVE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LaunchConfig:
    nnodes: int | None  # None: not known (unreadable value)
    nnodes_from: str  # "NNODES", "torchrun --nnodes at run.sh:12", "" (one node)
    master_addr: str  # "" when unset
    master_addr_from: str
    node_rank: str | None
    # The multi-node layer may not start at all: why (a relaunch not known, e.g. swift's
    # after an eval, or llamafactory-cli's with the GPU count not read); "": it starts.
    maybe: str = ""
    # The multi-node layer stops on its own arguments before any rendezvous (launcher-args
    # names the error): "torchrun at run.sh:4"; "" when it does not.
    stops: str = ""
    # where the launch script runs what preflight did not read (LaunchSpec.unseen): a
    # launcher there, multi-node or not, is not in `nnodes` / `master_addr`
    unseen: tuple[str, ...] = ()

    @property
    def multi_node(self) -> bool:
        return self.nnodes is None or self.nnodes > 1


def _int(text: str | None) -> int | None:
    try:
        # torchrun's --nnodes takes MIN:MAX; the job may grow to MAX nodes
        return int(str(text).split(":")[-1])
    except ValueError:
        return None


def launch_config(environ: Mapping[str, str], spec: Any = None, gpus: int | None = None,
                  gpus_error: str = "not read") -> LaunchConfig:
    """NNODES from the launch layers (--nnodes, swift's NNODES), else the environment;
    MASTER_ADDR from the first multi-node layer's --master_addr, else what the script
    leaves exported, else the environment (torchrun's default is 127.0.0.1). A layer
    that does not start on a node of `gpus` GPUs (NVML; None: not read, `gpus_error`
    why), such as llamafactory-cli's relaunch on one GPU, is left out (`Layer.starts`)."""
    if spec is not None and spec.unread:
        # the script was not read to its end: neither its launchers nor what it exports
        # are known (an address not known is never looked up)
        why = "the launch script (not read)"
        return LaunchConfig(None, why, f"{UNKNOWN_OPEN}{spec.unread}{UNKNOWN_CLOSE}", why,
                            None)
    nnodes: int | None = 1
    nnodes_from, addr, addr_from, maybe, stops = "", "", "", "", ""
    layers = [x for job in (spec.jobs if spec else ()) for x in job.distributed]
    multi = [(x, why) for x in layers if x.nnodes is None or x.nnodes > 1
             for starts, why in [x.starts(gpus, gpus_error)] if starts is not False]
    multi.sort(key=lambda pair: bool(pair[1]))  # one that surely starts first
    if multi:
        first, maybe = multi[0]
        nnodes, nnodes_from = first.nnodes, f"{first.launcher} --nnodes at {first.where}"
        if first.error:
            stops = f"{first.launcher} at {first.at}"
        if first.master_addr:
            addr, addr_from = first.master_addr, f"{first.launcher} --master_addr"
    elif environ.get("NNODES", "").strip():
        nnodes, nnodes_from = _int(environ["NNODES"]), "NNODES"
    if not addr:
        scripted = spec.variable("MASTER_ADDR") if spec else None
        if scripted:
            addr, addr_from = scripted, "MASTER_ADDR set by the launch script"
        elif environ.get("MASTER_ADDR"):
            addr, addr_from = environ["MASTER_ADDR"], "MASTER_ADDR"
    rank = (spec.variable("NODE_RANK") if spec else None) or environ.get("NODE_RANK")
    return LaunchConfig(nnodes, nnodes_from, addr.strip(), addr_from, rank, maybe, stops,
                        tuple(spec.unseen) if spec is not None else ())


@dataclass(frozen=True)
class Resolved:
    name: str
    addresses: tuple[str, ...]
    error: str = ""

    @property
    def loopback(self) -> bool:
        return bool(self.addresses) and all(is_loopback(a) for a in self.addresses)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return address == "localhost"


def resolve(name: str, timeout: float = RESOLVE_TIMEOUT_S) -> Resolved:
    """getaddrinfo as torch's TCPStore and gloo call it, bounded: a dead DNS server is an
    error after `timeout`, not a hang (the lookup thread is a daemon and is abandoned)."""
    box: dict[str, Any] = {}

    def lookup() -> None:
        try:
            box["infos"] = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            box["error"] = str(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return Resolved(name, (), f"no answer from the resolver within {timeout:g}s")
    if "error" in box:
        return Resolved(name, (), box["error"])
    return Resolved(name, tuple(dict.fromkeys(info[4][0] for info in box["infos"])))


def route_source(address: str) -> str | None:
    """The local address the kernel would use to reach `address` (a UDP connect sends
    nothing; it only asks the routing table)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((address, 9))
            source: str = sock.getsockname()[0]
            return source
    except OSError:
        return None


def interface_of(address: str) -> str | None:
    for name, addrs in psutil.net_if_addrs().items():
        if any(a.address.split("%")[0] == address for a in addrs):
            return name
    return None


def local_addresses() -> dict[str, list[str]]:
    return {name: [a.address.split("%")[0] for a in addrs
                   if a.family in (socket.AF_INET, socket.AF_INET6)]
            for name, addrs in psutil.net_if_addrs().items()}
