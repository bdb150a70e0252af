"""Run a process tree bounded in time, sample its memory, and leave nothing behind
(the tree itself, and why it is needed: preflight/run/tree.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from preflight.run import Runner, kill_group
from preflight.run.tree import ProcessTree

POLL_S = 0.2


@dataclass(frozen=True)
class Watched:
    argv: tuple[str, ...]
    returncode: int | None  # None: we stopped it (timeout or a stop pattern)
    timed_out: bool
    matched: str  # the first output line matching `stop_on`, "" if none
    elapsed_s: float
    peak_rss_bytes: int  # of the whole tree, sampled every POLL_S
    pids_seen: int
    survivors: tuple[int, ...]  # descendants still alive after cleanup (must be empty)
    log_path: str

    @property
    def log(self) -> str:
        return Path(self.log_path).read_text(encoding="utf-8", errors="replace")


def terminate(proc: subprocess.Popen[bytes], tree: ProcessTree, grace_s: float) -> None:
    """SIGTERM the group and the tree, wait `grace_s`, then SIGKILL what is left."""
    tree.refresh()
    kill_group(proc, signal.SIGTERM)
    tree.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and tree.alive():
        time.sleep(0.05)
    kill_group(proc, signal.SIGKILL)
    tree.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class Started:
    """A process tree we started and will stop: `with Started(...) as s:` stops it on exit."""

    def __init__(self, runner: Runner, argv: Sequence[str], *, log_path: Path,
                 env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None) -> None:
        self.argv = tuple(argv)
        self.log_path = log_path
        self.started = time.monotonic()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            self.proc = runner.popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL,
                                     env=dict(env) if env is not None else None, cwd=cwd)
        self.tree = ProcessTree(self.proc.pid)
        self.peak_rss_bytes = 0
        self.survivors: tuple[int, ...] = ()

    def poll(self) -> int | None:
        """The exit code, or None while running; samples the tree's memory as it goes."""
        self.tree.refresh()
        self.peak_rss_bytes = max(self.peak_rss_bytes, self.tree.rss())
        return self.proc.poll()

    def stop(self, grace_s: float = 5.0) -> tuple[int, ...]:
        """Stop the whole tree; return the pids still alive afterwards (should be none)."""
        terminate(self.proc, self.tree, grace_s if self.proc.poll() is None else 1.0)
        self.survivors = tuple(sorted(p.pid for p in self.tree.alive()))
        return self.survivors

    @property
    def log(self) -> str:
        return _read(self.log_path)

    def __enter__(self) -> Started:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def watch(
    runner: Runner,
    argv: Sequence[str],
    *,
    log_path: Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stop_on: re.Pattern[str] | None = None,
    stop_after_s: float = 0.0,
    grace_s: float = 5.0,
) -> Watched:
    """Run `argv` with its output in `log_path`; stop it at `timeout_s`, or `stop_after_s`
    after a line matching `stop_on` appears (a known hang: waiting longer shows nothing)."""
    run = Started(runner, argv, log_path=log_path, env=env, cwd=cwd)
    timed_out = False
    stopped_on = ""
    seen_at: float | None = None
    scanned = 0  # bytes of the log already searched for `stop_on`
    try:
        while run.poll() is None:
            now = time.monotonic()
            if stop_on is not None and not stopped_on:
                text = _read(log_path)
                match = stop_on.search(text, max(0, scanned - 400))
                scanned = len(text)
                if match:
                    stopped_on = _line_of(match)
                    seen_at = now
            if seen_at is not None and now - seen_at >= stop_after_s:
                break
            if now - run.started >= timeout_s:
                timed_out = True
                break
            time.sleep(POLL_S)
    finally:
        still_running = run.proc.poll() is None
        run.stop(grace_s)
    code = None if still_running else run.proc.returncode
    if not still_running:  # it ended by itself: not our stop
        timed_out = False
        if stop_on is not None and not stopped_on:
            match = stop_on.search(run.log)
            stopped_on = _line_of(match) if match else ""
    return Watched(run.argv, code, timed_out, stopped_on,
                   round(time.monotonic() - run.started, 2), run.peak_rss_bytes,
                   len(run.tree.known), run.survivors, str(log_path))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _line_of(match: re.Match[str]) -> str:
    text = match.string
    begin = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    return text[begin:end if end >= 0 else len(text)].strip()
