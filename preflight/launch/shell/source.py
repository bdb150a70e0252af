"""Reading a launch script (one clear error for anything that is not a text script) and
parsing it with bashlex, statement by statement where the whole does not parse."""

from __future__ import annotations

import os
import re
from typing import Any

from preflight.launch.shell.model import ScriptFileError

MAX_BYTES = 2 * 2**20  # a launch script is a few KiB; anything this large is not one
MAX_CHUNK_LINES = 80  # fallback: how far an unparseable statement may extend
MAX_CHUNK_PARSE = 8_000  # fallback: lines parsed in all (bashlex: a few thousand a second)


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


# `<<'EOF'`, `<<-"EOF"`, `<<\EOF`: a here-document whose delimiter is quoted (bash: no
# expansion)
_QUOTED_HEREDOC = re.compile(
    r"""<<-?[ \t]*(?:(?P<q1>['"])[A-Za-z0-9_]+(?P<q2>(?P=q1))|(?P<bs>\\)[A-Za-z0-9_]+\b)""")


# `<<EOF`, `<<-'EOF'`, `<< "E O"`: the operator and its delimiter word
_HEREDOC_OP = re.compile(r"""<<(-?)[ \t]*((?:[^\s;&|<>()'"\\]|'[^'\n]*'|"[^"\n]*"|\\.)+)""")
Bodies = dict[int, tuple[int, int]]  # offset of a `<<` -> its body's [start, end)


def mask(text: str) -> tuple[str, Bodies]:
    """Same-length rewrites of what bashlex cannot parse, so positions stay true:
    `$((expr))` becomes `$(:    )`: the evaluator reads the arithmetic from the text
    itself (`[[ ... ]]` is rewritten by `rewrite`). Here-document bodies become blanks
    (bashlex 0.18 reads the body of one inside `if`/`{ }`/a function as commands); where
    each body lies is returned, for the evaluator to read it from the text itself."""
    out = list(text)
    bodies: Bodies = {}
    pending: list[tuple[int, str, bool]] = []  # (offset of `<<`, delimiter, strip tabs)
    i, n, quote = 0, len(text), ""
    while i < n:
        c = text[i]
        if quote == "'":
            quote = "" if c == "'" else quote
            if c == "$" and text[i + 1:i + 2] == "{":
                out[i] = "Z"  # literal here; bashlex 0.18 can loop forever expanding it
        elif c == "\\":
            i += 1
        elif c == "\n" and pending and not quote:
            i = _bodies(text, i + 1, pending, out, bodies)
            continue
        elif c == "<" and not quote and text.startswith("<<", i):
            # a here-string's `<<<` (its `<<` is not a here-document's operator)
            i = i + 2 if text.startswith("<<<", i) else _heredoc_op(text, i, out, pending)
        elif c == "$" and text[i + 1:i + 2] == "'" and not quote:
            # $'...' read as '...' by the parser (the evaluator reads the text itself):
            # bashlex 0.18 loops forever on some $'...' words (`$'${A['`)
            out[i] = "Z"
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
        i += 1
    return "".join(out), bodies


def _heredoc_op(text: str, i: int, out: list[str], pending: list[tuple[int, str, bool]]
                ) -> int:
    """A `<<` at i: its delimiter is pending until the end of the line; returns the
    index of the operator's last character."""
    m = _QUOTED_HEREDOC.match(text, i)
    if m:
        # bashlex 0.18 wants the quotes on the closing line too (`'EOF'`), so every
        # `<<'EOF'` ran to the end of the script; parsed as `<< EOF `, and the
        # evaluator sees the quotes in the text itself (the body is not expanded)
        for k in ((m.start("q1"), m.end("q2") - 1) if m.group("q1") else
                  (m.start("bs"),)):
            out[k] = " "
    op = _HEREDOC_OP.match(text, i)
    if op is None:
        return i + 1
    # bash: quote removal on the word is the delimiter (make_cmd.c make_here_document)
    pending.append((i, re.sub(r"[\"'\\]", "", op.group(2)), bool(op.group(1))))
    return op.end() - 1


