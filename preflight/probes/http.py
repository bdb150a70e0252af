"""Does a URL answer an HTTP request within a short time."""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass


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
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
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


def request(url: str, timeout: float, payload: dict | None = None,
            method: str | None = None) -> Reply:
    """One request (GET, a JSON POST when `payload` is given, or `method`); never raises
    for network or HTTP errors."""
    import json
    import urllib.error  # urllib.request pulls in http.client and email: only when used
    import urllib.request

    data = None if payload is None else json.dumps(payload).encode()
    headers = {"User-Agent": "preflight"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    method = method or ("GET" if data is None else "POST")
    # Go straight to the endpoint: a proxy in the environment is not what we test.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    start = time.monotonic()
    try:
        with opener.open(urllib.request.Request(url, data=data, method=method,
                                                headers=headers), timeout=timeout) as resp:
            status, body, error = resp.status, resp.read().decode("utf-8", "replace"), ""
    except urllib.error.HTTPError as exc:
        status, body, error = exc.code, exc.read().decode("utf-8", "replace"), f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        status, body, error = None, "", f"{type(reason).__name__}: {reason}"
    return Reply(status, body[:MAX_BODY], error, round(time.monotonic() - start, 3))


def probe(url: str, timeout: float) -> Answer:
    reply = request(url, timeout, method="HEAD")
    return Answer(safe_url(url), reply.status, reply.error, reply.elapsed_s)
