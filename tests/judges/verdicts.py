"""What a finding makes of a Verdict, through the real `Recorder.conclude`, in-process."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from preflight.model import Verdict
from preflight.plugin import Recorder


@dataclass(frozen=True)
class Outcome:
    kind: str  # "skipped", "blocker", "unknown", "warning" or "ok"
    text: str  # the skip reason, the failure or warning message, the passing summary
    fix: str
    evidence: dict[str, object]


def judged(verdict: Verdict) -> Outcome:
    rec = Recorder("judge-test", None)
    kind = "ok"
    try:
        rec.conclude(verdict)
    except pytest.skip.Exception as exc:
        return Outcome("skipped", str(exc.msg), rec.fix_text, rec.facts)
    except pytest.fail.Exception as exc:
        return Outcome("unknown", str(exc.msg), rec.fix_text, rec.facts)
    except AssertionError as exc:
        return Outcome("blocker", str(exc), rec.fix_text, rec.facts)
    if rec.warned:
        kind = "warning"
    return Outcome(kind, rec.note, rec.fix_text, rec.facts)
