"""The report: JSON (versioned), Markdown, and the terminal lines, built from findings.

Writes are atomic: every file goes to a temp name first and is renamed only when all
of them were written, so a failed write never leaves a half report.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from preflight.model import STAGES, Finding, Severity
from preflight.redact import printable

SCHEMA_VERSION = 1
JSON_NAME = "preflight-report.json"
MD_NAME = "preflight-report.md"
HTML_NAME = "preflight-report.html"


# Root causes: a check whose subject another check found missing fails too, for the same
# reason. It is reported once, under the root ("blocked by gpu-inventory: NVML ..."), when
# its summary names the very error the root recorded in its evidence. The verdict is
# unchanged: the dependent still failed.
ROOT_CAUSES: dict[str, tuple[str, tuple[str, ...]]] = {
    # root check: (evidence key holding the missing subject's error, dependent checks)
    "gpu-inventory": ("nvml_error", (
        "gpu-free", "gpu-health", "cuda-stack", "profile-match", "launch-gpus",
        "nccl-allreduce", "train-10-steps", "libuv-store", "sglang-generate", "swift-smoke-10",
        "swift-grpo-10")),
}


def mark_root_causes(findings: list[Finding]) -> None:
    """Set `blocked_by` on each failing dependent whose summary names its root's error."""
    for root, (key, dependents) in ROOT_CAUSES.items():
        errors = {str(f.evidence.get(key)) for f in findings
                  if f.check == root and f.severity.blocks and f.evidence.get(key)}
        if not errors:
            continue
        for f in findings:
            if (f.check in dependents and f.severity.blocks
                    and any(err in f.summary for err in errors)):
                f.blocked_by = root


def is_blocker(f: Finding) -> bool:
    """A real blocker: it failed and was decided (an UNKNOWN blocks GO but is listed apart)."""
    return f.severity != Severity.UNKNOWN and (f.severity.blocks
                                               or f.outcome in ("failed", "error"))


def is_unknown(f: Finding) -> bool:
    """It could not decide (NVML not read, a value the launch reading cannot know, a crash):
    never GO, but not a blocker either; each renderer lists it in its own section."""
    return f.severity == Severity.UNKNOWN


def root_reason(findings: list[Finding], root: str) -> str:
    key = ROOT_CAUSES.get(root, ("", ()))[0]
    for f in findings:
        if f.check == root and f.evidence.get(key):
            return str(f.evidence[key])
    return ""


def build(findings: list[Finding], *, verdict: str, profile: str, host: str, started: str,
          duration_s: float, complete: bool, version: str) -> dict[str, Any]:
    mark_root_causes(findings)
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.severity.label] = counts.get(f.severity.label, 0) + 1
    stages = []
    for stage in _stages(findings):
        members = [f for f in findings if f.stage == stage]
        outcomes = {o: sum(f.outcome == o for f in members)
                    for o in ("passed", "failed", "skipped", "error")}
        stages.append({"stage": stage, **outcomes,
                       "duration_s": round(sum(f.duration_s for f in members), 3)})
    return {
        "schema": SCHEMA_VERSION,
        "preflight_version": version,
        "verdict": verdict,
        "complete": complete,
        "profile": profile,
        "host": host,
        "started": started,
        "duration_s": round(duration_s, 3),
        "counts": counts,
        "stages": stages,
        "checks": [f.to_json() for f in findings],
    }


def _stages(findings: list[Finding]) -> list[str]:
    seen = {f.stage for f in findings}
    return [s for s in STAGES if s in seen] + sorted(seen - set(STAGES))


def _by(findings: list[Finding], *severities: Severity) -> list[Finding]:
    return [f for f in findings if f.severity in severities]


# Characters that change what a Markdown renderer shows in running text: emphasis, code
# spans, links, raw HTML (`<img ...>`), entities (`&lt;`), strikethrough. A summary quotes
# measured values (a URL, a command line, a variable's value): escaped (CommonMark allows a
# backslash before any ASCII punctuation), a value reads as it was measured, never as markup.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&~|])")
# ... and at the start of a line: a heading, a quote, a list item, a setext underline.
_MD_LEADING = re.compile(r"^([#>+=-]|\d+[.)])", re.MULTILINE)


