"""Workload checks: nccl-allreduce, train-10-steps, libuv-store (judged from what the
ranks of the one shared torchrun launch wrote).

The facts are typed views of that launch (`Run`: its exit, timeout, the results and the
phase of each rank for one workload) plus the profile's thresholds; the judges never
launch, read a file or look at pytest. The adapters live in
`preflight/checks/test_workloads.py`.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from preflight.model import Problem, Verdict
from preflight.run.torchrun import LIBUV_MISSING

# Each fix is copy-paste shell (`cmd  # why`, preflight/fixes.py splits the comments into
# `why`); a fix that was all prose came out of that split empty.
HANG_FIX = ("export NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,NET TORCH_DISTRIBUTED_DEBUG=DETAIL"
            "  # a rank hangs (see `unfinished`): rerun preflight --workloads with "
            "NCCL_DEBUG=INFO TORCH_DISTRIBUTED_DEBUG=DETAIL set; check NCCL_SOCKET_IFNAME "
            "(GLOO_SOCKET_IFNAME on CPU) and that every node reaches MASTER_ADDR:MASTER_PORT; "
            "preflight already killed the workload it started")
CUDA_FIX = ("nvidia-smi\n"
            "python -c 'import torch; print(torch.__version__, torch.version.cuda, "
            "torch.cuda.is_available())'  # install the torch wheel built for this node's "
            "CUDA (e.g. pip install torch --index-url https://download.pytorch.org/whl/cu124) "
            "and check CUDA_VISIBLE_DEVICES")
LIBUV_FIX = "export USE_LIBUV=0  # this torch has no libuv TCPStore (hand-built torch)"
TOPOLOGY_FIX = ("unset NNODES NODE_RANK  # one node; several nodes: export NNODES=<nodes> "
                "NODE_RANK=<this node> MASTER_ADDR=<node 0 address> "
                "MASTER_PORT=<a free port on node 0>")
WRONG_FIX = ("nvidia-smi -q -d ECC,ROW_REMAPPER\n"
             "dcgmi diag -r 3  # the collective returned wrong data (ECC errors, a faulty "
             "link or GPU): isolate the path with NCCL_P2P_DISABLE=1 / NCCL_SHM_DISABLE=1 / "
             "NCCL_ALGO=Ring; drain the node if it persists")
BUSBW_FIX = ("nvidia-smi topo -m  # NV# between every GPU pair\n"
             "nvidia-smi nvlink -s\n"
             "unset NCCL_P2P_DISABLE NCCL_SHM_DISABLE NCCL_IB_DISABLE\n"
             "all_reduce_perf -b 8 -e 256M -f 2 -g 1  # nccl-tests, to compare")
LOSS_FIX = ("dcgmi diag -r 3  # a non-finite or rising loss on a fixed seed means broken "
            "kernels or a bad GPU; rerun with TORCH_DISTRIBUTED_DEBUG=DETAIL")
DIVERGED_FIX = ("export TORCH_DISTRIBUTED_DEBUG=DETAIL  # DDP ranks hold different weights: "
                "check that every rank runs the same code and data, and that NCCL "
                "collectives are correct (see nccl-allreduce)")
OPTIM_FIX = ("unset NO_LOAD_OPTIM NO_LOAD_RNG  # save and load the optimizer state with the "
             "model (optimizer.state_dict() / load_state_dict); a resume without it "
             "(NO_LOAD_OPTIM=1, as on 4×A800) restarts Adam's moments and changes every "
             "following step")
HEADROOM_FIX = ("export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True  # less "
                "fragmentation at load time; load the checkpoint with map_location='cpu' and "
                "move the optimizer state shard by shard, or free memory before "
                "optimizer.load_state_dict (a 4×A800 slime run OOM'd there)")


# -- facts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """What decides whether the workloads can run here at all."""

    python: str  # the interpreter that would launch them
    profile: str
    gpu_profile: bool
    expected_gpus: int
    gpu_model: str
    nvml_replay: str | None = None  # --nvml-replay: the GPUs are not real
    torch_importable: bool = True
    nvml_gpus: int = 0  # GPUs NVML sees
    nvml_error: str | None = None
    topology_error: str | None = None  # NNODES / NODE_RANK / MASTER_* unusable
    declared: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Rank:
    """One local rank as one workload sees it."""

    label: str  # "rank 1", or "local rank 1" when it never got a global rank
    task: str  # the workload it was in last ("" before the first)
    phase: str  # the last thing it said it was doing
    finished: bool  # it wrote this workload's result


@dataclass(frozen=True)
class Run:
    """One workload's part of the shared torchrun launch."""

    name: str  # allreduce, train, resume, store
    launch: Mapping[str, Any]  # the launch as evidence (command, port, times, log)
    complete: bool  # every expected rank wrote this workload's result
    timed_out: bool
    returncode: int | None
    error: str  # the most telling error line of the launch ("" when none)
    log: str
    log_tail: Sequence[str]
    ranks: Sequence[Rank]
    results: Sequence[Mapping[str, Any]]  # what the ranks wrote, in local rank order
    # the rank torchrun saw fail first (torchrun.first_failure); None when it names none
    first_failure: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Allreduce:
    run: Run
    nnodes: int
    nproc: int
    bound_s: float
    min_busbw_gbps: float


