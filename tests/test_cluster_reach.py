"""cluster-reach across two real network namespaces joined by a veth pair (root only):
a listening port is reached, a closed one and a dropped one (nft, when installed) are
caught, and the evidence names the pair. Addresses are a private test range that exists
only inside the namespaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest
from support import REPO

from preflight.cluster.checks import reach

A, B = "10.213.0.1", "10.213.0.2"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture
def two_nodes():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to create network namespaces")
    tag = uuid.uuid4().hex[:6]
    na, nb = f"pfr-{tag}-a", f"pfr-{tag}-b"
    try:
        sh("ip", "netns", "add", na)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace here: {exc.stderr.strip()}")
    listener = None
    try:
        sh("ip", "netns", "add", nb)
        sh("ip", "link", "add", f"v{tag}a", "netns", na, "type", "veth", "peer", "name",
           f"v{tag}b", "netns", nb)
        for ns, dev, ip in ((na, f"v{tag}a", A), (nb, f"v{tag}b", B)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # node b listens on two ports until its stdin closes
        code = ("import sys\nfrom preflight.cluster.reach import Listener\n"
                "a, b = Listener(), Listener()\nprint(a.port, b.port, flush=True)\n"
                "sys.stdin.read()\n")
        listener = subprocess.Popen(["ip", "netns", "exec", nb, sys.executable, "-c", code],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    cwd=REPO)
        ports = [int(p) for p in listener.stdout.readline().split()]
        yield na, nb, ports
    finally:
        if listener is not None:
            listener.stdin.close()
            listener.wait(10)
        for ns in (na, nb):
            sh("ip", "netns", "del", ns, check=False)


def probe_from(ns: str, targets: list[tuple[str, str, int]]) -> list[dict]:
    code = ("import json, sys\nfrom preflight.cluster.reach import Target, probe\n"
            "print(json.dumps(probe([Target(*t) for t in json.loads(sys.argv[1])], 2.0)))")
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code,
                           json.dumps(targets)], capture_output=True, text=True, timeout=60,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_open_port_passes_and_a_closed_one_names_the_pair(two_nodes):
    na, _, (open_port, _) = two_nodes
    ok = reach({"node-a": probe_from(na, [("node-b", B, open_port)])}, {})
    assert ok.outcome == "passed" and ok.evidence["connections"] == 1
    closed = open_port + 1 if open_port < 65535 else open_port - 1
    bad = reach({"node-a": probe_from(na, [("node-b", B, open_port),
                                           ("MASTER_ADDR", B, closed)])}, {})
    assert bad.outcome == "failed" and bad.severity.label == "blocker"
    [failed] = bad.evidence["failed"]
    assert (failed["from"], failed["to"], failed["address"]) == (
        "node-a", "MASTER_ADDR", f"{B}:{closed}")
    assert "refused" in failed["error"]
    assert f"node-a -> MASTER_ADDR ({B}:{closed})" in bad.summary


def test_dropped_port_is_caught_within_the_bound(two_nodes):
    na, nb, (open_port, dropped) = two_nodes
    nft = shutil.which("nft")
    if nft is None:
        pytest.skip("nft (nftables) is not installed: cannot drop a port")
    rules = ("add table inet pfr\n"
             "add chain inet pfr input { type filter hook input priority 0; }\n"
             f"add rule inet pfr input tcp dport {dropped} drop\n")
    subprocess.run(["ip", "netns", "exec", nb, nft, "-f", "-"], input=rules, text=True,
                   check=True, timeout=30)
    results = probe_from(na, [("node-b", B, open_port), ("node-b:dropped", B, dropped)])
    found = reach({"node-a": results}, {})
    [failed] = found.evidence["failed"]
    assert failed["to"] == "node-b:dropped" and "no answer within 2s" in failed["error"]
    assert failed["ms"] < 2000 * 1.5
