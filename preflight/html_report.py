"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched
at view time; a Content-Security-Policy forbids any load) built from the report dict.

Verdict, the blockers, the unknowns (could not decide) and the warnings with their fix
commands, the check table, and a plot of all-reduce bus bandwidth against message size from
the nccl-allreduce evidence, with the profile's floor.
"""

from __future__ import annotations

import math
import re
from html import escape
from typing import Any

from preflight.console import status
from preflight.model import Finding, Severity
from preflight.report import is_blocker, is_unknown

UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d1d1f;background:#fff}
h1{margin:0 0 4px;font-size:26px}.GO{color:#0a7d32}.NO-GO{color:#b3261e}
.meta{color:#555;margin-bottom:16px}table{border-collapse:collapse;width:100%;margin:8px 0}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f6}.PASS{color:#0a7d32}.WARN{color:#9a6700}.FAIL,.UNKNOWN{color:#b3261e}
.SKIP{color:#777}pre{background:#f6f8fa;padding:8px;overflow-x:auto;margin:4px 0}
.item{border-left:4px solid #b3261e;padding:2px 12px;margin:10px 0}
.item.warn{border-color:#d4a72c}.item.unknown{border-color:#8250df}.why{color:#444}
svg text{font:12px system-ui,sans-serif}
"""


def size_bytes(row: dict[str, Any]) -> int | None:
    """A table row's message size: `bytes` when recorded, else its label (`64 KiB`)."""
    recorded = row.get("bytes")
    if isinstance(recorded, int):
        return recorded
    match = re.fullmatch(r"(\d+) (B|KiB|MiB|GiB)", str(row.get("size", "")))
    return int(match.group(1)) * UNITS[match.group(2)] if match else None


def allreduce_points(findings: list[Finding]) -> tuple[list[tuple[int, float]], float | None]:
    """(bytes, busbw GB/s) points of the first nccl-allreduce table, and the floor."""
    for f in findings:
        table = f.evidence.get("table") if f.check == "nccl-allreduce" else None
        if not isinstance(table, list):
            continue
        points = []
        for row in table:
            size, bw = size_bytes(row), row.get("busbw_gbps")
            if size and isinstance(bw, int | float) and math.isfinite(bw):
                points.append((size, float(bw)))
        if points:
            floor = f.evidence.get("floor_gbps")
            return sorted(points), float(floor) if isinstance(floor, int | float) else None
    return [], None


