"""`preflight info [--json] [--nvml-replay FILE]`: the node inventory the checks see.

`--json` writes the NVML snapshot that `--nvml-replay` reads (schema in
fixtures/nvml/README.md), plus a `host` section that replay ignores but for `hostname`
(whose pids the GPUs list), so a snapshot taken on a real node replays anywhere. Nothing
secret is read: GPU processes are listed by pid and memory only, never by command line.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import sys
from typing import Any, NoReturn

from preflight import __version__
from preflight.probes import host, nvml

GiB = 2**30


def _host_section() -> dict[str, Any]:
    shm = host.shm()
    lim = host.limits()
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "preflight": __version__,
        "shm_total_bytes": None if shm is None else shm.total_bytes,
        "nofile": [lim.nofile_soft, lim.nofile_hard],  # null = unlimited
        "memlock_bytes": [lim.memlock_soft, lim.memlock_hard],
    }


def collect(replay: str | None = None) -> tuple[nvml.Snapshot, dict[str, Any]]:
    """The NVML snapshot and the `host` section (replay reads only its hostname)."""
    snapshot = nvml.load_snapshot(replay) if replay else nvml.read_snapshot()
    return snapshot, _host_section()


def _health(gpu: nvml.Gpu) -> str:
    notes = []
    if gpu.ecc.volatile_uncorrected:
        notes.append(f"ecc-unc={gpu.ecc.volatile_uncorrected}")
    rows = gpu.remapped_rows
    if rows is not None and (rows.pending or rows.failure):
        notes.append("row-remap-" + ("failed" if rows.failure else "pending"))
    notes += gpu.harmful_clock_events
    if gpu.persistence_mode is False:
        notes.append("persistence-off")
    if gpu.nvlink:
        notes.append(f"nvlink {gpu.nvlink_active}/{len(gpu.nvlink)}")
    pcie = gpu.pcie
    if pcie.width:
        notes.append(f"pcie gen{pcie.gen}/{pcie.max_gen} x{pcie.width}/{pcie.max_width}")
    return " ".join(notes)


def _cuda(version: int | None) -> str:
    """NVML's nvmlSystemGetCudaDriverVersion 12020 as `nvidia-smi` shows it: 12.2."""
    if not version:
        return "unknown"
    return f"{version // 1000}.{(version % 1000) // 10}"


def _limit(pair: list[int | None]) -> str:
    soft, hard = pair
    return (f"{'unlimited' if soft is None else soft} "
            f"(hard {'unlimited' if hard is None else hard})")


def table(snapshot: nvml.Snapshot, info: dict[str, Any]) -> str:
    shm = info.get("shm_total_bytes")
    memlock = info["memlock_bytes"][0]  # None: unlimited
    lines = [f"host: {info['hostname']}  ({info['platform']})",
             f"driver: {snapshot.driver_version or 'unknown'}  "
             f"cuda (driver): {_cuda(snapshot.cuda_driver_version)}  "
             f"source: {snapshot.source}",
             f"/dev/shm: {'none' if shm is None else f'{shm / GiB:.1f} GiB'}  "
             f"nofile: {_limit(info['nofile'])}  "
             f"memlock: {'unlimited' if memlock is None else f'{memlock / 2**20:.1f} MiB'}"]
    if snapshot.error:
        lines.append(f"nvml: {snapshot.error}")
    lines.append(f"{'idx':>3}  {'name':<24} {'GiB':>6} {'used':>6}  cc   procs  health")
    for gpu in snapshot.gpus:
        procs = gpu.processes
        lines.append(
            f"{gpu.index:>3}  {gpu.name:<24} {gpu.memory_total_bytes / GiB:>6.1f} "
            f"{gpu.memory_used_bytes / GiB:>6.1f}  {gpu.compute_capability:<4} "
            f"{'?' if procs is None else len(procs):>5}  {_health(gpu)}")
    return "\n".join(lines)


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # bad input: one ERROR line, exit 4 (not 2)
        raise _Usage(f"{self.prog}: {message}")


def main(argv: list[str]) -> int:
    parser = _Parser(prog="preflight info", description=__doc__)
    parser.add_argument("--json", action="store_true",
                        help="print the snapshot as JSON (the --nvml-replay schema)")
    parser.add_argument("--nvml-replay", help="show this snapshot instead of reading NVML")
    try:
        args = parser.parse_args(argv)
    except _Usage as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 4
    try:
        snapshot, info = collect(args.nvml_replay)
    except nvml.SnapshotError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 4
    print(json.dumps({**snapshot.to_json(), "host": info}, indent=2) if args.json
          else table(snapshot, info))
    return 0
