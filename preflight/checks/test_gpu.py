"""GPU, CUDA-stack and host checks, judged against the profile.

GPU checks are parametrized per GPU the profile expects (`gpu0..gpuN-1`), so a missing
GPU is a failing case, not a vanished test. On a profile without GPUs they skip with
the reason; on a GPU profile where NVML cannot be read they fail with it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from preflight.matching import model_matches
from preflight.probes import cuda, gpus, host, nccl, nvml, procs, torch_build

pytestmark = pytest.mark.static

GiB = 2**30


def _gpu_params(profile, node):
    if not profile.is_gpu:
        return [("no-gpu", None)]
    return [(f"gpu{i}", i) for i in range(profile.gpu.count)]


def _no_gpu_reason(profile, snapshot) -> str:
    why = f" ({snapshot['error']})" if snapshot.get("error") else ""
    return f"profile {profile.name} expects no GPU{why}"


def _processes_per_node(profile, node) -> tuple[int, str]:
    launched = getattr(node.launch, "processes_per_node", None)
    if launched:
        return int(launched), "launch analysis"
    return profile.gpu.count, f"profile {profile.name} gpu.count"


def _job_gpu(node, profile, finding, position: int) -> dict:
    """The snapshot entry of the job's cuda:`position`, or the check ends saying why."""
    snapshot = node.gpus
    if snapshot.get("error"):
        finding.unknown(f"cannot read GPU {position}: {snapshot['error']}")
    visible = gpus.resolve(node.environ.get("CUDA_VISIBLE_DEVICES"), snapshot["gpus"])
    if position >= len(visible.indices):
        if visible.spec is not None:
            finding.skip(f"cuda:{position} is not visible to the job "
                         f"(CUDA_VISIBLE_DEVICES={visible.spec})")
        finding.unknown(f"GPU {position} is not present (NVML sees "
                        f"{len(snapshot['gpus'])}): see gpu-inventory")
    index = visible.indices[position]
    return next(g for g in snapshot["gpus"] if g["index"] == index)


# -- gpu-inventory -------------------------------------------------------------------------


@pytest.mark.pitfall("gpu-inventory")
@pytest.mark.each("gpu", _gpu_params)
def test_gpu_inventory(node, profile, finding, gpu):
    snapshot = node.gpus
    if gpu is None:
        finding.skip(_no_gpu_reason(profile, snapshot))
    want = profile.gpu
    found = next((g for g in snapshot["gpus"] if g["index"] == gpu), None)
    expected = {"model": want.model, "memory_gb": want.memory_gb,
                "compute_capability": want.compute_capability}
    finding.evidence(index=gpu, expected=expected, source=snapshot.get("source"),
                     nvml_error=snapshot.get("error"), gpus_seen=len(snapshot["gpus"]),
                     found=None if found is None else {
                         "name": found["name"], "uuid": found["uuid"],
                         "memory_gib": round(found["memory_total_bytes"] / GiB, 1),
                         "compute_capability": found["compute_capability"],
                         "pci_bus_id": found.get("pci_bus_id")})
    if snapshot.get("error"):
        finding.fix("nvidia-smi  # must list the GPUs; in a container run with --gpus all "
                    "(nvidia-container-toolkit), on the host load the driver (modprobe nvidia)")
        raise AssertionError(f"GPU {gpu} of {want.count}x {want.model} (profile {profile.name}) "
                             f"missing: NVML cannot be read: {snapshot['error']}")
    finding.fix("nvidia-smi -L; dmesg | grep -iE 'NVRM|Xid'  # a GPU that fell off the bus "
                "(Xid 79) needs a node reset: drain the node and reboot it"
                if found is None else
                f"choose the profile of this node (`preflight info`), or run on "
                f"{want.count}x {want.model}")
    assert found is not None, (f"GPU {gpu} is missing: NVML sees {len(snapshot['gpus'])} of "
                               f"{want.count} expected {want.model} GPUs")
    problems = []
    if want.model and not model_matches(want.model, found["name"]):
        problems.append(f"model {found['name']!r} is not {want.model}")
    if not gpus.memory_matches(found["memory_total_bytes"], want.memory_gb):
        problems.append(f"{found['memory_total_bytes'] / GiB:.1f} GiB, expected "
                        f"{want.memory_gb:g} GB")
    if want.compute_capability and found["compute_capability"] != want.compute_capability:
        problems.append(f"compute capability {found['compute_capability']}, expected "
                        f"{want.compute_capability}")
    assert not problems, f"GPU {gpu}: " + "; ".join(problems)


