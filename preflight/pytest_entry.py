"""The pytest11 entry point: a shim that loads preflight's plugin only for preflight's runs.

Installing pytest-preflight must not change unrelated pytest runs in the same environment:
no markers (`cpu`, `static`, `workload`, ...), no options, no import cost. pytest loads this
module (it imports nothing heavy); the real plugin (`preflight.plugin`) is registered only
when the command line points at preflight's checks (`pytest preflight/`, a check file or
node id) or uses one of preflight's options. Registering it from
pytest_load_initial_conftests is early enough: pytest_addoption and pytest_configure are
historic hooks, replayed for a plugin registered late (pluggy `call_historic`), and the
command line is parsed for good only after this hook.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
# The options of preflight.plugin's pytest_addoption: any of them asks for the plugin.
OPTIONS = frozenset((
    "--profile", "--profile-dir", "--report-dir", "--env-file", "--expect-env",
    "--nvml-replay", "--launch-script", "--launch-cmd", "--check", "--workloads", "--stack",
    "--all",
))


def _is_checks_path(arg: str) -> bool:
    try:
        path = Path(arg.split("::", 1)[0]).resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    if path == PACKAGE or PACKAGE in path.parents:
        return True
    # A checkout of preflight (not the installed copy): its checks dir has gate.ini.
    for folder in (path, *list(path.parents)[:2]):
        if folder.name == "checks" and (folder / "gate.ini").is_file():
            return True
        if (folder / "checks" / "gate.ini").is_file() and (folder / "plugin.py").is_file():
            return True
    return False


def wants_preflight(args: list[str]) -> bool:
    for arg in args:
        if arg.startswith("--"):
            if arg.split("=", 1)[0] in OPTIONS:
                return True
        elif not arg.startswith("-") and _is_checks_path(arg):
            return True
    return os.environ.get("PREFLIGHT_PLUGIN") == "1"


def pytest_load_initial_conftests(early_config: Any, parser: Any, args: list[str]) -> None:
    manager = early_config.pluginmanager
    if manager.has_plugin("preflight.plugin") or not wants_preflight(list(args)):
        return
    from preflight import plugin

    manager.register(plugin, "preflight.plugin")
