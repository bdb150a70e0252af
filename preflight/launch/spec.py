"""The launch script, read before it runs: its launcher layers, ports, processes, paths.

`load()` evaluates the script with `shell` (nothing is executed) and recognises the
launch layers of every command it would start: `torchrun`, `python -m
torch.distributed.run|launch`, `deepspeed`, `accelerate launch`, `ray job submit`,
`swift <cmd>` / `megatron <cmd>` (which relaunch themselves under torchrun), `python -m
swift.cli.<cmd>` and plain `python script.py`. The result is a frozen `LaunchSpec`;
checks judge it.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from preflight.errors import InputError
from preflight.launch import launchers, shell
from preflight.launch.shell import (
    UNKNOWN_CLOSE,
    UNKNOWN_OPEN,
    Command,
    Exit,
    Unknown,
    Var,
    Word,
    Written,
    writers,
)
from preflight.launch.shell.evaluate import start_dir
from preflight.launch.shell.state import State
from preflight.numbers import hides_every_gpu, maybe_int
from preflight.redact import MASK, is_secret_name, redact_argv

DEFAULT_PORT = 29500  # torch/distributed/run.py, deepspeed and accelerate all default to it
MAX_CMD_CHARS = 64 * 1024


class LaunchError(InputError):
    """--launch-script / --launch-cmd cannot be analysed; one line naming the problem."""


class Environment(Mapping[str, Var]):
    """A command's environment as the script leaves it, read the way the launcher reads it.

    After something set variables preflight cannot see (`eval`, `export $(...)`, `source`
    of a file it cannot read, `read`, `printf -v`: `Command.opaque`), a variable that is not
    in `known` may still be set: it reads as unknown ("may be set there: eval at run.sh:3"),
    never as absent, so a launcher's default (torchrun's nproc 1, a free port) is never
    stated for it. Iteration lists only the variables known to be there."""

    def __init__(self, known: Mapping[str, Var], opaque: str = "") -> None:
        self.known = dict(known)
        self.opaque = opaque

    def __getitem__(self, key: str) -> Var:
        var = self.known.get(key)
        if var is not None:
            return var
        if self.opaque:
            return Var(None, True, reason=f"may be set there: {self.opaque}",
                       text=f"{UNKNOWN_OPEN}${key}: may be set there: {self.opaque}"
                            f"{UNKNOWN_CLOSE}")
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.known)

    def __len__(self) -> int:
        return len(self.known)

    def set(self, key: str) -> bool | None:
        """Whether `key` is set: True, False, or None when it may be set unseen."""
        if key in self.known:
            return True
        return None if self.opaque else False

    def updated(self, values: Mapping[str, Var]) -> Environment:
        return Environment({**self.known, **values}, self.opaque)


@dataclass(frozen=True)
class GpuGate:
    """A relaunch that hangs on the GPU count the launch does not tell: whether it starts
    with at most one GPU visible (`one`) and with more (`many`): True, False, or None (still
    not known: `one_why` / `many_why`). llamafactory-cli train relaunches under torchrun
    when more than one device is visible (LLaMA-Factory launcher.py:60-62)."""

    one: bool | None
    many: bool | None
    one_why: str = ""
    many_why: str = ""
    # CUDA_VISIBLE_DEVICES may narrow the node's GPUs (set where preflight cannot read it,
    # or to a value not known): the node's count is then only an upper bound. Why, or "".
    narrowed: str = ""


@dataclass(frozen=True)
class Layer:
    """One program in a launch chain: a distributed launcher, a wrapper, or the trainer."""

    launcher: str  # "torchrun", "swift rlhf", "deepspeed", "python train.py", ...
    kind: str  # "distributed" (starts N workers), "wrapper" (ray job submit), "program"
    #            (a trainer: python, swift.cli.*), "other" (echo, tee, mkdir: not a job)
    file: str
    line: int
    implicit: bool = False  # started by the layer above, not written in the script
    nproc: int | None = None
    nproc_text: str = ""  # as given: "4", "auto", "⟨$(nproc)⟩"
    nproc_source: str = ""
    nnodes: int | None = 1
    port: int | None = None  # None: picked free at run time, or not known (see port_text)
    port_text: str = ""
    port_source: str = ""
    master_addr: str = ""
    master_port_env: str | None = None  # MASTER_PORT exported to this layer
    program: str = ""  # the script or module the layer runs
    args: tuple[Word, ...] = ()  # the program's own arguments
    env: Mapping[str, Var] = field(default_factory=dict, repr=False, compare=False)
    conditional: bool = False
    error: str = ""  # the launcher itself would stop with this usage error
    unread: str = ""  # why the launcher's own options could not be read (error not known)
    port_fallback: bool = False  # a taken port is not fatal: it picks another (accelerate)
    maybe: str = ""  # why this layer may not start at all (swift's relaunch, not known)
    gpu_gate: GpuGate | None = None  # the node's GPU count decides `maybe` (see GpuGate)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def at(self) -> str:
        """`where` as messages show it: an absolute script path by its file name."""
        name = posixpath.basename(self.file) if self.file.startswith("/") else self.file
        return f"{name}:{self.line}"

    def starts(self, gpus: int | None, unread: str = "") -> tuple[bool | None, str]:
        """Whether this layer starts on a node with `gpus` GPUs (NVML; None: not read,
        `unread` says why): (True, ""), (False, why not), or (None, why not known)."""
        if not self.maybe:
            return True, ""
        gate = self.gpu_gate
        if gate is None:
            return None, self.maybe
        if gpus is None:
            return None, f"{self.maybe}; the node's GPU count could not be read" + (
                f" ({unread})" if unread else "")
        if gpus > 1 and gate.narrowed and gate.one != gate.many:
            return None, (f"{self.maybe}; the node has {gpus} GPUs but CUDA_VISIBLE_DEVICES "
                          f"may narrow them ({gate.narrowed})")
        # at most one GPU on the node: at most one visible, whatever CUDA_VISIBLE_DEVICES says
        starts, why = (gate.one, gate.one_why) if gpus <= 1 else (gate.many, gate.many_why)
        seen = f"{gpus} GPU{'' if gpus == 1 else 's'} on the node"
        if starts is None:
            return None, f"{seen}, and {why}"
        return starts, "" if starts else f"not started: {seen}" + (
            f", {why}" if why else "")

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"launcher": self.launcher, "line": self.where}
        if self.kind == "distributed":
            out.update(nproc_per_node=self.nproc if self.nproc is not None else self.nproc_text,
                       nproc_from=self.nproc_source,
                       port=self.port if self.port is not None else self.port_text,
                       port_from=self.port_source)
        if self.implicit:
            out["implicit"] = True
        if self.conditional:
            out["conditional"] = True
        if self.maybe:
            out["maybe"] = self.maybe
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class Job:
    command: Command
    layers: tuple[Layer, ...]  # outermost first

    @property
    def distributed(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.kind == "distributed")


@dataclass(frozen=True)
class PathArg:
    flag: str  # "--model", "> (redirect)", "--output_dir"
    path: str  # as expanded (absolute when the cwd is known); ⟨...⟩ marks unknown parts
    known: bool
    file: str
    line: int
    reason: str = ""
    directory: str = ""  # outputs: the deepest known directory the job writes under
    # A redirect or tee opens the file itself: bash and tee do not create its directory,
    # so it must exist by then (unlike --output_dir, which the trainer creates).
    needs_dir: bool = False
    made_by: str = ""  # the earlier command of the script that creates that directory
    made: bool | None = None  # True: created unconditionally before; None: maybe


@dataclass(frozen=True)
class EmptyUse:
    variable: str
    file: str
    line: int
    program: str
    argument: str  # as written
    expands_to: str


@dataclass(frozen=True)
class LaunchSpec:
    source: str
    jobs: tuple[Job, ...]
    programs: frozenset[str]
    processes_per_node: int | None
    output_dirs: tuple[str, ...]
    inputs: tuple[PathArg, ...]
    outputs: tuple[PathArg, ...]
    empties: tuple[EmptyUse, ...]
    variables: Mapping[str, Var]
    unknowns: tuple[Unknown, ...]
    exit: Exit | None
    commands: tuple[Command, ...]
    secrets: frozenset[str] = frozenset()
    # why the script was not read to its end (shell.Trace.unread): the launch checks
    # are then UNKNOWN, whatever was read before that point
    unread: str = ""
    # where programs may start that preflight did not read (shell.Trace.unseen), as
    # "run.sh:3: why": a check that found no launcher says UNKNOWN, not "none"
    unseen: tuple[str, ...] = ()
    # "run.sh:2: bash's message" where `bash -n` finds a syntax error bash stops at
    # (probes.bash_syntax, set by the plugin); `unread` then names it too
    syntax_error: str = ""
    # the files on disk the script sources or runs as scripts, read (shell.Trace.reads):
    # `bash -n` judges each (launch-syntax)
    reads: tuple[shell.Read, ...] = ()

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(layer for job in self.jobs for layer in job.layers)

    @property
    def gated(self) -> bool:
        """Whether a layer's start hangs on the node's GPU count (`Layer.gpu_gate`)."""
        return any(x.gpu_gate is not None for x in self.layers)

    def processes_on(self, gpus: int | None, unread: str = "") -> int | None:
        """`processes_per_node` on a node of `gpus` GPUs (NVML; None: not read, `unread`
        says why): per job, the outermost layer that starts there; a job whose first such
        layer may not start tells nothing (None when no job tells)."""
        if not self.gated:
            return self.processes_per_node
        nprocs = []
        for job in self.jobs:
            for layer in job.distributed:
                starts, _ = layer.starts(gpus, unread)
                if starts is not False:
                    if starts and layer.nproc is not None:
                        nprocs.append(layer.nproc)
                    break
        return max(nprocs) if nprocs else None

    def variable(self, name: str) -> str | None:
        """A variable as the script leaves it, secret values masked."""
        var = self.variables.get(name)
        if var is None:
            return None
        if is_secret_name(name):
            return MASK
        return var.value if var.value is not None else var.text or "⟨unknown⟩"


# -- loading ---------------------------------------------------------------------------

MAX_SUBSTITUTIONS = 64  # command substitutions read as commands, per evaluation
# Words that make a substitution worth reading as commands: the launchers, what runs a
# script or a string (bash -c, eval, source, srun), and (checked apart) the script's own
# functions, `*.sh` / `*.py` files and pythons.
SUBSHELL_WORDS = frozenset({
    "torchrun", "swift", "megatron", "deepspeed", "accelerate", "ray", "bash", "sh", "srun",
    "llamafactory-cli", "lmf",
    "eval", "source", ".", "exec", "env", "nohup", "mpirun", "timeout", "setsid"})


class _Evaluator(shell.Evaluator):
    """The shell evaluator, plus what a command substitution starts: bash runs
    `OUT=$(torchrun ...)` or `` `deepspeed ...` `` in a subshell, so its launchers are
    launch layers too (the substitution's output stays unknown). The subshell sees the
    shell's variables and functions; nothing it sets comes back."""

    def __init__(self, environ: Mapping[str, str], cwd: str | None = None,
                 seen: set[tuple[str, int, int, str]] | None = None, line0: int = 0) -> None:
        super().__init__(environ, cwd)
        self._substituted = seen if seen is not None else set()
        self._line0 = line0  # a subshell's line 1 is this line of the file, plus one

    def _substitute(self, node: Any, source: str, st: State, dq: bool) -> Any:
        piece = super()._substitute(node, source, st, dq)
        if not piece.known and node is not None and not source.startswith("$(("):
            self._subshell(node, source, st)
        return piece

    def _subshell(self, node: Any, source: str, st: State) -> None:
        file, line = self.src.file, self.src.line(node.pos[0])
        key = (file, self._line0 + line, self.src.base + node.pos[0], source)
        if key in self._substituted:
            return  # a word expanded twice (a test, then the command)
        self._substituted.add(key)
        text = source[2:-1] if source.startswith("$(") else source[1:-1]
        words = set(re.findall(r"[\w./-]+", text))
        if not (words & SUBSHELL_WORDS or words & set(st.functions) or
                any(w.endswith((".sh", ".py")) or w.startswith("python") for w in words)):
            return  # `$(date +%s)`, `$(cat f)`: no launcher, and reading each costs time
        if len(self._substituted) > MAX_SUBSTITUTIONS:
            why = "more command substitutions than preflight reads: what they start is not " \
                  "known"
            self._unknown(file, line, source, why)
            self._unseen(file, line, f"{source[:60]}: {why}")
            return
        child = _Evaluator({}, st.cwd, self._substituted, self._line0 + line - 1)
        child.state = st.fork()
        child.written = self.written
        child.writers = self.writers
        # one budget for the script and its substitutions: a substitution that sources a
        # long file is read once per substitution, not once per budget
        child.lines, child.words = self.lines, self.words
        child.given = dict(self.given)
        try:
            trace = child.run_file(file, text, zero=self.zero)
        except (shell.ScriptFileError, RecursionError) as exc:
            why = f"a command substitution preflight cannot read ({exc}): what it starts " \
                  "is not known"
            self._unknown(file, line, source, why)
            self._unseen(file, line, f"{source[:60]}: {why}")
            return
        finally:
            self.lines, self.words = child.lines, child.words
            # what it writes: not known here (whether and when the substitution runs)
            where = f"{posixpath.basename(file)}:{self._line0 + line}"
            self.written = {**self.written, **{
                path: Written(None, where, f"written inside {source[:40]} at {where}")
                for path, w in child.written.items() if self.written.get(path) != w}}
            self.writers = (*self.writers, *(
                replace(w, where=where) for w in child.writers[len(self.writers):]))
        # its own lines are this line's; a file it sources or runs keeps its own lines
        # (`OUT=$(bash inner.sh)` starts what inner.sh starts)
        self.commands += [replace(c, line=line + c.line - 1) if c.file == file else c
                          for c in trace.commands]
        self.unknowns += [u for u in (replace(u, line=line + u.line - 1) if u.file == file
                                      else u for u in trace.unknowns)
                          if u not in self.unknowns]
        for u in trace.unseen:
            self._unseen(u.file, line + u.line - 1 if u.file == file else u.line, u.reason)
        self.reads += [replace(r, line=line + r.line - 1) if r.file == file else r
                       for r in trace.reads]
        if trace.unread:
            # the budget ran out inside it: what it starts from there is not known
            why = f"a command substitution not read to its end ({trace.unread}): what it " \
                  "starts is not known"
            self._unknown(file, line, source, why)
            self._unseen(file, line, f"{source[:60]}: {why}")



def load(script: str | None, command: str | None, environ: Mapping[str, str],
         cwd: str | None = None) -> LaunchSpec:
    """Evaluate --launch-script or --launch-cmd against `environ`; never runs anything."""
    cwd = cwd or start_dir(environ)
    if script:
        # read as `bash SCRIPT` run in cwd: `$0` is SCRIPT as given (`$(dirname "$0")` is
        # `.` for `run.sh`, as bash has it, and stays relative after a `cd`)
        path = os.path.normpath(os.path.join(cwd, script))
        try:
            text, notes = shell.read_script(script if os.path.abspath(script) == path else path)
        except shell.ScriptFileError as exc:
            raise LaunchError(f"--launch-script {exc}") from None
        try:
            trace = _Evaluator(environ, cwd).run_file(path, text, notes, zero=script)
        except shell.ScriptFileError as exc:  # nested or looping past any launch script
            raise LaunchError(f"--launch-script {script}: {_line_of(exc)}{exc}") from None
        source = script
    else:
        if command is None or not command.strip():
            raise LaunchError("--launch-cmd: empty command line")
        if len(command) > MAX_CMD_CHARS or "\0" in command:
            raise LaunchError("--launch-cmd: not a command line (too long or NUL bytes)")
        try:
            trace = _Evaluator(environ, cwd).run_command(command)
        except shell.ScriptFileError as exc:
            raise LaunchError(f"--launch-cmd: {_line_of(exc)}{exc}") from None
        source = "--launch-cmd"
    return build(source, trace, environ)


def _line_of(exc: shell.ScriptFileError) -> str:
    """`line N: ` where the error knows its line in the script (source.NestingError)."""
    line = getattr(exc, "line", 0)
    return f"line {line}: " if line else ""


def build(source: str, trace: shell.Trace, environ: Mapping[str, str]) -> LaunchSpec:
    jobs = []
    programs = set()
    for cmd in trace.commands:
        programs.add(cmd.program)
        # the config files the launchers read are read as the job would see them: what
        # the script wrote there before (`cat > cfg.yaml <<EOF`), else the file on disk
        # (Command.files, launchers.job_file)
        layers = chain(list(cmd.argv), Environment(cmd.env, cmd.opaque), cmd, depth=0)
        race = cmd.files.race() if isinstance(cmd.files, shell.Files) else ""
        if race:
            # `bash launch.sh &`, then a write of launch.sh: bash reads the script as it
            # runs it, so what this command is is not known (writers.Files.racing)
            layers = [replace(x, nproc=None, nproc_text="", nnodes=None, port=None,
                              port_text="", master_addr="", error="",
                              unread=race) for x in layers]
        programs.update(posixpath.basename(layer.launcher.split()[0])
                        for layer in layers if not layer.implicit and layer.launcher.strip())
        if layers and layers[0].kind != "other":
            jobs.append(Job(cmd, tuple(layers)))
    inputs, outputs = _paths(trace.commands, jobs)
    nprocs = [job.distributed[0].nproc for job in jobs
              if job.distributed and job.distributed[0].nproc is not None]
    # Also a value the script sets over an exported key: that value is new to us.
    secrets = frozenset(
        v.value for cmd in trace.commands for k, v in cmd.env.items()
        if is_secret_name(k) and v.value and environ.get(k) != v.value
    ) | frozenset(v.value for k, v in trace.variables.items()
                  if is_secret_name(k) and v.value and environ.get(k) != v.value)
    return LaunchSpec(
        source=source,
        jobs=tuple(jobs),
        programs=frozenset(p for p in programs if p),
        processes_per_node=max(nprocs) if nprocs else None,
        output_dirs=tuple(dict.fromkeys(o.directory for o in outputs if o.directory)),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        empties=tuple(_empties(trace)),
        variables=trace.variables,
        unknowns=trace.unknowns,
        exit=trace.exit,
        commands=trace.commands,
        secrets=secrets,
        unread=trace.unread,
        unseen=tuple(dict.fromkeys(f"{posixpath.basename(u.file)}:{u.line}: {u.reason}"
                                   for u in trace.unseen)),
        reads=trace.reads,
    )


def display(words: Iterable[Word]) -> str:
    """An argv for evidence: secret-looking options masked."""
    return " ".join(redact_argv([w.text for w in words]))[:400]


# -- launch layers ---------------------------------------------------------------------

Base = dict[str, Any]  # the Layer fields every layer of one command shares (file, line, env)

PYTHONS = ("python", "python3")
TORCHRUN_MODULES = ("torch.distributed.run", "torch.distributed.launch")
# The `launcher` names of the layers `_torchrun` builds.
TORCHRUN_LAUNCHERS = ("torchrun", *(f"python -m {m}" for m in TORCHRUN_MODULES))
# ms-swift swift/cli/main.py (v3.x, and 4.6.0 `cli_main`): relaunches as
# `python -m torch.distributed.run --nproc_per_node $NPROC_PER_NODE [--master_port
# $MASTER_PORT] [--nnodes ..] [--node_rank ..] [--master_addr ..] swift/cli/<cmd>.py`
# when NPROC_PER_NODE or NNODES is set (`use_torchrun`) and the method is one of
# {'pt', 'sft', 'rlhf', 'infer'}, or for any `megatron <cmd>` (is_megatron=True).
# It never looks at LOCAL_RANK / WORLD_SIZE. tests/test_swift_relaunch_oracle.py runs
# the real `cli_main` against this model.
SWIFT_RELAUNCHED = frozenset({"pt", "sft", "rlhf", "infer"})
# The methods each CLI has and the module it runs (4.6.0 swift/cli/main.py:14-27
# ROUTE_MAPPING, swift/cli/_megatron/main.py:6-11), after `_` -> `-` (main.py:89);
# any other method stops it with a KeyError (main.py:91) before anything runs.
SWIFT_ROUTES = {
    "swift": {m: f"swift.cli.{m.replace('-', '_')}" for m in (
        "pt", "sft", "infer", "merge-lora", "web-ui", "deploy", "rollout", "rlhf", "sample",
        "export", "eval", "app")},
    "megatron": {m: f"swift.cli._megatron.{m}" for m in ("pt", "sft", "rlhf", "export")},
}
SWIFT_ENV_ARGS = ("NPROC_PER_NODE", "MASTER_PORT", "NNODES", "NODE_RANK", "MASTER_ADDR")
def chain(argv: list[Word], env: Environment, cmd: Command, depth: int,
          implicit: bool = False) -> list[Layer]:
    """The layers a command line starts, outermost first."""
    if not argv or depth > 6:
        return []
    prog = posixpath.basename(argv[0].text)
    args = argv[1:]
    base: Base = {"file": cmd.file, "line": cmd.line, "implicit": implicit,
            "conditional": cmd.conditional, "env": env}
    if prog == "torchrun":
        return _torchrun("torchrun", args, env, cmd, depth, base)
    if prog.startswith(PYTHONS):
        return _python(prog, args, env, cmd, depth, base)
    relauncher = RELAUNCHERS.get(prog)  # programs that relaunch themselves under torchrun
    if relauncher is not None:
        return relauncher(prog, args, env, cmd, depth, base)
    if prog == "deepspeed":
        return _deepspeed(args, env, cmd, depth, base)
    if prog == "accelerate" and args and args[0].text == "launch":
        return _accelerate(args[1:], env, cmd, depth, base)
    if prog == "ray" and len(args) >= 2 and [a.text for a in args[:2]] == ["job", "submit"]:
        texts = [a.text for a in args]
        child = args[texts.index("--") + 1:] if "--" in texts else []
        layer = Layer("ray job submit", "wrapper", program=display(child), **base)
        return [layer, *chain(list(child), env, cmd, depth + 1)]
    if prog in ("bash", "sh") or prog.endswith(".sh"):
        return _script_child(argv, env, cmd, depth)
    return [Layer(prog, "other", program=prog, args=tuple(args), **base)]


def _python(prog: str, args: list[Word], env: Environment, cmd: Command, depth: int,
            base: Base) -> list[Layer]:
    module, rest = _python_target(args)
    if module in TORCHRUN_MODULES:
        return _torchrun(f"python -m {module}", rest, env, cmd, depth, base)
    if module == "llamafactory.cli":  # cli.py:16 `main`, what llamafactory-cli runs
        return _llamafactory("llamafactory-cli", rest, env, cmd, depth, base)
    if module and module.startswith("swift.cli."):
        return _swift_module(module, rest, base)
    if module in ("deepspeed", "deepspeed.launcher.runner"):
        return _deepspeed(rest, env, cmd, depth, base)
    if module == "accelerate.commands.launch":
        return _accelerate(rest, env, cmd, depth, base)
    # python $(which swift) rlhf runs swift's entry script; a bare `swift` is a file in the
    # working directory (python opens the path as given, it never searches PATH), which is
    # what torchrun without --no-python hands it: a missing script, not swift.
    if module is None and rest and "/" in rest[0].text and posixpath.basename(
            rest[0].text) in ("swift", "megatron", *LMF_PROGRAMS):
        return chain(rest, env, cmd, depth, base["implicit"])
    if module is None and rest and rest[0].text.endswith(("swift/cli/main.py",)):
        return chain([replace(rest[0], text="swift"), *rest[1:]], env, cmd, depth,
                     base["implicit"])
    # `python -c CODE` (_python_target's "-c"): the code, not a module
    target = module if module == "-c" else f"-m {module}" if module else (
        rest[0].text if rest else "")
    return [Layer(f"{prog} {target}".strip(), "program", program=target,
                  args=tuple(rest[1:]), **base)]


def _python_target(args: list[Word]) -> tuple[str | None, list[Word]]:
    """(`-m` module or None, the words from the script / module args on)."""
    i = 0
    while i < len(args):
        t = args[i].text
        if t == "-m" and i + 1 < len(args):
            return args[i + 1].text, args[i + 2:]
        if t.startswith("-m") and len(t) > 2:
            return t[2:], args[i + 1:]
        if t in ("-c",):
            return "-c", args[i + 1:]
        if t in ("-W", "-X", "-Q"):
            i += 2
            continue
        if t.startswith("-") and t != "-":
            i += 1
            continue
        return None, args[i:]
    return None, []


def _int(word: Word | None) -> int | None:
    if word is None or not word.known:
        return None
    return maybe_int(word.text, -(2**31), 2**31)


def _env(env: Environment, name: str) -> Word | None:
    var = env.get(name)
    if var is None:
        return None
    if var.value is None:
        # an unknown value with no text of its own (set by `read`) shows its name
        shown = f"${name}: {var.reason}" if var.reason else f"${name}"
        return Word(var.text or f"{UNKNOWN_OPEN}{shown}{UNKNOWN_CLOSE}", f"${name}",
                    known=False, reason=var.reason,
                    refs=(name, *var.refs))
    return Word(var.value, f"${name}", refs=(name, *var.refs))


def _max_nodes(text: str) -> int | None:
    return maybe_int(text.split(":")[-1], 0, 2**31)


def _worker_env(env: Environment, layer: Layer,
                cfg: launchers.TorchrunConfig | None = None) -> Environment:
    """What the launcher exports to its first worker (local rank 0); the inner layer
    inherits it. torchrun: torch/distributed/elastic/agent/server/local_elastic_agent.py:415
    `_start_workers`, where MASTER_ADDR/PORT are the rendezvous' store info: --master-addr/
    --master-port for static (static_tcp_rendezvous.py), but an address and port of the c10d
    rendezvous' own choosing (rendezvous/api.py:89 `RendezvousStoreInfo.build`: fqdn, free
    port), and GROUP_RANK is --node-rank for static but the arrival order for c10d."""
    port = Var(str(layer.port), True) if layer.port is not None else \
        Var(None, True, reason=f"the port {layer.launcher} at {layer.where} picks")
    world = layer.nproc * layer.nnodes if layer.nproc and layer.nnodes else None
    values = {
        "LOCAL_RANK": Var("0", True), "RANK": Var("0", True), "GROUP_RANK": Var("0", True),
        "LOCAL_WORLD_SIZE": Var(str(layer.nproc) if layer.nproc else None, True,
                                reason="nproc not known"),
        "WORLD_SIZE": Var(str(world) if world else None, True, reason="world size not known"),
        "MASTER_ADDR": Var(layer.master_addr or "127.0.0.1", True),
        "MASTER_PORT": port,
        "TORCHELASTIC_RUN_ID": Var("none", True),
    }
    if cfg is not None:
        values.update(_torchrun_worker_env(layer, cfg, port))
    return env.updated(values)


def _torchrun_worker_env(layer: Layer, cfg: launchers.TorchrunConfig, port: Var
                         ) -> dict[str, Var]:
    def unknown(reason: str) -> Var:
        return Var(None, True, reason=reason)

    static = cfg.backend == "static"
    one_node = cfg.max_nodes == 1
    fixed = cfg.min_nodes is not None and cfg.min_nodes == cfg.max_nodes
    group: int | None = 0 if one_node else cfg.node_rank if static else None
    chosen = f"chosen by torchrun's {cfg.backend or 'unknown'} rendezvous"
    rank = group * layer.nproc if group is not None and layer.nproc and fixed else None
    return {
        "GROUP_RANK": Var(str(group), True) if group is not None else unknown(
            f"the node's rank, {chosen} (arrival order)"),
        "RANK": Var(str(rank), True) if rank is not None else unknown(
            "the global rank is not known"),
        "WORLD_SIZE": Var(str(layer.nproc * cfg.max_nodes), True)
        if fixed and layer.nproc and cfg.max_nodes else unknown("world size not known"),
        "MASTER_ADDR": Var(layer.master_addr, True)
        if static and layer.master_addr and UNKNOWN_OPEN not in layer.master_addr
        else unknown(f"the store address {chosen}"),
        "MASTER_PORT": port if static else unknown(f"the store port {chosen}"),
        "TORCHELASTIC_RUN_ID": Var(cfg.rdzv_id, True) if cfg.rdzv_id is not None
        else unknown("a fresh uuid torchrun draws, or an --rdzv-id not known"),
    }


def _rendezvous_host(cfg: launchers.TorchrunConfig) -> str:
    """The host every node meets at: --master_addr for the static rendezvous; the
    --rdzv-endpoint's host for c10d/etcd (torch/distributed/run.py:790 `get_rdzv_endpoint`
    uses --master_addr only for static), never the unused --master_addr default."""
    if cfg.backend == "static" or not cfg.endpoint:
        return cfg.master_addr
    host = cfg.endpoint.rsplit(":", 1)[0] if ":" in cfg.endpoint else cfg.endpoint
    return host.strip("[]") or cfg.master_addr

def _torchrun(name: str, args: list[Word], env: Environment, cmd: Command, depth: int,
              base: Base) -> list[Layer]:
    # torch 2.13's own option table and rendezvous rules (launchers.torchrun); MASTER_PORT
    # in the environment is not read by torchrun itself, only PET_MASTER_PORT.
    cfg = launchers.torchrun(args, env, launch_module=name.endswith("torch.distributed.launch"))
    mp = env.get("MASTER_PORT")
    why = cfg.unknown or (f"torchrun would stop: {cfg.error}" if cfg.error else "")
    layer = Layer(
        name, "distributed", nproc=None if why else cfg.nproc,
        nproc_text=f"⟨{why}⟩" if why else cfg.nproc_text,
        nproc_source=cfg.nproc_source or "default",
        nnodes=None if why else cfg.max_nodes,
        port=None if why else cfg.port,
        port_text=f"⟨{why}⟩" if why else cfg.port_text,
        port_source=cfg.port_source,
        # a torchrun that stops on its arguments meets nobody: its half-parsed endpoint (the
        # one-node rewrite to localhost:0, torch/distributed/run.py:1004-1011, runs before
        # config_from_args stops at :842) is no address the job would use
        master_addr="" if cfg.error else _rendezvous_host(cfg),
        master_port_env=(mp.value if mp.value is not None else mp.text) if mp else None,
        error=cfg.error, unread=cfg.unknown, **base,
    )
    if cfg.program is None:
        return [layer]
    rest = [cfg.program, *cfg.args]
    if cfg.module:
        child = [Word("python", "python"), Word("-m", "-m"), *rest]
    elif cfg.no_python:
        child = list(rest)
    else:
        child = [Word("python", "python"), *rest]
    layer = replace(layer, program=cfg.program.text, args=tuple(cfg.args))
    return [layer, *chain(child, _worker_env(env, layer, cfg), cmd, depth + 1)]


def _swift(prog: str, args: list[Word], env: Environment, cmd: Command, depth: int,
           base: Base) -> list[Layer]:
    method = args[0].text.replace("_", "-") if args else ""
    rest, env, error = _swift_config_file(list(args[1:]), env, cmd)
    route = SWIFT_ROUTES[prog].get(method)
    known = not args or args[0].known
    if args and known and route is None:  # swift/cli/main.py:91
        error = f"{prog}: no method {method!r} (one of {', '.join(SWIFT_ROUTES[prog])})"
    # Without a relaunch this one layer stands for `python swift/cli/<method>.py` too
    # (main.py:96), which runs with the config file's ENV exported.
    entry = Layer(f"{prog} {method}".strip(), "program", program=f"{prog} {method}",
                  args=tuple(rest), error=error, **{**base, "env": env})
    if error or not args or known and prog != "megatron" and method not in SWIFT_RELAUNCHED:
        return [entry]
    nproc_set, nnodes_set = env.set("NPROC_PER_NODE"), env.set("NNODES")
    if not nproc_set and not nnodes_set and nproc_set is not None and nnodes_set is not None:
        return [entry]
    # Either is set (relaunch), or neither is known to be set but either may be, or the
    # method is not known: the relaunch itself is not known (`maybe`), and so its nproc
    # and port are not either.
    maybe = "" if known and (nproc_set or nnodes_set) else (
        f"{prog} relaunches itself under torchrun only for "
        f"{'any method' if prog == 'megatron' else ', '.join(sorted(SWIFT_RELAUNCHED))}, "
        f"and the method is not known: {args[0].reason or args[0].text}") if not known else (
        f"{prog} relaunches itself under torchrun only if NPROC_PER_NODE or NNODES is set, "
        f"and they may be set there: {env.opaque}")
    route = route or f"{prog}.cli.{method}"
    argv = [Word("torchrun", "torchrun")]
    for key in SWIFT_ENV_ARGS:
        value = _env(env, key)
        if value is not None:
            argv += [Word(f"--{key.lower()}", key), value]
    # swift/cli/main.py:98: python -m torch.distributed.run <env args> <cli file> <argv>
    script = route.replace(".", "/") + ".py"
    argv.append(Word(script, script))
    # torchrun and the worker run with the config file's ENV exported (main.py:57, 100)
    implicit = {**base, "implicit": True, "env": env}
    inner = _torchrun(f"torchrun (relaunched by {prog} {method})", argv[1:], env, cmd, depth,
                      implicit)[0]
    inner = replace(inner, program="", args=(), maybe=maybe, nproc_source=(
        f"NPROC_PER_NODE (passed on by {prog})" if nproc_set else "default" if
        nproc_set is False else f"NPROC_PER_NODE, if set (may be set there: {env.opaque})"))
    if env.set("MASTER_PORT") is not False:
        inner = replace(inner, port_source=f"MASTER_PORT (passed on as --master_port by "
                                           f"{prog})")
    if not known:  # not even whether it relaunches: one process, or NPROC_PER_NODE
        inner = replace(inner, nproc=None, nproc_text=f"⟨{maybe}⟩", port=None,
                        port_text=f"⟨{maybe}⟩")
    worker = Layer(script, "program", program=route, args=tuple(rest), **implicit)
    return [replace(entry, kind="wrapper", env=base["env"]), inner, worker]


# LLaMA-Factory (hiyouga/LLaMA-Factory ff6d4d1) src/llamafactory/launcher.py:56-134:
# `llamafactory-cli train` (or its alias `lmf`, pyproject.toml:78-80) relaunches itself as
# `torchrun --nnodes $NNODES --node_rank $NODE_RANK --nproc_per_node $NPROC_PER_NODE
# --master_addr $MASTER_ADDR --master_port $MASTER_PORT launcher.py <args>` when
# FORCE_TORCHRUN is on (USE_MCA / USE_MEGATRON_BRIDGE force it, :57-58), or when more
# than one device is visible and neither USE_RAY nor USE_KT is on (:60-62). Defaults
# (:64-68): NNODES 1, NODE_RANK 0, NPROC_PER_NODE the device count, MASTER_ADDR 127.0.0.1,
# MASTER_PORT a free port it finds (extras/misc.py:347 binds port 0). With RDZV_ID set
# (:85-112) it is an elastic c10d rendezvous at MASTER_ADDR:MASTER_PORT instead. With
# USE_V1 (cli.py:19-22), v1/launcher.py:31,48 relaunches train, sft, dpo and rm alike.
# Versions before launcher.py (cli.py:88-92 at 4d1791e, 2025) read the same variables; their
# MASTER_PORT default is random.randint(20001, 29999): random too, never a fixed port.
LMF_PROGRAMS = ("llamafactory-cli", "lmf")
LMF_FORCE = ("FORCE_TORCHRUN", "USE_MCA", "USE_MEGATRON_BRIDGE")
LMF_V1_COMMANDS = frozenset({"train", "sft", "dpo", "rm"})
LMF_PER_GPU = "one per visible GPU"  # NPROC_PER_NODE unset: torch.cuda.device_count()


def _enabled(env: Environment, name: str, default: str = "0") -> bool | None:
    """extras/misc.py:258 `is_env_enabled`; None: not known (set where preflight cannot
    read, or to a value not known)."""
    var = env.get(name)
    if var is None:
        return None if env.set(name) is None else default.lower() in ("true", "y", "1")
    return None if var.value is None else var.value.lower() in ("true", "y", "1")


def _any_of(values: Iterable[bool | None]) -> bool | None:
    seen = list(values)
    return True if True in seen else None if None in seen else False


def visible(value: str) -> list[str]:
    """CUDA_VISIBLE_DEVICES as CUDA reads it: it stops at the first invalid entry."""
    if hides_every_gpu(value) or value.strip() in ("-1", "NoDevFiles"):
        return []
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break
        out.append(item)
    return out


def _lmf_devices(env: Environment) -> int | None:
    """torch.cuda.device_count() as far as the launch tells it: CUDA_VISIBLE_DEVICES."""
    var = env.get("CUDA_VISIBLE_DEVICES")
    if var is None or var.value is None:
        return None
    return len(visible(var.value))


def _lmf_gate(env: Environment, force: bool | None, off: bool | None) -> GpuGate:
    """launcher.py:61 `FORCE_TORCHRUN or (get_device_count() > 1 and not use_ray() and not
    use_kt())` for each side of the GPU count the launch does not tell (`off` is not True:
    then the count would not matter)."""
    opaque = f"may be set there: {env.opaque}"
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    return GpuGate(
        one=force, many=True if off is False else None,
        one_why=("it relaunches with one GPU only if FORCE_TORCHRUN is on, and that "
                 f"{opaque}") if force is None else
        "with one GPU it relaunches only under FORCE_TORCHRUN, which is off "
        "(LLaMA-Factory launcher.py:61)",
        many_why="" if off is False else
        f"it relaunches unless USE_RAY or USE_KT is on, and they {opaque}",
        narrowed="" if cvd is None else cvd.reason or cvd.text)


def _lmf_relaunch(command: str, env: Environment
                  ) -> tuple[bool | None, str, GpuGate | None]:
    """(whether `llamafactory-cli COMMAND` relaunches under torchrun, why not known, and
    how the node's GPU count decides it when only the count is missing)."""
    v1 = _enabled(env, "USE_V1")
    if command != "train" and (command not in LMF_V1_COMMANDS or v1 is False):
        return False, "", None
    if command != "train" and v1 is None:
        return None, f"relaunches itself only under USE_V1, which may be set there: " \
                     f"{env.opaque}", None
    force = _any_of(_enabled(env, name) for name in LMF_FORCE)
    if force:
        return True, "", None
    devices = _lmf_devices(env)
    off = _any_of(_enabled(env, name) for name in ("USE_RAY", "USE_KT"))
    if off or (devices is not None and devices <= 1):
        # off for sure, unless FORCE_TORCHRUN may be set where preflight cannot read
        return (False, "", None) if force is False else (
            None, f"relaunches itself if FORCE_TORCHRUN is on, and it may be set there: "
                  f"{env.opaque}", None)
    why = []
    if force is None:
        why.append(f"FORCE_TORCHRUN on (it may be set there: {env.opaque})")
    if off is None:
        why.append(f"USE_RAY and USE_KT off (they may be set there: {env.opaque})")
    if devices is None:
        why.append("more than one GPU visible to it (CUDA_VISIBLE_DEVICES not set in the "
                   "launch)")
    if not why:
        return True, "", None
    return (None, "relaunches itself under torchrun only with " + "; ".join(why),
            _lmf_gate(env, force, off) if devices is None else None)


def _lmf_torchrun_argv(env: Environment) -> tuple[list[Word], Word, bool]:
    """The torchrun options launcher.py:93-132 builds, its master address, and whether the
    port is its own random pick (MASTER_PORT unset)."""
    def get(name: str, default: str) -> Word:
        if env.set(name) is None:  # may be set where preflight cannot read
            why = f"${name} may be set there: {env.opaque}"
            return Word(f"{UNKNOWN_OPEN}{why}{UNKNOWN_CLOSE}", f"${name}", known=False,
                        reason=why)
        return _env(env, name) or Word(default, default)
    devices = _lmf_devices(env)
    # unset: the device count; torchrun's own `gpu` is the same rule (device_count())
    nproc = get("NPROC_PER_NODE", str(devices) if devices else "gpu")
    random_port = env.set("MASTER_PORT") is False
    port = get("MASTER_PORT", "0")
    addr, nnodes = get("MASTER_ADDR", "127.0.0.1"), get("NNODES", "1")
    rdzv = _env(env, "RDZV_ID")
    if rdzv is None:
        return [Word("--nnodes", "NNODES"), nnodes, Word("--node_rank", "NODE_RANK"),
                get("NODE_RANK", "0"), Word("--nproc_per_node", "NPROC_PER_NODE"), nproc,
                Word("--master_addr", "MASTER_ADDR"), addr,
                Word("--master_port", "MASTER_PORT"), port], addr, random_port
    lo, hi = _env(env, "MIN_NNODES"), _env(env, "MAX_NNODES")
    if lo is not None and hi is not None:
        nnodes = Word(f"{lo.text}:{hi.text}", "MIN_NNODES:MAX_NNODES", known=lo.known
                      and hi.known)
    endpoint = Word(f"{addr.text}:{port.text}", "MASTER_ADDR:MASTER_PORT",
                    known=addr.known and port.known)
    return [Word("--nnodes", "NNODES"), nnodes, Word("--nproc-per-node", "NPROC_PER_NODE"),
            nproc, Word("--rdzv-id", "RDZV_ID"), rdzv, Word("--rdzv-backend", "c10d"),
            Word("c10d", "c10d"), Word("--rdzv-endpoint", "MASTER_ADDR"), endpoint,
            Word("--max-restarts", "MAX_RESTARTS"), get("MAX_RESTARTS", "0")], addr, random_port


def _llamafactory(prog: str, args: list[Word], env: Environment, cmd: Command, depth: int,
                  base: Base) -> list[Layer]:
    command = args[0].text if args else "help"
    rest = tuple(args[1:])
    entry = Layer(f"{prog} {command}", "program", program=f"{prog} {command}", args=rest,
                  **base)
    if args and not args[0].known:
        return [entry]  # the command word is not known: the evaluator names it unknown
    relaunch, maybe, gate = _lmf_relaunch(command, env)
    if relaunch is False:
        return [entry]
    argv, addr, random_port = _lmf_torchrun_argv(env)
    name = f"torchrun (relaunched by {prog} {command})"
    inner = _torchrun(name, [*argv, Word("llamafactory/launcher.py", "launcher.py")], env,
                      cmd, depth, {**base, "implicit": True})[0]
    # master_addr: with RDZV_ID the rendezvous host is the endpoint's, MASTER_ADDR
    inner = replace(inner, program="", args=(), maybe=maybe and f"{prog} {command} {maybe}",
                    gpu_gate=gate, master_addr=addr.text,
                    nproc_source={True: f"NPROC_PER_NODE (passed on by {prog})",
                                  False: f"{prog}: its device count (NPROC_PER_NODE unset)",
                                  None: f"NPROC_PER_NODE, if set, else the device count "
                                        f"(may be set there: {env.opaque})"}[
                                      env.set("NPROC_PER_NODE")])
    if inner.nproc_text == "gpu":
        inner = replace(inner, nproc_text=LMF_PER_GPU)
    if random_port:
        inner = replace(inner, port=None, port_text="free",
                        port_source=f"{prog} picks a free port (MASTER_PORT unset)")
    else:
        inner = replace(inner, port_source=f"MASTER_PORT (passed on by {prog})")
    worker = Layer("llamafactory/launcher.py", "program", program="llamafactory.launcher",
                   args=rest, **{**base, "implicit": True})
    return [replace(entry, kind="wrapper"), inner, worker]



RELAUNCHERS = {"swift": _swift, "megatron": _swift, "llamafactory-cli": _llamafactory,
               "lmf": _llamafactory}

SWIFT_CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


def _swift_config_file(rest: list[Word], env: Environment, cmd: Command
                       ) -> tuple[list[Word], Environment, str]:
    """swift/cli/main.py:38-71 `parse_yaml_args`: a first argument ending in .json/.yaml/
    .yml is a config file; its `ENV` mapping is exported (variables already set win) before
    the relaunch decision, and its keys become `--key value` arguments in its place.
    Returns (argv, environment, the error swift stops with or "")."""
    if rest and not rest[0].known and not rest[0].prefix.startswith("-"):
        # it may name a config file whose ENV sets any variable (NPROC_PER_NODE too)
        return rest, Environment(env.known, env.opaque or (
            f"the ENV of {rest[0].text}, if that is a config file")), ""
    if not rest or not rest[0].known or not rest[0].text.endswith(SWIFT_CONFIG_SUFFIXES):
        return rest, env, ""
    found = launchers.job_file(_abs(rest[0].text, cmd.cwd), cmd.files)
    path = found.path
    if found.unknown:  # written by the script, what it holds not known: its ENV may set
        return rest, Environment(env.known, env.opaque or f"the ENV of {found.unknown}"), ""
    import yaml  # here: every run collects this module, few launches have a config file

    try:
        text = found.text
        if text is None:
            return rest, env, ""  # missing: launch-inputs names it; unreadable: swift stops
        config = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, RecursionError):  # RecursionError: `[[[[...`
        return rest, env, ""  # unreadable: swift stops there
    if config is None:  # an empty file: main.py:48 passes its name on as an argument
        return rest, env, ""
    where = posixpath.basename(path)
    config = dict(config) if isinstance(config, dict) else config
    if not isinstance(config, dict) or not isinstance(config.get("ENV") or {}, dict):
        # main.py:53-55 `config.pop('ENV', None)`, `env.items()`
        return rest, env, f"{where}: swift reads it as a mapping (with an ENV mapping)"
    exported = {}
    for key, value in (config.pop("ENV", None) or {}).items():
        if env.set(str(key)) is None:  # set unseen (it wins) or not: not known
            exported[str(key)] = Var(None, True, reason=f"ENV in {path} sets it unless "
                                                         f"{env[str(key)].reason}")
        elif not env.set(str(key)):
            exported[str(key)] = Var(str(value), True, where=f"ENV in {path}")
    env = env.updated(exported)
    words = []
    for key, value in config.items():
        words.append(Word(f"--{key}", f"{key}: in {where}"))
        # main.py:63-70: list items by str() (a dict in a list is Python's repr), a dict
        # value as JSON, anything else by str()
        items = [str(i) for i in value] if isinstance(value, list) else [
            json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)]
        words += [Word(text, f"{key}: in {where}") for text in items]
    return [*words, *rest[1:]], env, ""


