"""What `cluster --ray` gives each node's preflight, without a Ray cluster: the variables
passed on (node_env), the profile swap as the node resolves its profile (swap, node_task
run here for real: the node's preflight is a real child), the rerun lines, and a node
whose preflight is older than the driver's."""

from __future__ import annotations

import json

import pytest
from support import FIXTURES, base_env

NO_GPU = str(FIXTURES / "nvml" / "no-nvml.json")
A800 = str(FIXTURES / "nvml" / "a800x4-healthy.json")


def test_the_jobs_communication_settings_go_to_the_nodes_never_a_secret(tmp_path,
                                                                      monkeypatch):
    from preflight.cluster.node_env import for_nodes

    dotenv = tmp_path / ".env"
    dotenv.write_text("WANDB_PROJECT=ifnamefromdotenv\nMASTER_PORT=29500\n")
    environ = {
        "NCCL_DEBUG": "INFO", "NCCL_SOCKET_IFNAME": "eth0", "GLOO_SOCKET_IFNAME": "eth0",
        "USE_LIBUV": "0", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
        "PREFLIGHT_PROFILE": "h100", "PREFLIGHT_REPORT_DIR": "/elsewhere",
        "NCCL_IB_TOKEN": "tok-abcdef123",  # secret-named
        "HF_TOKEN": "hf_" + "a" * 30,  # a secret of this shell, not passed on itself ...
        "NCCL_NET_PLUGIN": "hf_" + "a" * 30,  # ... nor as another variable's value
        "GLOO_DEVICE_TRANSPORT": "ifnamefromdotenv",  # a .env value
        "NCCL_TOPO_FILE": "$HOME/topo.xml",  # Ray expands `$` on the node
        "PREFLIGHT_LAUNCH_CMD": "swift sft --hf_token abcdef123456",  # a secret by shape
        "PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0",  # not the job's communication
    }
    got = for_nodes(["--env-file", str(dotenv)], environ)
    assert got.env_vars == {
        "GLOO_SOCKET_IFNAME": "eth0", "NCCL_DEBUG": "INFO", "NCCL_SOCKET_IFNAME": "eth0",
        "PREFLIGHT_PROFILE": "h100", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
        "USE_LIBUV": "0"}
    assert got.left_out == {
        "GLOO_DEVICE_TRANSPORT": "its value is a secret or a `.env` value",
        "NCCL_IB_TOKEN": "secret-named",
        "NCCL_NET_PLUGIN": "its value is a secret or a `.env` value",
        "NCCL_TOPO_FILE": "Ray would expand the `$` in its value on the node",
        "PREFLIGHT_LAUNCH_CMD": "its value is a secret or a `.env` value"}
    assert got.runtime_env() == {"env_vars": got.env_vars}
    # ./.env when no --env-file names one, as the node's plugin reads it
    monkeypatch.chdir(tmp_path)
    assert "GLOO_DEVICE_TRANSPORT" in for_nodes([], environ).left_out
    assert for_nodes([], {"PATH": "/usr/bin"}).runtime_env() is None


def test_the_node_settings_passed_on_are_the_plugins_but_the_report_dir():
    from preflight.cluster.node_env import SETTINGS
    from preflight.plugin import SETTINGS as PLUGIN

    assert SETTINGS == {f"PREFLIGHT_{key.upper()}" for key, _, _ in PLUGIN.values()} - {
        "PREFLIGHT_REPORT_DIR"}


