"""conda / mamba / micromamba activation, read from the filesystem as conda itself reads
it (conda is never run). Cited against conda/conda at 0f64223:
conda/activate.py and conda/shell/etc/profile.d/conda.sh."""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from preflight.inputs import read_regular
from preflight.launch.shell.model import UNKNOWN_CLOSE, UNKNOWN_OPEN, Var

TOOLS = ("conda", "mamba", "micromamba")
# `$(conda shell.bash hook)`, `$('/opt/miniconda3/bin/conda' 'shell.bash' 'hook' 2> /dev/null)`,
# `$(micromamba shell hook --shell bash)`, `$("$MAMBA_EXE" shell hook --shell bash ...)`
_Q = r"['\"]?"
_HOOK = re.compile(
    r"\$\(\s*" + _Q + r"(?P<exe>[^\s'\"()]*?)" + _Q + r"\s+(?:" + _Q + r"shell\.(?:bash|posix)"
    + _Q + r"\s+" + _Q + r"hook" + _Q + r"|" + _Q + r"shell" + _Q + r"\s+" + _Q + r"hook" + _Q
    + r")(?:\s+[^()]*)?\s*\)")
# the variables a hook may set. conda: `_hook_preamble` exports CONDA_EXE, _CE_M, _CE_CONDA,
# CONDA_PYTHON_EXE (conda/activate.py:257); conda.sh sets CONDA_SHLVL and puts condabin
# on PATH (conda/shell/etc/profile.d/conda.sh:57-66). micromamba's hook exports MAMBA_EXE
# and MAMBA_ROOT_PREFIX and does the same CONDA_SHLVL / condabin step.
HOOK_VARS = {
    "conda": ("CONDA_EXE", "_CE_M", "_CE_CONDA", "CONDA_PYTHON_EXE", "CONDA_SHLVL", "PATH"),
    "mamba": ("CONDA_EXE", "_CE_M", "_CE_CONDA", "CONDA_PYTHON_EXE", "MAMBA_EXE",
              "MAMBA_ROOT_PREFIX", "CONDA_SHLVL", "PATH"),
    "micromamba": ("MAMBA_EXE", "MAMBA_ROOT_PREFIX", "CONDA_SHLVL", "PATH"),
}
# what `conda activate` exports besides the env's own variables (conda/activate.py:401-435)
ACTIVATE_VARS = ("CONDA_PREFIX", "CONDA_DEFAULT_ENV", "CONDA_PROMPT_MODIFIER",
                 "CONDA_SHLVL", "PATH")
# conda/base/constants.py:390-392
UNSET_VALUE = "***unset***"
RESERVED = ("PATH",)


@dataclass(frozen=True)
class Hook:
    """The shell function a hook defines (`conda`, `mamba`, `micromamba`)."""

    tool: str
    root: str | None  # the installation's root prefix; None: not found on this machine
    where: str


def hook_tool(text: str) -> tuple[str, str] | None:
    """(tool, exe as written) when the text is one hook substitution and nothing else."""
    if not (text.startswith(UNKNOWN_OPEN) and text.endswith(UNKNOWN_CLOSE)):
        return None
    m = _HOOK.fullmatch(text[1:-1].strip())
    if m is None:
        return None
    exe = m.group("exe")
    base = posixpath.basename(exe)
    if base in TOOLS:
        return base, exe
    if exe in ("$CONDA_EXE", "${CONDA_EXE}"):
        return "conda", exe
    if exe in ("$MAMBA_EXE", "${MAMBA_EXE}"):
        return "micromamba", exe
    return None


def _known(env: Mapping[str, Var], name: str) -> str | None:
    v = env.get(name)
    return None if v is None else v.value


def _expand(text: str, env: Mapping[str, Var]) -> str | None:
    """`$HOME/miniconda3/bin/conda`: the variables in an exe path, when all are known."""
    missing = False

    def value(m: re.Match[str]) -> str:
        nonlocal missing
        got = _known(env, m.group(1) or m.group(2))
        missing |= got is None
        return got or ""

    out = re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)
    if out.startswith("~/"):
        home = _known(env, "HOME")
        missing |= home is None
        out = (home or "") + out[1:]
    return None if missing else out


