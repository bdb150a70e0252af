"""The host judges in-process: measured /dev/shm, rlimits and disks in, outcome and fix out."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest

from preflight.fixes import is_command, split
from preflight.judges import host as judge
from preflight.probes.host import Limits, Space

from .verdicts import judged

GiB = 2**30
MiB = 2**20
SHM = Space("/dev/shm", "/dev/shm", True, "/dev/shm", "shm", "tmpfs", 64 * GiB, 60 * GiB)
LIMITS = Limits(1048576, 1048576, None, None)
PLAIN = judge.HostWant("site")


def limits(want=PLAIN, shm=SHM, lim=LIMITS, ranks=1, ranks_from="profile site gpu.count"):
    return judge.LimitFacts(want, shm, lim, ranks, ranks_from)


SHM_FIX = "sudo mount -o remount,size=128G /dev/shm && df -h /dev/shm"
MEMLOCK_FIX = ("printf '* soft memlock unlimited\\n* hard memlock unlimited\\n' | sudo tee "
               "/etc/security/limits.d/rdma.conf  # docker: --ulimit memlock=-1")


@pytest.mark.parametrize("facts, kind, text, fix", [
    (limits(), "ok", "", "none needed"),
    (limits(replace(PLAIN, min_shm_gb=128)), "blocker", "/dev/shm is 64 GiB, needs 128 GiB",
     SHM_FIX),
    (limits(replace(PLAIN, dataloader_workers=4, shm_gb_per_worker=4), ranks=8), "blocker",
     "/dev/shm is 64 GiB, needs 128 GiB", SHM_FIX),  # 8 ranks x 4 workers x 4 GB
    (limits(replace(PLAIN, min_shm_gb=1), shm=None), "blocker", "/dev/shm is missing, needs 1 GiB",
     "sudo mkdir -p /dev/shm && sudo mount -t tmpfs -o size=1G tmpfs /dev/shm"),
    (limits(replace(PLAIN, min_nofile=1024), lim=Limits(256, 4096, None, None)), "blocker",
     "ulimit -n is 256, needs 1024", "ulimit -n 1024  # in the launching shell"),
    (limits(replace(PLAIN, min_nofile=1024), lim=Limits(256, 512, None, None)), "blocker",
     "ulimit -n is 256, needs 1024", "echo '* - nofile 1024' | sudo tee "
     "/etc/security/limits.d/90-nofile.conf  # hard limit 512; log in again"),
    (limits(replace(PLAIN, rdma=True, min_memlock_mb=8), lim=Limits(None, None, 4 * MiB, None)),
     "blocker", "ulimit -l is 4096 KiB, RDMA needs 8 MiB", MEMLOCK_FIX),
    (limits(replace(PLAIN, rdma=True), lim=Limits(None, None, 64 * MiB, None)), "blocker",
     "ulimit -l is 65536 KiB, RDMA needs unlimited", MEMLOCK_FIX),
    (limits(replace(PLAIN, rdma=True, min_memlock_mb=8), lim=Limits(None, None, 8 * MiB, None)),
     "ok", "", "none needed"),
    (limits(replace(PLAIN, min_memlock_mb=8), lim=Limits(None, None, 4 * MiB, None)), "ok", "",
     "none needed"),  # no RDMA: memlock does not matter
    (limits(replace(PLAIN, min_shm_gb=128, min_nofile=1024, rdma=True),
            lim=Limits(256, 4096, 4 * MiB, None)), "blocker",
     "/dev/shm is 64 GiB, needs 128 GiB; ulimit -n is 256, needs 1024; ulimit -l is 4096 KiB",
     f"/etc/fstab\nulimit -n 1024  # in the launching shell\n{MEMLOCK_FIX}"),
], ids=["fine", "shm-floor", "shm-per-worker", "no-shm", "nofile-soft", "nofile-hard",
        "memlock", "memlock-unlimited", "memlock-enough", "no-rdma", "all-three"])
def test_host_limits(facts, kind, text, fix):
    out = judged(judge.host_limits(facts))
    assert (out.kind, out.text.startswith(text), fix in out.fix) == (kind, True, True), out


def test_host_limits_sizing_evidence():
    facts = limits(replace(PLAIN, dataloader_workers=2, shm_gb_per_worker=1.5), ranks=0,
                   ranks_from="launch analysis")
    evidence = judged(judge.host_limits(facts)).evidence
    assert (evidence["ranks"], evidence["shm_needed_gb"]) == (1, 3.0)  # at least one rank
    assert evidence["sizing"] == "ranks from launch analysis, workers from profile site"
    assert evidence["memlock_needed_mib"] == "unlimited" and evidence["memlock_mib"] is None


def test_shm_is_sized_from_the_launch_dataloader_workers_when_it_says():
    """The profile says 0 workers per rank; the launch passes --dataloader_num_workers 8 to
    4 ranks: 4 x 8 x 1 GiB = 32 GiB of /dev/shm, not the profile's 2 GiB floor."""
    want = replace(PLAIN, min_shm_gb=2, dataloader_workers=0, shm_gb_per_worker=1)
    facts = replace(limits(want, shm=replace(SHM, total_bytes=24 * GiB), ranks=4,
                           ranks_from="launch analysis"),
                    workers=8, workers_from="--dataloader_num_workers 8 at run.sh:3")
    out = judged(judge.host_limits(facts))
    assert out.kind == "blocker", out
    assert out.text.startswith("/dev/shm is 24 GiB, needs 32 GiB (4 ranks x 8 dataloader "
                               "workers from --dataloader_num_workers 8 at run.sh:3 x 1 GiB)"), \
        out.text
    assert out.evidence["dataloader_workers"] == 8
    assert out.evidence["sizing"] == ("ranks from launch analysis, workers from "
                                      "--dataloader_num_workers 8 at run.sh:3")
    # the launch says 0: the profile's per-worker share is not added
    ok = judged(judge.host_limits(replace(facts, workers=0)))
    assert ok.kind == "ok" and ok.evidence["shm_needed_gb"] == 2, ok


