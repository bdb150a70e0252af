"""What decides whether wandb runs online: what the launch reports to, where wandb is
installed, the WANDB_* settings the job sees, and whether netrc holds a key for its host.

Plain reads (files, the evaluated launch; never the network, never a key's value): the
judge is `preflight.judges.node.wandb_offline`.
"""

from __future__ import annotations

import importlib.util
import netrc
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from preflight.launch.shell.model import Command
from preflight.launch.spec import LaunchSpec
from preflight.probes import dotenv, paths


@dataclass(frozen=True)
class Setting:
    """A WANDB_* variable as the job will see it: its value, and where it came from."""

    value: str | None  # None: unset everywhere
    source: str = ""  # "the launch script", "the environment", or the .env path


WANDB_TIMEOUT_S = 3.0  # the bound of the probe of wandb's server (hf-endpoint's default)
CONFIGS = (".yaml", ".yml", ".json", ".toml")
# `report_to: wandb`, `"report_to": ["wandb"]`, `report_to = "wandb"` in a config or heredoc
REPORT_TO_LINE = re.compile(r"""^[\s{,]*["']?report_to["']?\s*[:=]\s*(.*)$""")


def _reporters(text: str) -> list[str]:
    return [v for v in re.split(r"[\s,\[\]{}\"']+", text) if v and not v.startswith("#")]


def _report_to_argv(words: list[str]) -> list[str] | None:
    for i, word in enumerate(words):
        if word in ("--report_to", "--report-to"):  # HF/swift: nargs, or comma-separated
            values = []
            for value in words[i + 1:]:
                if value.startswith("-"):
                    break
                values += _reporters(value)
            return values
        if word.startswith(("--report_to=", "--report-to=")):
            return _reporters(word.split("=", 1)[1])
    return None


def _report_to_text(path: str) -> tuple[list[str], int] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read(1 << 20).splitlines()
    except OSError:
        return None
    for n, line in enumerate(lines):
        if m := REPORT_TO_LINE.match(line):
            value = m.group(1).strip()  # a list up to its `]`, a scalar up to `,` `}` `#`
            value = value.split("]")[0] if value.startswith("[") else re.split(r"[,}#]",
                                                                               value)[0]
            values = _reporters(value)
            for item in lines[n + 1:] if not values else []:  # a YAML block list
                if not item.strip().startswith("- "):
                    break
                values += _reporters(item.strip()[2:])
            return values, n + 1
    return None


def report_to(spec: LaunchSpec | None) -> tuple[list[str] | None, str, Command | None]:
    """What the launch says it reports to: its argv, a config it passes, the script."""
    if spec is None:
        return None, "", None
    for cmd in spec.commands:
        words = [w.text for w in cmd.argv]
        if (said := _report_to_argv(words)) is not None:
            return said, f"--report_to {' '.join(said)} at {Path(cmd.file).name}:{cmd.line}", cmd
        if "--use-wandb" in words:  # slime (slime/utils/wandb_utils.py init_wandb_primary)
            return ["wandb"], f"--use-wandb at {Path(cmd.file).name}:{cmd.line}", cmd
        for word in words:
            path = os.path.join(cmd.cwd or os.getcwd(), word)
            if word.endswith(CONFIGS) and (found := _report_to_text(path)) is not None:
                return found[0], f"report_to in {word}:{found[1]}", cmd
    if os.path.isfile(spec.source) and (found := _report_to_text(spec.source)) is not None:
        return found[0], f"report_to in {spec.source}:{found[1]}", None
    return None, "", None


def flag(cmd: Command | None, name: str) -> Setting:
    """A slime option the job passes (`--wandb-mode offline`, `--wandb-key X`): slime sets
    WANDB_MODE from --wandb-mode and logs in with --wandb-key (slime/utils/wandb_utils.py
    init_wandb_primary). Unset when not given, empty, or not known."""
    words = list(cmd.argv) if cmd is not None else []
    for i, w in enumerate(words):
        value = words[i + 1] if w.text == name and i + 1 < len(words) else \
            replace(w, text=w.text.split("=", 1)[1]) if w.text.startswith(name + "=") \
            else None
        if value is not None and cmd is not None:
            if not value.known or not value.text or value.text.startswith("-"):
                return Setting(None)
            # "the wandb-key option": a `--wandb-key WORD` in a message is masked by shape
            return Setting(value.text, f"the {name[2:]} option at "
                                       f"{Path(cmd.file).name}:{cmd.line}")
    return Setting(None)


def installed(prefix: Path) -> str | None:
    found = sorted(prefix.glob("lib/python3*/site-packages/wandb/__init__.py"))
    if found:
        return str(found[0].parent)
    if paths.same_dir(prefix, sys.prefix):  # the suite's own Python (and what it sees)
        spec = importlib.util.find_spec("wandb")
        return str(Path(spec.origin).parent) if spec and spec.origin else None
    return None


def setting(name: str, job: Command | None, environ: Mapping[str, str],
            env_file: dotenv.EnvFile | None) -> Setting:
    """The value the job sees: the launch script's, else the environment's, else the .env's
    (what `set -a; source .env` would export; dotenv-exported checks that it is)."""
    var = job.env.get(name) if job is not None else None
    if var is not None and var.value:
        return Setting(var.value, f"the launch script ({var.where})" if var.where
                             else "the environment")
    if environ.get(name):
        return Setting(environ[name], "the environment")
    if env_file is not None and env_file.values.get(name):
        return Setting(env_file.values[name], env_file.path)
    return Setting(None)


def netrc_key(environ: Mapping[str, str], host: str | None) -> tuple[str | None, str]:
    """Where wandb finds a key in netrc (wandb/sdk/lib/apikey.py:70-73 picks $NETRC, else
    ~/.netrc or ~/_netrc; :328-342 reads the password of `machine <base_url host>` through
    requests' get_netrc_auth, requests/utils.py:231, stdlib netrc with its `default`)."""
    home = environ.get("HOME") or os.path.expanduser("~")
    given = environ.get("NETRC")
    path = (home + given[1:] if given.startswith("~/") else given) if given else next(
        (p for p in (f"{home}/.netrc", f"{home}/_netrc") if os.path.exists(p)),
        f"{home}/.netrc")
    if host is None or not os.path.exists(path):
        return None, f"no {path}"
    try:
        auth = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:  # its message may quote a token: not shown
        return None, f"{path} cannot be read ({type(exc).__name__})"
    if auth and auth[2]:
        return f"{path} (machine {host})", ""
    return None, f"no `machine {host}` with a password in {path}"
