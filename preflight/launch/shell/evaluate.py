"""Walking the bashlex tree of a launch script: statements, lists and pipelines, `if`
(both branches when undecided), loops, functions, `source`, `cd`, `set -a`, assignments
and exports, and the commands it would start. Nothing is executed."""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, NoReturn

from preflight.inputs import read_regular
from preflight.launch.shell import arith, conda, programs, writers
from preflight.launch.shell.model import (
    DECLARE,
    NAME,
    UNKNOWN_CLOSE,
    UNKNOWN_OPEN,
    WRAPPERS,
    Command,
    Exit,
    Read,
    ScriptFileError,
    Trace,
    Unknown,
    Var,
    Word,
    Written,
)
from preflight.launch.shell.source import (
    ARITH,
    ARRAY_MARK,
    CASE,
    CASE_FALLTHROUGH,
    DTEST,
    KEY_MARK,
    MAX_NESTING,
    PATTERN,
    NestingError,
    brace_depth,
    mask,
    parse_chunks,
    read_script,
    rewrite,
)
from preflight.launch.shell.state import Ctx, Node, Source, State
from preflight.launch.shell.words import (
    Abort,
    ArithAbort,
    Expander,
    Stop,
    dedupe,
    glob_regex,
    joined,
    matching,
    substitutions,
    to_word,
)
from preflight.launch.shell.writers import Files, Writer
from preflight.numbers import maybe_int

MAX_SOURCE_DEPTH = 8
MAX_CALL_DEPTH = 16
MAX_STEPS = 40_000  # statements evaluated; a launch script needs a few thousand
# lines of commands parsed, all files together: bashlex parses a few thousand a second, so
# past this the script is not read (Trace.unread), never refused: a generated launch
# script may be this long, and the rest of the suite still runs
MAX_LINES = 40_000
MAX_WORDS = 200_000  # the same for words: one long line (`A=(x x ...)`) is read as slowly
MAX_COMMANDS = 4_000  # programs started; a launch script starts tens
SHELLS = ("bash", "sh", "dash", "zsh")
MAX_UNROLL = 32  # a for-loop over a known list this long is run item by item
# Programs whose only effect on what follows is their exit status (or none): running
# them cannot create the files a later `[ -f ... ]` tests.
NO_FILES = frozenset({
    "echo", "printf", "cat", "ls", "grep", "head", "tail", "wc", "sleep", "date", "env",
    "nvidia-smi", "hostname", "whoami", "id", "uname", "pwd", "dirname", "basename",
    "realpath", "readlink", "which", "type", "true", "false", ":", "sort", "cut", "tr",
    "sed", "awk", "test", "[", "seq", "expr", "nproc", "free", "df", "du", "ps", "pgrep",
})

Reader = Callable[[str], tuple[str, list[str]]]


class _Exit(Exception):
    def __init__(self, status: str, record: Exit | None):
        self.status = status
        self.record = record


class _NotMine:
    """What a builtin handler returns for a command that is not its own."""


NOT_MINE = _NotMine()


class _Return(Exception):
    pass


class TooComplex(ScriptFileError):
    """More evaluation than any launch script needs: refused with one line."""


class _Unread(Exception):
    """Reading stops: more lines than MAX_LINES (the reason is Evaluator.unread)."""


def start_dir(environ: Mapping[str, str]) -> str:
    """The working directory bash starts in, as `pwd` and `$PWD` say it: an inherited
    absolute PWD naming this directory (its symlinks kept, `.`/`..` folded), else the
    directory itself (bash variables.c set_pwd)."""
    here = os.getcwd()
    pwd = environ.get("PWD", "")
    try:
        if pwd.startswith("/") and os.path.samefile(pwd, here):
            return posixpath.normpath(pwd)
    except OSError:
        pass
    return here


def _under(path: str, dirs: set[str]) -> bool:
    """Whether path is one of dirs or lies under one."""
    while path not in dirs:
        parent = posixpath.dirname(path)
        if parent == path or not parent:
            return False
        path = parent
    return True


