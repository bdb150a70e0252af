"""NVIDIA GPUs through NVML (nvidia-ml-py's `pynvml`), as one plain JSON snapshot.

The snapshot is what `preflight info --json` writes and `--nvml-replay` reads, so a
node recorded anywhere replays in tests. Errors are data: a missing library is a
snapshot with `error` set and no GPUs, never an exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def empty(error: str) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "source": "nvml", "error": error, "driver_version": None,
            "cuda_driver_version": None, "gpus": []}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_snapshot(nvml: Any = None) -> dict[str, Any]:
    """Read every GPU once. `nvml` is the pynvml module or a fake of the same shape."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError as exc:  # nvidia-ml-py is a dependency, but be robust
            return empty(f"pynvml not importable: {exc}")
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return empty(f"NVML unavailable: {exc}")
    try:
        snap = empty("")
        snap["error"] = None
        snap["driver_version"] = _text(nvml.nvmlSystemGetDriverVersion())
        snap["cuda_driver_version"] = int(nvml.nvmlSystemGetCudaDriverVersion())
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            snap["gpus"].append({
                "index": index,
                "name": _text(nvml.nvmlDeviceGetName(handle)),
                "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
                "memory_total_bytes": int(memory.total),
                "memory_used_bytes": int(memory.used),
                "compute_capability": f"{major}.{minor}",
            })
        return snap
    except Exception as exc:
        return empty(f"NVML query failed: {exc}")
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


class SnapshotError(Exception):
    pass


def load_snapshot(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{path}: cannot read NVML snapshot: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("gpus"), list):
        raise SnapshotError(f"{path}: not an NVML snapshot (needs a 'gpus' list)")
    data.setdefault("error", None)
    data["source"] = f"replay:{path}"
    return data
