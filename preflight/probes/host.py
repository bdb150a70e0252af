"""Host limits a training job inherits: /dev/shm, rlimits, free disk. psutil and os only.

Every reader returns a frozen dataclass built from what it was given, so tests can
pass recorded values; the defaults read this machine.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

GiB = 2**30
UNLIMITED = None  # an rlimit of RLIM_INFINITY


@dataclass(frozen=True)
class Space:
    """Free space for `path`, measured on the nearest existing ancestor."""

    path: str
    measured_at: str  # the existing directory statvfs'ed (the path may not exist yet)
    exists: bool
    mount_point: str
    device: str
    fstype: str
    total_bytes: int
    free_bytes: int  # available to an unprivileged writer (statvfs f_bavail)

    @property
    def free_gb(self) -> float:
        return round(self.free_bytes / GiB, 1)

    @property
    def total_gb(self) -> float:
        return round(self.total_bytes / GiB, 1)


@dataclass(frozen=True)
class Limits:
    """RLIMIT_NOFILE and RLIMIT_MEMLOCK of this process; children inherit them."""

    nofile_soft: int | None
    nofile_hard: int | None
    memlock_soft: int | None  # bytes; None = unlimited
    memlock_hard: int | None


def _limit(value: int) -> int | None:
    return UNLIMITED if value == resource.RLIM_INFINITY else int(value)


def limits(getrlimit: Callable[[int], tuple[int, int]] = resource.getrlimit) -> Limits:
    nofile = getrlimit(resource.RLIMIT_NOFILE)
    memlock = getrlimit(resource.RLIMIT_MEMLOCK)
    return Limits(_limit(nofile[0]), _limit(nofile[1]), _limit(memlock[0]), _limit(memlock[1]))


def existing_ancestor(path: str | os.PathLike[str]) -> Path:
    current = Path(os.path.abspath(os.path.expanduser(path)))
    # os.path.exists: a directory we may not search (/root/out as a user) is "not there
    # for us", where Path.exists() raises PermissionError.
    while not os.path.exists(current) and current != current.parent:
        current = current.parent
    return current


def mount_point(path: str | os.PathLike[str]) -> str:
    current = Path(os.path.realpath(path))
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return str(current)


class Partition(Protocol):
    """What `psutil.disk_partitions()` lists, as far as `space` reads it."""

    @property
    def device(self) -> str: ...
    @property
    def mountpoint(self) -> str: ...
    @property
    def fstype(self) -> str: ...


def _partition(mount: str, partitions: Sequence[Partition]) -> tuple[str, str]:
    for part in partitions:
        if part.mountpoint == mount:
            return part.device, part.fstype
    return "?", "?"


def space(path: str | os.PathLike[str], partitions: Sequence[Partition] | None = None) -> Space:
    measured = existing_ancestor(path)
    try:
        usage = psutil.disk_usage(str(measured))
    except OSError:  # not even statfs-able: measure its filesystem's root
        measured = Path(mount_point(measured))
        usage = psutil.disk_usage(str(measured))
    mount = mount_point(measured)
    parts = psutil.disk_partitions(all=True) if partitions is None else partitions
    device, fstype = _partition(mount, parts)
    return Space(path=str(path), measured_at=str(measured), exists=os.path.exists(path),
                 mount_point=mount, device=device, fstype=fstype,
                 total_bytes=int(usage.total), free_bytes=int(usage.free))


def shm(path: str = "/dev/shm") -> Space | None:
    """/dev/shm as mounted here; None when the system has none."""
    if not os.path.isdir(path):
        return None
    return space(path)


@dataclass(frozen=True)
class ShmFile:
    """A file in /dev/shm: what fills it (DataLoader / NCCL / Ray segments left behind)."""

    name: str
    size_bytes: int  # allocated (st_blocks), what it takes of the tmpfs
    user: str


def largest_files(path: str = "/dev/shm", limit: int = 5, scan: int = 10000) -> list[ShmFile]:
    """The `limit` largest files directly in `path` and their owners (at most `scan`
    entries are looked at: never a long walk)."""
    from preflight.probes.procs import user_name

    found: list[ShmFile] = []
    try:
        with os.scandir(path) as entries:
            for n, entry in enumerate(entries):
                if n >= scan:
                    break
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                found.append(ShmFile(entry.name, st.st_blocks * 512, user_name(st.st_uid)))
    except OSError:
        return []
    return sorted(found, key=lambda f: f.size_bytes, reverse=True)[:limit]


def same_filesystem(a: Space, b: Space) -> bool:
    return a.mount_point == b.mount_point


# The PCI vendor id of NVIDIA and the classes of a GPU: VGA (0x0300) and 3D controller
# (0x0302, the data-center parts); linux include/linux/pci_ids.h.
NVIDIA_VENDOR = "0x10de"
GPU_CLASSES = ("0x0300", "0x0302")


def nvidia_pci_gpus(root: str | os.PathLike[str] = "/sys/bus/pci/devices") -> int | None:
    """NVIDIA GPUs on this machine's PCI bus, whatever the driver makes of them (sysfs
    `vendor` and `class` of each device); None when the bus cannot be read (no sysfs)."""
    try:
        devices = sorted(Path(root).iterdir())
    except OSError:
        return None
    found = 0
    for device in devices:
        try:
            vendor = (device / "vendor").read_text().strip()
            klass = (device / "class").read_text().strip()
        except OSError:  # a device that went away, an unreadable entry: not counted
            continue
        found += vendor == NVIDIA_VENDOR and klass.startswith(GPU_CLASSES)
    return found