@pytest.mark.parametrize("argv, environ, swapped, instead_of", [
    (["--profile", "a800", "--check", "x"], {}, ["--profile", "cpu", "--check", "x"], "a800"),
    (["--profile=h100"], {}, ["--profile=cpu"], "h100"),
    (["--profile", "a800", "--profile", "h20"], {},
     ["--profile", "cpu", "--profile", "cpu"], "h20"),  # the last one counts (argparse)
    (["--check", "x"], {"PREFLIGHT_PROFILE": "a800"}, ["--profile", "cpu", "--check", "x"],
     "a800"),  # the environment: the command line comes first
    (["-o", "preflight_profile=h100"], {}, ["--profile", "cpu", "-o", "preflight_profile=h100"],
     "h100"),  # the ini (the `preflight` command's gate.ini, overridden)
    (["--override-ini=preflight_profile=h100"], {},
     ["--profile", "cpu", "--override-ini=preflight_profile=h100"], "h100"),
    (["-m", "(a800 or h100) and not h20 and not workload"], {},
     ["-m", "(cpu or cpu) and not h20 and not workload"], "h100"),
    (["-ma800"], {}, ["-mcpu"], "a800"),
    (["-m", "not a800"], {}, ["-m", "not a800"], ""),
    (["-m", "workload"], {}, ["-m", "workload"], ""),
    (["--profile", "cpu", "-m", "a800"], {"PREFLIGHT_PROFILE": "a800"},
     ["--profile", "cpu", "-m", "a800"], ""),  # --profile cpu chosen: nothing to swap
    (["--profile", "nosuch"], {}, ["--profile", "nosuch"], ""),  # the node says so itself
    (["--profile-dir", "a800"], {}, ["--profile-dir", "a800"], ""),
    ([], {}, [], ""),  # each node detects its own: no GPU is `cpu`
])
def test_the_swap_acts_on_the_profile_the_node_resolves(argv, environ, swapped, instead_of):
    from preflight.cluster import swap
    from preflight.profiles import load_profiles

    assert swap.cpu_argv(argv, environ, load_profiles([])) == (swapped, instead_of)


def run_node(monkeypatch, argv: list[str], no_gpu_offered: bool, **env: str) -> dict:
    """node_task as Ray runs it on a node, here: the node's preflight is a real child."""
    from preflight.cluster.fanout_ray import node_task

    for key in list(__import__("os").environ):
        monkeypatch.delenv(key)
    for key, value in {**base_env(), **env}.items():
        monkeypatch.setenv(key, value)
    return node_task("node-1", argv, 120.0, no_gpu_offered=no_gpu_offered)


@pytest.mark.parametrize("argv, env", [
    (["--check", "conda-env"], {"PREFLIGHT_PROFILE": "a800"}),
    (["-m", "a800", "--check", "conda-env"], {}),
    (["-o", "preflight_profile=a800", "--check", "conda-env"], {}),
])
def test_a_node_ray_offers_no_gpu_runs_cpu_in_place_of_the_gpu_profile_it_resolves(
        monkeypatch, argv, env):
    """Only `--profile` on the command line was swapped: PREFLIGHT_PROFILE (this shell's,
    now passed on, or the node's own), the ini and `-m` ran the GPU profile on a CPU-only
    head, which failed its own GPU checks. The node's preflight is the oracle: its
    report's profile."""
    answer = run_node(monkeypatch, ["--nvml-replay", NO_GPU, *argv], True, **env)
    report = json.loads(answer["report"])
    assert report["profile"] == "cpu", answer
    assert (answer["profile_swapped"], answer["profile_instead_of"]) == (True, "a800")
    assert "a800" not in " ".join(a for a in answer["argv"] if "preflight_profile" not in a)
    # where it finds GPUs, the profile it resolved: its GPUs are judged
    answer = run_node(monkeypatch, ["--nvml-replay", A800, *argv], True, **env)
    assert json.loads(answer["report"])["profile"] == "a800", answer
    assert (answer["profile_swapped"], answer["profile_instead_of"]) == (False, "")
    assert answer["argv"] == ["--nvml-replay", A800, *argv]


def test_a_node_ray_offers_gpus_keeps_the_profile(monkeypatch):
    answer = run_node(monkeypatch, ["--nvml-replay", NO_GPU, "--check", "conda-env"], False,
                      PREFLIGHT_PROFILE="a800")
    assert json.loads(answer["report"])["profile"] == "a800"
    assert not answer["profile_swapped"]


def answer_of(argv: list[str], instead_of: str = "") -> dict:
    return {"hostname": "head", "returncode": None, "timed_out": True, "elapsed_s": 9.0,
            "bound_s": 9.0, "report": None, "error": "", "argv": argv,
            "profile_swapped": bool(instead_of), "profile_instead_of": instead_of}


