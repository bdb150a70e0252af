"""Fixes are commands: every `fix` the checks produce on broken environments is copy-paste
shell, one command per line, each `bash -n` clean, without `<placeholders>`; explanations
are in `why`. The oracle is bash itself."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from support import FIXTURES, base_env

from preflight.fixes import is_command, split

NVML = sorted((FIXTURES / "nvml").glob("a800x4-*.json"))
LAUNCH = sorted(p for p in (FIXTURES / "launch").glob("*.sh") if "_fixed" not in p.name)


def test_split_keeps_commands_and_moves_explanations():
    assert split("kill 42  # check each pid first; preflight kills nothing") == (
        "kill 42", "check each pid first; preflight kills nothing")
    assert split("export A=1; export B='x; y'") == ("export A=1\nexport B='x; y'", "")
    # preflight names itself whether or not its own PATH has the console script
    assert split("preflight info   # the profile of this node") == (
        "preflight info", "the profile of this node")
    assert split("nvidia-smi -L; dmesg | grep -iE 'NVRM|Xid'  # fell off the bus")[0] == \
        "nvidia-smi -L\ndmesg | grep -iE 'NVRM|Xid'"
    for prose in ("free space on / (du -xsh /x/* | sort -h) or point the output at /y",
                  "export NNODES=<nodes> NODE_RANK=<this node>", "none needed",
                  "make num_generations divide the generation batch",
                  "keep one distributed launcher per job", "set the variable",
                  "kill only holders that are yours"):
        assert split(prose) == ("", prose)
        assert not is_command(prose)


def _bash_n(line: str) -> str:
    proc = subprocess.run(["bash", "-n"], input=line + "\n", capture_output=True, text=True,
                          timeout=10)
    return proc.stderr.strip() if proc.returncode else ""


def _lint(checks: list[dict]) -> list[str]:
    bad = []
    for check in checks:
        for line in check["fix"].splitlines():
            problem = _bash_n(line) or ("not a command" if not is_command(line) else "")
            if problem or "<" in line and ">" in line and "<<" not in line:
                bad.append(f"{check['id']}: {line!r}: {problem or 'placeholder'}")
    return bad


# NO-GO/WARN findings whose fix is honestly not a command (the `why` says what to change):
# the value is the user's (which variable value, which batch size), or the change is an
# edit of the launch line that no single command makes safely.
NO_COMMAND = {
    "empty-variable": "the variable's value is the user's to choose",
    "grpo-batch": "which of the batch sizes to change is the user's choice",
    "nested-launcher": "dropping one of two launchers is an edit of the launch line",
    "launch-gpus": "--nproc_per_node or CUDA_VISIBLE_DEVICES: the user's choice",
    "launch-ports": "a port set by the script or a launcher option is changed there",
}


def _without_command(checks: list[dict]) -> list[str]:
    """The NO-GO/WARN findings with an empty `fix` (not allowed in NO_COMMAND, or without
    even a `why`)."""
    return [f"{c['id']}: {c['summary'][:80]} (why: {c['why'][:80]!r})" for c in checks
            if c["severity"] in ("blocker", "warning") and not c["fix"]
            and (c["id"] not in NO_COMMAND or not c["why"])]


@pytest.fixture(scope="module")
def held_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _broken_env(tmp_path: Path, port: int) -> tuple[list[str], dict[str, str]]:
    env_file = tmp_path / ".env"
    env_file.write_text("PREFLIGHT_FIXES_KEY=1\nWANDB_KEY=abc\n")
    env = base_env(CONDA_DEFAULT_ENV="base", NCCL_SOCKET_IFNAME="bogus0",
                   NCCL_P2P_DISABLE="1", HF_ENDPOINT="not-a-url", MASTER_PORT=str(port),
                   CUDA_VISIBLE_DEVICES="0,1,7", HOME="/nonexistent")
    return ["--expect-env", "nope", "--env-file", str(env_file)], env


@pytest.mark.parametrize("replay", NVML, ids=[p.stem for p in NVML])
def test_static_fixes_on_broken_gpu_nodes_are_commands(run_preflight, tmp_path, held_port,
                                                       replay):
    args, env = _broken_env(tmp_path, held_port)
    run = run_preflight("--profile", "a800", "--nvml-replay", str(replay), *args, env=env)
    assert run.returncode == 1, run.output[-2000:]
    failing = [c for c in run.report["checks"] if c["severity"] in ("blocker", "unknown",
                                                                     "warning")]
    assert len(failing) >= 5
    # every NO-GO and WARN here has a command to paste (advice alone goes to `why`)
    assert _without_command(failing) == []
    assert _lint(run.report["checks"]) == []


@pytest.mark.parametrize("script", LAUNCH, ids=[p.stem for p in LAUNCH])
def test_launch_fixes_are_commands(run_preflight, script):
    run = run_preflight("--profile", "cpu", "--launch-script", str(script), "-k", "launch or "
                        "nested or empty or grpo or colocate")
    assert run.returncode in (0, 1), run.output[-2000:]
    assert _without_command(run.report["checks"]) == []
    assert _lint(run.report["checks"]) == []


def _as_bash_runs(text: str) -> str:
    """What bash would run of `text`: its parse of it as a function body, printed back by
    `declare -f` (one command a line, comments dropped), without running anything."""
    proc = subprocess.run(["bash", "--norc", "--noprofile"], input=f"f() {{\n{text}\n}}\n"
                          "declare -f f\n", capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0 and not proc.stderr, (text, proc.stderr)
    return proc.stdout


# Fixes whose every piece is a command: the lines `split` keeps are what bash runs, no more
# (a `; ` inside a comment made the rest a line of its own) and no less (a `;` inside
# `$(...)` or escaped, `\;` of find, cut a command in two).
BASH_CASES = [
    "kill 42  # check each pid first; rm -rf /tmp/x",
    "export A=1  # the first; export B=2",
    "kill $(pgrep -f 'x y'; echo 1)  # yours only",
    r"find /tmp/x -name '*.lock' -exec rm {} \; ; echo done",
    "echo 'a # b; c'; echo \"d \\\" ; e\"  # f; g",
    "echo a#b; echo c",
    "export A=1; export B='x; y'",
    "nvidia-smi -L; dmesg | grep -iE 'NVRM|Xid'  # fell off the bus; reset the node",
    "export MASTER_PORT=29501   # a free port\nunset NNODES  # one node; echo no",
]


@pytest.mark.parametrize("fix", BASH_CASES)
def test_every_line_split_keeps_is_what_bash_would_run(fix):
    commands, why = split(fix)
    assert commands
    assert _as_bash_runs(commands) == _as_bash_runs(fix), (commands, why)
    for line in commands.splitlines():  # and each line alone is one whole command line
        assert _bash_n(line) == "", line