@dataclass(frozen=True)
class Train:
    train: Run
    resume: Run
    nnodes: int
    nproc: int
    bound_s: float
    steps: int
    resume_tolerance: float
    resume_headroom: float


@dataclass(frozen=True)
class Store:
    run: Run
    bound_s: float
    python: str
    use_libuv: str | None  # USE_LIBUV as the user set it
    agent_store: str | None  # TORCHELASTIC_USE_AGENT_STORE


# -- shared judgements -----------------------------------------------------------------


def _failure_text(failure: Mapping[str, Any] | None) -> str:
    """'rank 1 failed first (exitcode -9, SIGKILL)', or '' without a Root Cause block."""
    if not failure:
        return ""
    signal = f", {failure['signal']}" if failure.get("signal") else ""
    return f"rank {failure['rank']} failed first (exitcode {failure['exitcode']}{signal})"


def gate(g: Gate) -> Verdict | None:
    """Replayed GPUs skip; without torch: skip on a CPU profile, fail on a GPU profile; a GPU
    profile NVML sees no GPU of fails before any launch; unusable multi-node variables fail.
    None: the workloads can run."""
    if g.nvml_replay:
        return Verdict(skip=f"the GPUs are replayed from {g.nvml_replay} (--nvml-replay): the "
                            "workloads need the real devices")
    if not g.torch_importable:
        v = Verdict(evidence=dict(python=g.python, torch_importable=False),
                    fix=f'"{g.python}" -m pip install "pytest-preflight[torch]"  # on GPU '
                        "nodes install the torch wheel built for your CUDA first")
        if not g.gpu_profile:
            v.skip = (f"torch is not importable by {g.python}: the workloads need it "
                      "(pip install 'pytest-preflight[torch]')")
        else:
            v.problems.append(Problem(f"torch is not importable by {g.python}: profile "
                                      f"{g.profile} must prove its GPUs with the workloads"))
        return v
    if g.gpu_profile and not g.nvml_gpus:
        # No launch can prove GPUs NVML does not see; fail now instead of after torchrun.
        why = g.nvml_error or "no NVIDIA GPU"
        return Verdict(
            [Problem(f"profile {g.profile} expects {g.expected_gpus} GPU(s); NVML sees none "
                     f"({why})")],
            dict(expected_gpus=g.expected_gpus, nvml=why),
            fix=f"nvidia-smi -L   # then run on a node with {g.expected_gpus}x {g.gpu_model}, "
                "or choose this node's profile (see profile-match)")
    if g.topology_error is not None:
        return Verdict([Problem(g.topology_error, TOPOLOGY_FIX)], dict(declared=dict(g.declared)),
                       fix=TOPOLOGY_FIX)
    return None


