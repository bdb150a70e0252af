"""The node-environment judges in-process, from tables: typed facts -> the deciding kind,
the message, the fix, or the skip. The end-to-end runs through the plugin stay in
tests/test_checks_node.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from preflight.judges import node as judge
from preflight.model import Kind, Verdict
from preflight.probes import http, wandb
from preflight.probes.cuda import Kit, LibLayout
from preflight.probes.http import Answer
from preflight.probes.netif import Interface
from preflight.profiles import load_profiles

PROFILES = load_profiles([])
CPU, A800 = PROFILES["cpu"], PROFILES["a800"]


@dataclass(frozen=True)
class Want:
    """The deciding kind (None: passes or skips), texts in the message, texts in the fix
    (what the report shows), the skip reason's start, the `ok` summary's start."""

    kind: Kind | None = None
    says: tuple[str, ...] = ()
    fix: tuple[str, ...] = ()
    skip: str = ""
    ok: str = ""
    evidence: tuple[tuple[str, Any], ...] = ()


def shown_fix(v: Verdict) -> str:
    """What Recorder.conclude records as the fix."""
    if v.skip:
        return v.fix
    return "\n".join(dict.fromkeys(p.fix for p in v.deciding if p.fix)) or v.fix


def verify(v: Verdict, want: Want) -> None:
    assert v.skip.startswith(want.skip) if want.skip else not v.skip, v.skip
    deciding = v.deciding
    assert (deciding[0].kind if deciding else None) is want.kind, v.message
    for text in want.says:
        assert text in v.message, (text, v.message)
    for text in want.fix:
        assert text in shown_fix(v), (text, shown_fix(v))
    if want.ok:
        assert not deciding and v.ok.startswith(want.ok), (v.ok, v.message)
    for key, value in want.evidence:
        assert v.evidence[key] == value, (key, v.evidence)


def gpu(name: str) -> str:
    return name  # the judge reads the NVML device names


PM = judge.ProfileMatchFacts(A800, [gpu("NVIDIA A800-SXM4-80GB")] * 4, None, "nvml")
RAY = judge.RayFacts(profile="a800", profile_runs_ray=True, launch_runs_ray=False,
                     prefix="/envs/slime", installed=True, resolved="/envs/slime/bin/ray",
                     resolved_in_env=True, path=["/envs/slime/bin", "/usr/bin"],
                     env_bin_on_path=True)
BROKEN = LibLayout("/envs/slime", ("libcudart.so", "libcudart.so.12"), False, False)
GOOD = LibLayout("/usr/local/cuda", ("libcudart.so",), True, True)
LINK_OK = judge.Link("-L/usr/local/cuda/lib64/stubs -lcudart", 0, "", "")
LINK_BAD = judge.Link("x", 1, "/usr/bin/ld: cannot find -lcudart", "")
CUDA = judge.CudartFacts("/usr/local/cuda", "CUDA_HOME", True, [GOOD], LINK_OK)
LEFT = judge.Proc(101, "me", 3.0, "sglang.launch_server", "python -m sglang.launch_server",
                  True, [30000], False, ppid=1,
                  launcher_gone="its launcher is gone (reparented to pid 1)")
RAYLET = replace(LEFT, pid=102, matched="raylet", cmdline="raylet")
# Another job of the user, running on purpose: its torchrun agent is alive, it holds no job
# port and no GPU: nothing says it is left over.
LIVE = replace(LEFT, pid=301, matched="torchrun", cmdline="torchrun train.py", listening=[],
               ppid=300, launcher_gone="", launcher="bash run.sh")
THEIRS = replace(LEFT, pid=201, user="bob", mine=False, listening=[29500])
LEFTOVER = judge.LeftoverFacts([], ["train.py"], frozenset({29500}))
FREE = judge.Bind(True, "", (), None)
HELD = judge.Bind(False, "EADDRINUSE Address already in use",
                  (judge.Holder(301, "0.0.0.0", "me", "python train.py"),
                   judge.Holder(302, "0.0.0.0", "bob", "torchrun x")), ["me", "bob", "carol"])
PORT = judge.PortFacts("MASTER_PORT", "29500", 29500, 40001, None, FREE, "me")
DOTENV = judge.DotenvFacts("cpu", "/job/.env", 2, (), False, (), (), (), False)
ANSWER = Answer("https://hf-mirror.com", 200, "", 0.1)
DOWN = Answer("https://hf-mirror.com", None, "TimeoutError: timed out", 3.0)
HF = judge.HfFacts("a800", True, 3.0, "https://hf-mirror.com", "https://hf-mirror.com", True,
                   False, ANSWER)
CONDA = judge.CondaFacts("slime", "slime", "/envs/slime")
ETH0, ETH1 = Interface("eth0", True, False), Interface("eth1", True, False)
LO, DOCKER = Interface("lo", True, True), Interface("docker0", True, False)
NCCL = judge.NcclIfnameFacts("eth", [LO, ETH0, DOCKER])
CLOUD = Answer("https://api.wandb.ai", 404, "HTTP 404", 0.2)
NONE = judge.Setting(None)
WANDB = judge.WandbFacts(
    installed=None, prefix="/envs/slime", report_to=["wandb"],
    report_to_where="--report_to wandb at run.sh:3", mode=NONE, base_url=NONE,
    key_from="the environment", key_places=["WANDB_API_KEY unset", "no /root/.netrc"],
    host="api.wandb.ai", answer=CLOUD, timeout_s=3.0)
OFFLINE_ANSWER = Answer("http://127.0.0.1:9", None, "ConnectionRefusedError", 0.0)

CASES: list[tuple[str, Callable[[Any], Verdict], Any, Want]] = [
    # profile-match
    ("pm-cpu", judge.profile_match, replace(PM, profile=CPU, gpus=[]),
     Want(ok="profile cpu requires no GPU")),
    ("pm-a800-ok", judge.profile_match, PM, Want(evidence=(("expected", "4x A800"),))),
    ("pm-a800-h100", judge.profile_match, replace(PM, gpus=[gpu("NVIDIA H100")] * 4),
     Want(Kind.BLOCKER, ("does not match profile a800: 0 of 4 expected A800",),
          ("preflight info   # the GPUs and the profile of this node",))),
    ("pm-nvml-missing", judge.profile_match, replace(PM, gpus=[], nvml_error="no NVML"),
     Want(Kind.BLOCKER, ("0 of 4 expected A800 GPU(s) present (no NVML)",))),
    # ray-path
    ("ray-ok", judge.ray_path, RAY, Want(evidence=(("env_bin", "/envs/slime/bin"),))),
    ("ray-not-in-play", judge.ray_path,
     replace(RAY, profile_runs_ray=False, installed=False, resolved=None),
     Want(skip="Ray is not in play (no /envs/slime/bin/ray")),
    ("ray-not-found", judge.ray_path,
     replace(RAY, resolved=None, env_bin_on_path=False, path=["/usr/bin"]),
     Want(Kind.BLOCKER, ("ray: command not found (PATH lacks /envs/slime/bin)",),
          ('export PATH="/envs/slime/bin:$PATH"',))),
    ("ray-bin-without-ray", judge.ray_path,
     replace(RAY, installed=False, resolved=None),
     Want(Kind.BLOCKER, ("/envs/slime/bin is on PATH but has no ray",),
          ('"/envs/slime/bin/python" -m pip install "ray[default]"',))),
    ("ray-other-env", judge.ray_path,
     replace(RAY, resolved="/opt/other/bin/ray", resolved_in_env=False),
     Want(Kind.BLOCKER, ("ray resolves to /opt/other/bin/ray, not to the launch env",))),
    # Only installed (vLLM pulls ray in), the profile runs no Ray, no launch script: nothing
    # says the job runs ray -- a WARN saying what preflight could not know, not a NO-GO.
    ("ray-installed-only-no-launch", judge.ray_path,
     replace(RAY, profile="cpu", profile_runs_ray=False, resolved=None, env_bin_on_path=False),
     Want(Kind.WARNING, ("ray: command not found (PATH lacks /envs/slime/bin",
                         "profile cpu does not run Ray", "preflight cannot know"),
          ('export PATH="/envs/slime/bin:$PATH"; which ray python3  # if the job runs ray',),
          evidence=(("in_play", ["/envs/slime/bin/ray is installed"]),))),
    # ... an analysed launch that never starts ray: not a blocker either.
    ("ray-installed-only-launch-without-ray", judge.ray_path,
     replace(RAY, profile_runs_ray=False, resolved=None, env_bin_on_path=False,
             launch_given=True),
     Want(Kind.WARNING, ("(the launch script does not run ray)",))),
    # ... a launch script that runs ray: the blocker stays.
    ("ray-installed-launch-runs-ray", judge.ray_path,
     replace(RAY, profile_runs_ray=False, resolved=None, env_bin_on_path=False,
             launch_given=True, launch_runs_ray=True),
     Want(Kind.BLOCKER, ("ray: command not found (PATH lacks /envs/slime/bin)",))),
    ("ray-launch-only", judge.ray_path,
     replace(RAY, profile_runs_ray=False, installed=False, launch_runs_ray=True,
             resolved=None, env_bin_on_path=False),
     Want(Kind.BLOCKER, ("ray: command not found",),
          evidence=(("in_play", ["the launch script runs ray"]),))),
    # cudart-link
    ("cudart-ok", judge.cudart_link, CUDA,
     Want(fix=("conda install -y -c nvidia cuda-toolkit; export CUDA_HOME=",))),
    ("cudart-none", judge.cudart_link,
     replace(CUDA, home_exists=False, layouts=[LibLayout("/none", (), False, False)]),
     Want(skip="no CUDA toolkit or runtime (cuda_home /usr/local/cuda from CUDA_HOME")),
    ("cudart-lib-without-lib64", judge.cudart_link,
     replace(CUDA, home="/envs/slime", layouts=[BROKEN], link=LINK_BAD,
             kits=(Kit("/usr/local/cuda", "12.4", True),)),
     Want(Kind.BLOCKER, ("flashinfer's JIT link would fail (cannot find -lcudart): "
                         "/envs/slime/lib has libcudart.so but lib64/ is missing; linking",),
          ("ln -sfn /envs/slime/lib /envs/slime/lib64 && export CUDA_HOME=/usr/local/cuda",))),
    ("cudart-no-cc", judge.cudart_link,
     replace(CUDA, layouts=[LibLayout("/usr/local/cuda", (), True, False)], link=None),
     Want(Kind.BLOCKER, ("/usr/local/cuda/lib64/libcudart.so does not exist (no cc",))),
    # leftover-processes
    ("left-none", judge.leftover_processes, LEFTOVER,
     Want(ok="no ray / sglang / vllm", evidence=(("patterns_extra", ["train.py"]),))),
    ("left-mine", judge.leftover_processes, replace(LEFTOVER, found=[LEFT]),
     Want(Kind.BLOCKER, ("1 process(es) left from an earlier run: sglang.launch_server[101]",),
          ("kill 101; timeout 5 bash -c 'while ps -p 101 >/dev/null; do sleep 0.2; done'; "
           "ps -o pid= -p 101 | xargs -r kill -9  # check each pid first",))),
    # Ray's among them: still only these pids (`ray stop` would stop every Ray of the user)
    ("left-ray", judge.leftover_processes, replace(LEFTOVER, found=[LEFT, RAYLET]),
     Want(Kind.BLOCKER, ("2 process(es)",),
          ("kill 101 102; timeout 5 bash -c 'while ps -p 101,102 >/dev/null; do sleep 0.2; "
           "done'; ps -o pid= -p 101,102 | xargs -r kill -9  # check",))),
    # A live job of yours (launcher alive, holding nothing the job needs) is not a leftover:
    # a WARN naming it, a fix that only looks, never a kill.
    ("left-live-job", judge.leftover_processes, replace(LEFTOVER, found=[LIVE]),
     Want(Kind.WARNING, ("1 process(es) of yours still running, holding no job port or GPU",
                         "torchrun[301] (age 3 s, launcher bash run.sh: torchrun train.py)"),
          ("ps -o pid,ppid,etime,args -p 301  # another job of yours",),
          evidence=(("processes", []),))),
    # ... until it holds the job's MASTER_PORT or GPU memory on a job GPU: then the new job
    # cannot run. Still not "left from an earlier run" (nothing says so), and the fix looks
    # first: stopping it is the user's call.
    ("left-live-holds-port", judge.leftover_processes,
     replace(LEFTOVER, found=[replace(LIVE, listening=[29500])]),
     Want(Kind.BLOCKER, ("1 process(es) of yours still running hold what this job needs (not "
                         "known to be left over): torchrun[301] (holds port 29500; launcher: "
                         "bash run.sh)",),
          ("ps -o pid,ppid,etime,args -p 301  # yours and running: if it is left from an "
           "earlier run, stop it (kill 301)",),
          evidence=(("processes", []),))),
    ("left-live-holds-gpu", judge.leftover_processes,
     replace(LEFTOVER, found=[replace(LIVE, holds_gpu=True)]),
     Want(Kind.BLOCKER, ("torchrun[301] (holds GPU memory on a GPU of the job; launcher",),
          ("ps -o pid,ppid,etime,args -p 301",))),
    # A worker whose launcher is itself left over (an orphaned agent) goes with it; a live
    # job beside them is named in the blocker, kept out of the kill.
    ("left-tree-and-live", judge.leftover_processes,
     replace(LEFTOVER, found=[LEFT, replace(LIVE, pid=103, ppid=101), LIVE]),
     Want(Kind.BLOCKER, ("2 process(es) left", "torchrun[103] (its launcher 101 is left over)",
                         "not left over (running): 301"),
          ("kill 101 103;",))),
    ("left-theirs-busy", judge.leftover_processes, replace(LEFTOVER, found=[THEIRS]),
     Want(Kind.WARNING, ("no leftover of yours; busy: user bob, pid 201 (port 29500)",),
          ("ask the owner",))),
    ("left-theirs-idle", judge.leftover_processes,
     replace(LEFTOVER, found=[replace(THEIRS, listening=[1234])]),
     Want(ok="no ray", evidence=(("busy_other_users", []),))),
    ("left-mine-and-theirs-gpu", judge.leftover_processes,
     replace(LEFTOVER, found=[LEFT, replace(THEIRS, listening=[], holds_gpu=True)]),
     Want(Kind.BLOCKER, ("; also busy: user bob, pid 201 (a GPU)",),
          ("kill 101; ", "-p 101 | xargs"))),
    # port-free
    ("port-free", judge.port_free, PORT,
     Want(fix=("export MASTER_PORT=40001",), evidence=(("bind", "ok"),))),
    ("port-garbage", judge.port_free, replace(PORT, raw="abc", number=None, bind=None),
     Want(Kind.BLOCKER, ("MASTER_PORT='abc' is not a port number",), ("MASTER_PORT=40001",))),
    ("port-remote", judge.port_free, replace(PORT, remote_master="10.0.0.2", bind=None),
     Want(skip="MASTER_ADDR 10.0.0.2 is another node", fix=("export MASTER_PORT=40001",))),
    ("port-held", judge.port_free, replace(PORT, bind=HELD, free=None),
     Want(Kind.BLOCKER, ("MASTER_PORT 29500 cannot be bound: EADDRINUSE",
                         "held by pid 301; busy: user bob, pid 302; busy: user carol (pid "
                         "not visible to me)"),
          ("kill 301  # or: export MASTER_PORT=<a free port>",))),
    # dotenv-exported
    ("dotenv-none", judge.dotenv_exported, replace(DOTENV, path=None),
     Want(skip="no .env file")),
    ("dotenv-ok", judge.dotenv_exported, DOTENV, Want(fix=("set -a; source /job/.env",))),
    ("dotenv-missing", judge.dotenv_exported,
     replace(DOTENV, missing=["HF_TOKEN"], different=["A"]),
     Want(Kind.BLOCKER, ("not exported: HF_TOKEN; exported with another value: A",),
          ("set -a; source /job/.env; set +a",))),
    ("dotenv-required", judge.dotenv_exported,
     replace(DOTENV, path=None, required=["HF_TOKEN"], required_missing=["HF_TOKEN"]),
     Want(Kind.BLOCKER, ("required by profile cpu but unset: HF_TOKEN",),
          ("source .env",))),
    ("dotenv-wandb-trap", judge.dotenv_exported,
     replace(DOTENV, path=None, wandb_key_exported=True, wandb_key_trap=True),
     Want(Kind.BLOCKER, ("WANDB_KEY is set but WANDB_API_KEY",),
          ('set -a; source .env; set +a; export WANDB_API_KEY="$WANDB_KEY"',))),
    # hf-endpoint
    ("hf-ok", judge.hf_endpoint, HF, Want(ok="https://hf-mirror.com answered HTTP 200")),
    ("hf-skip", judge.hf_endpoint, replace(HF, mirror_required=False, url="", answer=None),
     Want(skip="HF_ENDPOINT unset and the profile requires no mirror")),
    ("hf-unset", judge.hf_endpoint, replace(HF, url="", answer=None),
     Want(Kind.BLOCKER, ("profile a800 needs a HuggingFace mirror",),
          ("export HF_ENDPOINT=https://hf-mirror.com",))),
    ("hf-unset-offline", judge.hf_endpoint, replace(HF, url="", answer=None, offline=True),
     Want(ok="HF_HUB_OFFLINE=1")),
    ("hf-not-url", judge.hf_endpoint,
     replace(HF, url="ftp://x", shown_url="ftp://x", is_url=False, answer=None),
     Want(Kind.BLOCKER, ("HF_ENDPOINT='ftp://x' is not an http(s) URL",))),
    ("hf-down", judge.hf_endpoint, replace(HF, answer=DOWN),
     Want(Kind.BLOCKER, ("does not answer within 3s: TimeoutError",))),
    ("hf-down-offline", judge.hf_endpoint, replace(HF, answer=DOWN, offline=True),
     Want(Kind.WARNING, ("HF_HUB_OFFLINE=1 keeps loads local",))),
    # conda-env
    ("conda-ok", judge.conda_env, CONDA, Want(fix=("conda activate slime",))),
    ("conda-none", judge.conda_env, replace(CONDA, expected=""), Want(skip="no expected conda")),
    ("conda-wrong", judge.conda_env, replace(CONDA, actual="base"),
     Want(Kind.BLOCKER, ("CONDA_DEFAULT_ENV is 'base', expected 'slime'",),
          ("conda activate slime",))),
    # nccl-ifname
    ("nccl-ok", judge.nccl_ifname, NCCL, Want(evidence=(("selected", ["eth0"]),))),
    ("nccl-bogus", judge.nccl_ifname, replace(NCCL, spec="ib"),
     Want(Kind.BLOCKER, ("NCCL_SOCKET_IFNAME='ib' selects no interface that is up",),
          ("export NCCL_SOCKET_IFNAME=eth0",))),
    ("nccl-down", judge.nccl_ifname,
     replace(NCCL, interfaces=[LO, Interface("eth0", False, False)]),
     Want(Kind.BLOCKER, ("selects no interface",), ("^lo,docker0",))),
    ("nccl-unset-one", judge.nccl_ifname, replace(NCCL, spec=None),
     Want(skip="NCCL_SOCKET_IFNAME unset; only ['eth0'] to choose from",
          fix=("export NCCL_SOCKET_IFNAME=eth0",))),
    ("nccl-unset-two", judge.nccl_ifname, replace(NCCL, spec=None, interfaces=[ETH0, ETH1]),
     Want(Kind.WARNING, ("2 candidate interfaces (eth0, eth1)",))),
    # NCCL takes only an interface with an IPv4/IPv6 address (NVIDIA/nccl ncclFindInterfaces)
    ("nccl-no-address", judge.nccl_ifname, replace(NCCL, spec="eth1", interfaces=[
        LO, replace(ETH0, addresses=("10.0.0.2",)), replace(ETH1, addresses=())]),
     Want(Kind.BLOCKER, ("NCCL_SOCKET_IFNAME='eth1' selects eth1, which has no IPv4/IPv6 "
                         "address: NCCL takes only an interface with one",),
          ("export NCCL_SOCKET_IFNAME=eth0",))),
    ("nccl-one-of-two-has-one", judge.nccl_ifname, replace(NCCL, interfaces=[
        LO, replace(ETH0, addresses=("fe80::1%eth0",)), replace(ETH1, addresses=())]),
     Want(evidence=(("selected", ["eth0", "eth1"]),))),  # link-local IPv6 is one NCCL takes
    ("nccl-unset-one-addressed", judge.nccl_ifname, replace(NCCL, spec=None, interfaces=[
        LO, replace(ETH0, addresses=("10.0.0.2",)), replace(ETH1, addresses=())]),
     Want(skip="NCCL_SOCKET_IFNAME unset; only ['eth0'] to choose from")),
    # wandb-offline
    ("wandb-ok", judge.wandb_offline, WANDB,
     Want(ok="wandb online: API key from the environment; https://api.wandb.ai answered",
          evidence=(("api_key_from", "the environment"),))),
    ("wandb-not-in-play", judge.wandb_offline, replace(WANDB, report_to=None),
     Want(skip="wandb is not in play (not installed in /envs/slime")),
    ("wandb-reports-elsewhere", judge.wandb_offline,
     replace(WANDB, report_to=["tensorboard"], installed="/envs/slime/lib/wandb"),
     Want(skip="the launch reports to tensorboard, not wandb")),
    ("wandb-report-none", judge.wandb_offline, replace(WANDB, report_to=["none"]),
     Want(skip="the launch reports to none")),
    ("wandb-offline-mode", judge.wandb_offline,
     replace(WANDB, mode=judge.Setting("offline", "the environment"), key_from=None,
             answer=None),
     Want(ok="WANDB_MODE=offline: wandb logs locally")),
    ("wandb-disabled-mode", judge.wandb_offline,
     replace(WANDB, mode=judge.Setting("Disabled", "x.env"), key_from=None, answer=None),
     Want(ok="WANDB_MODE=Disabled")),
    ("wandb-bad-mode", judge.wandb_offline, replace(WANDB, mode=judge.Setting("ofline", "e")),
     Want(Kind.BLOCKER, ("WANDB_MODE=ofline is not a wandb mode",),
          ("export WANDB_MODE=offline",))),
    ("wandb-bad-mode-installed-only", judge.wandb_offline,
     replace(WANDB, report_to=None, installed="/x/wandb", mode=judge.Setting("0", "e")),
     Want(Kind.WARNING, ("WANDB_MODE=0 is not a wandb mode",))),
    ("wandb-no-key", judge.wandb_offline, replace(WANDB, key_from=None),
     Want(Kind.BLOCKER, ("the launch reports to wandb (--report_to wandb at run.sh:3) online: "
                         "no API key (WANDB_API_KEY unset; no /root/.netrc)",
                         "api_key not configured (no-tty)"),
          ("export WANDB_MODE=offline",))),
    ("wandb-no-key-installed-login", judge.wandb_offline,
     replace(WANDB, key_from=None, installed="/envs/slime/lib/python3.11/site-packages/wandb"),
     Want(Kind.BLOCKER, ("no API key",), ("wandb login",))),
    ("wandb-no-network", judge.wandb_offline, replace(WANDB, answer=OFFLINE_ANSWER),
     Want(Kind.BLOCKER, ("http://127.0.0.1:9 does not answer (ConnectionRefusedError)",),
          ("export WANDB_MODE=offline  # `wandb sync`",))),
    # "within 3s" only when it timed out (a refused connect fails at once), as hf-endpoint
    ("wandb-timeout", judge.wandb_offline, replace(WANDB, answer=replace(
        OFFLINE_ANSWER, error="TimeoutError: timed out", elapsed_s=3.0)),
     Want(Kind.BLOCKER, ("http://127.0.0.1:9 does not answer within 3s (TimeoutError",))),
    ("wandb-bad-url", judge.wandb_offline,
     replace(WANDB, base_url=judge.Setting("api.wandb.ai", "the environment"), answer=None,
             host=None),
     Want(Kind.BLOCKER, ("WANDB_BASE_URL='api.wandb.ai' is not an http(s) URL",),
          ("unset WANDB_BASE_URL",))),
    ("wandb-installed-only", judge.wandb_offline,
     replace(WANDB, report_to=None, installed="/envs/slime/lib/python3.11/site-packages/wandb",
             key_from=None, answer=None),
     Want(Kind.WARNING, ("wandb is installed in /envs/slime and WANDB_MODE is not offline: "
                         "no API key",),)),
    ("wandb-installed-only-with-key", judge.wandb_offline,
     replace(WANDB, report_to=None, installed="/x/wandb", answer=None),
     Want(ok="wandb online: API key from the environment")),
    ("wandb-all-installed", judge.wandb_offline,
     replace(WANDB, report_to=["all"], installed="/x/wandb", key_from=None),
     Want(Kind.BLOCKER, ("no API key",))),
    ("wandb-all-not-installed", judge.wandb_offline, replace(WANDB, report_to=["all"]),
     Want(skip="the launch reports to all, not wandb")),
]


@pytest.mark.parametrize(("judgement", "facts", "want"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_judge(judgement: Callable[[Any], Verdict], facts: Any, want: Want) -> None:
    verify(judgement(facts), want)


def test_every_node_judge_has_a_failing_and_a_passing_case() -> None:
    judges = {c[1] for c in CASES}
    failing = {c[1] for c in CASES if c[3].kind is not None}
    passing = {c[1] for c in CASES if c[3].kind is None and not c[3].skip}
    assert judges == failing == passing


@pytest.mark.parametrize("mode", ["online", None, "run", "shared"])
def test_wandb_probes_only_a_launch_that_names_it_online(mode: str | None) -> None:
    assert judge.wandb_probe(["wandb"], None, mode)
    assert judge.wandb_probe(["all"], "/x", mode)
    assert not judge.wandb_probe(["tensorboard"], "/x", mode)
    assert not judge.wandb_probe(None, "/x", mode)  # only installed: the key alone


@pytest.mark.parametrize("mode", ["offline", "dryrun", "disabled", "OFFLINE"])
def test_wandb_local_modes_never_probe(mode: str) -> None:
    assert not judge.wandb_probe(["wandb"], "/x", mode)


def test_wandb_verdict_never_holds_the_key() -> None:
    # The judge only ever sees where a key is: the facts have no field for its value.
    assert "key" not in {f for f in judge.WandbFacts.__dataclass_fields__} - {
        "key_from", "key_places"}


# -- the wandb-offline adapter's readers, in-process on a real evaluated launch ---------


@pytest.mark.parametrize(("line", "config", "said"), [
    ("swift rlhf --report_to wandb tensorboard --beta 0.1", None, ["wandb", "tensorboard"]),
    ("python train.py --report-to=tensorboard,wandb", None, ["tensorboard", "wandb"]),
    ("torchrun train.py --report_to none", None, ["none"]),
    ("torchrun train.py --config c.yaml", "a: 1\nreport_to: [\"wandb\"]\n", ["wandb"]),
    ("torchrun train.py --config c.yaml", "report_to:\n  - tensorboard\n  - wandb\nb: 2\n",
     ["tensorboard", "wandb"]),
    ("torchrun train.py --config c.json", '{"report_to": "wandb", "lr": 1}\n', ["wandb"]),
    ("torchrun train.py --config c.json", '{"lr": 1,\n "report_to": ["none"], "b": 2}', ["none"]),
    ("torchrun train.py --config c.toml", 'report_to = "wandb"  # logs\n', ["wandb"]),
    ("torchrun train.py --config c.yaml", "lr: 1\n", None),
    ("torchrun train.py", None, None),
])
def test_report_to_of_the_launch(tmp_path: Any, line: str, config: str | None,
                                 said: list[str] | None) -> None:
    from preflight.launch.spec import load

    if config is not None:
        (tmp_path / line.split()[-1]).write_text(config)
    spec = load(None, line, {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                cwd=str(tmp_path))
    assert wandb.report_to(spec)[0] == said


def test_netrc_key_found_by_host_never_by_value(tmp_path: Any) -> None:
    read = wandb.netrc_key
    env = {"HOME": str(tmp_path)}
    assert read(env, "api.wandb.ai") == (None, f"no {tmp_path}/.netrc")
    (tmp_path / ".netrc").write_text("machine other.host login u password p\n")
    found, looked = read(env, "api.wandb.ai")
    assert found is None and "no `machine api.wandb.ai` with a password" in looked
    (tmp_path / ".netrc").write_text("machine api.wandb.ai login user password s3cr3t\n")
    assert read(env, "api.wandb.ai") == (f"{tmp_path}/.netrc (machine api.wandb.ai)", "")
    (tmp_path / "n").write_text("machine api.wandb.ai login user password\n")
    found, looked = read({**env, "NETRC": str(tmp_path / "n")}, "api.wandb.ai")
    assert found is None and "s3cr3t" not in looked  # a broken file: named, never quoted


def test_hf_mirror_down_fix_is_not_the_value_already_set():
    """HF_ENDPOINT is already https://hf-mirror.com and it does not answer: exporting the same
    value again changes nothing; what lets the job run is loading from local paths."""
    gai = Answer("https://hf-mirror.com", None,
                 "gaierror: [Errno -2] Name or service not known", 0.01)
    for answer in (DOWN, gai):
        v = judge.hf_endpoint(replace(HF, answer=answer))
        fix = shown_fix(v)
        assert "export HF_ENDPOINT=https://hf-mirror.com" not in fix, fix
        assert "export HF_HUB_OFFLINE=1" in fix, fix
        # and with it set, the check no longer blocks (a warning: loads stay local)
        assert not judge.hf_endpoint(replace(HF, answer=answer, offline=True)).of(Kind.BLOCKER)
    # a name that does not resolve failed at once: "within 3s" would be a wrong fact
    assert "within" not in judge.hf_endpoint(replace(HF, answer=gai)).message
    # another endpoint that is down: the public mirror is still the fix to offer
    other = Answer("http://10.0.0.5:8080", None, "ConnectionRefusedError: refused", 0.01)
    v = judge.hf_endpoint(replace(HF, url="http://10.0.0.5:8080", shown_url="http://10.0.0.5:8080",
                            answer=other))
    assert "export HF_ENDPOINT=https://hf-mirror.com" in shown_fix(v)


def test_ray_not_installed_and_not_on_path_fix_does_both():
    """Installing ray into the env alone leaves `ray: command not found` when PATH lacks the
    env's bin/ (the judge then asks for the PATH): the pasted fix must do both."""
    v = judge.ray_path(replace(RAY, installed=False, resolved=None, env_bin_on_path=False,
                               path=["/usr/bin"]))
    fix = shown_fix(v)
    assert '"/envs/slime/bin/python" -m pip install "ray[default]"' in fix, fix
    assert 'export PATH="/envs/slime/bin:$PATH"' in fix, fix
    # ray of another env first on PATH: after the install it would still win
    v = judge.ray_path(replace(RAY, installed=False, resolved="/opt/other/bin/ray",
                               resolved_in_env=False))
    assert 'export PATH="/envs/slime/bin:$PATH"' in shown_fix(v), shown_fix(v)
    # the env's bin/ already on PATH: the install alone is the fix
    v = judge.ray_path(replace(RAY, installed=False, resolved=None))
    assert "export PATH" not in shown_fix(v), shown_fix(v)


