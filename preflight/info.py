"""`preflight info [--json] [--nvml-replay FILE]`: the node inventory the checks see.

`--json` writes the NVML snapshot schema that `--nvml-replay` reads, plus a host
section, so a snapshot taken on a real node replays anywhere. Nothing secret is read.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import sys

from preflight import __version__
from preflight.probes import nvml


def collect(replay: str | None = None) -> dict:
    snapshot = nvml.load_snapshot(replay) if replay else nvml.read_snapshot()
    snapshot["host"] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "preflight": __version__,
    }
    return snapshot


def table(snapshot: dict) -> str:
    lines = [f"host: {snapshot['host']['hostname']}  ({snapshot['host']['platform']})",
             f"driver: {snapshot.get('driver_version')}  "
             f"cuda (driver): {snapshot.get('cuda_driver_version')}"]
    if snapshot.get("error"):
        lines.append(f"nvml: {snapshot['error']}")
    lines.append(f"{'idx':>3}  {'name':<28} {'memory GiB':>10}  cc")
    for gpu in snapshot["gpus"]:
        gib = gpu.get("memory_total_bytes", 0) / 2**30
        lines.append(f"{gpu['index']:>3}  {gpu['name']:<28} {gib:>10.1f}  "
                     f"{gpu.get('compute_capability', '?')}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="preflight info", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    parser.add_argument("--nvml-replay", help="show this snapshot instead of reading NVML")
    args = parser.parse_args(argv)
    try:
        snapshot = collect(args.nvml_replay)
    except nvml.SnapshotError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 4
    print(json.dumps(snapshot, indent=2) if args.json else table(snapshot))
    return 0
