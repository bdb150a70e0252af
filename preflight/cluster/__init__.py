"""`preflight merge PATH...` and `preflight cluster --ray [ADDRESS]`: one verdict for N nodes.

merge: per-node reports gathered any way (Slurm, pdsh, Kubernetes) -> cluster report.
cluster --ray: one Ray task per alive node runs preflight there, then the same merge.
Exit code = the cluster verdict (0 GO, 1 NO-GO, 4 bad input).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path
from typing import NoReturn

from preflight.errors import InputError
from preflight.node_facts import VERSION_FACTS
from preflight.redact import printable


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # a usage error is bad input: exit 4, one line
        raise InputError(f"{self.prog}: {message}")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report-dir", default=os.environ.get("PREFLIGHT_REPORT_DIR")
                        or "preflight-report",
                        help="where cluster-report.json/.md go (default ./preflight-report)")
    parser.add_argument("--profile-dir", action="append", default=[],
                        help="extra profile directory (for the profile's gpu.count)")
    parser.add_argument("--allow-differ", action="append", default=[], metavar="FACT",
                        help="a version fact allowed to differ between nodes "
                             f"({', '.join(VERSION_FACTS)})")
    parser.add_argument("--gpu-nodes", type=int, default=None, metavar="N",
                        help="the GPU nodes expected: fewer (a GPU node given no GPU "
                             "passes as a node without GPUs by role) fail cluster-gpus")


def _gpu_nodes(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise InputError(f"--gpu-nodes: must be a number of nodes >= 0, not {value}")
    return value


def _allowed(values: list[str]) -> set[str]:
    unknown = sorted(set(values) - set(VERSION_FACTS))
    if unknown:
        raise InputError(f"--allow-differ: unknown fact(s) {', '.join(unknown)} "
                         f"(known: {', '.join(VERSION_FACTS)})")
    return set(values)


def merge_main(argv: list[str]) -> int:
    parser = _Parser(prog="preflight merge", allow_abbrev=False,
                     description="merge per-node preflight reports into one cluster verdict")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="a preflight-report.json, or a directory searched for them")
    _common(parser)
    try:
        args = parser.parse_args(argv)
        from preflight.cluster import merge

        return merge.merge(args.paths, Path(args.report_dir),
                           [Path(d) for d in args.profile_dir], _allowed(args.allow_differ),
                           _gpu_nodes(args.gpu_nodes))
    except InputError as exc:
        print(printable(f"ERROR: {exc}"), file=sys.stderr)  # may quote a node's line
        return 4


def cluster_main(argv: list[str]) -> int:
    parser = _Parser(prog="preflight cluster", allow_abbrev=False,
                     description="run preflight on every node of a cluster at once; other "
                     "options (and all after `--`) go to every node's preflight")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="fan out on this Ray cluster (default: RAY_ADDRESS, else auto)")
    parser.add_argument("--node-timeout", type=float, default=600.0, metavar="S",
                        help="a node that has not answered after S seconds is UNKNOWN")
    parser.add_argument("--connect-timeout", type=float, default=60.0, metavar="S",
                        help="give up (exit 4) when the Ray cluster does not answer in S s")
    parser.add_argument("--min-busbw", type=float, default=0.0, metavar="GBPS",
                        help="with --workloads / --all: cluster-allreduce fails below this "
                             "peak cross-node busbw (default 0: measured, not judged)")
    _common(parser)
    try:
        own, node_args = _split(argv)
        # Options this command does not know go to every node's preflight.
        args, passed = parser.parse_known_args(own)
        node_args = passed + node_args
        allow = _allowed(args.allow_differ)
        gpu_nodes = _gpu_nodes(args.gpu_nodes)
        if args.ray is None:
            raise InputError("preflight cluster: name the engine: --ray [ADDRESS]")
        _no_report_options(node_args)
        for flag, value in (("--node-timeout", args.node_timeout),
                            ("--connect-timeout", args.connect_timeout)):
            # nan passed `<= 0`: every node's wait ended before it began (all UNKNOWN)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{flag}: must be a number of seconds > 0, not {value:g}")
        if not 0 <= args.min_busbw < float("inf"):
            raise InputError("--min-busbw: must be a number >= 0")
        from preflight.cluster import fanout_ray

        address = args.ray or os.environ.get("RAY_ADDRESS") or "auto"
        # The nodes read the same profile directories (the driver judges with them too).
        node_args = [a for d in args.profile_dir for a in ("--profile-dir", d)] + node_args
        # The workload level also runs the all-reduce sweep across nodes (cluster-allreduce).
        workloads = wants_workloads(node_args)
        return fanout_ray.run(address, node_args, args.node_timeout, Path(args.report_dir),
                              [Path(d) for d in args.profile_dir], allow,
                              args.connect_timeout, workloads, args.min_busbw, gpu_nodes)
    except InputError as exc:
        print(printable(f"ERROR: {exc}"), file=sys.stderr)  # may quote a node's line
        return 4
    except KeyboardInterrupt:  # ray.shutdown ran (finally); the node tasks die with the job
        from preflight.cluster.fanout_ray import INTERRUPTED

        print(INTERRUPTED, file=sys.stderr)
        return 2


# `cluster` gives each node the directory its report goes to and reads it from there:
# these, passed on, sent it elsewhere or wrote none (every node "UNKNOWN", exit 1).
NOT_PASSED_ON = ("--report-dir", "--co", "--collect-only", "--help", "-h", "--version", "-V")


def _no_report_options(node_args: list[str]) -> None:
    for arg in node_args:
        name = arg.partition("=")[0]
        if name in NOT_PASSED_ON:
            raise InputError(f"preflight cluster: {name} is not passed on to the nodes: "
                             "cluster needs each node's report (--report-dir before `--` "
                             "is where the cluster report goes)")


def wants_workloads(node_args: list[str]) -> bool:
    """The workload level on the nodes (--workloads, --all, or a `-m` expression selecting
    the workload marker, which the README gives as the same): cluster-allreduce runs too."""
    if any(a in ("--workloads", "--all") for a in node_args):
        return True
    exprs = [b for a, b in zip(node_args, node_args[1:], strict=False) if a == "-m"]
    exprs += [a[2:] for a in node_args if a.startswith("-m") and not a.startswith("--")
              and len(a) > 2]
    return any(re.search(r"\bworkload\b", e) and not re.search(r"\bnot\s+workload\b", e)
               for e in exprs)


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []
