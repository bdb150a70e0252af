"""Word expansion as bash does it, for the parts a launch script uses: quoting,
`$VAR`, `${VAR:-default}` / `${VAR:=default}` / `${VAR:+alt}`, `"$@"`, field splitting,
`~`, and the pure command substitutions `$(pwd)`, `$(dirname X)`, `$(basename X)`,
`$(which X)`. Anything else expands to an unknown part (⟨...⟩), never a guess."""

from __future__ import annotations

import fnmatch
import glob as globmod
import os
import posixpath
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from preflight.launch.shell import arith
from preflight.launch.shell.model import NAME, UNKNOWN_CLOSE, UNKNOWN_OPEN, Var, Word
from preflight.launch.shell.source import matching as _bracket
from preflight.launch.shell.state import Node, Source, State


class Stop(Exception):
    """Bash stops the script here (`set -u` on an unset variable, `${V:?}`)."""


class Abort(Stop):
    """Bash 5.2 abandons the current top-level statement and goes on with the next:
    `${#A[@]}` of an unset array under `set -u` (unlike every other unbound variable)."""


class ArithAbort(Abort):
    """An arithmetic expansion bash rejects (`a b: syntax error in expression`): the
    top-level statement is abandoned, and the script goes on even under `set -e`."""


@dataclass
class Piece:
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
    origins: tuple[str, ...] = ()  # see Word.origins


