"""Multi-node launch config, judged on every node (static; also without `preflight cluster`).

A multi-node job where each node rendezvous with itself, or where gloo picks an
interface the other nodes cannot reach, fails with `Gloo connectFullMesh failed` or hangs
at the first collective; none of it shows on a one-node run.
"""

from __future__ import annotations

import socket

import pytest

from preflight.probes import multinode, netif

pytestmark = pytest.mark.static


def _candidates() -> list[str]:
    return [i.name for i in netif.interfaces() if i.up and not i.loopback]


def _route_iface(addresses: tuple[str, ...]) -> str | None:
    for address in addresses:
        source = multinode.route_source(address)
        if source and (name := multinode.interface_of(source)):
            return name
    return None


# -- master-addr -----------------------------------------------------------------------


@pytest.mark.pitfall("master-addr")
def test_master_addr(node, profile, finding):
    cfg = multinode.launch_config(node.environ, node.launch)
    if not cfg.multi_node:
        finding.skip("one node: NNODES unset or 1 and no multi-node launcher")
    mine = multinode.local_addresses()
    own = {a for addrs in mine.values() for a in addrs}
    outward = [a for n in _candidates() for a in mine.get(n, []) if ":" not in a]
    rank0 = cfg.node_rank in ("0", None)
    head = outward[0] if outward and rank0 else "<IP of the NODE_RANK=0 node>"
    host = multinode.resolve(socket.gethostname())
    finding.evidence(nnodes=cfg.nnodes if cfg.nnodes is not None else "unknown",
                     nnodes_from=cfg.nnodes_from, MASTER_ADDR=cfg.master_addr or None,
                     master_addr_from=cfg.master_addr_from or None, NODE_RANK=cfg.node_rank,
                     hostname=host.name, hostname_resolves_to=list(host.addresses))
    problems, fixes = [], []
    route = None
    if not cfg.master_addr:
        # torch/distributed/run.py: --master_addr defaults to 127.0.0.1
        problems.append(f"MASTER_ADDR is unset in a {cfg.nnodes or 'multi'}-node job: "
                        "torchrun uses 127.0.0.1, so each node waits for itself")
        fixes.append(f"export MASTER_ADDR={head}   # the same on every node")
    else:
        addr = multinode.resolve(cfg.master_addr)
        finding.evidence(master_addr_resolves_to=list(addr.addresses) or addr.error)
        if addr.error:
            problems.append(f"MASTER_ADDR={cfg.master_addr} does not resolve: {addr.error}")
            fixes.append(f"export MASTER_ADDR={head}   # an IP avoids DNS altogether")
        elif addr.loopback:
            problems.append(f"MASTER_ADDR={cfg.master_addr} is a loopback address "
                            f"({', '.join(addr.addresses)}) in a multi-node job: each node "
                            "rendezvous with itself (trains alone or hangs)")
            fixes.append(f"export MASTER_ADDR={head}   # the same on every node")
        else:
            if cfg.node_rank == "0" and not set(addr.addresses) & own:
                problems.append(f"NODE_RANK=0 hosts the rendezvous, but MASTER_ADDR="
                                f"{cfg.master_addr} is not an address of this node "
                                f"({', '.join(sorted(own))})")
                fixes.append(f"export MASTER_ADDR={head}   # on every node")
            route = _route_iface(addr.addresses)
            finding.evidence(route_interface=route)
            nccl = node.environ.get("NCCL_SOCKET_IFNAME")
            if nccl and route and route not in netif.select(nccl, sorted(mine)):
                problems.append(f"the interface routing to MASTER_ADDR ({route}) is not "
                                f"selected by NCCL_SOCKET_IFNAME={nccl}")
                fixes.append(f"export NCCL_SOCKET_IFNAME={route}")
    # torch/csrc/distributed/c10d/ProcessGroupGloo.cpp createDefaultDevice: without
    # GLOO_SOCKET_IFNAME gloo binds the address the hostname resolves to; 127.0.1.1
    # (Debian's /etc/hosts) binds fine, so peers are told to connect to 127.0.1.1.
    if host.loopback and not node.environ.get("GLOO_SOCKET_IFNAME"):
        iface = route or (_candidates() or ["eth0"])[0]
        problems.append(f"this node's hostname {host.name} resolves to a loopback address "
                        f"({', '.join(host.addresses)}): gloo tells the other nodes to "
                        "connect there (`Gloo connectFullMesh failed`)")
        fixes.append(f"export GLOO_SOCKET_IFNAME={iface}   # or map {host.name} to its real "
                     "IP in /etc/hosts")
    finding.fix("\n".join(dict.fromkeys(fixes)) or f"export MASTER_ADDR={head}")
    finding.summary(f"MASTER_ADDR={cfg.master_addr} reachable through {route or '?'} for a "
                    f"{cfg.nnodes}-node job")
    assert not problems, "; ".join(problems)


# -- gloo-ifname -----------------------------------------------------------------------


@pytest.mark.pitfall("gloo-ifname")
def test_gloo_socket_ifname(node, profile, finding):
    spec = node.environ.get("GLOO_SOCKET_IFNAME")
    if spec is None:
        finding.skip("GLOO_SOCKET_IFNAME unset (gloo binds the address the hostname "
                     "resolves to; see master-addr)")
    found = netif.interfaces()
    state = {i.name: i.up for i in found}
    finding.evidence(GLOO_SOCKET_IFNAME=spec,
                     interfaces={i.name: "up" if i.up else "down" for i in found})
    # torch/csrc/distributed/c10d/init.cpp (ProcessGroupGloo's constructor): the value is
    # split on ',' and each entry must be an interface's exact name (gloo's
    # createDeviceForInterface); a value of one character is ignored.
    names = [n.strip() for n in spec.split(",")]
    if len(spec) <= 1:
        finding.skip(f"GLOO_SOCKET_IFNAME={spec!r} is ignored by torch (one character)")
    meant: list[str] = []
    nccl_syntax = spec.startswith(("^", "=")) or any(n not in state for n in names)
    if nccl_syntax:
        # What NCCL would have made of it: the right value for gloo, exact names.
        meant = [n for n in netif.select(spec, sorted(state)) if state[n]]
        meant = [n for n in meant if not n.startswith("lo")] or meant
    bad = [n for n in names if n not in state]
    down = [n for n in names if n in state and not state[n]]
    if nccl_syntax and meant:
        finding.fix(f"export GLOO_SOCKET_IFNAME={','.join(meant)}")
    else:
        finding.fix(f"export GLOO_SOCKET_IFNAME={','.join(_candidates()[:1]) or 'eth0'}")
    finding.summary(f"GLOO_SOCKET_IFNAME={spec} names interfaces that are up")
    problems = []
    if spec.startswith(("^", "=")):
        problems.append(f"GLOO_SOCKET_IFNAME={spec} uses NCCL_SOCKET_IFNAME syntax; gloo "
                        "takes exact interface names only")
    elif bad:
        problems.append(f"GLOO_SOCKET_IFNAME names {', '.join(bad)}, which "
                        f"{'is not an interface' if len(bad) == 1 else 'are not interfaces'}"
                        " on this node" + (" (gloo takes exact names, not prefixes)"
                                           if nccl_syntax and meant else ""))
    if down:
        problems.append(f"{', '.join(down)} is down")
    cfg = multinode.launch_config(node.environ, node.launch)
    if cfg.multi_node and names and all(n.startswith("lo") for n in names):
        problems.append(f"GLOO_SOCKET_IFNAME={spec} is loopback in a multi-node job: the "
                        "other nodes cannot reach it")
    assert not problems, "; ".join(problems)
