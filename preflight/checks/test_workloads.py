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
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import sys

import pytest

from preflight.run import torchrun

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


def _preconditions(node, profile, finding) -> None:
    """Replayed GPUs skip; without torch: skip on a CPU profile, fail on a GPU profile."""
    if node.nvml_replay:
        finding.skip(f"the GPUs are replayed from {node.nvml_replay} (--nvml-replay): the "
                     "workloads need the real devices")
    if not _torch_importable():
        _no_torch(profile, finding)
    if profile.is_gpu and not node.gpus.gpus:
        # No launch can prove GPUs NVML does not see; fail now instead of after torchrun.
        why = node.gpus.error or "no NVIDIA GPU"
        finding.evidence(expected_gpus=profile.gpu.count, nvml=why)
        finding.fix(f"run on a node with {profile.gpu.count}x {profile.gpu.model}, or choose "
                    "this node's profile (see profile-match)")
        raise AssertionError(f"profile {profile.name} expects {profile.gpu.count} GPU(s); "
                             f"NVML sees none ({why})")


def _no_torch(profile, finding) -> None:
    finding.evidence(python=sys.executable, torch_importable=False)
    finding.fix(f'"{sys.executable}" -m pip install "pytest-preflight[torch]"  # on GPU nodes '
                "install the torch wheel built for your CUDA first")
    if not profile.is_gpu:
        finding.skip(f"torch is not importable by {sys.executable}: the workloads need it "
                     "(pip install 'pytest-preflight[torch]')")
    raise AssertionError(f"torch is not importable by {sys.executable}: profile "
                         f"{profile.name} must prove its GPUs with the workloads")


def _topology(node, finding) -> torchrun.Topology:
    try:
        return torchrun.topology(node.environ)
    except torchrun.TopologyError as exc:
        finding.evidence(declared={k: node.environ.get(k) for k in torchrun.TOPOLOGY_KEYS})
        finding.fix("export NNODES=<nodes> NODE_RANK=<this node> MASTER_ADDR=<node 0 address> "
                    "MASTER_PORT=<a free port on node 0>  # or unset NNODES for one node")
        raise AssertionError(str(exc)) from None


def _progress_line(elapsed: float, bound: float, ranks) -> str:
    doing = "; ".join(f"{r.label}: {r.task + ' / ' if r.task else ''}{r.phase or 'starting'}"
                      if r.rank is not None else f"{r.label}: starting" for r in ranks)
    return f"workloads {elapsed:4.0f}s of {bound:g}s | {doing}"


def progress_display(config):
    """While the launch runs: one refreshing line on a TTY (phase, elapsed vs bound, per
    rank); otherwise a plain line each time a rank moves to another workload."""

    @contextlib.contextmanager
    def display(tasks: tuple[str, ...]):
        reporter = config.pluginmanager.getplugin("terminalreporter")
        capman = config.pluginmanager.getplugin("capturemanager")
        if reporter is None:
            yield None
            return
        tty = bool(getattr(reporter, "isatty", False))
        last: list[tuple] = [()]

        def show(elapsed: float, bound: float, ranks) -> None:
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


class Workloads:
    """The workload checks' view of the shared launch (a factory fixture): the first check
    that needs it launches every selected workload at once; the others read their part."""

    def __init__(self, node, profile, tmp_factory, launch: Launch, display):
        self.node = node
        self.profile = profile
        self.topology = torchrun.Topology()
        self.tmp_factory = tmp_factory
        self.shared = launch
        self.display = display
        wl = profile.workload
        self.nproc = wl.world_size or profile.gpu.count or 2
        # A GPU profile must run on CUDA: a CPU-only torch on a GPU node fails fast.
        self.cuda_args = ("--require-cuda",) if profile.is_gpu else ()

    def prepare(self, finding) -> None:
        """Read the multi-node variables; unusable ones fail the check with the fix."""
        self.topology = _topology(self.node, finding)

    @property
    def bound_s(self) -> float:
        share = sum(BOUNDS[t] for t in self.shared.tasks)
        return self.profile.workload.timeout_s * max(1.0, share)

    def launch(self) -> torchrun.Outcome:
        if self.shared.outcome is None:
            wl = self.profile.workload
            out = self.tmp_factory.mktemp("workloads")
            args = ("--out", str(out), "--tasks", ",".join(self.shared.tasks),
                    "--min-bytes", str(wl.min_size_bytes), "--max-bytes", str(wl.max_size_bytes),
                    "--warmup", str(wl.warmup_iters), "--iters", str(wl.iters),
                    "--steps", str(wl.train_steps), "--checkpoint", str(out / "step.pt"),
                    *self.cuda_args)
            spec = torchrun.Spec("workloads", "preflight.workloads.suite", args, self.nproc,
                                 out, self.bound_s, self.topology)
            with self.display(self.shared.tasks) as progress:
                self.shared.outcome = torchrun.launch(spec, self.node.environ,
                                                      self.node.runner, progress=progress)
        return self.shared.outcome

    def allreduce(self) -> torchrun.Outcome:
        return self.launch().task("allreduce")

    def train(self, phase: str) -> torchrun.Outcome:
        return self.launch().task(phase)

    def store(self) -> torchrun.Outcome:
        return self.launch().task("store", ranks=(0,))