class Expander:
    """Expansion of words against a State; the Evaluator supplies `src` (the text being
    read), `zero` (`$0`) and `vanished` (words that expanded to nothing)."""

    src: Source
    zero: str
    given: dict[str, str | None]  # each file read -> its name as bash was given it
    vanished: list[Word]
    status: str | None = None  # `$?` where it is known (after a conda hook substitution)


    def _expand(self, node: Node, st: State, split: bool = True, braces: bool | None = None
                ) -> list[Word]:
        raw = self.src.raw(node.pos)
        subs = substitutions(node)
        out: list[Word] = []
        ifs = st.vars.get("IFS")
        ifs_text = " \t\n" if ifs is None else ifs.value
        # brace expansion also runs on a declaration builtin's NAME=VALUE (`export V=x{1,2}`
        # exports V=x2), which is not field-split
        for text in (brace_expand(raw) if (split if braces is None else braces) and not subs
                     else [raw]):
            pieces = self._scan(text, node.pos[0], st, subs, dq=False)
            if split and ifs_text != " \t\n":
                pieces = [_ifs(p, ifs_text) for p in pieces]
            elif split:
                pieces = [q for p in pieces for q in _known_head(p)]
            kept, vanished = split_fields(pieces, split)
            if not split and len(kept) > 1:  # `export V="${A[@]}"`, `case "$@" in`: one word
                kept = [join_fields(kept)]
            self.vanished.extend(to_word(f, raw) for f in vanished)
            for f in kept:
                out.extend(self._glob(f, raw, st) if split else [to_word(f, raw)])
        return out

    def _glob(self, field: list[Piece], raw: str, st: State) -> list[Word]:
        """Pathname expansion of one field against the filesystem, as bash does it
        (no match: the word stays as written; matches sorted)."""
        if not any(not p.quoted and ("*" in p.text or "?" in p.text or "[" in p.text)
                   for p in field):
            return [to_word(field, raw)]
        word = to_word(field, raw)
        if not word.known or st.cwd is None:
            return [replace(word, known=False, text=word.text,
                            reason=word.reason or f"{word.text}: a glob in an unknown place")]
        pattern = "".join(p.text if not p.quoted else glob_escape(p.text) for p in field)
        base = st.cwd
        try:
            found = sorted(globmod.glob(pattern, root_dir=base) if not pattern.startswith("/")
                           else globmod.glob(pattern))
        except (OSError, ValueError):
            found = []
        if not found:
            return [word]
        return [Word(f, word.source, refs=word.refs) for f in found]

    def _expand_raw(self, raw: str, start: int, st: State, subs: dict[int, Node]) -> Word:
        """Expand text that is one word already (an assignment's value): no splitting."""
        pieces = self._scan(raw, start, st, subs, dq=False)
        kept, vanished = split_fields(pieces, split=False)
        fields = kept or vanished or [[]]
        return to_word(join_fields(fields), raw)

    def _scan(self, raw: str, start: int, st: State, subs: dict[int, Node], dq: bool
              ) -> list[Piece]:
        pieces: list[Piece] = []
        buf: list[str] = []
        quoted_any = False

        def flush(quoted: bool) -> None:
            if buf:
                pieces.append(Piece("".join(buf), quoted=quoted))
                buf.clear()

        i, n = 0, len(raw)
        while i < n:
            c = raw[i]
            if c == "'" and not dq:
                flush(False)
                j = raw.find("'", i + 1)
                j = n if j < 0 else j
                pieces.append(Piece(raw[i + 1:j], quoted=True))
                i = j + 1
            elif c == '"':
                flush(dq)
                dq = not dq
                quoted_any = True
                pieces.append(Piece("", quoted=True))
                i += 1
            elif c == "\\":
                nxt = raw[i + 1:i + 2]
                if nxt == "\n":
                    i += 2
                elif not dq or nxt in ('$', '`', '"', '\\'):
                    flush(dq)
                    pieces.append(Piece(nxt, quoted=True))
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
                    if home is None or home.value is None:  # bash then asks passwd
                        pieces.append(Piece("", known=False, source="~",
                                            reason="~: HOME is not known"))
                    else:
                        pieces.append(Piece(home.value, quoted=True))
                else:  # ~user: that user's home directory, not read here
                    pieces.append(Piece("", known=False, source=raw[i:j],
                                        reason=f"{raw[i:j]}: another user's home directory"))
                i = j
            else:
                buf.append(c)
                i += 1
        flush(dq)
        del quoted_any
        return pieces

    def _dollar(self, raw: str, i: int, start: int, st: State, subs: dict[int, Node],
                dq: bool) -> tuple[Piece, int]:
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
            return Piece("".join(out), quoted=True), j + 1
        if raw.startswith("$((", i):
            j = matching(raw, i + 1, "(", ")")
            if raw[j - 1:j] == ")":
                return self._arith_piece(raw[i + 3:j - 1], raw[i:j + 1], st, dq), j + 1
        if nxt == "(":
            j = matching(raw, i + 1, "(", ")")
            node = subs.get(start + i)
            return self._substitute(node, raw[i:j + 1], st, dq), j + 1
        if nxt == "{":
            j = matching(raw, i + 1, "{", "}")
            return self._braced(raw[i + 2:j], raw[i:j + 1], start + i + 2, st, subs, dq), j + 1
        m = NAME.match(raw, i + 1)
        if m:
            return self._param(m.group(0), raw[i:m.end()], st, dq), m.end()
        if nxt.isdigit() or nxt in "@*#?$!-":
            return self._param(nxt, raw[i:i + 2], st, dq), i + 2
        return Piece("$", quoted=dq), i + 1

    def _lookup(self, name: str, st: State) -> tuple[Var | None, tuple[Word, ...] | None]:
        if name.isdigit():
            k = int(name)
            if k == 0:
                return (Var(self.zero), None) if self.zero else (
                    Var(None, reason="$0: the name of the shell that runs the command line "
                                     "is not known"), None)
            return (Var(st.positional[k - 1].value, reason=st.positional[k - 1].reason)
                    if k <= len(st.positional) else None), None
        if name in "@*":
            return None, st.positional
        if name == "#":
            if not all(w.known for w in st.positional):
                return Var(None, reason="$#: an argument that is not known may be several"), None
            return Var(str(len(st.positional))), None
        if name == "?" and self.status is not None:
            return Var(self.status), None
        if name in "?$!-" or name in ("RANDOM", "SECONDS", "LINENO", "BASHPID", "PPID"):
            return Var(None, reason=f"${name} is only known at run time"), None
        if name == "PWD" and st.cwd is not None:
            return Var(st.cwd, exported=True), None
        if name == "BASH_SOURCE":
            given = self.given.get(self.src.file)
            return (Var(given), None) if given is not None else (
                Var(None, reason="${BASH_SOURCE[0]}: the name bash gives this file is not "
                                 "known here"), None)
        var = st.vars.get(name)
        if var is None and st.opaque:
            return Var(None, reason=f"may be set there: {st.opaque}"), None
        return var, None

    def arith_lookup(self, st: State) -> arith.Lookup:
        def look(name: str) -> str | None:
            var, _ = self._lookup(name, st)
            if var is None:
                if st.nounset:
                    raise Stop(f"{name}: unbound variable (set -u)")
                return ""
            return var.value
        return look

    def _arith_piece(self, expr_raw: str, source: str, st: State, dq: bool) -> Piece:
        word = to_word(self._scan(expr_raw.replace('"', ""), 0, st, {}, dq=True), expr_raw)
        value = arith.evaluate(word.text, self.arith_lookup(st)) if word.known else None
        bad = arith.syntax_error(word.text, self.arith_lookup(st)) if value is None and \
            word.known else None
        if bad is not None:  # bash abandons the statement (`a b: syntax error in expression`)
            raise ArithAbort(f"{bad}: syntax error in expression")
        if value is None:
            return Piece("", known=False, quoted=dq, source=source,
                         reason=f"{source[:60]}: arithmetic on a value that is not known")
        return Piece(str(value), quoted=dq, split=not dq, source=source)

    def _param(self, name: str, source: str, st: State, dq: bool,
               default_ok: bool = False) -> Piece:
        var, fields = self._lookup(name, st)
        label = f"${name}" if not NAME.fullmatch(name) else name
        if fields is not None:
            if name == "*" and dq:
                return joined(fields, dq, source, _ifs_first(st))
            return Piece("", quoted=dq, source=source,
                         fields=tuple(fields) if dq else resplit(fields))
        if var is None and st.nounset and not default_ok and name not in "@*#?$!-0":
            raise Stop(f"{label}: unbound variable (set -u)")
        if var is None or (var.value == "" and not default_ok):
            return Piece("", quoted=dq, split=not dq, source=source, refs=(label,),
                          empty=() if default_ok else (label,))
        if var.value is None:
            return Piece(var.text, quoted=dq, split=not dq, known=False, source=source,
                          reason=f"{label}: {var.reason or 'not known'}",
                          refs=(label, *var.refs), prefix=var.prefix,
                          origins=var.origins or ("?",))
        return Piece(var.value, quoted=dq, split=not dq, source=source,
                      refs=(label, *var.refs))

    def _braced(self, expr: str, source: str, start: int, st: State, subs: dict[int, Node],
                dq: bool) -> Piece:
        unknown = Piece("", known=False, quoted=dq, source=source,
                        reason=f"{source}: this expansion is not evaluated")
        if expr.startswith("!"):
            return unknown  # indirection, ${!prefix*}
        m = re.match(r"#([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*])(\[(.*)\])?$", expr, re.S)
        if m and len(expr) > 1:
            return self._length(m.group(1), m.group(3), source, st, dq)
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])", expr)
        if not m:
            return unknown
        name, rest = m.group(0), expr[m.end():]
        index = None
        if rest.startswith("[") and NAME.fullmatch(name):
            close = matching(rest, 0, "[", "]")
            index, rest = rest[1:close], rest[close + 1:]
        if name == "BASH_SOURCE" and index in ("0", "@", "*"):
            index = None
        if index is not None:
            got = self._element(name, index, source, st, dq)
            if rest or got is None:
                return unknown if got is None or got.fields is not None else self._operate(
                    name, got, rest, source, start + len(expr) - len(rest), st, subs, dq)
            return got
        if not rest:
            return self._param(name, source, st, dq)
        op = re.match(r":?[-=+?]", rest)
        if not op:
            if st.nounset and self._lookup(name, st)[0] is None and \
                    name not in "@*#?$!-0":
                raise Stop(f"{name}: unbound variable (set -u)")
            return self._operate(name, self._param(name, source, st, dq, default_ok=True),
                                 rest, source, start + m.end(), st, subs, dq)
        return self._default_op(name, op.group(0), rest[op.end():],
                                start + m.end() + op.end(), start, source, st, subs, dq)

    def _default_op(self, name: str, op_text: str, word_raw: str, word_start: int,
                    start: int, source: str, st: State, subs: dict[int, Any], dq: bool
                    ) -> Piece:
        """${V-w} ${V:-w} ${V=w} ${V:=w} ${V+w} ${V:+w} ${V?m} ${V:?m}."""
        var, _ = self._lookup(name, st)
        colon = op_text.startswith(":")
        is_set = var is not None and (var.value is None or var.value != "" or not colon)
        if var is not None and var.value is None and colon:
            return Piece("", known=False, quoted=dq, source=source,
                          reason=f"{name}: {var.reason or 'not known'}", refs=(name, *var.refs))
        kind = op_text[-1]
        if kind in "-=":
            if is_set:
                return self._param(name, source, st, dq, default_ok=True)
            inner = self._scan(word_raw, word_start, st, subs, dq)
            value = to_word(first_field(inner), word_raw)
            if kind == "=" and NAME.fullmatch(name):
                old = st.vars.get(name)
                st.vars[name] = Var(value.value, exported=bool(old and old.exported)
                                    or name in st.exported_unset,
                                    reason=value.reason, refs=value.refs,
                                    where=f"{self.src.file}:{self.src.line(start)}",
                                    text="" if value.known else value.text,
                                    prefix="" if value.known else value.prefix)
            return Piece(value.text if value.known else "", quoted=dq, split=not dq,
                          known=value.known, reason=value.reason, source=source,
                          refs=(name, *value.refs))
        if kind == "+":
            if not is_set:
                return Piece("", quoted=dq, split=not dq, source=source, refs=(name,))
            inner = self._scan(word_raw, word_start, st, subs, dq)
            value = to_word(first_field(inner), word_raw)
            return Piece(value.text if value.known else "", quoted=dq, split=not dq,
                          known=value.known, reason=value.reason, source=source)
        # ${X:?message}: bash stops the script when X is unset (or empty, with the colon)
        if not is_set:
            raise Stop(f"{source}: {name} is {'empty or ' if colon else ''}unset")
        return self._param(name, source, st, dq, default_ok=True)

    def _length(self, name: str, index: str | None, source: str, st: State,
                dq: bool) -> Piece:
        var, fields = self._lookup(name, st)
        if index in ("@", "*") and var is None and st.nounset and fields is None:
            raise Abort(f"{name}: unbound variable (set -u)")
        if fields is not None or (index in ("@", "*") and var is not None
                                  and var.array is not None):
            items: tuple[Word, ...] = fields if fields is not None else \
                var.array if var is not None and var.array is not None else ()
            if not all(w.known for w in items):
                return Piece("", known=False, quoted=dq, source=source,
                             reason=f"{source}: an element that is not known may be several")
            return Piece(str(len(items)), quoted=dq, split=not dq, source=source)
        if index is not None and index not in ("0",):
            if var is None and not st.opaque:
                if st.nounset:
                    raise Stop(f"{name}[{index}]: unbound variable (set -u)")
                return Piece("0", quoted=dq, split=not dq, source=source)
            got = self._element(name, index, source, st, dq)
            if got is not None and got.known and got.fields is None:
                return Piece(str(len(got.text)), quoted=dq, split=not dq, source=source)
            return Piece("", known=False, quoted=dq, source=source,
                         reason=f"{source}: length of an unknown value")
        if var is None:
            if st.nounset:
                raise Stop(f"{name}: unbound variable (set -u)")
            return Piece("0", quoted=dq, split=not dq, source=source)
        if var.value is not None:
            return Piece(str(len(var.value)), quoted=dq, split=not dq, source=source)
        return Piece("", known=False, quoted=dq, source=source,
                     reason=f"{source}: length of an unknown value")

    def _element(self, name: str, index: str, source: str, st: State,
                 dq: bool) -> Piece | None:
        """${A[@]} / ${A[*]} / ${A[i]}; None when not known."""
        var, _ = self._lookup(name, st)
        if var is None:
            if index in ("@", "*"):
                return Piece("", quoted=dq, source=source, fields=())
            if st.nounset:
                raise Stop(f"{name}[{index}]: unbound variable (set -u)")
            return Piece("", quoted=dq, split=not dq, source=source, refs=(name,),
                         empty=(name,))
        items = var.array if var.array is not None else (
            (Word(var.value, name, refs=var.refs),) if var.value is not None else None)
        if items is None:
            return Piece("", known=False, quoted=dq, source=source,
                         reason=f"{name}: {var.reason or 'not known'}", refs=(name,))
        if index in ("@", "*"):
            # elements that vanished when the array was built (`A=(--key ${KEY})` with
            # KEY empty) are the command's vanished words: its flag lost its value
            self.vanished.extend(var.vanished)
            if index == "*" and dq:
                return joined(items, dq, source, _ifs_first(st))
            return Piece("", quoted=dq, source=source,
                         fields=tuple(items) if dq else resplit(items))
        word = to_word(self._scan(index, 0, st, {}, dq=True), index)
        k = arith.evaluate(word.text, self.arith_lookup(st)) if word.known else None
        if k is None:
            return None
        if not all(w.known for w in items[:k] if k >= 0) or k < 0 and not all(
                w.known for w in items):
            return None  # an unknown element before it may be several
        if k < 0:
            k += len(items)
        if not 0 <= k < len(items):
            if st.nounset:
                raise Stop(f"{name}[{index}]: unbound variable (set -u)")
            return Piece("", quoted=dq, split=not dq, source=source, refs=(name,))
        item = items[k]
        return Piece(item.text if item.known else "", quoted=dq, split=not dq,
                     known=item.known, reason=item.reason, source=source,
                     refs=(name, *item.refs))

    def _operate(self, name: str, got: Piece, rest: str, source: str, start: int,
                 st: State, subs: dict[int, Node], dq: bool) -> Piece:
        """${V%p} ${V%%p} ${V#p} ${V##p} ${V/p/r} ${V//p/r} ${V:off:len} ${V^^} ${V,,}."""
        unknown = Piece("", known=False, quoted=dq, source=source,
                        reason=f"{source}: this expansion is not evaluated")
        if got.fields is not None:
            return unknown
        if not got.known:
            return replace(got, text="", reason=got.reason or unknown.reason, source=source)
        value = got.text
        m = re.match(r"(%%|%|##|#|//|/#|/%|/|\^\^|\^|,,|,|:)(.*)$", rest, re.S)
        if not m:
            return unknown
        op, arg = m.groups()

        def pattern(text: str) -> str | None:
            word = to_word(self._scan(text, 0, st, {}, dq=False), text)
            return word.text if word.known else None

        if op in ("^^", ",,", "^", ","):
            out = None if arg else _case_op(op, value)
        elif op == ":":
            out = _substring(arg, value, self.arith_lookup(st), source)
        elif op in ("%", "%%", "#", "##"):
            pat = pattern(arg)
            out = None if pat is None else _trim(op, pat, value)
        else:  # / // /# /%
            pat_text, _, repl_text = _split_unescaped(arg)
            pat, repl = pattern(pat_text), pattern(repl_text) if repl_text else ""
            if pat is None or repl is None:
                return unknown
            rx = glob_regex(pat)
            if rx is None or not pat:
                return unknown if rx is None else replace(got, source=source)
            out = _replace(value, rx, repl, op)
        if out is None:
            return unknown
        return Piece(out, quoted=dq, split=not dq, source=source, refs=got.refs)

    def _substitute(self, node: Node, source: str, st: State, dq: bool) -> Piece:
        value = self._pure(node.command, st) if node is not None else \
            self._pure_text(source, st)
        if source.startswith("$(("):
            reason = "arithmetic $((...)) is not evaluated"
        else:
            reason = f"{source[:60]}: command output is not evaluated"
        if value is None:
            # each evaluation is its own value: `$(date)` twice may differ
            _EVALUATIONS[0] += 1
            return Piece("", known=False, quoted=dq, source=source, reason=reason,
                         origins=(f"{source[:60]}#{_EVALUATIONS[0]}",))
        return Piece(value, quoted=dq, split=not dq, source=source)

    def _pure_text(self, source: str, st: State) -> str | None:
        """A `$(...)` the parser left inside a `${V:-...}` word (bashlex keeps the
        parameter whole): parsed on its own, read like any pure substitution."""
        if not source.startswith("$(") or source.startswith("$((") or \
                not source.endswith(")"):
            return None
        inner = source[2:-1]
        try:
            from preflight.launch.shell.source import _parse

            nodes = _parse(inner)
        except Exception:  # bashlex raises ParsingError, NotImplementedError, and worse
            return None
        if len(nodes) != 1:
            return None
        saved = self.src
        self.src = Source(saved.file, inner, [])  # the parsed positions are inner's
        try:
            return self._pure(nodes[0], st)
        finally:
            self.src = saved

    def _pure(self, node: Node, st: State) -> str | None:
        """The output of the few commands whose output is a function of their arguments,
        the cwd and PATH: pwd, dirname, basename, echo, which / command -v; and
        `cd DIR && pwd` (the script-directory idiom) when DIR exists here."""
        if node.kind == "compound":
            inner = [p for p in node.list if p.kind not in ("reservedword", "operator")]
            return self._pure(inner[0], st) if len(inner) == 1 else None
        if node.kind == "list":
            parts = [p for p in node.parts if not (p.kind == "operator" and p.op == ";")]
            if len(parts) == 3 and parts[1].kind == "operator" and parts[1].op == "&&" \
                    and parts[0].kind == "command" and parts[2].kind == "command":
                words = [p for p in parts[0].parts if p.kind == "word"]
                argv = [w for p in words for w in self._expand(p, st)]
                argv = [w for w in argv if w.text != "--"]
                if len(argv) == 2 and argv[0].text == "cd" and argv[1].known and \
                        st.cwd is not None:
                    path = posixpath.normpath(posixpath.join(st.cwd, argv[1].text))
                    if os.path.isdir(path):
                        saved = st.cwd
                        st.cwd = path
                        try:
                            return self._pure(parts[2], st)
                        finally:
                            st.cwd = saved
            return None
        if node.kind != "command" or any(p.kind != "word" for p in node.parts):
            return None
        argv = [w for p in node.parts for w in self._expand(p, st)]
        if not argv or not all(w.known for w in argv):
            return None
        name, args = argv[0].text, [w.text for w in argv[1:]]
        if name in ("dirname", "basename"):
            return _path_part(name, args)
        if (name == "realpath" and args[:-1] in ([], ["-e"]) or
                name == "readlink" and args[:-1] in (["-f"], ["-e"])) and len(args) >= 1:
            # a path that is there now, before any program the script ran could have made
            # or moved a link: resolved as here (else not known)
            full = posixpath.join(st.cwd or "", args[-1])
            return os.path.realpath(full) if args[-1][:1] not in ("", "-") and \
                st.cwd is not None and \
                not st.external and not st.created and os.path.exists(full) else None
        if name == "pwd":
            # `pwd -P`: the directory with its symlinks resolved, as it is here
            return st.cwd if not args or args == ["-L"] else \
                os.path.realpath(st.cwd) if args == ["-P"] and st.cwd is not None and \
                os.path.isdir(st.cwd) else None
        if name == "echo" and not any(a.startswith("-") for a in args):
            return " ".join(args)
        if name in ("which", "command") and args and args[0] != "-v" or \
                name == "command" and len(args) == 2 and args[0] == "-v":
            search = st.vars.get("PATH")
            found = shutil.which(args[-1], path=search.value if search and search.value else "")
            return found  # None (unknown) when it does not resolve here
        return None


