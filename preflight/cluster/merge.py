"""One verdict for N nodes: per-node reports in, cluster-report.json / .md out.

Used by `preflight merge PATH...` (reports gathered by Slurm, pdsh, Kubernetes, ...) and
by `preflight cluster --ray` (reports collected by Ray tasks). The cluster is GO only
when every node answered, every node is GO and no cross-node check blocks.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Set
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from preflight import __version__, report
from preflight.cluster import checks
from preflight.cluster.checks import NodeReport
from preflight.errors import InputError
from preflight.model import Finding, Severity
from preflight.redact import md_cell, printable
from preflight.report import JSON_NAME

SCHEMA_VERSION = 1
CLUSTER_JSON = "cluster-report.json"
CLUSTER_MD = "cluster-report.md"
MAX_REPORT_BYTES = 64 * 2**20
MAX_TERMINAL_NODES = 20  # node lines on the terminal; the Markdown lists every node
MAX_TERMINAL_PROBLEMS = 10  # node problems (each naming its nodes) on the terminal
MAX_NAMED = 20  # node names on one Markdown line (the node table names them all)


# -- reading -----------------------------------------------------------------------------


def report_files(paths: list[str]) -> list[Path]:
    """Each PATH is a report file or a directory searched for preflight-report.json."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.rglob(JSON_NAME), key=str)  # str: Path's < is slow
            if not found:
                raise InputError(f"{raw}: no {JSON_NAME} under this directory")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{raw}: no such report file or directory")
    return files


def parse_report(text: str, source: str) -> dict[str, Any]:
    """A node report, or InputError naming `source` and what is wrong with it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # cut off at the end, or inside a string that never closes (json reports where the
        # string starts, not where the text ends)
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        why = "truncated" if cut else "invalid JSON"
        raise InputError(f"{source}: not a preflight report: {why} "
                         f"(line {exc.lineno} column {exc.colno})") from None
    except RecursionError:  # json's decoder recurses per level: `[[[[...` was a traceback
        raise InputError(f"{source}: not a preflight report: nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("checks"), list) \
            or not isinstance(data.get("verdict"), str) or "schema" not in data:
        raise InputError(f"{source}: not a preflight report (needs schema, verdict, checks)")
    if wrong := _wrong_shape(data):
        raise InputError(f"{source}: not a preflight report: {wrong}")
    return data


def _is_map(value: Any, of: tuple[type, ...]) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, of) for k, v in value.items())


def _wrong_shape(data: dict[str, Any]) -> str:
    """The first field the cluster checks read that has another shape than preflight
    writes (report.py, node_facts.py); "" when none. A hand-edited or foreign report
    otherwise ended in a traceback, exit 1."""
    if not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in data["checks"]):
        return "checks is not a list of objects with an id"
    if not isinstance(data.get("profile", ""), str):  # a set member (node_profile, roles)
        return f"profile is {json.dumps(data['profile'])[:60]}, not what preflight writes"
    node = data.get("node")
    if node is None:
        return ""  # an older preflight: the checks say they cannot compare
    if not isinstance(node, dict):
        return "node is not an object"
    shapes: dict[str, Callable[[Any], bool]] = {
        "hostname": lambda v: isinstance(v, str),
        "node_id": lambda v: isinstance(v, str),
        "versions": lambda v: _is_map(v, (str, type(None))),
        "ips": lambda v: isinstance(v, dict) and all(
            isinstance(a, list) and all(isinstance(x, str) for x in a) for a in v.values()),
        "launch_env": lambda v: _is_map(v, (str,)),
        "gpu_count": lambda v: isinstance(v, int) and not isinstance(v, bool)}
    for key, ok in shapes.items():
        if key in node and node[key] is not None and not ok(node[key]):
            return f"node.{key} is {json.dumps(node[key])[:60]}, not what preflight writes"
    if "versions" in node and node["versions"] is None:
        return "node.versions is null, not what preflight writes"
    return ""


def read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise InputError(f"{path}: not a preflight report (over 64 MiB)")
        return path.read_bytes().decode("utf-8")  # no TextIOWrapper per file
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") \
            from None


def read_report(path: Path) -> dict[str, Any]:
    return parse_report(read_text(path), str(path))


def read_node(path: Path) -> NodeReport:
    """A node's report file as merge sees it, its text kept to be written back verbatim."""
    text = read_text(path)
    node = from_report(parse_report(text, str(path)), str(path))
    node.text = text
    return node


