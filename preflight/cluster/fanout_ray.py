"""`preflight cluster --ray`: preflight on every alive node of a Ray cluster at once.

One task per node, pinned with NodeAffinitySchedulingStrategy(soft=False) (a node that
cannot run it fails the task instead of moving it elsewhere), `num_cpus=0` so a busy
node still runs it, `max_retries=0` so a dead node is reported, not retried. Each task
runs `python -m preflight` in a bounded subprocess in the worker's environment, which is
what Ray gives every job on that node. The driver waits at most `node_timeout` in all:
a node that has not answered by then is UNKNOWN and its task is cancelled.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preflight.cluster import merge
from preflight.cluster.checks import NodeReport
from preflight.cluster.node_env import NodeEnv
from preflight.errors import InputError
from preflight.model import Finding
from preflight.redact import redact_text
from preflight.report import JSON_NAME
from preflight.run import INTERRUPT_SIGNALS, interrupt_on_signals, restore_signals

# Time the task keeps for itself after the node's preflight, to read and return its report.
TASK_MARGIN_S = 5.0
REACH_BOUND_S = 60.0
CONNECT_BOUND_S = 60.0  # ray.init against the cluster's GCS
CONNECT_PROBE_S = 5.0  # cluster-reach: start the listeners and probe, all nodes at once
# A node's preflight stopped (its bound, a cancel): time to kill its workloads and exit
# before its process group is killed. Below collective.STOP_WAIT_S, after which the driver
# kills a task that has not returned.
NODE_STOP_S = 10.0
SESSION_RE = re.compile(r"/(session_\d{4}-\d\d-\d\d_[\d_-]+)")
NODE_DIR = "preflight-node-"  # + run_tag() + "-": the node task's report dir
# A node task whose worker died (killed, OOM) never ran its `finally`: after the node
# runs, a task on that node waits this long for what the run started there to end (its
# preflight ends as interrupted within NODE_STOP_S), then removes the run's node dirs.
DEBRIS_WAIT_S = NODE_STOP_S + 5.0


def ray_session() -> str:
    """The Ray session this worker belongs to, read off its raylet's command line (an
    ancestor of every worker); "" when not found."""
    import psutil

    proc = psutil.Process()
    for parent in proc.parents():
        try:
            match = SESSION_RE.search(" ".join(parent.cmdline()))
        except psutil.Error:
            continue
        if match:
            return match.group(1)
    return ""


def remove_tree(path: str) -> None:
    """Remove a directory this task made, even when the task's cancel lands during the
    removal: a cancel is one KeyboardInterrupt (`_thread.interrupt_main()`, Ray's
    kill_main_task), which cut TemporaryDirectory's rmtree short when the node's run had
    just ended (a preflight-node-* dir, its report gone, its workload logs left, in the
    node's $TMPDIR). The removal is finished, then the interrupt goes on."""
    import shutil

    try:
        shutil.rmtree(path, ignore_errors=True)
    except KeyboardInterrupt:
        shutil.rmtree(path, ignore_errors=True)
        raise


def finds_gpus(argv: list[str]) -> bool:
    """Whether preflight finds a GPU on this node, as it reads them (NVML, or the snapshot
    --nvml-replay / PREFLIGHT_NVML_REPLAY names); True when that cannot be read (a bad
    snapshot: the node's preflight says so under the profile it was asked for)."""
    from preflight.probes import nvml

    replay = os.environ.get("PREFLIGHT_NVML_REPLAY") or ""
    for arg, following in zip(argv, [*argv[1:], ""], strict=False):
        if arg == "--nvml-replay":
            replay = following
        elif arg.startswith("--nvml-replay="):
            replay = arg.partition("=")[2]
    try:
        snapshot = nvml.load_snapshot(replay) if replay else nvml.read_snapshot()
    except Exception:  # SnapshotError, OSError
        return True
    return bool(snapshot.gpus)


def node_task(node_id: str, argv: list[str], timeout: float,
              cpu_argv: list[str] | None = None, *, no_gpu_offered: bool = False
              ) -> dict[str, Any]:
    """Runs on the node: preflight in a bounded subprocess; returns its report text and
    the options it ran. `no_gpu_offered`: Ray offers no GPU here; when the node then finds
    none and its preflight would run a GPU profile (resolved as it resolves it: options,
    this worker's PREFLIGHT_PROFILE, the ini, `-m`: swap.cpu_argv), it runs `cpu` in its
    place. `cpu_argv`: what an older driver computed instead (the options to run when it
    finds no GPU)."""
    import socket
    import tempfile

    env = dict(os.environ)
    instead_of = ""
    if cpu_argv is not None and not finds_gpus(argv):  # an older driver's swap
        argv, instead_of = cpu_argv, "?"
    elif no_gpu_offered:
        swapped_argv, asked = swap_for(argv, env)
        if asked and not finds_gpus(argv):
            argv, instead_of = swapped_argv, asked
    env["PREFLIGHT_NODE_ID"] = node_id
    session = ray_session()
    if session:  # this cluster's own processes are not leftovers of an earlier run
        env["PREFLIGHT_RAY_SESSION"] = session
    # named by the run (run_tag) so that the driver can remove it when this task
    # dies before its `finally` (remove_debris)
    report_dir = tempfile.mkdtemp(prefix=f"{NODE_DIR}{run_tag()}-")
    try:
        code, out, timed_out, elapsed = _bounded(
            [sys.executable, "-m", "preflight.cluster.child", str(os.getpid()),
             "--report-dir", report_dir, "-q", *argv], timeout, env)
        path = Path(report_dir) / JSON_NAME
        # a report written on the way out of a stopped run is incomplete: the node is
        # UNKNOWN (it did not finish), not judged on half its checks
        text = path.read_text(encoding="utf-8") if path.is_file() and not timed_out \
            else None
    finally:
        remove_tree(report_dir)
    errors = [ln for ln in out.splitlines() if ln.startswith("ERROR:")]
    return {"hostname": socket.gethostname(), "returncode": code,
            "timed_out": timed_out, "elapsed_s": round(elapsed, 3), "bound_s": timeout,
            "report": text, "error": errors[0][:300] if errors else "",
            "profile_swapped": bool(instead_of), "profile_instead_of": instead_of,
            "argv": list(argv)}


def swap_for(argv: list[str], environ: dict[str, str]) -> tuple[list[str], str]:
    """swap.cpu_argv with this node's profiles (its own and the --profile-dir passed on);
    (argv, "") when they cannot be read (every node's preflight says so itself)."""
    from preflight.cluster import swap
    from preflight.profiles import load_profiles

    dirs = [Path(d) for d in _values(argv, "--profile-dir")]
    try:
        profiles = load_profiles(dirs)
    except Exception:  # ProfileError
        return list(argv), ""
    return swap.cpu_argv(argv, environ, profiles)


def _values(argv: list[str], option: str) -> list[str]:
    """Every value of a repeatable `--option V` / `--option=V`."""
    out = []
    for arg, following in zip(argv, [*argv[1:], ""], strict=False):
        if arg == option:
            out.append(following)
        elif arg.startswith(option + "="):
            out.append(arg.partition("=")[2])
    return out


def run_tag() -> str:
    """This `cluster` run: its Ray job id (hex) and a hash of the cluster's session name
    (job ids start again at 01000000 in every new cluster), the same in the driver and in
    every task it starts; "" when Ray does not say."""
    import hashlib

    try:
        import ray

        if not ray.is_initialized():  # get_runtime_context() would connect (ray.init)
            return ""
        context = ray.get_runtime_context()
        job, session = str(context.get_job_id() or ""), str(context.get_session_name())
    except Exception:  # an older Ray, not connected
        return ""
    return f"{job}-{hashlib.sha256(session.encode()).hexdigest()[:8]}" if job else ""


def _holders(marker: str) -> list[Any]:
    """The processes on this node with `marker` (the run's node dir) in their command
    line: the node's supervisor and preflight (`--report-dir DIR`)."""
    import psutil

    from preflight.probes.procs import cmdlines  # the cheap scan: one cmdline read each

    found = []
    for pid, argv in cmdlines():
        if pid != os.getpid() and any(marker in a for a in argv):
            try:
                found.append(psutil.Process(pid))
            except psutil.Error:  # gone meanwhile
                continue
    return found


def remove_debris(tag: str, wait_s: float) -> list[str]:
    """Runs on a node whose node task died with its worker: its report dir is still there,
    and its preflight (SIGTERM by PR_SET_PDEATHSIG) writes into it on the way out. Waits
    (bounded) until no process of this run holds a dir of it, kills those still there
    after `wait_s` (ours: the run's dir is in their command line), then removes the dirs.
    Returns the paths removed."""
    import glob
    import tempfile

    if not tag:
        return []
    marker = os.path.join(tempfile.gettempdir(), f"{NODE_DIR}{tag}-")
    deadline = time.monotonic() + wait_s
    while (left := _holders(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for proc in left:
        try:
            proc.kill()
        except Exception:  # psutil.Error: gone meanwhile
            continue
    removed = []
    for path in glob.glob(glob.escape(marker) + "*"):
        remove_tree(path)
        removed.append(path)
    return removed


def _bounded(argv: list[str], timeout: float, env: dict[str, str]
             ) -> tuple[int | None, str, bool, float]:
    """The node's preflight, bounded: (exit code or None, stderr + stdout, timed out,
    seconds). Past the bound, or cancelled (ray.cancel: KeyboardInterrupt here), it gets
    SIGTERM first: preflight then kills its workloads' process trees, which run in
    sessions of their own (run.Runner.popen), so a SIGKILL of its group alone left
    torchrun and its ranks running until their own deadline; its group (the supervisor
    and preflight) is killed only when it has not ended within NODE_STOP_S."""
    import subprocess

    from preflight.run import Runner, communicate, kill_group

    start = time.monotonic()
    proc = Runner().popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, env=env, text=True, errors="replace")
    try:
        out, err = communicate(proc, timeout)
        return proc.returncode, err + out, False, time.monotonic() - start
    except BaseException as exc:
        proc.terminate()
        stop_by = time.monotonic() + NODE_STOP_S
        while True:
            try:
                out, err = communicate(proc, max(0.0, stop_by - time.monotonic()))
                break
            except subprocess.TimeoutExpired:
                kill_group(proc)
                out, err = proc.communicate()
                break
            except KeyboardInterrupt:
                continue  # the driver's cancel while it stops at its own bound: it is
        # no killpg once it is reaped: its process group id may then be another's
        if not isinstance(exc, subprocess.TimeoutExpired):
            raise
        return None, err + out, True, time.monotonic() - start


def run(address: str, node_args: list[str], node_timeout: float, report_dir: Path,
        profile_dirs: list[Path], allow: set[str],
        connect_timeout: float = CONNECT_BOUND_S, workloads: bool = False,
        floor_gbps: float = 0.0, gpu_nodes: int | None = None) -> int:
    """`workloads`: after the node runs, the all-reduce sweep across nodes
    (cluster-allreduce, collective.py), judged against `floor_gbps` when it is > 0;
    `gpu_nodes`: --gpu-nodes, the GPU nodes expected (cluster-gpus)."""
    try:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    except ImportError:
        raise InputError("preflight cluster --ray: ray is not installed "
                         "(pip install 'pytest-preflight[ray]')") from None
    started = time.time()
    merge.check_writable(report_dir)
    _reachable(address)
    shown = redact_text(address)  # ray://user:PASSWORD@head: never printed nor written
    from preflight.cluster.node_env import for_nodes

    plan = Plan(node_args, node_timeout, profile_dirs, allow, workloads, floor_gbps,
                gpu_nodes, for_nodes(node_args))
    with RayNoticesToStderr():
        return _session(ray, NodeAffinitySchedulingStrategy, address, shown, connect_timeout,
                        plan, started, report_dir)


NOTICE_THREAD = "ray_listen_error_messages"


class RayNoticesToStderr:
    """While connected, Ray's driver prints the cluster's error notices (a raylet that
    died, a node marked dead, with the last 20 lines of its log) to sys.stdout whatever
    `log_to_driver` says: its thread `ray_listen_error_messages` (ray/_private/worker.py
    listen_error_messages -> print_to_stdstream, `is_err: False`, sink sys.stdout read at
    each call). stdout is the verdict and the report lines, read by scripts: those notices
    go to stderr, as Ray wrote them; every other write goes to stdout."""

    def __enter__(self) -> RayNoticesToStderr:
        self.out = sys.stdout
        sys.stdout = self
        return self

    def __exit__(self, *exc: object) -> None:
        if sys.stdout is self:
            sys.stdout = self.out

    def write(self, text: str) -> int:
        if threading.current_thread().name == NOTICE_THREAD:
            return sys.stderr.write(text)
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()
        sys.stderr.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding: stdout's
        return getattr(self.out, name)


def _session(ray: Any, affinity: Any, address: str, shown: str, connect_timeout: float,
             plan: Plan, started: float, report_dir: Path) -> int:
    """Connect (bounded, interruptible), fan out, disconnect."""
    # ray.init retries an unanswering GCS for many minutes; a cluster that does not answer
    # within the bound is bad input, not a hang (nothing was started yet: exit at once).
    # SIGTERM (a CI timeout) and SIGHUP (a dropped ssh) end the run as Ctrl-C does, as for
    # a node run (run.interrupt_on_signals): exit 2, ray.shutdown, no report. ray.init puts
    # its own driver handler on SIGTERM (ray/_private/worker.py `sigterm_handler`:
    # sys.exit) under a C++ stack dump: the handlers are read before it; one the caller set
    # (nohup's SIG_IGN) is kept.
    before = {sig: signal.getsignal(sig) for sig in INTERRUPT_SIGNALS}
    # ... and while it connects too: SIGTERM there hung (Ray's handler) and SIGHUP killed
    # the command without a word
    saved = interrupt_on_signals(before)
    watchdog = threading.Timer(connect_timeout, _give_up, args=(shown, connect_timeout))
    watchdog.daemon = True
    watchdog.start()
    try:
        with _ConnectGuard():
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                     configure_logging=True)
    except Exception as exc:  # ConnectionError, ValueError: no cluster at that address
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        restore_signals(saved)
        raise InputError(redact_text(f"preflight cluster --ray {shown}: cannot connect: "
                                     f"{first}")) from None
    except BaseException:
        ray.shutdown()
        restore_signals(saved)
        raise
    finally:
        watchdog.cancel()
    saved = interrupt_on_signals(before)  # again: ray.init put its own on SIGTERM
    try:
        return _fan_out(ray, affinity, plan, started, shown, report_dir)
    finally:
        ray.shutdown()
        restore_signals(saved)


INTERRUPTED = "ERROR: preflight cluster: interrupted; no cluster report written"


class _ConnectGuard:
    """While ray.init connects, Ctrl-C, SIGTERM and SIGHUP end the command at once: exit
    2 and one line, as later. Python runs a signal handler only when the main thread is
    back in Python, and ray.init waits in Ray's C++ client: a signal there waited out
    --connect-timeout (then exit 4, as if the cluster had not answered). The handlers'
    wakeup fd (signal.set_wakeup_fd) is written at once whatever the main thread does; a
    thread reading it ends the command. Nothing was started yet: nothing to stop."""

    def __enter__(self) -> _ConnectGuard:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)
        self.previous = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self) -> None:
        watched = {signal.SIGINT, *INTERRUPT_SIGNALS}
        while data := os.read(self.read_fd, 16):
            if watched & set(data):
                sys.stderr.write(INTERRUPTED + "\n")
                sys.stderr.flush()
                os._exit(2)

    def __exit__(self, *exc: object) -> None:
        signal.set_wakeup_fd(self.previous)
        os.close(self.write_fd)  # the reader sees the end and returns
        self.thread.join()
        os.close(self.read_fd)


