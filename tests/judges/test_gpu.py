"""The GPU judges in-process: recorded NVML snapshots (fixtures/nvml) and typed facts in,
the finding's outcome, message and fix out. No subprocess, no plugin run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from preflight.judges import gpu as judge
from preflight.judges import node as node_judge
from preflight.probes import nvml
from preflight.probes.cuda import Kit, LibLayout
from preflight.probes.nccl import Setting
from preflight.probes.torch_build import Nvcc, TorchBuild

from .verdicts import judged

NVML_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "nvml"


def snap(name: str) -> nvml.Snapshot:
    return nvml.load_snapshot(NVML_DIR / f"{name}.json")


HEALTHY = snap("a800x4-healthy")
NO_NVML = nvml.empty("NVML unavailable: libnvidia-ml.so.1 not found")
A800 = judge.GpuWant("a800", count=4, model="A800", memory_gb=80, compute_capability="8.0",
                     min_free_memory_gb=78, persistence_mode=True, nvlink=True)
CPU = judge.GpuWant("cpu")


def with_gpu(base: nvml.Snapshot, position: int, **changes: Any) -> nvml.Snapshot:
    gpus = list(base.gpus)
    gpus[position] = replace(gpus[position], **changes)
    return replace(base, gpus=tuple(gpus))


# -- gpu-inventory -------------------------------------------------------------------------


@pytest.mark.parametrize("snapshot, position, want, kind, text, fix", [
    (HEALTHY, 2, A800, "ok", "", "preflight info   # the profile of this node"),
    (NO_NVML, None, CPU, "skipped", "profile cpu expects no GPU (NVML unavailable", ""),
    (NO_NVML, 3, A800, "blocker",
     "GPU 3 of 4x A800 (profile a800) missing: NVML cannot be read: NVML unavailable",
     "nvidia-smi  # must list the GPUs"),
    (snap("a800x4-gpu-missing"), 3, A800, "blocker",
     "GPU 3 is missing: NVML sees 3 of 4 expected A800 GPUs", "dmesg | grep -iE 'NVRM|Xid'"),
    (snap("h100x8-healthy"), 0, A800, "blocker",
     "GPU 0: model 'NVIDIA H100 80GB HBM3' is not A800; compute capability 9.0, expected 8.0",
     "preflight info   # the profile of this node; or run on 4x A800"),
    (with_gpu(HEALTHY, 1, memory_total_bytes=40 * 2**30), 1, A800, "blocker",
     "GPU 1: 40.0 GiB, expected 80 GB", "preflight info   # the profile"),
], ids=["healthy", "cpu-profile", "no-nvml", "missing", "wrong-model", "wrong-memory"])
def test_inventory(snapshot, position, want, kind, text, fix):
    out = judged(judge.inventory(judge.Slot(want, snapshot, position)))
    assert (out.kind, out.text.startswith(text), fix in out.fix) == (kind, True, True), out


@pytest.mark.parametrize("spec", ["", " ", '""', "''"])
def test_a_gpu_case_under_an_empty_visible_devices_says_the_job_sees_no_gpu(spec):
    out = judged(judge.free(judge.Slot(A800, HEALTHY, 0, spec), NOBODY))
    assert out.kind == "skipped" and "the job sees no GPU" in out.text, out
    assert "neither an index nor a UUID" not in out.text


def test_inventory_records_what_it_found():
    out = judged(judge.inventory(judge.Slot(A800, HEALTHY, 0)))
    assert out.evidence["found"] == {
        "name": "NVIDIA A800-SXM4-80GB", "uuid": HEALTHY.gpus[0].uuid, "memory_gib": 80.0,
        "compute_capability": "8.0", "pci_bus_id": HEALTHY.gpus[0].pci_bus_id}
    assert out.evidence["gpus_seen"] == 4 and out.evidence["nvml_error"] is None


@pytest.mark.parametrize("snapshot, spec, launched, want, kind, text, fix", [
    (HEALTHY, None, None, A800, "ok", "", "export CUDA_VISIBLE_DEVICES=0,1,2,3"),
    (HEALTHY, None, None, CPU, "skipped", "profile cpu expects no GPU", ""),
    (NO_NVML, None, None, A800, "blocker", "NVML cannot be read: NVML unavailable",
     "nvidia-smi  # NVML must answer"),
    (HEALTHY, "0,1,7,2", None, A800, "blocker", "CUDA_VISIBLE_DEVICES names GPU 7",
     "export CUDA_VISIBLE_DEVICES=0,1,2,3  # or unset it"),
    (HEALTHY, None, 8, A800, "blocker",
     "4 GPU(s) visible to the job but 8 processes per node (launch analysis)",
     "export CUDA_VISIBLE_DEVICES=0,1,2,3"),
    (HEALTHY, "2,MIG-x", 2, A800, "ok", "", "export CUDA_VISIBLE_DEVICES=0,1"),
    (snap("a800x4-gpu-missing"), None, None, A800, "blocker",
     "3 GPU(s) visible to the job but 4 processes per node (profile a800 gpu.count)", ""),
    # CUDA reads an empty value as no device visible (torch/cuda/__init__.py
    # _parse_visible_devices: an empty entry is -1, the list stops: [])
    (HEALTHY, "", 2, A800, "blocker", "CUDA_VISIBLE_DEVICES='': the job sees no GPU (an "
     "empty value hides every GPU) but 2 processes per node", "export CUDA_VISIBLE_DEVICES=0,1"),
    (HEALTHY, '""', None, A800, "blocker", "CUDA_VISIBLE_DEVICES='\"\"': the job sees no GPU",
     "export CUDA_VISIBLE_DEVICES=0,1,2,3"),
], ids=["healthy", "cpu", "no-nvml", "names-missing", "launch-8", "mig", "gpu-missing",
        "empty", "quoted-empty"])
def test_visible_to_job(snapshot, spec, launched, want, kind, text, fix):
    out = judged(judge.visible_to_job(judge.JobFacts(want, snapshot, spec, launched)))
    assert (out.kind, out.text.startswith(text), fix in out.fix) == (kind, True, True), out


# -- gpu-free ------------------------------------------------------------------------------

BUSY = with_gpu(HEALTHY, 0, processes=(nvml.GpuProcess(42, 31 * 2**30),))
NOBODY = judge.ProcessFacts(frozenset(), {}, "me")


@pytest.mark.parametrize("snapshot, spec, position, procs, kind, text, fix", [
    (HEALTHY, None, 0, NOBODY, "ok", "", "nvidia-smi -i 0 --query-compute-apps=pid,used_memory"),
    (NO_NVML, None, None, NOBODY, "skipped", "profile a800 expects no GPU", ""),
    (NO_NVML, None, 0, NOBODY, "unknown", "cannot read GPU 0: NVML unavailable", ""),
    (HEALTHY, "0", 1, NOBODY, "skipped", "cuda:1 is not visible to the job "
     "(CUDA_VISIBLE_DEVICES=0)", ""),
    (snap("a800x4-gpu-missing"), None, 3, NOBODY, "unknown",
     "GPU 3 is not present (NVML sees 3): see gpu-inventory", ""),
    (with_gpu(HEALTHY, 0, processes=None, unavailable={"processes": "NoPermission"}), None, 0,
     NOBODY, "unknown", "NVML cannot list processes on GPU 0: NoPermission", ""),
    (BUSY, None, 0, judge.ProcessFacts(frozenset(), {42: judge.Holder("bob", "python x")}, "me"),
     "blocker", "GPU 0 runs 1 compute process(es) that are not ours: pid 42; busy: user bob, "
     "pid 42", "nvidia-smi --query-gpu=index,memory.used,utilization.gpu --format=csv   # "
     "pick other GPUs with CUDA_VISIBLE_DEVICES, or ask bob"),
    (BUSY, None, 0, judge.ProcessFacts(frozenset(), {42: judge.Holder("me", "python x")}, "me"),
     "blocker", "GPU 0 runs 1 compute process(es) that are not ours: pid 42",
     "kill 42  # check each pid first (ps -o user,etime,args -p 42); preflight kills nothing"),
    (BUSY, None, 0, NOBODY, "blocker", "GPU 0 runs 1 compute process(es)",
     "pid(s) 42 run outside this container: stop them from the host if they are yours"),
    (BUSY, None, 0, judge.ProcessFacts(frozenset({42}), {}, "me"), "ok", "", ""),
    (with_gpu(HEALTHY, 1, memory_free_bytes=70 * 2**30), "1", 0, NOBODY, "blocker",
     "GPU 1 has 70.0 GiB free, profile wants 78", "nvidia-smi -i 1 --query-compute-apps="
     "pid,used_memory --format=csv   # what holds the memory; or lower gpu.min_free_memory_gb"),
], ids=["free", "cpu", "no-nvml", "hidden-by-cvd", "absent", "cannot-list", "other-user",
        "my-leftover", "other-namespace", "ours", "low-memory"])
def test_free(snapshot, spec, position, procs, kind, text, fix):
    out = judged(judge.free(judge.Slot(A800, snapshot, position, spec), procs))
    assert (out.kind, out.text.startswith(text), fix in out.fix) == (kind, True, True), out


def test_free_shows_a_foreign_process_and_lists_pids_for_the_adapter():
    procs = judge.ProcessFacts(frozenset(), {42: judge.Holder("bob", "python --token ***")}, "me")
    out = judged(judge.free(judge.Slot(A800, BUSY, 0), procs))
    assert out.evidence["foreign_processes"] == [
        {"pid": 42, "used_memory_gib": 31.0, "user": "bob", "cmdline": "python --token ***"}]
    assert judge.listed_pids(snap("a800x4-foreign-process")) == [4190321]


# -- gpu-health ----------------------------------------------------------------------------

RESET = "sudo nvidia-smi -r -i {}  # after every process on it has stopped"
BUSY_CLOCKS = {"clock_events": ("sw_power_cap",), "clock_event_reasons": 4}


# nvidia-smi's -d display types have no PCIE (its --help: MEMORY, UTILIZATION, ECC, ...,
# ROW_REMAPPER, RESET_STATUS; an unknown one is rejected): the link is read with --query-gpu.
PCIE_QUERY = ("--query-gpu=pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,"
              "pcie.link.width.max --format=csv")


@pytest.mark.parametrize("snapshot, position, want, kind, text, fix", [
    (HEALTHY, 0, A800, "ok", "", "none needed"),
    (NO_NVML, None, CPU, "skipped", "profile cpu expects no GPU", ""),
    (snap("a800x4-ecc-error"), 2, A800, "blocker",
     "GPU 2: 2 volatile uncorrected ECC error(s); row remapping pending", RESET.format(2)),
    (with_gpu(HEALTHY, 0, remapped_rows=nvml.RemappedRows(0, 1, True, True)), 0, A800,
     "blocker", "GPU 0: row remapping failed", "nvidia-smi -q -d ROW_REMAPPER -i 0   # for the "
     "hardware ticket (RMA)"),
    (with_gpu(HEALTHY, 0, retired_pages_pending=True), 0, A800, "blocker",
     "GPU 0: page retirement pending", RESET.format(0)),
    (snap("a800x4-nvlink-down"), 3, A800, "blocker", "GPU 3: 7 of 8 NVLink links active "
     "(down: 2)", "nvidia-smi nvlink -s -i 3"),
    (HEALTHY, 0, replace(A800, nvlink_links=12), "blocker", "GPU 0: 8 of 12 NVLink links",
     "nvidia-smi nvlink -s -i 0"),
    (snap("a800x4-nvlink-down"), 3, replace(A800, nvlink=False), "ok", "", "none needed"),
    (snap("a800x4-degraded"), 3, A800, "blocker",
     "GPU 3: clocks slowed: hw_thermal_slowdown; persistence mode off",
     "nvidia-smi -q -d PERFORMANCE,TEMPERATURE,POWER -i 3  # check cooling and power supply; "
     "the node needs service\nsudo systemctl enable --now nvidia-persistenced"),
    (snap("a800x4-degraded"), 0, replace(A800, persistence_mode=False), "ok", "", ""),
    (snap("a800x4-degraded"), 1, A800, "blocker", "GPU 1: persistence mode off; PCIe link x8 "
     "of x16", f"nvidia-smi -i 1 {PCIE_QUERY}  # a narrow link"),
    (with_gpu(HEALTHY, 0, **BUSY_CLOCKS, pcie=nvml.Pcie(3, 4, 16, 16)), 0, A800, "blocker",
     "GPU 0: PCIe gen 3 of 4 under load", f"nvidia-smi -i 0 {PCIE_QUERY}  # check BIOS PCIe"),
    (with_gpu(HEALTHY, 0, pcie=nvml.Pcie(1, 4, 16, 16)), 0, A800, "ok", "", ""),  # idle
], ids=["healthy", "cpu", "ecc", "remap-failed", "retired-pages", "nvlink-down",
        "nvlink-want-12", "nvlink-not-required", "thermal-and-persistence",
        "persistence-not-required", "pcie-width", "pcie-gen-busy", "pcie-gen-idle"])
def test_health(snapshot, position, want, kind, text, fix):
    out = judged(judge.health(judge.Slot(want, snapshot, position)))
    assert (out.kind, out.text.startswith(text), fix in out.fix) == (kind, True, True), out


def test_health_gives_one_fix_per_kind_of_problem():
    """ECC errors and a pending remap both need the same reset: it is named once."""
    out = judged(judge.health(judge.Slot(A800, snap("a800x4-ecc-error"), 2)))
    assert out.fix == RESET.format(2) + "; drain the node first if it is shared"
    assert out.evidence["ecc"] == {"enabled": True, "volatile_uncorrected": 2,
                                   "volatile_corrected": 117}
    assert out.evidence["not_reported"] == ["retired_pages_pending"]


# -- cuda-stack ----------------------------------------------------------------------------

TORCH = TorchBuild("python3", True, "2.5.1+cu121", "12.1", ("sm_80", "sm_86", "sm_90"))
NVCC = Nvcc("/usr/local/cuda-12.1/bin/nvcc", True, "12.1")
KIT = judge.Toolkit("/usr/local/cuda-12.1", "CUDA_HOME", NVCC, "/usr/local/cuda-12.1", True,
                    installed=(Kit("/usr/local/cuda-12.1", "12.1", True),
                               Kit("/usr/local/cuda-13.0", "13.0", True)))


def cuda(build=TORCH, kit=KIT, **kit_changes):
    return judge.CudaFacts(build, replace(kit, **kit_changes) if kit_changes else kit)


CUDA_HOME_FIX = ("export CUDA_HOME=/usr/local/cuda-12.1  # CUDA 12.1: lib64/libcudart.so for "
                 "flashinfer's link, nvcc major of torch's CUDA 12.1")


@pytest.mark.parametrize("want, snapshot, facts, kind, text, fix", [
    (A800, HEALTHY, cuda(), "ok", "", "none needed"),
    (CPU, NO_NVML, None, "skipped", "profile cpu expects no GPU (NVML unavailable: "
     "libnvidia-ml.so.1 not found): torch's CUDA build is not used", ""),
    (A800, HEALTHY, judge.CudaFacts(TorchBuild("py", False, error="No module named 'torch'"),
                                    None),
     "skipped", "torch is not importable by py: No module named 'torch'", ""),
    (A800, snap("a800x4-old-driver"), cuda(), "blocker",
     "driver supports CUDA 11.4 but torch was built with CUDA 12.1",
     '"python3" -m pip install "torch==2.5.1+cu118" --index-url https://download.pytorch.org/whl/'
     "cu118  # or upgrade"),
    (A800, HEALTHY, cuda(replace(TORCH, cuda=None, version="2.13.0+cpu")), "blocker",
     "torch 2.13.0+cpu is a CPU-only build",
     '"torch==2.13.0+cu126" --index-url https://download.pytorch.org/whl/cu126  # a CUDA build for '
     "this driver"),
    (A800, HEALTHY, cuda(replace(TORCH, arch_list=("sm_90", "sm_100"))), "blocker",
     "torch has no kernels for sm_80 (arch list: sm_90 sm_100)",
     '"python3" -m pip install "torch==2.5.1+cu121" --index-url https://download.pytorch.org/whl/'
     "cu121  # an official wheel: they cover sm_80 and sm_90"),
    (A800, HEALTHY, cuda(nvcc=replace(NVCC, release="13.0")), "blocker",
     "nvcc 13.0 at /usr/local/cuda-12.1 but torch was built with CUDA 12.1", CUDA_HOME_FIX),
    (A800, HEALTHY, cuda(cuda_home_var="/nope", cuda_home_var_is_dir=False), "blocker",
     "CUDA_HOME=/nope does not exist", CUDA_HOME_FIX),
    (A800, HEALTHY, cuda(replace(TORCH, arch_list=("sm_90",)), nvcc=replace(NVCC, release="13.0")),
     "blocker", "torch has no kernels for sm_80 (arch list: sm_90); nvcc 13.0 at",
     "  # an official wheel: they cover sm_80 and sm_90\n" + CUDA_HOME_FIX),
    (A800, replace(HEALTHY, error="NVML query failed"), cuda(), "blocker",
     "driver CUDA version unknown: NVML query failed", "nvidia-smi   # its header names the "
     "driver's CUDA Version"),
    (A800, HEALTHY, cuda(nvcc=Nvcc("/usr/local/cuda/bin/nvcc", False, None, "not found")),
     "warning", "no nvcc under /usr/local/cuda-12.1 (not found): JIT-compiled kernels cannot "
     "build", "conda install -y -c nvidia cuda-toolkit=12.1; export CUDA_HOME="),
], ids=["fits", "cpu", "no-torch", "old-driver", "cpu-only", "no-sm80", "nvcc-major",
        "cuda-home-missing", "two-fixes", "nvml-error", "no-nvcc"])
def test_cuda_stack(want, snapshot, facts, kind, text, fix):
    out = judged(judge.cuda_stack(want, snapshot, facts))
    assert (out.kind, out.text.startswith(text), fix in out.fix) == (kind, True, True), out


# -- nccl-env ------------------------------------------------------------------------------

H100 = replace(A800, profile="h100", infiniband=True)


def env(**values: str) -> dict[str, Setting]:
    return {k: Setting(k, v, "environment") for k, v in values.items()}


@pytest.mark.parametrize("want, settings, topo, kind, text, fix", [
    (CPU, {}, None, "skipped", "profile cpu has no GPU: NCCL is not used (gloo)", ""),
    (A800, {}, None, "warning", "NCCL_DEBUG is unset: the first NCCL failure will say nothing",
     "export NCCL_DEBUG=WARN  # INFO for the first run on a new node"),
    (A800, env(NCCL_DEBUG="WARN"), None, "ok", "", "none needed"),
    (A800, env(NCCL_DEBUG="WARN", NCCL_P2P_DISABLE="1"), None, "blocker",
     "NCCL_P2P_DISABLE=1 from environment: NVLink is not used", "unset NCCL_P2P_DISABLE"),
    (A800, {"NCCL_P2P_DISABLE": Setting("NCCL_P2P_DISABLE", "1", "/home/u/.nccl.conf")}, None,
     "blocker", "NCCL_P2P_DISABLE=1 from /home/u/.nccl.conf",
     "sed -i '/^NCCL_P2P_DISABLE=/d' /home/u/.nccl.conf"),
    (A800, env(NCCL_DEBUG="WARN", NCCL_P2P_DISABLE="0", NCCL_IB_DISABLE="1"), None, "ok", "",
     "none needed"),  # P2P=0 keeps NVLink; IB is not in the a800 profile
    (H100, env(NCCL_DEBUG="WARN", NCCL_IB_DISABLE="1", NCCL_TOPO_FILE="/t.xml"), False,
     "blocker", "NCCL_IB_DISABLE=1 from environment: InfiniBand is not used, traffic goes over "
     "TCP sockets; NCCL_TOPO_FILE=/t.xml (environment) does not exist",
     "unset NCCL_IB_DISABLE\nunset NCCL_TOPO_FILE  # or point it at the node's topology XML"),
    (H100, env(NCCL_DEBUG="WARN", NCCL_TOPO_FILE="/t.xml"), True, "ok", "", ""),
], ids=["cpu", "no-debug", "clean", "p2p-env", "p2p-conf", "harmless", "ib-and-topo", "topo"])
def test_nccl_env(want, settings, topo, kind, text, fix):
    out = judged(judge.nccl_env(want, judge.NcclFacts(settings, topo)))
    assert (out.kind, out.text.startswith(text), fix in out.fix) == (kind, True, True), out


# -- the shared parts ----------------------------------------------------------------------


@pytest.mark.parametrize("launched, expected", [
    (None, (4, "profile a800 gpu.count")), (0, (4, "profile a800 gpu.count")),
    (8, (8, "launch analysis"))])
def test_processes_per_node(launched, expected):
    assert judge.processes_per_node(A800, launched) == expected


def test_snapshot_types_write_the_schema_back():
    gpu = HEALTHY.gpus[0]
    assert gpu.to_json()["nvlink"][0] == {"link": 0, "active": True}
    assert nvml.jsonable(gpu.pcie) == {"gen": 1, "max_gen": 4, "width": 16, "max_width": 16}
    assert gpu.nvlink_active == 8 and gpu.harmful_clock_events == []
    assert snap("a800x4-degraded").gpus[3].harmful_clock_events == ["hw_thermal_slowdown"]


def test_want_is_read_from_a_real_profile():
    from preflight.profiles import load_profiles

    want = judge.GpuWant.of(load_profiles([])["a800"])
    assert want == replace(A800, nvlink_links=8)
    assert not judge.GpuWant.of(load_profiles([])["cpu"]).is_gpu


def test_cuda_stack_torch_fixes_keep_the_version_and_the_env():
    """The CPU-only and old-driver fixes reinstall the same torch release into the Python the
    check judged: an unpinned `pip install torch --index-url .../cu121` installs the newest
    torch of that index (cu121 stops at 2.5.1), a silent downgrade of 2.13.0."""
    cpu_only = replace(TORCH, python="/envs/slime/bin/python", cuda=None, version="2.13.0+cpu")
    out = judged(judge.cuda_stack(A800, HEALTHY, cuda(cpu_only)))
    assert out.kind == "blocker", out
    assert ('"/envs/slime/bin/python" -m pip install "torch==2.13.0+cu126" --index-url '
            "https://download.pytorch.org/whl/cu126") in out.fix, out.fix
    # a 11.4 driver: the newest CUDA 11 index PyTorch publishes is cu118 (no cu114 index)
    old = judged(judge.cuda_stack(A800, snap("a800x4-old-driver"), cuda()))
    assert old.kind == "blocker" and "driver supports CUDA 11.4" in old.text
    assert ('-m pip install "torch==2.5.1+cu118" --index-url '
            'https://download.pytorch.org/whl/cu118') in old.fix, old.fix


def test_torch_index_is_one_the_release_publishes_for_the_driver():
    """pytorch RELEASE.md's compatibility matrix: torch 2.12-2.14 publish cu126/cu130/cu132
    (no cu128: `--index-url .../cu128` finds no torch 2.13.0), 2.8+ no CUDA 11 build; a
    driver runs builds of its own CUDA major or an older one."""
    assert judge.torch_index("2.13.0", (12, 2)) == ("cu126", "")
    assert judge.torch_index("2.13.0", (13, 0)) == ("cu130", "")
    assert judge.torch_index("2.13.0", None) == ("cu126", "")  # runs on the most drivers
    assert judge.torch_index("2.8.0", (13, 0)) == ("cu126", "")  # 12.x runs on a 13 driver
    assert judge.torch_index("2.5.1", (11, 4)) == ("cu118", "")
    assert judge.torch_index("2.13.0", (11, 4)) == (None, "")
    label, note = judge.torch_index("2.16.0", (12, 4))
    assert label == "cu126" and "previous-versions" in note
    # torch 2.13.0 on a CUDA 11.4 driver: no build runs there; the fix is the driver
    old = judged(judge.cuda_stack(A800, snap("a800x4-old-driver"),
                                  cuda(replace(TORCH, version="2.13.0+cu126", cuda="12.6"))))
    assert old.kind == "blocker" and old.fix.startswith("nvidia-smi  # upgrade the driver"), old
    assert "torch 2.13.0 has no CUDA 11 build" in old.fix and "2.7.1" in old.fix


def test_cuda_stack_newer_minor_of_the_same_major_is_a_warning():
    """CUDA minor-version compatibility: a torch built with CUDA 12.4 runs on a driver that
    reports 12.2 (every 12.x needs driver >= 525.60.13: uv crates/uv-torch/src/backend.rs
    LINUX_CUDA_DRIVERS, from NVIDIA's release notes Table 2); only a new driver API or PTX
    fails. Not a NO-GO; still said."""
    out = judged(judge.cuda_stack(A800, HEALTHY, cuda(replace(TORCH, version="2.6.0+cu124",
                                                              cuda="12.4"))))
    assert out.kind == "warning", out
    assert "driver supports CUDA 12.2, torch was built with CUDA 12.4" in out.text


def test_cuda_home_fix_names_a_toolkit_that_exists():
    """`export CUDA_HOME=/usr/local/cuda-12.1` on a node that has only cuda-13.0 and
    cuda-12.4 makes the next run fail with `CUDA_HOME=... does not exist`: the fix names an
    installed toolkit of torch's CUDA major, or says there is none."""
    mismatch = dict(nvcc=replace(NVCC, release="13.0"), home="/usr/local/cuda-13.0")
    kit = dict(installed=(Kit("/usr/local/cuda-13.0", "13.0", True),
                          Kit("/usr/local/cuda-12.4", "12.4", True)))
    out = judged(judge.cuda_stack(A800, HEALTHY, cuda(**mismatch, **kit)))
    assert out.kind == "blocker" and "export CUDA_HOME=/usr/local/cuda-12.4" in out.fix, out
    none = judged(judge.cuda_stack(A800, HEALTHY, cuda(**mismatch, installed=(
        Kit("/usr/local/cuda-13.0", "13.0", True),))))
    assert "export CUDA_HOME=/usr/local/cuda-12.1" not in none.fix, none.fix
    assert "no installed CUDA 12 toolkit" in none.fix, none.fix
    assert "conda install -y -c nvidia cuda-toolkit=12.1" in none.fix, none.fix


def test_cuda_home_fix_under_a_cpu_only_torch_names_no_none():
    cpu_only = replace(TORCH, cuda=None, version="2.13.0+cpu")
    out = judged(judge.cuda_stack(A800, HEALTHY, cuda(cpu_only, cuda_home_var="/nope",
                                                      cuda_home_var_is_dir=False)))
    assert "None" not in out.fix, out.fix
    assert "export CUDA_HOME=/usr/local/cuda-13.0" in out.fix, out.fix  # the newest installed
    out = judged(judge.cuda_stack(A800, HEALTHY, cuda(cpu_only, cuda_home_var="/nope",
                                                      cuda_home_var_is_dir=False, installed=())))
    assert "unset CUDA_HOME" in out.fix and "None" not in out.fix, out.fix


# cudart-link and cuda-stack name one toolkit: cudart-link's `export CUDA_HOME=/usr/local/cuda`
# once pointed a CUDA 12 torch at a CUDA 13 toolkit, which cuda-stack then failed.
CUDA13 = Kit("/usr/local/cuda-13.0", "13.0", True)
CUDA12_NO_LIB = Kit("/usr/local/cuda-12.4", "12.4", False)
CUDA12 = Kit("/opt/cuda-12.6", "12.6", True)


@pytest.mark.parametrize("kits, named", [
    ((CUDA13, CUDA12_NO_LIB, CUDA12), "export CUDA_HOME=/opt/cuda-12.6"),
    ((CUDA13, CUDA12_NO_LIB, CUDA12, replace(CUDA12, path="/opt/cuda-12.8", version="12.8")),
     "export CUDA_HOME=/opt/cuda-12.6"),  # torch's own minor first
    ((CUDA13, replace(CUDA12, version="12.2"), replace(CUDA12, path="/x/cuda-12.4",
                                                        version="12.4")),
     "export CUDA_HOME=/x/cuda-12.4"),  # else the newest of its major
    ((CUDA13, CUDA12_NO_LIB), "conda install -y -c nvidia cuda-toolkit=12.6"),
], ids=["one-fits", "exact-minor", "newest-of-major", "none-fits"])
def test_cudart_link_and_cuda_stack_name_the_same_toolkit(kits, named):
    build = replace(TORCH, version="2.13.0+cu126", cuda="12.6")
    stack = judged(judge.cuda_stack(A800, HEALTHY, cuda(
        build, home="/usr/local/cuda-13.0", nvcc=replace(NVCC, release="13.0"),
        installed=kits)))
    link = judged(node_judge.cudart_link(node_judge.CudartFacts(
        "/usr/local", "which nvcc = /usr/local/bin/nvcc", True,
        [LibLayout("/usr/local", (), False, False)],
        node_judge.Link("x", 1, "/usr/bin/ld: cannot find -lcudart", ""), kits, "12.6")))
    assert named in stack.fix and named in link.fix, (stack.fix, link.fix)
    assert stack.fix.splitlines()[0] == link.fix.splitlines()[0], (stack.fix, link.fix)
    assert "export CUDA_HOME=/usr/local/cuda-13.0" not in link.fix + stack.fix
    assert "/usr/local/cuda-12.4" not in link.fix.split("#")[0]  # no libcudart there


def test_the_torch_pin_is_not_satisfied_by_the_build_it_replaces():
    """pip (packaging's SpecifierSet, which pip uses) counts an installed 2.13.0+cpu as
    satisfying `torch==2.13.0` (PEP 440: `==X.Y.Z` ignores a candidate's local label): the
    CPU-only fix read 'Requirement already satisfied: torch==2.13.0 (2.13.0+cpu)' in a real
    `pip install --dry-run` and changed nothing. The pin carries the index's label."""
    from packaging.requirements import Requirement

    cpu_only = replace(TORCH, python="/py", cuda=None, version="2.13.0+cpu")
    fix = judged(judge.cuda_stack(A800, HEALTHY, cuda(cpu_only))).fix
    [pin] = [w.strip('"') for w in fix.split() if w.startswith('"torch==')]
    spec = Requirement(pin).specifier
    assert "2.13.0+cpu" not in spec and "2.13.0+cu126" in spec, pin
