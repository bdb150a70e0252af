"""What a bash launch script would run, and with which values, without running it.

bashlex parses the shell grammar (commands, lists, pipelines, if/for/while, functions,
command substitutions); this module walks its tree and evaluates what a launch script
needs: assignments and exports, `${VAR:-default}` / `${VAR:=default}`, per-command
prefixes, `source`/`.` of files that exist, `cd`, simple `[ ... ]` tests, and the pure
command substitutions `$(pwd)`, `$(dirname X)`, `$(basename X)`, `$(which X)`. Whatever it cannot
evaluate becomes an unknown (shown as `⟨...⟩`), never a guess. Nothing is executed.

The script is read as `bash SCRIPT` with no arguments would run it: `$1` is empty.
"""

from __future__ import annotations

import bisect
import os
import posixpath
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

MAX_BYTES = 2 * 2**20  # a launch script is a few KiB; anything this large is not one
MAX_CHUNK_LINES = 80  # fallback: how far an unparseable statement may extend
MAX_SOURCE_DEPTH = 8
MAX_CALL_DEPTH = 16
UNKNOWN_OPEN, UNKNOWN_CLOSE = "⟨", "⟩"

# Commands whose arguments are not paths or program arguments: an empty variable in
# them is harmless (`echo "DATASET=$DATASET"`, `[ -z "$DATASET" ]`).
NOT_CONSUMING = frozenset({
    "echo", "printf", "[", "test", "true", "false", ":", "exit", "return", "set",
    "unset", "shift", "wait", "read", "trap", "local", "declare", "typeset", "export",
    "readonly", "sleep", "command", "type", "which", "hash", "ulimit", "umask",
})
# Programs that run the rest of their argv as a command (with their own options).
WRAPPERS = {
    "nohup": 0, "time": 0, "setsid": 0, "exec": 0, "builtin": 0, "command": 0,
    "stdbuf": -1, "nice": -1, "ionice": -1, "taskset": 1, "numactl": -1, "sudo": -1,
    "timeout": 1, "env": -1, "srun": -1, "chrt": 1,
}
DECLARE = frozenset({"export", "declare", "typeset", "local", "readonly"})
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ScriptFileError(Exception):
    """The path is not a readable text script; the message is one line."""


@dataclass(frozen=True)
class Var:
    value: str | None  # None: the value is not known
    exported: bool = False
    reason: str = ""  # why the value is not known
    refs: tuple[str, ...] = ()  # variables the value was built from, nearest first
    where: str = ""  # "file:line" of the assignment; "" when it came from the environment
    text: str = ""  # how an unknown value displays: `output/run-⟨$(date +%s)⟩`
    prefix: str = ""  # the known start of an unknown value


@dataclass(frozen=True)
class Word:
    """One argument as it would expand. Unknown parts are shown as ⟨$(...)⟩."""

    text: str
    source: str
    known: bool = True
    reason: str = ""
    refs: tuple[str, ...] = ()  # variables it expanded, with what they were built from
    empty: tuple[str, ...] = ()  # variables that expanded empty without a default
    prefix: str = ""  # the known text before the first unknown part

    @property
    def value(self) -> str | None:
        return self.text if self.known else None


@dataclass(frozen=True)
class Command:
    """A program the script would start, with the environment it would inherit."""

    argv: tuple[Word, ...]
    env: Mapping[str, Var]
    file: str
    line: int
    cwd: str | None
    conditional: bool  # inside a branch or loop whose condition could not be decided
    redirects: tuple[Word, ...] = ()  # files it writes or reads through > >> <
    vanished: tuple[Word, ...] = ()  # arguments that expanded to nothing

    @property
    def program(self) -> str:
        return posixpath.basename(self.argv[0].text) if self.argv else ""


@dataclass(frozen=True)
class Unknown:
    file: str
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class Exit:
    """A decided `exit` that ends the script: where, why, and what the guard tested."""

    file: str
    line: int
    status: str
    guard: str = ""
    empty: tuple[str, ...] = ()  # variables the guard found empty
    missing: tuple[str, ...] = ()  # paths the guard found missing


@dataclass(frozen=True)
class Trace:
    commands: tuple[Command, ...]
    variables: Mapping[str, Var]
    unknowns: tuple[Unknown, ...]
    exit: Exit | None
    files: tuple[str, ...]


# -- reading ------------------------------------------------------------------------


def read_script(path: str) -> tuple[str, list[str]]:
    """(text, notes). Raises ScriptFileError for anything that is not a text script."""
    if not os.path.lexists(path):
        raise ScriptFileError(f"{path}: launch script does not exist")
    if os.path.isdir(path):
        raise ScriptFileError(f"{path}: is a directory, not a launch script")
    if not os.path.isfile(path):
        raise ScriptFileError(f"{path}: not a regular file")
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise ScriptFileError(f"{path}: {size} bytes is too large for a launch script "
                                  f"(limit {MAX_BYTES})")
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ScriptFileError(f"{path}: cannot read launch script: {exc.strerror}") from None
    if b"\0" in data[:8192]:
        raise ScriptFileError(f"{path}: binary file (NUL bytes), not a launch script")
    return decode(data)


