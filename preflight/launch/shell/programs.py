"""What kind of program a file the script runs is, from its first bytes or its text
(bounded reads, pure tests): a shell script without `.sh` (`./train` with a bash
shebang, or none: bash runs it itself) is read like `bash ./train`; a Python program
that starts a launcher itself (`python launch.py` whose text runs `torchrun`) is where
a launcher may start that preflight did not read.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import stat
import tokenize

SAMPLE_BYTES = 128  # enough for a `#!` line; bash reads 80 (execute_cmd.c READ_SAMPLE_BUF)
MAX_PY_BYTES = 1 << 20  # a launch helper is a few KiB; past this only the head is searched
SHELL_INTERPRETERS = ("bash", "sh", "dash")
PYTHON = re.compile(r"python(?:\d+(?:\.\d+)?)?$")


def interpreter(sample: bytes) -> str | None:
    """The program the kernel runs a file with (`#!/usr/bin/env bash`: "bash"), "" for a
    text file without `#!` (bash runs it as a script itself: execute_cmd.c shell_execve,
    ENOEXEC, unless check_binary_file finds a NUL in its first line), None for a binary."""
    first = sample.split(b"\n", 1)[0]
    if not sample.startswith(b"#!"):
        return None if b"\0" in first else ""
    words = first[2:].decode("utf-8", "replace").split()
    if words and posixpath.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return posixpath.basename(words[0]) if words else None


def read_head(path: str, size: int) -> bytes | None:
    """The first `size` bytes of a regular file (never a FIFO or device: no hang); None
    when it is not one or cannot be read."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return None


def is_shell_text(text: str) -> bool:
    """A script the script itself wrote (`cat > train <<EOF`), by its first line."""
    found = interpreter(text[:SAMPLE_BYTES].encode("utf-8", "replace"))
    return found is not None and (found == "" or found in SHELL_INTERPRETERS)


# A process start (subprocess, os.system/exec/spawn/popen) and a string literal that is a
# command starting a launcher: `["torchrun", ...` (the first item), `"deepspeed --num_gpus
# 8 ..."`, `f"{venv}/bin/torchrun ..."`, `"-m", "torch.distributed.run"`; or an import of
# torch's / accelerate's in-process launchers. Literals come from Python's own tokenizer,
# so a launcher named in a comment, inside a message (`"... run 'swift deploy ...'"`) or a
# usage text (`"""Usage: torchrun ..."""`) is not a start: that would make every
# trainer's `python x.py` unknown.
_START = re.compile(r"\bsubprocess\b|\bPopen\b|\bos\.(?:system|popen|exec\w*|spawn\w*)\s*\(")
_LAUNCHER = re.compile(r"(?:[\w.~/${}-]*/)?(?:torchrun|deepspeed|accelerate|llamafactory-cli|"
                       r"swift|megatron)(\s|$)")
_MODULE = re.compile(r"(?:^|\s)-m\s+torch\.distributed\.(?:run|launch)\b")
_MODULES = ("torch.distributed.run", "torch.distributed.launch")
_IN_PROCESS = re.compile(
    r"^\s*(?:from\s+torch\.distributed(?:\.run|\.launcher(?:\.api)?)\s+import\b"
    r"|import\s+torch\.distributed\.run\b|from\s+torch\.distributed\s+import\s+run\b"
    r"|from\s+accelerate(?:\.launchers)?\s+import\s+[^#\n]*\bnotebook_launcher\b)", re.M)
_QUOTES = ('"""', "'''", '"', "'")
_SKIP = (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)


def _code(text: str) -> str:
    """The text with whole-line comments blanked (line numbers kept)."""
    return "\n".join("" if line.lstrip().startswith("#") else line
                     for line in text.split("\n"))


def _body(literal: str) -> str:
    """A string literal's text between its quotes (prefix `f`, `r`, `b` dropped)."""
    rest = literal.lstrip("rRbBuUfF")
    for q in _QUOTES:
        if rest.startswith(q) and rest.endswith(q) and len(rest) >= 2 * len(q):
            return rest[len(q):-len(q)]
    return rest


