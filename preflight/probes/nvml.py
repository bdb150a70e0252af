"""NVIDIA GPUs through NVML (nvidia-ml-py's `pynvml`), as one typed snapshot.

The snapshot (`Snapshot`, frozen dataclasses) writes itself as the JSON schema of
fixtures/nvml/README.md (`to_json`): what `preflight info --json` writes and
`--nvml-replay` reads, so a node recorded anywhere replays in tests. Errors are data:
a missing library is a snapshot with `error` set and no GPUs, never an exception; a
query a device does not support is `null` in the snapshot and named under the GPU's
`unavailable`.

Replay goes through the same reading code: `load_snapshot` hands `read_snapshot` a
`FakeNvml` built from the file (DCGM's NVML injection does the same with YAML), so a
replayed node and a live one are read by one function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from preflight.errors import InputError
from preflight.redact import CONTROL

SCHEMA_VERSION = 1

# NVML enums used below (nvml.h; stable ABI values, mirrored in pynvml).
MEMORY_ERROR_UNCORRECTED = 1  # NVML_MEMORY_ERROR_TYPE_UNCORRECTED
MEMORY_ERROR_CORRECTED = 0  # NVML_MEMORY_ERROR_TYPE_CORRECTED
VOLATILE_ECC = 0  # NVML_VOLATILE_ECC: since the last driver load
NVLINK_MAX_LINKS = 18  # NVML_NVLINK_MAX_LINKS (Hopper: 18 links)

# nvmlClocksEventReason* bits (nvml.h "Clocks Event Reasons"). Only the ones that mean
# the GPU is being slowed by a fault or heat are problems; SW_POWER_CAP is normal under
# load and GPU_IDLE is normal at rest.
CLOCK_EVENT_BITS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
HARMFUL_CLOCK_EVENTS = ("hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
                        "hw_power_brake_slowdown")

# Keys every GPU entry of a snapshot must have (the plugin's profile detection reads them).
REQUIRED_GPU_KEYS: dict[str, type] = {
    "index": int, "name": str, "uuid": str, "memory_total_bytes": int,
    "memory_used_bytes": int, "compute_capability": str,
}


def _printable(obj: Any) -> Any:
    """Control characters (a terminal escape in a replayed GPU name) become `?`."""
    if isinstance(obj, str):
        return CONTROL.sub("?", obj)
    if isinstance(obj, dict):
        return {_printable(k): _printable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_printable(v) for v in obj]
    return obj


class SnapshotError(InputError):
    pass


# -- the snapshot, typed -----------------------------------------------------------------
# One frozen dataclass per object of the JSON schema (fixtures/nvml/README.md); field
# names are the schema's keys, so `to_json()` writes the schema back exactly. `None` is
# what NVML could not answer (the reason is under the GPU's `unavailable`).


@dataclass(frozen=True)
class Ecc:
    enabled: bool | None
    volatile_uncorrected: int | None
    volatile_corrected: int | None


@dataclass(frozen=True)
class RemappedRows:
    corrected: int
    uncorrected: int
    pending: bool
    failure: bool


@dataclass(frozen=True)
class NvLink:
    link: int
    active: bool


@dataclass(frozen=True)
class Pcie:
    gen: int | None
    max_gen: int | None
    width: int | None
    max_width: int | None


@dataclass(frozen=True)
class GpuProcess:
    """A compute process NVML lists on a GPU (pid and memory only, never its command)."""

    pid: int
    used_memory_bytes: int | None


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    uuid: str
    memory_total_bytes: int
    memory_used_bytes: int
    memory_free_bytes: int
    compute_capability: str
    pci_bus_id: str | None
    persistence_mode: bool | None
    ecc: Ecc
    # Pre-Ampere GPUs retire pages; Ampere and later remap rows (NVML answers
    # NOT_SUPPORTED for the other mechanism).
    retired_pages_pending: bool | None
    remapped_rows: RemappedRows | None
    clock_event_reasons: int | None
    clock_events: tuple[str, ...] | None
    nvlink: tuple[NvLink, ...]
    pcie: Pcie
    processes: tuple[GpuProcess, ...] | None  # None: NVML cannot list them
    unavailable: Mapping[str, str]  # field -> why NVML did not answer

    @property
    def harmful_clock_events(self) -> list[str]:
        return [e for e in self.clock_events or () if e in HARMFUL_CLOCK_EVENTS]

    @property
    def nvlink_active(self) -> int:
        return sum(link.active for link in self.nvlink)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = jsonable(self)
        return data


@dataclass(frozen=True)
class Snapshot:
    """Every GPU NVML reported, read once (`Node.gpus`)."""

    schema: int = SCHEMA_VERSION
    source: str = "nvml"  # "replay:PATH" once replayed
    error: str | None = None  # "NVML unavailable: ..." -> no GPUs were read
    driver_version: str | None = None  # nvmlSystemGetDriverVersion
    cuda_driver_version: int | None = None  # nvmlSystemGetCudaDriverVersion: 12020 = 12.2
    gpus: tuple[Gpu, ...] = ()
    # The host a replayed snapshot was recorded on (its `host.hostname`, which `preflight
    # info --json` writes); None: read here, or not recorded. Not part of the schema.
    recorded_on: str | None = field(default=None, compare=False)

    def gpu(self, index: int) -> Gpu | None:
        """The GPU of NVML index `index`, None when NVML does not list it."""
        return next((g for g in self.gpus if g.index == index), None)

    def to_json(self) -> dict[str, Any]:
        """The --nvml-replay schema (what `preflight info --json` writes)."""
        data: dict[str, Any] = jsonable(self)
        data.pop("recorded_on", None)
        return data

    def pids_are_here(self, hostname: str) -> bool:
        """Whether the pids NVML lists are this machine's (`hostname`): a snapshot recorded
        on another host names that host's processes, which a pid here may reuse."""
        return self.recorded_on is None or self.recorded_on == hostname


