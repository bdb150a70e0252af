"""The workload stage against the physical floor of any workload check here: one bare
torchrun launch of the same world (import torch, init_process_group, barrier, destroy).

    python benchmarks/workload_floor.py [--profile cpu] [--pairs 3]

Pairs (workload stage, bare launch, ...) after a warm-up pair; prints medians and the
per-pair ratio with its min-max. The workload stage is what a user runs:
`preflight -q -m "workload and not stack" --profile P` (pytest start-up included), plus the
session time its report records. Acceptance (issue 14): workload stage <= 1.5x the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pairs import paired, user_env

HERE = Path(__file__).resolve().parent


def bare() -> None:
    """The rank body of the floor: what every workload check has to do at least."""
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo")
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare()
        return

    from preflight.probes.ports import free_port
    from preflight.profiles import load_profiles

    profile = load_profiles([])[args.profile]
    nproc = profile.workload.world_size or profile.gpu.count or 2
    sessions: list[float] = []
    parts: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="workload-floor-") as tmp:
        stage_argv = [sys.executable, "-m", "preflight", "-q", "-m", "workload and not stack",
                      "--profile", args.profile, "--report-dir", tmp]

        def stage() -> float:
            start = time.perf_counter()
            done = subprocess.run(stage_argv, cwd=tmp, capture_output=True, text=True,
                                  timeout=900, env=user_env())
            took = time.perf_counter() - start
            report = json.loads((Path(tmp) / "preflight-report.json").read_text())
            if done.returncode != 0:
                sys.exit(f"workload stage is {report['verdict']}: {done.stdout[-2000:]}")
            sessions.append(report["duration_s"])
            ranks(report, parts)
            return took

        def floor() -> float:
            argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
                    f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
                    f"--rdzv-endpoint=127.0.0.1:{free_port()}", "--max-restarts=0",
                    # as preflight's own launch (run/torchrun.py ELASTIC_DIR): torchrun's
                    # per-attempt dirs in this run's dir, not an empty tree per pair in /tmp
                    f"--log-dir={Path(tmp) / 'torchelastic'}",
                    str(HERE / "workload_floor.py"), "--bare"]
            start = time.perf_counter()
            done = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, timeout=600,
                                  env=user_env())
            took = time.perf_counter() - start
            if done.returncode != 0:
                sys.exit(f"bare launch failed: {done.stderr[-2000:]}")
            return took

        result = paired(floor, stage, args.pairs)
    measured = sessions[1:]  # the first was the warm-up
    print(f"profile {args.profile}: {nproc} ranks; workload stage session (inside pytest): "
          f"median {sorted(measured)[len(measured) // 2]:.2f} s")
    print(result.line("bare torchrun launch (floor)", "workload stage (preflight, wall)"))
    print("inside the ranks (median over runs and ranks): " + ", ".join(
        f"{name} {statistics.median(values):.2f} s" for name, values in parts.items()))


def ranks(report: dict[str, Any], parts: dict[str, list[float]]) -> None:
    """Where the ranks' time went in one stage run: each workload's own seconds, the
    process group set-up, and DDP's set-up (mostly `import torch._dynamo`, train.py)."""
    check = next((c for c in report["checks"] if c["id"] == "train-10-steps"), None)
    log = ((check or {}).get("evidence") or {}).get("launch", {}).get("log")
    if not log:
        return
    for path in sorted(Path(log).parent.glob("rank*.*.json")):
        data = json.loads(path.read_text())
        task = path.suffixes[-2].lstrip(".")
        keys = {f"{task}": "elapsed_s", "init_process_group": "init_process_group_s",
                "ddp_setup": "ddp_setup_s"}
        for name, key in keys.items():
            if isinstance(data.get(key), (int, float)) and (name == task or task == "train"):
                parts.setdefault(name, []).append(float(data[key]))


if __name__ == "__main__":
    main()