def _path_part(name: str, args: list[str]) -> str | None:
    """coreutils `dirname NAME` / `basename NAME [SUFFIX]` (after an optional `--`); None
    for their options (`-a`, `-s`, `-z`: other outputs) or another number of operands."""
    if args[:1] == ["--"]:
        args = args[1:]
    elif any(a.startswith("-") and a != "-" for a in args):
        return None
    if name == "dirname":
        if len(args) != 1:
            return None
        head = posixpath.dirname(args[0].rstrip("/"))
        # only slashes (`//a`): coreutils says `/`
        return "/" if args[0].startswith("/") and not head.strip("/") else head or "."
    if len(args) not in (1, 2):
        return None
    stripped = args[0].rstrip("/")
    if not stripped:  # `basename /`: /; `basename ""`: empty
        return "/" if args[0] else ""
    base = posixpath.basename(stripped)
    # the suffix goes only when it is not the whole name (basename.c remove_suffix)
    suffix = args[1] if len(args) == 2 else ""
    return base[:-len(suffix)] if suffix and base != suffix and base.endswith(suffix) \
        else base


def substitutions(node: Node) -> dict[int, Node]:
    """Command substitutions of a word by position (they carry their own parse)."""
    return {p.pos[0]: p for p in _walk(node) if p.kind == "commandsubstitution"}


