"""Programs the launch script runs that are no `.sh` and no launcher: a shell script by its
`#!` line (`./train`), and a Python program that starts a launcher itself (`python
launch.py` running `torchrun` through subprocess). Real bash with recording launcher
shims (bash_oracle.py) and, for the Python ones, the real interpreter are the oracle.

Before: `./train` (a bash script without `.sh`) and `python launch.py` were programs
preflight neither read nor listed as unseen: nested-launcher said PASS "no distributed
launcher in the script" while bash ran a nested torchrun."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bash_oracle import Case, base_env, make_shims, run_bash  # noqa: E402

from preflight.judges import launch as judge  # noqa: E402
from preflight.launch import spec as launch  # noqa: E402
from preflight.launch.shell import programs  # noqa: E402
from preflight.model import Kind  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

NESTED = "torchrun --nproc_per_node 2 -m torch.distributed.run t.py\n"


def _run(tmp_path: Path, script: str, files: dict[str, tuple[str, int]]
         ) -> tuple[list, launch.LaunchSpec]:
    """bash runs run.sh in a work dir holding `files` (text, mode); preflight reads it."""
    shims = make_shims(tmp_path / "shims")
    work = tmp_path / "w"
    work.mkdir()
    for rel, (text, mode) in files.items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    calls = run_bash(Case("programs", script), work, shims)
    spec = launch.load(str(work / "run.sh"), None, base_env(shims, str(work)), cwd=str(work))
    return calls, spec


@pytest.mark.parametrize("rel, text", [
    ("train", "#!/bin/bash\n" + NESTED),
    ("train", "#!/usr/bin/env bash\n" + NESTED),
    ("train", "#!/usr/bin/env -S bash -e\n" + NESTED),
    ("scripts/train", "#!/bin/sh\n" + NESTED),
    ("train", NESTED),  # no `#!`: bash runs a text file as a script itself (ENOEXEC)
], ids=["#!/bin/bash", "#!/usr/bin/env bash", "env -S bash -e", "#!/bin/sh", "no #!"])
def test_a_shell_script_without_sh_is_read_like_bash_x(tmp_path, rel, text):
    calls, spec = _run(tmp_path, f"./{rel} --lr 1\n", {rel: (text, 0o755)})
    assert [c.program for c in calls] == ["torchrun"], calls  # bash ran its torchrun
    nested = judge.nested_launcher(judge.NestedFacts(spec, {}))
    # was: PASS "no distributed launcher in the script"
    assert nested.deciding[0].kind is Kind.BLOCKER, nested
    assert f"torchrun at {Path(rel).name}:" in nested.message, nested.message


@pytest.mark.parametrize("rel, text, mode", [
    ("train", "#!/bin/bash\n" + NESTED, 0o644),  # no execute bit: Permission denied
    ("tool", f"#!{sys.executable}\nprint('torchrun is not run')\n", 0o755),  # a Python one
    ("bin", "\0ELF" + NESTED, 0o755),  # a binary (NUL in its first line): not a script
], ids=["not executable", "python #!", "binary"])
def test_what_bash_does_not_run_as_a_script_stays_unread_and_quiet(tmp_path, rel, text, mode):
    calls, spec = _run(tmp_path, f"./{rel}\n", {rel: (text, mode)})
    assert [c.program for c in calls if c.program == "torchrun"] == [], calls
    assert spec.jobs == () and spec.unseen == (), spec.unseen
    assert judge.nested_launcher(judge.NestedFacts(spec, {})).ok == \
        "no distributed launcher in the script"


LAUNCH_PY = """import subprocess
import sys

