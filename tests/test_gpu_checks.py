"""GPU checks end to end: the real plugin in a subprocess, reading recorded NVML snapshots.

Each check fails on its broken node and passes on the healthy one. Hardware this machine
lacks (GPUs, a CUDA build of torch) is faked through one seam each: `--nvml-replay` for
NVML, a `torch` package on PYTHONPATH for the torch subprocess. Everything else is real:
processes, files, the plugin, the report.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import FIXTURES, base_env

from preflight.probes.nvml_fake import merge

NVML_DIR = FIXTURES / "nvml"
HEALTHY = NVML_DIR / "a800x4-healthy.json"


def gpu_env(**overrides):
    """base_env without NCCL settings and with a HOME that has no ~/.nccl.conf."""
    env = {k: v for k, v in base_env(**overrides).items()
           if not k.startswith("NCCL_") or k in overrides}
    return env


def snapshot(tmp_path, overrides, base=HEALTHY, name="node.json"):
    path = tmp_path / name
    path.write_text(json.dumps(merge(json.loads(base.read_text()), overrides)))
    return path


def results(run, check):
    found = run.checks(check)
    assert found, f"no {check} results:\n{run.output[-3000:]}"
    return {c["nodeid"].rsplit("[", 1)[-1].rstrip("]"): c for c in found}


def replay(run_preflight, path, *checks, profile="a800", env=None, extra=()):
    args = ["-m", profile, "--nvml-replay", str(path)]
    for check in checks:
        args += ["--check", check]
    return run_preflight(*args, *extra, env=env or gpu_env(HOME="/nonexistent"))


# -- gpu-inventory -------------------------------------------------------------------------


def test_inventory_passes_on_the_healthy_node(run_preflight):
    run = replay(run_preflight, HEALTHY, "gpu-inventory")
    found = results(run, "gpu-inventory")
    assert set(found) == {"a800-gpu0", "a800-gpu1", "a800-gpu2", "a800-gpu3", "a800"}
    assert all(c["outcome"] == "passed" for c in found.values()), run.output[-2000:]
    assert found["a800-gpu2"]["evidence"]["found"]["name"] == "NVIDIA A800-SXM4-80GB"


def test_inventory_fails_on_the_missing_gpu(run_preflight):
    run = replay(run_preflight, NVML_DIR / "a800x4-gpu-missing.json", "gpu-inventory")
    found = results(run, "gpu-inventory")
    missing = found["a800-gpu3"]
    assert missing["severity"] == "blocker" and run.returncode == 1
    assert "GPU 3 is missing: NVML sees 3 of 4" in missing["summary"]
    assert missing["evidence"]["found"] is None and missing["evidence"]["gpus_seen"] == 3
    assert "Xid" in missing["fix"]
    assert found["a800-gpu0"]["outcome"] == "passed"
    assert "3 GPU(s) visible to the job but 4 processes per node" in found["a800"]["summary"]


def test_inventory_fails_on_the_wrong_model(run_preflight, tmp_path):
    h100 = NVML_DIR / "h100x8-healthy.json"
    run = replay(run_preflight, h100, "gpu-inventory")  # -m a800 on an H100 node
    gpu0 = results(run, "gpu-inventory")["a800-gpu0"]
    assert gpu0["severity"] == "blocker"
    assert "model 'NVIDIA H100 80GB HBM3' is not A800" in gpu0["summary"]
    assert "compute capability 9.0, expected 8.0" in gpu0["summary"]


def test_visible_devices_naming_a_missing_gpu_fails_then_passes(run_preflight):
    run = replay(run_preflight, HEALTHY, "gpu-inventory",
                 env=gpu_env(HOME="/nonexistent", CUDA_VISIBLE_DEVICES="0,1,7,2"))
    node = results(run, "gpu-inventory")["a800"]
    assert node["severity"] == "blocker"
    assert "names GPU 7" in node["summary"]
    assert node["evidence"]["visible_indices"] == [0, 1]
    assert node["fix"].startswith("export CUDA_VISIBLE_DEVICES=0,1,2,3")
    fixed = replay(run_preflight, HEALTHY, "gpu-inventory",
                   env=gpu_env(HOME="/nonexistent", CUDA_VISIBLE_DEVICES="0,1,2,3"))
    assert results(fixed, "gpu-inventory")["a800"]["outcome"] == "passed"


def test_an_empty_visible_devices_means_the_job_sees_no_gpu(run_preflight, tmp_path):
    """`CUDA_VISIBLE_DEVICES=` hides every GPU (torch/cuda/__init__.py _parse_visible_devices
    returns []): said so, not "entry '' is neither an index nor a UUID"."""
    script = tmp_path / "run.sh"
    script.write_text("torchrun --nproc_per_node 2 train.py\n")
    run = replay(run_preflight, HEALTHY, "gpu-inventory", "launch-gpus",
                 env=gpu_env(HOME="/nonexistent", CUDA_VISIBLE_DEVICES=""),
                 extra=("--launch-script", str(script)))
    node = results(run, "gpu-inventory")["a800"]
    assert node["severity"] == "blocker", run.output[-2000:]
    assert "the job sees no GPU" in node["summary"], node["summary"]
    assert "neither" not in run.output
    assert "the job sees no GPU" in run.one("launch-gpus")["summary"]


def test_site_profile_of_five_lines_extends_a800(run_preflight, tmp_path):
    """A site overrides two thresholds in a 5-line file and keeps everything else."""
    site = tmp_path / "profiles"
    site.mkdir()
    (site / "beijing.toml").write_text(
        'extends = "a800"\ndescription = "our 2-GPU A800 slice"\n[gpu]\ncount = 2\n'
        "min_free_memory_gb = 40.0\n")
    assert len((site / "beijing.toml").read_text().splitlines()) == 5
    run = replay(run_preflight, NVML_DIR / "a800x4-foreign-process.json",
                 "gpu-inventory", "gpu-free", profile="beijing",
                 extra=("--profile-dir", str(site)))
    inventory = results(run, "gpu-inventory")
    assert set(inventory) == {"beijing-gpu0", "beijing-gpu1", "beijing"}
    assert inventory["beijing-gpu0"]["evidence"]["expected"]["model"] == "A800"  # inherited
    free = results(run, "gpu-free")
    assert free["beijing-gpu0"]["outcome"] == "passed"
    assert free["beijing-gpu1"]["evidence"]["min_free_gb"] == 40.0
    assert free["beijing-gpu1"]["severity"] == "blocker"  # the foreign process on GPU 1


# -- gpu-free ------------------------------------------------------------------------------


@pytest.fixture
def stranger():
    """A real process that is not ours, whose command line carries a token."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                             "--hf_token", "hf_SuperSecret0123456789"], start_new_session=True)
    time.sleep(0.2)
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def test_gpu_free_names_a_real_foreign_process_redacted(run_preflight, tmp_path, stranger):
    path = snapshot(tmp_path, {"gpus": {"1": {
        "processes": [{"pid": stranger.pid, "used_memory_bytes": 31 * 2**30}],
        "memory_used_bytes": 31 * 2**30, "memory_free_bytes": 49 * 2**30}}})
    run = replay(run_preflight, path, "gpu-free")
    found = results(run, "gpu-free")
    busy = found["a800-gpu1"]
    assert busy["severity"] == "blocker" and run.returncode == 1
    assert f"pid {stranger.pid}" in busy["summary"]
    shown = busy["evidence"]["foreign_processes"][0]
    assert shown["pid"] == stranger.pid and shown["user"] and shown["used_memory_gib"] == 31.0
    assert "--hf_token ***" in shown["cmdline"]
    assert busy["fix"].startswith(f"kill {stranger.pid}")
    everything = run.output + json.dumps(run.report)
    assert "hf_SuperSecret0123456789" not in everything
    assert stranger.poll() is None, "preflight must never kill a process it did not start"
    assert found["a800-gpu0"]["outcome"] == "passed"
    fixed = replay(run_preflight, HEALTHY, "gpu-free")
    assert all(c["outcome"] == "passed" for c in results(fixed, "gpu-free").values())


