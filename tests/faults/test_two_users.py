"""A shared node with two users, for real: root and an unprivileged user created for the
test each run a training-like process (holding a port) and a preflight with a workload at
the same time. Neither preflight may call the other's processes leftovers, suggest
killing them, or get the verdict wrong; each names the other's port holder as
`busy: user X, pid N`.

Needs root (useradd, and a private mount namespace in which the unprivileged user can
reach the interpreter under /root); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
TRAIN = """\
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 0)); s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
time.sleep(300)
"""
PROFILE = ('extends = "cpu"\n[workload]\ntimeout_s = 90.0\nmax_size_bytes = 4096\n'
           "warmup_iters = 1\niters = 2\n")


def _why_not() -> str:
    if os.geteuid() != 0:
        return "needs root to create a second user"
    for tool in ("useradd", "userdel", "unshare", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        return "cannot create a mount namespace here"
    return ""


@pytest.fixture
def other_user():
    why = _why_not()
    if why:
        pytest.skip(why)
    name = f"pf{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        for proc in psutil.process_iter(["uids"]):  # everything this user ran is ours
            try:
                if proc.info["uids"] and proc.info["uids"].real == pwd.getpwnam(name).pw_uid:
                    proc.kill()
            except (psutil.Error, KeyError):
                pass
        subprocess.run(["userdel", name], capture_output=True)


def _as_user(user, argv: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """argv run as `user` in a private mount namespace where /root is a bare tmpfs with
    only the interpreter's tree bound back (no one else's view of /root changes)."""
    pyenv_root = Path(sys.base_prefix).parents[1]  # e.g. /root/.pyenv
    script = (
        # the bind's parking dir sits in the work dir (removed with it), not in /tmp
        "set -e; mkdir -p {cwd}/.pf-$$; mount --bind {real} {cwd}/.pf-$$; "
        "mount -t tmpfs -o mode=755 tmpfs /root; mkdir -p {real}; "
        "mount --bind {cwd}/.pf-$$ {real}; cd {cwd}; "
        "exec setpriv --reuid {uid} --regid {gid} --clear-groups env -i {env} {argv}"
    ).format(real=pyenv_root, cwd=cwd, uid=user.pw_uid, gid=user.pw_gid,
             env=" ".join(f"{k}={_q(v)}" for k, v in env.items()),
             argv=" ".join(_q(a) for a in argv))
    if not str(pyenv_root).startswith("/root/"):
        script = "cd {cwd}; exec setpriv --reuid {uid} --regid {gid} --clear-groups " \
                 "env -i {env} {argv}".format(
                     cwd=cwd, uid=user.pw_uid, gid=user.pw_gid,
                     env=" ".join(f"{k}={_q(v)}" for k, v in env.items()),
                     argv=" ".join(_q(a) for a in argv))
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script]


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _env(home: Path, master_port: int) -> dict[str, str]:
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home),
            "PYTHONPATH": str(REPO), "MASTER_PORT": str(master_port), "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1"}


def _preflight(work: Path, *checks: str) -> list[str]:
    args = [sys.executable, "-m", "pytest", str(REPO / "preflight"), "-p", "no:cacheprovider",
            "-q", "--rootdir", str(REPO), "--profile-dir", str(work / "profiles"),
            "--profile", "shared", f"--report-dir={work / 'report'}"]
    for check in checks:
        args += ["--check", check]
    return args


def _wait_file(path: Path, timeout: float = 60) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.1)
    raise AssertionError(f"{path} never written")


def _tree_pids(pid: int) -> set[int]:
    try:
        root = psutil.Process(pid)
        return {pid, *(c.pid for c in root.children(recursive=True))}
    except psutil.Error:
        return set()


def _wait_workload(pid: int, timeout: float = 90) -> set[int]:
    """The preflight's process tree once its torchrun runs."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        tree = _tree_pids(pid)
        for child in tree:
            try:
                if "torch.distributed.run" in " ".join(psutil.Process(child).cmdline()):
                    return _tree_pids(pid)
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise AssertionError("the workload never started")


def _report(work: Path) -> dict:
    return json.loads((work / "report" / "preflight-report.json").read_text())


def _kill_fixes(report: dict) -> set[int]:
    pids: set[int] = set()
    for check in report["checks"]:
        for match in re.finditer(r"\bkill ((?:\d+ ?)+)", check.get("fix", "")):
            pids.update(int(p) for p in match.group(1).split())
    return pids


def _stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()


