"""Host checks: host-limits (/dev/shm, open files, locked memory) and disk-space.

Facts are what `preflight.probes.host` measured (`Space`, `Limits`) and the profile's
`[host]` / `[disk]` sections (`HostWant`, `DiskWant`).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from preflight.model import Problem, Verdict
from preflight.probes.host import Limits, ShmFile, Space, same_filesystem
from preflight.profiles import Profile

GiB = 2**30
MiB = 2**20


@dataclass(frozen=True)
class HostWant:
    """The profile's `[host]` section."""

    profile: str
    min_shm_gb: float = 0.0
    min_nofile: int = 0
    rdma: bool = False
    min_memlock_mb: int = -1  # -1: unlimited
    dataloader_workers: int = 0  # per rank
    shm_gb_per_worker: float = 0.0

    @classmethod
    def of(cls, profile: Profile) -> HostWant:
        h = profile.host
        return cls(profile.name, min_shm_gb=h.min_shm_gb, min_nofile=h.min_nofile,
                   rdma=h.rdma, min_memlock_mb=h.min_memlock_mb,
                   dataloader_workers=h.dataloader_workers,
                   shm_gb_per_worker=h.shm_gb_per_worker)


@dataclass(frozen=True)
class LimitFacts:
    want: HostWant
    shm: Space | None  # None: the system has no /dev/shm
    limits: Limits
    ranks: int  # processes on this node
    ranks_from: str  # where `ranks` comes from
    euid: int | None = None  # who runs the job (None: not known): root needs its own lines
    # dataloader workers per rank as the launch says (--dataloader_num_workers); None: the
    # profile's. workers_from: where the launch says it, or why its value is not used.
    workers: int | None = None
    workers_from: str = ""
    shm_largest: Sequence[ShmFile] = ()  # the largest files in /dev/shm, with their owners


