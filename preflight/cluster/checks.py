"""Cross-node checks: pure judges of the per-node reports' `node` facts.

They run in `preflight merge` / `preflight cluster`, not under pytest (one node's pytest
run cannot see the others). Each is a pure judge returning the shared `Verdict`, and
`conclude` turns it into the Finding of the cluster report, with the evidence naming the
node(s) at fault and the problems' own copy-paste fixes.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import socket
from collections import Counter
from collections.abc import Set
from dataclasses import dataclass, field, replace
from typing import Any

from preflight import fixes, runbooks
from preflight.model import Finding, Kind, Problem, Severity, Verdict
from preflight.node_facts import PACKAGES, VERSION_FACTS

# Rows of the node x fact table kept in the JSON evidence (the Markdown shows them all).
MAX_ROWS = 50


@dataclass
class NodeReport:
    """One node's report as merge sees it."""

    name: str  # unique display name
    source: str  # the file it came from, or "ray:<node id>"
    report: dict[str, Any] | None  # None: the node did not answer (UNKNOWN)
    node_id: str = ""
    ip: str = ""
    reason: str = ""  # why the report is missing
    extra: dict[str, Any] = field(default_factory=dict)
    text: str = ""  # the report as the node wrote it (written back verbatim)
    ray_gpus: float | None = None  # the GPU resource Ray advertises there (None: not known)
    role: str = ""  # "gpu" / "cpu" (see gpu_role); "" without a report

    @property
    def facts(self) -> dict[str, Any]:
        return (self.report or {}).get("node") or {}

    @property
    def verdict(self) -> str:
        if self.report is None:
            return "UNKNOWN"
        if not self.report.get("complete", False):
            return "NO-GO"
        verdict = str(self.report.get("verdict", "NO-GO"))
        # the checks in it decide, not the field alone (a report edited by hand, or
        # written by another tool, said GO over a blocking check)
        return "NO-GO" if verdict == "GO" and self.blockers else verdict

    @property
    def blockers(self) -> list[str]:
        if self.report is None:
            return []
        return sorted({c["id"] for c in self.report.get("checks", [])
                       if c.get("severity") in ("blocker", "unknown")})


def _finding(check: str, stage: str = "cluster") -> Finding:
    return Finding(check=check, nodeid=f"cluster::{check}",
                   runbook=str(runbooks.path_for(check)), stage=stage, profile="cluster")


def _answered(nodes: list[NodeReport]) -> list[NodeReport]:
    return [n for n in nodes if n.report is not None]


# -- the nodes without GPUs by role (a CPU-only Ray head, a CPU worker) ---------------------

# NVML errors that mean no NVIDIA driver on the node at all: pynvml's
# NVMLError_LibraryNotFound ("NVML Shared Library Not Found": a CPU-only host, or a
# container the NVIDIA runtime was given no GPU for), nvidia-ml-py missing (probes/nvml.py
# read_snapshot). Any other (Driver Not Loaded, GPU is lost) is a driver whose GPUs
# cannot be read: a GPU node at fault, not a CPU node.
NO_DRIVER = ("Shared Library Not Found", "pynvml not importable")
GPU_FACTS = ("nvidia_driver", "cuda_driver", "gpu_model")  # none on a node without GPUs


def gpu_role(node: NodeReport, no_gpu_profiles: Set[str]) -> str:
    """The node's role. "cpu": without GPUs by role (a KubeRay head, a Ray-on-Slurm head on
    a CPU node: it runs no training), not a GPU worker short of its GPUs. It found no GPU, ran
    a profile that asks for none (`cpu`, auto-detected or chosen), and offers none: Ray
    advertises no GPU resource there (under `cluster --ray`), or, where Ray does not say
    (`merge`), NVML found no NVIDIA driver at all, or no NVIDIA GPU is on its PCI bus. Else
    "gpu"; "" without a report."""
    if node.report is None:
        return ""
    facts = node.facts
    if facts.get("gpu_count") != 0 or node.report.get("profile") not in no_gpu_profiles:
        return "gpu"
    if node.ray_gpus is not None:  # Ray schedules GPU tasks there: a GPU worker
        return "gpu" if node.ray_gpus > 0 else "cpu"
    unknown = facts.get("unknown")
    error = unknown.get("nvidia_driver") if isinstance(unknown, dict) else None
    if error is None or any(s in str(error) for s in NO_DRIVER):
        return "cpu"
    # the driver is there but reads no GPU (Driver Not Loaded): a GPU node whose driver
    # broke, unless its PCI bus has no NVIDIA GPU (a CPU box with the driver installed;
    # a report without the fact: as before)
    return "cpu" if facts.get("nvidia_pci_gpus") == 0 else "gpu"


def _cpu_nodes(nodes: list[NodeReport]) -> list[str]:
    return [n.name for n in nodes if n.role == "cpu"]


# Each check below is a pure judge (`judge_*`: node reports in, a `Verdict` out, as
# preflight/judges/ for the node checks) under a one-line adapter that `conclude`s it
# into the Finding the cluster report carries.


# -- cluster-versions ------------------------------------------------------------------


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


def _differ(rows: dict[str, dict[str, Any]], facts: list[str]) -> dict[str, dict[str, Any]]:
    """Per fact that is not the same on every row: the majority value and the odd rows."""
    differ: dict[str, dict[str, Any]] = {}
    for fact in facts:
        values = {name: _show(versions.get(fact)) for name, versions in rows.items()}
        counts = Counter(values.values())
        if len(counts) <= 1:
            continue
        majority = counts.most_common(1)[0][0]
        differ[fact] = {"majority": majority,
                        "odd": {name: v for name, v in values.items() if v != majority}}
    return differ


