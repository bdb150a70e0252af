"""cluster-allreduce: the all-reduce sweep across nodes, one torchrun per node.

Under `preflight cluster --ray --workloads`, after the node runs: one Ray task per node
(pinned with NodeAffinitySchedulingStrategy(soft=False), holding the GPUs the ranks use)
starts `torchrun --nnodes N` there with the sweep of preflight/workloads/allreduce.py;
the N torchruns meet in a c10d rendezvous on the head node (a port found free there).
gloo on CPU nodes, NCCL on GPU nodes, as the single-node nccl-allreduce check.

Bounded: each node's launch is bounded by the profile's workload.timeout_s
(preflight/run/torchrun.py kills what it started); the driver waits that long plus a
margin. A node that fails before its ranks start ends the sweep for all (torchrun's
--nnodes N rendezvous cannot complete without it): the other tasks are cancelled, and
each task's child, which dies with the task (PR_SET_PDEATHSIG=SIGTERM), kills its torchrun
tree on the way out. Interrupted (Ctrl-C, SIGTERM, SIGHUP), the driver cancels the tasks
the same way and waits for them (stop_tasks). Nothing is left running when `cluster`
returns.

    python -m preflight.cluster.collective PARENT_PID JOB_JSON   (the task's child)
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from preflight.cluster import checks
from preflight.model import Finding
from preflight.redact import redact_text
from preflight.run import Runner

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Set in the environment of every process a cross-node launch starts: tests (and a person
# with `ps e`) find them by it.
RUN_VAR = "PREFLIGHT_CLUSTER_ALLREDUCE"
# Beyond the launch's own bound: Ray schedules the task and starts a worker, the child
# imports preflight, torchrun's tree is killed and read back.
TASK_MARGIN_S = 20.0
STOP_WAIT_S = 15.0  # cancelled tasks: time to kill their torchrun tree before we return
HEAD_RESOURCE = "node:__internal_head__"  # in ray.nodes()[i]["Resources"] of the head

CHECK = "cluster-allreduce"  # run by `preflight cluster --ray --workloads` only


@dataclass(frozen=True)
class Params:
    """The sweep, from the profile the nodes ran with (its [workload] section)."""

    nproc_per_node: int
    timeout_s: float
    min_bytes: int
    max_bytes: int
    warmup: int
    iters: int
    require_cuda: bool
    floor_gbps: float = 0.0

    @classmethod
    def from_profile(cls, profile: Any, floor_gbps: float = 0.0) -> Params:
        """`profile`: a preflight Profile, or None (the defaults of a CPU node)."""
        if profile is None:  # the [workload] defaults of preflight/profiles.py, on CPU
            return cls(2, 60.0, 8, 16 * 2**20, 5, 20, False, floor_gbps)
        wl = profile.workload
        return cls(int(wl.world_size or profile.gpu.count or 2), float(wl.timeout_s),
                   int(wl.min_size_bytes), int(wl.max_size_bytes), int(wl.warmup_iters),
                   int(wl.iters), bool(profile.is_gpu), floor_gbps)

    def args(self) -> list[str]:
        return ["--min-bytes", str(self.min_bytes), "--max-bytes", str(self.max_bytes),
                "--warmup", str(self.warmup), "--iters", str(self.iters),
                *(["--require-cuda"] if self.require_cuda else [])]


# -- on each node -------------------------------------------------------------------------


def free_port() -> int:
    """A Ray task on the head node: a port free there for the rendezvous."""
    from preflight.probes import ports

    return ports.free_port("0.0.0.0")


def node_task(job: dict[str, Any]) -> dict[str, Any]:
    """The Ray task on one node: the child (below) in its own session, bounded; its
    summary of the launch. Cancelled (KeyboardInterrupt) or timed out, the child gets
    SIGTERM and kills its torchrun tree before this returns."""
    from preflight.run import communicate, kill_group

    env = dict(os.environ)
    env[RUN_VAR] = job["run_id"]
    proc = Runner().popen([sys.executable, "-m", "preflight.cluster.collective",
                           str(os.getpid()), json.dumps(job)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True)
    try:
        out, err = communicate(proc, job["timeout_s"] + TASK_MARGIN_S / 2)
    except BaseException as exc:
        proc.terminate()  # the child's SIGTERM handler kills torchrun and its ranks
        try:
            proc.communicate(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.communicate()
        if not isinstance(exc, subprocess.TimeoutExpired):
            raise
        return {"hostname": socket.gethostname(), "answered": False,
                "error": f"the launch did not end within {job['timeout_s']:g}s"}
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    tail = [ln for ln in err.splitlines() if ln.strip()][-1:] or [f"exit {proc.returncode}"]
    return {"hostname": socket.gethostname(), "answered": False,
            "error": f"the launch helper failed: {tail[0][:300]}"}


def _die_with_parent() -> None:
    """In torchrun's process, before exec: SIGTERM when this helper dies, even by SIGKILL
    (the raylet SIGKILLs a killed worker's children: Ray's kill_child_processes_on_worker_
    exit, src/ray/common/ray_config_def.h). torchrun's agent answers SIGTERM by killing its
    ranks (torch/distributed/elastic/agent/server/api.py: SignalException -> _shutdown);
    before they start, SIGTERM simply ends it. `prctl` was looked up before the fork."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def _prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: the launch's own bound still ends it


