"""Every environment check of the core, against a real broken environment built in a
temp dir, through the real plugin in a subprocess: it fails with its id, evidence and
fix, and the repaired environment passes."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from support import base_env


def _exe(path: Path, body: str = "#!/bin/sh\necho ray 2.40.0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)
    return path


# -- ray-path ----------------------------------------------------------------------


def test_ray_only_installed_is_no_blocker_without_a_launch_that_runs_it(run_preflight,
                                                                       tmp_path):
    """ray only installed in the launch env (vLLM depends on it), a profile that runs no
    Ray, PATH without the env's bin/ (`/venv/bin/python -m preflight`, venv not
    activated): nothing says the job runs ray. Without a launch script: a WARN that says
    what preflight could not know; with one that never starts ray: no blocker; with one
    that does: the blocker. (It was a NO-GO in every case: a gate crying wolf.)"""
    env_prefix = tmp_path / "envs" / "serve"
    _exe(env_prefix / "bin" / "ray")
    env = base_env(CONDA_PREFIX=str(env_prefix), PATH="/usr/bin:/bin")
    unknown = run_preflight("--profile", "cpu", "--check", "ray-path", env=env)
    assert unknown.returncode == 0, unknown.output
    result = unknown.one("ray-path")
    assert (result["outcome"], result["severity"]) == ("passed", "warning"), result
    assert "ray: command not found" in result["summary"]
    assert "preflight cannot know" in result["summary"], result["summary"]
    assert f'export PATH="{env_prefix}/bin:$PATH"' in result["fix"]
    script = tmp_path / "run.sh"
    script.write_text("torchrun --nproc_per_node 2 train.py\n")
    no_ray = run_preflight("--profile", "cpu", "--check", "ray-path",
                           "--launch-script", str(script), env=env)
    assert no_ray.returncode == 0, no_ray.output
    assert no_ray.one("ray-path")["severity"] == "warning"
    script.write_text("ray start --head\ntorchrun --nproc_per_node 2 train.py\n")
    runs_ray = run_preflight("--profile", "cpu", "--check", "ray-path",
                             "--launch-script", str(script), env=env)
    assert runs_ray.returncode == 1, runs_ray.output
    assert runs_ray.one("ray-path")["severity"] == "blocker"


def test_ray_path_missing_from_path_then_fixed(run_preflight, tmp_path):
    # The profile runs Ray (a800: slime): ray not on the job's PATH is a blocker. (This
    # test ran the cpu profile, where ray only installed in the env was enough for a
    # blocker: nothing said the job runs ray; see the test above.)
    env_prefix = tmp_path / "envs" / "slime"
    _exe(env_prefix / "bin" / "ray")
    broken = run_preflight("--profile", "a800", "--check", "ray-path",
                           env=base_env(CONDA_PREFIX=str(env_prefix), PATH="/usr/bin:/bin"))
    assert broken.returncode == 1, broken.output
    result = broken.one("ray-path")
    assert result["outcome"] == "failed" and result["severity"] == "blocker"
    assert "ray: command not found" in result["summary"]
    assert result["evidence"]["resolves_to"] is None
    assert result["evidence"]["launch_prefix"] == str(env_prefix)
    assert f'export PATH="{env_prefix}/bin:$PATH"' in result["fix"]
    assert result["runbook"].endswith("runbooks/ray-path.md")

    fixed = run_preflight("--profile", "a800", "--check", "ray-path",
                          env=base_env(CONDA_PREFIX=str(env_prefix),
                                       PATH=f"{env_prefix}/bin:/usr/bin:/bin"))
    assert fixed.returncode == 0, fixed.output
    assert fixed.one("ray-path")["outcome"] == "passed"


def test_what_the_launch_script_exports_is_what_the_job_gets(run_preflight, tmp_path,
                                                             local_mirror):
    # The fixes of a slime run on 4xA800 (PATH to the env's bin/, HF_ENDPOINT) written
    # into the launch script itself: ray-path, hf-endpoint read the job's environment.
    env_prefix = tmp_path / "envs" / "slime"
    _exe(env_prefix / "bin" / "ray")
    script = tmp_path / "run.sh"
    script.write_text(f"export CONDA_PREFIX={env_prefix}\n"
                      f'export PATH="{env_prefix}/bin:$PATH"\n'
                      f"export HF_ENDPOINT={local_mirror}\n"
                      "ray job submit -- python3 train.py\n")
    args = ("--profile", "a800", "--check", "ray-path", "--check", "hf-endpoint",
            "--launch-script", str(script))
    env = base_env(PATH="/usr/bin:/bin", CONDA_PREFIX=None, HF_ENDPOINT=None)
    run = run_preflight(*args, env=env)
    assert run.returncode == 0, run.output
    assert run.one("ray-path")["evidence"]["resolves_to"] == str(env_prefix / "bin" / "ray")
    assert run.one("hf-endpoint")["evidence"]["status"] == 200
    # the same script without those lines: the job has neither
    script.write_text("ray job submit -- python3 train.py\n")
    bare = run_preflight(*args, env=env)
    assert bare.one("ray-path")["severity"] == "blocker"
    assert "HF_ENDPOINT is unset" in bare.one("hf-endpoint")["summary"]


def test_ray_from_another_env_is_no_go(run_preflight, tmp_path):
    env_prefix, other = tmp_path / "envs" / "slime", tmp_path / "envs" / "base"
    _exe(env_prefix / "bin" / "ray")
    _exe(other / "bin" / "ray")
    # a800 runs Ray (on cpu, with no launch script, nothing says the job runs ray: a WARN)
    run = run_preflight("--profile", "a800", "--check", "ray-path",
                        env=base_env(CONDA_PREFIX=str(env_prefix),
                                     PATH=f"{other}/bin:{env_prefix}/bin:/usr/bin:/bin"))
    assert run.returncode == 1
    result = run.one("ray-path")
    assert result["evidence"]["resolves_to"] == str(other / "bin" / "ray")
    assert "not to the launch env" in result["summary"]


def test_ray_path_skips_when_ray_is_not_in_play(run_preflight, tmp_path):
    run = run_preflight("--profile", "cpu", "--check", "ray-path",
                        env=base_env(CONDA_PREFIX=str(tmp_path), PATH="/usr/bin:/bin"))
    assert run.returncode == 0
    result = run.one("ray-path")
    assert result["outcome"] == "skipped" and "not in play" in result["summary"]


def test_ray_required_by_profile_and_absent_fails(run_preflight, tmp_path):
    # a800 runs slime on Ray: a missing ray is a blocker there, not a skip.
    run = run_preflight("--profile", "a800", "--check", "ray-path",
                        env=base_env(CONDA_PREFIX=str(tmp_path), PATH="/usr/bin:/bin"))
    assert run.returncode == 1
    assert run.one("ray-path")["evidence"]["in_play"] == ["profile a800 runs Ray"]


# -- cudart-link -------------------------------------------------------------------


def _fake_cudart(prefix: Path) -> None:
    """A real shared object named libcudart.so.12 in PREFIX/lib, as conda envs ship it."""
    lib = prefix / "lib"
    lib.mkdir(parents=True)
    src = prefix / "cudart.c"
    src.write_text("int cudaRuntimeGetVersion(int *v) { *v = 12040; return 0; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib / "libcudart.so.12"), str(src)],
                   check=True)
    (lib / "libcudart.so").symlink_to("libcudart.so.12")


def test_cudart_lib_without_lib64_then_symlinked(run_preflight, tmp_path):
    prefix = tmp_path / "envs" / "slime"
    _fake_cudart(prefix)
    env = base_env(CUDA_HOME=str(prefix), CONDA_PREFIX=str(prefix))
    broken = run_preflight("--profile", "a800", "--check", "cudart-link", env=env)
    assert broken.returncode == 1, broken.output
    result = broken.one("cudart-link")
    assert result["severity"] == "blocker"
    assert "cannot find -lcudart" in result["summary"]
    assert result["evidence"]["cuda_home"] == str(prefix)
    assert result["evidence"]["layouts"][0]["lib"] == ["libcudart.so", "libcudart.so.12"]
    assert result["evidence"]["layouts"][0]["lib64_exists"] is False
    assert "cannot find -lcudart" in result["evidence"]["link"]["error"]
    assert f"ln -sfn {prefix}/lib {prefix}/lib64" in result["fix"]
    # The summary is also what pytest prints: id, evidence and fix reach the terminal.
    assert "[cudart-link] BLOCKER" in broken.output and "fix: ln -sfn" in broken.output

    (prefix / "lib64").symlink_to("lib")
    fixed = run_preflight("--profile", "a800", "--check", "cudart-link", env=env)
    assert fixed.returncode == 0, fixed.output
    assert fixed.one("cudart-link")["evidence"]["link"]["returncode"] == 0


def test_cudart_reads_cuda_home_as_the_launch_script_exports_it(run_preflight, tmp_path):
    # A slime run on 4xA800 put `export CUDA_HOME=/usr/local/cuda` into its launch script:
    # flashinfer runs in that job and reads the job's CUDA_HOME (flashinfer/jit/cpp_ext.py
    # get_cuda_path), not the CUDA_HOME of the shell preflight runs in.
    good, broken = tmp_path / "cuda", tmp_path / "envs" / "slime"
    _fake_cudart(good)
    (good / "lib64").symlink_to("lib")
    _fake_cudart(broken)
    script = tmp_path / "run.sh"
    script.write_text(f"export CUDA_HOME={good}\npython3 train.py\n")
    args = ("--profile", "a800", "--check", "cudart-link", "--launch-script", str(script))
    run = run_preflight(*args, env=base_env(CUDA_HOME=str(broken)))
    assert run.returncode == 0, run.output
    assert run.one("cudart-link")["evidence"]["cuda_home"] == str(good)
    script.write_text(f"export CUDA_HOME={broken}\npython3 train.py\n")
    run = run_preflight(*args, env=base_env(CUDA_HOME=str(good)))
    assert run.returncode == 1, run.output
    result = run.one("cudart-link")
    assert result["evidence"]["cuda_home"] == str(broken)
    # the summary says where cuda_home came from: the link path alone does not tell
    assert f"cuda_home {broken} from CUDA_HOME" in result["summary"]


def test_cudart_on_cpu_profile_is_a_warning(run_preflight, tmp_path):
    prefix = tmp_path / "cuda"
    _fake_cudart(prefix)
    run = run_preflight("--profile", "cpu", "--check", "cudart-link",
                        env=base_env(CUDA_HOME=str(prefix)))
    assert run.returncode == 0, run.output  # a warning does not block GO
    result = run.one("cudart-link")
    assert (result["outcome"], result["severity"]) == ("passed", "warning")
    assert run.report["verdict"] == "GO"
    assert "W" in run.stdout.splitlines()[0]


def test_cudart_skips_without_any_cuda(run_preflight, tmp_path):
    run = run_preflight("--profile", "a800", "--check", "cudart-link",
                        env=base_env(CUDA_HOME=str(tmp_path / "none"), PATH="/usr/bin:/bin"))
    assert run.one("cudart-link")["outcome"] == "skipped"


# -- leftover-processes ------------------------------------------------------------


def orphan(argv: list[str], **kwargs) -> tuple[psutil.Process, object]:
    """Start `argv` as an orphan, as a worker whose torchrun agent died is: its launcher (a
    bash) exits at once, so it is reparented to init (or a subreaper). Returns the process
    and the pipe of its stdout (the launcher's first line is its pid)."""
    launcher = subprocess.Popen(["bash", "-c", '"$@" & echo $!', "_", *argv],
                                stdout=subprocess.PIPE, text=True, **kwargs)
    proc = psutil.Process(int(launcher.stdout.readline()))
    launcher.wait()
    deadline = time.monotonic() + 10
    while (proc.ppid() == launcher.pid or proc.cmdline()[:1] == ["bash"]) \
            and time.monotonic() < deadline:  # until exec'd and reparented
        time.sleep(0.02)
    return proc, launcher.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_orphan(proc: psutil.Process) -> None:
    """Kill an orphan this test started (psutil checks it is still that process)."""
    try:
        proc.kill()
    except psutil.NoSuchProcess:
        pass


SGLANG_ARGV = [sys.executable, "-m", "sglang.launch_server", "--model-path", "/models/x",
               "--api-key", "sk-canary-123456"]


@pytest.fixture
def sglang_env(tmp_path):
    """PYTHONPATH with a fake `sglang.launch_server` that listens on a port (printed) and
    sleeps: run as `python -m sglang.launch_server`, as SGLang's server is."""
    pkg = tmp_path / "site" / "sglang"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "launch_server.py").write_text(textwrap.dedent("""
        import os, socket, sys, time
        s = socket.socket(); s.bind(("127.0.0.1", int(os.environ.get("FAKE_PORT", "0"))))
        s.listen(1)
        print(s.getsockname()[1], flush=True)
        time.sleep(120)
    """))
    return {**os.environ, "PYTHONPATH": str(tmp_path / "site")}


