"""conda hooks and `conda activate` against real bash with a fake conda installation
(tests/conda_fake.py): no value preflight states differs from bash's; unknown only where
the hook's own variables come from conda itself or the environment cannot be read."""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bash_oracle import Case, compare, make_shims, run_bash, run_preflight  # noqa: E402
from conda_fake import make_conda  # noqa: E402
from support import Run, base_env  # noqa: E402

from preflight.launch.shell import Trace, evaluate_script

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

# what the hook and conda's settings alone decide: unknown to preflight by design
HOOK_OWN = {"CONDA_EXE", "_CE_M", "_CE_CONDA", "CONDA_PYTHON_EXE", "CONDA_PROMPT_MODIFIER"}
ENVS: dict[str, dict[str, object]] = {
    "gpu": {"activate": {"10-cuda.sh": "export CUDA_VISIBLE_DEVICES=0,1,2,3\n",
                         "20-port.sh": 'export MASTER_PORT=29511\nexport WHERE="$CONDA_PREFIX"\n'}},
    "vars": {"env_vars": {"NCCL_DEBUG": "INFO", "MASTER_PORT": "29555"}},
    "both": {"env_vars": {"OMP_NUM_THREADS": "4"},
             "activate": {"x.sh": "export NPROC_PER_NODE=2\n"},
             "deactivate": {"x.sh": "unset NPROC_PER_NODE\n"}},
}
HOOK = 'eval "$(conda shell.bash hook)"\n'
RUN = "torchrun --nproc_per_node 4 train.py\n"
SCRIPTS = {
    "hook-activate": HOOK + "conda activate gpu\n" + RUN,
    "hook-abs": 'eval "$("$CONDA_ROOT/bin/conda" shell.bash hook)"\nconda activate vars\n' + RUN,
    "init-block": """__conda_setup="$('{root}/bin/conda' 'shell.bash' 'hook' 2> /dev/null)"
if [ $? -eq 0 ]; then
    eval "$__conda_setup"
else
    export PATH="{root}/bin:$PATH"
fi
unset __conda_setup
conda activate both
""" + RUN,
    "two-activations": HOOK + "conda activate both\nconda activate gpu\n" + RUN,
    "by-path": HOOK + 'conda activate "$CONDA_ROOT/envs/vars"\n' + RUN,
    "base": HOOK + "conda activate base\nconda activate gpu\n" + RUN,
    "source-activate": "source activate gpu\n" + RUN,
    "profile-d": '. "$CONDA_ROOT/etc/profile.d/conda.sh"\nconda activate vars\n' + RUN,
    "hook-only": HOOK + "export MASTER_PORT=29612\n" + RUN,
    "conda-run": "conda run -n gpu --no-capture-output " + RUN,
    "conda-run-hooked": HOOK + "conda run --name=vars " + RUN,
    "missing-env": HOOK + "conda activate nosuch\n" + RUN,
    "no-hook": "conda activate gpu\nexport MASTER_PORT=29613\n" + RUN,
}
# the cases whose activation cannot be read: the launch environment is unknown there
OPAQUE = {"missing-env"}


def _run(tmp_path: Path, name: str, auto: bool) -> tuple[str, list[str], list[str]]:
    shims = make_shims(tmp_path / "shims")
    root = make_conda(tmp_path / "conda", {**ENVS, "base": {}}, auto_activate=auto)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": f"{shims}:{root}/bin:/usr/bin:/bin", "CONDA_ROOT": str(root)}
    case = Case(name, SCRIPTS[name].replace("{root}", str(root)), env=env)
    calls = run_bash(case, work, shims)
    assert calls, f"{name}: bash ran no launcher"
    trace = run_preflight(case, work, shims)
    verdict = compare(case, trace, calls, {})
    launches = [c for c in trace.commands if c.program == "torchrun"]
    assert launches, f"{name}: preflight found no launcher"
    unknown = sorted(k for k, v in launches[-1].env.items() if v.value is None)
    return verdict.kind, verdict.notes, unknown + (["<opaque>"] if launches[-1].opaque else [])


@pytest.mark.parametrize("auto", [False, True], ids=["plain", "auto-activate-base"])
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_conda_activation_as_bash_runs_it(tmp_path: Path, name: str, auto: bool) -> None:
    kind, notes, unknown = _run(tmp_path, name, auto)
    assert kind != "wrong", notes
    if name in OPAQUE:
        assert "<opaque>" in unknown
        return
    assert set(unknown) <= HOOK_OWN, unknown