def _version_fix(fact: str, want: str, odd: dict[str, str]) -> str:
    where = ", ".join(sorted(odd)[:10]) + (" ..." if len(odd) > 10 else "")
    if fact == "torch" and "+" in want:
        # PyPI has no local builds ('2.13.0+cpu', '+cu124'): they come from PyTorch's own
        # index, one per label (pytorch.org/get-started/previous-versions: --index-url
        # https://download.pytorch.org/whl/cu124).
        # pinned with the label: an odd node's 2.13.0+cpu satisfies `torch==2.13.0`
        # (PEP 440 ignores local labels under ==X.Y.Z), and pip would change nothing there
        label = want.split("+", 1)[1]
        return (f"pip install 'torch=={want}' --index-url "
                f"https://download.pytorch.org/whl/{label}   # on {where}")
    if fact in PACKAGES and "+" in want:
        return f"# {fact}: install the {want} build on {where} (not on PyPI: its own index)"
    if fact == "preflight" and want != "-":
        # the distribution is pytest-preflight: `pip install preflight` is another tool
        return f"pip install 'pytest-preflight=={want}'   # on {where}"
    if fact in PACKAGES and want != "-":
        return f"pip install '{fact}=={want}'   # on {where}"
    if fact in PACKAGES:
        return f"pip uninstall -y {fact}   # on {where} (the other nodes lack it)"
    return f"# {fact}: make it {want} on {where} (the other nodes have it)"


def judge_versions(nodes: list[NodeReport], allow: Set[str] = frozenset()) -> Verdict:
    """Every version fact equal on all nodes (not installed counts as a value: `-`)."""
    answered = _answered(nodes)
    without = [n.name for n in answered if "versions" not in n.facts]
    rows = {n.name: n.facts["versions"] for n in answered if "versions" in n.facts}
    compared = [f for f in VERSION_FACTS if f not in allow]
    # the driver and GPU facts of the GPU nodes only: a node without GPUs by role has none
    cpu = set(_cpu_nodes(answered))
    differ = _differ(rows, [f for f in compared if f not in GPU_FACTS])
    differ |= _differ({k: v for k, v in rows.items() if k not in cpu},
                      [f for f in compared if f in GPU_FACTS])
    odd_nodes = {name for d in differ.values() for name in d["odd"]}
    table = {name: {fact: _show(versions.get(fact)) for fact in differ}
             for name, versions in rows.items() if name in odd_nodes}
    evidence: dict[str, Any] = {
        "nodes": len(answered), "compared": compared, "allowed_to_differ": sorted(allow),
        "differ": {f: {"majority": d["majority"], "odd_count": len(d["odd"])}
                   for f, d in differ.items()},
        "odd_ones_out": dict(list(table.items())[:MAX_ROWS])}
    if len(table) > MAX_ROWS:
        evidence["rows_omitted"] = len(table) - MAX_ROWS
    if without:
        evidence["without_facts"] = without
    if cpu:
        evidence["gpu_facts_not_compared_on"] = sorted(cpu)[:MAX_ROWS]
    if differ:
        return Verdict([Problem(
            f"{fact} differs: {d['majority']} on most nodes, "
            + ", ".join(f"{v} on {k}" for k, v in sorted(d["odd"].items())[:3])
            + (" ..." if len(d["odd"]) > 3 else ""),
            _version_fix(fact, d["majority"], d["odd"])) for fact, d in differ.items()],
            evidence)
    if without:
        return Verdict([Problem.unknown(
            f"cannot compare versions: no node facts in the report of "
            f"{', '.join(without[:5])} (written by an older preflight?)",
            "pip install -U pytest-preflight   # on those nodes, then run it again")],
            evidence)
    return Verdict(evidence=evidence,
                   ok=f"{len(compared)} version facts agree on {len(answered)} node(s)")


def versions(nodes: list[NodeReport], allow: Set[str] = frozenset()) -> Finding:
    return conclude("cluster-versions", judge_versions(nodes, allow))


# -- cluster-gpus ----------------------------------------------------------------------


def _gpu_nodes_short(nodes: list[NodeReport], gpu_nodes: int | None) -> list[Problem]:
    """Fewer GPU nodes than `--gpu-nodes` says: a GPU worker whose container was given no
    GPU (no driver, Ray offers none) otherwise passed as a node without GPUs by role."""
    found = [n.name for n in nodes if n.role == "gpu"]
    if gpu_nodes is None or len(found) >= gpu_nodes:
        return []
    cpu = _cpu_nodes(nodes)
    silent = [n.name for n in nodes if n.report is None]
    names = ("; without GPUs by role: " + _few(cpu) + (f" ({len(cpu)} nodes)"
                                                       if len(cpu) > 5 else "")) if cpu else ""
    names += ("; no report from " + _few(silent)) if silent else ""
    where = ", ".join((cpu or silent)[:10]) or "the GPU nodes"
    text = f"{len(found)} GPU node(s), {gpu_nodes} expected (--gpu-nodes){names}"
    fix = (f"nvidia-smi; ray status   # on {where}: a GPU node whose container got no GPU "
           "(docker --gpus all, the pod's nvidia.com/gpu request) or whose `ray start` found "
           "none (--num-gpus, CUDA_VISIBLE_DEVICES)")
    # the nodes without a report may be the GPU nodes missing: not decided
    return [Problem.unknown(text, fix) if len(found) + len(silent) >= gpu_nodes
            else Problem(text, fix)]


