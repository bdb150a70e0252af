"""The NVML probe: real reading code against FakeNvml, replay files, and `preflight info`."""

from __future__ import annotations

import json
import subprocess
import sys

import pynvml
import pytest
from support import FIXTURES, REPO

from preflight.probes import gpus, nccl, nvml, torch_build
from preflight.probes.nvml_fake import FakeNvml, merge

NVML_DIR = FIXTURES / "nvml"
SNAPSHOTS = sorted(NVML_DIR.glob("*.json"))
HEALTHY = NVML_DIR / "a800x4-healthy.json"


def _raw(path):
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", SNAPSHOTS, ids=lambda p: p.stem)
def test_reading_a_fake_of_each_fixture_gives_the_fixture_back(path):
    """read_snapshot over FakeNvml(fixture) == fixture: the schema round-trips exactly."""
    raw = _raw(path)
    if raw["error"]:  # a node without NVML replays as one: its error, no GPUs
        replayed = nvml.load_snapshot(path)
        assert (replayed.error, list(replayed.gpus)) == (raw["error"], [])
        return
    assert nvml.read_snapshot(FakeNvml(raw)).to_json() == raw


def test_healthy_a800_has_real_shape():
    snap = nvml.load_snapshot(HEALTHY)
    assert snap.source == f"replay:{HEALTHY}"
    assert [g.name for g in snap.gpus] == ["NVIDIA A800-SXM4-80GB"] * 4
    gpu = snap.gpus[0]
    assert (gpu.memory_total_bytes, gpu.compute_capability) == (85899345920, "8.0")
    assert sum(link.active for link in gpu.nvlink) == 8


def test_unsupported_queries_are_null_and_named():
    raw = _raw(HEALTHY)
    fake = FakeNvml(raw, {"gpus": {"0": {"ecc": {"volatile_uncorrected": None},
                                         "unavailable": {"processes": "NoPermission"}}}})
    gpu = nvml.read_snapshot(fake).gpus[0]
    assert gpu.ecc.volatile_uncorrected is None
    assert gpu.unavailable["ecc_volatile_uncorrected"] == "NotSupported"
    assert gpu.processes is None and gpu.unavailable["processes"] == "NoPermission"


def test_fake_raises_the_real_pynvml_error_classes():
    fake = FakeNvml(_raw(HEALTHY))
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        fake.nvmlDeviceGetRetiredPagesPendingStatus(handle)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetHandleByIndex(9)


def test_overrides_layer_over_the_base_like_dcgm_injection():
    base = _raw(HEALTHY)
    merged = merge(base, {"driver_version": "550.1", "gpus": {"1": {"persistence_mode": False}}})
    assert merged["driver_version"] == "550.1"
    assert merged["gpus"][1]["persistence_mode"] is False
    assert merged["gpus"][1]["name"] == base["gpus"][1]["name"]
    assert base["gpus"][1]["persistence_mode"] is True  # the base is not modified


class _NoLibrary:
    """pynvml on a machine without libnvidia-ml.so: nvmlInit raises."""

    @staticmethod
    def nvmlInit():
        raise pynvml.NVMLError_LibraryNotFound()


def test_missing_library_is_data_not_an_exception():
    snap = nvml.read_snapshot(_NoLibrary())
    assert snap.gpus == () and snap.error and snap.error.startswith("NVML unavailable")


def test_this_machine_has_no_nvml():
    snap = nvml.read_snapshot()
    assert snap.gpus == () and snap.error and "NVML" in snap.error


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read NVML snapshot"),
    ('{"gpus": 3}', "needs a 'gpus' list"),
    ('{"gpus": [{"index": 0}]}', "gpus[0].name missing"),
    ('{"gpus": [{"index": 0, "name": "x", "uuid": "u", "memory_total_bytes": "80G", '
     '"memory_used_bytes": 0, "compute_capability": "8.0"}]}', "memory_total_bytes missing or"),
])
def test_bad_replay_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "snap.json"
    path.write_text(content)
    with pytest.raises(nvml.SnapshotError, match=message.replace("[", r"\[")):
        nvml.load_snapshot(path)


def test_clock_event_names():
    assert nvml.clock_event_names(0x40 | 0x4 | 0x1) == [
        "gpu_idle", "sw_power_cap", "hw_thermal_slowdown"]
    assert nvml.clock_event_names(None) is None


# -- CUDA_VISIBLE_DEVICES ------------------------------------------------------------------

FOUR = nvml.load_snapshot(HEALTHY).gpus


@pytest.mark.parametrize("spec, indices, problem", [
    (None, (0, 1, 2, 3), None),
    ("2,3", (2, 3), None),
    ("", (), None),  # no GPU visible, not an invalid entry: Visible.none says so
    ("0,7,1", (0,), "names GPU 7"),  # CUDA stops at the first invalid entry
    ("1,1", (1,), "twice"),
    (FOUR[2].uuid[:12] + ",0", (2, 0), None),  # a unique UUID prefix
    ("GPU-ffff", (), "matches no GPU"),
])
def test_visible_devices_follow_cuda_rules(spec, indices, problem):
    visible = gpus.resolve(spec, FOUR)
    assert visible.indices == indices
    assert (problem is None) == (not visible.problems)
    if problem:
        assert problem in visible.problems[0]
    assert ("the job sees no GPU" in visible.none) == (spec == "")


