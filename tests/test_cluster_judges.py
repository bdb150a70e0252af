"""The cross-node judges in-process, table-driven: node reports (or a cross-node run) in,
the Verdict's problems, fixes and skip out; and `conclude`, which turns a Verdict into the
cluster report's Finding the way Recorder.conclude ends a node check. No subprocess."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from preflight import fixes
from preflight.cluster import checks, merge
from preflight.cluster.checks import CollectiveFacts, CollectiveRun, NodeReport
from preflight.model import Kind, Problem, Severity, Verdict


def report(host: str, ip: str, gpus: int = 4, env: dict[str, str] | None = None,
           node_id: str | None = None, **versions: str | None) -> dict[str, Any]:
    facts = {f: "1" for f in checks.VERSION_FACTS}
    facts["gpu_model"] = "NVIDIA A800-SXM4-80GB"
    facts.update(versions)
    return {"schema": 1, "verdict": "GO", "complete": True, "profile": "a800", "checks": [],
            "node": {"hostname": host, "node_id": node_id, "ips": {"eth0": [ip]},
                     "versions": facts, "gpu_count": gpus, "launch_env": env or {}}}


def nodes(*reports: dict[str, Any]) -> list[NodeReport]:
    out = [merge.from_report(r, f"reports/{r['node']['hostname']}/preflight-report.json")
           for r in reports]
    merge.name_nodes(out)
    return out


A, B, C = report("a", "10.0.0.1"), report("b", "10.0.0.2"), report("c", "10.0.0.3")
JOB = {"NNODES": "2", "MASTER_ADDR": "10.0.0.1"}


@pytest.mark.parametrize("case, verdict, kinds, text, fix", [
    ("versions agree", checks.judge_versions(nodes(A, B)), [], "", ""),
    ("a version skew names the fact, the odd node and the pip fix",
     checks.judge_versions(nodes(A, B, report("c", "10.0.0.3", ray="2.12.0"))),
     [Kind.BLOCKER], "ray differs: 1 on most nodes, 2.12.0 on c", "pip install 'ray==1'   # on c"),
    ("a torch build with a local label: its wheel index, PyPI has no '2.13.0+cpu'",
     checks.judge_versions(nodes(report("a", "10.0.0.1", torch="2.13.0+cpu"),
                                 report("b", "10.0.0.2", torch="2.13.0+cpu"),
                                 report("c", "10.0.0.3", torch="2.5.1+cu124"))),
     [Kind.BLOCKER], "torch differs: 2.13.0+cpu on most nodes, 2.5.1+cu124 on c",
     "pip install 'torch==2.13.0+cpu' --index-url https://download.pytorch.org/whl/cpu   # on c"),
    ("another preflight on one node: the distribution is pytest-preflight ('preflight' on "
     "PyPI is an unrelated tool)",
     checks.judge_versions(nodes(A, B, report("c", "10.0.0.3", preflight="0.0.9"))),
     [Kind.BLOCKER], "preflight differs: 1 on most nodes, 0.0.9 on c",
     "pip install 'pytest-preflight==1'   # on c"),
    ("allowed to differ", checks.judge_versions(
        nodes(A, B, report("c", "10.0.0.3", ray="2.12.0")), {"ray"}), [], "", ""),
    ("a node without facts cannot be compared",
     checks.judge_versions(nodes(A, {"schema": 1, "verdict": "GO", "checks": [],
                                     "node": {"hostname": "old"}})),
     [Kind.UNKNOWN], "no node facts in the report of old",
     "pip install -U pytest-preflight   # on"),
    ("a node short of the profile's GPUs", checks.judge_gpus(
        nodes(A, report("b", "10.0.0.2", gpus=3)), 4, "A800"),
     [Kind.BLOCKER], "b has 3 GPU(s), 4 expected", "preflight info   # on b"),
    ("two nodes declare one NODE_RANK (a cluster run of one job)", checks.judge_nodes(nodes(
        report("a", "10.0.0.1", env=JOB | {"NODE_RANK": "0"}),
        report("b", "10.0.0.2", env=JOB | {"NODE_RANK": "0"}))),
     [Kind.BLOCKER], "NODE_RANK=0 on a, b", 'export NODE_RANK="${SLURM_NODEID:?'),
    ("the same node twice", checks.judge_nodes(nodes(
        report("a", "10.0.0.1", node_id="n1"), report("a", "10.0.0.1", node_id="n1"))),
     [Kind.BLOCKER], "the same node reported 2 times", "reports/$(hostname)"),
    ("NNODES is not the number of reports", checks.judge_nodes(nodes(
        report("a", "10.0.0.1", env={"NNODES": "3"}), report("b", "10.0.0.2",
                                                              env={"NNODES": "3"}))),
     [Kind.BLOCKER], "NNODES=3 but 2 node report(s)", "export NNODES=2"),
    ("a loopback MASTER_ADDR in a 2-node job", checks.judge_master_addr(nodes(
        report("a", "10.0.0.1", env=JOB | {"MASTER_ADDR": "127.0.0.1"}),
        report("b", "10.0.0.2", env=JOB | {"MASTER_ADDR": "127.0.0.1"}))),
     [Kind.BLOCKER], "MASTER_ADDR=127.0.0.1 is a loopback address",
     "hostname -I   # on the NODE_RANK=0 node"),
    ("MASTER_ADDR is node a on both", checks.judge_master_addr(nodes(
        report("a", "10.0.0.1", env=JOB), report("b", "10.0.0.2", env=JOB))), [], "", ""),
    ("MASTER_ADDR exported on no node (the launch passes --master_addr): not a finding",
     checks.judge_master_addr(nodes(report("a", "10.0.0.1", env={"NNODES": "2"}),
                                    report("b", "10.0.0.2", env={"NNODES": "2"}))),
     [], "", ""),
    ("MASTER_ADDR exported on one node only", checks.judge_master_addr(nodes(
        report("a", "10.0.0.1", env=JOB), report("b", "10.0.0.2", env={"NNODES": "2"}))),
     [Kind.BLOCKER], "MASTER_ADDR is 10.0.0.1 on a but unset on b",
     "export MASTER_ADDR=10.0.0.1"),
    ("two MASTER_ADDRs: the fix is the NODE_RANK 0 node's, not the first in sort order",
     checks.judge_master_addr(nodes(
         report("a", "10.0.0.9", env={"NNODES": "2", "NODE_RANK": "0",
                                      "MASTER_ADDR": "10.0.0.9"}),
         report("b", "10.0.0.10", env={"NNODES": "2", "NODE_RANK": "1",
                                       "MASTER_ADDR": "10.0.0.10"}))),
     [Kind.BLOCKER], "MASTER_ADDR differs between nodes: 10.0.0.10 on b, 10.0.0.9 on a",
     "export MASTER_ADDR=10.0.0.9   # on every node"),
    ("a failed connection names the pair", checks.judge_reach(
        {"a": [{"to": "b", "address": "10.0.0.2:7", "ok": False, "error": "refused",
                "ms": 1.0}]}, {}),
     [Kind.BLOCKER], "a -> b (10.0.0.2:7): refused", "iptables -I INPUT"),
    ("a node that could not probe", checks.judge_reach({}, {"b": "its probe failed"}),
     [Kind.UNKNOWN], "could not probe from b (its probe failed)", "ray status"),
])
def test_cross_node_judges(case: str, verdict: Verdict, kinds: list[Kind], text: str,
                           fix: str) -> None:
    assert [p.kind for p in verdict.problems] == kinds, case
    assert text in verdict.message, (case, verdict.message)
    assert fix in "\n".join(p.fix for p in verdict.problems), case
    for problem in verdict.problems:
        # the reach fix without the source's address is the one kept as comments
        if "(the address of" not in problem.fix:
            assert_runs(problem.fix)
    if not kinds:
        assert verdict.ok or verdict.skip


def test_a_cluster_fix_is_split_as_a_node_fix_keeping_where_to_run_each_line() -> None:
    """A cross-node check's fix went into the report as written: two commands on one line,
    a sentence as a command line, a `; ` in a comment starting a line bash never runs. It
    is split as a node check's is (fixes.split); the comment saying where to run a line
    (`# on NODE`, `# left by Slurm job 70`) stays on each of its commands."""
    found = checks.conclude("cluster-gpus", Verdict([Problem(
        "x", "nvidia-smi; ray status   # on node-a: a GPU node given no GPU; rm -rf /x\n"
        "see the runbook first\npip install 'torch==2.5'  # the same torch everywhere")]))
    assert found.fix == ("nvidia-smi   # on node-a: a GPU node given no GPU; rm -rf /x\n"
                         "ray status   # on node-a: a GPU node given no GPU; rm -rf /x\n"
                         "pip install 'torch==2.5'   # the same torch everywhere")
    assert found.why == "see the runbook first"


def test_one_node_job_skips_master_addr_and_no_probe_skips_reach() -> None:
    assert checks.judge_master_addr(nodes(A, B)).skip.startswith("not a multi-node job")
    assert checks.judge_reach({}, {}).skip == "no node to probe"


@pytest.mark.parametrize("verdict, outcome, severity, summary, fix", [
    (Verdict(ok="fine"), "passed", Severity.OK, "fine", ""),
    (Verdict(skip="nothing to do"), "skipped", Severity.INFO, "nothing to do", ""),
    (Verdict([Problem("x", "ray status"), Problem("y", "ray status"),
              Problem.unknown("u", "nvidia-smi -L")]),
     "failed", Severity.BLOCKER, "x; y", "ray status"),
    (Verdict([Problem.unknown("u", "nvidia-smi -L"), Problem.warning("w", "preflight info")]),
     "failed", Severity.UNKNOWN, "u", "nvidia-smi -L"),
    (Verdict([Problem.warning("w", "preflight info")]), "passed", Severity.WARNING, "w",
     "preflight info"),
    (Verdict([Problem("x")], headline="bad", fix="preflight list"), "failed",
     Severity.BLOCKER, "bad: x", "preflight list"),
])
def test_conclude_ends_a_cluster_check_as_recorder_conclude_ends_a_node_check(
        verdict: Verdict, outcome: str, severity: Severity, summary: str, fix: str) -> None:
    found = checks.conclude("cluster-nodes", verdict)
    assert (found.outcome, found.severity, found.summary, found.fix) == \
        (outcome, severity, summary, fix)
    assert found.check == "cluster-nodes" and found.runbook.endswith("cluster-nodes.md")


# -- cluster-allreduce ------------------------------------------------------------------


def answer(ranks: list[tuple[int | None, bool]], timed_out: bool = False, returncode: int = 0,
           error: str = "", wrong: dict[str, Any] | None = None) -> dict[str, Any]:
    results = [{"rank": r, "world_size": 2, "backend": "gloo", "cuda": False,
                "rows": [{"size": "8 B", "bytes": 8, "time_us": 10.0, "algbw_gbps": 0.5,
                          "busbw_gbps": 0.5, "wrong": wrong if r == 1 else None},
                         {"size": "16 B", "bytes": 16, "time_us": 10.0, "algbw_gbps": 1.0,
                          "busbw_gbps": 1.6, "wrong": None}]}
               for r, done in ranks if done]
    return {"answered": True, "returncode": None if timed_out else returncode,
            "timed_out": timed_out, "elapsed_s": 3.0, "error": error,
            "ranks": [{"label": f"rank {r}" if r is not None else "local rank 0", "rank": r,
                       "phase": "all_reduce 8 B: correctness pass", "done": done}
                      for r, done in ranks],
            "results": results, "log_tail": [error]}


def facts(*runs: CollectiveRun, floor: float = 0.0,
          left_out: tuple[tuple[str, str], ...] = ()) -> CollectiveFacts:
    return CollectiveFacts(runs, left_out, "10.0.0.1:4000", 1, 40.0, floor, "a")


DONE_A = CollectiveRun.from_answer("a", answer([(0, True)]))
DONE_B = CollectiveRun.from_answer("b", answer([(1, True)]))


@pytest.mark.parametrize("case, verdict, kinds, text", [
    ("both nodes ran the sweep", checks.collective(facts(DONE_A, DONE_B)), [], ""),
    ("below the floor", checks.collective(facts(DONE_A, DONE_B, floor=2.0)),
     [Kind.BLOCKER], "peak cross-node all_reduce busbw 1.6 GB/s (at 16 B) is below the floor"),
    ("a wrong element names the rank and its node", checks.collective(facts(
        DONE_A, CollectiveRun.from_answer("b", answer([(1, True)], wrong={
            "index": 1, "got": 3.0, "expected": 2.0, "count": 1})))),
     [Kind.BLOCKER], "returned a wrong result on rank 1 (b): element 1 is 3"),
    ("a node that fails before its ranks start never joined", checks.collective(facts(
        CollectiveRun.from_answer("a", answer([(None, False)], returncode=1,
                                              error="ImportError: broken torch")),
        CollectiveRun("b", "stopped", "stopped: a failed"))),
     [Kind.UNKNOWN], "a never joined the rendezvous on 10.0.0.1:4000: ImportError"),
    ("every node waited: the rendezvous never completed", checks.collective(facts(
        CollectiveRun.from_answer("a", answer([(None, False)], timed_out=True)),
        CollectiveRun.from_answer("b", answer([(None, False)], timed_out=True)))),
     [Kind.UNKNOWN], "did not complete within 40s: a, b waited"),
    ("a rank that hangs after joining", checks.collective(facts(
        DONE_A, CollectiveRun.from_answer("b", answer([(1, False)], timed_out=True)))),
     [Kind.BLOCKER], "did not finish within 40s on b; not finished: rank 1 (all_reduce 8 B"),
    ("a node without an answer", checks.collective(facts(
        DONE_A, CollectiveRun("b", "no-answer", "the task failed: RayActorError")), ),
     [Kind.UNKNOWN], "b did not answer: the task failed"),
    ("a node left out of the sweep still blocks GO", checks.collective(facts(
        DONE_A, DONE_B, left_out=(("c", "no report from its node run"),))),
     [Kind.UNKNOWN], "not measured on c: no report from its node run"),
])
def test_cluster_allreduce_judge(case: str, verdict: Verdict, kinds: list[Kind],
                                 text: str) -> None:
    assert [p.kind for p in verdict.problems] == kinds, (case, verdict.problems)
    assert text in verdict.message, (case, verdict.message)
    for problem in verdict.problems:
        assert_runs(problem.fix)


def test_a_hang_names_commands_not_only_advice() -> None:
    """The hang fix was one `# comment` line (bash accepts it, it runs nothing): now the
    hung node's own sweep, the interface checks and cluster-reach, each a command."""
    verdict = checks.collective(facts(
        DONE_A, CollectiveRun.from_answer("b", answer([(1, False)], timed_out=True))))
    commands, why = fixes.split(verdict.problems[0].fix)
    assert commands.splitlines() == [
        "preflight --workloads --check nccl-allreduce",
        "preflight --check nccl-ifname --check gloo-ifname --check master-addr",
        "preflight cluster --ray"], commands
    assert "on b" in why and "already killed what it started" in why


