"""The launch checks over a corpus of real launch scripts: each `*.sh` under each
repository directory given, read as `bash SCRIPT` run from that repository's root (no
GPU, ports free, 8 GPUs counted), with launch-syntax's `bash -n` as the plugin runs it.
One JSON line per script: {"repo", "script", "outcomes": {check id: PASS/FAIL/UNKNOWN/
WARN/SKIP/ERROR}}. Compare two commits' lines to see what a change moves (cry-wolf):

    python benchmarks/launch_corpus.py CHECKOUT/verl CHECKOUT/ms-swift ... > after.jsonl

Run it with another checkout first on sys.path (`cd /elsewhere && PYTHONPATH=OLD python
.../launch_corpus.py ...`) for the lines before. Nothing in the scripts is run but
`bash -n`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

from preflight.checks import test_launch as adapters
from preflight.judges import launch as judge
from preflight.judges import multinode as multinode_judge
from preflight.launch import spec as launch
from preflight.model import Kind, Verdict
from preflight.plugin import _with_syntax
from preflight.probes import multinode
from preflight.redact import redact_text

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home", "LC_ALL": "C"}
WORDS = ("torchrun", "torch.distributed", "swift", "megatron", "deepspeed", "accelerate",
         "ray ", "llamafactory", "python")
GPUS = judge.GpuCount(8, "")
PER_SCRIPT_S = 60


def outcome(v: Verdict) -> str:
    if v.skip:
        return "SKIP"
    kinds = [p.kind for p in v.deciding]
    return "FAIL" if Kind.BLOCKER in kinds else "UNKNOWN" if Kind.UNKNOWN in kinds else \
        "WARN" if kinds else "PASS"


def verdicts(spec: launch.LaunchSpec, syntax: Any, reads: Any) -> dict[str, Verdict]:
    master = multinode_judge.MasterFacts(
        multinode.launch_config(ENV, spec, 8, ""), {"eth0": ["10.0.0.5"]}, ["eth0"],
        multinode.Resolved("node1", ("10.0.0.5",)), None, None, None, None)
    try:
        syntax_facts = judge.SyntaxFacts(spec, syntax, reads)
    except TypeError:  # a checkout before launch-syntax judged the files it reads
        syntax_facts = judge.SyntaxFacts(spec, syntax)
    return {
        "nested-launcher": judge.nested_launcher(judge.NestedFacts(spec, {}, GPUS)),
        "empty-variable": judge.empty_variable(spec),
        "launch-inputs": judge.launch_inputs(adapters.inputs_facts(spec)),
        "grpo-batch": judge.grpo_batch_divisible(spec),
        "launch-ports": judge.launch_ports(judge.PortsFacts(spec, {}, {}, "29999", GPUS)),
        "launch-gpus": judge.launch_gpus(judge.GpusFacts(spec, 8, None)),
        "launcher-args": judge.launcher_args(judge.ArgsFacts(spec, GPUS, {})),
        "launch-syntax": judge.launch_syntax(syntax_facts),
        "master-addr": multinode_judge.master_addr(master),
    }


def _timeout(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"over {PER_SCRIPT_S}s")


def one(root: Path, script: Path) -> dict[str, Any]:
    rel = str(script.relative_to(root))
    row: dict[str, Any] = {"repo": root.name, "script": rel}
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(PER_SCRIPT_S)
    cwd = os.getcwd()
    try:
        os.chdir(root)
        spec = launch.load(rel, None, ENV, cwd=str(root))
        node = SimpleNamespace(launch_syntax=None, launch_syntax_reads=())
        state = SimpleNamespace(settings={"launch_script": rel, "launch_cmd": None},
                                scrubber=SimpleNamespace(text=redact_text), node=node)
        spec = _with_syntax(state, spec)  # type: ignore[arg-type]
        found = verdicts(spec, node.launch_syntax, node.launch_syntax_reads)
        row["outcomes"] = {k: outcome(v) for k, v in found.items()}
        row["messages"] = {k: v.message[:300] for k, v in found.items() if v.problems}
        row["launchers"] = len(judge.distributed(spec))
        row["unseen"] = list(spec.unseen)
    except Exception as exc:  # a refusal (LaunchError) or a bug: counted, not fatal
        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        signal.alarm(0)
        os.chdir(cwd)
    return row


def main(argv: list[str]) -> int:
    for repo in argv:
        root = Path(repo).resolve()
        for script in sorted(root.rglob("*.sh")):
            if not script.is_file() or script.is_symlink():
                continue
            text = script.read_text(errors="replace")
            if not any(w in text for w in WORDS):
                continue
            print(json.dumps(one(root, script)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