class Evaluator(Expander):
    def __init__(self, environ: Mapping[str, str], cwd: str | None = None,
                 reader: Reader = read_script):
        self.reader = reader
        env_vars = {k: Var(v, exported=True) for k, v in environ.items()}
        self.state = State(env_vars, {}, cwd or start_dir(environ))
        self.commands: list[Command] = []
        self.unknowns: list[Unknown] = []
        self.exit: Exit | None = None
        self.files: list[str] = []
        self.script0 = ""
        self.zero = ""  # `$0`: the script's path as bash is given it (`bash run.sh`: run.sh)
        # each file read -> its name as bash was given it (`${BASH_SOURCE[0]}`); None
        # when it was given under two names
        self.given: dict[str, str | None] = {}
        self.src: Source = Source("", "", [])
        self._seen_unknowns: set[tuple[str, int, str]] = set()
        self.vanished: list[Word] = []  # words that expanded to nothing (unquoted, empty)
        self.steps = 0
        self.lines = 0  # lines of commands parsed, all files together (MAX_LINES)
        self.words = 0  # words of commands parsed, all files together (MAX_WORDS)
        self.unread = ""  # why reading stopped before the end (Trace.unread)
        self.unseen: list[Unknown] = []  # where programs may start unread (Trace.unseen)
        self._reading: list[str] = []  # the files being read now, outermost first
        self._shells: set[str] = set()  # texts read as a shell of their own (script, -c)
        # names the scripts define as functions anywhere, also on a branch not taken
        self._defined: set[str] = set()
        self._original: dict[str, list[str]] = {}  # each file's lines as written
        self._loop_depth = 0
        self._locals: list[dict[str, Var | None]] = []  # per function call: saved values
        self._exempt = False  # the last status came from a non-final part of a && / || list
        self._next_status: str | None = None  # `$?` for the next simple command
        # the files the script has written so far (absolute path -> content); replaced,
        # never changed in place, so that each Command keeps the view it started with
        self.written: dict[str, Written] = {}
        # the programs so far that may have written more files (writers.py): what a
        # launcher, `source` or a child script reads through them is not known
        self.writers: tuple[Writer, ...] = ()
        self._feed: Word | None = None  # the here-document the command being run reads
        # what the command being run reads on its input (writers.Stdin), and what the
        # pipe before it printed (None: not in a pipe)
        self._given: writers.Stdin | None = None
        self._pipe_in: writers.Stdin | None = None
        self._last_argv: list[Word] | None = None  # the last simple command's argv
        # the files of the launchers (programs) started in the background (`&`) and not
        # yet waited for: what the script writes from then on races with what they read
        self._racing: list[Files] = []
        self._bg_reading = 0  # how many files were being read where the `&` is
        self.reads: list[Read] = []  # the files on disk it sources or runs, read (Trace.reads)
        # each Python file the script runs -> where its text starts a launcher, or None
        self._py_read: dict[str, tuple[int, str] | None] = {}

    # -- entry points

    def run_file(self, path: str, text: str, notes: Sequence[str] = (),
                 zero: str | None = None) -> Trace:
        """`zero`: `$0` as bash has it (the script as written on its command line; by
        default `path`; "": not known)."""
        self.script0 = path
        self.zero = path if zero is None else zero
        self._shells.add(path)
        # each nesting level of the script is a few Python frames here and in bashlex;
        # source.MAX_NESTING bounds the levels, this makes room for them
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 12_000))
        try:
            self.given.setdefault(path, self.zero)  # a subshell's: the file's name already
            self._run_text(path, text, notes, self.state, Ctx())
        except _Exit as stop:
            self.exit = stop.record
        except _Return:
            pass
        except _Unread:
            # nothing after this point is known: no exit decided, every variable may be
            # set there
            self.exit = None
            self._opaque(self.state, "lines not read")
        except RecursionError:
            raise TooComplex("nested too deeply to evaluate; not a launch script") from None
        finally:
            sys.setrecursionlimit(limit)
        return self.trace()

    def run_command(self, line: str) -> Trace:
        # `$0` is the shell's own name there (bash, -bash, a login shell's): not known
        return self.run_file("<--launch-cmd>", line, zero="")

    def _as_written(self, pos: tuple[int, int]) -> str:
        """The text at pos as the script has it: the parser reads `[[ ]]` and `(( ))` in
        rewritten shapes (source.rewrite), which a message must not show."""
        text = self.src.raw(pos)
        lines = self._original.get(self.src.file)
        if KEY_MARK not in text or not lines:
            return text
        first, last = self.src.line(pos[0]), self.src.line(max(pos[1] - 1, pos[0]))
        written = " ".join(x.strip() for x in lines[first - 1:last])
        for mark, start, end in ((DTEST, "[[", "]]"), (ARITH, "((", "))")):
            if text.lstrip().startswith(mark) and text.count(KEY_MARK) == 1:
                i = written.find(start)
                j = written.find(end, i + 2) if i >= 0 else -1
                if j > i:
                    return written[i:j + 2]
        return written

    def trace(self) -> Trace:
        return Trace(tuple(self.commands), dict(self.state.vars), tuple(self.unknowns),
                     self.exit, tuple(self.files), self.written, self.unread,
                     tuple(self.unseen), tuple(dict.fromkeys(self.reads)))

    # -- text and nodes

    def _run_text(self, file: str, text: str, notes: Sequence[str], st: State, ctx: Ctx
                  ) -> None:
        self.files.append(file)
        self._reading.append(file)
        for note in notes:
            self._unknown(file, 1, "", note)
        saved = self.src
        newlines = [i for i, c in enumerate(text) if c == "\n"]
        try:
            self._defined.update(a or b for a, b in _FUNCTION_DEF.findall(text))
            self._original[file] = text.split("\n")
            try:
                text = rewrite(text)
            except NestingError as exc:
                if not ctx.depth:
                    raise  # the script itself: refused (spec.load names its line)
                # a file it sources or runs (.env, a child script, an eval string): the
                # same as one that cannot be read; the error names the file and line
                self._unknown(file, exc.line, "", f"not read: {exc}")
                self._unseen(file, exc.line, f"not read: {exc}")
                self._opaque(st, f"{posixpath.basename(file)} (not read: nested too deep)")
                return
            masked, bodies = mask(text)
            self._budget(file, masked)
            chunks, failures = parse_chunks(masked)
            starts = [0] + [i + 1 for i in newlines]
            events: list[tuple[int, int, Any]] = [(offset, 1, nodes) for offset, nodes in chunks]
            events += [(starts[line - 1], 0, (line, snippet, error))
                       for line, snippet, error in failures]
            for offset, is_chunk, item in sorted(events, key=lambda e: (e[0], e[1])):
                if not is_chunk:
                    bad_line, snippet, error = item
                    self._unparsed(file, bad_line, snippet, error, st)
                    continue
                self.src = Source(file, text, newlines, offset, bodies)
                for node in item:
                    try:
                        self._statement(node, st, ctx)
                    except Abort as abort:
                        if st.errexit and not isinstance(abort, ArithAbort):
                            raise _Exit("1", None if ctx.conditional else Exit(
                                file, self.src.line(node.pos[0]), "1", str(abort))) from None
                        if ctx.depth and file not in self._shells:
                            raise  # a sourced file: the statement that sourced it ends
                        self._unknown(file, self.src.line(node.pos[0]),
                                      self.src.raw(node.pos)[:100],
                                      f"{abort}: bash abandons this statement")
        finally:
            self.src = saved
            self._reading.pop()

    def _budget(self, file: str, masked: str) -> None:
        """Count the file against MAX_LINES / MAX_WORDS before it is parsed; past either,
        reading stops (_Unread). bashlex parses a few thousand lines a second: 2 MiB of
        `true` lines took a minute, and a file of them sourced again each time; one array
        of 1,000,000 words (`A=(x x ...)`, one line) took 75 s, 9 in 10 in bashlex's
        tokenizer."""
        lines = sum(1 for ln in masked.split("\n") if ln.strip())
        words = len(masked.split())  # whitespace-separated (a bound, not a parse)
        self.lines += lines
        self.words += words
        if self.lines <= MAX_LINES and self.words <= MAX_WORDS:
            return
        where = "" if file == self.script0 else f" by the end of {file}"
        self.unread = (f"{self.lines} lines of commands{where}, more than the {MAX_LINES} "
                       "preflight reads" if self.lines > MAX_LINES else
                       f"{self.words} words of commands{where}, more than the {MAX_WORDS} "
                       "preflight reads")
        self._unknown(file, 1, "", self.unread)
        raise _Unread()

    def _unparsed(self, file: str, line: int, snippet: str, error: str, st: State) -> None:
        """A line bashlex cannot parse: whatever it may assign becomes unknown."""
        self._unknown(file, line, snippet, f"bashlex cannot parse this line ({error})")
        self._unseen(file, line, f"not parsed: {snippet[:60]}")
        # a function defined there: a later call runs a body preflight has not read (never
        # an older definition of the same name)
        for m in re.finditer(r"(?:^|[\s;&|(])(?:function\s+([A-Za-z_][\w.:-]*)|"
                             r"([A-Za-z_][\w.:-]*)\s*\(\s*\))", snippet):
            st.functions[m.group(1) or m.group(2)] = (
                None, f"defined in a line that is not evaluated ({posixpath.basename(file)}:"
                      f"{line})")
        for name in re.findall(r"(?:^|[\s;(|&])([A-Za-z_][A-Za-z0-9_]*)\+?=", snippet):
            old = st.vars.get(name)
            st.vars[name] = Var(None, exported=bool(old and old.exported),
                                reason=f"assigned in a line that is not evaluated "
                                       f"({posixpath.basename(file)}:{line})",
                                where=f"{file}:{line}")

    def _unknown(self, file: str, line: int, text: str, reason: str) -> None:
        key = (file, line, reason)
        if key not in self._seen_unknowns:
            self._seen_unknowns.add(key)
            self.unknowns.append(Unknown(file, line, text[:200], reason))

    def _name(self, file: str, given: str | None) -> None:
        """Record the name bash knows `file` by (`${BASH_SOURCE[0]}`)."""
        self.given[file] = given if self.given.get(file, given) == given else None

    def _unseen(self, file: str, line: int, what: str) -> None:
        """Programs may start here that preflight did not read (Trace.unseen)."""
        entry = Unknown(file, line, "", what)
        if entry not in self.unseen:
            self.unseen.append(entry)

    def _here(self, file: str, line: int) -> str:
        """Where a refusal happened, for its message: `line N: ` in the script itself,
        `FILE: line N: ` in a file it sources or runs."""
        return f"line {line}: " if file == self.script0 else f"{file}: line {line}: "

    def _where(self, node: Node) -> tuple[str, int]:
        return self.src.file, self.src.line(node.pos[0])

    def _statement(self, node: Node, st: State, ctx: Ctx) -> bool | None:
        """A node run as a statement of its own: `set -e` stops the script where it
        fails, unless it is tested (if/while condition, left of && or ||, negated)."""
        self._exempt = False
        try:
            status = self._node(node, st, ctx)
        except Abort:
            raise
        except Stop as stop:  # set -u / ${V:?} outside a simple command (case word, ...)
            file, line = self._where(node)
            raise _Exit("1", None if ctx.conditional else
                        Exit(file, line, "1", str(stop))) from None
        if status is False and st.errexit and not ctx.tested and not self._exempt:
            file, line = self._where(node)
            raise _Exit("1", None if ctx.conditional else
                        Exit(file, line, "1", f"set -e: {self.src.raw(node.pos)[:100]} fails"))
        return status

    def _node(self, node: Node, st: State, ctx: Ctx) -> bool | None:
        """Evaluate one node; returns its exit status when decidable (True = success)."""
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TooComplex(f"{self._here(*self._where(node))}more than {MAX_STEPS} "
                             "statements to evaluate (deep recursion or loops of functions); "
                             "not a launch script preflight can read")
        kind = node.kind
        if kind == "command":
            return self._command(node, st, ctx)
        if kind == "list":
            return self._list(node.parts, st, ctx)
        if kind == "pipeline":
            return self._pipeline(node, st, ctx)
        if kind == "compound":
            return self._compound(node, st, ctx)
        if kind == "if":
            return self._if(node, st, ctx)
        if kind in ("for", "while", "until"):
            return self._loop(node, st, ctx)
        if kind == "function":
            name = next(p.word for p in node.parts if p.kind == "word")
            body = [p for p in node.parts if p.kind == "compound"]
            st.functions[name] = (body, self.src)
            return True
        if kind in ("operator", "reservedword", "pipe", "redirect"):
            return None
        file, line = self._where(node)
        self._unknown(file, line, self.src.raw(node.pos), f"{kind} is not evaluated")
        return None

    def _list(self, parts: list[Node], st: State, ctx: Ctx) -> bool | None:
        chains = _chains(parts)
        if not any(end == "&" for _, end in chains):
            return self._and_or(parts, st, ctx)
        status: bool | None = True
        for chain, end in chains:
            if end == "&":
                self._background(chain, st, ctx)
                status = True  # `a &` itself succeeds
            else:
                status = self._and_or(chain, st, ctx)
        return status

    def _background(self, chain: list[Node], st: State, ctx: Ctx) -> None:
        """`a && b &`: bash runs the and-or list asynchronously in a subshell (bash(1),
        Lists): its commands start, but nothing it sets, exports or changes (cd) reaches
        the script, an `exit` or `set -e` ends only the subshell, and a file it writes
        may not be complete when the next command reads it."""
        fork = st.fork()
        saved, self._bg_reading = self._bg_reading, len(self._reading)
        try:
            self._and_or(chain, fork, replace(ctx, background=True))
        except (_Exit, Stop):
            pass
        finally:
            self._bg_reading = saved

    def _and_or(self, parts: list[Node], st: State, ctx: Ctx) -> bool | None:
        status: bool | None = True
        pending = None  # the operator before the next node
        previous = None
        exempt = False
        for k, part in enumerate(parts):
            if part.kind == "operator":
                pending = part.op if part.op in ("&&", "||") else None
                continue
            chained = k + 1 < len(parts) and parts[k + 1].kind == "operator" and \
                parts[k + 1].op in ("&&", "||")
            tctx = replace(ctx, tested=True) if chained else ctx
            if pending is None:
                self._last_test = ()
                status = self._node(part, st, tctx) if chained else \
                    self._statement(part, st, ctx)
                previous, exempt = part, chained
                continue
            runs = status if pending == "&&" else (None if status is None else not status)
            if runs is False:
                exempt = True  # the status is that of a tested part
                continue
            if runs is True:
                guard = (self._as_written(previous.pos), self._last_test) if previous \
                    else None
                status = self._node(part, st, replace(tctx, guard=guard)) if chained else \
                    self._statement(part, st, replace(ctx, guard=guard))
            else:
                status = self._maybe(part, st, tctx)
            previous, exempt = part, chained
        self._exempt = exempt
        return status

    def _maybe(self, node: Node, st: State, ctx: Ctx) -> bool | None:
        """A node that may or may not run: its state survives only if it does not exit."""
        fork = st.fork()
        try:
            self._node(node, fork, replace(ctx, conditional=True))
        except (_Exit, Abort):
            return None
        self._merge(st, [st.fork(), fork], node)
        return None

    def _pipeline(self, node: Node, st: State, ctx: Ctx) -> bool | None:
        commands = [p for p in node.parts if p.kind not in ("pipe", "reservedword")]
        negate = any(p.kind == "reservedword" and p.word == "!" for p in node.parts)
        status = None
        saved = self._pipe_in
        for k, cmd in enumerate(commands):
            self._last_argv = None
            # every element of a multi-command pipeline runs in a subshell
            try:
                status = self._node(cmd, st.fork() if len(commands) > 1 else st, ctx)
            finally:
                self._pipe_in = saved
            if k + 1 < len(commands):
                self._pipe_in = self._printed(cmd, st)
        self._pipe_in = saved
        if len(commands) > 1:
            status = None
        return (not status if status is not None else None) if negate else status

    def _compound(self, node: Node, st: State, ctx: Ctx) -> bool | None:
        inner = [p for p in node.list if p.kind != "reservedword"]
        subshell = any(p.kind == "reservedword" and p.word == "(" for p in node.list)
        target = st.fork() if subshell else st
        status = None
        # `while read p; do gen --out "$p"; done < paths.txt`: what the body reads
        redirects = getattr(node, "redirects", []) or []
        saved = self._pipe_in
        if any(r.type in ("<", "<<", "<<-", "<<<") for r in redirects):
            self._pipe_in = self._given_stdin(redirects, self._stdin(redirects, st), st)
        try:
            for part in inner:
                status = self._statement(part, target, ctx)
        except _Exit as stop:
            if not subshell:
                raise
            return stop.status == "0"
        finally:
            self._pipe_in = saved
        for redirect in getattr(node, "redirects", []) or []:
            self._redirect_word(redirect, target)
        return status

    def _if(self, node: Node, st: State, ctx: Ctx) -> bool | None:
        branches: list[tuple[list[Node], list[Node]]] = []  # (condition, body) nodes
        current: Any = None  # [condition nodes, body nodes] of the branch being read
        mode = ""
        else_body: Any = None
        for part in _flat(node.parts):
            if part.kind == "reservedword" and part.word in ("if", "elif"):
                current = [[], []]
                branches.append(current)
                mode = "cond"
            elif part.kind == "reservedword" and part.word == "then":
                mode = "body"
            elif part.kind == "reservedword" and part.word == "else":
                else_body = []
                mode = "else"
            elif part.kind == "reservedword" and part.word == "fi":
                break
            elif mode == "cond":
                current[0].append(part)
            elif mode == "body":
                current[1].append(part)
            elif mode == "else":
                else_body.append(part)
        head = _first_command(branches[0][0]) if branches else None
        if head is not None and head.parts and head.parts[0].kind == "word" and \
                head.parts[0].word in (CASE, CASE_FALLTHROUGH):
            return self._case(head, _arms(else_body or []), node, st, ctx)
        undecided: list[list[Node]] = []
        for cond, body in branches:
            if undecided:
                undecided.append(body)
                continue
            self._last_test = ()
            decided = self._run_nodes(cond, st, replace(ctx, tested=True))
            if decided is True:
                guard = (self._as_written((cond[0].pos[0], cond[-1].pos[1])).rstrip("; \n"),
                         self._last_test)
                return self._run_nodes(body, st, replace(ctx, guard=guard))
            elif decided is None:
                undecided.append(body)
        if not undecided:
            return self._run_nodes(else_body or [], st, ctx)
        undecided.append(else_body or [])
        return self._branches(undecided, node, st, ctx)

    def _branches(self, undecided: list[list[Node]], node: Node, st: State, ctx: Ctx
                  ) -> bool | None:
        """Bodies of which one runs, not known which: each in a fork, then merged."""
        survivors = []
        for body in undecided:
            fork = st.fork()
            try:
                self._run_nodes(body, fork, replace(ctx, conditional=True))
            except (_Exit, Abort):
                continue
            survivors.append(fork)
        if not survivors:  # every branch exits: so does the script, somewhere here
            file, line = self._where(node)
            raise _Exit("?", None if ctx.conditional else
                        Exit(file, line, "?", self.src.raw(node.pos)[:120]))
        self._merge(st, survivors, node)
        return None

    _last_test: tuple[Word, ...] = ()

    def _case(self, head: Node, arms: list[Node], node: Node, st: State, ctx: Ctx) -> bool | None:
        """`case`: the arm whose pattern matches when the word and the patterns are
        known; otherwise each arm that may match runs conditionally (never in order)."""
        words = [p for p in head.parts if p.kind == "word"]
        fallthrough = words[0].word == CASE_FALLTHROUGH
        subject = self._expand(words[1], st, split=False) if len(words) > 1 else []
        value = subject[0].value if subject else ""
        undecided: list[list[Node]] = []
        definite = False
        for cond, body in arms:
            pcmd = _first_command(cond)
            pwords = [p for p in pcmd.parts if p.kind == "word"][1:] if pcmd else []
            regexes = [self._pattern(w, st) for w in pwords]
            known = value is not None and all(r is not None for r in regexes)
            matches = known and value is not None and any(
                r.fullmatch(value) for r in regexes if r is not None)
            if fallthrough:
                undecided.append(body)
                continue
            if not undecided and known:
                if matches:
                    return self._run_nodes(body, st, ctx)
                continue
            if known and not matches:
                continue
            undecided.append(body)
            if matches:
                definite = True
                break
        if not undecided:
            return True
        if not definite:
            undecided.append([])
        return self._branches(undecided, node, st, ctx)

    def _pattern(self, node: Node, st: State) -> re.Pattern[str] | None:
        """A case pattern as a regex: quoted parts literal, unquoted parts a glob."""
        raw = self.src.raw(node.pos)
        pieces = self._scan(raw, node.pos[0], st, substitutions(node), dq=False)
        if not all(p.known for p in pieces):
            return None
        text = "".join(p.text if not p.quoted else re.sub(r"([*?\[])", r"[\1]", p.text)
                       for p in pieces if p.fields is None)
        return glob_regex(text)

    def _run_nodes(self, nodes: list[Node], st: State, ctx: Ctx) -> bool | None:
        status: bool | None = True
        for n in nodes:
            status = self._statement(n, st, ctx)
        return status

    def _loop(self, node: Node, st: State, ctx: Ctx) -> bool | None:
        parts = node.parts
        if node.kind == "for":
            unrolled = self._for_items(node, st)
            if unrolled is not None:
                name, items = unrolled
                body = [p for p in parts if p.kind not in ("reservedword", "word", "operator")]
                status: bool | None = True
                for item in items:  # a known list: each iteration, as bash runs them
                    old = st.vars.get(name)
                    st.vars[name] = Var(item.text, bool(old and old.exported),
                                        where=f"{self.src.file}:{self.src.line(node.pos[0])}")
                    status = self._run_nodes(body, st, ctx)
                return status
        fork = st.fork()
        if node.kind == "for":
            names = [p for p in parts if p.kind == "word"]
            if names:
                fork.vars[names[0].word] = Var(None, reason="a for-loop variable")
        body = [p for p in parts if p.kind not in ("reservedword", "word", "operator")]
        # what the body assigns differs from one iteration to the next: unknown inside
        for name in self._assigned_in(body, fork, ctx):
            old = fork.vars.get(name)
            fork.vars[name] = Var(None, bool(old and old.exported),
                                  "changes from one loop iteration to the next")
        try:
            self._run_nodes(body, fork, replace(ctx, conditional=True))
        except (_Exit, Abort):
            return None
        self._merge(st, [st.fork(), fork], node)
        return None

    def _assigned_in(self, body: list[Node], st: State, ctx: Ctx) -> set[str]:
        """Variables a loop body may assign: from a trial run of the body (nothing it
        records is kept), or, in loops nested deeper than 3, from the text."""
        names = set(re.findall(r"(?:^|[\s;(&|{])(?:local\s+|export\s+|declare\s+\S*\s*)?"
                               r"([A-Za-z_][A-Za-z0-9_]*)(?:\[[^]]*\])?\+?=",
                               "\n".join(self.src.raw(n.pos) for n in body)))
        names |= set(re.findall(r"\b(?:read|let|printf\s+-v)\s+(?:-\S+\s+)*"
                                r"([A-Za-z_][A-Za-z0-9_]*)", "\n".join(
                                    self.src.raw(n.pos) for n in body)))
        if self._loop_depth >= 3:
            return names
        marks = (len(self.commands), len(self.unknowns), set(self._seen_unknowns),
                 list(self.vanished))
        trial = st.fork()
        self._loop_depth += 1
        try:
            self._run_nodes(body, trial, replace(ctx, conditional=True))
        except (_Exit, Abort, _Return):
            pass
        finally:
            self._loop_depth -= 1
            del self.commands[marks[0]:]
            del self.unknowns[marks[1]:]
            self._seen_unknowns = marks[2]
            self.vanished = marks[3]
        names |= {k for k in set(trial.vars) | set(st.vars) if trial.vars.get(k) != st.vars.get(k)}
        return names

    def _for_items(self, node: Node, st: State) -> tuple[str, list[Word]] | None:
        """(variable, items) of a `for NAME in WORDS` whose words are all known (at most
        MAX_UNROLL) and whose body has no break/continue; None otherwise."""
        parts = node.parts
        if len(parts) < 2 or parts[1].kind != "word" or \
                re.search(r"\b(break|continue)\b", self.src.raw(node.pos)):
            return None
        name = parts[1].word
        if len(parts) > 2 and parts[2].kind == "reservedword" and parts[2].word == "in":
            items = []
            for p in parts[3:]:
                if p.kind != "word":
                    break
                items.extend(self._expand(p, st))
        else:
            items = list(st.positional)
        if not all(w.known for w in items) or len(items) > MAX_UNROLL:
            return None
        return name, items

    def _merge(self, st: State, branches: list[State], node: Node) -> None:
        file, line = self._where(node)
        names = set().union(*(b.vars for b in branches))
        for name in names:
            values = [b.vars.get(name) for b in branches]
            first = values[0]
            if all(v == first for v in values):
                if first is None:
                    st.vars.pop(name, None)
                else:
                    st.vars[name] = first
                continue
            shown = sorted({"unset" if v is None else repr(v.value) if v.value is not None
                            else "unknown" for v in values})
            st.vars[name] = Var(None, exported=any(v is not None and v.exported for v in values),
                                reason=f"differs by branch at {file}:{line} "
                                       f"({' or '.join(shown)})")
        cwds = {b.cwd for b in branches}
        st.cwd = cwds.pop() if len(cwds) == 1 else None
        st.opaque = next((b.opaque for b in branches if b.opaque), "")
        st.errexit = any(b.errexit for b in branches)
        st.nounset = any(b.nounset for b in branches)
        st.external = any(b.external for b in branches)
        st.created = frozenset.intersection(*(b.created for b in branches)) | frozenset(
            "?" + c for b in branches for c in b.created)
        st.integers = frozenset().union(*(b.integers for b in branches))
        st.exported_unset = frozenset().union(*(b.exported_unset for b in branches))
        st.positional = branches[0].positional if all(
            b.positional == branches[0].positional for b in branches) else tuple(
            Word("", "$@", known=False, reason=f"differs by branch at {file}:{line}") for _ in
            range(1))
        for b in branches:
            st.functions.update(b.functions)
        st.allexport = any(b.allexport for b in branches)

    # -- simple commands

    def _command(self, node: Node, st: State, ctx: Ctx) -> bool | None:
        file, line = self._where(node)
        try:
            return self._simple(node, st, ctx, file, line)
        except Abort:
            raise
        except Stop as stop:  # set -u on an unset variable, ${V:?}: bash stops here
            raise _Exit("1", None if ctx.conditional else
                        Exit(file, line, "1", str(stop))) from None

    def _simple(self, node: Node, st: State, ctx: Ctx, file: str, line: int) -> bool | None:
        # `$?` is known only right after `X="$(conda shell.bash hook)"` (the conda init
        # block's `if [ $? -eq 0 ]`): conda is there, so the hook exits 0
        self.status, self._next_status = self._next_status, None
        assigns = [p for p in node.parts if p.kind == "assignment"]
        words = [p for p in node.parts if p.kind == "word"]
        redirects = [p for p in node.parts if p.kind == "redirect"]
        first = words[0].word if words else ""
        if first == ARITH:
            return self._arith(words[1:], st, file, line)
        if first == DTEST:
            # no field splitting in [[ ]]: an empty expansion is still an operand
            args = [(self._expand(n, st, split=False) or [Word("", n.word)])[0]
                    for n in words[1:]]
            if args and args[-1].text == "]]":
                args.pop()
            self._last_test = tuple(args)
            return self._test(args, st, double=True)
        if any(self.src.raw(w.pos).endswith(ARRAY_MARK) for w in words):
            return self._arrays(words, st, file, line)
        if words and not assigns and _ELEMENT.match(self.src.raw(words[0].pos)):
            return self._element_assign(words, st, file, line)
        if first == "read" and redirects:
            done = self._read_heredoc(words, redirects, st, file, line)
            if done is not None:
                return done
        declaring = first in DECLARE
        argv: list[Word] = []
        self.vanished = []
        for i, w in enumerate(words):
            assignment = declaring and i > 0 and "=" in w.word
            argv.extend(self._expand(w, st, split=not assignment, braces=True))
        self._last_argv = argv
        targets = self._redirections(argv, redirects, st, ctx, file, line)
        if targets is None:
            return False
        if not argv:
            for a in assigns:
                self._assign(a, st, line, export=st.allexport)
            key = self.src.raw(assigns[-1].pos).split("=", 1)[0] if assigns else ""
            last = st.vars.get(key)
            hook = conda.hook_tool(last.text) if last is not None and last.text else None
            if hook is not None and not redirects and \
                    conda.find_root(hook[0], hook[1], st.vars, st.cwd) is not None:
                self._next_status = "0"
            return True
        prefix = {}
        for a in assigns:
            name, value = self._assignment_value(a, st, line)
            if name:
                prefix[name] = replace(value, exported=True)
        return self._run(argv, prefix, targets, st, ctx, file, line, tuple(self.vanished))

    def _run(self, argv: list[Word], prefix: dict[str, Var], targets: tuple[Word, ...],
             st: State, ctx: Ctx, file: str, line: int, vanished: tuple[Word, ...] = ()
             ) -> bool | None:
        name = argv[0].text if argv[0].known else ""
        args = argv[1:]
        if name == "wait" and not args:
            self._racing = []  # every job started with `&` has ended
        if not argv[0].known:
            self._unknown(file, line, argv[0].source, f"the program is not known: "
                                                       f"{argv[0].reason}")
            self._unseen(file, line, f"{argv[0].source}: the program is not known "
                                     f"({argv[0].reason})")
        for builtin in (self._run_wrapper, self._run_state, self._run_flow, self._run_values):
            got = builtin(name, args, prefix, targets, st, ctx, file, line)
            if not isinstance(got, _NotMine):
                return got
        return self._run_program(argv, name, args, prefix, targets, st, ctx, file, line,
                                 vanished)

    def _run_wrapper(self, name: str, args: list[Word], prefix: dict[str, Var],
                     targets: tuple[Word, ...], st: State, ctx: Ctx, file: str, line: int
                     ) -> bool | None | _NotMine:
        """exec, command -v, the wrappers (nohup, env, srun, ...), declarations."""
        if name == "exec" and not args:
            return True  # `exec >log 2>&1`: redirects the script itself
        if name == "command" and args and args[0].text in ("-v", "-V"):
            return self._resolves(args[1:], st)  # looks a program up; runs nothing
        if name in WRAPPERS and args:
            rest = _unwrap(name, args, prefix)
            if rest:
                if name == "exec":
                    self._run(rest, prefix, targets, st, ctx, file, line)
                    raise _Exit("exec", None)
                return self._run(rest, prefix, targets, st, ctx, file, line)
        if name == "local" and not self._locals:
            return False  # bash: `local: can only be used in a function`, nothing assigned
        if name in DECLARE:
            return self._declare(name, args, st, file, line)
        return NOT_MINE

    def _run_state(self, name: str, args: list[Word], prefix: dict[str, Var],
                   targets: tuple[Word, ...], st: State, ctx: Ctx, file: str, line: int
                   ) -> bool | None | _NotMine:
        """unset, set, cd, pushd/popd, source."""
        if name == "unset":
            for a in args:
                if not a.text.startswith("-"):
                    st.vars.pop(a.text, None)
                    st.functions.pop(a.text, None)
                    st.exported_unset = st.exported_unset - {a.text}
            return True
        if name == "set":
            return self._set(args, st)
        if name == "cd":
            return self._cd(args, st)
        if name in ("pushd", "popd"):
            st.cwd = None
            return None
        if name in ("source", "."):
            return self._source(args, st, ctx, file, line)
        return NOT_MINE

    def _run_flow(self, name: str, args: list[Word], prefix: dict[str, Var],
                  targets: tuple[Word, ...], st: State, ctx: Ctx, file: str, line: int
                  ) -> bool | None | _NotMine:
        """exit, return, shift, tests, true/false."""
        if name in ("exit", "return"):
            self._exit(name, args, st, ctx, file, line)
        if name == "shift":
            return self._shift(args, st)
        if name in ("[", "test"):
            words = args[:-1] if name == "[" and args and args[-1].text == "]" else args
            self._last_test = tuple(words)
            return self._test(list(words), st)
        if name in ("true", ":"):
            return True
        if name == "false":
            return False
        return NOT_MINE

    def _exit(self, name: str, args: list[Word], st: State, ctx: Ctx, file: str,
              line: int) -> NoReturn:
        status = args[0].text if args else "0"
        if name == "return" and ctx.depth:
            raise _Return()
        record = None
        if not ctx.conditional:
            guard_text, guard_words = ctx.guard or ("", ())
            empty = [v for w in guard_words for v in w.empty] + [
                r for w in guard_words for r in w.refs[:1]
                if NAME.fullmatch(r) and (st.vars.get(r) is None or st.vars[r].value == "")]
            record = Exit(file, line, status, guard_text, dedupe(empty),
                          tuple(self._missing_paths(guard_words, st)))
        raise _Exit(status, record)

    def _shift(self, args: list[Word], st: State) -> bool | None:
        n = (maybe_int(args[0].text, 0, 2**31) if args else None)
        n = 1 if n is None else n
        if n > len(st.positional) and all(w.known for w in st.positional):
            return False  # bash: shift count out of range, nothing shifted
        if not all(w.known for w in st.positional[:n]):
            st.positional = (Word("", "$@", known=False,
                                  reason="arguments after a shift past unknown ones"),)
            return None
        st.positional = st.positional[n:]
        return True

    def _run_values(self, name: str, args: list[Word], prefix: dict[str, Var],
                    targets: tuple[Word, ...], st: State, ctx: Ctx, file: str, line: int
                    ) -> bool | None | _NotMine:
        """eval, read/mapfile/printf -v, let, and the script's own functions."""
        if name == "eval":
            if args and all(a.known for a in args):
                self._text_in_place(file, line, " ".join(a.text for a in args), st, ctx)
                return None
            hook = conda.hook_tool(args[0].text) if len(args) == 1 else None
            if hook is not None:  # `eval "$(conda shell.bash hook)"`: sets only its own
                self._conda_hook(hook[0], conda.find_root(hook[0], hook[1], st.vars, st.cwd), st,
                                 ctx, file, line, auto_base=hook[0] == "conda")
                return None
            self._unknown(file, line, " ".join(w.source for w in [Word(name, name), *args]),
                          "eval of a value that is not known")
            self._unseen(file, line, "eval of a value that is not known")
            self._opaque(st, f"eval at {posixpath.basename(file)}:{line}")
            return None
        if name in ("read", "mapfile", "readarray") or name == "printf" and \
                any(a.text.startswith("-v") for a in args):
            return self._reads(name, args, st, file, line)
        if name == "let":
            return self._arith_texts([a.text if a.known else None for a in args], st,
                                     file, line)
        fn = st.functions.get(name)
        tool = posixpath.basename(name)
        if tool in conda.TOOLS and args and args[0].text == "run" and (
                fn is None or isinstance(fn[0], conda.Hook)):
            root = fn[0].root if fn is not None and isinstance(fn[0], conda.Hook) else \
                conda.find_root(tool, name, st.vars, st.cwd)
            return self._conda_run(tool, root, args[1:], prefix, targets, st, ctx, file, line)
        if fn is not None and isinstance(fn[0], conda.Hook):
            return self._conda_call(fn[0], args, prefix, targets, st, ctx, file, line)
        if name in st.functions:
            # `gen < paths.txt`: the programs of its body read what it reads
            saved, self._pipe_in = self._pipe_in, self._given or self._pipe_in
            try:
                return self._call(name, args, st, ctx, file, line)
            finally:
                self._pipe_in = saved
        return NOT_MINE

    def _run_program(self, argv: list[Word], name: str, args: list[Word],
                     prefix: dict[str, Var], targets: tuple[Word, ...], st: State, ctx: Ctx,
                     file: str, line: int, vanished: tuple[Word, ...]) -> bool | None:
        """A program the script starts: recorded with the environment it inherits; a
        shell script or `bash -c` string it runs is read too."""
        search = st.vars.get("PATH")
        if name in self._defined and "/" not in name and search is not None and \
                search.value is not None and shutil.which(name, path=search.value) is None:
            # a function the script defines only where it did not go (`[ -z "$X" ] ||
            # f() {...}`), and no such program: bash says `command not found` (127)
            self._unknown(file, line, name, f"{name}: not defined here (its definition was "
                                            "not reached) and not a program on PATH")
            return False
        env = {k: v for k, v in st.vars.items() if v.exported and v.array is None}
        env.update(prefix)
        if len(self.commands) >= MAX_COMMANDS:
            raise TooComplex(f"{self._here(file, line)}more than {MAX_COMMANDS} programs "
                             "started (recursion or loops of functions); not a launch script "
                             "preflight can read")
        files = Files(self.written, self.writers)
        if ctx.background:
            # `accelerate launch ... &`: it reads its config while the script goes on;
            # a later write of that file (before a `wait`) races with that read
            files.started = f"{posixpath.basename(file)}:{line}"
            # the scripts the background shell reads itself (`bash launch.sh &`): bash
            # reads a script as it runs it, so a later write races with those too
            files.read_in_background = tuple(self._reading[self._bg_reading:])
            self._racing.append(files)
        self.commands.append(Command(tuple(argv), env, file, line, st.cwd, ctx.conditional,
                                     targets, vanished, st.opaque,
                                     writes=getattr(self, "redirect_writes", ()),
                                     files=files))
        made = st.external or any(c.startswith("?") for c in st.created)  # before this one
        self._files_effect(name, args, st)
        inline = self._shell_string(name, args)
        if inline is not None:
            text, zero, positional = inline
            self._child_text(text, zero, positional, env, st, ctx, file, line)
            return None
        script, given, positional, hidden = self._shell_script(name, args, st)
        if hidden:
            self._unseen(file, line, hidden)
        if script is None or self._file(script) is None and not os.path.isfile(script):
            # what a child script the evaluator reads writes is judged by its commands
            self._may_write(argv, st, f"{posixpath.basename(file)}:{line}")
        if script is not None and given == name and not (
                os.path.isfile(script) and os.access(script, os.X_OK)) and (
                os.path.isfile(script) or self._file(script) is not None):
            # `./x.sh` itself (not `bash x.sh`) without its execute bit: bash says
            # `Permission denied` (126) and nothing in it runs, unless a program before
            # (a chmod) may have set the bit
            if not made:
                return False
            ctx = replace(ctx, conditional=True)
        if script is not None:
            # bash's `$0` there is the script as written (`bash inner.sh`: inner.sh)
            saved, self.zero = self.zero, given
            try:
                self._child_script(script, positional, env, st, ctx, file, line, made)
            finally:
                self.zero = saved
        elif name and (started := self._python_launch(name, args, st)):
            self._unseen(file, line, started)
        return None

    def _file(self, path: str) -> Written | None:
        """What the script wrote at `path` so far, or a program that may have."""
        return Files(self.written, self.writers).get(posixpath.normpath(path))

    def _may_write(self, argv: list[Word], st: State, where: str) -> None:
        """Record the files the program may write (writers.claims); an exact write the
        script made before to one of them is not known any more."""
        program = posixpath.basename(argv[0].text) if argv and argv[0].known else ""
        found = [writers.Writer(c, st.cwd, program, where)
                 for c in writers.claims(argv, self._given, st.cwd)]
        default = writers.accelerate_default_write(argv, st.vars)
        if default:
            found.append(writers.Writer(writers.Claim(default, "its default config"),
                                        st.cwd, program, where))
        if not found:
            return
        self.writers = (*self.writers, *found)
        for files in self._racing:
            files.racing.extend(found)
        covered = {path: w.written() for path in self.written for w in found if w.covers(path)}
        if covered:
            self.written = {**self.written, **covered}

    # -- what the files the script writes hold (`cat > cfg.yaml <<EOF`)

    def _redirections(self, argv: list[Word], redirects: list[Node], st: State, ctx: Ctx,
                      file: str, line: int) -> tuple[Word, ...] | None:
        """A simple command's redirect targets, made and written (None: the command
        fails before it runs, see _writes)."""
        pairs = [(r.type, t) for r in redirects if (t := self._redirect_word(r, st)) is not None]
        targets = tuple(t for _, t in pairs)
        # the targets bash opens for writing: it fails there when the directory is missing
        self.redirect_writes = tuple(t for op, t in pairs if op in (">", ">>", ">|", "&>",
                                                                    ">&", "&>>"))
        for t in targets:
            self._create(t, st, directory=False)
        if self._writes(argv, redirects, st, ctx, f"{posixpath.basename(file)}:{line}"):
            return None
        return targets

    def _writes(self, argv: list[Word], redirects: list[Node], st: State, ctx: Ctx,
                where: str) -> bool:
        """_record_writes; True when the command fails before it runs: a program whose
        here-document bash cannot expand (`set -u`, an unset variable) fails in the child
        bash forked for it, and the script goes on; a builtin's stops the shell (Stop)."""
        try:
            self._record_writes(argv, redirects, st, ctx, where)
        except Abort:
            raise
        except Stop:
            if not argv or argv[0].text in _BUILTINS or argv[0].text in st.functions:
                raise
            self._record_writes(argv, [r for r in redirects if r.type not in ("<<", "<<-")],
                                st, ctx, where)
            return True
        return False

    def _record_writes(self, argv: list[Word], redirects: list[Node], st: State, ctx: Ctx,
                       where: str) -> None:
        """What a simple command leaves in the files it writes: the here-document of
        `cat`, `cat -` and `tee [-a] FILE...` (whose output is their input, stdout and
        each FILE alike), appended for `>>` / `tee -a`; anything else written is not
        known. A write on a branch that may not run leaves the file not known."""
        feed = self._feed = self._stdin(redirects, st)
        self._given = self._given_stdin(redirects, feed, st)
        tee = _tee_files(argv)
        copies = feed is not None and (tee[1] if tee is not None else _cat_of_stdin(argv)) \
            and argv[0].text not in st.functions
        outs = [r for r in redirects if r.type in (">", ">|", ">>", "&>", "&>>", ">&")]
        stdout = [r for r in outs if r.type.startswith("&") or r.input in (None, 1)]
        program = argv[0].text if argv else "a redirect"
        for r in outs:
            target = self._redirect_word(r, st)
            content = feed if copies and len(stdout) == 1 and r in stdout else None
            self._write(target, content, r.type.endswith(">>"), st, ctx, where, program)
        for target, append in (tee[0] if tee is not None else ()):
            self._write(target, feed if copies else None, append, st, ctx, where, program)
        if argv and argv[0].known:
            # one copy of the map for all of them: `rm -rf /tmp/*` may name 30,000 files
            batch: dict[str, Written] = {}
            for target in _changed_files(argv):
                self._write(target, None, False, st, ctx, where, argv[0].text, batch)
            if batch:
                self.written = {**self.written, **batch}
            if posixpath.basename(argv[0].text) == "touch":  # a new file is empty
                for target in argv[1:]:
                    path = self._resolve(target.text, st) if target.known else None
                    if path and not target.text.startswith("-") and not os.path.lexists(
                            path) and posixpath.normpath(path) not in self.written:
                        self._write(target, Word("", ""), False, st, ctx, where, "touch")

    def _stdin(self, redirects: list[Node], st: State) -> Word | None:
        """The here-document a command reads as its input, when that is its only input
        redirect; None otherwise."""
        inputs = [r for r in redirects if r.type in ("<", "<<", "<<-", "<<<", "<>", "<&")
                  and r.input in (None, 0)]
        if len(inputs) != 1 or inputs[0].type not in ("<<", "<<-") or \
                getattr(inputs[0], "heredoc", None) is None:
            return None
        return self._heredoc(inputs[0], st)

    def _given_stdin(self, redirects: list[Node], feed: Word | None, st: State
                     ) -> writers.Stdin | None:
        """What the command reads on its input (writers.Stdin): its last input redirect
        (a here-document, a here-string, a file), else what the pipe before it printed;
        None when the script gives it none (the terminal, or what the script itself
        reads)."""
        inputs = [r for r in redirects if r.type in ("<", "<<", "<<-", "<<<", "<>", "<&")
                  and r.input in (None, 0)]
        if not inputs:
            return self._pipe_in
        last = inputs[-1]
        if last.type in ("<<", "<<-"):
            return writers.Stdin(feed.text if feed is not None else None, "its here-document")
        target = getattr(last, "output", None)
        words = self._expand(target, st, split=False) if target is not None and \
            getattr(target, "kind", "") == "word" else []
        word = words[0] if words else None
        if word is None or not word.known or last.type not in ("<", "<<<"):
            return writers.Stdin(None, "its input")
        if last.type == "<<<":
            return writers.Stdin(word.text + "\n", f"<<< {word.text}")
        return writers.Stdin(self._read_text(word.text, st), f"< {word.text}")

    def _read_text(self, path: str, st: State) -> str | None:
        """What a file holds as the script reads it now: what the script wrote there
        (None when that is not known), else the file on disk (None when unreadable)."""
        full = self._resolve(path, st)
        if full is None:
            return None
        if full == "/dev/null":
            return ""
        written = self._file(full)
        if written is not None:
            return written.text
        # a FIFO blocked open() for ever; a file over the bound is not known either
        data, _ = read_regular(full, 1 << 20, "file")
        return None if data is None else data.decode("utf-8", errors="replace")

    def _printed(self, node: Node, st: State) -> writers.Stdin:
        """What a pipe's element printed, when it is a simple `echo`, `printf` or `cat`
        of files whose words are known; else not known, with the argv of the command
        (`find cfgs ...`: xargs after it is given paths under cfgs)."""
        argv = self._last_argv if node.kind == "command" else None
        if not argv or not argv[0].known or argv[0].text in st.functions:
            return writers.Stdin(None, "the output of the command before it")
        shown = f"the output of {' '.join(w.text for w in argv)[:60]}"
        text = _printed_text(argv) if all(w.known for w in argv) else None
        if text is None and argv[0].text == "cat" and len(argv) > 1 and all(
                w.known and not w.text.startswith("-") for w in argv[1:]):
            parts = [self._read_text(w.text, st) for w in argv[1:]]
            text = None if any(p is None for p in parts) else "".join(
                p for p in parts if p is not None)
        return writers.Stdin(text, shown, tuple(argv))

    def _write(self, target: Word | None, content: Word | None, append: bool, st: State,
               ctx: Ctx, where: str, program: str,
               batch: dict[str, Written] | None = None) -> None:
        """Record what `program` leaves in target; into `batch` (merged by the caller,
        content None and not appended) instead of a new copy of self.written."""
        if target is None or not target.known or target.text.startswith("/dev/"):
            return  # a path not known: nothing known is changed
        path = self._resolve(target.text, st)
        if path is None:
            return
        path = posixpath.normpath(path)
        for files in self._racing:
            files.racing.append(writers.Writer(
                writers.Claim(path, target.text), st.cwd, program, where))
        old = self.written.get(path)
        shown = content.text if content is not None and not append else ""
        if ctx.conditional:
            new = Written(None, where, f"written by {program} at {where} only if that "
                                       "branch runs", shown, maybe=True)
        elif ctx.background:
            new = Written(None, where, f"written in the background (`&`) by {program} at "
                                       f"{where}: it may not be complete when it is read")
        elif content is None:
            new = Written(None, where, f"written by {program} at {where}")
        elif not content.known:
            new = Written(None, where, content.reason or "a part of its here-document is "
                                                         "not known", shown)
        elif not append:
            new = Written(content.text, where)
        elif old is not None and old.text is not None:
            new = Written(old.text + content.text, where)
        else:
            new = Written(None, where, f"appended to at {where}, and what it held before "
                                       "is not known")
        if batch is not None:
            batch[path] = new
        else:
            self.written = {**self.written, path: new}

    # -- conda / mamba / micromamba: their hooks and `activate`, read from the filesystem

    def _conda_hook(self, tool: str, root: str | None, st: State, ctx: Ctx, file: str,
                    line: int, auto_base: bool) -> None:
        """The hook's preamble and conda.sh (conda/activate.py:204-218, :257;
        conda/shell/etc/profile.d/conda.sh:57-66): its own variables, a shell function
        `tool`; and, for conda, `conda activate base` when auto_activate is on (its
        default; the setting is not read here), so what that sets is unknown."""
        where = f"{posixpath.basename(file)}:{line}"
        reason = f"set by the {tool} shell hook at {where}"
        shlvl, path = st.vars.get("CONDA_SHLVL"), st.vars.get("PATH")
        for key in conda.HOOK_VARS[tool]:
            st.vars[key] = Var(None, True, reason, where=f"{file}:{line}")
        if shlvl is not None and shlvl.value is not None:  # conda.sh:57: only when unset
            st.vars["CONDA_SHLVL"] = shlvl
            if path is not None:
                st.vars["PATH"] = path
        elif tool == "conda" and root is not None and path is not None and \
                path.value is not None:
            st.vars["CONDA_SHLVL"] = Var("0", True, where=f"{file}:{line}")
            st.vars["PATH"] = Var(posixpath.join(root, "condabin") + (
                ":" + path.value if path.value else ""), True, where=f"{file}:{line}")
        if tool == "micromamba" and root is not None:  # the root it was found from
            st.vars["MAMBA_ROOT_PREFIX"] = Var(root, True, where=f"{file}:{line}")
        st.functions[tool] = (conda.Hook(tool, root, where), where)
        if not auto_base:
            return
        if root is None:  # no installation here to read base's activation from
            for key in ("CONDA_PREFIX", "CONDA_DEFAULT_ENV", "CONDA_PROMPT_MODIFIER"):
                st.vars[key] = Var(None, True, reason + " (when it activates base)",
                                   where=f"{file}:{line}")
            return
        decided, target = conda.auto_activation(root, st.vars)
        if decided is False:
            return
        if decided and target:  # the hook ends with `conda activate base`
            self._conda_activate(conda.Hook(tool, root, where), target, False, st, ctx, file,
                                 line)
            return
        trial = st.fork()
        self._conda_activate(conda.Hook(tool, root, where), target or "base", False, trial,
                             replace(ctx, conditional=True), file, line)
        why = (f"set if the conda hook at {where} activates an environment (its condarc "
               "auto_activate / default_activation_env could not be read)")
        for key in set(trial.vars) | set(st.vars):
            old, new = st.vars.get(key), trial.vars.get(key)
            if old != new:
                st.vars[key] = Var(None, bool(old and old.exported or new and new.exported),
                                   why, where=f"{file}:{line}")
        if trial.opaque and not st.opaque:
            self._opaque(st, trial.opaque)

    def _conda_call(self, hook: conda.Hook, args: list[Word], prefix: dict[str, Var],
                    targets: tuple[Word, ...], st: State, ctx: Ctx, file: str, line: int
                    ) -> bool | None:
        """The hook's shell function (conda.sh:41-56): activate / deactivate change this
        shell; install/update/remove reactivate; anything else runs the program."""
        cmd = args[0] if args else None
        where = f"{posixpath.basename(file)}:{line}"
        if cmd is not None and not cmd.known:
            self._unknown(file, line, cmd.source, f"{hook.tool} with a subcommand that is "
                                                  "not known")
            self._opaque(st, f"{hook.tool} {cmd.source} at {where}")
            return None
        sub = cmd.text if cmd is not None else ""
        if sub in ("activate", "deactivate"):
            rest = args[1:]
            if not all(a.known for a in rest):
                self._unknown(file, line, f"{hook.tool} {sub}", "an environment that is "
                                                                "not known")
                self._opaque(st, f"{hook.tool} {sub} at {where}")
                return None
            names = [a.text for a in rest if not a.text.startswith("-")]
            if sub == "deactivate":
                return self._conda_deactivate(hook, st, ctx, file, line)
            stack = any(a.text == "--stack" for a in rest)
            return self._conda_activate(hook, names[0] if names else "base", stack, st, ctx,
                                        file, line)
        argv = [Word(hook.tool, hook.tool), *args]
        got = self._run_program(argv, hook.tool, args, prefix, targets, st, ctx, file, line,
                                ())
        if sub in ("install", "update", "upgrade", "uninstall", "remove"):
            # conda.sh:50: `&& __conda_reactivate`: the env's new activation scripts run
            self._opaque(st, f"{hook.tool} {sub} at {where} reactivates the environment")
        return got

    def _conda_run(self, tool: str, root: str | None, args: list[Word],
                   prefix: dict[str, Var], targets: tuple[Word, ...], st: State, ctx: Ctx,
                   file: str, line: int) -> bool | None:
        """`conda run -n ENV CMD`: CMD runs in a shell where conda's wrapper script ran
        the hook and `conda activate ENV` (conda/utils.py `wrap_subprocess_call`); what
        it sets stays there."""
        env_name: str | None = None
        i = 0
        while i < len(args) and args[i].known and args[i].text.startswith("-"):
            opt, _, attached = args[i].text.partition("=")
            if opt in ("-n", "--name", "-p", "--prefix", "--cwd") and not attached:
                value = args[i + 1] if i + 1 < len(args) else None
                if value is None or not value.known:
                    break
                attached = value.text
                i += 1
            if opt in ("-n", "--name", "-p", "--prefix"):
                env_name = attached
            elif opt == "--cwd":
                break  # a working directory of its own: not followed here
            i += 1
        rest = args[i:]
        if not rest or not all(a.known for a in args[:i]) or not rest[0].known or \
                rest[0].text.startswith("-"):
            self._unknown(file, line, f"{tool} run", f"{tool} run: the environment or the "
                                                     "command is not known")
            return None
        child = st.fork()
        self._conda_hook(tool, root, child, ctx, file, line, auto_base=tool == "conda")
        current = st.vars.get("CONDA_PREFIX")
        target = env_name or (current.value if current is not None else "base")
        if target is None:
            self._conda_missing(f"{tool} run", "the active environment is not known", child,
                                file, line)
        else:
            self._conda_activate(conda.Hook(tool, root, ""), target, False, child, ctx, file,
                                 line)
        return self._run(rest, prefix, targets, child, ctx, file, line)

    def _conda_missing(self, label: str, why: str, st: State, file: str, line: int) -> None:
        self._unknown(file, line, label, f"{label}: {why}; its activation scripts and "
                                          "variables are not known")
        self._opaque(st, f"{label} at {posixpath.basename(file)}:{line} ({why})")

    def _conda_activate(self, hook: conda.Hook, name: str, stack: bool, st: State, ctx: Ctx,
                        file: str, line: int) -> bool | None:
        """`conda activate NAME` as `_build_activate_stack` builds it and `_yield_commands`
        orders it (conda/activate.py:335-440): the old env's deactivate.d scripts, PATH,
        CONDA_* and the env's variables exported, then its activate.d/*.sh sourced."""
        label = f"{hook.tool} activate {name}"
        if hook.root is None:
            self._conda_missing(label, f"the {hook.tool} installation is not found on "
                                       "this machine", st, file, line)
            return None
        found = conda.resolve_prefix(name, hook.root, st.vars, st.cwd,
                                     os.access(hook.root, os.W_OK))
        values = None if found is None else conda.env_vars(found)
        if found is None or values is None:
            self._conda_missing(label, "environment not found on this machine" if found is None
                                else "its env_vars files cannot be read", st, file, line)
            return None
        shlvl = st.vars.get("CONDA_SHLVL")
        old_level = 0 if shlvl is None else maybe_int(shlvl.value or "", 0, 1000)
        old = st.vars.get("CONDA_PREFIX")
        if old_level != 0 and not stack and not self._conda_leave(hook, old, label, st, ctx,
                                                                  file, line):
            return None
        at = f"{file}:{line}"
        st.vars["PATH"] = self._conda_path(hook.root, found, old_level, None if stack else old,
                                           st.vars.get("PATH"), label, at)
        new: dict[str, Var] = {
            "CONDA_PREFIX": Var(found, True, where=at),
            "CONDA_DEFAULT_ENV": Var(conda.default_env(found, hook.root), True, where=at),
            "CONDA_SHLVL": Var(None if old_level is None else str(old_level + 1), True,
                               "" if old_level is not None else
                               f"{label}: CONDA_SHLVL before it is not known", where=at),
            "CONDA_PROMPT_MODIFIER": Var(None, True, f"{label}: from conda's changeps1 / "
                                         "env_prompt settings (not read)", where=at),
        }
        for level in range(1, 5) if old_level is None else ():
            new[f"CONDA_PREFIX_{level}"] = Var(None, True, f"{label}: CONDA_SHLVL before it "
                                               "is not known", where=at)
        if old_level:
            new[f"CONDA_PREFIX_{old_level}"] = replace(old, exported=True) if old else Var(
                None, True, f"{label}: the previous CONDA_PREFIX is not known", where=at)
        for key, value in values.items():  # activate.py:387-396: clobbered values saved
            if key in st.vars and old_level is not None:
                new[f"__CONDA_SHLVL_{old_level}_{key}"] = replace(st.vars[key], exported=True)
            new[key] = Var(value, True, where=at)
        st.vars.update(new)
        for script in conda.scripts(found, "activate.d"):
            self._source([Word(script, script)], st, ctx, file, line)
        return None

    def _conda_leave(self, hook: conda.Hook, old: Var | None, label: str, st: State,
                     ctx: Ctx, file: str, line: int) -> bool:
        """The deactivate.d scripts of the env active before (activate.py:435); False
        when they cannot be known (the state is then opaque)."""
        if old is None:  # no CONDA_PREFIX: no environment is active to leave
            return True
        if old.value is not None:
            for script in conda.scripts(old.value, "deactivate.d"):
                self._source([Word(script, script)], st, ctx, file, line)
            return True
        if hook.root is not None and not conda.scripts(hook.root, "deactivate.d"):
            return True  # only the hook's base can be active: it has no deactivate.d
        self._conda_missing(label, "the environment active before it is not known", st,
                            file, line)
        return False

    @staticmethod
    def _conda_path(root: str, prefix: str, old_level: int | None, old: Var | None,
                    path: Var | None, label: str, at: str) -> Var:
        """`_add_prefix_to_path` / `_replace_prefix_in_path` (conda/activate.py:662-736)."""
        if path is None or path.value is None or old_level is None or \
                old_level and (old is None or old.value is None):
            return Var(None, True, f"{label}: PATH before it is not known", where=at)
        dirs = path.value.split(":") if path.value else []
        new = posixpath.join(prefix, "bin")
        if old_level and old is not None and old.value is not None:
            gone = posixpath.join(old.value, "bin")
            idx = dirs.index(gone) if gone in dirs else 0
            if gone in dirs:  # the first occurrence only (activate.py:698-722)
                del dirs[idx]
            dirs[idx:idx] = [new]
        else:
            if not any(d.endswith("condabin") for d in dirs):
                dirs.insert(0, posixpath.join(root, "condabin"))
            dirs.insert(0, new)
        return Var(":".join(dirs), True, where=at)

    def _conda_deactivate(self, hook: conda.Hook, st: State, ctx: Ctx, file: str,
                          line: int) -> bool | None:
        """`conda deactivate`: its deactivate.d scripts, its variables unset, the CONDA_*
        and PATH it restores (not computed: unknown)."""
        shlvl = st.vars.get("CONDA_SHLVL")
        old = st.vars.get("CONDA_PREFIX")
        if (shlvl is None or shlvl.value == "0") and old is None:
            return True  # nothing active: conda prints nothing to evaluate
        label = f"{hook.tool} deactivate"
        values = conda.env_vars(old.value) if old is not None and old.value else None
        if old is None or old.value is None or values is None:
            self._conda_missing(label, "the active environment is not known", st, file, line)
            return None
        for script in conda.scripts(old.value, "deactivate.d"):
            self._source([Word(script, script)], st, ctx, file, line)
        for key in values:
            st.vars.pop(key, None)
        for key in conda.ACTIVATE_VARS:
            st.vars[key] = Var(None, True, f"restored by {label} at "
                                           f"{posixpath.basename(file)}:{line}",
                               where=f"{file}:{line}")
        return None

    def _conda_source(self, target: Word, rest: list[Word], st: State, ctx: Ctx, file: str,
                      line: int) -> bool | None | _NotMine:
        """`source <root>/etc/profile.d/conda.sh` (the hook without activating base) and
        `source activate ENV` / `source deactivate` (conda's bin/activate: conda.sh, then
        `conda activate "$@"`)."""
        if not target.known:
            return NOT_MINE
        path = self._resolve(target.text, st) if "/" in target.text else None
        profile = conda.profile_hook(path) if path and os.path.isfile(path) else None
        if profile is not None:
            self._conda_hook(profile[0], profile[1], st, ctx, file, line, auto_base=False)
            return None
        base = posixpath.basename(target.text)
        if base not in ("activate", "deactivate"):
            return NOT_MINE
        search = st.vars.get("PATH")
        if path is None and search is not None and search.value is not None:
            path = next((posixpath.join(d, base) for d in search.value.split(":")
                         if d and os.path.isfile(posixpath.join(d, base))), None)
        root = posixpath.dirname(posixpath.dirname(path)) if path else ""
        if not root or not os.path.isfile(posixpath.join(root, "etc", "profile.d", "conda.sh")):
            return NOT_MINE
        self._conda_hook("conda", root, st, ctx, file, line, auto_base=False)
        hook = conda.Hook("conda", root, f"{posixpath.basename(file)}:{line}")
        if not all(a.known for a in rest):
            self._conda_missing(f"source {base}", "an environment that is not known", st,
                                file, line)
            return None
        if base == "deactivate":
            return self._conda_deactivate(hook, st, ctx, file, line)
        names = [a.text for a in rest if not a.text.startswith("-")]
        return self._conda_activate(hook, names[0] if names else "base", False, st, ctx,
                                    file, line)

    # -- what bashlex cannot parse, rewritten by source.rewrite

    def _arith(self, words: list[Node], st: State, file: str, line: int) -> bool | None:
        texts = [w.value for n in words for w in self._expand(n, st, split=False)]
        return self._arith_texts(texts, st, file, line)

    def _arith_texts(self, texts: list[str | None], st: State, file: str,
                     line: int) -> bool | None:
        """`(( ... ))` and `let`: assigns, and succeeds when the last value is not 0."""
        value: int | None = None
        for text in texts:
            if text is None:
                self._unknown(file, line, "", "arithmetic on a value that is not known")
                return None
            value, assigned = arith.run(text, self.arith_lookup(st))
            if value is None and not assigned:
                self._unknown(file, line, text[:80], "arithmetic not evaluated")
            for key, v in assigned.items():
                old = st.vars.get(key)
                st.vars[key] = Var(str(v) if v is not None else None,
                                   bool(old and old.exported) or key in st.exported_unset,
                                   "" if v is not None else "arithmetic on an unknown value",
                                   where=f"{file}:{line}")
        return None if value is None else value != 0

    def _arrays(self, words: list[Node], st: State, file: str, line: int) -> bool | None:
        """`A=(...)`, `A+=(...)`, `local -a A=(...)`, `declare -a A=(...) B=(...)`."""
        marked = [k for k, w in enumerate(words) if self.src.raw(w.pos).endswith(ARRAY_MARK)]
        decl = words[:marked[0]]
        flags = ""
        builtin = ""
        if decl:
            builtin = decl[0].word
            if builtin not in DECLARE:
                self._unknown(file, line, self.src.raw(decl[0].pos), "array syntax after a "
                              "command is not evaluated")
                return None
            expanded = [w for n in decl[1:] for w in self._expand(n, st, split=False)]
            flags = "".join(a.text[1:] for a in expanded if a.text.startswith("-"))
            self._declare(builtin, expanded, st, file, line)
        for k, start in enumerate(marked):
            end = marked[k + 1] if k + 1 < len(marked) else len(words)
            name = self.src.raw(words[start].pos)[:-1]
            append = name.endswith("+")
            name = name.rstrip("+")
            self._save_local(builtin, name, st)
            items: list[Word] = []
            sparse = False
            if name not in st.vars:  # bash declares it (empty) before expanding the items
                st.vars[name] = Var("", False, array=())
                created_here = True
            else:
                created_here = False
            gone = len(self.vanished)
            for n in words[start + 1:end]:
                if re.match(r"\[[^]]*\]=", self.src.raw(n.pos)):
                    sparse = True  # ([k]=v ...): explicit indices
                items.extend(self._expand(n, st))
            lost = tuple(w for w in self.vanished[gone:] if w.empty)
            del self.vanished[gone:]
            where = f"{file}:{line}"
            old = None if created_here else st.vars.get(name)
            if "A" in flags or sparse:
                st.vars[name] = Var(None, reason="an array with explicit indices "
                                    "(not evaluated)", where=where)
                continue
            if append and old is not None:
                before = old.array if old.array is not None else (
                    (Word(old.value, name),) if old.value is not None else None)
                if before is None:
                    st.vars[name] = Var(None, reason="+= onto an unknown array", where=where)
                    continue
                items = list(before) + items
                lost = old.vanished + lost
            first = items[0] if items else None
            st.vars[name] = Var("" if first is None else first.value, False,
                                "" if first is None or first.known else first.reason,
                                where=where, array=tuple(items), vanished=lost)
        return True

    def _element_assign(self, words: list[Node], st: State, file: str, line: int) -> bool | None:
        """`A[i]=value`."""
        raw = self.src.raw(words[0].pos)
        m = _ELEMENT.match(raw)
        assert m is not None  # _simple sends only `NAME[...]=` words here
        name, index = m.group(1), m.group(2)
        value = self._expand_raw(raw[m.end():], words[0].pos[0] + m.end(), st,
                                 substitutions(words[0]))
        k = arith.evaluate(index, self.arith_lookup(st))
        old = st.vars.get(name)
        items: tuple[Word, ...] | None = None if old is None else old.array if \
            old.array is not None else (
            (Word(old.value, name),) if old.value is not None else None)
        where = f"{file}:{line}"
        if old is None and k == 0:
            items = ()
        if k is None or items is None or not 0 <= k <= len(items) or \
                not all(w.known for w in items[:k]):
            st.vars[name] = Var(None, reason=f"{raw[:40]}: an element of an array "
                                "that is not known", where=where)
            return True
        elems = list(items)
        elems[k:k + 1] = [value]
        st.vars[name] = Var(elems[0].value, bool(old and old.exported), elems[0].reason,
                            where=where, array=tuple(elems))
        return True

    def _resolves(self, args: list[Word], st: State) -> bool | None:
        """`command -v X`: whether X is a function, builtin or program on PATH."""
        if not args or not args[0].known:
            return None
        name = args[0].text
        if name in st.functions or name in _BUILTINS:
            return True
        path = st.vars.get("PATH")
        if path is None or path.value is None or st.opaque:
            return None
        if "/" in name:
            full = self._resolve(name, st)
            return None if full is None else os.access(full, os.X_OK)
        return shutil.which(name, path=path.value) is not None

    def _text_in_place(self, file: str, line: int, text: str, st: State, ctx: Ctx) -> None:
        """`eval` of a known string: read as script text in the current shell."""
        if ctx.depth >= MAX_SOURCE_DEPTH:
            # bash runs it: what it sets and starts is not known (never skipped unsaid)
            self._unknown(file, line, text, "eval nested too deep: not read")
            self._unseen(file, line, "eval nested too deep: not read")
            self._opaque(st, f"eval at {posixpath.basename(file)}:{line}")
            return
        self._name(f"{file}:{line} (eval)", self.given.get(file))  # the file's own
        self._run_text(f"{file}:{line} (eval)", text, [], st,
                       replace(ctx, depth=ctx.depth + 1))

    def _opaque(self, st: State, why: str) -> None:
        """Something set variables here that cannot be seen: every variable, set or
        not, is from now on unknown ("may be set there"), never empty or absent."""
        for key, old in list(st.vars.items()):
            st.vars[key] = Var(None, old.exported, f"may be set there: {why}", old.refs,
                               old.where)
        st.opaque = why

    def _reads(self, name: str, args: list[Word], st: State, file: str,
               line: int) -> bool | None:
        """read / mapfile / printf -v: the variables they assign are unknown."""
        names: list[str] = []
        # the options that take a value (bash builtins/read.def, mapfile.def): `-t` is a
        # flag of mapfile (strip the newline), a value of read (the timeout)
        with_value = {"read": "adnNptui", "mapfile": "dnOsuCc", "readarray": "dnOsuCc",
                      "printf": "v"}[name]
        i = 0
        while i < len(args):
            a = args[i]
            if not a.known:
                if name != "printf":
                    self._opaque(st, f"{name} into names not known at "
                                     f"{posixpath.basename(file)}:{line}")
                i += 1
                continue
            t = a.text
            if t.startswith("-") and len(t) > 1 and t != "--":
                opt = t[1:]
                for j, c in enumerate(opt):
                    if c in with_value:
                        val = opt[j + 1:] or (args[i + 1].text if i + 1 < len(args) else "")
                        if not opt[j + 1:]:
                            i += 1
                        if c in "av" and NAME.fullmatch(val):
                            names.append(val)
                        break
                i += 1
                continue
            if name == "read" and NAME.fullmatch(t):
                names.append(t)
            elif name != "read" and NAME.fullmatch(t) and name != "printf":
                names.append(t)
            if name == "printf":
                break
            i += 1
        if not names:
            names = {"read": ["REPLY"], "printf": []}.get(name, ["MAPFILE"])
        for key in names:
            old = st.vars.get(key)
            st.vars[key] = Var(None, bool(old and old.exported),
                               f"{name} at {posixpath.basename(file)}:{line} (input not known)",
                               where=f"{file}:{line}")
        return None

    def _read_heredoc(self, words: list[Node], redirects: list[Node], st: State, file: str,
                      line: int) -> bool | None:
        """`read [-r] -d '' NAME <<EOF ... EOF` (OpenRLHF keeps its command this way):
        NAME is the whole here-document, expanded, ends trimmed; status 1 (no NUL read).
        None when the command is not of that form."""
        args = [w for n in words[1:] for w in self._expand(n, st)]
        if not all(a.known for a in args):
            return None
        texts = [a.text for a in args]
        raw_mode = False
        names = []
        i, delim_empty = 0, False
        while i < len(texts):
            t = texts[i]
            if t == "-r":
                raw_mode = True
            elif t == "-d" and i + 1 < len(texts):
                delim_empty = texts[i + 1] == ""
                i += 1
            elif t.startswith("-"):
                return None
            else:
                names.append(t)
            i += 1
        heredocs = [r for r in redirects if r.type in ("<<", "<<-") and
                    getattr(r, "heredoc", None) is not None]
        if not delim_empty or len(names) != 1 or not NAME.fullmatch(names[0]) or \
                len(heredocs) != 1:
            return None
        value = self._heredoc(heredocs[0], st)
        old = st.vars.get(names[0])
        if not value.known:
            st.vars[names[0]] = Var(None, bool(old and old.exported), value.reason,
                                    where=f"{file}:{line}", text=value.text)
            return False
        text = value.text if raw_mode else re.sub(r"\\(.)", r"\1",
                                                  value.text.replace("\\\n", ""), flags=re.S)
        st.vars[names[0]] = Var(text.strip(" \t\n"), bool(old and old.exported),
                                where=f"{file}:{line}")
        return False

    def _heredoc(self, redirect: Node, st: State) -> Word:
        """The text a here-document feeds its command, as bash makes it (bash
        make_cmd.c `make_here_document`, subst.c `expand_string_to_string`): `<<-`
        strips leading tabs from every line; a quoted delimiter (`<<'EOF'`, `<<"EOF"`,
        `<<\\EOF`) keeps the body as written; otherwise it is expanded like a
        double-quoted string in which `"` is an ordinary character, except inside
        `$(...)`, `${...}` and backquotes."""
        at = self.src.text.find("<<", self.src.base + redirect.pos[0])
        span = self.src.bodies.get(at)
        if span is None:
            return Word("", "<<", known=False, reason="a here-document whose body preflight "
                                                      "did not find")
        body = self.src.text[span[0]:span[1]]
        if redirect.type == "<<-":
            body = "".join(ln.lstrip("\t") for ln in body.splitlines(keepends=True))
        # the quotes of `<<'EOF'` (the backslash of `<<\\EOF`) lie just outside the
        # parsed word (source.mask)
        start, end = redirect.output.pos
        delimiter = self.src.raw((max(start - 1, 0), end + 1))
        if any(q in delimiter for q in "'\"\\"):
            return Word(body, body)
        if "${" in body and brace_depth(body) > MAX_NESTING:  # as source.py's words
            return Word("", "<<", known=False, reason="a here-document with ${...} nested "
                                                      f"more than {MAX_NESTING} levels deep")
        # "$@" and "${A[@]}" there are their items joined by spaces (not by IFS)
        pieces = [p if p.fields is None else joined(p.fields, True, p.source)
                  for p in self._scan(_plain_quotes(body), 0, st, {}, dq=True)]
        word = to_word(pieces, body)
        return replace(word, text=word.text.replace(_QUOTE, '"'),
                       prefix=word.prefix.replace(_QUOTE, '"'))

    def _save_local(self, builtin: str, key: str, st: State) -> None:
        if self._locals and builtin in ("local", "declare", "typeset") and \
                key not in self._locals[-1]:
            self._locals[-1][key] = st.vars.get(key)

    def _create(self, word: Word, st: State, directory: bool) -> None:
        if not word.known or word.text in ("/dev/null", "/dev/stdout", "/dev/stderr"):
            return
        path = self._resolve(word.text, st)
        if path is None:
            return
        mark = ("d:" if directory else "f:") + path
        st.created = (st.created - {"x:" + path}) | {mark}

    def _files_effect(self, name: str, args: list[Word], st: State) -> None:
        """What a program does to the files a later `[ -d ... ]` may test."""
        paths = [a for a in args if not a.text.startswith("-")]
        if name == "mkdir":
            for a in paths:
                self._create(a, st, directory=True)
                if any(x.text in ("-p", "--parents") for x in args) and a.known:
                    parent = posixpath.dirname(a.text.rstrip("/"))
                    while parent not in ("", "/", "."):
                        self._create(Word(parent, parent), st, directory=True)
                        parent = posixpath.dirname(parent)
        elif name == "touch":
            for a in paths:
                self._create(a, st, directory=False)
        elif name in ("rm", "rmdir"):
            removed = set()
            for a in paths:
                path = self._resolve(a.text, st) if a.known else None
                if path is None:
                    st.external = True
                    continue
                removed.add(path)
            # one pass for all of them, each entry by its parents: `rm -rf /tmp/*` may
            # name 30,000 files (a pass per file was quadratic)
            st.created = frozenset(c for c in st.created if not _under(c[2:], removed)) \
                | {"x:" + path for path in removed}
        elif name not in NO_FILES:
            st.external = True

    def _test(self, words: list[Node], st: State, double: bool = False) -> bool | None:
        """`[ ... ]` / `test` / `[[ ... ]]`, with -a / -o, file tests against what the
        script made (or unknown where a program it ran may have made it)."""
        texts = [w.text if w.known else None for w in words]
        if "(" in texts or ")" in texts:
            return None
        for op, combine in (("-o", any), ("-a", all)):
            cut = [k for k, t in enumerate(texts) if t == op and 0 < k < len(texts) - 1]
            if cut:
                groups, last = [], 0
                for k in cut:
                    groups.append(words[last:k])
                    last = k + 1
                groups.append(words[last:])
                results = [self._test(g, st, double) for g in groups]
                if op == "-o" and True in results or op == "-a" and False in results:
                    return op == "-o"
                return None if None in results else combine(results)
        if texts and texts[0] == "!":
            inner = self._test(words[1:], st, double)
            return None if inner is None else not inner
        if len(words) == 2 and words[0].known and words[0].text in _FILE_TESTS:
            return self._file_test(words[0].text, words[1], st)
        if double and len(words) == 3 and words[1].known:
            a, op, b = words
            if op.text == "=~" or op.text in ("<", ">"):
                return None
            if op.text in ("==", "=", "!=") and a.known and b.known:
                literal = any(q in b.source for q in "'\"")
                rx = None if literal else glob_regex(b.text)
                if not literal and rx is None:
                    return None
                same = a.text == b.text if rx is None else bool(rx.fullmatch(a.text))
                return same if op.text != "!=" else not same
        return _test(words, st.cwd)

    def _file_test(self, op: str, word: Word, st: State) -> bool | None:
        if not word.known:
            return None
        if op in ("-z", "-n"):
            return None
        path = self._resolve(word.text, st) if word.text else None
        if path is None:
            return None if word.text else False
        for c in st.created:
            if c.startswith("?") and (c[3:] == path or path.startswith(c[3:] + "/")):
                return None  # made in a branch that may not run
        for c in sorted(st.created, key=len, reverse=True):
            kind, made = c[:2], c[2:]
            if made == path or kind == "x:" and path.startswith(made + "/"):
                if kind == "x:":
                    return False if op != "-w" else None
                if op in ("-e", "-r", "-w", "-x") or (op == "-d") == (kind == "d:") and \
                        op in ("-d", "-f"):
                    return True if op in ("-e", "-d", "-f") else None
                if op in ("-d", "-f"):
                    return False
                return None
        exists = os.path.lexists(path)
        if not exists and st.external:
            return None  # a program the script ran may have made it
        return _test([Word(op, op), Word(path, word.source)], "/")

    def _declare(self, name: str, args: list[Word], st: State, file: str, line: int
                 ) -> bool | None:
        flags = "".join(a.text[1:] for a in args if a.text.startswith("-") and a.known)
        if "f" in flags or "p" in flags:
            return True
        export = name == "export" or "x" in flags
        for a in args:
            if a.text.startswith("-") and a.known:
                continue
            key, eq, value = a.text.partition("=")
            if not a.known and not NAME.fullmatch(key):
                # `export $(grep -v '^#' .env | xargs)`: names not known
                self._unknown(file, line, a.source, f"{name} of names that are not known")
                self._opaque(st, f"{name} {a.source[:60]} at {posixpath.basename(file)}:{line}")
                continue
            if not NAME.fullmatch(key):
                continue
            self._save_local(name, key, st)
            if "A" in flags:
                st.vars[key] = Var(None, export, reason="associative arrays are not evaluated",
                                   where=f"{file}:{line}")
                continue
            if "a" in flags and not eq:
                if key not in st.vars or name == "local":
                    st.vars[key] = Var("", False, where=f"{file}:{line}", array=())
                continue
            if "i" in flags:
                st.integers = st.integers | {key}
                if eq:
                    got, _ = arith.run(value, self.arith_lookup(st)) if a.known else (None, {})
                    value = str(got) if got is not None else value
                    a = a if got is not None else replace(a, known=False,
                                                          reason="declare -i of an unknown value")
            if not eq and name == "local":
                st.vars.pop(key, None)
                continue
            if eq:
                shown = a.text.partition("=")[2]
                old = st.vars.get(key)
                # bash: a local shadowing an exported variable is exported too
                st.vars[key] = Var(value if a.known else None,
                                   export or st.allexport or bool(old and old.exported),
                                   a.reason, a.refs, f"{file}:{line}",
                                   "" if a.known else shown,
                                   "" if a.known else a.prefix.partition("=")[2])
            elif key in st.vars and export:
                st.vars[key] = replace(st.vars[key], exported=True)
            elif export:  # exported once it gets a value
                st.exported_unset = st.exported_unset | {key}
        return True

    def _set(self, args: list[Word], st: State) -> bool:
        texts = [a.text for a in args]
        for i, t in enumerate(texts):
            if t == "--":
                st.positional = tuple(args[i + 1:])
                break
            if i == 0 and not t.startswith(("-", "+")):
                st.positional = tuple(args)
                break
            if t[:1] in "-+" and not t.startswith("--") and t not in ("-o", "+o"):
                if "e" in t[1:]:
                    st.errexit = t[0] == "-"
                if "u" in t[1:]:
                    st.nounset = t[0] == "-"
            if t in ("-o", "+o") and i + 1 < len(texts):
                if texts[i + 1] == "errexit":
                    st.errexit = t == "-o"
                if texts[i + 1] == "nounset":
                    st.nounset = t == "-o"
            if t.startswith("-") and "a" in t[1:] and not t.startswith("--"):
                st.allexport = True
            elif t.startswith("+") and "a" in t[1:]:
                st.allexport = False
            elif t == "-o" and i + 1 < len(texts) and texts[i + 1] == "allexport":
                st.allexport = True
            elif t == "+o" and i + 1 < len(texts) and texts[i + 1] == "allexport":
                st.allexport = False
        return True

    def _cd(self, args: list[Word], st: State) -> bool | None:
        target = args[0] if args else Word(st.vars.get("HOME", Var("")).value or "", "~")
        if not target.known or st.cwd is None or target.text == "-":
            st.cwd = None
            return None
        path = posixpath.normpath(posixpath.join(st.cwd, target.text))
        if os.path.isdir(path) or "d:" + path in st.created:
            st.cwd = path
            return True
        if st.external or any(c.startswith("?") for c in st.created) or \
                os.path.lexists(path):
            st.cwd = None  # a program (or a branch) may have made it
            return None
        return False

    def _source(self, args: list[Word], st: State, ctx: Ctx, file: str, line: int) -> bool | None:
        if not args:
            return False
        target = args[0]
        where = f"source at {posixpath.basename(file)}:{line}"
        hooked = self._conda_source(target, args[1:], st, ctx, file, line)
        if not isinstance(hooked, _NotMine):
            return hooked
        if not target.known:
            self._unknown(file, line, target.source,
                          f"source of an unknown path: what it sets is unknown ({target.reason})")
            self._unseen(file, line, f"source {target.source}: the path is not known "
                                     f"({target.reason})")
            self._opaque(st, where)
            return None
        path, why = self._source_path(target.text, st)
        if why:
            self._unknown(file, line, target.text, f"source {target.text}: {why}; what it sets "
                                                   "is unknown")
            self._unseen(file, line, f"source {target.text}: {why}")
            self._opaque(st, where)
            return None
        written = self._file(path) if path else None
        if written is not None and written.text is None:
            self._unknown(file, line, target.text, f"source {target.text}: {_held(written)}; "
                                                   "what it sets is unknown")
            self._unseen(file, line, f"source {target.text}: {_held(written)}")
            self._opaque(st, where)
            return None
        # one that exists but is no regular file (a FIFO, a directory): the reader says why
        if written is None and (path is None or not os.path.exists(path)):
            self._unknown(file, line, target.text,
                          f"source {target.text}: no such file here; what it sets is unknown")
            if path is not None and not os.path.exists(path) and posixpath.isabs(path) \
                    and path not in st.created and not st.external:
                return False  # bash fails the same way: `source: no such file`
            self._unseen(file, line, f"source {target.text}: no such file here (it may be "
                                     "there when the job runs)")
            self._opaque(st, where)
            return None
        assert path is not None  # `written` is looked up by a path
        if ctx.depth >= MAX_SOURCE_DEPTH or path in self._reading:
            self._unknown(file, line, target.text, "source nested too deep (a cycle?)")
            self._unseen(file, line, f"source {target.text}: nested too deep (a cycle?)")
            self._opaque(st, f"source at {posixpath.basename(file)}:{line}")
            return None
        try:  # what the script wrote there (it runs first), else the file on disk
            text, notes = (written.text, []) if written is not None and \
                written.text is not None else self.reader(path)
        except ScriptFileError as exc:
            self._unknown(file, line, target.text, f"{exc}: what it sets is unknown")
            self._unseen(file, line, f"source not read: {exc}")
            self._opaque(st, where)
            return None
        if written is None:
            self.reads.append(Read(path, file, line, "source", ctx.conditional))
        saved = st.positional
        if len(args) > 1:
            st.positional = tuple(args[1:])
        try:
            # bash names it as given, or by the path it found on PATH
            self._name(path, target.text if "/" in target.text else path)
            self._run_text(path, text, notes, st, replace(ctx, depth=ctx.depth + 1))
        except _Return:
            pass
        finally:
            st.positional = saved
        return None

    def _source_path(self, name: str, st: State) -> tuple[str | None, str]:
        """(the file bash's `source NAME` reads, why it is not known): a NAME without a
        slash is looked up on PATH first, the first readable file that is not a directory
        (bash builtins/source.def, findcmd.c find_path_file; `sourcepath` is on), then in
        the working directory."""
        if "/" in name:
            return self._resolve(name, st), ""
        found, why = self._on_path(name, st)
        return (found, "") if found or why else (self._resolve(name, st), "")

    def _on_path(self, name: str, st: State) -> tuple[str | None, str]:
        """(the first readable file NAME on PATH that is not a directory, or None; why
        that is not known): how bash finds a script to source or run by name."""
        search = st.vars.get("PATH")
        if search is not None and search.value is None:
            return None, f"looked up on PATH, which is not known ({search.reason})"
        for entry in search.value.split(":") if search is not None and search.value else ():
            full = self._resolve(posixpath.join(entry or ".", name), st)
            if full is None:
                return None, "looked up on PATH, whose relative entries are not known here"
            if self._file(full) is not None or os.path.isfile(full) and \
                    os.access(full, os.R_OK):
                return full, ""
        return None, ""

    def _call(self, name: str, args: list[Word], st: State, ctx: Ctx, file: str, line: int
              ) -> bool | None:
        if ctx.depth >= MAX_CALL_DEPTH:
            self._unknown(file, line, name, "function calls nested too deep")
            self._unseen(file, line, f"{name}: function calls nested too deep, not read")
            self._opaque(st, f"{name} nested too deep at {posixpath.basename(file)}:{line}")
            return None
        body, source = st.functions[name]
        if body is None:  # its definition could not be parsed: what it does is unknown
            self._unknown(file, line, name, f"{name}: {source}")
            self._unseen(file, line, f"{name}: {source}")
            self._opaque(st, f"{name} at {posixpath.basename(file)}:{line} ({source})")
            return None
        saved_src, saved_pos = self.src, st.positional
        self.src, st.positional = source, tuple(args)
        self._locals.append({})
        try:
            self._run_nodes(body, st, replace(ctx, depth=ctx.depth + 1))
        except _Return:
            pass
        finally:
            self.src, st.positional = saved_src, saved_pos
            for key, old in self._locals.pop().items():
                if old is None:
                    st.vars.pop(key, None)
                else:
                    st.vars[key] = old
        return None

    def _shell_script(self, name: str, args: list[Word], st: State
                      ) -> tuple[str | None, str, tuple[Word, ...], str]:
        """(file, the file as written, its arguments, why what it runs is not known) of a
        `bash x.sh` / `./x.sh`: the file None when it is not known (the why says so) or
        none is run."""
        if posixpath.basename(name) in SHELLS:
            k = 0
            while k < len(args) and args[k].known and args[k].text.startswith(("-", "+")) \
                    and args[k].text not in ("-", "--"):
                if args[k].text in ("-c", "-s", "-i"):
                    return None, "", (), ""  # `-c`: _shell_string; `-s`, `-i`: said below
                # options that take a value (bash(1): -o/-O NAME, --rcfile FILE)
                k += 2 if args[k].text in ("-o", "+o", "-O", "+O", "--rcfile",
                                           "--init-file") else 1
            k += k < len(args) and args[k].text in ("-", "--")
            if k >= len(args) or any(a.text in ("-s", "-i") for a in args[:k]):
                # `bash <<EOF`, `... | bash`: the commands come on its input, not read
                return None, "", (), f"{name} reads the commands it runs from its input, " \
                                     "not read"
            if not args[k].known:
                return None, "", (), f"{name} {args[k].source}: the script it runs is not " \
                                     f"known ({args[k].reason})"
            path = self._resolve(args[k].text, st)
            if path and posixpath.basename(name) == "bash" and "/" not in args[k].text and \
                    self._file(path) is None and not os.path.exists(path):
                # not in the working directory: bash looks on PATH (shell.c
                # open_shell_script; sh/dash do not)
                found, why = self._on_path(args[k].text, st)
                if why:
                    return None, "", (), f"{name} {args[k].text}: {why}"
                path = found or path
            return path, args[k].text, tuple(args[k + 1:]), "" if path else \
                f"{name} {args[k].text}: the working directory is not known"
        if name.endswith(".sh") and "/" in name:
            path = self._resolve(name, st)
            return path, name, tuple(args), "" if path else \
                f"{name}: the working directory is not known"
        if "/" in name:  # `./train`: a shell script by its `#!` line (or none), no `.sh`
            path = self._resolve(name, st)
            if path is not None and self._shell_file(path):
                return path, name, tuple(args), ""
        return None, "", (), ""

    def _shell_file(self, path: str) -> bool:
        """Whether bash runs the file at `path` as a shell script (programs.interpreter):
        as the script wrote it, else as it is on disk."""
        written = self._file(path)
        if written is not None and written.text is not None:
            return programs.is_shell_text(written.text)
        sample = programs.read_head(path, programs.SAMPLE_BYTES)
        found = programs.interpreter(sample) if sample is not None else None
        return found is not None and (found == "" or found in programs.SHELL_INTERPRETERS)

    def _python_launch(self, name: str, args: list[Word], st: State) -> str:
        """Why a Python program the script runs may start a launcher preflight does not
        read (its text starts one: programs.starts_launcher); "" when it shows none, or
        its file is not known or not readable."""
        path = self._resolve(name, st) if "/" in name else None
        sample = programs.read_head(path, programs.SAMPLE_BYTES) if path else None
        k = programs.python_script(name, [a.text for a in args], sample)
        if k is None or k >= 0 and not args[k].known:
            return ""
        shown = name if k < 0 else args[k].text
        path = path if k < 0 else self._resolve(args[k].text, st)
        if path is None:
            return ""
        if path not in self._py_read:
            written = self._file(path)
            if written is not None and written.text is not None:
                text: str | None = written.text
            else:
                data = programs.read_head(path, programs.MAX_PY_BYTES)
                text = data.decode("utf-8", "replace") if data is not None else None
            self._py_read[path] = programs.starts_launcher(text) if text else None
        hit = self._py_read[path]
        return "" if hit is None else (
            f"{shown}: a Python program that starts a launcher itself (line {hit[0]}: "
            f"{hit[1]}), not read")

    def _shell_string(self, name: str, args: list[Word]
                      ) -> tuple[Word, str, tuple[Word, ...]] | None:
        """(text, $0, arguments) of `bash -c 'text' [name args...]`, when it is one."""
        if posixpath.basename(name) not in SHELLS:
            return None
        k = 0
        command = False
        while k < len(args) and args[k].known and args[k].text.startswith("-") \
                and args[k].text not in ("-", "--"):
            if not args[k].text.startswith("--") and "c" in args[k].text[1:]:
                command = True
            if args[k].text in ("-o", "+o", "-O", "+O"):
                k += 1
            k += 1
        if not command or k >= len(args):
            return None
        text = args[k]
        rest = args[k + 1:]
        return text, (rest[0].text if rest else name), tuple(rest[1:])

    def _child_text(self, text: Word, zero: str, positional: tuple[Word, ...],
                    env: dict[str, Var], st: State, ctx: Ctx,
                    file: str, line: int, label: str = "") -> None:
        """`bash -c 'text'`: a child shell that sees only the exported environment (or
        a script the script wrote, `label` its path)."""
        if ctx.depth >= MAX_SOURCE_DEPTH:
            self._unknown(file, line, text.source, "shells nested too deep: not read")
            self._unseen(file, line, f"{label or '-c'}: shells nested too deep, not read")
            return
        child = State(dict(env), {}, st.cwd, False, positional, st.opaque)
        if not text.known:
            # the parts not known stand in the text as variables that are not known: the
            # commands around them are still read
            holes: list[str] = []

            def hole(m: re.Match[str]) -> str:
                holes.append(m.group(1))
                return "${__preflight_unknown_" + str(len(holes) - 1) + "}"

            source = re.sub(f"{UNKNOWN_OPEN}(.*?){UNKNOWN_CLOSE}", hole, text.text, flags=re.S)
            for i, what in enumerate(holes):
                child.vars[f"__preflight_unknown_{i}"] = Var(None, reason=f"{what} is not known",
                                                             text=f"⟨{what}⟩")
            text = Word(source, text.source)
        script = text.text
        saved = self.script0, self.zero
        self.script0 = self.zero = zero
        label = label or f"{file}:{line} (-c)"
        try:
            self._shells.add(label)
            self._run_text(label, script, [], child,
                           replace(ctx, depth=ctx.depth + 1, tested=False))
        except (_Exit, _Return):
            pass
        finally:
            self.script0, self.zero = saved

    def _child_script(self, path: str, positional: tuple[Word, ...],
                      env: dict[str, Var], st: State, ctx: Ctx,
                      file: str, line: int, made: bool = False) -> None:
        """A script the job runs as a child: it sees only the exported environment; a
        script the script wrote itself (`cat > launch.sh <<EOF`) is read as written.
        `made`: a program before it may have made files preflight cannot see."""
        written = self._file(path)
        if written is None and not os.path.isfile(path):
            if os.path.isdir(path) or not os.path.exists(path) and posixpath.isabs(path) \
                    and path not in st.created and not made:
                return  # bash fails on it (`Is a directory`, `No such file`): nothing runs
            self._unseen(file, line, f"{path}: " + (
                "not a regular file, not read" if os.path.exists(path) else
                "no such file here (it may be there when the job runs)"))
            return
        if ctx.depth >= MAX_SOURCE_DEPTH or path in self._reading:
            self._unknown(file, line, path, "scripts nested too deep (a cycle?): not read")
            self._unseen(file, line, f"{path}: scripts nested too deep (a cycle?), not read")
            return
        if written is not None and written.text is None:
            self._unknown(file, line, path, f"{path}: {_held(written)}")
            if not written.shown:
                self._unseen(file, line, f"{path}: {_held(written)}")
            if written.shown:  # its known parts are read, the rest stands as unknown
                self._child_text(Word(written.shown, path,
                                      known=UNKNOWN_OPEN not in written.shown), path, positional,
                                 env, st, replace(ctx, conditional=ctx.conditional or
                                                  written.maybe), file, line, label=path)
            if not (written.maybe and os.path.isfile(path)):
                return
            # a write that may not run over a file on disk: that file may run instead
            written, ctx = None, replace(ctx, conditional=True)
        try:
            text, notes = (written.text, []) if written is not None and \
                written.text is not None else self.reader(path)
        except ScriptFileError as exc:
            self._unknown(file, line, path, str(exc))
            self._unseen(file, line, f"not read: {exc}")
            return
        if written is None:
            self.reads.append(Read(path, file, line, "bash", ctx.conditional))
        child = State(dict(env), {}, st.cwd, False, positional, st.opaque)
        try:
            self._shells.add(path)
            self._name(path, self.zero)
            self._run_text(path, text, notes, child, replace(ctx, depth=ctx.depth + 1))
        except (_Exit, _Return):
            pass

    def _resolve(self, path: str, st: State) -> str | None:
        if posixpath.isabs(path):
            return path
        if st.cwd is None:
            return None
        return posixpath.normpath(posixpath.join(st.cwd, path))

    def _missing_paths(self, words: tuple[Word, ...], st: State) -> list[str]:
        texts = [w.text for w in words]
        out = []
        for i, t in enumerate(texts[:-1]):
            if t in ("-f", "-d", "-e", "-r", "-s") and words[i + 1].known:
                path = self._resolve(words[i + 1].text, st)
                if path and not os.path.exists(path):
                    out.append(words[i + 1].text)
        return out

    def _assign(self, node: Node, st: State, line: int, export: bool) -> None:
        name, value = self._assignment_value(node, st, line)
        if not name:
            return
        old = st.vars.get(name)
        st.vars[name] = replace(value, exported=export or (old is not None and old.exported)
                                or name in st.exported_unset)

    def _assignment_value(self, node: Node, st: State, line: int) -> tuple[str, Var]:
        raw = self.src.raw(node.pos)
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(\+?=)(.*)", raw, re.S)
        name, op, _ = m.groups() if m else ("", "", "")
        if not name:
            return "", Var(None)
        where = f"{self.src.file}:{line}"
        start = node.pos[0] + len(name) + len(op)
        if raw[len(name) + len(op):].startswith("("):
            self._unknown(self.src.file, line, raw, "arrays are not evaluated")
            return name, Var(None, reason="an array (not evaluated)", where=where)
        value = self._expand_raw(raw[len(name) + len(op):], start, st, substitutions(node))
        if op == "+=":
            old = st.vars.get(name)
            if old is None or old.value is None or not value.known:
                return name, Var(None, reason="+= onto an unknown value", where=where)
            return name, Var(old.value + value.text, refs=old.refs + value.refs, where=where)
        if not value.known:
            return name, Var(None, reason=value.reason, refs=value.refs, where=where,
                             text=value.text, prefix=value.prefix, origins=value.origins)
        return name, Var(value.text, refs=value.refs, where=where)

    def _redirect_word(self, node: Node, st: State) -> Word | None:
        target = getattr(node, "output", None)
        if target is None or not hasattr(target, "kind") or target.kind != "word":
            return None
        if node.type in ("<<", "<<-", "<<<", ">&", "<&") and not target.word.startswith("/"):
            return None
        words = self._expand(target, st, split=False)
        return words[0] if words else None


_ELEMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[([^]]*)\]=")
_FILE_TESTS = frozenset({"-f", "-d", "-e", "-s", "-r", "-w", "-x", "-L", "-h", "-a"})
_BUILTINS = frozenset({
    "cd", "echo", "printf", "read", "source", ".", "export", "declare", "local", "set",
    "unset", "test", "[", "true", "false", ":", "eval", "exec", "exit", "return", "shift",
    "type", "command", "builtin", "let", "pwd", "wait", "trap", "ulimit", "umask", "hash",
    "alias", "readonly", "typeset", "getopts", "mapfile", "readarray", "pushd", "popd",
})


def _unwrap(name: str, args: list[Word], prefix: dict[str, Var]) -> list[Word]:
    """The command a wrapper runs: `env A=1 cmd`, `nohup cmd`, `timeout 10 cmd`."""
    fixed = WRAPPERS[name]
    rest = list(args)
    if name == "env":
        while rest and (rest[0].text.startswith("-") or "=" in rest[0].text):
            key, eq, value = rest[0].text.partition("=")
            if eq and NAME.fullmatch(key):
                prefix[key] = Var(value if rest[0].known else None, True, rest[0].reason,
                                  rest[0].refs)
            rest.pop(0)
        return rest
    if fixed == -1:  # options, then the command
        while rest and rest[0].text.startswith("-"):
            opt = rest.pop(0).text
            if name in ("nice", "ionice", "numactl", "sudo", "srun") and "=" not in opt \
                    and len(opt) == 2 and opt not in ("-E", "-H") and rest:
                rest.pop(0)  # `nice -n 10`, `sudo -u user`: the option takes a value
        return rest
    while rest and rest[0].text.startswith("-"):
        rest.pop(0)
    return rest[fixed:]