def test_nccl_ifname_of_one_character_or_less_is_ignored_by_nccl():
    """NCCL reads NCCL_SOCKET_IFNAME only when `strlen(env) > 1` (NVIDIA/nccl
    src/misc/socket.cc ncclFindInterfaces) and picks an interface itself otherwise:
    `NCCL_SOCKET_IFNAME=` (a script's `${IFNAME}` left empty) or `^` selects nothing only
    for preflight, not for NCCL."""
    for spec in ("", "^", "e"):
        v = judge.nccl_ifname(replace(NCCL, spec=spec))
        assert not v.of(Kind.BLOCKER), (spec, v.message)
        assert "ignored by NCCL" in (v.skip + v.message), (spec, v.skip, v.message)
    # two candidates: NCCL's own pick may be the wrong one, as when unset
    v = judge.nccl_ifname(replace(NCCL, spec="", interfaces=[ETH0, ETH1]))
    assert [p.kind for p in v.problems] == [Kind.WARNING], v.message
    # two characters are read: "ib" selects nothing here
    assert judge.nccl_ifname(replace(NCCL, spec="ib")).of(Kind.BLOCKER)


def test_conda_env_unset_says_unset_not_none():
    v = judge.conda_env(replace(CONDA, actual=None, prefix=None))
    assert "CONDA_DEFAULT_ENV is unset, expected 'slime'" in v.message, v.message