def _reachable(address: str) -> None:
    """A HOST:PORT that refuses TCP is one ERROR line, before Ray retries it. "auto" is the
    address Ray itself would pick (RAY_ADDRESS, else `<ray temp dir>/ray_current_cluster`,
    the last `ray start` here: ray/_private/services.py get_ray_address_from_environment),
    so a file left by a cluster that is gone fails at once, not after --connect-timeout."""
    named = ""
    if address == "auto":
        resolved = _auto_address()
        if resolved is None:
            return  # Ray finds none, or no longer has this helper: ray.init says so
        address, named = resolved, f" (the last `ray start` here: {resolved})"
    host, _, port = address.removeprefix("ray://").rpartition(":")
    shown = redact_text("auto" + named if named else address)
    host = host.rpartition("@")[2]  # ray://user:password@host:port
    if re.fullmatch(r"[+-]?\d+", port.strip()) and not 0 < int(port) < 65536:
        # the kernel keeps 16 bits: :99999 was "Connection refused" from port 34463
        raise InputError(f"preflight cluster --ray {shown}: {port} is not a TCP port "
                         "(1-65535)")
    if not port.isdigit() or not host:
        return  # a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_PROBE_S).close()
    except OSError as exc:
        raise InputError(f"preflight cluster --ray {shown}: cannot connect: "
                         f"{exc.strerror or exc}"
                         + ("; start the cluster, or name it: --ray HOST:PORT" if named
                            else "")) from None