def _test(words: tuple[Word, ...] | list[Word], cwd: str | None) -> bool | None:
    """`[ ... ]` / `test ...` when every operand is known; None otherwise."""
    if not all(w.known for w in words):
        return None
    t = [w.text for w in words]
    if t and t[0] == "!":
        inner = _test(words[1:], cwd)
        return None if inner is None else not inner
    if not t:
        return False
    if len(t) == 1:
        return t[0] != ""
    if len(t) == 2:
        op, arg = t
        if op == "-z":
            return arg == ""
        if op == "-n":
            return arg != ""
        if op in ("-f", "-d", "-e", "-s", "-r", "-w", "-x", "-L"):
            if cwd is None and not arg.startswith("/"):
                return None
            path = posixpath.join(cwd or "/", arg)
            checks: dict[str, Callable[[str], bool]] = {
                "-f": os.path.isfile, "-d": os.path.isdir, "-e": os.path.exists,
                "-L": os.path.islink,
                "-s": lambda p: os.path.isfile(p) and os.path.getsize(p) > 0,
                "-r": lambda p: os.access(p, os.R_OK),
                "-w": lambda p: os.access(p, os.W_OK),
                "-x": lambda p: os.access(p, os.X_OK)}
            return checks[op](path)
        return None
    if len(t) == 3:
        a, op, b = t
        if op in ("=", "=="):
            return None if any(c in b for c in "*?[") else a == b
        if op == "!=":
            return None if any(c in b for c in "*?[") else a != b
        ints = {"-eq": int.__eq__, "-ne": int.__ne__, "-lt": int.__lt__, "-le": int.__le__,
                "-gt": int.__gt__, "-ge": int.__ge__}
        if op in ints:
            try:
                return ints[op](int(a), int(b))
            except ValueError:
                return None
    return None