@pytest.mark.pitfall("gpu-inventory")
def test_gpus_visible_to_job(node, profile, finding):
    snapshot = node.gpus
    if not profile.is_gpu:
        finding.skip(_no_gpu_reason(profile, snapshot))
    spec = node.environ.get("CUDA_VISIBLE_DEVICES")
    visible = gpus.resolve(spec, snapshot["gpus"])
    needed, needed_from = _processes_per_node(profile, node)
    finding.evidence(CUDA_VISIBLE_DEVICES=spec, visible_indices=list(visible.indices),
                     mig_instances=visible.mig, processes_per_node=needed,
                     processes_per_node_from=needed_from, gpus_seen=len(snapshot["gpus"]),
                     nvml_error=snapshot.get("error"))
    present = ",".join(str(g["index"]) for g in snapshot["gpus"][:needed])
    finding.fix("nvidia-smi  # NVML must answer before the job can see any GPU"
                if snapshot.get("error") or not present else
                f"export CUDA_VISIBLE_DEVICES={present}  # or unset it; and keep "
                "--nproc_per_node / NPROC_PER_NODE <= the visible GPU count")
    assert not snapshot.get("error"), f"NVML cannot be read: {snapshot['error']}"
    assert not visible.problems, visible.problems[0]
    assert visible.count >= needed, (
        f"{visible.count} GPU(s) visible to the job but {needed} processes per node "
        f"({needed_from})")


# -- gpu-free ------------------------------------------------------------------------------


@pytest.mark.pitfall("gpu-free")
@pytest.mark.each("gpu", _gpu_params)
def test_gpu_free(node, profile, finding, gpu):
    if gpu is None:
        finding.skip(_no_gpu_reason(profile, node.gpus))
    found = _job_gpu(node, profile, finding, gpu)
    listed = found.get("processes")
    if listed is None:
        finding.unknown(f"NVML cannot list processes on GPU {found['index']}: "
                        f"{found.get('unavailable', {}).get('processes', 'not recorded')}")
    foreign = [p for p in listed if p["pid"] not in node.own_family]
    shown = []
    for entry in foreign:
        proc = node.process_by_pid.get(entry["pid"])
        used = entry.get("used_memory_bytes")
        shown.append({
            "pid": entry["pid"],
            "used_memory_gib": None if used is None else round(used / GiB, 1),
            "user": proc.user if proc else None,
            "cmdline": (proc.redacted() or proc.name) if proc
            else "not in this PID namespace (a process on the host or in another container)",
        })
    free = found.get("memory_free_bytes",
                     found["memory_total_bytes"] - found["memory_used_bytes"])
    floor = profile.gpu.min_free_memory_gb
    finding.evidence(index=found["index"], uuid=found["uuid"], foreign_processes=shown,
                     free_gib=round(free / GiB, 1), min_free_gb=floor)
    me = procs.user_name(os.getuid())
    local = [str(s["pid"]) for s in shown if s["user"] == me]
    busy = [s for s in shown if s["user"] not in (me, None)]
    hidden = [str(s["pid"]) for s in shown if s["user"] is None]
    fixes = []
    if busy:  # another user's job: theirs to stop, never ours to kill
        fixes.append(f"pick other GPUs with CUDA_VISIBLE_DEVICES, or ask "
                     f"{', '.join(sorted({str(s['user']) for s in busy}))}")
    if local:
        fixes.append(f"kill {' '.join(local)}  # check each pid first (ps -o user,etime,args "
                     f"-p {local[0]}); preflight kills nothing")
    if hidden:
        fixes.append(f"stop host pid(s) {' '.join(hidden)} from the host, or pick other GPUs "
                     "with CUDA_VISIBLE_DEVICES")
    finding.fix("; ".join(fixes) or f"free memory on GPU {found['index']}, or lower "
                "gpu.min_free_memory_gb in a site profile")
    busy_text = "".join(f"; busy: user {s['user']}, pid {s['pid']}" for s in busy)
    assert not foreign, (f"GPU {found['index']} runs {len(foreign)} compute process(es) that "
                         f"are not ours: pid {', '.join(str(p['pid']) for p in foreign)}"
                         f"{busy_text}")
    assert free >= floor * GiB, (f"GPU {found['index']} has {free / GiB:.1f} GiB free, "
                                 f"profile wants {floor:g}")