def _walk(node: Node) -> Iterator[Node]:
    """The parts of a word: parameters and command substitutions, not descending into
    the command inside a substitution (its words belong to it)."""
    for part in getattr(node, "parts", []) or []:
        yield part
        if part.kind != "commandsubstitution":
            yield from _walk(part)


def matching(raw: str, i: int, open_: str, close: str) -> int:
    """Index of the bracket closing raw[i], skipping quotes; len-1 when unclosed."""
    return _bracket(raw, i, open_, close, quotes="'\"")


def split_fields(pieces: list[Piece], split: bool
                 ) -> tuple[list[list[Piece]], list[list[Piece]]]:
    """(fields, vanished): field splitting of unquoted expansions (IFS whitespace) and
    "$@". A word made only of unquoted empty expansions vanishes; it is returned apart
    so that the empty variables in it are still seen."""
    if any(p.fields == () for p in pieces) and \
            all(p.fields is not None or (p.quoted and not p.text and p.known) for p in pieces):
        return [], []  # "$@" with no arguments: no word at all
    fields: list[list[Piece]] = []
    cur: list[Piece] | None = None
    for p in pieces:
        if p.fields is not None:
            for k, w in enumerate(p.fields):
                if k > 0 and cur is not None:
                    fields.append(cur)
                    cur = None
                # unquoted ${A[@]} / $@: each element is still subject to globbing
                cur = (cur or []) + [Piece(w.text, quoted=p.quoted, known=w.known,
                                            reason=w.reason, refs=w.refs, source=w.source,
                                            empty=w.empty, prefix=w.prefix,
                                            origins=w.origins)]
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
    kept: list[list[Piece]] = []
    vanished: list[list[Piece]] = []
    for f in fields:
        (kept if any(p.quoted or p.text or not p.known for p in f) else vanished).append(f)
    return kept, vanished