@functools.lru_cache(maxsize=1)
def swift_rlhf_options() -> dict[str, str]:
    """`swift rlhf` option -> dest, from ms-swift 4.6 (stack/swift_rlhf_options.txt)."""
    text = (Path(__file__).parent.parent / "stack" / "swift_rlhf_options.txt").read_text()
    return dict(line.split() for line in text.splitlines()
                if line.startswith("--") and len(line.split()) == 2)


def swift_option(name: str) -> str | None:
    """An option as argparse (allow_abbrev, as HfArgumentParser leaves it) resolves it:
    exact, else the one option it is a prefix of; None when unknown or ambiguous."""
    options = swift_rlhf_options()
    if name in options:
        return options[name]
    matches = [o for o in options if o.startswith(name)]
    return options[matches[0]] if len(matches) == 1 else None


def _swift_module(module: str, args: list[Word], base: Base) -> list[Layer]:
    # `python -m swift.cli.rlhf` runs the trainer directly: no relaunch.
    return [Layer(f"python -m {module}", "program", program=module, args=tuple(args), **base)]


def _deepspeed(args: list[Word], env: Environment, cmd: Command, depth: int,
               base: Base) -> list[Layer]:
    # deepspeed/launcher/runner.py's own options and resource rules (launchers.deepspeed)
    cfg = launchers.deepspeed(args, env, cmd.cwd, cmd.files)
    why = cfg.unknown or (f"deepspeed would stop: {cfg.error}" if cfg.error else "")
    layer = Layer(
        "deepspeed", "distributed", nproc=None if why else cfg.nproc,
        nproc_text=f"⟨{why}⟩" if why else cfg.nproc_text,
        nproc_source=cfg.nproc_source, nnodes=None if why else cfg.nnodes,
        port=None if why else cfg.port, port_text=f"⟨{why}⟩" if why else cfg.port_text,
        port_source="--master_port" if "--master_port" in " ".join(a.text for a in args)
        else "default", error=cfg.error, unread=cfg.unknown,
        program=cfg.program.text if cfg.program else "", args=cfg.args, **base)
    return _with_program(layer, cfg, env, cmd, depth)



