"""Report snapshots: prove that a refactor leaves the JSON reports of the test scenarios
unchanged.

Recording (in the test process): with PREFLIGHT_SNAPSHOT_DIR set, tests/conftest.py calls
`record()` around every test; each preflight-report.json / cluster-report.json the test
wrote under its temp dirs is copied, normalized, to
$PREFLIGHT_SNAPSHOT_DIR/<test nodeid>.<report dir>.json. Normalized: the temp and repo
roots become <tmp> / <repo> and the run's timing (duration_s, started) is dropped, so two
runs of one tree differ only by what really varies (pids, ports, measured speeds).

Comparing:
    python tests/snapshots.py compare BASE NEW [--noise BASE2]
lists, per report and check, the differences in outcome, severity, summary, fix, why,
stage, blocked_by, runbook and each evidence key, plus the report's verdict/complete/
profile/counts. Fields only NEW has are additions (allowed) and are not listed. With
--noise, a field that already differs between BASE and BASE2 (the noise floor) is
compared with its digits masked, and skipped when even that differs between the two
baselines. A difference in numbers only (free disk, a port, a pid: the machine's state
between runs) is listed apart, for review, and does not fail. Exit 0 when nothing else
differs, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ENV = "PREFLIGHT_SNAPSHOT_DIR"
REPORT_NAMES = ("preflight-report.json", "cluster-report.json")
# The run's own timing: always different, never a verdict.
TIMING_KEYS = frozenset({"duration_s", "started", "elapsed_s", "finished"})
CHECK_FIELDS = ("outcome", "severity", "summary", "fix", "why", "stage", "blocked_by",
                "runbook", "profile")
TOP_FIELDS = ("verdict", "complete", "profile", "counts", "schema")
# A check is keyed by its id and parametrization; its nodeid (which file holds the test)
# may change when a check moves rooms: such moves are counted, not differences.
MOVED = "nodeid"


# -- recording (imported by tests/conftest.py) ------------------------------------------


def enabled() -> Path | None:
    where = os.environ.get(ENV)
    return Path(where) if where else None


def _safe(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    if len(name) > 180:  # file names stop at 255 bytes; keep it unique with a hash
        name = name[:160] + "-" + hashlib.sha1(text.encode()).hexdigest()[:12]
    return name


# The test process's own command line: a report shows it when the test holds a port; it
# says how the tests were started, not what preflight found.
_OWN_CMDLINE = " ".join(getattr(sys, "orig_argv", sys.argv))


def _scrub(value: Any, replace: list[tuple[re.Pattern[str], str]]) -> Any:
    if isinstance(value, str):
        if len(value) >= 20 and _OWN_CMDLINE.startswith(value):
            return "<the test process>"
        for pattern, by in replace:
            value = pattern.sub(by, value)
        return value
    if isinstance(value, list):
        return [_scrub(v, replace) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, replace) for k, v in value.items() if k not in TIMING_KEYS}
    return value


def normalize(report: Any, basetemp: Path | None, repo: Path = REPO) -> Any:
    tmp = re.escape(tempfile.gettempdir().rstrip("/"))
    replace = []
    if basetemp is not None:
        replace.append((re.compile(re.escape(str(basetemp))), "<tmp>"))
    replace += [
        (re.compile(re.escape(str(repo))), "<repo>"),
        # temp dirs of the preflight run itself (its own pytest, mkdtemp)
        (re.compile(tmp + r"/pytest-of-[^/\s\"']+/pytest-\d+"), "<tmp>"),
        (re.compile(tmp + r"/tmp[a-z0-9_]{8}\b"), "<tmp>"),
    ]
    return _scrub(report, replace)


def _reports(root: Path) -> Iterator[Path]:
    for name in REPORT_NAMES:
        yield from root.rglob(name)


def top_dirs(basetemp: Path) -> set[str]:
    try:
        # pytest also links <name>current to the newest dir of a name: not a second copy
        return {p.name for p in basetemp.iterdir() if not p.is_symlink()}
    except OSError:
        return set()


def save(out: Path, label: str, roots: list[Path], basetemp: Path, seen: set[Path],
         repo: Path = REPO) -> None:
    """Copy every report under `roots` not saved before, normalized, as <label>.<dir>.json."""
    out.mkdir(parents=True, exist_ok=True)
    for root in roots:
        if root.is_symlink():
            continue
        for path in sorted(_reports(root)):
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            try:
                data = json.loads(path.read_text(errors="replace"))
            except ValueError:
                data = {"<not json>": True}
            # the test's own temp dir name ends in a counter that shifts when tests are
            # added; the nodeid in `label` already names the test
            top, _, rest = path.relative_to(basetemp).as_posix().partition("/")
            where = f"{top.rstrip('0123456789')}/{rest}"
            name = _safe(f"{label}.{where.removesuffix('.json')}") + ".json"
            (out / name).write_text(json.dumps(normalize(data, basetemp, repo), indent=1,
                                               sort_keys=True, ensure_ascii=False))


# The recording hooks: registered by tests/conftest.py when PREFLIGHT_SNAPSHOT_DIR is set,
# or loaded on any tree with `PYTHONPATH=<dir holding this file> pytest -p snapshots`.

_SAVED: set[Path] = set()


def pytest_configure(config: pytest.Config) -> None:
    # Loaded through PYTHONPATH=<this file's dir>: the preflight runs under test must not
    # inherit that path (their environment is the test's).
    if os.environ.get("PYTHONPATH") == str(Path(__file__).resolve().parent):
        del os.environ["PYTHONPATH"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    out = enabled()
    basetemp = item.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    before = top_dirs(basetemp)
    yield
    if out is not None:
        new = sorted(top_dirs(basetemp) - before)
        save(out, item.nodeid, [basetemp / d for d in new], basetemp, _SAVED,
             item.config.rootpath)


def pytest_sessionfinish(session: pytest.Session) -> None:
    out = enabled()
    if out is not None:  # reports of module- and session-scoped fixtures
        basetemp = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
        save(out, "session", [basetemp / d for d in sorted(top_dirs(basetemp))], basetemp,
             _SAVED, session.config.rootpath)


# -- comparing ---------------------------------------------------------------------------


def _load(folder: Path) -> dict[str, Any]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _param(nodeid: str) -> str:
    """The check's parametrization (the profile): its key survives a move to another file."""
    # digits masked: a parametrization may name a free port picked at run time
    return _DIGITS.sub("#", nodeid[nodeid.index("["):]) if "[" in nodeid else ""