def evaluate_script(path: str, environ: Mapping[str, str], cwd: str | None = None,
                    reader: Reader = read_script) -> Trace:
    """`bash PATH` run in `cwd`: `$0` is PATH as given, read from cwd/PATH."""
    full = path if posixpath.isabs(path) or not cwd else posixpath.join(cwd, path)
    text, notes = reader(full)
    return Evaluator(environ, cwd, reader).run_file(full, text, notes, zero=path)


def evaluate_command(line: str, environ: Mapping[str, str], cwd: str | None = None) -> Trace:
    return Evaluator(environ, cwd).run_command(line)


_CAT = ("cat", "/bin/cat", "/usr/bin/cat")
_TEE = ("tee", "/bin/tee", "/usr/bin/tee")
# coreutils tee's options (tee.c `long_options`): -a appends; the others change no output
_TEE_FLAGS = {"-a": True, "--append": True, "-i": False, "--ignore-interrupts": False,
              "-p": False}
# Programs that change or remove the files they name: what such a file holds afterwards
# is not known (sed and perl only with -i).
_CHANGERS = frozenset({"rm", "mv", "cp", "ln", "install", "rsync", "truncate"})


def _chains(parts: list[Node]) -> list[tuple[list[Node], str]]:
    """A list's and-or lists with the operator that ends each (`;`, `&`, newline, "")."""
    chains: list[tuple[list[Node], str]] = []
    chain: list[Node] = []
    for part in parts:
        if part.kind == "operator" and part.op not in ("&&", "||"):
            if chain:
                chains.append((chain, part.op))
            chain = []
        else:
            chain.append(part)
    if chain:
        chains.append((chain, ""))
    return chains