def _selected_tasks(session, profile) -> tuple[str, ...]:
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
def workloads(request, node, profile, tmp_path_factory, _launches) -> Workloads:
    if profile.name not in _launches:
        _launches[profile.name] = Launch(_selected_tasks(request.session, profile))
    return Workloads(node, profile, tmp_path_factory, _launches[profile.name],
                     progress_display(request.config))


def _launch_facts(out: torchrun.Outcome) -> dict:
    argv = list(out.argv)
    tasks = argv[argv.index("--tasks") + 1].split(",") if "--tasks" in argv else []
    mine = [r.result.get("elapsed_s") for r in out.ranks if r.result]
    return {"torchrun": " ".join(["torchrun", *out.argv[3:]]), "port": out.port,
            "elapsed_s": out.elapsed_s, "returncode": out.returncode,
            "timed_out": out.timed_out, "attempts": out.attempts, "log": out.log,
            # one launch runs every selected workload; this check's part of it took:
            "workloads": tasks, "this_workload_s": max(mine) if mine and None not in mine
            else None}


def _measured_by(result: dict) -> dict:
    return {key: result.get(key) for key in ("node_rank", "declared_node_rank", "rank", "host")}


def _assert_finished(out: torchrun.Outcome, finding, what: str, timeout_s: float) -> None:
    """A hang or a crashed launch; the fix names what to look at, the assert which rank.
    A workload whose every rank wrote its result is finished, whatever the shared launch
    did after it."""
    if out.complete:
        return
    if out.timed_out:
        finding.evidence(unfinished=out.unfinished,
                         unfinished_in={r.label: r.task for r in out.ranks if r.result is None})
        finding.fix("a rank hangs (see `unfinished`): rerun with NCCL_DEBUG=INFO "
                    "TORCH_DISTRIBUTED_DEBUG=DETAIL; check NCCL_SOCKET_IFNAME and that every "
                    "node reaches MASTER_ADDR:MASTER_PORT; preflight already killed the "
                    "workload it started")
        mine = out.spec_name
        stuck = "; ".join(f"{r.label} ({r.phase})" if r.task in ("", mine) else
                          f"{r.label} (still in the {r.task} workload: {r.phase})"
                          for r in out.ranks if r.result is None)
        raise AssertionError(f"{what} did not finish within {timeout_s:g}s; not finished: "
                             f"{stuck}")
    if out.returncode != 0:
        error = out.error
        finding.evidence(unfinished=out.unfinished, log_tail=list(out.log_tail[-8:]))
        if torchrun.LIBUV_MISSING.search(error):
            finding.fix("export USE_LIBUV=0  # this torch has no libuv TCPStore (hand-built torch)")
        elif "CudaMissing" in error:
            finding.fix("install the torch wheel built for this node's CUDA (e.g. pip install "
                        "torch --index-url https://download.pytorch.org/whl/cu124) and check "
                        "nvidia-smi and CUDA_VISIBLE_DEVICES")
        else:
            finding.fix(f"read {out.log}; the first error is quoted in the summary")
        raise AssertionError(f"{what}: torchrun exited {out.returncode}: {error[:300]}")


def _backend_note(result: dict) -> str:
    if result.get("cuda"):
        return f"NCCL {result.get('nccl')} on {result.get('device')}"
    return "no CUDA on this node: the same code ran over gloo on CPU (NCCL not exercised)"


