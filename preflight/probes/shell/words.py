"""Word expansion as bash does it, for the parts a launch script uses: quoting,
`$VAR`, `${VAR:-default}` / `${VAR:=default}` / `${VAR:+alt}`, `"$@"`, field splitting,
`~`, and the pure command substitutions `$(pwd)`, `$(dirname X)`, `$(basename X)`,
`$(which X)`. Anything else expands to an unknown part (⟨...⟩), never a guess."""

from __future__ import annotations

import posixpath
import re
import shutil
from dataclasses import dataclass, replace

from preflight.probes.shell.model import NAME, UNKNOWN_CLOSE, UNKNOWN_OPEN, Var, Word
from preflight.probes.shell.state import Source, State


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


class Expander:
    """Expansion of words against a State; the Evaluator supplies `src` (the text being
    read), `script0` (`$0`) and `vanished` (words that expanded to nothing)."""

    src: Source
    script0: str
    vanished: list[Word]


    def _expand(self, node, st: State, split: bool = True) -> list[Word]:
        raw = self.src.raw(node.pos)
        pieces = self._scan(raw, node.pos[0], st, substitutions(node), dq=False)
        kept, vanished = split_fields(pieces, split)
        self.vanished.extend(to_word(f, raw) for f in vanished)
        return [to_word(f, raw) for f in kept]

    def _expand_raw(self, raw: str, start: int, st: State, subs: dict) -> Word:
        """Expand text that is one word already (an assignment's value): no splitting."""
        pieces = self._scan(raw, start, st, subs, dq=False)
        kept, vanished = split_fields(pieces, split=False)
        return to_word((kept or vanished or [[]])[0], raw)

    def _scan(self, raw: str, start: int, st: State, subs: dict, dq: bool) -> list[Piece]:
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
                    pieces.append(Piece(home.value if home and home.value is not None
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

    def _dollar(self, raw: str, i: int, start: int, st: State, subs: dict, dq: bool):
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

    def _param(self, name: str, source: str, st: State, dq: bool,
               default_ok: bool = False) -> Piece:
        var, fields = self._lookup(name, st)
        label = f"${name}" if not NAME.fullmatch(name) else name
        if fields is not None:
            return Piece("", quoted=dq, source=source, fields=tuple(fields))
        if var is None or (var.value == "" and not default_ok):
            return Piece("", quoted=dq, split=not dq, source=source, refs=(label,),
                          empty=() if default_ok else (label,))
        if var.value is None:
            return Piece(var.text, quoted=dq, split=not dq, known=False, source=source,
                          reason=f"{label}: {var.reason or 'not known'}",
                          refs=(label, *var.refs), prefix=var.prefix)
        return Piece(var.value, quoted=dq, split=not dq, source=source,
                      refs=(label, *var.refs))

    def _braced(self, expr: str, source: str, start: int, st: State, subs: dict,
                dq: bool) -> Piece:
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])", expr)
        if expr.startswith("#") and len(expr) > 1:
            var, _ = self._lookup(expr[1:], st)
            if var is not None and var.value is not None:
                return Piece(str(len(var.value)), quoted=dq, split=not dq, source=source)
            return Piece("", known=var is None, quoted=dq, source=source,
                          reason=f"{source}: length of an unknown value")
        if not m:
            return Piece("", known=False, quoted=dq, source=source,
                          reason=f"{source} is not evaluated")
        name, rest = m.group(0), expr[m.end():]
        if rest.startswith("[") and name in ("BASH_SOURCE",) and rest in ("[0]", "[@]"):
            rest = ""
        if rest.startswith("["):
            var, _ = self._lookup(name, st)
            if rest in ("[0]", "[@]", "[*]") and var is not None and var.value is not None:
                return self._param(name, source, st, dq)
            return Piece("", known=False, quoted=dq, source=source,
                          reason=f"{source}: arrays are not evaluated")
        if not rest:
            return self._param(name, source, st, dq)
        op = re.match(r":?[-=+?]", rest)
        if not op:
            var, _ = self._lookup(name, st)
            return Piece("", known=False, quoted=dq, source=source,
                          reason=f"{source}: this expansion is not evaluated",
                          refs=(name,) if var else ())
        op_text, word_raw = op.group(0), rest[op.end():]
        word_start = start + m.end() + op.end()
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
                st.vars[name] = Var(value.value, exported=bool(old and old.exported),
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
        # ${X:?message}: bash stops the script when X is empty; the value is X itself
        return self._param(name, source, st, dq)

    def _substitute(self, node, source: str, st: State, dq: bool) -> Piece:
        value = self._pure(node.command, st) if node is not None else None
        if source.startswith("$(("):
            reason = "arithmetic $((...)) is not evaluated"
        else:
            reason = f"{source[:60]}: command output is not evaluated"
        if value is None:
            return Piece("", known=False, quoted=dq, source=source, reason=reason)
        return Piece(value, quoted=dq, split=not dq, source=source)

    def _pure(self, node, st: State) -> str | None:
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


def substitutions(node) -> dict:
    """Command substitutions of a word by position (they carry their own parse)."""
    return {p.pos[0]: p for p in _walk(node) if p.kind == "commandsubstitution"}


def _walk(node):
    """The parts of a word: parameters and command substitutions, not descending into
    the command inside a substitution (its words belong to it)."""
    for part in getattr(node, "parts", []) or []:
        yield part
        if part.kind != "commandsubstitution":
            yield from _walk(part)


def matching(raw: str, i: int, open_: str, close: str) -> int:
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


def split_fields(pieces: list[Piece], split: bool) -> tuple[list[list[Piece]], list]:
    """(fields, vanished): field splitting of unquoted expansions (IFS whitespace) and
    "$@". A word made only of unquoted empty expansions vanishes; it is returned apart
    so that the empty variables in it are still seen."""
    fields: list[list[Piece]] = []
    cur: list[Piece] | None = None
    for p in pieces:
        if p.fields is not None:
            for k, w in enumerate(p.fields):
                if k > 0 and cur is not None:
                    fields.append(cur)
                    cur = None
                cur = (cur or []) + [Piece(w.text, quoted=True, known=w.known,
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
    return Word("".join(text), source, known, reason,
                dedupe(r for p in pieces for r in p.refs),
                dedupe(e for p in pieces for e in p.empty), "".join(prefix))


def dedupe(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