@pytest.fixture
def fake_sglang(sglang_env):
    """An SGLang server started in the background: its launcher (a bash) is gone, as under
    `nohup python -m sglang.launch_server ... &` after the shell exits."""
    proc, out = orphan(SGLANG_ARGV, env=sglang_env)
    port = int(out.readline())
    yield proc, port
    stop_orphan(proc)


@pytest.fixture
def live_sglang(sglang_env):
    """An SGLang server of a live job: its launcher (this test) is alive."""
    proc = subprocess.Popen(SGLANG_ARGV, env=sglang_env, stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    yield proc, port
    proc.kill()
    proc.wait()


def test_background_server_is_named_blocks_only_on_the_jobs_port_then_gone(run_preflight,
                                                                          fake_sglang):
    """A server whose shell is gone is what `nohup ... &` leaves as much as what a crash
    leaves: it is not called left over (a WARN naming it) until it holds what the new job
    needs (the job's MASTER_PORT): then a blocker whose fix looks before it stops anything.
    (It was `left from an earlier run` with `kill PID` either way.)"""
    proc, port = fake_sglang
    idle = run_preflight("--profile", "cpu", "--check", "leftover-processes",
                         env=base_env(MASTER_PORT=str(_free_port())))
    named = idle.one("leftover-processes")
    [job] = [p for p in named["evidence"]["other_jobs"] if p["pid"] == proc.pid]
    assert job["launcher"].startswith("none alive (its launcher is gone (reparented to"), job
    assert proc.pid not in _mine(named, "processes")

    broken = run_preflight("--profile", "cpu", "--check", "leftover-processes",
                           env=base_env(MASTER_PORT=str(port)))
    assert broken.returncode == 1, broken.output
    result = broken.one("leftover-processes")
    [found] = [p for p in result["evidence"]["in_the_way"] if p["pid"] == proc.pid]
    assert found["matched"] == "sglang.launch_server"
    assert found["listening"] == [port] and found["holds"] == [f"holds port {port}"]
    assert found["age_s"] >= 0 and found["user"] and found["ppid"] == proc.ppid()
    assert "--api-key ***" in found["cmdline"] and "sk-canary" not in broken.output
    assert proc.pid in _looked_at(result["fix"]) and proc.pid not in _killed(result["fix"])
    assert "pkill" not in result["fix"]
    assert proc.is_running(), "the suite must never kill a process"

    stop_orphan(proc)
    psutil.wait_procs([proc], timeout=5)
    fixed = run_preflight("--profile", "cpu", "--check", "leftover-processes",
                          env=base_env(MASTER_PORT=str(port)))
    after = fixed.one("leftover-processes")["evidence"]
    assert proc.pid not in [p["pid"] for p in after["processes"] + after["in_the_way"]]
    assert fixed.returncode == (1 if after["processes"] + after["in_the_way"] else 0), \
        fixed.output  # others: another session's on this shared box


def _looked_at(fix: str) -> set[int]:
    """The pids a fix's `ps -o ... -p PIDS` lines look at."""
    return {int(pid) for line in fix.splitlines()
            if line.startswith("ps -o pid,ppid,etime,args -p ")
            for pid in line.split("#")[0].split()[-1].split(",")}


def _killed(fix: str) -> set[int]:
    """The pids a fix's commands (not its comments) send `kill` to."""
    return {int(word) for line in fix.splitlines() if line.startswith("kill ")
            for word in line.split("#")[0].split(";")[0].split()[1:] if word.isdigit()}


def _mine(result: dict, field: str) -> list[int]:
    return [p["pid"] for p in (result["evidence"] or {}).get(field, [])]


def test_live_job_of_yours_is_named_not_killed(run_preflight, live_sglang):
    """A server of yours whose launcher is alive and that holds no job port nor GPU is
    another job of yours running on purpose: a WARN naming it, a fix that only looks.
    (It was a NO-GO with `kill PID`: a wrong fact about a live job.)"""
    proc, port = live_sglang
    run = run_preflight("--profile", "cpu", "--check", "leftover-processes",
                        env=base_env(MASTER_PORT=str(_free_port())))
    result = run.one("leftover-processes")
    assert proc.pid in _mine(result, "other_jobs"), result
    assert proc.pid not in _mine(result, "processes"), result
    [job] = [p for p in result["evidence"]["other_jobs"] if p["pid"] == proc.pid]
    assert job["ppid"] == os.getpid() and job["listening"] == [port] and job["launcher"]
    assert "sk-canary" not in run.output
    fix = result["fix"]
    # the kill fix (if other sessions' leftovers on this shared box are listed) never
    # names it; the WARN's fix that looks is shown where nothing else blocks
    assert proc.pid not in _killed(fix), fix
    if not _mine(result, "processes") + _mine(result, "in_the_way"):
        assert proc.pid in _looked_at(fix), fix
    if not _mine(result, "processes"):  # no leftover of anyone's session here: a WARN
        assert (result["outcome"], result["severity"]) == ("passed", "warning"), run.output
        assert run.returncode == 0, run.output
    assert proc.poll() is None


def test_live_job_holding_master_port_is_a_blocker(run_preflight, sglang_env):
    """The same live server holding the job's MASTER_PORT: the new job cannot bind it."""
    port = _free_port()
    proc = subprocess.Popen(SGLANG_ARGV, env={**sglang_env, "FAKE_PORT": str(port)},
                            stdout=subprocess.PIPE, text=True)
    try:
        assert int(proc.stdout.readline()) == port
        run = run_preflight("--profile", "cpu", "--check", "leftover-processes",
                            env=base_env(MASTER_PORT=str(port)))
    finally:
        proc.kill()
        proc.wait()
    result = run.one("leftover-processes")
    assert run.returncode == 1, run.output
    [found] = [p for p in result["evidence"]["in_the_way"] if p["pid"] == proc.pid]
    assert found["holds"] == [f"holds port {port}"] and found["launcher"], found
    assert proc.pid not in _mine(result, "processes")  # running: not "left over"
    # Its fix looks, stops nothing (other sessions' processes on this shared box may add
    # lines, their own kill among them: never naming it).
    assert proc.pid in _looked_at(result["fix"]), result["fix"]
    assert proc.pid not in _killed(result["fix"]), result["fix"]


def test_worker_whose_launcher_died_is_a_leftover(run_preflight, tmp_path):
    """A real torchrun agent and its worker, both alive: another job, a WARN. The agent
    killed with SIGKILL (its worker keeps running, reparented; it has the agent's
    TORCHELASTIC_RUN_ID): the worker is left over."""
    pidfile = tmp_path / "worker.pid"
    (tmp_path / "train.py").write_text(
        f"import os, time\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(120)\n")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1",
         "--master-port", str(_free_port()), "--log-dir", str(tmp_path / "elastic"),
         str(tmp_path / "train.py")], cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        worker = psutil.Process(int(pidfile.read_text()))
        job = base_env(MASTER_PORT=str(_free_port()))
        alive = run_preflight("--profile", "a800", "--check", "leftover-processes", env=job)
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + 10
        while worker.ppid() == launcher.pid and time.monotonic() < deadline:
            time.sleep(0.02)
        died = run_preflight("--profile", "a800", "--check", "leftover-processes", env=job)
        assert worker.is_running()
    finally:
        launcher.kill()
        launcher.wait()
        if worker is not None:
            stop_orphan(worker)
    live = alive.one("leftover-processes")
    ours = _mine(live, "other_jobs") + _mine(live, "in_the_way")
    assert {launcher.pid, worker.pid} <= set(ours), live
    assert not {launcher.pid, worker.pid} & set(_mine(live, "processes")), live
    left = died.one("leftover-processes")
    assert died.returncode == 1 and worker.pid in _mine(left, "processes"), left
    assert worker.pid in _killed(left["fix"]), left["fix"]


