"""Multi-node launch config: master-addr and gloo-ifname (judged on every node).

A multi-node job where each node rendezvous with itself, or where gloo picks an
interface the other nodes cannot reach, fails with `Gloo connectFullMesh failed` or hangs
at the first collective; none of it shows on a one-node run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from preflight.launch.shell.model import UNKNOWN_OPEN
from preflight.model import Kind, Problem, Verdict
from preflight.probes.multinode import LaunchConfig, Resolved
from preflight.probes.netif import select


@dataclass(frozen=True)
class MasterFacts:
    cfg: LaunchConfig
    addresses: Mapping[str, Sequence[str]]  # interface -> its addresses
    candidates: Sequence[str]  # interfaces up and not loopback
    host: Resolved  # what this node's hostname resolves to
    master: Resolved | None  # MASTER_ADDR resolved (None when unset)
    route: str | None  # the interface that routes to MASTER_ADDR
    nccl_ifname: str | None
    gloo_ifname: str | None


def master_addr(f: MasterFacts) -> Verdict:
    cfg = f.cfg
    if not cfg.multi_node:
        one = "one node: NNODES unset or 1 and no multi-node launcher"
        return Verdict(skip=one) if not cfg.unseen else _also_unseen(Verdict(ok=one), cfg)
    own = {a for addrs in f.addresses.values() for a in addrs}
    outward = [a for n in f.candidates for a in f.addresses.get(n, []) if ":" not in a]
    rank0 = cfg.node_rank in ("0", None)
    head = outward[0] if outward and rank0 else "<IP of the NODE_RANK=0 node>"
    v = Verdict(evidence=dict(
        nnodes=cfg.nnodes if cfg.nnodes is not None else "unknown",
        nnodes_from=cfg.nnodes_from, MASTER_ADDR=cfg.master_addr or None,
        master_addr_from=cfg.master_addr_from or None, NODE_RANK=cfg.node_rank,
        hostname=f.host.name, hostname_resolves_to=list(f.host.addresses)))
    if cfg.stops:
        # The launcher stops on its own arguments before any rendezvous: no address is
        # used, and the one it would use once fixed is not known; never a value the half-
        # parsed line suggests (torchrun's one-node rewrite to localhost).
        v.problems.append(Problem.unknown(
            f"MASTER_ADDR not judged: {cfg.stops} stops on its own arguments before any "
            "rendezvous (launcher-args names the error); fix the launch line first"))
        return v
    route = None
    addr = f.master
    if UNKNOWN_OPEN in cfg.master_addr:
        # The launch reading could not tell the address (an unknown word): say so, never
        # look the placeholder up in DNS.
        v.problems.append(Problem.unknown(
            f"MASTER_ADDR is not known: {cfg.master_addr} ({cfg.master_addr_from})"))
    elif not cfg.master_addr or addr is None:
        # torch/distributed/run.py: --master_addr defaults to 127.0.0.1
        v.problems.append(Problem(
            f"MASTER_ADDR is unset in a {cfg.nnodes or 'multi'}-node job: torchrun uses "
            "127.0.0.1, so each node waits for itself",
            f"export MASTER_ADDR={head}   # the same on every node"))
    else:
        v.evidence["master_addr_resolves_to"] = list(addr.addresses) or addr.error
        if addr.error:
            v.problems.append(Problem(
                f"MASTER_ADDR={cfg.master_addr} does not resolve: {addr.error}",
                f"export MASTER_ADDR={head}   # an IP avoids DNS altogether"))
        elif addr.loopback:
            v.problems.append(Problem(
                f"MASTER_ADDR={cfg.master_addr} is a loopback address "
                f"({', '.join(addr.addresses)}) in a multi-node job: each node rendezvous "
                "with itself (trains alone or hangs)",
                f"export MASTER_ADDR={head}   # the same on every node"))
        else:
            if cfg.node_rank == "0" and not set(addr.addresses) & own:
                v.problems.append(Problem(
                    f"NODE_RANK=0 hosts the rendezvous, but MASTER_ADDR={cfg.master_addr} is "
                    f"not an address of this node ({', '.join(sorted(own))})",
                    f"export MASTER_ADDR={head}   # on every node"))
            route = f.route
            v.evidence["route_interface"] = route
            nccl = f.nccl_ifname
            # NCCL ignores a value of one character or less (src/misc/socket.cc
            # ncclFindInterfaces: `strlen(env) > 1`).
            if nccl and len(nccl) > 1 and route and route not in select(nccl,
                                                                        sorted(f.addresses)):
                v.problems.append(Problem(
                    f"the interface routing to MASTER_ADDR ({route}) is not selected by "
                    f"NCCL_SOCKET_IFNAME={nccl}", f"export NCCL_SOCKET_IFNAME={route}"))
    # torch/csrc/distributed/c10d/ProcessGroupGloo.cpp createDefaultDevice: without
    # GLOO_SOCKET_IFNAME gloo binds the address the hostname resolves to; 127.0.1.1
    # (Debian's /etc/hosts) binds fine, so peers are told to connect to 127.0.1.1.
    if f.host.loopback and not f.gloo_ifname:
        iface = route or (list(f.candidates) or ["eth0"])[0]
        v.problems.append(Problem(
            f"this node's hostname {f.host.name} resolves to a loopback address "
            f"({', '.join(f.host.addresses)}): gloo tells the other nodes to connect there "
            "(`Gloo connectFullMesh failed`)",
            f"export GLOO_SOCKET_IFNAME={iface}   # or map {f.host.name} to its real IP in "
            "/etc/hosts"))
    if cfg.nnodes is None or cfg.maybe:
        # Multi-node is only a possibility here (--nnodes / NNODES not known, or the layer
        # that makes it multi-node may not start): what would block a multi-node job is
        # unknown, not a NO-GO.
        why = f"{cfg.nnodes_from or 'nnodes'} not known" if cfg.nnodes is None else \
            f"{cfg.nnodes_from} starts only maybe: {cfg.maybe}"
        v.problems = [p if p.kind is not Kind.BLOCKER else Problem.unknown(
            f"if the job is multi-node ({why}): {p.text}", p.fix, p.why) for p in v.problems]
    v.fix = f"export MASTER_ADDR={head}"
    v.ok = (f"MASTER_ADDR={cfg.master_addr} reachable through {route or '?'} for a "
            f"{cfg.nnodes}-node job")
    return _also_unseen(v, cfg)


def _also_unseen(v: Verdict, cfg: LaunchConfig) -> Verdict:
    """Where the launch script runs what preflight did not read, a launcher there may be
    multi-node (or use another MASTER_ADDR): what was read stays in the message, the
    verdict is UNKNOWN unless a blocker decides (judges.launch.also_unseen)."""
    if cfg.unseen:
        v.evidence["unseen"] = list(cfg.unseen)
        if v.of(Kind.BLOCKER):
            return v
        if not v.problems:  # its own fix is about what it read, which passed
            v.fix = ""
        v.problems.append(Problem.unknown(
            f"{v.ok} in what preflight read, but the launch script also runs what it could "
            "not read: " + "; ".join(cfg.unseen[:3]),
            why="a launcher started there (its --nnodes, its MASTER_ADDR) is not judged; to "
                "check that launch itself, give its line: --launch-cmd '<the launcher's "
                "line>'"))
    return v


@dataclass(frozen=True)
class GlooFacts:
    spec: str | None  # GLOO_SOCKET_IFNAME (None: unset)
    interfaces: Mapping[str, bool]  # name -> up
    candidates: Sequence[str]
    multi_node: bool
    # multi-node is only a possibility (nnodes not known, or the multi-node layer may not
    # start): why; "" when multi_node is decided
    maybe_multi: str = ""
    # name -> its IPv4/IPv6 addresses (netif.Interface.addresses); absent or None: not read
    addresses: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)


def gloo_ifname(f: GlooFacts) -> Verdict:
    spec = f.spec
    if spec is None:
        return Verdict(skip="GLOO_SOCKET_IFNAME unset (gloo binds the address the hostname "
                            "resolves to; see master-addr)")
    state = f.interfaces
    v = Verdict(evidence=dict(GLOO_SOCKET_IFNAME=spec,
                              interfaces={n: "up" if up else "down" for n, up in state.items()}))
    # torch/csrc/distributed/c10d/init.cpp (ProcessGroupGloo's constructor): the value is
    # split on ',' and each entry must be an interface's exact name (gloo's
    # createDeviceForInterface); a value of one character is ignored.
    names = [n.strip() for n in spec.split(",")]
    if len(spec) <= 1:
        v.skip = f"GLOO_SOCKET_IFNAME={spec!r} is ignored by torch (one character)"
        return v
    meant: list[str] = []
    nccl_syntax = spec.startswith(("^", "=")) or any(n not in state for n in names)
    if nccl_syntax:
        # What NCCL would have made of it: the right value for gloo, exact names.
        meant = [n for n in select(spec, sorted(state)) if state[n]]
        meant = [n for n in meant if not n.startswith("lo")] or meant
    bad = [n for n in names if n not in state]
    down = [n for n in names if n in state and not state[n]]
    # gloo takes an interface only through an AF_INET / AF_INET6 address of it: without one
    # it stops (gloo/transport/tcp/device.cc lookupAddrForIface: "Unable to find address
    # for: IFACE"); the fix never names such an interface
    bare = [n for n in names if state.get(n) and f.addresses.get(n) == ()]
    meant = [n for n in meant if f.addresses.get(n) != ()]
    usable = [c for c in f.candidates if f.addresses.get(c) != ()]
    v.fix = (f"export GLOO_SOCKET_IFNAME={','.join(meant)}" if nccl_syntax and meant else
             f"export GLOO_SOCKET_IFNAME={','.join(usable[:1]) or 'eth0'}")
    v.ok = f"GLOO_SOCKET_IFNAME={spec} names interfaces that are up"
    if spec.startswith(("^", "=")):
        v.problems.append(Problem(f"GLOO_SOCKET_IFNAME={spec} uses NCCL_SOCKET_IFNAME syntax; "
                                  "gloo takes exact interface names only"))
    elif bad:
        v.problems.append(Problem(
            f"GLOO_SOCKET_IFNAME names {', '.join(bad)}, which "
            f"{'is not an interface' if len(bad) == 1 else 'are not interfaces'} on this node"
            + (" (gloo takes exact names, not prefixes)" if nccl_syntax and meant else "")))
    if down:
        v.problems.append(Problem(f"{', '.join(down)} is down"))
    if bare:
        v.problems.append(Problem(
            f"GLOO_SOCKET_IFNAME names {', '.join(bare)}, which has no IPv4/IPv6 address: gloo "
            f"stops with `Unable to find address for: {bare[0]}`"))
    if f.multi_node and names and all(n.startswith("lo") for n in names):
        text = (f"GLOO_SOCKET_IFNAME={spec} is loopback in a multi-node job: the other nodes "
                "cannot reach it")
        v.problems.append(Problem.unknown(f"if the job is multi-node ({f.maybe_multi}): "
                                          f"{text}", v.fix) if f.maybe_multi else
                          Problem(text))
    return v
