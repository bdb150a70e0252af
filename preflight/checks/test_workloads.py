"""Workload checks: a real all-reduce and a real DDP training run, under a real torchrun.

The static checks say the node looks right; these prove it can train. Every selected
workload runs in ONE `torchrun` launch (preflight/workloads/suite.py, started by
preflight/run/torchrun.py) in its own session, bounded by the profile's
workload.timeout_s per workload, and everything it started is killed before the first
check judges; each check then reads its own workload's results and phases. torch is
imported only by those children: this module asks `importlib.util.find_spec("torch")`
and nothing more.

On one node the launch is torchrun's standalone c10d rendezvous on a port found by
binding. With NNODES > 1 (and MASTER_ADDR / MASTER_PORT, as ms-swift reads them) the
same workloads join a c10d rendezvous across nodes; run `pytest -k nccl` on every node.

Adapters: the fixture launches, `Workloads` turns the launch into typed facts, the judges
(`preflight/judges/workloads.py`) decide, `finding.conclude` records.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from preflight.model import Verdict
from preflight.plugin import Recorder
from preflight.probes import Node
from preflight.profiles import Profile

if TYPE_CHECKING:
    # Imported where they are used: collecting the checks (every run, the static stage
    # too) never builds their dataclasses; see benchmarks/static_vs_collect_env.py.
    from preflight.judges import workloads as judge
    from preflight.run import torchrun

    Display = Callable[[tuple[str, ...]],
                       contextlib.AbstractContextManager[torchrun.Progress | None]]

pytestmark = pytest.mark.workload

# The workloads each check needs from the one combined launch (workloads/suite.py), and
# how many per-workload bounds (profile workload.timeout_s) the launch gets: training and
# resume were two launches with a bound each; the store check rides along.
TASKS = {"nccl-allreduce": ("allreduce",), "train-10-steps": ("train", "resume"),
         "libuv-store": ("store",)}
BOUNDS = {"allreduce": 1.0, "train": 1.0, "resume": 1.0, "store": 0.0}


def _torch_importable() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _progress_line(elapsed: float, bound: float, ranks: tuple[torchrun.RankState, ...]) -> str:
    doing = "; ".join(f"{r.label}: {r.task + ' / ' if r.task else ''}{r.phase or 'starting'}"
                      if r.rank is not None else f"{r.label}: starting" for r in ranks)
    return f"workloads {elapsed:4.0f}s of {bound:g}s | {doing}"


def progress_display(config: pytest.Config) -> Display:
    """While the launch runs: one refreshing line on a TTY (phase, elapsed vs bound, per
    rank); otherwise a plain line each time a rank moves to another workload."""

    @contextlib.contextmanager
    def display(tasks: tuple[str, ...]) -> Iterator[torchrun.Progress | None]:
        reporter: Any = config.pluginmanager.getplugin("terminalreporter")
        capman: Any = config.pluginmanager.getplugin("capturemanager")
        if reporter is None:
            yield None
            return
        tty = bool(getattr(reporter, "isatty", False))
        last: list[tuple[tuple[str, str], ...]] = [()]

        def show(elapsed: float, bound: float, ranks: tuple[torchrun.RankState, ...]) -> None:
            if tty:
                width = max(20, reporter._tw.fullwidth - 1)
                reporter.rewrite(_progress_line(elapsed, bound, ranks)[:width], erase=True)
                return
            where = tuple((r.label, r.task) for r in ranks)
            if where != last[0] and any(r.task for r in ranks):
                last[0] = where
                reporter.write_line(_progress_line(elapsed, bound, ranks))

        suspended = capman.global_and_fixture_disabled() if capman is not None \
            else contextlib.nullcontext()
        with suspended:
            if tty:
                reporter.ensure_newline()
            try:
                yield show
            finally:
                if tty:
                    reporter.rewrite("", erase=True)
                    reporter.write("\r")

    return display


class Launch:
    """The one torchrun launch shared by every workload check of one profile."""

    def __init__(self, tasks: tuple[str, ...]):
        self.tasks = tasks
        self.outcome: torchrun.Outcome | None = None


def _launch_facts(out: torchrun.Outcome) -> dict[str, Any]:
    argv = list(out.argv)
    tasks = argv[argv.index("--tasks") + 1].split(",") if "--tasks" in argv else []
    mine: list[Any] = [r.result.get("elapsed_s") for r in out.ranks if r.result]
    return {"torchrun": " ".join(["torchrun", *out.argv[3:]]), "port": out.port,
            "elapsed_s": out.elapsed_s, "returncode": out.returncode,
            "timed_out": out.timed_out, "attempts": out.attempts, "log": out.log,
            # one launch runs every selected workload; this check's part of it took:
            "workloads": tasks, "this_workload_s": max(mine) if mine and None not in mine
            else None}


def run_facts(out: torchrun.Outcome) -> judge.Run:
    """One workload's part of the launch, as the judges read it."""
    from preflight.judges import workloads as judge

    return judge.Run(
        name=out.spec_name, launch=_launch_facts(out), complete=out.complete,
        timed_out=out.timed_out, returncode=out.returncode, error=out.error, log=out.log,
        log_tail=out.log_tail, results=out.results, first_failure=out.first_failure,
        ranks=tuple(judge.Rank(r.label, r.task, r.phase, r.result is not None)
                    for r in out.ranks))