def test_profile_pattern_finds_train_py(run_preflight, tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import time\ntime.sleep(120)\n")
    proc, _ = orphan([sys.executable, str(script)])  # its launcher gone (or nohup'd)
    try:
        a800 = run_preflight("--profile", "a800", "--check", "leftover-processes")
        cpu = run_preflight("--profile", "cpu", "--check", "leftover-processes")
    finally:
        stop_orphan(proc)
    a800_result = a800.one("leftover-processes")
    assert proc.pid in _mine(a800_result, "other_jobs") + _mine(a800_result, "in_the_way")
    # train.py is a pattern of the a800 profile only (other users' or sessions' processes
    # on a shared box may still match the cpu profile's own patterns: not this one)
    cpu_result = cpu.one("leftover-processes")
    assert proc.pid not in _mine(cpu_result, "processes") + _mine(cpu_result, "other_jobs")


def test_leftover_fix_stops_exactly_the_leftovers(run_preflight, tmp_path):
    # An earlier run's Ray (a raylet, a worker that ignores SIGTERM) and, of the same user,
    # a Ray a running preflight owns and a job whose command line holds `monitor.py`:
    # `ray stop --force` would stop all four (it matches every process by name and command
    # line); the fix is the listed pids alone, with SIGKILL only after a bounded wait.
    worker = tmp_path / "ray" / "_private" / "workers" / "default_worker.py"
    worker.parent.mkdir(parents=True)
    worker.write_text("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                      "print('ready', flush=True)\ntime.sleep(60)\n")
    (tmp_path / "gpu_monitor.py").write_text("import time\ntime.sleep(60)\n")
    # The earlier run's Ray: workers whose raylet died, reparented to init. A raylet of
    # its own is reparented too (`ray start` exits and leaves its daemons to init), which
    # says nothing: a live cluster looks the same. It is named, never in the kill.
    idle, _ = orphan(["bash", "-c", "exec -a 'ray::IDLE' sleep 60"])
    stubborn, out = orphan([sys.executable, str(worker)])
    raylet, _ = orphan(["bash", "-c", "exec -a raylet sleep 60"])
    live_ray = subprocess.Popen(["bash", "-c", "exec -a raylet sleep 60"],
                                env={**os.environ, "PREFLIGHT_OWNER": str(os.getpid())})
    monitor = subprocess.Popen([sys.executable, str(tmp_path / "gpu_monitor.py")])
    try:
        assert out.readline() == "ready\n"
        run = run_preflight("--profile", "cpu", "--check", "leftover-processes")
        result = run.one("leftover-processes")
        listed = [p["pid"] for p in result["evidence"]["processes"]]
        assert {idle.pid, stubborn.pid} <= set(listed), result
        assert not {live_ray.pid, monitor.pid, raylet.pid} & set(listed), result
        assert raylet.pid in _mine(result, "other_jobs"), result
        fix = result["fix"]
        assert "ray stop" not in fix and "pkill" not in fix
        # Run the fix as shown, narrowed to our two pids: other sessions' processes on this
        # shared box may be listed too, and a test never kills what it did not start.
        ours = [idle.pid, stubborn.pid]
        kill = fix  # the blocker's fix alone (a live job's inspect-only fix is not shown)
        for sep in (" ", ","):
            assert sep.join(map(str, listed)) in kill, fix
            kill = kill.replace(sep.join(map(str, listed)), sep.join(map(str, ours)))
        started = time.monotonic()
        subprocess.run(["bash", "-c", kill], timeout=30)
        took = time.monotonic() - started
        # Both gone (or zombies until init reaps them); the stubborn one only after the
        # bounded wait: SIGKILL comes after it, never first.
        for proc in (idle, stubborn):
            assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE, proc
        assert 4.5 < took < 9, took
        assert live_ray.poll() is None and monitor.poll() is None and raylet.is_running()
    finally:
        for orphaned in (idle, stubborn, raylet):
            stop_orphan(orphaned)
        for proc in (live_ray, monitor):
            proc.kill()
            proc.wait()


# -- port-free ---------------------------------------------------------------------


def test_port_held_by_a_listening_socket_then_released(run_preflight):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        broken = run_preflight("--profile", "cpu", "--check", "port-free",
                               env=base_env(MASTER_PORT=str(port)))
    finally:
        holder.close()
    assert broken.returncode == 1, broken.output
    result = broken.one("port-free")
    assert result["evidence"]["port"] == port
    assert "EADDRINUSE" in result["evidence"]["bind"]
    assert os.getpid() in [h["pid"] for h in result["evidence"]["holders"]]
    assert f"kill {os.getpid()}" in result["fix"] and "export MASTER_PORT=" in result["why"]
    assert "--master_port" in result["why"]

    fixed = run_preflight("--profile", "cpu", "--check", "port-free",
                          env=base_env(MASTER_PORT=str(port)))
    assert fixed.returncode == 0, fixed.output


def test_profile_ports_are_probed_each_as_a_case(run_preflight, tmp_path):
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    (tmp_path / "prof").mkdir()
    (tmp_path / "prof" / "site.toml").write_text(f'extends = "cpu"\n[ports]\nprobe = [{port}]\n')
    try:
        run = run_preflight("--profile", "site", "--profile-dir", str(tmp_path / "prof"),
                            "--check", "port-free")
    finally:
        holder.close()
    ids = sorted(c["nodeid"].split("[")[1] for c in run.checks("port-free"))
    assert ids == ["site-MASTER_PORT-29500]", f"site-port-{port}]"]
    failed = [c for c in run.checks("port-free") if c["outcome"] == "failed"]
    assert [c["evidence"]["port"] for c in failed] == [port]


def test_master_port_garbage_is_a_clear_failure(run_preflight):
    run = run_preflight("--profile", "cpu", "--check", "port-free",
                        env=base_env(MASTER_PORT="abc"))
    assert run.returncode == 1
    assert "is not a port number" in run.one("port-free")["summary"]
    assert "Traceback" not in run.output


# -- dotenv-exported ---------------------------------------------------------------


def test_dotenv_not_exported_then_exported(run_preflight, tmp_path):
    secrets = {"HF_TOKEN": "hf_canary_" + os.urandom(8).hex(), "OTHER": os.urandom(8).hex()}
    env_file = tmp_path / "slime.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in secrets.items()))
    broken = run_preflight("--profile", "cpu", "--check", "dotenv-exported",
                           "--env-file", str(env_file))
    assert broken.returncode == 1
    result = broken.one("dotenv-exported")
    assert result["evidence"]["not_exported"] == ["HF_TOKEN", "OTHER"]
    assert result["fix"].startswith(f"set -a\nsource {env_file}\nset +a")

    stale = run_preflight("--profile", "cpu", "--check", "dotenv-exported",
                          "--env-file", str(env_file),
                          env=base_env(HF_TOKEN="old", OTHER=secrets["OTHER"]))
    assert stale.one("dotenv-exported")["evidence"]["exported_with_other_value"] == ["HF_TOKEN"]

    fixed = run_preflight("--profile", "cpu", "--check", "dotenv-exported",
                          "--env-file", str(env_file), env=base_env(**secrets))
    assert fixed.returncode == 0, fixed.output
    for run in (broken, stale, fixed):
        for value in secrets.values():
            assert value not in run.output
            assert value not in (run.report_dir / "preflight-report.json").read_text()


def test_dotenv_exported_by_the_launch_script_itself(run_preflight, tmp_path):
    # The documented fix (`set -a; source .env; set +a`) often lives in the launch script:
    # the job then gets every key although this shell has none of them.
    secret = "hf_canary_" + os.urandom(8).hex()
    (tmp_path / ".env").write_text(f"HF_TOKEN={secret}\nWANDB_MODE=offline\n")
    script = tmp_path / "run.sh"
    script.write_text('#!/bin/bash\nset -euo pipefail\ncd "$(dirname "$0")"\n'
                      "set -a; source .env; set +a\ntorchrun --nproc_per_node 2 train.py\n")
    args = ("--profile", "cpu", "--check", "dotenv-exported", "--launch-script", str(script))
    env = base_env(HF_TOKEN=None, WANDB_MODE=None)
    sourced = run_preflight(*args, cwd=tmp_path, env=env)
    assert sourced.returncode == 0, sourced.output
    assert sourced.one("dotenv-exported")["evidence"]["environment"].startswith(
        "the launch at run.sh:5")
    # the same script without the source line: the job lacks the keys
    script.write_text("#!/bin/bash\ntorchrun --nproc_per_node 2 train.py\n")
    plain = run_preflight(*args, cwd=tmp_path, env=env)
    assert plain.returncode == 1
    assert plain.one("dotenv-exported")["evidence"]["not_exported"] == ["HF_TOKEN",
                                                                        "WANDB_MODE"]
    # it reads one key with another value as stale, whichever shell runs preflight
    script.write_text('#!/bin/bash\nset -a; source .env; set +a\nexport HF_TOKEN=old\n'
                      "torchrun --nproc_per_node 2 train.py\n")
    stale = run_preflight(*args, cwd=tmp_path, env=base_env(HF_TOKEN=secret))
    assert stale.one("dotenv-exported")["evidence"]["exported_with_other_value"] == \
        ["HF_TOKEN"]
    for run in (sourced, plain, stale):
        assert secret not in run.output


def test_dotenv_fix_for_a_file_bash_reads_otherwise_exports_dotenvs_values(run_preflight,
                                                                            tmp_path):
    """python-dotenv reads `GREETING=hello touch pwned` as "hello touch pwned"; bash's
    `source` runs `touch pwned` instead. The fix is dotenv's own reading, eval'd: run in
    real bash it exports the values the check compares (and runs nothing of the file)."""
    work = tmp_path / "job"
    work.mkdir()
    (work / ".env").write_text("GREETING=hello touch pwned\nSPACED = x\nHOME_DIR=${HOME}/d\n")
    args = ("--profile", "cpu", "--check", "dotenv-exported")
    env = base_env(GREETING=None, SPACED=None, HOME_DIR=None)
    broken = run_preflight(*args, cwd=work, env=env).one("dotenv-exported")
    assert broken["evidence"]["not_exported"] == ["GREETING", "SPACED", "HOME_DIR"]
    fix = broken["fix"].replace("\n", "; ")
    assert fix.startswith('eval "$(') and "source" not in fix, fix
    done = subprocess.run(["bash", "-c", f'{fix}; env -0'], cwd=work, env=env,
                          capture_output=True, text=True, timeout=60)
    assert not (work / "pwned").exists()
    exported = dict(e.split("=", 1) for e in done.stdout.split("\0") if "=" in e)
    fixed = run_preflight(*args, cwd=work, env={**env, **{
        k: exported[k] for k in ("GREETING", "SPACED", "HOME_DIR")}})
    assert fixed.returncode == 0, fixed.output
    assert exported["GREETING"] == "hello touch pwned"


ALIKE = ["A=1\n", "export A=x.y/z:1,2@h%+=^-\n", "A='x y'\n", 'A="x y" # c\n', "A=\n",
         "# c\n\nA=1 # c\n  \nB=2\n", "A='l1\nl2'\n", "A=x#y\n", "export A\nA=2\n"]
OTHERWISE = ["A=hello world\n", "A = x\n", "A\n", "A=${HOME}/x\n", 'A="a\\nb"\n', "A=x\r\n",
             "A=~/x\n", "A='a\\\\b'\n", "A=$HOME\n", 'A="$HOME"\n']


@pytest.mark.parametrize("text", ALIKE + OTHERWISE)
def test_bash_alike_means_bash_source_gives_dotenvs_values(tmp_path, text):
    """EnvFile.bash_alike is True exactly where real bash's `set -a; source FILE` exports
    the values python-dotenv reads (the oracle: bash, in an empty environment)."""
    from preflight.probes import dotenv

    env_file = tmp_path / "x.env"
    env_file.write_text(text)
    read = dotenv.read(env_file)
    done = subprocess.run(["bash", "-c", f"set -a; source {env_file}; set +a; env -0"],
                          cwd=tmp_path, env={"HOME": "/h", "PATH": os.environ["PATH"]},
                          capture_output=True, text=True, timeout=30)
    bash = dict(e.split("=", 1) for e in done.stdout.split("\0") if "=" in e)
    same = not done.stderr and all(bash.get(k) == v for k, v in read.values.items())
    assert read.bash_alike == same == (text in ALIKE), (text, bash, done.stderr)


def test_dotenv_default_is_dot_env_in_cwd(run_preflight, tmp_path):
    work = tmp_path / "job"
    work.mkdir()
    (work / ".env").write_text("WANDB_MODE=offline\n")
    run = run_preflight("--profile", "cpu", "--check", "dotenv-exported", cwd=work)
    assert run.one("dotenv-exported")["evidence"]["file"] == ".env"
    assert run.returncode == 1


def test_wandb_key_without_wandb_api_key(run_preflight):
    run = run_preflight("--profile", "cpu", "--check", "dotenv-exported",
                        env=base_env(WANDB_KEY="wandb-canary-0123456789"))
    result = run.one("dotenv-exported")
    assert result["evidence"]["wandb_key_without_api_key"] is True
    assert 'export WANDB_API_KEY="$WANDB_KEY"' in result["fix"]
    offline = run_preflight("--profile", "cpu", "--check", "dotenv-exported",
                            env=base_env(WANDB_KEY="wandb-canary-0123456789",
                                         WANDB_MODE="offline"))
    assert offline.returncode == 0
    assert "wandb-canary" not in run.output + offline.output


def test_required_keys_of_the_profile(run_preflight, tmp_path):
    (tmp_path / "prof").mkdir()
    (tmp_path / "prof" / "site.toml").write_text(
        'extends = "cpu"\n[env]\nrequired = ["HF_TOKEN"]\n')
    args = ("--profile", "site", "--profile-dir", str(tmp_path / "prof"),
            "--check", "dotenv-exported")
    assert run_preflight(*args).one("dotenv-exported")["evidence"]["required_missing"] == \
        ["HF_TOKEN"]
    assert run_preflight(*args, env=base_env(HF_TOKEN="x" * 12)).returncode == 0


# -- hf-endpoint ---------------------------------------------------------------------


@pytest.fixture
def local_mirror():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_hf_endpoint_reachable_and_unreachable(run_preflight, local_mirror):
    ok = run_preflight("--profile", "a800", "--check", "hf-endpoint",
                       env=base_env(HF_ENDPOINT=local_mirror))
    assert ok.returncode == 0, ok.output
    assert ok.one("hf-endpoint")["evidence"]["status"] == 200

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    down = run_preflight("--profile", "a800", "--check", "hf-endpoint",
                         env=base_env(HF_ENDPOINT=dead))
    assert down.returncode == 1
    result = down.one("hf-endpoint")
    assert "does not answer" in result["summary"] and "Connection" in result["evidence"]["error"]
    assert "HF_ENDPOINT=https://hf-mirror.com" in result["fix"]


def test_hf_endpoint_is_probed_through_the_proxy_the_job_uses(run_preflight, local_mirror):
    # A node that reaches the mirror only through a proxy (AutoDL's network_turbo exports
    # http_proxy / https_proxy): huggingface_hub goes through it (requests reads the
    # environment's proxies), so must the probe. local_mirror plays the proxy: it answers
    # the absolute-URI request a proxy gets; the endpoint itself is a closed port.
    dead = f"http://127.0.0.1:{_closed_port()}"
    run = run_preflight("--profile", "a800", "--check", "hf-endpoint",
                        env=base_env(HF_ENDPOINT=dead, http_proxy=local_mirror))
    assert run.returncode == 0, run.output
    assert run.one("hf-endpoint")["evidence"]["proxy"] == local_mirror
    # no_proxy names the endpoint: straight there, refused
    run = run_preflight("--profile", "a800", "--check", "hf-endpoint",
                        env=base_env(HF_ENDPOINT=dead, http_proxy=local_mirror,
                                     no_proxy="127.0.0.1"))
    assert run.returncode == 1, run.output
    assert run.one("hf-endpoint")["evidence"]["proxy"] is None


def test_hf_endpoint_that_never_replies_is_bounded(run_preflight):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts the connection, never answers
    start = time.monotonic()
    try:
        run = run_preflight("--profile", "a800", "--check", "hf-endpoint",
                            env=base_env(HF_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}"))
    finally:
        silent.close()
    assert run.returncode == 1
    assert time.monotonic() - start < 15
    assert "timed out" in run.one("hf-endpoint")["evidence"]["error"]


def test_hf_mirror_required_unset_and_offline_alternative(run_preflight):
    unset = run_preflight("--profile", "a800", "--check", "hf-endpoint")
    assert unset.returncode == 1
    assert "HF_ENDPOINT is unset" in unset.one("hf-endpoint")["summary"]
    offline = run_preflight("--profile", "a800", "--check", "hf-endpoint",
                            env=base_env(HF_HUB_OFFLINE="1"))
    assert offline.returncode == 0
    bad = run_preflight("--profile", "cpu", "--check", "hf-endpoint",
                        env=base_env(HF_ENDPOINT="hf-mirror.com"))
    assert "is not an http(s) URL" in bad.one("hf-endpoint")["summary"]


def test_hf_endpoint_credentials_never_printed(run_preflight, local_mirror):
    url = local_mirror.replace("http://", "http://user:pw-canary-998877@")
    run = run_preflight("--profile", "cpu", "--check", "hf-endpoint",
                        env=base_env(HF_ENDPOINT=url))
    assert "pw-canary-998877" not in run.output + json_text(run)


def json_text(run) -> str:
    return (run.report_dir / "preflight-report.json").read_text()


# -- conda-env -------------------------------------------------------------------------


def test_conda_env_wrong_then_right(run_preflight):
    wrong = run_preflight("--profile", "cpu", "--check", "conda-env", "--expect-env",
                          "prl_clean", env=base_env(CONDA_DEFAULT_ENV="base"))
    assert wrong.returncode == 1
    result = wrong.one("conda-env")
    assert result["evidence"] == {"expected": "prl_clean", "CONDA_DEFAULT_ENV": "base",
                                  "CONDA_PREFIX": None}
    assert "conda activate prl_clean" in result["fix"]
    right = run_preflight("--profile", "cpu", "--check", "conda-env", "--expect-env",
                          "prl_clean", env=base_env(CONDA_DEFAULT_ENV="prl_clean"))
    assert right.returncode == 0
    none = run_preflight("--profile", "cpu", "--check", "conda-env")
    assert none.one("conda-env")["outcome"] == "skipped"


def test_conda_env_expected_as_a_path_matches_the_env_activated_by_name(run_preflight,
                                                                        tmp_path):
    """`conda activate slime` sets CONDA_DEFAULT_ENV=slime and CONDA_PREFIX=<root>/envs/slime
    (conda/activate.py _default_env: the basename under an `envs` dir): an expected env
    given as that path (also through a symlink) is the same env, not another one."""
    prefix = tmp_path / "miniconda3" / "envs" / "slime"
    (prefix / "bin").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "miniconda3")
    args = ("--profile", "cpu", "--check", "conda-env", "--expect-env")
    env = base_env(CONDA_DEFAULT_ENV="slime", CONDA_PREFIX=str(prefix))
    for expected in (prefix, tmp_path / "link" / "envs" / "slime"):
        same = run_preflight(*args, str(expected), env=env)
        assert same.returncode == 0, (expected, same.output[-1500:])
    other = tmp_path / "miniconda3" / "envs" / "other"
    other.mkdir()
    wrong = run_preflight(*args, str(other), env=env)
    assert wrong.returncode == 1 and wrong.one("conda-env")["severity"] == "blocker"


# -- nccl-ifname -------------------------------------------------------------------------


def test_nccl_ifname_bogus_then_real(run_preflight):
    bogus = run_preflight("--profile", "cpu", "--check", "nccl-ifname",
                          env=base_env(NCCL_SOCKET_IFNAME="bogus0"))
    assert bogus.returncode == 1
    result = bogus.one("nccl-ifname")
    assert result["evidence"]["selected"] == []
    assert "lo" in result["evidence"]["interfaces"]
    assert result["fix"].startswith("export NCCL_SOCKET_IFNAME=")
    for spec in ("lo", "=lo", "lo,bogus0"):
        good = run_preflight("--profile", "cpu", "--check", "nccl-ifname",
                             env=base_env(NCCL_SOCKET_IFNAME=spec))
        assert good.returncode == 0, (spec, good.output)
    excluded = run_preflight("--profile", "cpu", "--check", "nccl-ifname",
                             env=base_env(NCCL_SOCKET_IFNAME="=l"))
    assert excluded.returncode == 1  # `=` is an exact match: "l" is no interface


def test_nccl_ifname_from_nccl_conf_is_judged(run_preflight, tmp_path):
    """NCCL reads NCCL_SOCKET_IFNAME from NCCL_CONF_FILE / ~/.nccl.conf / /etc/nccl.conf
    when the environment lacks it (src/misc/param.cc initEnvFunc, setenv without
    overwrite): a file naming an interface this node lacks stops NCCL ("no socket interface
    found") as the variable does. Its fix, the environment's value, wins over the file."""
    conf = tmp_path / "nccl.conf"
    conf.write_text("NCCL_DEBUG=WARN\nNCCL_SOCKET_IFNAME=bogus0\n")
    env = {k: v for k, v in base_env(NCCL_CONF_FILE=str(conf)).items()
           if k != "NCCL_SOCKET_IFNAME"}
    bad = run_preflight("--profile", "cpu", "--check", "nccl-ifname", env=env)
    result = bad.one("nccl-ifname")
    assert bad.returncode == 1 and result["severity"] == "blocker", result
    assert f"NCCL_SOCKET_IFNAME='bogus0' (from {conf})" in result["summary"]
    assert result["evidence"]["NCCL_SOCKET_IFNAME_from"] == str(conf)
    fixed = run_preflight("--profile", "cpu", "--check", "nccl-ifname",
                          env={**env, "NCCL_SOCKET_IFNAME": "lo"})
    assert fixed.returncode == 0, fixed.output


NETNS = """set -e
ip link add ens9 type veth peer name ens10
ip link set ens9 addrgenmode none  # no IPv6 link-local address either
ip link set ens9 up; ip link set ens10 up; ip link set lo up
ip addr add 198.51.100.1/24 dev ens10
"""


def _in_own_netns(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `argv` in a network namespace of its own (unshare -n): a veth pair, ens9 up
    without any address, ens10 with one. The node's own interfaces are not touched."""
    script = NETNS + 'exec "$@"\n'
    return subprocess.run(["unshare", "--net", "bash", "-c", script, "netns", *argv], env=env,
                          capture_output=True, text=True, timeout=120)


def test_nccl_ifname_an_interface_without_an_address_is_no_go(tmp_path):
    """NCCL takes only an interface with an IPv4/IPv6 address (NVIDIA/nccl src/os/linux.cc
    ncclOsFindInterfaces, called by src/misc/socket.cc ncclFindInterfaces): an UP
    interface without one leaves it "no socket interface found"."""
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"no network namespace here: {probe.stderr.decode().strip()}")
    import json

    def run(spec: str) -> dict:
        report = tmp_path / spec
        argv = [sys.executable, "-m", "preflight", "--profile", "cpu", "--check", "nccl-ifname",
                "--report-dir", str(report)]
        done = _in_own_netns(argv, base_env(NCCL_SOCKET_IFNAME=spec))
        assert (report / "preflight-report.json").exists(), done.stdout + done.stderr
        return json.loads((report / "preflight-report.json").read_text())["checks"][0]

    bad = run("ens9")
    assert bad["severity"] == "blocker", bad
    assert "selects ens9, which has no IPv4/IPv6 address" in bad["summary"], bad["summary"]
    assert bad["evidence"]["addresses"]["ens9"] == []
    assert bad["fix"] == "export NCCL_SOCKET_IFNAME=ens10", bad["fix"]
    assert run("ens10")["outcome"] == "passed"


GLOO_ONE = """import datetime, os, sys, torch.distributed as d
try:
    d.init_process_group("gloo", init_method="tcp://127.0.0.1:" + sys.argv[1], rank=0,
                         world_size=1, timeout=datetime.timedelta(seconds=20))
    d.destroy_process_group()
    print("gloo ok")
except Exception as exc:
    print("gloo failed:", str(exc).splitlines()[0])
"""


def test_gloo_ifname_an_interface_without_an_address_agrees_with_torch(tmp_path):
    """gloo takes an interface only through an IPv4/IPv6 address of it
    (gloo/transport/tcp/device.cc lookupAddrForIface): torch's own gloo group, built in the
    same network namespace, is the oracle. ens9 is up without an address: both fail."""
    pytest.importorskip("torch")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"no network namespace here: {probe.stderr.decode().strip()}")
    import json

    (tmp_path / "gloo_one.py").write_text(GLOO_ONE)
    for spec, works in (("ens9", False), ("ens10", True), ("ens9,ens10", False)):
        report = tmp_path / f"report-{spec}"
        check = [sys.executable, "-m", "preflight", "--profile", "cpu", "--check",
                 "gloo-ifname", "--report-dir", str(report)]
        both = f"{' '.join(check)} >/dev/null 2>&1 || true; {sys.executable} gloo_one.py 29633"
        done = subprocess.run(["unshare", "--net", "bash", "-c", NETNS + both], cwd=tmp_path,
                              env=base_env(GLOO_SOCKET_IFNAME=spec), capture_output=True,
                              text=True, timeout=180)
        assert done.stdout.startswith("gloo ok" if works else "gloo failed"), done.stdout
        result = json.loads((report / "preflight-report.json").read_text())["checks"][0]
        assert (result["outcome"] == "passed") == works, (spec, result)
        if not works:
            assert "ens9, which has no IPv4/IPv6 address" in result["summary"], result
            assert result["fix"] == "export GLOO_SOCKET_IFNAME=ens10", result["fix"]


# -- profile-match -----------------------------------------------------------------------


def test_profile_match_cpu_passes_a800_is_no_go(run_preflight):
    cpu = run_preflight("--profile", "cpu", "--check", "profile-match")
    assert cpu.returncode == 0
    a800 = run_preflight("-m", "a800", "--check", "profile-match")
    assert a800.returncode == 1
    result = a800.one("profile-match")
    assert "0 of 4 expected A800 GPU(s) present" in result["summary"]
    assert result["evidence"]["detected"] == []


def test_workload_of_a_running_preflight_is_not_a_leftover(run_preflight, tmp_path):
    from preflight.run import OWNER_VAR, Runner

    script = tmp_path / "torchrun"
    script.write_text("import time\ntime.sleep(120)\n")
    # Started the way preflight starts its workloads, by a live owner (this test process).
    live = Runner().popen([sys.executable, str(script)])
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()
    orphan = subprocess.Popen([sys.executable, str(script)],
                              env={**os.environ, OWNER_VAR: str(dead_owner.pid)})
    try:
        run = run_preflight("--profile", "cpu", "--check", "leftover-processes")
    finally:
        for proc in (live, orphan):
            proc.kill()
            proc.wait()
    pids = [p["pid"] for p in run.one("leftover-processes")["evidence"]["processes"]]
    assert live.pid not in pids
    assert orphan.pid in pids  # its preflight is gone: a real leftover


# -- wandb-offline -------------------------------------------------------------------

KEY = "canary" + "0123456789abcdef" * 2 + "0123"  # 40 characters, as a wandb key is


def _closed_port() -> int:
    """A local port nothing listens on: a connect is refused at once (no network, for real)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wandb_online_without_key_or_network_then_fixed(run_preflight, tmp_path, local_mirror):
    home = tmp_path / "home"
    home.mkdir()
    launch = "torchrun --nproc_per_node 2 train.py --report_to wandb"
    env = base_env(HOME=str(home), NETRC=None, WANDB_BASE_URL=f"http://127.0.0.1:{_closed_port()}")
    broken = run_preflight("--profile", "cpu", "--check", "wandb-offline", "--launch-cmd", launch,
                           env=env)
    assert broken.returncode == 1, broken.output
    result = broken.one("wandb-offline")
    assert result["severity"] == "blocker"
    assert "no API key" in result["summary"] and "does not answer (" in result["summary"]
    # refused at once: "within 3s" would be a wrong fact (said only for a timeout)
    assert "within" not in result["summary"], result["summary"]
    assert result["evidence"]["api_key_from"] is None
    assert "Connection refused" in result["evidence"]["error"]
    assert result["fix"].splitlines()[0] == "export WANDB_MODE=offline"

    # The repaired node: `wandb login` wrote the key to ~/.netrc and the server answers.
    (home / ".netrc").write_text(f"machine 127.0.0.1\n  login user\n  password {KEY}\n")
    fixed = run_preflight("--profile", "cpu", "--check", "wandb-offline", "--launch-cmd", launch,
                          env={**env, "WANDB_BASE_URL": local_mirror})
    assert fixed.returncode == 0, fixed.output
    ok = fixed.one("wandb-offline")
    assert ok["outcome"] == "passed" and ok["summary"].startswith("wandb online: API key from")
    assert ok["evidence"]["api_key_from"] == f"{home}/.netrc (machine 127.0.0.1)"
    assert KEY not in fixed.output
    assert KEY not in (fixed.report_dir / "preflight-report.json").read_text()


def test_slime_use_wandb_and_its_key_and_mode_flags(run_preflight, tmp_path):
    # slime reports with `--use-wandb`, logs in with `--wandb-key`, and `--wandb-mode`
    # overrides WANDB_MODE (slime/utils/wandb_utils.py init_wandb_primary)
    env = base_env(HOME=str(tmp_path), NETRC=None, WANDB_API_KEY=None, WANDB_MODE=None,
                   WANDB_BASE_URL=f"http://127.0.0.1:{_closed_port()}")
    base = "ray job submit -- python3 train.py --use-wandb --wandb-project p"
    args = ("--profile", "cpu", "--check", "wandb-offline", "--launch-cmd")
    online = run_preflight(*args, base, env=env)
    found = online.one("wandb-offline")
    assert found["severity"] == "blocker", found
    assert "--use-wandb" in found["evidence"]["launch_report_to_where"]
    offline = run_preflight(*args, base + " --wandb-mode offline", env=env)
    assert offline.returncode == 0, offline.output
    assert offline.one("wandb-offline")["evidence"]["WANDB_MODE_from"].startswith(
        "the wandb-mode option at")
    keyed = run_preflight(*args, base + f" --wandb-key {KEY}", env=env)
    found = keyed.one("wandb-offline")
    assert found["evidence"]["api_key_from"].startswith("the wandb-key option at"), found
    assert "no API key" not in found["summary"]
    assert KEY not in keyed.output


def test_wandb_config_of_the_launch_and_offline_mode_in_the_script(run_preflight, tmp_path):
    (tmp_path / "train.yaml").write_text("model: x\nreport_to:\n  - tensorboard\n  - wandb\n")
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/bash\nexport WANDB_MODE=offline\n"
                      "torchrun --nproc_per_node 2 train.py --config train.yaml\n")
    env = base_env(HOME=str(tmp_path), NETRC=None,
                   WANDB_BASE_URL=f"http://127.0.0.1:{_closed_port()}")
    offline = run_preflight("--profile", "a800", "--check", "wandb-offline",
                            "--launch-script", str(script), env=env, cwd=tmp_path)
    assert offline.returncode == 0, offline.output
    result = offline.one("wandb-offline")
    assert result["summary"].startswith("WANDB_MODE=offline: wandb logs locally"), result
    assert result["evidence"]["launch_report_to"] == ["tensorboard", "wandb"]
    assert result["evidence"]["WANDB_MODE_from"].startswith("the launch script")


def test_ray_path_names_the_missing_dir_the_script_puts_on_path(run_preflight, tmp_path):
    # A slime run on 4xA800: the script exports PATH=<the env's bin>:$PATH, but that env is
    # not on this node: the report says so, not only that the suite's own env lacks ray.
    gone = tmp_path / "micromamba" / "envs" / "slime" / "bin"
    script = tmp_path / "run.sh"
    script.write_text(f"export PATH={gone}:$PATH\nray job submit -- python3 train.py\n")
    run = run_preflight("--profile", "a800", "--check", "ray-path", "--launch-script",
                        str(script), env=base_env(CONDA_PREFIX=None, PATH="/usr/bin:/bin"))
    assert run.returncode == 1, run.output
    result = run.one("ray-path")
    assert "ray: command not found" in result["summary"]
    assert f"{gone} (put on PATH by the launch script) does not exist" in result["summary"]
    assert result["evidence"]["missing_on_path"] == [str(gone)]


def test_ray_path_is_a_warning_for_a_launch_that_never_runs_ray(run_preflight, tmp_path):
    # An ms-swift torchrun job on an a800 node (whose profile also serves slime on Ray).
    script = tmp_path / "run.sh"
    script.write_text("torchrun --nproc_per_node 4 -m swift.cli.rlhf --rlhf_type grpo\n")
    args = ("--profile", "a800", "--check", "ray-path", "--launch-script", str(script))
    env = base_env(CONDA_PREFIX=str(tmp_path), PATH="/usr/bin:/bin")
    run = run_preflight(*args, env=env)
    assert run.returncode == 0, run.output
    assert run.one("ray-path")["severity"] == "warning"
    # a program the analysis cannot name may be ray: still a blocker
    script.write_text("$(./pick-launcher) start --head\n")
    run = run_preflight(*args, env=env)
    assert run.returncode == 1 and run.one("ray-path")["severity"] == "blocker", run.output


def test_ray_path_reads_the_env_of_the_scripts_ray_command(run_preflight, tmp_path):
    # A script of nothing but `ray start` (no distributed job): what it exports before
    # `ray` is what `ray` runs with.
    env_prefix = tmp_path / "envs" / "slime"
    _exe(env_prefix / "bin" / "ray")
    script = tmp_path / "run.sh"
    script.write_text(f"export CONDA_PREFIX={env_prefix}\nexport PATH=$CONDA_PREFIX/bin:$PATH\n"
                      "ray start --head --num-gpus 4\n")
    args = ("--profile", "a800", "--check", "ray-path", "--launch-script", str(script))
    run = run_preflight(*args, env=base_env(CONDA_PREFIX=None, PATH="/usr/bin:/bin"))
    assert run.returncode == 0, run.output
    assert run.one("ray-path")["evidence"]["resolves_to"] == str(env_prefix / "bin" / "ray")
    # the env it activates is not on this node: said, and no pip into a missing Python
    gone = tmp_path / "envs" / "gone"
    script.write_text(f"export CONDA_PREFIX={gone}\nexport PATH=$CONDA_PREFIX/bin:$PATH\n"
                      "ray start --head\n")
    run = run_preflight(*args, env=base_env(CONDA_PREFIX=None, PATH="/usr/bin:/bin"))
    result = run.one("ray-path")
    assert result["severity"] == "blocker"
    assert f"{gone}/bin (put on PATH by the launch script) does not exist" in result["summary"]
    assert f"the launch env {gone} has no bin/python" in result["summary"]
    assert f'"{gone}/bin/python" -m pip' not in result["fix"]
    # the fix is a command (it was prose with an `<env>` placeholder): pasted, it lists
    # the env beside the missing one that has ray
    listed = subprocess.run(["bash", "-c", result["fix"]], capture_output=True, text=True,
                            timeout=10)
    assert listed.stdout.split() == [str(env_prefix / "bin" / "ray")], (result["fix"], listed)
    assert "activate one" in result["why"]
