"""`preflight cluster --ray` on a real Ray cluster of this machine (ray.cluster_utils: a head
and two workers, each a real raylet with its own environment), started and stopped here.

Ray binds this machine's own address (its node IP): with `node_ip_address=127.0.0.1` the
driver is sent to the node IP anyway and never reaches the GCS. Every Ray process these
tests start belongs to one session; the teardown checks none is left.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support import FIXTURES, base_env

ray = pytest.importorskip("ray")

NODE_TIMEOUT = 45  # seconds; each node's preflight here takes a few seconds
CHECKS = ("--check", "conda-env", "--check", "gloo-ifname", "--check", "master-addr")
# The CPU profile with a short all-reduce sweep and one rank per node: cluster-allreduce
# (under --workloads) then costs one torch start per node; the node runs stay static
# (`--check` selects no workload check).
TINY = """description = "cpu, a short sweep, one rank per node"
extends = "cpu"
[workload]
world_size = 1
timeout_s = 40.0
max_size_bytes = 65536
warmup_iters = 1
iters = 3
"""


def workloads_args(tmp_path: Path) -> tuple[str, ...]:
    (tmp_path / "profiles").mkdir(exist_ok=True)
    (tmp_path / "profiles" / "tiny.toml").write_text(TINY)
    return ("--profile-dir", str(tmp_path / "profiles"), "--profile", "tiny", "--workloads")


def collective_processes() -> list[psutil.Process]:
    """Every process a cross-node all-reduce started (torchrun, its ranks, the helper)."""
    from preflight.cluster.collective import RUN_VAR

    found = []
    for proc in psutil.process_iter():
        try:
            if RUN_VAR in proc.environ():
                found.append(proc)
        except psutil.Error:
            continue
    return found


def assert_nothing_left() -> None:
    deadline = time.time() + 10  # the helpers exit as their Ray tasks return
    while time.time() < deadline and collective_processes():
        time.sleep(0.2)
    left = [(p.pid, p.name()) for p in collective_processes()
            if p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"cross-node all-reduce processes left running: {left}"


def session_processes(session: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if session in " ".join(proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def tree_of(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            out |= {pid} | {c.pid for c in psutil.Process(pid).children(recursive=True)}
        except psutil.Error:
            continue
    return out


@pytest.fixture(scope="module")
def cluster():
    from ray._private.utils import read_ray_address
    from ray.cluster_utils import Cluster

    before = read_ray_address()  # Cluster() records itself as this machine's `auto` cluster
    env = {"CONDA_DEFAULT_ENV": "train"}
    made = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "env_vars": env})
    session = Path(made.head_node.get_session_dir_path()).name
    ray_file = Path(made.head_node.get_temp_dir_path()) / "ray_current_cluster"
    for _ in range(2):
        made.add_node(num_cpus=1, env_vars=env)
    ours = tree_of({p.pid for p in session_processes(session)})
    try:
        yield made
    finally:
        made.shutdown()
        if before:
            ray_file.write_text(before)
        else:
            ray_file.unlink(missing_ok=True)
        deadline = time.time() + 30
        while time.time() < deadline and [p for p in ours if psutil.pid_exists(p)]:
            time.sleep(0.5)
        alive = [p for p in ours if psutil.pid_exists(p)]
        left = [p.pid for p in session_processes(session)]
        assert not left and not alive, f"Ray processes left running: {left or alive}"


def cluster_run(cluster, tmp_path: Path, *args: str, timeout: float = 240,
                env: dict[str, str] | None = None):
    out = tmp_path / "cluster-report"
    argv = [sys.executable, "-m", "preflight", "cluster", "--ray", cluster.address,
            "--report-dir", str(out), "--node-timeout", str(NODE_TIMEOUT), *args]
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=base_env(**(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, out, start


def finish(proc, out: Path, start: float) -> tuple[int, dict, float, str]:
    return finish_both(proc, out, start)[:4]


def finish_both(proc, out: Path, start: float) -> tuple[int, dict, float, str, str]:
    stdout, stderr = proc.communicate(timeout=240)
    took = time.monotonic() - start
    path = out / "cluster-report.json"
    assert path.exists(), stdout + stderr[-3000:]
    return proc.returncode, json.loads(path.read_text()), took, stdout, stderr


def test_auto_naming_a_cluster_that_is_gone_is_exit_4_at_once(tmp_path):
    """`cluster --ray` with no address joins the cluster of the last `ray start` here
    (Ray's <temp dir>/ray_current_cluster); when that cluster is gone the file stays, and
    ray.init would wait out --connect-timeout: one ERROR line at once instead."""
    from ray._private.services import find_gcs_addresses

    if find_gcs_addresses():  # Ray's "auto" joins a live cluster it finds before the file
        pytest.skip("a live Ray cluster runs on this machine: `auto` joins it "
                    "(ray/_private/services.py get_ray_address_from_environment)")
    ray_dir = tmp_path / "ray"
    ray_dir.mkdir()
    (ray_dir / "ray_current_cluster").write_text("127.0.0.1:1\n")
    env = {k: v for k, v in base_env().items() if k != "RAY_ADDRESS"}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "preflight", "cluster", "--ray"],
                          env={**env, "RAY_TMPDIR": str(tmp_path)}, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    took = time.monotonic() - start
    assert proc.returncode == 4, proc.stderr[-2000:]
    # Ray turns 127.0.0.1 into this node's own address (services.resolve_ip_for_localhost)
    assert re.fullmatch(
        r"ERROR: preflight cluster --ray auto \(the last `ray start` here: [\d.]+:1\): "
        r"cannot connect: Connection refused; start the cluster, or name it: --ray HOST:PORT",
        proc.stderr.strip().splitlines()[-1]), proc.stderr[-2000:]
    assert took < 30, took  # the default --connect-timeout is 60 s


def test_without_ray_installed_is_one_line_exit_4(tmp_path):
    hide = tmp_path / "no-ray"
    hide.mkdir()
    (hide / "ray.py").write_text("raise ImportError('No module named ray')\n")
    env = base_env(PYTHONPATH=str(hide))
    proc = subprocess.run([sys.executable, "-m", "preflight", "cluster", "--ray"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 4
    assert proc.stderr == ("ERROR: preflight cluster --ray: ray is not installed "
                           "(pip install 'pytest-preflight[ray]')\n")
    bare = subprocess.run([sys.executable, "-m", "preflight", "cluster"], env=base_env(),
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bare.returncode == 4 and bare.stderr.startswith("ERROR: ")


def test_healthy_cluster_is_go_with_one_report_per_node(cluster, tmp_path):
    # --workloads: also the all-reduce sweep across the 3 nodes (cluster-allreduce)
    code, report, took, stdout = finish(*cluster_run(
        cluster, tmp_path, "--expect-env", "train", *CHECKS, *workloads_args(tmp_path)))
    assert code == 0, stdout
    alive = {cluster.head_node.node_id} | {n.node_id for n in cluster.worker_nodes}
    assert report["verdict"] == "GO"
    assert {n["node_id"] for n in report["nodes"]} == alive and len(alive) == 3
    for rep in report["reports"].values():  # each node ran in its own worker environment
        assert rep["node"]["node_id"] in alive
        [conda] = [c for c in rep["checks"] if c["id"] == "conda-env"]
        assert conda["outcome"] == "passed"
    [reached] = [c for c in report["checks"] if c["id"] == "cluster-reach"]
    assert reached["severity"] == "ok" and reached["evidence"]["connections"] == 3 * 2
    assert took < NODE_TIMEOUT + 60 + 40
    [swept] = [c for c in report["checks"] if c["id"] == "cluster-allreduce"]
    assert swept["severity"] == "ok", swept
    ev = swept["evidence"]
    assert ev["nnodes"] == 3 and ev["world_size"] == 3 and ev["backend"] == "gloo"
    head = cluster.head_node.node_ip_address
    assert ev["rendezvous"].startswith(f"{head}:")
    # one rank on each node, every size exact, the table as nccl-allreduce gives it
    assert set(ev["nodes"]) == {n["name"] for n in report["nodes"]}
    assert sorted(r for node in ev["nodes"].values() for r in node["ranks"]) == [0, 1, 2]
    [head_row] = [n for n in report["nodes"] if n["node_id"] == cluster.head_node.node_id]
    assert ev["head"] == head_row["name"]
    assert [row["size"] for row in ev["table"]][0] == "8 B" and \
        ev["table"][-1]["size"] == "64 KiB"
    assert all(row["correct"] and row["busbw_gbps"] > 0 for row in ev["table"])
    assert swept["summary"].startswith(f"{len(ev['table'])} sizes exact across 3 nodes")
    assert_nothing_left()


SECRET = "hf_" + "Q7" * 15


def test_the_nodes_run_with_this_shells_nccl_and_gloo_settings_never_its_secrets(cluster,
                                                                              tmp_path):
    """A Ray task runs in its raylet's environment: GLOO_SOCKET_IFNAME (NCCL_*, ...) set in
    the shell that runs `cluster`, where the job is launched from, never reached the
    nodes, which judged an environment the job would not have. They get them as the
    tasks' runtime_env env_vars: every node's gloo-ifname now judges the bad name. The
    profile swap acts on the profile the node resolves: PREFLIGHT_PROFILE=a800 (passed on
    too) is `cpu` on the nodes Ray offers no GPU that find none. A secret-named variable
    and a secret's value stay here, and are printed nowhere."""
    proc, out, start = cluster_run(
        cluster, tmp_path, "--expect-env", "train", *CHECKS,
        env={"GLOO_SOCKET_IFNAME": "nosuch0", "NCCL_DEBUG": "WARN",
             "PREFLIGHT_PROFILE": "a800", "NCCL_IB_TOKEN": SECRET,
             "HF_TOKEN": SECRET, "NCCL_NET_PLUGIN": SECRET})
    code, report, _, stdout, stderr = finish_both(proc, out, start)
    assert code == 1, stdout
    assert report["node_env"] == {
        "passed": ["GLOO_SOCKET_IFNAME", "NCCL_DEBUG", "PREFLIGHT_PROFILE"],
        "left_out": {"NCCL_IB_TOKEN": "secret-named",
                     "NCCL_NET_PLUGIN": "its value is a secret or a `.env` value"}}
    assert len(report["nodes"]) == 3
    for row in report["nodes"]:
        assert (row["role"], row.get("profile_instead_of")) == ("cpu", "a800"), row
        assert row["blockers"] == ["gloo-ifname"], row
        node = report["reports"][row["name"]]
        assert node["profile"] == "cpu"
        [gloo] = [c for c in node["checks"] if c["id"] == "gloo-ifname"]
        assert gloo["evidence"]["GLOO_SOCKET_IFNAME"] == "nosuch0", gloo
    assert "  to every node (Ray runtime_env): GLOO_SOCKET_IFNAME, NCCL_DEBUG, " \
        "PREFLIGHT_PROFILE" in stdout.splitlines(), stdout
    assert "  not passed to the nodes: NCCL_IB_TOKEN (secret-named)" in stdout.splitlines()
    md = (out / "cluster-report.md").read_text()
    assert "- to every node (Ray runtime_env): GLOO_SOCKET_IFNAME, NCCL_DEBUG, " \
        "PREFLIGHT_PROFILE" in md
    for text in (stdout, stderr, md, (out / "cluster-report.json").read_text()):
        assert SECRET not in text


def test_the_cross_node_sweep_runs_with_the_settings_passed_on(cluster, tmp_path):
    """The job's collectives read GLOO_SOCKET_IFNAME (NCCL_SOCKET_IFNAME on GPU nodes): the
    sweep's torchrun and ranks on each node run in its task's runtime_env, as the node
    runs do. A name no node has fails the sweep, as it fails the job."""
    proc, out, start = cluster_run(cluster, tmp_path, *workloads_args(tmp_path),
                                   "--check", "conda-env", "--expect-env", "train",
                                   env={"GLOO_SOCKET_IFNAME": "nosuch0"})
    code, report, _, stdout = finish(proc, out, start)
    assert code == 1, stdout
    [swept] = [c for c in report["checks"] if c["id"] == "cluster-allreduce"]
    # gloo's own words (third_party/gloo/gloo/transport/tcp/device.cc), from a rank
    assert swept["severity"] == "blocker", swept
    assert "Unable to find address for: nosuch0" in swept["summary"], swept
    assert_nothing_left()


def test_a_node_with_an_older_preflight_is_named_so_not_a_bare_type_error(cluster, tmp_path,
                                                                          monkeypatch):
    """Ray imports node_task from each node's own installation (cloudpickle pickles a
    module's function by reference): one that predates `no_gpu_offered` raises TypeError
    in the worker, which ray.get raises here as a RayTaskError that is also a TypeError.
    The same module, newer here and older on the node (its PYTHONPATH): _older_node knows
    it."""
    from preflight.cluster.fanout_ray import _older_node

    for where, params in (("new", "cpu_argv=None, *, no_gpu_offered=False"),
                          ("old", "cpu_argv=None")):
        (tmp_path / where).mkdir()
        (tmp_path / where / "pf_older_node.py").write_text(
            f"def node_task(node_id, argv, timeout, {params}):\n    return {{}}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "new"))
    import pf_older_node

    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        ref = ray.remote(num_cpus=0, max_retries=0)(pf_older_node.node_task).options(
            runtime_env={"env_vars": {"PYTHONPATH": str(tmp_path / "old")}}).remote(
            "n", [], 1.0, no_gpu_offered=True)
        with pytest.raises(Exception) as caught:
            ray.get(ref, timeout=60)
    finally:
        ray.shutdown()
        sys.modules.pop("pf_older_node", None)
    assert _older_node(caught.value), repr(caught.value)


def test_broken_worker_environment_is_no_go_naming_node_and_check(cluster, tmp_path):
    # the wrong conda env, a MASTER_ADDR no node can reach (TEST-NET-2, never routed), and a
    # torch on that node's path that cannot be imported: its torchrun never joins
    site = tmp_path / "broken-torch"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text(
        "raise ImportError('this torch is broken on this node only')\n")
    broken = cluster.add_node(num_cpus=1, env_vars={"CONDA_DEFAULT_ENV": "base",
                                                   "MASTER_ADDR": "198.51.100.1",
                                                   "PYTHONPATH": str(site)})
    try:
        code, report, took, stdout = finish(*cluster_run(
            cluster, tmp_path, "--expect-env", "train", *CHECKS, *workloads_args(tmp_path)))
        assert code == 1, stdout
        assert report["verdict"] == "NO-GO"
        bad = [n for n in report["nodes"] if n["verdict"] != "GO"]
        assert [(n["node_id"], n["blockers"]) for n in bad] == [(broken.node_id,
                                                                 ["conda-env"])]
        assert f"NO-GO {bad[0]['name']}: conda-env" in stdout
        assert len(report["nodes"]) == 4
        [reached] = [c for c in report["checks"] if c["id"] == "cluster-reach"]
        assert reached["severity"] == "blocker"
        assert [(f["from"], f["to"], f["address"]) for f in reached["evidence"]["failed"]] \
            == [(bad[0]["name"], "MASTER_ADDR", "198.51.100.1:29500")]
        # dropped (a timeout), or answered by something that is not preflight (a proxy)
        assert reached["evidence"]["failed"][0]["error"]
        # the node that never joins is named, UNKNOWN; the others stop at once, not at the
        # bound (40 s); nothing is left running
        [swept] = [c for c in report["checks"] if c["id"] == "cluster-allreduce"]
        assert swept["severity"] == "unknown", swept
        assert swept["summary"].startswith(f"{bad[0]['name']} never joined the rendezvous"), \
            swept["summary"]
        assert "this torch is broken on this node only" in swept["summary"]
        assert f"# on {bad[0]['name']}" in swept["fix"]
        states = {name: n["state"] for name, n in swept["evidence"]["nodes"].items()}
        assert states.pop(bad[0]["name"]) == "not-joined"
        assert set(states.values()) <= {"stopped", "waited"}, states
        assert took < NODE_TIMEOUT + 60 + 40
        assert_nothing_left()
    finally:
        cluster.remove_node(broken)


def test_node_whose_raylet_dies_mid_run_is_unknown_within_the_bound(cluster, tmp_path):
    """The doomed node alone also runs a workload whose rank hangs (its own PYTEST_ADDOPTS:
    the other nodes stay static), and its raylet dies while the rank runs: its worker
    dies, its preflight gets SIGTERM (PR_SET_PDEATHSIG) and takes torchrun and the rank
    with it. A SIGKILL there left them running (a session of their own) until the bound."""
    workload = " ".join([*workloads_args(tmp_path)[:4], "--check", "nccl-allreduce"])
    # its own $TMPDIR: the task's dir there outlives a dead raylet (nothing can run on
    # the node to remove it), and this machine's /tmp is not the test's to fill
    (tmp_path / "node-tmp").mkdir()
    doomed = cluster.add_node(num_cpus=1, env_vars={
        "CONDA_DEFAULT_ENV": "train", "PYTEST_ADDOPTS": workload,
        "TMPDIR": str(tmp_path / "node-tmp"), "PREFLIGHT_TEST_HANG_RANK": "0"})
    try:
        proc, out, start = cluster_run(cluster, tmp_path, "--expect-env", "train", *CHECKS)
        wait_for_node_preflight(doomed.node_id, timeout=120, running="preflight.workloads.suite")
        doomed.kill_raylet()
        code, report, took, stdout, stderr = finish_both(proc, out, start)
    finally:
        cluster.remove_node(doomed, allow_graceful=False)
    assert code == 1, stdout
    # Ray's notices of the dead raylet (with its last log lines) go to stderr, as Ray wrote
    # them: stdout is the verdict and the report lines alone
    assert stdout.startswith("preflight cluster verdict: NO-GO"), stdout[:3000]
    assert "(raylet)" not in stdout and "[state-dump]" not in stdout, stdout[:3000]
    assert "Raylet is terminated" in stderr or "marked dead" in stderr, stderr[-3000:]
    [row] = [n for n in report["nodes"] if n["node_id"] == doomed.node_id]
    assert row["verdict"] == "UNKNOWN" and row["reason"], row
    # what decides it, and where: the row's fix, under the node's line on the terminal
    lines = stdout.splitlines()
    at = lines.index(f"  UNKNOWN {row['name']}: {row['reason']}")
    assert lines[at + 1] == f"      fix (on {row['name']}):", stdout
    assert lines[at + 2] == f"        {row['fix'].splitlines()[0]}", stdout
    assert row["fix"].startswith("ray status"), row
    others = [n["verdict"] for n in report["nodes"] if n["node_id"] != doomed.node_id]
    assert others == ["GO"] * 3
    assert took < NODE_TIMEOUT + 60  # bounded: never a hang
    # what that node was running died with its worker (PR_SET_PDEATHSIG), well before
    # the workload's own bound (40 s)
    deadline = time.time() + 20
    while time.time() < deadline and node_processes(doomed.node_id):
        time.sleep(0.2)
    left = node_processes(doomed.node_id)
    for p in left:  # ours (this node's id): never left behind by a failure
        p.kill()
    assert not [(p.pid, cmdline(p)[:80]) for p in left]


def gpu_worker(cluster, snapshot: Path | None, gpus: int = 4):
    """A node Ray schedules GPU tasks on (`num_gpus`: the GPU resource its raylet
    advertises), its GPUs those of an NVML snapshot (PREFLIGHT_NVML_REPLAY: the GPU seam)
    or, without one, the none this machine has."""
    env = {"CONDA_DEFAULT_ENV": "train"}
    if snapshot is not None:
        env["PREFLIGHT_NVML_REPLAY"] = str(snapshot)
    return cluster.add_node(num_cpus=1, num_gpus=gpus, env_vars=env)


def test_a_cpu_only_head_beside_gpu_workers_is_go_and_a_gpu_worker_short_is_not(cluster,
                                                                                 tmp_path):
    """KubeRay's head (and most Ray-on-Slurm / cloud heads) has no GPU and runs no
    training: the fixture's head and two workers offer Ray no GPU and find none. Beside
    two 4-GPU workers the cluster is GO (cluster-gpus judges the GPU workers only). A
    worker Ray schedules GPU tasks on that finds none, and one with 3 of its 4, fail."""
    healthy = FIXTURES / "nvml" / "a800x4-healthy.json"
    added = [gpu_worker(cluster, healthy), gpu_worker(cluster, healthy)]
    try:
        code, report, _, stdout = finish(*cluster_run(
            cluster, tmp_path / "go", "--expect-env", "train", *CHECKS))
        assert code == 0, stdout
        rows = {n["node_id"]: n for n in report["nodes"]}
        gpu_ids = {n.node_id for n in added}
        assert {k: (r["role"], r["ray_gpus"]) for k, r in rows.items()} == {
            k: ("gpu", 4.0) if k in gpu_ids else ("cpu", 0.0) for k in rows}
        assert len(rows) == 5
        found = {c["id"]: c for c in report["checks"]}
        assert found["cluster-gpus"]["severity"] == "ok", found["cluster-gpus"]
        assert found["cluster-gpus"]["evidence"]["expected"]["count"] == 4  # profile a800
        assert sorted(found["cluster-gpus"]["evidence"]["cpu_nodes"]) == sorted(
            r["name"] for k, r in rows.items() if k not in gpu_ids)
        assert found["cluster-versions"]["severity"] == "ok", found["cluster-versions"]
        assert found["cluster-nodes"]["severity"] == "ok", found["cluster-nodes"]

        lost = gpu_worker(cluster, None)  # Ray offers its 4 GPUs; NVML finds none
        short = gpu_worker(cluster, FIXTURES / "nvml" / "a800x4-gpu-missing.json")
        added += [lost, short]
        code, report, _, stdout = finish(*cluster_run(
            cluster, tmp_path / "short", "--expect-env", "train", *CHECKS))
    finally:
        for node in added:
            cluster.remove_node(node)
    assert code == 1, stdout
    names = {n["node_id"]: n["name"] for n in report["nodes"]}
    [gpus] = [c for c in report["checks"] if c["id"] == "cluster-gpus"]
    assert gpus["severity"] == "blocker", gpus
    assert gpus["evidence"]["short"] == {
        names[lost.node_id]: {"count": 0, "model": None},
        names[short.node_id]: {"count": 3, "model": "NVIDIA A800-SXM4-80GB"}}
    assert len(gpus["evidence"]["cpu_nodes"]) == 3
    assert "BLOCKER cluster-gpus: " in stdout


def test_a_gpu_profile_for_all_runs_as_cpu_where_ray_offers_no_gpu(cluster, tmp_path):
    """`preflight cluster --ray --profile a800`, the way it is called: the same options go
    to every node, and the CPU-only head (and the fixture's CPU workers) ran the GPU
    profile and failed their own GPU checks (gpu-inventory: 0 of 4 GPUs): NO-GO. A node
    Ray advertises no GPU on now runs `--profile cpu` (role cpu, said in its row and on
    the terminal); the nodes Ray gives GPUs run a800. `--gpu-nodes 3` closes the hole
    this opens (a GPU worker given no GPU looks like a CPU node): 2 GPU nodes is a
    blocker naming the CPU-role ones. A GPU worker with 3 of its 4 GPUs still fails; a
    node Ray offers no GPU that finds GPUs keeps the GPU profile."""
    healthy = FIXTURES / "nvml" / "a800x4-healthy.json"
    added = [gpu_worker(cluster, healthy), gpu_worker(cluster, healthy)]
    run = ("--expect-env", "train", *CHECKS, "--check", "gpu-inventory", "--profile", "a800")
    try:
        code, report, _, stdout = finish(*cluster_run(cluster, tmp_path / "go", *run,
                                                      "--gpu-nodes", "2"))
        assert code == 0, stdout
        rows = {n["node_id"]: n for n in report["nodes"]}
        gpu_ids = {n.node_id for n in added}
        cpu_names = sorted(r["name"] for k, r in rows.items() if k not in gpu_ids)
        assert {k: (r["role"], r.get("profile_instead_of")) for k, r in rows.items()} == {
            k: ("gpu", None) if k in gpu_ids else ("cpu", "a800") for k in rows}
        assert {k: report["reports"][r["name"]]["profile"] for k, r in rows.items()} == {
            k: "a800" if k in gpu_ids else "cpu" for k in rows}
        ran = {c["id"]: c["outcome"] for c in report["reports"][rows[added[0].node_id][
            "name"]]["checks"]}
        assert ran["gpu-inventory"] == "passed", ran  # the GPU workers' GPUs were judged
        in_order = ", ".join(r["name"] for r in report["nodes"] if r["node_id"] not in gpu_ids)
        assert "  role cpu (no GPU found, none offered: not judged as GPU nodes; ran " \
            f"profile cpu in place of a800): {in_order} (3 nodes)" in stdout.splitlines(), stdout
        found = {c["id"]: c for c in report["checks"]}
        assert found["cluster-gpus"]["evidence"]["expected"]["count"] == 4  # a800's
        assert found["cluster-nodes"]["severity"] == "ok", found["cluster-nodes"]

        code, report, _, stdout = finish(*cluster_run(cluster, tmp_path / "three", *run,
                                                      "--gpu-nodes", "3"))
        assert code == 1, stdout
        gpus = {c["id"]: c for c in report["checks"]}["cluster-gpus"]
        assert gpus["severity"] == "blocker", gpus
        assert gpus["summary"].startswith("2 GPU node(s), 3 expected (--gpu-nodes); "
                                          "without GPUs by role: "), gpus
        assert all(name in gpus["summary"] for name in cpu_names), gpus
        assert "BLOCKER cluster-gpus: 2 GPU node(s), 3 expected" in stdout

        short = gpu_worker(cluster, FIXTURES / "nvml" / "a800x4-gpu-missing.json")
        # a head started with `--num-gpus 0` on a GPU machine: Ray offers none, but it
        # finds its GPUs, so it keeps the profile asked for and they are checked
        reserved = gpu_worker(cluster, healthy, gpus=0)
        added += [short, reserved]
        code, report, _, stdout = finish(*cluster_run(cluster, tmp_path / "short", *run))
    finally:
        for node in added:
            cluster.remove_node(node)
    assert code == 1, stdout
    [row] = [r for r in report["nodes"] if r["node_id"] == short.node_id]
    assert (row["role"], row["verdict"], row["blockers"]) == ("gpu", "NO-GO",
                                                              ["gpu-inventory"]), row
    gpus = {c["id"]: c for c in report["checks"]}["cluster-gpus"]
    assert gpus["severity"] == "blocker"
    assert gpus["evidence"]["short"] == {row["name"]: {"count": 3,
                                                       "model": "NVIDIA A800-SXM4-80GB"}}
    [head] = [r for r in report["nodes"] if r["node_id"] == reserved.node_id]
    assert (head["role"], head["verdict"], head["ray_gpus"]) == ("gpu", "GO", 0.0), head
    assert "profile_instead_of" not in head
    assert report["reports"][head["name"]]["profile"] == "a800"


def test_the_cross_node_sweep_is_the_gpu_workers_not_the_cpu_head(cluster, tmp_path):
    """With GPU workers beside a CPU-only head, the all-reduce sweep (cluster-allreduce) is
    the GPU workers': the head runs no training, and a sweep across it measured a path the
    job never uses (and on real GPUs asked the head for GPUs it does not have). The tiny
    CPU profile on every node keeps the sweep on gloo here; the GPU workers are GPU nodes
    by what they found (an NVML snapshot of 4 GPUs) and by what Ray offers there."""
    healthy = FIXTURES / "nvml" / "a800x4-healthy.json"
    added = [gpu_worker(cluster, healthy), gpu_worker(cluster, healthy)]
    try:
        code, report, _, stdout = finish(*cluster_run(
            cluster, tmp_path, "--expect-env", "train", *CHECKS, *workloads_args(tmp_path)))
    finally:
        for node in added:
            cluster.remove_node(node)
    assert code == 0, stdout
    names = {n["node_id"]: n["name"] for n in report["nodes"]}
    [swept] = [c for c in report["checks"] if c["id"] == "cluster-allreduce"]
    assert swept["severity"] == "ok", swept
    assert swept["evidence"]["nnodes"] == 2, swept["evidence"]
    assert set(swept["evidence"]["nodes"]) == {names[n.node_id] for n in added}
    assert swept["evidence"]["head"] in {names[n.node_id] for n in added}
    assert_nothing_left()


def test_a_node_whose_worker_is_killed_mid_run_leaves_no_node_dir(cluster, tmp_path):
    """The worker running a node's task is SIGKILLed (the OOM killer, `kill -9`) while
    that node's preflight runs a workload whose rank hangs: the task's `finally` never
    runs, and its preflight (SIGTERM by PR_SET_PDEATHSIG) writes its report into the
    dir on the way out. The dir was left in the node's $TMPDIR; the driver now removes it
    on that node once what the run started there has ended. The node is UNKNOWN."""
    workload = " ".join([*workloads_args(tmp_path)[:4], "--check", "nccl-allreduce"])
    node_tmp = tmp_path / "node-tmp"
    node_tmp.mkdir()
    doomed = cluster.add_node(num_cpus=1, env_vars={
        "CONDA_DEFAULT_ENV": "train", "PYTEST_ADDOPTS": workload, "TMPDIR": str(node_tmp),
        "PREFLIGHT_TEST_HANG_RANK": "0"})
    try:
        proc, out, start = cluster_run(cluster, tmp_path, "--expect-env", "train", *CHECKS)
        running = wait_for_node_preflight(doomed.node_id, timeout=120,
                                          running="preflight.workloads.suite")
        made = list(node_tmp.glob("preflight-node-*"))
        assert len(made) == 1, made  # the run's dir on that node, while it runs
        [supervisor] = [p for p in running if "preflight.cluster.child" in cmdline(p)]
        worker = supervisor.parent()
        assert worker is not None and "ray::" in " ".join(worker.cmdline()), worker.cmdline()
        worker.kill()
        code, report, took, stdout = finish(proc, out, start)
        left = list(node_tmp.iterdir())
    finally:
        # gracefully: its raylet is fine, and the GCS then knows at once that it is gone
        # (killed, it stayed "alive" in ray.nodes() into the next test's run)
        cluster.remove_node(doomed)
    assert code == 1, stdout
    [row] = [n for n in report["nodes"] if n["node_id"] == doomed.node_id]
    assert row["verdict"] == "UNKNOWN" and row["reason"].startswith("the task failed"), row
    assert not left, left
    assert took < NODE_TIMEOUT + 60
    stray = node_processes(doomed.node_id)
    for p in stray:  # ours (this node's id): never left behind by a failure
        p.kill()
    assert not [(p.pid, cmdline(p)[:80]) for p in stray]


def test_options_every_node_rejects_are_bad_input_exit_4(cluster, tmp_path):
    """A mistyped option passed on to the nodes: every node's preflight stops with exit 4.
    That is the gate's own bad input (exit 4, one ERROR line, nothing written), not a
    cluster of UNKNOWN nodes (exit 1, read as NO-GO: the nodes are fine)."""
    # a token on the command line: the nodes' ERROR line echoes it, the cluster does not
    token = "hf_" + "Zq8" * 10
    proc, out, _ = cluster_run(cluster, tmp_path, "--", "--bogus-option", f"--hf-token={token}")
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 4, (stdout, stderr[-2000:])
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: preflight cluster: every node"), lines
    assert "--bogus-option" in lines[0]
    assert "--hf-token=***" in lines[0] and token not in stderr + stdout, lines
    assert not (out / "cluster-report.json").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_mid_run_ends_it_as_ctrl_c_does(cluster, tmp_path, sig):
    """A CI timeout (SIGTERM) or a dropped ssh (SIGHUP) while the nodes run: exit 2 and one
    ERROR line, as Ctrl-C; Ray's driver handler made it exit 1 (NO-GO) after a C++ stack
    dump ("*** SIGTERM received ***"), and SIGHUP killed it with no word."""
    proc, out, _ = cluster_run(cluster, tmp_path, "--expect-env", "train", *CHECKS)
    wait_for_node_preflight(cluster.head_node.node_id, timeout=120)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, (proc.returncode, stdout, stderr[-2000:])
    assert stderr.strip().splitlines() == [
        "ERROR: preflight cluster: interrupted; no cluster report written"], stderr[-2000:]
    assert not (out / "cluster-report.json").exists()


def wait_for_node_preflight(node_id: str, timeout: float, running: str = ""
                            ) -> list[psutil.Process]:
    """The node's preflight processes, once they run (found by PREFLIGHT_NODE_ID); with
    `running`, once one of them has it in its command line."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = node_processes(node_id)
        if found and (not running or any(running in cmdline(p) for p in found)):
            return found
        time.sleep(0.1)
    pytest.fail(f"node {node_id[:8]}'s preflight never started")


def test_the_clusters_own_ray_processes_are_not_leftovers_there(cluster):
    """Under `cluster --ray` the node's preflight gets PREFLIGHT_RAY_SESSION: that session's
    raylets, GCS and agents (and their children) join its own family; without it they
    are leftovers like any Ray process."""
    from preflight.probes import Node, procs

    session = Path(cluster.head_node.get_session_dir_path()).name
    ray_pids = tree_of({p.pid for p in session_processes(session)})
    assert ray_pids
    # a preflight that is not an ancestor of this cluster (here every Ray process is a
    # child of this test process, which would make them family otherwise)
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        under = Node(environ={"PREFLIGHT_RAY_SESSION": session}, own_pid=stranger.pid)
        plain = Node(environ={}, own_pid=stranger.pid)
        found = {p.pid for p, _ in procs.leftovers(under.processes, (), under.own_family)}
        assert not found & ray_pids
        found = {p.pid for p, _ in procs.leftovers(plain.processes, (), plain.own_family)}
        assert found & ray_pids
    finally:
        stranger.kill()
        stranger.wait()


def test_an_address_that_is_not_a_ray_cluster_is_exit_4_within_the_bound(tmp_path):
    from preflight.cluster.reach import Listener

    refused = subprocess.run([sys.executable, "-m", "preflight", "cluster", "--ray",
                              "127.0.0.1:1"], env=base_env(), capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
    assert refused.returncode == 4
    assert refused.stderr.strip().splitlines()[-1] == (
        "ERROR: preflight cluster --ray 127.0.0.1:1: cannot connect: Connection refused")
    # a port that accepts TCP but is no Ray GCS: ray.init would retry for minutes
    silent = Listener(host="127.0.0.1")
    try:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "preflight", "cluster", "--ray",
                               f"127.0.0.1:{silent.port}", "--connect-timeout", "3"],
                              env=base_env(), capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
        took = time.monotonic() - start
    finally:
        silent.close()
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"ERROR: preflight cluster --ray 127.0.0.1:{silent.port}: ")
    assert took < 3 + 20
    assert not (tmp_path / "preflight-report" / "cluster-report.json").exists()
    (tmp_path / "a-file").write_text("")
    unwritable = subprocess.run([sys.executable, "-m", "preflight", "cluster", "--ray",
                                 "127.0.0.1:1", "--report-dir", str(tmp_path / "a-file" / "x")],
                                env=base_env(), capture_output=True, text=True, timeout=60)
    assert unwritable.returncode == 4
    assert "report dir is not writable" in unwritable.stderr


def test_sigint_mid_sweep_leaves_no_process_of_the_launch(cluster, tmp_path):
    """Ctrl-C while every node's torchrun and ranks run the cross-node sweep: the tasks are
    cancelled and each node's launch is gone when the command exits (Ray's cancel is an
    interrupt flag a blocked wait never saw: torchrun and its ranks outlived the command
    until their own deadline)."""
    from preflight.cluster.collective import RUN_VAR

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "long.toml").write_text(
        TINY.replace("iters = 3", "iters = 10000000"))
    proc, _, _ = cluster_run(cluster, tmp_path, *CHECKS, "--profile-dir",
                             str(tmp_path / "profiles"), "--profile", "long", "--workloads")
    ours = tree_of({p.pid for p in session_processes(
        Path(cluster.head_node.get_session_dir_path()).name)})
    deadline = time.time() + 120
    ranks: list[psutil.Process] = []
    while time.time() < deadline and proc.poll() is None and len(ranks) < 3:
        time.sleep(0.2)  # until a rank runs on each of the 3 nodes
        ranks = [p for p in collective_processes() if p.pid in tree_of(ours)
                 and "preflight.workloads.allreduce" in p.cmdline()
                 and "torch.distributed.run" not in p.cmdline()]
    assert len(ranks) >= 3, proc.communicate(timeout=60)
    run_id = ranks[0].environ()[RUN_VAR]  # this launch's own: other runs may share the box
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    exited = time.monotonic()
    while True:  # a moment for a SIGKILLed rank to become a zombie, no more
        left = []
        for p in collective_processes():
            try:
                if p.environ().get(RUN_VAR) == run_id and p.status() != psutil.STATUS_ZOMBIE:
                    left.append((p.pid, p.cmdline()[:4]))
            except psutil.Error:
                continue
        if not left or time.monotonic() - exited > 0.5:
            break
        time.sleep(0.1)
    assert not left, f"alive {time.monotonic() - exited:.1f}s after exit: {left}"
    assert proc.returncode == 2


def test_a_worker_killed_mid_sweep_leaves_no_sweep_dir(cluster, tmp_path):
    """The worker running one node's part of the cross-node sweep is SIGKILLed (OOM, `kill
    -9`) while its ranks run: its helper's `preflight-cluster-allreduce-*` dir must not be
    left in that node's $TMPDIR, nor any process of the launch."""
    from preflight.cluster.collective import RUN_VAR

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "long.toml").write_text(
        TINY.replace("iters = 3", "iters = 10000000"))
    node_tmp = tmp_path / "node-tmp"
    node_tmp.mkdir()
    doomed = cluster.add_node(num_cpus=1, env_vars={"CONDA_DEFAULT_ENV": "train",
                                                    "TMPDIR": str(node_tmp)})
    try:
        proc, out, start = cluster_run(cluster, tmp_path, *CHECKS, "--profile-dir",
                                       str(tmp_path / "profiles"), "--profile", "long",
                                       "--workloads")
        deadline = time.time() + 150
        helper = None
        while time.time() < deadline and proc.poll() is None and helper is None:
            time.sleep(0.2)
            for p in collective_processes():
                try:
                    if p.environ().get("TMPDIR") == str(node_tmp) and \
                            "preflight.cluster.collective" in p.cmdline() and \
                            list(node_tmp.glob("preflight-cluster-allreduce-*")) and any(
                                "preflight.workloads.allreduce" in c.cmdline()
                                and "torch.distributed.run" not in c.cmdline()
                                for c in p.children(recursive=True)):
                        helper = p
                except psutil.Error:
                    continue
        assert helper is not None, proc.communicate(timeout=120)
        run_id = helper.environ()[RUN_VAR]
        worker = helper.parent()
        assert worker is not None and "ray::" in " ".join(worker.cmdline()), worker
        worker.kill()
        code, report, took, stdout = finish(proc, out, start)
        left = list(node_tmp.glob("preflight-cluster-allreduce-*"))
    finally:
        cluster.remove_node(doomed)
    assert code == 1, stdout
    [swept] = [c for c in report["checks"] if c["id"] == "cluster-allreduce"]
    assert swept["severity"] in ("blocker", "unknown"), swept
    assert not left, left
    stray = [p for p in collective_processes() if p.environ().get(RUN_VAR) == run_id
             and p.status() != psutil.STATUS_ZOMBIE]
    assert not stray, [(p.pid, p.cmdline()[:4]) for p in stray]


@pytest.mark.parametrize("argv, says", [
    (["--node-timeout", "nan"], "--node-timeout"),
    (["--node-timeout", "inf"], "--node-timeout"),
    (["--connect-timeout", "nan"], "--connect-timeout"),
    (["--ray", "127.0.0.1:99999"], "99999 is not a TCP port"),
    (["--ray", "127.0.0.1:-1"], "-1 is not a TCP port"),
])
def test_a_bound_or_port_that_is_no_number_is_one_error_line_at_once(tmp_path, capsys, argv,
                                                                      says):
    """`--node-timeout nan` passed the `> 0` test: every node's wait ended before it began,
    all UNKNOWN, exit 1 (NO-GO) for a typo; `127.0.0.1:-1` waited out --connect-timeout and
    `:99999` said "Connection refused" (the port wraps around in the kernel's 16 bits)."""
    from preflight.cluster import cluster_main

    out = tmp_path / "out"
    start = time.monotonic()
    code = cluster_main(["--ray", "127.0.0.1:1", "--report-dir", str(out),
                         "--connect-timeout", "30", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 4 and len(err) == 1 and err[0].startswith("ERROR: "), err
    assert says in err[0], err
    assert time.monotonic() - start < 5
    assert not out.exists()  # nothing written, not even the directory


def test_a_password_in_the_ray_address_is_never_printed(tmp_path, capsys):
    from preflight.cluster import cluster_main

    code = cluster_main(["--ray", "ray://admin:hunter2secret@127.0.0.1:1",
                         "--report-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 4 and err.startswith("ERROR: ") and "127.0.0.1:1" in err, err
    assert "hunter2secret" not in err, err


def cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def node_processes(node_id: str) -> list[psutil.Process]:
    """Every live process of one node run (PREFLIGHT_NODE_ID is inherited by all it starts)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PREFLIGHT_NODE_ID") == node_id and \
                    proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_a_node_run_stopped_mid_workload_leaves_nothing_running(tmp_path, monkeypatch):
    """A node task stopped (ray.cancel at --node-timeout or on Ctrl-C: an interrupt of the
    worker's main thread, ray/_raylet.pyx kill_main_task; its own bound takes the same
    way out) while the node's preflight runs a workload whose rank hangs: the task
    SIGKILLed preflight's process group, but torchrun and its ranks run in their own
    session (Runner.popen), so they outlived `cluster` until their own deadline, holding
    the GPUs of the job about to be submitted. Now preflight gets SIGTERM first (it
    kills its workload trees and returns); its group is killed only if it does not."""
    import _thread
    import os
    import threading
    import uuid

    from support import CONTROLLED

    from preflight.cluster import fanout_ray

    for key in list(os.environ):
        if key in CONTROLLED or key.startswith(("PREFLIGHT_", "PYTEST_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PREFLIGHT_TEST_HANG_RANK", "0")
    node_id = f"stopped-{uuid.uuid4().hex}"
    ranks: list[int] = []
    stop = threading.Event()

    def cancel_once_the_rank_runs() -> None:
        deadline = time.monotonic() + 90
        while not stop.is_set() and time.monotonic() < deadline:
            ranks.extend(p.pid for p in node_processes(node_id)  # the rank, not torchrun
                         if "preflight.workloads.suite" in cmdline(p)
                         and "torch.distributed.run" not in cmdline(p))
            if ranks:
                _thread.interrupt_main()  # what ray.cancel does in the worker
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=cancel_once_the_rank_runs, daemon=True)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            fanout_ray.node_task(node_id, [*workloads_args(tmp_path)[:4], "--check",
                                           "nccl-allreduce"], 120.0)
    finally:
        stop.set()
        watcher.join()
    returned = time.monotonic()
    assert ranks, "the hanging rank never started"
    while (left := node_processes(node_id)) and time.monotonic() - returned < 1.0:
        time.sleep(0.1)
    for proc in left:  # ours (this run's own node id): never left behind by a failure
        proc.kill()
    assert not left, [(p.pid, cmdline(p)[:80]) for p in left]


def test_sigterm_while_connecting_is_exit_2_with_one_line(tmp_path):
    """A CI timeout while `cluster` waits for an unanswering Ray cluster (up to
    --connect-timeout): it hung until the bound (Python runs no handler while ray.init
    waits in Ray's C++ client), and SIGHUP killed it without a word. SIGHUP and Ctrl-C
    take the same way out now (the handlers' wakeup fd)."""
    import socket
    import threading

    # accepts TCP and says nothing: its first connection is cluster's own reachability
    # probe, right before ray.init (which Ray sends to this node's own address instead)
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: [accepted.append(server.accept()[0]) for _ in range(50)],
                     daemon=True).start()
    proc = subprocess.Popen([sys.executable, "-m", "preflight", "cluster", "--ray",
                             f"127.0.0.1:{server.getsockname()[1]}", "--connect-timeout",
                             "60", "--report-dir", str(tmp_path / "out")], env=base_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline and not accepted:
            time.sleep(0.05)
        assert accepted, proc.communicate(timeout=90)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # ours: never left behind by a failure
            proc.kill()
            proc.communicate()
        server.close()
        for conn in accepted:
            conn.close()
    assert proc.returncode == 2, (proc.returncode, stdout, stderr[-2000:])
    assert stderr.strip().splitlines()[-1] == (
        "ERROR: preflight cluster: interrupted; no cluster report written"), stderr[-2000:]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("node_args, says", [
    (["--", "--co"], "--co"),
    (["--", "--collect-only"], "--collect-only"),
    (["--", "--report-dir", "/tmp/x"], "--report-dir"),
    (["--", "--report-dir=/tmp/x"], "--report-dir"),
    (["--", "--version"], "--version"),
    (["--", "--help"], "--help"),
])
def test_options_that_leave_a_node_without_a_report_are_bad_input(tmp_path, capsys, node_args,
                                                                  says):
    """`cluster` reads each node's report from a directory it gives the node: after `--`,
    `--report-dir` sent it elsewhere (written on every node) and `--co`, `--help`,
    `--version` wrote none: every node UNKNOWN, "exited 0 without a report", exit 1 (read
    as NO-GO for nodes that are fine). One ERROR line, exit 4, before connecting."""
    from preflight.cluster import cluster_main

    code = cluster_main(["--ray", "127.0.0.1:1", "--report-dir", str(tmp_path / "out"),
                         *node_args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 4 and len(err) == 1, err
    assert err[0].startswith(f"ERROR: preflight cluster: {says} ") and "cannot connect" \
        not in err[0], err
    assert not (tmp_path / "out").exists()


def test_the_workload_level_by_marker_also_runs_the_cross_node_sweep() -> None:
    """`-- -m workload` is the workload level on every node (README: `-m workload` does
    what `--workloads` does), but only `--workloads` / `--all` started cluster-allreduce:
    the cluster said GO without ever measuring a link between nodes."""
    from preflight.cluster import wants_workloads

    assert wants_workloads(["-m", "workload"])
    assert wants_workloads(["-m", "static or workload"])
    assert wants_workloads(["-mworkload"]) and wants_workloads(["--workloads"])
    assert wants_workloads(["--all"])
    assert not wants_workloads(["-m", "not workload"])
    assert not wants_workloads(["-m", "static", "--check", "nccl-allreduce"])
    assert not wants_workloads(["-k", "workload"])


@pytest.mark.parametrize("node_args, ray_gpus, cpu_args, instead_of", [
    (["--profile", "a800", "--check", "x"], 0.0, ["--profile", "cpu", "--check", "x"], "a800"),
    (["--profile=h100"], 0.0, ["--profile=cpu"], "h100"),
    (["--profile", "a800", "--profile", "h20"], 0.0, ["--profile", "cpu", "--profile", "cpu"],
     "h20"),  # the last one counts, as argparse reads them
    (["--profile", "a800"], 8.0, [], ""),  # Ray offers GPUs there: the profile asked for
    (["--profile", "cpu"], 0.0, [], ""),  # no GPU profile asked for
    (["--profile", "nosuch"], 0.0, [], ""),  # unknown: every node says so itself
    (["--profile-dir", "a800"], 0.0, [], ""),  # not --profile
    ([], 0.0, [], ""),  # each node detects its own
])
def test_a_gpu_profile_is_cpu_only_on_nodes_ray_offers_no_gpu(node_args, ray_gpus, cpu_args,
                                                             instead_of):
    from preflight.cluster.fanout_ray import Plan, node_args_for

    plan = Plan(node_args, 10.0, [], set())
    info = {"NodeID": "n", "Resources": {"CPU": 1.0, **({"GPU": ray_gpus} if ray_gpus else {})}}
    assert node_args_for(info, plan) == (cpu_args, instead_of)


def test_a_node_finds_gpus_as_its_preflight_reads_them(monkeypatch):
    from preflight.cluster.fanout_ray import finds_gpus

    healthy = str(FIXTURES / "nvml" / "a800x4-healthy.json")
    monkeypatch.delenv("PREFLIGHT_NVML_REPLAY", raising=False)
    assert finds_gpus(["--nvml-replay", healthy])
    assert finds_gpus([f"--nvml-replay={healthy}"])
    assert not finds_gpus(["--nvml-replay", str(FIXTURES / "nvml" / "no-nvml.json")])
    assert finds_gpus(["--nvml-replay", "/nonexistent.json"])  # unreadable: keep the profile
    monkeypatch.setenv("PREFLIGHT_NVML_REPLAY", healthy)
    assert finds_gpus([])
