"""Programs are identified by what they are, never by a word in their command line."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from preflight.probes import procs

PY = "/env/bin/python3.11"


@pytest.mark.parametrize("argv,expected", [
    ([PY, "/env/bin/torchrun", "--nproc_per_node", "2", "x.py"], "torchrun"),
    (["/env/bin/torchrun", "x.py"], "torchrun"),
    ([PY, "-m", "torch.distributed.run", "x.py"], "torch.distributed.run"),
    ([PY, "-u", "-m", "sglang.launch_server", "--port", "1"], "sglang.launch_server"),
    ([PY, "-mvllm.entrypoints.openai.api_server"], "vllm.entrypoints"),
    (["ray::IDLE"], "ray::"),
    (["sglang::scheduler_TP0"], "sglang::"),
    ([PY, "/env/lib/python3.11/site-packages/ray/_private/workers/default_worker.py"],
     "default_worker.py"),
    ([PY, "/env/lib/site-packages/ray/autoscaler/_private/monitor.py"], "monitor.py"),
    ([PY, "/env/bin/swift", "rlhf"], "swift"),
    # mentions, not programs
    ([PY, "/env/bin/preflight", "--launch-cmd", "torchrun -m sglang.launch_server x.py"], None),
    ([PY, "-c", "import torch.distributed.run", "torchrun"], None),
    (["bash", "-c", "torchrun x.py"], None),
    ([PY, "notes.py", "--about", "torchrun", "ray::IDLE"], None),
    ([PY, "/home/u/monitor.py"], None),  # a user's own monitor.py is not Ray's
    (["vim", "torchrun.md"], None),
])
def test_identify(argv, expected):
    assert procs.identify(tuple(argv)) == expected


@pytest.mark.parametrize("argv,expected", [
    ([PY, "/env/bin/preflight", "--check", "port-free"], True),
    ([PY, "-m", "preflight", "info"], True),
    (["/env/bin/preflight"], True),
    ([PY, "-m", "pytest", "/work/repo/preflight", "-m", "static"], True),
    (["/env/bin/pytest", "-p", "preflight.plugin", "checks/"], True),
    ([PY, "-m", "pytest", "tests/test_model.py"], False),
    ([PY, "-m", "pytest", "/src/preflight/tests/test_model.py"], False),
    ([PY, "-m", "pytest", "preflight/checks/test_node.py::test_port_free"], True),
    (["bash", "-c", "preflight"], False),
])
def test_is_preflight(argv, expected):
    assert procs.is_preflight(tuple(argv)) is expected


def test_scan_reads_details_only_for_matches(tmp_path):
    script = tmp_path / "torchrun"
    script.write_text("import time\ntime.sleep(60)\n")
    leftover = subprocess.Popen([sys.executable, str(script)])
    mention = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "torchrun"])
    try:
        time.sleep(0.3)
        table = procs.Table()
        # as seen by another process (pid 1): children of this test are not its family
        found = procs.scan(table, [], 1, owner_of=lambda pid: None)
        pids = {f.proc.pid for f in found}
        assert leftover.pid in pids and mention.pid not in pids
        # only matches (and their ancestors) were looked at in detail
        assert len(table._details) < len(table.argv)
        assert all(f.mine for f in found if f.proc.pid == leftover.pid)
    finally:
        for proc in (leftover, mention):
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("init,gone", [
    (("/sbin/init",), True),
    (("/usr/lib/systemd/systemd", "--system"), True),
    (("tini", "--", "bash", "run.sh"), True),
    (("bash", "run.sh"), False),  # a container whose entrypoint is the launch script
    (("/usr/bin/python3", "train.py"), False),
    (("torchrun", "--nproc_per_node", "8", "train.py"), False),
])
def test_reparented_to_pid_1_is_gone_unless_pid_1_is_the_launch(init, gone, monkeypatch):
    """pid 1 adopts orphans, unless pid 1 is itself the launch (a container's `bash
    run.sh`): then its children are its own, alive."""
    monkeypatch.setattr(procs, "_service_started", lambda pid: False)  # pid 4242: no real one
    table = procs.Table.__new__(procs.Table)
    table.argv, table._details = {1: init}, {}
    child = procs.ProcInfo(4242, 1, "python3", "me", ("python3", "-m", "vllm.entrypoints"), 0.0)
    reason = procs.launcher_gone(table, child)
    assert bool(reason) is gone, reason


def _orphan(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """`argv` reparented: the bash that starts it exits at once (returns that bash; the
    orphan's pid is its first line)."""
    return subprocess.Popen(["bash", "-c", '"$@" & echo $!', "_", *argv], env=env,
                            stdout=subprocess.PIPE, text=True)


def test_reparented_is_left_over_only_for_a_launchers_child(tmp_path):
    """Reparented to init: a program a user starts in the background (`nohup torchrun`,
    `ray start`'s raylet) is not thereby left over; a program that only runs as a
    launcher's child is (a Ray worker titled `ray::IDLE`, a torchrun worker: it has
    TORCHELASTIC_RUN_ID). Real orphans, their launching bash gone."""
    import os

    import psutil

    script = tmp_path / "torchrun"
    script.write_text("import time\ntime.sleep(60)\n")
    worker = tmp_path / "work.py"
    worker.write_text("import time\ntime.sleep(60)\n")
    started = [
        _orphan([sys.executable, str(script)]),
        _orphan(["bash", "-c", "exec -a raylet sleep 60"]),
        _orphan(["bash", "-c", "exec -a 'ray::IDLE' sleep 60"]),
        _orphan([sys.executable, str(worker)],
                env={**os.environ, "TORCHELASTIC_RUN_ID": "r1"}),
    ]
    orphans = []
    try:
        for launcher in started:
            orphans.append(psutil.Process(int(launcher.stdout.readline())))
            launcher.wait()
        deadline = time.monotonic() + 10
        while any(p.ppid() in {s.pid for s in started} or p.cmdline()[:2] == ["bash", "-c"]
                  for p in orphans) and time.monotonic() < deadline:
            time.sleep(0.02)
        found = {f.proc.pid: f for f in procs.scan(procs.Table(), ["work.py"], 1,
                                                   owner_of=lambda pid: None)}
        top, raylet, ray_worker, torch_worker = (found[p.pid] for p in orphans)
        for f in (top, raylet):
            assert f.gone == "" and f.launcher.startswith("none alive (its launcher is gone"), f
        for f in (ray_worker, torch_worker):
            assert f.gone.startswith("its launcher is gone (reparented to"), f
    finally:
        for p in orphans:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