def decode(data: bytes) -> tuple[str, list[str]]:
    notes = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        notes.append(f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8 "
                     "(read as U+FFFD)")
        text = data.decode("utf-8", errors="replace")
    if "\r\n" in text:
        notes.append("CRLF line ends: bash reads a trailing \\r in every line "
                     "($'\\r': command not found); run dos2unix")
        text = text.replace("\r\n", "\n")
    return text, notes


# -- parsing ------------------------------------------------------------------------


def _mask(text: str) -> str:
    """Same-length rewrites of what bashlex cannot parse, so positions stay true:
    `$((expr))` becomes `$(:    )` (an unknown command substitution) and `[[ ... ]]`
    becomes `[  ... ] ` (a test the evaluator already understands)."""
    out = list(text)
    i, n, quote = 0, len(text), ""
    while i < n:
        c = text[i]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\":
            i += 1
        elif c == "'" and not quote:
            quote = "'"
        elif c == '"':
            quote = "" if quote == '"' else '"'
        elif c == "#" and not quote and (i == 0 or text[i - 1] in " \t\n;"):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("$((", i):
            depth, j = 0, i + 1
            while j < n:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            if j < n and j - i >= 4:
                out[i:j + 1] = ["$", "(", ":"] + [" "] * (j - i - 3) + [")"]
                i = j
        elif not quote and text.startswith("[[", i) and (i == 0 or text[i - 1] in " \t\n;(!&|") \
                and text[i + 2:i + 3] in (" ", "\t"):
            out[i + 1] = " "
        elif not quote and text.startswith("]]", i) and i and text[i - 1] in " \t" \
                and text[i + 2:i + 3] in ("", " ", "\t", "\n", ";", "&", "|", ")"):
            out[i + 1] = " "
        i += 1
    return "".join(out)


def _parse(text: str) -> list:
    # Imported here: bashlex builds its LR tables on import (~0.2 s), and the static
    # stage must not pay that when no launch script is analysed.
    import bashlex

    nodes = bashlex.parse(text)
    return [n for n in nodes if hasattr(n, "kind")]


def parse_chunks(text: str) -> tuple[list[tuple[int, list]], list[tuple[int, str, str]]]:
    """([(offset, nodes)], [(line, text, error)]): the whole text when bashlex parses it,
    else the longest parseable statements, line by line; the rest is reported."""
    if not text.strip():
        return [], []
    try:
        return [(0, _parse(text))], []
    except Exception:  # bashlex raises ParsingError, NotImplementedError, and worse
        pass
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    chunks, failures = [], []
    i = 0
    while i < len(lines):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        error = ""
        for j in range(i, min(len(lines), i + MAX_CHUNK_LINES)):
            try:
                nodes = _parse("\n".join(lines[i:j + 1]) + "\n")
            except Exception as exc:
                error = (str(exc).splitlines() or [type(exc).__name__])[0]
                if "EOF" in error:  # an unfinished statement: take the next line too
                    continue
                break
            chunks.append((starts[i], nodes))
            i, error = j + 1, ""
            break
        else:
            error = error or "statement does not end"
        if error:
            failures.append((i + 1, lines[i].strip()[:120], error[:160]))
            i += 1
    return chunks, failures


# -- evaluation ---------------------------------------------------------------------


class _Exit(Exception):
    def __init__(self, status: str, record: Exit | None):
        self.status = status
        self.record = record


class _Return(Exception):
    pass


@dataclass
class _State:
    vars: dict[str, Var]
    functions: dict[str, tuple]
    cwd: str | None
    allexport: bool = False
    positional: tuple[Word, ...] = ()

    def fork(self) -> _State:
        return _State(dict(self.vars), dict(self.functions), self.cwd, self.allexport,
                      self.positional)


@dataclass
class _Source:
    file: str
    text: str
    newlines: list[int]
    base: int = 0

    def line(self, pos: int) -> int:
        return bisect.bisect_right(self.newlines, self.base + pos - 1) + 1 \
            if self.newlines else 1

    def raw(self, pos: tuple[int, int]) -> str:
        return self.text[self.base + pos[0]:self.base + pos[1]]


@dataclass
class _Piece:
    text: str
    quoted: bool = False
    split: bool = False  # an unquoted expansion: subject to field splitting
    known: bool = True
    reason: str = ""
    refs: tuple[str, ...] = ()
    empty: tuple[str, ...] = ()
    source: str = ""
    fields: tuple[Word, ...] | None = None  # "$@"
    prefix: str = ""  # the known start of an unknown piece


@dataclass
class _Ctx:
    conditional: bool = False
    guard: tuple[str, tuple[Word, ...]] | None = None  # the decided test leading here
    depth: int = 0


Reader = Callable[[str], tuple[str, list[str]]]