def test_gpu_free_pids_of_a_snapshot_recorded_on_another_host_are_not_looked_up_here(
        run_preflight, tmp_path, stranger):
    """A snapshot `preflight info --json` wrote on gpu-node-7 lists gpu-node-7's pids: the
    same number here is an unrelated process (the stranger), never named, never a kill."""
    import socket

    here = snapshot(tmp_path, {"host": {"hostname": socket.gethostname()}, "gpus": {"1": {
        "processes": [{"pid": stranger.pid, "used_memory_bytes": 31 * 2**30}],
        "memory_used_bytes": 31 * 2**30, "memory_free_bytes": 49 * 2**30}}})
    local = results(replay(run_preflight, here, "gpu-free"), "gpu-free")["a800-gpu1"]
    assert local["fix"].startswith(f"kill {stranger.pid}")  # recorded here: our pid
    data = json.loads(here.read_text())
    data["host"]["hostname"] = "gpu-node-7"
    there = tmp_path / "node7.json"
    there.write_text(json.dumps(data))
    run = replay(run_preflight, there, "gpu-free", "leftover-processes")
    busy = results(run, "gpu-free")["a800-gpu1"]
    assert busy["severity"] == "blocker", busy  # the GPU is taken on gpu-node-7
    shown = busy["evidence"]["foreign_processes"][0]
    assert shown["user"] is None and "on gpu-node-7" in shown["cmdline"], shown
    assert "kill" not in busy["fix"] + busy["why"], busy
    assert "on gpu-node-7: pid(s) " in busy["why"], busy["why"]
    assert "time.sleep" not in json.dumps(run.report)
    assert stranger.poll() is None