def test_ray_missing_is_a_warning_when_the_analysed_launch_does_not_run_ray():
    """An ms-swift torchrun launch on an a800 node (profile: slime runs on Ray): the script
    never runs `ray`, so `ray: command not found` cannot stop it. Said, not a NO-GO; without
    a launch script, or when it runs ray, it stays a blocker."""
    missing = replace(RAY, installed=False, resolved=None, env_bin_on_path=False,
                      path=["/usr/bin"])
    v = judge.ray_path(replace(missing, launch_given=True))
    assert [p.kind for p in v.problems] == [Kind.WARNING], v.message
    assert "the launch script does not run ray" in v.message, v.message
    assert judge.ray_path(missing).of(Kind.BLOCKER)
    assert judge.ray_path(replace(missing, launch_given=True, launch_runs_ray=True)).of(
        Kind.BLOCKER)


def test_ray_fix_never_runs_a_python_the_launch_env_lacks():
    """A launch script that activates an env this node does not have (CONDA_PREFIX and PATH
    at /root/autodl-tmp/micromamba/envs/slime): `"<prefix>/bin/python" -m pip install` would
    fail with `No such file or directory`; the finding says the env is missing instead."""
    gone = replace(RAY, prefix="/root/autodl-tmp/micromamba/envs/slime", installed=False,
                   resolved=None, env_bin_on_path=True, prefix_python=False)
    v = judge.ray_path(gone)
    assert "/root/autodl-tmp/micromamba/envs/slime does not exist" in v.message \
        or "has no bin/python" in v.message, v.message
    assert "bin/python\" -m pip" not in shown_fix(v), shown_fix(v)