@pytest.mark.pitfall("nccl-allreduce")
def test_nccl_allreduce(node, profile, finding, workloads):
    _preconditions(node, profile, finding)
    workloads.prepare(finding)
    wl = profile.workload
    out = workloads.allreduce()
    finding.evidence(launch=_launch_facts(out), nnodes=workloads.topology.nnodes,
                     nproc_per_node=workloads.nproc)
    _assert_finished(out, finding, "all_reduce sweep", workloads.bound_s)
    results = sorted(out.results, key=lambda r: r["rank"])
    first = results[0]
    rows = first["rows"]
    peak = max(rows, key=lambda r: r["busbw_gbps"])
    wrong = [{"rank": r["rank"], "size": row["size"], **row["wrong"]}
             for r in results for row in r["rows"] if row["wrong"]]
    finding.evidence(
        backend=first["backend"], note=_backend_note(first), world_size=first["world_size"],
        measured_by=_measured_by(first),
        table=[{k: row[k] for k in ("size", "time_us", "algbw_gbps", "busbw_gbps")}
               | {"correct": not row["wrong"]} for row in rows],
        peak_busbw_gbps=peak["busbw_gbps"], peak_at=peak["size"],
        floor_gbps=wl.min_busbw_gbps, wrong=wrong[:8],
    )
    if wrong:
        finding.fix("the collective returned wrong data: check `nvidia-smi -q -d ECC,"
                    "ROW_REMAPPER` and run `dcgmi diag -r 3`; isolate the path with "
                    "NCCL_P2P_DISABLE=1 / NCCL_SHM_DISABLE=1 / NCCL_ALGO=Ring; drain the "
                    "node if it persists")
        bad = wrong[0]
        raise AssertionError(
            f"all_reduce of {bad['size']} returned a wrong result on rank {bad['rank']}: "
            f"element {bad['index']} is {bad['got']:g}, expected {bad['expected']:g} "
            f"({bad['count']} wrong element(s))")
    finding.fix("check `nvidia-smi topo -m` (NV# between every GPU pair) and `nvidia-smi "
                "nvlink -s`, unset NCCL_P2P_DISABLE / NCCL_SHM_DISABLE / NCCL_IB_DISABLE, "
                "and compare with nccl-tests: all_reduce_perf -b 8 -e 256M -f 2 -g 1")
    assert peak["busbw_gbps"] >= wl.min_busbw_gbps, (
        f"peak all_reduce busbw {peak['busbw_gbps']:g} GB/s (at {peak['size']}) is below "
        f"the profile floor {wl.min_busbw_gbps:g} GB/s")
    finding.summary(f"{len(rows)} sizes exact; peak busbw {peak['busbw_gbps']:g} GB/s at "
                    f"{peak['size']} over {first['backend']} ({first['world_size']} ranks)")


def _first_diverging(values: list[str]) -> list[int]:
    return [rank for rank, value in enumerate(values) if value != values[0]]


