"""The NCCL settings a job will run with: environment, then NCCL's own config files.

NCCL reads `NCCL_CONF_FILE` (or `~/.nccl.conf` when it is unset) and `/etc/nccl.conf`
into the environment at init (nccl src/misc/param.cc, `initEnvFunc`), so a stray
`NCCL_P2P_DISABLE=1` in a config file cripples a job whose shell looks clean.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

SYSTEM_CONF = "/etc/nccl.conf"


@dataclass(frozen=True)
class Setting:
    key: str
    value: str
    source: str  # "environment" or the config file path


def conf_files(environ: Mapping[str, str], system_conf: str = SYSTEM_CONF) -> list[str]:
    user = environ.get("NCCL_CONF_FILE")
    if not user:
        home = environ.get("HOME") or os.path.expanduser("~")
        user = os.path.join(home, ".nccl.conf")
    return [user, system_conf]


def settings(environ: Mapping[str, str], system_conf: str = SYSTEM_CONF) -> dict[str, Setting]:
    """Every NCCL_* key with the value that wins: the environment first, then the files
    in NCCL's order (a file only fills keys still unset)."""
    found = {k: Setting(k, v, "environment") for k, v in environ.items()
             if k.startswith("NCCL_")}
    for path in conf_files(environ, system_conf):
        if not Path(path).is_file():
            continue
        for key, value in dotenv_values(path).items():
            if key.startswith("NCCL_") and key not in found and value is not None:
                found[key] = Setting(key, value, path)
    return found


def as_int(value: str) -> int:
    """NCCL parses integer parameters with strtoll: "1" disables, "true" is 0."""
    digits = ""
    for char in value.strip():
        if char.isdigit() or (char == "-" and not digits):
            digits += char
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0