def _bodies(text: str, i: int, pending: list[tuple[int, str, bool]], out: list[str],
            bodies: Bodies) -> int:
    """The bodies of the pending here-documents from i on, in order, each up to its
    delimiter line (`<<-`: after its leading tabs), blanked; returns the index after."""
    n = len(text)
    for op, delimiter, strip in pending:
        start = i
        while i < n:
            end = text.find("\n", i)
            end = n if end < 0 else end
            line = text[i:end]
            if (line.lstrip("\t") if strip else line) == delimiter:
                bodies[op] = (start, i)
                i = end + 1
                break
            out[i:end] = " " * (end - i)
            i = end + 1
        else:  # bash reads to the end of the script (a warning)
            bodies[op] = (start, n)
    pending.clear()
    return min(i, n)


def _parse(text: str) -> list[Any]:
    # Imported here: bashlex builds its LR tables on import (~0.2 s), and the static
    # stage must not pay that when no launch script is analysed.
    import bashlex

    nodes = bashlex.parse(text)
    return [n for n in nodes if hasattr(n, "kind")]


def parse_chunks(text: str) -> tuple[list[tuple[int, list[Any]]], list[tuple[int, str, str]]]:
    """([(offset, nodes)], [(line, text, error)]): the whole text when bashlex parses it,
    else the longest parseable statements, line by line; the rest is reported."""
    if not text.strip():
        return [], []
    if text.endswith("\\\n"):
        # `cmd \` on the last line: bash ends the command at the end of the file; bashlex
        # 0.18 reports an unexpected EOF there. A blank line after it ends it for both.
        text += "\n"
    try:
        return [(0, _parse(text))], []
    except Exception:  # bashlex raises ParsingError, NotImplementedError, and worse
        pass
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    chunks: list[tuple[int, list[Any]]] = []
    failures: list[tuple[int, str, str]] = []
    i = 0
    budget = MAX_CHUNK_PARSE  # lines parsed here: each bad line tries up to 80 lengths
    while i < len(lines):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        error = ""
        for j in range(i, min(len(lines), i + MAX_CHUNK_LINES)):
            budget -= j + 1 - i
            if budget < 0:  # 100 unclosed `if` lines took 25 s here
                failures.append((i + 1, lines[i].strip()[:120], "not parsed: too many "
                                 "lines that do not parse before it (bash: a syntax error)"))
                return chunks, failures
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