def test_memory_match_tells_sizes_apart():
    assert gpus.memory_matches(81920 * 2**20, 80)  # A800 80GB
    assert gpus.memory_matches(81559 * 2**20, 80)  # H100 80GB HBM3
    assert gpus.memory_matches(97871 * 2**20, 96)  # H20
    assert not gpus.memory_matches(40960 * 2**20, 80)  # A800 40GB
    assert not gpus.memory_matches(97871 * 2**20, 80)


@pytest.mark.parametrize("arch, cap, covers", [
    (["sm_50", "sm_80", "sm_90"], "8.0", "sm_80"),
    (["sm_80"], "8.6", "sm_80"),  # binary compatible within a major
    (["sm_86"], "8.0", None),  # but not backwards
    (["sm_90a"], "9.0", "sm_90a"),
    (["sm_90a"], "9.1", None),
    (["sm_75", "compute_75"], "8.0", "compute_75"),  # PTX JIT
    (["sm_90"], "8.0", None),
    ([], "8.0", None),
])
def test_arch_coverage(arch, cap, covers):
    assert torch_build.arch_covers(arch, cap) == covers


def test_driver_cuda_version():
    assert torch_build.driver_cuda(12020) == (12, 2)
    assert torch_build.driver_cuda(11040) == (11, 4)


def test_nccl_settings_come_from_env_then_config_files(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".nccl.conf").write_text("NCCL_P2P_DISABLE=1\nNCCL_DEBUG=INFO\n")
    system = tmp_path / "nccl.conf"
    system.write_text("NCCL_IB_DISABLE=1\nNCCL_DEBUG=WARN\n")
    found = nccl.settings({"HOME": str(home), "NCCL_DEBUG": "TRACE"}, str(system))
    assert found["NCCL_DEBUG"].source == "environment"
    assert found["NCCL_P2P_DISABLE"].source == str(home / ".nccl.conf")
    assert found["NCCL_IB_DISABLE"].source == str(system)
    assert [nccl.as_int(v) for v in ("1", "0", "true", " 2x", "")] == [1, 0, 0, 2, 0]


def test_nccl_integers_parse_as_strtoll_base_0():
    """param.cc ncclLoadParam: strtoll(str, nullptr, 0), the C library's own."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.strtoll.restype = ctypes.c_longlong
    libc.strtoll.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    for value in ("1", "0", "true", " 2x", "", '"1"', "'1'", "0x10", "0X1f", "010", "09",
                  "-3", "+4", "-0x2", "\t7", "1\r", "1 # c", "0x"):
        assert nccl.as_int(value) == libc.strtoll(value.encode(), None, 0), value


def test_nccl_conf_lines_are_taken_verbatim(tmp_path):
    conf = tmp_path / "nccl.conf"
    conf.write_bytes(b'#NCCL_IB_DISABLE=1\nNCCL_P2P_DISABLE="1"\nexport NCCL_DEBUG=INFO\n'
                     b"NCCL_ALGO = Ring\nNOEQUALS\nNCCL_PROTO=LL # x\nNCCL_PROTO=Simple\n")
    assert nccl.read_conf(str(conf)) == {"NCCL_P2P_DISABLE": '"1"',
                                         "export NCCL_DEBUG": "INFO",
                                         "NCCL_ALGO ": " Ring", "NCCL_PROTO": "LL # x"}


# -- preflight info ------------------------------------------------------------------------


def _info(*args):
    return subprocess.run([sys.executable, "-m", "preflight", "info", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_info_json_replays_to_the_same_snapshot(tmp_path):
    done = _info("--json", "--nvml-replay", str(NVML_DIR / "a800x4-foreign-process.json"))
    assert done.returncode == 0, done.stderr
    written = tmp_path / "captured.json"
    written.write_text(done.stdout)
    data = json.loads(done.stdout)
    assert {"hostname", "shm_total_bytes", "nofile"} <= set(data["host"])
    replayed = nvml.load_snapshot(written)
    original = nvml.load_snapshot(NVML_DIR / "a800x4-foreign-process.json")
    assert replayed.gpus == original.gpus
    assert replayed.driver_version == original.driver_version


def test_info_table_shows_health_at_a_glance():
    done = _info("--nvml-replay", str(NVML_DIR / "a800x4-degraded.json"))
    assert done.returncode == 0
    assert "NVIDIA A800-SXM4-80GB" in done.stdout
    assert "hw_thermal_slowdown" in done.stdout and "x8/16" in done.stdout
    # NVML's 12020 is CUDA 12.2; persistence off is what gpu-health flags on this snapshot
    assert "cuda (driver): 12.2 " in done.stdout, done.stdout
    assert done.stdout.count("persistence-off") == 4, done.stdout


def test_info_on_this_machine_says_why_there_are_no_gpus():
    done = _info()
    assert done.returncode == 0 and "nvml: NVML unavailable" in done.stdout


def test_info_states_limits_with_their_units_and_no_python_none():
    """`memlock: 8388608` read as KiB (`ulimit -l` prints 8192) is 8 GiB: the unit is
    shown; an unread driver is `unknown`, not Python's `None`."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    done = _info()
    want = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft / 2**20:.1f} MiB"
    assert f"memlock: {want}" in done.stdout, done.stdout
    # the hard limit is what decides whether `ulimit -n N` can work (host-limits' fix)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert f"(hard {'unlimited' if hard == resource.RLIM_INFINITY else hard})" in done.stdout
    assert "None" not in done.stdout


def test_info_bad_replay_is_exit_4_without_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    done = _info("--nvml-replay", str(bad))
    assert done.returncode == 4
    assert "not an NVML snapshot" in done.stderr and "Traceback" not in done.stderr
