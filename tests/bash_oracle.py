"""Real bash as the oracle for preflight's script evaluation.

Every case is a launch script (plus the files it reads) run twice: under real bash, with
recording shims for the launchers first on PATH (each writes its argv, cwd and
environment, then exits 0; `srun` records nothing and runs its command), and through
`preflight.launch.shell`. `compare` sorts each case into exact / unknown / wrong:
wrong is a value preflight states that bash did not produce (an argument, an exported
variable, a cwd), a launcher preflight says runs that bash did not run, or a launcher
bash ran that preflight missed without saying where the script runs what it could not
read (Trace.unseen). Everything else preflight did not know must show as
unknown (⟨...⟩, a conditional command, an unknown variable).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from preflight.launch.shell import Command, Trace, evaluate_command, evaluate_script

SHIMS = ("torchrun", "python", "python3", "swift", "megatron", "deepspeed", "accelerate",
         "ray", "llamafactory-cli", "lmf")
# Programs a real launch script runs around the launch (slime's `pkill -9 python`, `sleep 3`,
# `nvidia-smi topo -m`): under the oracle they do nothing and print nothing, so that no
# script under test ever signals a process of this machine or waits.
QUIET = ("pkill", "killall", "pgrep", "sleep", "nvidia-smi", "scontrol", "sbatch", "ssh",
         "pip", "wget", "curl", "git", "docker", "huggingface-cli")
QUIET_SHIM = "#!/bin/sh\nexit 0\n"
# Variables bash or the shim itself sets: not part of what the script exported.
NOISE = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "ORACLE_LOG"})

RECORD = """#!/bin/sh
{ printf '%s\\0' CALL "${0##*/}" "$PWD" "$#"; printf '%s\\0' "$@"; env -0; \
printf 'END\\0'; } >> "$ORACLE_LOG"
"""
SRUN = """#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in -*) shift ;; *) break ;; esac; done
exec "$@"
"""


@dataclass(frozen=True)
class Case:
    name: str
    script: str
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # `bash run.sh ARGS...` (read as --launch-cmd)
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    program: str
    cwd: str
    argv: tuple[str, ...]
    env: dict[str, str]


@dataclass
class Verdict:
    case: Case
    kind: str  # "exact", "unknown" or "wrong"
    notes: list[str]


def make_shims(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in (*SHIMS, "srun", *QUIET):
        path = directory / name
        path.write_text(SRUN if name == "srun" else QUIET_SHIM if name in QUIET else RECORD)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return directory


def base_env(shims: Path, home: str) -> dict[str, str]:
    return {"PATH": f"{shims}:/usr/bin:/bin", "HOME": home, "LC_ALL": "C"}


def _parse_log(data: bytes) -> list[Call]:
    parts = data.decode("utf-8", "replace").split("\0")
    calls, i = [], 0
    while i < len(parts) and parts[i] == "CALL":
        program, cwd, argc = parts[i + 1], parts[i + 2], int(parts[i + 3])
        argv = tuple(parts[i + 4:i + 4 + argc])
        i += 4 + argc
        env = {}
        while parts[i] != "END":
            key, _, value = parts[i].partition("=")
            env[key] = value
            i += 1
        calls.append(Call(program, cwd, argv, env))
        i += 1
    return calls


def run_bash(case: Case, workdir: Path, shims: Path) -> list[Call]:
    for rel, text in case.files.items():
        path = workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (workdir / "run.sh").write_text(case.script)
    log = workdir / ".oracle.log"
    env = {**base_env(shims, str(workdir)), **case.env, "ORACLE_LOG": str(log)}
    subprocess.run(["bash", "run.sh", *case.args], cwd=workdir, env=env,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=20, check=False)
    calls = _parse_log(log.read_bytes()) if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def run_preflight(case: Case, workdir: Path, shims: Path) -> Trace:
    env = {**base_env(shims, str(workdir)), **case.env, "ORACLE_LOG": str(workdir / ".log")}
    if case.args:
        import shlex
        return evaluate_command(shlex.join(["bash", "run.sh", *case.args]), env,
                                cwd=str(workdir))
    # `bash run.sh` in workdir, as bash runs it: `$0` is run.sh
    return evaluate_script("run.sh", env, cwd=str(workdir))


def _argv_fits(words, actual: tuple[str, ...]) -> bool:
    """Do preflight's words (unknown ones standing for any number of words, after
    their known prefix) fit the argv bash produced?"""
    memo: dict[tuple[int, int], bool] = {}

    def fit(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[i, j]
        if i == len(words):
            ok = j == len(actual)
        elif words[i].known:
            ok = j < len(actual) and actual[j] == words[i].text and fit(i + 1, j + 1)
        else:
            prefix = words[i].prefix
            ok = (not prefix and fit(i + 1, j)) or any(
                actual[j].startswith(prefix) and fit(i + 1, k)
                for k in range(j + 1, len(actual) + 1)) if j < len(actual) else \
                (not prefix and fit(i + 1, j))
        memo[i, j] = ok
        return ok

    return fit(0, 0)


def _env_problems(cmd: Command, call: Call, base: dict[str, str]) -> tuple[list[str], bool]:
    """(wrong values, whether anything was unknown)."""
    wrong, unknown = [], False
    names = (set(call.env) | set(cmd.env)) - NOISE
    for name in sorted(names):
        if name.startswith("BASH_FUNC_"):
            continue
        var = cmd.env.get(name)
        actual = call.env.get(name)
        if var is None:
            if actual is None:
                continue
            if cmd.opaque:
                unknown = True
                continue
            wrong.append(f"env {name}={actual!r} missed")
        elif var.value is None:
            unknown = True
        elif actual is None:
            wrong.append(f"env {name}={var.value!r} stated, bash has it unset")
        elif actual != var.value:
            wrong.append(f"env {name}={var.value!r} stated, bash {actual!r}")
    return wrong, unknown


def compare(case: Case, trace: Trace, calls: list[Call], base: dict[str, str]) -> Verdict:
    notes: list[str] = []
    unknown = False
    launches = [c for c in trace.commands if c.program in SHIMS]
    used: set[int] = set()
    for call in calls:
        best_wrong: list[str] | None = None
        matched = False
        # each command once first; a command bash ran more than once (a loop) after
        order = sorted(range(len(launches)), key=lambda k: (k in used, k))
        for k in order:
            cmd = launches[k]
            if cmd.program != call.program:
                continue
            problems = []
            if not _argv_fits(cmd.argv[1:], call.argv):
                problems.append(f"argv {[w.text for w in cmd.argv[1:]]} vs bash {list(call.argv)}")
            env_wrong, env_unknown = _env_problems(cmd, call, base)
            problems += env_wrong
            if cmd.cwd is not None and os.path.realpath(cmd.cwd) != os.path.realpath(call.cwd):
                problems.append(f"cwd {cmd.cwd} vs bash {call.cwd}")
            if not problems:
                matched = True
                used.add(k)
                unknown |= env_unknown or cmd.conditional or cmd.cwd is None or \
                    not all(w.known for w in cmd.argv)
                break
            if best_wrong is None or len(problems) < len(best_wrong):
                best_wrong = problems
        if not matched and trace.unseen:
            # preflight said where the script runs what it could not read (a source it
            # cannot read, a path not known): a launcher from there is an honest unknown
            unknown = True
        elif not matched:
            notes.append(f"{call.program}: " + ("; ".join(best_wrong) if best_wrong else
                                                "bash ran it, preflight missed it"))
    for k, cmd in enumerate(launches):
        if k in used:
            continue
        if cmd.conditional:
            unknown = True
            continue
        notes.append(f"{cmd.program} at line {cmd.line}: preflight says it runs, bash did not "
                     f"run it: {[w.text for w in cmd.argv]}")
    if trace.unknowns:
        unknown = True
    kind = "wrong" if notes else "unknown" if unknown else "exact"
    return Verdict(case, kind, notes)


def check_all(cases: list[Case], workers: int = 4) -> list[Verdict]:
    """Bash runs in threads (it is processes); preflight runs here, one case at a time,
    on a fresh copy of each case's files (what the directory holds before the job)."""
    with tempfile.TemporaryDirectory(prefix="bash-oracle-") as tmp:
        root = Path(tmp)
        shims = make_shims(root / "shims")

        def bash(indexed: tuple[int, Case]) -> list[Call]:
            index, case = indexed
            workdir = root / f"c{index}"
            workdir.mkdir()
            return run_bash(case, workdir, shims)

        with ThreadPoolExecutor(workers) as pool:
            all_calls = list(pool.map(bash, enumerate(cases)))
        verdicts = []
        for index, (case, calls) in enumerate(zip(cases, all_calls, strict=True)):
            workdir = root / f"p{index}"
            for rel_path, text in {**case.files, "run.sh": case.script}.items():
                (workdir / rel_path).parent.mkdir(parents=True, exist_ok=True)
                (workdir / rel_path).write_text(text)
            # the same absolute directory as bash saw: cwd and paths must compare equal
            bash_dir = root / f"c{index}"
            shutil.rmtree(bash_dir)
            workdir.rename(bash_dir)
            try:
                trace = run_preflight(case, bash_dir, shims)
            except Exception as exc:  # a crash is a failure of its own
                verdicts.append(Verdict(case, "wrong", [f"preflight crashed: "
                                                        f"{type(exc).__name__}: {exc}"]))
                continue
            verdicts.append(compare(case, trace, calls, base_env(shims, str(bash_dir))))
    return verdicts