def test_cluster_allreduce_evidence_is_the_single_node_table() -> None:
    verdict = checks.collective(facts(DONE_A, DONE_B))
    ev = verdict.evidence
    assert verdict.ok == "2 sizes exact across 2 nodes; peak busbw 1.6 GB/s at 16 B over " \
                         "gloo (2 ranks)"
    assert ev["table"] == [
        {"size": "8 B", "time_us": 10.0, "algbw_gbps": 0.5, "busbw_gbps": 0.5, "correct": True},
        {"size": "16 B", "time_us": 10.0, "algbw_gbps": 1.0, "busbw_gbps": 1.6,
         "correct": True}]
    assert ev["nodes"] == {"a": {"state": "done", "ranks": [0], "elapsed_s": 3.0},
                           "b": {"state": "done", "ranks": [1], "elapsed_s": 3.0}}
    assert (ev["rendezvous"], ev["head"], ev["floor_gbps"]) == ("10.0.0.1:4000", "a", None)
    one = checks.collective(facts(DONE_A))
    assert one.skip.startswith("one node: no link between nodes")


def test_node_reports_are_written_back_as_the_node_wrote_them() -> None:
    """merge keeps each node's text (no second encoding); the cluster JSON parses to the
    same data as when every report is encoded again."""
    texts = {name: json.dumps(rep, indent=2) for name, rep in (("a", A), ("b", B))}
    ns = nodes(A, B)
    for n in ns:
        n.text = texts[n.name]
    cluster = merge.build(ns, merge.cross_checks(ns), 0.0, "merge")
    verbatim, encoded = merge.to_json(cluster, texts), merge.to_json(cluster)
    assert json.loads(verbatim) == json.loads(encoded)
    assert texts["a"] in verbatim and len(encoded.splitlines()) < len(verbatim.splitlines())