def judge_gpus(nodes: list[NodeReport], expected_count: int, expected_model: str,
               gpu_nodes: int | None = None) -> Verdict:
    """Each node has the profile's GPUs (count and model); without a GPU profile, the
    same count as the other nodes. With `gpu_nodes` (--gpu-nodes), at least that many GPU
    nodes."""
    from preflight.matching import model_matches

    cpu = _cpu_nodes(nodes)
    answered = [n for n in _answered(nodes) if "gpu_count" in n.facts and n.role != "cpu"]
    counts = {n.name: n.facts.get("gpu_count", 0) for n in answered}
    models = {n.name: n.facts.get("versions", {}).get("gpu_model") for n in answered}
    if expected_count:
        want, basis = expected_count, "the profile's gpu.count"
    else:
        want = Counter(counts.values()).most_common(1)[0][0] if counts else 0
        basis = "the count most nodes have"
    short = {k: v for k, v in counts.items() if v < want}
    wrong_model = {k: v for k, v in models.items()
                   if expected_model and expected_count and
                   not (v and all(model_matches(expected_model, m) for m in v.split(",")))}
    evidence: dict[str, Any] = {
        "expected": {"count": want, "model": expected_model or None, "from": basis},
        "short": {k: {"count": v, "model": models[k]} for k, v in sorted(short.items())[:MAX_ROWS]},
        "wrong_model": dict(sorted(wrong_model.items())[:MAX_ROWS]),
        "gpus_per_node": dict(Counter(counts.values())),
        "cpu_nodes": cpu[:MAX_ROWS]}
    more = {k: v for k, v in counts.items() if v > want} if not expected_count else {}
    if more:
        evidence["more_than_most"] = dict(sorted(more.items())[:MAX_ROWS])
    if gpu_nodes is not None:
        evidence["gpu_nodes"] = {"expected": gpu_nodes,
                                 "found": sum(n.role == "gpu" for n in nodes)}
    problems = [f"{k} has {v} GPU(s), {want} expected" for k, v in sorted(short.items())]
    problems += [f"{k} has {v or 'no GPU'}, not {expected_model}"
                 for k, v in sorted(wrong_model.items())]
    problems += [f"{k} has {v} GPU(s), most nodes have {want}" for k, v in sorted(more.items())]
    few_nodes = _gpu_nodes_short(nodes, gpu_nodes)
    if problems or few_nodes:
        odd = sorted(set(short) | set(wrong_model) | set(more))
        # one problem: the report names the first five and the fix every odd node
        return Verdict(few_nodes + ([Problem(
            "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""),
            f"preflight info   # on {', '.join(odd[:10])}: see which GPU is missing "
            "(runbooks/gpu-inventory.md), or leave the node out of the job")]
            if problems else []), evidence)
    if not cpu:
        return Verdict(evidence=evidence, ok=f"{len(answered)} node(s) with {want} GPU(s) each")
    # named: a GPU node given no GPU at all (a container without `--gpus`) looks the same
    besides = ("without GPUs by role (none found, profile without GPUs, none offered): "
               + _few(cpu) + (f" ({len(cpu)} nodes)" if len(cpu) > 5 else ""))
    with_gpus = f"{len(answered)} node(s) with {want} GPU(s) each; " if answered else \
        "no GPU node; "
    return Verdict(evidence=evidence, ok=with_gpus + besides)


def gpus(nodes: list[NodeReport], expected_count: int, expected_model: str,
         gpu_nodes: int | None = None) -> Finding:
    return conclude("cluster-gpus", judge_gpus(nodes, expected_count, expected_model,
                                               gpu_nodes))


# -- cluster-nodes ---------------------------------------------------------------------


def _identity(node: NodeReport) -> str:
    facts = node.facts
    if facts.get("node_id"):
        return f"node_id {facts['node_id']}"
    ips = sorted(ip for name, addrs in (facts.get("ips") or {}).items() for ip in addrs
                 if not _loopback(ip))
    return f"host {facts.get('hostname') or node.name} {','.join(ips)}".strip()


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _launch_env(answered: list[NodeReport]) -> tuple[dict[str, list[str]], set[str]]:
    """NODE_RANK -> the nodes declaring it; the NNODES values declared."""
    ranks: dict[str, list[str]] = {}
    nnodes: set[str] = set()
    for n in answered:
        env = n.facts.get("launch_env") or {}
        if "NODE_RANK" in env:
            ranks.setdefault(env["NODE_RANK"], []).append(n.name)
        if "NNODES" in env:
            nnodes.add(env["NNODES"])
    return ranks, nnodes


def _nnodes_problem(nnodes: set[str], count: int) -> tuple[str, str] | None:
    if len(nnodes) > 1:
        return (f"NNODES differs between nodes: {', '.join(sorted(nnodes))}",
                f"export NNODES={count}   # the same on every node")
    if nnodes and (want := next(iter(nnodes))).isdigit() and int(want) != count:
        return (f"NNODES={want} but {count} node report(s)",
                f"export NNODES={count}   # or run preflight on every node of the job")
    return None


