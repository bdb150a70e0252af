"""Reproduces the logs triage must NOT read as a runbook cause, and the ordering logs, under
tests/logs/real/ with real torchrun + gloo (torch 2.13 CPU) on this box:

    python tests/logs/produce_noisy.py OUTDIR [NAME...]     # default: every shape

Runs that succeed with the noise real tools print: torchrun's OMP_NUM_THREADS banner and
LOGLEVEL=INFO agent lines, c10d's TORCH_CPP_LOG_LEVEL=INFO / TORCH_DISTRIBUTED_DEBUG=DETAIL
lines, NCCL_DEBUG=INFO in the environment (gloo ignores it), Future/Deprecation/User
warnings, a coloured tqdm bar, loss lines and checkpoint paths that contain "error",
"timeout" and "Killed", a warning about a cache path with a doubled slash, and a sample a
dataset skips after logging its KeyError with `logger.exception` (the run goes on). Runs
that fail for a plain user bug: a KeyError in a Dataset's __getitem__ on rank 1 (console,
and the same under --log-dir with --redirects 3). A Ray driver's log (`ray job logs`
prints the driver's output) of tasks that succeed, and of one whose task raises KeyError.
A metrics upload urllib3 retries after 'Connection reset by peer' (it then succeeds). A
torchrun job whose first attempt fails on a KeyError and whose restart (--max-restarts 1)
finishes.
The ordering run: node 0's c10d store port is bound by another program, node 1 then times
out connecting to it (two launchers of one job, merged as srun --label does).

Each launch is bounded and its tree killed (produce_nested.run_nodes); ports are free
ones; paths and the host name are redacted (produce_nested.redact); each log gets a
two-line header.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from produce_nested import (  # noqa: E402
    PY,
    TORCHRUN,
    Node,
    cli,
    free_port,
    redact,
    run_nodes,
)

# What every rank of the noisy runs does; MODE picks the run's end.
NOISY = """\
import logging, os, sys, warnings, torch, torch.distributed as dist
from datetime import timedelta
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("train")
mode = sys.argv[1]
warnings.warn("`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use "
              "`torch.amp.GradScaler('cuda', args...)` instead.", FutureWarning)
warnings.warn("load_dataset(use_auth_token=...) is deprecated", DeprecationWarning)
dist.init_process_group("gloo", timeout=timedelta(seconds=5))
r = dist.get_rank()
class Rows(Dataset):
    rows = [{"text": f"row {i}", "label": i % 2} for i in range(24)]
    def __len__(self): return len(self.rows)
    def __getitem__(self, i):
        row = dict(self.rows[i])
        if i == 6 and mode == "skip":
            try:
                row["labels"]
            except KeyError:
                log.exception("row %d has no 'labels', skipped", i)
        if i == 6 and mode == "keyerror" and r == 1:
            return {"text": row["text"], "label": row["labels"]}
        return row
loader = DataLoader(Rows(), batch_size=4, num_workers=0)
bar = tqdm(loader, desc=f"rank{r} train", colour="green", file=sys.stderr, mininterval=0)
for step, batch in enumerate(bar):
    t = torch.ones(2)
    dist.all_reduce(t)
    print(f"[rank{r}] step {step} loss {2.31 - step / 10:.3f} train_error 0.12 eval_error 0.2 "
          f"timeout_s 1800 Killed=0 oom_retries 0", flush=True)
if r == 0:
    print("Saving checkpoint to out/error_analysis/timeout-sweep/Killed_runs/checkpoint-6",
          flush=True)
log.warning("cache file not found at out//cache/train.arrow, rebuilding it")
log.info("Error: 0 of 24 samples failed to tokenize")
dist.destroy_process_group()
"""

# A Ray driver (what `ray job logs` shows): tasks print loss lines and a FutureWarning
# through the driver ((train_shard pid=N) prefixes, coloured); in mode keyerror the second
# shard raises KeyError and ray.get re-raises it as RayTaskError(KeyError). A cluster of its
# own (address="local"): a shared box may run other Ray clusters, never joined.
RAYJOB = """\
import sys, warnings, ray
mode = sys.argv[1]
ray.init(address="local", num_cpus=1, include_dashboard=False)
@ray.remote
def train_shard(i):
    warnings.warn("torch.cuda.amp.autocast is deprecated", FutureWarning)
    rows = [{"text": "a", "label": 0}] * 4
    for step in range(3):
        print(f"shard {i} step {step} loss 2.31 eval_error 0.2 timeout_s 1800 Killed=0",
              flush=True)
    if mode == "keyerror" and i == 1:
        return rows[0]["labels"]
    return i