# What the job's torch reads when it sets up its stores and process groups
# (torch/distributed/rendezvous.py: USE_LIBUV; torch/distributed/elastic/... agent store)
JOB_KEYS = ("USE_LIBUV", "TORCHELASTIC_USE_AGENT_STORE")


class Workloads:
    """The workload checks' view of the shared launch (a factory fixture): the first check
    that needs it launches every selected workload at once; the others read their part."""

    def __init__(self, node: Node, profile: Profile, tmp_factory: pytest.TempPathFactory,
                 launch: Launch, display: Display):
        from preflight.run import torchrun

        self.node = node
        self.profile = profile
        self.topology = torchrun.Topology()
        self.tmp_factory = tmp_factory
        self.shared = launch
        self.display = display
        wl = profile.workload
        self.nproc: int = wl.world_size or profile.gpu.count or 2
        # A GPU profile must run on CUDA: a CPU-only torch on a GPU node fails fast.
        self.cuda_args = ("--require-cuda",) if profile.is_gpu else ()

    def gate(self) -> Verdict | None:
        """Whether the workloads can run at all (judges.workloads.gate); reads the
        multi-node variables into `topology` when they are usable."""
        from preflight.judges import workloads as judge
        from preflight.run import torchrun

        node, profile = self.node, self.profile
        error = None
        torch = _torch_importable()
        try:
            self.topology = torchrun.topology(node.environ)
        except torchrun.TopologyError as exc:
            error = str(exc)
        snap = node.gpus if not node.nvml_replay and torch and profile.is_gpu else None
        return judge.gate(judge.Gate(
            python=sys.executable, profile=profile.name, gpu_profile=profile.is_gpu,
            expected_gpus=profile.gpu.count, gpu_model=profile.gpu.model,
            nvml_replay=node.nvml_replay, torch_importable=torch,
            nvml_gpus=len(snap.gpus) if snap else 0, nvml_error=snap.error if snap else None,
            topology_error=error,
            declared={k: node.environ.get(k) for k in torchrun.TOPOLOGY_KEYS}))

    @property
    def bound_s(self) -> float:
        share = sum(BOUNDS[t] for t in self.shared.tasks)
        return float(self.profile.workload.timeout_s * max(1.0, share))

    def launch(self) -> torchrun.Outcome:
        from preflight.run import torchrun

        if self.shared.outcome is None:
            wl = self.profile.workload
            out: Path = self.tmp_factory.mktemp("workloads")
            args = ("--out", str(out), "--tasks", ",".join(self.shared.tasks),
                    "--min-bytes", str(wl.min_size_bytes), "--max-bytes", str(wl.max_size_bytes),
                    "--warmup", str(wl.warmup_iters), "--iters", str(wl.iters),
                    "--steps", str(wl.train_steps), "--checkpoint", str(out / "step.pt"),
                    *self.cuda_args)
            spec = torchrun.Spec("workloads", "preflight.workloads.suite", args, self.nproc,
                                 out, self.bound_s, self.topology)
            with self.display(self.shared.tasks) as progress:
                self.shared.outcome = torchrun.launch(spec, self.environ(),
                                                      self.node.runner, progress=progress)
        return self.shared.outcome

    def run(self, task: str, ranks: tuple[int, ...] | None = None) -> judge.Run:
        """`task`'s part of the shared launch (launching it first if needed)."""
        return run_facts(self.launch().task(task, ranks=ranks))

    def allreduce(self) -> judge.Allreduce:
        from preflight.judges import workloads as judge

        wl = self.profile.workload
        return judge.Allreduce(self.run("allreduce"), self.topology.nnodes, self.nproc,
                               self.bound_s, wl.min_busbw_gbps)

    def train(self) -> judge.Train:
        from preflight.judges import workloads as judge

        wl = self.profile.workload
        return judge.Train(self.run("train"), self.run("resume"), self.topology.nnodes,
                           self.nproc, self.bound_s, wl.train_steps, wl.resume_tolerance,
                           wl.resume_headroom)

    def store(self) -> judge.Store:
        from preflight.judges import workloads as judge

        env = self.environ()
        return judge.Store(self.run("store", ranks=(0,)), self.bound_s, sys.executable,
                           env.get("USE_LIBUV"), env.get("TORCHELASTIC_USE_AGENT_STORE"))

    def environ(self) -> dict[str, str]:
        """This shell's environment with the settings of how torch meets and talks that
        the launch script exports for its job (USE_LIBUV=0 in a 2-GPU DDP script)."""
        env = dict(self.node.environ)
        for key in JOB_KEYS + tuple(k for k in self._job_names() if k.startswith(
                ("NCCL_", "GLOO_", "TORCH_NCCL_"))):
            value = self.node.job_env(key)
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def _job_names(self) -> tuple[str, ...]:
        spec = self.node.launch
        return tuple(k for job in (spec.jobs if spec else ()) for k in job.command.env)


