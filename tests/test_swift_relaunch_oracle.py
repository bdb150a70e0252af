"""preflight's model of `swift <method>` / `megatron <method>` against ms-swift itself.

ms-swift's console scripts (`swift = swift.cli.main:cli_main`, `megatron =
swift.cli._megatron.main:cli_main`, its entry_points.txt) re-execute themselves:
swift/cli/main.py:86-102 `cli_main` reads the config-file first argument
(`parse_yaml_args`, :38-71, whose `ENV` mapping is exported unless already set), then
runs `python -m torch.distributed.run <args from NPROC_PER_NODE, MASTER_PORT, NNODES,
NODE_RANK, MASTER_ADDR> swift/cli/<method>.py <argv>` (:95-98) or plain `python
swift/cli/<method>.py <argv>` through `subprocess.run` (:100). Here the real `cli_main`
runs in-process for every case with `subprocess.run` replaced by a recorder at that
process boundary (nothing is trained), and torch's own `get_args_parser` reads the
torchrun argv it built. preflight reads the equivalent bash script (the variables as
`VAR=.. swift ...` prefixes, `export` lines, the caller's environment, or hidden behind an
`eval` preflight cannot read) and must agree on: relaunch or not (or where swift stops),
torchrun's nproc / nnodes / node_rank / master_addr / master_port, the worker program,
its argv and the environment it gets. Unknown is allowed (counted); a concrete value
swift would not produce is a failure.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from preflight.launch import spec as launch

pytestmark = pytest.mark.slow
swift_main = pytest.importorskip("swift.cli.main")
from swift.cli._megatron import main as megatron_main  # noqa: E402
from torch.distributed import run as torch_run  # noqa: E402
from torch.distributed.elastic.rendezvous.utils import (  # noqa: E402
    parse_rendezvous_endpoint,
)

ENTRIES = {"swift": swift_main.cli_main, "megatron": megatron_main.cli_main}
BASE_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/root"}
LAUNCH_KEYS = ("NPROC_PER_NODE", "MASTER_PORT", "NNODES", "NODE_RANK", "MASTER_ADDR")
# What torchrun itself sets for its workers (local_elastic_agent.py `_start_workers`):
# the worker's value of these is torchrun's, not the environment swift passes on.
TORCHRUN_SETS = {"MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "GROUP_RANK",
                 "WORLD_SIZE", "LOCAL_WORLD_SIZE", "ROLE_RANK", "ROLE_WORLD_SIZE"}


@dataclass(frozen=True)
class Case:
    prog: str
    method: str
    env: dict[str, str]  # what the swift process has in its environment
    how: str = "prefix"  # prefix | export | caller | opaque
    config: tuple[str, str] | None = None  # (file name, text): the first argument
    args: tuple[str, ...] = ("--model", "Qwen/Qwen2.5-0.5B")

    @property
    def name(self) -> str:
        cfg = f" {self.config[0]}" if self.config else ""
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"[{self.how}] {env} {self.prog} {self.method}{cfg} {' '.join(self.args)}"


@dataclass
class Outcome:
    stops: str = ""  # the exception cli_main raised before launching anything
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def swift_run(case: Case, cwd: Path) -> Outcome:
    """The real cli_main, its subprocess.run recorded (swift/cli/main.py:100)."""
    out = Outcome()

    def record(args, *a, **kw):
        out.argv, out.env = list(args), dict(os.environ)
        return subprocess.CompletedProcess(args, 0)

    saved_env, saved_argv, saved_run = dict(os.environ), sys.argv, swift_main.subprocess.run
    first = [case.config[0]] if case.config else []
    try:
        os.environ.clear()
        os.environ.update({**BASE_ENV, **case.env})
        sys.argv = [case.prog, case.method, *first, *case.args]
        swift_main.subprocess.run = record
        with contextlib.chdir(cwd), contextlib.redirect_stdout(io.StringIO()):
            ENTRIES[case.prog]()
    except Exception as exc:  # KeyError: no such method; AttributeError: config not a map
        out.stops = f"{type(exc).__name__}: {exc}"
    finally:
        swift_main.subprocess.run = saved_run
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
    return out


def torch_reads(argv: list[str], env: dict[str, str]) -> dict:
    """What torchrun makes of the relaunch argv in the environment swift gives it: its
    own `parse_args` and `run()` (torch/distributed/run.py:985, the single-node default
    rendezvous included), `elastic_launch` replaced by a recorder (nothing starts)."""
    seen: dict = {}

    def recorder(config, entrypoint):
        seen.update(config=config)
        return lambda *args: seen.update(args=list(args))

    saved, saved_launch = dict(os.environ), torch_run.elastic_launch
    try:
        os.environ.clear()
        os.environ.update(env)
        torch_run.elastic_launch = recorder
        with contextlib.redirect_stderr(io.StringIO()):
            torch_run.run(torch_run.parse_args(argv[3:]))
    except (Exception, SystemExit) as exc:  # torch's own validation (nproc "")
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        torch_run.elastic_launch = saved_launch
        os.environ.clear()
        os.environ.update(saved)
    config, args = seen["config"], seen["args"]
    host, port = parse_rendezvous_endpoint(config.rdzv_endpoint, -1)
    # static: the node's group rank is --node_rank (run.py:891); one node: 0
    rank = config.rdzv_configs.get("rank", 0 if config.max_nodes == 1 else None)
    assert args[0] == "-u", args  # python -u swift/cli/<method>.py <argv>
    return {"nproc": config.nproc_per_node, "nnodes": config.max_nodes, "host": host,
            "port": port, "group_rank": rank, "program": args[1], "args": args[2:]}


def preflight_layers(case: Case, cwd: Path) -> list[launch.Layer]:
    words = [case.prog, case.method, *([case.config[0]] if case.config else []), *case.args]
    line = shlex.join(words)
    assigns = [f"{k}={shlex.quote(v)}" for k, v in case.env.items()]
    caller = dict(BASE_ENV)
    if case.how == "prefix":
        text = " ".join([*assigns, line])
    elif case.how == "export":
        text = "".join(f"export {a}\n" for a in assigns) + line
    elif case.how == "caller":
        caller.update(case.env)
        text = line
    elif case.how in ("method", "config"):  # that word comes from a tool preflight cannot read
        i = 1 if case.how == "method" else 2
        text = " ".join([*assigns, shlex.join(words[:i]), f'"$(pick-{case.how})"',
                         shlex.join(words[i + 1:])])
    else:  # a tool preflight cannot read sets them
        text = 'eval "$(site-env --print)"\n' + line
    script = cwd / "run.sh"
    script.write_text(text + "\n")
    spec = launch.load(str(script), None, caller, cwd=str(cwd))
    jobs = [j for j in spec.jobs if j.layers[0].launcher.startswith(case.prog)]
    assert len(jobs) == 1, (case.name, spec.jobs)
    return list(jobs[0].layers)


def module_of(path: str) -> str:
    """swift/cli/_megatron/sft.py -> swift.cli._megatron.sft"""
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[parts.index("swift"):])


class Tally:
    def __init__(self) -> None:
        self.agree: list[str] = []
        self.unknown: list[str] = []
        self.wrong: list[str] = []

    def value(self, case: Case, what: str, swift: object, ours: object,
              known: bool = True) -> None:
        if not known:
            self.unknown.append(f"{case.name}: {what} (swift: {swift!r})")
        elif swift == ours:
            self.agree.append(f"{case.name}: {what}")
        else:
            self.wrong.append(f"{case.name}: {what}: swift {swift!r}, preflight {ours!r}")


def compare(case: Case, got: Outcome, layers: list[launch.Layer], tally: Tally) -> None:
    dist = [x for x in layers if x.kind == "distributed"]
    entry = layers[0]
    if got.stops:
        # swift stops before launching anything: preflight must not claim a launch
        tally.value(case, "swift stops", got.stops.split(":")[0],
                    got.stops.split(":")[0] if entry.error and not dist else
                    f"no error, layers {[x.launcher for x in layers]}")
        return
    relaunched = got.argv[1:3] == ["-m", "torch.distributed.run"]
    maybe = bool(dist and dist[0].maybe)
    tally.value(case, "relaunch", relaunched, bool(dist), known=not maybe)
    if relaunched != bool(dist):
        return
    if relaunched:
        tr = torch_reads(got.argv, got.env)
        inner, worker = dist[0], layers[layers.index(dist[0]) + 1]
        if "error" in tr:
            # preflight's torchrun names the error, or at least states no nproc
            tally.value(case, "torchrun stops", True, bool(inner.error),
                        known=bool(inner.error) or inner.nproc is not None)
            return
        tally.value(case, "nproc", tr["nproc"], inner.nproc,
                    known=inner.nproc is not None and not maybe)
        tally.value(case, "nnodes", tr["nnodes"], inner.nnodes, known=inner.nnodes is not None)
        tally.value(case, "master_addr", tr["host"], inner.master_addr,
                    known=bool(inner.master_addr) and "⟨" not in inner.master_addr)
        # port 0: the kernel picks one; preflight says "free" (port None)
        tally.value(case, "master_port", tr["port"] or "free",
                    inner.port or inner.port_text, known=inner.port is not None or
                    inner.port_text == "free")
        # preflight does not give swift's worker a GROUP_RANK yet: unknown, counted
        rank = worker.env.get("GROUP_RANK")
        tally.value(case, "node_rank (worker GROUP_RANK)", str(tr["group_rank"]),
                    rank.value if rank else None, known=bool(rank and rank.value is not None))
        program, args = tr["program"], tr["args"]
        env_layers = (inner, worker)
    else:
        program, args = got.argv[1], got.argv[2:]
        worker, env_layers = entry, (entry,)
    swift_module = module_of(program)
    ours = worker.program if relaunched else \
        swift_main.ROUTE_MAPPING.get(entry.program.split(" ", 1)[1], entry.program) \
        if case.prog == "swift" else megatron_main.ROUTE_MAPPING.get(
            entry.program.split(" ", 1)[1], entry.program)
    tally.value(case, "worker program", swift_module, ours, known="⟨" not in ours)
    tally.value(case, "worker argv", list(args), [w.text for w in worker.args],
                known=all(w.known for w in worker.args))
    config = yaml.safe_load(case.config[1]) if case.config else None
    keys = set(config.get("ENV") or {}) if isinstance(config, dict) else set()
    for layer in env_layers:
        for key in sorted((keys | set(LAUNCH_KEYS)) - (
                TORCHRUN_SETS if layer is worker and relaunched else set())):
            var = layer.env.get(key)
            tally.value(case, f"{layer.launcher} env {key}", got.env.get(key),
                        None if var is None else var.value,
                        known=var is None or var.value is not None)


# -- the table ------------------------------------------------------------------------

ENVS = [
    {},
    {"NPROC_PER_NODE": "2"},
    {"NPROC_PER_NODE": "4", "MASTER_PORT": "29511"},
    {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "29512"},
    {"NPROC_PER_NODE": "8", "NNODES": "2", "NODE_RANK": "0", "MASTER_ADDR": "node0"},
    {"NNODES": "1"},
    {"MASTER_PORT": "29513", "NODE_RANK": "0"},  # neither NPROC_PER_NODE nor NNODES
    {"NPROC_PER_NODE": "auto"},  # torchrun counts devices: preflight cannot know
    {"NPROC_PER_NODE": "2", "MASTER_ADDR": "10.0.0.5"},  # one node: torchrun ignores it
    {"NNODES": "2", "MASTER_ADDR": "node0"},  # static rendezvous, default port
    {"NPROC_PER_NODE": "2", "PET_NNODES": "2", "PET_NODE_RANK": "1",  # torchrun's own
     "PET_MASTER_ADDR": "node1"},  # variables fill what swift does not pass
    {"NPROC_PER_NODE": ""},  # set but empty: swift passes it on, torchrun stops
]
METHODS = {
    "swift": ["sft", "rlhf", "pt", "infer", "export", "deploy", "eval", "sample",
              "merge_lora", "merge-lora", "web_ui", "rollout", "SFT", "train"],
    "megatron": ["sft", "pt", "rlhf", "export", "infer"],
}
YAML = ("cfg.yaml", """\
model: Qwen/Qwen2.5-0.5B
lora_rank: 8
target_modules: [q_proj, v_proj]
model_kwargs: {rope_scaling: {type: linear}}
gradient_checkpointing: true
ENV:
  NPROC_PER_NODE: 2
  MASTER_PORT: 29521
  CUDA_VISIBLE_DEVICES: 0,1
