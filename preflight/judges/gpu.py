"""GPU checks: gpu-inventory, gpu-free, gpu-health, cuda-stack, nccl-env.

Facts are the typed NVML snapshot (`preflight.probes.nvml.Snapshot`), the profile's
`[gpu]` section (`GpuWant`) and what the adapter read for the job (CUDA_VISIBLE_DEVICES,
processes, torch's build, NCCL's settings). A GPU check runs per GPU the profile expects
(`position`; None on a profile without GPUs).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from preflight.matching import model_matches
from preflight.model import Problem, Verdict
from preflight.probes import gpus, nvml
from preflight.probes.cuda import Kit, choose
from preflight.probes.nccl import Setting, as_int
from preflight.probes.nvml import Gpu, Snapshot
from preflight.probes.torch_build import Nvcc, TorchBuild, arch_covers, driver_cuda, parse_version
from preflight.profiles import Profile

GiB = 2**30


@dataclass(frozen=True)
class GpuWant:
    """The profile's `[gpu]` section, as the GPU judges read it."""

    profile: str  # the profile's name, for messages
    count: int = 0
    model: str = ""
    memory_gb: float = 0.0
    compute_capability: str = ""
    min_free_memory_gb: float = 0.0
    persistence_mode: bool = False
    nvlink: bool = False
    nvlink_links: int = 0
    infiniband: bool = False

    @property
    def is_gpu(self) -> bool:
        return self.count > 0

    @classmethod
    def of(cls, profile: Profile) -> GpuWant:
        g = profile.gpu
        return cls(profile.name, count=g.count, model=g.model, memory_gb=g.memory_gb,
                   compute_capability=g.compute_capability,
                   min_free_memory_gb=g.min_free_memory_gb,
                   persistence_mode=g.persistence_mode, nvlink=g.nvlink,
                   nvlink_links=g.nvlink_links, infiniband=g.infiniband)


def no_gpu_reason(want: GpuWant, snapshot: Snapshot) -> str:
    why = f" ({snapshot.error})" if snapshot.error else ""
    return f"profile {want.profile} expects no GPU{why}"


def processes_per_node(want: GpuWant, launched: int | None) -> tuple[int, str]:
    """Ranks on this node: the launch analysis when it says, else the profile's GPUs.
    (LaunchSpec.processes_per_node: the largest nproc of the script's launchers.)"""
    if launched:
        return launched, "launch analysis"
    return want.count, f"profile {want.profile} gpu.count"


@dataclass(frozen=True)
class Slot:
    """One parametrized case: the job's cuda:`position` on this node."""

    want: GpuWant
    snapshot: Snapshot
    position: int | None  # None: the profile expects no GPU
    cuda_visible_devices: str | None = None


def job_gpu(s: Slot) -> Gpu | Verdict:
    """The GPU the job sees as cuda:`position`, or the verdict that ends the check."""
    snap = s.snapshot
    if s.position is None:
        return Verdict(skip=no_gpu_reason(s.want, snap))
    if snap.error:
        return Verdict([Problem.unknown(f"cannot read GPU {s.position}: {snap.error}")])
    visible = gpus.resolve(s.cuda_visible_devices, snap.gpus)
    if s.position >= len(visible.indices):
        if visible.none:
            return Verdict(skip=f"{visible.none}; see gpu-inventory")
        if visible.spec is not None:
            return Verdict(skip=f"cuda:{s.position} is not visible to the job "
                                f"(CUDA_VISIBLE_DEVICES={visible.spec})")
        return Verdict([Problem.unknown(f"GPU {s.position} is not present (NVML sees "
                                        f"{len(snap.gpus)}): see gpu-inventory")])
    found = snap.gpu(visible.indices[s.position])
    assert found is not None  # resolve() returns indices NVML lists
    return found


# -- gpu-inventory -------------------------------------------------------------------------