def test_gpu_free_process_outside_this_pid_namespace(run_preflight):
    run = replay(run_preflight, NVML_DIR / "a800x4-foreign-process.json", "gpu-free")
    busy = results(run, "gpu-free")["a800-gpu1"]
    assert busy["severity"] == "blocker"
    assert "not in this PID namespace" in busy["evidence"]["foreign_processes"][0]["cmdline"]
    assert "pid(s) 4190321 run outside this container" in busy["why"]
    # not ours to kill: the command shows which GPUs are idle instead
    assert busy["fix"] == "nvidia-smi --query-gpu=index,memory.used,utilization.gpu " \
                          "--format=csv", busy["fix"]


def test_gpu_free_memory_floor(run_preflight, tmp_path):
    path = snapshot(tmp_path, {"gpus": {"0": {"memory_used_bytes": 10 * 2**30,
                                              "memory_free_bytes": 70 * 2**30}}})
    gpu0 = results(replay(run_preflight, path, "gpu-free"), "gpu-free")["a800-gpu0"]
    assert gpu0["severity"] == "blocker"
    assert "has 70.0 GiB free, profile wants 78" in gpu0["summary"]


# -- gpu-health ----------------------------------------------------------------------------


def test_gpu_health_passes_on_the_healthy_node(run_preflight):
    run = replay(run_preflight, HEALTHY, "gpu-health")
    found = results(run, "gpu-health")
    assert len(found) == 4 and all(c["outcome"] == "passed" for c in found.values())
    assert found["a800-gpu0"]["evidence"]["nvlink_active"] == 8
    assert run.returncode == 0


@pytest.mark.parametrize("variant, failing, words, fix", [
    ("a800x4-ecc-error", {"a800-gpu2"}, "2 volatile uncorrected ECC error(s); row remapping "
     "pending", "nvidia-smi -r -i 2"),
    ("a800x4-nvlink-down", {"a800-gpu0", "a800-gpu3"}, "7 of 8 NVLink links active (down: 2)",
     "nvidia-smi nvlink -s"),
    ("a800x4-degraded", {"a800-gpu0", "a800-gpu1", "a800-gpu2", "a800-gpu3"},
     "persistence mode off", "nvidia-persistenced"),
])
def test_gpu_health_fails_on_each_broken_node(run_preflight, variant, failing, words, fix):
    run = replay(run_preflight, NVML_DIR / f"{variant}.json", "gpu-health")
    found = results(run, "gpu-health")
    assert {k for k, c in found.items() if c["severity"] == "blocker"} == failing
    first = found[sorted(failing)[-1]]
    assert words in first["summary"] and fix in first["fix"]
    assert run.returncode == 1


def test_gpu_health_thermal_and_pcie_width(run_preflight):
    run = replay(run_preflight, NVML_DIR / "a800x4-degraded.json", "gpu-health")
    found = results(run, "gpu-health")
    assert "PCIe link x8 of x16" in found["a800-gpu1"]["summary"]
    assert "hw_thermal_slowdown" in found["a800-gpu3"]["summary"]
    assert "PCIe gen" not in found["a800-gpu0"]["summary"]  # idle: gen 1 of 4 is normal


# -- no NVML -------------------------------------------------------------------------------


def test_gpu_checks_skip_under_cpu_with_the_reason(run_preflight):
    run = run_preflight("-m", "cpu", "-rs", *sum((["--check", c] for c in (
        "gpu-inventory", "gpu-free", "gpu-health", "cuda-stack", "nccl-env")), []),
        env=gpu_env())
    assert run.returncode == 0, run.output[-2000:]
    for check in ("gpu-inventory", "gpu-free", "gpu-health", "cuda-stack"):
        for result in run.checks(check):
            assert result["outcome"] == "skipped"
            assert "profile cpu expects no GPU (NVML unavailable" in result["summary"]
    assert run.report["verdict"] == "GO"
    assert "expects no GPU (NVML unavailable" in run.output  # the reason is shown (-rs)
    markdown = (run.report_dir / "preflight-report.md").read_text()
    assert "expects no GPU (NVML unavailable" in markdown


def test_a800_on_this_machine_is_no_go_naming_the_missing_gpus(run_preflight):
    run = run_preflight("-m", "a800", "--check", "gpu-inventory", "--check", "gpu-health",
                        env=gpu_env())
    assert run.returncode == 1 and run.report["verdict"] == "NO-GO"
    inventory = results(run, "gpu-inventory")
    assert all(c["severity"] == "blocker" for c in inventory.values())
    assert inventory["a800-gpu3"]["summary"].startswith(
        "GPU 3 of 4x A800 (profile a800) missing: NVML cannot be read")
    assert "NVML unavailable" in run.output
    health = results(run, "gpu-health")
    assert all(c["severity"] == "unknown" for c in health.values())


def test_bad_replay_file_is_exit_4(run_preflight, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"gpus": [{"index": 0}]}')
    run = run_preflight("-m", "a800", "--nvml-replay", str(bad), env=gpu_env())
    assert run.returncode == 4
    assert "gpus[0].name missing" in run.output and "Traceback" not in run.output


# -- cuda-stack ----------------------------------------------------------------------------


