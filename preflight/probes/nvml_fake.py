"""`FakeNvml`: the pynvml functions preflight calls, answered from a recorded snapshot.

In the style of DCGM's NVML injection (nvml-injection/README.md): the fake replaces the
library, the reading code stays the same, and errors are data. A `null` field, or one
named under a GPU's `unavailable`, raises the real pynvml exception class
(`NVMLError_NotSupported` by default), so `read_snapshot` takes the same path it takes
on a GPU that lacks the feature. `overrides` layer targeted changes over a base
snapshot, like `dcgmInjectNvmlDevice` over a SKU file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, NoReturn

import pynvml

from preflight.probes import nvml as probe

Handle = dict[str, Any]  # one GPU's object of the recorded JSON


@dataclass(frozen=True)
class _Memory:
    total: int
    used: int
    free: int


@dataclass(frozen=True)
class _Pci:
    busId: str  # noqa: N815 - pynvml's field name


@dataclass(frozen=True)
class _Process:
    pid: int
    usedGpuMemory: int | None  # noqa: N815 - pynvml's field name


def _raise(name: str = "NotSupported") -> NoReturn:
    error = getattr(pynvml, f"NVMLError_{name}", None)
    raise error() if error is not None else pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into a copy of `base`; `gpus` merge by position."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if key == "gpus" and isinstance(value, dict):  # {"2": {...}} patches one GPU
            for index, patch in value.items():
                out["gpus"][int(index)] = merge(out["gpus"][int(index)], patch)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class FakeNvml:
    """The subset of pynvml that `preflight.probes.nvml.read_snapshot` calls."""

    def __init__(self, snapshot: dict[str, Any], overrides: dict[str, Any] | None = None):
        # The recorded JSON, as the file has it: the fake is the hardware boundary, and a
        # handle is one GPU's object of that JSON (what `nvmlDeviceGetHandleByIndex` gives).
        self.data = merge(snapshot, overrides or {})

    # -- library -------------------------------------------------------------------------

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        if self.data.get("error"):
            _raise("LibraryNotFound")

    def nvmlShutdown(self) -> None:  # noqa: N802
        pass  # nothing to release: the data stays readable, as a replay needs

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return str(self._required(self.data.get("driver_version")))

    def nvmlSystemGetCudaDriverVersion(self) -> int:  # noqa: N802
        return int(self._required(self.data.get("cuda_driver_version")))

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.data["gpus"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Handle:  # noqa: N802
        if not 0 <= index < len(self.data["gpus"]):
            _raise("InvalidArgument")
        handle: Handle = self.data["gpus"][index]
        return handle

    # -- device --------------------------------------------------------------------------

    @staticmethod
    def _required(value: Any) -> Any:
        if value is None:
            _raise()
        return value

    @staticmethod
    def _field(gpu: Handle, name: str, value: Any) -> Any:
        """The recorded value, or the recorded failure of that query."""
        failure = gpu.get("unavailable", {}).get(name)
        if failure is not None or value is None:
            _raise(failure if failure and " " not in failure else "NotSupported")
        return value

    def nvmlDeviceGetName(self, gpu: Handle) -> str:  # noqa: N802
        return str(gpu["name"])

    def nvmlDeviceGetUUID(self, gpu: Handle) -> str:  # noqa: N802
        return str(gpu["uuid"])

    def nvmlDeviceGetCudaComputeCapability(self, gpu: Handle) -> tuple[int, int]:  # noqa: N802
        major, minor = gpu["compute_capability"].split(".")
        return int(major), int(minor)

    def nvmlDeviceGetMemoryInfo(self, gpu: Handle) -> _Memory:  # noqa: N802
        total, used = gpu["memory_total_bytes"], gpu["memory_used_bytes"]
        return _Memory(total, used, gpu.get("memory_free_bytes", total - used))

    def nvmlDeviceGetPciInfo(self, gpu: Handle) -> _Pci:  # noqa: N802
        return _Pci(self._field(gpu, "pci_bus_id", gpu.get("pci_bus_id")))

    def nvmlDeviceGetPersistenceMode(self, gpu: Handle) -> int:  # noqa: N802
        value = self._field(gpu, "persistence_mode", gpu.get("persistence_mode"))
        return int(value)

    def nvmlDeviceGetEccMode(self, gpu: Handle) -> list[int]:  # noqa: N802
        enabled = self._field(gpu, "ecc_enabled", gpu.get("ecc", {}).get("enabled"))
        return [int(enabled), int(enabled)]

    def nvmlDeviceGetTotalEccErrors(self, gpu: Handle, error_type: int,
                                    counter_type: int) -> int:  # noqa: N802
        if counter_type != probe.VOLATILE_ECC:
            _raise("InvalidArgument")
        key = ("volatile_uncorrected" if error_type == probe.MEMORY_ERROR_UNCORRECTED
               else "volatile_corrected")
        return int(self._field(gpu, f"ecc_{key}", gpu.get("ecc", {}).get(key)))

    def nvmlDeviceGetRetiredPagesPendingStatus(self, gpu: Handle) -> int:  # noqa: N802
        return int(self._field(gpu, "retired_pages_pending", gpu.get("retired_pages_pending")))

    def nvmlDeviceGetRemappedRows(self, gpu: Handle) -> tuple[int, int, int, int]:  # noqa: N802
        rows = self._field(gpu, "remapped_rows", gpu.get("remapped_rows"))
        return (int(rows["corrected"]), int(rows["uncorrected"]), int(rows["pending"]),
                int(rows["failure"]))

    def nvmlDeviceGetCurrentClocksEventReasons(self, gpu: Handle) -> int:  # noqa: N802
        return int(self._field(gpu, "clock_event_reasons", gpu.get("clock_event_reasons")))

    def nvmlDeviceGetNvLinkState(self, gpu: Handle, link: int) -> int:  # noqa: N802
        for entry in gpu.get("nvlink") or ():
            if entry["link"] == link:
                return int(entry["active"])
        _raise()

    def nvmlDeviceGetCurrPcieLinkGeneration(self, gpu: Handle) -> int:  # noqa: N802
        return int(self._field(gpu, "pcie_gen", gpu.get("pcie", {}).get("gen")))

    def nvmlDeviceGetMaxPcieLinkGeneration(self, gpu: Handle) -> int:  # noqa: N802
        return int(self._field(gpu, "pcie_max_gen", gpu.get("pcie", {}).get("max_gen")))

    def nvmlDeviceGetCurrPcieLinkWidth(self, gpu: Handle) -> int:  # noqa: N802
        return int(self._field(gpu, "pcie_width", gpu.get("pcie", {}).get("width")))

    def nvmlDeviceGetMaxPcieLinkWidth(self, gpu: Handle) -> int:  # noqa: N802
        return int(self._field(gpu, "pcie_max_width", gpu.get("pcie", {}).get("max_width")))

    def nvmlDeviceGetComputeRunningProcesses(self, gpu: Handle) -> list[_Process]:  # noqa: N802
        found = self._field(gpu, "processes", gpu.get("processes"))
        return [_Process(p["pid"], p.get("used_memory_bytes")) for p in found]
