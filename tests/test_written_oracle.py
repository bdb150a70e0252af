"""Config files a program run before the launcher may write, held to real bash.

A launcher reads its config when it starts: accelerate its --config_file (or the default
config under $HF_HOME), deepspeed its --hostfile, swift its `sft CONFIG.yaml`. When the
script runs a program first that may write that file (`python gen_cfg.py --out
acc.yaml`), the file on disk before the script runs is not what the launcher reads.

Each generated script runs under real bash, with shims first on PATH: `python` a writer
(`gen_cfg.py --out F` copies a config with other numbers to F; `-c`/`-` run python3),
and fake `accelerate` / `deepspeed` / `swift` that record the file they read at the
moment they start. That record is the truth. preflight's reading of the same script
(before bash ran: spec.load, the launchers through launchers.job_file) must state the
same process count or none (unknown): 0 wrong. How often it is unknown although nothing
changed the file is counted and bounded (crying wolf is a failure too).
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from preflight.launch import spec

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

OLD, NEW = 2, 7  # the process count of the file on disk, and of the one a writer writes


def content(name: str, n: int) -> str:
    if name == "env.sh":
        return f"export NP={n}\n"
    if name == "launch.sh":
        return f"torchrun --nproc_per_node {n} train.py\n"
    if name == "hostfile":
        return f"localhost slots={n}\n"
    if name == "sft.yaml":
        return f"ENV:\n  NPROC_PER_NODE: {n}\nmodel: m\n"
    return f"distributed_type: MULTI_GPU\nnum_processes: {n}\n"


COUNT = re.compile(r"(?:slots=|NPROC_PER_NODE: |num_processes: )(\d+)")

# the writer: `python gen_cfg.py [--out F | --out=F | -oF | F | --out_dir D | --stdin]
# [--dry]` copies new/<name> there (--stdin: to the path on its input's first line;
# --dry: writes nothing; --print: prints it); `python -c` / `python -` are python3
PYTHON = r"""#!/bin/sh
case "$1" in -c|-) exec python3 "$@";; esac
shift
out=""; dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift;;
    --out=*) out="${1#--out=}";;
    -o?*) out="${1#-o}";;
    --out_dir) out="$2/$GEN_NAME"; shift;;
    --stdin) read -r out;;
    --print) cat "$NEWDIR/$GEN_NAME"; exit 0;;
    --dry) dry=1;;
    -*) ;;
    *) [ -z "$out" ] && out="$1";;
  esac
  shift
done
[ "$dry" = 1 ] || [ -z "$out" ] || cp "$NEWDIR/$(basename "$out")" "$out"
exit 0
"""
# downloads (nothing is fetched: the file is new/<name>): wget -O F / -OF, else the
# URL's name under -P DIR; curl -o F / -oF, -O (the URL's name); huggingface-cli
# download REPO FILE --local-dir DIR
WGET = r"""#!/bin/sh
out=""; dir=.; url=""; prev=""
for a in "$@"; do
  case "$prev" in -O) out="$a";; -P) dir="$a";; esac
  case "$a" in -O?*) out="${a#-O}";; -P?*) dir="${a#-P}";; *://*) url="$a";; esac
  prev="$a"
done
[ -n "$out" ] || out="$dir/${url##*/}"
cp "$NEWDIR/$(basename "$out")" "$out"
"""
CURL = r"""#!/bin/sh
out=""; url=""; prev=""; remote=0
for a in "$@"; do
  [ "$prev" = -o ] && out="$a"
  case "$a" in -o?*) out="${a#-o}";; -*O*) remote=1;; *://*) url="$a";; esac
  prev="$a"