_PRCTL = _prctl()


class _Tethered(Runner):
    """A Runner whose children die with this process (the helper has one thread)."""

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        return super().popen(argv, preexec_fn=_die_with_parent, **kwargs)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds torchrun.launch, which kills what it started


def main() -> None:
    """The child: dies with the task (SIGTERM, cleaning up), runs torchrun, prints JSON."""
    parent, job = int(sys.argv[1]), json.loads(sys.argv[2])
    signal.signal(signal.SIGTERM, _stop)
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(3)
    print(json.dumps(launch(job)))


def launch(job: dict[str, Any]) -> dict[str, Any]:
    """One node's torchrun of the sweep; what its ranks did."""
    from preflight.run import torchrun

    # The head hosts the store, explicitly: torch infers it by resolving its own hostname
    # (torch/distributed/elastic/rendezvous/utils.py: _matches_machine_hostname), which
    # misses when the hostname resolves to loopback, and then no node hosts it.
    topo = torchrun.Topology(nnodes=job["nnodes"], master_addr=job["host"],
                             master_port=job["port"], is_host=job["is_host"])
    with tempfile.TemporaryDirectory(prefix="preflight-cluster-allreduce-") as out:
        spec = torchrun.Spec("allreduce", "preflight.workloads.allreduce",
                             ("--out", out, *job["args"]), job["nproc"], Path(out),
                             job["timeout_s"], topo)
        done = torchrun.launch(spec, os.environ, _Tethered())
    return {"hostname": socket.gethostname(), "answered": True,
            "returncode": done.returncode, "timed_out": done.timed_out,
            "elapsed_s": done.elapsed_s, "error": done.error[:300],
            "torchrun": " ".join(["torchrun", *done.argv[3:]]),
            "ranks": [{"label": r.label, "rank": r.rank, "phase": r.phase,
                       "done": r.result is not None} for r in done.ranks],
            "results": done.results, "log_tail": list(done.log_tail[-6:])}


# -- the driver -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    node_id: str
    name: str
    ip: str
    gpus: float  # the GPUs Ray gives this node
    head: bool


def nodes_of(alive: list[dict[str, Any]], names: dict[str, str]) -> list[Node]:
    return [Node(n["NodeID"], names[n["NodeID"]], n.get("NodeManagerAddress", ""),
                 float((n.get("Resources") or {}).get("GPU", 0)),
                 HEAD_RESOURCE in (n.get("Resources") or {})) for n in alive]


def run(ray: Any, affinity: Any, nodes: list[Node], left_out: dict[str, str],
        params: Params, runtime_env: dict[str, Any] | None = None) -> Finding:
    """The cross-node sweep on `nodes` (their node runs answered); `left_out`: nodes
    that did not, with the reason; `runtime_env`: the node runs' (node_env), so that
    torchrun and its ranks see the NCCL / gloo settings they did. The finding of
    cluster-allreduce."""
    runs: dict[str, checks.CollectiveRun] = {}
    endpoint = ""
    short = {n.name: f"Ray gives it {n.gpus:g} GPU(s), the sweep needs {params.nproc_per_node}"
             for n in nodes if params.require_cuda and n.gpus < params.nproc_per_node}
    left_out = {**left_out, **short}
    nodes = [n for n in nodes if n.name not in short]
    head = next((n for n in nodes if n.head), nodes[0] if nodes else None)
    if head is not None and len(nodes) >= 2:
        endpoint, runs = _sweep(ray, affinity, nodes, head, params, runtime_env)
    facts = checks.CollectiveFacts(
        runs=tuple(runs[n.name] for n in nodes if n.name in runs),
        left_out=tuple(sorted(left_out.items())), endpoint=endpoint,
        nproc_per_node=params.nproc_per_node, timeout_s=params.timeout_s,
        floor_gbps=params.floor_gbps, head=head.name if head and endpoint else "")
    return checks.conclude(CHECK, checks.collective(facts))


