"""host-limits and disk-space: the probe on this machine, and the checks end to end with
limits lowered for real in the child and real directories and mounts."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from support import CHECKS, REPO, base_env

from preflight.probes import host


def test_limits_read_and_unlimited_is_none():
    recorded = {resource.RLIMIT_NOFILE: (1024, 4096),
                resource.RLIMIT_MEMLOCK: (resource.RLIM_INFINITY, resource.RLIM_INFINITY)}
    lim = host.limits(recorded.__getitem__)
    assert (lim.nofile_soft, lim.nofile_hard) == (1024, 4096)
    assert lim.memlock_soft is None and lim.memlock_hard is None
    here = host.limits()
    assert here.nofile_soft == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_space_of_a_path_that_does_not_exist_yet(tmp_path):
    target = tmp_path / "exp" / "run1" / "ckpt"
    found = host.space(target)
    assert not found.exists and found.measured_at == str(tmp_path)
    assert found.free_bytes > 0 and found.total_bytes >= found.free_bytes
    assert os.path.ismount(found.mount_point)


def test_shm_is_a_tmpfs_here():
    shm = host.shm()
    assert shm is not None and shm.mount_point == "/dev/shm" and shm.total_bytes > 0
    assert host.shm("/nonexistent/shm") is None


def site_profile(tmp_path, body: str, name: str = "site") -> Path:
    root = tmp_path / "profiles"
    root.mkdir(exist_ok=True)
    (root / f"{name}.toml").write_text(f'extends = "cpu"\n{body}')
    return root


def run_checks(tmp_path, profile_dir, *checks, limits=None, env=None, extra=()):
    """The real plugin in a subprocess; `limits` lowers rlimits in the child for real."""

    def lower():
        for which, soft in (limits or {}).items():
            hard = resource.getrlimit(which)[1]
            resource.setrlimit(which, (soft, hard))

    report = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}"
    argv = [sys.executable, "-m", "pytest", str(CHECKS), "-p", "no:cacheprovider",
            "--rootdir", str(REPO), "--report-dir", str(report), "-q",
            "--profile-dir", str(profile_dir), "--profile", "site", *extra]
    for check in checks:
        argv += ["--check", check]
    proc = subprocess.run(argv, cwd=tmp_path, env=env or base_env(), capture_output=True,
                          text=True, timeout=120, preexec_fn=lower)
    import json

    data = json.loads((report / "preflight-report.json").read_text())
    return proc, [c for c in data["checks"] if c["id"] in checks]


# -- host-limits ---------------------------------------------------------------------------


def test_nofile_too_low_fails_then_passes(tmp_path):
    profiles = site_profile(tmp_path, "[host]\nmin_nofile = 1024\n")
    proc, (result,) = run_checks(tmp_path, profiles, "host-limits",
                                 limits={resource.RLIMIT_NOFILE: 256})
    assert proc.returncode == 1 and result["severity"] == "blocker"
    assert "ulimit -n is 256, needs 1024" in result["summary"]
    assert result["evidence"]["nofile"]["soft"] == 256
    assert result["fix"].startswith("ulimit -n 1024")
    proc, (result,) = run_checks(tmp_path, profiles, "host-limits",
                                 limits={resource.RLIMIT_NOFILE: 4096})
    assert proc.returncode == 0 and result["severity"] == "ok"


def test_shm_too_small_for_ranks_times_workers(tmp_path):
    shm_gib = host.shm().total_bytes / 2**30
    per_worker = round(shm_gib / 4 + 1, 1)
    profiles = site_profile(tmp_path, f"[gpu]\ncount = 0\n[host]\ndataloader_workers = 2\n"
                                      f"shm_gb_per_worker = {per_worker}\n")
    proc, (result,) = run_checks(tmp_path, profiles, "host-limits")
    # One rank (no GPUs) x 2 workers x per_worker: sized from the profile.
    assert result["evidence"]["dataloader_workers"] == 2
    assert result["evidence"]["shm_needed_gb"] == pytest.approx(2 * per_worker)
    profiles = site_profile(tmp_path, f"[host]\nmin_shm_gb = {round(shm_gib * 2, 1)}\n")
    proc, (result,) = run_checks(tmp_path, profiles, "host-limits")
    assert result["severity"] == "blocker" and "/dev/shm is" in result["summary"]
    assert "mount -o remount,size=" in result["fix"].splitlines()[0], result["fix"]
    assert "--shm-size=" in result["why"] and "needs root" in result["why"]
    profiles = site_profile(tmp_path, "[host]\nmin_shm_gb = 0.5\n")
    proc, (result,) = run_checks(tmp_path, profiles, "host-limits")
    assert result["severity"] == "ok" and proc.returncode == 0


SMALL_SHM = """set -e
mount -t tmpfs -o size=64m tmpfs /dev/shm
head -c $((FILL_MB * 1048576)) /dev/zero > /dev/shm/left_by_an_earlier_run
# a name another user may give a file there: terminal escapes (colour, window title)
head -c 1048576 /dev/zero > "/dev/shm/$(printf 'x\033[31mred\033]0;pwned\007')"
exec "$@"
"""

DATALOADER = """import torch
from torch.utils.data import DataLoader, Dataset
class D(Dataset):
    def __len__(self): return 4
    def __getitem__(self, i): return torch.zeros(2**20)  # 4 MiB a sample
