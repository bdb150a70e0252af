"""The seams between preflight and the machine.

Probes read the system and return plain data; they never judge. Everything they
read comes in through `Node` (environ, process table, sockets, NVML) so tests can
hand them real broken environments, and every subprocess goes through `Runner`,
which bounds it in time and kills its whole process group on timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

OWNER_VAR = "PREFLIGHT_OWNER"


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int | None  # None when killed on timeout
    stdout: str
    stderr: str
    timed_out: bool
    elapsed_s: float


class Runner:
    """The only place preflight spawns processes: each in its own session, bounded."""

    def __init__(self, default_timeout: float = 30.0):
        self.default_timeout = default_timeout

    def run(
        self,
        argv: Sequence[str],
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
    ) -> Completed:
        import time

        timeout = self.default_timeout if timeout is None else timeout
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            return Completed(tuple(argv), 127, "", str(exc), False, time.monotonic() - start)
        try:
            out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, err = proc.communicate()
            timed_out = True
        except BaseException:
            kill_group(proc)
            proc.wait()
            raise
        code = None if timed_out else proc.returncode
        return Completed(tuple(argv), code, out, err, timed_out, time.monotonic() - start)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """A long-running child (a workload) in its own session; the caller bounds it.

        Its environment carries PREFLIGHT_OWNER=<our pid>, inherited by everything it
        starts, so a second preflight running beside us does not report our workload as
        a leftover of an earlier run (procs.leftovers)."""
        env = dict(kwargs.pop("env", None) or os.environ)
        env[OWNER_VAR] = str(os.getpid())
        return subprocess.Popen(list(argv), start_new_session=True, env=env, **kwargs)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Kill a child we started together with everything it spawned."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Node:
    """What the checks may read of this machine, each source read at most once."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        runner: Runner | None = None,
        nvml_replay: str | None = None,
        own_pid: int | None = None,
    ):
        self.environ = dict(os.environ if environ is None else environ)
        self.runner = runner or Runner()
        self.nvml_replay = nvml_replay
        self.own_pid = os.getpid() if own_pid is None else own_pid
        self.python = sys.executable
        self.launch: Any = None  # a LaunchSpec when --launch-script / --launch-cmd is given

    @property
    def launch_prefix(self) -> Path:
        """The environment prefix of the Python that will launch the job."""
        return Path(self.environ.get("CONDA_PREFIX") or sys.prefix)

    @cached_property
    def process_table(self):
        """Every command line, details read per pid on demand (procs.Table)."""
        from preflight.probes import procs

        return procs.Table()

    @property
    def processes(self):
        """Full details of every process (costly: prefer process_table)."""
        table = self.process_table
        return [info for pid in table.argv if (info := table.get_info(pid)) is not None]

    @property
    def process_by_pid(self):
        return self.process_table

    @cached_property
    def own_family(self):
        """The suite, its ancestors and its children: never leftovers (a membership test).
        Under `preflight cluster --ray` (PREFLIGHT_RAY_SESSION), also the Ray cluster it runs
        on: its raylets, GCS, agents and their children."""
        from preflight.probes import procs

        table = self.process_table
        families = [table.family(self.own_pid)]
        session = self.environ.get("PREFLIGHT_RAY_SESSION")
        if session:
            families += [table.family(pid) for pid, argv in table.argv.items()
                         if any(session in arg for arg in argv)]
        return procs.AnyFamily(families)

    @cached_property
    def listeners(self):
        from preflight.probes import ports

        return ports.listeners()

    @cached_property
    def gpus(self):
        from preflight.probes import nvml

        if self.nvml_replay:
            return nvml.load_snapshot(self.nvml_replay)
        return nvml.read_snapshot()