# -- rewriting what bashlex 0.18 cannot parse into what it can -------------------------
#
# bashlex has no `case`, no arrays and no `((...))`/`[[...]]` of its own. `rewrite` turns
# them into shapes it parses, marked with characters no script uses, and the evaluator
# reads the marks back: it never adds or removes a newline, so every line number stays.
#   NAME=(a b)     ->  NAME⁼ a b         (NAME+=( -> NAME+⁼; newlines inside -> `\`+newline)
#   case W in p|q) body ;; esac  ->
#       if ⁑case W ; then :; else if ⁑pat p q ; then :; body ; else :; fi; fi
#   (( expr ))     ->  ⁑arith "expr"
#   [[ a && b ]]   ->  ⁑[[ a -a b ]]     (< > ( ) | escaped: they are operands there)
ARRAY_MARK, KEY_MARK = "⁼", "⁑"
CASE, CASE_FALLTHROUGH, PATTERN = KEY_MARK + "case", KEY_MARK + "casef", KEY_MARK + "pat"
ARITH, DTEST = KEY_MARK + "arith", KEY_MARK + "[["
_NAME_ARRAY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=\(")
_KEYWORDS_CMDPOS = frozenset({"then", "do", "else", "elif", "if", "while", "until", "!",
                              "time", "{", "in"})
MAX_NESTING = 100  # far deeper than any launch script; bashlex recurses per level


class NestingError(ScriptFileError):
    """Nested past MAX_NESTING; `line` is where in the text (set by `rewrite`)."""

    line = 0


class _Rewriter:
    def __init__(self, text: str):
        self.t = text
        self.n = len(text)
        self.out: list[str] = []
        self.heredocs: list[tuple[str, bool]] = []
        self.depth = 0
        self.ifs: list[int] = []  # per open `if`: how many `elif`s became `else if`
        self.after_function = False  # the word before was the `function` keyword
        self.at = 0  # where the token being rewritten starts (a NestingError's line)

    def _nest(self, delta: int) -> None:
        self.depth += delta
        if self.depth > MAX_NESTING:
            raise NestingError(f"nested more than {MAX_NESTING} levels deep "
                               "(if/case/loops/groups/$(...)); not a launch script")

    def word_end(self, i: int) -> int:
        """End of the shell word starting at i (quotes, $(...), ${...} included)."""
        t, n = self.t, self.n
        while i < n and t[i] not in " \t\n;&|<>()":
            c = t[i]
            if c == "\\":
                i += 2
            elif c in "'\"`":
                i = self.quote_end(i) + 1
            elif c == "$" and i + 1 < n and t[i + 1] in "({":
                i = _match(t, i + 1) + 1
            else:
                i += 1
        return min(i, n)

    def quote_end(self, i: int) -> int:
        t, q = self.t, self.t[i]
        j = i + 1
        while j < self.n and t[j] != q:
            if t[j] == "\\" and q != "'":
                j += 1
            elif q == '"' and t[j] == "$" and j + 1 < self.n and t[j + 1] in "({":
                j = _match(t, j + 1)
            j += 1
        return min(j, self.n - 1)

    def newline(self, i: int) -> int:
        """Copy a newline and any here-document bodies pending behind it."""
        self.out.append("\n")
        i += 1
        while self.heredocs:
            delim, strip = self.heredocs.pop(0)
            while i < self.n:
                end = self.t.find("\n", i)
                end = self.n if end < 0 else end
                line = self.t[i:end]
                self.out.append(self.t[i:end + 1])
                i = end + 1
                if (line.lstrip("\t") if strip else line) == delim:
                    break
        return i

    def run(self, i: int, stops: tuple[str, ...] = ()) -> tuple[int, str]:
        """Copy/rewrite from i until a stop token at command position, or the end."""
        cmdpos = True
        while i < self.n:
            j, newline = self._blank(i)
            if j > i:
                i, cmdpos = j, cmdpos or newline
                continue
            self.at = i
            if cmdpos:
                for stop in stops:
                    if self.t.startswith(stop, i) and (stop[0] == ";" or
                                                       self.word_end(i) == i + len(stop)):
                        return i, stop
            step = self._punct(i, stops, cmdpos)
            if step is None:
                step = self._word(i, cmdpos)
            i, next_pos, found = step
            if found:
                return i, found
            cmdpos = cmdpos if next_pos is None else next_pos
        return i, ""

    def _blank(self, i: int) -> tuple[int, bool]:
        """(after, at a newline): a newline (with its heredocs), a blank or a comment."""
        t, c = self.t, self.t[i]
        if c == "\n":
            return self.newline(i), True
        if c in " \t":
            self.out.append(c)
            return i + 1, False
        if c == "#" and (i == 0 or t[i - 1] in " \t\n;&|()"):
            end = t.find("\n", i)
            end = self.n if end < 0 else end
            self.out.append(t[i:end])
            return end, False
        return i, False

    def _punct(self, i: int, stops: tuple[str, ...], cmdpos: bool
               ) -> tuple[int, bool | None, str] | None:
        """An operator, a parenthesis or a redirection at i: (after, command position
        next (None: unchanged), a `;;` stop found); None at a word."""
        t, out, c = self.t, self.out, self.t[i]
        if c in ";&|":
            if (t.startswith(";;", i) or t.startswith(";&", i)) and ";;" in stops:
                return i, None, t[i:i + 3] if t.startswith(";;&", i) else t[i:i + 2]
            op = 2 if t[i:i + 2] in ("&&", "||", ";;", "|&") else 1
            out.append(t[i:i + op])
            return i + op, True, ""
        if c == "(":
            return self._open(i, cmdpos)
        if c == ")":
            self._nest(-1) if self.depth else None
            out.append(c)
            # `NAME() {` / `NAME () (`: a function's body starts at command position
            k = i - 1
            while k >= 0 and t[k] in " \t":
                k -= 1
            return i + 1, k >= 0 and t[k] == "(", ""
        if c in "<>":
            if t.startswith("<<<", i):  # a here-string, not `<` then a here-document
                out.append("<<<")
                return i + 3, None, ""
            if t.startswith("<<", i):
                return self._heredoc_op(i), None, ""
            out.append(c)
            return i + 1, None, ""
        return None

    def _open(self, i: int, cmdpos: bool) -> tuple[int, bool | None, str]:
        """`((expr))` at command position is arithmetic (`((a b))` is two subshells: two
        words in a row); else a subshell or a group."""
        t = self.t
        j = _match(t, i) if t.startswith("((", i) and cmdpos else i
        expr = t[i + 2:j - 1] if t[j - 1:j] == ")" else t[i + 2:j]
        if j > i and not re.search(r"[A-Za-z_]\w*\s+[A-Za-z_./]", expr):
            self.out.append(f'{ARITH} "{expr}"')
            return j + 1, False, ""
        self._nest(1)
        self.out.append("(")
        return i + 1, True, ""

    def _heredoc_op(self, i: int) -> int:
        t = self.t
        j = i + 2
        strip = t.startswith("-", j)
        j += strip
        while j < self.n and t[j] in " \t":
            j += 1
        k = self.word_end(j)
        delim = re.sub(r"[\"'\\]", "", t[j:k])
        if delim:
            self.heredocs.append((delim, strip))
        self.out.append(t[i:k])
        return k

    def _word(self, i: int, cmdpos: bool) -> tuple[int, bool | None, str]:
        t, out = self.t, self.out
        j = self.word_end(i)
        if j == i:  # a lone special character
            out.append(t[i])
            return i + 1, None, ""
        word = t[i:j]
        m = _NAME_ARRAY.match(t, i)
        if m:
            return self._array(m), False, ""
        if cmdpos:
            done = self._keyword(word, i, j)
            if done is not None:
                return done[0], done[1], ""
        if "$(" in word:
            if word.count("$(") > MAX_NESTING:
                raise NestingError(f"more than {MAX_NESTING} command substitutions in one "
                                   "word; not a launch script")
            word = _group_lists(word)
        if "${" in word and brace_depth(word) > MAX_NESTING:
            # words.py expands each level by scanning the rest for its `}`: 10,000 levels
            # took minutes (bash: 2 s)
            raise NestingError(f"${{...}} nested more than {MAX_NESTING} levels deep in one "
                               "word; not a launch script")
        out.append(word)
        # `function NAME {`: the body after the name starts at command position
        fname = self.after_function
        self.after_function = cmdpos and word == "function"
        return j, cmdpos and (word in _KEYWORDS_CMDPOS or bool(
            re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\+?=.*", word, re.S))) or \
            self.after_function or fname, ""

    def _keyword(self, word: str, i: int, j: int) -> tuple[int, bool | None] | None:
        """A word at command position that is rewritten or opens/closes a compound:
        (after, command position next), or None to copy the word as it is."""
        if word == "case":
            return self._case(j), False
        if word == "for" and re.match(r"[ \t]*\(\(", self.t[j:]):
            done = self._arith_for(j)
            if done is not None:
                return done, False
        if word == "time":  # the `time` keyword: bashlex 0.18 has none
            k = j
            while k < self.n and self.t[k] in " \t":
                k += 1
            if self.t.startswith("-p", k) and self.word_end(k) == k + 2:
                j = k + 2
            self.out.append(" " * (j - i))
            return j, None
        if word == "[[":
            return self._dtest(j), False
        if word in ("if", "while", "until", "for", "{", "select"):
            self._nest(1)
        elif word in ("fi", "done", "}") and self.depth:
            self._nest(-1)
        return self._elif_chain(word, j)

    def _arith_for(self, j: int) -> int | None:
        """for ((init; cond; step)): init, then a while loop on cond whose test also runs
        the step (what a loop assigns is unknown inside it)."""
        t = self.t
        k = t.index("((", j)
        end = _match(t, k)
        inner = t[k + 2:end - 1] if t[end - 1:end] == ")" else t[k + 2:end]
        parts = inner.split(";")
        if len(parts) != 3 or "\n" in inner:
            return None
        init, cond, step = (p.replace('"', "") for p in parts)
        # `|| :`: the init's status is not the loop's; `for ((i=0; ...))` under `set -e`
        # goes on (bash's arithmetic for, execute_cmd.c `execute_arith_for_command`,
        # ignores it)
        self.out.append(f'{ARITH} "{init or 1}" || :; while {ARITH} "{cond or 1}" && '
                        f'{{ {ARITH} "{step or 1}"; :; }}')
        self._nest(1)
        return end + 1

    def _elif_chain(self, word: str, j: int) -> tuple[int, bool | None] | None:
        """bashlex 0.18 misplaces the third and later `elif` of a chain (positions off by
        the text before the `if`): the same chain as nested `else if`s."""
        if word == "if":
            self.ifs.append(0)
        elif word == "elif" and self.ifs:
            self.ifs[-1] += 1
            self.out.append("else if")
            self._nest(1)
            return j, None
        elif word == "fi" and self.ifs:
            extra = self.ifs.pop()
            self.out.append("fi" + "; fi" * extra)
            for _ in range(extra):
                self._nest(-1)
            return j, False
        return None

    def _array(self, m: re.Match[str]) -> int:
        t = self.t
        name = m.group(0)[:-2]  # NAME or NAME+
        self.out.append(name + ARRAY_MARK + " ")
        i = m.end()
        while i < self.n:
            c = t[i]
            if c == ")":
                self.out.append(" ")
                return i + 1
            if c == "\n":
                self.out.append("\\\n")
                i += 1
            elif c == "#" and t[i - 1] in " \t\n(":
                end = t.find("\n", i)
                end = self.n if end < 0 else end
                self.out.append(" " * (end - i))
                i = end
            elif c in " \t":
                self.out.append(c)
                i += 1
            else:
                j = max(self.word_end(i), i + 1)
                self.out.append(t[i:j])
                i = j
        return i

    def _dtest(self, i: int) -> int:
        t, out = self.t, self.out
        out.append(DTEST)
        while i < self.n:
            c = t[i]
            if t.startswith("]]", i) and t[i - 1] in " \t" and \
                    (i + 2 >= self.n or t[i + 2] in " \t\n;&|)"):
                out.append("]]")
                return i + 2
            if c == "\n":
                return i  # unterminated: leave the rest to the parser
            if t.startswith("&&", i) or t.startswith("||", i):
                out.append("-a" if c == "&" else "-o")
                i += 2
            elif c in "<>()|":
                out.append("\\" + c)
                i += 1
            elif c in " \t":
                out.append(c)
                i += 1
            else:
                j = max(self.word_end(i), i + 1)
                out.append(t[i:j])
                i = j
        return i

    def _case(self, i: int) -> int:
        t, out = self.t, self.out
        self._nest(1)
        header = len(out)
        out.append(CASE)
        # the subject word and `in`
        j = i
        while j < self.n and t[j] in " \t":
            j += 1
        k = self.word_end(j)
        out.append(t[i:k] + " ;")
        i = k
        m = re.compile(r"[ \t\n]*in(?=[ \t\n;])").match(t, i)
        if not m:
            raise _CaseError()
        out.append(t[i:m.start() + m.group(0).index("in")] + "then :;")
        i = m.end()
        out[header] = "if " + out[header]
        fallthrough = False
        arms = 0
        while True:
            i = self._case_gap(i)
            if i >= self.n:
                raise _CaseError()
            if t.startswith("esac", i) and self.word_end(i) == i + 4:
                out.append("else :; fi" + "; fi" * arms)
                self._nest(-1 - arms)
                if fallthrough:
                    out[header] = "if " + CASE_FALLTHROUGH
                return i + 4
            i, alts = self._case_pattern(i)
            if i >= self.n or t[i] != ")":
                raise _CaseError()
            i += 1
            out.append(f"else if {PATTERN} {' '.join(alts)} ; then :;")
            arms += 1
            self._nest(1)  # each arm is one more nested `if` for the parser
            i, stop = self.run(i, (";;&", ";;", ";&", "esac"))
            if stop == "esac" or not stop:
                continue
            if stop != ";;":
                fallthrough = True
            prev = "".join(out[-3:]).rstrip(" \t")
            out.append(" " * len(stop) if not prev or prev[-1] in ";&\n" else
                       ";" + " " * (len(stop) - 1))
            i += len(stop)


    def _case_gap(self, i: int) -> int:
        """Blanks, newlines and comments before the next arm or `esac`."""
        t = self.t
        while i < self.n and (t[i] in " \t\n;" or t[i] == "#"):
            if t[i] == "\n":
                i = self.newline(i)
            elif t[i] == "#":
                end = t.find("\n", i)
                i = self.n if end < 0 else end
            else:
                self.out.append(" ")
                i += 1
        return i

    def _case_pattern(self, i: int) -> tuple[int, list[str]]:
        """The pattern: alternatives up to the `)` that ends it."""
        t = self.t
        if t[i] == "(":
            i += 1
        alts = []
        while i < self.n:
            while i < self.n and t[i] in " \t":
                i += 1
            k = self.word_end(i)
            if k > i:
                alts.append(t[i:k])
                i = k
                continue
            if i < self.n and t[i] == "|":
                i += 1
                continue
            break
        return i, alts


class _CaseError(Exception):
    pass


def _group_lists(word: str) -> str:
    """`$(a && b)` -> `$({ a && b; })`: bashlex 0.18 fails on && / || directly inside a
    command substitution, and parses the group (same meaning)."""
    out, i = [], 0
    while i < len(word):
        if word.startswith("$(", i) and not word.startswith("$((", i):
            j = _match(word, i + 1)
            body = _group_lists(word[i + 2:j])
            if re.search(r"&&|\|\|", body) and "\n" not in body and \
                    not body.lstrip().startswith(("{", "(")):
                body = "{ " + body.rstrip().rstrip(";") + "; }"
            out.append("$(" + body + word[j:j + 1])
            i = j + 1
            continue
        if word[i] == "'":
            j = word.find("'", i + 1)
            j = len(word) - 1 if j < 0 else j
            out.append(word[i:j + 1])
            i = j + 1
            continue
        out.append(word[i])
        i += 1
    return "".join(out)


def matching(t: str, i: int, open_: str, close: str, quotes: str = "'\"`") -> int:
    """Index of the bracket closing t[i], skipping quotes; len-1 when unclosed."""
    depth, j, quote = 0, i, ""
    while j < len(t):
        c = t[j]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"':
                j += 1
        elif c in quotes:
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
    return len(t) - 1


def _match(t: str, i: int) -> int:
    """Index of the bracket closing t[i] (`(` or `{`), skipping quotes and backquotes."""
    return matching(t, i, t[i], ")" if t[i] == "(" else "}")


def brace_depth(word: str) -> int:
    """How deep `${...}` nest in a word (quotes not skipped: a bound, not a parse)."""
    deepest = depth = 0
    for m in re.finditer(r"\$\{|\}", word):
        depth = depth + 1 if m.group() == "${" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def rewrite(text: str) -> str:
    """The text with case/arrays/((...))/[[...]] in shapes bashlex parses (see above);
    the text unchanged where a `case` is malformed (the parser then reports it).
    Raises NestingError for a script nested deeper than MAX_NESTING."""
    r = _Rewriter(text)
    try:
        r.run(0)
    except _CaseError:
        return text
    except NestingError as exc:
        exc.line = text.count("\n", 0, r.at) + 1
        raise
    out = "".join(r.out)
    return out if out.count("\n") == text.count("\n") else text