def judge_nodes(nodes: list[NodeReport]) -> Verdict:
    """Each node reported once; declared NODE_RANKs unique (a cluster run in which two
    nodes declare one NODE_RANK) and NNODES met."""
    answered = _answered(nodes)
    seen: dict[str, list[str]] = {}
    for n in answered:
        seen.setdefault(_identity(n), []).append(n.source)
    dup = {k: v for k, v in seen.items() if len(v) > 1}
    ranks, nnodes = _launch_env(answered)
    dup_ranks = {k: v for k, v in ranks.items() if len(v) > 1}
    evidence = {"nodes": len(nodes), "duplicates": dup, "node_ranks": {
        k: v for k, v in sorted(ranks.items())[:MAX_ROWS]}, "NNODES": sorted(nnodes)}
    problems: list[str] = []
    fixes: list[str] = []
    if dup:
        problems += [f"the same node reported {len(v)} times ({', '.join(v[:3])})"
                     for v in dup.values()]
        fixes.append('preflight --report-dir "reports/$(hostname)"   # on each node: one '
                     "report dir per node, then merge reports/*")
    if dup_ranks:
        problems += [f"NODE_RANK={k} on {', '.join(v[:5])}" for k, v in sorted(dup_ranks.items())]
        fixes.append('export NODE_RANK="${SLURM_NODEID:?on each node its own index, '
                     '0 to NNODES-1}"   # Slurm sets SLURM_NODEID; elsewhere the index')
    if (wrong := _nnodes_problem(nnodes, len(nodes))) is not None:
        problems.append(wrong[0])
        fixes.append(wrong[1])
    mixed = _mixed_runs(answered, evidence)
    steps = _slurm_steps(answered)
    if steps:
        evidence["slurm_steps"] = {f"{j}.{st}": [n.name for n in v][:MAX_ROWS]
                                   for (j, st), v in steps.items()}
    if len(steps) > 1 and not _split_run(steps):
        problems.append(_stale(steps, fixes))
    elif steps and (missing := _step_missing(*next(iter(steps.items())))) is not None:
        mixed.insert(0, missing)
    if problems:  # one problem: the report names the first five, every kind's fix
        return Verdict([Problem("; ".join(problems[:5]), "\n".join(fixes)), *mixed], evidence)
    if mixed:
        return Verdict(mixed, evidence)
    return Verdict(evidence=evidence, ok=f"{len(answered)} distinct node(s)")


def _slurm_steps(answered: list[NodeReport]) -> dict[tuple[str, str], list[NodeReport]]:
    """The report files of each Slurm job step (SLURM_JOB_ID, SLURM_STEP_ID in launch_env).
    Not a `cluster --ray` run's reports: all of that one run, and Ray on Slurm starts each
    node's `ray start` in a step of its own (`srun --nodes=1 --ntasks=1 -w NODE ray start
    ... --block &`, Ray's Slurm recipe): the raylets, so the node runs, differ in step."""
    steps: dict[tuple[str, str], list[NodeReport]] = {}
    for n in answered:
        if n.source.startswith("ray:"):
            continue
        env = n.facts.get("launch_env") or {}
        if env.get("SLURM_JOB_ID"):
            steps.setdefault((env["SLURM_JOB_ID"], env.get("SLURM_STEP_ID", "?")),
                             []).append(n)
    return steps


def _stale(steps: dict[tuple[str, str], list[NodeReport]], fixes: list[str]) -> str:
    """Reports of several Slurm job steps: those of the steps with fewer nodes were left
    in the report directory by an earlier run (merged as if they were today's)."""
    keep = max(steps, key=lambda k: (len(steps[k]), k))
    old = [(k, n) for k, v in steps.items() if k != keep for n in v]
    fixes += [f"rm {shlex.quote(n.source)}   # left by Slurm job {j} step {st}"
              for (j, st), n in old][:10]
    return (f"reports from {len(steps)} Slurm job steps: "
            + "; ".join(f"{j}.{st} on {_few([n.name for n in v])}"
                        for (j, st), v in sorted(steps.items(), key=lambda kv:
                                                 (kv[0] != keep, kv[0])))
            + " (reports left by an earlier run?)")


def _split_run(steps: dict[tuple[str, str], list[NodeReport]]) -> bool:
    """Steps of one job that each reported on all their nodes: one run started node by
    node (`srun --nodes=1 -w NODE preflight ... &` per node), not reports left over."""
    return len({job for job, _ in steps}) == 1 and all(
        (members[0].facts.get("launch_env") or {}).get("SLURM_STEP_NUM_NODES")
        == str(len(members)) for members in steps.values())


def _step_missing(step: tuple[str, str], members: list[NodeReport]) -> Problem | None:
    """UNKNOWN when the step ran on more nodes than reported: the others never wrote."""
    env = members[0].facts.get("launch_env") or {}
    want = env.get("SLURM_STEP_NUM_NODES", "")
    if not want.isdigit() or int(want) <= len(members):
        return None
    listed = env.get("SLURM_STEP_NODELIST", "")
    where = f" ({listed})" if listed else ""
    fix = (f"scontrol show hostnames {shlex.quote(listed)}   # the step's nodes: those "
           "without a report did not finish preflight" if listed else
           f"sacct -j {shlex.quote(step[0])} -o JobID,NodeList,State   # which node's task "
           "did not finish preflight")
    return Problem.unknown(
        f"Slurm job {step[0]} step {step[1]} ran on {want} node(s){where}, "
        f"{len(members)} reported: {_few([n.name for n in members])}", fix)


