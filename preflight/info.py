"""`preflight info [--json] [--nvml-replay FILE]`: the node inventory the checks see.

`--json` writes the NVML snapshot that `--nvml-replay` reads (schema in
fixtures/nvml/README.md), plus a `host` section that replay ignores, so a snapshot
taken on a real node replays anywhere. Nothing secret is read: GPU processes are
listed by pid and memory only, never by command line.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import sys
from typing import Any

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


def collect(replay: str | None = None) -> dict[str, Any]:
    snapshot = nvml.load_snapshot(replay) if replay else nvml.read_snapshot()
    snapshot["host"] = _host_section()
    return snapshot


def _health(gpu: dict[str, Any]) -> str:
    notes = []
    ecc = gpu.get("ecc") or {}
    if ecc.get("volatile_uncorrected"):
        notes.append(f"ecc-unc={ecc['volatile_uncorrected']}")
    rows = gpu.get("remapped_rows") or {}
    if rows.get("pending") or rows.get("failure"):
        notes.append("row-remap-" + ("failed" if rows.get("failure") else "pending"))
    harmful = [e for e in gpu.get("clock_events") or () if e in nvml.HARMFUL_CLOCK_EVENTS]
    notes += harmful
    links = gpu.get("nvlink") or []
    if links:
        notes.append(f"nvlink {sum(link['active'] for link in links)}/{len(links)}")
    pcie = gpu.get("pcie") or {}
    if pcie.get("width"):
        notes.append(f"pcie gen{pcie.get('gen')}/{pcie.get('max_gen')} "
                     f"x{pcie['width']}/{pcie.get('max_width')}")
    return " ".join(notes)


def table(snapshot: dict[str, Any]) -> str:
    info = snapshot["host"]
    shm = info.get("shm_total_bytes")
    lines = [f"host: {info['hostname']}  ({info['platform']})",
             f"driver: {snapshot.get('driver_version')}  "
             f"cuda (driver): {snapshot.get('cuda_driver_version')}  "
             f"source: {snapshot.get('source')}",
             f"/dev/shm: {'none' if shm is None else f'{shm / GiB:.1f} GiB'}  "
             f"nofile: {info['nofile'][0]}  memlock: {info['memlock_bytes'][0]}"]
    if snapshot.get("error"):
        lines.append(f"nvml: {snapshot['error']}")
    lines.append(f"{'idx':>3}  {'name':<24} {'GiB':>6} {'used':>6}  cc   procs  health")
    for gpu in snapshot["gpus"]:
        procs = gpu.get("processes")
        lines.append(
            f"{gpu['index']:>3}  {gpu['name']:<24} {gpu['memory_total_bytes'] / GiB:>6.1f} "
            f"{gpu['memory_used_bytes'] / GiB:>6.1f}  {gpu.get('compute_capability', '?'):<4} "
            f"{'?' if procs is None else len(procs):>5}  {_health(gpu)}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="preflight info", description=__doc__)
    parser.add_argument("--json", action="store_true",
                        help="print the snapshot as JSON (the --nvml-replay schema)")
    parser.add_argument("--nvml-replay", help="show this snapshot instead of reading NVML")
    args = parser.parse_args(argv)
    try:
        snapshot = collect(args.nvml_replay)
    except nvml.SnapshotError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 4
    print(json.dumps(snapshot, indent=2) if args.json else table(snapshot))
    return 0
