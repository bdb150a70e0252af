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
- code or text the program is given (`python -c '...'`, `perl -e`, a here-document fed
  to `python -`, a here-string, `< paths.txt`, a pipe from `echo`/`printf`/`cat FILE`)
  that names the file's basename; `xargs` is given the words it reads (when they are not
  known: under what the command before it in the pipe was given, else the working
  directory); a program reading a pipe or file whose text is not known: not followed;
- a value attached to a short option (`-oacc.yaml`, `wget -Oacc.yaml`);
- programs that write files they are not given (SPECIAL): what they write into, `.`
  when no directory is given (`tar x [-C DIR]`, `unzip [-d DIR]`, `7z x [-oDIR]`, `git
  clone URL [DIR]`, `git pull/checkout/stash ...`: the repository's top level, `wget
  URL`, `curl -O`), and for tar/7z creating, only the archive;
- not: programs that only read the files they name (READ_ONLY), the ones whose writes the
  evaluator models itself (`cat`/`tee` with redirects, `cp`/`mv`/`rm`/`sed -i`: see
  evaluate._changed_files), the script argument of an interpreter (`python gen.py`), and
  the config a launcher reads (`accelerate launch --config_file`, deepspeed's --hostfile,
  a `--deepspeed` json, `swift sft cfg.yaml`).
- `bash x.sh ARGS` / `bash -c '...'` that the evaluator reads itself are judged by the
  commands inside them (the evaluator skips this rule for those).
A program that starts after the launcher, or on a branch the evaluator decided is not
taken, never reaches this rule: the evaluator records writers as it goes. One that starts
after a launcher started in the background (`&`), before a `wait`, races with it: it
reaches that launcher's Files.racing.
"""

from __future__ import annotations

import fnmatch
import os
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
    """The path an argument gives: itself, the value of `--opt=value`, or of a short
    option with its value attached (`-oacc.yaml`, `wget -Oacc.yaml`, `7z x -ocfg`: getopt
    takes the rest of the word as the value); None for an option alone."""
    text = w.text
    if text.startswith("--"):
        if "=" not in text:
            return None
        return Word(text.split("=", 1)[1], w.source, w.known, w.reason)
    if text.startswith("-") and len(text) > 2:
        # `-la` (flags) claims "a": a file of that name, harmless
        return Word(text[2:], w.source, w.known, w.reason)
    return None if text.startswith("-") else w


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


@dataclass(frozen=True)
class Stdin:
    """What a program reads on its standard input, when the script gives it one: a
    here-document or here-string, a file (`< paths.txt`), or the output of the command
    before it in a pipe. `text` None: not known (`find cfgs | xargs ...`); `producer` the
    argv of the command that printed it (`find cfgs`), when a pipe."""

    text: str | None
    shown: str
    producer: tuple[Word, ...] = ()


def claims(argv: Sequence[Word], stdin: Stdin | None = None,
           cwd: str | None = None, modelled: bool = True) -> list[Claim]:
    """What the program `argv` (after wrappers: `env`, `nohup`, ...) run in `cwd` may
    write, by the rule above; `stdin` what it reads on its input, if the script gives it
    one. `modelled` False: the evaluator does not see its arguments (`xargs rm`), so
    MODELLED programs count as writers too."""
    if not argv:
        return []
    # a program not known here (`$PY gen.py --out acc.yaml`) may be any: it may write
    name = posixpath.basename(argv[0].text) if argv[0].known else ""
    if name in READ_ONLY or name in MODELLED and modelled:
        return []
    if INTERPRETERS.match(name) and len(argv) > 2 and argv[1].text == "-m" and \
            argv[2].text in ("pip", "venv", "ensurepip"):
        return []  # `python -m pip install -e .`: as pip
    if name == "xargs":
        return _xargs(argv, stdin, cwd)
    special = SPECIAL.get(name)
    found = special(argv, cwd) if special is not None else None
    if found is not None:
        return found
    skip = _skipped(argv)
    out = [c for i, w in enumerate(argv[1:], 1) if i not in skip and (c := _claim(w))]
    if stdin is not None and stdin.text is not None and stdin.text.strip():
        # what it reads is text it is given, as `python -c` code: a path there counts
        out.append(Claim(stdin.text, stdin.shown, code=True))
    return out


def _copier(argv: Sequence[Word], cwd: str | None) -> list[Claim] | None:
    """cp/mv/ln/install/rsync/scp write their last path, or the directory of `-t DIR` /
    `--target-directory=DIR` (coreutils cp(1), mv, ln, install; rsync's `-t` keeps
    times): their sources are only read."""
    coreutils = posixpath.basename(argv[0].text) in ("cp", "mv", "ln", "install")
    for i, w in enumerate(argv[1:] if coreutils else (), 1):
        if w.text in ("-t", "--target-directory") and i + 1 < len(argv):
            return [c] if (c := _claim(argv[i + 1])) else []
        if w.text.startswith(("--target-directory=", "-t")) and len(w.text) > 2:
            return [c] if (c := _claim(w)) else []
    paths = [w for w in argv[1:] if not w.text.startswith("-")]
    last = _claim(paths[-1]) if len(paths) > 1 else None
    return [last] if last else []


def _option(argv: Sequence[Word], short: str, long: str) -> list[Word]:
    """The values of `-X V`, `-XV`, `--long V`, `--long=V` in argv (a short option may
    end a cluster: `tar -xzf a.tgz` is not -f's here, only `-C` alone or attached)."""
    out: list[Word] = []
    for i, w in enumerate(argv[1:], 1):
        t = w.text
        if t and t in (short, long) and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif long and t.startswith(long + "="):
            out.append(Word(t.split("=", 1)[1], w.source, w.known, w.reason))
        elif short and t.startswith(short) and len(t) > 2 and not t.startswith("--"):
            out.append(Word(t[2:], w.source, w.known, w.reason))
    return out


def _into(dirs: Sequence[Word]) -> list[Claim]:
    """The directories a program writes into, `.` (its working directory) when none."""
    if not dirs:
        return [Claim(".", "its working directory")]
    return [c for d in dirs if (c := _claim(d))] or [Claim(".", "its working directory")]


def _tar(argv: Sequence[Word], cwd: str | None) -> list[Claim] | None:
    """GNU tar: extracting (`x`, `--extract`, `--get`) writes the members under `-C DIR`
    (or the working directory: a member may be any path there); creating (`c`, `r`,
    `u`, `A`) writes only the archive (`f`); listing (`t`) and `d` nothing."""
    first = argv[1].text if len(argv) > 1 else ""
    # the mode letters: the first word without a dash (`tar xzf`), or any `-x` cluster
    letters = "".join([first] * (not first.startswith("-")) + [
        w.text[1:] for w in argv[1:] if re.fullmatch(r"-[a-zA-Z]+", w.text)])
    modes = {w.text for w in argv[1:] if w.text.startswith("--")}
    if "x" in letters or modes & {"--extract", "--get"}:
        return _into(_option(argv, "-C", "--directory"))
    if not ({"c", "r", "u", "A"} & set(letters)
            or modes & {"--create", "--append", "--update", "--catenate", "--concatenate"}):
        return None if not ({"t", "d"} & set(letters)) else []
    archive = _option(argv, "-f", "--file")
    if not archive and "f" in first and len(argv) > 2:
        archive = [argv[2]]  # `tar czf out.tgz dir`, `tar -czf out.tgz dir`
    return [c for a in archive if (c := _claim(a))] if archive else None


def _unzip(argv: Sequence[Word], cwd: str | None) -> list[Claim] | None:
    """unzip(1): extracts into `-d DIR` or the working directory; `-l`/`-v`/`-t`/`-Z`
    list or test, `-p` prints: nothing written."""
    if any(w.text in ("-l", "-v", "-t", "-Z", "-p", "-c") for w in argv[1:]):
        return []
    return _into(_option(argv, "-d", ""))


def _7z(argv: Sequence[Word], cwd: str | None) -> list[Claim] | None:
    """7-Zip: `x`/`e` extract into `-oDIR` or the working directory; `l`/`t`/`h` read;
    `a`/`u`/`d`/`rn` write the archive (its next argument)."""
    command = argv[1].text if len(argv) > 1 else ""
    if command in ("x", "e"):
        return _into([Word(w.text[2:], w.source, w.known, w.reason) for w in argv[2:]
                      if w.text.startswith("-o") and len(w.text) > 2])
    if command in ("l", "t", "h", "i", "b"):
        return []
    if command in ("a", "u", "d", "rn") and len(argv) > 2:
        paths = [w for w in argv[2:] if not w.text.startswith("-")]
        return [c] if paths and (c := _claim(paths[0])) else []
    return None


# git(1) commands that change the work tree (files under the repository's top level)
GIT_WORKTREE = frozenset({
    "pull", "checkout", "switch", "restore", "reset", "merge", "rebase", "stash", "am",
    "apply", "cherry-pick", "revert", "clean", "mv", "rm", "submodule", "lfs", "worktree",
    "read-tree", "checkout-index", "bisect", "sparse-checkout",
})
# git commands that read the work tree or write only inside .git (the index, refs, the
# objects a fetch brings): the files a launcher reads stay as they are
GIT_READS = frozenset({
    "status", "log", "diff", "show", "rev-parse", "describe", "ls-files", "ls-remote",
    "remote", "config", "fetch", "branch", "tag", "blame", "grep", "shortlog", "rev-list",
    "cat-file", "version", "help", "init", "add", "commit", "push", "reflog", "gc",
    "show-ref", "for-each-ref", "symbolic-ref", "name-rev", "var", "whatchanged",
})
GIT_VALUED = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace"})
CLONE_VALUED = frozenset({
    "-b", "--branch", "-o", "--origin", "-c", "--config", "--depth", "--reference",
    "--template", "-j", "--jobs", "--filter", "-u", "--upload-pack", "--shallow-since",
    "--shallow-exclude", "--separate-git-dir", "--reference-if-able", "--server-option",
})


def _git(argv: Sequence[Word], cwd: str | None) -> list[Claim] | None:
    """`git clone URL [DIR]` writes DIR (default: the URL's last part less `.git`,
    builtin/clone.c guess_dir_name); pull/checkout/stash/... write the work tree of the
    repository they work on (`-C DIR` / `--work-tree`, else the one the working directory
    is in: its top level, found by `.git` as git does); the rest read."""
    i, where, tree = 1, ".", None
    while i < len(argv) and argv[i].text.startswith("-"):
        t = argv[i].text
        if t in GIT_VALUED and i + 1 < len(argv):
            if t == "-C" and not argv[i + 1].known:  # `git -C "$REPO" pull`
                tree = argv[i + 1]  # (its top level is not known: the directory)
            elif t == "-C":
                where = posixpath.join(where, argv[i + 1].text)
            elif t == "--work-tree":
                tree = argv[i + 1]
            i += 2
            continue
        if t.startswith("--work-tree="):
            tree = Word(t.split("=", 1)[1], argv[i].source, argv[i].known)
        i += 1
    command = argv[i].text if i < len(argv) else ""
    if command in GIT_READS or (command == "stash" and i + 1 < len(argv)
                                and argv[i + 1].text in ("list", "show")):
        return []
    if command == "clone":
        return _clone(argv[i + 1:], where) if tree is None else [
            c for c in [_claim(tree)] if c]
    if command not in GIT_WORKTREE:
        return None
    if tree is not None:
        return [c] if (c := _claim(tree)) else []
    return [Claim(_toplevel(where, cwd), f"the work tree of {where}")]


def _clone(args: Sequence[Word], where: str) -> list[Claim]:
    paths: list[Word] = []
    k = 0
    while k < len(args):
        t = args[k].text
        if t in CLONE_VALUED:
            k += 2
            continue
        if not t.startswith("-"):
            paths.append(args[k])
        k += 1
    if len(paths) > 1:
        dest = paths[1]
    elif paths and paths[0].known:
        name = re.sub(r"(/?\.git)?/*$", "", paths[0].text.rstrip("/"))
        name = re.split(r"[/:]", name)[-1] if name else ""
        if not name:
            return [Claim(".", "its working directory")]
        dest = Word(name, paths[0].source)
    else:
        return [Claim(where, "its working directory")]  # where it clones to: not known
    c = _claim(dest)
    if c is None:
        return []
    if where != "." and not c.glob and not posixpath.isabs(c.text):
        c = Claim(posixpath.join(where, c.text), c.shown)
    return [c]


def _toplevel(where: str, cwd: str | None) -> str:
    """The top level of the git work tree `where` (relative to cwd) is in: the nearest
    directory above with a `.git`; `where` itself when none is found (or cwd is not
    known: then the claim is relative, and so are the paths it covers)."""
    if cwd is None and not posixpath.isabs(where):
        return where
    start = posixpath.normpath(posixpath.join(cwd or "/", where))
    d = start
    while True:
        if os.path.exists(posixpath.join(d, ".git")):
            return d
        parent = posixpath.dirname(d)
        if parent == d:
            return start
        d = parent


def _fetcher(argv: Sequence[Word], cwd: str | None) -> list[Claim] | None:
    """wget (without -O: the URL's last part, under `-P DIR`) and `curl -O` /
    `--remote-name` (the URL's last part, under `--output-dir`): the file a download
    names itself; `-O F` / `-o F` / `-OF` are given (the rule above)."""
    name = posixpath.basename(argv[0].text)
    urls = [w for w in argv[1:] if re.match(r"^[a-z][a-z0-9+.-]*://", w.text)]
    texts = {w.text for w in argv[1:]}
    given = [c for i, w in enumerate(argv[1:], 1) if not w.text.startswith(("http", "ftp"))
             and (c := _claim(w))]
    if name == "wget":
        if _option(argv, "-O", "--output-document"):
            return given
        into = _option(argv, "-P", "--directory-prefix")
    else:
        if not (texts & {"-O", "--remote-name", "--remote-name-all"} or any(
                re.fullmatch(r"-[a-zA-Z]*O[a-zA-Z]*", t) for t in texts)):
            return given
        into = _option(argv, "", "--output-dir")
    base = into[0].text if into and into[0].known else "."
    names = [re.split(r"[?#]", u.text)[0].rstrip("/").rsplit("/", 1)[-1] for u in urls]
    return given + [Claim(posixpath.join(base, n) if n and "://" not in n else base,
                          u.text) for n, u in zip(names, urls, strict=True)]


def _xargs(argv: Sequence[Word], stdin: Stdin | None, cwd: str | None) -> list[Claim]:
    """xargs runs its command (`echo` when none) with the words it reads appended, or in
    place of `-I R`'s R: given those words (the rule above). When what it reads is not
    known (`find cfgs -name '*.yaml' | xargs ...`) they may be any path: under the
    directories the command before it in the pipe was given (`find cfgs`), else under
    the working directory."""
    i, replace, from_file = 1, None, None
    while i < len(argv) and argv[i].text.startswith("-"):
        t = argv[i].text
        if t in ("-I", "-i", "-n", "-L", "-P", "-s", "-d", "-E", "-a", "-e") and \
                i + 1 < len(argv):
            if t in ("-I", "-i"):
                replace = argv[i + 1].text
            if t == "-a":
                from_file = argv[i + 1]
            i += 2
            continue
        if t.startswith("-I") and len(t) > 2:
            replace = t[2:]
        if t.startswith("--replace"):
            replace = t.split("=", 1)[1] if "=" in t else "{}"
        i += 1
    command = list(argv[i:]) or [Word("echo", "echo")]
    if from_file is not None:
        stdin = None  # -a FILE: its words come from FILE (not read here)
        words: list[Word] | None = None
    else:
        words = [Word(t, t) for t in stdin.text.split()] if stdin is not None and \
            stdin.text is not None else None
    if words is None:
        unknown = Word(f"{UNKNOWN_OPEN}its input{UNKNOWN_CLOSE}", "its input", False,
                       "the words xargs reads are not known")
        inner = claims(_fill(command, replace, [unknown]), None, cwd, modelled=False)
        name = posixpath.basename(command[0].text) if command[0].known else ""
        if name in READ_ONLY or replace is not None and inner:
            return inner  # `-I{} ... cfgs/{}`: under cfgs/
        producer = stdin.producer if stdin is not None else ()
        hints = _found(producer) if producer and producer[0].text == "find" else [
            c for w in producer[1:]
            if not w.text.startswith("-") and (c := _claim(w)) and not c.code]
        return inner + (hints or [Claim(".", "its working directory")])
    return claims(_fill(command, replace, words), None, cwd, modelled=False)


def _found(argv: Sequence[Word]) -> list[Claim]:
    """What `find DIR... EXPR` prints: paths under each DIR (`.` when none); with `-name
    PATTERN` alone (findutils: the basename matches), only those: `find . -name '*.pyc'
    | xargs rm` leaves acc.yaml known."""
    dirs: list[Word] = []
    for w in argv[1:]:
        if w.text.startswith(("-", "(", "!")):
            break
        dirs.append(w)
    rest = [w.text for w in argv[1 + len(dirs):]]
    names = [rest[i + 1] for i, t in enumerate(rest[:-1]) if t == "-name"]
    narrow = bool(names) and all(w.known for w in argv) and not (
        set(rest) & {"-o", "-or", "-iname", "-path", "-regex", "-exec", "-execdir", ","})
    out: list[Claim] = []
    for d in dirs or [Word(".", ".")]:
        c = _claim(d)
        if c is None or c.code:
            continue
        if not narrow or c.glob:
            out.append(c)
            continue
        base = posixpath.normpath(c.text)
        escaped = re.sub(r"([*?\[])", r"[\1]", base)
        out += [Claim(("*" if base == "." else escaped + "/*") + n, f"{d.text} -name {n}",
                      glob=True) for n in names]
    return out


def _fill(command: Sequence[Word], replace: str | None, words: Sequence[Word]) -> list[Word]:
    if replace is None:
        return [*command, *words]
    out = [command[0]]
    for w in command[1:]:
        if replace in w.text:
            for x in words:  # one run per line; each of them is given its word
                out.append(Word(w.text.replace(replace, x.text), w.source,
                                w.known and x.known, x.reason))
        else:
            out.append(w)
    return out


def _find(argv: Sequence[Word], cwd: str | None) -> list[Claim] | None:
    """find(1) prints what it finds: it writes only with `-delete` (what it finds),
    `-fprint FILE` / `-fprintf FILE` / `-fls FILE`, or a command it runs (`-exec`: the
    rule above, on all its words)."""
    texts = [w.text for w in argv]
    if set(texts) & {"-exec", "-execdir", "-ok", "-okdir"}:
        return None
    out = [c for i, t in enumerate(texts[:-1]) if t in ("-fprint", "-fprintf", "-fprint0",
                                                         "-fls")
           and (c := _claim(argv[i + 1]))]
    return out + _found(argv) if "-delete" in texts else out


SPECIAL = {
    **dict.fromkeys(COPIERS, _copier), "tar": _tar, "unzip": _unzip, "7z": _7z,
    "7za": _7z, "7zr": _7z, "git": _git, "wget": _fetcher, "curl": _fetcher, "find": _find,
}


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
            if posixpath.normpath(c.text) == ".":
                return True  # that directory may be the one the path is in
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
        # a command started in the background (`accelerate launch ... &`): where, and
        # what the script wrote or started after it, until a `wait` (the evaluator
        # adds them): the launcher reads its config while they run, a race
        self.started = ""
        self.read_in_background: tuple[str, ...] = ()
        # a list, appended to in place: a tuple rebuilt per file was quadratic (`rm -rf
        # DIR/*` over 20,000 files after a `&` launch took 2 s)
        self.racing: list[Writer] = []

    def race(self) -> str:
        """Why the command is not known: it was read from a script a shell started in
        the background reads (`bash launch.sh &`), which the script (or a program it
        ran) may write while that shell reads it; ""."""
        for path in self.read_in_background if self.racing else ():
            found = self.get(posixpath.normpath(path))
            if found is not None and found.race:
                return f"{path} {found.reason}"
        return ""

    def __getitem__(self, path: str) -> Written:
        for writer in reversed(self.racing):
            if writer.covers(path):
                by = f"{writer.by}, while the command started at {self.started} in " \
                     "the background (`&`) may be reading it (a race)"
                return Written(None, writer.where, f"it may be written by {by}", by=by,
                               race=True)
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
        return bool(self.written) or bool(self.writers) or bool(self.racing)
