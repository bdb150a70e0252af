"""The stack stage without ms-swift or a GPU: the SGLang client against a real local
server that speaks SGLang's endpoints, process-tree cleanup, the memory-share parser,
swift's log parsing, and the checks end to end through the plugin."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support import FIXTURES, base_env

from preflight.probes import http, ports
from preflight.run import Runner
from preflight.stack import colocate, sglang, swift, watch

STUB = Path(__file__).resolve().parent / "sglang_stub"
HEALTHY = FIXTURES / "nvml" / "a800x4-healthy.json"


def stub_env(**overrides: str) -> dict[str, str]:
    return base_env(PYTHONPATH=str(STUB), **overrides)


def start_stub(tmp_path: Path, **env: str) -> tuple[watch.Started, str]:
    port = ports.free_port()
    argv = sglang.server_argv(sys.executable, str(tmp_path / "model"), port, 0.45)
    server = watch.Started(Runner(), argv, log_path=tmp_path / "sglang.log", env=stub_env(**env))
    return server, f"http://127.0.0.1:{port}"


def alive(pids) -> list[int]:
    return [p for p in pids if psutil.pid_exists(p)
            and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


# -- the SGLang client against a real local server -------------------------------------


def test_wait_ready_sees_503_while_warming_up_then_generates(tmp_path):
    server, base = start_stub(tmp_path, STUB_SGLANG_WARMUP_S="1.5")
    with server:
        ready = sglang.wait_ready(base, server.poll, timeout_s=30, poll_s=0.2)
        answer = sglang.generate(base, "Say hello.")
        tree = list(server.tree.known)
    assert ready.ready and ready.exited is None
    assert ready.statuses.get("503", 0) >= 2 and ready.statuses["200"] == 1
    assert ready.elapsed_s >= 1.4
    assert (answer.status, answer.text) == (200, "Hello!")
    assert answer.meta == {"prompt_tokens": 10, "completion_tokens": 2}
    assert sglang.READY_LINE in server.log
    assert len(tree) == 3  # the server and its two helper processes
    assert server.survivors == () and alive(tree) == []


def test_server_dying_during_start_is_reported_at_once(tmp_path):
    server, base = start_stub(tmp_path, STUB_SGLANG_DIE="3")
    with server:
        ready = sglang.wait_ready(base, server.poll, timeout_s=60, poll_s=0.2)
        tree = list(server.tree.known)
    assert not ready.ready and ready.exited == 3
    assert ready.elapsed_s < 15  # not the 60 s timeout
    assert swift.first_errors(server.log)[0].startswith("torch.OutOfMemoryError")
    assert alive(tree) == []  # its helpers outlived it; cleanup got them


def test_readiness_timeout_and_sigterm_escalation(tmp_path):
    server, base = start_stub(tmp_path, STUB_SGLANG_WARMUP_S="600",
                              STUB_SGLANG_IGNORE_TERM="1")
    with server:
        ready = sglang.wait_ready(base, server.poll, timeout_s=2, poll_s=0.2)
        start = time.monotonic()
        left = server.stop(grace_s=1)
        took = time.monotonic() - start
        tree = list(server.tree.known)
    assert not ready.ready and ready.exited is None and "503" in ready.statuses
    assert left == () and alive(tree) == [] and took < 10


def test_nothing_listening_is_no_answer_not_an_exception():
    port = ports.free_port()
    reply = http.request(f"http://127.0.0.1:{port}/health", timeout=2)
    assert reply.status is None and "refused" in reply.error.lower()
    ready = sglang.wait_ready(f"http://127.0.0.1:{port}", lambda: None, timeout_s=0.5,
                              poll_s=0.1)
    assert not ready.ready and ready.statuses.get("no answer", 0) >= 1


# -- watch: bounded runs, stop patterns, every descendant killed ---------------------------

# A parent that starts a worker in its own session (as torchrun does), prints a line,
# and then hangs: killing the parent's process group alone would leave the worker.
HANG = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
print("[c10d] The server socket on 1 has failed to bind.", flush=True)
time.sleep(600)
"""


