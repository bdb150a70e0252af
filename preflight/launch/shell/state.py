"""The evaluator's mutable state: variables and functions in scope, the text being read,
and the context a statement runs in."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from preflight.launch.shell.model import Var, Word

Node = Any  # a bashlex parse node (bashlex ships no type information)


@dataclass
class State:
    vars: dict[str, Var]
    # name -> (body nodes, the Source they were read from); (None, why) when the body
    # could not be parsed
    functions: dict[str, tuple[Any, Any]]
    cwd: str | None
    allexport: bool = False
    positional: tuple[Word, ...] = ()
    opaque: str = ""  # why any variable may have been set unseen (`eval`, `export $(...)`)
    errexit: bool = False  # set -e
    nounset: bool = False  # set -u
    created: frozenset[str] = frozenset()  # paths the script made (mkdir, touch, > file)
    integers: frozenset[str] = frozenset()  # declare -i
    external: bool = False  # a program ran that may have made files we cannot see
    exported_unset: frozenset[str] = frozenset()  # `export X` before X has a value

    def fork(self) -> State:
        return State(dict(self.vars), dict(self.functions), self.cwd, self.allexport,
                     self.positional, self.opaque, self.errexit, self.nounset, self.created,
                     self.integers, self.external, self.exported_unset)


@dataclass
class Source:
    file: str
    text: str
    newlines: list[int]
    base: int = 0
    # where each here-document's body lies in `text` (source.mask): offset of its `<<`
    bodies: dict[int, tuple[int, int]] = field(default_factory=dict)

    def line(self, pos: int) -> int:
        return bisect.bisect_right(self.newlines, self.base + pos - 1) + 1 \
            if self.newlines else 1

    def raw(self, pos: tuple[int, int]) -> str:
        return self.text[self.base + pos[0]:self.base + pos[1]]


@dataclass
class Ctx:
    conditional: bool = False
    guard: tuple[str, tuple[Word, ...]] | None = None  # the decided test leading here
    depth: int = 0
    tested: bool = False  # an if/while condition or left of && / ||: set -e does not stop
    background: bool = False  # in `a &`: started, but what it writes may not be complete
