"""Hardware profiles: what a node should be and the thresholds checks judge it by.

A profile is a small TOML file. Every key is declared in SCHEMA with its type and
default, so a typo is an error and not a silently ignored threshold. A profile may
`extends = "other"` to override a few keys of another profile.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args, get_origin, get_type_hints

from preflight.errors import InputError
from preflight.model import Severity

BUILTIN_DIR = Path(__file__).parent / "profiles"

@dataclass(frozen=True)
class GpuSection:
    model: str = ""  # substring of the NVML device name, e.g. "A800"
    count: int = 0
    memory_gb: float = 0.0  # per device, as NVML reports total memory
    compute_capability: str = ""  # "8.0"
    nvlink: bool = False
    infiniband: bool = False
    persistence_mode: bool = False
    min_free_memory_gb: float = 0.0
    nvlink_links: int = 0  # active NVLink links expected per GPU (0: any, when nvlink)


@dataclass(frozen=True)
class EnvSection:
    required: tuple[str, ...] = ()  # keys that must be exported
    conda_env: str = ""  # expected CONDA_DEFAULT_ENV
    hf_mirror: bool = False  # HF_ENDPOINT must be set and answer
    hf_timeout_s: float = 3.0


@dataclass(frozen=True)
class StackSection:
    ray: bool = False  # the job uses Ray: ray must resolve in the launch env
    required: tuple[str, ...] = ()  # stages that must run: "torch", "swift", "sglang"
    # swift-smoke-10: "" builds a tiny random Qwen2 / a small jsonl in a temp dir
    swift_model: str = ""
    swift_dataset: str = ""
    swift_timeout_s: float = 300.0
    # swift-grpo-10: also run `swift rlhf --rlhf_type grpo` (always when the launch
    # script runs GRPO)
    swift_grpo: bool = False
    # sglang-generate: "" builds a tiny random Qwen2
    sglang_model: str = ""
    sglang_mem_fraction: float = 0.0  # --mem-fraction-static; 0: SGLang's default
    sglang_timeout_s: float = 600.0  # until GET /health answers 200
    # colocate-memory: the fraction of each GPU the engines' shares must leave free
    memory_headroom: float = 0.1
    trainer_memory_fraction: float = 0.0  # the colocated trainer's own share


@dataclass(frozen=True)
class PortsSection:
    probe: tuple[int, ...] = ()  # besides MASTER_PORT


@dataclass(frozen=True)
class ProcessesSection:
    patterns: tuple[str, ...] = ()  # extra leftover patterns, e.g. "train.py"


@dataclass(frozen=True)
class DiskSection:
    min_free_gb: float = 0.0
    paths: tuple[str, ...] = ()
    data_disk: str = ""


@dataclass(frozen=True)
class HostSection:
    min_shm_gb: float = 0.0
    min_nofile: int = 0
    rdma: bool = False
    min_memlock_mb: int = -1  # with rdma: RLIMIT_MEMLOCK floor; -1 = unlimited
    dataloader_workers: int = 0  # per rank, when the launch analysis does not say
    shm_gb_per_worker: float = 0.0  # /dev/shm each dataloader worker may fill


@dataclass(frozen=True)
class WorkloadSection:
    world_size: int = 0  # 0: the GPU count, or 2 on a CPU node
    timeout_s: float = 60.0
    min_size_bytes: int = 8
    max_size_bytes: int = 16 * 2**20
    min_busbw_gbps: float = 0.0
    train_steps: int = 10
    resume_headroom: float = 0.9  # max fraction of device memory a resume may peak at
    # nccl-tests' defaults (all_reduce_perf -w 5 -n 20)
    warmup_iters: int = 5
    iters: int = 20
    # resumed step-N+1 loss vs the uninterrupted one, relative
    resume_tolerance: float = 1e-4


# The profile's sections: TOML table -> its typed, frozen section (the one declaration of
# every key, its type and its default).
SECTIONS: dict[str, type[Any]] = {
    "gpu": GpuSection, "env": EnvSection, "stack": StackSection, "ports": PortsSection,
    "processes": ProcessesSection, "disk": DiskSection, "host": HostSection,
    "workload": WorkloadSection,
}

Expected = type | tuple[type, type]  # a scalar type, or (list, element type)


def _schema(section: type[Any]) -> dict[str, tuple[Expected, Any]]:
    hints = get_type_hints(section)
    out: dict[str, tuple[Expected, Any]] = {}
    for f in fields(section):
        hint = hints[f.name]
        expected: Expected = (list, get_args(hint)[0]) if get_origin(hint) is tuple else hint
        out[f.name] = (expected, f.default)
    return out


# section -> key -> (type, default), derived from the sections. Lists are typed by their
# element (a TOML array; a tuple in the section).
SCHEMA: dict[str, dict[str, tuple[Expected, Any]]] = {
    name: _schema(cls) for name, cls in SECTIONS.items()}
TOP_LEVEL = {"description": str, "extends": str}
SEVERITY_SECTION = "severity"
MAX_BYTES = 1 << 20  # a profile is a few lines; this bounds a FIFO or /dev/zero mistake
MAX_EXTENDS = 32  # an `extends` chain longer than this is a mistake, not a hierarchy
# A profile's name becomes a pytest marker: it must not be one pytest or preflight
# already gives a meaning (`-m static` would select the profile `static`; a profile
# named `skip` would skip every check it marks).
RESERVED_NAMES = frozenset({
    "skip", "skipif", "xfail", "parametrize", "usefixtures", "filterwarnings", "timeout",
    "tryfirst", "trylast", "no_cover", "asyncio", "flaky", "order", "slow", "static",
    "workload", "stack", "each", "pitfall", "not", "and", "or", "true", "false", "none",
})
# Keys with a narrower range than "a finite number" / "a 32-bit whole number".
RANGES: dict[str, tuple[float, float]] = {
    "ports.probe": (1, 65535),
    "host.min_memlock_mb": (-1, 2**31 - 1),
    "env.hf_timeout_s": (0.001, 3600),
    "workload.timeout_s": (0.1, 86400),
    "stack.swift_timeout_s": (0.1, 86400),
    "stack.sglang_timeout_s": (0.1, 86400),
}


# Lists of strings where an empty or blank entry is a mistake, not a value: an empty
# processes.patterns entry is a substring of every program (every process of the user,
# pid 1 too, became a "leftover" to kill); an empty disk.paths entry is the working directory.
NONEMPTY_STRINGS = {"processes.patterns": "it would match every process",
                    "disk.paths": "it names no directory"}


class ProfileError(InputError):
    """A profile file cannot be used. The message is one line naming the file."""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    path: str
    gpu: GpuSection
    env: EnvSection
    stack: StackSection
    ports: PortsSection
    processes: ProcessesSection
    disk: DiskSection
    host: HostSection
    workload: WorkloadSection
    severity: Mapping[str, Severity]  # check id -> Severity override (read-only)

    @property
    def is_gpu(self) -> bool:
        return self.gpu.count > 0

    def severity_for(self, check: str, default: Severity = Severity.BLOCKER) -> Severity:
        return self.severity.get(check, default)

    def __repr__(self) -> str:  # pytest ids and assertion output stay short
        return f"Profile({self.name})"


def _check_type(where: str, value: Any, expected: type | tuple[type, type],
                key: str = "") -> Any:
    if isinstance(expected, tuple):
        container, element = expected
        if not isinstance(value, list) or not all(_is(v, element) for v in value):
            raise ProfileError(f"{where}: expected a list of {element.__name__}, got "
                               f"{_short(value)}")
        if key in NONEMPTY_STRINGS and any(not v.strip() or "\0" in v for v in value):
            raise ProfileError(f"{where}: an empty or blank entry ({NONEMPTY_STRINGS[key]})")
        return [_number(where, v, element, key) for v in value]
    if not _is(value, expected):
        raise ProfileError(f"{where}: expected {expected.__name__}, got {_short(value)}")
    return _number(where, value, expected, key)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(where: str, value: Any, expected: type, key: str) -> Any:
    """Numbers through the one parser: finite, in range (`inf`, `nan`, 10^400 are not)."""
    from preflight.numbers import NumberError, parse_float, parse_int

    low, high = RANGES.get(key, (None, None))
    try:
        if expected is float:
            return parse_float(value, key, low, high)
        if expected is int:
            return parse_int(value, key, -1 if low is None else int(low),
                             2**31 - 1 if high is None else int(high))
    except NumberError as exc:
        raise ProfileError(f"{where.rsplit(': ', 1)[0]}: {exc}") from None
    return value


def _is(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _read(path: Path) -> dict[str, Any]:
    from preflight.inputs import read_bytes

    raw = read_bytes(path, MAX_BYTES, "profile", ProfileError)
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: profile is not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise ProfileError(f"{path}: TOML nested too deeply") from None


def _validate(path: Path, raw: dict[str, Any]) -> None:
    for key, value in raw.items():
        if key in TOP_LEVEL:
            _check_type(f"{path}: {key}", value, TOP_LEVEL[key])
        elif key == SEVERITY_SECTION:
            if not isinstance(value, dict):
                raise ProfileError(f"{path}: [severity] must be a table")
            from preflight.runbooks import all_ids

            known_ids = all_ids()
            for check, level in value.items():
                if known_ids and check not in known_ids:
                    raise ProfileError(
                        f"{path}: [severity] {check}: unknown check id (`preflight list` "
                        "shows the ids)")
                if level not in ("warning", "blocker"):
                    raise ProfileError(
                        f"{path}: [severity] {check} = {level!r}: use \"warning\" or \"blocker\""
                    )
        elif key in SCHEMA:
            if not isinstance(value, dict):
                raise ProfileError(f"{path}: [{key}] must be a table")
            for sub, subvalue in value.items():
                if sub not in SCHEMA[key]:
                    known = ", ".join(sorted(SCHEMA[key]))
                    raise ProfileError(f"{path}: unknown key {key}.{sub} (known: {known})")
                value[sub] = _check_type(f"{path}: {key}.{sub}", subvalue, SCHEMA[key][sub][0],
                                         f"{key}.{sub}")
        else:
            known = ", ".join(sorted([*TOP_LEVEL, *SCHEMA, SEVERITY_SECTION]))
            raise ProfileError(f"{path}: unknown key {key!r} (known: {known})")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in over.items():
        if isinstance(value, dict):
            merged.setdefault(key, {}).update(value)
        else:
            merged[key] = value
    return merged


def _resolve(name: str, raws: dict[str, tuple[Path, dict[str, Any]]],
             seen: tuple[str, ...]) -> dict[str, Any]:
    """The profile with every `extends` applied, walked iteratively and bounded."""
    chain = [name]
    while True:
        path, raw = raws[chain[-1]]
        parent = raw.get("extends")
        if not parent:
            break
        if parent in chain:
            raise ProfileError(f"{path}: extends cycle {' -> '.join([*chain, parent])}")
        if parent not in raws:
            raise ProfileError(f"{path}: extends unknown profile {parent!r}")
        if len(chain) > MAX_EXTENDS:
            raise ProfileError(f"{raws[name][0]}: extends chain longer than {MAX_EXTENDS} "
                               "profiles")
        chain.append(parent)
    merged = raws[chain[-1]][1]
    for child in reversed(chain[:-1]):
        merged = _merge(merged, raws[child][1])
    return merged


def _build(name: str, path: Path, raw: dict[str, Any]) -> Profile:
    sections: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        given = raw.get(section, {})
        values = {key: given[key] for key in SCHEMA[section] if key in given}
        sections[section] = cls(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in values.items()})
    severity = {k: Severity.parse(v) for k, v in raw.get(SEVERITY_SECTION, {}).items()}
    return Profile(name=name, description=raw.get("description", ""), path=str(path),
                   severity=MappingProxyType(severity), **sections)


def load_profiles(dirs: list[Path]) -> dict[str, Profile]:
    """Load every `*.toml` in the built-in dir and then `dirs`; later files win by name."""
    raws: dict[str, tuple[Path, dict[str, Any]]] = {}
    for directory in [BUILTIN_DIR, *dirs]:
        if directory.exists() and not directory.is_dir():
            raise ProfileError(f"{directory}: is a file, not a profile directory "
                               "(--profile-dir takes the directory of the *.toml files)")
        if not directory.is_dir():
            raise ProfileError(f"{directory}: profile directory does not exist")
        for path in sorted(directory.glob("*.toml")):
            name = path.stem
            if not name.isidentifier() or not name.isascii():
                raise ProfileError(f"{path}: profile name {name!r} must be a valid marker name")
            if name.lower() in RESERVED_NAMES or name.startswith("pytest"):
                raise ProfileError(f"{path}: profile name {name!r} is a pytest or preflight "
                                   "marker: rename the file")
            raw = _read(path)
            _validate(path, raw)
            raws[name] = (path, raw)
    return {name: _build(name, raws[name][0], _resolve(name, raws, (name,))) for name in raws}