def test_watch_stops_after_the_pattern_and_kills_detached_workers(tmp_path):
    run = watch.watch(Runner(), [sys.executable, "-c", HANG], log_path=tmp_path / "log",
                      timeout_s=60, stop_on=re.compile("failed to bind"), stop_after_s=0.5)
    assert run.returncode is None and not run.timed_out
    assert "failed to bind" in run.matched
    assert run.pids_seen == 2 and run.survivors == ()
    assert run.elapsed_s < 20 and run.peak_rss_bytes > 0


def test_watch_timeout_is_bounded(tmp_path):
    run = watch.watch(Runner(), [sys.executable, "-c", "import time; time.sleep(600)"],
                      log_path=tmp_path / "log", timeout_s=1)
    assert run.timed_out and run.returncode is None and run.survivors == ()
    assert run.elapsed_s < 10


def test_watch_reports_a_normal_exit(tmp_path):
    run = watch.watch(Runner(), [sys.executable, "-c", "print('x'); raise SystemExit(7)"],
                      log_path=tmp_path / "log", timeout_s=30)
    assert (run.returncode, run.timed_out, run.log.strip()) == (7, False, "x")


# -- pure parsers ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, environ, expected", [
    ("SGLANG_MEM_FRAC=0.45 bash run.sh", {}, [("sglang", "0.45", "env SGLANG_MEM_FRAC")]),
    ("python -m sglang.launch_server --mem-fraction-static ${SGLANG_MEM_FRAC:-0.7}", {},
     [("sglang", "0.7", "--mem-fraction-static")]),
    ("python -m sglang.launch_server --mem-fraction-static $F", {"F": "0.5"},
     [("sglang", "0.5", "--mem-fraction-static")]),
    ("swift rlhf --vllm_mode colocate --vllm_gpu_memory_utilization=0.5 # x", {},
     [("vllm", "0.5", "--vllm_gpu_memory_utilization")]),
    ("", {"PRL_VLLM_GPU_MEMORY_UTILIZATION": "0.4", "SGLANG_MEM_FRAC": "0.45"},
     [("sglang", "0.45", "env SGLANG_MEM_FRAC"),
      ("vllm", "0.4", "env PRL_VLLM_GPU_MEMORY_UTILIZATION")]),
    ("bash train.sh --sglang-mem-fraction-static abc", {},
     [("sglang", "abc", "--sglang-mem-fraction-static")]),
    ("torchrun train.py", {}, []),
])
def test_memory_shares(text, environ, expected):
    found = colocate.shares(text, environ)
    assert [(s.engine, s.raw, s.source) for s in found] == expected


def test_memory_shares_come_from_the_shared_evaluation():
    """Arrays, defaults and sourced values as bash expands them (an earlier reader of its
    own read `SGLANG_ARGS=(... 0.7)` as `0.7)`); a value not known stays unknown."""
    script = ("SGLANG_ARGS=(\n  --rollout-num-gpus-per-engine 2\n"
              "  --sglang-mem-fraction-static 0.7)\n"
              "ray job submit -- python3 train.py \"${SGLANG_ARGS[@]}\"\n")
    found = colocate.shares(script, {})
    assert [(s.engine, s.raw, s.fraction, s.known) for s in found] == [
        ("sglang", "0.7", 0.7, True)]
    found = colocate.shares("F=$(cat frac)\npython -m sglang.launch_server "
                            "--mem-fraction-static $F", {})
    assert not found[0].known and found[0].fraction is None
    # a comment or a quoted flag name is not a flag
    assert colocate.shares("echo '--mem-fraction-static 0.9' # --mem-fraction-static 1",
                           {}) == []


