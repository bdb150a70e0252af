"""The HTTP probe against real misbehaving servers: bounded in total time, and every
failure an answer with an error, never an exception."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest

from preflight.probes import http


def _serve(handler: Callable[[socket.socket], None]):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    stop = threading.Event()

    def loop() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=_guard, args=(handler, conn), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return server.getsockname()[1], lambda: (stop.set(), server.close())


def _guard(handler, conn) -> None:
    try:
        conn.recv(4096)
        handler(conn)
    except OSError:
        pass
    finally:
        conn.close()


def _trickle(conn) -> None:
    for ch in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
        conn.sendall(bytes([ch]))
        time.sleep(0.5)


def _not_http(conn) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


def _many_headers(conn) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 150 + b"\r\n")


def _ok(conn) -> None:
    conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("handler,expect", [
    (_trickle, "within"), (_not_http, "BadStatusLine"), (_many_headers, "headers"),
])
def test_misbehaving_servers_are_errors_within_the_bound(handler, expect):
    port, stop = _serve(handler)
    try:
        start = time.monotonic()
        answer = http.probe(f"http://u:pw@127.0.0.1:{port}/", timeout=1.5)
        elapsed = time.monotonic() - start
    finally:
        stop()
    assert answer.status is None and not answer.answered
    assert expect in answer.error
    assert elapsed < 1.5 + 1.0
    assert "pw" not in answer.url


def test_a_redirect_is_an_answer():
    port, stop = _serve(_ok)
    try:
        answer = http.probe(f"http://127.0.0.1:{port}", timeout=3)
    finally:
        stop()
    assert answer.status == 302 and answer.answered


@pytest.mark.parametrize("url", ["http://h:99999/", "http://h:x/", "http://[::1", "ftp://h/"])
def test_bad_urls_are_errors_not_exceptions(url):
    answer = http.probe(url, timeout=1)
    assert answer.status is None and answer.error
    assert isinstance(http.safe_url(url), str)


def test_env_proxy_picks_the_proxy_requests_would():
    url = "https://hf-mirror.com/api"
    assert http.env_proxy(url, {}) is None
    assert http.env_proxy(url, {"https_proxy": "http://p:3128"}) == "http://p:3128"
    assert http.env_proxy(url, {"HTTPS_PROXY": "p:3128"}) == "http://p:3128"
    assert http.env_proxy(url, {"http_proxy": "http://p:3128"}) is None  # other scheme
    assert http.env_proxy(url, {"all_proxy": "http://p:1"}) == "http://p:1"
    assert http.env_proxy(url, {"all_proxy": "socks5://p:1"}) is None  # not spoken here
    for no in ("*", "hf-mirror.com", ".hf-mirror.com", "x.org, hf-mirror.com:443"):
        assert http.env_proxy(url, {"https_proxy": "http://p:1", "no_proxy": no}) is None, no
    assert http.env_proxy(url, {"https_proxy": "http://p:1", "NO_PROXY": "mirror.com"}) == \
        "http://p:1"  # not a parent domain of hf-mirror.com
    ip = "http://10.1.2.3:8080/"
    assert http.env_proxy(ip, {"http_proxy": "http://p:1", "no_proxy": "10.0.0.0/8"}) is None


def test_https_probe_tunnels_through_the_proxy_with_connect():
    """A real CONNECT to a local proxy (it answers 200, then drops the tunnel): the probe
    asked it for hf-mirror.com:443 with the proxy's credentials, and never resolved the
    name itself."""
    seen: list[str] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def proxy() -> None:
        conn, _ = srv.accept()
        seen.append(conn.recv(4096).decode())
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        conn.recv(16)
        conn.close()

    worker = threading.Thread(target=proxy, daemon=True)
    worker.start()
    port = srv.getsockname()[1]
    answer = http.probe("https://hf-mirror.com", 3, f"http://user:pw@127.0.0.1:{port}")
    worker.join(5)
    srv.close()
    assert seen and seen[0].startswith("CONNECT hf-mirror.com:443 "), seen
    assert "Proxy-Authorization: Basic dXNlcjpwdw==" in seen[0]  # base64 of user:pw
    assert answer.status is None and answer.error  # the tunnel dropped: no answer
    assert answer.proxy == f"http://127.0.0.1:{port}"  # credentials never shown
