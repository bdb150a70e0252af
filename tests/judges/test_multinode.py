"""The multi-node judges in-process: launch config, addresses and resolution in, outcome out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from preflight.judges import multinode as judge
from preflight.launch.spec import load
from preflight.probes.multinode import LaunchConfig, Resolved, launch_config

from .verdicts import judged

TWO = LaunchConfig(2, "NNODES", "10.0.0.1", "MASTER_ADDR", "0")
HOST = Resolved("node-a", ("10.0.0.1",))
FACTS = judge.MasterFacts(
    cfg=TWO, addresses={"lo": ["127.0.0.1"], "eth0": ["10.0.0.1"]}, candidates=["eth0"],
    host=HOST, master=Resolved("10.0.0.1", ("10.0.0.1",)), route="eth0", nccl_ifname=None,
    gloo_ifname=None)
UNKNOWN_NNODES = LaunchConfig(None, "torchrun --nnodes at run.sh:4", "", "", None)


@pytest.mark.parametrize("facts, kind, text, fix", [
    (FACTS, "ok", "MASTER_ADDR=10.0.0.1 reachable through eth0 for a 2-node job",
     "export MASTER_ADDR=10.0.0.1"),
    (replace(FACTS, cfg=LaunchConfig(1, "", "", "", None)), "skipped", "one node", ""),
    (replace(FACTS, cfg=replace(TWO, master_addr=""), master=None), "blocker",
     "MASTER_ADDR is unset in a 2-node job", "export MASTER_ADDR=10.0.0.1"),
    (replace(FACTS, master=Resolved("localhost", ("127.0.0.1",))), "blocker",
     "is a loopback address", "export MASTER_ADDR=10.0.0.1"),
    (replace(FACTS, master=Resolved("nohost", (), "Name or service not known")), "blocker",
     "does not resolve", "an IP avoids DNS"),
    (replace(FACTS, master=Resolved("10.0.0.9", ("10.0.0.9",))), "blocker",
     "is not an address of this node", "export MASTER_ADDR=10.0.0.1"),
    (replace(FACTS, nccl_ifname="ib"), "blocker", "not selected by NCCL_SOCKET_IFNAME=ib",
     "export NCCL_SOCKET_IFNAME=eth0"),
    (replace(FACTS, host=Resolved("node-a", ("127.0.1.1",))), "blocker",
     "resolves to a loopback address", "export GLOO_SOCKET_IFNAME=eth0"),
    (replace(FACTS, host=Resolved("node-a", ("127.0.1.1",)), gloo_ifname="eth0"), "ok", "", ""),
    # The launch reading could not tell the address: unknown, never a DNS lookup of it.
    (replace(FACTS, cfg=replace(TWO, master_addr="⟨$PET_MASTER_ADDR⟩"), master=None),
     "unknown", "MASTER_ADDR is not known: ⟨$PET_MASTER_ADDR⟩", ""),
    # nnodes not known (e.g. an eval before torchrun): what would block is unknown.
    (replace(FACTS, cfg=UNKNOWN_NNODES, master=None), "unknown",
     "if the job is multi-node (torchrun --nnodes at run.sh:4 not known): MASTER_ADDR is unset",
     "export MASTER_ADDR=10.0.0.1"),
])
def test_master_addr(facts: judge.MasterFacts, kind: str, text: str, fix: str) -> None:
    out = judged(judge.master_addr(facts))
    assert out.kind == kind, out
    assert text in out.text, out
    assert fix in out.fix, out


GLOO = judge.GlooFacts("eth0", {"lo": True, "eth0": True, "eth1": False}, ["eth0"], False)


@pytest.mark.parametrize("facts, kind, text, fix", [
    (GLOO, "ok", "GLOO_SOCKET_IFNAME=eth0 names interfaces that are up", ""),
    (replace(GLOO, spec=None), "skipped", "GLOO_SOCKET_IFNAME unset", ""),
    (replace(GLOO, spec="x"), "skipped", "ignored by torch (one character)", ""),
    (replace(GLOO, spec="^lo,docker"), "blocker", "uses NCCL_SOCKET_IFNAME syntax",
     "export GLOO_SOCKET_IFNAME=eth0"),
    (replace(GLOO, spec="eth"), "blocker", "eth, which is not an interface on this node "
     "(gloo takes exact names, not prefixes)", "export GLOO_SOCKET_IFNAME=eth0"),
    (replace(GLOO, spec="eth1"), "blocker", "eth1 is down", "export GLOO_SOCKET_IFNAME=eth0"),
    (replace(GLOO, spec="lo", multi_node=True), "blocker", "is loopback in a multi-node job",
     "export GLOO_SOCKET_IFNAME=eth0"),
    (replace(GLOO, spec="lo"), "ok", "", ""),
    # multi-node only maybe (nnodes not known, a relaunch that may not start): unknown
    (replace(GLOO, spec="lo", multi_node=True, maybe_multi="torchrun --nnodes at run.sh:3 "
             "not known"), "unknown", "if the job is multi-node (torchrun --nnodes at "
     "run.sh:3 not known): GLOO_SOCKET_IFNAME=lo is loopback", "export GLOO_SOCKET_IFNAME=eth0"),
])
def test_gloo_ifname(facts: judge.GlooFacts, kind: str, text: str, fix: str) -> None:
    out = judged(judge.gloo_ifname(facts))
    assert out.kind == kind, out
    assert text in out.text, out
    assert fix in out.fix, out


# llamafactory-cli train relaunches under `torchrun --nnodes $NNODES` only with more than
# one visible GPU or FORCE_TORCHRUN (LLaMA-Factory launcher.py:61): the node's GPU count
# decides whether NNODES=2 makes this a multi-node job.
LMF = "NNODES=2 MASTER_PORT=29501 llamafactory-cli train x.yaml"


@pytest.mark.parametrize("gpus, kind, text", [
    (1, "skipped", "one node"),
    (2, "blocker", "MASTER_ADDR=127.0.0.1 is a loopback address"),
    (None, "unknown", "if the job is multi-node (torchrun (relaunched by llamafactory-cli "
     "train) --nnodes at <--launch-cmd>:1 starts only maybe: llamafactory-cli train "
     "relaunches itself under torchrun only with more than one GPU visible"),
], ids=["one GPU", "two GPUs", "count not read"])
def test_master_addr_behind_a_relaunch_the_gpu_count_decides(gpus, kind, text):
    spec = load(None, LMF, {"PATH": "/usr/bin:/bin", "HOME": "/root"}, cwd="/")
    cfg = launch_config({}, spec, gpus, "NVML unavailable: NVML Shared Library Not Found")
    facts = replace(FACTS, cfg=cfg, master=Resolved("127.0.0.1", ("127.0.0.1",)))
    out = judged(judge.master_addr(facts))
    assert out.kind == kind, out
    assert text in out.text, out
    if gpus is None:
        assert "could not be read (NVML unavailable" in out.text, out


@pytest.mark.parametrize("cmd, env", [
    ("torchrun --nnodes=2:1 --nproc-per-node=1 train.py", {}),
    ("torchrun --nnodes=2:1 --master-addr=10.0.0.1 train.py", {"MASTER_ADDR": "10.0.0.1"}),
    ("torchrun --nnodes=4 --nproc-per-node=abc train.py", {}),
], ids=["reversed nnodes", "reversed nnodes with an address", "bad nproc"])
def test_master_addr_of_a_launcher_that_stops_on_its_arguments_is_not_judged(cmd, env):
    """torchrun stops on its own arguments before any rendezvous (torch/distributed/run.py
    :842 `config_from_args`, after the one-node rewrite to localhost:0 at :1004-1011): it
    has no master address, and whatever it would have met at is not known; launcher-args
    reports the stop. Never a value the real tool would not produce (localhost here)."""
    spec = load(None, cmd, {"PATH": "/usr/bin:/bin", "HOME": "/root"}, cwd="/")
    cfg = launch_config(env, spec)
    assert cfg.master_addr != "localhost", cfg
    facts = replace(FACTS, cfg=cfg, master=Resolved("10.0.0.1", ("10.0.0.1",)))
    out = judged(judge.master_addr(facts))
    assert out.kind == "unknown", out
    assert "torchrun at <--launch-cmd>:1 stops on its own arguments" in out.text, out
    assert "launcher-args" in out.text and "localhost" not in out.text, out


def test_master_addr_one_character_nccl_ifname_is_ignored_like_nccl_does() -> None:
    # NVIDIA/nccl src/misc/socket.cc ncclFindInterfaces reads it only when strlen > 1
    facts = replace(FACTS, route="ib0", addresses={"lo": ["127.0.0.1"], "ib0": ["10.0.0.1"]},
                    nccl_ifname="e")
    assert judged(judge.master_addr(facts)).kind == "ok"
    assert judged(judge.master_addr(replace(facts, nccl_ifname="eth"))).kind == "blocker"
