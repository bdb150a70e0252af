"""Reading a launch script (one clear error for anything that is not a text script) and
parsing it with bashlex, statement by statement where the whole does not parse."""

from __future__ import annotations

import os

from preflight.probes.shell.model import ScriptFileError

MAX_BYTES = 2 * 2**20  # a launch script is a few KiB; anything this large is not one
MAX_CHUNK_LINES = 80  # fallback: how far an unparseable statement may extend


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


def mask(text: str) -> str:
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
