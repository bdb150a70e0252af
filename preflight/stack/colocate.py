"""The share of each GPU a launch line hands its rollout engines.

Read from the shared evaluation of the launch script or command (`preflight.launch.shell`:
arrays, defaults, sourced files, prefixes, exactly as bash expands them) and the
environment, never by a reader of its own:
- SGLang: `--mem-fraction-static` (sglang `server_args.py`), slime's
  `--sglang-mem-fraction-static`, and an `SGLANG_MEM_FRAC` variable (a slime run on
  4xA800 passed it to its launcher that way);
- vLLM: ms-swift's `--vllm_gpu_memory_utilization` (GRPO colocate,
  swift/arguments/rlhf_args.py), vLLM's own `--gpu-memory-utilization`, and
  `*_VLLM_GPU_MEMORY_UTILIZATION` variables.
A value the evaluation could not know is a share with `known=False`: the check says
unknown, it never reads `⟨$(...)⟩` or half an array as a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from preflight.launch.shell import Command, Var, Word

if TYPE_CHECKING:
    from preflight.launch.spec import LaunchSpec

FLAGS = {
    "sglang": ("--mem-fraction-static", "--mem_fraction_static",
               "--sglang-mem-fraction-static", "--sglang_mem_fraction_static"),
    "vllm": ("--vllm_gpu_memory_utilization", "--vllm-gpu-memory-utilization",
             "--gpu-memory-utilization", "--gpu_memory_utilization"),
}
ENV_SUFFIX = {"sglang": "SGLANG_MEM_FRAC", "vllm": "VLLM_GPU_MEMORY_UTILIZATION"}


@dataclass(frozen=True)
class Share:
    engine: str  # "sglang" or "vllm"
    raw: str  # as expanded (⟨...⟩ where not known)
    fraction: float | None  # None: not a number, or not known
    source: str  # "--mem-fraction-static" or "env SGLANG_MEM_FRAC"
    known: bool = True
    reason: str = ""  # why the value is not known


def _fraction(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def _share(engine: str, value: Word | Var, source: str) -> Share:
    text = value.value
    if text is None:
        shown = getattr(value, "text", "") or "⟨unknown⟩"
        return Share(engine, shown, None, source, False, value.reason or "not known")
    return Share(engine, text, _fraction(text), source)


def from_commands(commands: Iterable[Command], variables: Mapping[str, Var],
                  environ: Mapping[str, str]) -> list[Share]:
    """One share per engine: the first flag a command is given, else a variable."""
    found: dict[str, Share] = {}
    commands = list(commands)
    for cmd in commands:
        argv = cmd.argv
        for i, word in enumerate(argv):
            flag, eq, _ = word.text.partition("=")
            for engine, names in FLAGS.items():
                if flag not in names or engine in found:
                    continue
                if eq:
                    value = Word(word.text.partition("=")[2], word.source, word.known,
                                 word.reason) if word.known else word
                elif i + 1 < len(argv):
                    value = argv[i + 1]
                else:
                    value = Word("", word.source)
                found[engine] = _share(engine, value, flag)
    # variables: a command's own environment (prefixes), the script's, then the caller's
    scopes: list[Mapping[str, Var]] = [c.env for c in commands] + [
        variables, {k: Var(v) for k, v in environ.items()}]
    for engine, suffix in ENV_SUFFIX.items():
        if engine in found:
            continue
        for scope in scopes:
            matching = sorted(k for k in scope if k.endswith(suffix))
            if matching:
                found[engine] = _share(engine, scope[matching[0]], f"env {matching[0]}")
                break
    return [found[e] for e in FLAGS if e in found]


def from_launch(spec: LaunchSpec | None, environ: Mapping[str, str]) -> list[Share]:
    """The shares of a `preflight.launch.spec.LaunchSpec` (None: environment only)."""
    if spec is None:
        return from_commands((), {}, environ)
    return from_commands(spec.commands, spec.variables, environ)


def shares(text: str, environ: Mapping[str, str]) -> list[Share]:
    """The shares of one command line, through the same evaluation as a launch script."""
    from preflight.launch.shell import evaluate_command

    if not text.strip():
        return from_commands((), {}, environ)
    trace = evaluate_command(text, environ)
    return from_commands(trace.commands, trace.variables, environ)