# -- gpu-health ----------------------------------------------------------------------------


def _health_problems(found: dict, profile) -> list[tuple[str, str]]:
    """(problem, fix) pairs for one GPU; features NVML does not report are not problems."""
    index = found["index"]
    reset = (f"sudo nvidia-smi -r -i {index}  # after every process on it has stopped; "
             "drain the node first if it is shared")
    out = []
    ecc = found.get("ecc") or {}
    if ecc.get("volatile_uncorrected"):
        out.append((f"{ecc['volatile_uncorrected']} volatile uncorrected ECC error(s)", reset))
    rows = found.get("remapped_rows") or {}
    if rows.get("failure"):
        out.append(("row remapping failed", "drain the node and open a hardware ticket (RMA): "
                    "row remapping failure"))
    elif rows.get("pending"):
        out.append(("row remapping pending", reset))
    if found.get("retired_pages_pending"):
        out.append(("page retirement pending", reset))
    harmful = [e for e in found.get("clock_events") or () if e in nvml.HARMFUL_CLOCK_EVENTS]
    if harmful:
        out.append((f"clocks slowed: {', '.join(harmful)}",
                    f"nvidia-smi -q -d PERFORMANCE,TEMPERATURE,POWER -i {index}  # check "
                    "cooling and power supply; the node needs service"))
    if profile.gpu.persistence_mode and found.get("persistence_mode") is False:
        out.append(("persistence mode off",
                    "sudo systemctl enable --now nvidia-persistenced  # or: sudo nvidia-smi "
                    f"-pm 1 -i {index}"))
    if profile.gpu.nvlink:
        links = found.get("nvlink") or []
        active = sum(link["active"] for link in links)
        want = profile.gpu.nvlink_links or len(links) or 1
        if active < want:
            down = [str(link["link"]) for link in links if not link["active"]]
            out.append((f"{active} of {want} NVLink links active"
                        + (f" (down: {', '.join(down)})" if down else ""),
                        f"nvidia-smi nvlink -s -i {index}  # a down link needs a node reset or "
                        "hardware service; NCCL falls back to PCIe meanwhile"))
    pcie = found.get("pcie") or {}
    idle = "gpu_idle" in (found.get("clock_events") or ())
    if pcie.get("width") and pcie.get("max_width") and pcie["width"] < pcie["max_width"]:
        out.append((f"PCIe link x{pcie['width']} of x{pcie['max_width']}",
                    f"nvidia-smi -q -d PCIE -i {index}  # a narrow link is a seating/riser "
                    "fault: reseat the GPU or service the node"))
    # An idle GPU drops its PCIe generation to save power: only a busy one is judged.
    if (pcie.get("gen") and pcie.get("max_gen") and pcie["gen"] < pcie["max_gen"]
            and not idle):
        out.append((f"PCIe gen {pcie['gen']} of {pcie['max_gen']} under load",
                    f"nvidia-smi -q -d PCIE -i {index}  # check BIOS PCIe speed settings "
                    "and the riser"))
    return out