# -- disk-space ----------------------------------------------------------------------------


def space(path, free_gib, mount="/", exists=True, measured_at=None):
    return Space(path, measured_at or path, exists, mount, "/dev/vda", "ext4", 500 * GiB,
                 int(free_gib * GiB))


DATA = space("/data", 900, mount="/data")
DISK = judge.DiskWant("site", 100, ("/out",), "/data")


@pytest.mark.parametrize("want, spaces, data_disk, kind, text, fix", [
    (replace(DISK, paths=()), [], None, "skipped",
     "no output or data directory (profile site disk.paths, launch script)", ""),
    (DISK, [space("/data/out", 500, mount="/data")], DATA, "ok", "", "none needed"),
    (DISK, [space("/out/run1", 20.04, exists=False, measured_at="/out")], DATA, "blocker",
     "/out/run1: 20 GiB free on /, needs 100 GiB (the path does not exist; measured at /out)",
     "du -xh --max-depth=1 / 2>/dev/null | sort -h | tail"),
    (DISK, [space("/out", 20)], replace(DATA, exists=False), "blocker", "/out: 20 GiB free",
     "df -h /out"),
    (DISK, [space("/out", 20), space("/scratch", 30, mount="/scratch")], DATA, "blocker",
     "/out: 20 GiB free on /, needs 100 GiB; /scratch: 30 GiB free on /scratch, needs 100 GiB",
     "du -xh --max-depth=1 / 2>/dev/null"),
    (DISK, [space("/out", 200)], DATA, "warning",
     "/out is on the root filesystem, not on the data disk /data",
     "export OUTPUT_DIR=/data/output  # and pass it to the launch script"),
    (replace(DISK, data_disk=""), [space("/out", 200)], None, "ok", "", "none needed"),
], ids=["no-paths", "fine", "short", "short-no-data-disk", "two-short", "on-root",
        "on-root-no-data-disk"])
def test_disk_space(want, spaces, data_disk, kind, text, fix):
    out = judged(judge.disk_space(judge.DiskFacts(want, spaces, data_disk)))
    assert (out.kind, out.text.startswith(text), fix in out.fix) == (kind, True, True), out


def _commands(fix: str) -> list[str]:
    """The `$` lines a finding shows (fixes.split), each checked with `bash -n`."""
    lines = split(fix)[0].splitlines()
    for line in lines:
        proc = subprocess.run(["bash", "-n"], input=line + "\n", capture_output=True,
                              text=True, timeout=10)
        assert proc.returncode == 0 and is_command(line), (line, proc.stderr)
    return lines