def _fields(report: Any) -> dict[str, Any]:
    """A flat {field path: value} of what must not change."""
    flat: dict[str, Any] = {}
    if not isinstance(report, dict):
        return {"<report>": report}
    for key in TOP_FIELDS:
        if key in report:
            flat[key] = report[key]
    for key, value in (report.get("node") or {}).items():
        flat[f"node.{key}"] = value
    for kind in ("checks", "findings"):
        seen: dict[tuple[str, str], int] = {}
        for check in report.get(kind) or []:
            if not isinstance(check, dict):
                continue
            nodeid = str(check.get("nodeid", ""))
            ident = (str(check.get("id", check.get("check"))), _param(nodeid))
            seen[ident] = seen.get(ident, 0) + 1
            at = f"{ident[0]}{ident[1]}" + (f" #{seen[ident]}" if seen[ident] > 1 else "")
            flat[f"{at} {MOVED}"] = nodeid
            for key in CHECK_FIELDS:
                if key in check:
                    flat[f"{at} {key}"] = check[key]
            for key, value in (check.get("evidence") or {}).items():
                flat[f"{at} evidence.{key}"] = value
    for key in ("nodes", "hosts"):  # cluster reports: compare the rest as a whole
        if key in report:
            flat[key] = report[key]
    return flat


def _test_file(name: str) -> str:
    return name.split(".py", 1)[0]


_DIGITS = re.compile(r"\d+(\.\d+)?")


def _masked(value: Any) -> str:
    return _DIGITS.sub("#", json.dumps(value, sort_keys=True, ensure_ascii=False))


def compare(base: dict[str, Any], new: dict[str, Any],
            noise: dict[str, Any] | None) -> tuple[list[str], int, set[str]]:
    """The differences, how many fields were skipped as noise, and the moved tests."""
    lines: list[str] = []
    skipped = 0
    moved: set[str] = set()
    recorded = {_test_file(name) for name in new}
    for name in sorted(set(base) - set(new)):
        # only test files NEW recorded at all: a branch records just its own area
        if (noise is None or name in noise) and _test_file(name) in recorded:
            lines.append(f"{name}: missing in NEW")
    for name in sorted(set(base) & set(new)):
        b, n = _fields(base[name]), _fields(new[name])
        z = _fields(noise[name]) if noise is not None and name in noise else None
        for key in sorted(b):
            if key not in n:
                lines.append(f"{name}: {key}: gone (was {json.dumps(b[key])[:300]})")
                continue
            if b[key] == n[key]:
                continue
            if key.endswith(f" {MOVED}"):
                if _DIGITS.sub("#", b[key]) != _DIGITS.sub("#", n[key]):
                    moved.add(f"{b[key]} -> {n[key]}")
                continue
            if z is not None and z.get(key, b[key]) != b[key]:
                if _masked(z.get(key)) != _masked(b[key]):
                    skipped += 1
                    continue
                if _masked(n[key]) == _masked(b[key]):
                    continue
            digits = "(numbers only) " if _masked(n[key]) == _masked(b[key]) else ""
            lines.append(f"{digits}{name}: {key}:\n    base: {json.dumps(b[key])[:600]}"
                         f"\n    new:  {json.dumps(n[key])[:600]}")
    return lines, skipped, moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmp = sub.add_parser("compare", help="differences between two snapshot folders")
    cmp.add_argument("base", type=Path)
    cmp.add_argument("new", type=Path)
    cmp.add_argument("--noise", type=Path,
                     help="a second baseline run: fields that differ between the two "
                          "baselines are compared with digits masked, or skipped")
    args = parser.parse_args(argv)
    base, new = _load(args.base), _load(args.new)
    noise = _load(args.noise) if args.noise else None
    lines, skipped, moved = compare(base, new, noise)
    only_new = sorted(set(new) - set(base))
    for name in only_new:
        print(f"only in NEW (a new scenario, not compared): {name}")
    common = len(set(base) & set(new))
    numeric = [ln for ln in lines if ln.startswith("(numbers only)")]
    lines = [ln for ln in lines if ln not in numeric]
    for line in lines + numeric:
        print(line)
    for line in sorted(moved):
        print(f"moved (not a difference): {line}")
    print(f"-- {common} report(s) compared, {len(lines)} difference(s), {len(numeric)} in "
          f"numbers only (review them: free disk, ports, pids vary), {len(moved)} moved "
          f"test(s), {skipped} noisy "
          f"field(s) skipped; {len(set(base) - set(new))} only in BASE, {len(only_new)} only "
          f"in NEW (new scenarios)")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
