"""A tiny decoder-only transformer trained a few steps under DistributedDataParallel.

Run under torchrun, in two launches (two process groups):

  --phase train   steps 1..N from a fixed seed on synthetic tokens; every loss, the step
                  time, tokens/s, peak memory, a parameter checksum from every rank;
                  saves model + optimizer state after step N, then runs step N+1 as the
                  uninterrupted reference.
  --phase resume  a fresh process group loads that checkpoint (the peak memory of
                  loading the optimizer state is measured: the 4×A800 slime run's resume OOM'd in
                  optimizer.load_state_dict) and runs step N+1 again.

"Step N+1 loss" is the loss on a fixed held-out batch after step N+1's update: it
depends on the optimizer state, so a resume that loses it (PREFLIGHT_TEST_SKIP_OPTIM_LOAD)
diverges from the uninterrupted run while the weights alone would still agree.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from pathlib import Path
from typing import Any

from preflight.workloads import common
from preflight.workloads.common import Backend, Rank

# torch is imported inside the ranks only and passed in as `torch` / `dist`; its modules,
# tensors, models and optimizers are `Any` here (no torch import to type-check this file).

VOCAB = 128
DIM = 64
LAYERS = 2
HEADS = 4
SEQ = 32
BATCH = 8  # sequences per rank per step
LR = 1e-2
SEED = 1234
MODEL = {"model": {"vocab": VOCAB, "dim": DIM, "layers": LAYERS, "heads": HEADS, "seq": SEQ,
                   "batch_per_rank": BATCH, "lr": LR, "optimizer": "AdamW"}}


def build_model(torch: Any) -> Any:
    nn = torch.nn

    class TinyDecoder(nn.Module):  # type: ignore[misc,name-defined]  # nn is torch.nn: Any
        """Embedding + causal self-attention blocks + LM head: the shape of an LLM, tiny."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCAB, DIM)
            self.pos = nn.Parameter(torch.randn(SEQ, DIM) * 0.02)
            block = nn.TransformerEncoderLayer(DIM, HEADS, 4 * DIM, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(block, LAYERS, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(DIM)
            self.head = nn.Linear(DIM, VOCAB, bias=False)
            self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(SEQ),
                                 persistent=False)

        def forward(self, tokens: Any) -> Any:
            x = self.embed(tokens) + self.pos[: tokens.shape[1]]
            x = self.blocks(x, mask=self.causal, is_causal=True)
            return self.head(self.norm(x))

    return TinyDecoder()


def batch(torch: Any, step: int, rank: int, device: Any) -> tuple[Any, Any]:
    """Arithmetic sequences mod VOCAB: learnable, so the loss must fall within 10 steps."""
    gen = torch.Generator().manual_seed(SEED * 1000 + step * 64 + rank)
    start = torch.randint(0, VOCAB, (BATCH, 1), generator=gen)
    stride = torch.randint(1, 5, (BATCH, 1), generator=gen)
    seq = (start + stride * torch.arange(SEQ + 1)) % VOCAB
    return seq[:, :-1].to(device), seq[:, 1:].to(device)


def loss_of(torch: Any, model: Any, x: Any, y: Any) -> Any:
    return torch.nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))