def test_the_cluster_markdown_shows_the_cross_node_sweep() -> None:
    ns = nodes(A, B)
    swept = checks.conclude("cluster-allreduce", checks.collective(facts(DONE_A, DONE_B)))
    md = merge.markdown(merge.build(ns, [*merge.cross_checks(ns), swept], 0.0, "ray"))
    assert "## Cross-node all-reduce" in md
    assert "| 16 B | 10.0 | 1.0 | 1.6 | yes |" in md


def test_a_node_not_go_without_a_blocking_check_says_why() -> None:
    """A node whose run was interrupted (complete: false) is NO-GO with no check blocking:
    its row said `NO-GO node1: ` and nothing more."""
    cut = report("b", "10.0.0.2") | {"complete": False}
    ns = nodes(A, cut)
    rows = {r["name"]: r for r in merge.build(ns, merge.cross_checks(ns), 0.0, "merge")["nodes"]}
    assert rows["b"]["verdict"] == "NO-GO"
    assert "did not complete" in rows["b"]["reason"]
    assert "reason" not in rows["a"]


def assert_runs(fix: str) -> None:
    """A cluster fix keeps its `# on NODE` comments (the report says where to run each
    line): bash accepts all of it, and at least one line is a command, not only a comment."""
    done = subprocess.run(["bash", "-n"], input=fix + "\n", text=True, capture_output=True,
                          timeout=10)
    assert done.returncode == 0, (fix, done.stderr)
    commands = fixes.split(fix)[0]
    assert commands, f"no command in {fix!r}"
    assert all(fixes.is_command(line) for line in commands.splitlines()), commands


