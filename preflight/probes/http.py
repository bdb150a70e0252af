"""Does a URL answer an HTTP request within a short time."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    url: str  # userinfo stripped
    status: int | None
    error: str
    elapsed_s: float
    proxy: str | None = None  # the proxy it went through (userinfo stripped)
    unprobed: bool = False  # the job's proxy is one this probe does not speak: not asked

    @property
    def answered(self) -> bool:
        # Any HTTP reply below 500 proves the endpoint is reachable and serving.
        return self.status is not None and self.status < 500

    def within(self, timeout_s: float) -> str:
        """" within Ns" when no answer came in time, else "": a refused connect or a name
        that does not resolve fails at once, and "within 3s" would be a wrong fact."""
        return f" within {timeout_s:g}s" if self.error.startswith("TimeoutError") else ""


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


def _bypassed(host: str, no_proxy: str) -> bool:
    """`no_proxy` names `host`: `*`, the host, a parent domain (`.example.com` or
    `example.com`), or a network containing its IP (requests.utils.should_bypass_proxies)."""
    import ipaddress

    host = host.lower()
    for entry in (e.strip().lower() for e in no_proxy.replace(" ", ",").split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
            continue
        except ValueError:
            pass
        name = entry.lstrip(".").rsplit(":", 1)[0] if entry.count(":") == 1 else \
            entry.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def env_proxy(url: str, environ: Mapping[str, str]) -> str | None:
    """The http:// proxy a job with `environ` reaches `url` through (job_proxy); None when
    it goes direct or through a proxy this probe does not speak (socks, https://)."""
    return _spoken(job_proxy(url, environ))


def _spoken(proxy: str | None) -> str | None:
    """`proxy` as an http:// URL this probe can go through; None: none, or another kind."""
    if proxy is None:
        return None
    try:
        pp = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        ok = pp.scheme == "http" and bool(pp.hostname) and (pp.port or 80) > 0
    except ValueError:
        return None
    return urllib.parse.urlunsplit(pp) if ok else None


def job_proxy(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy a job with `environ` reaches `url` through, as requests (and so
    huggingface_hub, wandb) picks it: `<scheme>_proxy`, else `all_proxy`, lower case
    first, unless `no_proxy` names the host (`_bypassed`); any scheme, as set."""
    def get(name: str) -> str:
        return environ.get(name) or environ.get(name.upper()) or ""

    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return None
    proxy = get(f"{parts.scheme}_proxy") or get("all_proxy")
    if not proxy or not host:
        return None
    if _bypassed(host, get("no_proxy")):
        return None
    return proxy


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    body: str
    error: str
    elapsed_s: float


MAX_BODY = 2000


def request(url: str, timeout: float, payload: dict[str, Any] | None = None,
            method: str | None = None, proxy: str | None = None) -> Reply:
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
    # Straight to the endpoint unless `proxy` (env_proxy: the one the job goes through).
    headers = {"User-Agent": "preflight", "Host": parts.netloc.rpartition("@")[2]}
    if data is not None:
        headers["Content-Type"] = "application/json"
    method = method or ("GET" if data is None else "POST")
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    conn_type = http.client.HTTPSConnection if parts.scheme == "https" else \
        http.client.HTTPConnection
    conn: http.client.HTTPConnection
    try:
        if proxy:
            pp = urllib.parse.urlsplit(proxy)
            auth = _proxy_auth(pp)
            if parts.scheme == "https":  # CONNECT through the proxy, then TLS to the host
                conn = http.client.HTTPSConnection(pp.hostname or "", pp.port or 80,
                                                   timeout=max(timeout, 0.001))
                conn.set_tunnel(host, port or 443, headers=auth)
            else:  # a plain-HTTP proxy is asked for the absolute URL
                conn = http.client.HTTPConnection(pp.hostname or "", pp.port or 80,
                                                  timeout=max(timeout, 0.001))
                path = urllib.parse.urlunsplit(("http", headers["Host"], parts.path or "/",
                                                parts.query, ""))
                headers.update(auth)
        else:
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


def _proxy_auth(pp: urllib.parse.SplitResult) -> dict[str, str]:
    if pp.username is None:
        return {}
    import base64

    user = urllib.parse.unquote(pp.username)
    password = urllib.parse.unquote(pp.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Proxy-Authorization": f"Basic {token}"}


def probe_as_job(url: str, timeout: float, environ: Mapping[str, str]) -> Answer:
    """`probe` the way a job with `environ` would reach `url`: direct or through its
    http:// proxy. Through a proxy this probe does not speak (socks5://, https://) the
    URL is not asked at all: a direct answer would not say what the job gets."""
    proxy = job_proxy(url, environ)
    spoken = _spoken(proxy)
    if proxy is not None and spoken is None:
        shown = safe_url(proxy if "://" in proxy else f"http://{proxy}")
        return Answer(safe_url(url), None, f"not probed: the job goes through the proxy "
                      f"{shown}, which preflight does not speak (http:// proxies only)",
                      0.0, shown, unprobed=True)
    return probe(url, timeout, spoken)


def probe(url: str, timeout: float, proxy: str | None = None) -> Answer:
    reply = request(url, timeout, method="HEAD", proxy=proxy)
    return Answer(safe_url(url), reply.status, reply.error, reply.elapsed_s,
                  safe_url(proxy) if proxy else None)