def test_a_proxy_the_probe_does_not_speak_is_unknown_not_down():
    """The job reaches the mirror / wandb through all_proxy=socks5://…: preflight does not
    ask the URL at all (a direct answer says nothing of the job's), and says it could not
    tell instead of NO-GO."""
    env = {"all_proxy": "socks5://user:pw@10.0.0.9:1080"}
    answer = http.probe_as_job("https://hf-mirror.com", 3.0, env)
    assert answer.unprobed and answer.status is None and answer.elapsed_s == 0.0
    assert "pw" not in answer.error and "socks5://10.0.0.9:1080" in answer.error
    hf = judge.hf_endpoint(replace(HF, answer=answer))
    assert hf.of(Kind.UNKNOWN) and not hf.of(Kind.BLOCKER), hf.problems
    assert "curl -sSI" in shown_fix(hf)
    cloud = http.probe_as_job("https://api.wandb.ai", 3.0, env)
    wb = judge.wandb_offline(replace(WANDB, answer=cloud))
    assert wb.of(Kind.UNKNOWN) and not wb.of(Kind.BLOCKER), wb.problems
    # an http:// proxy is spoken (tests/test_http_probe.py); none set: direct
    assert not http.probe_as_job("http://127.0.0.1:9", 1.0, {}).unprobed