def inventory(s: Slot) -> Verdict:
    """GPU `position` (an NVML index) is present and is the profile's model."""
    snap, want, index = s.snapshot, s.want, s.position
    if index is None:
        return Verdict(skip=no_gpu_reason(want, snap))
    found = snap.gpu(index)
    v = Verdict(evidence=dict(
        index=index, expected={"model": want.model, "memory_gb": want.memory_gb,
                               "compute_capability": want.compute_capability},
        source=snap.source, nvml_error=snap.error, gpus_seen=len(snap.gpus),
        found=None if found is None else {
            "name": found.name, "uuid": found.uuid,
            "memory_gib": round(found.memory_total_bytes / GiB, 1),
            "compute_capability": found.compute_capability, "pci_bus_id": found.pci_bus_id}))
    if snap.error:
        v.problems.append(Problem(
            f"GPU {index} of {want.count}x {want.model} (profile {want.profile}) missing: "
            f"NVML cannot be read: {snap.error}",
            "nvidia-smi  # must list the GPUs; in a container run with --gpus all "
            "(nvidia-container-toolkit), on the host load the driver (modprobe nvidia)"))
        return v
    if found is None:
        v.problems.append(Problem(
            f"GPU {index} is missing: NVML sees {len(snap.gpus)} of {want.count} expected "
            f"{want.model} GPUs",
            "nvidia-smi -L; dmesg | grep -iE 'NVRM|Xid'  # a GPU that fell off the bus "
            "(Xid 79) needs a node reset: drain the node and reboot it"))
        return v
    v.fix = (f"preflight info   # the profile of this node; or run on {want.count}x "
             f"{want.model}")
    v.headline = f"GPU {index}"
    if want.model and not model_matches(want.model, found.name):
        v.problems.append(Problem(f"model {found.name!r} is not {want.model}", v.fix))
    if not gpus.memory_matches(found.memory_total_bytes, want.memory_gb):
        v.problems.append(Problem(f"{found.memory_total_bytes / GiB:.1f} GiB, expected "
                                  f"{want.memory_gb:g} GB", v.fix))
    if want.compute_capability and found.compute_capability != want.compute_capability:
        v.problems.append(Problem(f"compute capability {found.compute_capability}, expected "
                                  f"{want.compute_capability}", v.fix))
    return v


@dataclass(frozen=True)
class JobFacts:
    want: GpuWant
    snapshot: Snapshot
    cuda_visible_devices: str | None
    launched_processes_per_node: int | None  # the launch analysis' nproc; None: unknown


def visible_to_job(f: JobFacts) -> Verdict:
    """The job sees at least as many GPUs as it starts processes on this node."""
    snap = f.snapshot
    if not f.want.is_gpu:
        return Verdict(skip=no_gpu_reason(f.want, snap))
    visible = gpus.resolve(f.cuda_visible_devices, snap.gpus)
    needed, needed_from = processes_per_node(f.want, f.launched_processes_per_node)
    present = ",".join(str(g.index) for g in snap.gpus[:needed])
    fix = ("nvidia-smi  # NVML must answer before the job can see any GPU"
           if snap.error or not present else
           f"export CUDA_VISIBLE_DEVICES={present}  # or unset it; and keep "
           "--nproc_per_node / NPROC_PER_NODE <= the visible GPU count")
    v = Verdict(fix=fix, evidence=dict(
        CUDA_VISIBLE_DEVICES=f.cuda_visible_devices, visible_indices=list(visible.indices),
        mig_instances=visible.mig, processes_per_node=needed,
        processes_per_node_from=needed_from, gpus_seen=len(snap.gpus), nvml_error=snap.error))
    # One problem at most: each one hides the next (no GPUs read, none resolved).
    if snap.error:
        v.problems.append(Problem(f"NVML cannot be read: {snap.error}", fix))
    elif visible.problems:
        v.problems.append(Problem(visible.problems[0], fix))
    elif visible.none:
        v.problems.append(Problem(f"{visible.none} but {needed} processes per node "
                                  f"({needed_from})", fix))
    elif visible.count < needed:
        v.problems.append(Problem(f"{visible.count} GPU(s) visible to the job but {needed} "
                                  f"processes per node ({needed_from})", fix))
    return v