def _label(size: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        if size >= UNITS[unit]:
            return f"{size / UNITS[unit]:g} {unit}"
    return f"{size} B"


def plot_svg(points: list[tuple[int, float]], floor: float | None) -> str:
    """busbw against log2(message size); the floor as a dashed line."""
    width, height, left, right, top, bottom = 720, 320, 64, 20, 20, 48
    xs = [math.log2(s) for s, _ in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = max([bw for _, bw in points] + [floor or 0.0]) * 1.15 or 1.0

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - y / y1 * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="busbw-plot" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="all-reduce bus bandwidth against message size">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
             f'<line x1="{left}" y1="{py(0):.1f}" x2="{width - right}" y2="{py(0):.1f}" '
             'stroke="#333"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{py(0):.1f}" stroke="#333"/>']
    for i in range(5):
        y = y1 * i / 4
        parts.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
        parts.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{width - right}" '
                     f'y2="{py(y):.1f}" stroke="#eee"/>')
    step = max(1, len(points) // 8)
    for size, _ in points[::step]:
        parts.append(f'<text x="{px(math.log2(size)):.1f}" y="{height - bottom + 16}" '
                     f'text-anchor="middle">{escape(_label(size))}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 8}" '
                 'text-anchor="middle">message size</text>')
    parts.append(f'<text x="14" y="{top + (height - top - bottom) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + (height - top - bottom) / 2})">busbw GB/s'
                 '</text>')
    if floor:
        parts.append(f'<line x1="{left}" y1="{py(floor):.1f}" x2="{width - right}" '
                     f'y2="{py(floor):.1f}" stroke="#b3261e" stroke-dasharray="6 4"/>')
        parts.append(f'<text x="{left + 6}" y="{py(floor) - 4:.1f}" text-anchor="start" '
                     f'fill="#b3261e">profile floor {floor:g} GB/s</text>')
    line = " ".join(f"{px(math.log2(s)):.1f},{py(bw):.1f}" for s, bw in points)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#1f6feb" stroke-width="2"/>')
    for size, bw in points:
        parts.append(f'<circle cx="{px(math.log2(size)):.1f}" cy="{py(bw):.1f}" r="3.5" '
                     f'fill="#1f6feb"><title>{escape(_label(size))}: {bw:g} GB/s</title>'
                     '</circle>')
    parts.append("</svg>")
    return "\n".join(parts)


def _item(f: Finding, cls: str) -> str:
    out = [f'<div class="item {cls}"><p><b>{escape(f.check)}</b> '
           f'<span class="{status(f)}">{status(f)}</span> [{escape(f.profile)}]: '
           f"{escape(f.summary)}</p>"]
    if f.why:
        out.append(f'<p class="why">{escape(f.why)}</p>')
    if f.fix:
        out.append(f"<pre><code>{escape(f.fix)}</code></pre>")
    if f.runbook:
        out.append(f'<p class="why">runbook: <code>{escape(f.runbook)}</code></p>')
    out.append("</div>")
    return "".join(out)


def render(report: dict[str, Any]) -> str:
    findings = [Finding.from_json(c) for c in report["checks"]]
    verdict = str(report["verdict"])
    head = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may be fetched when the report is viewed: no script, no remote style.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>preflight {escape(verdict)}: {escape(str(report['profile']))} on "
        f"{escape(str(report['host']))}</title><style>{CSS}</style></head><body>",
        f'<h1 class="{escape(verdict)}" id="verdict">{escape(verdict)}</h1>',
        f'<div class="meta">profile <b>{escape(str(report["profile"]))}</b>'
        + (f" ({escape(str(report['profile_note']))})" if report.get("profile_note") else "")
        + f' &middot; node <b>{escape(str(report["host"]))}</b> &middot; started '
        f'{escape(str(report["started"]))} &middot; {report["duration_s"]} s &middot; '
        f'preflight {escape(str(report["preflight_version"]))}'
        + ("" if report["complete"] else " &middot; <b>INCOMPLETE: not a GO</b>") + "</div>",
    ]
    body = []
    blockers = [f for f in findings if is_blocker(f) and not f.blocked_by]
    # UNKNOWN blocks GO but is no blocker: its own section, what could not be read and how
    # to decide it
    unknown = [f for f in findings if is_unknown(f) and not f.blocked_by]
    warnings = [f for f in findings if f.severity == Severity.WARNING]
    if blockers:
        body.append(f"<h2>Blockers ({len(blockers)})</h2>")
        body += [_item(f, "") for f in blockers]
    if unknown:
        body.append(f'<h2 id="unknown">Unknown: could not decide ({len(unknown)})</h2>')
        body += [_item(f, "unknown") for f in unknown]
    if warnings:
        body.append(f"<h2>Warnings ({len(warnings)})</h2>")
        body += [_item(f, "warn") for f in warnings]
    points, floor = allreduce_points(findings)
    if points:
        body.append("<h2>all_reduce bus bandwidth</h2>")
        body.append(plot_svg(points, floor))
    body.append("<h2>Checks</h2><table><thead><tr><th>status</th><th>check</th><th>stage"
                "</th><th>case</th><th>summary</th></tr></thead><tbody>")
    for f in findings:
        st = status(f)
        summary = f"blocked by {f.blocked_by}: {f.summary}" if f.blocked_by else f.summary
        body.append(f'<tr><td class="{st}">{st}</td><td>{escape(f.check)}</td>'
                    f"<td>{escape(f.stage)}</td><td>{escape(f.nodeid.rsplit('::', 1)[-1])}"
                    f"</td><td>{escape(summary)}</td></tr>")
    body.append("</tbody></table></body></html>")
    return "\n".join(head + body) + "\n"