class Evaluator:
    def __init__(self, environ: Mapping[str, str], cwd: str | None = None,
                 reader: Reader = read_script):
        self.reader = reader
        env_vars = {k: Var(v, exported=True) for k, v in environ.items()}
        self.state = _State(env_vars, {}, cwd or os.getcwd())
        self.commands: list[Command] = []
        self.unknowns: list[Unknown] = []
        self.exit: Exit | None = None
        self.files: list[str] = []
        self.script0 = ""
        self.src: _Source = _Source("", "", [])
        self._seen_unknowns: set[tuple] = set()
        self.vanished: list[Word] = []  # words that expanded to nothing (unquoted, empty)

    # -- entry points

    def run_file(self, path: str, text: str, notes: list[str] = ()) -> Trace:
        self.script0 = path
        try:
            self._run_text(path, text, notes, self.state, _Ctx())
        except _Exit as stop:
            self.exit = stop.record
        except _Return:
            pass
        return self.trace()

    def run_command(self, line: str) -> Trace:
        return self.run_file("<--launch-cmd>", line)

    def trace(self) -> Trace:
        return Trace(tuple(self.commands), dict(self.state.vars), tuple(self.unknowns),
                     self.exit, tuple(self.files))

    # -- text and nodes

    def _run_text(self, file: str, text: str, notes, st: _State, ctx: _Ctx) -> None:
        self.files.append(file)
        for note in notes:
            self._unknown(file, 1, "", note)
        saved = self.src
        newlines = [i for i, c in enumerate(text) if c == "\n"]
        try:
            chunks, failures = parse_chunks(_mask(text))
            starts = [0] + [i + 1 for i in newlines]
            events = [(offset, 1, nodes) for offset, nodes in chunks]
            events += [(starts[line - 1], 0, (line, snippet, error))
                       for line, snippet, error in failures]
            for offset, is_chunk, item in sorted(events, key=lambda e: (e[0], e[1])):
                if not is_chunk:
                    self._unparsed(file, *item, st)
                    continue
                self.src = _Source(file, text, newlines, offset)
                for node in item:
                    self._node(node, st, ctx)
        finally:
            self.src = saved

    def _unparsed(self, file: str, line: int, snippet: str, error: str, st: _State) -> None:
        """A line bashlex cannot parse: whatever it may assign becomes unknown."""
        self._unknown(file, line, snippet, f"bashlex cannot parse this line ({error})")
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

    def _where(self, node) -> tuple[str, int]:
        return self.src.file, self.src.line(node.pos[0])

    def _node(self, node, st: _State, ctx: _Ctx) -> bool | None:
        """Evaluate one node; returns its exit status when decidable (True = success)."""
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

    def _list(self, parts, st: _State, ctx: _Ctx) -> bool | None:
        status: bool | None = True
        pending = None  # the operator before the next node
        previous = None
        for part in parts:
            if part.kind == "operator":
                pending = part.op if part.op in ("&&", "||") else None
                continue
            if pending is None:
                self._last_test = ()
                status = self._node(part, st, ctx)
                previous = part
                continue
            runs = status if pending == "&&" else (None if status is None else not status)
            if runs is False:
                continue
            if runs is True:
                guard = (self.src.raw(previous.pos), self._last_test) if previous else None
                status = self._node(part, st, replace(ctx, guard=guard))
            else:
                status = self._maybe(part, st, ctx)
            previous = part
        return status

    def _maybe(self, node, st: _State, ctx: _Ctx) -> None:
        """A node that may or may not run: its state survives only if it does not exit."""
        fork = st.fork()
        try:
            self._node(node, fork, replace(ctx, conditional=True))
        except _Exit:
            return None
        self._merge(st, [st.fork(), fork], node)
        return None

    def _pipeline(self, node, st: _State, ctx: _Ctx) -> bool | None:
        commands = [p for p in node.parts if p.kind not in ("pipe", "reservedword")]
        negate = any(p.kind == "reservedword" and p.word == "!" for p in node.parts)
        status = None
        for cmd in commands:
            # every element of a multi-command pipeline runs in a subshell
            status = self._node(cmd, st.fork() if len(commands) > 1 else st, ctx)
        if len(commands) > 1:
            status = None
        return (not status if status is not None else None) if negate else status

    def _compound(self, node, st: _State, ctx: _Ctx) -> bool | None:
        inner = [p for p in node.list if p.kind != "reservedword"]
        subshell = any(p.kind == "reservedword" and p.word == "(" for p in node.list)
        target = st.fork() if subshell else st
        status = None
        try:
            for part in inner:
                status = self._node(part, target, ctx)
        except _Exit as stop:
            if not subshell:
                raise
            return stop.status == "0"
        for redirect in getattr(node, "redirects", []) or []:
            self._redirect_word(redirect, target)
        return status

    def _if(self, node, st: _State, ctx: _Ctx) -> bool | None:
        branches: list[tuple[list, list]] = []  # (condition nodes, body nodes)
        current: list | None = None
        mode = ""
        else_body: list | None = None
        for part in node.parts:
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
        undecided: list[list] = []
        for cond, body in branches:
            if undecided:
                undecided.append(body)
                continue
            self._last_test = ()
            decided = self._run_nodes(cond, st, ctx)
            if decided is True:
                guard = (self.src.raw((cond[0].pos[0], cond[-1].pos[1])).rstrip("; \n"),
                         self._last_test)
                return self._run_nodes(body, st, replace(ctx, guard=guard))
            elif decided is None:
                undecided.append(body)
        if not undecided:
            return self._run_nodes(else_body or [], st, ctx)
        undecided.append(else_body or [])
        survivors = []
        for body in undecided:
            fork = st.fork()
            try:
                self._run_nodes(body, fork, replace(ctx, conditional=True))
            except _Exit:
                continue
            survivors.append(fork)
        if not survivors:  # every branch exits: so does the script, somewhere here
            file, line = self._where(node)
            raise _Exit("?", None if ctx.conditional else
                        Exit(file, line, "?", self.src.raw(node.pos)[:120]))
        self._merge(st, survivors, node)
        return None

    _last_test: tuple[Word, ...] = ()

    def _run_nodes(self, nodes, st: _State, ctx: _Ctx) -> bool | None:
        status = True
        for n in nodes:
            status = self._node(n, st, ctx)
        return status

    def _loop(self, node, st: _State, ctx: _Ctx) -> None:
        fork = st.fork()
        parts = node.parts
        if node.kind == "for":
            names = [p for p in parts if p.kind == "word"]
            if names:
                fork.vars[names[0].word] = Var(None, reason="a for-loop variable")
        body = [p for p in parts if p.kind not in ("reservedword", "word", "operator")]
        try:
            self._run_nodes(body, fork, replace(ctx, conditional=True))
        except _Exit:
            return None
        self._merge(st, [st.fork(), fork], node)
        return None

    def _merge(self, st: _State, branches: list[_State], node) -> None:
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
        for b in branches:
            st.functions.update(b.functions)
        st.allexport = any(b.allexport for b in branches)

    # -- simple commands

    def _command(self, node, st: _State, ctx: _Ctx) -> bool | None:
        file, line = self._where(node)
        assigns = [p for p in node.parts if p.kind == "assignment"]
        words = [p for p in node.parts if p.kind == "word"]
        redirects = [p for p in node.parts if p.kind == "redirect"]
        first = words[0].word if words else ""
        declaring = first in DECLARE
        argv: list[Word] = []
        self.vanished = []
        for i, w in enumerate(words):
            argv.extend(self._expand(w, st, split=not (declaring and i > 0 and "=" in w.word)))
        targets = tuple(t for r in redirects if (t := self._redirect_word(r, st)) is not None)
        if not argv:
            for a in assigns:
                self._assign(a, st, line, export=st.allexport)
            return True
        prefix = {}
        for a in assigns:
            name, value = self._assignment_value(a, st, line)
            if name:
                prefix[name] = replace(value, exported=True)
        return self._run(argv, prefix, targets, st, ctx, file, line, tuple(self.vanished))

    def _run(self, argv: list[Word], prefix: dict[str, Var], targets, st: _State, ctx: _Ctx,
             file: str, line: int, vanished: tuple[Word, ...] = ()) -> bool | None:
        name = argv[0].text if argv[0].known else ""
        args = argv[1:]
        if not argv[0].known:
            self._unknown(file, line, argv[0].source, f"the program is not known: "
                                                       f"{argv[0].reason}")
        if name == "exec" and not args:
            return True  # `exec >log 2>&1`: redirects the script itself
        if name in WRAPPERS and args:
            rest = _unwrap(name, args, prefix)
            if rest:
                if name == "exec":
                    self._run(rest, prefix, targets, st, ctx, file, line)
                    raise _Exit("exec", None)
                return self._run(rest, prefix, targets, st, ctx, file, line)
        if name in DECLARE:
            return self._declare(name, args, st, file, line)
        if name == "unset":
            for a in args:
                if not a.text.startswith("-"):
                    st.vars.pop(a.text, None)
                    st.functions.pop(a.text, None)
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
        if name in ("exit", "return"):
            status = args[0].text if args else "0"
            if name == "return" and ctx.depth:
                raise _Return()
            record = None
            if not ctx.conditional:
                guard_text, guard_words = ctx.guard or ("", ())
                empty = [v for w in guard_words for v in w.empty] + [
                    r for w in guard_words for r in w.refs[:1]
                    if NAME.fullmatch(r) and (st.vars.get(r) is None or st.vars[r].value == "")]
                record = Exit(file, line, status, guard_text, _dedupe(empty),
                              tuple(self._missing_paths(guard_words, st)))
            raise _Exit(status, record)
        if name == "shift":
            n = int(args[0].text) if args and args[0].text.isdigit() else 1
            st.positional = st.positional[n:]
            return True
        if name in ("[", "test"):
            words = args[:-1] if name == "[" and args and args[-1].text == "]" else args
            self._last_test = tuple(words)
            return _test(words, st.cwd)
        if name in ("true", ":"):
            return True
        if name == "false":
            return False
        if name == "eval":
            self._unknown(file, line, " ".join(w.source for w in argv), "eval is not evaluated")
            return None
        if name == "read":
            for a in args:
                if NAME.fullmatch(a.text):
                    st.vars[a.text] = Var(None, reason=f"read from input at {file}:{line}")
            return None
        if name in st.functions:
            return self._call(name, args, st, ctx, file, line)
        env = {k: v for k, v in st.vars.items() if v.exported}
        env.update(prefix)
        self.commands.append(Command(tuple(argv), env, file, line, st.cwd, ctx.conditional,
                                     targets, vanished))
        script, positional = self._shell_script(name, args, st)
        if script is not None:
            self._child_script(script, positional, env, st, ctx, file, line)
        return None

    def _declare(self, name: str, args: list[Word], st: _State, file: str, line: int):
        flags = "".join(a.text[1:] for a in args if a.text.startswith("-"))
        if "f" in flags:
            return True
        export = name == "export" or "x" in flags
        for a in args:
            if a.text.startswith("-"):
                continue
            key, eq, value = a.text.partition("=")
            if not NAME.fullmatch(key):
                continue
            if "a" in flags or "A" in flags:
                st.vars[key] = Var(None, export, reason="arrays are not evaluated",
                                   where=f"{file}:{line}")
                continue
            if eq:
                shown = a.text.partition("=")[2]
                st.vars[key] = Var(value if a.known else None, export or st.allexport,
                                   a.reason, a.refs, f"{file}:{line}",
                                   "" if a.known else shown,
                                   "" if a.known else a.prefix.partition("=")[2])
            elif key in st.vars and export:
                st.vars[key] = replace(st.vars[key], exported=True)
        return True

    def _set(self, args: list[Word], st: _State) -> bool:
        texts = [a.text for a in args]
        for i, t in enumerate(texts):
            if t == "--":
                st.positional = tuple(args[i + 1:])
                break
            if t.startswith("-") and "a" in t[1:] and not t.startswith("--"):
                st.allexport = True
            elif t.startswith("+") and "a" in t[1:]:
                st.allexport = False
            elif t == "-o" and i + 1 < len(texts) and texts[i + 1] == "allexport":
                st.allexport = True
            elif t == "+o" and i + 1 < len(texts) and texts[i + 1] == "allexport":
                st.allexport = False
        return True

    def _cd(self, args: list[Word], st: _State) -> bool | None:
        target = args[0] if args else Word(st.vars.get("HOME", Var("")).value or "", "~")
        if not target.known or st.cwd is None or target.text == "-":
            st.cwd = None
            return None
        path = posixpath.normpath(posixpath.join(st.cwd, target.text))
        if os.path.isdir(path):
            st.cwd = path
            return True
        return False

    def _source(self, args, st: _State, ctx: _Ctx, file: str, line: int) -> bool | None:
        if not args:
            return False
        target = args[0]
        if not target.known:
            self._unknown(file, line, target.source,
                          f"source of an unknown path: what it sets is unknown ({target.reason})")
            return None
        path = self._resolve(target.text, st)
        if path is None or not os.path.isfile(path):
            self._unknown(file, line, target.text,
                          f"source {target.text}: no such file here; what it sets is unknown")
            return False
        if ctx.depth >= MAX_SOURCE_DEPTH or path in self.files[-MAX_SOURCE_DEPTH:]:
            self._unknown(file, line, target.text, "source nested too deep (a cycle?)")
            return None
        try:
            text, notes = self.reader(path)
        except ScriptFileError as exc:
            self._unknown(file, line, target.text, str(exc))
            return None
        saved = st.positional
        if len(args) > 1:
            st.positional = tuple(args[1:])
        try:
            self._run_text(path, text, notes, st, replace(ctx, depth=ctx.depth + 1))
        except _Return:
            pass
        finally:
            st.positional = saved
        return None

    def _call(self, name: str, args, st: _State, ctx: _Ctx, file: str, line: int):
        if ctx.depth >= MAX_CALL_DEPTH:
            self._unknown(file, line, name, "function calls nested too deep")
            return None
        body, source = st.functions[name]
        saved_src, saved_pos = self.src, st.positional
        self.src, st.positional = source, tuple(args)
        try:
            self._run_nodes(body, st, replace(ctx, depth=ctx.depth + 1))
        except _Return:
            pass
        finally:
            self.src, st.positional = saved_src, saved_pos
        return None

    def _shell_script(self, name: str, args: list[Word], st: _State):
        """(file, its arguments) a `bash x.sh` / `./x.sh` would run, when readable here."""
        if name in ("bash", "sh", "dash", "zsh"):
            for k, a in enumerate(args):
                if not a.known or a.text in ("-c", "-s", "-i"):
                    return None, ()
                if not a.text.startswith("-"):
                    return self._resolve(a.text, st), tuple(args[k + 1:])
            return None, ()
        if name.endswith(".sh") and "/" in name:
            return self._resolve(name, st), tuple(args)
        return None, ()

    def _child_script(self, path: str | None, positional, env: dict, st: _State, ctx: _Ctx,
                      file: str, line: int) -> None:
        """A script the job runs as a child: it sees only the exported environment."""
        if path is None or not os.path.isfile(path):
            return
        if ctx.depth >= MAX_SOURCE_DEPTH or path in self.files[-MAX_SOURCE_DEPTH:]:
            return
        try:
            text, notes = self.reader(path)
        except ScriptFileError as exc:
            self._unknown(file, line, path, str(exc))
            return
        child = _State(dict(env), {}, st.cwd, False, positional)
        try:
            self._run_text(path, text, notes, child, replace(ctx, depth=ctx.depth + 1))
        except (_Exit, _Return):
            pass

    def _resolve(self, path: str, st: _State) -> str | None:
        if posixpath.isabs(path):
            return path
        if st.cwd is None:
            return None
        return posixpath.normpath(posixpath.join(st.cwd, path))

    def _missing_paths(self, words: tuple[Word, ...], st: _State) -> list[str]:
        texts = [w.text for w in words]
        out = []
        for i, t in enumerate(texts[:-1]):
            if t in ("-f", "-d", "-e", "-r", "-s") and words[i + 1].known:
                path = self._resolve(words[i + 1].text, st)
                if path and not os.path.exists(path):
                    out.append(words[i + 1].text)
        return out

    def _assign(self, node, st: _State, line: int, export: bool) -> None:
        name, value = self._assignment_value(node, st, line)
        if not name:
            return
        old = st.vars.get(name)
        st.vars[name] = replace(value, exported=export or (old is not None and old.exported))

    def _assignment_value(self, node, st: _State, line: int) -> tuple[str, Var]:
        raw = self.src.raw(node.pos)
        name, op, _ = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(\+?=)(.*)", raw, re.S).groups() \
            if re.match(r"[A-Za-z_][A-Za-z0-9_]*\+?=", raw) else ("", "", "")
        if not name:
            return "", Var(None)
        where = f"{self.src.file}:{line}"
        start = node.pos[0] + len(name) + len(op)
        if raw[len(name) + len(op):].startswith("("):
            self._unknown(self.src.file, line, raw, "arrays are not evaluated")
            return name, Var(None, reason="an array (not evaluated)", where=where)
        value = self._expand_raw(raw[len(name) + len(op):], start, st, _subs(node))
        if op == "+=":
            old = st.vars.get(name)
            if old is None or old.value is None or not value.known:
                return name, Var(None, reason="+= onto an unknown value", where=where)
            return name, Var(old.value + value.text, refs=old.refs + value.refs, where=where)
        if not value.known:
            return name, Var(None, reason=value.reason, refs=value.refs, where=where,
                             text=value.text, prefix=value.prefix)
        return name, Var(value.text, refs=value.refs, where=where)

    def _redirect_word(self, node, st: _State) -> Word | None:
        target = getattr(node, "output", None)
        if target is None or not hasattr(target, "kind") or target.kind != "word":
            return None
        if node.type in ("<<", "<<-", "<<<", ">&", "<&") and not target.word.startswith("/"):
            return None
        words = self._expand(target, st, split=False)
        return words[0] if words else None

    # -- word expansion

    def _expand(self, node, st: _State, split: bool = True) -> list[Word]:
        raw = self.src.raw(node.pos)
        pieces = self._scan(raw, node.pos[0], st, _subs(node), dq=False)
        kept, vanished = _fields(pieces, split)
        self.vanished.extend(_word(f, raw) for f in vanished)
        return [_word(f, raw) for f in kept]

    def _expand_raw(self, raw: str, start: int, st: _State, subs: dict) -> Word:
        """Expand text that is one word already (an assignment's value): no splitting."""
        pieces = self._scan(raw, start, st, subs, dq=False)
        kept, vanished = _fields(pieces, split=False)
        return _word((kept or vanished or [[]])[0], raw)

    def _scan(self, raw: str, start: int, st: _State, subs: dict, dq: bool) -> list[_Piece]:
        pieces: list[_Piece] = []
        buf: list[str] = []
        quoted_any = False

        def flush(quoted: bool) -> None:
            if buf:
                pieces.append(_Piece("".join(buf), quoted=quoted))
                buf.clear()

        i, n = 0, len(raw)
        while i < n:
            c = raw[i]
            if c == "'" and not dq:
                flush(False)
                j = raw.find("'", i + 1)
                j = n if j < 0 else j
                pieces.append(_Piece(raw[i + 1:j], quoted=True))
                i = j + 1
            elif c == '"':
                flush(dq)
                dq = not dq
                quoted_any = True
                pieces.append(_Piece("", quoted=True))
                i += 1
            elif c == "\\":
                nxt = raw[i + 1:i + 2]
                if nxt == "\n":
                    i += 2
                elif not dq or nxt in ('$', '`', '"', '\\'):
                    flush(dq)
                    pieces.append(_Piece(nxt, quoted=True))
                    i += 2
                else:
                    buf.append("\\")
                    i += 1
            elif c == "$" and i + 1 < n:
                flush(dq)
                piece, i = self._dollar(raw, i, start, st, subs, dq)
                pieces.append(piece)
            elif c == "`":
                flush(dq)
                j = raw.find("`", i + 1)
                j = n - 1 if j < 0 else j
                node = subs.get(start + i)
                pieces.append(self._substitute(node, raw[i:j + 1], st, dq))
                i = j + 1
            elif c == "~" and i == 0 and not dq:
                j = i + 1
                while j < n and raw[j] not in "/:":
                    j += 1
                if j == i + 1:
                    home = st.vars.get("HOME")
                    pieces.append(_Piece(home.value if home and home.value is not None
                                         else "~", quoted=True))
                else:
                    buf.append(raw[i:j])
                i = j
            else:
                buf.append(c)
                i += 1
        flush(dq)
        del quoted_any
        return pieces

    def _dollar(self, raw: str, i: int, start: int, st: _State, subs: dict, dq: bool):
        nxt = raw[i + 1]
        if nxt == "'" and not dq:
            j = i + 2
            out = []
            while j < len(raw) and raw[j] != "'":
                if raw[j] == "\\" and j + 1 < len(raw):
                    out.append({"n": "\n", "t": "\t", "'": "'", "\\": "\\",
                                '"': '"'}.get(raw[j + 1], "\\" + raw[j + 1]))
                    j += 2
                else:
                    out.append(raw[j])
                    j += 1
            return _Piece("".join(out), quoted=True), j + 1
        if nxt == "(":
            j = _matching(raw, i + 1, "(", ")")
            node = subs.get(start + i)
            return self._substitute(node, raw[i:j + 1], st, dq), j + 1
        if nxt == "{":
            j = _matching(raw, i + 1, "{", "}")
            return self._braced(raw[i + 2:j], raw[i:j + 1], start + i + 2, st, subs, dq), j + 1
        m = NAME.match(raw, i + 1)
        if m:
            return self._param(m.group(0), raw[i:m.end()], st, dq), m.end()
        if nxt.isdigit() or nxt in "@*#?$!-":
            return self._param(nxt, raw[i:i + 2], st, dq), i + 2
        return _Piece("$", quoted=dq), i + 1

    def _lookup(self, name: str, st: _State) -> tuple[Var | None, tuple[Word, ...] | None]:
        if name.isdigit():
            k = int(name)
            if k == 0:
                return Var(self.script0 or "bash"), None
            return (Var(st.positional[k - 1].value, reason=st.positional[k - 1].reason)
                    if k <= len(st.positional) else None), None
        if name in "@*":
            return None, st.positional
        if name == "#":
            return Var(str(len(st.positional))), None
        if name in "?$!-" or name in ("RANDOM", "SECONDS", "LINENO", "BASHPID", "PPID"):
            return Var(None, reason=f"${name} is only known at run time"), None
        if name == "PWD" and st.cwd is not None:
            return Var(st.cwd, exported=True), None
        if name == "BASH_SOURCE":
            return Var(self.src.file), None
        return st.vars.get(name), None

    def _param(self, name: str, source: str, st: _State, dq: bool,
               default_ok: bool = False) -> _Piece:
        var, fields = self._lookup(name, st)
        label = f"${name}" if not NAME.fullmatch(name) else name
        if fields is not None:
            return _Piece("", quoted=dq, source=source, fields=tuple(fields))
        if var is None or (var.value == "" and not default_ok):
            return _Piece("", quoted=dq, split=not dq, source=source, refs=(label,),
                          empty=() if default_ok else (label,))
        if var.value is None:
            return _Piece(var.text, quoted=dq, split=not dq, known=False, source=source,
                          reason=f"{label}: {var.reason or 'not known'}",
                          refs=(label, *var.refs), prefix=var.prefix)
        return _Piece(var.value, quoted=dq, split=not dq, source=source,
                      refs=(label, *var.refs))

    def _braced(self, expr: str, source: str, start: int, st: _State, subs: dict,
                dq: bool) -> _Piece:
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])", expr)
        if expr.startswith("#") and len(expr) > 1:
            var, _ = self._lookup(expr[1:], st)
            if var is not None and var.value is not None:
                return _Piece(str(len(var.value)), quoted=dq, split=not dq, source=source)
            return _Piece("", known=var is None, quoted=dq, source=source,
                          reason=f"{source}: length of an unknown value")
        if not m:
            return _Piece("", known=False, quoted=dq, source=source,
                          reason=f"{source} is not evaluated")
        name, rest = m.group(0), expr[m.end():]
        if rest.startswith("[") and name in ("BASH_SOURCE",) and rest in ("[0]", "[@]"):
            rest = ""
        if rest.startswith("["):
            var, _ = self._lookup(name, st)
            if rest in ("[0]", "[@]", "[*]") and var is not None and var.value is not None:
                return self._param(name, source, st, dq)
            return _Piece("", known=False, quoted=dq, source=source,
                          reason=f"{source}: arrays are not evaluated")
        if not rest:
            return self._param(name, source, st, dq)
        op = re.match(r":?[-=+?]", rest)
        if not op:
            var, _ = self._lookup(name, st)
            return _Piece("", known=False, quoted=dq, source=source,
                          reason=f"{source}: this expansion is not evaluated",
                          refs=(name,) if var else ())
        op_text, word_raw = op.group(0), rest[op.end():]
        word_start = start + m.end() + op.end()
        var, _ = self._lookup(name, st)
        colon = op_text.startswith(":")
        is_set = var is not None and (var.value is None or var.value != "" or not colon)
        if var is not None and var.value is None and colon:
            return _Piece("", known=False, quoted=dq, source=source,
                          reason=f"{name}: {var.reason or 'not known'}", refs=(name, *var.refs))
        kind = op_text[-1]
        if kind in "-=":
            if is_set:
                return self._param(name, source, st, dq, default_ok=True)
            inner = self._scan(word_raw, word_start, st, subs, dq)
            value = _word(_first_field(inner), word_raw)
            if kind == "=" and NAME.fullmatch(name):
                old = st.vars.get(name)
                st.vars[name] = Var(value.value, exported=bool(old and old.exported),
                                    reason=value.reason, refs=value.refs,
                                    where=f"{self.src.file}:{self.src.line(start)}",
                                    text="" if value.known else value.text,
                                    prefix="" if value.known else value.prefix)
            return _Piece(value.text if value.known else "", quoted=dq, split=not dq,
                          known=value.known, reason=value.reason, source=source,
                          refs=(name, *value.refs))
        if kind == "+":
            if not is_set:
                return _Piece("", quoted=dq, split=not dq, source=source, refs=(name,))
            inner = self._scan(word_raw, word_start, st, subs, dq)
            value = _word(_first_field(inner), word_raw)
            return _Piece(value.text if value.known else "", quoted=dq, split=not dq,
                          known=value.known, reason=value.reason, source=source)
        # ${X:?message}: bash stops the script when X is empty; the value is X itself
        return self._param(name, source, st, dq)

    def _substitute(self, node, source: str, st: _State, dq: bool) -> _Piece:
        value = self._pure(node.command, st) if node is not None else None
        if source.startswith("$(("):
            reason = "arithmetic $((...)) is not evaluated"
        else:
            reason = f"{source[:60]}: command output is not evaluated"
        if value is None:
            return _Piece("", known=False, quoted=dq, source=source, reason=reason)
        return _Piece(value, quoted=dq, split=not dq, source=source)

    def _pure(self, node, st: _State) -> str | None:
        """The output of the few commands whose output is a function of their arguments,
        the cwd and PATH: pwd, dirname, basename, echo, which / command -v."""
        if node.kind != "command" or any(p.kind != "word" for p in node.parts):
            return None
        argv = [w for p in node.parts for w in self._expand(p, st)]
        if not argv or not all(w.known for w in argv):
            return None
        name, args = argv[0].text, [w.text for w in argv[1:] if w.text != "--"]
        if name == "pwd":
            return st.cwd
        if name == "dirname" and len(args) == 1:
            return posixpath.dirname(args[0].rstrip("/")) or ("/" if args[0].startswith("/")
                                                              else ".")
        if name == "basename" and args:
            base = posixpath.basename(args[0].rstrip("/"))
            return base[:-len(args[1])] if len(args) > 1 and base.endswith(args[1]) else base
        if name == "echo" and not any(a.startswith("-") for a in args):
            return " ".join(args)
        if name in ("which", "command") and args and args[0] != "-v" or \
                name == "command" and len(args) == 2 and args[0] == "-v":
            path = st.vars.get("PATH")
            found = shutil.which(args[-1], path=path.value if path and path.value else "")
            return found  # None (unknown) when it does not resolve here
        return None


