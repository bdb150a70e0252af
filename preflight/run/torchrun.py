"""Run a workload under a real `torchrun`, bounded in time, and read what its ranks wrote.

The launcher never judges: it returns an `Outcome` (exit code, timeout, what each rank
wrote, which ranks did not finish) and the checks decide. Everything it starts is
killed before `launch` returns: torchrun's process group *and* its workers, which
torch's elastic agent starts in sessions of their own
(torch/distributed/elastic/multiprocessing/subprocess_handler/subprocess_handler.py:
`start_new_session=True`), so killing torchrun's group alone would orphan them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from preflight.probes import ports
from preflight.probes.exceptions import exception_lines, root_cause
from preflight.run import Runner, kill_group
from preflight.run.tree import ProcessTree

PHASE_SUFFIX = ".phase"
RESULT_SUFFIX = ".json"
LOG_NAME = "torchrun.log"
# torchrun's per-attempt directories (<run_id>_<random>/attempt_N/<local rank>/, each
# rank's TORCHELASTIC_ERROR_FILE error.json and any --redirects/--tee files) go here,
# inside the launch's own out_dir. Without --log-dir the agent makes them with
# tempfile.mkdtemp(prefix="torchelastic_") in $TMPDIR and never removes them
# (torch/distributed/elastic/multiprocessing/api.py:260-262 and 276-279, DefaultLogsSpecs),
# so every launch left an empty tree in the node's /tmp.
ELASTIC_DIR = "torchelastic"
PORT_RETRIES = 3
# What the c10d TCPStore server prints when its port was taken between our bind and its.
_ADDRESS_IN_USE = re.compile(r"EADDRINUSE|address already in use", re.IGNORECASE)
# torch's text for a TCPStore that wants libuv in a build without it; older releases
# say "build", newer ones "built" (torch/csrc/distributed/c10d/TCPStore.cpp).
LIBUV_MISSING = re.compile(
    r"use_libuv was requested but PyTorch was buil[dt] without libuv support")


class TopologyError(ValueError):
    """NNODES / NODE_RANK / MASTER_ADDR / MASTER_PORT cannot describe a launch."""


@dataclass(frozen=True)
class Topology:
    """Where the workload's ranks live: this node alone, or one node of several."""

    nnodes: int = 1
    node_rank: int | None = None  # as declared; c10d assigns the real one on arrival
    master_addr: str = "127.0.0.1"
    master_port: int | None = None
    declared: tuple[tuple[str, str], ...] = ()
    # multi-node: whether this node hosts the c10d store (None: torch infers it from the
    # endpoint, which fails when the hostname resolves to loopback; cluster-allreduce sets it)
    is_host: bool | None = None

    @property
    def multi_node(self) -> bool:
        return self.nnodes > 1


# The variables ms-swift turns into torchrun flags (swift/cli/main.py: get_torchrun_args
# passes NPROC_PER_NODE, MASTER_PORT, NNODES, NODE_RANK, MASTER_ADDR as --lower_name).
TOPOLOGY_KEYS = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")


def _whole(name: str, raw: str, low: int, high: int) -> int:
    from preflight.numbers import maybe_int

    value = maybe_int(raw, low, high)  # ASCII digits only: `²` passes isdigit(), not int()
    if value is None:
        raise TopologyError(f"{name}={raw[:40]!r} is not a whole number in {low}..{high}")
    return value


def topology(environ: Mapping[str, str]) -> Topology:
    """Parse the multi-node variables; any of them unusable raises TopologyError."""
    declared = tuple((k, environ[k]) for k in TOPOLOGY_KEYS if environ.get(k, "") != "")
    raw = dict(declared)
    nnodes = _whole("NNODES", raw["NNODES"], 1, 4096) if "NNODES" in raw else 1
    if nnodes == 1:
        return Topology(declared=declared)
    node_rank = None
    if "NODE_RANK" in raw:
        node_rank = _whole("NODE_RANK", raw["NODE_RANK"], 0, nnodes - 1)
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in raw]
    if missing:
        raise TopologyError(f"NNODES={nnodes} needs {' and '.join(missing)} (the rendezvous "
                            "endpoint on node 0)")
    port = _whole("MASTER_PORT", raw["MASTER_PORT"], 1, 65535 - 8)
    return Topology(nnodes, node_rank, raw["MASTER_ADDR"], port, declared)


@dataclass(frozen=True)
class Spec:
    """One torchrun launch of a workload module."""

    name: str  # "allreduce", "train", ...: names the rendezvous and the files
    module: str  # run with `-m`, e.g. "preflight.workloads.allreduce"
    args: tuple[str, ...]
    nproc_per_node: int
    out_dir: Path
    timeout_s: float
    topology: Topology = field(default_factory=Topology)
    port_offset: int = 0  # multi-node: this launch rendezvous on MASTER_PORT + offset


