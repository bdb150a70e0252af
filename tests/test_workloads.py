"""The workload checks end to end: the real plugin in a subprocess, real torchrun, real
gloo collectives and DDP on this CPU box; each fault planted for real with a test-only
knob, and after every test psutil finds nothing the suite started still alive."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from support import CHECKS, REPO, Run, base_env
from test_workload_probe import TAG, assert_none_left

# A quick sweep (8 B .. 64 KiB) and a tight bound for the fault tests.
SMALL = """extends = "cpu"
description = "cpu, short sweep and a tight bound (tests)"
[workload]
max_size_bytes = 65536
timeout_s = {timeout}
resume_headroom = {headroom}
"""


@pytest.fixture
def tag():
    value = uuid.uuid4().hex
    yield value
    assert_none_left(value)


@pytest.fixture
def small(tmp_path):
    """--profile-dir with profile `small` (extends cpu); returns the CLI args."""

    def make(timeout: float = 30, headroom: float = 0.9) -> list[str]:
        directory = tmp_path / "profiles"
        directory.mkdir(exist_ok=True)
        (directory / "small.toml").write_text(SMALL.format(timeout=timeout, headroom=headroom))
        return ["--profile-dir", str(directory), "--profile", "small"]

    return make


def env_for(tag: str, **extra: str) -> dict[str, str]:
    return base_env(**{TAG: tag}, **extra)


def assert_pastes(fix: str) -> None:
    """A fix a user can paste: at least one line, each a command bash parses."""
    from preflight.fixes import is_command

    assert fix.strip(), "no fix"
    for line in fix.splitlines():
        parsed = subprocess.run(["bash", "-n"], input=line + "\n", capture_output=True,
                                text=True, timeout=10)
        assert parsed.returncode == 0 and is_command(line), (line, parsed.stderr)


def test_all_workloads_pass_on_this_cpu_box(run_preflight, tag):
    run = run_preflight("--profile", "cpu", "-m", "workload", env=env_for(tag))
    assert run.returncode == 0, run.output[-3000:]
    assert run.report["verdict"] == "GO"

    allreduce = run.one("nccl-allreduce")
    ev = allreduce["evidence"]
    assert allreduce["outcome"] == "passed" and allreduce["severity"] == "ok"
    assert ev["backend"] == "gloo" and "gloo on CPU" in ev["note"]
    assert ev["world_size"] == 2 and ev["nnodes"] == 1
    assert [row["size"] for row in ev["table"]][:3] == ["8 B", "16 B", "32 B"]
    assert ev["table"][-1]["size"] == "16 MiB" and len(ev["table"]) == 22
    assert all(row["correct"] and row["busbw_gbps"] > 0 for row in ev["table"])
    assert ev["peak_busbw_gbps"] == max(row["busbw_gbps"] for row in ev["table"])
    assert ev["launch"]["torchrun"].startswith("torchrun --nnodes=1 --nproc-per-node=2")
    assert ev["wrong"] == [] and ev["measured_by"]["rank"] == 0

    train = run.one("train-10-steps")
    ev = train["evidence"]
    assert train["outcome"] == "passed", train
    assert len(ev["losses"]) == 10 and ev["losses"][-1] < ev["losses"][0]
    assert len(set(ev["checksums"])) == 1 and len(ev["checksums"]) == 2
    assert ev["step_time_s"] > 0 and ev["tokens_per_s"] > 0
    assert ev["peak_memory"]["kind"] == "rss_peak" and ev["peak_memory"]["bytes"] > 0
    assert ev["uninterrupted_step_loss"] == pytest.approx(ev["resumed_step_loss"], rel=1e-4)
    assert ev["optimizer_state_loaded"] is True and ev["compared_step"] == 11
    assert 0 < ev["resume_load_peak"]["fraction"] < 0.9

    store = run.one("libuv-store")
    assert store["outcome"] == "passed"
    assert [s["store"] for s in store["evidence"]["stores"]] == ["agent", "worker"]

    # One torchrun launch ran all of it; the resume was a fresh process group in it.
    launches = {c["evidence"]["launch"]["log"] for c in (allreduce, train, store)}
    assert len(launches) == 1 and train["evidence"]["resume_launch"]["log"] in launches
    assert allreduce["evidence"]["launch"]["workloads"] == [
        "allreduce", "train", "resume", "store"]
    # The progress display (not a TTY here: a plain line per change of workload).
    assert "workloads" in run.stdout and "s of 180s | rank 0: " in run.stdout


def test_planted_hang_is_no_go_within_the_bound_and_leaves_nothing(run_preflight, small,
                                                                     tag):
    bound = 10
    start = time.monotonic()
    run = run_preflight(*small(timeout=bound), "--check", "nccl-allreduce",
                        env=env_for(tag, PREFLIGHT_TEST_HANG_RANK="1"))
    elapsed = time.monotonic() - start
    assert run.returncode == 1
    found = run.one("nccl-allreduce")
    assert found["severity"] == "blocker"
    assert found["duration_s"] < bound + 4, found["duration_s"]
    assert elapsed < bound + 15  # pytest start-up and the report included
    assert f"did not finish within {bound}s" in found["summary"]
    assert "rank 1 (sleeping before the first collective" in found["summary"]
    unfinished = found["evidence"]["unfinished"]
    assert unfinished["rank 1"].startswith("sleeping before the first collective")
    # waiting for rank 1 in the sweep's first collective: nccl-tests' warm-up at the
    # largest size (64 KiB in `small`)
    assert unfinished["rank 0"].startswith("all_reduce 64 KiB: 5 warm-up")
    assert found["evidence"]["launch"]["timed_out"] is True
    assert "NCCL_DEBUG=INFO" in found["why"]
    assert_pastes(found["fix"])  # was empty: the whole fix was prose
    assert found["fix"].startswith("tail -n 60 ")  # torchrun's log: where the ranks stood
    assert_none_left(tag, grace_s=1.0)

    fixed = run_preflight(*small(timeout=bound), "--check", "nccl-allreduce", env=env_for(tag))
    assert fixed.returncode == 0, fixed.output[-3000:]
    assert fixed.one("nccl-allreduce")["outcome"] == "passed"


def test_a_hang_in_one_workload_names_its_check_and_where_the_others_stood(run_preflight,
                                                                           small, tag):
    run = run_preflight(*small(timeout=8), "-m", "workload",
                        env=env_for(tag, PREFLIGHT_TEST_HANG_RANK="1"))
    assert run.returncode == 1
    allreduce, train = run.one("nccl-allreduce"), run.one("train-10-steps")
    assert "rank 1 (sleeping before the first collective" in allreduce["summary"]
    assert train["severity"] == "blocker"
    assert "rank 1 (still in the allreduce workload: sleeping before" in train["summary"]
    assert train["evidence"]["unfinished_in"]["rank 1"] == "allreduce"
    assert "did not finish within 24s" in train["summary"]  # 3 workloads x 8 s
    assert_none_left(tag, grace_s=1.0)


def test_planted_wrong_result_names_size_and_element(run_preflight, small, tag):
    run = run_preflight(*small(), "--check", "nccl-allreduce",
                        env=env_for(tag, PREFLIGHT_TEST_CORRUPT_RANK="1",
                                    PREFLIGHT_TEST_CORRUPT_BYTES="4096"))
    assert run.returncode == 1
    found = run.one("nccl-allreduce")
    assert found["severity"] == "blocker"
    # element 512 of 1024 floats: base 512 % 251 = 10, sum 2 * 10 + 1 = 21, planted +1
    assert found["summary"] == ("all_reduce of 4 KiB returned a wrong result on rank 0: "
                                "element 512 is 22, expected 21 (1 wrong element(s))")
    wrong = found["evidence"]["wrong"]
    assert {w["rank"] for w in wrong} == {0, 1}  # every rank got the corrupted sum
    table = {row["size"]: row["correct"] for row in found["evidence"]["table"]}
    assert table["4 KiB"] is False and table["8 KiB"] is True
    assert "ECC" in found["why"]
    assert_pastes(found["fix"])
    assert "element 512 is 22" in run.stdout  # the terminal says it too


def test_resume_without_optimizer_state_fails_with_both_losses(run_preflight, small, tag):
    run = run_preflight(*small(), "--check", "train-10-steps",
                        env=env_for(tag, PREFLIGHT_TEST_SKIP_OPTIM_LOAD="1"))
    assert run.returncode == 1
    found = run.one("train-10-steps")
    ev = found["evidence"]
    assert found["severity"] == "blocker"
    assert ev["optimizer_state_loaded"] is False
    reference, resumed = ev["uninterrupted_step_loss"], ev["resumed_step_loss"]
    assert abs(reference - resumed) > 1e-4 * abs(reference)
    assert f"{resumed:.6f}" in found["summary"] and f"{reference:.6f}" in found["summary"]
    assert found["summary"].startswith("resumed step 11 loss")
    assert "optimizer" in found["why"] and "NO_LOAD_OPTIM" in found["why"]


def test_resume_peak_above_headroom_warns_but_does_not_block(run_preflight, small, tag):
    run = run_preflight(*small(headroom=0.0001), "--check", "train-10-steps",
                        env=env_for(tag))
    assert run.returncode == 0, run.output[-3000:]
    found = run.one("train-10-steps")
    assert found["severity"] == "warning" and found["outcome"] == "passed"
    assert "loading the optimizer state peaked at" in found["summary"]
    assert "above the profile headroom 0%" in found["summary"]
    assert "map_location='cpu'" in found["why"]
    assert run.report["verdict"] == "GO"


def test_torch_without_libuv_is_no_go_until_use_libuv_0(run_preflight, tag):
    # This torch has libuv; the knob makes its TCPStore refuse use_libuv=True with the
    # exact text of a build without it (preflight/workloads/store.py).
    run = run_preflight("--profile", "cpu", "--check", "libuv-store",
                        env=env_for(tag, PREFLIGHT_TEST_NO_LIBUV="1"))
    assert run.returncode == 1
    found = run.one("libuv-store")
    assert found["severity"] == "blocker"
    assert "use_libuv was requested but PyTorch was build without libuv support" in \
        found["summary"]
    assert found["fix"].startswith("export USE_LIBUV=0")
    assert found["evidence"]["USE_LIBUV"] is None

    fixed = run_preflight("--profile", "cpu", "--check", "libuv-store",
                          env=env_for(tag, PREFLIGHT_TEST_NO_LIBUV="1", USE_LIBUV="0"))
    assert fixed.returncode == 0, fixed.output[-3000:]
    found = fixed.one("libuv-store")
    assert found["outcome"] == "passed" and "legacy" in found["summary"]
    assert all(s["ok"] and not s["libuv_backend"] for s in found["evidence"]["stores"])


def test_use_libuv_exported_by_the_launch_script_is_the_jobs(run_preflight, tag, tmp_path):
    # A 2-GPU DDP script on a hand-built torch exports USE_LIBUV=0 itself: the store is
    # built as the job builds it, not with this shell's environment (a false NO-GO)
    script = tmp_path / "train_dual_gpu.sh"
    script.write_text("#!/bin/bash\nexport USE_LIBUV=0\nexport TORCHELASTIC_USE_AGENT_STORE=0\n"
                      "torchrun --standalone --nproc_per_node=2 train.py\n")
    run = run_preflight("--profile", "cpu", "--check", "libuv-store", "--launch-script",
                        str(script), env=env_for(tag, PREFLIGHT_TEST_NO_LIBUV="1",
                                                 USE_LIBUV=None))
    assert run.returncode == 0, run.output[-3000:]
    found = run.one("libuv-store")
    assert found["evidence"]["USE_LIBUV"] == "0", found["evidence"]


@pytest.fixture
def no_torch(tmp_path) -> str:
    """A PYTHONPATH under which `import torch` fails and find_spec("torch") is None."""
    site = tmp_path / "no-torch"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    return str(site)


def test_without_torch_cpu_profile_skips_with_the_reason(run_preflight, tag, no_torch):
    run = run_preflight("--profile", "cpu", "-m", "workload",
                        env=env_for(tag, PYTHONPATH=no_torch))
    assert run.returncode == 0, run.output[-3000:]
    for check in ("nccl-allreduce", "train-10-steps", "libuv-store"):
        found = run.one(check)
        assert found["outcome"] == "skipped", found
        assert found["summary"].startswith("torch is not importable by")
        assert "pip install 'pytest-preflight[torch]'" in found["summary"]


def test_without_torch_gpu_profile_fails(run_preflight, tag, no_torch):
    run = run_preflight("--profile", "a800", "--check", "nccl-allreduce",
                        env=env_for(tag, PYTHONPATH=no_torch))
    assert run.returncode == 1
    found = run.one("nccl-allreduce")
    assert found["severity"] == "blocker"
    assert "profile a800 must prove its GPUs" in found["summary"]
    assert 'pip install "pytest-preflight[torch]"' in found["fix"]


def test_gpu_profile_without_gpus_fails_before_any_launch(run_preflight, tag):
    run = run_preflight("--profile", "a800", "--check", "train-10-steps", env=env_for(tag))
    assert run.returncode == 1
    found = run.one("train-10-steps")
    assert found["summary"].startswith("profile a800 expects 4 GPU(s); NVML sees none")
    assert found["duration_s"] < 2 and "launch" not in found["evidence"]


@pytest.mark.parametrize("env, needle", [
    ({"NNODES": "two"}, "NNODES='two' is not a whole number"),
    ({"NNODES": "2", "MASTER_PORT": "29500"}, "NNODES=2 needs MASTER_ADDR"),
])
def test_unusable_multi_node_variables_are_no_go(run_preflight, tag, env, needle):
    run = run_preflight("--profile", "cpu", "--check", "nccl-allreduce",
                        env=env_for(tag, **env))
    assert run.returncode == 1
    found = run.one("nccl-allreduce")
    assert needle in found["summary"] and "MASTER_ADDR=<node 0 address>" in found["why"]
    assert "Traceback" not in run.output


def _start(args: list[str], env: dict[str, str], report_dir: Path,
           cwd: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "pytest", str(CHECKS), "-p", "no:cacheprovider",
            "--rootdir", str(REPO), "--report-dir", str(report_dir), "-q", *args]
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, report_dir: Path, timeout: float = 240) -> Run:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Run(proc.returncode, out, "", report_dir)


def test_two_copies_at_once_both_pass(small, tag, tmp_path):
    args = [*small(timeout=90), "-m", "workload"]
    procs = [(_start(args, env_for(tag), tmp_path / f"r{i}", tmp_path), tmp_path / f"r{i}")
             for i in range(2)]
    runs = [_finish(proc, report) for proc, report in procs]
    ports = set()
    for run in runs:
        assert run.returncode == 0, run.output[-3000:]
        assert run.report["verdict"] == "GO"
        for check in ("nccl-allreduce", "train-10-steps", "libuv-store"):
            assert run.one(check)["outcome"] == "passed"
        ports.add(run.one("nccl-allreduce")["evidence"]["launch"]["port"])
    assert len(ports) == 2


def _two_nodes(args, port: str, tag: str, tmp_path):
    """Two preflights as node 0 and node 1 of one c10d rendezvous on loopback, at once."""
    procs = []
    for node_rank in ("0", "1"):
        env = env_for(tag, NNODES="2", NODE_RANK=node_rank, MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=port)
        report = tmp_path / f"node{node_rank}"
        procs.append((_start(args, env, report, tmp_path), report))
    return [_finish(proc, report) for proc, report in procs]


def test_two_nodes_on_loopback_rendezvous_through_c10d(small, tag, tmp_path):
    from preflight.probes.ports import free_port

    port = str(free_port())
    runs = _two_nodes([*small(timeout=90), "--workloads", "-k", "nccl"], port, tag, tmp_path)
    assigned = set()
    for declared, run in zip(("0", "1"), runs, strict=True):
        found = run.one("nccl-allreduce")  # -k nccl may select other nccl-* checks too
        assert found["outcome"] == "passed", run.output[-3000:]
        ev = found["evidence"]
        assert ev["nnodes"] == 2 and ev["world_size"] == 4
        assert f"--rdzv-endpoint=127.0.0.1:{port}" in ev["launch"]["torchrun"]
        assert ev["measured_by"]["declared_node_rank"] == declared
        assigned.add(ev["measured_by"]["node_rank"])
        assert all(row["correct"] for row in ev["table"])
        assert "Traceback" not in run.output
    assert assigned == {0, 1}  # c10d gave each node its own rank; each says which it was


def test_two_nodes_on_loopback_train_and_resume_across_nodes(small, tag, tmp_path):
    from preflight.probes.ports import free_port

    port = str(free_port())
    runs = _two_nodes([*small(timeout=90), "--check", "train-10-steps"], port, tag, tmp_path)
    losses = []
    for run in runs:
        assert run.returncode == 0, run.output[-3000:]
        ev = run.one("train-10-steps")["evidence"]
        assert ev["world_size"] == 4 and len(set(ev["checksums"])) == 1
        # one launch on MASTER_PORT; the resume is a fresh process group in the same ranks
        assert ev["launch"]["port"] == int(port) == ev["resume_launch"]["port"]
        assert ev["resume_launch"]["process_group"].startswith("fresh")
        losses.append(ev["losses"])
    assert losses[0] == losses[1]  # both nodes report the same global (all-reduced) losses


def test_a_killed_rank_is_named_first_and_the_fix_reads_the_log(run_preflight, small, tag,
                                                                tmp_path):
    # One launch covers three faults a user meets: a rank killed by the OOM killer (the
    # survivor's gloo error "Connection closed by peer" is a symptom, torchrun's Root Cause
    # block names the rank and signal), the fix pasted as it is (it was `read LOG`, which
    # bash takes as a variable name and waits on stdin), and a report dir with a space and
    # a non-ASCII letter in its path.
    report_dir = tmp_path / "my reports ü"
    run = run_preflight(*small(), "--check", "nccl-allreduce", report_dir=report_dir,
                        env=env_for(tag, PREFLIGHT_TEST_KILL_RANK="1"))
    assert run.returncode == 1, run.output[-3000:]
    found = run.one("nccl-allreduce")
    assert found["severity"] == "blocker"
    assert "torchrun exited 1: rank 1 failed first (exitcode -9, SIGKILL)" in found["summary"]
    assert found["evidence"]["first_failure"] == {"rank": 1, "local_rank": 1, "exitcode": -9,
                                                  "signal": "SIGKILL"}
    pasted = subprocess.run(["bash", "-c", found["fix"]], capture_output=True, text=True,
                            timeout=10, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert pasted.returncode == 0, (found["fix"], pasted.stderr)
    assert "Root Cause (first observed failure)" in pasted.stdout
    assert_none_left(tag, grace_s=1.0)


def test_a_hang_in_ddp_setup_names_that_phase(run_preflight, small, tag):
    # train-10-steps alone: the hang knob held a rank only in the all-reduce sweep, so the
    # check passed; and a rank stuck in DistributedDataParallel's constructor (it
    # broadcasts rank 0's parameters) still showed the phase before it.
    run = run_preflight(*small(timeout=8), "--check", "train-10-steps",
                        env=env_for(tag, PREFLIGHT_TEST_HANG_RANK="1"))
    assert run.returncode == 1, run.output[-3000:]
    found = run.one("train-10-steps")
    assert found["summary"].startswith("10-step training did not finish within 16s"), found
    unfinished = found["evidence"]["unfinished"]
    assert unfinished["rank 1"].startswith("sleeping before the first collective")
    assert unfinished["rank 0"].startswith("setting up DistributedDataParallel"), unfinished
    assert_none_left(tag, grace_s=1.0)