def name_nodes(nodes: list[NodeReport]) -> None:
    """Hostnames when they are unique; otherwise hostname@<node id or source dir>."""
    hosts = Counter(n.name for n in nodes)
    for n in nodes:
        if hosts[n.name] > 1:
            tag = n.node_id[:8] if n.node_id else Path(n.source).parent.name or n.source
            n.name = f"{n.name}@{tag}"
    seen: Counter[str] = Counter()
    for n in nodes:  # still equal (the same file twice): number them
        seen[n.name] += 1
        if seen[n.name] > 1:
            n.name = f"{n.name}#{seen[n.name]}"


def from_report(data: dict[str, Any], source: str) -> NodeReport:
    facts = data.get("node") or {}
    host = facts.get("hostname") or data.get("host") or "?"
    ips = [ip for name, addrs in sorted((facts.get("ips") or {}).items()) if name != "lo"
           for ip in addrs if ":" not in ip]
    node = NodeReport(name=str(host), source=source, report=data,
                      node_id=str(facts.get("node_id") or ""),
                      ip=checks.outward_ip(facts) or (ips[0] if ips else ""))
    if node.verdict != "GO" and not node.blockers:  # else the row names no cause at all
        node.reason = ("its run did not complete (interrupted, or stopped early by -x / "
                       "--maxfail)" if not data.get("complete", False)
                       else f"its report says {node.verdict} with no check blocking")
    return node


# -- judging -----------------------------------------------------------------------------


def cross_checks(nodes: list[NodeReport], profile_dirs: list[Path] | None = None,
                 allow: Set[str] = frozenset(), gpu_nodes: int | None = None
                 ) -> list[Finding]:
    assign_roles(nodes, profile_dirs or [])
    # the GPUs of the profile the GPU nodes ran (a CPU-only head ran `cpu`)
    count, model = _profile_gpus([n for n in nodes if n.role != "cpu"], profile_dirs or [])
    return [checks.nodes_unique(nodes), checks.versions(nodes, allow),
            checks.gpus(nodes, count, model, gpu_nodes), checks.master_addr(nodes)]


def assign_roles(nodes: list[NodeReport], dirs: list[Path]) -> None:
    """Each node's role (checks.gpu_role): a GPU worker, or a node without GPUs by role."""
    from preflight.profiles import load_profiles

    no_gpu = {name for name, p in load_profiles(dirs).items() if not p.is_gpu}
    for n in nodes:
        n.role = checks.gpu_role(n, no_gpu)


def node_profile(nodes: list[NodeReport], dirs: list[Path]) -> Any:
    """The profile every node ran with (None when none, several, or not found here)."""
    names = {n.report.get("profile", "") for n in nodes if n.report is not None}
    if len(names) != 1:
        return None
    from preflight.profiles import load_profiles

    return load_profiles(dirs).get(names.pop())


def _profile_gpus(nodes: list[NodeReport], dirs: list[Path]) -> tuple[int, str]:
    """The GPUs of the profile the nodes ran with (0, "" when none or several)."""
    profile = node_profile(nodes, dirs)
    if profile is None:
        return 0, ""
    return profile.gpu.count, profile.gpu.model