def _held(written: Written) -> str:
    """Why a file the script reads back is not known."""
    if written.by:
        return f"{written.reason}; what it holds then is not known"
    return f"written by the script at {written.where}, what it holds is not known " \
           f"({written.reason})"


def _cat_of_stdin(argv: list[Word]) -> bool:
    """`cat` or `cat -`: its output is exactly its input."""
    return bool(argv) and argv[0].known and argv[0].text in _CAT and \
        [a.text for a in argv[1:]] in ([], ["-"]) and all(a.known for a in argv)


def _tee_files(argv: list[Word]) -> tuple[list[tuple[Word, bool]], bool] | None:
    """`tee [-a] FILE...`: (each FILE with whether it is appended to, whether tee's
    output is known to be its input); None when argv is not tee."""
    if not argv or not argv[0].known or argv[0].text not in _TEE:
        return None
    append, ok, files, options = False, True, [], True
    for a in argv[1:]:
        if not a.known:
            ok = False
            continue
        if options and a.text == "--":
            options = False
        elif options and a.text.startswith("--") and a.text in _TEE_FLAGS:
            append |= _TEE_FLAGS[a.text]
        elif options and a.text.startswith("-") and len(a.text) > 1:
            flags = [f"-{c}" for c in a.text[1:]]
            ok &= all(f in _TEE_FLAGS for f in flags)
            append |= any(_TEE_FLAGS.get(f, False) for f in flags)
        else:
            files.append(a)
    return [(f, append) for f in files], ok


