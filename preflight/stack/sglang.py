"""An SGLang server for one request: start it, wait until it is ready, generate, stop it.

The endpoints are SGLang's native API (sglang `python/sglang/srt/entrypoints/http_server.py`):
`GET /health` answers 503 while the server is still starting or warming up and 200
once it serves; `POST /generate` takes `{"text", "sampling_params"}` and answers
`{"text", "meta_info"}`. uvicorn's "Application startup complete" is printed before
the warm-up request, so it is not readiness; "The server is fired up and ready to
roll!" is, and so is /health = 200, which is what we poll.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from preflight.probes.http import request

READY_LINE = "The server is fired up and ready to roll!"


def server_argv(python: str, model: str, port: int, mem_fraction: float = 0.0,
                extra: tuple[str, ...] = ()) -> list[str]:
    argv = [python, "-m", "sglang.launch_server", "--model-path", model,
            "--host", "127.0.0.1", "--port", str(port)]
    if mem_fraction:
        argv += ["--mem-fraction-static", f"{mem_fraction:g}"]
    return argv + list(extra)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    elapsed_s: float
    polls: int
    statuses: dict[str, int] = field(default_factory=dict)  # "503": 4, "refused": 2, "200": 1
    exited: int | None = None  # the server's exit code when it died while starting
    last_error: str = ""


def wait_ready(base_url: str, exit_code: Callable[[], int | None], timeout_s: float,
               poll_s: float = 0.5, request_timeout_s: float = 5.0) -> Readiness:
    """Poll GET /health until 200, the server process exits, or `timeout_s` passes.

    `exit_code` is the process's poll(): a server that dies while starting is reported
    at once instead of waiting out the timeout."""
    start = time.monotonic()
    statuses: dict[str, int] = {}
    polls = 0
    last_error = ""
    while True:
        code = exit_code()
        if code is not None:
            return Readiness(False, _since(start), polls, statuses, code, last_error)
        reply = request(base_url + "/health", request_timeout_s)
        polls += 1
        key = str(reply.status) if reply.status is not None else "no answer"
        statuses[key] = statuses.get(key, 0) + 1
        if reply.status == 200:
            return Readiness(True, _since(start), polls, statuses)
        last_error = reply.error
        if time.monotonic() - start >= timeout_s:
            return Readiness(False, _since(start), polls, statuses, None, last_error)
        time.sleep(poll_s)


@dataclass(frozen=True)
class Generation:
    status: int | None
    text: str
    error: str
    elapsed_s: float
    meta: dict[str, Any] = field(default_factory=dict)


def generate(base_url: str, prompt: str, max_new_tokens: int = 8,
             timeout_s: float = 60.0) -> Generation:
    reply = request(base_url + "/generate", timeout_s, {
        "text": prompt,
        "sampling_params": {"max_new_tokens": max_new_tokens, "temperature": 0},
    })
    text, error = "", reply.error
    meta: dict[str, Any] = {}
    if reply.status == 200:
        try:
            answer = json.loads(reply.body)
            text = answer.get("text", "") if isinstance(answer, dict) else ""
            meta = answer.get("meta_info", {}) if isinstance(answer, dict) else {}
        except ValueError:
            error = f"not JSON: {reply.body[:80]!r}"
    return Generation(reply.status, text, error, reply.elapsed_s,
                      {k: meta[k] for k in ("prompt_tokens", "completion_tokens") if k in meta})


def _since(start: float) -> float:
    return round(time.monotonic() - start, 2)
