"""Which GPUs a job sees: CUDA_VISIBLE_DEVICES resolved against the NVML snapshot.

CUDA's rules (CUDA C Programming Guide, "CUDA Environment Variables"): a comma list of
indices or UUIDs (`GPU-...`, any unique prefix; `MIG-...` for MIG instances); devices
are enumerated up to the first entry that is invalid, so `0,7,1` on a 4-GPU node shows
only GPU 0; an empty value hides every GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from preflight.numbers import hides_every_gpu, maybe_int
from preflight.probes.nvml import Gpu


@dataclass(frozen=True)
class Visible:
    spec: str | None  # CUDA_VISIBLE_DEVICES, None when unset
    indices: tuple[int, ...]  # physical NVML indices, in the job's cuda:N order
    problems: tuple[str, ...] = field(default_factory=tuple)
    mig: int = 0  # MIG instances named (not resolved against NVML)

    @property
    def count(self) -> int:
        return len(self.indices) + self.mig

    @property
    def none(self) -> str:
        """"the job sees no GPU (...)" when CUDA_VISIBLE_DEVICES hides every GPU, else ""."""
        return "" if self.spec is None or not hides_every_gpu(self.spec) else \
            f"CUDA_VISIBLE_DEVICES={self.spec!r}: the job sees no GPU (an empty value hides " \
            "every GPU)"


def _match_uuid(entry: str, gpus: Sequence[Gpu]) -> list[int]:
    return [g.index for g in gpus if g.uuid.startswith(entry)]


def resolve(spec: str | None, gpus: Sequence[Gpu]) -> Visible:
    """Pure: the physical indices CUDA would expose for `spec` on these GPUs."""
    if spec is None:
        return Visible(None, tuple(g.index for g in gpus))
    if hides_every_gpu(spec):  # no entry, not an invalid one
        return Visible(spec, ())
    indices: list[int] = []
    mig = 0
    present = {g.index for g in gpus}
    for raw in spec.split(","):
        entry = raw.strip()
        problem = ""
        if entry.startswith("MIG-"):
            mig += 1
            continue
        if maybe_int(entry) is not None:
            index = int(entry)
            if index not in present:
                problem = (f"CUDA_VISIBLE_DEVICES names GPU {entry} but NVML sees "
                           f"indices {sorted(present)}")
        elif entry.startswith("GPU-"):
            found = _match_uuid(entry, gpus)
            if len(found) != 1:
                problem = (f"CUDA_VISIBLE_DEVICES entry {entry} matches "
                           f"{'no GPU' if not found else 'several GPUs'}")
            else:
                index = found[0]
        else:
            problem = f"CUDA_VISIBLE_DEVICES entry {entry!r} is neither an index nor a UUID"
        if not problem and index in indices:
            problem = f"CUDA_VISIBLE_DEVICES names GPU {entry} twice"
        if problem:
            # CUDA stops enumerating at the first invalid entry: the rest are hidden.
            return Visible(spec, tuple(indices), (problem,), mig)
        indices.append(index)
    return Visible(spec, tuple(indices), (), mig)


def memory_matches(total_bytes: int, expected_gb: float, tolerance: float = 0.05) -> bool:
    """NVML totals differ from the marketing size (H100 80GB: 81559 MiB, H20 96GB:
    97871 MiB, A800 80GB: 81920 MiB); 5% tells 40/80/96 GB parts apart."""
    if expected_gb <= 0:
        return True
    return abs(total_bytes / 2**30 - expected_gb) <= tolerance * expected_gb