def unfinished(run: Run, what: str, bound_s: float) -> Verdict | None:
    """A hang or a crashed launch: the fix names what to look at, the text which rank. A
    workload whose every rank wrote its result is finished, whatever the shared launch did
    after it. None: finished."""
    if run.complete:
        return None
    left = [r for r in run.ranks if not r.finished]
    if run.timed_out:
        stuck = "; ".join(f"{r.label} ({r.phase})" if r.task in ("", run.name) else
                          f"{r.label} (still in the {r.task} workload: {r.phase})"
                          for r in left)
        # torchrun's log first: what each rank printed before it stopped
        fix = f"tail -n 60 {shlex.quote(run.log)}\n{HANG_FIX}"
        port = run.launch.get("port")
        if isinstance(port, int) and all(r.label.startswith("local rank") for r in left):
            # No rank got a global rank: the c10d rendezvous itself never completed (a node
            # missing, or MASTER_PORT held by something that is no torchrun store)
            fix = (f"ss -ltnp 'sport = :{port}'  # who holds the rendezvous port; a holder "
                   f"that is no torchrun of this job blocks the rendezvous (see port-free), "
                   f"else a node did not join\n{fix}")
        return Verdict([Problem(f"{what} did not finish within {bound_s:g}s; not finished: "
                                f"{stuck}", fix)],
                       dict(unfinished={r.label: r.phase for r in left},
                            unfinished_in={r.label: r.task for r in left}))
    if run.returncode != 0:
        error = run.error
        if LIBUV_MISSING.search(error):
            fix = LIBUV_FIX
        elif "CudaMissing" in error:
            fix = CUDA_FIX
        else:
            # `read LOG` was bash's read builtin (a variable name, then a wait on stdin)
            fix = (f"tail -n 60 {shlex.quote(run.log)}  # torchrun's log: its Root Cause "
                   "block names the rank that failed first; the first error is in the "
                   "summary")
        first = _failure_text(run.first_failure)
        evidence: dict[str, Any] = dict(unfinished={r.label: r.phase for r in left},
                                        log_tail=list(run.log_tail[-8:]))
        if run.first_failure:
            evidence["first_failure"] = dict(run.first_failure)
        return Verdict([Problem(f"{what}: torchrun exited {run.returncode}: "
                                f"{first + ': ' if first else ''}{error[:300]}", fix)],
                       evidence)
    return None


def _then(v: Verdict, step: Verdict | None) -> bool:
    """Fold a step's verdict into `v`; True when the step ends the judgement."""
    if step is None:
        return False
    v.evidence.update(step.evidence)
    v.problems.extend(step.problems)
    return True


def _measured_by(result: Mapping[str, Any]) -> dict[str, Any]:
    return {key: result.get(key) for key in ("node_rank", "declared_node_rank", "rank", "host")}


def _backend_note(result: Mapping[str, Any]) -> str:
    if result.get("cuda"):
        return f"NCCL {result.get('nccl')} on {result.get('device')}"
    return "no CUDA on this node: the same code ran over gloo on CPU (NCCL not exercised)"


# -- nccl-allreduce ----------------------------------------------------------------------