def test_swift_logging_and_first_error_parsers(tmp_path):
    lines = [json.dumps({"loss": 12.2 - i / 10, "global_step/max_steps": f"{i}/10",
                         "memory(GiB)": 1.5 + i}) for i in range(1, 11)]
    lines.append(json.dumps({"train_runtime": "0.43", "train_steps_per_second": "23.0",
                             "global_step/max_steps": "10/10"}))
    parsed = swift.parse_logging(lines + ["not json"])
    assert parsed["steps"] == list(range(1, 11)) and parsed["max_steps"] == 10
    assert parsed["peak_gpu_memory_gib"] == 11.5
    log = ("ignore_args_error=False,\n[rank0]: Traceback (most recent call last):\n"
           "[rank0]: ValueError: Unexpected character at position 48\n"
           "IndexError: list assignment index out of range\n"
           "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n")
    assert swift.first_errors(log) == [
        "ValueError: Unexpected character at position 48",
        "IndexError: list assignment index out of range",
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:"]


def test_grpo_argv_follows_the_launcher_path(tmp_path):
    install = swift.SwiftInstall("/env/bin/swift", "/env/bin/python", "4.6.0")
    common = dict(steps=10, nproc=2, port=29511)
    own = swift.grpo_argv(install, "/m", "/d.jsonl", tmp_path, backend="gloo", via="swift",
                          **common)
    assert own[:3] == ["/env/bin/swift", "rlhf", "--model"]
    assert own[own.index("--rlhf_type") + 1] == "grpo"
    assert own[own.index("--use_cpu") + 1] == "true"  # else no DDP on CPU: see train_args
    assert own[own.index("--external_plugins") + 1] == str(swift.GRPO_REWARD)
    assert swift.GRPO_REWARD.is_file()
    outer = swift.grpo_argv(install, "/m", "/d.jsonl", tmp_path, backend="nccl",
                            via="torchrun", **common)
    assert outer[:11] == ["/env/bin/python", "-m", "torch.distributed.run", "--nproc_per_node",
                          "2", "--master_addr", "127.0.0.1", "--master_port", "29511", "-m",
                          "swift.cli.rlhf"]
    assert "--use_cpu" not in outer  # GPUs: accelerate is distributed by itself
    environ = {"NPROC_PER_NODE": "8", "NNODES": "2", "PATH": "/usr/bin"}
    env = swift.torchrun_env(environ)
    assert "NPROC_PER_NODE" not in env and "NNODES" not in env  # else swift relaunches
    assert env["HF_HUB_OFFLINE"] == "1" and env["PATH"] == "/usr/bin"
    assert swift.launch_env(environ, 2, 29511)["NPROC_PER_NODE"] == "2"


def test_the_smokes_torchrun_reads_its_log_dir_from_the_environment(tmp_path, monkeypatch):
    """torch's own parser (what swift's torchrun and ours run) takes the smoke's log dir
    from the environment preflight gives it; a PET_LOG_DIR of the user's is kept."""
    run = pytest.importorskip("torch.distributed.run")
    env = swift.with_log_dir(swift.launch_env({"PATH": "/usr/bin"}, 2, 29511), tmp_path / "te")
    for key in [k for k in os.environ if k.startswith("PET_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PET_LOG_DIR", env["PET_LOG_DIR"])
    assert run.parse_args(["--nproc_per_node", "2", "train.py"]).log_dir == str(tmp_path / "te")
    assert swift.with_log_dir({"PET_LOG_DIR": "/mine"}, tmp_path)["PET_LOG_DIR"] == "/mine"
    assert swift.with_log_dir({"PET_LOG_DIR": ""}, tmp_path)["PET_LOG_DIR"] == str(tmp_path)


def test_grpo_rewards_and_a_death_at_teardown_are_read_from_the_logs():
    lines = [json.dumps({"loss": 1e-7, "reward": 0.2 + i / 100, "global_step/max_steps": f"{i}/10"})
             for i in range(1, 11)]
    assert swift.parse_logging(lines)["rewards"] == [0.2 + i / 100 for i in range(1, 11)]
    # torchrun's failure table as ms-swift 4.6 / torch 2.13 left it (rank 1 aborted after
    # checkpoint-10 was saved; the agent then SIGTERMed rank 0).
    log = ("[INFO:swift] End time of running main: 2026-11-23 22:28:31.461520\n"
           "terminate called without an active exception\n"
           "W1123 api.py:1028] Sending process 30244 closing signal SIGTERM\n"
           "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
           "  exitcode  : -15 (pid: 30244)  (SIGTERM)\n"
           "  exitcode  : -6 (pid: 30245)  (SIGABRT)\n")
    assert swift.exit_signal(log) == ("SIGABRT (exitcode -6): terminate called without an "
                                      "active exception")
    assert swift.exit_signal("[INFO:swift] End time of running main\n") == ""
    older = "  traceback : Signal 6 (SIGABRT) received by PID 30245\n"  # torch < 2.13 table
    assert swift.exit_signal(older) == "SIGABRT (signal 6)"


def test_only_a_signal_after_a_finished_run_is_a_teardown_death():
    finished = "[INFO:swift] last_model_checkpoint: /o/v0/checkpoint-10\n"
    died = "terminate called without an active exception\n  exitcode  : -6 (pid: 1)  (SIGABRT)\n"
    whole = swift.SmokeRun(steps=tuple(range(1, 11)), optimizer_state=True,
                           error_lines=("torch.distributed.elastic.multiprocessing.errors."
                                        "ChildFailedError:",))
    assert swift.died_after_save(whole, 1, finished + died, 10).startswith("SIGABRT")
    # Each of these is a failure, not a warning:
    assert swift.died_after_save(whole, 1, finished, 10) == ""  # exit 1, no signal
    assert swift.died_after_save(whole, 1, died, 10) == ""  # swift never finished
    assert swift.died_after_save(whole, 0, finished + died, 10) == ""  # exit 0 is no death
    short = swift.SmokeRun(steps=(1, 2), optimizer_state=True)
    assert swift.died_after_save(short, -6, finished + died, 10) == ""
    raised = swift.SmokeRun(steps=tuple(range(1, 11)), optimizer_state=True,
                            error_lines=("RuntimeError: boom",))
    assert swift.died_after_save(raised, 1, finished + died, 10) == ""


def test_exception_lines_of_every_shape():
    from preflight.probes.exceptions import exception_lines

    log = ["[rank0]: Exception: boom", "[default1]: RuntimeError: NCCL error", "Error: x",
           "mylib.myError: y", "KeyboardInterrupt", "torch.OutOfMemoryError: CUDA out of memory",
           "error: not an exception line", "  File \"x.py\", line 3, in <module>"]
    assert exception_lines(log) == ["Exception: boom", "RuntimeError: NCCL error", "Error: x",
                                    "mylib.myError: y", "KeyboardInterrupt",
                                    "torch.OutOfMemoryError: CUDA out of memory"]
    assert exception_lines(log, limit=2) == ["Exception: boom", "RuntimeError: NCCL error"]


def test_entry_point_python(tmp_path):
    plain = tmp_path / "swift"
    plain.write_text("#!/opt/env/bin/python3.11\nfrom swift.cli.main import cli_main\n")
    trampoline = tmp_path / "swift2"
    trampoline.write_text("#!/bin/sh\n'''exec' /very/long/env/bin/python \"$0\" \"$@\"\n' '''\n")
    apple = tmp_path / "swift3"
    apple.write_bytes(b"\x7fELF\x02\x01")
    assert swift.entry_point_python(str(plain)) == "/opt/env/bin/python3.11"
    assert swift.entry_point_python(str(trampoline)) == "/very/long/env/bin/python"
    assert swift.entry_point_python(str(apple)) is None


# -- the checks end to end through the plugin -------------------------------------------------


def write_profile(tmp_path: Path, name: str, text: str) -> Path:
    directory = tmp_path / "profiles"
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.toml").write_text(text)
    return directory


def test_swift_absent_skips_under_cpu_and_blocks_when_required(run_preflight, tmp_path):
    env = base_env(PATH="/usr/bin:/bin")  # no ms-swift on this PATH, whatever the machine has
    run = run_preflight("--profile", "cpu", "--check", "swift-smoke-10", env=env)
    found = run.one("swift-smoke-10")
    assert found["outcome"] == "skipped" and "not on PATH" in found["summary"]
    assert found["stage"] == "stack"

    profiles = write_profile(tmp_path, "cpuswift",
                             'extends = "cpu"\n[stack]\nrequired = ["swift"]\n')
    run = run_preflight("--profile-dir", str(profiles), "--profile", "cpuswift",
                        "--check", "swift-smoke-10", env=env)
    found = run.one("swift-smoke-10")
    assert run.returncode == 1 and found["severity"] == "blocker"
    assert "requires the swift stage" in found["summary"]
    assert 'pip install "ms-swift>=4.6,<5"' in found["fix"]
    assert found["evidence"]["swift"] is None


def test_swift_grpo_runs_only_when_asked_and_blocks_when_required(run_preflight, tmp_path):
    env = base_env(PATH="/usr/bin:/bin")
    run = run_preflight("--profile", "cpu", "--check", "swift-grpo-10", env=env)
    found = run.one("swift-grpo-10")
    assert found["outcome"] == "skipped" and "does not ask for GRPO" in found["summary"]

    # A GRPO launch command asks for it, whatever the profile says: without swift that
    # is a skip under cpu and a NO-GO where the profile requires the swift stage.
    cmd = ("torchrun --nproc_per_node 2 -m swift.cli.rlhf --rlhf_type grpo --model m "
           "--num_generations 2")
    run = run_preflight("--profile", "cpu", "--check", "swift-grpo-10", "--launch-cmd", cmd,
                        env=env)
    found = run.one("swift-grpo-10")
    assert found["outcome"] == "skipped" and "not on PATH" in found["summary"]
    assert found["evidence"]["launcher"] == "torchrun"
    # Under accelerate the smoke cannot follow: it says so and runs swift's own launcher.
    run = run_preflight("--profile", "cpu", "--check", "swift-grpo-10", "--launch-cmd",
                        cmd.replace("torchrun --nproc_per_node 2", "accelerate launch"), env=env)
    found = run.one("swift-grpo-10")
    assert found["evidence"]["launcher"] == "swift"
    assert "accelerate launch runs swift.cli.rlhf" in found["evidence"]["launcher_from"]
    assert "instead" in found["evidence"]["launcher_from"]
    profiles = write_profile(tmp_path, "cpuswift",
                             'extends = "cpu"\n[stack]\nrequired = ["swift"]\n'
                             "swift_grpo = true\n")
    run = run_preflight("--profile-dir", str(profiles), "--profile", "cpuswift",
                        "--check", "swift-grpo-10", env=env)
    found = run.one("swift-grpo-10")
    assert run.returncode == 1 and found["severity"] == "blocker"
    assert "requires the swift stage" in found["summary"]


def test_sglang_generate_end_to_end_against_the_stub(run_preflight, tmp_path):
    profiles = write_profile(tmp_path, "a800stub",
                             f'extends = "a800"\n[stack]\nsglang_model = "{tmp_path}/model"\n'
                             'sglang_timeout_s = 30.0\n')
    args = ("--profile-dir", str(profiles), "--profile", "a800stub", "--nvml-replay",
            str(HEALTHY), "--check", "sglang-generate")
    run = run_preflight(*args, env=stub_env(STUB_SGLANG_WARMUP_S="1"))
    found = run.one("sglang-generate")
    assert found["outcome"] == "passed", run.output[-2000:]
    ev = found["evidence"]
    assert ev["ready"] and ev["generate_status"] == 200 and ev["generated"] == "Hello!"
    assert "--mem-fraction-static 0.45" in ev["command"]  # the 4×A800 slime smoke's value
    assert ev["health_statuses"].get("503", 0) >= 1 and ev["left_running"] == []

    run = run_preflight(*args, env=stub_env(STUB_SGLANG_DIE="1"))
    found = run.one("sglang-generate")
    assert run.returncode == 1 and found["severity"] == "blocker"
    assert "exited 1 while starting" in found["summary"]
    assert found["evidence"]["first_error"].startswith("torch.OutOfMemoryError")
    assert "lower --mem-fraction-static" in found["why"]
    # the command reads the server's own log, which outlives the run (preflight-logs/)
    assert found["fix"] == f"tail -n 40 {found['evidence']['log']}", found["fix"]
    assert "OutOfMemoryError" in subprocess.run(
        ["bash", "-c", found["fix"]], capture_output=True, text=True, timeout=10).stdout

    run = run_preflight(*args, env=stub_env(STUB_SGLANG_EMPTY="1"))
    found = run.one("sglang-generate")
    assert found["outcome"] == "failed" and "empty text" in found["summary"]


def test_sglang_skips_without_gpu_and_blocks_when_required_but_missing(run_preflight, tmp_path):
    run = run_preflight("--profile", "cpu", "--check", "sglang-generate")
    assert run.one("sglang-generate")["summary"] == "SGLang serves on GPUs; profile cpu has none"
    profiles = write_profile(tmp_path, "a800sg",
                             'extends = "a800"\n[stack]\nrequired = ["sglang"]\n')
    run = run_preflight("--profile-dir", str(profiles), "--profile", "a800sg", "--nvml-replay",
                        str(HEALTHY), "--check", "sglang-generate")
    found = run.one("sglang-generate")
    assert found["severity"] == "blocker" and "sglang is not importable" in found["summary"]
    assert '-m pip install "sglang"' in found["fix"]


def test_colocate_memory_end_to_end(run_preflight, tmp_path):
    run = run_preflight("--profile", "a800", "--check", "colocate-memory",
                        env=base_env(SGLANG_MEM_FRAC="0.45", PRL_VLLM_GPU_MEMORY_UTILIZATION="0.5"))
    found = run.one("colocate-memory")
    assert run.returncode == 1 and found["severity"] == "blocker"
    assert found["evidence"]["total"] == 0.95 and found["evidence"]["allowed"] == 0.9
    assert found["evidence"]["shares"] == [
        {"engine": "sglang", "value": "0.45", "from": "env SGLANG_MEM_FRAC"},
        {"engine": "vllm", "value": "0.5", "from": "env PRL_VLLM_GPU_MEMORY_UTILIZATION"}]
    assert found["fix"].startswith("export SGLANG_MEM_FRAC=0.4\nexport "
                                   "PRL_VLLM_GPU_MEMORY_UTILIZATION=0.45")
    assert found["stage"] == "static"

    run = run_preflight("--profile", "a800", "--check", "colocate-memory",
                        env=base_env(SGLANG_MEM_FRAC="0.45", PRL_VLLM_GPU_MEMORY_UTILIZATION="0.4"))
    found = run.one("colocate-memory")
    assert found["outcome"] == "passed" and found["evidence"]["free_gb_per_gpu"] == 12.0

    run = run_preflight("--profile", "a800", "--check", "colocate-memory",
                        env=base_env(SGLANG_MEM_FRAC="45"))
    assert "not a fraction in (0, 1]" in run.one("colocate-memory")["summary"]

    run = run_preflight("--profile", "a800", "--check", "colocate-memory")
    assert run.one("colocate-memory")["outcome"] == "skipped"


def test_colocate_memory_reads_the_launch_command(run_preflight):
    pytest.importorskip("preflight.launch.spec")  # --launch-cmd needs issue 3's launch probe
    cmd = ("swift rlhf --rlhf_type grpo --vllm_mode colocate "
           "--vllm_gpu_memory_utilization 0.6 --sglang-mem-fraction-static 0.45")
    run = run_preflight("--profile", "a800", "--check", "colocate-memory", "--launch-cmd", cmd)
    found = run.one("colocate-memory")
    assert found["outcome"] == "failed" and found["evidence"]["launch"] == "--launch-cmd"
    assert "--vllm_gpu_memory_utilization" in found["why"]


def test_colocate_memory_reads_arrays_in_the_launch_script(run_preflight, tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("SGLANG_ARGS=(--rollout-num-gpus-per-engine 2 "
                      "--sglang-mem-fraction-static 0.7)\n"
                      "VLLM=(--vllm_gpu_memory_utilization ${UTIL:-0.3})\n"
                      "python3 train.py ${SGLANG_ARGS[@]} \"${VLLM[@]}\"\n")
    run = run_preflight("--profile", "a800", "--check", "colocate-memory",
                        "--launch-script", str(script))
    found = run.one("colocate-memory")
    assert found["evidence"]["shares"] == [
        {"engine": "sglang", "value": "0.7", "from": "--sglang-mem-fraction-static"},
        {"engine": "vllm", "value": "0.3", "from": "--vllm_gpu_memory_utilization"}]
    assert found["outcome"] == "failed" and found["evidence"]["total"] == 1.0
    script.write_text("F=$(cat /nonexistent/frac)\n"
                      "python3 train.py --sglang-mem-fraction-static $F\n")
    run = run_preflight("--profile", "a800", "--check", "colocate-memory",
                        "--launch-script", str(script))
    found = run.one("colocate-memory")
    assert found["severity"] == "unknown" and "not known" in found["summary"]


def test_stack_stage_is_reported_after_the_static_stage(run_preflight):
    run = run_preflight("--profile", "cpu", "--check", "colocate-memory",
                        "--check", "swift-smoke-10", "--check", "sglang-generate",
                        env=base_env(PATH=os.environ["PATH"].replace(
                            str(Path(sys.executable).parent), "/nonexistent")))
    stages = [s["stage"] for s in run.report["stages"]]
    assert stages == ["static", "stack"]
    md = (run.report_dir / "preflight-report.md").read_text()
    assert "| stack | 0 | 0 | 2 | 0 |" in md