def test_every_cross_node_fix_is_shell_that_bash_accepts_without_placeholders() -> None:
    """`export NODE_RANK=<0..NNODES-1>, a different one ...`, `export MASTER_ADDR=<the IP of
    NODE_RANK 0, as `hostname -I` shows it>` and `iptables ... -s <source node IP>` were
    syntax errors when pasted (bash: unexpected token); README: fixes are `bash -n` clean,
    no <placeholder>."""
    import subprocess

    job = {"NNODES": "2", "MASTER_ADDR": "127.0.0.1"}
    verdicts = [
        checks.judge_nodes(nodes(report("a", "10.0.0.1", env=JOB | {"NODE_RANK": "0"}),
                                 report("b", "10.0.0.2", env=JOB | {"NODE_RANK": "0"}))),
        checks.judge_master_addr(nodes(report("a", "10.0.0.1", env=job | {"NODE_RANK": "0"}),
                                       report("b", "10.0.0.2", env=job | {"NODE_RANK": "1"}))),
        checks.judge_master_addr(nodes(report("a", "10.0.0.1", env=job),
                                       report("b", "10.0.0.2", env=job))),
        checks.judge_master_addr(nodes(
            report("a", "10.0.0.1", env=JOB | {"MASTER_ADDR": "10.9.9.9"}),
            report("b", "10.0.0.2", env=JOB | {"MASTER_ADDR": "10.9.9.9"}))),
        checks.judge_reach({"a": [{"to": "b", "address": "10.0.0.2:7", "ok": False,
                                   "error": "refused", "ms": 1.0}]}, {}),
        checks.judge_reach({"a": [{"to": "b", "address": "10.0.0.2:7", "ok": False,
                                   "error": "refused", "ms": 1.0}]}, {}, {"a": "10.0.0.1"}),
    ]
    fixes = [p.fix for v in verdicts for p in v.problems]
    assert len(fixes) == len(verdicts) and all(fixes)
    for fix in fixes:
        assert "<" not in fix, fix
        done = subprocess.run(["bash", "-n"], input=fix, text=True, capture_output=True)
        assert done.returncode == 0, (fix, done.stderr)
    assert "export MASTER_ADDR=10.0.0.1" in fixes[1]  # the NODE_RANK=0 node's address
    assert "iptables -I INPUT -p tcp -s 10.0.0.1 -j ACCEPT" in fixes[5]