# -- gpu-free ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """A process NVML lists on a GPU, as this node's process table shows it."""

    user: str
    cmdline: str  # redacted


@dataclass(frozen=True)
class ProcessFacts:
    ours: frozenset[int]  # pids of the suite's own family (never leftovers)
    holders: Mapping[int, Holder]  # pid -> who; absent: not in this PID namespace
    me: str  # the user running preflight
    # The host a replayed snapshot was recorded on, when it is not this one: its pids are
    # that host's (never looked up here, never a kill fix here). None: the pids are here.
    elsewhere: str | None = None


def listed_pids(snapshot: Snapshot) -> list[int]:
    """Every pid NVML lists on any GPU: the adapter looks these up, and only these."""
    return sorted({p.pid for g in snapshot.gpus for p in g.processes or ()})


def _shown(gpu: Gpu, p: ProcessFacts) -> list[dict[str, object]]:
    shown: list[dict[str, object]] = []
    for entry in gpu.processes or ():
        if entry.pid in p.ours:
            continue
        holder = p.holders.get(entry.pid)
        used = entry.used_memory_bytes
        shown.append({
            "pid": entry.pid,
            "used_memory_gib": None if used is None else round(used / GiB, 1),
            "user": holder.user if holder else None,
            "cmdline": holder.cmdline if holder else
            f"a process on {p.elsewhere}, where the NVML snapshot was recorded" if p.elsewhere
            else "not in this PID namespace (a process on the host or in another container)",
        })
    return shown


def _foreign_fix(shown: list[dict[str, object]], me: str, elsewhere: str | None = None) -> str:
    local = [str(s["pid"]) for s in shown if s["user"] == me]
    busy = [s for s in shown if s["user"] not in (me, None)]
    hidden = [str(s["pid"]) for s in shown if s["user"] is None]
    fixes = []
    # Which GPUs are idle: the one command for a GPU that is not ours to free.
    others = "nvidia-smi --query-gpu=index,memory.used,utilization.gpu --format=csv   # "
    if busy:  # another user's job: theirs to stop, never ours to kill
        fixes.append(f"{others}pick other GPUs with CUDA_VISIBLE_DEVICES, or ask "
                     f"{', '.join(sorted({str(s['user']) for s in busy}))}")
    if local:
        fixes.append(f"kill {' '.join(local)}  # check each pid first (ps -o user,etime,args "
                     f"-p {local[0]}); preflight kills nothing")
    if hidden and elsewhere:
        fixes.append(f"{others}on {elsewhere}: pid(s) {' '.join(hidden)} there hold the GPU "
                     "(this machine's pids are other processes)")
    elif hidden:
        fixes.append(f"{others}pid(s) {' '.join(hidden)} run outside this container: stop "
                     "them from the host if they are yours, or pick other GPUs with "
                     "CUDA_VISIBLE_DEVICES")
    return "\n".join(fixes)


def free(s: Slot, p: ProcessFacts) -> Verdict:
    """No compute process but ours on the GPU, and the profile's free memory."""
    found = job_gpu(s)
    if isinstance(found, Verdict):
        return found
    if found.processes is None:
        return Verdict([Problem.unknown(
            f"NVML cannot list processes on GPU {found.index}: "
            f"{found.unavailable.get('processes', 'not recorded')}")])
    shown = _shown(found, p)
    free_bytes = found.memory_free_bytes
    floor = s.want.min_free_memory_gb
    v = Verdict(evidence=dict(index=found.index, uuid=found.uuid, foreign_processes=shown,
                              free_gib=round(free_bytes / GiB, 1), min_free_gb=floor),
                fix=f"nvidia-smi -i {found.index} --query-compute-apps=pid,used_memory "
                    "--format=csv   # what holds the memory; or lower gpu.min_free_memory_gb "
                    "in a site profile")
    if shown:
        busy = "".join(f"; busy: user {e['user']}, pid {e['pid']}" for e in shown
                       if e["user"] not in (p.me, None))
        v.problems.append(Problem(
            f"GPU {found.index} runs {len(shown)} compute process(es) that are not ours: "
            f"pid {', '.join(str(e['pid']) for e in shown)}{busy}",
            _foreign_fix(shown, p.me, p.elsewhere)))
    elif free_bytes < floor * GiB:
        v.problems.append(Problem(f"GPU {found.index} has {free_bytes / GiB:.1f} GiB free, "
                                  f"profile wants {floor:g}", v.fix))
    return v