def jsonable(obj: Any) -> Any:
    """A snapshot object as the schema's JSON: tuples as lists, keys in field order."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple | list):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: jsonable(v) for k, v in obj.items()}
    return obj


def empty(error: str) -> Snapshot:
    return Snapshot(error=error)


def clock_event_names(mask: int | None) -> list[str] | None:
    if mask is None:
        return None
    return [name for bit, name in CLOCK_EVENT_BITS.items() if mask & bit]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _error_name(exc: Exception) -> str:
    """pynvml raises NVMLError_NotSupported etc.; keep the name, not the library string."""
    name = type(exc).__name__
    return name.removeprefix("NVMLError_") if name.startswith("NVMLError_") else f"{name}: {exc}"


class _Reader:
    """Queries one device; a failed query becomes None plus an `unavailable` entry."""

    def __init__(self, nvml: Any, handle: Any):
        self.nvml, self.handle = nvml, handle
        self.unavailable: dict[str, str] = {}

    def get(self, field: str, function: str, *args: Any) -> Any:
        fn = getattr(self.nvml, function, None)
        if fn is None:
            self.unavailable[field] = f"{function} missing from this pynvml"
            return None
        try:
            return fn(self.handle, *args)
        except Exception as exc:  # NVMLError_* : not supported, no permission, GPU lost
            self.unavailable[field] = _error_name(exc)
            return None


def _processes(reader: _Reader) -> tuple[GpuProcess, ...] | None:
    found = reader.get("processes", "nvmlDeviceGetComputeRunningProcesses")
    if found is None:
        return None
    return tuple(GpuProcess(int(p.pid), _int(p.usedGpuMemory)) for p in found)


def _nvlink(nvml: Any, handle: Any) -> tuple[NvLink, ...]:
    """Every link the device answers for; links past the last one raise (not supported)."""
    links = []
    for link in range(NVLINK_MAX_LINKS):
        try:
            active = nvml.nvmlDeviceGetNvLinkState(handle, link)
        except Exception:
            continue
        links.append(NvLink(link, bool(active)))
    return tuple(links)


def _remapped_rows(reader: _Reader) -> RemappedRows | None:
    rows = reader.get("remapped_rows", "nvmlDeviceGetRemappedRows")
    if rows is None:
        return None
    corrected, uncorrected, pending, failure = rows
    return RemappedRows(int(corrected), int(uncorrected), bool(pending), bool(failure))


def _clock_events(reader: _Reader) -> int | None:
    # nvmlDeviceGetCurrentClocksThrottleReasons was renamed ...ClocksEventReasons (NVML 12.2).
    if hasattr(reader.nvml, "nvmlDeviceGetCurrentClocksEventReasons"):
        return _int(reader.get("clock_event_reasons", "nvmlDeviceGetCurrentClocksEventReasons"))
    return _int(reader.get("clock_event_reasons", "nvmlDeviceGetCurrentClocksThrottleReasons"))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _gpu(nvml: Any, index: int) -> Gpu:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    reader = _Reader(nvml, handle)
    pci = reader.get("pci_bus_id", "nvmlDeviceGetPciInfo")
    ecc_mode = reader.get("ecc_enabled", "nvmlDeviceGetEccMode")
    persistence = reader.get("persistence_mode", "nvmlDeviceGetPersistenceMode")
    pending_pages = reader.get("retired_pages_pending", "nvmlDeviceGetRetiredPagesPendingStatus")
    events = _clock_events(reader)
    names = clock_event_names(events)
    return Gpu(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        memory_total_bytes=int(memory.total),
        memory_used_bytes=int(memory.used),
        memory_free_bytes=int(memory.free),
        compute_capability=f"{major}.{minor}",
        pci_bus_id=None if pci is None else _text(pci.busId),
        persistence_mode=_bool(persistence),
        ecc=Ecc(
            enabled=None if ecc_mode is None else bool(ecc_mode[0]),
            volatile_uncorrected=_int(reader.get(
                "ecc_volatile_uncorrected", "nvmlDeviceGetTotalEccErrors",
                MEMORY_ERROR_UNCORRECTED, VOLATILE_ECC)),
            volatile_corrected=_int(reader.get(
                "ecc_volatile_corrected", "nvmlDeviceGetTotalEccErrors",
                MEMORY_ERROR_CORRECTED, VOLATILE_ECC)),
        ),
        retired_pages_pending=_bool(pending_pages),
        remapped_rows=_remapped_rows(reader),
        clock_event_reasons=events,
        clock_events=None if names is None else tuple(names),
        nvlink=_nvlink(nvml, handle),
        pcie=Pcie(
            gen=_int(reader.get("pcie_gen", "nvmlDeviceGetCurrPcieLinkGeneration")),
            max_gen=_int(reader.get("pcie_max_gen", "nvmlDeviceGetMaxPcieLinkGeneration")),
            width=_int(reader.get("pcie_width", "nvmlDeviceGetCurrPcieLinkWidth")),
            max_width=_int(reader.get("pcie_max_width", "nvmlDeviceGetMaxPcieLinkWidth")),
        ),
        processes=_processes(reader),
        unavailable=MappingProxyType(reader.unavailable),
    )


def read_snapshot(nvml: Any = None) -> Snapshot:
    """Read every GPU once. `nvml` is the pynvml module or a fake of the same shape."""
    if nvml is None:
        try:
            import pynvml
        except ImportError as exc:  # nvidia-ml-py is a dependency, but be robust
            return empty(f"pynvml not importable: {exc}")
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return empty(f"NVML unavailable: {exc}")
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = int(nvml.nvmlSystemGetCudaDriverVersion())
        found = tuple(_gpu(nvml, index) for index in range(nvml.nvmlDeviceGetCount()))
        return Snapshot(error=None, driver_version=driver, cuda_driver_version=cuda, gpus=found)
    except Exception as exc:
        return empty(f"NVML query failed: {type(exc).__name__}: {exc}")
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def _validate(path: str | Path, data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("gpus"), list):
        raise SnapshotError(f"{path}: not an NVML snapshot (needs a 'gpus' list)")
    for position, gpu in enumerate(data["gpus"]):
        if not isinstance(gpu, dict):
            raise SnapshotError(f"{path}: gpus[{position}] is not an object")
        for key, kind in REQUIRED_GPU_KEYS.items():
            value = gpu.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise SnapshotError(f"{path}: gpus[{position}].{key} missing or not "
                                    f"{kind.__name__}")


def load_snapshot(path: str | Path) -> Snapshot:
    """Replay a snapshot written by `preflight info --json`, through `read_snapshot`."""
    from preflight.inputs import read_bytes
    from preflight.numbers import NumberError, parse_float, parse_int
    from preflight.probes.nvml_fake import FakeNvml

    raw = read_bytes(path, 64 << 20, "NVML snapshot", SnapshotError)

    def finite(text: str) -> float:
        return parse_float(text, "number")

    def whole(text: str) -> int:
        return parse_int(text, "number", -(2**63), 2**64)

    def constant(text: str) -> float:
        raise NumberError(f"{text} is not a finite number")

    try:
        data = json.loads(raw.decode("utf-8"), parse_float=finite, parse_int=whole,
                          parse_constant=constant)
    except (UnicodeDecodeError, json.JSONDecodeError, NumberError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise SnapshotError(f"{path}: cannot read NVML snapshot: {reason}") from None
    data = _printable(data)
    _validate(path, data)
    if data.get("error"):
        snap = empty(str(data["error"]))
    else:
        snap = read_snapshot(FakeNvml(data))
        if snap.error:
            raise SnapshotError(f"{path}: cannot replay: {snap.error}")
    host = data.get("host")
    recorded = host.get("hostname") if isinstance(host, dict) else None
    return replace(snap, source=f"replay:{path}",
                   recorded_on=recorded if isinstance(recorded, str) and recorded else None)
