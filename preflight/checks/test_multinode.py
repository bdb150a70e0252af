"""Multi-node launch config on every node (static; also without `preflight cluster`).

Adapters: gather the facts, call the judge (`preflight/judges/multinode.py`), conclude.
"""

from __future__ import annotations

import socket

import pytest

from preflight.judges import multinode as judge
from preflight.launch.shell.model import UNKNOWN_OPEN
from preflight.plugin import Recorder
from preflight.probes import Node, multinode, netif
from preflight.profiles import Profile

pytestmark = pytest.mark.static


def _candidates() -> list[str]:
    return [i.name for i in netif.interfaces() if i.up and not i.loopback]


def _route_iface(addresses: tuple[str, ...]) -> str | None:
    for address in addresses:
        source = multinode.route_source(address)
        if source and (name := multinode.interface_of(source)):
            return name
    return None


def launch_config(node: Node) -> multinode.LaunchConfig:
    """The multi-node config; NVML's GPU count is read only when a layer's start hangs on
    it (llamafactory-cli relaunches under torchrun only with more than one GPU)."""
    spec = node.launch
    if spec is None or all(x.gpu_gate is None for x in spec.layers):
        return multinode.launch_config(node.environ, spec)
    snap = node.gpus
    return multinode.launch_config(node.environ, spec, None if snap.error else
                                   len(snap.gpus), snap.error or "")


def master_facts(node: Node) -> judge.MasterFacts:
    cfg = launch_config(node)
    known = cfg.master_addr and UNKNOWN_OPEN not in cfg.master_addr
    master = multinode.resolve(cfg.master_addr) if cfg.multi_node and known else None
    route = None
    if master and not master.error and not master.loopback:
        route = _route_iface(master.addresses)
    return judge.MasterFacts(
        cfg=cfg, addresses=multinode.local_addresses(), candidates=_candidates(),
        host=multinode.resolve(socket.gethostname()) if cfg.multi_node else
        multinode.Resolved(socket.gethostname(), ()),
        master=master, route=route, nccl_ifname=node.job_env("NCCL_SOCKET_IFNAME"),
        gloo_ifname=node.job_env("GLOO_SOCKET_IFNAME"))


@pytest.mark.pitfall("master-addr")
def test_master_addr(node: Node, profile: Profile, finding: Recorder) -> None:
    finding.conclude(judge.master_addr(master_facts(node)))


@pytest.mark.pitfall("gloo-ifname")
def test_gloo_socket_ifname(node: Node, profile: Profile, finding: Recorder) -> None:
    spec = node.job_env("GLOO_SOCKET_IFNAME")
    found = netif.interfaces() if spec is not None else []
    cfg = launch_config(node) if spec is not None else None
    facts = judge.GlooFacts(
        spec=spec, interfaces={i.name: i.up for i in found}, candidates=_candidates(),
        addresses={i.name: i.addresses for i in found},
        multi_node=cfg is not None and cfg.multi_node,
        maybe_multi="" if cfg is None else f"{cfg.nnodes_from or 'nnodes'} not known"
        if cfg.nnodes is None else f"{cfg.nnodes_from} starts only maybe: {cfg.maybe}"
        if cfg.maybe else "")
    finding.conclude(judge.gloo_ifname(facts))