print(ray.get([train_shard.remote(i) for i in range(2)]))
print("saved to out/error_analysis/ckpt")
"""

# A metrics upload whose first connection the server resets (SO_LINGER 0 sends an RST):
# urllib3 logs its retry as a WARNING naming 'Connection reset by peer' and the upload
# then succeeds; the run goes on. The server is a thread of the same process, on loopback.
RETRY = """\
import logging, socket, struct, threading, urllib3
logging.basicConfig(level=logging.WARNING)
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
def serve():
    for n in range(2):
        c, _ = srv.accept(); c.recv(1024)
        if n == 0:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n"
                      b"Connection: close\\r\\n\\r\\nok")
        c.close()
threading.Thread(target=serve, daemon=True).start()
http = urllib3.PoolManager(retries=urllib3.Retry(total=3, backoff_factor=0.1))
r = http.request("GET", f"http://127.0.0.1:{srv.getsockname()[1]}/metrics")
print("step 10 loss 1.90; metrics uploaded:", r.status, flush=True)
"""

# Rank 1 of the first attempt hits a user bug; torchrun --max-restarts 1 restarts the
# workers and the second attempt finishes: the job succeeded.
FLAKY = """\
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")
r = dist.get_rank()
if os.environ["TORCHELASTIC_RESTART_COUNT"] == "0" and r == 1:
    raise KeyError("labels")
