"""The one way preflight turns user text into a number.

`str.isdigit()` accepts `²` and `٣`, which `int()` then rejects (or, for Arabic-Indic
digits, accepts where bash and torch do not); `float()` accepts `inf`, `nan` and
`1e400`. Every number a user gives (MASTER_PORT, NNODES, CUDA_VISIBLE_DEVICES,
--master_port, profile values, NVML replays) goes through here: ASCII digits only,
finite, in range, and the error names the key.
"""

from __future__ import annotations

import math
import re
from typing import TypeVar

_INT = re.compile(r"[+-]?[0-9]{1,30}", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,3})?",
                    re.ASCII)
PORT_RANGE = (1, 65535)


class NumberError(ValueError):
    """One line naming the key and why its value is not a usable number."""


def _show(raw: object) -> str:
    text = repr(raw) if isinstance(raw, str) else repr(raw)
    return text if len(text) <= 42 else text[:40] + "…"


def parse_int(raw: object, key: str, low: int | None = None, high: int | None = None) -> int:
    """A whole number written in ASCII digits (or a JSON/TOML int), within [low, high]."""
    if isinstance(raw, bool):
        raise NumberError(f"{key}={_show(raw)} is not a whole number")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _INT.fullmatch(raw.strip()):
        value = int(raw.strip())
    else:
        raise NumberError(f"{key}={_show(raw)} is not a whole number (ASCII digits)")
    return _in_range(value, key, raw, low, high)


def parse_float(raw: object, key: str, low: float | None = None,
                high: float | None = None) -> float:
    """A finite number (no inf / nan / overflow), within [low, high]."""
    if isinstance(raw, bool):
        raise NumberError(f"{key}={_show(raw)} is not a number")
    if isinstance(raw, int):
        if abs(raw) > 2**63:
            raise NumberError(f"{key}={_show(raw)} is out of range")
        value = float(raw)
    elif isinstance(raw, float):
        value = raw
    elif isinstance(raw, str) and _FLOAT.fullmatch(raw.strip()):
        value = float(raw.strip())
    else:
        raise NumberError(f"{key}={_show(raw)} is not a number (ASCII digits)")
    if not math.isfinite(value):
        raise NumberError(f"{key}={_show(raw)} is not a finite number")
    return _in_range(value, key, raw, low, high)


_N = TypeVar("_N", int, float)


def _in_range(value: _N, key: str, raw: object, low: _N | None, high: _N | None) -> _N:
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{'' if low is None else low}..{'' if high is None else high}"
        raise NumberError(f"{key}={_show(raw)} is out of range {bounds}")
    return value


def parse_port(raw: object, key: str) -> int:
    return parse_int(raw, key, *PORT_RANGE)


def maybe_int(raw: object, low: int | None = None, high: int | None = None) -> int | None:
    """The number, or None when `raw` is not one (for callers that report it as unknown)."""
    try:
        return parse_int(raw, "value", low, high)
    except NumberError:
        return None


def hides_every_gpu(visible_devices: str) -> bool:
    """CUDA_VISIBLE_DEVICES empty, also as a literal `""` / `''` (an env file or a quoted
    `docker -e` keeps the quotes): CUDA and torch read an empty or invalid first entry as the
    end of the list, so the job sees no GPU (torch 2.13.0 torch/cuda/__init__.py:860
    `_parse_visible_devices`: `_strtoul` returns -1 for '' (:892) and the loop stops at a
    negative value (:926), leaving [])."""
    return visible_devices.strip() in ("", '""', "''")