@pytest.fixture
def shared_dir():
    """A work dir both users can reach (pytest's tmp_path is root's 0700 tree), removed
    after the test."""
    base = Path(tempfile.mkdtemp(prefix="pf-two-users-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_two_users_share_a_node(other_user, shared_dir):
    base = shared_dir
    mine, theirs = base / "root", base / "user"
    for work in (mine, theirs):
        (work / "profiles").mkdir(parents=True)
        (work / "profiles" / "shared.toml").write_text(PROFILE)
        (work / "train.py").write_text(TRAIN)
    os.chown(theirs, other_user.pw_uid, other_user.pw_gid)
    for path in theirs.rglob("*"):
        os.chown(path, other_user.pw_uid, other_user.pw_gid)
    started: list[subprocess.Popen] = []
    try:
        # 1. Each user's training-like process holds a port.
        my_train = subprocess.Popen([sys.executable, str(mine / "train.py"), str(mine / "port")],
                                    start_new_session=True, cwd=mine)
        started.append(my_train)
        their_train = subprocess.Popen(
            _as_user(other_user, [sys.executable, str(theirs / "train.py"),
                                  str(theirs / "port")], _env(theirs, 1), theirs),
            start_new_session=True)
        started.append(their_train)
        my_port = int(_wait_file(mine / "port"))
        their_port = int(_wait_file(theirs / "port"))

        # 2. The user's preflight (with a workload) aims at root's port; while its workload
        # runs, root's preflight (with a workload) aims at the user's port.
        checks = ("leftover-processes", "port-free", "nccl-allreduce")
        theirs_run = subprocess.Popen(
            _as_user(other_user, _preflight(theirs, *checks), _env(theirs, my_port), theirs),
            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        started.append(theirs_run)
        their_tree = _wait_workload(theirs_run.pid)
        mine_run = subprocess.Popen(
            _preflight(mine, *checks), cwd=mine, start_new_session=True,
            env={**os.environ, **_env(mine, their_port), "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started.append(mine_run)
        my_tree = _wait_workload(mine_run.pid)
        # 3. The user looks again (static) while root's workload runs.
        (theirs / "again").mkdir()
        (theirs / "again" / "profiles").mkdir()
        (theirs / "again" / "profiles" / "shared.toml").write_text(PROFILE)
        for path in [theirs / "again", *(theirs / "again").rglob("*")]:
            os.chown(path, other_user.pw_uid, other_user.pw_gid)
        # ... with an output dir under root's private directory (PermissionError for them).
        locked = base / "root-only"
        locked.mkdir(mode=0o700)
        again = subprocess.run(
            _as_user(other_user, [*_preflight(theirs / "again", "leftover-processes",
                                              "launch-inputs", "disk-space"),
                                  "--launch-cmd", f"torchrun x.py --output_dir {locked}/out"],
                     _env(theirs, my_port), theirs / "again"),
            capture_output=True, text=True, timeout=120)
        theirs_out, _ = theirs_run.communicate(timeout=240)
        mine_out, _ = mine_run.communicate(timeout=240)
    finally:
        _stop(*started)

    their_report, my_report = _report(theirs), _report(mine)
    again_report = _report(theirs / "again")
    outputs = f"--- user\n{theirs_out[-3000:]}\n--- root\n{mine_out[-3000:]}\n" \
              f"--- user again\n{again.stdout[-2000:]}"
    by_id = {c["id"]: c for c in their_report["checks"]}
    mine_by_id = {c["id"]: c for c in my_report["checks"]}

    # Verdicts: each port is held by the other user's job -> NO-GO on port-free only.
    assert their_report["verdict"] == "NO-GO" and my_report["verdict"] == "NO-GO", outputs
    assert by_id["port-free"]["outcome"] == "failed", outputs
    assert mine_by_id["port-free"]["outcome"] == "failed", outputs
    # The user cannot see root's pids: the holder is named by its user.
    assert "busy: user root" in by_id["port-free"]["summary"], outputs
    assert (f"busy: user {other_user.pw_name}, pid "
            in mine_by_id["port-free"]["summary"]), outputs
    assert by_id["nccl-allreduce"]["outcome"] == "passed", outputs
    assert mine_by_id["nccl-allreduce"]["outcome"] == "passed", outputs
    # The user's node view: no leftover at all (root's training, preflight and workload
    # are root's business).
    assert by_id["leftover-processes"]["outcome"] == "passed", outputs
    again_by_id = {c["id"]: c for c in again_report["checks"]}
    assert again_by_id["leftover-processes"]["outcome"] == "passed", outputs
    assert again_by_id["launch-inputs"]["outcome"] == "failed", outputs  # a finding, no crash
    assert not any(c["summary"].startswith("check crashed") for c in again_report["checks"]), \
        outputs
    assert "Traceback" not in theirs_out + mine_out + again.stdout, outputs
    # Root's view: none of the user's processes, nor the running workloads, are leftovers
    # (other root processes on a shared box may be).
    listed = {p["pid"] for p in mine_by_id["leftover-processes"]["evidence"]["processes"]}
    assert not listed & (their_tree | {their_train.pid}), outputs
    assert not listed & my_tree, outputs
    # No kill fix for another user's pid, in either report; no `ray stop` for theirs.
    their_pids = their_tree | _tree_pids(their_train.pid) | {their_train.pid}
    assert not _kill_fixes(my_report) & their_pids, outputs
    assert not _kill_fixes(their_report) & ({my_train.pid} | my_tree), outputs
    assert not _kill_fixes(again_report) & ({my_train.pid} | my_tree), outputs
