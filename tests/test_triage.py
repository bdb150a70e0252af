"""`preflight triage`: the root cause of a failed run, read from its logs.

The logs under tests/logs/ are of two kinds:

real/   produced on this kind of box by tests/logs/produce_real.sh (a held port under real
        torchrun, a nested torchrun, `ray: command not found` from bash, `cannot find -lcudart`
        from a real cc link, an empty DATASET, ulimit -n 64 with DataLoader workers, a 1 MB
        /dev/shm, a full tmpfs at torch.save, per-rank torchrun log dirs, successful runs;
        multi-node launches seen from one node: a worker node with MASTER_ADDR=127.0.0.1 or
        with a master address that has no route or drops SYNs, gloo's full mesh toward a
        loopback peer where nothing listens, a master node waiting for nodes that never come);
        by tests/logs/produce_collective.py: collectives that time out under torchrun +
        gloo (a rank still loading data, rank 0 alone saving a checkpoint, the same under
        TORCH_DISTRIBUTED_DEBUG=DETAIL, a peer that exited, a peer SIGKILLed) and a
        DataLoader worker SIGKILLed (alone and under torchrun);
        by tests/logs/produce_stopped.py and tests/logs/produce_slurm.py: runs stopped from
        outside (torchrun's agent given SIGTERM/SIGINT/SIGHUP, plain, --tee, --log-dir; a
        bash script's foreground command given SIGTERM/SIGHUP; a real one-node Slurm 22.05
        ending the job at its time limit, on scancel, on preemption, on a cgroup OOM kill;
        a rank whose error left it hanging until the stop; a worker torchrun closed);
        and by tests/logs/produce_nested.py: nested launches (torchrun whose workers run
        torchrun, in every shape a user writes: c10d or --standalone outside, `-m
        torch.distributed.run`, `-m torch.distributed.launch`, `--no-python torchrun` or a
        bash script running torchrun inside, plain, --tee, --log-dir, LOGLEVEL=INFO) and
        the launches that must not read as nested although they fail on a taken port (one
        torchrun, two nodes merged labelled or concatenated, a restart);
cited/  the exact error texts published in issue threads, for failures that need GPUs or
        clusters, embedded in the noise of the stack that printed them by
        tests/logs/cited/build.py. Each file's first line names its source; the threads:
          cuda-oom         https://github.com/modelscope/ms-swift/issues/5943
                           https://github.com/modelscope/ms-swift/issues/7826
          resume-memory    https://github.com/facebookresearch/mmf/issues/185
                           https://github.com/awslabs/graphstorm/issues/344
          colocate-memory  https://github.com/vllm-project/vllm/issues/17431
                           https://github.com/sgl-project/sglang/issues/4330
                           https://github.com/vllm-project/vllm/issues/23192
          cuda-stack       https://github.com/AUTOMATIC1111/stable-diffusion-webui/issues/2202
                           https://github.com/mlcommons/inference/issues/54
          libuv-store      https://github.com/hiyouga/LlamaFactory/issues/7124
                           https://github.com/cocktailpeanut/fluxgym/issues/82
          grpo-batch       https://github.com/huggingface/open-r1/issues/249
                           https://github.com/modelscope/ms-swift/issues/3980
          nccl-ifname      https://github.com/marin-community/marin/issues/6940
                           https://github.com/NVIDIA/nccl/issues/1837
                           https://github.com/EvolvingLMMs-Lab/open-r1-multimodal/issues/7
          gloo-ifname      https://github.com/meta-pytorch/data/issues/1142
          hf-endpoint      https://github.com/Avarok-Cybersecurity/dgx-vllm/issues/16
                           https://github.com/lewandofskee/DiAD/issues/16
          dotenv-exported  https://github.com/hiyouga/LlamaFactory/issues/1372
                           https://github.com/ToTheBeginning/PuLID/issues/97
          leftover-procs   https://github.com/THUDM/slime/issues/1328
                           https://github.com/ray-project/ray/pull/10826
          cudart-link      https://github.com/flashinfer-ai/flashinfer/issues/5064
          master-addr      https://github.com/aws-samples/aws-do-eks/pull/69
                           https://github.com/pytorch/gloo/issues/223
          cuda-oom         https://github.com/taohan10200/IIM/issues/28
          unknown          https://github.com/real-stanford/flingbot/issues/11
          cluster-versions https://github.com/Unakar/Logic-RL/issues/30
                           https://github.com/ray-project/ray/issues/50511
          host-limits      https://github.com/msr-fiddle/pipedream/issues/28
                           https://github.com/pytorch/ci-infra/pull/490
          cuda-stack       https://github.com/lllyasviel/Fooocus/issues/1313
          disk-space       https://github.com/zai-org/ChatGLM-6B/issues/1166
                           https://github.com/open-mmlab/mmdetection/issues/12069
          grpo-batch       https://github.com/huggingface/trl/pull/3199
          hf-endpoint      https://github.com/huchenlei/sd-forge-ic-light/issues/1
          dotenv-exported  https://github.com/huchenlei/sd-forge-ic-light/issues/13
          launch-gpus      https://github.com/cfzd/Ultra-Fast-Lane-Detection/issues/193
                           https://github.com/wenwenyu/PICK-pytorch/issues/14
          cluster-gpus     https://github.com/ray-project/llm-applications/issues/58
                           https://github.com/OpenRLHF/OpenRLHF/issues/516
          cluster-reach    https://github.com/sgl-project/sglang/issues/3820
          gloo-ifname      https://github.com/NVIDIA/Megatron-LM/issues/436
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from support import produce_live

from preflight import triage

LOGS = Path(__file__).parent / "logs"
REAL, CITED = LOGS / "real", LOGS / "cited"

# (fixture, root-cause id, line of the root cause). Lines are checked, not just ids.
CASES = [
    ("real/port-free-static.log", "port-free", 47),
    ("real/port-free-server.log", "port-free", 20),
    ("real/nested-torchrun.log", "nested-launcher", 7),
    ("cited/nested-launcher-swift.log", "nested-launcher", 4),
    ("real/ray-path.log", "ray-path", 6),
    ("real/ray-path-abs.log", "ray-path", 6),
    ("real/cudart-link.log", "cudart-link", 3),
    ("cited/cudart-link-flashinfer.log", "cudart-link", 5),
    ("real/empty-variable-open.log", "empty-variable", 6),
    ("real/empty-variable-guard.log", "empty-variable", 3),
    ("real/host-limits-nofile.log", "host-limits", 13),
    ("real/host-limits-shm.log", "host-limits", 41),
    ("real/disk-space-shutil.log", "disk-space", 15),
    ("real/disk-space-torch-save.log", "disk-space", 9),
    ("cited/leftover-processes-router.log", "leftover-processes", 2),
    ("cited/leftover-processes-ray.log", "leftover-processes", 5),
    ("cited/hf-endpoint-vllm.log", "hf-endpoint", 4),
    ("cited/hf-endpoint-requests.log", "hf-endpoint", 5),
    ("cited/dotenv-exported-wandb.log", "dotenv-exported", 4),
    ("cited/dotenv-exported-gated.log", "dotenv-exported", 2),
    ("cited/libuv-store-torchrun.log", "libuv-store", 7),
    ("cited/libuv-store-fluxgym.log", "libuv-store", 4),
    ("cited/grpo-batch-trl.log", "grpo-batch", 8),
    ("cited/grpo-batch-swift.log", "grpo-batch", 13),
    ("cited/cuda-stack-kernel-image.log", "cuda-stack", 4),
    ("cited/cuda-stack-driver.log", "cuda-stack", 7),
    ("cited/nccl-ifname-bootstrap.log", "nccl-ifname", 4),
    ("cited/nccl-ifname-last-error.log", "nccl-ifname", 7),
    ("cited/gloo-ifname-gloo.log", "gloo-ifname", 5),
    ("cited/colocate-memory-vllm.log", "colocate-memory", 9),
    ("cited/colocate-memory-sglang.log", "colocate-memory", 9),
    ("cited/colocate-memory-vllm-startup.log", "colocate-memory", 4),
    ("cited/resume-memory-mmf.log", "resume-memory", 4),
    ("cited/resume-memory-slime.log", "resume-memory", 12),
    ("cited/cuda-oom-swift-ranks.log", "cuda-oom", 17),
    ("cited/cuda-oom-dora.log", "cuda-oom", 7),
    ("cited/master-addr-gloo-loopback.log", "master-addr", 3),
    ("cited/master-addr-gloo-hostname.log", "master-addr", 4),
    ("cited/cluster-versions-ray.log", "cluster-versions", 3),
    ("cited/cluster-versions-python.log", "cluster-versions", 3),
    ("real/ray-path-dash.log", "ray-path", 3),
    ("real/ray-path-subprocess.log", "ray-path", 12),
    ("real/cuda-stack-cpu-torch.log", "cuda-stack", 6),
    ("real/empty-variable-slash.log", "empty-variable", 5),
    ("cited/host-limits-bus-error.log", "host-limits", 3),
    ("cited/host-limits-nccl-shm.log", "host-limits", 2),
    ("cited/cuda-stack-driver-old.log", "cuda-stack", 2),
    ("cited/cuda-stack-cuda-home.log", "cuda-stack", 6),
    ("cited/disk-space-stream-writer.log", "disk-space", 8),
    ("cited/disk-space-quota.log", "disk-space", 6),
    ("cited/colocate-memory-vllm-kv.log", "colocate-memory", 2),
    ("cited/grpo-batch-one-generation.log", "grpo-batch", 4),
    ("cited/hf-endpoint-local-entry.log", "hf-endpoint", 2),
    ("cited/dotenv-exported-gated-forge.log", "dotenv-exported", 2),
    ("cited/cuda-oom-cuda-error.log", "cuda-oom", 4),
    ("real/master-addr-store-loopback.log", "master-addr", 3),
    ("real/master-addr-gloo-mesh.log", "master-addr", 7),
    ("real/cluster-reach-no-route.log", "cluster-reach", 4),
    ("real/cluster-reach-timeout.log", "cluster-reach", 4),
    ("cited/cluster-reach-nccl-no-route.log", "cluster-reach", 2),
    ("real/cluster-nodes-missing.log", "cluster-nodes", 43),
    ("real/cluster-nodes-nnodes.log", "cluster-nodes", 43),
    ("cited/cluster-gpus-ray-autoscaler.log", "cluster-gpus", 12),
    ("cited/cluster-gpus-ray-openrlhf.log", "cluster-gpus", 4),
    ("cited/launch-gpus-set-device.log", "launch-gpus", 11),
    ("cited/launch-gpus-visible-devices.log", "launch-gpus", 3),
    ("cited/gloo-ifname-bond.log", "gloo-ifname", 9),
    ("real/collective-timeout-allreduce.log", "collective-timeout", 18),
    ("real/collective-timeout-barrier.log", "collective-timeout", 18),
    ("real/collective-timeout-detail.log", "collective-timeout", 10),
    ("real/collective-peer-exit.log", "collective-timeout", 18),
    ("real/dataloader-killed.log", "dataloader-killed", 29),
    ("real/dataloader-killed-torchrun.log", "dataloader-killed", 24),
    ("real/job-stopped-torchrun-sigterm.log", "job-stopped", 9),
    ("real/job-stopped-bash.log", "job-stopped", 5),
    ("real/job-stopped-slurm-time-limit.log", "job-stopped", 10),
    ("real/job-stopped-slurm-step.log", "job-stopped", 11),
    ("real/job-stopped-slurm-oom.log", "job-stopped", 51),
]
# Nested launches whose log has neither rank prefixes nor the agent-store line, and the
# line elsewhere that shows the outer launcher started launchers (the evidence).
NESTED = [
    ("real/nested-c10d-plain.log", 47, 102, "torch.distributed.run FAILED"),
    ("real/nested-standalone-plain.log", 47, 102, "torch.distributed.run FAILED"),
    ("real/nested-no-python.log", 46, 100, "torchrun FAILED"),
    ("real/nested-logdir-console.log", 108, 29, "torch.distributed.run FAILED"),
    ("real/nested-standalone-tee.log", 47, 102, "torch.distributed.run FAILED"),
    ("real/nested-legacy-launch.log", 67, 123, "torch.distributed.launch FAILED"),
    ("real/nested-bash-script.log", 49, 126, 'File "/opt/venv/lib/python3.11/site-packages/'
     'torch/distributed/run.py", line 1028, in main'),
    ("real/nested-standalone-info.log", 144, 8, "I1201 02:51:07.501000 23061 site-packages/"
     "torch/distributed/launcher/api.py:254]   entrypoint               : torch.distributed.run"),
]
# A taken port in launches that are not nested: one torchrun, two nodes (merged labelled as
# srun --label does, or concatenated), one torchrun restarting its workers.
NOT_NESTED = [("real/single-port-held.log", 47), ("real/multinode-labelled.log", 85),
              ("real/multinode-concat.log", 52), ("real/restarted-port-held.log", 51)]
CASES += [(name, "nested-launcher", line) for name, line, _, _ in NESTED]
CASES += [(name, "port-free", line) for name, line in NOT_NESTED]
# bash refused the launch script itself (tests/logs/produce_real.sh, launch-syntax batch)
CASES += [("real/launch-syntax-placeholder.log", "launch-syntax", 4),
          ("real/launch-syntax-quote.log", "launch-syntax", 4),
          ("real/launch-syntax-if.log", "launch-syntax", 4)]
SUCCESSES = ["real/ok-torchrun.log", "real/ok-dataloader.log", "cited/ok-slime-smoke.log",
             # a COMPLETED Slurm job that ended its own background srun step (kill, scancel)
             "real/ok-slurm-step-killed.log", "real/ok-slurm-step-scancel.log",
             "cited/ok-swift-sft.log", "cited/ok-dataloader-shutdown.log"]
# A louder consequence (ChildFailedError table, watchdog timeouts, Ray's job failure)
# follows the root cause in these.
LOUDER = ["real/nested-torchrun.log", "cited/cuda-oom-swift-ranks.log",
          "cited/resume-memory-slime.log"]
# Per-rank torchrun log dirs (--log-dir --redirects 3): one rank holds the real error, the
# other dies in its next all_reduce ("Connection closed by peer").
RANK_DIRS = [("real/ranks-dataset", "empty-variable", "attempt_0/1/stderr.log"),
             ("real/ranks-disk", "disk-space", "attempt_0/0/stderr.log")]
IDS = ["port-free", "nested-launcher", "ray-path", "cudart-link", "leftover-processes",
       "hf-endpoint", "dotenv-exported", "empty-variable", "libuv-store", "grpo-batch",
       "cuda-stack", "host-limits", "disk-space", "nccl-ifname", "colocate-memory",
       "resume-memory", "cuda-oom", "master-addr", "cluster-versions", "gloo-ifname",
       "cluster-reach", "cluster-nodes", "cluster-gpus", "launch-gpus", "collective-timeout",
       "dataloader-killed", "job-stopped", "launch-syntax"]


def run_cli(*args: str, stdin: bytes | None = None, env: dict | None = None,
            cwd: Path | None = None):
    return subprocess.run([sys.executable, "-m", "preflight", "triage", *args], input=stdin,
                          capture_output=True, timeout=120, env=env, cwd=cwd)


@pytest.mark.parametrize(("name", "rid", "line"), CASES, ids=[c[0] for c in CASES])
def test_names_the_root_cause(name, rid, line):
    result = triage.triage([str(LOGS / name)])
    assert result["fatal"] is True
    cause = result["causes"][0]
    assert (cause["id"], cause["line"]) == (rid, line), cause
    assert cause["fix"] and cause["runbook"].endswith(f"{rid}.md")
    assert any(cause["match"] in ctx for ctx in cause["context"])


def test_every_id_has_two_logs_and_every_runbook_pattern_a_real_line():
    counts = Counter(rid for _, rid, _ in CASES)
    counts.update(rid for _, rid, _ in RANK_DIRS)
    assert {rid: counts[rid] for rid in IDS if counts[rid] < 2} == {}
    assert set(IDS) <= set(counts)
    lines = [triage.clean(raw) for path in sorted(LOGS.rglob("*")) if path.is_file()
             and path.suffix != ".py" and path.name != "produce_real.sh"
             for raw in re.split(rb"[\r\n]", path.read_bytes())]
    lines = [x for x in lines if x and not x.startswith("# ")]  # headers name, not match
    unmatched = [f"{b.id}: {p.pattern}" for b in triage.runbook_blocks() for p in b.patterns
                 if not any(p.search(x) for x in lines)]
    assert unmatched == []


def test_every_pattern_has_a_literal_for_the_prefilter():
    # A pattern without one is run on every line: that breaks the 200 MB bound.
    scanner = triage.Scanner(triage.runbook_blocks() + triage.builtin_blocks())
    slow = [f"{m.block.id}: {m.pattern.pattern}" for m in scanner.matchers if m.literals is None]
    assert slow == []
    assert [m.pattern for m in scanner.slow_markers] == []  # @log conditions too


@pytest.mark.parametrize("name", SUCCESSES)
def test_successful_runs_are_not_fatal(name):
    result = triage.triage([str(LOGS / name)])
    assert (result["fatal"], result["causes"]) == (False, [])


def test_successful_runs_list_their_benign_noise():
    kinds = {b["id"] for name in SUCCESSES for b in triage.triage([str(LOGS / name)])["benign"]}
    assert kinds == {"wandb-broken-pipe", "destroy-process-group", "python-warning",
                     "weights-not-initialized", "exception-ignored"}


def test_unknown_beats_wrong():
    """Ray's host-memory OOM killer raises ray.exceptions.OutOfMemoryError: not a CUDA OOM,
    and no runbook names it. The run failed; the id is unknown, not cuda-oom."""
    result = triage.triage([str(CITED / "unknown-ray-host-oom.log")])
    cause = result["causes"][0]
    assert (result["fatal"], cause["id"], cause["line"]) == (True, "unknown", 7)
    assert (cause["fix"], cause["runbook"], cause["check"]) == (None, None, None)


@pytest.mark.parametrize("name", LOUDER)
def test_a_louder_consequence_after_the_root_cause_is_discounted(name):
    result = triage.triage([str(LOGS / name)])
    text = (LOGS / name).read_text(encoding="utf-8", errors="replace").splitlines()
    loud = [i + 1 for i, x in enumerate(text)
            if re.search(r"ChildFailedError|Watchdog caught|Job '.*' failed|RayTaskError", x)]
    assert loud and result["causes"][0]["line"] < min(loud)
    assert result["files"][0]["consequences"] >= 1
    assert result["causes"][0]["id"] in IDS


@pytest.mark.parametrize(("name", "rid", "rank_file"), RANK_DIRS)
def test_per_rank_directory_names_the_rank_with_the_error(name, rid, rank_file):
    result = triage.triage([str(LOGS / name)])
    cause = result["causes"][0]
    assert cause["id"] == rid and cause["file"].endswith(rank_file)
    assert sum(f["consequences"] for f in result["files"]) >= 1  # the other rank's death


def test_json_and_exit_codes_through_the_cli():
    proc = run_cli(str(REAL / "nested-torchrun.log"), "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["schema"] == 1 and out["fatal"] is True
    cause = out["causes"][0]
    assert set(cause) >= {"id", "confidence", "file", "line", "match", "context", "fix",
                          "runbook", "check"}
    assert (cause["id"], cause["confidence"], cause["check"]) == (
        "nested-launcher", "certain", "nested-launcher")
    assert all(set(b) >= {"id", "line"} for b in out["benign"])
    ok = run_cli(str(REAL / "ok-torchrun.log"))
    assert ok.returncode == 0 and "no fatal error found" in ok.stdout.decode()


def test_text_output_has_fix_check_context_and_time():
    out = run_cli(str(CITED / "resume-memory-slime.log")).stdout.decode()
    assert "ROOT CAUSE: resume-memory (certain)" in out
    assert "NO_LOAD_OPTIM=1 NO_LOAD_RNG=1" in out                  # the runbook's fix
    assert "preflight --check train-10-steps" in out                # the check to run now
    assert "raysubmit_vY3hT8cQm1LZd2wE" in out                      # the job id
    assert "2026-02-11 09:16:40" in out                             # the nearest timestamp
    assert "discounted" in out                                      # the Ray job failure
    # the runbook's fix holds the paths of the incident it was written from
    # (/root/autodl-tmp/...): said so, and where this machine's own values come from
    assert "fix (the runbook's example; preflight --check train-10-steps gives this " \
        "machine's values):" in out
    cuda = run_cli(str(CITED / "cuda-oom-dora.log")).stdout.decode()
    assert "fix (the runbook's example: adapt its values):" in cuda
    assert "no preflight check catches this before launch" in cuda
    assert "expandable_segments:True" in cuda


def test_log_time_spans_all_files_in_one_kind_of_stamp(tmp_path):
    """glog stamps have no year: a span is given in ISO stamps where the logs have any,
    earliest to latest over every file, whatever the order the files were given in."""
    late = tmp_path / "node1.log"
    late.write_text("2026-12-01 05:50:00,120 INFO step 9\n"
                    "E1201 05:51:02.000000 77 run.py:10] failed\n")
    early = tmp_path / "node0.log"
    early.write_text("I1201 05:40:00.000000 76 api.py:1] starting\n"
                     "2026-12-01 05:44:47,000 INFO step 1\n")
    result = triage.triage([str(late), str(early)])
    assert (result["first_timestamp"], result["last_timestamp"]) == (
        "2026-12-01 05:44:47", "2026-12-01 05:50:00")
    glog_only = tmp_path / "glog.log"
    glog_only.write_text("W1130 23:59:58.1 1 a.py:1] x\nE1201 00:00:03.2 1 a.py:2] y\n")
    result = triage.triage([str(glog_only)])
    assert (result["first_timestamp"], result["last_timestamp"]) == (
        "11-30 23:59:58", "12-01 00:00:03")


def test_checks_named_by_triage_are_real_check_ids():
    from tests.test_runbooks import CLUSTER_CHECK_IDS, check_ids

    checks = {b.check for b in triage.runbook_blocks() if b.check}
    assert checks and checks <= check_ids() | CLUSTER_CHECK_IDS
    # a cross-node check is run by merge / cluster, never by one node's `preflight --check`
    commands = {c: triage.check_command(c) for c in sorted(CLUSTER_CHECK_IDS - check_ids())}
    assert commands == {"cluster-allreduce": "preflight cluster --ray --workloads",
                        "cluster-gpus": "preflight merge reports/",
                        "cluster-nodes": "preflight merge reports/",
                        "cluster-reach": "preflight cluster --ray",
                        "cluster-versions": "preflight merge reports/"}
    assert triage.check_command("master-addr") == "preflight --check master-addr"


def test_stdin_and_directory_of_logs(tmp_path):
    data = (REAL / "ray-path.log").read_bytes()
    proc = run_cli("-", "--json", stdin=data)
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["causes"][0]["file"] == "<stdin>"
    assert out["causes"][0]["id"] == "ray-path"


@pytest.mark.parametrize("bad", ["missing", "fifo", "empty-dir", "option"])
def test_bad_input_is_one_error_line_and_exit_4(tmp_path, bad):
    args = {"missing": [str(tmp_path / "nope.log")], "fifo": [str(tmp_path / "f")],
            "empty-dir": [str(tmp_path / "d")], "option": ["--frobnicate", "x.log"]}[bad]
    if bad == "fifo":
        os.mkfifo(tmp_path / "f")
    if bad == "empty-dir":
        (tmp_path / "d").mkdir()
    proc = run_cli(*args)
    err = proc.stderr.decode()
    assert proc.returncode == 4 and err.startswith("ERROR: ") and err.count("\n") == 1
    assert proc.stdout == b"" and "Traceback" not in err
    assert run_cli().returncode == 4


def test_binary_and_non_utf8_never_crash(tmp_path):
    junk = bytes(range(256)) * 64
    log = tmp_path / "bin.log"
    log.write_bytes(junk + b"\n\xff\xfe[rank1]: \x1b[31mtorch.OutOfMemoryError: CUDA out of memory"
                    b"\x1b[0m \xc3\x28\n" + junk + b"\x00" * 5000 + b"Too many open files" * 9000)
    result = triage.triage([str(log)])
    assert result["causes"][0]["id"] == "cuda-oom"
    assert "\x00" not in json.dumps(result)
    (tmp_path / "empty.log").write_bytes(b"")
    assert triage.triage([str(tmp_path / "empty.log")])["fatal"] is False
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / os.fsdecode(b"rank\xff.log")).write_bytes(b"ray: command not found\n")
    proc = run_cli(str(odd), "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["causes"][0]["id"] == "ray-path"


def test_secrets_are_scrubbed_from_what_triage_prints(tmp_path):
    token = "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"
    log = tmp_path / "leak.log"
    log.write_text(f"export HF_TOKEN={token}\n"
                   "HF_ENDPOINT=http://mirror:s3cr3tPASS@10.0.0.5/ python train.py "
                   "--hub_token zzzz1234\n"
                   "wandb: WANDB_API_KEY=0123456789abcdef0123456789abcdef01234567\n"
                   "Traceback (most recent call last):\n"
                   f"huggingface_hub.errors.GatedRepoError: 401 Client Error. token={token}\n")
    env = dict(os.environ, MY_SECRET_TOKEN="plain-value-9876")
    log.write_text(log.read_text() + "using plain-value-9876 here\n")
    for args in ([str(log)], [str(log), "--json"], ["--context", "20", str(log)]):
        out = run_cli(*args, env=env).stdout.decode()
        assert "GatedRepoError" in out
        for secret in (token, "s3cr3tPASS", "zzzz1234", "0123456789abcdef0123456789abcdef01234567",
                       "plain-value-9876"):
            assert secret not in out, (args, secret)


def test_values_of_the_dot_env_here_are_masked_as_preflight_masks_them(tmp_path):
    """The job's key sits in ./.env, not in this shell: triage masks it as the main run
    does (a value too short for a token's shape, under a name that is no secret's)."""
    (tmp_path / ".env").write_text("MIRROR_PASS=CanaryPlain4242\n")
    log = tmp_path / "crash.log"
    log.write_text("Traceback (most recent call last):\n  File \"/w/t.py\", line 9, in <m>\n"
                   "RuntimeError: login CanaryPlain4242 rejected\n")
    env = {k: v for k, v in os.environ.items() if k != "MIRROR_PASS"}
    for args in ([str(log)], [str(log), "--json"]):
        done = run_cli(*args, env=env, cwd=tmp_path)
        out = done.stdout.decode()
        assert done.returncode == 1 and "RuntimeError: login" in out, out
        assert "CanaryPlain4242" not in out + done.stderr.decode()
    # a ./.env it cannot read: its values could not be masked, so bad input, one line
    (tmp_path / ".env").write_text('A=1\n"\n')
    bad = run_cli(str(log), env=env, cwd=tmp_path)
    assert bad.returncode == 4 and bad.stdout == b""
    assert bad.stderr.decode().startswith("ERROR: .env:2: cannot parse")


def test_parse_directives_and_specificity():
    text = ("# x: y\n\n## Symptom\n```triage\n@near: load_state_dict\n@check: none\n@likely\n"
            "OutOfMemoryError\n```\n\n## Fix\n")
    (block,) = triage.parse_blocks("x", text)
    assert (block.check, block.likely, block.specificity) == (None, True, 1)
    assert block.fallback is False
    (wait,) = triage.parse_blocks("x", "## Symptom\n```triage\n@fallback\nTimed out\n```\n")
    assert wait.fallback is True and wait.check == "x"
    with pytest.raises(ValueError, match="unknown triage directive"):
        triage.parse_blocks("x", "## Symptom\n```triage\n@nope: 1\nx\n```\n")


@pytest.mark.big_log
def test_a_200_mb_log_in_bounded_time_and_memory(tmp_path):
    """Streams: time and peak memory of triaging a 200 MB training log whose root cause is
    near its end, in a child process. The bound is on the child's CPU time (user + sys):
    on a shared box the wall time measures the neighbours; both are printed."""
    log = tmp_path / "big.log"
    step = ("[rank{r}]: {{'loss': 2.3456, 'grad_norm': 1.234, 'learning_rate': 9.99e-05, "
            "'epoch': 0.01, 'global_step/max_steps': '{s}/100000'}}\n")
    bar = "".join(f"Train:  {i}%|##        | {i}/100 [00:10<01:30,  9.98it/s]\r" for i in range(8))
    chunk = ("".join(step.format(r=i % 4, s=i) for i in range(2000)) + bar + "\n"
             + "/x/y.py:12: UserWarning: something deprecated\n").encode()
    with open(log, "wb") as fh:
        for _ in range(200 * 2**20 // len(chunk)):
            fh.write(chunk)
        fh.write(b"[rank2]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB\n")
        for _ in range(2**20 // len(chunk) + 1):
            fh.write(chunk)
    size = log.stat().st_size
    code = ("import json,os,re,sys,time; from preflight import triage; t=time.perf_counter();"
            "r=triage.triage([sys.argv[1]]); w=time.perf_counter()-t; c=os.times();"
            "hwm=int(re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1));"
            "print(json.dumps([w, c.user + c.system, hwm, r['causes'][0]['id']]))")
    proc = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True,
                          timeout=300)
    wall, cpu, hwm_kb, rid = json.loads(proc.stdout)
    print(f"\ntriage of {size / 2**20:.0f} MiB: wall {wall:.1f} s, cpu {cpu:.1f} s, "
          f"peak RSS {hwm_kb / 1024:.0f} MiB, load average {os.getloadavg()[0]:.1f}")
    assert rid == "cuda-oom"
    assert cpu <= 20
    assert hwm_kb / 1024 < 150


def test_a_log_where_every_line_is_an_error_is_scanned_in_linear_time(tmp_path):
    """A crash loop prints errors on every line (a 50 MB log of them took 5 minutes: each
    matched line looked for a carriage return back to the start of its 4 MiB block, and
    every pattern was re-tested against each line's triggers). Measured in this process's
    CPU time: 3 MB of such lines, about 0.6 s once linear, was 20 s."""
    lines = ["[rank3]: RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB\n",
             "[rank1]:[E1201 02:45:31] Watchdog caught collective operation timeout: "
             "WorkNCCL(SeqNum=1, OpType=ALLREDUCE) ran for 600000 milliseconds "
             "before timing out.\n",
             "Traceback (most recent call last):\n", "ValueError: bad value 17\n",
             "OSError: [Errno 98] Address already in use\n"]
    log = tmp_path / "crashloop.log"
    log.write_text("".join(lines) * (3 * 2**20 // len("".join(lines))))
    start = time.process_time()
    result = triage.triage([str(log)])
    cpu = time.process_time() - start
    assert result["causes"][0]["id"] == "cuda-oom"
    assert cpu < 6, f"{cpu:.1f} s of CPU for a 3 MB log"


def test_a_rank_killed_by_a_signal_is_named_from_torchrun_root_cause_table():
    """A rank the kernel's OOM killer ends prints nothing; torchrun's failure table names it
    (`Root Cause ... rank : 1 ... exitcode : -9 ... (SIGKILL)`). Triage said "the cause is
    not in these logs"; it names the rank and the signal, and what sends SIGKILL."""
    result = triage.triage([str(REAL / "rank-sigkill.log")])
    assert result["fatal"] is True and result["causes"] == []
    death = result["died_by_signal"]
    assert (death["rank"], death["exitcode"], death["signal"]) == ("1", -9, "SIGKILL")
    text = (REAL / "rank-sigkill.log").read_text().splitlines()
    assert "Root Cause (first observed failure)" in text[death["line"] - 1]
    out = run_cli(str(REAL / "rank-sigkill.log")).stdout.decode()
    assert "rank 1 died by SIGKILL (exitcode -9;" in out
    assert "dmesg" in out and "the cause is not in these logs" not in out


def test_one_launcher_layer_is_port_free_a_second_is_nested(tmp_path):
    """The same bind failure names port-free under swift's own launcher (its `run sh:` line
    unprefixed) and nested-launcher when torchrun's workers print it ([defaultN]:)."""
    run_sh = ("run sh: `/usr/bin/python -m torch.distributed.run --nproc_per_node 2 "
              "--master_port 29500 /opt/swift/cli/sft.py`\n")
    bind = ("[W1122 10:02:11.812 socket.cpp:464] [c10d] The server socket has failed to bind to "
            "[::]:29500 (errno: 98 - Address already in use).\n")
    one, two = tmp_path / "one.log", tmp_path / "two.log"
    one.write_text(run_sh + bind)
    two.write_text("[default0]:" + run_sh + "[default1]:" + run_sh + "[default1]:" + bind)
    assert triage.triage([str(one)])["causes"][0]["id"] == "port-free"
    assert triage.triage([str(two)])["causes"][0]["id"] == "nested-launcher"


@pytest.mark.parametrize(("name", "line", "ev_line", "ev_text"), NESTED,
                         ids=[n for n, *_ in NESTED])
def test_a_nested_launch_outranks_port_free_and_shows_its_evidence(name, line, ev_line, ev_text):
    """The bind failure alone is port-free (the same traceback as a port another program
    holds); the outer launcher's record of its workers being launchers makes it nested."""
    cause = triage.triage([str(LOGS / name)])["causes"][0]
    assert (cause["id"], cause["line"], cause["confidence"]) == ("nested-launcher", line,
                                                               "certain")
    assert cause["evidence"] == [{"file": str(LOGS / name), "line": ev_line, "match": ev_text}]
    text = (LOGS / name).read_text(encoding="utf-8").splitlines()
    assert text[ev_line - 1].strip() == ev_text
    plain = [b for b in triage.runbook_blocks() if b.id != "nested-launcher"]
    alone = triage.triage([str(LOGS / name)], blocks=plain)["causes"][0]
    assert (alone["id"], alone["line"], alone["evidence"]) == ("port-free", line, [])
    out = triage.render(triage.triage([str(LOGS / name)]))
    assert f"  > {cause['match']}\n  evidence: {LOGS / name}:{ev_line}: {ev_text}\n" in out


def test_a_launchers_lines_under_a_workers_tee_prefix_are_nested_on_their_own():
    """Without the outer table (the job killed before it), a worker's --tee output that is
    a launcher's own log still names the nesting."""
    name = REAL / "nested-standalone-tee.log"
    blocks = [b for b in triage.runbook_blocks()
              if not (b.id == "nested-launcher" and any("FAILED" in c.pattern for c in b.log))]
    cause = triage.triage([str(name)], blocks=blocks)["causes"][0]
    assert (cause["id"], cause["line"]) == ("nested-launcher", 47)
    assert [(e["line"], e["match"][:47]) for e in cause["evidence"]] == [
        (49, "[default0]:W1201 02:48:13.929000 18804 site-pac")]
    assert "Received 15 death signal" in cause["evidence"][0]["match"]


@pytest.mark.parametrize(("name", "line"), NOT_NESTED, ids=[n for n, _ in NOT_NESTED])
def test_a_taken_port_in_one_launch_two_nodes_or_a_restart_is_not_nested(name, line):
    text = (LOGS / name).read_text(encoding="utf-8")
    # what the log holds: agent lines from each node, a restart, no launcher as a worker
    assert re.search(r"Errno 98|EADDRINUSE", text)
    cause = triage.triage([str(LOGS / name)])["causes"][0]
    assert (cause["id"], cause["line"], cause["evidence"]) == ("port-free", line, [])


def test_the_not_nested_logs_hold_what_a_counting_rule_would_misread():
    """Two nodes print the launcher's start-up block once each, as two launchers of a
    nested job do; a restart starts the workers twice under one launcher."""
    labelled = (REAL / "multinode-labelled.log").read_text(encoding="utf-8")
    starts = re.findall(r"^(node\d): I\d{4} [\d:.]+ (\d+) \S+\] Starting elastic_operator",
                        labelled, re.M)
    assert sorted(node for node, _ in starts) == ["node0", "node1"]
    assert len({pid for _, pid in starts}) == 2 and labelled.count("metrics.py FAILED") == 2
    restarted = (REAL / "restarted-port-held.log").read_text(encoding="utf-8")
    assert restarted.count("Starting elastic_operator") == 1
    assert "1/1 attempts left; will restart worker group" in restarted
    nested = (REAL / "nested-standalone-info.log").read_text(encoding="utf-8")
    assert nested.count("Starting elastic_operator") == 3
    # the inner launchers inherit OMP_NUM_THREADS: the banner is printed once per job
    assert nested.count("Setting OMP_NUM_THREADS") == 1


def test_a_log_dir_with_or_without_the_console_log_is_nested(tmp_path):
    ranks = REAL / "nested-logdir-console-ranks"
    both = triage.triage([str(REAL / "nested-logdir-console.log"), str(ranks)])["causes"][0]
    assert both["id"] == "nested-launcher"
    # the outer launcher's --log-dir files alone: a launcher's rendezvous traceback in a
    # worker's own stderr.log (a single torchrun's goes to its console)
    alone = triage.triage([str(ranks)])["causes"][0]
    assert alone["id"] == "nested-launcher", alone
    assert re.search(r"attempt_0/\d/stderr\.log$", alone["file"])
    # the same lines outside a worker's file (a launcher's own console): a taken port
    console = tmp_path / "console.log"
    console.write_text((ranks / "attempt_0" / "1" / "stderr.log").read_text())
    assert triage.triage([str(console)])["causes"][0]["id"] == "port-free"
    # and a worker's file without a launcher's traceback: the training script's own bind
    script = tmp_path / "logs" / "run_x" / "attempt_0" / "1"
    script.mkdir(parents=True)
    (script / "stderr.log").write_text(
        "Traceback (most recent call last):\n  File \"/w/train.py\", line 9, in <module>\n"
        "    srv.bind(('', 8000))\nOSError: [Errno 98] Address already in use\n")
    assert triage.triage([str(tmp_path / "logs")])["causes"][0]["id"] == "port-free"


def test_a_live_nested_launch_reads_as_the_committed_log(tmp_path):
    """Regenerates one nested launch with real torchrun (bounded, its tree killed) so the
    committed logs cannot drift from torch's output unnoticed: the same root cause line and
    evidence, numbers aside."""
    name = "nested-standalone-plain"
    live = triage.triage([str(produce_live(LOGS / "produce_nested.py", tmp_path,
                                           name))])["causes"][0]
    kept = triage.triage([str(REAL / f"{name}.log")])["causes"][0]

    patterns = {p for b in triage.runbook_blocks() if b.id == "nested-launcher" for p in b.patterns}

    def shape(cause):  # which runbook patterns the line matches, not its port or host family
        return (cause["id"], cause["confidence"],
                sorted(p.pattern for p in patterns if p.search(cause["match"])),
                [re.sub(r"\d+", "N", e["match"]) for e in cause["evidence"]])
    assert shape(live) == shape(kept)
    assert shape(kept)[2] and shape(kept)[3] == ["torch.distributed.run FAILED"]


# The collective-timeout logs: what the waiting ranks' lines say (rank, op, timeout, the
# missing rank where gloo names it, the peer that closed the connection).
COLLECTIVE = [
    ("real/collective-timeout-allreduce.log", ["0"], [], ["recv"], [3000], False),
    ("real/collective-timeout-barrier.log", ["1"], [], ["recv"], [3000], False),
    ("real/collective-timeout-detail.log", ["0"], ["1"], [], [3000], False),
    ("real/collective-peer-exit.log", ["0"], [], [], [], True),
]


@pytest.mark.parametrize(("name", "ranks", "missing", "ops", "timeouts", "peer"), COLLECTIVE,
                         ids=[c[0] for c in COLLECTIVE])
def test_a_collective_timeout_names_the_waiting_and_the_missing_ranks(
        name, ranks, missing, ops, timeouts, peer):
    """Before: `unknown` (a gloo RuntimeError no runbook knew) or "only consequences" (the
    peer's closed connection). Now the pitfall, who waited, for what, how long, and who
    did not come when the log says it."""
    result = triage.triage([str(LOGS / name)])
    assert result["causes"][0]["id"] == "collective-timeout"
    summary = result["collective"]
    assert (summary["ranks"], summary["missing"], summary["ops"], summary["timeout_ms"]) == (
        ranks, missing, ops, timeouts)
    assert bool(summary["peers"]) is peer
    assert all(re.fullmatch(r"127\.0\.0\.1:\d+", p) for p in summary["peers"])
    out = triage.render(result)
    assert "ROOT CAUSE: collective-timeout" in out and "\n  collective: rank(s) " in out
    assert "py-spy dump --pid" in out and "TORCH_DISTRIBUTED_DEBUG=DETAIL" in out
    assert "no preflight check catches this before launch" in out
    if missing:
        assert f"rank(s) {', '.join(missing)} did not reach it" in out


def test_a_peer_killed_by_a_signal_stays_the_root_cause_of_the_closed_connection():
    """Rank 1 SIGKILLed (the OOM killer) while rank 0 waits in all_reduce: rank 0's
    `Connection closed by peer` is the consequence; torchrun's table names the dead rank."""
    name = REAL / "collective-peer-sigkill.log"
    result = triage.triage([str(name)])
    assert result["fatal"] is True and result["causes"] == []
    death = result["died_by_signal"]
    assert (death["rank"], death["exitcode"], death["signal"]) == ("1", -9, "SIGKILL")
    [then] = death["consequences"]
    assert then["id"] == "collective-timeout" and "Connection closed by peer" in then["match"]
    assert (result["collective"]["ranks"], len(result["collective"]["peers"])) == (["0"], 1)
    out = triage.render(result).splitlines()
    assert out[1].startswith("FATAL: rank 1 died by SIGKILL (exitcode -9;")
    assert out[2].startswith("  then the ranks waiting for it failed (collective-timeout, a "
                             "consequence) at ")


def test_the_rank_with_the_dead_dataloader_worker_outranks_the_ranks_that_waited():
    result = triage.triage([str(REAL / "dataloader-killed-torchrun.log")])
    first, *later = result["causes"]
    assert (first["id"], first["match"][:8]) == ("dataloader-killed", "[rank1]:")
    assert [c["id"] for c in later][-1:] == ["collective-timeout"]   # rank 0, after
    assert "collective" not in result and "died_by_signal" not in result
    out = triage.render(result)
    assert "df -h /dev/shm" in out and "dmesg -T" in out and "--shm-size" in out


def test_an_unknown_exception_outranks_the_ranks_that_waited(tmp_path):
    """Whatever kept the missing rank away is likelier in its own error, even one no
    runbook knows, than in the others' timeout: put after the timeout in the log, it still
    comes first."""
    text = (REAL / "collective-timeout-allreduce.log").read_text(encoding="utf-8")
    log = tmp_path / "mixed.log"
    log.write_text(text + "[rank1]: Traceback (most recent call last):\n"
                   '[rank1]:   File "/tmp/work/collective.py", line 9, in <module>\n'
                   "[rank1]: ValueError: shard 7 has no rows\n")
    ids = [c["id"] for c in triage.triage([str(log)])["causes"]]
    assert ids[0] == "unknown" and ids[-1] == "collective-timeout"


def test_existing_logs_with_collective_lines_keep_their_cause():
    """Ports taken, nested launches, per-rank dirs: their other ranks' gloo errors and NCCL
    watchdog timeouts are consequences, never the root cause, and add no summary."""
    names = ["real/nested-torchrun.log", "real/multinode-labelled.log",
             "real/multinode-concat.log", "real/restarted-port-held.log",
             "cited/cuda-oom-swift-ranks.log", "real/ranks-dataset", "real/ranks-disk",
             "real/rank-sigkill.log", "cited/host-limits-bus-error.log"]
    for name in names:
        result = triage.triage([str(LOGS / name)])
        assert "collective" not in result, name
        assert all(c["id"] != "collective-timeout" for c in result["causes"][:1]), name


def test_an_nccl_watchdog_timeout_alone_names_op_timeout_and_ranks(tmp_path):
    """No NCCL here: the watchdog lines of the cited issue log (the message torch 2.13.0's
    libtorch_cuda.so builds from its literals, runbook collective-timeout.md) without the
    OOM that caused them."""
    lines = [x for x in (CITED / "cuda-oom-swift-ranks.log").read_text().splitlines()
             if "Watchdog caught collective operation timeout" in x]
    assert len(lines) >= 2
    log = tmp_path / "nccl.log"
    log.write_text("\n".join(lines) + "\n")
    result = triage.triage([str(log)])
    assert result["causes"][0]["id"] == "collective-timeout"
    summary = result["collective"]
    assert summary["ranks"] == ["0", "1", "2"] and summary["ops"] == ["ALLREDUCE"]  # rank 3: OOM
    assert summary["timeout_ms"] == [600000]


def test_the_collective_fixes_name_options_torch_has():
    """The runbook's fix uses these; each exists in the pinned torch (the NCCL ones are in
    libtorch_cuda.so, which the CPU wheel lacks: checked by hand, runbook)."""
    import inspect

    import torch.distributed as dist
    import torch.distributed.distributed_c10d as c10d

    fix = triage.fix_of("collective-timeout") or ""
    assert "TORCH_DISTRIBUTED_DEBUG=DETAIL" in fix and "py-spy dump --pid" in fix
    assert "TORCH_DISTRIBUTED_DEBUG" in inspect.getsource(c10d)
    assert "timeout" in inspect.signature(dist.init_process_group).parameters
    assert "timeout" in inspect.signature(dist.monitored_barrier).parameters
