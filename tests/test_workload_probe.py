"""The torchrun launcher and the workload scripts' pure parts, without the plugin.

The launch tests start a real torchrun; every test ends by checking with psutil that
nothing it started is still alive (the tag travels in the environment to every child).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from preflight.run import torchrun
from preflight.workloads import allreduce

TAG = "PREFLIGHT_TEST_TAG"


def tagged(tag: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(TAG) == tag:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def assert_none_left(tag: str, grace_s: float = 3.0) -> None:
    deadline = time.monotonic() + grace_s
    while (left := tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"left behind: {[(p.pid, p.cmdline()[:4]) for p in left]}"


@pytest.fixture
def tag():
    value = uuid.uuid4().hex
    yield value
    assert_none_left(value)


# -- topology (pure) ----------------------------------------------------------------


def test_one_node_when_nnodes_unset_or_one():
    assert not torchrun.topology({}).multi_node
    assert not torchrun.topology({"NNODES": "1", "MASTER_PORT": "29500"}).multi_node


def test_multi_node_reads_what_swift_passes_to_torchrun():
    topo = torchrun.topology({"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1",
                              "MASTER_PORT": "29511"})
    assert (topo.nnodes, topo.node_rank, topo.master_addr, topo.master_port) == (
        2, 1, "10.0.0.1", 29511)


@pytest.mark.parametrize("env, needle", [
    ({"NNODES": "two"}, "NNODES='two' is not a whole number"),
    ({"NNODES": "2", "MASTER_PORT": "29500"}, "NNODES=2 needs MASTER_ADDR"),
    ({"NNODES": "2", "MASTER_ADDR": "h"}, "needs MASTER_PORT"),
    ({"NNODES": "2", "NODE_RANK": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"},
     "NODE_RANK='2' is not a whole number in 0..1"),
    ({"NNODES": "2", "MASTER_ADDR": "h", "MASTER_PORT": "99999"}, "MASTER_PORT='99999'"),
])
def test_unusable_topology_is_one_line(env, needle):
    with pytest.raises(torchrun.TopologyError, match=needle.replace("(", r"\(")):
        torchrun.topology(env)


# -- argv (pure) --------------------------------------------------------------------------


def test_standalone_argv_is_c10d_on_our_port_as_host(tmp_path):
    spec = torchrun.Spec("allreduce", "preflight.workloads.allreduce", ("--out", "x"), 2,
                         tmp_path, 30)
    argv = torchrun.torchrun_argv(spec, 41000, python="py")
    assert argv[:3] == ["py", "-m", "torch.distributed.run"]
    assert "--nnodes=1" in argv and "--nproc-per-node=2" in argv
    assert "--rdzv-endpoint=127.0.0.1:41000" in argv and "--rdzv-backend=c10d" in argv
    assert "--rdzv-conf=join_timeout=30,is_host=1" in argv
    assert argv[-4:] == ["-m", "preflight.workloads.allreduce", "--out", "x"]


def test_multi_node_argv_shares_rdzv_id_and_endpoint(tmp_path):
    topo = torchrun.topology({"NNODES": "2", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29511"})
    spec = torchrun.Spec("train", "m", (), 8, tmp_path, 60, topo, port_offset=1)
    argv = torchrun.torchrun_argv(spec, 29512, python="py")
    assert "--nnodes=2" in argv and "--rdzv-endpoint=10.0.0.1:29512" in argv
    assert "--rdzv-id=preflight-train-29512" in argv
    assert not any("is_host" in a for a in argv)  # c10d decides which node hosts


# -- what the ranks wrote (pure over a directory) --------------------------------------------


def test_read_ranks_names_unfinished_and_never_started(tmp_path):
    (tmp_path / "rank0-local0.phase").write_text("all_reduce 8 B: correctness pass")
    (tmp_path / "rank1-local1.phase").write_text("done")
    (tmp_path / "rank1-local1.json").write_text('{"rank": 1}')
    ranks = torchrun.read_ranks(tmp_path, 3)
    assert [r.label for r in ranks] == ["rank 0", "rank 1", "local rank 2"]
    assert ranks[1].result == {"rank": 1}
    outcome = torchrun.Outcome("x", (), 1, None, True, 1.0, ranks, "log", ())
    assert outcome.unfinished == {
        "rank 0": "all_reduce 8 B: correctness pass",
        "local rank 2": "never started (rendezvous or process start did not complete)"}


OLD = ("use_libuv was requested but PyTorch was build without libuv support, run with "
       "USE_LIBUV=0 to disable it.")
NEW = OLD.replace("was build", "was built")


@pytest.mark.parametrize("text", [OLD, NEW])
def test_libuv_text_matches_both_spellings(text):
    assert torchrun.LIBUV_MISSING.search(text)
    lines = ["[W] something", f"[rank0]: torch.distributed.DistStoreError: {text}",
             "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:"]
    assert torchrun.first_error(lines) == lines[1]


def test_first_error_prefers_the_workers_exception():
    lines = ["[rank1]: Traceback (most recent call last):",
             '[rank1]:   File "x.py", line 3, in <module>',
             "[rank1]: RuntimeError: boom on rank 1",
             "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: "]
    assert torchrun.first_error(lines) == "RuntimeError: boom on rank 1"


# -- the workload's arithmetic (pure) ----------------------------------------------------------


def test_sweep_doubles_from_min_to_max():
    assert allreduce.sizes(8, 64) == [8, 16, 32, 64]
    assert allreduce.sizes(8, 256 * 2**20)[-1] == 256 * 2**20
    assert len(allreduce.sizes(8, 16 * 2**20)) == 22


def test_busbw_is_nccl_tests_definition():
    # nccl-tests doc/PERFORMANCE.md: allreduce busbw = algbw * 2 (n - 1) / n
    assert allreduce.bus_bandwidth(100.0, 8) == pytest.approx(175.0)
    assert allreduce.bus_bandwidth(100.0, 2) == pytest.approx(100.0)


# -- real launches -----------------------------------------------------------------------------

STUCK = textwrap.dedent("""
    import os, subprocess, sys, time
    from pathlib import Path
    out = Path(sys.argv[1])
    rank, local = os.environ["RANK"], os.environ["LOCAL_RANK"]
    # a grandchild in a session of its own, as a dataloader or compiler might leave
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                     start_new_session=True)
    (out / f"rank{rank}-local{local}.phase").write_text("stuck on purpose")
    if rank == "0":
        (out / f"rank{rank}-local{local}.json").write_text('{"rank": 0}')
        (out / f"rank{rank}-local{local}.phase").write_text("done")
    time.sleep(600)