def _usual(groups: dict[Any, list[str]], weight: Any = len) -> Any:
    """The key most nodes have; a tie goes to the heavier key (more checks, a GPU profile)."""
    return max(groups, key=lambda k: (len(groups[k]), weight(k), str(k)))


def _mixed_runs(answered: list[NodeReport], evidence: dict[str, Any]) -> list[Problem]:
    """Nodes judged against another profile, or on other checks, than most nodes: each is
    GO or NO-GO by its own run, but what the others proved was never asked of it. One
    problem per kind of difference, naming every node that has it."""
    profiles: dict[str, list[str]] = {}
    ran: dict[frozenset[str], list[str]] = {}
    for n in answered:
        report = n.report or {}
        if n.role != "cpu":  # a node without GPUs by role ran a profile asking for none
            profiles.setdefault(str(report.get("profile") or "-"), []).append(n.name)
        ran.setdefault(frozenset(str(c.get("id")) for c in report.get("checks", [])),
                       []).append(n.name)
    if len(profiles) <= 1 and len(ran) <= 1:
        return []
    profile = _usual(profiles, lambda p: p != "cpu") if profiles else "-"
    checks = _usual(ran)
    evidence["profiles"] = {k: v[:MAX_ROWS] for k, v in sorted(profiles.items())}
    odd: dict[tuple[str, frozenset[str], frozenset[str]], list[str]] = {}
    of = {name: p for p, names in profiles.items() for name in names}
    for got, names in ran.items():
        for name in names:
            if of.get(name, profile) != profile or got != checks:
                odd.setdefault((of.get(name, profile), checks - got, got - checks),
                               []).append(name)
    evidence["checks_differ"] = {
        ", ".join(v[:5]): {"profile": k[0], "missing": sorted(k[1]), "extra": sorted(k[2])}
        for k, v in list(odd.items())[:MAX_ROWS]}
    problems = []
    for (theirs, missing, extra), names in sorted(odd.items(), key=lambda kv: kv[1]):
        where = _few(names) + (f" ({len(names)} nodes)" if len(names) > 5 else "")
        parts = []
        if theirs != profile:
            parts.append(f"ran profile {theirs}, the other node(s) {profile}")
        if missing:
            parts.append(f"did not run {', '.join(sorted(missing)[:5])}"
                         + (" ..." if len(missing) > 5 else "") + " (the others did)")
        if extra:
            parts.append(f"ran {', '.join(sorted(extra)[:5])}"
                         + (" ..." if len(extra) > 5 else "") + " (the others did not)")
        if not parts:
            continue
        # `--check ID` runs a check whatever its stage; a longer list: the same options
        # as the other nodes (not known here)
        picks = "".join(f" --check {c}" for c in sorted(missing)) if len(missing) <= 5 else ""
        fix = f"preflight --profile {profile}{picks}   # on {_few(names)}"
        if len(missing) > 5 or not picks:
            fix += ": with the options the other nodes ran"
        problems.append(Problem.unknown(f"{where} {'; '.join(parts)}", fix))
    return problems


def nodes_unique(nodes: list[NodeReport]) -> Finding:
    return conclude("cluster-nodes", judge_nodes(nodes))


# -- master-addr, the cross-node half ----------------------------------------------------


def _owners(answered: list[NodeReport], values: set[str]) -> dict[str, list[str]]:
    """Each MASTER_ADDR value -> the nodes it is an address (or the hostname) of."""
    owners: dict[str, list[str]] = {}
    for n in answered:
        mine = {ip for a in (n.facts.get("ips") or {}).values() for ip in a
                if not _loopback(ip)}
        mine.add(n.facts.get("hostname") or "")
        for v in values:
            if v in mine or _resolves_into(v, mine):
                owners.setdefault(v, []).append(n.name)
    return owners


# Interfaces of containers, VMs and overlays: an address there is this host's own bridge
# (docker0 is 172.17.0.1 on every node), never how the other nodes reach it.
_LOCAL_IFACES = re.compile(r"^(?:docker|veth|virbr|br-|cni|flannel|cali|lxc|vxlan|tun|tap)")


def outward_ip(facts: dict[str, Any]) -> str:
    """The node's first IPv4 address that other nodes can reach it on ("" if none)."""
    for name, addrs in sorted((facts.get("ips") or {}).items()):
        if name == "lo" or _LOCAL_IFACES.match(name):
            continue
        for ip in addrs:
            if ":" not in ip and not _loopback(ip):
                return str(ip)
    return ""


def _head_fix(answered: list[NodeReport]) -> str:
    """MASTER_ADDR as the address of the node declaring NODE_RANK=0, when the reports tell
    it; else the command that shows it there (no `<placeholder>`: bash rejects it)."""
    for n in answered:
        ip = outward_ip(n.facts)
        if (n.facts.get("launch_env") or {}).get("NODE_RANK") == "0" and ip:
            return f"export MASTER_ADDR={ip}   # on every node: the NODE_RANK=0 node {n.name}"
    return ("hostname -I   # on the NODE_RANK=0 node: its first address is MASTER_ADDR, "
            "exported on every node")


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")


def _names(addrs: dict[str, str | None], value: str) -> str:
    return _few([k for k, v in addrs.items() if v == value])