def allreduce(f: Allreduce) -> Verdict:
    v = Verdict(evidence=dict(launch=f.run.launch, nnodes=f.nnodes, nproc_per_node=f.nproc),
                fix=BUSBW_FIX)
    if _then(v, unfinished(f.run, "all_reduce sweep", f.bound_s)):
        return v
    results = sorted(f.run.results, key=lambda r: int(r["rank"]))
    first = results[0]
    rows = first["rows"]
    peak = max(rows, key=lambda r: r["busbw_gbps"])
    wrong = [{"rank": r["rank"], "size": row["size"], **row["wrong"]}
             for r in results for row in r["rows"] if row["wrong"]]
    v.evidence.update(
        backend=first["backend"], note=_backend_note(first), world_size=first["world_size"],
        measured_by=_measured_by(first),
        table=[{k: row[k] for k in ("size", "time_us", "algbw_gbps", "busbw_gbps")}
               | {"correct": not row["wrong"]} for row in rows],
        peak_busbw_gbps=peak["busbw_gbps"], peak_at=peak["size"],
        floor_gbps=f.min_busbw_gbps, wrong=wrong[:8],
    )
    if wrong:
        bad = wrong[0]
        v.problems.append(Problem(
            f"all_reduce of {bad['size']} returned a wrong result on rank {bad['rank']}: "
            f"element {bad['index']} is {bad['got']:g}, expected {bad['expected']:g} "
            f"({bad['count']} wrong element(s))", WRONG_FIX))
    elif not peak["busbw_gbps"] >= f.min_busbw_gbps:
        v.problems.append(Problem(
            f"peak all_reduce busbw {peak['busbw_gbps']:g} GB/s (at {peak['size']}) is below "
            f"the profile floor {f.min_busbw_gbps:g} GB/s", BUSBW_FIX))
    v.ok = (f"{len(rows)} sizes exact; peak busbw {peak['busbw_gbps']:g} GB/s at "
            f"{peak['size']} over {first['backend']} ({first['world_size']} ranks)")
    return v


# -- train-10-steps ----------------------------------------------------------------------


def _diverging(values: Sequence[str]) -> list[int]:
    return [rank for rank, value in enumerate(values) if value != values[0]]


def _training(f: Train, v: Verdict) -> Mapping[str, Any] | None:
    """The training phase: finished, finite, falling, ranks agree. Returns rank 0's result
    when the resume is next."""
    steps = f.steps
    if _then(v, unfinished(f.train, f"{steps}-step training", f.bound_s)):
        return None
    first = min(f.train.results, key=lambda r: int(r["rank"]))
    losses = first["losses"]
    v.evidence.update(
        backend=first["backend"], note=_backend_note(first), world_size=first["world_size"],
        measured_by=_measured_by(first), model=first["model"], params=first["params"],
        losses=[round(x, 5) for x in losses], step_time_s=first["step_time_s"],
        tokens_per_s=first["tokens_per_s"], peak_memory=first["peak_memory"],
        checksums=first["checksums"],
    )
    if not all(math.isfinite(x) for x in losses):
        v.problems.append(Problem(f"non-finite loss in {steps} steps: {losses}", LOSS_FIX))
    elif not losses[-1] < losses[0]:
        v.problems.append(Problem(
            f"loss did not fall in {steps} steps: step 1 {losses[0]:.4f}, step {steps} "
            f"{losses[-1]:.4f}", LOSS_FIX))
    elif diverged := _diverging(first["checksums"]):
        v.problems.append(Problem(f"parameters differ across ranks after step {steps}: "
                                  f"rank(s) {diverged} differ from rank 0", DIVERGED_FIX))
    return None if v.problems else first


def train(f: Train) -> Verdict:
    v = Verdict(evidence=dict(launch=f.train.launch, nnodes=f.nnodes, nproc_per_node=f.nproc),
                fix=OPTIM_FIX)
    first = _training(f, v)
    if first is None:
        return v
    steps = f.steps
    v.evidence["resume_launch"] = dict(f.resume.launch) | {
        "process_group": "fresh: destroyed after training and initialised again in the "
                         "same ranks"}
    if _then(v, unfinished(f.resume, "resume from checkpoint", f.bound_s)):
        return v
    again = min(f.resume.results, key=lambda r: int(r["rank"]))
    reference, value = first["next_step_loss"], again["next_step_loss"]
    load = again["load_peak_memory"]
    fraction = load["bytes"] / load["total_bytes"] if load["total_bytes"] else 0.0
    v.evidence.update(
        uninterrupted_step_loss=reference, resumed_step_loss=value,
        compared_step=steps + 1, tolerance=f.resume_tolerance,
        optimizer_state_loaded=again["optimizer_state_loaded"],
        resume_load_peak=load | {"fraction": round(fraction, 4)},
        resume_headroom=f.resume_headroom,
    )
    if not math.isclose(value, reference, rel_tol=f.resume_tolerance, abs_tol=1e-7):
        v.problems.append(Problem(
            f"resumed step {steps + 1} loss {value:.6f} differs from the uninterrupted run's "
            f"{reference:.6f} (tolerance {f.resume_tolerance:g} relative)", OPTIM_FIX))
    elif fraction > f.resume_headroom:
        v.problems.append(Problem.warning(
            f"loading the optimizer state peaked at {fraction:.0%} of "
            f"{'device' if again['cuda'] else 'host'} memory, above the profile "
            f"headroom {f.resume_headroom:.0%}", HEADROOM_FIX))
    v.ok = (f"loss {first['losses'][0]:.3f} -> {first['losses'][-1]:.3f} in {steps} steps, "
            f"{first['tokens_per_s']:g} tok/s; resume matches at step {steps + 1}")
    return v