def build(nodes: list[NodeReport], findings: list[Finding], started: float,
          how: str, node_env: dict[str, Any] | None = None) -> dict[str, Any]:
    rows = [{"name": n.name, "hostname": n.facts.get("hostname") or n.name.split("@")[0],
             "node_id": n.node_id or None, "ip": n.ip or None, "verdict": n.verdict,
             "blockers": n.blockers, "source": n.source, "role": n.role or None,
             **({"reason": n.reason} if n.reason else {}), **n.extra} for n in nodes]
    node_verdicts = Counter(r["verdict"] for r in rows)
    go = bool(nodes) and node_verdicts.get("GO", 0) == len(nodes) and \
        not any(f.severity.blocks or f.outcome == "failed" for f in findings)
    return {
        "schema": SCHEMA_VERSION,
        "kind": "cluster",
        "preflight_version": __version__,
        "verdict": "GO" if go else "NO-GO",
        "gathered_by": how,
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 3),
        "node_count": len(nodes),
        "node_verdicts": dict(node_verdicts),
        "nodes": rows,
        "checks": [f.to_json() for f in findings],
        "node_problems": node_problems({n.name: n.report for n in nodes
                                        if n.report is not None}),
        "reports": {n.name: n.report for n in nodes if n.report is not None},
        # cluster --ray: the variables given to every node's preflight (names only)
        **({"node_env": node_env} if node_env is not None else {}),
    }


def node_problems(reports: dict[str, Any]) -> list[dict[str, Any]]:
    """The node checks that block GO, one entry per (check, severity, summary, fix) naming
    every node that has it: the same wrong conda env on 8 nodes is one entry, not 8."""
    groups: dict[tuple[str, str, str, str], list[str]] = {}
    for name, rep in reports.items():
        for c in rep.get("checks", []):
            if c.get("severity") in ("blocker", "unknown"):
                key = (str(c.get("id")), str(c["severity"]), str(c.get("summary") or ""),
                       str(c.get("fix") or ""))
                names = groups.setdefault(key, [])
                if not names or names[-1] != name:  # a check's cases on one node: once
                    names.append(name)
    order = sorted(groups.items(), key=lambda kv: (kv[0][1] != "blocker", -len(kv[1]), kv[0]))
    return [{"id": cid, "severity": severity, "summary": summary, "fix": fix, "nodes": names,
             "node_count": len(names)} for (cid, severity, summary, fix), names in order]


def _named(names: list[str], most: int) -> str:
    shown = ", ".join(names[:most]) + (", ..." if len(names) > most else "")
    return f"{shown} ({len(names)} node{'s' if len(names) > 1 else ''})"