def _head_value(answered: list[NodeReport], addrs: dict[str, str | None],
                owners: dict[str, list[str]]) -> tuple[str, str]:
    """The MASTER_ADDR value to keep: the one that is an address of the node declaring
    NODE_RANK=0, else the one most nodes have; and which of the two it is."""
    rank0 = {n.name for n in answered
             if (n.facts.get("launch_env") or {}).get("NODE_RANK") == "0"}
    for value, names in sorted(owners.items()):
        if rank0 & set(names) and not _loopback(value):
            return value, "the address of the NODE_RANK=0 node"
    counts = Counter(v for v in addrs.values() if v)
    return sorted(counts, key=lambda v: (-counts[v], v))[0], "the value most nodes have"


def judge_master_addr(nodes: list[NodeReport]) -> Verdict:
    """MASTER_ADDR is the same on every node of a multi-node job and names one of them."""
    answered = _answered(nodes)
    addrs = {n.name: (n.facts.get("launch_env") or {}).get("MASTER_ADDR") for n in answered}
    multi = len(answered) > 1 and any(
        (n.facts.get("launch_env") or {}).get("NNODES", "1") not in ("", "1")
        for n in answered)
    evidence: dict[str, Any] = {"MASTER_ADDR": {k: v for k, v in
                                                sorted(addrs.items())[:MAX_ROWS]}}
    if not multi:
        return Verdict(evidence=evidence,
                       skip="not a multi-node job (no node exports NNODES > 1)")
    values = {v for v in addrs.values() if v}
    if not values:
        # Only the exported variable is in a node report: a launch that passes
        # --master_addr / --rdzv-endpoint exports none, and each node's own master-addr
        # check has read that launch. Nothing here says the address differs.
        return Verdict(evidence=evidence, skip="MASTER_ADDR is exported on no node (the "
                       "launch sets the address: each node's master-addr check reads it)")
    owners = _owners(answered, values)
    evidence["owner"] = owners
    head, chosen = _head_value(answered, addrs, owners)
    if len(values) != 1 or any(not v for v in addrs.values()):
        missing = [k for k, v in addrs.items() if not v]
        if len(values) == 1:
            text = f"MASTER_ADDR is {head} on {_names(addrs, head)} but unset on {_few(missing)}"
        else:
            text = ("MASTER_ADDR differs between nodes: "
                    + ", ".join(f"{v} on {_names(addrs, v)}" for v in sorted(values))
                    + (f"; unset on {_few(missing)}" if missing else ""))
        return Verdict([Problem(
            text, f"export MASTER_ADDR={head}   # on every node ({chosen})")],
            evidence)
    if _loopback(head) or head == "localhost":
        return Verdict([Problem(
            f"MASTER_ADDR={head} is a loopback address in a job of {len(answered)} nodes: "
            "every node would rendezvous with itself", _head_fix(answered))], evidence)
    if head not in owners:
        return Verdict([Problem(
            f"MASTER_ADDR={head} is not an address of any node in the report",
            _head_fix(answered))],
            evidence)
    return Verdict(evidence=evidence, ok=f"MASTER_ADDR={head} is {owners[head][0]} on every node")


def master_addr(nodes: list[NodeReport]) -> Finding:
    return conclude("master-addr", judge_master_addr(nodes))


def _resolves_into(name: str, addresses: set[str]) -> bool:
    try:
        ipaddress.ip_address(name)
        return False
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except (OSError, UnicodeError):
        return False
    return any(info[4][0] in addresses for info in infos)


# -- cluster-reach ---------------------------------------------------------------------