""")


def test_timeout_kills_torchrun_workers_and_grandchildren(tmp_path, tag):
    (tmp_path / "stuck_workload.py").write_text(STUCK)
    out = tmp_path / "out"
    env = {**os.environ, TAG: tag, "PYTHONPATH": str(tmp_path)}
    env.pop("PREFLIGHT_DEADLINE", None)
    spec = torchrun.Spec("stuck", "stuck_workload", (str(out),), 2, out, timeout_s=8)
    start = time.monotonic()
    outcome = torchrun.launch(spec, env)
    assert time.monotonic() - start < 8 + 6
    assert outcome.timed_out and outcome.returncode is None and not outcome.ok
    assert outcome.unfinished == {"rank 1": "stuck on purpose"}  # rank 0 wrote its result
    assert outcome.killed >= 2  # the workers (own sessions) and their grandchildren
    assert_none_left(tag, grace_s=0.5)


def test_the_watchdog_reads_only_its_own_tree(tmp_path, tag, monkeypatch):
    """ProcessTree.refresh finds children and grandchildren (one in a session of its own)
    without psutil's table-wide parent map, which costs ~0.2 s per poll at 3,000 processes."""
    import psutil._pslinux

    from preflight.run.tree import ProcessTree

    code = ("import subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
            "start_new_session=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, TAG: tag},
                            start_new_session=True)
    try:
        family = ProcessTree(proc.pid)

        def whole_table():
            raise AssertionError("the watchdog scanned the whole process table")

        monkeypatch.setattr(psutil._pslinux, "ppid_map", whole_table)
        deadline = time.monotonic() + 30
        while len(family.known) < 2 and time.monotonic() < deadline:
            family.refresh()
            time.sleep(0.1)
        assert len(family.known) == 2 and proc.pid in family.known
        monkeypatch.undo()
        assert family.kill() == 2
    finally:
        proc.kill()
        proc.wait()
    assert_none_left(tag, grace_s=1.0)


def test_gpu_profile_on_cpu_only_torch_fails_fast_with_the_reason(tmp_path, tag):
    """Also: the launch leaves nothing in $TMPDIR (torchrun's agent made an empty
    torchelastic_*/<run id>_*/attempt_0/<rank>/ tree there per launch, never removed: a CI
    gate running preflight before each job filled the node's /tmp); its per-attempt
    directories are in the launch's own out dir."""
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    spec = torchrun.Spec("allreduce", "preflight.workloads.allreduce",
                         ("--out", str(out), "--require-cuda"), 2, out, timeout_s=60)
    outcome = torchrun.launch(spec, {**os.environ, TAG: tag, "TMPDIR": str(tmp)})
    assert sorted(tmp.rglob("*")) == []
    assert sorted(p.name for p in (out / torchrun.ELASTIC_DIR).glob("*/attempt_0/*")) \
        == ["0", "1"]
    assert outcome.returncode == 1 and not outcome.timed_out
    assert "CudaMissing: the profile expects GPUs but torch" in outcome.error
    # The first rank to fail stops the group (torchrun's agent stops the other workers on
    # the first failure: torch/distributed/elastic/agent/server/api.py `_invoke_run`), so a
    # slower rank may still be importing torch then, and says so; at least one names why.
    phases = set(outcome.unfinished.values())
    assert "CUDA required but not available" in phases
    assert phases <= {"CUDA required but not available", "importing torch"}, phases


def test_store_script_reports_each_store(tmp_path, tag):
    env = {**os.environ, TAG: tag}
    env.pop("USE_LIBUV", None)
    result = torchrun.run_script("preflight.workloads.store", (), env, 30)
    assert [s["store"] for s in result["stores"]] == ["agent", "worker"]
    assert all(s["ok"] for s in result["stores"]), result
    planted = torchrun.run_script("preflight.workloads.store", (),
                                  {**env, "PREFLIGHT_TEST_NO_LIBUV": "1"}, 30)
    assert [s["error"] for s in planted["stores"]] == [OLD, OLD]


def test_workload_scripts_do_not_import_pytest_or_the_plugin():
    src = Path(allreduce.__file__).parent
    for path in src.glob("*.py"):
        text = path.read_text()
        assert "import pytest" not in text and "preflight.plugin" not in text, path.name
    code = ("import sys, preflight.workloads.allreduce, preflight.workloads.train, "
            "preflight.workloads.store, preflight.checks.test_workloads; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "False", done.stderr  # torch only inside the ranks
