"""What the evaluation of a launch script yields: the commands it would start, its
variables, what could not be evaluated, and a decided `exit`; plus the shell vocabulary
the launch analysis shares (wrappers, declaration builtins)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

UNKNOWN_OPEN, UNKNOWN_CLOSE = "⟨", "⟩"

# Commands whose arguments are not paths or program arguments: an empty variable in
# them is harmless (`echo "DATASET=$DATASET"`, `[ -z "$DATASET" ]`).
NOT_CONSUMING = frozenset({
    "echo", "printf", "[", "test", "true", "false", ":", "exit", "return", "set",
    "unset", "shift", "wait", "read", "trap", "local", "declare", "typeset", "export",
    "readonly", "sleep", "command", "type", "which", "hash", "ulimit", "umask",
})
# Programs that run the rest of their argv as a command (with their own options).
WRAPPERS = {
    "nohup": 0, "time": 0, "setsid": 0, "exec": 0, "builtin": 0, "command": 0,
    "stdbuf": -1, "nice": -1, "ionice": -1, "taskset": 1, "numactl": -1, "sudo": -1,
    "timeout": 1, "env": -1, "srun": -1, "chrt": 1,
}
DECLARE = frozenset({"export", "declare", "typeset", "local", "readonly"})
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ScriptFileError(Exception):
    """The path is not a readable text script; the message is one line."""


@dataclass(frozen=True)
class Var:
    value: str | None  # None: the value is not known
    exported: bool = False
    reason: str = ""  # why the value is not known
    refs: tuple[str, ...] = ()  # variables the value was built from, nearest first
    where: str = ""  # "file:line" of the assignment; "" when it came from the environment
    text: str = ""  # how an unknown value displays: `output/run-⟨$(date +%s)⟩`
    prefix: str = ""  # the known start of an unknown value
    array: tuple[Word, ...] | None = None  # an indexed array's elements (value: element 0)
    vanished: tuple[Word, ...] = ()  # array elements that expanded to nothing (empty vars)
    origins: tuple[str, ...] = ()  # where its unknown parts were made (see Word.origins)


@dataclass(frozen=True)
class Word:
    """One argument as it would expand. Unknown parts are shown as ⟨$(...)⟩."""

    text: str
    source: str
    known: bool = True
    reason: str = ""
    refs: tuple[str, ...] = ()  # variables it expanded, with what they were built from
    empty: tuple[str, ...] = ()  # variables that expanded empty without a default
    prefix: str = ""  # the known text before the first unknown part
    # One entry per unknown part: the command substitution evaluation that made it
    # (`$(date)#3`), "?" when not known. Two words with the same text and origins
    # without "?" have the same value (`mkdir -p "$RUN_DIR"` ... `tee "$RUN_DIR/x.log"`).
    origins: tuple[str, ...] = ()

    @property
    def value(self) -> str | None:
        return self.text if self.known else None


@dataclass(frozen=True)
class Written:
    """What the script leaves in a file it writes (`cat > f <<EOF`, `tee f <<EOF`):
    `text` None when it is not known (`reason` says why); `where` is "run.sh:3"."""

    text: str | None
    where: str
    reason: str = ""
    # what it holds if written, its unknown parts as ⟨...⟩ ("" when none of it is known),
    # and whether the write may not run at all
    shown: str = ""
    maybe: bool = False
    # a program that may write it (writers.Writer.by: "python at run.sh:2 (given
    # acc.yaml)"); "" when the script writes it itself (a redirect, tee, cp, ...)
    by: str = ""
    # that program may write it while a command the script started in the background
    # (`&`) reads it (writers.Files.racing)
    race: bool = False


@dataclass(frozen=True)
class Command:
    """A program the script would start, with the environment it would inherit."""

    argv: tuple[Word, ...]
    env: Mapping[str, Var]
    file: str
    line: int
    cwd: str | None
    conditional: bool  # inside a branch or loop whose condition could not be decided
    redirects: tuple[Word, ...] = ()  # files it writes or reads through > >> <
    vanished: tuple[Word, ...] = ()  # arguments that expanded to nothing
    opaque: str = ""  # why any variable not in `env` may still be in its environment
    writes: tuple[Word, ...] = ()  # the redirect targets opened for writing (> >> 2> &>)
    # the files the script wrote so far (absolute path -> content), as this command sees
    # them when it starts: launchers read their config files through it
    files: Mapping[str, Written] = field(default_factory=dict, compare=False)

    @property
    def program(self) -> str:
        return posixpath.basename(self.argv[0].text) if self.argv else ""


@dataclass(frozen=True)
class Unknown:
    file: str
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class Read:
    """A file on disk the script sources or runs as a script, read by preflight: `path`
    (absolute), where (`file`, `line`) and how (`source`, `bash`); `maybe`: the source or
    run is on a branch that may not run."""

    path: str
    file: str
    line: int
    how: str
    maybe: bool = False


@dataclass(frozen=True)
class Exit:
    """A decided `exit` that ends the script: where, why, and what the guard tested."""

    file: str
    line: int
    status: str
    guard: str = ""
    empty: tuple[str, ...] = ()  # variables the guard found empty
    missing: tuple[str, ...] = ()  # paths the guard found missing


@dataclass(frozen=True)
class Trace:
    commands: tuple[Command, ...]
    variables: Mapping[str, Var]
    unknowns: tuple[Unknown, ...]
    exit: Exit | None
    files: tuple[str, ...]
    written: Mapping[str, Written] = field(default_factory=dict)  # as the script ends
    # why reading stopped before the end (the line budget): what the script starts, sets
    # and exits with is then not known ("" when it was read to its end)
    unread: str = ""
    # where programs may start that preflight did not read (file, line, and why as the
    # reason): a file sourced or run that cannot be read or whose path is not known, an
    # eval of a value not known, a program not known, a command substitution past the
    # budget. A launch check that found no launcher cannot say there is none while this
    # is not empty.
    unseen: tuple[Unknown, ...] = ()
    # the files on disk it sources or runs as scripts and read (not the script itself,
    # not what the script wrote): `bash -n` judges each too (probes.bash_syntax)
    reads: tuple[Read, ...] = ()
