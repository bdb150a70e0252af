"""The environment preflight says torchrun hands its first worker, against real torchrun.

Each case launches the real `python -m torch.distributed.run` with a worker that writes
its own environment, and reads the same line as a launch script. Every variable preflight
names must be unknown or exactly what the worker got; the cases also fix which ones it
must know (a static rendezvous decides them all; c10d picks the store address and port).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from preflight.launch import spec as launch
from preflight.probes.ports import free_port

KEYS = ("LOCAL_RANK", "RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE", "WORLD_SIZE", "MASTER_ADDR",
        "MASTER_PORT", "TORCHELASTIC_RUN_ID")
WORKER = f"""import json, os, sys
if os.environ["LOCAL_RANK"] == "0":
    with open(sys.argv[1] + "." + os.environ["GROUP_RANK"], "w") as f:
        json.dump({{k: os.environ.get(k) for k in {KEYS!r}}}, f)
"""

# (torchrun options, the other node's options or None, keys preflight must know)
CASES = {
    "static one node": ("--nproc-per-node 2 --master-port {p}", None, KEYS),
    "one-node rewrite to c10d": ("--nproc-per-node 1", None,
                                 ("RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")),
    "standalone": ("--standalone --nproc-per-node 2", None, ("RANK", "GROUP_RANK", "WORLD_SIZE")),
    "c10d endpoint with run id": (
        "--nnodes 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:{p} --rdzv-id job7 "
        "--nproc-per-node 1", None, ("RANK", "GROUP_RANK", "TORCHELASTIC_RUN_ID")),
    "static node rank 1 of 2": (
        "--nnodes 2 --node-rank 1 --master-addr 127.0.0.1 --master-port {p} "
        "--nproc-per-node 1",
        "--nnodes 2 --node-rank 0 --master-addr 127.0.0.1 --master-port {p} "
        "--nproc-per-node 1", KEYS),
}


def _torchrun(options: str, worker: Path, out: Path) -> subprocess.Popen[bytes]:
    # TMPDIR: torchrun's agent makes its per-attempt log dirs there (no --log-dir here: the
    # line must stay the one preflight reads), under the test's tmp_path, not /tmp
    tmp = out.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PET_", "TORCHELASTIC", "MASTER_"))}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--max-restarts=0",
                             *options.split(), str(worker), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**env, "TMPDIR": str(tmp)})


@pytest.mark.parametrize("name", list(CASES))
def test_worker_env_matches_real_torchrun(name: str, tmp_path: Path) -> None:
    options, other, must = CASES[name]
    port = free_port()  # one port: both nodes of a two-node case meet on it
    options, other = (o.format(p=port) if o else o for o in (options, other))
    assert options is not None
    worker, out = tmp_path / "w.py", tmp_path / "env"
    worker.write_text(WORKER)
    procs = [_torchrun(o, worker, out) for o in (options, other) if o]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    script = tmp_path / "run.sh"
    script.write_text(f"torchrun {options} {worker} {out}\n")
    spec = launch.load(str(script), None, {"PATH": os.environ["PATH"]}, cwd=str(tmp_path))
    program = spec.jobs[0].layers[-1]
    assert program.kind == "program", spec.jobs[0].layers
    real_files = sorted(out.parent.glob("env.*"))
    # the line's own node: the one with --node-rank from `options` (or the only one)
    mine = out.parent / f"env.{options.split('--node-rank ')[1].split()[0]}" \
        if "--node-rank" in options else real_files[0]
    real = json.loads(mine.read_text())
    said = {k: program.env[k].value for k in KEYS if k in program.env}
    for key in KEYS:
        if said.get(key) is not None:
            assert said[key] == real[key], (key, said[key], real[key])
    for key in must:
        assert said.get(key) is not None, (key, "should be known", real[key])
