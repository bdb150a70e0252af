"""Pure parts of the probes, on recorded or constructed data."""

from __future__ import annotations

import pytest

from preflight.model import Finding, Severity, verdict
from preflight.probes import netif, procs
from preflight.redact import Scrubber, redact_argv

NAMES = ["lo", "eth0", "eth1", "docker0", "ib0"]


@pytest.mark.parametrize("spec, selected", [
    ("eth", ["eth0", "eth1"]),
    ("=eth", []),
    ("=eth0", ["eth0"]),
    ("^lo,docker0", ["eth0", "eth1", "ib0"]),
    ("^=eth0", ["lo", "eth1", "docker0", "ib0"]),
    ("ib,eth1", ["eth1", "ib0"]),
    ("^", NAMES),
    ("", []),
])
def test_nccl_socket_ifname_syntax(spec, selected):
    assert netif.select(spec, NAMES) == selected


def _proc(pid, cmdline, name="python", ppid=1):
    return procs.ProcInfo(pid, ppid, name, "root", tuple(cmdline), 0.0)


def test_leftover_patterns_cover_ray_sglang_torchrun_swift():
    table = [
        _proc(10, ["/env/bin/raylet", "--node_ip_address=1.2.3.4"], name="raylet"),
        _proc(11, ["ray::RolloutWorker"], name="ray::RolloutWor"),
        _proc(12, ["python", "-m", "sglang.launch_server", "--port", "30000"]),
        _proc(13, ["sglang::scheduler_TP0"], name="sglang::schedul"),
        _proc(14, ["/env/bin/python", "/env/bin/torchrun", "--nproc_per_node", "4"]),
        _proc(15, ["/env/bin/python", "/env/bin/swift", "rlhf", "--rlhf_type", "grpo"]),
        _proc(16, ["python", "-m", "torch.distributed.run", "swift/cli/rlhf.py"]),
        _proc(17, ["vim", "notes.txt"], name="vim"),
        _proc(18, ["python", "default_worker.py"]),
    ]
    found = {p.pid: hit for p, hit in procs.leftovers(table, [], frozenset(), lambda pid: None)}
    assert found == {10: "raylet", 11: "ray::", 12: "sglang.launch_server",
                     13: "sglang::", 14: "torchrun", 15: "swift",
                     16: "torch.distributed.run", 18: "default_worker.py"}
    assert procs.leftovers(table, [], frozenset({10, 11, 12, 13, 14, 15, 16, 18}),
                           lambda pid: None) == []
    # The workload of another preflight that is still running is not a leftover.
    owned = procs.leftovers(table, [], frozenset(), lambda pid: 4242 if pid == 14 else None)
    assert 14 not in {p.pid for p, _ in owned}


def test_family_is_ancestors_and_descendants_not_siblings():
    table = [_proc(1, ["init"], ppid=0), _proc(5, ["bash"], ppid=1),
             _proc(6, ["pytest"], ppid=5), _proc(7, ["worker"], ppid=6),
             _proc(8, ["grandchild"], ppid=7), _proc(9, ["sibling"], ppid=5)]
    assert procs.family(6, table) == {1, 5, 6, 7, 8}


def test_redaction_by_shape_and_by_value():
    argv = ["swift", "--hf_token", "hf_abc", "--api-key=sk-1", "WANDB_API_KEY=xyz", "--lr", "1"]
    assert redact_argv(argv) == ["swift", "--hf_token", "***", "--api-key=***",
                                 "WANDB_API_KEY=***", "--lr", "1"]
    scrub = Scrubber(["s3cr3t-value"])
    assert scrub({"a": ["x s3cr3t-value y"], "s3cr3t-value": 1}) == {"a": ["x *** y"], "***": 1}
    words = Scrubber()
    words.add_mapping({"TRANSFORMERS_VERBOSITY": "error", "HF_TOKEN": "tok-123456"})
    assert words({"error": "error tok-123456 errors"}) == {"error": "*** *** errors"}


def test_verdict_rules():
    ok = Finding("a", "n1", severity=Severity.OK)
    warn = Finding("b", "n2", severity=Severity.WARNING)
    skipped = Finding("c", "n3", outcome="skipped", severity=Severity.INFO)
    blocker = Finding("d", "n4", outcome="failed", severity=Severity.BLOCKER)
    unknown = Finding("e", "n5", outcome="failed", severity=Severity.UNKNOWN)
    assert verdict([ok, warn, skipped]) == "GO"
    assert verdict([ok, blocker]) == "NO-GO"
    assert verdict([ok, unknown]) == "NO-GO"
    assert verdict([]) == "NO-GO"
    assert verdict([ok], complete=False) == "NO-GO"
    assert Finding.from_json(warn.to_json()) == warn


@pytest.mark.parametrize("model, name, hit", [
    ("A800", "NVIDIA A800-SXM4-80GB", True),
    ("H100", "NVIDIA H100 80GB HBM3", True),
    ("H20", "NVIDIA H20", True),
    ("H20", "NVIDIA H200", False),
    ("a800", "NVIDIA A800 80GB PCIe", True),
    ("A80", "NVIDIA A800-SXM4-80GB", False),
])
def test_gpu_model_is_matched_as_a_word(model, name, hit):
    from preflight.matching import model_matches

    assert model_matches(model, name) is hit