def test_the_master_addr_fix_is_never_a_docker_bridge_address() -> None:
    """The NODE_RANK=0 node has docker0 (172.17.0.1) beside eth0: interfaces sort docker0
    first, and the fix said `export MASTER_ADDR=172.17.0.1`, an address every node has
    for itself."""
    head = report("a", "10.0.0.1", env={"NNODES": "2", "NODE_RANK": "0",
                                        "MASTER_ADDR": "127.0.0.1"})
    head["node"]["ips"] = {"docker0": ["172.17.0.1"], "eth0": ["10.0.0.1"], "lo": ["127.0.0.1"]}
    other = report("b", "10.0.0.2", env={"NNODES": "2", "NODE_RANK": "1",
                                         "MASTER_ADDR": "127.0.0.1"})
    (problem,) = checks.judge_master_addr(nodes(head, other)).problems
    assert problem.fix.startswith("export MASTER_ADDR=10.0.0.1 "), problem.fix

    assert nodes(head)[0].ip == "10.0.0.1"  # the node's row too (was docker0's address)


def no_gpu(host: str, profile: str = "cpu", nvml_error: str | None = (
        "NVML unavailable: NVML Shared Library Not Found"), gpus: int = 0,
        **versions: str | None) -> dict[str, Any]:
    r = report(host, "10.0.0.9", gpus=gpus, nvidia_driver=None, cuda_driver=None,
               gpu_model=None, **versions)
    r["profile"] = profile
    r["node"]["unknown"] = {"nvidia_driver": nvml_error} if nvml_error else {}
    return r