def torchrun_argv(spec: Spec, port: int, python: str = sys.executable,
                  run_id: str | None = None) -> list[str]:
    """The torchrun command line (pure).

    One node: what `torchrun --standalone` does (torch/distributed/run.py sets
    rdzv_backend=c10d, rdzv_endpoint=localhost:0, a fresh rdzv_id), but on a port we
    found by binding so the evidence can name it, and with is_host=1 so a port taken
    in between fails loudly instead of joining someone else's store as a client
    (c10d_rendezvous_backend.py retries as a client only when is_host is inferred).
    Several nodes: c10d rendezvous on MASTER_ADDR:MASTER_PORT(+offset), the same
    rdzv_id on every node. `--log-dir` (torch/distributed/run.py:554-561, read at :908-913
    into DefaultLogsSpecs) only moves torchrun's per-attempt directories into out_dir
    (ELASTIC_DIR): with the default `--redirects 0` / `--tee 0` (:565-580) the ranks'
    stdout/stderr still go to torchrun's own, which launch() writes to torchrun.log.
    """
    topo = spec.topology
    conf = [f"join_timeout={max(1, int(spec.timeout_s))}"]
    if topo.multi_node:
        endpoint = f"{topo.master_addr}:{port}"
        run_id = run_id or f"preflight-{spec.name}-{port}"
        if topo.is_host is not None:
            conf.append(f"is_host={int(topo.is_host)}")
    else:
        endpoint = f"127.0.0.1:{port}"
        run_id = run_id or f"preflight-{spec.name}-{uuid.uuid4().hex[:12]}"
        conf.append("is_host=1")
    return [
        python, "-m", "torch.distributed.run",  # the module behind the `torchrun` script
        f"--nnodes={topo.nnodes}",
        f"--nproc-per-node={spec.nproc_per_node}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={endpoint}",
        f"--rdzv-id={run_id}",
        f"--rdzv-conf={','.join(conf)}",
        "--max-restarts=0",
        f"--log-dir={spec.out_dir / ELASTIC_DIR}",
        "-m", spec.module, *spec.args,
    ]


@dataclass(frozen=True)
class RankState:
    local_rank: int
    rank: int | None  # global rank; None when the process never got that far
    phase: str  # the last thing the rank said it was doing
    result: dict[str, Any] | None  # what it wrote when it finished
    task: str = ""  # combined launch: the workload the rank was in (workloads/suite.py)

    @property
    def label(self) -> str:
        return f"rank {self.rank}" if self.rank is not None else f"local rank {self.local_rank}"


@dataclass(frozen=True)
class Outcome:
    spec_name: str
    argv: tuple[str, ...]
    port: int
    returncode: int | None  # None when killed on timeout
    timed_out: bool
    elapsed_s: float
    ranks: tuple[RankState, ...]
    log: str  # path of torchrun's combined output
    log_tail: tuple[str, ...]
    error: str = ""  # the most telling error line of the whole log ("" when none)
    attempts: int = 1
    killed: int = 0  # processes still alive at the end that we had to kill
    # torchrun's Root Cause block: the rank that failed first (first_failure); None if none
    first_failure: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.returncode == 0

    @property
    def results(self) -> list[dict[str, Any]]:
        return [r.result for r in self.ranks if r.result is not None]

    @property
    def unfinished(self) -> dict[str, str]:
        """'rank N' -> its last phase, for every rank of this node that wrote no result."""
        return {r.label: r.phase for r in self.ranks if r.result is None}

    def task(self, name: str, ranks: Sequence[int] | None = None) -> Outcome:
        """This launch as one workload of a combined launch sees it: the results that
        workload wrote (`<stem>.<name>.json`), the launch's exit and timeout as they are.
        `ranks`: the local ranks expected to write a result (default: all)."""
        found = read_ranks(Path(self.log).parent, len(self.ranks), name)
        if ranks is not None:
            found = tuple(r for r in found if r.local_rank in ranks)
        return replace(self, spec_name=name, ranks=found)

    @property
    def complete(self) -> bool:
        """Every rank of this node wrote its result (whatever the launch did after)."""
        return bool(self.ranks) and all(r.result is not None for r in self.ranks)


# Each rank writes rank<R>-local<L>.phase when it starts and at every phase change, and
# rank<R>-local<L>.json when it is done (preflight/workloads/common.py).
_RANK_FILE = re.compile(r"^rank(\d+)-local(\d+)\.phase$")


def read_ranks(out_dir: Path, nproc_per_node: int,
               task: str | None = None) -> tuple[RankState, ...]:
    """What each local rank of this node left in out_dir (pure over the directory);
    with `task`, that workload's result of a combined launch."""
    found: dict[int, RankState] = {}
    for path in out_dir.glob(f"rank*{PHASE_SUFFIX}"):
        match = _RANK_FILE.match(path.name)
        if not match:
            continue
        rank, local = int(match[1]), int(match[2])
        result = None
        result_file = path.with_suffix(f".{task}{RESULT_SUFFIX}" if task else RESULT_SUFFIX)
        if result_file.exists():
            try:
                result = json.loads(result_file.read_text())
            except (OSError, ValueError):
                result = None
        found[local] = RankState(local, rank, _read_text(path), result,
                                 _read_text(path.with_suffix(".task")))
    for local in range(nproc_per_node):
        found.setdefault(local, RankState(
            local, None, "never started (rendezvous or process start did not complete)", None))
    return tuple(found[k] for k in sorted(found))


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def log_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [ln[:400] for ln in text.splitlines() if ln.strip() and "*****" not in ln]