""")
CONFIGS = [
    YAML,
    ("cfg.json", json.dumps({"model": "m", "dataset": ["a.jsonl", "b.jsonl"],
                             "ENV": {"NNODES": 2, "NODE_RANK": 1, "MASTER_ADDR": "h1"}})),
    ("cfg.yml", "model: m\nfreeze_vit: null\nENV: {}\n"),
    ("cfg.yml", "model: m\ndataset: [{name: x}]\nlearning_rate: 1.0e-4\n"),
    ("empty.yaml", ""),  # safe_load -> None: swift passes the file name on as is
    ("cfg.yaml", "- a\n- b\n"),  # not a mapping: swift stops (list.pop)
    ("cfg.yaml", "model: m\nENV: [NPROC_PER_NODE]\n"),  # swift stops (list.items)
    ("cfg.json", json.dumps({"ENV": {"NNODES": 1, "USE_HF": True}, "bf16": True})),
]


def cases() -> list[Case]:
    out = []
    for prog, methods in METHODS.items():
        for method, env in itertools.product(methods, ENVS):
            out.append(Case(prog, method, env))
    for how, env in itertools.product(("export", "caller", "opaque"), ENVS[:5]):
        out.append(Case("swift", "sft", env, how=how))
    for config, env in itertools.product(CONFIGS, [{}, {"NPROC_PER_NODE": "4"},
                                                   {"MASTER_PORT": "29531"}]):
        out.append(Case("swift", "rlhf", env, config=config, args=("--rlhf_type", "dpo")))
    out.append(Case("megatron", "sft", {}, config=YAML))
    out.append(Case("swift", "export", {"NPROC_PER_NODE": "2"}, config=YAML))
    out.append(Case("swift", "sft", {"CUDA_VISIBLE_DEVICES": "3"}, how="export", config=YAML))
    out.append(Case("swift", "sft", {"NPROC_PER_NODE": "2"}, how="caller", config=YAML))
    for method, env in itertools.product(("sft", "export"), ENVS[:2]):
        out.append(Case("swift", method, env, how="method"))
    for config, env in itertools.product(CONFIGS[:2], ENVS[:2]):
        out.append(Case("swift", "sft", env, how="config", config=config))
    return out


@pytest.fixture(autouse=True)
def own_temp_dir(tmp_path, monkeypatch):
    """torch's run() makes torchrun's log dir as it reads the options (mkdtemp in $TMPDIR,
    torch/distributed/elastic/multiprocessing/api.py:260-262): under tmp_path, not the
    machine's /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture(autouse=True)
def quiet():
    """torch warns once per launch (OMP_NUM_THREADS), swift once per ENV override."""
    loggers = [torch_run.logger, logging.getLogger("swift")]
    levels = [x.level for x in loggers]
    for x in loggers:
        x.setLevel(logging.ERROR)
    yield
    for x, level in zip(loggers, levels, strict=True):
        x.setLevel(level)


def test_preflight_models_swift_relaunch_as_swift_does(tmp_path):
    tally = Tally()
    all_cases = cases()
    for i, case in enumerate(all_cases):
        cwd = tmp_path / str(i)
        cwd.mkdir()
        if case.config:
            (cwd / case.config[0]).write_text(case.config[1])
        got = swift_run(case, cwd)
        compare(case, got, preflight_layers(case, cwd), tally)
    print(f"\nswift relaunch oracle: {len(all_cases)} cases, {len(tally.agree)} agreements, "
          f"{len(tally.unknown)} unknown, {len(tally.wrong)} wrong")
    for line in tally.unknown:
        print("  unknown:", line)
    assert not tally.wrong, "\n".join(tally.wrong)
    assert len(tally.agree) > 10 * len(all_cases) // 2