def join_fields(fields: list[list[Piece]]) -> list[Piece]:
    """Where bash does no word splitting (an assignment, `export V=...`, a case word),
    "${A[@]}" / "$@" is one word: the elements joined by a space."""
    joined: list[Piece] = []
    for k, f in enumerate(fields):
        joined += ([Piece(" ", quoted=True)] if k else []) + f
    return joined


def first_field(pieces: list[Piece]) -> list[Piece]:
    kept, vanished = split_fields(pieces, split=False)
    return (kept or vanished or [[]])[0]


def to_word(pieces: list[Piece], source: str) -> Word:
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
    origins = tuple(o for p in pieces if not p.known for o in (p.origins or ("?",)))
    return Word("".join(text), source, known, reason,
                dedupe(r for p in pieces for r in p.refs),
                dedupe(e for p in pieces for e in p.empty), "".join(prefix), origins)


_EVALUATIONS = [0]  # command substitutions left unknown so far (Word.origins)


def dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def resplit(items: Iterable[Word]) -> tuple[Word, ...]:
    """Unquoted ${A[@]} / $@: every element split again on IFS whitespace."""
    out = []
    for w in items:
        if not w.known:
            out.append(w)
            continue
        out.extend(replace(w, text=part) for part in w.text.split())
    return tuple(out)