def _problems_of(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    if "node_problems" in cluster:
        return list(cluster["node_problems"])
    return node_problems(cluster.get("reports") or {})


# -- writing -----------------------------------------------------------------------------


CROSS_NODE_SECTIONS = (("Cross-node blockers", "blocker"),
                       ("Cross-node unknown (could not decide)", "unknown"),
                       ("Cross-node warnings", "warning"))
NODE_SECTIONS = (("Node blockers", "blocker"), ("Node unknown (could not decide)", "unknown"))


def _cross_node_entry(c: dict[str, Any]) -> list[str]:
    lines = [f"### `{c['id']}` ({c['severity']})", "", c["summary"], ""]
    if c["id"] == "cluster-versions" and c["evidence"].get("odd_ones_out"):
        lines += _version_table(c["evidence"])
    lines += ["Evidence:", "", "```json", json.dumps(c["evidence"], indent=2,
                                                    sort_keys=True), "```", ""]
    if c["fix"]:
        lines += ["Fix:", "", "```bash", c["fix"], "```", ""]
    return lines + [f"Runbook: `{c['runbook']}`", ""]


def markdown(cluster: dict[str, Any]) -> str:
    lines = [f"# preflight cluster: {cluster['verdict']}", "",
             f"- nodes: {cluster['node_count']} ("
             + ", ".join(f"{v} {k}" for k, v in sorted(cluster["node_verdicts"].items())) + ")",
             f"- gathered by: {cluster['gathered_by']}",
             f"- started: {cluster['started']}, took {cluster['duration_s']} s"]
    lines += [f"-{line[1:]}" for line in _node_env_lines(cluster.get("node_env"))] + [""]
    # An UNKNOWN blocks GO but is not a blocker: each kind under its own heading.
    for title, severity in CROSS_NODE_SECTIONS:
        picked = [c for c in cluster["checks"] if c["severity"] == severity]
        if picked:
            lines += [f"## {title}", ""]
        for c in picked:
            lines += _cross_node_entry(c)
    lines += ["## Nodes", "", "| node | ip | role | verdict | blocking GO |",
              "|---|---|---|---|---|"]
    for r in cluster["nodes"]:
        blockers = ", ".join(f"`{b}`" for b in r["blockers"]) or r.get("reason", "")
        # role cpu: no GPU found nor offered (see cluster-gpus), and the profile it ran
        role = (r.get("role") or "") + (f" (profile cpu, not {r['profile_instead_of']})"
                                        if r.get("profile_instead_of") else "")
        # each cell as one escaped line: a node's own text (hostname, reason) with a `|`
        # added a column
        lines.append("| " + " | ".join(md_cell(c) for c in (
            r["name"], r["ip"] or "", role, r["verdict"], blockers)) + " |")
    silent: dict[tuple[str, str], list[str]] = {}  # nodes without a report, and the fix
    for r in cluster["nodes"]:
        if r.get("fix"):
            silent.setdefault((r.get("reason", ""), r["fix"]), []).append(r["name"])
    if silent:
        lines += ["", "## Nodes without a report", ""]
    for (reason, fix), names in silent.items():
        where = "each of those nodes" if len(names) > 1 else names[0]
        lines += [f"- **{_named(names, MAX_NAMED)}** UNKNOWN: {reason}", "",
                  f"  on {where}:", "", "  ```bash", *(f"  {x}" for x in fix.splitlines()),
                  "  ```", ""]
    lines += ["", "## Cross-node checks", ""]
    lines += [f"- `{c['id']}` {c['severity']}: {c['summary']}" for c in cluster["checks"]]
    lines += _allreduce_table(cluster["checks"])
    for title, severity in NODE_SECTIONS:
        picked = [p for p in _problems_of(cluster) if p["severity"] == severity]
        if picked:
            lines += ["", f"## {title}", ""]
        for p in picked:
            # every line of the fix (`set -a` alone, the first of three, does nothing)
            fix = p["fix"].splitlines()
            lines.append(f"- **{_named(p['nodes'], MAX_NAMED)}** `{p['id']}`: {p['summary']}")
            if fix:
                where = "each of those nodes" if len(p["nodes"]) > 1 else p["nodes"][0]
                lines += ["", f"  on {where}:", "", "  ```bash",
                          *(f"  {x}" for x in fix), "  ```", ""]
    return "\n".join(lines) + "\n"


def _allreduce_table(found: list[dict[str, Any]]) -> list[str]:
    """cluster-allreduce's sweep, as nccl-tests prints it (size, time, algbw, busbw)."""
    table = next((c["evidence"].get("table") for c in found
                  if c["id"] == "cluster-allreduce"), None)
    if not table:
        return []
    lines = ["", "## Cross-node all-reduce", "",
             "| size | time (us) | algbw (GB/s) | busbw (GB/s) | correct |",
             "|---|---|---|---|---|"]
    return lines + [f"| {r['size']} | {r['time_us']} | {r['algbw_gbps']} | {r['busbw_gbps']} | "
                    f"{'yes' if r['correct'] else 'NO'} |" for r in table]


def _version_table(evidence: dict[str, Any]) -> list[str]:
    facts = list(evidence["differ"])
    lines = ["| node | " + " | ".join(md_cell(f) for f in facts) + " |",
             "|---" * (len(facts) + 1) + "|",
             "| *most nodes* | " + " | ".join(md_cell(evidence["differ"][f]["majority"])
                                              for f in facts) + " |"]
    for name, row in evidence["odd_ones_out"].items():
        lines.append(f"| {md_cell(name)} | " + " | ".join(md_cell(row[f]) for f in facts)
                     + " |")
    return lines + [""]


def to_json(cluster: dict[str, Any], texts: dict[str, str] | None = None) -> str:
    """The summary indented for a person, then each node report: the text the node wrote
    when `texts` has it (already valid JSON: parse_report read it; encoding it again was
    a third of merge's CPU at 1,000 nodes), else encoded on one line (json's C encoder runs
    only without indent)."""
    texts = texts or {}
    # a row per node on one line: indent runs json's pure-Python encoder (1,000 rows:
    # a fifth of a second); the rows take the place of a one-off marker, keys in order
    marker = f"rows-{uuid.uuid4().hex}"
    head = json.dumps({k: marker if k == "nodes" else v for k, v in cluster.items()
                       if k != "reports"}, indent=1)
    rows = ",\n".join(f"  {json.dumps(row)}" for row in cluster["nodes"])
    head = head.replace(json.dumps(marker), f"[\n{rows}\n ]" if rows else "[]", 1)
    reports = ",\n".join(f"  {json.dumps(name)}: "
                          f"{texts[name].strip() if name in texts else json.dumps(rep)}"
                          for name, rep in cluster["reports"].items())
    return f'{head[:-2]},\n "reports": {{\n{reports}\n }}\n}}\n'


def write(cluster: dict[str, Any], report_dir: Path,
          texts: dict[str, str] | None = None) -> list[Path]:
    """Both files or neither: each goes to a temp name, renamed when all were written."""
    report_dir.mkdir(parents=True, exist_ok=True)
    # a lone surrogate a node report spelled as an escape ("\\ud800") cannot be written as
    # UTF-8: the Markdown shows it escaped (the JSON keeps the escape)
    # Control characters a node wrote (ESC, \r in a hostname, a summary, a fix) are `?`
    # there too, as on the terminal: `cat cluster-report.md` or a pager showing it raw ran
    # them (the JSON keeps them as written).
    md = "\n".join(printable(line) for line in markdown(cluster).split("\n"))
    outputs = {report_dir / CLUSTER_JSON: to_json(cluster, texts), report_dir / CLUSTER_MD: md}
    return report.write_all(outputs, report_dir)


def _cpu_role_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The nodes without GPUs by role, always named: a GPU node whose container got no GPU
    looks the same (--gpu-nodes makes that a blocker)."""
    groups: dict[str, list[str]] = {}
    for r in rows:
        if r.get("role") == "cpu":
            groups.setdefault(r.get("profile_instead_of") or "", []).append(r["name"])
    return ["  role cpu (no GPU found, none offered: not judged as GPU nodes"
            + (f"; ran profile cpu in place of {asked}" if asked else "") + "): "
            + _named(names, 5) for asked, names in groups.items()]


def _node_env_lines(env: dict[str, Any] | None) -> list[str]:
    """cluster --ray: which of this shell's variables the nodes ran with (names only)."""
    if not env:
        return []
    lines = ["  to every node (Ray runtime_env): " + ", ".join(env["passed"])] \
        if env["passed"] else []
    return lines + [f"  not passed to the nodes: {name} ({why})"
                    for name, why in env["left_out"].items()]


def terminal_lines(cluster: dict[str, Any]) -> list[str]:
    counts = cluster["node_verdicts"]
    lines = [f"preflight cluster verdict: {cluster['verdict']}  ({cluster['node_count']} node(s): "
             + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ")"]
    # nodes not GO for the same reason: one line naming them (8 nodes in the wrong conda
    # env were 8 lines)
    bad: dict[tuple[str, str], list[str]] = {}
    for r in cluster["nodes"]:
        if r["verdict"] != "GO":
            why = ", ".join(r["blockers"]) or r.get("reason", "")
            bad.setdefault((r["verdict"], why), []).append(r["name"])
    lines += _cpu_role_lines(cluster["nodes"])
    lines += _node_env_lines(cluster.get("node_env"))
    fixes = {r["name"]: r.get("fix", "") for r in cluster["nodes"]}
    for (verdict, why), names in list(bad.items())[:MAX_TERMINAL_NODES]:
        who = names[0] if len(names) == 1 else _named(names, 5)
        lines.append(f"  {verdict} {who}: {why}")
        if fixes[names[0]] and all(fixes[n] == fixes[names[0]] for n in names):
            # a node without a report: how to decide it (on that node)
            where = "each of those nodes" if len(names) > 1 else names[0]
            lines.append(f"      fix (on {where}):")
            lines += [f"        {line}" for line in fixes[names[0]].splitlines()]
    if len(bad) > MAX_TERMINAL_NODES:
        more = sum(len(v) for v in list(bad.values())[MAX_TERMINAL_NODES:])
        lines.append(f"  ... and {more} more node(s) not GO: see {CLUSTER_MD}")
    problems = _problems_of(cluster)
    for p in problems[:MAX_TERMINAL_PROBLEMS]:
        label = "UNKNOWN" if p["severity"] == "unknown" else "BLOCKER"
        lines.append(f"  {label} {p['id']} on {_named(p['nodes'], 5)}: {p['summary']}")
        if p["fix"]:
            where = "each of those nodes" if len(p["nodes"]) > 1 else p["nodes"][0]
            lines.append(f"      fix (on {where}):")
            lines += [f"        {line}" for line in p["fix"].splitlines()]
    if len(problems) > MAX_TERMINAL_PROBLEMS:
        lines.append(f"  ... and {len(problems) - MAX_TERMINAL_PROBLEMS} more node "
                     f"problem(s): see {CLUSTER_MD}")
    for c in cluster["checks"]:
        severity = Severity.parse(c["severity"])
        if severity.blocks:  # an UNKNOWN blocks GO but is not a blocker (the node terminal)
            label = "UNKNOWN" if severity is Severity.UNKNOWN else "BLOCKER"
            lines.append(f"  {label} {c['id']}: {c['summary']}")
            for i, line in enumerate(c["fix"].splitlines()):
                lines.append(f"      {'fix: ' if i == 0 else '     '}{line}")
    return lines


def finish(nodes: list[NodeReport], started: float, how: str, report_dir: Path,
           profile_dirs: list[Path], allow: set[str], extra: tuple[Finding, ...] = (),
           gpu_nodes: int | None = None, node_env: dict[str, Any] | None = None) -> int:
    """Judge, write, print; the exit code is the cluster verdict. `extra`: findings made
    while the nodes ran (cluster-reach under `cluster --ray`); `gpu_nodes`: --gpu-nodes;
    `node_env`: the variables `cluster --ray` gave the nodes (`passed`, `left_out`)."""
    name_nodes(nodes)
    findings = cross_checks(nodes, profile_dirs, allow, gpu_nodes) + list(extra)
    cluster = build(nodes, findings, started, how, node_env)
    try:
        written = write(cluster, report_dir,
                        {n.name: n.text for n in nodes if n.text and n.report is not None})
    except OSError as exc:
        print(printable(f"ERROR: {report_dir}: cannot write the cluster report: "
                        f"{exc.strerror}"))
        return 4
    # Each node wrote its own summaries, fixes, hostname: a hostile or broken node's ESC
    # sequence or \r would drive this terminal (the JSON and Markdown keep them as written).
    for line in terminal_lines(cluster):
        print(printable(line))
    print(printable("report: " + ", ".join(str(p) for p in written)))
    return 0 if cluster["verdict"] == "GO" else 1


def check_writable(report_dir: Path) -> None:
    """Bad input before any work: the cluster report could not be written. Creates
    nothing: a run that then stops on bad input leaves no empty report dir behind."""
    there = report_dir.absolute()
    while not there.exists() and there != there.parent:
        there = there.parent
    why = ("Not a directory" if not there.is_dir() else
           "" if os.access(there, os.W_OK | os.X_OK) else "Permission denied")
    if why:
        raise InputError(f"{report_dir}: report dir is not writable: {why}")


def merge(paths: list[str], report_dir: Path, profile_dirs: list[Path],
          allow: set[str], gpu_nodes: int | None = None) -> int:
    started = time.time()
    nodes = [read_node(p) for p in report_files(paths)]
    return finish(nodes, started, "merge", report_dir, profile_dirs, allow,
                  gpu_nodes=gpu_nodes)