dist.all_reduce(torch.ones(2))
print(f"rank {r}: done", flush=True)
dist.destroy_process_group()
"""

NOISE_ENV = {"NCCL_DEBUG": "INFO", "LOGLEVEL": "INFO", "TORCH_CPP_LOG_LEVEL": "INFO",
             "TORCH_DISTRIBUTED_DEBUG": "DETAIL", "PYTHONWARNINGS": "default",
             "FORCE_COLOR": "1"}
TRAIN = """\
import torch, torch.distributed as dist
dist.init_process_group("gloo")
dist.all_reduce(torch.ones(2))
dist.destroy_process_group()
"""


@dataclass
class Shape:
    made_by: str
    nodes: Callable[[dict[str, int]], list[Node]]
    held: tuple[str, ...] = ()
    log_dir: bool = False
    needs: str = "tqdm"    # a module the shape runs; without it the shape is skipped


def _noisy(mode: str, *extra: str) -> Callable[[dict[str, int]], list[Node]]:
    return lambda p: [Node([*TORCHRUN, "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                            "--master-port", str(p["A"]), *extra, "noisy.py", mode],
                           dict(NOISE_ENV))]


def _two_nodes(p: dict[str, int]) -> list[Node]:
    def node(rank: int) -> Node:
        return Node([*TORCHRUN, "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node",
                     "1", "--master-addr", "127.0.0.1", "--master-port", str(p["H"]),
                     "--rdzv-conf", "timeout=5", "train.py"], {}, label=f"node{rank}: ")
    return [node(0), node(1)]


SHAPES: dict[str, Shape] = {
    "ok-noisy-torchrun": Shape(
        "NCCL_DEBUG=INFO LOGLEVEL=INFO TORCH_CPP_LOG_LEVEL=INFO TORCH_DISTRIBUTED_DEBUG=DETAIL "
        "torchrun --nproc-per-node 2 noisy.py ok (gloo; warnings, a coloured tqdm bar, "
        "'error'/'timeout'/'Killed' in loss lines and a checkpoint path; success)",
        _noisy("ok")),
    "ok-logged-exception": Shape(
        "the same noise, noisy.py skip: the Dataset logs a row's KeyError with "
        "logger.exception and skips it; the run succeeds",
        _noisy("skip")),
    "user-keyerror-torchrun": Shape(
        "the same noise, noisy.py keyerror: rank 1's Dataset raises KeyError('labels') at "
        "row 6 (a plain user bug); rank 0 waits in all_reduce",
        _noisy("keyerror")),
    "user-keyerror-logdir": Shape(
        "the same as user-keyerror-torchrun under --log-dir ranks --redirects 3 (the "
        "console holds no rank's output; the ranks' files are in user-keyerror-logdir-ranks/)",
        _noisy("keyerror", "--log-dir", "ranks", "--redirects", "3"),
        log_dir=True),
    "port-then-rendezvous": Shape(
        "torchrun --nnodes 2 --node-rank 0|1 --master-port H --rdzv-conf timeout=5 train.py "
        "on one box, lines labelled by node (srun --label); another program has bound H "
        "without listening: node 0 cannot bind its store, node 1's connects are refused "
        "until its timeout",
        _two_nodes, held=("H",), needs="torch"),
    "ok-ray-job": Shape(
        "python rayjob.py ok (ray.init(address='local'), two tasks printing loss lines and "
        "a FutureWarning; success)",
        lambda p: [Node([PY, "rayjob.py", "ok"])], needs="ray"),
    "user-keyerror-ray-job": Shape(
        "python rayjob.py keyerror (the second task raises KeyError('labels'); ray.get "
        "raises RayTaskError(KeyError))",
        lambda p: [Node([PY, "rayjob.py", "keyerror"])], needs="ray"),
    "ok-http-retry": Shape(
        "python retry.py (urllib3 retries a metrics upload whose first connection the "
        "server reset; the upload and the run succeed)",
        lambda p: [Node([PY, "retry.py"])], needs="urllib3"),
    "ok-after-restart": Shape(
        "LOGLEVEL=INFO torchrun --nproc-per-node 2 --max-restarts 1 flaky.py (gloo; rank 1 "
        "raises KeyError in the first attempt only; the restarted workers finish)",
        lambda p: [Node([*TORCHRUN, "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                         "--master-port", str(p["A"]), "--max-restarts", "1", "flaky.py"],
                        {"LOGLEVEL": "INFO", "GLOO_SOCKET_IFNAME": "lo"})], needs="torch"),
}


def _bound() -> socket.socket:
    """A socket bound to a free port and not listening: a bind there fails (EADDRINUSE),
    a connect is refused."""
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    return s


def produce(name: str, out_dir: Path) -> Path:
    shape = SHAPES[name]
    with tempfile.TemporaryDirectory(prefix="preflight-noisy-") as tmp:
        work = Path(tmp)
        (work / "noisy.py").write_text(NOISY)
        (work / "train.py").write_text(TRAIN)
        (work / "rayjob.py").write_text(RAYJOB)
        (work / "retry.py").write_text(RETRY)
        (work / "flaky.py").write_text(FLAKY)
        held = {key: _bound() for key in shape.held}
        try:
            ports = {"A": free_port(), **{k: s.getsockname()[1] for k, s in held.items()}}
            raw = run_nodes(shape.nodes(ports), work, concat=False)
        finally:
            for s in held.values():
                s.close()
        header = (f"# fixture {name} (real run, tests/logs/produce_noisy.py)\n"
                  f"# made by: {shape.made_by}\n")
        out = out_dir / f"{name}.log"
        out.write_text(header + redact(raw.decode("utf-8", errors="replace"), work),
                       encoding="utf-8")
        if shape.log_dir:  # the ranks' own files, without torchrun's random run dir
            dest = out_dir / f"{name}-ranks"
            shutil.rmtree(dest, ignore_errors=True)
            for path in sorted((work / "ranks").rglob("*.log")):
                target = dest / Path(*path.relative_to(work / "ranks").parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(redact(path.read_text(errors="replace"), work))
    return out


def main(argv: list[str]) -> int:
    def needs(name: str) -> str | None:  # tqdm draws the noisy runs' bar; ray runs the jobs
        module = SHAPES[name].needs
        return module if importlib.util.find_spec(module) is None else None

    return cli(argv, SHAPES, produce, needs)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