def _subs(node) -> dict:
    """Command substitutions of a word by position (they carry their own parse)."""
    return {p.pos[0]: p for p in _walk(node) if p.kind == "commandsubstitution"}


def _walk(node):
    """The parts of a word: parameters and command substitutions, not descending into
    the command inside a substitution (its words belong to it)."""
    for part in getattr(node, "parts", []) or []:
        yield part
        if part.kind != "commandsubstitution":
            yield from _walk(part)


def _matching(raw: str, i: int, open_: str, close: str) -> int:
    """Index of the bracket closing raw[i], skipping quotes; len-1 when unclosed."""
    depth, j, quote = 0, i, ""
    while j < len(raw):
        c = raw[j]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"':
                j += 1
        elif c in "'\"":
            quote = c
        elif c == "\\":
            j += 1
        elif c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return len(raw) - 1


def _fields(pieces: list[_Piece], split: bool) -> tuple[list[list[_Piece]], list]:
    """(fields, vanished): field splitting of unquoted expansions (IFS whitespace) and
    "$@". A word made only of unquoted empty expansions vanishes; it is returned apart
    so that the empty variables in it are still seen."""
    fields: list[list[_Piece]] = []
    cur: list[_Piece] | None = None
    for p in pieces:
        if p.fields is not None:
            for k, w in enumerate(p.fields):
                if k > 0 and cur is not None:
                    fields.append(cur)
                    cur = None
                cur = (cur or []) + [_Piece(w.text, quoted=True, known=w.known,
                                            reason=w.reason, refs=w.refs, source=w.source)]
            continue
        if p.split and split and p.known and p.text:
            for k, part in enumerate(re.split(r"[ \t\n]+", p.text)):
                if k > 0 and cur is not None:
                    fields.append(cur)
                    cur = None
                if part:
                    cur = (cur or []) + [replace(p, text=part)]
            continue
        cur = (cur or []) + [p]
    if cur is not None:
        fields.append(cur)
    kept, vanished = [], []
    for f in fields:
        (kept if any(p.quoted or p.text or not p.known for p in f) else vanished).append(f)
    return kept, vanished


