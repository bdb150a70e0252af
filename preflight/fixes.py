"""A finding's `fix` is copy-paste shell, one command per line; explanations go to `why`.

Checks write a fix as they always did (`cmd  # why`, commands joined with `; ` or
newlines, sometimes a sentence). `split` sorts it once, when the finding is built: every
command on its own line, every comment and every line that is not a command (a sentence,
a `<placeholder>`) moved to `why`. It reads the text as bash does (quotes, escapes, a
comment to the end of its line), so a line it keeps is what bash would run; a command
after a comment must be on a line of its own. Pure and cheap (no bash, no bashlex: the
static stage stays light); the tests check the result against bash itself.
"""

from __future__ import annotations

import re
import shutil

# Commands a fix may name that this machine may lack (they exist on the nodes preflight
# judges); anything else must resolve on PATH or be a shell builtin.
KNOWN_TOOLS = frozenset((
    "nvidia-smi", "dcgmi", "conda", "micromamba", "mamba", "ray", "sudo", "modprobe", "swift",
    "torchrun", "pip", "pip3", "python", "python3", "nvcc", "accelerate", "deepspeed", "ss",
    "ulimit", "systemctl", "docker", "apt-get", "mount", "df", "du", "ip", "ibstat",
    "all_reduce_perf", "megatron", "lsof", "fuser", "dmesg", "sysctl", "ln", "kill", "tee",
    "preflight",  # the node runs it (`python -m preflight` too): its own PATH may lack it
))
BUILTINS = frozenset((
    "export", "unset", "cd", "echo", "printf", "source", ".", "set", "ulimit", "kill", "test",
    "[", "type", "command", "exec", "eval", "true", "false", "read",
    "alias", "umask", "env", "which",
))
# English words that are also commands: a fix line starting with one is a sentence when
# the rest has no flag, path, assignment or shell operator.
AMBIGUOUS = frozenset(("make", "free", "install", "read", "check", "run", "point", "save",
                       "load", "give", "keep", "fix", "test", "time", "watch", "look"))
# A line whose words after the first are plain lowercase words, one of them one of these,
# is a sentence ("kill only holders that are yours", "set the variable").
STOPWORDS = frozenset(("the", "a", "an", "that", "this", "are", "is", "to", "of", "only",
                       "with", "your", "yours", "it", "its", "and", "or", "for", "each",
                       "every", "first", "then", "what", "which", "not", "no", "nothing"))
PLACEHOLDER = re.compile(r"<[A-Za-z][^<>]*>")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# Where an unquoted `#` starts a comment: at the start of a word (bash parse.y: a `#` after
# a blank or a metacharacter; `a#b` is one word).
_WORD_BREAK = frozenset(" \t\n;&|()<>")


class _Scanner:
    """Reads a fix as bash reads it: quotes (single: literal; double and backquotes:
    backslash escapes), a backslash escape outside quotes, `$(...)` / `(...)` nesting,
    and a comment from an unquoted `#` at the start of a word to the end of its line (a
    `; ` inside it is part of the comment: bash never runs what follows). It splits at
    each `;` and newline of the top level: every piece is one command line as bash would
    run it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pieces: list[tuple[str, str, int]] = []  # (command, comment, its line)
        self.cmd: list[str] = []
        self.line = 0

    def _end(self, comment: str = "", line_ends: bool = False) -> None:
        self.pieces.append(("".join(self.cmd), comment, self.line))
        self.cmd = []
        self.line += line_ends

    def _quoted(self, i: int, quote: str) -> int:
        """Copies the quoted span opening at `i`; returns the index after it."""
        text = self.text
        j = i + 1
        while j < len(text) and text[j] != quote:
            j += 2 if text[j] == "\\" and quote != "'" else 1
        self.cmd.append(text[i:j + 1])
        return j + 1

    def run(self) -> list[tuple[str, str, int]]:
        text, i, depth = self.text, 0, 0
        while i < len(text):
            ch = text[i]
            if ch in "'\"`":
                i = self._quoted(i, ch)
                continue
            if ch == "\\":
                self.cmd.append(text[i:i + 2])
                i += 2
                continue
            if ch == "#" and (i == 0 or text[i - 1] in _WORD_BREAK):
                end = text.find("\n", i)
                end = len(text) if end < 0 else end
                if depth:  # inside `$(...)`: part of the command line, as bash reads it
                    self.cmd.append(text[i:end])
                    i = end
                else:
                    self._end(text[i + 1:end], line_ends=True)
                    i = end + 1
                continue
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth = max(0, depth - 1)
            if depth == 0 and ch == "\n":
                self._end(line_ends=True)
            elif depth == 0 and ch == ";" and text[i + 1:i + 2] not in (";", "&") \
                    and text[i - 1:i] != ";":
                self._end()
            else:
                self.cmd.append(ch)
            i += 1
        self._end()
        return [(c.strip(), m.strip(), n) for c, m, n in self.pieces if c.strip() or m.strip()]


def _scan(text: str) -> list[tuple[str, str, int]]:
    """Split at top-level `;` / newlines into (command, comment, line) pieces, as bash
    reads them (_Scanner)."""
    return _Scanner(text).run()


def _balanced(line: str) -> bool:
    quote = ""
    depth = 0
    prev = ""
    escaped = False
    for ch in line:
        if escaped:  # `\"` inside double quotes or outside quotes: a literal character
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            if prev != "$":
                return False  # a sentence's parenthesis, not a subshell we would write
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
        prev = ch
    return not quote and depth == 0


def is_command(line: str) -> bool:
    """Whether `line` reads as one shell command line (not a sentence, no placeholder)."""
    if not line or PLACEHOLDER.search(line) or not _balanced(line):
        return False
    words = line.split()
    if len(words) >= 3 and all(re.fullmatch(r"[a-z]+[,.:]?", w) for w in words[1:]) and \
            any(w.strip(",.:") in STOPWORDS for w in words[1:]):
        return False
    unquoted = re.sub(r"'[^']*'|\"(?:\\.|[^\"\\])*\"", "Q", line)
    for part in re.split(r"\s*(?:\|\||&&|\|)\s*", unquoted):
        words = part.split()
        while words and ASSIGNMENT.match(words[0]):
            words = words[1:]
        if not words:
            continue
        first = words[0]
        if first in AMBIGUOUS:
            rest = words[1:]
            if not any(w.startswith("-") or "/" in w or "=" in w for w in rest):
                return False
        if not (first in BUILTINS or first in KNOWN_TOOLS or "/" in first
                or first.startswith("$") or first == "Q" or shutil.which(first)):
            return False
    return True


def split(fix: str, keep_comments: bool = False) -> tuple[str, str]:
    """(commands, why): commands one per line; comments and sentences joined as `why`.
    `keep_comments`: the comment of a line with a command stays on each of its commands
    (bash ignores it): the cluster report's fixes, whose lines each say where they apply
    (`# on node-a`, `# left by Slurm job 70 step 0`)."""
    commands: list[str] = []
    why: list[str] = []
    pieces = _scan(fix or "")
    runs = {line for command, _, line in pieces if command and is_command(command)}
    kept = {line: comment for _, comment, line in pieces
            if keep_comments and comment and line in runs}
    for command, comment, line in pieces:
        if command and is_command(command):
            commands.append(f"{command}   # {kept[line]}" if line in kept else command)
        elif command:
            why.append(command)
        if comment and line not in kept:
            why.append(comment)
    return "\n".join(dict.fromkeys(commands)), "; ".join(dict.fromkeys(why))