def _ifs_first(st: State) -> str | None:
    """What "$*" joins with: IFS's first character (a space when IFS is unset, nothing
    when it is empty; None when IFS is not known)."""
    ifs = st.vars.get("IFS")
    if ifs is None:
        return " "
    return None if ifs.value is None else ifs.value[:1]


def joined(items: Sequence[Word], dq: bool, source: str, sep: str | None = " ") -> Piece:
    """"${A[*]}" / "$*": the elements joined by IFS's first character."""
    if not all(w.known for w in items) or sep is None:
        return Piece("", known=False, quoted=dq, source=source,
                     reason=next((w.reason for w in items if not w.known),
                                 f"{source}: joined by an IFS that is not known"))
    return Piece(sep.join(w.text for w in items), quoted=dq, split=not dq, source=source)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def glob_regex(pattern: str) -> re.Pattern[str] | None:
    """A bash pattern (`*`, `?`, `[...]`) as a regex; None for extglob forms."""
    if re.search(r"[@!+*?]\(", pattern):
        return None
    try:
        return re.compile(fnmatch.translate(pattern).replace("(?s:", "(?s:", 1))
    except re.error:
        return None


def _case_op(op: str, value: str) -> str:
    """${V^^} ${V,,} ${V^} ${V,}."""
    return {"^^": value.upper(), ",,": value.lower(),
            "^": value[:1].upper() + value[1:], ",": value[:1].lower() + value[1:]}[op]