# -- gpu-health ----------------------------------------------------------------------------


def _reset(index: int) -> str:
    return (f"sudo nvidia-smi -r -i {index}  # after every process on it has stopped; "
            "drain the node first if it is shared")


def _memory_problems(gpu: Gpu) -> list[Problem]:
    out = []
    if gpu.ecc.volatile_uncorrected:
        out.append(Problem(f"{gpu.ecc.volatile_uncorrected} volatile uncorrected ECC error(s)",
                           _reset(gpu.index)))
    rows = gpu.remapped_rows
    if rows is not None and rows.failure:
        out.append(Problem("row remapping failed",
                           f"nvidia-smi -q -d ROW_REMAPPER -i {gpu.index}   # for the hardware "
                           "ticket (RMA): drain the node, a row remapping failure is not "
                           "repaired by a reset"))
    elif rows is not None and rows.pending:
        out.append(Problem("row remapping pending", _reset(gpu.index)))
    if gpu.retired_pages_pending:
        out.append(Problem("page retirement pending", _reset(gpu.index)))
    return out


def _nvlink_problems(gpu: Gpu, want: GpuWant) -> list[Problem]:
    if not want.nvlink:
        return []
    active = gpu.nvlink_active
    wanted = want.nvlink_links or len(gpu.nvlink) or 1
    if active >= wanted:
        return []
    down = [str(link.link) for link in gpu.nvlink if not link.active]
    return [Problem(f"{active} of {wanted} NVLink links active"
                    + (f" (down: {', '.join(down)})" if down else ""),
                    f"nvidia-smi nvlink -s -i {gpu.index}  # a down link needs a node reset or "
                    "hardware service; NCCL falls back to PCIe meanwhile")]


# nvidia-smi -d has no PCIE display type (its --help lists MEMORY, UTILIZATION, ECC, ...,
# ROW_REMAPPER, RESET_STATUS and rejects others): the link is read with --query-gpu.
PCIE_QUERY = ("--query-gpu=pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,"
              "pcie.link.width.max --format=csv")


def _pcie_problems(gpu: Gpu) -> list[Problem]:
    out = []
    pcie = gpu.pcie
    if pcie.width and pcie.max_width and pcie.width < pcie.max_width:
        out.append(Problem(f"PCIe link x{pcie.width} of x{pcie.max_width}",
                           f"nvidia-smi -i {gpu.index} {PCIE_QUERY}  # a narrow link is a "
                           "seating/riser fault: reseat the GPU or service the node"))
    # An idle GPU drops its PCIe generation to save power: only a busy one is judged.
    idle = "gpu_idle" in (gpu.clock_events or ())
    if pcie.gen and pcie.max_gen and pcie.gen < pcie.max_gen and not idle:
        out.append(Problem(f"PCIe gen {pcie.gen} of {pcie.max_gen} under load",
                           f"nvidia-smi -i {gpu.index} {PCIE_QUERY}  # check BIOS PCIe speed "
                           "settings and the riser"))
    return out


def health_problems(gpu: Gpu, want: GpuWant) -> list[Problem]:
    """What is wrong with one GPU; features NVML does not report are not problems."""
    out = _memory_problems(gpu)
    harmful = gpu.harmful_clock_events
    if harmful:
        out.append(Problem(f"clocks slowed: {', '.join(harmful)}",
                           f"nvidia-smi -q -d PERFORMANCE,TEMPERATURE,POWER -i {gpu.index}  "
                           "# check cooling and power supply; the node needs service"))
    if want.persistence_mode and gpu.persistence_mode is False:
        out.append(Problem("persistence mode off",
                           "sudo systemctl enable --now nvidia-persistenced  # or: sudo "
                           f"nvidia-smi -pm 1 -i {gpu.index}"))
    return out + _nvlink_problems(gpu, want) + _pcie_problems(gpu)