@pytest.mark.pitfall("gpu-health")
@pytest.mark.each("gpu", _gpu_params)
def test_gpu_health(node, profile, finding, gpu):
    if gpu is None:
        finding.skip(_no_gpu_reason(profile, node.gpus))
    found = _job_gpu(node, profile, finding, gpu)
    problems = _health_problems(found, profile)
    finding.evidence(index=found["index"], uuid=found["uuid"], ecc=found.get("ecc"),
                     remapped_rows=found.get("remapped_rows"),
                     retired_pages_pending=found.get("retired_pages_pending"),
                     clock_events=found.get("clock_events"),
                     persistence_mode=found.get("persistence_mode"),
                     nvlink_active=sum(link["active"] for link in found.get("nvlink") or []),
                     nvlink_links=len(found.get("nvlink") or []), pcie=found.get("pcie"),
                     not_reported=sorted(found.get("unavailable", {})))
    finding.fix("; ".join(dict.fromkeys(fix for _, fix in problems)) or "none needed")
    assert not problems, f"GPU {found['index']}: " + "; ".join(p for p, _ in problems)


# -- cuda-stack ----------------------------------------------------------------------------


def _launch_python(node) -> str:
    candidate = node.launch_prefix / "bin" / "python"
    return str(candidate) if candidate.exists() else node.python


@pytest.mark.pitfall("cuda-stack")
def test_cuda_stack(node, profile, finding):
    snapshot = node.gpus
    if not profile.is_gpu:
        finding.skip(_no_gpu_reason(profile, snapshot) + ": torch's CUDA build is not used")
    build = torch_build.read(node.runner, _launch_python(node), node.environ)
    if not build.installed:
        finding.skip(f"torch is not importable by {build.python}: {build.error}")
    driver = torch_build.driver_cuda(snapshot.get("cuda_driver_version"))
    wanted = torch_build.parse_version(build.cuda)
    home, how = cuda.cuda_home(node.environ)
    compiler = torch_build.nvcc(node.runner, home)
    capabilities = sorted({g["compute_capability"] for g in snapshot["gpus"]})
    uncovered = [c for c in capabilities if not torch_build.arch_covers(build.arch_list, c)]
    finding.evidence(python=build.python, torch=build.version, torch_cuda=build.cuda,
                     arch_list=list(build.arch_list), driver_version=snapshot.get(
                         "driver_version"),
                     driver_cuda=None if driver is None else f"{driver[0]}.{driver[1]}",
                     compute_capabilities=capabilities, cuda_home=home, cuda_home_from=how,
                     nvcc=compiler.path, nvcc_release=compiler.release,
                     nvcc_error=compiler.error or None, torch_dir=build.location,
                     read_from=dict(build.read_from), torch_imported=build.imported_torch)
    fixes = []
    problems = []
    if snapshot.get("error"):
        problems.append(f"driver CUDA version unknown: {snapshot['error']}")
    if wanted is None:
        problems.append(f"torch {build.version} is a CPU-only build")
        fixes.append("pip install torch --index-url https://download.pytorch.org/whl/cu121  "
                     "# a CUDA build for this driver")
    elif driver is not None and driver < wanted:
        problems.append(f"driver supports CUDA {driver[0]}.{driver[1]} but torch was built "
                        f"with CUDA {build.cuda}")
        fixes.append(f"pip install torch --index-url https://download.pytorch.org/whl/"
                     f"cu{driver[0]}{driver[1]}  # or upgrade the driver")
    if wanted is not None and uncovered:
        problems.append(f"torch has no kernels for sm_{uncovered[0].replace('.', '')} "
                        f"(arch list: {' '.join(build.arch_list) or 'empty'})")
        fixes.append("pip install an official torch wheel (they cover sm_80 and sm_90)")
    cuda_home_var = node.environ.get("CUDA_HOME")
    if cuda_home_var and not Path(cuda_home_var).is_dir():
        problems.append(f"CUDA_HOME={cuda_home_var} does not exist")
    elif compiler.release and wanted is not None:
        nvcc_major = int(compiler.release.split(".")[0])
        if nvcc_major != wanted[0]:
            problems.append(f"nvcc {compiler.release} at {home} but torch was built with CUDA "
                            f"{build.cuda}: JIT extensions (flashinfer, DeepSpeed ops) will "
                            "refuse to build")
    if any("CUDA_HOME" in p or "nvcc" in p for p in problems):
        fixes.append(f"export CUDA_HOME=/usr/local/cuda-{build.cuda}  # a toolkit whose "
                     f"nvcc major is {wanted[0] if wanted else '?'}")
    finding.fix("; ".join(fixes) or "none needed")
    if not problems and compiler.release is None:
        finding.warn(f"no nvcc under {home} ({compiler.error}): JIT-compiled kernels cannot "
                     "build")
        return
    assert not problems, "; ".join(problems)


