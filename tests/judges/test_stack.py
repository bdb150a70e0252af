"""The stack judges in-process, from tables: what a swift or SGLang run left (its exit,
log lines, checkpoint, processes), or the memory shares a launch line gives -> problems,
kinds, fixes, skips. The real runs stay in tests/test_stack.py / test_stack_swift.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from preflight.judges import stack as judge
from preflight.launch.spec import load
from preflight.model import Kind, Verdict
from preflight.stack import colocate, sglang, swift
from preflight.stack.watch import Watched

RUN = Watched(argv=("swift", "sft"), returncode=0, timed_out=False, matched="",
              elapsed_s=12.5, peak_rss_bytes=3 * 2**30, pids_seen=4, survivors=(),
              log_path="/logs/swift-sft.log")
DONE = swift.SmokeRun(steps=tuple(range(1, 11)), losses=(2.0,) * 9 + (1.5,),
                      rewards=(0.1,) * 9 + (0.4,), reward_stds=(0.2,) * 10,
                      checkpoint="/out/v0-1/checkpoint-10", optimizer_state=True)
TEARDOWN = ("last_model_checkpoint: /out/v0-1/checkpoint-10\n"
            "exitcode  : -6 (pid: 29279)  (SIGABRT)\n")


def smoke(run: Watched = RUN, result: swift.SmokeRun = DONE, log: str = "") -> judge.SmokeFacts:
    return judge.SmokeFacts("swift-smoke-10", "swift sft", "NPROC_PER_NODE=2 swift sft ...",
                            600.0, run, log, result, "m", "d", {"swift": "/bin/swift"}, 2,
                            "gloo")


def kinds(v: Verdict) -> list[Kind]:
    return [p.kind for p in v.deciding]


SMOKE = [
    ("ten steps and a checkpoint", smoke(), [], ["10 steps on 2 gloo processes in 12.5s "
                                                  "(loss 2 -> 1.5), checkpoint-10"], "fix what"),
    ("a crash", smoke(replace(RUN, returncode=1), replace(
        DONE, steps=(1, 2), losses=(2.0, 2.0), checkpoint=None, optimizer_state=False,
        first_error="ValueError: bad row")), [Kind.BLOCKER] * 2,
     ["swift smoke (10 steps) failed: swift sft exited 1: ValueError: bad row; 2/10 steps "
      "logged"], "fix what swift reports first (ValueError: bad row)"),
    ("a hang", smoke(replace(RUN, returncode=None, timed_out=True), replace(
        DONE, steps=(), losses=(), checkpoint=None)), [Kind.BLOCKER] * 2,
     ["no exit within 600s", "0/10 steps logged"], "the smoke hung past 600s"),
    ("a NaN and a leftover", smoke(replace(RUN, survivors=(77,)), replace(
        DONE, losses=(float("nan"),) * 10)), [Kind.BLOCKER] * 2,
     ["a loss is not finite", "processes left running: [77]"], "fix what"),
    ("no optimizer state", smoke(result=replace(DONE, optimizer_state=False)),
     [Kind.BLOCKER], ["checkpoint-10 has no optimizer state"], "fix what"),
    ("died at teardown after saving", smoke(replace(RUN, returncode=1), log=TEARDOWN),
     [Kind.WARNING], ["exited 1 at teardown (SIGABRT (exitcode -6))"],
     "the run finished and saved, then exited 1"),
]


@pytest.mark.parametrize("facts, want, says, fix", [c[1:] for c in SMOKE],
                         ids=[c[0] for c in SMOKE])
def test_swift_smoke(facts, want, says, fix):
    v = judge.swift_smoke(facts)
    assert kinds(v) == want
    shown = v.message if want else v.ok
    assert all(s in shown for s in says), shown
    assert all(fix in p.fix for p in v.problems) and fix in v.fix
    # the command reads the run's own log; the advice is its comment
    assert v.fix.split("   # ")[0] == ("grep -n last_model_checkpoint /logs/swift-sft.log"
                                       if want == [Kind.WARNING] else
                                       "tail -n 40 /logs/swift-sft.log"), v.fix
    assert v.evidence["swift"] == "/bin/swift" and v.evidence["peak_rss_mib"] == 3072
    assert ("died_after_save" in v.evidence) is (want == [Kind.WARNING])


GRPO = [
    ("rewards that move", DONE, [], "GRPO 10 steps on 2 gloo processes via swift"),
    ("no reward logged", replace(DONE, rewards=()), [Kind.BLOCKER],
     "GRPO smoke (10 steps) failed: no reward logged"),
    ("a reward that is not finite", replace(DONE, rewards=(float("inf"),) * 10),
     [Kind.BLOCKER], "a reward is not finite"),
    ("every advantage 0", replace(DONE, reward_stds=(0.0,) * 10), [Kind.BLOCKER],
     "the rewards never differed within a group"),
]


@pytest.mark.parametrize("result, want, says", [c[1:] for c in GRPO], ids=[c[0] for c in GRPO])
def test_swift_grpo(result, want, says):
    v = judge.swift_grpo(replace(smoke(result=result), name="swift rlhf"), "swift")
    assert kinds(v) == want
    assert says in (v.message if want else v.ok)
    assert v.evidence["rewards"] == [round(x, 4) for x in result.rewards]


def test_absent_stage_skips_unless_required_and_a_failed_tiny_model_is_unknown():
    skipped = judge.absent("swift", "swift not on PATH", judge.SWIFT_FIX, False, "cpu", {})
    assert skipped.skip == ("swift not on PATH; profile cpu does not require the swift "
                            "stage") and skipped.fix == judge.SWIFT_FIX
    required = judge.absent("swift", "swift not on PATH", judge.SWIFT_FIX, True, "a800", {})
    assert required.message == "profile a800 requires the swift stage but swift not on PATH"
    assert required.problems[0].fix == judge.SWIFT_FIX
    tiny = judge.no_tiny_model("/py", "No module named torch", {"python": "/py"})
    assert kinds(tiny) == [Kind.UNKNOWN] and tiny.fix == "" and tiny.evidence == {
        "python": "/py"}


@pytest.mark.parametrize("cmd, env, via", [
    ("NPROC_PER_NODE=2 swift rlhf --rlhf_type grpo", {}, "swift"),
    ("torchrun --nproc_per_node 2 -m swift.cli.rlhf --rlhf_type grpo", {}, "torchrun"),
    ("accelerate launch --num_processes 2 -m swift.cli.rlhf --rlhf_type grpo", {}, "swift"),
    ("swift sft --model m", {}, None),
])
def test_grpo_launcher_follows_the_script(cmd, env, via):
    spec = load(None, cmd, {"PATH": "/usr/bin:/bin", **env}, cwd="/")
    assert judge.grpo_launcher(spec)[0] == via
    assert judge.grpo_launcher(None) == (None, "no GRPO run in the launch script")


READY = sglang.Readiness(True, 3.2, 7, {"503": 6, "200": 1})
ANSWER = sglang.Generation(200, " Hello!", "", 0.4)
SGLANG = [
    ("ready and answering", READY, ANSWER, (), "", None, "ready in 3.2s"),
    ("died while starting", sglang.Readiness(False, 1.0, 2, {}, exited=1), None, (),
     "Traceback (most recent call last):\nRuntimeError: CUDA out of memory\n", Kind.BLOCKER,
     "the SGLang server exited 1 while starting: RuntimeError: CUDA out of memory"),
    ("never healthy", sglang.Readiness(False, 300.0, 600, {"503": 600}), None, (), "",
     Kind.BLOCKER, "GET /health never answered 200 within 300s ({'503': 600})"),
    ("an error answer", READY, sglang.Generation(500, "", "internal", 0.1), (), "",
     Kind.BLOCKER, "POST /generate answered 500: internal"),
    ("an empty answer", READY, replace(ANSWER, text="  "), (), "", Kind.BLOCKER,
     "POST /generate answered 200 with empty text"),
    ("left running", READY, ANSWER, (91, 92), "", Kind.BLOCKER,
     "SGLang processes left running after shutdown: [91, 92]"),
]


@pytest.mark.parametrize("ready, answer, left, log, kind, says", [c[1:] for c in SGLANG],
                         ids=[c[0] for c in SGLANG])
def test_sglang_generate(ready, answer, left, log, kind, says):
    v = judge.sglang_generate(judge.SglangFacts(
        ("python", "-m", "sglang.launch_server"), ready, answer, left, log, "/logs/s.log",
        300.0, {"python": "python"}))
    assert kinds(v) == ([kind] if kind else [])
    assert (v.message if kind else v.ok).startswith(says)
    assert "Reproduce: python -m sglang.launch_server" in v.fix
    assert len(v.problems) <= 1  # the first thing wrong, in the order a server goes


def colocate_facts(cmd: str, env: dict[str, str] | None = None, headroom: float = 0.1,
                   trainer: float = 0.0) -> judge.ColocateFacts:
    return judge.ColocateFacts(colocate.shares(cmd, env or {}), "--launch-cmd", headroom,
                               trainer, 80.0)


COLOCATE = [
    ("room left", "python -m sglang.launch_server --mem-fraction-static 0.5", {}, 0.3,
     None, "engines + trainer take 0.8 of each GPU, leaving 0.2"),
    ("over the headroom", "swift rlhf --vllm_gpu_memory_utilization 0.9", {}, 0.2,
     Kind.BLOCKER, "GPU memory shares add up to 1.1 (vllm 0.9 + trainer 0.2), leaving less "
                   "than the profile's headroom 0.1"),
    ("not a fraction", "python -m sglang.launch_server --mem-fraction-static 70", {}, 0.0,
     Kind.BLOCKER, "not a fraction in (0, 1]: --mem-fraction-static='70'"),
    ("not known", 'python -m sglang.launch_server --mem-fraction-static "$(cat f)"', {}, 0.0,
     Kind.UNKNOWN, "GPU memory share not known: --mem-fraction-static = "),
    ("from the environment", "true", {"SGLANG_MEM_FRAC": "0.95"}, 0.0, Kind.BLOCKER,
     "GPU memory shares add up to 0.95"),
]


@pytest.mark.parametrize("cmd, env, trainer, kind, says", [c[1:] for c in COLOCATE],
                         ids=[c[0] for c in COLOCATE])
def test_colocate_memory(cmd, env, trainer, kind, says):
    v = judge.colocate_memory(colocate_facts(cmd, env, trainer=trainer))
    assert kinds(v) == ([kind] if kind else [])
    assert (v.message if kind else v.ok).startswith(says), v.message or v.ok
    if kind is Kind.BLOCKER:
        assert v.problems[0].fix.endswith("# engines + trainer must stay <= 0.9 of each GPU")
    if kind is Kind.UNKNOWN:
        assert v.fix == "" and "total" not in v.evidence


def test_colocate_memory_suggests_shares_that_fit():
    v = judge.colocate_memory(colocate_facts("true", {"SGLANG_MEM_FRAC": "0.95"}))
    assert v.problems[0].fix.startswith("export SGLANG_MEM_FRAC=0.9  #")
    assert judge.colocate_memory(colocate_facts("true")).skip.startswith("no SGLang / vLLM")
