"""master-addr and gloo-ifname, run for real through the plugin; gloo-ifname differentially
against torch's own gloo (ProcessGroupGloo reading GLOO_SOCKET_IFNAME)."""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil
import pytest
from support import base_env

from preflight.probes import multinode, netif


def outward() -> tuple[str, str]:
    """(interface, IPv4) of an interface that is up and not loopback; skip without one."""
    addrs = psutil.net_if_addrs()
    for iface in netif.interfaces():
        if iface.up and not iface.loopback:
            for a in addrs.get(iface.name, []):
                if a.family == socket.AF_INET:
                    return iface.name, a.address
    pytest.skip("no interface with an IPv4 address besides loopback")


def run_checks(run_preflight, *extra: str, **env: str):
    return run_preflight("-m", "cpu", "--check", "master-addr", "--check", "gloo-ifname",
                         *extra, env=base_env(**env))


HOST_LOOPBACK = multinode.resolve(socket.gethostname()).loopback


def test_master_addr_skips_on_one_node(run_preflight):
    run = run_checks(run_preflight, MASTER_ADDR="127.0.0.1")
    assert run.one("master-addr")["outcome"] == "skipped"
    assert run.returncode == 0


@pytest.mark.parametrize("addr, says", [
    ("127.0.0.1", "is a loopback address"),
    ("localhost", "is a loopback address"),
    ("", "MASTER_ADDR is unset in a 2-node job"),
    ("no-such-node.invalid", "does not resolve"),
])
def test_master_addr_fails_for_an_address_other_nodes_cannot_use(run_preflight, addr, says):
    iface, _ = outward()
    run = run_checks(run_preflight, NNODES="2", NODE_RANK="1", MASTER_ADDR=addr or None,
                     GLOO_SOCKET_IFNAME=iface)
    found = run.one("master-addr")
    assert run.returncode == 1
    assert found["severity"] == "blocker"
    assert says in found["summary"]
    # on a node other than rank 0 the head's IP is not known here: the command goes to `why`
    assert (found["fix"] + found["why"]).startswith("export MASTER_ADDR=")


def test_master_addr_passes_with_this_nodes_address_and_fails_when_rank0_is_elsewhere(
        run_preflight):
    iface, ip = outward()
    good = run_checks(run_preflight, NNODES="2", NODE_RANK="0", MASTER_ADDR=ip,
                      GLOO_SOCKET_IFNAME=iface)
    assert good.returncode == 0, good.output[-2000:]
    assert good.one("master-addr")["evidence"]["route_interface"] == iface
    # node 0 must host the rendezvous: another host's address is wrong there
    other = run_checks(run_preflight, NNODES="2", NODE_RANK="0", MASTER_ADDR="192.0.2.254"
                       if ip != "192.0.2.254" else "198.51.100.7", GLOO_SOCKET_IFNAME=iface)
    assert other.returncode == 1
    assert "is not an address of this node" in other.one("master-addr")["summary"]
    assert other.one("master-addr")["fix"].startswith(f"export MASTER_ADDR={ip}")


def test_master_addr_fails_when_nccl_ifname_excludes_the_route(run_preflight):
    iface, ip = outward()
    run = run_checks(run_preflight, NNODES="2", NODE_RANK="0", MASTER_ADDR=ip,
                     GLOO_SOCKET_IFNAME=iface, NCCL_SOCKET_IFNAME=f"^{iface}")
    found = run.one("master-addr")
    assert run.returncode == 1
    assert f"({iface}) is not selected by NCCL_SOCKET_IFNAME=^{iface}" in found["summary"]
    assert f"export NCCL_SOCKET_IFNAME={iface}" in found["fix"]


def test_master_addr_reads_the_launch_script(run_preflight, tmp_path):
    iface, ip = outward()
    script = tmp_path / "run.sh"
    script.write_text("torchrun --nnodes 2 --node_rank 0 --master_addr 127.0.0.1 "
                      "--master_port 29555 --nproc_per_node 1 train.py\n")
    (tmp_path / "train.py").write_text("")
    run = run_checks(run_preflight, "--launch-script", str(script), GLOO_SOCKET_IFNAME=iface)
    found = run.one("master-addr")
    assert found["severity"] == "blocker", run.output[-2000:]
    assert found["evidence"]["master_addr_from"] == "torchrun --master_addr"
    assert "run.sh:1" in found["evidence"]["nnodes_from"]
    script.write_text(script.read_text().replace("127.0.0.1", ip))
    assert run_checks(run_preflight, "--launch-script", str(script),
                      GLOO_SOCKET_IFNAME=iface).one("master-addr")["outcome"] == "passed"