def fake_torch(root, cuda="12.1", arch="sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90"):
    """A `torch` package with the attributes the probe reads: a CUDA build we cannot
    install here (the CUDA wheels are gigabytes)."""
    pkg = root / "torch"
    pkg.mkdir(parents=True)
    # As torch's setup.py generates it; preflight reads this file instead of importing.
    (pkg / "version.py").write_text(
        "from typing import Optional\n"
        f"__version__ = '2.5.1+cu{cuda.replace('.', '')}'\ndebug = False\n"
        f"cuda: Optional[str] = {cuda!r}\nhip: Optional[str] = None\n")
    # Every import of this torch, by any process, appends a line to $FAKE_TORCH_IMPORTS.
    (pkg / "__init__.py").write_text(
        "import os\n"
        "if os.environ.get('FAKE_TORCH_IMPORTS'):\n"
        "    with open(os.environ['FAKE_TORCH_IMPORTS'], 'a') as f:\n"
        "        f.write(f'{os.getpid()}\\n')\n"
        "from torch import version\nfrom torch.version import __version__\n"
        f"class _C:\n    @staticmethod\n    def _cuda_getArchFlags():\n        return {arch!r}\n")
    return root


def fake_toolkit(root, release):
    nvcc = root / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text("#!/bin/sh\necho 'nvcc: NVIDIA (R) Cuda compiler driver'\n"
                    f"echo 'Cuda compilation tools, release {release}, V{release}.105'\n")
    nvcc.chmod(0o755)
    return root


def stack_env(tmp_path, cuda="12.1", arch="sm_80 sm_86 sm_90", nvcc="12.1"):
    torch_root = fake_torch(tmp_path / f"torch-{cuda}-{arch.replace(' ', '_')}", cuda, arch)
    home = fake_toolkit(tmp_path / f"cuda-{nvcc}", nvcc)
    return gpu_env(HOME="/nonexistent", PYTHONPATH=str(torch_root), CUDA_HOME=str(home))


def test_cuda_stack_passes_when_torch_driver_and_toolkit_fit(run_preflight, tmp_path):
    run = replay(run_preflight, HEALTHY, "cuda-stack", env=stack_env(tmp_path))
    result = run.one("cuda-stack")
    assert result["outcome"] == "passed", run.output[-2000:]
    assert result["evidence"]["torch_cuda"] == "12.1"
    assert result["evidence"]["driver_cuda"] == "12.2"
    assert result["evidence"]["nvcc_release"] == "12.1"


def test_cuda_stack_fails_on_an_old_driver(run_preflight, tmp_path):
    run = replay(run_preflight, NVML_DIR / "a800x4-old-driver.json", "cuda-stack",
                 env=stack_env(tmp_path))
    result = run.one("cuda-stack")
    assert result["severity"] == "blocker"
    assert "driver supports CUDA 11.4 but torch was built with CUDA 12.1" in result["summary"]
    assert "whl/cu118" in result["fix"] and '"torch==2.5.1+cu118"' in result["fix"]


def test_cuda_stack_reads_cuda_home_as_the_launch_script_exports_it(run_preflight, tmp_path):
    env = stack_env(tmp_path, nvcc="13.0")  # this shell: a CUDA 13 toolkit
    good = fake_toolkit(tmp_path / "cuda-12.1", "12.1")
    script = tmp_path / "run.sh"
    script.write_text(f"export CUDA_HOME={good}\npython3 train.py\n")
    run = replay(run_preflight, HEALTHY, "cuda-stack", env=env,
                 extra=("--launch-script", str(script)))
    result = run.one("cuda-stack")
    assert result["outcome"] == "passed", run.output[-2000:]
    assert result["evidence"]["cuda_home"] == str(good)


def test_cuda_stack_fails_without_kernels_for_sm80(run_preflight, tmp_path):
    run = replay(run_preflight, HEALTHY, "cuda-stack",
                 env=stack_env(tmp_path, arch="sm_90 sm_100"))
    result = run.one("cuda-stack")
    assert result["severity"] == "blocker"
    assert "torch has no kernels for sm_80" in result["summary"]


def test_cuda_stack_fails_on_an_nvcc_major_mismatch(run_preflight, tmp_path):
    env = stack_env(tmp_path, nvcc="13.0")
    run = replay(run_preflight, HEALTHY, "cuda-stack", env=env)
    result = run.one("cuda-stack")
    assert result["severity"] == "blocker"
    assert "nvcc 13.0" in result["summary"] and "torch was built with CUDA 12.1" in \
        result["summary"]
    # no CUDA 12 toolkit beside it (nor, on this box, under /usr/local): no made-up path
    if not Path("/usr/local/cuda-12.1/bin/nvcc").exists():
        assert "export CUDA_HOME=/usr/local/cuda-12.1" not in result["fix"], result["fix"]
    # a CUDA 12.1 toolkit (with libcudart) installed beside the 13.0 one: the fix names it,
    # and it works
    other = _cudart(fake_toolkit(tmp_path / "cuda-12.1", "12.1"))
    result = replay(run_preflight, HEALTHY, "cuda-stack", env=env).one("cuda-stack")
    assert f"export CUDA_HOME={other}" in result["fix"], result["fix"]
    fixed = replay(run_preflight, HEALTHY, "cuda-stack", env={**env, "CUDA_HOME": str(other)})
    assert fixed.one("cuda-stack")["outcome"] == "passed", fixed.output[-2000:]


