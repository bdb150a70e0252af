"""Findings and the verdict: plain data, no I/O, no pytest."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

# The stages of a run, in the order they run and are reported: static (reads the node),
# workload (a real torchrun), stack (the user's training stack).
STAGES = ("static", "workload", "stack")


class Severity(enum.IntEnum):
    """How bad a finding is. Ordered so that the worst one wins.

    UNKNOWN (a check that could not decide) ranks above BLOCKER: a node we could
    not judge is never GO.
    """

    OK = 0
    INFO = 1  # skipped: the subject is absent and the profile does not require it
    WARNING = 2
    BLOCKER = 3
    UNKNOWN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (choose from {choices})") from None

    @property
    def blocks(self) -> bool:
        return self >= Severity.BLOCKER


@dataclass
class Finding:
    """One check run against one profile: what was measured and what to do."""

    check: str
    nodeid: str
    outcome: str = "passed"
    severity: Severity = Severity.OK
    summary: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""
    runbook: str = ""
    profile: str = ""
    stage: str = ""
    duration_s: float = 0.0
    why: str = ""  # the explanation of `fix` (which holds only shell commands)
    blocked_by: str = ""  # the check whose missing subject made this one fail (root cause)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["id"] = data.pop("check")
        data["severity"] = self.severity.label
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        data = dict(data)
        data["check"] = data.pop("id")
        data["severity"] = Severity.parse(data["severity"])
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})  # newer fields: ignored


def verdict(findings: list[Finding], complete: bool = True) -> str:
    """GO only when the run finished, something was checked and nothing blocks."""
    if not complete or not findings:
        return "NO-GO"
    if any(f.severity.blocks or f.outcome in ("failed", "error") for f in findings):
        return "NO-GO"
    return "GO"


class Kind(enum.Enum):
    """What a judge found: it blocks, it could not tell (also blocks GO), or it warns."""

    BLOCKER = "blocker"
    UNKNOWN = "unknown"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong, with its own fix: the text never depends on what else was found."""

    text: str
    fix: str = ""  # copy-paste shell; `cmd  # comment` is fine, prose goes in `why`
    why: str = ""
    kind: Kind = Kind.BLOCKER

    @classmethod
    def unknown(cls, text: str, fix: str = "", why: str = "") -> Problem:
        return cls(text, fix, why, Kind.UNKNOWN)

    @classmethod
    def warning(cls, text: str, fix: str = "", why: str = "") -> Problem:
        return cls(text, fix, why, Kind.WARNING)


@dataclass
class Verdict:
    """What a judge returns: pure data, built from typed facts and the profile.

    The adapter (`Recorder.conclude`) records `evidence`, then: `skip` set -> the check
    skips; any blocker -> it fails with `headline: text; text` and the blockers' fixes;
    else any unknown -> UNKNOWN with the unknowns' texts and fixes; else any warning -> WARN;
    else it passes saying `ok`. `fix` / `why` are what the report shows when the chosen
    problems carry none (a passing check still names the fix its runbook gives).
    """

    problems: list[Problem] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    ok: str = ""
    headline: str = ""
    fix: str = ""
    why: str = ""
    skip: str = ""
    # between the deciding problems' fixes: a fix with a comment (`cmd  # why`) ends its
    # line, so a `; ` after it would join the next command to the comment (fixes.split)
    fix_joiner: str = "\n"

    def of(self, kind: Kind) -> list[Problem]:
        return [p for p in self.problems if p.kind is kind]

    @property
    def deciding(self) -> list[Problem]:
        """The problems that decide the outcome: blockers, else unknowns, else warnings."""
        return self.of(Kind.BLOCKER) or self.of(Kind.UNKNOWN) or self.of(Kind.WARNING)

    @property
    def message(self) -> str:
        texts = "; ".join(p.text for p in self.deciding)
        if self.headline and self.of(Kind.BLOCKER):
            return f"{self.headline}: {texts}"
        return texts
