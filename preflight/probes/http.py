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


def probe(url: str, timeout: float) -> Answer:
    import urllib.error  # urllib.request pulls in http.client and email: only when used
    import urllib.request

    start = time.monotonic()
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "preflight"})
    # Go straight to the endpoint: a proxy in the environment is not what we test.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as resp:
            status, error = resp.status, ""
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        status, error = None, f"{type(reason).__name__}: {reason}"
    return Answer(safe_url(url), status, error, round(time.monotonic() - start, 3))
