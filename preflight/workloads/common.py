"""What every workload rank shares: who it is, where it writes, and its own deadline.

Imported by the workload scripts inside torchrun's children only; torch is imported
lazily so that reading this module costs nothing.
"""

from __future__ import annotations

import json
import math
import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Rank:
    """This process's place in the job, as torchrun's environment describes it."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    group_rank: int  # the node rank the c10d rendezvous assigned
    out: Path

    @classmethod
    def from_env(cls, out: str | Path) -> Rank:
        env = os.environ
        return cls(
            rank=int(env.get("RANK", "0")),
            local_rank=int(env.get("LOCAL_RANK", "0")),
            world_size=int(env.get("WORLD_SIZE", "1")),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", "1")),
            group_rank=int(env.get("GROUP_RANK", "0")),
            out=Path(out),
        )

    @property
    def stem(self) -> str:
        # preflight/run/torchrun.py reads these names back.
        return f"rank{self.rank}-local{self.local_rank}"

    def phase(self, text: str) -> None:
        """Say what this rank is doing now, so a timeout can name where it stuck."""
        _write_atomic(self.out / f"{self.stem}.phase", text)

    def task(self, name: str) -> None:
        """Which workload of a combined launch (preflight/workloads/suite.py) runs now."""
        _write_atomic(self.out / f"{self.stem}.task", name)

    def result(self, data: dict[str, Any], task: str | None = None) -> None:
        """Write this rank's result: `<stem>.json`, or `<stem>.<task>.json` for one
        workload of a combined launch (the rank goes on with the next one)."""
        data = {"rank": self.rank, "local_rank": self.local_rank, "world_size": self.world_size,
                "node_rank": self.group_rank, "declared_node_rank": os.environ.get("NODE_RANK"),
                "host": os.uname().nodename, **data}
        name = f"{self.stem}.{task}.json" if task else f"{self.stem}.json"
        _write_atomic(self.out / name, json.dumps(data, allow_nan=True))
        if task is None:
            self.phase("done")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def knob(name: str) -> str | None:
    """A PREFLIGHT_TEST_* fault-injection knob (test-only; unset in real runs)."""
    value = os.environ.get(name, "").strip()
    return value or None


def knob_int(name: str) -> int | None:
    value = knob(name)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def start_deadline(rank: Rank) -> None:
    """Exit by PREFLIGHT_DEADLINE even if nobody is left to kill us (a daemon thread)."""
    raw = os.environ.get("PREFLIGHT_DEADLINE")
    if not raw:
        return
    deadline = float(raw)

    def expire() -> None:
        time.sleep(max(0.0, deadline - time.time()))
        rank.phase("stopped by its own deadline (PREFLIGHT_DEADLINE)")
        os._exit(124)

    threading.Thread(target=expire, name="preflight-deadline", daemon=True).start()


@dataclass(frozen=True)
class Backend:
    name: str  # "nccl" or "gloo"
    device: Any  # torch.device
    cuda: bool


class CudaMissing(RuntimeError):
    pass


def init_process_group(rank: Rank, require_cuda: bool = False, prefix: str = "") -> Backend:
    """NCCL on GPUs, gloo otherwise, so the same code path runs on a CPU box.

    `prefix`: a process group after an earlier one in the same ranks. Its keys go under
    their own prefix of torchrun's store: the default group would reuse the first group's
    keys (destroy_process_group resets the group counter) and gloo would read the stale
    addresses the first group published there, and hang."""
    import torch
    import torch.distributed as dist

    if require_cuda and not torch.cuda.is_available():
        rank.phase("CUDA required but not available")
        raise CudaMissing(f"the profile expects GPUs but torch {torch.__version__} sees no CUDA "
                          f"device (torch.version.cuda={torch.version.cuda})")
    if torch.cuda.is_available():
        torch.cuda.set_device(rank.local_rank)
        backend = Backend("nccl", torch.device("cuda", rank.local_rank), True)
    else:
        # Ranks share the cores: one thread each keeps them from oversubscribing the box
        # and makes CPU arithmetic reproducible between runs.
        torch.set_num_threads(1)
        backend = Backend("gloo", torch.device("cpu"), False)
    rank.phase(f"init_process_group({backend.name})")
    device_id = backend.device if backend.cuda else None
    if not prefix:
        dist.init_process_group(backend.name, device_id=device_id)
        return backend
    from torch.distributed.distributed_c10d import PrefixStore
    from torch.distributed.rendezvous import rendezvous

    store, _, _ = next(rendezvous("env://"))  # torchrun's store, as env:// reaches it
    dist.init_process_group(backend.name, store=PrefixStore(prefix, store),
                            rank=rank.rank, world_size=rank.world_size, device_id=device_id)
    return backend


def synchronize(backend: Backend) -> None:
    if backend.cuda:
        import torch

        torch.cuda.synchronize(backend.device)


def peak_rss_bytes() -> int:
    """This process's high-water resident set since start or the last reset_peak_rss():
    VmHWM of /proc/self/status, else ru_maxrss (KiB on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Restart the high-water mark at the current RSS (proc(5): writing 5 to
    /proc/PID/clear_refs resets VmHWM), so a later phase of the same process measures
    its own peak. False when the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def total_ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def human_bytes(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"