# -- nccl-env ------------------------------------------------------------------------------


@pytest.mark.pitfall("nccl-env")
def test_nccl_env(node, profile, finding):
    if not profile.is_gpu:
        finding.skip(f"profile {profile.name} has no GPU: NCCL is not used (gloo)")
    found = nccl.settings(node.environ)
    finding.evidence(nccl={k: f"{s.value} ({s.source})" for k, s in sorted(found.items())},
                     profile_nvlink=profile.gpu.nvlink,
                     profile_infiniband=profile.gpu.infiniband)
    problems, fixes = [], []

    def crippling(key: str, why: str) -> None:
        setting = found.get(key)
        if setting and nccl.as_int(setting.value) != 0:
            problems.append(f"{key}={setting.value} from {setting.source}: {why}")
            fixes.append(f"unset {key}" if setting.source == "environment"
                         else f"sed -i '/^{key}=/d' {setting.source}")

    if profile.gpu.nvlink:
        crippling("NCCL_P2P_DISABLE", "NVLink is not used, traffic goes through host memory")
    if profile.gpu.infiniband:
        crippling("NCCL_IB_DISABLE", "InfiniBand is not used, traffic goes over TCP sockets")
    topo = found.get("NCCL_TOPO_FILE")
    if topo and not Path(topo.value).is_file():
        problems.append(f"NCCL_TOPO_FILE={topo.value} ({topo.source}) does not exist")
        fixes.append("unset NCCL_TOPO_FILE  # or point it at the node's topology XML")
    if not problems and "NCCL_DEBUG" not in found:
        finding.fix("export NCCL_DEBUG=WARN  # INFO for the first run on a new node")
        finding.warn("NCCL_DEBUG is unset: the first NCCL failure will say nothing useful")
        return
    finding.fix("; ".join(fixes) or "none needed")
    assert not problems, "; ".join(problems)


# -- host-limits ---------------------------------------------------------------------------


def _ranks_and_workers(profile, node) -> tuple[int, int, str]:
    ranks, ranks_from = _processes_per_node(profile, node)
    workers = getattr(node.launch, "dataloader_workers", None)
    source = "launch analysis"
    if workers is None:
        workers, source = profile.host.dataloader_workers, f"profile {profile.name}"
    return max(ranks, 1), int(workers), f"ranks from {ranks_from}, workers from {source}"