def _pairs(failed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One failed connection per (source, destination host)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for f in failed:
        seen.setdefault((f["from"], f["address"].rsplit(":", 1)[0]), f)
    return [seen[k] for k in sorted(seen)]


def _accept_rule(source: str, address: str, ips: dict[str, str]) -> str:
    """The iptables rule on the destination letting the source in; a comment when the
    source's address is not known (never a `<placeholder>` that bash rejects)."""
    dest = address.rsplit(":", 1)[0]
    if ips.get(source):
        return f"iptables -I INPUT -p tcp -s {ips[source]} -j ACCEPT   # on {dest} (from {source})"
    return f"# on {dest}: iptables -I INPUT -p tcp -s (the address of {source}) -j ACCEPT"


def judge_reach(results: dict[str, list[dict[str, Any]]], missing: dict[str, str],
                ips: dict[str, str] | None = None) -> Verdict:
    """`results`: per source node, its connection attempts (reach.connect); `missing`:
    nodes that could not take part, with the reason."""
    failed = [{"from": src, **r} for src, attempts in sorted(results.items())
              for r in attempts if not r["ok"]]
    pairs = sum(len(a) for a in results.values())
    evidence = {"nodes": len(results), "connections": pairs, "failed": failed[:MAX_ROWS],
                "failed_count": len(failed), "not_probed": missing}
    if failed:
        shown = "; ".join(f"{f['from']} -> {f['to']} ({f['address']}): {f['error']}"
                          for f in failed[:3])
        return Verdict([Problem(
            f"{len(failed)} of {pairs} connection(s) failed: {shown}"
            + (" ..." if len(failed) > 3 else ""),
            "# on each destination node, let the other nodes in on every TCP port "
            "(NCCL and gloo connect back on ports they pick), e.g.\n"
            + "\n".join(_accept_rule(f["from"], f["address"], ips or {})
                        for f in _pairs(failed)[:10]))], evidence)
    if missing:
        return Verdict([Problem.unknown(
            "could not probe from " + ", ".join(
                f"{k} ({v})" for k, v in sorted(missing.items())[:5]),
            "ray status   # is every node alive? then run preflight cluster --ray again")],
            evidence)
    if not results:
        return Verdict(evidence=evidence, skip="no node to probe")
    return Verdict(evidence=evidence,
                   ok=f"{pairs} TCP connection(s) between {len(results)} node(s) all open")


def reach(results: dict[str, list[dict[str, Any]]], missing: dict[str, str],
          ips: dict[str, str] | None = None) -> Finding:
    return conclude("cluster-reach", judge_reach(results, missing, ips))


# -- judged checks: Verdict in, the cluster report's Finding out --------------------------


def conclude(check: str, verdict: Verdict) -> Finding:
    """What `Recorder.conclude` does for a node check, for a check of the cluster report:
    skip -> skipped; blockers -> failed with their texts and fixes; else unknowns ->
    UNKNOWN; else warnings -> passed with WARNING; else passed saying `verdict.ok`."""
    found = _finding(check)
    found.evidence = dict(verdict.evidence)
    if verdict.skip:
        found.outcome, found.severity, found.summary = "skipped", Severity.INFO, verdict.skip
        return found
    deciding = verdict.deciding
    found.fix = "\n".join(dict.fromkeys(p.fix for p in deciding if p.fix)) or verdict.fix
    found.why = "; ".join(dict.fromkeys(p.why for p in deciding if p.why)) or verdict.why
    # as a node check's (plugin._split_fix): commands one a line, prose to `why`; the
    # comment saying where a line applies (`# on NODE`) stays on it
    found.fix, moved = fixes.split(found.fix, keep_comments=True)
    found.why = "; ".join(part for part in (found.why, moved) if part)
    if not deciding:
        found.summary = verdict.ok
        return found
    kind = deciding[0].kind
    found.summary = verdict.message
    if kind is Kind.WARNING:
        found.severity = Severity.WARNING
        return found
    found.outcome = "failed"
    found.severity = Severity.BLOCKER if kind is Kind.BLOCKER else Severity.UNKNOWN
    return found


# -- cluster-allreduce ------------------------------------------------------------------


@dataclass(frozen=True)
class CollectiveRun:
    """One node's part of the cross-node sweep (collective.py), as the driver saw it."""

    name: str
    # done | not-joined (failed before its ranks started) | waited (bound hit in the
    # rendezvous) | unfinished (ranks started, not all finished) | no-answer | stopped
    state: str
    detail: str = ""
    ranks: tuple[int, ...] = ()  # global ranks that ran on this node
    elapsed_s: float | None = None
    timed_out: bool = False
    results: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_answer(cls, name: str, answer: dict[str, Any]) -> CollectiveRun:
        if not answer.get("answered"):
            return cls(name, "no-answer", str(answer.get("error", "")))
        ranks = answer.get("ranks") or []
        timed_out = bool(answer.get("timed_out"))
        run = cls(name, "done", ranks=tuple(sorted(r["rank"] for r in ranks
                                                    if r["rank"] is not None)),
                  elapsed_s=answer.get("elapsed_s"), timed_out=timed_out,
                  results=tuple(answer.get("results") or ()))
        if ranks and all(r["done"] for r in ranks):
            return run
        error = answer.get("error") or ((answer.get("log_tail") or [""])[-1])
        if not run.ranks and timed_out:
            return replace(run, state="waited",
                           detail=f"waited {answer.get('elapsed_s')}s in the rendezvous")
        if not run.ranks:
            return replace(run, state="not-joined", detail=error)
        if timed_out:
            stuck = "; ".join(f"{r['label']} ({r['phase']})" for r in ranks if not r["done"])
            return replace(run, state="unfinished", detail=f"not finished: {stuck}")
        return replace(run, state="unfinished",
                       detail=f"torchrun exited {answer.get('returncode')}: {error}")


@dataclass(frozen=True)
class CollectiveFacts:
    runs: tuple[CollectiveRun, ...]  # the nodes the sweep ran on
    left_out: tuple[tuple[str, str], ...]  # (node, why it was not run there)
    endpoint: str  # the rendezvous, HEAD_IP:PORT ("" when it never started)
    nproc_per_node: int
    timeout_s: float
    floor_gbps: float = 0.0
    head: str = ""  # the node hosting the rendezvous


# A hang or a rendezvous that never completes across nodes, when each node alone is fine,
# is the network between them: cluster-reach (run by `cluster --ray`) names the pair, the
# node checks nccl-ifname / gloo-ifname / master-addr the interface. NCCL_DEBUG set here
# would not reach the Ray workers (they inherit `ray start`'s environment).
_NET_CHECKS = "nccl-ifname --check gloo-ifname --check master-addr"


def _hang_fix(node: str) -> str:
    return (f"preflight --workloads --check nccl-allreduce   # on {node}: does it finish "
            "alone? preflight already killed what it started\n"
            f"preflight --check {_NET_CHECKS}   # on every node: the interfaces NCCL and "
            "gloo pick\n"
            "preflight cluster --ray   # cluster-reach: which node cannot reach which port")


_REACH_FIX = (f"preflight --check {_NET_CHECKS}   # on every node: the interfaces NCCL and "
              "gloo pick, MASTER_ADDR\n"
              "preflight cluster --ray   # cluster-reach: every node must reach the head's "
              "rendezvous port and the other nodes' ports")


def _node_problems(facts: CollectiveFacts) -> list[Problem]:
    """What went wrong on which node: never joined, no answer, a hang or a crash."""
    problems: list[Problem] = []
    by_state: dict[str, list[CollectiveRun]] = {}
    for run in facts.runs:
        by_state.setdefault(run.state, []).append(run)
    for run in by_state.get("not-joined", []):
        problems.append(Problem.unknown(
            f"{run.name} never joined the rendezvous on {facts.endpoint}: {run.detail}",
            f"preflight --workloads --check nccl-allreduce   # on {run.name}: its torchrun "
            "fails before the rendezvous"))
    for run in by_state.get("no-answer", []):
        problems.append(Problem.unknown(
            f"{run.name} did not answer: {run.detail}",
            "ray status   # is every node alive? then run preflight cluster --ray --workloads "
            "again"))
    waited = by_state.get("waited", [])
    if waited and not problems:
        problems.append(Problem.unknown(
            f"the rendezvous on {facts.endpoint} did not complete within {facts.timeout_s:g}s: "
            + ", ".join(r.name for r in waited) + " waited for the other node(s)", _REACH_FIX))
    for run in by_state.get("unfinished", []):
        what = f"all_reduce sweep across {len(facts.runs)} nodes"
        if run.timed_out:
            problems.append(Problem(f"{what} did not finish within {facts.timeout_s:g}s on "
                                    f"{run.name}; {run.detail}", _hang_fix(run.name)))
        else:
            problems.append(Problem(f"{what}: on {run.name} {run.detail[:300]}",
                                    f"preflight --workloads --check nccl-allreduce   # on "
                                    f"{run.name}, then read its torchrun.log"))
    problems += [Problem.unknown(f"not measured on {name}: {why}",
                                 "ray status   # then run preflight cluster --ray --workloads "
                                 "again") for name, why in facts.left_out]
    return problems


def collective(facts: CollectiveFacts) -> Verdict:
    """The all-reduce sweep across nodes: every node joined, every element right, the peak
    busbw at or above the floor (when one is given)."""
    nodes = {r.name: {"state": r.state, "ranks": list(r.ranks), "elapsed_s": r.elapsed_s,
                      **({"detail": r.detail} if r.detail else {})}
             for r in facts.runs[:MAX_ROWS]}
    evidence: dict[str, Any] = {"rendezvous": facts.endpoint or None,
                                "head": facts.head or None,
                                "nnodes": len(facts.runs),
                                "nproc_per_node": facts.nproc_per_node,
                                "bound_s": facts.timeout_s, "nodes": nodes,
                                "left_out": dict(facts.left_out)}
    if len(facts.runs) < 2 and not facts.left_out:
        return Verdict(evidence=evidence, skip="one node: no link between nodes to measure "
                       "(nccl-allreduce measures the node itself)")
    problems = _node_problems(facts)
    if problems or any(r.state != "done" for r in facts.runs) or not facts.runs:
        return Verdict(problems or [Problem.unknown("fewer than 2 nodes to measure")],
                       evidence)
    results = sorted((res for r in facts.runs for res in r.results), key=lambda x: x["rank"])
    first = results[0]
    rows = first["rows"]
    peak = max(rows, key=lambda row: row["busbw_gbps"])
    wrong = [{"rank": r["rank"], "size": row["size"], **row["wrong"]}
             for r in results for row in r["rows"] if row["wrong"]]
    evidence |= {
        "backend": first["backend"], "world_size": first["world_size"],
        "note": (f"NCCL {first.get('nccl')} on {first.get('device')}" if first.get("cuda")
                 else "no CUDA on these nodes: the sweep ran over gloo on CPU"),
        "table": [{k: row[k] for k in ("size", "time_us", "algbw_gbps", "busbw_gbps")}
                  | {"correct": not row["wrong"]} for row in rows],
        "peak_busbw_gbps": peak["busbw_gbps"], "peak_at": peak["size"],
        "floor_gbps": facts.floor_gbps or None, "wrong": wrong[:8]}
    if wrong:
        bad = wrong[0]
        host = next((r.name for r in facts.runs if bad["rank"] in r.ranks), "?")
        return Verdict([Problem(
            f"all_reduce of {bad['size']} across {len(facts.runs)} nodes returned a wrong "
            f"result on rank {bad['rank']} ({host}): element {bad['index']} is "
            f"{bad['got']:g}, expected {bad['expected']:g} ({bad['count']} wrong element(s))",
            f"nvidia-smi -q -d ECC,ROW_REMAPPER   # on {host}; then dcgmi diag -r 3, and "
            "ibv_devinfo / the NIC's error counters")], evidence)
    if facts.floor_gbps and peak["busbw_gbps"] < facts.floor_gbps:
        return Verdict([Problem(
            f"peak cross-node all_reduce busbw {peak['busbw_gbps']:g} GB/s (at "
            f"{peak['size']}) is below the floor {facts.floor_gbps:g} GB/s",
            "ibstat; NCCL_DEBUG=INFO   # is NCCL on the IB/RoCE NICs (NET/IB), not NET/Socket? "
            "compare with nccl-tests: mpirun ... all_reduce_perf -b 8 -e 256M -f 2 -g 1")],
            evidence)
    return Verdict(evidence=evidence, ok=(
        f"{len(rows)} sizes exact across {len(facts.runs)} nodes; peak busbw "
        f"{peak['busbw_gbps']:g} GB/s at {peak['size']} over {first['backend']} "
        f"({first['world_size']} ranks)"))