def first_error(lines: Sequence[str]) -> str:
    """The most telling line of a failed launch's output (the workers' exception first)."""
    for line in lines:
        if LIBUV_MISSING.search(line):
            return line.strip()
    for line in exception_lines(lines):
        if "ChildFailedError" not in line:
            return line
    for line in lines:
        if re.search(r"Error|error:|Exception", line):
            return line.strip()
    return lines[-1].strip() if lines else ""


def first_failure(lines: Sequence[str]) -> dict[str, Any] | None:
    """The rank torchrun saw fail first (exceptions.root_cause): rank, local_rank,
    exitcode, signal; None when the log has no Root Cause block (a launch killed on
    timeout). The survivors' own errors ("Connection closed by peer") are its symptoms."""
    return root_cause(lines)


# Called while a launch runs with (seconds elapsed, bound, what each local rank is doing).
Progress = Callable[[float, float, tuple["RankState", ...]], None]


def _wait(proc: subprocess.Popen[Any], family: ProcessTree, deadline: float, spec: Spec,
          progress: Progress | None = None) -> bool:
    """Wait for torchrun until the deadline; True when it timed out. Each poll reads only
    the tree we started (ProcessTree.refresh) and the ranks' phase files."""
    started = deadline - spec.timeout_s
    while True:
        family.refresh()
        now = time.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            return True
        if progress is not None:
            progress(now - started, spec.timeout_s, read_ranks(spec.out_dir,
                                                               spec.nproc_per_node))
        try:
            proc.wait(timeout=min(0.2, remaining))
            return False
        except subprocess.TimeoutExpired:
            continue


def _clean(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in out_dir.glob("rank*"):
        path.unlink(missing_ok=True)


def launch(spec: Spec, environ: Mapping[str, str], runner: Runner | None = None,
           python: str = sys.executable, progress: Progress | None = None) -> Outcome:
    """Launch, wait at most spec.timeout_s, kill everything, report; retry a taken port."""
    runner = runner or Runner()
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        outcome = _launch_once(spec, environ, runner, python, attempt, started, progress)
        retry = (not spec.topology.multi_node and not outcome.ok and not outcome.results
                 and attempt < PORT_RETRIES
                 and _ADDRESS_IN_USE.search(outcome.error))
        if not retry:
            return outcome


def _launch_once(spec: Spec, environ: Mapping[str, str], runner: Runner, python: str,
                 attempt: int, started: float, progress: Progress | None) -> Outcome:
    _clean(spec.out_dir)
    topo = spec.topology
    port = (topo.master_port or 29500) + spec.port_offset if topo.multi_node \
        else ports.free_port()
    argv = torchrun_argv(spec, port, python)
    env = dict(environ)
    # The ranks stop themselves shortly after the bound even if we are gone (killed -9).
    env["PREFLIGHT_DEADLINE"] = f"{time.time() + spec.timeout_s + 5:.3f}"
    env["PYTHONUNBUFFERED"] = "1"
    log_path = spec.out_dir / LOG_NAME
    deadline = started + spec.timeout_s
    with open(log_path, "wb") as log:
        proc = runner.popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, cwd=spec.out_dir)
        family = ProcessTree(proc.pid)
        try:
            timed_out = _wait(proc, family, deadline, spec, progress)
        except BaseException:
            family.refresh()
            kill_group(proc)
            family.kill()
            proc.wait()
            raise
        family.refresh()
        if timed_out:
            kill_group(proc)
        killed = family.kill()
        proc.wait()
    lines = log_lines(log_path)
    return Outcome(
        spec_name=spec.name,
        argv=tuple(argv),
        port=port,
        returncode=None if timed_out else proc.returncode,
        timed_out=timed_out,
        elapsed_s=round(time.monotonic() - started, 2),
        ranks=read_ranks(spec.out_dir, spec.nproc_per_node),
        log=str(log_path),
        log_tail=tuple(lines[-20:]),
        error=first_error(lines) if timed_out or proc.returncode else "",
        attempts=attempt,
        killed=killed,
        first_failure=first_failure(lines) if not timed_out and proc.returncode else None,
    )


def run_script(module: str, args: Sequence[str], environ: Mapping[str, str], timeout_s: float,
               runner: Runner | None = None, python: str = sys.executable) -> dict[str, Any]:
    """Run one workload module as a plain process; returns its last JSON line."""
    runner = runner or Runner()
    done = runner.run([python, "-m", module, *args], timeout=timeout_s, env=dict(environ))
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            try:
                data: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            data.setdefault("returncode", done.returncode)
            return data
    return {"returncode": done.returncode, "timed_out": done.timed_out,
            "error": first_error(done.stderr.splitlines()[-20:]) or "no result printed"}
