"""Python exception lines in a launched program's output: the first one names the cause.

One pattern for every log preflight reads (torchrun workloads, `swift sft`, SGLang):
`RuntimeError: ...`, `torch.OutOfMemoryError: ...`, `KeyboardInterrupt`, optionally
behind torchrun's `[rank0]: ` / `[default0]: ` prefix; our own `CudaMissing` too."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

EXCEPTION_LINE = re.compile(
    r"^(?:\[(?:rank|default)\d+\]:\s*)?((?:[A-Za-z_][\w.]*\.)?\w*"
    r"(?:Error|Exception|Exit|Interrupt|Missing)\b(?::.*)?)$")


def exception_lines(lines: Iterable[str], limit: int | None = None) -> list[str]:
    """The distinct exception lines, in order, without the rank prefix; at most `limit`."""
    found: list[str] = []
    for line in lines:
        match = EXCEPTION_LINE.match(line.strip())
        text = match.group(1).strip() if match else ""
        if text and text not in found:
            found.append(text)
            if limit is not None and len(found) == limit:
                break
    return found


# torchrun's summary of a failed launch names the rank that failed first, its exit code and
# signal (torch/distributed/elastic/multiprocessing/errors/__init__.py:187-200, the
# "Root Cause (first observed failure)" block of ChildFailedError, up to the table's
# closing `====` line): `rank : R (local_rank: L)`, `exitcode : -N (pid: P)  (SIGNAME)`.
ROOT_CAUSE = "Root Cause (first observed failure)"
_FAILED_RANK = re.compile(r"\s*rank\s*:\s*(\d+)(?: \(local_rank: (\d+)\))?")
_FAILED_EXIT = re.compile(r"\s*exitcode\s*:\s*(-?\d+)\b(?:.*\((SIG[A-Z0-9]+)\))?")


def root_cause(lines: Sequence[str]) -> dict[str, Any] | None:
    """The rank torchrun's Root Cause block in `lines` names: rank, local_rank, exitcode,
    signal (None unless it died by one); None when there is no such block."""
    start = next((i for i, line in enumerate(lines) if ROOT_CAUSE in line), None)
    if start is None:
        return None
    found: dict[str, Any] = {}
    for line in lines[start + 1:]:
        if line.lstrip().startswith(("=", "-")):  # the table's end
            break
        if "rank" not in found and (rank := _FAILED_RANK.match(line)):
            found.update(rank=int(rank[1]), local_rank=int(rank[2]) if rank[2] else None)
        elif "exitcode" not in found and (code := _FAILED_EXIT.match(line)):
            found.update(exitcode=int(code[1]), signal=code[2])
    return found if {"rank", "exitcode"} <= found.keys() else None