def health(s: Slot) -> Verdict:
    """ECC, row remapping, clocks, persistence, NVLink and PCIe of the job's GPU."""
    found = job_gpu(s)
    if isinstance(found, Verdict):
        return found
    return Verdict(
        health_problems(found, s.want), headline=f"GPU {found.index}", fix="none needed",
        evidence=dict(index=found.index, uuid=found.uuid, ecc=nvml.jsonable(found.ecc),
                      remapped_rows=nvml.jsonable(found.remapped_rows),
                      retired_pages_pending=found.retired_pages_pending,
                      clock_events=nvml.jsonable(found.clock_events),
                      persistence_mode=found.persistence_mode,
                      nvlink_active=found.nvlink_active, nvlink_links=len(found.nvlink),
                      pcie=nvml.jsonable(found.pcie), not_reported=sorted(found.unavailable)))


# -- cuda-stack ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Toolkit:
    """The CUDA toolkit a JIT build would use (flashinfer's lookup order)."""

    home: str
    found_by: str
    nvcc: Nvcc
    cuda_home_var: str | None  # CUDA_HOME as exported
    cuda_home_var_is_dir: bool
    # toolkits on the node (/usr/local/cuda-X.Y with bin/nvcc, cuda.toolkits), for the fix
    installed: tuple[Kit, ...] = ()


@dataclass(frozen=True)
class CudaFacts:
    build: TorchBuild
    toolkit: Toolkit | None  # read only when torch is installed


# The CUDA builds each torch release publishes on download.pytorch.org/whl/cuXYZ, stable
# first, then experimental: pytorch/pytorch RELEASE.md "Release Compatibility Matrix"
# (2.0-2.14). A driver runs any build of its own CUDA major (minor-version compatibility;
# uv crates/uv-torch/src/backend.rs LINUX_CUDA_DRIVERS: every cu12x needs driver >=
# 525.60.13) and of an older major, never of a newer one.
TORCH_CUDA_BUILDS: dict[tuple[int, int], tuple[str, ...]] = {
    (2, 14): ("cu126", "cu130", "cu132"),
    (2, 13): ("cu126", "cu130", "cu132"),
    (2, 12): ("cu126", "cu130", "cu132"),
    (2, 11): ("cu126", "cu128", "cu130"),
    (2, 10): ("cu126", "cu128", "cu130"),
    (2, 9): ("cu126", "cu128", "cu130"),
    (2, 8): ("cu126", "cu128", "cu129"),
    (2, 7): ("cu118", "cu126", "cu128"),
    (2, 6): ("cu118", "cu124", "cu126"),
    (2, 5): ("cu118", "cu121", "cu124"),
    (2, 4): ("cu118", "cu121", "cu124"),
    (2, 3): ("cu118", "cu121"),
    (2, 2): ("cu118", "cu121"),
    (2, 1): ("cu118", "cu121"),
    (2, 0): ("cu117", "cu118"),
}
# The last release with a CUDA 11 build (the fix when the driver is CUDA 11).
LAST_CU11 = "2.7.1"


def _label_major(label: str) -> int:
    return int(label[2:-1])


def torch_index(release: str, driver: tuple[int, int] | None) -> tuple[str | None, str]:
    """The CUDA build of `release` for this driver: (label, note). label None: the release
    has none the driver can run; note: what the choice rests on, for the fix's comment."""
    parts = release.split(".")
    try:
        key = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        key = max(TORCH_CUDA_BUILDS)
    builds = TORCH_CUDA_BUILDS.get(key)
    note = ""
    if builds is None:
        newest = max(TORCH_CUDA_BUILDS)
        builds = TORCH_CUDA_BUILDS[newest]
        note = (f"  # indexes as for torch {newest[0]}.{newest[1]}; torch {release}'s are on "
                "pytorch.org/get-started/previous-versions")
    if driver is None:  # not known: the build that runs on the most drivers
        return builds[0], note
    usable = [b for b in builds if _label_major(b) <= driver[0]]
    if not usable:
        return None, note
    best = max(_label_major(b) for b in usable)
    return next(b for b in usable if _label_major(b) == best), note