try:
    for _ in DataLoader(D(), batch_size=2, num_workers=2): pass
    print("loaded")
except RuntimeError as exc:
    print("failed:", exc)
"""


def test_a_full_dev_shm_is_no_go_as_a_dataloader_fails_there(tmp_path):
    """A /dev/shm large enough but filled by an earlier run: torch's DataLoader workers
    fail there (the oracle, run in the same place), so host-limits is NO-GO; with the
    space free both pass. A private mount namespace gets its own 64 MiB tmpfs at /dev/shm
    (the machine's is not touched)."""
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "mount", "-t",
                            "tmpfs", "-o", "size=1m", "tmpfs", "/dev/shm"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    profiles = site_profile(tmp_path, "[host]\nmin_shm_gb = 0.03\n")  # 30 MiB of 64
    (tmp_path / "dl.py").write_text(DATALOADER)

    def run(fill_mb: int) -> tuple[str, dict]:
        report = tmp_path / f"report-{fill_mb}"
        checks = [sys.executable, "-m", "preflight", "--profile-dir", str(profiles),
                  "--profile", "site", "--check", "host-limits", "--report-dir", str(report)]
        both = f"{' '.join(checks)} >out-{fill_mb}.txt 2>&1; {sys.executable} dl.py"
        done = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c",
                               SMALL_SHM, "shm", "bash", "-c", both], cwd=tmp_path,
                              env={**base_env(), "FILL_MB": str(fill_mb)}, capture_output=True,
                              text=True, timeout=180)
        import json

        data = json.loads((report / "preflight-report.json").read_text())
        return done.stdout, next(c for c in data["checks"] if c["id"] == "host-limits")

    loader, full = run(61)
    assert loader.startswith("failed:"), loader  # torch itself cannot use this /dev/shm
    assert full["severity"] == "blocker", full
    assert full["summary"].startswith("/dev/shm has 2 MiB free of 64 MiB, needs 0.03 GiB")
    assert "left_by_an_earlier_run (61 MiB, " in full["summary"]
    assert full["fix"].startswith("ls -lhS /dev/shm | head -20")
    # the other user's file name is shown, never played to the terminal or the Markdown
    shown = (tmp_path / "out-61.txt").read_text() + (
        tmp_path / "report-61" / "preflight-report.md").read_text()
    assert "x?[31mred?]0;pwned?" in shown and "\x1b" not in shown and "\x07" not in shown
    loader, empty = run(0)
    assert loader.startswith("loaded"), loader
    assert empty["severity"] == "ok", empty


@pytest.mark.parametrize("option", ["--dataloader_num_workers 4", "--dataloader-num-workers=4"])
def test_shm_sized_from_the_launch_dataloader_workers(tmp_path, option):
    """ms-swift / HF Trainer's --dataloader_num_workers in the launch, not the profile's 0."""
    shm_gib = host.shm().total_bytes / 2**30
    per_worker = round(shm_gib / 4 + 1, 1)  # 4 workers x per_worker > this box's /dev/shm
    profiles = site_profile(tmp_path, f"[gpu]\ncount = 0\n[host]\ndataloader_workers = 0\n"
                                      f"shm_gb_per_worker = {per_worker}\n")
    launch = f"swift sft --model m --dataset d {option}"
    proc, (result,) = run_checks(tmp_path, profiles, "host-limits",
                                 extra=("--launch-cmd", launch))
    assert result["severity"] == "blocker", result
    assert result["evidence"]["dataloader_workers"] == 4
    assert "workers from --dataloader_num_workers 4 at <--launch-cmd>:1" in \
        result["evidence"]["sizing"]
    assert result["evidence"]["shm_needed_gb"] == pytest.approx(4 * per_worker)
    # without the option the profile's 0 workers size it
    proc, (result,) = run_checks(tmp_path, profiles, "host-limits",
                                 extra=("--launch-cmd", "swift sft --model m --dataset d"))
    assert result["severity"] == "ok" and "workers from profile site" in \
        result["evidence"]["sizing"]