def find_root(tool: str, exe: str, env: Mapping[str, Var], cwd: str | None) -> str | None:
    """The installation root: conda's sys.prefix is <root>/bin/conda's parent; micromamba's
    root is MAMBA_ROOT_PREFIX (its own default when unset is not read here)."""
    exe = _expand(exe, env) or ""
    if exe and "/" in exe and not posixpath.isabs(exe):
        exe = posixpath.join(cwd, exe) if cwd else ""
    if exe and "/" not in exe:
        search = _known(env, "PATH")
        if search is None:
            return None
        exe = next((posixpath.join(d, exe) for d in search.split(":") if d and
                    os.access(posixpath.join(d, exe), os.X_OK)), "")
    if not exe or not os.access(exe, os.X_OK):
        return None  # bash: command not found, the hook prints nothing
    if tool == "micromamba":
        root = _known(env, "MAMBA_ROOT_PREFIX")
        return root if root and posixpath.isdir(root) else None
    root = posixpath.dirname(posixpath.dirname(posixpath.realpath(exe)))
    return root if posixpath.isdir(posixpath.join(root, "conda-meta")) else None


def resolve_prefix(name: str, root: str, env: Mapping[str, Var], cwd: str | None,
                   writable: bool) -> str | None:
    """conda's `_resolve_prefix` (conda/activate.py:863) and `locate_prefix_by_name`
    (conda/base/context.py:2290) over `envs_dirs` (context.py:153): CONDA_ENVS_PATH /
    CONDA_ENVS_DIRS first, then <root>/envs and ~/.conda/envs (that order when the root is
    writable). None: not found here (or the search path is not known)."""
    if "/" in name:
        path = posixpath.expanduser(name)
        if not posixpath.isabs(path):
            if cwd is None:
                return None
            path = posixpath.join(cwd, path)
        path = posixpath.abspath(path)
        return path if posixpath.isdir(posixpath.join(path, "conda-meta")) else None
    if name in ("base", "root"):
        return root
    files = condarc(root, env)
    if files is None or any("envs_dirs" in data or "envs_path" in data for data in files):
        return None  # condarc's envs_dirs: merged by conda's own precedence, not modelled
    dirs: list[str] = []
    for key in ("CONDA_ENVS_PATH", "CONDA_ENVS_DIRS"):
        v = env.get(key)
        if v is not None and v.value is None:
            return None
        if v is not None and v.value:
            dirs.extend(p for p in re.split(r"[:,]", v.value) if p)
    fixed = [posixpath.join(root, "envs"), posixpath.expanduser("~/.conda/envs")]
    dirs.extend(fixed if writable else fixed[::-1])
    for d in dirs:
        prefix = posixpath.join(posixpath.abspath(posixpath.expanduser(d)), name)
        if posixpath.isdir(prefix):
            return prefix
    return None


def default_env(prefix: str, root: str) -> str:
    """CONDA_DEFAULT_ENV (conda/activate.py `_default_env`): base, an env's name, or its path."""
    if prefix == root:
        return "base"
    if posixpath.basename(posixpath.dirname(prefix)) == "envs":
        return posixpath.basename(prefix)
    return prefix


def env_vars(prefix: str) -> dict[str, str] | None:
    """conda's `_get_environment_env_vars` (conda/activate.py:813): the packages'
    etc/conda/env_vars.d/*.json, then conda-meta/state's "env_vars"; PATH is reserved and
    ***unset*** values are dropped. None: a file that cannot be read."""
    found: dict[str, str] = {}
    files = []
    pkg_dir = posixpath.join(prefix, "etc", "conda", "env_vars.d")
    if posixpath.isdir(pkg_dir):
        files.extend(sorted(e.path for e in os.scandir(pkg_dir)))
    state = posixpath.join(prefix, "conda-meta", "state")
    try:
        for path in files:
            found.update({str(k): str(v) for k, v in _json(path).items()})
        if posixpath.exists(state):
            data = _json(state)
            found.update({str(k): str(v) for k, v in data.get("env_vars", {}).items()})
    except (OSError, ValueError, AttributeError, RecursionError):  # RecursionError: `[[[[`
        return None
    return {k: v for k, v in found.items() if k not in RESERVED and v != UNSET_VALUE}


def _text(path: str) -> str:
    """A conda file's text; ValueError for a FIFO (it blocked open() for ever), a device
    or a file over 1 MiB (a sparse 2 GB one was read whole)."""
    data, why = read_regular(path, 1 << 20, "conda file")
    if data is None:
        raise ValueError(why)
    return data.decode("utf-8")


def _json(path: str) -> Any:
    return json.loads(_text(path))


def scripts(prefix: str, kind: str) -> list[str]:
    """etc/conda/activate.d/*.sh sorted (deactivate.d: reverse), conda/activate.py:785-811."""
    try:
        paths = [e.path for e in os.scandir(posixpath.join(prefix, "etc", "conda", kind))]
    except OSError:
        return []
    return sorted((p for p in paths if p.endswith(".sh")), reverse=kind == "deactivate.d")