def _torch_install(build: TorchBuild, driver: tuple[int, int] | None, why: str) -> str:
    """Reinstall the same torch release, CUDA build, into the Python the check judged: an
    unpinned `pip install torch --index-url` installs that index's newest torch (cu121 stops
    at 2.5.1), and a bare `pip` may be another env's. Pinned with the index's local label
    (`torch==2.13.0+cu126`): `torch==2.13.0` is satisfied by the installed 2.13.0+cpu (PEP 440
    ignores a candidate's local label under `==X.Y.Z`), so pip said "Requirement already
    satisfied" and changed nothing."""
    # the release a hand-built or nightly torch (2.6.0a0+git1234) was cut from: the wheel
    # `torch==2.6.0a0` does not exist on any index
    found = re.match(r"\d+\.\d+(\.\d+)?", build.version or "")
    release = found.group(0) if found else ""
    label, note = torch_index(release, driver)
    if label is None and driver is not None:
        return (f"nvidia-smi  # upgrade the driver: torch {release} has no CUDA "
                f"{driver[0]} build; the last torch with a CUDA 11 build is {LAST_CU11}: "
                f"\"{build.python}\" -m pip install \"torch=={LAST_CU11}+cu118\" --index-url "
                "https://download.pytorch.org/whl/cu118)")
    pin = f"torch=={release}+{label}" if release else "torch"
    return (f'"{build.python}" -m pip install "{pin}" --index-url '
            f"https://download.pytorch.org/whl/{label}" + (note or f"  # {why}"))


def _driver_problems(snap: Snapshot, build: TorchBuild) -> list[Problem]:
    out = []
    driver = driver_cuda(snap.cuda_driver_version)
    wanted = parse_version(build.cuda)
    if snap.error:
        out.append(Problem(f"driver CUDA version unknown: {snap.error}",
                           "nvidia-smi   # its header names the driver's CUDA Version; NVML "
                           "could not tell it to preflight"))
    if wanted is None:
        out.append(Problem(f"torch {build.version} is a CPU-only build",
                           _torch_install(build, driver, "a CUDA build for this "
                           "driver; pytorch.org/get-started/previous-versions lists the "
                           "indexes of each release")))
    elif driver is not None and driver[0] < wanted[0]:
        out.append(Problem(f"driver supports CUDA {driver[0]}.{driver[1]} but torch was built "
                           f"with CUDA {build.cuda}",
                           _torch_install(build, driver, "or upgrade the driver")))
    elif driver is not None and driver < wanted:
        # Same major: CUDA minor-version compatibility runs it; only an API or PTX newer
        # than the driver fails (pytorch/pytorch#155141). Said, not a NO-GO.
        out.append(Problem.warning(
            f"driver supports CUDA {driver[0]}.{driver[1]}, torch was built with CUDA "
            f"{build.cuda}: it runs under CUDA minor-version compatibility (a driver API or "
            "PTX newer than the driver fails)",
            "nvidia-smi  # upgrade the driver to one whose CUDA Version >= "
            f"{build.cuda} to leave compatibility mode"))
    uncovered = [c for c in _capabilities(snap) if not arch_covers(build.arch_list, c)]
    if wanted is not None and uncovered:
        out.append(Problem(f"torch has no kernels for sm_{uncovered[0].replace('.', '')} "
                           f"(arch list: {' '.join(build.arch_list) or 'empty'})",
                           _torch_install(build, driver, "an official wheel: they cover "
                                          "sm_80 and sm_90")))
    return out