def _cudart(home):
    """A real libcudart.so in HOME/lib64 (gcc-built), what `-lcudart` links against."""
    lib = home / "lib64"
    lib.mkdir(parents=True)
    src = home / "cudart.c"
    src.write_text("int cudaRuntimeGetVersion(int *v) { *v = 12010; return 0; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib / "libcudart.so"), str(src)],
                   check=True)
    return home


def test_cudart_link_and_cuda_stack_fixes_agree(run_preflight, tmp_path):
    """cudart-link once said `export CUDA_HOME=/usr/local/cuda` (a CUDA 13 toolkit here)
    under a CUDA 12 torch, which cuda-stack then failed. Both now name the toolkit of
    torch's major that has libcudart, and applying it passes both."""
    env = stack_env(tmp_path, nvcc="13.0")  # CUDA_HOME: a CUDA 13 toolkit without libcudart
    kits = Path(env["CUDA_HOME"]).parent
    good = _cudart(fake_toolkit(kits / "cuda-12.1", "12.1"))
    fake_toolkit(kits / "cuda-12.4", "12.4")  # torch's major, but nothing to link against
    run = replay(run_preflight, HEALTHY, "cuda-stack", "cudart-link", env=env)
    stack, link = run.one("cuda-stack"), run.one("cudart-link")
    assert stack["severity"] == link["severity"] == "blocker", run.output[-3000:]
    named = f"export CUDA_HOME={good}"
    assert stack["fix"].startswith(named) and link["fix"].startswith(named), \
        (stack["fix"], link["fix"])
    fixed = replay(run_preflight, HEALTHY, "cuda-stack", "cudart-link",
                   env={**env, "CUDA_HOME": str(good)})
    assert [c["outcome"] for c in fixed.report["checks"]] == ["passed", "passed"], \
        fixed.output[-3000:]
    # no toolkit of torch's major has libcudart: both say so and how to get one
    (good / "lib64" / "libcudart.so").unlink()
    run = replay(run_preflight, HEALTHY, "cuda-stack", "cudart-link", env=env)
    for check in ("cuda-stack", "cudart-link"):
        fix = run.one(check)["fix"]
        assert "conda install -y -c nvidia cuda-toolkit=12.1" in fix, fix
        assert "export CUDA_HOME=/usr/local/cuda\n" not in fix + "\n", fix


def test_installed_toolkits_include_the_job_conda_env(tmp_path):
    """conda's cuda-toolkit in the job's env is a toolkit both checks may name (its version
    from its own nvcc), once, whatever links lead to it."""
    from preflight.probes import cuda
    from preflight.run import Runner

    prefix = _cudart(fake_toolkit(tmp_path / "envs" / "train", "12.4"))
    (tmp_path / "link").symlink_to(prefix)
    kits = cuda.installed(Runner(), {"CONDA_PREFIX": str(tmp_path / "link")}, "/nonexistent/x")
    assert [k for k in kits if k.path == str(prefix)] == [cuda.Kit(str(prefix), "12.4", True)]
    chosen = cuda.choose(kits, "12.4")
    assert chosen is not None and chosen.version == "12.4" and chosen.cudart, kits


def test_cuda_stack_fails_on_the_real_cpu_only_torch(run_preflight):
    """No fake: this machine's torch 2.13.0+cpu under a GPU profile."""
    run = replay(run_preflight, HEALTHY, "cuda-stack")
    result = run.one("cuda-stack")
    assert result["severity"] == "blocker" and "CPU-only build" in result["summary"]


def test_static_stage_imports_torch_once_then_reads_the_arch_cache(run_preflight, tmp_path):
    """No process of the static stage imports torch once the arch-list cache is filled:
    the fake torch logs every import, by the pytest process or any child."""
    imports = tmp_path / "imports.log"
    env = stack_env(tmp_path) | {"FAKE_TORCH_IMPORTS": str(imports),
                                 "PREFLIGHT_CACHE_DIR": str(tmp_path / "cache")}
    first = replay(run_preflight, HEALTHY, env=env, extra=("-m", "a800 and static"))
    stack = first.one("cuda-stack")
    assert stack["outcome"] == "passed", first.output[-2000:]
    assert len(imports.read_text().split()) == 1  # the one child that fills the cache
    assert stack["evidence"]["torch_imported"] is True
    assert "cache filled" in stack["evidence"]["read_from"]["arch_list"]
    assert stack["evidence"]["read_from"]["cuda"] == "torch/version.py"

    again = replay(run_preflight, HEALTHY, env=env, extra=("-m", "a800 and static"))
    stack = again.one("cuda-stack")
    assert stack["outcome"] == "passed" and stack["evidence"]["torch_imported"] is False
    assert stack["evidence"]["read_from"]["arch_list"].startswith("cache ")
    assert stack["evidence"]["arch_list"] == ["sm_80", "sm_86", "sm_90"]
    assert len(imports.read_text().split()) == 1, "a static run imported torch"
    assert len(again.report["checks"]) > 10  # the whole static stage ran