def _with_program(layer: Layer, cfg: launchers.LauncherConfig, env: Environment,
                  cmd: Command, depth: int) -> list[Layer]:
    """The layer, then what its workers run: `python [-m] PROGRAM ARGS`, or PROGRAM ARGS
    itself with --no_python (deepspeed and accelerate launch alike)."""
    if cfg.program is None:
        return [layer]
    rest = [cfg.program, *cfg.args]
    child = rest if cfg.no_python else [Word("python", "python"),
                                        *([Word("-m", "-m")] if cfg.module else []), *rest]
    return [layer, *chain(child, _worker_env(env, layer), cmd, depth + 1)]

def _accelerate(args: list[Word], env: Environment, cmd: Command, depth: int,
                base: Base) -> list[Layer]:
    # accelerate's own rules and config file (launchers.accelerate)
    cfg = launchers.accelerate(args, env, cmd.cwd, cmd.files)
    why = cfg.unknown or (f"accelerate would stop: {cfg.error}" if cfg.error else "")
    if not why and cfg.gpu_ids and cfg.gpu_ids != "all":
        # accelerate/utils/launch.py:136,260: gpu_ids become the workers' CUDA_VISIBLE_DEVICES
        env = env.updated({"CUDA_VISIBLE_DEVICES": Var(cfg.gpu_ids, True, where=(
            f"gpu_ids of accelerate launch ({cfg.config_file or '--gpu_ids'})"))})
        base = {**base, "env": env}
    layer = Layer(
        "accelerate launch", "distributed", nproc=None if why else cfg.nproc,
        nproc_text=f"⟨{why}⟩" if why else cfg.nproc_text,
        nproc_source=cfg.nproc_source, nnodes=None if why else cfg.nnodes,
        port=None if why else cfg.port, port_text=f"⟨{why}⟩" if why else cfg.port_text,
        port_source=cfg.port_source, error=cfg.error, unread=cfg.unknown,
        port_fallback=not why and cfg.nnodes is not None and cfg.nnodes <= 1,
        program=cfg.program.text if cfg.program else "", args=cfg.args, **base)
    return _with_program(layer, cfg, env, cmd, depth)


