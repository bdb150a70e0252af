"""The seams between preflight and the machine.

Probes read the system and return plain data; they never judge. Everything they
read comes in through `Node` (environ, process table, sockets, NVML) so tests can
hand them real broken environments. Subprocesses go through `preflight.run.Runner`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from preflight.run import OWNER_VAR, Runner

if TYPE_CHECKING:
    from preflight.launch.shell.model import Command, Read
    from preflight.launch.spec import LaunchSpec
    from preflight.probes import nvml, ports, procs
    from preflight.probes.bash_syntax import BashSyntax

__all__ = ["OWNER_VAR", "Node"]


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
        self.launch: LaunchSpec | None = None  # from --launch-script / --launch-cmd
        self.launch_syntax: BashSyntax | None = None  # `bash -n` of that script / command
        # `bash -n` of each file on disk it sources or runs as a script (LaunchSpec.reads)
        self.launch_syntax_reads: tuple[tuple[Read, BashSyntax], ...] = ()

    def job_command(self) -> Command | None:
        """The command of the launch's first distributed job, else of its first job."""
        jobs = self.launch.jobs if self.launch else ()
        job = next((j for j in jobs if j.distributed), jobs[0] if jobs else None)
        return job.command if job is not None else None

    def job_env(self, name: str) -> str | None:
        """`name` as the launch's first job gets it (what the script exports, or unsets),
        else this shell's value. A value the script sets that cannot be known keeps this
        shell's: never a guessed one."""
        command = self.job_command()
        if command is None:
            return self.environ.get(name)
        return self._value_for(command, name)

    def job_environ_prefixed(self, prefix: str, *names: str
                             ) -> tuple[dict[str, str], dict[str, tuple[str, int]]]:
        """`job_environ` of every `prefix*` variable (this shell's and the launch's) and
        `names`; with where the launch script sets each of them it sets to a known value
        (file, line), for a fix that edits that line."""
        command = self.job_command()
        launch = command.env if command is not None else {}
        found = {k for k in (*self.environ, *launch) if k.startswith(prefix)}
        environ = self.job_environ(*sorted(found), *names)
        lines: dict[str, tuple[str, int]] = {}
        for key in found:
            var = launch.get(key)
            file, _, line = var.where.rpartition(":") if var is not None else ("", "", "")
            if var is not None and var.exported and var.value is not None and \
                    line.isdigit() and environ.get(key) == var.value:
                lines[key] = (file, int(line))
        return environ, lines

    def _value_for(self, command: Command, name: str) -> str | None:
        var = command.env.get(name)
        if var is None:
            return self.environ.get(name) if command.opaque else None
        return var.value if var.exported and var.value is not None else \
            self.environ.get(name)

    def program_env(self, program: str, name: str) -> str | None:
        """`name` as the launch's first `program` command gets it (`ray start` is no job,
        yet its PATH decides `ray: command not found`); else as `job_env`."""
        commands = self.launch.commands if self.launch else ()
        command = next((c for c in commands if c.program == program), None)
        return self.job_env(name) if command is None else self._value_for(command, name)

    def job_environ(self, *names: str) -> dict[str, str]:
        """This shell's environment with `names` as the launch's first job gets them
        (`job_env`; a name the script unsets is absent)."""
        env = dict(self.environ)
        for name in names:
            value = self.job_env(name)
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    @property
    def launch_prefix(self) -> Path:
        """The environment prefix of the Python that will launch the job (the conda env
        the launch script activates, else this shell's)."""
        return Path(self.job_env("CONDA_PREFIX") or sys.prefix)

    @property
    def launch_python(self) -> str:
        """The Python the job will run: its prefix's bin/python, else preflight's own."""
        candidate = self.launch_prefix / "bin" / "python"
        return str(candidate) if candidate.exists() else self.python

    @cached_property
    def process_table(self) -> procs.Table:
        """Every command line, details read per pid on demand (procs.Table)."""
        from preflight.probes import procs

        return procs.Table()

    @property
    def processes(self) -> list[procs.ProcInfo]:
        """Full details of every process (costly: prefer process_table)."""
        table = self.process_table
        return [info for pid in table.argv if (info := table.get_info(pid)) is not None]

    @property
    def process_by_pid(self) -> procs.Table:
        return self.process_table

    @cached_property
    def own_family(self) -> procs.AnyFamily:
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
    def listeners(self) -> list[ports.Listener]:
        from preflight.probes import ports

        return ports.listeners()

    @cached_property
    def gpus(self) -> nvml.Snapshot:
        from preflight.probes import nvml

        if self.nvml_replay:
            return nvml.load_snapshot(self.nvml_replay)
        return nvml.read_snapshot()