def test_a_changed_torch_install_refills_the_cache(run_preflight, tmp_path):
    env = stack_env(tmp_path) | {"PREFLIGHT_CACHE_DIR": str(tmp_path / "cache")}
    replay(run_preflight, HEALTHY, "cuda-stack", env=env)
    version_py = next(tmp_path.glob("torch-*/torch/version.py"))
    version_py.write_text(version_py.read_text() + "# rebuilt\n")  # new size: a new key
    torch_init = version_py.with_name("__init__.py")
    torch_init.write_text(torch_init.read_text().replace("sm_80 sm_86 sm_90", "sm_90 sm_100"))
    result = replay(run_preflight, HEALTHY, "cuda-stack", env=env).one("cuda-stack")
    assert result["evidence"]["torch_imported"] is True
    assert "torch has no kernels for sm_80" in result["summary"]


def test_cpu_only_torch_is_judged_without_any_child(run_preflight):
    result = replay(run_preflight, HEALTHY, "cuda-stack").one("cuda-stack")
    assert result["evidence"]["torch_imported"] is False
    assert result["evidence"]["torch_cuda"] is None
    assert result["evidence"]["torch"] == importlib.metadata.version("torch")


# -- nccl-env ------------------------------------------------------------------------------


def test_nccl_env_passes_when_clean_and_warns_without_debug(run_preflight):
    quiet = replay(run_preflight, HEALTHY, "nccl-env").one("nccl-env")
    assert quiet["outcome"] == "passed" and quiet["severity"] == "warning"
    assert "NCCL_DEBUG is unset" in quiet["summary"]
    assert quiet["fix"].startswith("export NCCL_DEBUG=WARN")
    clean = replay(run_preflight, HEALTHY, "nccl-env",
                   env=gpu_env(HOME="/nonexistent", NCCL_DEBUG="WARN")).one("nccl-env")
    assert clean["severity"] == "ok"


def test_nccl_p2p_disable_in_the_environment_fails(run_preflight):
    run = replay(run_preflight, HEALTHY, "nccl-env",
                 env=gpu_env(HOME="/nonexistent", NCCL_DEBUG="WARN", NCCL_P2P_DISABLE="1"))
    result = run.one("nccl-env")
    assert result["severity"] == "blocker"
    assert "NCCL_P2P_DISABLE=1 from environment" in result["summary"]
    assert result["fix"] == "unset NCCL_P2P_DISABLE"


def test_nccl_p2p_disable_hidden_in_nccl_conf_fails(run_preflight, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    conf = home / ".nccl.conf"
    conf.write_text("NCCL_P2P_DISABLE=1\n")
    env = gpu_env(HOME=str(home), NCCL_DEBUG="WARN")
    result = replay(run_preflight, HEALTHY, "nccl-env", env=env).one("nccl-env")
    assert result["severity"] == "blocker"
    assert f"from {conf}" in result["summary"]
    assert f"sed -i '/^NCCL_P2P_DISABLE=/d' {conf}" == result["fix"]
    conf.write_text("NCCL_P2P_DISABLE=0\n")
    assert replay(run_preflight, HEALTHY, "nccl-env", env=env).one("nccl-env")["severity"] \
        == "ok"


def test_nccl_p2p_disable_the_launch_script_exports_is_judged_and_repaired(run_preflight,
                                                                         tmp_path):
    """The job gets what the launch script exports, not this shell's NCCL settings: a
    script's `export NCCL_P2P_DISABLE=1` cripples NVLink (GO before), a script that unsets
    the shell's is clean (NO-GO before). The fix edits the script's line, and running it
    (real bash, real sed) repairs the script."""
    train = tmp_path / "train.py"
    train.write_text("print('x')\n")
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/bash\nexport NCCL_P2P_DISABLE=1\n"
                      f"torchrun --nproc_per_node 4 {train}\n")
    env = gpu_env(HOME="/nonexistent", NCCL_DEBUG="WARN")
    args = ("--launch-script", str(script))
    result = replay(run_preflight, HEALTHY, "nccl-env", env=env, extra=args).one("nccl-env")
    assert result["severity"] == "blocker", result
    assert f"NCCL_P2P_DISABLE=1 from {script}:2" in result["summary"]
    assert result["fix"] == f"sed -i '2a export NCCL_P2P_DISABLE=0' {script}"
    subprocess.run(["bash", "-c", result["fix"]], check=True, timeout=30)
    fixed = replay(run_preflight, HEALTHY, "nccl-env", env=env, extra=args).one("nccl-env")
    assert fixed["severity"] == "ok", fixed
    # on the launch line itself (`NCCL_P2P_DISABLE=1 torchrun ...`) the value is edited
    script.write_text(f"#!/bin/bash\nNCCL_P2P_DISABLE=1 torchrun --nproc_per_node 4 {train}\n")
    inline = replay(run_preflight, HEALTHY, "nccl-env", env=env, extra=args).one("nccl-env")
    assert inline["severity"] == "blocker", inline
    subprocess.run(["bash", "-c", inline["fix"]], check=True, timeout=30)
    assert script.read_text().splitlines()[1].startswith("NCCL_P2P_DISABLE=0 torchrun")
    # the shell's NCCL_P2P_DISABLE=1 does not reach a job whose script unsets it
    script.write_text(f"#!/bin/bash\nunset NCCL_P2P_DISABLE\ntorchrun --nproc_per_node 4 "
                      f"{train}\n")
    clean = replay(run_preflight, HEALTHY, "nccl-env", extra=args,
                   env={**env, "NCCL_P2P_DISABLE": "1"}).one("nccl-env")
    assert clean["severity"] == "ok", clean
    # a --launch-cmd is no file to edit: the fix says what to give the command instead
    cmd = replay(run_preflight, HEALTHY, "nccl-env", env=env, extra=(
        "--launch-cmd", f"NCCL_P2P_DISABLE=1 torchrun --nproc_per_node 4 {train}")
    ).one("nccl-env")
    assert cmd["severity"] == "blocker" and "sed" not in cmd["fix"], cmd
    assert "give it NCCL_P2P_DISABLE=0" in cmd["why"], cmd