def _script_child(argv: list[Word], env: Environment, cmd: Command,
                  depth: int) -> list[Layer]:
    """A launcher's child that is a shell script: evaluate it to find what it launches."""
    prog = posixpath.basename(argv[0].text)
    args = argv[1:] if prog in ("bash", "sh") else argv
    first = next((a for a in args if not (a.known and a.text.startswith("-"))), None)
    if first is None or depth == 0:
        return []  # at depth 0 the shell evaluator already walked it
    if not first.known:  # `torchrun --no-python bash "$S"`: what it launches is not known
        return [Layer(f"{prog} {first.text}", "other", cmd.file, cmd.line, implicit=True,
                      conditional=cmd.conditional, env=env, program=first.text,
                      unread=f"the script is not known: {first.reason}")]
    path = first.text
    if not posixpath.isabs(path) and cmd.cwd:
        path = posixpath.join(cmd.cwd, path)
    # what the script wrote there first (`cat > inner.sh <<EOF`), not the file on disk;
    # one it or a program it ran may have written, content not known: a layer not read
    written = cmd.files.get(posixpath.normpath(path))

    def unread(why: str) -> Layer:  # what it launches: not known
        return Layer(f"{prog} {posixpath.basename(path)}", "other", cmd.file, cmd.line,
                     implicit=True, conditional=cmd.conditional, env=env, program=path,
                     unread=why)

    if written is not None and written.text is None:
        return [unread(f"{path}: {written.reason}")]
    try:
        text, notes = (written.text, []) if written is not None and \
            written.text is not None else shell.read_script(path)
    except shell.ScriptFileError as exc:
        # missing: the launcher fails on it, nothing starts; else bash reads it, we don't
        return [] if not os.path.lexists(path) or os.path.isdir(path) else \
            [unread(str(exc))]
    evaluator = _Evaluator({}, cmd.cwd)
    # and the files the script wrote before, and the programs that may have
    evaluator.written = dict(cmd.files)
    evaluator.writers = cmd.files.writers if isinstance(cmd.files, shell.Files) else ()
    # the script inherits the environment as it is: unknown values and all, and opaque
    evaluator.state.vars = {k: replace(v, exported=True) for k, v in env.items()}
    evaluator.state.opaque = env.opaque
    trace = evaluator.run_file(path, text, notes, zero=first.text)
    layers: list[Layer] = []
    for inner in trace.commands:
        layers += [layer for layer in chain(list(inner.argv), Environment(
            inner.env, inner.opaque), inner, depth + 1) if layer.kind != "program"]
    hidden = [trace.unread] if trace.unread else [
        f"{posixpath.basename(u.file)}:{u.line}: {u.reason}" for u in trace.unseen]
    # last: what it may start beyond the layers read (judges: _unknown_programs)
    return layers + ([unread("; ".join(hidden[:3]))] if hidden else [])