def test_shm_and_disk_fixes_are_runnable_lines():
    """They were prose only (no `$` line): now commands, the container line in `why`."""
    shm = judged(judge.host_limits(limits(replace(PLAIN, min_shm_gb=128))))
    assert _commands(shm.fix) == ["sudo mount -o remount,size=128G /dev/shm && df -h /dev/shm"]
    why = split(shm.fix)[1]
    assert "needs root" in why and "docker run --shm-size=128g" in why and "--ipc=host" in why
    root = judged(judge.host_limits(replace(limits(replace(PLAIN, min_shm_gb=128)), euid=0)))
    assert _commands(root.fix)[0] == "mount -o remount,size=128G /dev/shm && df -h /dev/shm"
    disk = judged(judge.disk_space(judge.DiskFacts(DISK, [space("/out", 20)], DATA)))
    assert _commands(disk.fix) == ["du -xh --max-depth=1 / 2>/dev/null | sort -h | tail",
                                   "df -h /out /data"], disk.fix
    assert "point the output (--output_dir / SAVE_DIR) at /data" in split(disk.fix)[1]
    odd = judged(judge.disk_space(judge.DiskFacts(
        DISK, [space("/my out", 20, mount="/my out")], None)))
    assert _commands(odd.fix) == ["du -xh --max-depth=1 '/my out' 2>/dev/null | sort -h | tail",
                                  "df -h '/my out'"], odd.fix


def test_the_harmless_fix_lines_run(tmp_path):
    """`du` and `df` only read: run them for real on a directory of known sizes."""
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "f").write_bytes(b"\1" * 3 * MiB)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "model").write_bytes(b"\1" * 5 * MiB)
    disk = judged(judge.disk_space(judge.DiskFacts(
        judge.DiskWant("site", 10**6, (str(tmp_path),)),
        [space(str(tmp_path), 1, mount=str(tmp_path))], None)))
    du, df = _commands(disk.fix)
    out = subprocess.run(["bash", "-c", du], capture_output=True, text=True, timeout=60)
    # the last line is the mount itself, then the largest directory: a dot-directory counts
    assert out.returncode == 0 and out.stdout.splitlines()[-2].endswith("/.cache"), out.stdout
    assert subprocess.run(["bash", "-c", df], capture_output=True, timeout=60).returncode == 0


def test_disk_space_fix_names_only_the_first_short_path():
    out = judged(judge.disk_space(judge.DiskFacts(
        DISK, [space("/out", 20), space("/scratch", 30, mount="/scratch")], DATA)))
    assert "/scratch" not in out.fix


def test_disk_paths_profile_first_then_launch_outputs_once():
    assert judge.disk_paths(DISK, ["/exp/run1", "/out"]) == ["/out", "/exp/run1"]


def test_wants_are_read_from_a_real_profile():
    from preflight.profiles import load_profiles

    cpu = load_profiles([])["cpu"]
    assert judge.HostWant.of(cpu).profile == "cpu"
    disk = judge.DiskWant.of(cpu)
    assert isinstance(disk.paths, tuple) and disk.min_free_gb == cpu.disk.min_free_gb


def test_nofile_hard_limit_fix_for_root_names_root():
    """limits.conf(5): "group and wildcard limits are not applied to the root user"; a root
    shell (a container's, an autodl node's) needs the literal `root` line, and has no sudo
    to prefix (this box: uid 0, no sudo)."""
    facts = replace(limits(replace(PLAIN, min_nofile=65535),
                           lim=Limits(20000, 20000, None, None)), euid=0)
    out = judged(judge.host_limits(facts))
    assert out.kind == "blocker" and "ulimit -n is 20000, needs 65535" in out.text
    assert "root - nofile 65535" in out.fix and "sudo" not in out.fix, out.fix
    assert "--ulimit nofile=65535:65535" in out.fix  # a container's limit is set at its start


def test_memlock_fix_for_root_names_root():
    facts = replace(limits(replace(PLAIN, rdma=True), lim=Limits(None, None, 64 * MiB, None)),
                    euid=0)
    out = judged(judge.host_limits(facts))
    assert "root soft memlock unlimited" in out.fix and "sudo" not in out.fix, out.fix