def _substring(arg: str, value: str, look: arith.Lookup, source: str) -> str | None:
    """${V:off} ${V:off:len} (negative offsets count from the end; a negative length is
    where to stop, from the end); None when not known."""
    off_text, colon, len_text = arg.partition(":")
    off = arith.evaluate(off_text, look)
    length = arith.evaluate(len_text, look) if colon else None
    if off is None or (colon and length is None):
        return None
    if off < 0:
        if -off > len(value):
            return ""
        off = max(0, len(value) + off)
    if length is None:
        return value[off:]
    if length >= 0:
        return value[off:off + length]
    end = len(value) + length
    if end < off:
        raise Stop(f"{source}: substring expression < 0")
    return value[off:end]


def _trim(op: str, pat: str, value: str) -> str | None:
    """${V#p} ${V##p} ${V%p} ${V%%p}: the shortest / longest match removed."""
    rx = glob_regex(pat)
    if rx is None:
        return None
    ends = range(len(value) + 1)
    if op in ("#", "##"):
        cands = [k for k in ends if rx.fullmatch(value[:k])]
        k = (max(cands) if op == "##" else min(cands)) if cands else 0
        return value[k:]
    cands = [k for k in ends if rx.fullmatch(value[k:])]
    k = (min(cands) if op == "%%" else max(cands)) if cands else len(value)
    return value[:k]


def _split_unescaped(arg: str) -> tuple[str, str, str]:
    i = 0
    while i < len(arg):
        if arg[i] == "\\":
            i += 2
            continue
        if arg[i] == "/":
            return arg[:i], "/", arg[i + 1:]
        i += 1
    return arg, "", ""


def _replace(value: str, rx: re.Pattern[str], repl: str, op: str) -> str:
    if op == "/#":
        for k in range(len(value), -1, -1):
            if rx.fullmatch(value[:k]):
                return repl + value[k:]
        return value
    if op == "/%":
        for k in range(len(value) + 1):
            if rx.fullmatch(value[k:]):
                return value[:k] + repl
        return value
    out, i, n = [], 0, len(value)
    while i <= n:
        end = next((k for k in range(n, i, -1) if rx.fullmatch(value[i:k])), None)
        if end is None:
            if i < n:
                out.append(value[i])
            i += 1
            continue
        out.append(repl)
        i = end
        if op == "/":
            out.append(value[i:])
            return "".join(out)
    return "".join(out)