def train_step(torch: Any, dist: Any, backend: Backend, rank: Rank, ddp: Any, opt: Any,
               step: int) -> tuple[float, float]:
    """One DDP step; returns (loss averaged over ranks, seconds)."""
    x, y = batch(torch, step, rank.rank, backend.device)
    common.synchronize(backend)
    start = time.perf_counter()
    loss = loss_of(torch, ddp, x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    common.synchronize(backend)
    seconds = time.perf_counter() - start
    mean = loss.detach().clone()
    dist.all_reduce(mean)
    return float(mean) / rank.world_size, seconds


def held_out_loss(torch: Any, model: Any, backend: Backend) -> float:
    with torch.no_grad():
        x, y = batch(torch, step=-1, rank=0, device=backend.device)
        return float(loss_of(torch, model, x, y))


def checksums(torch: Any, dist: Any, model: Any, device: Any) -> list[str]:
    """sha256 of every parameter's bytes, gathered from every rank (index = rank)."""
    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        digest.update(name.encode())
        # Raw bytes without numpy (torch does not require it; a fresh env may lack it).
        raw = param.detach().float().cpu().contiguous().view(torch.uint8).flatten()
        digest.update(bytes(raw.tolist()))
    # The first 8 bytes of the digest travel as one int64 per rank: all_gather_object would
    # pickle through numpy, which torch does not require.
    mine = torch.tensor([int.from_bytes(digest.digest()[:8], "big", signed=True)],
                        dtype=torch.int64, device=device)
    gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    return [(int(t.item()) & (2**64 - 1)).to_bytes(8, "big").hex() for t in gathered]


def peak_memory(torch: Any, backend: Backend) -> dict[str, Any]:
    if backend.cuda:
        return {"kind": "cuda_max_allocated",
                "bytes": int(torch.cuda.max_memory_allocated(backend.device)),
                "total_bytes": int(torch.cuda.get_device_properties(backend.device).total_memory)}
    return {"kind": "rss_peak", "bytes": common.peak_rss_bytes(),
            "total_bytes": common.total_ram_bytes()}


def setup(torch: Any, backend: Backend, rank: Rank) -> tuple[Any, Any, Any]:
    from torch.nn.parallel import DistributedDataParallel

    # DDP's constructor broadcasts rank 0's parameters: a collective a rank can hang in,
    # which must not be reported as the phase before it (torch/nn/parallel/distributed.py
    # :1066 _sync_module_states)
    rank.phase("setting up DistributedDataParallel (broadcasts rank 0's parameters)")
    torch.manual_seed(SEED)  # the same initial weights on every rank
    model = build_model(torch).to(backend.device)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    ddp = DistributedDataParallel(model, device_ids=[rank.local_rank] if backend.cuda else None)
    return model, ddp, opt


def phase_train(torch: Any, dist: Any, backend: Backend, rank: Rank, steps: int,
                ckpt: Path) -> dict[str, Any]:
    started = time.perf_counter()
    # Most of this on a fresh rank is `import torch._dynamo`, which DDP cannot avoid: its
    # constructor reads torch._dynamo.utils.get_optimize_ddp_mode()
    # (torch/nn/parallel/distributed.py:842; torch/__init__.py:2932 loads _dynamo lazily)
    # and its forward is wrapped in torch._disable_dynamo (distributed.py:1696), which
    # imports torch._dynamo on the first call (torch/_compile.py:47).
    model, ddp, opt = setup(torch, backend, rank)
    setup_s = time.perf_counter() - started
    if backend.cuda:
        torch.cuda.reset_peak_memory_stats(backend.device)
    losses: list[float] = []
    times: list[float] = []
    for step in range(1, steps + 1):
        rank.phase(f"train step {step}/{steps}")
        loss, seconds = train_step(torch, dist, backend, rank, ddp, opt, step)
        losses.append(loss)
        times.append(seconds)
    rank.phase("gathering parameter checksums")
    sums = checksums(torch, dist, model, backend.device)
    memory = peak_memory(torch, backend)
    if rank.local_rank == 0:  # every node keeps its own copy for its own resume
        rank.phase(f"saving checkpoint after step {steps}")
        torch.save({"model": model.state_dict(), "optim": opt.state_dict(), "step": steps}, ckpt)
    dist.barrier()
    rank.phase(f"step {steps + 1} (uninterrupted reference)")
    next_loss, _ = train_step(torch, dist, backend, rank, ddp, opt, steps + 1)
    steady = times[1:] or times  # step 1 pays for allocation and DDP bucket setup
    step_time = statistics.median(steady)
    return {
        "losses": losses,
        "step_times_s": [round(t, 5) for t in times],
        "step_time_s": round(step_time, 5),
        "tokens_per_step": BATCH * SEQ * rank.world_size,
        "tokens_per_s": round(BATCH * SEQ * rank.world_size / step_time, 1),
        "checksums": sums,
        "peak_memory": memory,
        "checkpoint": str(ckpt),
        "next_step_train_loss": next_loss,
        "next_step_loss": held_out_loss(torch, model, backend),
        "params": sum(p.numel() for p in model.parameters()),
        "ddp_setup_s": round(setup_s, 3),
    }


def phase_resume(torch: Any, dist: Any, backend: Backend, rank: Rank, steps: int,
                 ckpt: Path) -> dict[str, Any]:
    model, ddp, opt = setup(torch, backend, rank)
    skip_optim = common.knob("PREFLIGHT_TEST_SKIP_OPTIM_LOAD") is not None
    rank.phase(f"loading checkpoint {ckpt.name}")
    if backend.cuda:
        torch.cuda.reset_peak_memory_stats(backend.device)
    else:  # the same process may have trained: measure the load's own peak
        common.reset_peak_rss()
    state = torch.load(ckpt, map_location=backend.device, weights_only=True)
    model.load_state_dict(state["model"])
    if not skip_optim:
        opt.load_state_dict(state["optim"])
    load_peak = peak_memory(torch, backend)
    del state
    rank.phase(f"step {steps + 1} (resumed)")
    next_loss, _ = train_step(torch, dist, backend, rank, ddp, opt, steps + 1)
    return {
        "resumed_from_step": steps,
        "optimizer_state_loaded": not skip_optim,
        "load_peak_memory": load_peak,
        "next_step_train_loss": next_loss,
        "next_step_loss": held_out_loss(torch, model, backend),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--require-cuda", action="store_true")
    parser.add_argument("--phase", choices=("train", "resume"), required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--checkpoint", required=True)
    args = parser.parse_args(argv)

    rank = common.Rank.from_env(args.out)
    rank.phase("importing torch")
    common.start_deadline(rank)
    import torch
    import torch.distributed as dist

    backend = common.init_process_group(rank, args.require_cuda)
    run = phase_train if args.phase == "train" else phase_resume
    data = run(torch, dist, backend, rank, args.steps, Path(args.checkpoint))
    rank.phase("destroy_process_group")
    dist.destroy_process_group()
    rank.result({"phase": args.phase, "backend": backend.name, "device": str(backend.device),
                 "cuda": backend.cuda, "torch": torch.__version__, **MODEL, **data})


if __name__ == "__main__":
    main()