def profile_hook(path: str) -> tuple[str, str] | None:
    """`source <root>/etc/profile.d/conda.sh` (or mamba.sh): (tool, root)."""
    base = posixpath.basename(path)
    parts = path.rsplit("/", 3)
    if base not in ("conda.sh", "mamba.sh") or len(parts) < 4 or parts[1:3] != ["etc",
                                                                              "profile.d"]:
        return None
    root = parts[0] or "/"
    if not posixpath.isdir(posixpath.join(root, "conda-meta")):
        return None
    return base[:-3], root


# conda/base/constants.py:46-73 (non-Windows); later files override earlier ones
_SEARCH = ("/etc/conda/.condarc", "/etc/conda/condarc", "/etc/conda/condarc.d/",
           "/var/lib/conda/.condarc", "/var/lib/conda/condarc", "/var/lib/conda/condarc.d/",
           "{root}/.condarc", "{root}/condarc", "{root}/condarc.d/",
           "$XDG_CONFIG_HOME/conda/.condarc", "$XDG_CONFIG_HOME/conda/condarc",
           "$XDG_CONFIG_HOME/conda/condarc.d/", "~/.config/conda/.condarc",
           "~/.config/conda/condarc", "~/.config/conda/condarc.d/", "~/.conda/.condarc",
           "~/.conda/condarc", "~/.conda/condarc.d/", "~/.condarc", "$CONDA_PREFIX/.condarc",
           "$CONDA_PREFIX/condarc", "$CONDA_PREFIX/condarc.d/", "$CONDARC")
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _condarc_files(root: str, env: Mapping[str, Var]) -> list[str] | None:
    files: list[str] = []
    for entry in _SEARCH:
        if entry.startswith("$") and env.get(entry[1:].split("/")[0]) is None:
            continue  # the variable is unset: conda skips the entry
        entry = entry.replace("{root}", root)
        prefix = env.get("CONDA_PREFIX")
        if entry.startswith("$CONDA_PREFIX") and prefix is not None and prefix.value is None:
            # not known where only a hook's activation set it: that env is the root's
            entry = root + entry[len("$CONDA_PREFIX"):]
        path = _expand(entry, env)
        if path is None:
            return None
        if path.endswith("/"):
            if posixpath.isdir(path):
                files.extend(sorted(e.path for e in os.scandir(path)
                                    if e.name.endswith((".yml", ".yaml"))))
        elif posixpath.isfile(path):
            files.append(path)
    return files


def condarc(root: str, env: Mapping[str, Var]) -> list[dict[str, object]] | None:
    """The condarc files on conda's search path, in order, parsed; None where one cannot
    be read or uses `#!final` (conda's override markers, not modelled here)."""
    import yaml  # only here: most scripts never reach a conda hook

    files = _condarc_files(root, env)
    if files is None:
        return None
    found: list[dict[str, object]] = []
    for path in files:
        try:
            text = _text(path)
            data = yaml.safe_load(text) or {}
        except (OSError, ValueError, yaml.YAMLError, RecursionError):  # `[[[[...`
            return None
        if not isinstance(data, dict) or "#!final" in text:
            return None
        found.append(data)
    return found


def auto_activation(root: str, env: Mapping[str, Var]) -> tuple[bool | None, str | None]:
    """Whether conda's hook ends with `conda activate <default_activation_env>`
    (conda/activate.py:213): `auto_activate` (alias auto_activate_base, default true,
    conda/base/context.py:230) from the condarc search path, then CONDA_* variables.
    (None, ...) where a file or variable cannot be read."""
    decided: bool | None = True
    target: str | None = "base"
    files = condarc(root, env)
    if files is None:
        return None, None
    for data in files:
        for key in ("auto_activate_base", "auto_activate"):
            if key in data:
                flag = data[key]
                decided = flag if isinstance(flag, bool) else None
        if "default_activation_env" in data:
            value = data["default_activation_env"]
            target = value if isinstance(value, str) and value else None
    for key in ("CONDA_AUTO_ACTIVATE_BASE", "CONDA_AUTO_ACTIVATE"):
        v = env.get(key)
        if v is not None:
            decided = None if v.value is None else _BOOLS.get(v.value.strip().lower())
    v = env.get("CONDA_DEFAULT_ACTIVATION_ENV")
    if v is not None:
        target = v.value or None
    return decided, target