def _printed_text(argv: list[Word]) -> str | None:
    """What `echo WORDS` or `printf FORMAT ARGS` (its %s / %d directives, the format
    reused while arguments remain: bash printf(1)) print; None for anything else."""
    name, args = argv[0].text, [w.text for w in argv[1:]]
    if name == "echo":
        newline = "\n"
        while args and args[0] in ("-n", "-e", "-E"):
            newline = "" if args.pop(0) == "-n" else newline
        return " ".join(args) + newline
    if name != "printf" or not args or args[0].startswith("-"):
        return None
    fmt, rest = args[0].replace("\\n", "\n").replace("\\t", "\t"), args[1:]
    pieces = re.split(r"(%%|%[sd])", fmt)
    if "%" in "".join(pieces[::2]) or "\\" in fmt:
        return None  # a directive or an escape not followed here
    out = []
    while True:
        for p in pieces:
            out.append("%" if p == "%%" else (rest.pop(0) if rest else "") if p in (
                "%s", "%d") else p)
        if not rest or not any(p in ("%s", "%d") for p in pieces):
            return "".join(out)


def _changed_files(argv: list[Word]) -> list[Word]:
    """The files `rm`, `mv`, `cp`, `sed -i`, ... name (and, for a copy into a directory,
    the file it makes there): what they hold afterwards is not known."""
    name = posixpath.basename(argv[0].text)
    args = [a for a in argv[1:] if a.known]
    in_place = any(a.text.startswith("-i") or a.text == "--in-place" for a in args)
    if name not in _CHANGERS and not (name in ("sed", "perl") and in_place):
        return []
    paths = [a for a in args if not a.text.startswith("-")]
    if name in ("cp", "mv", "ln", "install", "rsync") and len(paths) > 1:
        made = [Word(posixpath.join(paths[-1].text, posixpath.basename(p.text)), p.source)
                for p in paths[:-1]]
        if name != "mv" and not any(a.text.startswith(("-t", "--target")) for a in args):
            # cp(1), ln(1), install(1), rsync(1): SOURCE... is only read; DEST is written
            return [paths[-1], *made]
        paths += made  # mv removes its sources; with -t DIR the last path is a source
    return paths