def toolkit_fix(kits: tuple[Kit, ...], torch_cuda: str | None, exclude: str = "") -> str:
    """`export CUDA_HOME=` the toolkit `cuda.choose` picks, the one fix cuda-stack and
    cudart-link both give (each alone named a toolkit the other then failed: /usr/local/cuda
    of CUDA 13 under a CUDA 12 torch); else how to install one, never a missing path."""
    kit = choose(kits, torch_cuda, exclude)
    if kit is not None:
        return (f"export CUDA_HOME={kit.path}  # CUDA {kit.version}: lib64/libcudart.so for "
                "flashinfer's link" + (f", nvcc major of torch's CUDA {torch_cuda}"
                                        if torch_cuda else ""))
    major = torch_cuda.split(".")[0] if torch_cuda else ""
    others = ", ".join(f"{k.path} is CUDA {k.version}" +
                       ("" if k.cudart else " without lib64/libcudart.so") for k in kits)
    # conda's cuda-toolkit puts libcudart.so in lib/, the link searches lib64/ (a slime
    # run on 4xA800): the link makes the env a toolkit flashinfer can use.
    return (f"conda install -y -c nvidia cuda-toolkit{'=' + torch_cuda if torch_cuda else ''}"
            '; export CUDA_HOME="${CONDA_PREFIX:?activate the job env first}"'
            '; test -e "$CUDA_HOME/lib64" || ln -s lib "$CUDA_HOME/lib64"  # no installed '
            f"CUDA {major + ' ' if major else ''}toolkit has lib64/libcudart.so"
            + (f" ({others})" if others else ""))


def _toolkit_problems(kit: Toolkit, build: TorchBuild) -> list[Problem]:
    wanted = parse_version(build.cuda)
    fix = toolkit_fix(kit.installed, build.cuda) if build.cuda or \
        choose(kit.installed, None) else \
        "unset CUDA_HOME  # it names no directory and no toolkit with libcudart is installed"
    release = kit.nvcc.release
    if kit.cuda_home_var and not kit.cuda_home_var_is_dir:
        return [Problem(f"CUDA_HOME={kit.cuda_home_var} does not exist", fix)]
    if release and wanted is not None and int(release.split(".")[0]) != wanted[0]:
        return [Problem(f"nvcc {release} at {kit.home} but torch was built with CUDA "
                        f"{build.cuda}: JIT extensions (flashinfer, DeepSpeed ops) will "
                        "refuse to build", fix)]
    return []


def _capabilities(snap: Snapshot) -> list[str]:
    return sorted({g.compute_capability for g in snap.gpus})


def cuda_stack(want: GpuWant, snap: Snapshot, f: CudaFacts | None) -> Verdict:
    """torch's CUDA build fits the driver, the GPUs' architecture and the toolkit's nvcc.
    `f` is None when the profile has no GPU (torch's build is then not read)."""
    if f is None or not want.is_gpu:
        return Verdict(skip=no_gpu_reason(want, snap) + ": torch's CUDA build is not used")
    build, kit = f.build, f.toolkit
    if not build.installed or kit is None:
        return Verdict(skip=f"torch is not importable by {build.python}: {build.error}")
    driver = driver_cuda(snap.cuda_driver_version)
    v = Verdict(fix="none needed", evidence=dict(
        python=build.python, torch=build.version, torch_cuda=build.cuda,
        arch_list=list(build.arch_list), driver_version=snap.driver_version,
        driver_cuda=None if driver is None else f"{driver[0]}.{driver[1]}",
        compute_capabilities=_capabilities(snap), cuda_home=kit.home,
        cuda_home_from=kit.found_by, nvcc=kit.nvcc.path, nvcc_release=kit.nvcc.release,
        nvcc_error=kit.nvcc.error or None, torch_dir=build.location,
        read_from=dict(build.read_from), torch_imported=build.imported_torch))
    v.problems += _driver_problems(snap, build) + _toolkit_problems(kit, build)
    if not v.problems and kit.nvcc.release is None:
        v.problems.append(Problem.warning(
            f"no nvcc under {kit.home} ({kit.nvcc.error}): JIT-compiled kernels cannot build",
            toolkit_fix(kit.installed, build.cuda, exclude=kit.home)))
    return v