def md_text(text: str) -> str:
    """`text` as Markdown that renders as exactly `text` (control characters as `?`:
    redact.printable)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", printable(text))
    # `1. x` is a list item however its digits are escaped: the `.` / `)` is escaped
    return _MD_LEADING.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], escaped)


def markdown(report: dict[str, Any]) -> str:
    findings = [Finding.from_json(c) for c in report["checks"]]
    lines = [
        f"# preflight: {report['verdict']}",
        "",
        f"- profile: `{report['profile']}`",
        f"- host: `{report['host']}`",
        f"- started: {report['started']}, took {report['duration_s']} s",
    ]
    if not report["complete"]:
        lines.append("- **incomplete run**: the session was interrupted; this is not a GO")
    blockers = _by(findings, Severity.BLOCKER)
    unknown = _by(findings, Severity.UNKNOWN)
    sections = [
        ("Blockers", blockers),
        # they block GO too, but nothing was found wrong: what could not be read, and how
        # to decide it
        ("Unknown (could not decide)", unknown),
        ("Warnings", _by(findings, Severity.WARNING)),
    ]
    for title, group in sections:
        if not group:
            continue
        lines += ["", f"## {title}", ""]
        for f in group:
            lines += [f"### `{f.check}` ({f.severity.label}) — {md_text(f.nodeid)}", "",
                      md_text(f.summary), ""]
            if f.evidence:
                lines += ["Evidence:", "", "```json",
                          json.dumps(f.evidence, indent=2, sort_keys=True), "```", ""]
            if f.fix:
                lines += ["Fix:", "", "```bash", f.fix, "```", ""]
            if f.why:
                lines += [f"Why: {md_text(f.why)}", ""]
            if f.runbook:
                lines += [f"Runbook: `{f.runbook}`", ""]
    if report["stages"]:
        lines += ["", "## Stages", "", "| stage | passed | failed | skipped | error | wall s |",
                  "|---|---|---|---|---|---|"]
        for s in report["stages"]:
            lines.append(f"| {s['stage']} | {s['passed']} | {s['failed']} | {s['skipped']} "
                         f"| {s['error']} | {s['duration_s']} |")
    rest = [f for f in findings if f not in blockers and f not in unknown
            and f.severity != Severity.WARNING]
    passed = [f for f in rest if f.outcome == "passed"]
    skipped = [f for f in rest if f.outcome == "skipped"]
    if passed:
        lines += ["", "## Passed", ""] + [f"- `{f.check}` {md_text(f.nodeid)}: "
                                           f"{md_text(f.summary)}" for f in passed]
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- `{f.check}` {md_text(f.nodeid)}: {md_text(f.summary)}"
                  for f in skipped]
    return "\n".join(lines) + "\n"


def terminal_lines(report: dict[str, Any]) -> list[str]:
    findings = [Finding.from_json(c) for c in report["checks"]]
    counts = report["counts"]
    unknown = counts.get("unknown", 0)
    # the count keeps its meaning (what blocks GO, UNKNOWN included) and says how many of
    # them only could not decide
    head = (f"preflight verdict: {report['verdict']}  (profile {report['profile']}; "
            f"{counts.get('blocker', 0) + unknown} blocker(s)"
            + (f" (incl. {unknown} unknown)" if unknown else "") + ", "
            f"{counts.get('warning', 0)} warning(s), {len(findings)} check(s))")
    lines = [head]
    if not report["complete"]:
        lines.append("  run incomplete: interrupted before every check ran")
    for f in findings:
        if f.severity.blocks or f.severity == Severity.WARNING:
            tag = "UNKNOWN" if is_unknown(f) else "BLOCKER" if f.severity.blocks else "WARN"
            lines.append(f"  {tag} {f.check} [{f.profile}]: {f.summary}")
            for command in f.fix.splitlines():
                lines.append(f"      fix: {command}")
    return lines


def write(report: dict[str, Any], report_dir: Path) -> list[Path]:
    from preflight import html_report  # it imports console, which imports this module

    report_dir.mkdir(parents=True, exist_ok=True)
    outputs = {
        report_dir / JSON_NAME: json.dumps(report, indent=2, sort_keys=False) + "\n",
        report_dir / MD_NAME: markdown(report),
        report_dir / HTML_NAME: html_report.render(report),
    }
    return write_all(outputs, report_dir, mode=0o644)  # scrubbed, meant to be read


def write_all(outputs: dict[Path, str], report_dir: Path, mode: int | None = None) -> list[Path]:
    """Every file or none: each goes to a temp name in `report_dir`, all renamed once all
    were written. `mode`: chmod before writing (mkstemp creates 0600)."""
    staged: list[tuple[str, Path]] = []
    try:
        for target, text in outputs.items():
            fd, tmp = tempfile.mkstemp(dir=report_dir, prefix=f".{target.name}.")
            staged.append((tmp, target))
            if mode is not None:
                os.fchmod(fd, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        for tmp, target in staged:
            os.replace(tmp, target)
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return list(outputs)
