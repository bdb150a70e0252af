"""ms-swift: where it is installed, the smoke command, and what a run left behind.

A 4-GPU ms-swift GRPO job that hung under two launchers was fixed by a `--max_steps 10`
smoke before the real run; this module builds that command for the user's installed
`swift` and reads its results back as plain data. How `swift` launches itself is
ms-swift's `swift/cli/main.py` (4.6): `NPROC_PER_NODE` / `NNODES` in the environment make
it exec
`python -m torch.distributed.run --nproc_per_node N [--master_port $MASTER_PORT] ...`
and print `run sh: ...` first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preflight.probes import paths
from preflight.probes.exceptions import exception_lines
from preflight.run import Runner

MAKE_TINY = Path(__file__).with_name("make_tiny.py")
GRPO_REWARD = Path(__file__).with_name("grpo_reward.py")

# The smoke's fixed arguments: full fine-tuning (optimizer state is written, so a
# resume is possible), one log line per step, one checkpoint at the last step, no
# hub traffic (`--check_model false` skips modelscope's "is the local model latest"
# query in swift/trainers/mixin.py, which retries for seconds when offline).
SMOKE_ARGS = (
    "--tuner_type", "full",
    "--per_device_train_batch_size", "2",
    "--logging_steps", "1",
    "--max_length", "128",
    "--dataloader_num_workers", "0",
    "--dataset_num_proc", "1",
    "--report_to", "none",
    "--check_model", "false",
    "--save_only_model", "false",
)
# GRPO without vLLM (the colocated engine needs a GPU): 2 completions per prompt of at
# most 8 tokens, scored by preflight's reward (stack/grpo_reward.py).
GRPO_ARGS = (
    "--rlhf_type", "grpo",
    "--use_vllm", "false",
    "--num_generations", "2",
    "--max_completion_length", "8",
    "--external_plugins", str(GRPO_REWARD),
    "--reward_funcs", "preflight_length",
)
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

@dataclass(frozen=True)
class SwiftInstall:
    executable: str | None  # `swift` resolved on PATH
    python: str | None  # the interpreter its entry point runs under
    version: str | None  # swift.__version__, None when it does not import
    error: str = ""  # why this install cannot run the smoke

    @property
    def usable(self) -> bool:
        return bool(self.executable and self.python and self.version)


def entry_point_python(executable: str) -> str | None:
    """The interpreter of a pip console script: its shebang, or pip's `/bin/sh` trampoline
    for long paths (`'''exec' /path/python "$0" "$@"`)."""
    try:
        with open(executable, "rb") as fh:
            head = fh.read(512).decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    if not head or not head[0].startswith("#!"):
        return None
    first = head[0][2:].strip().split()
    if first and "python" in Path(first[0]).name:
        return first[0]
    for line in head[1:3]:
        found = re.match(r"""^'''exec' (\S+)""", line)
        if found:
            return found.group(1)
    return None


def find(environ: Mapping[str, str], runner: Runner) -> SwiftInstall:
    exe = paths.which("swift", environ)
    if exe is None:
        return SwiftInstall(None, None, None, "`swift` is not on PATH")
    python = entry_point_python(exe)
    if python is None:
        return SwiftInstall(exe, None, None,
                            f"{exe} is not a Python entry point (Apple's Swift, not ms-swift?)")
    done = runner.run([python, "-c", "import swift; print(swift.__version__)"], timeout=120,
                      env=environ)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["timed out" if done.timed_out else "?"])[-1]
        return SwiftInstall(exe, python, None, f"`import swift` fails under {python}: {why}")
    return SwiftInstall(exe, python, done.stdout.strip().splitlines()[-1])


def tiny_assets_argv(python: str, out: Path, layers: int = 2) -> list[str]:
    return [python, str(MAKE_TINY), str(out), "--layers", str(layers)]


def sft_argv(executable: str, model: str, dataset: str, output_dir: Path, *, steps: int,
             backend: str) -> list[str]:
    return [executable, "sft", *train_args(model, dataset, output_dir, steps, backend)]


def grpo_argv(install: SwiftInstall, model: str, dataset: str, output_dir: Path, *,
              steps: int, backend: str, via: str, nproc: int, port: int) -> list[str]:
    """`swift rlhf --rlhf_type grpo` the way the job launches it: `via="swift"` is swift's
    own launcher (run with `launch_env`), `via="torchrun"` is torchrun around the trainer
    module, as `torchrun ... -m swift.cli.rlhf` (run with `torchrun_env`)."""
    args = [*train_args(model, dataset, output_dir, steps, backend), *GRPO_ARGS]
    if via == "torchrun":
        return [install.python or "python", "-m", "torch.distributed.run",
                "--nproc_per_node", str(nproc),
                "--master_addr", "127.0.0.1", "--master_port", str(port),
                "-m", "swift.cli.rlhf", *args]
    return [install.executable or "swift", "rlhf", *args]


def train_args(model: str, dataset: str, output_dir: Path, steps: int,
               backend: str) -> list[str]:
    args = ["--model", model, "--dataset", dataset, "--output_dir", str(output_dir),
            "--max_steps", str(steps), "--save_steps", str(steps), "--ddp_backend", backend,
            *SMOKE_ARGS, *_tiny_model_args(model)]
    if backend == "gloo":
        # Without a GPU, accelerate makes the run distributed (MULTI_CPU) only when
        # `use_cpu` is set (accelerate/state.py `_prepare_backend`; transformers
        # TrainingArguments.use_cpu): otherwise each rank trains alone, without DDP, and
        # GRPO's gather returns local rewards (grpo_trainer.py:241 assertion, 2 ranks).
        args += ["--use_cpu", "true"]
    return args


def _tiny_model_args(model: str) -> list[str]:
    # A local dir has no hub id for swift to infer the family from: name it.
    if (Path(model) / "config.json").is_file():
        try:
            config = json.loads((Path(model) / "config.json").read_text())
            family = config.get("model_type") if isinstance(config, dict) else None
        except (OSError, ValueError, RecursionError):
            family = None
        if family == "qwen2":
            return ["--model_type", "qwen2", "--template", "qwen"]
    return []


def launch_env(environ: Mapping[str, str], nproc: int, master_port: int) -> dict[str, str]:
    """swift's own launcher path: NPROC_PER_NODE makes it run torchrun once (the GRPO smoke's
    fix)."""
    env = _run_env(environ)
    env["NPROC_PER_NODE"] = str(nproc)
    env["MASTER_PORT"] = str(master_port)
    return env


def torchrun_env(environ: Mapping[str, str]) -> dict[str, str]:
    """An outer torchrun's environment: without NPROC_PER_NODE / NNODES, which would make
    a `swift` inside relaunch itself (the nested launcher)."""
    env = _run_env(environ)
    for name in ("NPROC_PER_NODE", "NNODES"):
        env.pop(name, None)
    return env


def with_log_dir(env: Mapping[str, str], log_dir: Path) -> dict[str, str]:
    """The smoke's environment with torchrun's per-attempt directories under `log_dir`.
    torchrun reads its --log-dir from PET_LOG_DIR too (torch/distributed/argparse_util.py
    `env`: PET_<dest>; run.py:554 `--log-dir`), which reaches the torchrun swift starts
    itself (swift/cli/main.py) as well as ours; without it each launch left an empty
    torchelastic_* tree in $TMPDIR (elastic/multiprocessing/api.py:260-262). A PET_LOG_DIR
    the user exported is theirs: kept."""
    out = dict(env)
    if not out.get("PET_LOG_DIR"):
        out["PET_LOG_DIR"] = str(log_dir)
    return out


def _run_env(environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    env.update(OFFLINE_ENV)
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass(frozen=True)
class SmokeSetup:
    """What a swift smoke runs with: the install, the model and data, and the launch."""

    install: SwiftInstall
    model: str
    dataset: str
    nproc: int
    backend: str  # "nccl" on GPUs, "gloo" (with --use_cpu) without
    port: int
    out: Path


@dataclass(frozen=True)
class SmokeRun:
    """What a finished swift run left: its log lines and its checkpoint."""

    steps: tuple[int, ...] = ()
    losses: tuple[float, ...] = ()
    rewards: tuple[float, ...] = ()  # GRPO only
    reward_stds: tuple[float, ...] = ()  # GRPO: the spread within a step's groups
    max_steps: int | None = None
    steps_per_s: float | None = None
    train_runtime_s: float | None = None
    peak_gpu_memory_gib: float | None = None
    checkpoint: str | None = None
    checkpoint_files: tuple[str, ...] = ()
    optimizer_state: bool = False
    run_sh: str = ""
    first_error: str = ""
    error_lines: tuple[str, ...] = field(default=())


def parse_logging(lines: Iterable[str]) -> dict[str, Any]:
    """swift's logging.jsonl: one JSON object per logging step, a summary last."""
    steps, losses, memory, rewards, reward_stds = [], [], [], [], []
    summary: dict[str, Any] = {}
    max_steps = None
    for raw in lines:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        progress = str(entry.get("global_step/max_steps", ""))
        if "/" in progress:
            done, _, total = progress.partition("/")
            if total.isdigit():
                max_steps = int(total)
            if "loss" in entry and done.isdigit():
                steps.append(int(done))
                losses.append(float(entry["loss"]))
                if "reward" in entry:  # GRPO: the mean reward of the step's completions
                    rewards.append(float(entry["reward"]))
                    reward_stds.append(float(entry.get("reward_std", 0.0)))
        if "memory(GiB)" in entry:
            memory.append(float(entry["memory(GiB)"]))
        if "train_runtime" in entry:
            summary = entry
    return {"steps": steps, "losses": losses, "max_steps": max_steps, "summary": summary,
            "peak_gpu_memory_gib": max(memory) if memory else None, "rewards": rewards,
            "reward_stds": reward_stds}


def first_errors(log_text: str, limit: int = 5) -> list[str]:
    """The distinct exception lines of a log, in order: the first one is the cause."""
    return exception_lines(log_text.splitlines(), limit)


# torchrun's failure table: "exitcode  : -6 (pid: 29279)  (SIGABRT)" (torch 2.13) or
# "traceback : Signal 6 (SIGABRT) received by PID ..." (older); and the C++ runtime's last
# words when a thread is still running as the interpreter exits.
_DIED = re.compile(r"exitcode\s*:\s*(-\d+)\D.*?\((SIG\w+)\)|Signal (\d+) \((SIG\w+)\)"
                   r"|terminate called [^\n]*")
# swift prints these once the trainer returned, after the last checkpoint was saved.
_FINISHED = ("last_model_checkpoint:", "End time of running main")


def exit_signal(log_text: str) -> str:
    """How a worker died, e.g. "SIGABRT (exitcode -6): terminate called without an active
    exception"; "" when no worker died by a signal (torchrun's own SIGTERM to the others
    does not count)."""
    signals, words = [], []
    for m in _DIED.finditer(log_text):
        if m[0].startswith("terminate"):
            words.append(m[0].strip())
        elif m[2] and m[2] != "SIGTERM":
            signals.append(f"{m[2]} (exitcode {m[1]})")
        elif m[4] and m[4] != "SIGTERM":
            signals.append(f"{m[4]} (signal {m[3]})")
    return ": ".join(x for x in (signals[:1] + words[:1]) if x)


def died_after_save(result: SmokeRun, returncode: int | None, log_text: str,
                    steps: int) -> str:
    """How a rank died when the run had finished (every step logged, swift's end-of-run
    line printed, the checkpoint with optimizer state written, no exception besides
    torchrun's ChildFailedError) and then exited non-zero by a signal; "" otherwise, and
    then a non-zero exit is a failure."""
    if returncode in (0, None) or len(result.steps) < steps or not result.optimizer_state:
        return ""
    if any("ChildFailedError" not in e for e in result.error_lines):
        return ""
    if not any(marker in log_text for marker in _FINISHED):
        return ""
    return exit_signal(log_text)


def read_run(output_dir: Path, log_text: str, steps: int) -> SmokeRun:
    """Everything the checks judge a swift run by, from its output dir and its log."""
    runs = sorted(output_dir.glob("v*-*/logging.jsonl"), key=lambda p: p.stat().st_mtime)
    parsed = parse_logging(runs[-1].read_text(errors="replace").splitlines()) if runs else \
        parse_logging([])
    checkpoints = sorted(output_dir.glob(f"v*-*/checkpoint-{steps}"))
    ckpt = checkpoints[-1] if checkpoints else None
    files = tuple(sorted(p.name for p in ckpt.iterdir())) if ckpt else ()
    run_sh = next((ln.strip() for ln in log_text.splitlines() if ln.startswith("run sh: ")), "")
    summary = parsed["summary"]
    errors = first_errors(log_text)
    return SmokeRun(
        steps=tuple(parsed["steps"]),
        losses=tuple(parsed["losses"]),
        rewards=tuple(parsed["rewards"]),
        reward_stds=tuple(parsed["reward_stds"]),
        max_steps=parsed["max_steps"],
        steps_per_s=_float(summary.get("train_steps_per_second")),
        train_runtime_s=_float(summary.get("train_runtime")),
        peak_gpu_memory_gib=parsed["peak_gpu_memory_gib"],
        checkpoint=str(ckpt) if ckpt else None,
        checkpoint_files=files,
        # Trainer writes optimizer.pt; DeepSpeed a global_step*/ dir of optim states.
        optimizer_state=any(f.startswith(("optimizer", "global_step")) for f in files),
        run_sh=run_sh[:400],
        first_error=errors[0] if errors else "",
        error_lines=tuple(errors),
    )


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