def _first_field(pieces: list[_Piece]) -> list[_Piece]:
    kept, vanished = _fields(pieces, split=False)
    return (kept or vanished or [[]])[0]


def _word(pieces: list[_Piece], source: str) -> Word:
    known = all(p.known for p in pieces)
    text, prefix, seen_unknown = [], [], False
    for p in pieces:
        if p.known:
            text.append(p.text)
            if not seen_unknown:
                prefix.append(p.text)
        else:
            if not seen_unknown:
                prefix.append(p.prefix)
            seen_unknown = True
            text.append(p.text or f"{UNKNOWN_OPEN}{p.source}{UNKNOWN_CLOSE}")
    reason = next((p.reason for p in pieces if not p.known), "")
    return Word("".join(text), source, known, reason,
                _dedupe(r for p in pieces for r in p.refs),
                _dedupe(e for p in pieces for e in p.empty), "".join(prefix))


def _dedupe(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


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
            check = {"-f": os.path.isfile, "-d": os.path.isdir, "-e": os.path.exists,
                     "-L": os.path.islink,
                     "-s": lambda p: os.path.isfile(p) and os.path.getsize(p) > 0,
                     "-r": lambda p: os.access(p, os.R_OK),
                     "-w": lambda p: os.access(p, os.W_OK),
                     "-x": lambda p: os.access(p, os.X_OK)}[op]
            return check(path)
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
    text, notes = reader(path)
    return Evaluator(environ, cwd, reader).run_file(path, text, notes)


def evaluate_command(line: str, environ: Mapping[str, str], cwd: str | None = None) -> Trace:
    return Evaluator(environ, cwd).run_command(line)

