"""Who this node is and the versions that must agree across nodes: the report's `node`.

Written once per run into preflight-report.json (schema addition, nothing renamed) so
that `preflight merge` / `preflight cluster` can compare nodes. Nothing is imported to
learn a version: packages are read from their installed metadata (importlib.metadata),
torch's CUDA from the `torch/version.py` file it ships, the driver from the NVML
snapshot the GPU checks already read. A value that cannot be read is null and named
under `unknown`, never guessed; a package that is not installed is null without an
`unknown` entry.
"""

from __future__ import annotations

import ast
import platform
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preflight import __version__
from preflight.probes.host import nvidia_pci_gpus

if TYPE_CHECKING:
    from preflight.probes.nvml import Snapshot

# Distribution names (PyPI) whose versions must agree on every node of one job.
PACKAGES = ("torch", "ray", "ms-swift", "sglang", "vllm", "transformers", "flash-attn",
            "deepspeed", "accelerate")
# torch's CUDA wheels take NCCL from this distribution (torch's setup.py
# `pytorch_extra_install_requirements`: nvidia-nccl-cu12==...).
NCCL_DISTS = ("nvidia-nccl-cu13", "nvidia-nccl-cu12", "nvidia-nccl-cu11")
# The order in which the facts are shown and compared.
VERSION_FACTS = ("preflight", "python", *PACKAGES, "torch_cuda", "nccl", "nvidia_driver",
                 "cuda_driver", "gpu_model")
# Environment that says which node of a multi-node job this is.
# The Slurm job step a report belongs to: merge tells a node that never reported, or a
# report left by another job, from the number of nodes the step ran on.
SLURM_ENV = ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_STEP_NUM_NODES", "SLURM_STEP_NODELIST")
LAUNCH_ENV = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", *SLURM_ENV)


def package_version(name: str) -> str | None:
    import importlib.metadata  # here: `preflight merge` needs only the constants above

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_version_file() -> dict[str, Any] | None:
    """The literal assignments of the installed torch/version.py (`cuda`, `__version__`)."""
    import importlib.metadata

    try:
        path = importlib.metadata.distribution("torch").locate_file("torch/version.py")
        tree = ast.parse(Path(str(path)).read_text(encoding="utf-8"))
    except (importlib.metadata.PackageNotFoundError, OSError, SyntaxError, ValueError):
        return None
    values: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return values


def addresses() -> dict[str, list[str]]:
    """IPv4/IPv6 addresses per interface (psutil), link-local ones left out."""
    import psutil  # here: `preflight merge` imports this module for VERSION_FACTS only

    out: dict[str, list[str]] = {}
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        ips = [a.address.split("%")[0] for a in addrs
               if a.family in (socket.AF_INET, socket.AF_INET6)
               and not a.address.lower().startswith("fe80")]
        if ips:
            out[name] = ips
    return out


def cuda_driver_text(version: int | None) -> str | None:
    """NVML's nvmlSystemGetCudaDriverVersion: 12020 -> "12.2"."""
    return None if version is None else f"{version // 1000}.{(version % 1000) // 10}"


def collect(gpus: Snapshot, environ: dict[str, str]) -> dict[str, Any]:
    """The `node` section of the report. `gpus` is the NVML snapshot (Node.gpus)."""
    unknown: dict[str, str] = {}
    versions: dict[str, str | None] = {
        "preflight": __version__,
        "python": platform.python_version(),
    }
    for name in PACKAGES:
        versions[name] = package_version(name)
    versions["torch_cuda"] = versions["nccl"] = None
    if versions["torch"] is not None:
        torch_file = torch_version_file()
        if torch_file is None:
            unknown["torch_cuda"] = "torch/version.py of the installed torch is unreadable"
        else:
            versions["torch_cuda"] = torch_file.get("cuda")
        if versions["torch_cuda"]:
            nccl = next((v for d in NCCL_DISTS if (v := package_version(d))), None)
            versions["nccl"] = nccl
            if nccl is None:
                unknown["nccl"] = ("torch is a CUDA build but no nvidia-nccl-cu* package is "
                                   "installed (NCCL linked into torch: read it with "
                                   "torch.cuda.nccl.version())")
    versions["nvidia_driver"] = gpus.driver_version
    versions["cuda_driver"] = cuda_driver_text(gpus.cuda_driver_version)
    if gpus.error:
        unknown["nvidia_driver"] = unknown["cuda_driver"] = gpus.error
    listed = gpus.gpus
    models = sorted({g.name for g in listed})
    versions["gpu_model"] = ",".join(models) if models else None
    try:
        ips = addresses()
    except OSError as exc:  # psutil reads /proc and the kernel; never crash the report
        ips = {}
        unknown["ips"] = str(exc)
    return {
        "hostname": socket.gethostname(),
        "node_id": environ.get("PREFLIGHT_NODE_ID") or None,  # set by `preflight cluster`
        "ips": ips,
        "platform": platform.platform(),
        "python_executable": sys.executable,
        "versions": versions,
        "gpu_count": len(listed),
        "gpu_source": gpus.source,
        # NVIDIA GPUs on the PCI bus: a CPU box with the driver package installed (NVML:
        # Driver Not Loaded) has none, a GPU node whose driver broke has them. Not read
        # under a replayed snapshot: it stands in for this machine's GPUs.
        "nvidia_pci_gpus": None if gpus.source != "nvml" else nvidia_pci_gpus(),
        "launch_env": {k: environ[k] for k in LAUNCH_ENV if k in environ},
        "unknown": unknown,
    }