def _size(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"


def _shm_full(f: LimitFacts, needed_gb: float, sized: str) -> list[Problem]:
    """/dev/shm is large enough but already holds what the job needs: DataLoader workers
    then fail (`unable to write to file </torch_...>`, a Bus error) and so does NCCL's
    shared-memory transport, whatever the mount's size."""
    shm = f.shm
    if not needed_gb or shm is None or shm.free_bytes >= needed_gb * GiB:
        return []
    files = ", ".join(f"{x.name} ({_size(x.size_bytes)}, {x.user})" for x in f.shm_largest)
    return [Problem(f"/dev/shm has {_size(shm.free_bytes)} free of {_size(shm.total_bytes)}, "
                    f"needs {needed_gb:g} GiB{sized}" + (f": largest {files}" if files else ""),
                    "ls -lhS /dev/shm | head -20; df -h /dev/shm  # what fills it and whose: "
                    "delete your own files no running process uses (segments of an earlier "
                    "run); another user's are theirs to remove")]


def _shm_problems(f: LimitFacts, needed_gb: float, sized: str) -> list[Problem]:
    shm = f.shm
    if not needed_gb or (shm is not None and shm.total_bytes >= needed_gb * GiB):
        return []
    size = "missing" if shm is None else f"{shm.total_gb:g} GiB"
    whole = max(int(needed_gb + 0.999), 1)
    sudo = "" if f.euid == 0 else "sudo "
    # A tmpfs size is a ceiling, not an allocation: remounting larger takes no memory.
    mount = (f"{sudo}mkdir -p /dev/shm && {sudo}mount -t tmpfs -o size={whole}G tmpfs /dev/shm"
             if shm is None else
             f"{sudo}mount -o remount,size={whole}G /dev/shm && df -h /dev/shm")
    return [Problem(f"/dev/shm is {size}, needs {needed_gb:g} GiB{sized}",
                    f"{mount}  # on the host, needs root. In a container /dev/shm is fixed "
                    f"when it starts: recreate it with docker run --shm-size={whole}g (or "
                    "--ipc=host), Kubernetes: an emptyDir with medium Memory at /dev/shm. "
                    "To keep the size after a reboot, set size= on the /dev/shm line of "
                    "/etc/fstab")]


def _nofile_problems(want: HostWant, lim: Limits, euid: int | None) -> list[Problem]:
    if not want.min_nofile or lim.nofile_soft is None or lim.nofile_soft >= want.min_nofile:
        return []
    n = want.min_nofile
    if lim.nofile_hard is None or lim.nofile_hard >= n:
        fix = f"ulimit -n {n}  # in the launching shell"
    elif euid == 0:
        # limits.conf(5): "group and wildcard limits are not applied to the root user"; a
        # root shell has no use for sudo (and containers often lack it). A container's
        # limits come from its runtime, not from pam_limits.
        fix = (f"echo 'root - nofile {n}' | tee /etc/security/limits.d/90-nofile.conf  # the "
               f"hard limit {lim.nofile_hard} is raised at the next login; in a container: "
               f"docker run --ulimit nofile={n}:{n}")
    else:
        fix = (f"echo '* - nofile {n}' | sudo tee "
               f"/etc/security/limits.d/90-nofile.conf  # hard limit {lim.nofile_hard}; log in "
               "again")
    return [Problem(f"ulimit -n is {lim.nofile_soft}, needs {n}", fix)]


def _memlock_problems(want: HostWant, lim: Limits, needed: int | None,
                      euid: int | None) -> list[Problem]:
    """`needed` None: unlimited. A memlock limit of None is unlimited: never short."""
    if not want.rdma or lim.memlock_soft is None or (
            needed is not None and lim.memlock_soft >= needed):
        return []
    need = "unlimited" if needed is None else f"{want.min_memlock_mb} MiB"
    # `*` does not cover root (limits.conf(5)), and root needs no sudo.
    who, sudo = ("root", "") if euid == 0 else ("*", "sudo ")
    return [Problem(f"ulimit -l is {lim.memlock_soft // 2**10} KiB, RDMA needs {need}",
                    f"printf '{who} soft memlock unlimited\\n{who} hard memlock unlimited\\n' | "
                    f"{sudo}tee /etc/security/limits.d/rdma.conf  # docker: --ulimit memlock=-1")]


def host_limits(f: LimitFacts) -> Verdict:
    """/dev/shm fits every rank's dataloader workers; nofile and (RDMA) memlock suffice."""
    want, lim, shm = f.want, f.limits, f.shm
    # The launch's own --dataloader_num_workers when it says, else the profile's.
    ranks = max(f.ranks, 1)
    workers = want.dataloader_workers if f.workers is None else f.workers
    workers_from = f.workers_from if f.workers is not None else \
        f"profile {want.profile}" + (f" ({f.workers_from})" if f.workers_from else "")
    per_workers = ranks * workers * want.shm_gb_per_worker
    needed_gb = max(want.min_shm_gb, per_workers)
    sized = (f" ({ranks} ranks x {workers} dataloader workers from {workers_from} x "
             f"{want.shm_gb_per_worker:g} GiB)") if per_workers >= want.min_shm_gb else ""
    memlock = None if want.min_memlock_mb < 0 else want.min_memlock_mb * MiB
    v = Verdict(fix="none needed", evidence=dict(
        shm=None if shm is None else {"total_gib": shm.total_gb, "free_gib": shm.free_gb,
                                      "largest": [{"name": x.name, "bytes": x.size_bytes,
                                                   "user": x.user} for x in f.shm_largest]},
        shm_needed_gb=needed_gb, ranks=ranks, dataloader_workers=workers,
        sizing=f"ranks from {f.ranks_from}, workers from {workers_from}",
        nofile={"soft": lim.nofile_soft, "hard": lim.nofile_hard}, min_nofile=want.min_nofile,
        memlock_mib=None if lim.memlock_soft is None else lim.memlock_soft // MiB,
        rdma=want.rdma, memlock_needed_mib="unlimited" if memlock is None else memlock // MiB))
    v.problems += (_shm_problems(f, needed_gb, sized) or _shm_full(f, needed_gb, sized))
    v.problems += (_nofile_problems(want, lim, f.euid)
                   + _memlock_problems(want, lim, memlock, f.euid))
    return v


# -- disk-space ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskWant:
    """The profile's `[disk]` section."""

    profile: str
    min_free_gb: float = 0.0
    paths: tuple[str, ...] = ()
    data_disk: str = ""

    @classmethod
    def of(cls, profile: Profile) -> DiskWant:
        d = profile.disk
        return cls(profile.name, min_free_gb=d.min_free_gb, paths=tuple(d.paths),
                   data_disk=d.data_disk)


def disk_paths(want: DiskWant, output_dirs: Sequence[str]) -> list[str]:
    """The directories to measure: the profile's, then the launch script's outputs."""
    return list(dict.fromkeys([*want.paths, *output_dirs]))


@dataclass(frozen=True)
class DiskFacts:
    want: DiskWant
    spaces: Sequence[Space]  # one per path of `disk_paths`
    data_disk: Space | None  # the profile's data disk, measured (None: none named)


def _short_text(s: Space, want: DiskWant) -> str:
    return (f"{s.path}: {s.free_gb:g} GiB free on {s.mount_point}, needs {want.min_free_gb:g} GiB"
            + ("" if s.exists else f" (the path does not exist; measured at {s.measured_at})"))


def disk_space(f: DiskFacts) -> Verdict:
    """Every output directory has the profile's free space; none is on / beside a data disk."""
    want, data_disk = f.want, f.data_disk
    if not f.spaces:
        return Verdict(skip=f"no output or data directory (profile {want.profile} disk.paths, "
                            "launch script)")
    v = Verdict(fix="none needed", evidence=dict(
        min_free_gb=want.min_free_gb, data_disk=want.data_disk or None,
        data_disk_exists=data_disk.exists if data_disk else None,
        paths=[{"path": s.path, "exists": s.exists, "measured_at": s.measured_at,
                "free_gib": s.free_gb, "total_gib": s.total_gb, "mount_point": s.mount_point,
                "device": s.device} for s in f.spaces]))
    short = [s for s in f.spaces if s.free_bytes < want.min_free_gb * GiB]
    # A data disk that does not exist is no place to point outputs at.
    target = want.data_disk if data_disk and data_disk.exists else ""
    if short:
        # One problem: the paths short of space; its fix starts with the first of them.
        # `du -x --max-depth=1 MOUNT` stays on that filesystem (another disk mounted below
        # it is not counted as filling it) and counts dot-directories (~/.cache) too.
        first = short[0]
        df = " ".join(shlex.quote(p) for p in dict.fromkeys([first.measured_at, target]) if p)
        v.problems.append(Problem(
            "; ".join(_short_text(s, want) for s in short),
            f"du -xh --max-depth=1 {shlex.quote(first.mount_point)} 2>/dev/null | sort -h | "
            f"tail  # the largest directories on {first.mount_point}: delete or move what is "
            f"not needed, or point the output (--output_dir / SAVE_DIR) at "
            f"{target or f'a disk with {want.min_free_gb:g} GiB free'}\ndf -h {df}"))
    on_root = [s for s in f.spaces if s.mount_point == "/" and data_disk is not None
               and not same_filesystem(s, data_disk)]
    if on_root:
        v.problems.append(Problem.warning(
            f"{on_root[0].path} is on the root filesystem, not on the data disk "
            f"{want.data_disk}",
            f"export OUTPUT_DIR={want.data_disk}/output  # and pass it to the launch script "
            "(--output_dir / SAVE_DIR)"))
    return v
