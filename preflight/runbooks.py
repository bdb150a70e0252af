"""Where the runbook entry of each pitfall lives (Markdown, one file per check id)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).parent


def runbook_dir() -> Path:
    # Installed wheels carry runbooks/ inside the package; a checkout has it at the top.
    for candidate in (_PACKAGE / "runbooks", _PACKAGE.parent / "runbooks"):
        if candidate.is_dir():
            return candidate
    return _PACKAGE.parent / "runbooks"


def path_for(check: str) -> Path:
    return runbook_dir() / f"{check}.md"


def all_ids() -> set[str]:
    return {p.stem for p in runbook_dir().glob("*.md") if p.stem != "README"}


def title(check: str) -> str:
    path = path_for(check)
    try:
        first = path.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError):
        return ""
    return first.lstrip("# ").strip()