done
[ "$remote" = 1 ] && out="${url##*/}"
[ -z "$out" ] || cp "$NEWDIR/$(basename "$out")" "$out"
"""
HF = r"""#!/bin/sh
dir=""; prev=""
for a in "$@"; do [ "$prev" = --local-dir ] && dir="$a"; prev="$a"; done
cp "$NEWDIR/$GEN_NAME" "$dir/"
"""
RECORD = r"""
{ printf 'LAUNCH\n'; if [ -f "$cfg" ]; then cat "$cfg"; else printf 'MISSING\n'; fi; \
printf '\036'; } >> "$ORACLE_LOG"
exit 0
"""
ACCELERATE = r"""#!/bin/sh
if [ "$1" = config ]; then  # `accelerate config default`: writes the default config
  mkdir -p "$HF_HOME/accelerate"; cp "$NEWDIR/default_config.yaml" "$HF_HOME/accelerate/"
  exit 0
fi
cfg="$HF_HOME/accelerate/default_config.yaml"; prev=""
for a in "$@"; do
  [ "$prev" = --config_file ] && cfg="$a"
  case "$a" in --config_file=*) cfg="${a#*=}";; esac
  prev="$a"
done
""" + RECORD
DEEPSPEED = r"""#!/bin/sh
cfg=/job/hostfile; prev=""
for a in "$@"; do [ "$prev" = --hostfile ] && cfg="$a"; prev="$a"; done
""" + RECORD
SWIFT = "#!/bin/sh\ncfg=\"$2\"\n" + RECORD
# torchrun records the count it was given (from a sourced env.sh, or a child launch.sh)
TORCHRUN = r"""#!/bin/sh
printf 'LAUNCH\nnum_processes: %s\n\036' "$2" >> "$ORACLE_LOG"
"""


@dataclass(frozen=True)
class Launcher:
    name: str
    target: str  # the file it reads, relative to the working directory
    line: str  # the launch line ({T}: the target)
    program: str  # the command preflight finds it in


LAUNCHERS = [
    Launcher("accelerate", "acc.yaml", "accelerate launch --config_file {T} train.py",
             "accelerate"),
    Launcher("accelerate-dir", "cfg/acc.yaml", "accelerate launch --config_file {T} train.py",
             "accelerate"),
    Launcher("accelerate-default", "hf/accelerate/default_config.yaml",
             "accelerate launch train.py", "accelerate"),
    Launcher("deepspeed", "hostfile", "deepspeed --hostfile {T} train.py", "deepspeed"),
    Launcher("swift", "sft.yaml", "swift sft {T}", "swift"),
    # the files the shell evaluator reads itself: a sourced one, a child script
    Launcher("sourced-env", "env.sh", "source {T}\ntorchrun --nproc_per_node $NP train.py",
             "torchrun"),
    Launcher("child-script", "launch.sh", "bash {T}", "torchrun"),
]

# What runs before (or around) the launch. {T} the target as the launch line names it,
# {D} its directory, {B} its name, {NEW} what a writer writes. "writes": it writes the
# target (when it runs); "no": it does not; "may": preflight cannot tell (a program given
# the file that happens to write nothing; `accelerate config` writes only the default).
ACTIONS: list[tuple[str, str, str]] = [
    ("python-out", "python gen_cfg.py --out {T} --gpus 4", "writes"),
    ("python-out-eq", "python gen_cfg.py --out={T}", "writes"),
    ("python-positional", "python gen_cfg.py {T}", "writes"),
    ("python-dry", "python gen_cfg.py --out {T} --dry", "may"),
    ("python-out-dir", "python gen_cfg.py --out_dir {D}", "writes"),
    ("python-c", "python -c \"import shutil; shutil.copy('new/{B}', '{T}')\"", "writes"),
    ("python-stdin", "python - <<'PY'\nimport shutil; shutil.copy('new/{B}', '{T}')\nPY", "writes"),
    ("function", "gen() {{ python gen_cfg.py --out \"$1\"; }}\ngen {T}", "writes"),
    ("bash-c", "bash -c \"python gen_cfg.py --out {T}\"", "writes"),
    ("sourced", "source prep.sh", "writes"),
    ("variable", "OUT={T}\npython gen_cfg.py --out \"$OUT\"", "writes"),
    ("pwd-subst", "python gen_cfg.py --out \"$(pwd)/{T}\"", "writes"),
    ("env-wrapper", "env GEN=1 python gen_cfg.py --out {T}", "writes"),
    # bash expands an alias defined in the same `if` block only after it (parse time)
    ("alias", "shopt -s expand_aliases\nalias gen='python gen_cfg.py'\ngen --out {T}", "may"),
    ("background", "python gen_cfg.py --out {T} &\nwait", "writes"),
    ("cp", "cp new/{B} {T}", "writes"),
    ("cp-t", "cp -t {D} new/{B}", "writes"),
    # paths a program reads on its input
    ("xargs-echo", "echo {T} | xargs python gen_cfg.py --out", "writes"),
    ("xargs-I", "echo {B} | xargs -I@ python gen_cfg.py --out {D}/@", "writes"),
    ("xargs-find", "find {D} -maxdepth 1 -name {B} | xargs -n1 python gen_cfg.py --out",
     "writes"),
    ("xargs-other", "echo other.yaml | xargs python gen_cfg.py --out", "no"),
    ("xargs-find-other", "find . -name '*.pyc' | xargs rm -f", "no"),
    ("find-read", "find . -name '*.yaml' > /dev/null", "no"),
    ("find-delete", "find {D} -maxdepth 1 -name {B} -delete", "writes"),
    ("while-read", "while read -r p; do python gen_cfg.py --out \"$p\"; done < paths.txt",
     "writes"),
    ("function-stdin", "gen() {{ python gen_cfg.py --stdin; }}\ngen < paths.txt", "writes"),
    ("stdin-file", "python gen_cfg.py --stdin < paths.txt", "writes"),
    ("stdin-file-other", "python gen_cfg.py --stdin < other-paths.txt", "no"),
    ("here-string", "python gen_cfg.py --stdin <<< {T}", "writes"),
    ("stdin-printf", "printf '%s\\n' {T} | python gen_cfg.py --stdin", "writes"),
    ("render-redirect", "cat new/{B} | python gen_cfg.py --print > {T}", "writes"),
    # a value attached to its short option; downloads
    ("short-attached", "python gen_cfg.py -o{T}", "writes"),
    ("wget-O", "wget -q -O{T} http://127.0.0.1:9/x", "writes"),
    ("wget-P", "wget -q -P {D} http://127.0.0.1:9/{B}", "writes"),
    ("curl-o", "curl -s -o{T} http://127.0.0.1:9/x", "writes"),
    ("curl-O", "(cd {D} && curl -sSO http://127.0.0.1:9/{B})", "writes"),
    ("hf-download", "huggingface-cli download org/cfgs {B} --local-dir {D}", "writes"),
    # programs that write files they are not given: archives, git
    ("tar-x", "tar xzf cfg.tgz", "writes"),
    ("tar-x-C-other", "mkdir -p ex\ntar -xzf cfg.tgz -C ex", "no"),
    ("tar-create", "tar czf backup.tgz {T}", "no"),
    ("unzip", "unzip -oq cfg.zip", "writes"),
    ("unzip-d-other", "unzip -oq cfg.zip -d ex", "no"),
    ("git-checkout", "git checkout -q -- {T}", "writes"),
    ("git-status", "git status --short > /dev/null", "no"),
    # (no repository to clone here: what it is given decides, and it writes nothing)
    ("git-clone-other", "git clone -q ./absent elsewhere 2> /dev/null", "no"),
    ("heredoc", "cat > {T} <<EOF\n{NEW}EOF", "writes"),
    ("accelerate-config", "accelerate config default", "may"),
    ("other-file", "python gen_cfg.py --out other.yaml", "no"),
    ("python-train", "python train.py --lr 1e-4 -O2", "no"),
    ("other-dir", "mkdir -p elsewhere\npython gen_cfg.py --out_dir elsewhere", "no"),
    ("python-c-other", "python -c \"print(1)\"", "no"),
    ("launch-before", "{LAUNCH}", "no"),
    *[(f"read-{line.split()[0]}", line, "no") for line in (
        "cat {T} > /dev/null", "grep -c num {T} > /dev/null", "head -1 {T} > /dev/null",
        "tail -1 {T} > /dev/null", "wc -l {T} > /dev/null", "md5sum {T} > /dev/null",
        "sha256sum {T} > /dev/null", "ls -l {T} > /dev/null", "test -f {T}",
        "[ -s {T} ]", "diff {T} {T} > /dev/null", "cmp {T} {T}", "stat {T} > /dev/null",
        "du {T} > /dev/null", "file {T} > /dev/null", "readlink -f {T} > /dev/null",
        "echo {T} > /dev/null", "printf '%s\\n' {T} > /dev/null",
        "cp {T} backup.yaml")],
]
# Where the action stands: before the launch, after it, in a branch bash does not take
# (and preflight decides so), one it takes, one preflight cannot decide.
PLACES = {
    "before": "{A}\n{LAUNCH}\n",
    "after": "{LAUNCH}\n{A}\n",
    "branch-not-taken": "MODE=skip\nif [ \"$MODE\" = gen ]; then\n{A}\nfi\n{LAUNCH}\n",
    "branch-taken": "MODE=gen\nif [ \"$MODE\" = gen ]; then\n{A}\nfi\n{LAUNCH}\n",
    "branch-undecided": "if [ \"$(date +%s)\" -gt 1 ]; then\n{A}\nfi\n{LAUNCH}\n",
    # the launcher started in the background, then the action: which comes first is a
    # race (the launcher reads its config when it gets to it)
    "race": "{LAUNCH} &\n{A}\nwait\n",
}
RACE_FREE = {"sourced-env"}  # sourced in the foreground, before the `&`


@dataclass(frozen=True)
class Case:
    launcher: Launcher
    action: str
    place: str
    script: str
    prep: str  # prep.sh (sourced)


def cases() -> list[Case]:
    out = []
    places = list(PLACES)
    for li, launcher in enumerate(LAUNCHERS):
        t = launcher.target
        launch = launcher.line.format(T=t)
        fill = {"T": t, "D": str(Path(t).parent), "B": Path(t).name,
                "NEW": content(Path(t).name, NEW), "LAUNCH": launch}
        for ai, (name, action, _) in enumerate(ACTIONS):
            text = action.format(**fill)
            # every action before the launch, and (but the readers: what they do not do
            # anywhere, they do not do there) in one other place, in turn
            other = () if name.startswith("read-") else (places[1 + (li + ai) % 5],)
            for place in ("before", *other):
                script = "#!/bin/bash\n" + PLACES[place].format(A=text, LAUNCH=launch)
                prep = "python gen_cfg.py --out {T}\n".format(**fill)
                out.append(Case(launcher, name, place, script, prep))
    return out


def make_shims(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name, text in (("python", PYTHON), ("accelerate", ACCELERATE),
                       ("deepspeed", DEEPSPEED), ("swift", SWIFT), ("torchrun", TORCHRUN),
                       ("wget", WGET), ("curl", CURL), ("huggingface-cli", HF)):
        path = directory / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return directory


def setup(case: Case, workdir: Path) -> dict[str, str]:
    """The working directory as the job finds it: the target with OLD, new/ with NEW."""
    t = workdir / case.launcher.target
    t.parent.mkdir(parents=True, exist_ok=True)
    t.write_text(content(t.name, OLD))
    shared = workdir.parent / "new-files"  # what a writer writes: one copy for all
    if not shared.exists():
        shared.mkdir()
        for name in ("acc.yaml", "default_config.yaml", "hostfile", "sft.yaml",
                     "other.yaml", "env.sh", "launch.sh"):
            (shared / name).write_text(content(name, NEW))
    (workdir / "new").symlink_to(shared)
    (workdir / "train.py").write_text("")
    (workdir / "run.sh").write_text(case.script)
    if case.action == "sourced":
        (workdir / "prep.sh").write_text(case.prep)
    if "paths.txt" in case.script:
        (workdir / "paths.txt").write_text(case.launcher.target + "\n")
        (workdir / "other-paths.txt").write_text("other.yaml\n")
    rel = case.launcher.target
    if case.action.startswith("tar"):
        with tarfile.open(workdir / "cfg.tgz", "w:gz") as tar:
            tar.add(workdir / "new" / t.name, arcname=rel)
    if case.action.startswith("unzip"):
        with zipfile.ZipFile(workdir / "cfg.zip", "w") as z:
            z.write(workdir / "new" / t.name, arcname=rel)
    if case.action == "git-checkout":
        # a repository made once per target, copied (git is slow to set up)
        template = workdir.parent / f"git-{rel.replace('/', '_')}"
        if not template.exists():
            template.mkdir()
            (template / rel).parent.mkdir(parents=True, exist_ok=True)
            _git_repo(template, rel, t.name)
        shutil.copytree(template / ".git", workdir / ".git")
    return {"HOME": str(workdir), "HF_HOME": str(workdir / "hf"), "LC_ALL": "C",
            "NEWDIR": str(workdir / "new"), "GEN_NAME": t.name}


def _git_repo(workdir: Path, rel: str, name: str) -> None:
    """A repository at workdir whose work tree holds OLD at rel: git checkout brings back
    the NEW it commits."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "GIT_CONFIG_NOSYSTEM": "1"}
    (workdir / rel).write_text(content(name, NEW))
    script = f"git init -q --template= . && git add {rel} && git commit -qm c"
    subprocess.run(["sh", "-c", script], cwd=workdir, env=env, check=True, timeout=20,
                   stdout=subprocess.DEVNULL)


