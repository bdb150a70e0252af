"""The HTML report: self-contained, renders in a real headless Chromium with the all-reduce
plot, and fetches nothing (every request of the browser goes to a proxy the test owns)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib
from pathlib import Path

import pytest
from support import FIXTURES

from preflight import html_report

REPORT = FIXTURES / "reports" / "cpu-allreduce.json"  # a real `--check nccl-allreduce` run
BROWSER_SERVICES = re.compile(
    rb"^\S+ (https?://|)[^ /]*(google\.com|gstatic\.com|googleapis\.com|gvt1\.com)[:/ ]")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _report(floor: float = 0.0) -> dict:
    report = json.loads(REPORT.read_text())
    report = copy.deepcopy(report)
    check = report["checks"][0]
    if floor:
        check["evidence"]["floor_gbps"] = floor
    return report


def test_html_is_self_contained_with_the_busbw_plot_and_floor():
    report = _report()
    peak = report["checks"][0]["evidence"]["peak_busbw_gbps"]
    report["checks"][0]["evidence"]["floor_gbps"] = peak / 2
    report["checks"].append({**report["checks"][0], "id": "port-free", "outcome": "failed",
                             "severity": "blocker", "summary": "MASTER_PORT <29500> held",
                             "fix": "export MASTER_PORT=29611", "why": "bound by pid 7",
                             "stage": "static", "nodeid": "t::port[cpu]"})
    page = html_report.render(report)
    assert page.count("<svg") == 1 and "<polyline" in page
    assert page.count("<circle") == len(report["checks"][0]["evidence"]["table"])
    assert f"profile floor {peak / 2:g} GB/s" in page
    assert "export MASTER_PORT=29611" in page and "bound by pid 7" in page
    assert "MASTER_PORT &lt;29500&gt; held" in page  # escaped
    assert "<script" not in page and "<link" not in page and " src=" not in page
    assert set(re.findall(r"https?://[^\"' <]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page


def test_an_unknown_has_its_own_section_not_the_blockers():
    report = _report()
    base = report["checks"][0]
    report["checks"] += [
        {**base, "id": "port-free", "outcome": "failed", "severity": "blocker",
         "summary": "MASTER_PORT 29500 held", "fix": "export MASTER_PORT=29611",
         "stage": "static", "nodeid": "t::port[cpu]"},
        {**base, "id": "launch-ports", "outcome": "failed", "severity": "unknown",
         "summary": "the node's GPU count could not be read", "fix": "nvidia-smi -L",
         "stage": "static", "nodeid": "t::ports[cpu]"}]
    page = html_report.render(report)
    blockers = page[page.index("<h2>Blockers (1)</h2>"):page.index('<h2 id="unknown">')]
    assert "port-free" in blockers and "launch-ports" not in blockers
    unknown = page[page.index('<h2 id="unknown">Unknown: could not decide (1)</h2>'):]
    assert 'class="item unknown"' in unknown and "nvidia-smi -L" in unknown


def test_plot_reads_sizes_from_labels_or_bytes():
    assert html_report.size_bytes({"size": "64 KiB"}) == 65536
    assert html_report.size_bytes({"size": "8 B", "bytes": 8}) == 8
    assert html_report.size_bytes({"size": "weird"}) is None


# -- a real browser --------------------------------------------------------------------


class Proxy:
    """Counts every connection the browser makes: with it as the proxy for all schemes,
    any fetch (http, https, even loopback) arrives here."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.requests.append(conn.recv(200))
                except OSError:
                    self.requests.append(b"")

    def wait_for(self, needle: bytes, timeout: float = 15) -> None:
        """A connection waits in the backlog until accepted: give the thread time to take
        it before stopping (the browser may already have exited)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not any(needle in r for r in self.requests):
            time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def _chromium(url: str, proxy: Proxy, *extra: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="preflight-chromium-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--no-first-run", f"--user-data-dir={profile}",
             "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter",
             f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>",
             "--window-size=1000,1400", *extra, url],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes): rows of bytes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and color in (2, 6) and interlace == 0
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1)
                                                           * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get "
                    "install -y chromium); the HTML is checked only without a browser")
def test_html_renders_in_headless_chromium_with_the_plot_and_fetches_nothing(tmp_path):
    report = _report()
    report["checks"][0]["evidence"]["floor_gbps"] = \
        report["checks"][0]["evidence"]["peak_busbw_gbps"] / 2
    page = tmp_path / "preflight-report.html"
    page.write_text(html_report.render(report))
    proxy = Proxy()
    try:
        shot = tmp_path / "shot.png"
        run = _chromium(page.as_uri(), proxy, f"--screenshot={shot}")
        assert shot.exists(), run.stderr[-2000:]
        dom = _chromium(page.as_uri(), proxy, "--dump-dom").stdout
        # The control: the same harness sees a page that does fetch something.
        leaky = tmp_path / "leaky.html"
        leaky.write_text('<html><body><img src="http://preflight-test.invalid/x.png">'
                         "</body></html>")
        _chromium(leaky.as_uri(), proxy, "--dump-dom")
        proxy.wait_for(b"preflight-test.invalid")
    finally:
        proxy.close()
    assert 'id="busbw-plot"' in dom and "<polyline" in dom and "profile floor" in dom
    width, bpp, rows = _png_pixels(shot)
    colours = set()
    non_white = 0
    for row in rows[::4]:
        for x in range(0, width * bpp, bpp * 4):
            pixel = row[x:x + 3]
            colours.add(pixel)
            non_white += pixel != b"\xff\xff\xff"
    assert len(colours) > 20, f"screenshot looks blank: {len(colours)} colours"
    assert non_white > 100
    # Only the control page's request reached the proxy (Chromium's own service calls,
    # such as its network-time query to clients2.google.com, are not the page's).
    # An empty connection (a preconnect that sent nothing) fetched nothing.
    page_requests = [r for r in proxy.requests if r and not BROWSER_SERVICES.search(r)]
    assert page_requests, "the proxy saw nothing, even from the page that fetches"
    assert all(b"preflight-test.invalid" in r for r in page_requests), page_requests