def pci(rep: dict[str, Any], gpus: int | None) -> dict[str, Any]:
    rep["node"]["nvidia_pci_gpus"] = gpus
    return rep


@pytest.mark.parametrize("case, rep, ray_gpus, role", [
    ("no driver, profile cpu: a CPU-only head", no_gpu("h"), None, "cpu"),
    ("NVML reads, no device (a container given none)", no_gpu("h", nvml_error=None), None,
     "cpu"),
    ("Ray offers none: whatever NVML says", no_gpu("h", nvml_error="Driver Not Loaded"), 0.0,
     "cpu"),
    ("Ray schedules GPU tasks there, none found: a GPU worker at fault", no_gpu("h"), 8.0,
     "gpu"),
    ("the driver is there, its GPUs unreadable (merge)",
     no_gpu("h", nvml_error="NVML unavailable: Driver Not Loaded"), None, "gpu"),
    ("the driver is there, NVIDIA GPUs on its PCI bus: a GPU node whose driver broke",
     pci(no_gpu("h", nvml_error="Driver Not Loaded"), 4), None, "gpu"),
    ("the driver installed on a CPU box: no NVIDIA GPU on its PCI bus",
     pci(no_gpu("h", nvml_error="Driver Not Loaded"), 0), None, "cpu"),
    ("no PCI bus read (a replay, an older report): as before",
     pci(no_gpu("h", nvml_error="Driver Not Loaded"), None), None, "gpu"),
    ("ran a GPU profile: it asked for GPUs", no_gpu("h", profile="a800"), 0.0, "gpu"),
    ("GPUs found, profile cpu (Ray offers none): still a GPU node", no_gpu("h", gpus=4), 0.0,
     "gpu"),
    ("a profile unknown here", no_gpu("h", profile="mine"), 0.0, "gpu"),
])
def test_a_node_is_without_gpus_by_role_only_when_all_say_so(case, rep, ray_gpus, role):
    [node] = nodes(rep)
    node.ray_gpus = ray_gpus
    assert checks.gpu_role(node, {"cpu"}) == role, case