def test_rdma_memlock_lowered_for_real_fails_then_passes(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if hard != resource.RLIM_INFINITY and hard < 8 * 2**20:
        pytest.skip(f"memlock hard limit {hard} is below the 8 MiB this test needs")
    profiles = site_profile(tmp_path, "[host]\nrdma = true\nmin_memlock_mb = 8\n")
    proc, (result,) = run_checks(tmp_path, profiles, "host-limits",
                                 limits={resource.RLIMIT_MEMLOCK: 4 * 2**20})
    assert result["severity"] == "blocker"
    assert "ulimit -l is 4096 KiB, RDMA needs 8 MiB" in result["summary"]
    assert "memlock unlimited" in result["fix"]
    proc, (result,) = run_checks(tmp_path, profiles, "host-limits",
                                 limits={resource.RLIMIT_MEMLOCK: 8 * 2**20})
    assert result["severity"] == "ok"


# -- disk-space ----------------------------------------------------------------------------


def test_disk_without_enough_space_fails_then_passes(tmp_path):
    out = tmp_path / "exp" / "smoke"
    free_gib = host.space(out).free_bytes / 2**30
    profiles = site_profile(
        tmp_path, f'[disk]\nmin_free_gb = {round(free_gib * 10 + 100)}\npaths = ["{out}"]\n')
    proc, (result,) = run_checks(tmp_path, profiles, "disk-space")
    assert proc.returncode == 1 and result["severity"] == "blocker"
    assert f"{out}:" in result["summary"] and "GiB free on" in result["summary"]
    assert result["evidence"]["paths"][0]["exists"] is False
    du, df = result["fix"].splitlines()  # runnable lines, not prose in `why`
    assert du.startswith("du -xh --max-depth=1 ") and du.endswith("| sort -h | tail"), du
    shown = subprocess.run(["bash", "-c", df], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and str(tmp_path) in df, (df, shown.stderr)
    profiles = site_profile(tmp_path, f'[disk]\nmin_free_gb = 0.1\npaths = ["{out}"]\n')
    proc, (result,) = run_checks(tmp_path, profiles, "disk-space")
    assert result["severity"] == "ok" and proc.returncode == 0


def test_output_on_root_fs_while_a_data_disk_exists_warns(tmp_path):
    if host.space(tmp_path).mount_point != "/" or host.shm() is None:
        pytest.skip("needs tmp on the root filesystem and a separate /dev/shm")
    out = tmp_path / "output"
    profiles = site_profile(tmp_path, f'[disk]\npaths = ["{out}"]\ndata_disk = "/dev/shm"\n')
    proc, (result,) = run_checks(tmp_path, profiles, "disk-space")
    assert proc.returncode == 0 and result["severity"] == "warning"
    assert "is on the root filesystem, not on the data disk /dev/shm" in result["summary"]
    assert result["fix"].startswith("export OUTPUT_DIR=/dev/shm/output")


def _can_mount() -> bool:
    return os.geteuid() == 0 and Path("/proc/self/mountinfo").exists()


def test_a_real_tiny_disk_fills_the_check(tmp_path):
    """A 64 MiB tmpfs mounted for real as the data disk: too small, then big enough."""
    if not _can_mount():
        pytest.skip("needs root to mount a tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)],
                          capture_output=True, timeout=10)
    if done.returncode != 0:
        pytest.skip(f"mount not permitted here: {done.stderr.decode().strip()}")
    try:
        profiles = site_profile(tmp_path, f'[disk]\nmin_free_gb = 0.03\npaths = ["{disk}/out"]\n'
                                          f'data_disk = "{disk}"\n')
        proc, (result,) = run_checks(tmp_path, profiles, "disk-space")
        assert result["severity"] == "ok", result
        assert result["evidence"]["paths"][0]["mount_point"] == str(disk)
        (disk / "ckpt.bin").write_bytes(b"\1" * (48 * 2**20))  # a checkpoint fills it
        proc, (result,) = run_checks(tmp_path, profiles, "disk-space")
        assert result["severity"] == "blocker" and f"on {disk}" in result["summary"]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, timeout=10)