def brace_expand(raw: str, limit: int = 256) -> list[str]:
    """Brace expansion of a word as written: `{a,b}`, `{1..3}`, `{a..c}` outside quotes
    and `${...}`; the word unchanged when it has none (or expands past `limit`)."""
    if "{" not in raw:
        return [raw]
    span = _brace_span(raw)
    if span is None:
        return [raw]
    i, j = span
    inner = raw[i + 1:j]
    seq = re.fullmatch(r"(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?|([a-zA-Z])\.\.([a-zA-Z])", inner)
    if seq and seq.group(1) is not None:
        a, b = int(seq.group(1)), int(seq.group(2))
        step = abs(int(seq.group(3) or 1)) or 1
        width = max(len(seq.group(1)), len(seq.group(2))) if re.match(
            r"-?0\d", seq.group(1)) or re.match(r"-?0\d", seq.group(2)) else 0
        rng = range(a, b + 1, step) if a <= b else range(a, b - 1, -step)
        if len(rng) > limit:
            return [raw]
        items = [str(k).zfill(width) for k in rng]
    elif seq:
        a, b = ord(seq.group(4)), ord(seq.group(5))
        items = [chr(k) for k in (range(a, b + 1) if a <= b else range(a, b - 1, -1))]
    else:
        parts = _brace_items(inner)
        if parts is None:
            return [raw[:j + 1] + x for x in brace_expand(raw[j + 1:], limit)][:limit]
        items = parts
    out: list[str] = []
    for item in items:
        out.extend(brace_expand(raw[:i] + item + raw[j + 1:], limit))
        if len(out) > limit:
            return [raw]
    return out


def _brace_span(raw: str) -> tuple[int, int] | None:
    """The first unquoted `{...}` that is not `${`, as (open, close)."""
    i, quote = 0, ""
    while i < len(raw):
        c = raw[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"':
                i += 1
        elif c in "'\"":
            quote = c
        elif c == "\\":
            i += 1
        elif c == "$" and raw[i + 1:i + 2] in ("{", "("):
            i = matching(raw, i + 1, raw[i + 1], "}" if raw[i + 1] == "{" else ")")
        elif c == "{":
            j = matching(raw, i, "{", "}")
            if j > i and raw[j] == "}":
                return i, j
        i += 1
    return None


def _brace_items(inner: str) -> list[str] | None:
    """`a,b,{c,d}` split at top-level commas; None without a comma (not an expansion)."""
    items, depth, start, quote = [], 0, 0, ""
    i = 0
    while i < len(inner):
        c = inner[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "\\":
            i += 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
        i += 1
    if not items:
        return None
    return items + [inner[start:]]


def _known_head(piece: Piece) -> list[Piece]:
    """An unquoted unknown value whose known start holds IFS whitespace (`srun $CMD`, CMD=
    "accelerate launch --num_processes $(...)"): the fields that whitespace closes are
    split as bash splits them (default IFS); only the rest stays unknown."""
    if not piece.split or piece.known or not piece.text.startswith(piece.prefix):
        return [piece]
    m = re.match(r"(?s).*[ \t\n]", piece.prefix)
    if m is None:
        return [piece]
    head = m.group(0)
    return [Piece(head, split=True, source=piece.source, refs=piece.refs),
            replace(piece, text=piece.text[len(head):], prefix=piece.prefix[len(head):])]


def _ifs(piece: Piece, ifs: str | None) -> Piece:
    """A piece that field splitting with a non-default IFS would cut: split on IFS
    whitespace when that is all IFS holds, else not known (never split wrongly)."""
    if not piece.split or not piece.known or not piece.text:
        return piece
    if ifs == "":
        return replace(piece, split=False)
    if ifs is not None and not set(ifs) - set(" \t\n"):
        parts = re.split(f"[{re.escape(ifs)}]+", piece.text)
        return replace(piece, text=" ".join(parts)) if set(ifs) != set(" \t\n") and \
            not any(c in piece.text for c in " \t\n" if c not in ifs) else piece
    if ifs is not None and not any(c in piece.text for c in ifs) and \
            not any(c in piece.text for c in " \t\n"):
        return piece
    return replace(piece, known=False, text="",
                   reason=f"{piece.source}: split by an IFS preflight does not model")