# -- paths -----------------------------------------------------------------------------

# Flags whose value is a path the job reads (swift, slime/Megatron, torchrun trainers).
INPUT_FLAGS = frozenset({
    "--model", "--model_id_or_path", "--adapters", "--resume_from_checkpoint", "--dataset",
    "--val_dataset", "--ref_model", "--reward_model", "--ckpt_dir", "--load_from",
    "--hf-checkpoint", "--hf_checkpoint", "--ref-load", "--ref_load", "--load",
    "--prompt-data", "--prompt_data", "--eval-prompt-data", "--data-path", "--data_path",
    "--tokenizer-model", "--tokenizer_model", "--deepspeed", "--deepspeed_config",
    "--config_file", "--config", "--train_file", "--validation_file",
    "--model_name_or_path", "--tokenizer_name_or_path",
})  # not deepspeed's --hostfile: a missing one runs on this node only (runner.py:212-216)
OUTPUT_FLAGS = frozenset({"--output_dir", "--output-dir", "--save", "--save-dir",
                          "--save_dir", "--logging_dir", "--log-dir", "--log_dir"})
MULTI_VALUE = frozenset({"--dataset", "--val_dataset", "--adapters", "--data-path",
                         "--data_path", "--eval-prompt-data"})
PATH_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt", ".arrow", ".py", ".yaml",
                 ".yml", ".toml", ".bin", ".safetensors", ".pt", ".sh", ".tsv")
