"""Python exception lines in a launched program's output: the first one names the cause.

One pattern for every log preflight reads (torchrun workloads, `swift sft`, SGLang):
`RuntimeError: ...`, `torch.OutOfMemoryError: ...`, `KeyboardInterrupt`, optionally
behind torchrun's `[rank0]: ` / `[default0]: ` prefix; our own `CudaMissing` too."""

from __future__ import annotations

import re
from collections.abc import Iterable

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