def truth(workdir: Path, env: dict[str, str], shims: Path) -> int | None:
    """The process count in the file the last launch read, as bash ran the script."""
    log = workdir.parent / f".{workdir.name}.log"
    subprocess.run(["bash", "run.sh"], cwd=workdir, timeout=20, check=False,
                   env={**env, "PATH": f"{shims}:/usr/bin:/bin", "ORACLE_LOG": str(log)},
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    text = log.read_text() if log.exists() else ""  # no launcher ran (its script removed)
    records = [r for r in text.split("\036") if r.startswith("LAUNCH")]
    found = COUNT.search(records[-1]) if records else None
    return int(found.group(1)) if found else None


def preflight_count(case: Case, workdir: Path, env: dict[str, str], shims: Path
                    ) -> tuple[int | None, str]:
    """(process count preflight states for the last launch, None: unknown; why)."""
    launch = spec.load(str(workdir / "run.sh"), None,
                       {**env, "PATH": f"{shims}:/usr/bin:/bin"}, str(workdir))
    jobs = [j for j in launch.jobs if j.command.program == case.launcher.program
            and j.distributed]
    if not jobs:
        return None, "no launch layer"
    layer = jobs[-1].distributed[0]
    return layer.nproc, layer.unread or layer.nproc_text


def run_all(tmp: Path) -> list[tuple[Case, int | None, int | None, str]]:
    shims = make_shims(tmp / "shims")
    all_cases = cases()
    dirs, envs = [], []
    for i, case in enumerate(all_cases):
        workdir = tmp / f"c{i}"
        workdir.mkdir()
        envs.append(setup(case, workdir))
        dirs.append(workdir)
    # preflight reads every script before bash runs any (it sees the disk as the job
    # would before it starts); then bash runs them, a few at a time
    stated = [preflight_count(c, d, e, shims) for c, d, e in zip(all_cases, dirs, envs,
                                                                  strict=True)]
    with ThreadPoolExecutor(4) as pool:
        actual = list(pool.map(lambda k: truth(dirs[k], envs[k], shims),
                               range(len(all_cases))))
    return [(c, s[0], a, s[1]) for c, s, a in zip(all_cases, stated, actual, strict=True)]


def test_preflight_states_what_the_launcher_reads_or_says_unknown(capsys):
    with tempfile.TemporaryDirectory(prefix="written-oracle-") as tmp:
        results = run_all(Path(tmp))
    wrong = [f"{c.launcher.name}/{c.action}/{c.place}: preflight {s}, the launcher read "
             f"{a}\n{c.script}" for c, s, a, _ in results if s is not None and s != a]
    changed = [r for r in results if r[2] != OLD]
    writes = {name: w for name, _, w in ACTIONS}
    # a write racing a launcher in the background is unknown whichever won this run
    raced = [r for r in results if r[0].place == "race" and writes[r[0].action] == "writes"
             and r[0].launcher.name not in RACE_FREE]
    unchanged = [r for r in results if r[2] == OLD and r not in raced]
    cried = [r for r in unchanged if r[1] is None]
    # the unknown rate where nothing wrote the file: crying wolf, counted and bounded
    nothing = [r for r in unchanged if writes[r[0].action] == "no" or r[0].place in (
        "after", "branch-not-taken")]
    wolf = [r for r in nothing if r[1] is None]
    with capsys.disabled():
        print(f"\nwritten oracle: {len(results)} scripts, {len(changed)} with the file "
              f"changed before the launch, {len(wrong)} wrong, {len(cried)} of "
              f"{len(unchanged)} unchanged unknown ({len(wolf)} of {len(nothing)} where "
              f"nothing wrote it), {sum(r[1] is None for r in raced)} of {len(raced)} "
              "racing a background launcher unknown")
    assert not wolf, sorted({(c.launcher.name, c.action, c.place) for c, *_ in wolf})
    assert raced and all(r[1] is None for r in raced), sorted(
        {(c.launcher.name, c.action, s) for c, s, *_ in raced if s is not None})
    assert not wrong, "\n".join(wrong[:5])
    # the harness can tell: the file is changed before the launch in many scripts, and
    # preflight states the new content where the script wrote it itself (heredoc)
    assert len(changed) >= 40
    assert any(s == NEW for c, s, a, _ in results if c.action == "heredoc")
    # not crying wolf: programs that only read the file, write other files, or run after
    # the launch (or on a branch bash does not take) leave it known
    by = {(c.launcher.name, c.action, c.place): (s, why) for c, s, _, why in results}
    for launcher in LAUNCHERS:
        for name, _, writes in ACTIONS:
            got = by[launcher.name, name, "before"]
            if writes == "no":
                assert got[0] == OLD, (launcher.name, name, got)
        for name, _, _writes in ACTIONS:
            for place in ("after", "branch-not-taken"):
                got = by.get((launcher.name, name, place))
                if got is not None:
                    assert got[0] == OLD, (launcher.name, name, place, got)
    # the unknowns among the unchanged are the writers that did not write (--dry, a
    # program given the file that writes nothing) and nothing else
    may = {name for name, _, writes in ACTIONS if writes == "may"}
    assert {c.action for c, *_ in cried} <= may, sorted(
        {(c.launcher.name, c.action, c.place) for c, *_ in cried if c.action not in may})


# Programs not on this box (7z) or not run here (a clone from a network, a pull), and a
# file they may write (None: they write nothing a launcher reads), per their manuals
# (7-Zip -o, git-clone(1) <directory>, unzip -d / -l, tar -C / t, wget, curl -O).
WRITES = [  # (line, a file it may write, a file it does not)
    ("7z x cfg.7z", "sub/acc.yaml", None), ("7z x cfg.7z -ocfg", "cfg/acc.yaml", "acc.yaml"),
    ("7z l cfg.7z", None, "acc.yaml"), ("7z a out.7z cfg", "out.7z", "cfg/acc.yaml"),
    ("unzip -l x.zip", None, "acc.yaml"), ("unzip x.zip -d cfg", "cfg/acc.yaml", "acc.yaml"),
    ("git clone https://h/org/cfg.git", "cfg/acc.yaml", "acc.yaml"),
    ("git clone -b main https://h/org/r cfg", "cfg/acc.yaml", "r/acc.yaml"),
    ("git -C sub pull", "acc.yaml", None), ("git log -1", None, "acc.yaml"),
    ("git --work-tree=cfg checkout .", "cfg/acc.yaml", "acc.yaml"),
    ("tar tzf x.tgz", None, "acc.yaml"), ("tar -C cfg -xzf x.tgz", "cfg/acc.yaml", "acc.yaml"),
    ("tar czf out.tgz cfg", "out.tgz", "cfg/acc.yaml"),
    ("wget -q https://h/a/acc.yaml?x=1", "acc.yaml", "cfg/acc.yaml"),
    ("curl -sSLO https://h/acc.yaml", "acc.yaml", "cfg/acc.yaml"),
    ("huggingface-cli download org/m --local-dir cfg", "cfg/acc.yaml", "acc.yaml"),
    ("rsync -a src/ cfg/", "cfg/acc.yaml", "src/acc.yaml"),
    ("rsync -t src/ cfg/", "cfg/acc.yaml", "src/acc.yaml"), ("scp h:acc.yaml .", "acc.yaml",
                                                              None),
    ("cp -t cfg a.yaml", "cfg/acc.yaml", "a.yaml"), ("find . -name '*.pyc'", None, "acc.yaml"),
    ("find cfg -name '*.yaml' -delete", "cfg/acc.yaml", "acc.yaml"),
]


@pytest.mark.parametrize(("line", "written", "kept"), WRITES)
def test_programs_that_write_what_they_are_not_given(tmp_path, line, written, kept):
    import shlex

    from preflight.launch.shell import writers
    from preflight.launch.shell.model import Word

    (tmp_path / ".git").mkdir()  # the repository `git -C sub pull` works in: its top
    (tmp_path / "sub").mkdir()
    argv = [Word(t, t) for t in shlex.split(line)]
    found = [writers.Writer(c, str(tmp_path), argv[0].text, "run.sh:1")
             for c in writers.claims(argv, None, str(tmp_path))]
    if written is not None:
        assert any(w.covers(str(tmp_path / written)) for w in found), (line, found)
    if kept is not None:
        assert not any(w.covers(str(tmp_path / kept)) for w in found), (line, found)


def test_the_harness_catches_a_stale_read(tmp_path, monkeypatch):
    """Read the file from disk as before this rule (no writers): the oracle says wrong."""
    from preflight.launch.shell import Files

    monkeypatch.setattr(Files, "__getitem__", lambda self, path: self.written[path])
    case = next(c for c in cases() if c.launcher.name == "accelerate"
                and c.action == "python-out" and c.place == "before")
    workdir = tmp_path / "c"
    workdir.mkdir()
    env = setup(case, workdir)
    shims = make_shims(tmp_path / "shims")
    stated, _ = preflight_count(case, workdir, env, shims)
    assert (stated, truth(workdir, env, shims)) == (OLD, NEW)


# -- end to end: the CLI, before and after ------------------------------------------------

REPLAY = Path(__file__).parent.parent / "fixtures" / "nvml" / "a800x4-healthy.json"


def _cli(tmp_path: Path, script: str) -> dict[str, dict[str, object]]:
    (tmp_path / "run.sh").write_text(script)
    (tmp_path / "acc.yaml").write_text(content("acc.yaml", OLD))  # stale: 2 of 4 GPUs
    (tmp_path / "train.py").write_text("")
    (tmp_path / "gen_cfg.py").write_text("")
    report = tmp_path / "report"
    checks = [a for c in ("launch-gpus", "launch-ports", "launcher-args", "launch-inputs")
              for a in ("--check", c)]
    proc = subprocess.run(
        [sys.executable, "-m", "preflight", "--report-dir", str(report), "--launch-script",
         "run.sh", "--nvml-replay", str(REPLAY), "--profile", "a800", *checks],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LC_ALL": "C"})
    assert (report / "preflight-report.json").exists(), proc.stdout + proc.stderr
    data = json.loads((report / "preflight-report.json").read_text())
    return {c["id"]: c for c in data["checks"]}


def test_cli_a_config_a_program_writes_first_is_unknown_not_read_stale(tmp_path):
    launch = "accelerate launch --config_file acc.yaml train.py\n"
    (tmp_path / "before").mkdir()
    before = _cli(tmp_path / "before", "#!/bin/bash\n" + launch)
    # without the writer: the file on disk is what accelerate reads (2 of 4 GPUs)
    assert before["launch-gpus"]["evidence"]["layers"][0]["nproc_per_node"] == OLD
    (tmp_path / "after").mkdir()
    after = _cli(tmp_path / "after", "#!/bin/bash\npython gen_cfg.py --out acc.yaml "
                                     "--gpus 4\n" + launch)
    for check in ("launch-gpus", "launch-ports", "launcher-args", "launch-inputs"):
        assert after[check]["severity"] == "unknown", (check, after[check]["summary"])
        assert "python at run.sh:2" in str(after[check]["summary"]), after[check]["summary"]
    layer = after["launch-gpus"]["evidence"]["layers"][0]
    assert layer["nproc_from"] == "" and "num_processes" not in json.dumps(layer)


def test_a_launchers_child_script_is_read_as_the_script_leaves_it(tmp_path):
    """`torchrun --no-python bash inner.sh`: spec reads inner.sh itself (the shell
    evaluator does not run it); what the script wrote there wins over the disk, and one a
    program may write is a layer not read, which nested-launcher names."""
    from preflight.judges.launch import _unknown_programs

    (tmp_path / "inner.sh").write_text("torchrun --nproc_per_node 2 train.py\n")
    launch = "torchrun --nproc_per_node 1 --no-python bash inner.sh\n"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def load(script: str) -> spec.LaunchSpec:
        (tmp_path / "run.sh").write_text(script)
        return spec.load(str(tmp_path / "run.sh"), None, env, str(tmp_path))

    disk = load(launch)
    assert [x.nproc for x in disk.jobs[0].layers] == [1, 2]
    written = load("cat > inner.sh <<EOF\ntorchrun --nproc_per_node 5 train.py\nEOF\n" + launch)
    assert [x.nproc for x in written.jobs[-1].layers] == [1, 5]
    maybe = load("python gen.py --out inner.sh\n" + launch)
    inner = maybe.jobs[-1].layers[-1]
    assert inner.kind == "other" and "python at run.sh:1" in inner.unread
    assert _unknown_programs(maybe) == [f"cannot tell what torchrun at run.sh:2 starts: "
                                        f"{inner.unread}"]


def test_a_write_racing_a_background_launcher_is_named_and_wait_ends_the_race(tmp_path):
    (tmp_path / "acc.yaml").write_text(content("acc.yaml", OLD))
    (tmp_path / "train.py").write_text("")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    launch = "accelerate launch --config_file acc.yaml train.py &\n"

    def layer(script: str) -> spec.Layer:
        (tmp_path / "run.sh").write_text(script)
        got = spec.load(str(tmp_path / "run.sh"), None, env, str(tmp_path))
        return next(j for j in got.jobs if j.command.program == "accelerate").distributed[0]

    raced = layer(launch + "python gen_cfg.py --out acc.yaml\nwait\n")
    assert raced.nproc is None and "python at run.sh:2" in raced.unread
    assert "started at run.sh:1 in the background (`&`)" in raced.unread
    assert layer(launch + "wait\npython gen_cfg.py --out acc.yaml\n").nproc == OLD
    # `wait $!` waits for one job: the launcher may still be reading
    assert layer(launch + "python gen.py &\nwait $!\ncat > acc.yaml <<EOF\nx: 1\nEOF\n"
                 ).nproc is None