DEEPSPEED_PRESETS = frozenset({"zero0", "zero1", "zero2", "zero3", "zero2_offload",
                               "zero3_offload", "default"})


def _looks_local(text: str, cwd: str | None) -> bool:
    """A local path, as opposed to a hub id (`Qwen/Qwen2.5-7B`, `swift/self-cognition#500`)."""
    if text.startswith(("/", "./", "../", "~")):
        return True
    bare = text.split("#")[0]
    if bare.endswith(PATH_SUFFIXES):
        return True
    if cwd and os.path.exists(posixpath.join(cwd, bare)):
        return True
    return bare.count("/") >= 2  # org/name is a hub id; deeper is a directory


def _abs(text: str, cwd: str | None) -> str:
    if posixpath.isabs(text) or not cwd:
        return posixpath.normpath(text) if posixpath.isabs(text) else text
    return posixpath.normpath(posixpath.join(cwd, text))


def _directory(word: Word, cwd: str | None, is_file: bool) -> str:
    """The deepest directory known for an output (its parent when it is a file)."""
    known = word.text if word.known else word.prefix
    if not known:
        return ""
    if not word.known or is_file:
        known = known if known.endswith("/") and not is_file else posixpath.dirname(known)
    known = known or "."
    return _abs(known, cwd) if (cwd or posixpath.isabs(known)) else ""


