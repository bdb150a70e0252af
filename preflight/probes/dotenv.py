"""A `.env` file read with python-dotenv, and how it compares with the environment.

Values never leave this module: callers get key names and booleans only.
"""

from __future__ import annotations

import io
import os
import re
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dotenv.parser import parse_stream
from dotenv.variables import parse_variables

from preflight.errors import InputError

MAX_BYTES = 4 * 2**20


# A name a loader sets: shell names, plus the dots and dashes python-dotenv and docker's
# --env-file also take.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class EnvFileError(InputError):
    """The file cannot be used; the message is one line and holds no value."""


# A line bash's `set -a; source FILE` reads to the value python-dotenv reads: a blank line,
# a comment, `export NAME` alone, or `[export] NAME=VALUE [# comment]` where VALUE is
# single-quoted without a backslash (dotenv decodes `\\` and `\'` there), double-quoted
# without a dollar, backquote, backslash or `!` (expansions and escapes differ), or a bare
# word of characters neither treats specially (no `~`: bash expands it in an assignment).
# Anything else (`KEY = v`, `KEY=a b`, a bare `KEY`, `${X}`, a CR before the newline,
# which is part of bash's value) bash reads otherwise, running a word of it as a command.
_BASH_ALIKE = re.compile(
    r"(?:[ \t]*\n)*[ \t]*(?:(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_]*=(?:'[^'\\]*'|\"[^\"$`\\!]*\""
    r"|[A-Za-z0-9_./:,@%+=^-]*)|export[ \t]+[A-Za-z_][A-Za-z0-9_]*)?[ \t]*(?:#[^\n]*)?\n?")


@dataclass(frozen=True)
class EnvFile:
    path: str
    values: Mapping[str, str] = field(repr=False)  # never printed
    # every line reads in bash (`set -a; source FILE`) to python-dotenv's value
    bash_alike: bool = True

    @property
    def keys(self) -> list[str]:
        return list(self.values)


def read(path: str | Path) -> EnvFile:
    from preflight.inputs import display, read_bytes

    data = read_bytes(path, MAX_BYTES, ".env file", EnvFileError)
    path = Path(display(path))
    if b"\0" in data:
        raise EnvFileError(f"{path}: .env file contains a NUL byte")
    try:
        text = data.decode("utf-8-sig")  # a BOM is tolerated, as bash would not be
    except UnicodeDecodeError as exc:
        raise EnvFileError(f"{path}: .env file is not UTF-8 (byte {exc.start})") from None
    raw: list[tuple[str, str | None]] = []
    bash_alike = True
    for binding in parse_stream(io.StringIO(text)):
        bash_alike = bash_alike and _BASH_ALIKE.fullmatch(binding.original.string) is not None
        if binding.error:
            line = binding.original.line
            raise EnvFileError(f"{path}:{line}: cannot parse this line as KEY=VALUE")
        if binding.key is None:
            continue
        if not NAME.fullmatch(binding.key):  # `"` alone, `a b`: not a line bash or a loader
            # reads as an assignment; the name itself is not echoed (it may be a pasted token)
            raise EnvFileError(f"{path}:{binding.original.line}: cannot parse this line as "
                               "KEY=VALUE (not a variable name)")
        if binding.value is not None:  # a bare `KEY` line sets nothing: python-dotenv skips
            raw.append((binding.key, binding.value))  # it (main.py set_as_environment_variables)
    values = _interpolate(raw)
    return EnvFile(str(path), {k: v if v is not None else "" for k, v in values.items()},
                   bash_alike)


def _interpolate(raw: list[tuple[str, str | None]]) -> dict[str, str | None]:
    """python-dotenv's `dotenv_values(interpolate=True)` (main.py resolve_variables, with
    override: earlier keys of the file over os.environ), but linear: dotenv copies the
    whole environment once per key, which is minutes for a 50,000-key file."""
    new: dict[str, str | None] = {}
    # dotenv's Atom.resolve reads a Mapping[str, str | None]; os.environ's values are str.
    env: ChainMap[str, str | None] = ChainMap(new, dict(os.environ))
    for name, value in raw:
        if value is None or "$" not in value:
            new[name] = value
        else:
            new[name] = "".join(atom.resolve(env) for atom in parse_variables(value))
    return new


@dataclass(frozen=True)
class Comparison:
    missing: list[str]  # in the file, not exported
    different: list[str]  # exported with another value
    required_missing: list[str]


def compare(env_file: EnvFile | None, environ: Mapping[str, str],
            required: Sequence[str]) -> Comparison:
    values = env_file.values if env_file else {}
    missing = [k for k in values if k not in environ]
    different = [k for k in values if k in environ and environ[k] != values[k]]
    required_missing = [k for k in required if not environ.get(k)]
    return Comparison(missing, different, required_missing)


WANDB_OFF = ("offline", "disabled", "dryrun")


def wandb_key_trap(env_file: EnvFile | None, environ: Mapping[str, str]) -> bool:
    """WANDB_KEY is set (file or env) but WANDB_API_KEY, which wandb reads, is not."""
    has_key = "WANDB_KEY" in environ or (env_file is not None and "WANDB_KEY" in env_file.values)
    if not has_key or environ.get("WANDB_API_KEY"):
        return False
    return environ.get("WANDB_MODE", "").lower() not in WANDB_OFF
