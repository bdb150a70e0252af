"""Which files a program the script starts may write: the one rule behind what the launch
analysis reads later (launchers.job_file, through Command.files; `source FILE`; a child
script) and behind launch-inputs' "it may be written by ..." (spec._Made).

A launcher reads its config when it starts (accelerate's --config_file, deepspeed's
hostfile, swift's config): the file on disk before the script runs is not what it reads
when a program run earlier may write it (`python gen_cfg.py --out acc.yaml`). What such a
program writes is not known, so the file is not known from there on.

"May write" (the rule, decided here):
- a program given the path, or a directory above it, as an argument or an option's value
  (`--out acc.yaml`, `--out=acc.yaml`, `--out_dir cfgs` for cfgs/acc.yaml): a program
  given a directory may write anything under it (`tar -C`, `git clone URL dir`,
  `huggingface-cli download --local-dir`). `/` itself does not count: `df /` names it.
- an argument with unknown parts (`"$OUT/acc.yaml"`) counts where its known parts match;
  one with no known part that looks like a path (`$MODEL_ID`) does not: it would make
  every file unknown;
- code the program is given as text (`python -c '...'`, `perl -e`, a here-document fed to
  `python -`) that names the file's basename;
- not: programs that only read the files they name (READ_ONLY), the ones whose writes the
  evaluator models itself (`cat`/`tee` with redirects, `cp`/`mv`/`rm`/`sed -i`: see
  evaluate._changed_files), the script argument of an interpreter (`python gen.py`), and
  the config a launcher reads (`accelerate launch --config_file`, deepspeed's --hostfile,
  a `--deepspeed` json, `swift sft cfg.yaml`).
- `bash x.sh ARGS` / `bash -c '...'` that the evaluator reads itself are judged by the
  commands inside them (the evaluator skips this rule for those).
A program that starts after the launcher, or on a branch the evaluator decided is not
taken, never reaches this rule: the evaluator records writers as it goes.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from preflight.launch.shell.model import UNKNOWN_CLOSE, UNKNOWN_OPEN, Var, Word, Written

# Programs that only read the files they name (their own man pages: coreutils cat, head,
# tail, ls, wc, md5sum/sha*sum, stat, du, df, readlink, realpath, basename, dirname, test,
# echo, printf, sleep, date, seq, sort without -o, cut, tr, nproc; diffutils diff/cmp;
# grep; file; procps ps/pgrep/free; nvidia-smi queries). Their redirects (`> f`) are
# writes the evaluator records itself. mkdir and chmod make a directory or change a mode,
# not what a file holds. pip installs packages (into site-packages and its build dirs),
# not the files a script names.
READ_ONLY = frozenset({
    "cat", "grep", "egrep", "fgrep", "head", "tail", "ls", "test", "[", "[[", "wc",
    "md5sum", "sha1sum", "sha224sum", "sha256sum", "sha384sum", "sha512sum", "b2sum",
    "cksum", "diff", "cmp", "stat", "echo", "printf", "du", "df", "file", "readlink",
    "realpath", "basename", "dirname", "sleep", "date", "seq", "expr", "nproc", "free",
    "ps", "pgrep", "cut", "tr", "uniq", "nvidia-smi", "hostname", "whoami", "id", "uname",
    "pwd", "which", "type", "true", "false", ":", "mkdir", "chmod", "pip", "pip3",
    "lscpu", "lspci", "ibstat", "ibv_devinfo", "nl", "jq", "yq", "command", "hash",
})
# The evaluator models these writes itself (evaluate._record_writes, _changed_files): the
# destination of cp/mv/..., what rm removes, sed/perl -i, tee's files, cat's redirect.
MODELLED = frozenset({"tee", "rm", "truncate", "sed", "touch"})
COPIERS = frozenset({"cp", "mv", "ln", "install", "rsync", "scp"})  # they write the last path
INTERPRETERS = re.compile(r"^(python[\d.]*|pypy3?|bash|sh|dash|zsh|perl|ruby|node)$")
CODE_FLAGS = frozenset({"-c", "-e", "-E"})  # python -c, perl -e / -E, node -e, ruby -e
# Options whose value a program reads, never writes: deepspeed runner.py `--hostfile`,
# the HF TrainingArguments / swift `--deepspeed` json (and deepspeed's --deepspeed_config).
READ_OPTIONS = frozenset({"--hostfile", "-H", "--deepspeed", "--deepspeed_config"})
# `accelerate launch` reads --config_file (accelerate/commands/launch.py); `accelerate
# config --config_file F` writes F (commands/config/config.py), so only launch is exempt.
ACCELERATE_READS = frozenset({"--config_file", "--config-file", "--deepspeed_config_file",
                              "--deepspeed-config-file"})
SWIFT = frozenset({"swift", "megatron"})
LAUNCHERS = frozenset({"torchrun", "deepspeed", "accelerate"})
SWIFT_CONFIG_SUFFIXES = (".json", ".yaml", ".yml")  # swift/cli/main.py:42-47


@dataclass(frozen=True)
class Claim:
    """What a program may write: a path (or, `glob`, a pattern of one with unknown parts
    as `*`), relative to the working directory unless absolute; or `code` naming files."""

    text: str
    shown: str  # the argument as the script gives it, for messages
    glob: bool = False
    code: bool = False


def _pattern(w: Word) -> str | None:
    """A word with unknown parts as a glob (its known parts escaped), None when no known
    part looks like a path (a `/` or a `.`)."""
    parts = re.split(f"{UNKNOWN_OPEN}.*?{UNKNOWN_CLOSE}", w.text, flags=re.S)
    known = "".join(parts)
    if "/" not in known and "." not in known:
        return None
    return "*".join(re.sub(r"([*?\[])", r"[\1]", p) for p in parts)


def _value(w: Word) -> Word | None:
    """The path an argument gives: itself, or the value of `--opt=value`; None for an
    option alone."""
    text = w.text
    if text.startswith("-"):
        if "=" not in text or not text.startswith("--"):
            return None
        return Word(text.split("=", 1)[1], w.source, w.known, w.reason)
    return w


def _claim(w: Word) -> Claim | None:
    v = _value(w)
    if v is None or not v.text or v.text == "/":
        return None
    if v.known:
        if any(c.isspace() for c in v.text):  # code or a message, not a path
            return Claim(v.text, w.text, code=True)
        return Claim(v.text, w.text)
    pattern = _pattern(v)
    return Claim(pattern, w.text, glob=True) if pattern else None


def _skipped(argv: Sequence[Word]) -> set[int]:
    """Indexes of argv that the program reads, never writes: an interpreter's script, the
    value of a read option, accelerate launch's config, swift's config file."""
    name = posixpath.basename(argv[0].text)
    skip: set[int] = set()
    reads = set(READ_OPTIONS)
    if name == "accelerate" and len(argv) > 1 and argv[1].text == "launch":
        reads |= ACCELERATE_READS
    for i, w in enumerate(argv[1:], 1):
        flag = w.text.split("=", 1)[0]
        if flag in reads:
            skip |= {i} if "=" in w.text else {i, i + 1}
    if INTERPRETERS.match(name):
        i = 1
        while i < len(argv) and argv[i].text.startswith("-") and argv[i].text not in (
                "-", *CODE_FLAGS):
            i += 2 if argv[i].text in ("-W", "-X", "-O", "-o") else 1
        if i < len(argv) and argv[i].text not in CODE_FLAGS:
            skip.add(i)  # the script it runs (or `-`: its stdin)
    if name in SWIFT and len(argv) > 2 and argv[2].text.endswith(SWIFT_CONFIG_SUFFIXES):
        skip.add(2)
    if name in LAUNCHERS:
        # the launcher's own options and the script it runs: read (its trainer's
        # arguments after the script may be written: `--output_dir out`)
        for i, w in enumerate(argv[1:], 1):
            if w.text.endswith(".py") or argv[i - 1].text in ("-m", "--module"):
                skip |= set(range(1, i + 1))
                break
    return skip


def claims(argv: Sequence[Word], stdin: Word | None = None) -> list[Claim]:
    """What the program `argv` (after wrappers: `env`, `nohup`, ...) may write, by the
    rule above; `stdin` the here-document it is fed, if any."""
    if not argv:
        return []
    # a program not known here (`$PY gen.py --out acc.yaml`) may be any: it may write
    name = posixpath.basename(argv[0].text) if argv[0].known else ""
    if name in READ_ONLY or name in MODELLED:
        return []
    if INTERPRETERS.match(name) and len(argv) > 2 and argv[1].text == "-m" and \
            argv[2].text in ("pip", "venv", "ensurepip"):
        return []  # `python -m pip install -e .`: as pip
    if name in COPIERS:
        paths = [w for w in argv[1:] if not w.text.startswith("-")]
        last = _claim(paths[-1]) if len(paths) > 1 else None
        return [last] if last else []
    skip = _skipped(argv)
    out = [c for i, w in enumerate(argv[1:], 1) if i not in skip and (c := _claim(w))]
    if stdin is not None and stdin.text.strip():
        out.append(Claim(stdin.text, "its here-document", code=True))
    return out


def default_accelerate_config(environ: Mapping[str, Var]) -> str | None:
    """accelerate/commands/config/config_args.py:29-40: $HF_HOME, else
    $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface; + accelerate/default_config.yaml
    (None when a variable it depends on is not known)."""
    def get(name: str) -> str | None:
        var = environ.get(name)
        return "" if var is None else var.value

    hf_home, xdg, home = get("HF_HOME"), get("XDG_CACHE_HOME"), get("HOME")
    if hf_home is None or (not hf_home and xdg is None):
        return None
    base = hf_home or posixpath.join(xdg or "~/.cache", "huggingface")
    if base.startswith("~"):
        if home is None:
            return None
        base = (home or posixpath.expanduser("~")) + base[1:]
    return posixpath.join(base, "accelerate", "default_config.yaml")


def accelerate_default_write(argv: Sequence[Word], environ: Mapping[str, Var]) -> str | None:
    """`accelerate config [default|update]` without --config_file writes the default config
    (commands/config/default.py `write_basic_config`, config.py `config_command`): its path,
    "" when that path is not known, None when argv is not such a command."""
    if len(argv) < 2 or posixpath.basename(argv[0].text) != "accelerate" or \
            argv[1].text != "config" or any(
                w.text.split("=", 1)[0] in ("--config_file", "--config-file") for w in argv):
        return None
    return default_accelerate_config(environ) or ""


@dataclass(frozen=True)
class Writer:
    """A program of the script that may write the files `claim` covers (resolved against
    the working directory `cwd` it ran in: None when not known)."""

    claim: Claim
    cwd: str | None
    program: str
    where: str  # "run.sh:2"

    @property
    def by(self) -> str:
        return f"{self.program} at {self.where} (given {_short(self.claim.shown)})"

    def covers(self, path: str) -> bool:
        c = self.claim
        if c.code:
            base = posixpath.basename(path)
            return bool(base) and re.search(
                rf"(?<![\w.-]){re.escape(base)}(?![\w-])", c.text) is not None
        if c.glob:
            pattern = c.text if c.text.startswith(("/", "*")) else \
                posixpath.join(self.cwd, c.text) if self.cwd else "*/" + c.text
            return fnmatch.fnmatchcase(path, pattern) or \
                fnmatch.fnmatchcase(path, pattern.rstrip("/") + "/*")
        base = c.text if posixpath.isabs(c.text) else \
            posixpath.join(self.cwd, c.text) if self.cwd else ""
        if not base:  # a relative path in a working directory not known
            return path.endswith("/" + posixpath.normpath(c.text)) or \
                ("/" + posixpath.normpath(c.text) + "/") in path
        base = posixpath.normpath(base)
        return base != "/" and (path == base or path.startswith(base + "/"))

    def written(self) -> Written:
        # not `maybe` (a write that may not run, over a file on disk that may be read
        # instead): a program given the path is there to write it, most likely
        return Written(None, self.where, f"it may be written by {self.by}", by=self.by)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


class Files(Mapping[str, Written]):
    """The files the script wrote before a command started (exact, as Evaluator.written
    holds them), and the programs that may have written more: `files[path]` is the
    latest of those for `path`. A writer recorded after an exact write replaced that
    entry (Evaluator._may_write), so an exact entry is always newer than the writers."""

    def __init__(self, written: Mapping[str, Written],
                 writers: tuple[Writer, ...] = ()) -> None:
        self.written = written
        self.writers = writers

    def __getitem__(self, path: str) -> Written:
        found = self.written.get(path)
        if found is not None:
            return found
        for writer in reversed(self.writers):
            if writer.covers(path):
                return writer.written()
        raise KeyError(path)

    def __iter__(self) -> Iterator[str]:
        return iter(self.written)

    def __len__(self) -> int:
        return len(self.written)

    def __bool__(self) -> bool:  # `files or {}` must keep the writers
        return bool(self.written) or bool(self.writers)