class _Made:
    """Directories and files the script creates before a given command (mkdir, redirects),
    and commands that might (cp, tar, git clone, ...): a missing directory they name is
    not known missing."""

    def __init__(self) -> None:
        self.sure: list[tuple[str, str]] = []  # (path, "mkdir -p at file:line")
        self.maybe: list[tuple[str, str]] = []
        # mkdir of a path not known here, by its text and Word.origins: the same unknown
        # value (`mkdir -p "$RUN_DIR"` then `tee "$RUN_DIR/x.log"`) is the same directory
        self.same: list[tuple[str, tuple[str, ...], str]] = []

    def add(self, cmd: Command) -> None:
        where = f"{cmd.program} at {posixpath.basename(cmd.file)}:{cmd.line}"
        bucket = self.maybe if cmd.conditional else self.sure
        if cmd.program == "mkdir":
            for w in cmd.argv[1:]:
                if w.text.startswith("-"):
                    continue
                (bucket if w.known else self.maybe).append(
                    (_abs(w.text if w.known else w.prefix, cmd.cwd), where))
                if not w.known and not cmd.conditional and "?" not in w.origins and \
                        (cmd.cwd or posixpath.isabs(w.text)):
                    self.same.append((_abs(w.text, cmd.cwd), w.origins, where))
        else:  # what the launchers' config files are read through too (shell/writers.py)
            for c in writers.claims(cmd.argv):
                text = c.text.split("*")[0] if c.glob else "" if c.code else c.text
                if text:
                    self.maybe.append((_abs(text, cmd.cwd), where))
        for w in cmd.writes:
            if w.known:
                bucket.append((_abs(w.text, cmd.cwd), f"a redirect at {where}"))

    def find_unknown(self, w: Word, cwd: str | None) -> str:
        """The mkdir that surely made the (not known) directory of w, or ""."""
        if w.known or "?" in w.origins or not (cwd or posixpath.isabs(w.text)):
            return ""
        directory = posixpath.dirname(_abs(w.text, cwd))
        for path, origins, where in self.same:
            if origins == w.origins and (path == directory or
                                         directory.startswith(path.rstrip("/") + "/")):
                return where
        return ""

    def find(self, directory: str) -> tuple[bool | None, str]:
        for path, where in self.sure:
            if path == directory or path.startswith(directory.rstrip("/") + "/"):
                return True, where
        for path, where in self.maybe:
            if path and (path == directory or path.startswith(directory.rstrip("/") + "/")
                         or directory.startswith(path.rstrip("/") + "/")):
                return None, where
        return False, ""


def _opened(flag: str, w: Word, cmd: Command, made: _Made) -> PathArg:
    cwd = cmd.cwd
    directory = _directory(w, cwd, True)
    created, by = made.find(directory) if directory else (False, "")
    if created is not True and (same := made.find_unknown(w, cwd)):
        created, by = True, same
    if cmd.conditional and not created:  # in a branch that may not run: not a sure failure
        created, by = None, by or "nothing (the line is in a branch that may not run)"
    if not w.known and "/" in w.text[w.text.find(UNKNOWN_OPEN):] and created is not True:
        # `> /out/run-$(date +%s)/x.log`: its directory is not /out, and not known
        directory = ""
    return PathArg(flag, _show(w, cwd), w.known, cmd.file, cmd.line, w.reason, directory,
                   needs_dir=True, made_by=by, made=created)


def _paths(commands: tuple[Command, ...], jobs: list[Job]
           ) -> tuple[list[PathArg], list[PathArg]]:
    """What every command opens (redirects, tee) and what the jobs read and write (their
    trainer scripts and path flags), each against what the commands before it created."""
    inputs: list[PathArg] = []
    outputs: list[PathArg] = []
    job_of = {id(job.command): job for job in jobs}
    made = _Made()
    previous: Command | None = None
    for cmd in commands:
        if previous is not None:
            made.add(previous)  # what the commands before this one create
        previous = cmd
        _opened_files(cmd, made, inputs, outputs)
        job = job_of.get(id(cmd))
        if job is not None:
            inputs += _programs(job, cmd, made)
            _flag_paths(cmd, inputs, outputs, made)
    return inputs, outputs


