"""Launch-script pitfalls from real lost jobs, read from --launch-script / --launch-cmd.

The script is evaluated (never run) by `preflight.launch.spec`; each check judges one
pitfall of the resulting LaunchSpec (`preflight/judges/launch.py`). Without a launch
script every check skips. Adapters: gather the facts, call the judge, conclude.
"""

from __future__ import annotations

import os
import posixpath

import pytest

from preflight.judges import launch as judge
from preflight.launch.shell import UNKNOWN_OPEN
from preflight.launch.spec import LaunchSpec
from preflight.plugin import Recorder
from preflight.probes import Node, ports
from preflight.profiles import Profile

pytestmark = pytest.mark.static


def _spec(node: Node) -> LaunchSpec | None:
    spec: LaunchSpec | None = node.launch
    return spec


def gpu_count(node: Node, spec: LaunchSpec | None) -> judge.GpuCount:
    """NVML's GPU count, read only when a layer's start hangs on it (llamafactory-cli)."""
    if not judge.gated(spec):
        return judge.GpuCount()
    snap = node.gpus
    return judge.GpuCount(None if snap.error else len(snap.gpus), snap.error or "")


@pytest.mark.pitfall("nested-launcher")
def test_one_launcher_layer(node: Node, profile: Profile, finding: Recorder) -> None:
    under: dict[str, str] = {k: node.environ[k] for k in ("TORCHELASTIC_RUN_ID",
                                                           "LOCAL_RANK") if k in node.environ}
    spec = _spec(node)
    finding.conclude(judge.nested_launcher(judge.NestedFacts(spec, under,
                                                             gpu_count(node, spec))))


@pytest.mark.pitfall("empty-variable")
def test_no_empty_variable(node: Node, profile: Profile, finding: Recorder) -> None:
    finding.conclude(judge.empty_variable(_spec(node)))


def _nearest_existing(path: str) -> str:
    while path and not os.path.exists(path):
        parent = posixpath.dirname(path.rstrip("/"))
        if parent == path:
            break
        path = parent
    return path or "/"


def inputs_facts(spec: LaunchSpec | None) -> judge.InputsFacts:
    if spec is None:
        return judge.InputsFacts(None)
    dirs = judge.output_dirs(spec)
    nearest = {d: _nearest_existing(d) for d in dirs}
    return judge.InputsFacts(
        spec, exists={p: os.path.exists(os.path.expanduser(p))
                      for p in judge.input_paths(spec)},
        is_dir={d: os.path.isdir(d) for d in dirs}, nearest=nearest,
        writable={b: os.path.isdir(b) and os.access(b, os.W_OK | os.X_OK)
                  for b in nearest.values()})


@pytest.mark.pitfall("launch-inputs")
def test_launch_inputs_exist(node: Node, profile: Profile, finding: Recorder) -> None:
    finding.conclude(judge.launch_inputs(inputs_facts(_spec(node))))


@pytest.mark.pitfall("grpo-batch")
def test_grpo_batch_divisible(node: Node, profile: Profile, finding: Recorder) -> None:
    finding.conclude(judge.grpo_batch_divisible(_spec(node)))


def ports_facts(node: Node, spec: LaunchSpec | None) -> judge.PortsFacts:
    layers = judge.distributed(spec) if spec is not None else []
    # an address not known is bound here too: the judge decides what a taken port means
    local = {a: ports.is_local_address(a) for a in {judge.master_of(x) for x in layers}
             if a and UNKNOWN_OPEN not in a}
    binds = {}
    for port in dict.fromkeys(x.port for x in layers if x.port is not None
                              and local.get(judge.master_of(x), True)):  # "" or not known
        assert port is not None
        bound = ports.try_bind(port)
        held = ports.holders(port, node.listeners) if not bound.ok else []
        table = node.process_by_pid
        binds[port] = judge.Bind(bound.error if not bound.ok else "", tuple(
            judge.Holder(h.pid, info.redacted(200) if h.pid is not None
                         and (info := table.get(h.pid)) is not None else None)
            for h in held))
    return judge.PortsFacts(spec, local, binds, str(ports.suggest_port() or "<a free port>")
                            if layers else "", gpu_count(node, spec))


@pytest.mark.pitfall("launch-ports")
def test_launch_ports_free(node: Node, profile: Profile, finding: Recorder) -> None:
    finding.conclude(judge.launch_ports(ports_facts(node, _spec(node))))


@pytest.mark.pitfall("launch-gpus")
def test_launch_gpus_enough(node: Node, profile: Profile, finding: Recorder) -> None:
    spec = _spec(node)
    # NVML is read only when there is something to count
    snap = node.gpus if spec is not None and judge.distributed(spec) else None
    facts = judge.GpusFacts(spec, len(snap.gpus) if snap else 0, snap.error if snap else None)
    finding.conclude(judge.launch_gpus(facts))


def script_texts(spec: LaunchSpec | None) -> dict[str, str]:
    """The files the launch lines are written in (the script, what it sources), as the
    launcher-args fix edits them; one that cannot be read is left out (its fix names the
    option instead)."""
    texts: dict[str, str] = {}
    for path in {j.command.file for j in spec.jobs} if spec else ():
        try:
            with open(path, encoding="utf-8") as fh:
                texts[path] = fh.read()
        except (OSError, UnicodeError):
            continue
    return texts


@pytest.mark.pitfall("launcher-args")
def test_launcher_accepts_its_args(node: Node, profile: Profile, finding: Recorder) -> None:
    spec = _spec(node)
    finding.conclude(judge.launcher_args(judge.ArgsFacts(spec, gpu_count(node, spec),
                                                         script_texts(spec))))


@pytest.mark.pitfall("launch-syntax")
def test_launch_script_parses(node: Node, profile: Profile, finding: Recorder) -> None:
    # `bash -n` ran once when the launch was loaded (plugin._with_syntax)
    finding.conclude(judge.launch_syntax(judge.SyntaxFacts(_spec(node), node.launch_syntax,
                                                           node.launch_syntax_reads)))
