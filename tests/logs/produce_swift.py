"""Reproduces the real ms-swift logs under tests/logs/real/swift-*.log: the real `swift sft`
and `swift rlhf --rlhf_type grpo` (ms-swift 4.6, CPU, gloo) on preflight's tiny offline
Qwen2 (preflight/stack/make_tiny.py), stdout and stderr merged as `> train.log 2>&1` does.
Run it with the interpreter ms-swift is installed under, as root (the disk-full shape
mounts a tmpfs in a private mount namespace, `unshare -m`):

    /path/to/swift-venv/bin/python tests/logs/produce_swift.py OUTDIR [NAME...]

Runs that succeed (sft in one process and under swift's own torchrun, NPROC_PER_NODE=2;
GRPO under NPROC_PER_NODE=2) with the warnings ms-swift, transformers and torch print; and
the failures users hit: a dataset path that does not exist, a dataset row without the
`messages` column, an argument value swift rejects, an output dir that cannot be created,
rank 1 killed by SIGKILL mid-run, a resume from a checkpoint dir that does not exist, a
MASTER_PORT another program holds, and a checkpoint written into a full filesystem.

Each run is bounded and its process group killed; paths and the host name are redacted
(produce_nested.redact); each log gets a two-line header (the command and its exit code).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from produce_nested import PY, ROOT, cli, hold_port, redact  # noqa: E402

SWIFT = str(Path(PY).with_name("swift"))
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
# the smoke's own arguments (preflight/stack/swift.py SMOKE_ARGS), with a save at step 10
BASE = ["--model", "{work}/tiny/model", "--model_type", "qwen2", "--template", "qwen",
        "--dataset", "{work}/tiny/train.jsonl", "--output_dir", "{work}/out",
        "--tuner_type", "full", "--per_device_train_batch_size", "2", "--logging_steps", "1",
        "--max_length", "128", "--dataloader_num_workers", "0", "--dataset_num_proc", "1",
        "--report_to", "none", "--check_model", "false", "--max_steps", "10",
        "--save_steps", "10"]
GRPO = ["--rlhf_type", "grpo", "--use_vllm", "false", "--num_generations", "2",
        "--max_completion_length", "8", "--external_plugins", "{work}/grpo_reward.py",
        "--reward_funcs", "preflight_length"]
CPU2 = ["--ddp_backend", "gloo", "--use_cpu", "true"]


@dataclass(frozen=True)
class Shape:
    argv: list[str]  # after `swift`; {work} is the run's work dir
    nproc: int = 0  # NPROC_PER_NODE (swift starts torchrun), 0: one process
    setup: Callable[[Path], None] = lambda work: None
    port_held: bool = False  # MASTER_PORT held by another program
    kill_rank1_at: str = ""  # SIGKILL local rank 1 once the log shows this
    tmpfs_out: str = ""  # size of a tmpfs mounted on {work}/out (unshare -m)
    timeout: float = 300.0


def _set(args: list[str], name: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(name) + 1] = value
    return out


def _bad_row(work: Path) -> None:
    rows = (work / "tiny" / "train.jsonl").read_text().splitlines()
    # a row whose assistant turn lost its "content" (a row without `messages` at all is
    # skipped by swift and the run succeeds: no failure to triage)
    rows[5] = ('{"messages": [{"role": "user", "content": "Say hello."}, '
               '{"role": "assistant"}]}')
    (work / "bad.jsonl").write_text("\n".join(rows) + "\n")


def _no_messages(work: Path) -> None:
    # every row's turns under a column swift does not map to `messages` ("conversation"
    # and "conversations" it maps: swift/dataset/preprocessor/core.py:507)
    rows = (work / "tiny" / "train.jsonl").read_text().splitlines()
    (work / "bad.jsonl").write_text("".join(r.replace('"messages"', '"chat"') + "\n"
                                            for r in rows))


def _file_in_the_way(work: Path) -> None:
    (work / "runs").write_text("a file where the output dir's parent should be\n")


SHAPES: dict[str, Shape] = {
    "swift-sft-ok": Shape(["sft", *BASE]),
    "swift-sft-ok-torchrun": Shape(["sft", *BASE, *CPU2], nproc=2),
    "swift-grpo-ok-torchrun": Shape(["rlhf", *BASE, *CPU2, *GRPO], nproc=2, timeout=600),
    "swift-dataset-missing": Shape(["sft", *_set(BASE, "--dataset", "{work}/data/train.jsonl")]),
    # swift logs the bad row's KeyError, drops the row and trains on: a success
    "swift-sft-ok-bad-row": Shape(["sft", *_set(BASE, "--dataset", "{work}/bad.jsonl")],
                                  setup=_bad_row),
    "swift-dataset-column": Shape(["sft", *_set(BASE, "--dataset", "{work}/bad.jsonl")],
                                  setup=_no_messages),
    "swift-dataset-missing-torchrun": Shape(
        ["sft", *_set(BASE, "--dataset", "{work}/data/train.jsonl"), *CPU2], nproc=2),
    "swift-bad-arg-type-torchrun": Shape(["sft", *_set(BASE, "--max_steps", "ten"), *CPU2],
                                         nproc=2),
    "swift-outdir-unwritable-torchrun": Shape(
        ["sft", *_set(BASE, "--output_dir", "{work}/runs/out"), *CPU2], nproc=2,
        setup=_file_in_the_way),
    "swift-bad-arg": Shape(["sft", *_set(BASE, "--tuner_type", "ful")]),
    "swift-bad-arg-type": Shape(["sft", *_set(BASE, "--max_steps", "ten")]),
    "swift-outdir-unwritable": Shape(["sft", *_set(BASE, "--output_dir", "{work}/runs/out")],
                                     setup=_file_in_the_way),
    "swift-rank-killed": Shape(["sft", *_set(BASE, "--max_steps", "200"), *CPU2], nproc=2,
                               kill_rank1_at="'loss':"),
    "swift-resume-missing": Shape(["sft", *BASE, "--resume_from_checkpoint",
                                   "{work}/out/v0-20261201-000000/checkpoint-10"]),
    "swift-port-held": Shape(["sft", *BASE, *CPU2], nproc=2, port_held=True, timeout=120),
    "swift-disk-full": Shape(["sft", *BASE], tmpfs_out="1m"),
}


def _tree(root: int) -> set[int]:
    """`root` and its descendants, by parent links (torchrun's workers run in sessions of
    their own: a kill of the launch's process group does not reach them)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def _rank1_pid(root: int) -> int | None:
    """The worker torchrun started with LOCAL_RANK=1 under `root`."""
    tree = _tree(root)
    for pid in sorted(tree - {root}):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"LOCAL_RANK=1" in env:  # torchrun's agent sets it in its workers only
            return pid
    return None


def _run(shape: Shape, work: Path) -> tuple[bytes, int, str]:
    argv = [SWIFT] + [a.replace("{work}", str(work)) for a in shape.argv]
    env = {k: v for k, v in os.environ.items()
           if k not in ("MASTER_PORT", "MASTER_ADDR", "NPROC_PER_NODE", "OMP_NUM_THREADS")
           and not k.startswith(("PET_", "TORCHELASTIC_"))}
    env.update(OFFLINE, PYTHONUNBUFFERED="1", TMPDIR=str(work / "tmp"))
    shown = ""
    holder = hold_port() if shape.port_held else None
    if shape.nproc:
        env["NPROC_PER_NODE"] = str(shape.nproc)
        port = holder.getsockname()[1] if holder else _free_port()
        env["MASTER_PORT"] = str(port)
        shown = f"NPROC_PER_NODE={shape.nproc} MASTER_PORT={port} "
    if shape.tmpfs_out:
        (work / "out").mkdir()
        cmd = [shutil.which("unshare") or "unshare", "-m", "bash", "-c",
               f'mount -t tmpfs -o size={shape.tmpfs_out} tmpfs "$0" && exec "$@"',
               str(work / "out"), *argv]
        shown = f"unshare -m: mount -t tmpfs -o size={shape.tmpfs_out} tmpfs OUT; " + shown
    else:
        cmd = argv
    log = work / "train.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=work, start_new_session=True)
        deadline = time.monotonic() + shape.timeout
        killed = False
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
                if shape.kill_rank1_at and not killed and \
                        shape.kill_rank1_at in log.read_text(errors="replace"):
                    pid = _rank1_pid(proc.pid)
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                        killed = True
            if proc.poll() is None:
                rc = 124
            else:
                rc = proc.returncode
        finally:
            for pid in _tree(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            if holder:
                holder.close()
    if shape.kill_rank1_at:
        shown += "(rank 1 killed by SIGKILL after its first loss line) "
    shown += "swift " + " ".join(a.replace("{work}", "/tmp/work") for a in shape.argv)
    return log.read_bytes(), rc, shown


def _free_port() -> int:
    s = hold_port()
    port: int = s.getsockname()[1]
    s.close()
    return port


def produce(name: str, out_dir: Path) -> Path:
    shape = SHAPES[name]
    with tempfile.TemporaryDirectory(prefix="preflight-swift-") as tmp:
        work = Path(tmp)
        (work / "tmp").mkdir()
        subprocess.run([PY, str(ROOT / "preflight/stack/make_tiny.py"), str(work / "tiny"),
                        "--layers", "2"], check=True, capture_output=True, timeout=300,
                       env={**os.environ, **OFFLINE})
        shutil.copy(ROOT / "preflight/stack/grpo_reward.py", work / "grpo_reward.py")
        shape.setup(work)
        raw, rc, shown = _run(shape, work)
        text = raw.decode("utf-8", "replace")
        # the tiny model's name in the log: swift prints the model dir
        body = redact(text, work)
        header = (f"# fixture {name} (real run, tests/logs/produce_swift.py)\n"
                  f"# made by: {shown} (exit {rc})\n")
        path = out_dir / f"{name}.log"
        path.write_text(header + body)
        return path


def main(argv: list[str]) -> int:
    return cli(argv, SHAPES, produce)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
