"""`$0` and the pure command substitutions preflight computes (`$(dirname "$0")`,
`$(basename X)`, `$(pwd)`) against real bash and coreutils: only what is certain is
stated, and what is stated is what bash produced (bash_oracle.py).

Before: `$0` was the script's absolute path (bash: the path as written, `run.sh`), also
inside `bash inner.sh` (bash: `inner.sh`); `$(basename /)` was empty (bash: `/`),
`$(basename -s .sh x.sh)` was `-s`; `./inner.sh` without its execute bit was read as if it
ran (bash: Permission denied); `source env.sh` read ./env.sh where bash finds one on PATH
first; `${BASH_SOURCE[0]}` was the absolute path (bash: as given)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bash_oracle import Case, check_all  # noqa: E402

from preflight.launch import spec as launch  # noqa: E402
from preflight.launch.shell.words import _path_part  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

INNER = {"inner.sh": 'torchrun "$0" "$(dirname "$0")" "$(basename "$0" .sh)" t.py\n'}
# (name, script, files, whether preflight knows every value: "exact", else "unknown")
CASES = [
    ("$0 is the script as bash is given it", 'torchrun "$0" t.py\n', {}, "exact"),
    ("dirname $0", 'torchrun "$(dirname "$0")" $(dirname $0)/x t.py\n', {}, "exact"),
    ("basename $0", 'torchrun "$(basename "$0")" "$(basename "$0" .sh)" t.py\n', {}, "exact"),
    ("the script-directory idiom", 'torchrun "$(cd "$(dirname "$0")" && pwd)" t.py\n', {},
     "exact"),
    ("pwd, pwd -P, pwd -L and PWD", 'torchrun "$(pwd)" "$(pwd -P)" "$(pwd -L)" "$PWD" t.py\n',
     {}, "exact"),
    ("cd, then pwd and PWD", 'mkdir -p sub\ncd sub\ntorchrun "$PWD" "$(pwd)" t.py\n', {},
     "exact"),
    # after a cd, `$(dirname "$0")` is `.` of the new directory: bash sources /env.sh
    # (missing: it fails), never the env.sh beside the script (it was read: a torchrun
    # bash did not run)
    ("$0 relative after a cd", 'cd /\nsource "$(dirname "$0")/env.sh"\ntorchrun "$0" t.py\n',
     {"env.sh": "torchrun env\n"}, "unknown"),
    ("bash inner.sh: its own $0", "bash inner.sh\n", INNER, "exact"),
    ("bash ./inner.sh", "bash ./inner.sh\n", INNER, "exact"),
    ("bash sub/inner.sh", "bash sub/inner.sh\n", {"sub/inner.sh": INNER["inner.sh"]}, "exact"),
    ("a sourced file keeps the script's $0", "source ./inner.sh\n", INNER, "exact"),
    ("bash -c: $0 is its name", "bash -c 'torchrun \"$0\" t.py' myname\n", {}, "exact"),
    ("basename and dirname edge cases",
     'torchrun "$(basename /)" "$(basename .sh .sh)" "$(basename a/b/ b)" "$(dirname //a)" '
     '"$(dirname a//b//)" "$(basename -- -x)" t.py\n', {}, "exact"),
    ("basename options are not guessed",
     'torchrun "$(basename -s .sh x.sh)" "$(basename -a x/y z/w)" "$(basename a b c)" t.py\n',
     {}, "unknown"),
    # resolved as here, for a path that is there before any program of the script ran
    ("realpath and readlink -f of what is there",
     'D="$(dirname "$(readlink -f "$0")")"\n'
     'torchrun "$D" "$(realpath .)" "$(realpath -e run.sh)" "$(readlink -e .)" t.py\n', {},
     "exact"),
    ("realpath of what is missing, or after a program ran, is not guessed",
     'torchrun "$(realpath nothere)" "$(readlink -f a/b)" "$(realpath -e)" t.py\n'
     'mkdir -p d\ntorchrun "$(realpath d)" t.py\n', {}, "unknown"),
    # `${BASH_SOURCE[0]}` is each file as bash was given it (was: its absolute path)
    ("BASH_SOURCE of the script",
     'D="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" &> /dev/null && pwd)"\n'
     'torchrun "$D" "${BASH_SOURCE[0]}" t.py\n', {}, "exact"),
    ("BASH_SOURCE of a file run, sourced, and in its function",
     "bash sub/inner.sh\nsource sub/inner.sh\nf\n",
     {"sub/inner.sh": 'f() { torchrun "${BASH_SOURCE[0]}" fn; }\n'
                      'torchrun "${BASH_SOURCE[0]}" "$(dirname "${BASH_SOURCE[0]}")" t.py\n'},
     "exact"),
    # written with mode 0644: `./inner.sh` fails (Permission denied) and starts nothing
    ("./inner.sh without its execute bit", "./inner.sh\ntorchrun after\n", INNER, "exact"),
    ("chmod +x, then ./inner.sh", "chmod +x inner.sh\n./inner.sh\n", INNER, "unknown"),
    # bash's `source NAME` without a slash looks on PATH first (sourcepath), then in the
    # cwd: was read from the cwd (`from_cwd` stated, bash `from_path`)
    ("source NAME is looked up on PATH first",
     'export PATH="$PWD/bin:$PATH"\nsource env.sh\n. env.sh\ntorchrun "$A" t.py\n',
     {"bin/env.sh": "A=from_path\n", "env.sh": "A=from_cwd\n"}, "exact"),
    ("a directory on PATH is passed over, a slash is the cwd's",
     'export PATH="$PWD/bin:$PATH"\nsource env.sh\nsource lib/x.sh\ntorchrun "$A" "$B" t.py\n',
     {"bin/env.sh/x": "", "env.sh": "A=from_cwd\n", "bin/lib/x.sh": "B=from_path\n",
      "lib/x.sh": "B=from_cwd\n"}, "exact"),
    # not in the cwd: bash looks on PATH, sh (dash) does not
    ("bash NAME is looked up on PATH when not in the cwd",
     'export PATH="$PWD/bin:$PATH"\nbash inner.sh\nsh inner.sh\n',
     {"bin/inner.sh": INNER["inner.sh"]}, "exact"),
    ("a script written, then run with bash", "cat > x.sh <<EOF\ntorchrun a\nEOF\nbash x.sh\n",
     {}, "exact"),
]


def test_dollar_zero_and_the_pure_substitutions_match_bash():
    verdicts = check_all([Case(name, script, files=files) for name, script, files, _ in CASES])
    got = {v.case.name: (v.kind, v.notes) for v in verdicts}
    want = {name: (kind, []) for name, _, _, kind in CASES}
    assert got == want


def test_coreutils_dirname_and_basename_are_computed_as_they_print_them():
    names = ["", "/", "//", "///", "a", "a/", "a//", "/a", "//a", "///a", "a/b", "a//b",
             "a/b/", "/a/b//", ".", "..", "./x", "../x/", "x.sh", ".sh", "a/.sh", "-", "a/-",
             "//a//b//", "-x", "a b"]
    computed = 0
    for name in names:
        for tool, extra in [("dirname", []), ("basename", []), ("basename", [".sh"]),
                            ("basename", ["b"]), ("basename", [""]), ("basename", ["-s"])]:
            for dashes in ([], ["--"]):
                args = [*dashes, name, *extra]
                real = subprocess.run([tool, *args], capture_output=True, text=True)
                mine = _path_part(tool, args)
                if mine is not None:
                    computed += 1
                    assert real.returncode == 0 and real.stdout == mine + "\n", (tool, args)
    assert computed > 250  # most are computed, not left unknown


def test_a_launch_script_given_relative_is_read_from_the_cwd_with_its_own_dollar_zero(
        tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "run.sh").write_text('torchrun "$0" "$(dirname "$0")" t.py\n')
    spec = launch.load("scripts/run.sh", None, {"PATH": "/usr/bin:/bin"}, cwd=str(tmp_path))
    (cmd,) = spec.commands
    # bash scripts/run.sh in tmp_path: $0 scripts/run.sh (was: the absolute path)
    assert [w.text for w in cmd.argv[1:3]] == ["scripts/run.sh", "scripts"]
    assert cmd.file == str(tmp_path / "scripts" / "run.sh")  # messages and fixes: the file


def test_the_start_directory_keeps_its_symlinks_as_bash_does(tmp_path, monkeypatch):
    """Run from a symlinked directory (PWD inherited from the shell): bash's `pwd` keeps the
    link (variables.c set_pwd), `pwd -P` resolves it. Was: `$(pwd)` the resolved path."""
    from bash_oracle import _parse_log, base_env, make_shims

    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    (real / "run.sh").write_text('torchrun "$(pwd)" "$PWD" "$(pwd -P)" t.py\n')
    log = tmp_path / "oracle.log"
    env = {**base_env(make_shims(tmp_path / "shims"), str(tmp_path)), "PWD": str(link),
           "ORACLE_LOG": str(log)}
    subprocess.run(["bash", "run.sh"], cwd=link, env=env, stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=20, check=True)
    (call,) = _parse_log(log.read_bytes())
    assert call.argv == (str(link), str(link), str(real), "t.py")
    monkeypatch.chdir(link)  # preflight run from there, by the same shell
    spec = launch.load("run.sh", None, env)
    assert tuple(w.text for w in spec.commands[0].argv[1:]) == call.argv


def test_realpath_resolves_links_as_coreutils_does(tmp_path):
    from bash_oracle import _parse_log, base_env, make_shims

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x").touch()
    (tmp_path / "l").symlink_to(tmp_path / "real")
    (tmp_path / "run.sh").write_text('torchrun "$(realpath l/x)" "$(readlink -f l)" t.py\n')
    log = tmp_path / "oracle.log"
    env = {**base_env(make_shims(tmp_path / "shims"), str(tmp_path)), "ORACLE_LOG": str(log)}
    subprocess.run(["bash", "run.sh"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=20, check=True)
    (call,) = _parse_log(log.read_bytes())
    assert call.argv == (str(tmp_path / "real" / "x"), str(tmp_path / "real"), "t.py")
    spec = launch.load("run.sh", None, env, cwd=str(tmp_path))
    assert tuple(w.text for w in spec.commands[0].argv[1:]) == call.argv


def test_dollar_zero_of_a_launch_cmd_is_not_known():
    """--launch-cmd is typed in a shell whose `$0` is its own name (bash, -bash, ...). Was:
    `<--launch-cmd>`, a value no shell has."""
    spec = launch.load(None, 'torchrun "$0" t.py', {"PATH": "/usr/bin:/bin"}, cwd="/")
    zero = spec.commands[0].argv[1]
    assert not zero.known and "$0" in zero.reason, zero