def _sweep(ray: Any, affinity: Any, nodes: list[Node], head: Node, params: Params,
           runtime_env: dict[str, Any] | None = None
           ) -> tuple[str, dict[str, checks.CollectiveRun]]:
    pin = {n.node_id: affinity(node_id=n.node_id, soft=False) for n in nodes}
    port_ref = ray.remote(num_cpus=0, max_retries=0)(free_port).options(
        scheduling_strategy=pin[head.node_id]).remote()
    ready, _ = ray.wait([port_ref], timeout=TASK_MARGIN_S)
    if not ready:
        ray.cancel(port_ref, force=True)
        why = f"the head node did not run a task within {TASK_MARGIN_S:g}s"
        return "", {n.name: checks.CollectiveRun(n.name, "no-answer", why) for n in nodes}
    port = int(ray.get(port_ref))
    endpoint = f"{head.ip}:{port}"
    job = {"nnodes": len(nodes), "host": head.ip, "port": port, "nproc": params.nproc_per_node,
           "args": params.args(), "timeout_s": params.timeout_s,
           "run_id": f"{head.ip}:{port}"}
    remote = ray.remote(num_cpus=0, max_retries=0)(node_task)
    pending = {remote.options(
        scheduling_strategy=pin[n.node_id], name=f"preflight-allreduce:{n.name}",
        runtime_env=runtime_env,
        num_gpus=params.nproc_per_node if params.require_cuda else 0).remote(
            job | {"is_host": n is head}): n for n in nodes}
    return endpoint, _await(ray, pending, params)


def _await(ray: Any, pending: dict[Any, Node], params: Params
           ) -> dict[str, checks.CollectiveRun]:
    """Every node's answer, within the bound; the first failure stops the others."""
    runs: dict[str, checks.CollectiveRun] = {}
    deadline = time.time() + params.timeout_s + TASK_MARGIN_S
    failed = ""
    try:
        while pending and not failed and (left := deadline - time.time()) > 0:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=min(left, 1.0))
            for ref in ready:
                node = pending.pop(ref)
                runs[node.name] = _answer(ray, ref, node)
                if runs[node.name].state != "done" and not runs[node.name].timed_out:
                    failed = node.name  # the others' rendezvous or collective cannot complete
    except BaseException:
        # Ctrl-C, SIGTERM, SIGHUP of `cluster`: the launches end before it does. Left to
        # Ray, the driver's exit reached each node's torchrun and ranks only when the
        # raylet got round to the dead job's workers (their own deadline, seconds later).
        stop_tasks(ray, list(pending))
        raise
    if pending:
        why = f"stopped: {failed} failed" if failed else \
            f"no answer within {params.timeout_s + TASK_MARGIN_S:g}s"
        for node in pending.values():
            runs[node.name] = checks.CollectiveRun(node.name, "stopped" if failed
                                                   else "no-answer", why)
        stop_tasks(ray, list(pending))
    return runs


def stop_tasks(ray: Any, refs: list[Any]) -> list[Any]:
    """Cancel running node tasks and wait (bounded) until they have returned, so their
    children are gone: a plain cancel is a KeyboardInterrupt in the task, whose child then
    kills its torchrun tree (node_task); a task still there after STOP_WAIT_S has a stuck
    worker, killed (force=True; the child gets SIGTERM by PR_SET_PDEATHSIG). Returns those
    killed: their `finally` never ran."""
    if not refs:
        return []
    for ref in refs:
        ray.cancel(ref)
    _, stuck = ray.wait(refs, num_returns=len(refs), timeout=STOP_WAIT_S)
    for ref in stuck:
        ray.cancel(ref, force=True)
    return list(stuck)


def _answer(ray: Any, ref: Any, node: Node) -> checks.CollectiveRun:
    try:
        answer = ray.get(ref)
    except Exception as exc:  # the node or its worker died: RayError subclasses
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return checks.CollectiveRun(node.name, "no-answer", redact_text(
            f"the task failed: {type(exc).__name__}: {first[:200]}"))
    # the node's words (torchrun's error, its log's last lines): masked by shape
    answer = {**answer, "error": redact_text(str(answer.get("error") or "")),
              "log_tail": [redact_text(str(x)) for x in answer.get("log_tail") or []]}
    return checks.CollectiveRun.from_answer(node.name, answer)


if __name__ == "__main__":
    main()
