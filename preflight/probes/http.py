"""Does a URL answer an HTTP request within a short time."""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    url: str  # userinfo stripped
    status: int | None
    error: str
    elapsed_s: float

    @property
    def answered(self) -> bool:
        # Any HTTP reply below 500 proves the endpoint is reachable and serving.
        return self.status is not None and self.status < 500


def safe_url(url: str) -> str:
    """The URL without userinfo, query or fragment; never raises (port 99999, `[::1`)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def is_http_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    body: str
    error: str
    elapsed_s: float


MAX_BODY = 2000


def request(url: str, timeout: float, payload: dict[str, Any] | None = None,
            method: str | None = None) -> Reply:
    """One request (GET, a JSON POST when `payload` is given, or `method`), bounded in
    total time (a server trickling a byte a second does not stretch it: the socket is
    shut at the deadline); never raises: every error is a Reply with `error` set."""
    import http.client
    import json
    import socket
    import threading

    start = time.monotonic()

    def failed(error: str) -> Reply:
        return Reply(None, "", error, round(time.monotonic() - start, 3))

    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # ValueError: out of range (99999) or not a number
        host = parts.hostname
    except ValueError as exc:
        return failed(f"invalid URL: {exc}")
    if parts.scheme not in ("http", "https") or not host:
        return failed("not an http(s) URL")
    data = None if payload is None else json.dumps(payload).encode()
    # Go straight to the endpoint: a proxy in the environment is not what we test.
    headers = {"User-Agent": "preflight", "Host": parts.netloc.rpartition("@")[2]}
    if data is not None:
        headers["Content-Type"] = "application/json"
    method = method or ("GET" if data is None else "POST")
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    conn_type = http.client.HTTPSConnection if parts.scheme == "https" else \
        http.client.HTTPConnection
    try:
        conn = conn_type(host, port, timeout=max(timeout, 0.001))
    except (ValueError, OSError, http.client.HTTPException) as exc:
        return failed(f"{type(exc).__name__}: {exc}")
    result: dict[str, Reply] = {}

    def exchange() -> None:
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            body = resp.read(MAX_BODY) if method != "HEAD" else b""
            error = "" if resp.status < 400 else f"HTTP {resp.status}"
            result["reply"] = Reply(resp.status, body.decode("utf-8", "replace"), error,
                                    round(time.monotonic() - start, 3))
        except Exception as exc:  # noqa: BLE001 - any failure is the answer, never a crash
            result["reply"] = failed(f"{type(exc).__name__}: {str(exc)[:200]}")

    worker = threading.Thread(target=exchange, name="preflight-http", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns now
            except OSError:
                pass
        worker.join(0.5)
        conn.close()
        return failed(f"TimeoutError: timed out (no complete HTTP answer within {timeout:g}s)")
    conn.close()
    return result.get("reply") or failed("no answer")


def probe(url: str, timeout: float) -> Answer:
    reply = request(url, timeout, method="HEAD")
    return Answer(safe_url(url), reply.status, reply.error, reply.elapsed_s)
