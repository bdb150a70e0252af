"""The NCCL settings a job will run with: environment, then NCCL's own config files.

NCCL reads `NCCL_CONF_FILE` (or `~/.nccl.conf` when it is unset) and `/etc/nccl.conf`
into the environment at init (nccl src/misc/param.cc, `initEnvFunc`), so a stray
`NCCL_P2P_DISABLE=1` in a config file cripples a job whose shell looks clean.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SYSTEM_CONF = "/etc/nccl.conf"


@dataclass(frozen=True)
class Setting:
    key: str
    value: str
    source: str  # "environment", the config file path, or the launch script that sets it
    line: int = 0  # the launch script's line that sets it (0: not set by a launch script)


def conf_files(environ: Mapping[str, str], system_conf: str = SYSTEM_CONF) -> list[str]:
    user = environ.get("NCCL_CONF_FILE")
    if not user:
        home = environ.get("HOME") or os.path.expanduser("~")
        user = os.path.join(home, ".nccl.conf")
    return [user, system_conf]


def read_conf(path: str) -> dict[str, str]:
    """An NCCL config file as NCCL reads it (src/misc/param.cc setEnvFile): a line that
    starts with `#` is skipped, the name is everything before the first `=` and the value
    everything after it, verbatim (quotes, spaces and a trailing `# ...` are part of it;
    `export NAME=...` sets a variable named `export NAME`), each cut at 1023 bytes; a line
    without `=` sets nothing. A later line does not replace an earlier one (setenv with
    overwrite 0)."""
    found: dict[str, str] = {}
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 20)
    except OSError:
        return found
    for raw in data.split(b"\n"):
        if not raw or raw.startswith(b"#") or b"=" not in raw:
            continue
        name, value = raw.split(b"=", 1)
        key, text = os.fsdecode(name[:1023]), os.fsdecode(value[:1023])
        if key and "\0" not in key and key not in found:
            found[key] = text.split("\0", 1)[0]
    return found


def settings(environ: Mapping[str, str], system_conf: str = SYSTEM_CONF,
             lines: Mapping[str, tuple[str, int]] | None = None) -> dict[str, Setting]:
    """Every NCCL_* key with the value that wins: the environment first, then the files
    in NCCL's order (a file only fills keys still unset). `lines`: the keys a launch
    script sets, with where (file, line): their source is that line, not "environment"."""
    where = lines or {}
    found = {k: Setting(k, v, *where.get(k, ("environment", 0))) for k, v in environ.items()
             if k.startswith("NCCL_")}
    for path in conf_files(environ, system_conf):
        if not Path(path).is_file():
            continue
        for key, value in read_conf(path).items():
            if key.startswith("NCCL_") and key not in found:
                found[key] = Setting(key, value, path)
    return found


def as_int(value: str) -> int:
    """An integer parameter as NCCL parses it (param.cc ncclLoadParam: `strtoll(str,
    nullptr, 0)`): leading whitespace, a sign, then base 0 (`0x1f` hex, `010` octal,
    decimal); no digits is 0 ("true", `"1"` with its quotes); the digits end at the first
    character that is not one."""
    found = re.match(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", value)
    if not found:
        return 0
    sign, digits = found.groups()
    number = int(digits, 16) if digits[:2].lower() == "0x" else \
        int(digits, 8) if digits.startswith("0") else int(digits)
    return -number if sign == "-" else number