# -- nccl-env ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NcclFacts:
    settings: Mapping[str, Setting]  # NCCL_* as the job gets them (launch, env, NCCL's files)
    topo_file_exists: bool | None  # NCCL_TOPO_FILE is a file; None when it is unset
    launch_at: tuple[str, int] | None = None  # the launch command's (file, line)


LAUNCH_CMD = "<--launch-cmd>"  # the file name the launch reader gives a --launch-cmd


def undo_setting(setting: Setting, launch_at: tuple[str, int] | None, value: str | None) -> str:
    """The shell line that takes `setting` away from the job: `value` None unsets it, else
    sets it to `value`. A launch script's line is edited in place on the launch line
    (`NCCL_P2P_DISABLE=1 torchrun ...`), else followed by the repair (also inside a
    multi-line function); a config file line is deleted (the environment is read first)."""
    key = setting.key
    if setting.line and setting.source == LAUNCH_CMD:
        # a command line given to preflight: no file to edit, nothing in the shell wins
        # over its own `KEY=1 torchrun ...`
        return (f"env | grep '^NCCL_'  # the launch command (--launch-cmd) sets "
                f"{key}={setting.value}: " + (f"give it {key}={value}" if value is not None
                                              else f"drop {key}=... from it"))
    if setting.line:
        file = shlex.quote(setting.source)
        at = f"  # {setting.source}:{setting.line} sets {key}={setting.value}"
        if launch_at == (setting.source, setting.line) and value is not None:
            return f"sed -i '{setting.line}s/{key}=[^[:space:];]*/{key}={value}/' {file}{at}"
        repair = f"unset {key}" if value is None else f"export {key}={value}"
        return f"sed -i '{setting.line}a {repair}' {file}{at}"
    if setting.source == "environment":
        return f"unset {key}"
    return f"sed -i '/^{key}=/d' {shlex.quote(setting.source)}"


def _crippling(found: Mapping[str, Setting], key: str, why: str,
               launch_at: tuple[str, int] | None) -> list[Problem]:
    setting = found.get(key)
    if not setting or as_int(setting.value) == 0:
        return []
    return [Problem(f"{key}={setting.value} from {_source(setting)}: {why}",
                    undo_setting(setting, launch_at, "0"))]


def _source(setting: Setting) -> str:
    return f"{setting.source}:{setting.line}" if setting.line else setting.source


def nccl_env(want: GpuWant, f: NcclFacts) -> Verdict:
    """No NCCL setting that silently cripples the job; NCCL_DEBUG set to say why it fails."""
    if not want.is_gpu:
        return Verdict(skip=f"profile {want.profile} has no GPU: NCCL is not used (gloo)")
    found = f.settings
    v = Verdict(fix="none needed", evidence=dict(
        nccl={k: f"{s.value} ({_source(s)})" for k, s in sorted(found.items())},
        profile_nvlink=want.nvlink, profile_infiniband=want.infiniband))
    if want.nvlink:
        v.problems += _crippling(found, "NCCL_P2P_DISABLE",
                                 "NVLink is not used, traffic goes through host memory",
                                 f.launch_at)
    if want.infiniband:
        v.problems += _crippling(found, "NCCL_IB_DISABLE",
                                 "InfiniBand is not used, traffic goes over TCP sockets",
                                 f.launch_at)
    topo = found.get("NCCL_TOPO_FILE")
    if topo and not f.topo_file_exists:
        v.problems.append(Problem(
            f"NCCL_TOPO_FILE={topo.value} ({_source(topo)}) does not exist",
            undo_setting(topo, f.launch_at, None) + ("" if topo.line else "  # or point it at the "
                                              "node's topology XML")))
    if not v.problems and "NCCL_DEBUG" not in found:
        v.problems.append(Problem.warning(
            "NCCL_DEBUG is unset: the first NCCL failure will say nothing useful",
            "export NCCL_DEBUG=WARN  # INFO for the first run on a new node"))
    return v