def test_conda_script_port_held_then_free(run_preflight: Callable[..., Run],
                                          tmp_path: Path) -> None:
    """The most common launch script line, `eval "$(conda shell.bash hook)"`, no longer
    hides the launch: a held fixed port is a NO-GO, not an UNKNOWN; free, both launch
    checks pass with the GPUs the env's activate.d script selects."""
    root = make_conda(tmp_path / "conda", {**ENVS, "base": {}})
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    script = tmp_path / "run.sh"
    # set before the hook: an opaque eval would make it "may be set there" (UNKNOWN)
    script.write_text(f"#!/bin/bash\nexport PET_MASTER_PORT={port}\n{HOOK}"
                      "conda activate gpu\ntorchrun --nproc_per_node 1 train.py\n")
    (tmp_path / "train.py").write_text("")
    env = base_env(PATH=f"{root}/bin:/usr/bin:/bin", CONDA_SHLVL=None, CONDA_PREFIX=None,
                   CUDA_VISIBLE_DEVICES=None)
    args = ("--profile", "cpu", "--check", "launch-ports", "--check", "launch-gpus",
            "--launch-script", str(script))
    try:
        held = run_preflight(*args, env=env)
    finally:
        holder.close()
    assert held.returncode == 1, held.output
    result = held.one("launch-ports")
    assert result["outcome"] == "failed", result
    assert result["evidence"]["layers"][0]["port"] == port
    free = run_preflight(*args, env=env)
    assert free.returncode == 0, free.output
    assert free.one("launch-ports")["outcome"] == "passed"
    gpus = free.one("launch-gpus")
    assert gpus["outcome"] in ("passed", "skipped"), gpus
    assert gpus["outcome"] == "skipped" or \
        gpus["evidence"]["layers"][0]["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"


@pytest.mark.parametrize("text, tool", [
    ("⟨$(conda shell.bash hook)⟩", "conda"),
    ("⟨$(/opt/miniconda3/bin/conda shell.bash hook)⟩", "conda"),
    ("⟨$('/opt/miniconda3/bin/conda' 'shell.bash' 'hook' 2> /dev/null)⟩", "conda"),
    ("⟨$(micromamba shell hook --shell bash)⟩", "micromamba"),
    ("⟨$(mamba shell hook --shell bash)⟩", "mamba"),
    ('⟨$("$MAMBA_EXE" shell hook --shell bash --root-prefix "$MAMBA_ROOT_PREFIX" '
     '2> /dev/null)⟩', "micromamba"),
    ("⟨$(conda shell.bash hook)⟩ x", None),
    ("⟨$(conda info --base)⟩", None),
    ("⟨$(curl http://x | conda shell.bash hook)⟩", None),
])
def test_hook_forms(text: str, tool: str | None) -> None:
    from preflight.launch.shell.conda import hook_tool

    got = hook_tool(text)
    assert (got[0] if got else None) == tool


def _trace(tmp_path: Path, script: str, env: dict[str, str]) -> Trace:

    path = tmp_path / "run.sh"
    path.write_text(script)
    return evaluate_script(str(path), {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
                           cwd=str(tmp_path))


def test_micromamba_hook_and_activate(tmp_path: Path) -> None:
    root = make_conda(tmp_path / "mm", ENVS)
    exe = root / "bin" / "micromamba"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    trace = _trace(tmp_path, 'eval "$(micromamba shell hook --shell bash)"\n'
                   "micromamba activate gpu\n" + RUN,
                   {"MAMBA_ROOT_PREFIX": str(root), "PATH": f"{root}/bin:/usr/bin:/bin"})
    env = trace.commands[-1].env
    assert not trace.commands[-1].opaque
    assert env["CUDA_VISIBLE_DEVICES"].value == "0,1,2,3"
    assert env["CONDA_PREFIX"].value == f"{root}/envs/gpu"
    assert env["MAMBA_ROOT_PREFIX"].value == str(root)


def test_deactivate_runs_the_envs_deactivate_scripts(tmp_path: Path) -> None:
    root = make_conda(tmp_path / "c", ENVS)
    trace = _trace(tmp_path, HOOK + "conda activate both\nconda deactivate\n" + RUN,
                   {"PATH": f"{root}/bin:/usr/bin:/bin"})
    env = trace.commands[-1].env
    assert "NPROC_PER_NODE" not in env and "OMP_NUM_THREADS" not in env
    assert env["CONDA_PREFIX"].value is None and not trace.commands[-1].opaque


def test_missing_installation_names_the_env(tmp_path: Path) -> None:
    trace = _trace(tmp_path, HOOK + "export KEEP=1\nconda activate myenv\n" + RUN, {})
    cmd = trace.commands[-1]
    assert "conda activate myenv" in cmd.opaque
    assert any("not found on this machine" in u.reason for u in trace.unknowns)


def test_condarc_decides_auto_activation_and_envs_dirs(tmp_path: Path) -> None:
    """`auto_activate: false` (or CONDA_AUTO_ACTIVATE=false): the hook activates nothing;
    an `envs_dirs` in a condarc (merged by conda's own precedence): the env is unknown."""
    root = make_conda(tmp_path / "c", {**ENVS, "base": {"env_vars": {"FROM_BASE": "1"}}},
                      auto_activate=True)
    path = {"PATH": f"{root}/bin:/usr/bin:/bin"}
    on = _trace(tmp_path, HOOK + RUN, path).commands[-1].env
    assert on["FROM_BASE"].value == "1" and on["CONDA_DEFAULT_ENV"].value == "base"
    off = _trace(tmp_path, HOOK + RUN, {**path, "CONDA_AUTO_ACTIVATE": "false"})
    assert "FROM_BASE" not in off.commands[-1].env and not off.commands[-1].opaque
    (root / ".condarc").write_text("envs_dirs:\n  - /nowhere/envs\n")
    trace = _trace(tmp_path, HOOK + "conda activate gpu\n" + RUN, path)
    assert "conda activate gpu" in trace.commands[-1].opaque