@pytest.mark.pitfall("host-limits")
def test_host_limits(node, profile, finding):
    want = profile.host
    shm = host.shm()
    lim = host.limits()
    ranks, workers, how = _ranks_and_workers(profile, node)
    shm_needed_gb = max(want.min_shm_gb, ranks * workers * want.shm_gb_per_worker)
    memlock_needed = None if want.min_memlock_mb < 0 else want.min_memlock_mb * 2**20
    finding.evidence(
        shm=None if shm is None else {"total_gib": shm.total_gb, "free_gib": shm.free_gb},
        shm_needed_gb=shm_needed_gb, ranks=ranks, dataloader_workers=workers, sizing=how,
        nofile={"soft": lim.nofile_soft, "hard": lim.nofile_hard}, min_nofile=want.min_nofile,
        memlock_mib=None if lim.memlock_soft is None else lim.memlock_soft // 2**20,
        rdma=want.rdma, memlock_needed_mib="unlimited" if memlock_needed is None
        else memlock_needed // 2**20)
    problems, fixes = [], []
    if shm_needed_gb and (shm is None or shm.total_bytes < shm_needed_gb * GiB):
        size = "missing" if shm is None else f"{shm.total_gb:g} GiB"
        problems.append(f"/dev/shm is {size}, needs {shm_needed_gb:g} GiB")
        fixes.append(f"docker run --shm-size={max(int(shm_needed_gb + 0.999), 1)}g ... (or "
                     f"--ipc=host); on a host: sudo mount -o remount,size="
                     f"{max(int(shm_needed_gb + 0.999), 1)}G /dev/shm")
    if want.min_nofile and lim.nofile_soft is not None and lim.nofile_soft < want.min_nofile:
        problems.append(f"ulimit -n is {lim.nofile_soft}, needs {want.min_nofile}")
        if lim.nofile_hard is None or lim.nofile_hard >= want.min_nofile:
            fixes.append(f"ulimit -n {want.min_nofile}  # in the launching shell")
        else:
            fixes.append(f"echo '* - nofile {want.min_nofile}' | sudo tee "
                         "/etc/security/limits.d/90-nofile.conf  # hard limit "
                         f"{lim.nofile_hard}; log in again")
    if want.rdma and lim.memlock_soft is not None and (
            memlock_needed is None or lim.memlock_soft < memlock_needed):
        need = "unlimited" if memlock_needed is None else f"{want.min_memlock_mb} MiB"
        problems.append(f"ulimit -l is {lim.memlock_soft // 2**10} KiB, RDMA needs {need}")
        fixes.append("printf '* soft memlock unlimited\\n* hard memlock unlimited\\n' | sudo tee "
                     "/etc/security/limits.d/rdma.conf  # docker: --ulimit memlock=-1")
    finding.fix("; ".join(fixes) or "none needed")
    assert not problems, "; ".join(problems)


# -- disk-space ----------------------------------------------------------------------------


@pytest.mark.pitfall("disk-space")
def test_disk_space(node, profile, finding):
    want = profile.disk
    paths = list(dict.fromkeys([*want.paths, *getattr(node.launch, "output_dirs", ())]))
    if not paths:
        finding.skip(f"no output or data directory (profile {profile.name} disk.paths, "
                     "launch script)")
    spaces = [host.space(p) for p in paths]
    data_disk = host.space(want.data_disk) if want.data_disk else None
    finding.evidence(min_free_gb=want.min_free_gb, data_disk=want.data_disk or None,
                     data_disk_exists=data_disk.exists if data_disk else None,
                     paths=[{"path": s.path, "exists": s.exists, "measured_at": s.measured_at,
                             "free_gib": s.free_gb, "total_gib": s.total_gb,
                             "mount_point": s.mount_point, "device": s.device}
                            for s in spaces])
    short = [s for s in spaces if s.free_bytes < want.min_free_gb * GiB]
    on_root = [s for s in spaces if s.mount_point == "/" and data_disk is not None
               and not host.same_filesystem(s, data_disk)]
    # A data disk that does not exist is no place to point outputs at.
    target = want.data_disk if data_disk and data_disk.exists else "<a disk with space>"
    if short:
        finding.fix(f"free space on {short[0].mount_point} (du -xsh {short[0].measured_at}/* | "
                    f"sort -h | tail) or point the output at {target}")
    elif on_root:
        finding.fix(f"export OUTPUT_DIR={want.data_disk}/output  # and pass it to the launch "
                    "script (--output_dir / SAVE_DIR)")
    else:
        finding.fix("none needed")
    assert not short, "; ".join(
        f"{s.path}: {s.free_gb:g} GiB free on {s.mount_point}, needs {want.min_free_gb:g}"
        + ("" if s.exists else f" (the path does not exist; measured at {s.measured_at})")
        for s in short)
    if on_root:
        finding.warn(f"{on_root[0].path} is on the root filesystem, not on the data disk "
                     f"{want.data_disk}")
