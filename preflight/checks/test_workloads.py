"""Workload checks: a real all-reduce and a real DDP training run, under a real torchrun.

The static checks say the node looks right; these prove it can train. Each workload
is a module in preflight/workloads/ launched by `torchrun` (preflight/probes/torchrun.py)
in its own session, bounded by the profile's workload.timeout_s, and everything it
started is killed before the check judges. torch is imported only by those children:
this module asks `importlib.util.find_spec("torch")` and nothing more.

On one node the launch is torchrun's standalone c10d rendezvous on a port found by
binding. With NNODES > 1 (and MASTER_ADDR / MASTER_PORT, as ms-swift reads them) the
same workloads join a c10d rendezvous across nodes; run `pytest -k nccl` on every node.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from preflight.probes import torchrun

pytestmark = pytest.mark.workload

# Multi-node: each launch rendezvous on its own port so a node that finished one
# workload never joins the previous workload's store on a slower node.
PORT_OFFSET = {"allreduce": 0, "train": 1, "resume": 2}


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
    if profile.is_gpu and not node.gpus.get("gpus"):
        # No launch can prove GPUs NVML does not see; fail now instead of after torchrun.
        why = node.gpus.get("error") or "no NVIDIA GPU"
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


class Workloads:
    """Launches the workloads for one check, against one profile (a factory fixture)."""

    def __init__(self, node, profile, tmp_factory):
        self.node = node
        self.profile = profile
        self.topology = torchrun.Topology()
        self.tmp_factory = tmp_factory
        wl = profile.workload
        self.nproc = wl.world_size or profile.gpu.count or 2
        # A GPU profile must run on CUDA: a CPU-only torch on a GPU node fails fast.
        self.cuda_args = ("--require-cuda",) if profile.is_gpu else ()

    def prepare(self, finding) -> None:
        """Read the multi-node variables; unusable ones fail the check with the fix."""
        self.topology = _topology(self.node, finding)

    def _launch(self, name: str, module: str, args: tuple[str, ...], out: Path):
        spec = torchrun.Spec(name, module, ("--out", str(out), *args), self.nproc, out,
                             self.profile.workload.timeout_s, self.topology, PORT_OFFSET[name])
        return torchrun.launch(spec, self.node.environ, self.node.runner)

    def allreduce(self) -> torchrun.Outcome:
        wl = self.profile.workload
        out = self.tmp_factory.mktemp("allreduce")
        return self._launch("allreduce", "preflight.workloads.allreduce", (
            "--min-bytes", str(wl.min_size_bytes), "--max-bytes", str(wl.max_size_bytes),
            "--warmup", str(wl.warmup_iters), "--iters", str(wl.iters), *self.cuda_args), out)

    def train(self, phase: str, checkpoint: Path) -> torchrun.Outcome:
        out = self.tmp_factory.mktemp(phase)
        return self._launch(phase, "preflight.workloads.train", (
            "--phase", phase, "--steps", str(self.profile.workload.train_steps),
            "--checkpoint", str(checkpoint), *self.cuda_args), out)

    def store(self) -> dict:
        return torchrun.run_script("preflight.workloads.store", (), self.node.environ,
                                   min(30.0, self.profile.workload.timeout_s), self.node.runner)


@pytest.fixture
def workloads(node, profile, tmp_path_factory) -> Workloads:
    return Workloads(node, profile, tmp_path_factory)


def _launch_facts(out: torchrun.Outcome) -> dict:
    return {"torchrun": " ".join(["torchrun", *out.argv[3:]]), "port": out.port,
            "elapsed_s": out.elapsed_s, "returncode": out.returncode,
            "timed_out": out.timed_out, "attempts": out.attempts, "log": out.log}


def _measured_by(result: dict) -> dict:
    return {key: result.get(key) for key in ("node_rank", "declared_node_rank", "rank", "host")}


def _assert_finished(out: torchrun.Outcome, finding, what: str, timeout_s: float) -> None:
    """A hang or a crashed launch; the fix names what to look at, the assert which rank."""
    if out.timed_out:
        finding.evidence(unfinished=out.unfinished)
        finding.fix("a rank hangs (see `unfinished`): rerun with NCCL_DEBUG=INFO "
                    "TORCH_DISTRIBUTED_DEBUG=DETAIL; check NCCL_SOCKET_IFNAME and that every "
                    "node reaches MASTER_ADDR:MASTER_PORT; preflight already killed the "
                    "workload it started")
        stuck = "; ".join(f"{rank} ({phase})" for rank, phase in out.unfinished.items())
        raise AssertionError(f"{what} did not finish within {timeout_s:g}s; not finished: "
                             f"{stuck}")
    if out.returncode != 0:
        error = out.error
        finding.evidence(unfinished=out.unfinished, log_tail=list(out.log_tail[-8:]))
        if torchrun.LIBUV_MISSING.search(error):
            finding.fix("export USE_LIBUV=0  # this torch has no libuv TCPStore (seed 003)")
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
    _assert_finished(out, finding, "all_reduce sweep", wl.timeout_s)
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
    ckpt_dir = workloads.tmp_factory.mktemp("checkpoint")
    ckpt = ckpt_dir / "step.pt"
    out = workloads.train("train", ckpt)
    finding.evidence(launch=_launch_facts(out), nnodes=workloads.topology.nnodes,
                     nproc_per_node=workloads.nproc)
    _assert_finished(out, finding, f"{steps}-step training", wl.timeout_s)
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

    resumed = workloads.train("resume", ckpt)
    finding.evidence(resume_launch=_launch_facts(resumed))
    _assert_finished(resumed, finding, "resume from checkpoint", wl.timeout_s)
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
                "load_state_dict); a resume without it (NO_LOAD_OPTIM=1, seed 002) restarts "
                "Adam's moments and changes every following step")
    assert math.isclose(value, reference, rel_tol=wl.resume_tolerance, abs_tol=1e-7), (
        f"resumed step {steps + 1} loss {value:.6f} differs from the uninterrupted run's "
        f"{reference:.6f} (tolerance {wl.resume_tolerance:g} relative)")
    if fraction > wl.resume_headroom:
        finding.fix("load the checkpoint with map_location='cpu' and move the optimizer state "
                    "shard by shard, or free memory before optimizer.load_state_dict (seed 002 "
                    "OOM'd there)")
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
    result = workloads.store()
    stores = result.get("stores")
    finding.evidence(USE_LIBUV=requested, torch=result.get("torch"), stores=stores,
                     TORCHELASTIC_USE_AGENT_STORE=node.environ.get("TORCHELASTIC_USE_AGENT_STORE"))
    if stores is None:
        finding.fix(f"run `{sys.executable} -m preflight.workloads.store` and read its error")
        raise AssertionError(f"could not create a TCPStore: {result.get('error')}")
    failed = [s for s in stores if not s["ok"]]
    libuv = [s for s in failed if torchrun.LIBUV_MISSING.search(s["error"])]
    if libuv and requested != "0":
        finding.fix("export USE_LIBUV=0  # the legacy TCPStore; seed 003 also pins "
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