def _opened_files(cmd: Command, made: _Made, inputs: list[PathArg],
                  outputs: list[PathArg]) -> None:
    """Redirects (`> f` written, `< f` read: bash opens them) and `tee FILE`."""
    writes = {id(w) for w in cmd.writes}
    for target in cmd.redirects:
        if target.text.startswith("/dev/"):
            continue
        if id(target) in writes:
            outputs.append(_opened("> (redirect)", target, cmd, made))
        else:  # `< file`: bash opens it for reading
            inputs.append(PathArg("< (redirect)", _show(target, cmd.cwd), target.known,
                                  cmd.file, cmd.line, target.reason))
    if cmd.program == "tee":
        for w in cmd.argv[1:]:
            if not w.text.startswith("-") and not w.text.startswith("/dev/"):
                outputs.append(_opened("tee", w, cmd, made))


def _flag_values(argv: list[Word], i: int) -> tuple[list[Word], int]:
    """The values of the path flag at argv[i] (`--f=v`, `--f v`, `--dataset a b`) and the
    index after them."""
    flag, eq, inline = argv[i].text.partition("=")
    if eq:
        return [replace(argv[i], text=inline)], i + 1
    values = []
    j = i + 1
    while j < len(argv) and not argv[j].text.startswith("-"):
        values.append(argv[j])
        j += 1
        if flag not in MULTI_VALUE:
            break
    return values, j


def _flag_paths(cmd: Command, inputs: list[PathArg], outputs: list[PathArg],
                made: _Made | None = None) -> None:
    """The paths a job's flags name: inputs it reads, output directories it writes. An
    input an earlier command writes (`cat > cfg.yaml <<EOF`) is not missing."""
    argv = list(cmd.argv)
    cwd = cmd.cwd
    i = 0
    while i < len(argv):
        flag = argv[i].text.partition("=")[0]
        if flag not in INPUT_FLAGS and flag not in OUTPUT_FLAGS:
            i += 1
            continue
        values, i = _flag_values(argv, i)
        for w in values:
            if flag in OUTPUT_FLAGS:
                outputs.append(PathArg(flag, _show(w, cwd), w.known, cmd.file, cmd.line,
                                       w.reason, _directory(w, cwd, False)))
            elif _input_worth_checking(flag, w, cwd):
                created, by = made.find(_abs(w.text, cwd)) if made and w.known and (
                    cwd or posixpath.isabs(w.text)) else (False, "")
                if created:
                    continue
                inputs.append(PathArg(flag, _show(w, cwd), w.known and created is False,
                                      cmd.file, cmd.line, w.reason if created is False
                                      else f"it may be written by {by}"))


def _programs(job: Job, cmd: Command, made: _Made) -> list[PathArg]:
    """The trainer scripts python will open (`python train.py`, torchrun's `train.py`):
    python exits 2 with "can't open file" when one is missing. `-m pkg.mod` is checked
    when `pkg` is a directory of the working directory (python finds it there first)."""
    out = []
    for layer in job.layers:
        if layer.launcher.startswith(("swift", "megatron")) and layer.args and \
                layer.args[0].known and layer.args[0].text.endswith(SWIFT_CONFIG_SUFFIXES):
            # swift/cli/main.py:42-47 opens it (a missing one stops swift there); one the
            # script writes first (`cat > sft.yaml <<EOF`) is there
            path = _abs(layer.args[0].text, cmd.cwd)
            created, by = made.find(path)
            if not created:
                out.append(PathArg(f"{layer.launcher} config", path, created is False,
                                   cmd.file, cmd.line, "" if created is False else
                                   f"it may be written by {by}"))
        if layer.kind == "wrapper" and not layer.launcher.startswith(("swift", "megatron")):
            break  # `ray job submit -- python train.py` runs in the cluster's working dir
        if layer.kind != "program" or not layer.launcher.startswith(PYTHONS):
            continue
        target = layer.program
        if not target or target in ("-c", "-") or target.startswith("-c"):
            continue
        if not target.startswith("-m ") and re.match(r"python[\d.]* -m ", layer.launcher):
            target = "-m " + layer.launcher.split(" -m ", 1)[1]  # `python -m swift.cli.rlhf`
        where: dict[str, Any] = {"file": cmd.file, "line": cmd.line}
        if target.startswith("-m "):
            module = target[3:]
            top, _, sub = module.partition(".")
            if not sub or not cmd.cwd or UNKNOWN_OPEN in module or \
                    not os.path.isdir(posixpath.join(cmd.cwd, top)):
                continue
            path = posixpath.join(cmd.cwd, *module.split("."))
            if os.path.exists(path + ".py") or os.path.isdir(path) or cmd.conditional:
                continue
            out.append(PathArg("python -m", path + ".py", True, reason="", **where))
            continue
        known = UNKNOWN_OPEN not in target
        reason = "" if known else "the script path is not known"
        if known and not posixpath.isabs(target) and not cmd.cwd:
            known, reason = False, "the working directory is not known"
        elif cmd.conditional:
            known, reason = False, "the line is in a branch that may not run"
        path = _abs(target, cmd.cwd) if known else target
        if known and (made.find(path)[0] is not False):
            continue  # written by the script itself before (cat > train.py <<EOF)
        out.append(PathArg(f"{layer.launcher.split()[0]} script", path, known,
                           reason=reason, **where))
    return out


def _input_worth_checking(flag: str, w: Word, cwd: str | None) -> bool:
    if not w.known:
        return True
    if not w.text:
        return True  # an empty path is itself the problem
    if flag in ("--deepspeed",) and w.text in DEEPSPEED_PRESETS:
        return False
    return _looks_local(w.text, cwd)


def _show(w: Word, cwd: str | None) -> str:
    if not w.known:
        return w.text
    bare = w.text.split("#")[0] if not os.path.exists(w.text) else w.text
    return _abs(bare, cwd) if bare else ""


# -- empty variables -------------------------------------------------------------------


def _empties(trace: shell.Trace) -> list[EmptyUse]:
    found = []
    for cmd in trace.commands:
        if cmd.program in shell.NOT_CONSUMING:
            continue
        gone = {id(w) for w in cmd.vanished}
        for w in (*cmd.argv, *cmd.redirects, *cmd.vanished):
            # a quoted "$EMPTY" stays: one empty argument; an unquoted one vanishes
            shown = w.text or ("(nothing: the argument vanishes)" if id(w) in gone
                               else "'' (an empty argument)")
            for var in w.empty:
                found.append(EmptyUse(var, cmd.file, cmd.line, cmd.program, w.source, shown))
    return found


# -- swift trainers -----------------------------------------------------------------


def swift_args(args: tuple[Word, ...]) -> dict[str, Word]:
    """`--key value` / `--key=value` of a swift command, keys with `_` for `-`."""
    out = {}
    i = 0
    while i < len(args):
        text = args[i].text
        if text.startswith("--"):
            key, eq, value = text[2:].partition("=")
            # ms-swift's argparse accepts unique prefixes (`--num_gen` is ambiguous,
            # `--num_generations_e` is num_generations_eval)
            key = swift_option("--" + key) or key.replace("-", "_")
            if eq:
                out[key] = Word(value, args[i].source, args[i].known, args[i].reason,
                                args[i].refs)
            elif i + 1 < len(args) and not args[i + 1].text.startswith("--"):
                out[key] = args[i + 1]
                i += 1
        i += 1
    return out


def trainer_option(spec: LaunchSpec, key: str) -> tuple[Word, Layer] | None:
    """The first `--key VALUE` / `--key=VALUE` (or `--key-with-dashes`) a trainer of the
    launch is given: ms-swift's options (swift_args), and HF Trainer's, whose
    HfArgumentParser adds the dashed alias of every field (transformers hf_argparser.py
    `_parse_dataclass_field`)."""
    for job in spec.jobs:
        for layer in job.layers:
            if layer.kind == "program" and (word := swift_args(layer.args).get(key)):
                return word, layer
    return None


def grpo_runs(spec: LaunchSpec
              ) -> Iterator[tuple[Layer, dict[str, Word], Layer | None]]:
    """(trainer layer, its args, the distributed layer that starts it or None) for every
    `swift rlhf --rlhf_type grpo`."""
    for job in spec.jobs:
        for k, layer in enumerate(job.layers):
            if layer.kind != "program" or layer.program not in ("swift.cli.rlhf", "swift rlhf"):
                continue
            args = swift_args(layer.args)
            kind = args.get("rlhf_type")
            if kind is None or kind.text != "grpo":
                continue
            outer = [x for x in job.layers[:k] if x.kind == "distributed"]
            yield layer, args, outer[-1] if outer else None