def test_nccl_conf_is_read_as_nccl_reads_it(run_preflight, tmp_path):
    """NCCL takes a config line's value verbatim (src/misc/param.cc setEnvFile) and parses
    it with strtoll base 0: `NCCL_P2P_DISABLE="1"` is 0 there (P2P stays on), `0x1` is 1,
    `export NCCL_P2P_DISABLE=1` sets a variable named `export NCCL_P2P_DISABLE`."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.strtoll.restype = ctypes.c_longlong
    libc.strtoll.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    conf = tmp_path / "nccl.conf"
    env = gpu_env(HOME="/nonexistent", NCCL_DEBUG="WARN", NCCL_CONF_FILE=str(conf))
    for line in ('NCCL_P2P_DISABLE="1"', "NCCL_P2P_DISABLE='1'", "export NCCL_P2P_DISABLE=1",
                 "NCCL_P2P_DISABLE=0x1", "NCCL_P2P_DISABLE=1 # off", "NCCL_P2P_DISABLE=010"):
        conf.write_text(line + "\n")
        value = line.split("=", 1)[1] if line.startswith("NCCL_P2P_DISABLE=") else ""
        disabled = libc.strtoll(value.encode(), None, 0) != 0  # NCCL's own parse
        result = replay(run_preflight, HEALTHY, "nccl-env", env=env).one("nccl-env")
        assert (result["severity"] == "blocker") == disabled, (line, result)


def test_nccl_ib_disable_and_missing_topo_file_on_h100(run_preflight, tmp_path):
    env = gpu_env(HOME="/nonexistent", NCCL_DEBUG="WARN", NCCL_IB_DISABLE="1",
                  NCCL_TOPO_FILE=str(tmp_path / "topo.xml"))
    result = replay(run_preflight, NVML_DIR / "h100x8-healthy.json", "nccl-env",
                    profile="h100", env=env).one("nccl-env")
    assert result["severity"] == "blocker"
    assert "NCCL_IB_DISABLE=1" in result["summary"] and "does not exist" in result["summary"]
    (tmp_path / "topo.xml").write_text("<system version=\"1\"></system>\n")
    env.pop("NCCL_IB_DISABLE")
    fixed = replay(run_preflight, NVML_DIR / "h100x8-healthy.json", "nccl-env",
                   profile="h100", env=env).one("nccl-env")
    assert fixed["severity"] == "ok"


def test_detection_picks_the_profile_of_each_recorded_node(run_preflight):
    for name, profile in (("h100x8-healthy", "h100"), ("h20x8-healthy", "h20"),
                          ("h200x8-healthy", "h200"), ("a800x4-healthy", "a800")):
        run = run_preflight("--nvml-replay", str(NVML_DIR / f"{name}.json"),
                            "--check", "gpu-inventory", env=gpu_env())
        assert run.report["profile"] == profile, run.output[-1500:]
        assert run.returncode == 0, run.output[-1500:]


def test_nothing_is_left_running(run_preflight, tmp_path):
    """The torch and nvcc probes run in their own sessions, bounded, and are reaped."""
    import psutil

    replay(run_preflight, HEALTHY, "cuda-stack", env=stack_env(tmp_path))
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"])
                 if any("_cuda_getArchFlags" in arg or str(tmp_path) in arg
                        for arg in p.info["cmdline"] or ())]
    assert not leftovers


# -- the launch analysis feeds gpu-inventory and disk-space --------------------------------


def test_processes_per_node_come_from_the_launch_command(run_preflight):
    args = ("--launch-cmd", "torchrun --nproc_per_node 8 train.py")
    run = replay(run_preflight, HEALTHY, "gpu-inventory", extra=args)
    node = results(run, "gpu-inventory")["a800"]
    assert node["severity"] == "blocker"
    assert node["evidence"]["processes_per_node_from"] == "launch analysis"
    assert "4 GPU(s) visible to the job but 8 processes per node" in node["summary"]
    fixed = replay(run_preflight, HEALTHY, "gpu-inventory",
                   extra=("--launch-cmd", "torchrun --nproc_per_node 4 train.py"))
    assert results(fixed, "gpu-inventory")["a800"]["outcome"] == "passed"


def test_disk_space_reads_the_launch_output_dirs(run_preflight, tmp_path):
    site = tmp_path / "profiles"
    site.mkdir()
    (site / "site.toml").write_text('extends = "cpu"\n[disk]\nmin_free_gb = 1000000.0\n')
    out = tmp_path / "exp" / "run1"
    run = run_preflight("--profile-dir", str(site), "--profile", "site", "--check",
                        "disk-space", "--launch-cmd", f"python train.py --output_dir {out}",
                        env=gpu_env())
    result = run.one("disk-space")
    assert result["severity"] == "blocker", run.output[-2000:]
    assert result["evidence"]["paths"][0]["path"] == str(out)


# -- h200 and a 1-GPU site profile ---------------------------------------------------------


SITE = FIXTURES.parent / "benchmarks" / "site"


def test_h200_profile_is_go_on_the_8_gpu_node_and_nogo_on_one_gpu(run_preflight, tmp_path):
    h200 = NVML_DIR / "h200x8-healthy.json"
    checks = ("profile-match", "gpu-inventory", "gpu-health")
    eight = replay(run_preflight, h200, *checks, profile="h200")
    assert eight.report["profile"] == "h200"
    assert all(c["outcome"] == "passed" for c in eight.report["checks"]), eight.output[-2000:]
    alone = tmp_path / "h200x1.json"
    data = json.loads(h200.read_text())
    data["gpus"] = data["gpus"][:1]
    alone.write_text(json.dumps(data))
    run = replay(run_preflight, alone, *checks, profile="h200")
    assert run.returncode == 1
    assert "1 of 8 expected H200" in results(run, "profile-match")["h200"]["summary"]


def test_one_h200_is_go_with_the_short_site_profile(run_preflight, tmp_path):
    alone = tmp_path / "h200x1.json"
    data = json.loads((NVML_DIR / "h200x8-healthy.json").read_text())
    data["gpus"] = data["gpus"][:1]
    for link in data["gpus"][0]["nvlink"]:
        link["active"] = False  # a lone GPU of an HGX board: its links lead nowhere
    alone.write_text(json.dumps(data))
    # Detection: the site profile (count 1) matches, the built-in h200 (count 8) does not.
    run = run_preflight("--profile-dir", str(SITE), "--nvml-replay", str(alone),
                        "--check", "profile-match", "--check", "gpu-inventory",
                        "--check", "gpu-health", env=gpu_env(HOME="/nonexistent"))
    assert run.report["profile"] == "h200x1", run.output[-1500:]
    assert run.returncode == 0, run.output[-2000:]
    assert {c["outcome"] for c in run.report["checks"]} == {"passed"}


def test_leftover_a_live_job_of_yours_on_another_gpu_is_not_in_the_way(run_preflight,
                                                                        tmp_path):
    """A live torchrun of yours (its launcher, this test, alive) holding memory on GPU 3:
    with CUDA_VISIBLE_DEVICES=0,1 the new job never touches GPU 3 (a WARN naming it);
    with all GPUs visible it is in the job's way (a blocker whose fix looks first). It
    was 'left from an earlier run' with `kill PID` either way."""
    import socket

    agent = tmp_path / "torchrun"
    agent.write_text("import time\ntime.sleep(120)\n")
    live = subprocess.Popen([sys.executable, str(agent), "--nproc_per_node", "2", "x.py"])
    try:
        path = snapshot(tmp_path, {"host": {"hostname": socket.gethostname()}, "gpus": {"3": {
            "processes": [{"pid": live.pid, "used_memory_bytes": 31 * 2**30}],
            "memory_used_bytes": 31 * 2**30, "memory_free_bytes": 49 * 2**30}}})
        port = gpu_env(HOME="/nonexistent", MASTER_PORT="29999")
        apart = replay(run_preflight, path, "leftover-processes",
                       env={**port, "CUDA_VISIBLE_DEVICES": "0,1"})
        shared = replay(run_preflight, path, "leftover-processes", env=port)
    finally:
        live.kill()
        live.wait()
    [side] = results(apart, "leftover-processes").values()
    assert live.pid in [p["pid"] for p in side["evidence"]["other_jobs"]], side
    assert live.pid not in [p["pid"] for p in side["evidence"]["in_the_way"]], side
    [way] = results(shared, "leftover-processes").values()
    [held] = [p for p in way["evidence"]["in_the_way"] if p["pid"] == live.pid]
    assert held["holds"] == ["holds GPU memory on a GPU of the job"], held
    assert way["severity"] == "blocker" and shared.returncode == 1, way
    assert live.pid not in [p["pid"] for p in way["evidence"]["processes"]]  # not "left over"
