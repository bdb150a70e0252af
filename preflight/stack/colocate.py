"""The share of each GPU a launch line hands its rollout engines.

Read from the launch command or script (bashlex words) and the environment:
- SGLang: `--mem-fraction-static` (sglang `server_args.py`), slime's
  `--sglang-mem-fraction-static`, and seed 002's `SGLANG_MEM_FRAC` variable;
- vLLM: ms-swift's `--vllm_gpu_memory_utilization` (GRPO colocate,
  swift/arguments/rlhf_args.py), vLLM's own `--gpu-memory-utilization`, and seed 001's
  `*_VLLM_GPU_MEMORY_UTILIZATION` variables.
A flag's value may be a variable (`${SGLANG_MEM_FRAC:-0.45}`): it is resolved from the
assignments on the line, then the environment, then its default.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

FLAGS = {
    "sglang": ("--mem-fraction-static", "--mem_fraction_static",
               "--sglang-mem-fraction-static", "--sglang_mem_fraction_static"),
    "vllm": ("--vllm_gpu_memory_utilization", "--vllm-gpu-memory-utilization",
             "--gpu-memory-utilization", "--gpu_memory_utilization"),
}
ENV_SUFFIX = {"sglang": "SGLANG_MEM_FRAC", "vllm": "VLLM_GPU_MEMORY_UTILIZATION"}
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
VARIABLE = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::?[-=]([^}]*))?\}?$")


@dataclass(frozen=True)
class Share:
    engine: str  # "sglang" or "vllm"
    raw: str  # as written
    fraction: float | None  # None: not a number
    source: str  # "--mem-fraction-static" or "env SGLANG_MEM_FRAC"


def words(text: str) -> list[str]:
    """The shell words of a command line or script, comments and quoting removed."""
    import bashlex

    out: list[str] = []
    try:
        for tree in bashlex.parse(text):
            _collect(tree, out)
        return out
    except (bashlex.errors.ParsingError, NotImplementedError, IndexError, AttributeError):
        pass
    for line in text.replace("\\\n", " ").splitlines():  # bashlex refuses some scripts
        try:
            out += shlex.split(line, comments=True)
        except ValueError:
            out += line.split()
    return out


def _collect(node, out: list[str]) -> None:
    if node.kind in ("word", "assignment"):
        out.append(node.word)
        return
    for part in getattr(node, "parts", None) or []:
        _collect(part, out)
    for attr in ("list", "command"):
        child = getattr(node, attr, None)
        if isinstance(child, list):
            for item in child:
                _collect(item, out)


def _resolve(value: str, assigned: Mapping[str, str], environ: Mapping[str, str]) -> str:
    match = VARIABLE.match(value)
    if not match:
        return value
    name, default = match.group(1), match.group(2)
    return assigned.get(name) or environ.get(name) or (default or value)


def _fraction(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def shares(text: str, environ: Mapping[str, str]) -> list[Share]:
    """One share per engine: the flag when the line has one, else the environment."""
    tokens = words(text) if text else []
    assigned = {m.group(1): m.group(2) for t in tokens if (m := ASSIGNMENT.match(t))}
    found: dict[str, Share] = {}
    for i, token in enumerate(tokens):
        flag, _, inline = token.partition("=")
        for engine, names in FLAGS.items():
            if flag in names:
                value = inline if inline else (tokens[i + 1] if i + 1 < len(tokens) else "")
                raw = _resolve(value, assigned, environ)
                found.setdefault(engine, Share(engine, raw, _fraction(raw), flag))
    for engine, suffix in ENV_SUFFIX.items():
        if engine in found:
            continue
        for source in (assigned, environ):
            names = sorted(k for k in source if k.endswith(suffix))
            if names:
                raw = source[names[0]]
                found[engine] = Share(engine, raw, _fraction(raw), f"env {names[0]}")
                break
    return [found[e] for e in FLAGS if e in found]