cmd = ["torchrun", "--nproc_per_node", "2", "t.py"]
subprocess.run(cmd, check=True)
"""
MODULE_PY = """import os, subprocess
subprocess.check_call(["python", "-m", "torch.distributed.run", "t.py"])
"""
# a trainer: a launcher only in its usage text and comments, subprocess for the git hash
TRAIN_PY = '''"""Usage: torchrun --nproc_per_node 8 train.py --lr 1e-4"""
import subprocess
# deepspeed --num_gpus 8 train.py
rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
print("trained at", rev)
'''


@pytest.mark.parametrize("text, where", [
    (LAUNCH_PY, "launch.py: a Python program that starts a launcher itself (line 4: "
                "torchrun), not read"),
    (MODULE_PY, "launch.py: a Python program that starts a launcher itself (line 2: -m "
                "torch.distributed.run), not read"),
], ids=["subprocess torchrun", "python -m torch.distributed.run"])
def test_a_python_program_that_starts_a_launcher_is_unseen(tmp_path, text, where):
    """The real interpreter runs launch.py (the `python` on PATH is the oracle's shim):
    the torchrun it starts is recorded. Before: preflight said "no distributed launcher"
    (nested-launcher PASS, launch-ports / launch-gpus / launcher-args SKIP)."""
    calls, spec = _run(tmp_path, f'"{sys.executable}" -u launch.py\n',
                       {"launch.py": (text, 0o644)})
    assert [c.program for c in calls] == ["torchrun"] or \
        [c.argv[:2] for c in calls] == [("-m", "torch.distributed.run")], calls
    assert spec.unseen == (f"run.sh:1: {where}",), spec.unseen
    nested = judge.nested_launcher(judge.NestedFacts(spec, {}))
    assert nested.deciding[0].kind is Kind.UNKNOWN and "run.sh:1" in nested.message
    for verdict in (judge.launch_ports(judge.PortsFacts(spec, {}, {}, "29501")),
                    judge.launch_gpus(judge.GpusFacts(spec, 8, None)),
                    judge.launcher_args(judge.ArgsFacts(spec))):
        assert verdict.deciding[0].kind is Kind.UNKNOWN and "launch.py" in verdict.message


def test_a_trainer_that_names_a_launcher_only_in_text_is_not_unseen(tmp_path):
    """No cry-wolf: a `python train.py` whose file mentions torchrun in its usage text and
    runs `git` through subprocess starts no launcher (the real interpreter runs it), so
    it does not make the launch checks UNKNOWN."""
    calls, spec = _run(tmp_path, f'"{sys.executable}" train.py\n', {"train.py": (TRAIN_PY,
                                                                                 0o644)})
    assert [c.program for c in calls if c.program in ("torchrun", "deepspeed")] == []
    assert spec.unseen == ()
    assert judge.nested_launcher(judge.NestedFacts(spec, {})).ok


@pytest.mark.parametrize("sample, want", [
    (b"#!/bin/bash\n", "bash"), (b"#! /usr/bin/env  bash\n", "bash"),
    (b"#!/usr/bin/env -S PYTHONPATH=. python3 -u\n", "python3"), (b"#!/bin/sh -e\n", "sh"),
    (b"echo hi\n", ""), (b"", ""), (b"\x7fELF\x02\0\0", None), (b"#!\n", None),
])
def test_interpreter(sample, want):
    assert programs.interpreter(sample) == want


@pytest.mark.parametrize("name, args, want", [
    ("python", ["launch.py"], 0), ("python3.11", ["-u", "-X", "dev", "launch.py", "-x"], 3),
    ("python", ["-Wignore", "launch.py"], 1), ("python", ["-W", "ignore", "l.py"], 2),
    ("python", ["-m", "torch.distributed.run", "t.py"], None), ("python", ["-uc", "x"], None),
    ("python", ["-"], None), ("python", [], None), ("torchrun", ["t.py"], None),
    ("python", ["--", "l.py"], 1),
])
def test_python_script(name, args, want):
    assert programs.python_script(name, args, None) == want


SUBPROCESS = "import subprocess\n"


@pytest.mark.parametrize("text, want", [
    (SUBPROCESS + 'subprocess.run(f"{VENV}/bin/torchrun --nproc_per_node 8 t.py", '
                  "shell=True)\n", (2, "{VENV}/bin/torchrun --nproc_per_node 8 t.py")),
    (SUBPROCESS + "cmd = (\n    'deepspeed --num_gpus 8 t.py'\n)\nsubprocess.run(cmd)\n",
     (3, "deepspeed --num_gpus 8 t.py")),
    ("import os\nos.system('accelerate launch t.py')\n", (2, "accelerate launch t.py")),
    ("from torch.distributed.run import main\nmain(['t.py'])\n",
     (1, "from torch.distributed.run import")),
    ("from accelerate import Accelerator, notebook_launcher\n",
     (1, "from accelerate import Accelerator, notebook_launcher")),
    # not a start: a message quoting a command, a usage text, a comment, a package list,
    # a launcher without any process start, a file Python cannot tokenize past its start
    (SUBPROCESS + "raise RuntimeError(\"deploy it with 'swift deploy --model m'\")\n", None),
    ('"""Usage: torchrun --nproc_per_node 8 train.py"""\n' + SUBPROCESS, None),
    (SUBPROCESS + "# subprocess.run(['torchrun', 't.py'])\n", None),
    (SUBPROCESS + "subprocess.run(['pip', 'install', 'accelerate', 'deepspeed'])\n", None),
    (SUBPROCESS + "if kwargs.get('deepspeed', None):\n    args['deepspeed'] = 'ds.json'\n",
     None),
    (SUBPROCESS + "subprocess.run(('torchrun', 't.py'))\n", (2, "torchrun")),
    ("CMD = ['torchrun', 't.py']\nprint(CMD)\n", None),
    (SUBPROCESS + 'x = """never closed\nsubprocess.run(["torchrun", "t.py"])\n', None),
], ids=["f-string path", "string in parentheses", "os.system", "torch.distributed.run",
        "notebook_launcher", "a message", "usage text", "comment", "package list", "a key",
        "a tuple",
        "no process start", "cut in a string"])
def test_starts_launcher(text, want):
    assert programs.starts_launcher(text) == want
