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