def _auto_address() -> str | None:
    """HOST:PORT of the cluster `ray.init(address="auto")` would join, read the way Ray
    reads it; None when Ray finds none (its own error is clearer) or cannot be asked."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        return None
    try:
        found = canonicalize_bootstrap_address("auto")
    except Exception:  # ConnectionError: no cluster found; ValueError: a malformed file
        return None
    return found or None


def _give_up(address: str, bound: float) -> None:
    sys.stderr.write(f"ERROR: preflight cluster --ray {address}: the Ray cluster did not "
                     f"answer within {bound:g}s\n")
    sys.stderr.flush()
    os._exit(4)


@dataclass(frozen=True)
class Plan:
    """What `cluster --ray` was asked to do."""

    node_args: list[str]
    node_timeout: float
    profile_dirs: list[Path]
    allow: set[str]
    workloads: bool = False
    floor_gbps: float = 0.0
    gpu_nodes: int | None = None
    env: NodeEnv = field(default_factory=NodeEnv)


def _fan_out(ray: Any, affinity: Any, plan: Plan, started: float, address: str,
             report_dir: Path) -> int:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    nodes = _node_runs(ray, affinity, alive, plan, started)
    if nodes and all(n.report is None and n.extra.get("exit_code") == 4 for n in nodes):
        # The same options went to every node and every node rejected them: the command
        # line is bad (exit 4), not the nodes (exit 1).
        raise InputError("preflight cluster: every node's preflight rejected its input: "
                         + nodes[0].reason.removeprefix("ERROR: "))
    names = {n.node_id: n.name for n in nodes}
    # After the node runs: a listener on MASTER_PORT during them would fail port-free.
    extra = [_reach(ray, affinity, alive, names, min(max(10.0, plan.node_timeout),
                                                     REACH_BOUND_S))]
    if plan.workloads:
        extra.append(_collective(ray, affinity, alive, nodes, plan))
    return merge.finish(nodes, started, f"ray ({address}, {len(alive)} alive node(s))",
                        report_dir, plan.profile_dirs, plan.allow, tuple(extra),
                        plan.gpu_nodes, {"passed": sorted(plan.env.env_vars),
                                         "left_out": plan.env.left_out})


def _collective(ray: Any, affinity: Any, alive: list[dict[str, Any]],
                nodes: list[NodeReport], plan: Plan) -> Finding:
    """cluster-allreduce on the nodes whose node run answered; the others are named. A
    node without GPUs by role (a CPU-only head: checks.gpu_role) runs no training: when
    there are GPU nodes, the sweep is theirs, with the profile they ran (NCCL)."""
    from preflight.cluster import collective

    merge.assign_roles(nodes, plan.profile_dirs)
    swept = [n for n in nodes if n.role == "gpu"] or [n for n in nodes if n.report is not None]
    answered = {n.node_id for n in swept}
    left_out = {n.name: f"no report from its node run ({n.reason})" for n in nodes
                if n.report is None}
    params = collective.Params.from_profile(merge.node_profile(swept, plan.profile_dirs),
                                            plan.floor_gbps)
    runs = collective.nodes_of([a for a in alive if a["NodeID"] in answered],
                               {n.node_id: n.name for n in nodes})
    return collective.run(ray, affinity, runs, left_out, params, plan.env.runtime_env())


def node_args_for(info: dict[str, Any], plan: Plan) -> tuple[list[str], str]:
    """What the node's preflight runs when it finds no GPU, as the driver can tell (the
    options and the variables passed on, not the node's own environment), and the GPU
    profile it replaces (([], "") when none: it runs plan.node_args): a node Ray
    advertises no GPU on that finds none (a CPU-only head) runs no GPU task of a Ray job,
    so `--profile h100` there is `--profile cpu`; with the GPU profile it failed its own
    GPU checks and the cluster was NO-GO. One that finds GPUs (a head started with
    `--num-gpus 0`) keeps the profile asked for: its GPUs are checked as before. The node
    decides (node_task); this is for a node that did not answer (its rerun line)."""
    if float((info.get("Resources") or {}).get("GPU", 0)) > 0:
        return [], ""
    from preflight.cluster import swap
    from preflight.profiles import load_profiles

    try:
        profiles = load_profiles(plan.profile_dirs)
    except Exception:  # ProfileError: a bad profile dir, which every node rejects too
        return [], ""
    args, asked = swap.cpu_argv(plan.node_args, plan.env.env_vars, profiles)
    return (args, asked) if asked else ([], "")


OLDER_NODE = "unexpected keyword argument 'no_gpu_offered'"


def _node_runs(ray: Any, affinity: Any, alive: list[dict[str, Any]], plan: Plan,
               started: float) -> list[NodeReport]:
    """preflight on every alive node at once; a node without an answer is UNKNOWN."""
    node_timeout = plan.node_timeout
    remote = ray.remote(num_cpus=0, max_retries=0)(node_task)
    subprocess_timeout = max(1.0, node_timeout - TASK_MARGIN_S)
    pending: dict[Any, dict[str, Any]] = {}
    for info in alive:
        # only where it is used: a node with an older preflight runs its own node_task
        # (Ray imports it there), which does not take it (_older_node)
        no_gpu = float((info.get("Resources") or {}).get("GPU", 0)) <= 0
        ref = remote.options(
            scheduling_strategy=affinity(node_id=info["NodeID"], soft=False),
            name=f"preflight:{info['NodeManagerHostname']}",
            # the job's NCCL / gloo settings of this shell (node_env): a task runs in its
            # raylet's environment, never the driver's
            runtime_env=plan.env.runtime_env(),
        ).remote(info["NodeID"], plan.node_args, subprocess_timeout,
                 **({"no_gpu_offered": True} if no_gpu else {}))
        pending[ref] = info
    results: dict[str, NodeReport] = {}
    lost: list[dict[str, Any]] = []  # nodes whose task died: its dir may be left there
    deadline = started + node_timeout
    try:
        while pending and (left := deadline - time.time()) > 0:
            # whatever is ready within a second: O(N) wait calls per second, not one per node
            ready, _ = ray.wait(list(pending), num_returns=len(pending),
                                timeout=min(left, 1.0))
            for ref in ready:
                info = pending.pop(ref)
                results[info["NodeID"]], died = _collect(ray, ref, info, plan.node_args,
                                                         plan.env.env_vars)
                if died:
                    lost.append(info)
    except BaseException:  # interrupted: every node's preflight ends before we do
        from preflight.cluster.collective import stop_tasks

        stop_tasks(ray, list(pending))
        raise
    # No answer within the bound: each is stopped as an interrupt stops them (a forced
    # cancel SIGKILLed the worker at once, and what the node's preflight had started
    # could outlive the command).
    from preflight.cluster.collective import stop_tasks

    killed = stop_tasks(ray, list(pending))
    # a task that ended on its cancel removed its dir; one killed (or dead) did not
    _remove_debris(ray, affinity, [*lost, *(pending[ref] for ref in killed)])
    for info in pending.values():
        results[info["NodeID"]] = _unknown(
            info, f"no answer within {node_timeout:g}s",
            "ray status   # is it alive, its task started?\n"
            + _pending_rerun(node_args_for(info, plan), plan.node_args, node_timeout,
                             plan.env.env_vars))
    nodes = [results[n["NodeID"]] for n in alive]
    merge.name_nodes(nodes)
    return nodes


def _remove_debris(ray: Any, affinity: Any, nodes: list[dict[str, Any]]) -> None:
    """remove_debris on each node whose task died or was stopped, all at once, bounded; a
    node that is gone (its raylet died) cannot run it: its dir stays in its $TMPDIR."""
    tag = run_tag()
    if not nodes or not tag:
        return
    remote = ray.remote(num_cpus=0, max_retries=0)(remove_debris)
    refs = [remote.options(scheduling_strategy=affinity(node_id=n["NodeID"], soft=False))
            .remote(tag, DEBRIS_WAIT_S) for n in nodes]
    _, late = ray.wait(refs, num_returns=len(refs), timeout=DEBRIS_WAIT_S + 10.0)
    for ref in late:
        ray.cancel(ref, force=True)


def _reach(ray: Any, affinity: Any, alive: list[dict[str, Any]], names: dict[str, str],
           bound: float) -> Any:
    """cluster-reach: one listening actor per node, then every node connects to all."""
    from preflight.cluster import checks, reach

    deadline = time.time() + bound
    actor = ray.remote(num_cpus=0, max_restarts=0)(reach.NodeProbe)
    actors = {n["NodeID"]: actor.options(scheduling_strategy=affinity(
        node_id=n["NodeID"], soft=False)).remote() for n in alive}
    ip = {n["NodeID"]: n.get("NodeManagerAddress", "") for n in alive}
    missing: dict[str, str] = {}
    try:
        located = _gather(ray, {a.where.remote(): nid for nid, a in actors.items()},
                          deadline, names, missing, "its listener")
        targets = [(names[nid], ip[nid], info["port"]) for nid, info in located.items()]
        asked = {actors[nid].probe.remote([t for t in targets if t[0] != names[nid]],
                                          reach.CONNECT_TIMEOUT_S): nid for nid in located}
        results = _gather(ray, asked, max(deadline, time.time() + 2 * reach.CONNECT_TIMEOUT_S),
                          names, missing, "its probe")
    finally:
        for handle in actors.values():
            ray.kill(handle)
    return checks.reach({names[nid]: r for nid, r in results.items()}, missing,
                        {names[nid]: ip[nid] for nid in results})


def _gather(ray: Any, refs: dict[Any, str], deadline: float, names: dict[str, str],
            missing: dict[str, str], what: str) -> dict[str, Any]:
    ready, late = ray.wait(list(refs), num_returns=len(refs),
                           timeout=max(0.0, deadline - time.time()))
    out: dict[str, Any] = {}
    for ref in ready:
        try:
            out[refs[ref]] = ray.get(ref)
        except Exception as exc:  # the node died, the port could not be bound
            missing[names[refs[ref]]] = f"{what} failed: {type(exc).__name__}"
    for ref in late:
        missing[names[refs[ref]]] = f"{what} did not answer in time"
    return out


def _unknown(info: dict[str, Any], reason: str, fix: str) -> NodeReport:
    """A node without a report: UNKNOWN, with why and the commands that decide it (in its
    row: `fix`, run on that node). The reason quotes the node (its ERROR line echoes the
    options it was given, a Ray error its arguments): masked by shape."""
    return NodeReport(name=info.get("NodeManagerHostname") or info["NodeID"][:8],
                      source=f"ray:{info['NodeID']}", report=None, node_id=info["NodeID"],
                      ip=info.get("NodeManagerAddress", ""), reason=redact_text(reason),
                      extra={"fix": fix})


def _rerun(node_args: list[str], env: dict[str, str] | None = None) -> str:
    """The node's preflight as `cluster` ran it, to paste on that node (secrets masked),
    with the variables it was given (node_env: never a secret)."""
    import shlex

    from preflight.redact import redact_argv

    given = [f"{k}={v}" for k, v in sorted((env or {}).items())]
    return shlex.join([*given, "preflight", "-v", *redact_argv(node_args)])


def _pending_rerun(given: tuple[list[str], str], node_args: list[str], bound: float,
                   env: dict[str, str] | None = None) -> str:
    """The rerun line of a node that did not answer: it may have run `cpu` in place of
    the GPU profile (it decides when it finds no GPU: node_task), so both."""
    cpu_args, asked = given
    line = f"{_rerun(node_args, env)}   # on it alone: what does not finish within {bound:g}s"
    if not asked:
        return line
    return (f"{_rerun(cpu_args, env)}   # on it alone: what does not finish within {bound:g}s "
            f"(it ran profile cpu in place of {asked} if it found no GPU)\n"
            f"{line.partition('   # ')[0]}   # if it found GPUs")


def _older_node(exc: Exception) -> bool:
    """The node's preflight predates `no_gpu_offered`: its own node_task (Ray imports it
    from the node's installation) rejects the argument."""
    return isinstance(exc, TypeError) and OLDER_NODE in str(exc)