def literals(text: str) -> tuple[list[tuple[int, str, int]], list[str]]:
    """(line, body, its index in the tokens) of each string literal, and the significant
    tokens (a literal stands as `"`), as Python's tokenizer reads them; what follows a
    point it cannot read (a file cut at MAX_PY_BYTES) is left out."""
    lines = text.splitlines(keepends=True)
    out: list[tuple[int, str, int]] = []
    tokens: list[str] = []
    depth, begin = 0, (0, 0)
    f_start, f_end = getattr(tokenize, "FSTRING_START", -1), getattr(tokenize, "FSTRING_END", -1)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == f_start:  # Python 3.12+: an f-string is many tokens
                depth += 1
                begin = tok.start if depth == 1 else begin
            elif tok.type == f_end:
                depth -= 1
                if not depth:
                    (r0, c0), (r1, c1) = begin, tok.end
                    chunk = "".join(lines[r0 - 1:r1])
                    end = len(chunk) - len(lines[r1 - 1]) + c1
                    out.append((r0, _body(chunk[c0:end]), len(tokens)))
                    tokens.append('"')
            elif depth:
                continue
            elif tok.type == tokenize.STRING:
                out.append((tok.start[0], _body(tok.string), len(tokens)))
                tokens.append('"')
            elif tok.type not in _SKIP:
                tokens.append(tok.string)
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass
    return out, tokens


def _command(found: list[tuple[int, str, int]], tokens: list[str]) -> tuple[int, str] | None:
    for i, (line, body, at) in enumerate(found):
        head = body.lstrip()
        m = _LAUNCHER.match(head)
        # `"torchrun --nproc ..."`; a bare `"torchrun"` only as the first item of a list
        # or tuple of more (`["torchrun", ...`), not a call's argument or a key
        # (`kwargs.get("deepspeed", None)`, `args["deepspeed"]`)
        before = tokens[at - 2] if at > 1 else ""
        call = before.isidentifier() or before in (")", "]")
        first = 0 < at < len(tokens) - 1 and tokens[at + 1] == "," and (
            tokens[at - 1] == "[" or tokens[at - 1] == "(" and not call)
        if m and (m.group(1) or first) or _MODULE.search(body):
            return line, " ".join(head.split())[:60]
        if body.strip() == "-m" and i + 1 < len(found) and found[i + 1][1] in _MODULES:
            return line, f"-m {found[i + 1][1]}"
    return None


def starts_launcher(text: str) -> tuple[int, str] | None:
    """(line, what) where a Python program's text starts a distributed launcher itself;
    None when it shows none."""
    code = _code(text)
    found = _IN_PROCESS.search(code)
    if found is not None:
        return code.count("\n", 0, found.start()) + 1, " ".join(found.group(0).split())[:60]
    return _command(*literals(text)) if _START.search(code) else None


def python_script(name: str, args: list[str], sample: bytes | None) -> int | None:
    """The index in `args` of the file a Python command runs (`python -u launch.py`: 1),
    or -1 for a file run by its own `#!python` line (`./launch.py`, `sample` its first
    bytes); None where it runs no file (`-m`, `-c`, `-`, no argument)."""
    base = posixpath.basename(name)
    if not PYTHON.match(base):
        found = interpreter(sample) if "/" in name and sample is not None else None
        return -1 if found and PYTHON.match(found) else None
    k = 0
    while k < len(args) and args[k].startswith("-") and args[k] != "-":
        arg, k = args[k], k + 1
        if arg == "--":
            break
        if arg.startswith("--"):
            k += arg == "--check-hash-based-pycs"
            continue
        # a cluster of one-letter options (`-uB`); -c / -m end the options, -W / -X take
        # the rest of the word or the next one as their value (python(1))
        for i, letter in enumerate(arg[1:], 1):
            if letter in "cm":
                return None
            if letter in "WX":
                k += i == len(arg) - 1
                break
    return k if k < len(args) and args[k] != "-" else None