# -- libuv-store -------------------------------------------------------------------------


def _store_fix(libuv: bool, requested: str | None, python: str, torch: object) -> str:
    if libuv and requested != "0":
        return ("export USE_LIBUV=0  # the legacy TCPStore; a 2-GPU DDP run also pins "
                "TORCHELASTIC_USE_AGENT_STORE=0")
    if libuv:
        # torch's own stores honour USE_LIBUV=0 (torch/distributed/rendezvous.py:70,
        # elastic/utils/distributed.py:47): what still asks for libuv passes use_libuv=True
        # itself. An official wheel of the same release has libuv; --no-deps keeps the rest.
        why = ("this torch wants libuv even with USE_LIBUV=0: an official wheel has it, or "
               "pass init_method='env://?use_libuv=0' where the code builds its own store")
        found = re.match(r"\d+\.\d+(\.\d+)?", torch) if isinstance(torch, str) else None
        if found is None:
            return why
        return (f'{shlex.quote(python)} -m pip install --force-reinstall --no-deps '
                f'"torch=={found.group(0)}"   # {why}')
    return ("ss -ltn  # the store could not bind or connect on 127.0.0.1: check the error "
            "and free ports (see port-free)")


def store(f: Store) -> Verdict:
    v = Verdict(evidence=dict(launch=f.run.launch))
    result: Mapping[str, Any]
    if not f.run.complete and LIBUV_MISSING.search(f.run.error):
        # torchrun's own store failed before any rank ran: the same pitfall, one step earlier
        result = {"stores": [{"store": "agent", "ok": False, "error": f.run.error,
                              "libuv_backend": False}]}
    elif _then(v, unfinished(f.run, "the TCPStore check", f.bound_s)):
        return v
    else:
        result = f.run.results[0]
    stores = result.get("stores")
    v.evidence.update(USE_LIBUV=f.use_libuv, torch=result.get("torch"), stores=stores,
                      TORCHELASTIC_USE_AGENT_STORE=f.agent_store)
    if not stores:
        v.problems.append(Problem(f"could not create a TCPStore: {result.get('error')}",
                                  f"{shlex.quote(f.python)} -m preflight.workloads.store  "
                                  "# run the store check alone and read its error"))
        return v
    failed = [s for s in stores if not s["ok"]]
    libuv = any(LIBUV_MISSING.search(s["error"]) for s in failed)
    v.fix = _store_fix(libuv, f.use_libuv, f.python, result.get("torch"))
    if failed:  # a failed store has no backend to name (workloads/store.py)
        v.problems.append(Problem("; ".join(f"{s['store']} store: {s['error']}"
                                            for s in failed), v.fix))
        return v
    backends = {s["store"]: "libuv" if s["libuv_backend"] else "legacy" for s in stores}
    kinds = ", ".join(f"{name}: {kind}" for name, kind in backends.items())
    v.ok = f"TCPStore created the way torchrun does ({kinds})"
    return v