def _collect(ray: Any, ref: Any, info: dict[str, Any], node_args: list[str],
             env: dict[str, str] | None = None) -> tuple[NodeReport, bool]:
    """The node as its task answered, and whether the task died (its dir left behind)."""
    try:
        answer = ray.get(ref)
    except Exception as exc:  # the node or its worker died: RayError subclasses
        if _older_node(exc):
            from preflight import __version__

            return _unknown(info, "its preflight is older than this one (it cannot run "
                            "`cpu` in place of a GPU profile where Ray offers no GPU)",
                            f"pip install -U 'pytest-preflight=={__version__}'   # on it: "
                            "the version this command runs"), False
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _unknown(info, f"the task failed: {type(exc).__name__}: {first[:200]}",
                        "ray status   # is it alive? then run preflight cluster --ray again"
                        ), True
    # what it ran (an older node's answer does not say: the options it was given)
    ran = answer.get("argv")
    node = _answered_node(answer, info, ran if isinstance(ran, list) else node_args, env)
    if answer.get("profile_swapped") and answer.get("profile_instead_of"):
        # said in its row and on the terminal (merge._cpu_role_lines)
        node.extra["profile_instead_of"] = str(answer["profile_instead_of"])
    return node, False


def _answered_node(answer: dict[str, Any], info: dict[str, Any], node_args: list[str],
                   env: dict[str, str] | None = None) -> NodeReport:
    rerun = _rerun(node_args, env)
    if answer["report"] is None:
        # a node whose preflight predates `bound_s` runs its own node_task (Ray imports it
        # from the node's installation): its answer has no bound_s
        bound = answer.get("bound_s")
        within = f"within {bound:g}s" if isinstance(bound, (int, float)) else \
            "within --node-timeout"
        why = answer["error"] or (f"preflight did not finish {within} "
                                  "(--node-timeout): stopped, with what it started"
                                  if answer["timed_out"] else
                                  f"preflight exited {answer['returncode']} without a report")
        node = _unknown(info, why, f"{rerun}   # on it alone: " + (
            f"what does not finish {within}" if answer["timed_out"] else "what it says"))
        if answer["returncode"] == 4:  # the node's preflight rejected its input
            node.extra["exit_code"] = 4
        return node
    try:
        data = merge.parse_report(answer["report"], f"ray:{info['NodeID']}")
    except InputError as exc:
        return _unknown(info, str(exc), f"{rerun}   # on it alone: its report is unreadable")
    node = merge.from_report(data, f"ray:{info['NodeID']}")
    node.text = answer["report"]
    node.node_id = info["NodeID"]
    node.ip = info.get("NodeManagerAddress") or node.ip
    # Ray's own view of the node's GPUs (the `GPU` resource its raylet advertises): a node
    # offering none is not a GPU worker when it also found none (checks.gpu_role)
    node.ray_gpus = float((info.get("Resources") or {}).get("GPU", 0))
    node.extra = {"elapsed_s": answer["elapsed_s"], "ray_gpus": node.ray_gpus}
    return node
