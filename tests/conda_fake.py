"""A fake conda installation for differential tests: `bin/conda shell.bash hook` prints a
minimal hook modelled on conda's (conda/activate.py `hook` and `_hook_preamble`, and
conda/shell/etc/profile.d/conda.sh: a `conda` shell function whose activate/deactivate
evaluate what `"$CONDA_EXE" shell.posix activate NAME` prints), and `shell.posix activate`
prints what `_build_activate_stack` / `_yield_commands` would (conda/activate.py:335-440):
the old env's deactivate.d scripts, PATH, CONDA_* and conda-meta/state env_vars exported,
then activate.d/*.sh sourced. Nothing here is real conda; the real bash runs it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

CONDA = r"""#!/bin/bash
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$1" = shell.bash ] && [ "$2" = hook ]; then
cat <<EOF
export CONDA_EXE='$ROOT/bin/conda'
export _CE_M=''
export _CE_CONDA=''
export CONDA_PYTHON_EXE='$ROOT/bin/python'
__conda_activate() {
    \local ask_conda
    ask_conda="\$(PS1="\$PS1" "\$CONDA_EXE" shell.posix "\$@")" || \return \$?
    \eval "\$ask_conda"
}
conda() {
    \local cmd="\${1:-}"
    case "\$cmd" in
        activate|deactivate) __conda_activate "\$@" ;;
        *) "\$CONDA_EXE" "\$@" ;;
    esac
}
if [ -z "\${CONDA_SHLVL+x}" ]; then
    \export CONDA_SHLVL=0
    PATH="$ROOT/condabin\${PATH:+":\${PATH}"}"
    \export PATH
fi
EOF
# conda's default is auto_activate: true; the test roots say false in .condarc
grep -q 'auto_activate: false' "$ROOT/.condarc" 2>/dev/null || [ -n "$NO_AUTO" ] || \
    echo "conda activate base"
exit 0
fi
if [ "$1" = run ]; then  # conda/utils.py wrap_subprocess_call: hook, activate, the command
    shift
    name=
    while [ $# -gt 0 ]; do
        case "$1" in
            -n|--name|-p|--prefix) name="$2"; shift 2 ;;
            --name=*|--prefix=*) name="${1#*=}"; shift ;;
            --no-capture-output|--live-stream) shift ;;
            *) break ;;
        esac
    done
    eval "$("$ROOT/bin/conda" shell.bash hook)"
    conda activate "${name:-base}"
    exec "$@"
fi
if [ "$1" = shell.posix ] && [ "$2" = activate ]; then
    name="${3:-base}"
    case "$name" in
        */*) prefix="$name" ;;
        base|root) prefix="$ROOT" ;;
        *) prefix="$ROOT/envs/$name" ;;
    esac
    [ -d "$prefix/conda-meta" ] || { echo "EnvironmentNameNotFound: $name" >&2; exit 1; }
    old="${CONDA_SHLVL:-0}"
    if [ "$old" -gt 0 ]; then
        for s in $(ls -r "$CONDA_PREFIX"/etc/conda/deactivate.d/*.sh 2>/dev/null); do
            echo ". \"$s\""
        done
        newpath=$(/usr/bin/python3 -c 'import sys
d = sys.argv[1].split(":"); old = sys.argv[2] + "/bin"
i = d.index(old) if old in d else 0
if old in d: del d[i]
d[i:i] = [sys.argv[3] + "/bin"]; print(":".join(d))' "$PATH" "$CONDA_PREFIX" "$prefix")
        echo "export CONDA_PREFIX_$old='$CONDA_PREFIX'"
    else
        case ":$PATH:" in *condabin:*) newpath="$prefix/bin:$PATH" ;;
            *) newpath="$prefix/bin:$ROOT/condabin:$PATH" ;; esac
    fi
    echo "export PATH='$newpath'"
    echo "export CONDA_PREFIX='$prefix'"
    echo "export CONDA_SHLVL='$((old + 1))'"
    case "$prefix" in
        "$ROOT") echo "export CONDA_DEFAULT_ENV='base'" ;;
        "$ROOT"/envs/*) echo "export CONDA_DEFAULT_ENV='${prefix##*/}'" ;;
        *) echo "export CONDA_DEFAULT_ENV='$prefix'" ;;
    esac
    echo "export CONDA_PROMPT_MODIFIER='(${prefix##*/}) '"
    if [ -f "$prefix/conda-meta/state" ]; then
        /usr/bin/python3 -c 'import json,shlex,sys
for k, v in json.load(open(sys.argv[1])).get("env_vars", {}).items():
    print("export %s=%s" % (k, shlex.quote(v)))' "$prefix/conda-meta/state"
    fi
    for s in $(ls "$prefix"/etc/conda/activate.d/*.sh 2>/dev/null); do echo ". \"$s\""; done
    exit 0
fi
exit 0
"""


def _write(path: Path, text: str, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def make_conda(root: Path, envs: dict[str, dict[str, object]],
               auto_activate: bool = False) -> Path:
    """A root with `bin/conda`, `etc/profile.d/conda.sh` and envs: each env dict may hold
    "activate" ({script name: text}), "deactivate", "env_vars" ({name: value})."""
    _write(root / "bin" / "conda", CONDA, executable=True)
    (root / "conda-meta").mkdir(parents=True, exist_ok=True)
    (root / "condabin").mkdir(exist_ok=True)
    # conda.sh: the hook without activating base; bin/activate: conda.sh, then
    # `conda activate "$@"` (conda/shell/bin/activate)
    _write(root / "etc" / "profile.d" / "conda.sh",
           f'eval "$(NO_AUTO=1 \'{root}/bin/conda\' shell.bash hook)"\n')
    _write(root / "bin" / "activate", f'. "{root}/etc/profile.d/conda.sh"\n'
           'conda activate "$@"\n')
    if not auto_activate:
        _write(root / ".condarc", "auto_activate: false\n")
    for name, spec in envs.items():
        prefix = root if name == "base" else root / "envs" / name
        (prefix / "conda-meta").mkdir(parents=True, exist_ok=True)
        (prefix / "bin").mkdir(exist_ok=True)
        for kind in ("activate", "deactivate"):
            scripts = spec.get(kind, {})
            assert isinstance(scripts, dict)
            for file, text in scripts.items():
                _write(prefix / "etc" / "conda" / f"{kind}.d" / file, text)
        values = spec.get("env_vars")
        if values:
            _write(prefix / "conda-meta" / "state", json.dumps({"env_vars": values}))
    return root