@pytest.mark.pitfall("train-10-steps")
def test_train_10_steps(node, profile, finding, workloads):
    _preconditions(node, profile, finding)
    workloads.prepare(finding)
    wl = profile.workload
    steps = wl.train_steps
    out = workloads.train("train")
    finding.evidence(launch=_launch_facts(out), nnodes=workloads.topology.nnodes,
                     nproc_per_node=workloads.nproc)
    _assert_finished(out, finding, f"{steps}-step training", workloads.bound_s)
    first = min(out.results, key=lambda r: r["rank"])
    losses = first["losses"]
    finding.evidence(
        backend=first["backend"], note=_backend_note(first), world_size=first["world_size"],
        measured_by=_measured_by(first), model=first["model"], params=first["params"],
        losses=[round(v, 5) for v in losses], step_time_s=first["step_time_s"],
        tokens_per_s=first["tokens_per_s"], peak_memory=first["peak_memory"],
        checksums=first["checksums"],
    )
    finding.fix("rerun with TORCH_DISTRIBUTED_DEBUG=DETAIL; a non-finite or rising loss on a "
                "fixed seed means broken kernels or a bad GPU: run `dcgmi diag -r 3`")
    assert all(math.isfinite(v) for v in losses), f"non-finite loss in {steps} steps: {losses}"
    assert losses[-1] < losses[0], (
        f"loss did not fall in {steps} steps: step 1 {losses[0]:.4f}, step {steps} "
        f"{losses[-1]:.4f}")
    diverged = _first_diverging(first["checksums"])
    finding.fix("DDP ranks hold different weights: check that every rank runs the same code "
                "and data, and that NCCL collectives are correct (see nccl-allreduce)")
    assert not diverged, (f"parameters differ across ranks after step {steps}: rank(s) "
                          f"{diverged} differ from rank 0")

    resumed = workloads.train("resume")
    finding.evidence(resume_launch=_launch_facts(resumed)
                     | {"process_group": "fresh: destroyed after training and initialised "
                        "again in the same ranks"})
    _assert_finished(resumed, finding, "resume from checkpoint", workloads.bound_s)
    again = min(resumed.results, key=lambda r: r["rank"])
    reference, value = first["next_step_loss"], again["next_step_loss"]
    load = again["load_peak_memory"]
    fraction = load["bytes"] / load["total_bytes"] if load["total_bytes"] else 0.0
    finding.evidence(
        uninterrupted_step_loss=reference, resumed_step_loss=value,
        compared_step=steps + 1, tolerance=wl.resume_tolerance,
        optimizer_state_loaded=again["optimizer_state_loaded"],
        resume_load_peak=load | {"fraction": round(fraction, 4)},
        resume_headroom=wl.resume_headroom,
    )
    finding.fix("save and load the optimizer state with the model (optimizer.state_dict() / "
                "load_state_dict); a resume without it (NO_LOAD_OPTIM=1, as on 4×A800) restarts "
                "Adam's moments and changes every following step")
    assert math.isclose(value, reference, rel_tol=wl.resume_tolerance, abs_tol=1e-7), (
        f"resumed step {steps + 1} loss {value:.6f} differs from the uninterrupted run's "
        f"{reference:.6f} (tolerance {wl.resume_tolerance:g} relative)")
    if fraction > wl.resume_headroom:
        finding.fix("load the checkpoint with map_location='cpu' and move the optimizer state "
                    "shard by shard, or free memory before optimizer.load_state_dict (a 4×A800 "
                    "slime run OOM'd there)")
        finding.warn(f"loading the optimizer state peaked at {fraction:.0%} of "
                     f"{'device' if again['cuda'] else 'host'} memory, above the profile "
                     f"headroom {wl.resume_headroom:.0%}")
        return
    finding.summary(f"loss {losses[0]:.3f} -> {losses[-1]:.3f} in {steps} steps, "
                    f"{first['tokens_per_s']:g} tok/s; resume matches at step {steps + 1}")


@pytest.mark.pitfall("libuv-store")
def test_libuv_store(node, profile, finding, workloads):
    _preconditions(node, profile, finding)
    requested = node.environ.get("USE_LIBUV")
    workloads.prepare(finding)
    out = workloads.store()
    finding.evidence(launch=_launch_facts(out))
    if not out.complete and torchrun.LIBUV_MISSING.search(out.error):
        # torchrun's own store failed before any rank ran: the same pitfall, one step earlier
        result = {"stores": [{"store": "agent", "ok": False, "error": out.error,
                              "libuv_backend": False}]}
    else:
        _assert_finished(out, finding, "the TCPStore check", workloads.bound_s)
        result = out.results[0]
    stores = result.get("stores")
    finding.evidence(USE_LIBUV=requested, torch=result.get("torch"), stores=stores,
                     TORCHELASTIC_USE_AGENT_STORE=node.environ.get("TORCHELASTIC_USE_AGENT_STORE"))
    if not stores:
        finding.fix(f"run `{sys.executable} -m preflight.workloads.store` and read its error")
        raise AssertionError(f"could not create a TCPStore: {result.get('error')}")
    failed = [s for s in stores if not s["ok"]]
    libuv = [s for s in failed if torchrun.LIBUV_MISSING.search(s["error"])]
    if libuv and requested != "0":
        finding.fix("export USE_LIBUV=0  # the legacy TCPStore; a 2-GPU DDP run also pins "
                    "TORCHELASTIC_USE_AGENT_STORE=0")
    elif libuv:
        finding.fix("this torch wants libuv even with USE_LIBUV=0: pass "
                    "init_method='env://?use_libuv=0' or install an official torch wheel")
    else:
        finding.fix("the store could not bind or connect on 127.0.0.1: check the error and "
                    "free ports (see port-free)")
    assert not failed, "; ".join(f"{s['store']} store: {s['error']}" for s in failed)
    backends = {s["store"]: "libuv" if s["libuv_backend"] else "legacy" for s in stores}
    kinds = ", ".join(f"{name}: {kind}" for name, kind in backends.items())
    finding.summary(f"TCPStore created the way torchrun does ({kinds})")
