"""A finding's `fix` is copy-paste shell, one command per line; explanations go to `why`.

Checks write a fix as they always did (`cmd  # why`, commands joined with `; `, sometimes a
sentence). `split` sorts it once, when the finding is built: every command on its own
line, every comment and every line that is not a command (a sentence, a `<placeholder>`)
moved to `why`. Pure and cheap (no bash, no bashlex: the static stage stays light); the
tests check the result with `bash -n` itself.
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


def _scan(text: str) -> list[tuple[str, str]]:
    """Split at top-level `;` / newlines (quote-aware) into (command, comment) pieces."""
    pieces: list[tuple[str, str]] = []
    cmd: list[str] = []
    comment: list[str] = []
    quote = ""
    in_comment = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_comment:
            # A joined fix continues after `; ` even behind a comment: the join meant a
            # new command, which bash would have swallowed into the comment.
            if ch == "\n" or text.startswith("; ", i):
                pieces.append(("".join(cmd), "".join(comment)))
                cmd, comment, in_comment = [], [], False
                i += 1 if ch == "\n" else 2
                continue
            comment.append(ch)
        elif quote:
            cmd.append(ch)
            if ch == "\\" and quote == '"' and i + 1 < len(text):
                cmd.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
            cmd.append(ch)
        elif ch == "#" and (not cmd or cmd[-1].isspace()):
            in_comment = True
        elif ch == "\n" or (ch == ";" and text[i + 1:i + 2] in (" ", "")):
            pieces.append(("".join(cmd), ""))
            cmd = []
        else:
            cmd.append(ch)
        i += 1
    pieces.append(("".join(cmd), "".join(comment)))
    return [(c.strip(), m.strip()) for c, m in pieces if c.strip() or m.strip()]


def _balanced(line: str) -> bool:
    quote = ""
    depth = 0
    prev = ""
    for ch in line:
        if quote:
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


def split(fix: str) -> tuple[str, str]:
    """(commands, why): commands one per line; comments and sentences joined as `why`."""
    commands: list[str] = []
    why: list[str] = []
    for command, comment in _scan(fix or ""):
        if command and is_command(command):
            commands.append(command)
        elif command:
            why.append(command)
        if comment:
            why.append(comment)
    return "\n".join(dict.fromkeys(commands)), "; ".join(dict.fromkeys(why))