def test_nvidia_gpus_on_the_pci_bus_are_read_from_sysfs(tmp_path):
    """A CPU box with the NVIDIA driver package installed reads `Driver Not Loaded` from
    NVML, as a GPU node whose driver broke does: its PCI bus tells them apart."""
    from preflight.probes.host import nvidia_pci_gpus

    def device(name: str, vendor: str, klass: str) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "vendor").write_text(vendor + "\n")
        (tmp_path / name / "class").write_text(klass + "\n")

    assert nvidia_pci_gpus(tmp_path) == 0
    device("0000:00:02.0", "0x8086", "0x030000")  # an Intel VGA
    device("0000:17:00.1", "0x10de", "0x040300")  # an NVIDIA GPU's HDMI audio function
    (tmp_path / "0000:00:1f.0").mkdir()  # unreadable entries are not counted
    assert nvidia_pci_gpus(tmp_path) == 0
    device("0000:17:00.0", "0x10de", "0x030200")  # a data-center GPU (3D controller)
    device("0000:65:00.0", "0x10de", "0x030000")  # a VGA one
    assert nvidia_pci_gpus(tmp_path) == 2
    assert nvidia_pci_gpus(tmp_path / "nowhere") is None
    assert isinstance(nvidia_pci_gpus(), int)  # this machine's bus (Linux)


def test_the_pci_fact_is_this_machines_only_when_nvml_is():
    from preflight import node_facts
    from preflight.probes.nvml import Snapshot

    assert isinstance(node_facts.collect(Snapshot(), {})["nvidia_pci_gpus"], int)
    replayed = Snapshot(source="replay:x.json")  # stands in for another machine's GPUs
    assert node_facts.collect(replayed, {})["nvidia_pci_gpus"] is None


def test_a_cpu_head_is_left_out_of_the_gpu_judges_not_out_of_the_package_facts() -> None:
    head = no_gpu("head", ray="2.0")  # another ray on the head: a skew all the same
    ns = nodes(A, B, head)
    merge.assign_roles(ns, [])
    assert [n.role for n in ns] == ["gpu", "gpu", "cpu"]
    assert checks.judge_gpus(ns, 4, "A800").ok.startswith("2 node(s) with 4 GPU(s) each")
    [skew] = checks.judge_versions(ns).problems
    assert skew.text == "ray differs: 1 on most nodes, 2.0 on head", skew.text


def test_gpu_nodes_fewer_than_expected_is_a_blocker_naming_the_cpu_role_nodes() -> None:
    """--gpu-nodes N: a GPU worker whose container got no GPU passes as a node without
    GPUs by role; fewer GPU nodes than N is a blocker naming those nodes, UNKNOWN when
    the nodes without a report could be the missing ones, and nothing without N."""
    ns = nodes(A, B, no_gpu("head"), no_gpu("lost"))
    merge.assign_roles(ns, [])
    assert checks.judge_gpus(ns, 4, "A800").ok.startswith("2 node(s) with 4 GPU(s) each")
    assert checks.judge_gpus(ns, 4, "A800", gpu_nodes=2).ok
    verdict = checks.judge_gpus(ns, 4, "A800", gpu_nodes=3)
    [problem] = verdict.problems
    assert problem.kind is Kind.BLOCKER
    assert problem.text == "2 GPU node(s), 3 expected (--gpu-nodes); without GPUs by role: " \
        "head, lost", problem.text
    assert problem.fix.startswith("nvidia-smi; ray status   # on head, lost: "), problem.fix
    assert verdict.evidence["gpu_nodes"] == {"expected": 3, "found": 2}
    silent = NodeReport(name="gone", source="ray:x", report=None, reason="no answer")
    [unsure] = checks.judge_gpus([*ns, silent], 4, "A800", gpu_nodes=3).problems
    assert unsure.kind is Kind.UNKNOWN and unsure.text.endswith("; no report from gone")
    # a short GPU node too: both said
    short = nodes(A, report("b", "10.0.0.2", gpus=3), no_gpu("head"))
    merge.assign_roles(short, [])
    texts = [p.text for p in checks.judge_gpus(short, 4, "A800", gpu_nodes=3).problems]
    assert texts == ["2 GPU node(s), 3 expected (--gpu-nodes); without GPUs by role: head",
                     "b has 3 GPU(s), 4 expected"], texts