_QUOTE = "\ue000"  # a here-document's `"` while it is expanded: an ordinary character


def _plain_quotes(body: str) -> str:
    """`"` of a here-document body outside `$(...)`, `${...}` and backquotes as _QUOTE,
    so that the double-quoted expansion leaves it (and a `\\"` before it) as written."""
    out, i, n = [], 0, len(body)
    while i < n:
        c = body[i]
        if c == "\\":
            out.append("\\" + body[i + 1:i + 2].replace('"', _QUOTE))
            i += 2
        elif c == "$" and body[i + 1:i + 2] in ("(", "{"):
            j = matching(body, i + 1, body[i + 1], ")" if body[i + 1] == "(" else "}")
            out.append(body[i:j + 1])
            i = j + 1
        elif c == "`":
            j = body.find("`", i + 1)
            j = n - 1 if j < 0 else j
            out.append(body[i:j + 1])
            i = j + 1
        else:
            out.append(_QUOTE if c == '"' else c)
            i += 1
    return "".join(out)


_FUNCTION_DEF = re.compile(r"(?:^|[\s;&|({])(?:function\s+([A-Za-z_][\w.:-]*)|"
                           r"([A-Za-z_][\w.:-]*)\s*\(\s*\))")


def _first_command(nodes: list[Node]) -> Node:
    """The first simple command in a list of nodes (a condition), or None."""
    for n in nodes:
        if n.kind == "command":
            return n
        if n.kind in ("list", "pipeline"):
            found = _first_command(n.parts)
            if found is not None:
                return found
    return None


def _flat(parts: list[Node]) -> Iterator[Node]:
    """An if's parts: bashlex 0.18 nests the third and later `elif`s in a list held by a
    reservedword node."""
    for part in parts:
        if part.kind == "reservedword" and isinstance(part.word, list):
            yield from _flat(part.word)
        else:
            yield part


def _arms(else_body: list[Node]) -> list[tuple[list[Node], list[Node]]]:
    """The arms of a rewritten `case`: (pattern condition, body) down the chain of
    `else if ⁑pat ...` (see source.rewrite)."""
    arms: list[tuple[list[Node], list[Node]]] = []
    nodes = else_body
    while True:
        found = [n for n in nodes if n.kind not in ("operator",)]
        node = found[0] if len(found) == 1 else None
        while node is not None and node.kind in ("compound", "list") and not \
                (node.kind == "compound" and any(p.kind == "reservedword" and p.word == "{"
                                                 for p in node.list)):
            inner = [n for n in (node.list if node.kind == "compound" else node.parts)
                     if n.kind not in ("operator",)]
            node = inner[0] if len(inner) == 1 else None
        if node is None or node.kind != "if":
            return arms
        cond, body, rest, mode = [], [], [], ""
        for part in _flat(node.parts):
            if part.kind == "reservedword" and part.word in ("if", "then", "else", "fi"):
                mode = {"if": "cond", "then": "body", "else": "else", "fi": "end"}[part.word]
            elif mode == "cond":
                cond.append(part)
            elif mode == "body":
                body.append(part)
            elif mode == "else":
                rest.append(part)
        command = _first_command(cond)
        if command is None or not command.parts or command.parts[0].kind != "word" or \
                command.parts[0].word != PATTERN:
            return arms
        arms.append((cond, body))
        nodes = rest
