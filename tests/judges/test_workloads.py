"""The workload judges in-process: typed facts of a launch in, Verdict out (no torchrun;
tests/test_workloads.py runs the real launches end to end)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from preflight.judges import workloads as judge
from preflight.model import Kind, Verdict

LIBUV = "use_libuv was requested but PyTorch was build without libuv support"


def run(name: str = "allreduce", results: list[dict[str, Any]] | None = None,
        **kw: Any) -> judge.Run:
    results = [] if results is None else results
    ranks = kw.pop("ranks", None) or tuple(judge.Rank(f"rank {i}", name, "done", True)
                                           for i in range(len(results)))
    fields: dict[str, Any] = dict(complete=bool(results), timed_out=False, returncode=0,
                                  error="", log="/tmp/x/torchrun.log",
                                  log_tail=tuple(f"l{i}" for i in range(10)))
    fields.update(kw)
    return judge.Run(name=name, launch={"port": 1}, ranks=ranks, results=results, **fields)


def rows(bw: float = 2.0, wrong_at: int | None = None) -> list[dict[str, Any]]:
    return [{"size": s, "time_us": 1.0, "algbw_gbps": bw / 2, "busbw_gbps": bw * (i + 1),
             "wrong": {"index": 3, "got": 5.0, "expected": 4.0, "count": 2}
             if i == wrong_at else None} for i, s in enumerate(["8 B", "1 KiB"])]


def sweep(rank: int, **kw: Any) -> dict[str, Any]:
    return {"rank": rank, "backend": "gloo", "world_size": 2, "cuda": False, "rows": rows(**kw)}


def allreduce(r: judge.Run, floor: float = 1.0) -> Verdict:
    return judge.allreduce(judge.Allreduce(r, 1, 2, 60.0, floor))


def outcome(v: Verdict) -> tuple[str, str, str]:
    """(kind of the deciding problems or skip/ok, the message or summary, the fix)."""
    if v.skip:
        return "skip", v.skip, v.fix
    deciding = v.deciding
    fix = "\n".join(dict.fromkeys(p.fix for p in deciding if p.fix)) or v.fix
    if not deciding:
        return "ok", v.ok, fix
    return deciding[0].kind.value, v.message, fix


GATE = judge.Gate(python="/py", profile="cpu", gpu_profile=False, expected_gpus=0,
                  gpu_model="")
H100 = replace(GATE, profile="h100", gpu_profile=True, expected_gpus=8, gpu_model="H100")


@pytest.mark.parametrize("facts, kind, text, fix", [
    (GATE, None, "", ""),
    (replace(GATE, nvml_replay="h.json"), "skip", "replayed from h.json", ""),
    (replace(GATE, torch_importable=False), "skip", "torch is not importable by /py", "pip"),
    (replace(H100, torch_importable=False), "blocker", "profile h100 must prove", "pip"),
    (H100, "blocker", "expects 8 GPU(s); NVML sees none (no NVIDIA GPU)", "8x H100"),
    (replace(H100, nvml_gpus=8), None, "", ""),
    (replace(GATE, topology_error="NNODES=2 needs MASTER_ADDR"), "blocker",
     "NNODES=2 needs MASTER_ADDR", "export NNODES="),
])
def test_gate(facts: judge.Gate, kind: str | None, text: str, fix: str) -> None:
    v = judge.gate(facts)
    if kind is None:
        assert v is None
        return
    assert v is not None
    got_kind, message, got_fix = outcome(v)
    assert (got_kind, text in message, fix in got_fix) == (kind, True, True)


def test_allreduce_passes_and_names_the_peak() -> None:
    v = allreduce(run(results=[sweep(1), sweep(0)]))
    assert outcome(v)[:2] == ("ok", "2 sizes exact; peak busbw 4 GB/s at 1 KiB over gloo "
                                    "(2 ranks)")
    assert v.evidence["measured_by"]["rank"] == 0 and v.evidence["peak_at"] == "1 KiB"
    assert [row["correct"] for row in v.evidence["table"]] == [True, True]
    assert list(v.evidence)[:3] == ["launch", "nnodes", "nproc_per_node"]


def test_allreduce_wrong_result_beats_a_low_peak() -> None:
    v = allreduce(run(results=[sweep(0, wrong_at=1), sweep(1, wrong_at=1)]), floor=100.0)
    kind, message, fix = outcome(v)
    assert kind == "blocker" and len(v.problems) == 1
    assert message == ("all_reduce of 1 KiB returned a wrong result on rank 0: element 3 is 5, "
                       "expected 4 (2 wrong element(s))")
    assert "dcgmi diag" in fix and [w["rank"] for w in v.evidence["wrong"]] == [0, 1]


def test_allreduce_below_the_floor() -> None:
    kind, message, fix = outcome(allreduce(run(results=[sweep(0), sweep(1)]), floor=10.0))
    assert kind == "blocker" and "below the profile floor 10 GB/s" in message
    assert "nvidia-smi topo -m" in fix


HUNG = (judge.Rank("rank 0", "train", "step 3", False),
        judge.Rank("rank 1", "allreduce", "sleeping", False))


@pytest.mark.parametrize("facts, message, fix, evidence", [
    (run(ranks=HUNG, timed_out=True, returncode=None),
     "all_reduce sweep did not finish within 60s; not finished: rank 0 (still in the train "
     "workload: step 3); rank 1 (sleeping)", "NCCL_DEBUG=INFO", "unfinished_in"),
    (run(ranks=HUNG, returncode=1, error=LIBUV), "torchrun exited 1: use_libuv", "USE_LIBUV=0",
     "log_tail"),
    (run(ranks=HUNG, returncode=1, error="CudaMissing: x"), "exited 1: CudaMissing",
     "cu124", "log_tail"),
    (run(ranks=HUNG, returncode=-9, error="Killed"), "torchrun exited -9: Killed",
     "tail -n 60 /tmp/x/torchrun.log", "log_tail"),
])
def test_an_unfinished_launch_names_the_ranks_and_what_to_read(
        facts: judge.Run, message: str, fix: str, evidence: str) -> None:
    v = allreduce(facts)
    kind, got, got_fix = outcome(v)
    assert kind == "blocker" and message in got and fix in got_fix
    assert evidence in v.evidence and v.evidence["unfinished"]["rank 1"] == "sleeping"
    assert "table" not in v.evidence  # nothing judged past the launch
    if evidence == "log_tail":
        assert v.evidence["log_tail"] == [f"l{i}" for i in range(2, 10)]


def trained(rank: int, losses: list[float] | None = None,
            checksums: list[str] | None = None) -> dict[str, Any]:
    return {"rank": rank, "backend": "gloo", "world_size": 2, "cuda": False, "model": "m",
            "params": 1, "losses": losses or [3.0, 2.0], "step_time_s": 0.1,
            "tokens_per_s": 10.0, "peak_memory": {}, "checksums": checksums or ["a", "a"],
            "next_step_loss": 1.5}


def resumed(rank: int, loss: float = 1.5, peak: int = 10, cuda: bool = False) -> dict[str, Any]:
    return {"rank": rank, "next_step_loss": loss, "optimizer_state_loaded": loss == 1.5,
            "cuda": cuda, "load_peak_memory": {"bytes": peak, "total_bytes": 100}}


def train(first: dict[str, Any] | None = None, again: dict[str, Any] | None = None,
          resume: judge.Run | None = None) -> Verdict:
    t = run("train", [first or trained(0), trained(1)])
    r = resume or run("resume", [again or resumed(0), resumed(1)])
    return judge.train(judge.Train(t, r, 1, 2, 60.0, 2, 1e-4, 0.5))


@pytest.mark.parametrize("verdict, kind, message, fix", [
    (train(), "ok", "loss 3.000 -> 2.000 in 2 steps, 10 tok/s; resume matches at step 3",
     "optimizer.state_dict()"),
    (train(trained(0, [3.0, float("nan")])), "blocker", "non-finite loss in 2 steps: [3.0, nan]",
     "TORCH_DISTRIBUTED_DEBUG=DETAIL"),
    (train(trained(0, [3.0, 3.5])), "blocker",
     "loss did not fall in 2 steps: step 1 3.0000, step 2 3.5000", "dcgmi"),
    (train(trained(0, checksums=["a", "b"])), "blocker",
     "parameters differ across ranks after step 2: rank(s) [1] differ from rank 0",
     "same code and data"),
    (train(again=resumed(0, loss=1.6)), "blocker",
     "resumed step 3 loss 1.600000 differs from the uninterrupted run's 1.500000 (tolerance "
     "0.0001 relative)", "NO_LOAD_OPTIM=1"),
    (train(again=resumed(0, peak=90, cuda=True)), "warning",
     "loading the optimizer state peaked at 90% of device memory, above the profile headroom "
     "50%", "map_location='cpu'"),
    (train(resume=run("resume", ranks=HUNG, timed_out=True, returncode=None)), "blocker",
     "resume from checkpoint did not finish within 60s; not finished: rank 0 (still in the "
     "train workload: step 3)", "NCCL_DEBUG=INFO"),
])
def test_train(verdict: Verdict, kind: str, message: str, fix: str) -> None:
    got_kind, got, got_fix = outcome(verdict)
    assert (got_kind, got.startswith(message), fix in got_fix) == (kind, True, True), \
        (got_kind, got, got_fix)


def test_a_failed_training_stops_before_the_resume() -> None:
    v = train(trained(0, [3.0, 3.5]), resume=run("resume", ranks=HUNG, timed_out=True))
    assert len(v.problems) == 1 and "resume_launch" not in v.evidence
    assert "uninterrupted_step_loss" not in v.evidence


def test_resume_evidence_is_recorded_even_when_it_matches() -> None:
    v = train()
    assert v.evidence["resume_launch"]["process_group"].startswith("fresh")
    assert v.evidence["resume_load_peak"] == {"bytes": 10, "total_bytes": 100, "fraction": 0.1}
    assert v.evidence["compared_step"] == 3 and v.evidence["optimizer_state_loaded"] is True


def stores(*entries: tuple[str, bool, str]) -> list[dict[str, Any]]:
    """As workloads/store.py writes them: a failed store has an error and no backend."""
    return [{"store": n, "ok": True, "libuv_backend": True} if ok else
            {"store": n, "ok": False, "error": err, "type": "RuntimeError"}
            for n, ok, err in entries]


def store(result: dict[str, Any] | None = None, use_libuv: str | None = None,
          r: judge.Run | None = None) -> Verdict:
    facts = r or run("store", [result or {"torch": "2.13", "stores": stores(
        ("agent", True, ""), ("worker", True, ""))}])
    return judge.store(judge.Store(facts, 60.0, "/py", use_libuv, None))


@pytest.mark.parametrize("verdict, kind, message, fix", [
    (store(), "ok", "TCPStore created the way torchrun does (agent: libuv, worker: libuv)",
     "could not bind or connect"),
    (store({"stores": stores(("agent", False, LIBUV))}), "blocker", f"agent store: {LIBUV}",
     "export USE_LIBUV=0  # the legacy TCPStore"),
    (store({"stores": stores(("agent", False, LIBUV))}, use_libuv="0"), "blocker",
     f"agent store: {LIBUV}", "init_method='env://?use_libuv=0'"),
    # USE_LIBUV=0 did not help: an official wheel of the same release, into the same Python
    (store({"torch": "2.5.0a0+git32f585d", "stores": stores(("agent", False, LIBUV))},
           use_libuv="0"), "blocker", f"agent store: {LIBUV}",
     '/py -m pip install --force-reinstall --no-deps "torch==2.5.0"   # this torch wants '
     "libuv even with USE_LIBUV=0"),
    (store({"stores": stores(("agent", True, ""), ("worker", False, "EADDRINUSE"))}),
     "blocker", "worker store: EADDRINUSE", "see port-free"),
    (store({"stores": [], "error": "boom"}), "blocker", "could not create a TCPStore: boom",
     "/py -m preflight.workloads.store  # run the store check alone"),
    # torchrun's own store failed before any rank ran: judged as the agent store's failure
    (store(r=run("store", ranks=(judge.Rank("local rank 0", "", "never started", False),),
                 returncode=1, error=LIBUV)), "blocker", f"agent store: {LIBUV}",
     "export USE_LIBUV=0"),
    (store(r=run("store", ranks=(judge.Rank("rank 0", "train", "step 1", False),),
                 timed_out=True, returncode=None)), "blocker",
     "the TCPStore check did not finish within 60s; not finished: rank 0 (still in the train "
     "workload: step 1)", "NCCL_DEBUG=INFO"),
])
def test_store(verdict: Verdict, kind: str, message: str, fix: str) -> None:
    got_kind, got, got_fix = outcome(verdict)
    assert (got_kind, got, fix in got_fix) == (kind, message, True), (got_kind, got, got_fix)


def test_every_problem_carries_its_own_fix() -> None:
    from preflight.fixes import split

    verdicts = [allreduce(run(results=[sweep(0, wrong_at=0)])), train(again=resumed(0, 2.0)),
                store({"stores": stores(("agent", False, LIBUV))}),
                store({"torch": "2.13.0", "stores": stores(("agent", False, LIBUV))},
                      use_libuv="0")]
    # a command each, not advice alone (split moves prose to `why`)
    assert all(split(p.fix)[0] for v in verdicts for p in v.problems)
    assert all(p.kind is Kind.BLOCKER for v in verdicts for p in v.problems)


def test_the_rank_that_failed_first_leads_a_crash() -> None:
    from preflight.run.torchrun import first_failure

    # torchrun's ChildFailedError block, as it prints it (a rank exiting 3, no signal)
    log = ["Failures:", "  <NO_OTHER_FAILURES>", "---", "Root Cause (first observed failure):",
           "[0]:", "  time      : 2026-12-01_06:34:01", "  host      : localhost",
           "  rank      : 0 (local_rank: 0)", "  exitcode  : 3 (pid: 32653)",
           "  error_file: <N/A>", "  traceback : To enable traceback see: https://x"]
    assert first_failure(log) == {"rank": 0, "local_rank": 0, "exitcode": 3, "signal": None}
    assert first_failure(log[:4]) is None
    died = {"rank": 1, "local_rank": 1, "exitcode": -9, "signal": "SIGKILL"}
    v = allreduce(run(ranks=HUNG, returncode=1, error="RuntimeError: Connection closed by peer",
                      first_failure=died))
    assert v.message.endswith("torchrun exited 1: rank 1 failed first (exitcode -9, SIGKILL): "
                              "RuntimeError: Connection closed by peer")
    assert v.evidence["first_failure"] == died


def test_every_fix_pastes_as_shell() -> None:
    # A fix is copy-paste shell (preflight/fixes.py); prose-only fixes came out of the
    # split empty: a hung rank, wrong data, a low busbw, a loss that did not fall, ...
    from preflight.fixes import is_command, split

    hung = run(ranks=HUNG, timed_out=True, returncode=None)
    verdicts = [
        allreduce(hung), allreduce(run(ranks=HUNG, returncode=1, error="CudaMissing: x")),
        allreduce(run(results=[sweep(0, wrong_at=0)])),
        allreduce(run(results=[sweep(0), sweep(1)]), floor=10.0),
        train(trained(0, [3.0, float("nan")])), train(trained(0, checksums=["a", "b"])),
        train(again=resumed(0, loss=1.6)), train(again=resumed(0, peak=90, cuda=True)),
        store({"stores": [], "error": "boom"}),
        store({"stores": stores(("agent", True, ""), ("worker", False, "EADDRINUSE"))}),
        judge.gate(replace(GATE, topology_error="NNODES=2 needs MASTER_ADDR")),
    ]
    for v in verdicts:
        assert v is not None and v.problems
        for p in v.problems:
            commands, _ = split(p.fix)
            assert commands and all(is_command(line) and "<" not in line
                                    for line in commands.splitlines()), (p.text, p.fix)


def test_a_rendezvous_that_never_completed_names_its_port() -> None:
    # Node 0 of two with MASTER_PORT held by a leftover process: no rank ever started; the
    # fix shows who holds the port before the NCCL debug rerun.
    never = tuple(judge.Rank(f"local rank {i}", "", "never started", False) for i in (0, 1))
    kind, _, fix = outcome(allreduce(run(ranks=never, timed_out=True, returncode=None)))
    assert kind == "blocker" and fix.startswith("ss -ltnp 'sport = :1'  # who holds")
    _, _, fix = outcome(allreduce(run(ranks=HUNG, timed_out=True, returncode=None)))
    assert fix.startswith("tail -n 60 ")
