"""Reading a file the user named: a regular file, bounded in size, never blocking.

A FIFO given as `--env-file`, a profile or `--nvml-replay` would block `read()` forever,
and `/dev/zero` would fill memory; both are bad input (exit 4, one line).
"""

from __future__ import annotations

import os
import stat

from preflight.errors import InputError


def read_bytes(path: str | os.PathLike[str], limit: int, what: str,
               error: type[InputError] = InputError) -> bytes:
    """The whole file, or `error` with one line when it is not a regular file under
    `limit` bytes or cannot be read."""
    shown = display(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not wait for one.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise error(f"{shown}: is a directory, not a {what}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise error(f"{shown}: cannot read {what}: {reason}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{shown}: is a directory, not a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{shown}: is not a regular file (a FIFO, device or socket), "
                        f"cannot be a {what}")
        if info.st_size > limit:
            raise error(f"{shown}: {what} is {info.st_size} bytes, over the limit of {limit}")
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # grew while we read
                raise error(f"{shown}: {what} is over the limit of {limit} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"{shown}: cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(fd)


def display(path: str | os.PathLike[str]) -> str:
    """A path as text, undecodable bytes escaped (never a UnicodeEncodeError later)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def read_regular(path: str | os.PathLike[str], limit: int, what: str) -> tuple[bytes | None, str]:
    """(data, "") or (None, why) where `read_bytes` refuses: for a file a launcher or
    conda opens, where a FIFO must not block and /dev/zero or a sparse 2 GB file must not
    fill memory; the caller says the content is not known."""
    try:
        return read_bytes(path, limit, what), ""
    except InputError as exc:
        return None, str(exc)
