"""Walking the bashlex tree of a launch script: statements, lists and pipelines, `if`
(both branches when undecided), loops, functions, `source`, `cd`, `set -a`, assignments
and exports, and the commands it would start. Nothing is executed."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import replace

from preflight.probes.shell.model import (
    DECLARE,
    NAME,
    WRAPPERS,
    Command,
    Exit,
    ScriptFileError,
    Trace,
    Unknown,
    Var,
    Word,
)
from preflight.probes.shell.source import mask, parse_chunks, read_script
from preflight.probes.shell.state import Ctx, Source, State
from preflight.probes.shell.words import Expander, dedupe, substitutions

MAX_SOURCE_DEPTH = 8
MAX_CALL_DEPTH = 16

Reader = Callable[[str], tuple[str, list[str]]]


class _Exit(Exception):
    def __init__(self, status: str, record: Exit | None):
        self.status = status
        self.record = record


class _Return(Exception):
    pass


class Evaluator(Expander):
    def __init__(self, environ: Mapping[str, str], cwd: str | None = None,
                 reader: Reader = read_script):
        self.reader = reader
        env_vars = {k: Var(v, exported=True) for k, v in environ.items()}
        self.state = State(env_vars, {}, cwd or os.getcwd())
        self.commands: list[Command] = []
        self.unknowns: list[Unknown] = []
        self.exit: Exit | None = None
        self.files: list[str] = []
        self.script0 = ""
        self.src: Source = Source("", "", [])
        self._seen_unknowns: set[tuple] = set()
        self.vanished: list[Word] = []  # words that expanded to nothing (unquoted, empty)

    # -- entry points

    def run_file(self, path: str, text: str, notes: list[str] = ()) -> Trace:
        self.script0 = path
        try:
            self._run_text(path, text, notes, self.state, Ctx())
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

    def _run_text(self, file: str, text: str, notes, st: State, ctx: Ctx) -> None:
        self.files.append(file)
        for note in notes:
            self._unknown(file, 1, "", note)
        saved = self.src
        newlines = [i for i, c in enumerate(text) if c == "\n"]
        try:
            chunks, failures = parse_chunks(mask(text))
            starts = [0] + [i + 1 for i in newlines]
            events = [(offset, 1, nodes) for offset, nodes in chunks]
            events += [(starts[line - 1], 0, (line, snippet, error))
                       for line, snippet, error in failures]
            for offset, is_chunk, item in sorted(events, key=lambda e: (e[0], e[1])):
                if not is_chunk:
                    self._unparsed(file, *item, st)
                    continue
                self.src = Source(file, text, newlines, offset)
                for node in item:
                    self._node(node, st, ctx)
        finally:
            self.src = saved

    def _unparsed(self, file: str, line: int, snippet: str, error: str, st: State) -> None:
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

    def _node(self, node, st: State, ctx: Ctx) -> bool | None:
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

    def _list(self, parts, st: State, ctx: Ctx) -> bool | None:
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

    def _maybe(self, node, st: State, ctx: Ctx) -> None:
        """A node that may or may not run: its state survives only if it does not exit."""
        fork = st.fork()
        try:
            self._node(node, fork, replace(ctx, conditional=True))
        except _Exit:
            return None
        self._merge(st, [st.fork(), fork], node)
        return None

    def _pipeline(self, node, st: State, ctx: Ctx) -> bool | None:
        commands = [p for p in node.parts if p.kind not in ("pipe", "reservedword")]
        negate = any(p.kind == "reservedword" and p.word == "!" for p in node.parts)
        status = None
        for cmd in commands:
            # every element of a multi-command pipeline runs in a subshell
            status = self._node(cmd, st.fork() if len(commands) > 1 else st, ctx)
        if len(commands) > 1:
            status = None
        return (not status if status is not None else None) if negate else status

    def _compound(self, node, st: State, ctx: Ctx) -> bool | None:
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

    def _if(self, node, st: State, ctx: Ctx) -> bool | None:
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

    def _run_nodes(self, nodes, st: State, ctx: Ctx) -> bool | None:
        status = True
        for n in nodes:
            status = self._node(n, st, ctx)
        return status

    def _loop(self, node, st: State, ctx: Ctx) -> None:
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

    def _merge(self, st: State, branches: list[State], node) -> None:
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

    def _command(self, node, st: State, ctx: Ctx) -> bool | None:
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
        pairs = [(r.type, t) for r in redirects if (t := self._redirect_word(r, st)) is not None]
        targets = tuple(t for _, t in pairs)
        # the targets bash opens for writing: it fails there when the directory is missing
        self.redirect_writes = tuple(t for op, t in pairs if op in (">", ">>", ">|", "&>",
                                                                    ">&", "&>>"))
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

    def _run(self, argv: list[Word], prefix: dict[str, Var], targets, st: State, ctx: Ctx,
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
                record = Exit(file, line, status, guard_text, dedupe(empty),
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
                                     targets, vanished,
                                     writes=getattr(self, "redirect_writes", ())))
        script, positional = self._shell_script(name, args, st)
        if script is not None:
            self._child_script(script, positional, env, st, ctx, file, line)
        return None

    def _declare(self, name: str, args: list[Word], st: State, file: str, line: int):
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

    def _set(self, args: list[Word], st: State) -> bool:
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

    def _cd(self, args: list[Word], st: State) -> bool | None:
        target = args[0] if args else Word(st.vars.get("HOME", Var("")).value or "", "~")
        if not target.known or st.cwd is None or target.text == "-":
            st.cwd = None
            return None
        path = posixpath.normpath(posixpath.join(st.cwd, target.text))
        if os.path.isdir(path):
            st.cwd = path
            return True
        return False

    def _source(self, args, st: State, ctx: Ctx, file: str, line: int) -> bool | None:
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

    def _call(self, name: str, args, st: State, ctx: Ctx, file: str, line: int):
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

    def _shell_script(self, name: str, args: list[Word], st: State):
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

    def _child_script(self, path: str | None, positional, env: dict, st: State, ctx: Ctx,
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
        child = State(dict(env), {}, st.cwd, False, positional)
        try:
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

    def _assign(self, node, st: State, line: int, export: bool) -> None:
        name, value = self._assignment_value(node, st, line)
        if not name:
            return
        old = st.vars.get(name)
        st.vars[name] = replace(value, exported=export or (old is not None and old.exported))

    def _assignment_value(self, node, st: State, line: int) -> tuple[str, Var]:
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
        value = self._expand_raw(raw[len(name) + len(op):], start, st, substitutions(node))
        if op == "+=":
            old = st.vars.get(name)
            if old is None or old.value is None or not value.known:
                return name, Var(None, reason="+= onto an unknown value", where=where)
            return name, Var(old.value + value.text, refs=old.refs + value.refs, where=where)
        if not value.known:
            return name, Var(None, reason=value.reason, refs=value.refs, where=where,
                             text=value.text, prefix=value.prefix)
        return name, Var(value.text, refs=value.refs, where=where)

    def _redirect_word(self, node, st: State) -> Word | None:
        target = getattr(node, "output", None)
        if target is None or not hasattr(target, "kind") or target.kind != "word":
            return None
        if node.type in ("<<", "<<-", "<<<", ">&", "<&") and not target.word.startswith("/"):
            return None
        words = self._expand(target, st, split=False)
        return words[0] if words else None


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
