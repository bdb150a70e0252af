"""What torch build and CUDA toolkit the job will use, read in a subprocess.

torch is never imported in the pytest process (it costs seconds and the static stage
must stay fast): the launch env's python prints one JSON line through `Runner`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from preflight.probes import Runner

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


@dataclass(frozen=True)
class TorchBuild:
    python: str
    installed: bool
    version: str | None = None
    cuda: str | None = None  # torch.version.cuda; None for a CPU-only build
    arch_list: tuple[str, ...] = ()
    error: str = ""


def read(runner: Runner, python: str, env: dict[str, str], timeout: float = 60) -> TorchBuild:
    result = runner.run([python, "-c", SCRIPT], timeout=timeout, env=env)
    if result.timed_out:
        return TorchBuild(python, False, error=f"`import torch` took over {timeout:g}s")
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return TorchBuild(python, False, error=f"{python} failed: {tail[:200]}")
    data = json.loads(lines[-1])
    if not data.get("installed"):
        return TorchBuild(python, False, error=data.get("error", ""))
    return TorchBuild(python, True, data.get("version"), data.get("cuda"),
                      tuple(data.get("arch_list") or ()))


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
