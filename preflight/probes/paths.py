"""Executables on PATH and environment prefixes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path


def which(name: str, environ: Mapping[str, str]) -> str | None:
    return shutil.which(name, path=environ.get("PATH", ""))


def same_dir(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
