"""What torch build and CUDA toolkit the job will use, read without importing torch.

Importing torch costs seconds (and a CUDA build starts the driver), so the static stage
never does it in steady state:
- where torch lives: `importlib.util.find_spec("torch")`, which locates the package
  without running it (in this process when the launch python is this one, else in a
  child python that imports nothing but importlib);
- its version and CUDA version: `torch/version.py`, the file `torch.version` is
  (torch's setup.py generates it: `__version__`, `cuda`), read as Python literals, with
  the installed distribution's metadata as the fallback for the version;
- its compiled architecture list (`torch._C._cuda_getArchFlags()`, only in the binary):
  from a cache keyed on the installation (path, size and mtime of its libraries),
  filled by one child that imports torch the first time or when the key changes.
A CPU-only build needs no architecture list, so it never starts that child.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preflight.run import Runner

# `torch.cuda.get_arch_list()` returns [] without a GPU (torch/cuda/__init__.py), so read
# the compiled list from `torch._C._cuda_getArchFlags()`, which is what it wraps.
SCRIPT = r"""
import json, sys
try:
    import torch
except Exception as exc:
    print(json.dumps({"installed": False, "error": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
flags = getattr(torch._C, "_cuda_getArchFlags", None)
arch = flags() if flags is not None and torch.version.cuda else None
print(json.dumps({"installed": True, "version": torch.__version__, "cuda": torch.version.cuda,
                  "arch_list": arch.split() if arch else [], "file": torch.__file__}))
"""

# Locates torch for another interpreter without importing it.
LOCATE = r"""
import importlib.util, json
try:
    spec = importlib.util.find_spec("torch")
except (ImportError, ValueError) as exc:
    spec, error = None, f"{type(exc).__name__}: {exc}"
else:
    error = "No module named 'torch'"
dirs = list(spec.submodule_search_locations or []) if spec else []
print(json.dumps({"dir": dirs[0] if dirs else None, "error": "" if dirs else error}))
"""

# The files whose change means another build: torch's own generated version file, its
# extension module and the libraries that carry the CUDA kernels.
KEY_FILES = ("version.py", "__init__.py", "lib/libtorch_cuda.so", "lib/libtorch_cpu.so",
             "lib/libtorch_python.so", "lib/libc10_cuda.so")
CACHE_VERSION = 1


@dataclass(frozen=True)
class TorchBuild:
    python: str
    installed: bool
    version: str | None = None
    cuda: str | None = None  # torch.version.cuda; None for a CPU-only build
    arch_list: tuple[str, ...] = ()
    error: str = ""
    location: str | None = None  # the torch package directory
    # How each fact was read: "torch/version.py", "metadata", "cache PATH",
    # "child process (cache filled: PATH)", ...
    read_from: tuple[tuple[str, str], ...] = ()
    imported_torch: bool = False  # a child imported torch during this read


def cache_dir(environ: Mapping[str, str]) -> Path:
    """PREFLIGHT_CACHE_DIR, else $XDG_CACHE_HOME/preflight, else ~/.cache/preflight."""
    if environ.get("PREFLIGHT_CACHE_DIR"):
        return Path(environ["PREFLIGHT_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or "~").expanduser()
                                                   / ".cache")
    return Path(base) / "preflight"


def locate(runner: Runner, python: str, env: Mapping[str, str],
           timeout: float = 30) -> tuple[Path | None, str]:
    """(torch's package directory, error) for `python` in `env`, torch not imported."""
    same = (os.path.abspath(python) == os.path.abspath(sys.executable)
            and env.get("PYTHONPATH", "") == os.environ.get("PYTHONPATH", ""))
    if same:
        try:
            spec = importlib.util.find_spec("torch")
        except (ImportError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        dirs = list(spec.submodule_search_locations or []) if spec else []
        return (Path(dirs[0]), "") if dirs else (None, "No module named 'torch'")
    result = runner.run([python, "-c", LOCATE], timeout=timeout, env=dict(env))
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    if result.timed_out or result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"{python} failed: {tail[:200]}"
    data = json.loads(lines[-1])
    return (Path(data["dir"]), "") if data.get("dir") else (None, data.get("error", ""))


def version_file(torch_dir: Path) -> dict[str, str | None] | None:
    """`__version__` and `cuda` from torch/version.py, literals only; None if unreadable."""
    try:
        tree = ast.parse((torch_dir / "version.py").read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    found: dict[str, str | None] = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 \
            else node.target if isinstance(node, ast.AnnAssign) else None
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant) and \
                isinstance(value.value, (str, type(None))):
            found[target.id] = value.value
    return found if "__version__" in found and "cuda" in found else None


def metadata_version(torch_dir: Path) -> str | None:
    """The version pip recorded for the torch distribution installed beside torch_dir."""
    for dist in importlib.metadata.distributions(path=[str(torch_dir.parent)]):
        if (dist.metadata["Name"] or "").lower() == "torch":
            return dist.version
    return None


def install_key(torch_dir: Path) -> str:
    parts = [str(torch_dir.resolve()), str(CACHE_VERSION)]
    for name in KEY_FILES + tuple(sorted(p.name for p in torch_dir.glob("_C*.so"))):
        try:
            st = (torch_dir / name).stat()
        except OSError:
            continue
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _child(runner: Runner, python: str, env: Mapping[str, str],
           timeout: float) -> tuple[dict[str, Any] | None, str]:
    result = runner.run([python, "-c", SCRIPT], timeout=timeout, env=dict(env))
    if result.timed_out:
        return None, f"`import torch` took over {timeout:g}s"
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"{python} failed: {tail[:200]}"
    data = json.loads(lines[-1])
    if not data.get("installed"):
        return None, data.get("error", "")
    return data, ""


def _read_cache(path: Path, key: str) -> list[str] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # a cache file spoilt: fill it again
        return None
    if not isinstance(data, dict) or data.get("key") != key or \
            not isinstance(data.get("arch_list"), list):
        return None
    return [str(a) for a in data["arch_list"]]


def _write_cache(path: Path, data: dict[str, Any]) -> str:
    """'' when written, else why not."""
    # Create ~/.cache/preflight, never a home that does not exist (HOME=/nonexistent).
    if not path.parent.parent.parent.is_dir():
        return f"no directory {path.parent.parent.parent}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return ""


def read(runner: Runner, python: str, env: Mapping[str, str], timeout: float = 60) -> TorchBuild:
    torch_dir, error = locate(runner, python, env, timeout)
    if torch_dir is None:
        return TorchBuild(python, False, error=error)
    facts = version_file(torch_dir)
    if facts is None:
        # No readable version.py (not a torch wheel layout): ask torch itself.
        data, error = _child(runner, python, env, timeout)
        if data is None:
            return TorchBuild(python, False, error=error, location=str(torch_dir),
                              imported_torch=True)
        return TorchBuild(python, True, data.get("version"), data.get("cuda"),
                          tuple(data.get("arch_list") or ()), location=str(torch_dir),
                          read_from=(("all", "child process (no torch/version.py)"),),
                          imported_torch=True)
    version = facts["__version__"] or metadata_version(torch_dir)
    cuda = facts["cuda"]
    read_from = [("version", "torch/version.py"), ("cuda", "torch/version.py")]
    if cuda is None:  # CPU-only: there is no architecture list to read
        return TorchBuild(python, True, version, None, (), location=str(torch_dir),
                          read_from=tuple(read_from))
    key = install_key(torch_dir)
    cache = cache_dir(env) / f"torch-arch-{key[:24]}.json"
    arch = _read_cache(cache, key)
    if arch is not None:
        read_from.append(("arch_list", f"cache {cache}"))
        return TorchBuild(python, True, version, cuda, tuple(arch), location=str(torch_dir),
                          read_from=tuple(read_from))
    data, error = _child(runner, python, env, timeout)
    if data is None:
        return TorchBuild(python, False, error=error, location=str(torch_dir),
                          imported_torch=True)
    arch = list(data.get("arch_list") or ())
    why_not = _write_cache(cache, {"key": key, "torch_dir": str(torch_dir), "version": version,
                                   "cuda": cuda, "arch_list": arch})
    read_from.append(("arch_list", f"child process, cache not written ({why_not})" if why_not
                      else f"child process (first run; cache filled: {cache})"))
    return TorchBuild(python, True, version, cuda, tuple(arch), location=str(torch_dir),
                      read_from=tuple(read_from), imported_torch=True)


def parse_version(text: str | None) -> tuple[int, int] | None:
    match = re.match(r"\s*(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def driver_cuda(version: int | None) -> tuple[int, int] | None:
    """NVML's nvmlSystemGetCudaDriverVersion: 12020 -> (12, 2)."""
    return None if version is None else (version // 1000, (version % 1000) // 10)


def arch_covers(arch_list: tuple[str, ...] | list[str], capability: str) -> str | None:
    """The compiled arch that runs on `capability` ("8.0"), or None. Rules from the CUDA
    C Programming Guide, "Binary Compatibility": a cubin sm_XY runs on X.Z for Z >= Y
    (sm_XYa only on X.Y exactly); PTX compute_XY is JIT-compiled for any CC >= X.Y."""
    cap = parse_version(capability)
    if cap is None:
        return None
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+?)(\d)([af]?)", arch)
        if not match:
            continue
        kind, major, minor, suffix = match.group(1), int(match.group(2)), int(match.group(3)), \
            match.group(4)
        if kind == "compute" and (major, minor) <= cap:
            return arch
        if kind == "sm" and suffix == "a" and (major, minor) == cap:
            return arch
        if kind == "sm" and suffix != "a" and major == cap[0] and minor <= cap[1]:
            return arch
    return None


@dataclass(frozen=True)
class Nvcc:
    path: str
    exists: bool
    release: str | None  # "12.1"
    error: str = ""


def nvcc(runner: Runner, cuda_home: str) -> Nvcc:
    path = str(Path(cuda_home) / "bin" / "nvcc")
    if not Path(path).is_file():
        return Nvcc(path, False, None, f"{path} does not exist")
    result = runner.run([path, "--version"], timeout=20)
    match = re.search(r"release (\d+\.\d+)", result.stdout)
    if result.returncode != 0 or not match:
        return Nvcc(path, True, None, (result.stderr.strip() or "no release line")[:200])
    return Nvcc(path, True, match.group(1))