def test_hostname_on_loopback_needs_gloo_ifname(run_preflight):
    iface, ip = outward()
    run = run_checks(run_preflight, NNODES="2", NODE_RANK="0", MASTER_ADDR=ip)
    found = run.one("master-addr")
    # whichever way this machine's /etc/hosts maps its name, the check says so
    if HOST_LOOPBACK:
        assert found["severity"] == "blocker"
        assert "resolves to a loopback address" in found["summary"]
        assert f"export GLOO_SOCKET_IFNAME={iface}" in found["fix"]
    else:
        assert found["outcome"] == "passed", found


def test_ifnames_the_launch_script_exports_are_the_jobs(run_preflight, tmp_path):
    # `export GLOO_SOCKET_IFNAME=eth0` inside the launch script is what the job gets:
    # "GLOO_SOCKET_IFNAME is unset" (master-addr, gloo-ifname) was a false reading
    iface, ip = outward()
    script = tmp_path / "run.sh"
    script.write_text(f"export GLOO_SOCKET_IFNAME=${{GLOO_SOCKET_IFNAME:-{iface}}}\n"
                      "export NCCL_SOCKET_IFNAME=bogus0\n"
                      f"torchrun --nnodes 2 --node_rank 0 --master_addr {ip} t.py\n")
    run = run_checks(run_preflight, "--launch-script", str(script), "--check", "nccl-ifname",
                     GLOO_SOCKET_IFNAME=None, NCCL_SOCKET_IFNAME=None)
    gloo = run.one("gloo-ifname")
    assert gloo["outcome"] == "passed", gloo
    assert "loopback" not in run.one("master-addr")["summary"]
    nccl = run.one("nccl-ifname")
    assert nccl["severity"] == "blocker" and "bogus0" in nccl["summary"], nccl


GLOO_ORACLE = r"""
import json, os, sys, torch.distributed as d
out = {}
for port, value in zip(sys.argv[1::2], sys.argv[2::2]):
    os.environ["GLOO_SOCKET_IFNAME"] = value  # read when the gloo group is constructed
    try:
        d.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0,
                             world_size=1)
        d.destroy_process_group()
        out[value] = True
    except Exception:
        out[value] = False
print(json.dumps(out))
"""


def gloo_accepts(*values: str) -> dict[str, bool]:
    """torch's own answer, one torch import for all values: a one-process gloo group per
    GLOO_SOCKET_IFNAME value (ProcessGroupGloo builds its devices from it)."""
    import json

    from preflight.probes.ports import free_port

    argv = [a for v in values for a in (str(free_port()), v)]
    proc = subprocess.run([sys.executable, "-c", GLOO_ORACLE, *argv], env=base_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_gloo_ifname_agrees_with_torch(run_preflight):
    pytest.importorskip("torch")
    iface, _ = outward()
    down = [i.name for i in netif.interfaces() if not i.up]
    values = [iface, "^lo", iface[:-1], "nosuch0", *down[:1]]
    fixes = {}
    ours = {}
    for value in values:
        found = run_checks(run_preflight, GLOO_SOCKET_IFNAME=value).one("gloo-ifname")
        ours[value] = found["outcome"] == "passed"
        fixes[value] = found["fix"].removeprefix("export GLOO_SOCKET_IFNAME=")
    # the fix for NCCL syntax and for a prefix is a value gloo takes
    suggested = {fixes["^lo"], fixes[iface[:-1]]}
    torch_says = gloo_accepts(*values, *suggested, f"{iface},lo", f"={iface}")
    assert ours == {v: torch_says[v] for v in values}
    assert all(torch_says[v] for v in suggested) and all(iface in v for v in suggested)
    assert not torch_says[f"={iface}"] and torch_says[f"{iface},lo"]
    # a loopback-only value passes one node but not a multi-node job
    multi = run_checks(run_preflight, GLOO_SOCKET_IFNAME="lo", NNODES="2")
    assert "loopback in a multi-node job" in multi.one("gloo-ifname")["summary"]