def _selected_tasks(session: pytest.Session, profile: Profile) -> tuple[str, ...]:
    """The workloads of every workload check selected in this session for `profile`."""
    wanted: set[str] = set()
    for item in session.items:
        mark = item.get_closest_marker("pitfall")
        callspec = getattr(item, "callspec", None)
        if mark and mark.args[0] in TASKS and callspec and \
                callspec.params.get("profile") is profile:
            wanted.update(TASKS[mark.args[0]])
    return tuple(t for t in ("allreduce", "train", "resume", "store") if t in wanted)


@pytest.fixture(scope="session")
def _launches() -> dict[str, Launch]:
    return {}


@pytest.fixture
def workloads(request: pytest.FixtureRequest, node: Node, profile: Profile,
              tmp_path_factory: pytest.TempPathFactory,
              _launches: dict[str, Launch]) -> Workloads:
    if profile.name not in _launches:
        _launches[profile.name] = Launch(_selected_tasks(request.session, profile))
    return Workloads(node, profile, tmp_path_factory, _launches[profile.name],
                     progress_display(request.config))


def _conclude(finding: Recorder, verdict: Verdict) -> None:
    # A skipped workload check still names how to enable it (torch missing: the install
    # command); Recorder.conclude skips before it sets the fix.
    if verdict.skip:
        finding.fix(verdict.fix)
    finding.conclude(verdict)


@pytest.mark.pitfall("nccl-allreduce")
def test_nccl_allreduce(node: Node, profile: Profile, finding: Recorder,
                        workloads: Workloads) -> None:
    from preflight.judges.workloads import allreduce

    _conclude(finding, workloads.gate() or allreduce(workloads.allreduce()))


@pytest.mark.pitfall("train-10-steps")
def test_train_10_steps(node: Node, profile: Profile, finding: Recorder,
                        workloads: Workloads) -> None:
    from preflight.judges.workloads import train

    _conclude(finding, workloads.gate() or train(workloads.train()))


@pytest.mark.pitfall("libuv-store")
def test_libuv_store(node: Node, profile: Profile, finding: Recorder,
                     workloads: Workloads) -> None:
    from preflight.judges.workloads import store

    _conclude(finding, workloads.gate() or store(workloads.store()))
