"""preflight's own terminal output (under the `preflight` command): pure, report in, lines out.

One line per check id (its cases folded: a check parametrized per GPU is one line), grouped
by stage; then the blockers, the unknowns (checks that could not decide: they block GO but
are not blockers) and the warnings with their fix commands, each once (a check that failed
only because another check's subject is missing is listed under that root cause); the
verdict line last. Each line comes with pytest TerminalWriter markup, which the writer
drops when the output is not a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from preflight.model import Finding, Severity
from preflight.report import is_blocker, is_unknown, root_reason

Line = tuple[str, dict[str, bool]]

STATUS_MARKUP = {
    "PASS": {"green": True},
    "WARN": {"yellow": True},
    "FAIL": {"red": True, "bold": True},
    "UNKNOWN": {"red": True, "bold": True},
    "SKIP": {},
}


def status(f: Finding) -> str:
    if f.outcome == "skipped":
        return "SKIP"
    if f.severity == Severity.UNKNOWN:
        return "UNKNOWN"
    if f.severity.blocks or f.outcome in ("failed", "error"):
        return "FAIL"
    if f.severity == Severity.WARNING:
        return "WARN"
    return "PASS"


_RANK = {"SKIP": 0, "PASS": 1, "WARN": 2, "FAIL": 3, "UNKNOWN": 4}


def header(version: str, profile: str, why: str, host: str, stages: list[str]) -> Line:
    why = f" ({why})" if why else ""
    text = f"preflight {version} | profile {profile}{why} | node {host}"
    if stages:
        text += f" | stages {', '.join(stages)}"
    return text, {"bold": True}


def _groups(findings: list[Finding]) -> list[tuple[str, str, list[Finding]]]:
    """(stage, check id, cases) in report order."""
    out: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        out.setdefault((f.stage, f.check), []).append(f)
    return [(stage, check, cases) for (stage, check), cases in out.items()]


def _worst(cases: list[Finding]) -> Finding:
    return max(cases, key=lambda f: _RANK[status(f)])


def _reason(cases: list[Finding], findings: list[Finding]) -> str:
    worst = _worst(cases)
    st = status(worst)
    if worst.blocked_by:
        text = f"blocked by {worst.blocked_by}: {root_reason(findings, worst.blocked_by)}"
    else:
        text = worst.summary or "ok"
    bad = [f for f in cases if status(f) == st]
    if len(cases) > 1:
        text += f" ({len(bad)} of {len(cases)} cases {st})" if st != "PASS" else \
            f" ({len(cases)} cases)"
    return text


def _fix_lines(fix: str) -> list[str]:
    return [line for line in fix.splitlines() if line.strip()]


def render(report: dict[str, Any], *, verbose: bool = False, not_run: list[str] | None = None,
           written: list[str] | None = None) -> list[Line]:
    findings = [Finding.from_json(c) for c in report["checks"]]
    lines: list[Line] = []
    stage_now = None
    for stage, check, cases in _groups(findings):
        if stage != stage_now:
            stage_now = stage
            took = next((s["duration_s"] for s in report.get("stages", [])
                         if s["stage"] == stage), None)
            lines.append((f"{stage}" + (f" ({took} s)" if took is not None else ""),
                          {"bold": True}))
        st = status(_worst(cases))
        lines.append((f"  {st:<7} {check:<20} {_reason(cases, findings)}", STATUS_MARKUP[st]))
        if verbose:
            for f in cases:
                lines.append((f"          {f.nodeid.rsplit('::', 1)[-1]}: {status(f)} "
                              f"{f.summary}", {}))
                if f.evidence:
                    lines.append(("            evidence: "
                                  + json.dumps(f.evidence, sort_keys=True, default=str), {}))
    if not_run:
        lines.append((f"not run: stage {', '.join(not_run)} "
                      "(--workloads, --stack or --all runs it)", {}))

    # An UNKNOWN blocks GO too, but it is not a blocker: it has its own section, with what
    # could not be read (its summary) and the commands that fix or decide it.
    groups: tuple[tuple[str, Callable[[Finding], bool], dict[str, bool]], ...] = (
        ("blockers", is_blocker, {"red": True, "bold": True}),
        ("unknown (could not decide)", is_unknown, {"red": True, "bold": True}),
        ("warnings", lambda f: f.severity == Severity.WARNING, {"yellow": True, "bold": True}),
    )
    for title, pick, markup in groups:
        chosen = [(stage, check, cases) for stage, check, cases in _groups(findings)
                  if any(pick(f) and not f.blocked_by for f in cases)]
        if not chosen:
            continue
        lines.append(("", {}))
        lines.append((f"{title}:", markup))
        for _, check, cases in chosen:
            own = [f for f in cases if pick(f) and not f.blocked_by]
            lines.append((f"  {check}: {own[0].summary}", markup))
            blocked = sorted({f.check for f in findings if f.blocked_by == check})
            if blocked:
                lines.append((f"    also fails because of it: {', '.join(blocked)}", {}))
            whys = list(dict.fromkeys(f.why for f in own if f.why))
            for why in whys:
                lines.append((f"    why: {why}", {}))
            fixes = list(dict.fromkeys(line for f in own for line in _fix_lines(f.fix)))
            for line in fixes:
                lines.append((f"    $ {line}", {}))
            runbook = own[0].runbook
            if runbook and verbose:
                lines.append((f"    runbook: {runbook}", {}))

    lines.append(("", {}))
    if written:
        lines.append(("report: " + ", ".join(written), {}))
    lines.append(verdict_line(report, findings))
    return lines


def verdict_line(report: dict[str, Any], findings: list[Finding]) -> Line:
    roots = {(f.check) for f in findings
             if (f.severity.blocks or f.outcome in ("failed", "error")) and not f.blocked_by}
    # the count keeps its meaning (checks that block GO, UNKNOWN included); it says how many
    # of them only could not decide
    unknown = roots - {f.check for f in findings if is_blocker(f) and not f.blocked_by}
    blocked = {f.check for f in findings if f.blocked_by}
    warnings = {f.check for f in findings if f.severity == Severity.WARNING}
    ids = {f.check for f in findings}
    skipped = {f.check for f in findings} - {f.check for f in findings if f.outcome != "skipped"}
    parts = [f"{len(roots)} blocker(s)" + (f" (incl. {len(unknown)} unknown)" if unknown
                                            else "")
             + (f" (+{len(blocked)} blocked by them)" if blocked else ""),
             f"{len(warnings)} warning(s)",
             f"{len(ids)} check(s), {len(skipped)} skipped",
             f"{report['duration_s']} s"]
    text = f"{report['verdict']}  profile {report['profile']}: " + ", ".join(parts)
    if not report["complete"]:
        text += " -- INCOMPLETE: not every selected check ran"
    go = report["verdict"] == "GO"
    return text, {"bold": True, "green": go, "red": not go}