class FakeRay:
    """ray.get of one finished task: its answer, or the exception it raised."""

    def __init__(self, result: object) -> None:
        self.result = result

    def get(self, ref: object) -> object:
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


INFO = {"NodeID": "ab" * 28, "NodeManagerHostname": "head", "NodeManagerAddress": "10.0.0.1",
        "Resources": {"CPU": 4.0}}


def test_a_timed_out_nodes_rerun_is_what_it_ran():
    """The rerun line of a node whose preflight timed out after a swap showed the options
    it was given (`--profile a800`), not those it ran (`--profile cpu`)."""
    from preflight.cluster.fanout_ray import _collect

    ran = ["--profile", "cpu", "--check", "x"]
    node, died = _collect(FakeRay(answer_of(ran, "a800")), None, INFO,
                          ["--check", "x"], {"PREFLIGHT_PROFILE": "a800", "NCCL_DEBUG": "a b"})
    assert not died
    # with the variables it was given (node_env), as it ran
    assert node.extra["fix"].startswith(
        "'NCCL_DEBUG=a b' PREFLIGHT_PROFILE=a800 preflight -v --profile cpu --check x   # on "
        "it alone: what does not finish within 9s"), node.extra
    assert node.extra["profile_instead_of"] == "a800"
    # an older node's answer has no argv: the options it was given
    old = answer_of(ran)
    del old["argv"]
    node, _ = _collect(FakeRay(old), None, INFO, ["--check", "x"])
    assert node.extra["fix"].startswith("preflight -v --check x   # on it alone")


def test_a_node_that_did_not_answer_has_both_reruns(monkeypatch):
    """No answer: the driver cannot tell whether it found a GPU (and swapped)."""
    from preflight.cluster.fanout_ray import Plan, _pending_rerun, node_args_for
    from preflight.cluster.node_env import NodeEnv

    plan = Plan(["--check", "x", "--hf-token", "hf_" + "b" * 30], 10.0, [], set(),
                env=NodeEnv({"PREFLIGHT_PROFILE": "h100"}))
    given = node_args_for(INFO, plan)
    assert given == (["--profile", "cpu", *plan.node_args], "h100")
    assert _pending_rerun(given, plan.node_args, 10.0, plan.env.env_vars).splitlines() == [
        "PREFLIGHT_PROFILE=h100 preflight -v --profile cpu --check x --hf-token '***'   # on "
        "it alone: what does not finish within 10s (it ran profile cpu in place of h100 if "
        "it found no GPU)",
        "PREFLIGHT_PROFILE=h100 preflight -v --check x --hf-token '***'   # if it found GPUs"]
    gpu = {**INFO, "Resources": {"GPU": 8.0}}
    assert node_args_for(gpu, plan) == ([], "")
    assert _pending_rerun(node_args_for(gpu, plan), plan.node_args, 10.0) == (
        "preflight -v --check x --hf-token '***'   # on it alone: what does not finish "
        "within 10s")


def test_a_node_with_an_older_preflight_says_so_with_the_upgrade():
    """Ray imports node_task from the node's own installation: an older one does not take
    `no_gpu_offered`, and the node was UNKNOWN with a bare TypeError."""
    from preflight import __version__
    from preflight.cluster.fanout_ray import _collect

    def node_task(node_id, argv, timeout, cpu_argv=None):  # the previous release's
        raise AssertionError("not reached")

    try:
        node_task("n", [], 1.0, no_gpu_offered=True)  # type: ignore[call-arg]
    except TypeError as exc:
        error = exc
    node, died = _collect(FakeRay(error), None, INFO, ["--profile", "a800"])
    assert not died and node.report is None and node.verdict == "UNKNOWN"
    assert node.reason.startswith("its preflight is older than this one"), node.reason
    assert node.extra["fix"].startswith(f"pip install -U 'pytest-preflight=={__version__}'")
    other, died = _collect(FakeRay(TypeError("something else")), None, INFO, [])
    assert died and other.reason == "the task failed: TypeError: something else"
