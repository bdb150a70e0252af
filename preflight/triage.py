"""`preflight triage PATH... [--json]`: name the root cause of a failed run from its logs.

The runbooks are the data. Each runbook's `## Symptom` section holds fenced blocks with the
info string `triage`: one Python regular expression per line, each identifying a log line of
that root cause. Lines starting with `@` are directives for their block:

    @near: REGEX   the block's patterns count only when REGEX matches within the event
                   (the 40 lines before the match and the 15 after it: its traceback)
    @log: REGEX    ... only when REGEX matches a line anywhere in the inputs (with its
                   indentation: the line's leading whitespace is kept for these); the
                   first such line is the cause's evidence
    @file: REGEX   ... only in a file whose path (as given, `/`-separated) matches REGEX
    @likely        a match names the cause with confidence "likely", not "certain"
    @check: ID     the check that would have caught it before launch (`none`: no check);
                   default: the runbook id itself
    @fallback      the line is what the ranks that waited print (a collective timeout):
                   it names the cause only when nothing else does, not even an unknown
                   exception, and not when torchrun's table names a rank killed by a signal
    @stop          the line says the job was stopped from outside (a signal to the
                   launcher, a scheduler's cancel, the OOM killer): it names the cause
                   unless a fatal error comes before it (that error is then the cause, the
                   stop its consequence); the stop of a process that another launcher in
                   the logs was closing (a nested torchrun) is a consequence

A block with a condition is more specific than one without: when both match the same line
(an OOM inside `optimizer.load_state_dict` is `resume-memory`, not `cuda-oom`), it wins.

The root cause is the earliest matching line once consequences (other ranks' NCCL watchdog
timeouts, torchrun's ChildFailedError tables, SIGTERMs from the agent, `Ray job ... failed`)
and benign noise (wandb's BrokenPipeError at shutdown, warnings) are discounted. The
waiting ranks' collective timeouts (`@fallback`, runbook collective-timeout) come last:
after an unknown exception, and behind a rank torchrun's table shows killed by a signal.
A stop from outside (`@stop`, runbook job-stopped: torchrun's agent catching SIGTERM,
slurmstepd's `CANCELLED ... DUE TO TIME LIMIT`) comes first unless a fatal error came
before it; `stopped` then says who was stopped, by what, and how to find out which sender.
Logs are streamed in blocks: a cheap substring prefilter (literals every pattern requires,
found with `bytes.find`) picks the few lines the regexes run on, so a 200 MB log costs
seconds and bounded memory. Exit 0: no fatal error; 1: fatal (a root cause named, or
`unknown`); 2: interrupted (Ctrl-C, SIGTERM, SIGHUP); 4: bad input. What the program only
warned about, retried, logged and went on after, or recovered from by a torchrun restart
is not fatal by itself (`not_fatal` when nothing else is), and neither is bash's report of a
background job the script's own `kill` (its `set -x` trace) ended (`killed_by_script`).
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import re
import shlex
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

# The regex parser (re._parser since 3.11, the oldest Python preflight supports); private,
# so typeshed has no stub for it: hence the ignore.
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from preflight import redact, runbooks, scriptkills
from preflight.probes.exceptions import EXCEPTION_LINE, ROOT_CAUSE, root_cause
from preflight.run import interrupt_on_signals, restore_signals

SCHEMA = 1
BLOCK = 4 << 20        # bytes read per step
SEGMENT_CAP = 4096     # bytes of one \r/\n-delimited segment that are matched
NEAR_BEFORE, NEAR_AFTER = 40, 15
MAX_HITS = 2000        # hits kept per file (a log of a million identical errors stays bounded)
MAX_BENIGN = 20        # benign lines kept per id
MAX_FILES = 10000
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
# A line that says it will be retried is not yet fatal: it names a cause only when nothing
# more definite does (huggingface_hub's "Retrying in 8s [Retry 4/5]", slime's
# "retrying... (attempt 51/60").
RETRIED = re.compile(r"(?i)\bretrying\b|\bRetry \d+/\d+|attempt \d+/\d+|thrown while requesting")
# Where a line came from, before what it says: torchrun's --tee/--local-ranks-filter rank
# prefixes ([rank1]:, [default0]:), srun --label's node0:, Ray's (pid=N) / (Actor pid=N).
SOURCE = r"^(?:(?:\[\w+\d+\]:|[\w.-]+\d+:\s|\([\w ]*pid=\d+[^)]*\))\s*)*"
# A logging record's date and time (Python logging's asctime, loguru's, deepspeed's [...]).
DATE_TIME = r"\d{4}-\d\d-\d\d[ T_][\d:,.]+\]?\s*[-|]?\s*"
STAMP = r"(?:\[?" + DATE_TIME + r")?"
# A logging record the program itself marks as a warning (Python logging's default and
# asctime formats, deepspeed's [WARNING], ms-swift's [WARNING:swift], vLLM's WARNING
# MM-DD, loguru's | WARNING |): the program went on. Such a line matching a runbook names
# its cause only when nothing fatal does, and is not fatal by itself (a run that warned
# "cache file not found at out//cache" and then trained to the end is no failure).
WARNING_RECORD = re.compile(SOURCE + STAMP + r"\[?(?:WARNING|WARN)\b[]:|\s-]")
TRACEBACK_HEAD = re.compile(SOURCE + r"Traceback \(most recent call last\):")
# A logging record at ERROR or above: a traceback printed right under one was logged by
# the program (logger.exception, exc_info=True: a Dataset skipping a bad row), not the
# interpreter's report of the exception that ended it. Not under INFO/DEBUG (a training
# loop's "INFO train: step 2 loss 2.3" stands right above the traceback of the crash that
# ended the run), nor under WARNING (a tokenizer's warning, then a KeyError in the
# collator: the interpreter's report of the crash). Nor when the traceback carries another
# prefix than the record or starts at the program's outermost frame (_logged).
ERROR_RECORD = re.compile(SOURCE + STAMP + r"\[?(?:CRITICAL|ERROR)\b[]:|\s-]")
# ... also when a progress bar left on the line (tqdm draws without a newline) precedes
# a stamped one: "train:  17%|##  | 1/6 [00:00<00:00]2026-12-01 10:58:12,228 ERROR ...".
STAMPED_ERROR = re.compile(DATE_TIME + r"\[?(?:CRITICAL|ERROR)\b[]:|\s-]")
# A traceback that is itself the message of a logging record, its head on the record's
# line: `logger.info(traceback.format_exc())` (ms-swift 4.6 swift/dataset/preprocessor/
# core.py:251 logs a bad dataset row so, warns "There are errors in the dataset, the data
# will be deleted" and trains on: "[INFO:swift] Traceback (most recent call last):", after
# a tqdm bar left on the line). The interpreter's report of an uncaught exception never
# starts on a record's line.
LEVELS = r"(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)"
LOGGED_HEAD = re.compile(r"(?:\[" + LEVELS + r"(?::[\w.-]+)?\]|" + DATE_TIME + r"\[?" + LEVELS
                         + r"\b\]?:?\s*(?:[\w.-]+:)?)"
                         r"\s*Traceback \(most recent call last\):")
# The first frame of sys.excepthook's report of the main thread's uncaught exception: the
# program's outermost one (the __main__ script's, `python -c`'s or a console script's
# <module>; runpy's _run_module_as_main under `python -m`). A traceback logging prints
# (logger.exception, exc_info=True) starts at the frame that caught the exception (the
# exc_info's traceback runs from the handler's frame down): a training loop's, a Dataset's
# __getitem__; only a module-level try/except starts it at <module> too.
OUTERMOST_FRAME = re.compile(SOURCE + r'\s*File "[^"]*", line \d+, in '
                             r"(?:<module>|_run_module_as_main)$")
# What a process prints after the exception that ended it, from its exit handlers: not the
# program going on. wandb's run summary (its `wandb:` prefix, wandb/errors/term.py
# termlog), CPython's unraisable and atexit reports (Python/errors.c
# PyErr_WriteUnraisable: "Exception ignored in"; Modules/atexitmodule.c: "Error in
# atexit._run_exitfuncs").
EXIT_NOISE = re.compile(SOURCE + r"(?:wandb:|Exception ignored in\b|Error in atexit\.)")


class TriageInputError(Exception):
    """Bad input: one line, exit 4."""


# -- the patterns ---------------------------------------------------------------------------

@dataclass
class Block:
    """One `triage` block: its patterns, its conditions, the id it names."""

    id: str
    patterns: list[re.Pattern[str]]
    near: list[re.Pattern[str]] = field(default_factory=list)
    log: list[re.Pattern[str]] = field(default_factory=list)
    file: list[re.Pattern[str]] = field(default_factory=list)
    likely: bool = False
    check: str | None = None
    role: str = "cause"   # cause | consequence | benign | generic | trace
    fallback: bool = False
    stop: bool = False

    @property
    def specificity(self) -> int:
        return len(self.near) + len(self.log) + len(self.file)


def parse_blocks(rid: str, text: str, role: str = "cause") -> list[Block]:
    """The triage blocks in the `## Symptom` section of a runbook's text."""
    section = re.search(r"^## Symptom\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if role == "cause" and not section:
        return []
    body = section.group(1) if section else text
    blocks = []
    for raw in re.findall(r"^```triage[ \t]*\n(.*?)^```", body, re.M | re.S):
        block = Block(id=rid, patterns=[], check=rid, role=role)
        for line in raw.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("@"):
                key, _, value = line[1:].partition(":")
                key, value = key.strip(), value.strip()
                if key == "near":
                    block.near.append(re.compile(value))
                elif key == "log":
                    block.log.append(re.compile(value))
                elif key == "file":
                    block.file.append(re.compile(value))
                elif key == "likely":
                    block.likely = True
                elif key == "fallback":
                    block.fallback = True
                elif key == "stop":
                    block.stop = True
                elif key == "check":
                    block.check = None if value in ("", "none") else value
                else:
                    raise ValueError(f"{rid}: unknown triage directive @{key}")
            else:
                block.patterns.append(re.compile(line))
        if block.patterns:
            blocks.append(block)
    return blocks


def runbook_blocks(directory: Path | None = None) -> list[Block]:
    directory = directory or runbooks.runbook_dir()
    blocks: list[Block] = []
    for path in sorted(directory.glob("*.md")):
        if path.stem == "README":
            continue
        blocks += parse_blocks(path.stem, path.read_text(encoding="utf-8"))
    return blocks


# Consequences: loud lines that follow a root cause elsewhere and are never one themselves.
# torch/distributed/elastic/multiprocessing/errors/__init__.py (ChildFailedError and its
# "Root Cause (first observed failure)" table), elastic/agent/server/api.py ("Received
# SIGTERM death signal", "Sending process N closing signal SIGTERM"), ProcessGroupNCCL.cpp
# (watchdog timeouts, "taking the entire process down"), ray/dashboard/modules/job/cli.py
# ("Job '...' failed"), Slurm's slurmstepd when another task of the step failed first
# (src/slurmd/slurmstepd/req.c:1140-1150 at SchedMD/slurm 284c3b95: "FAILED (non-zero exit
# code or other failure mode)", "DUE TO TASK FAILURE").
CONSEQUENCES = r"""
```triage
ChildFailedError
Root Cause \(first observed failure\)
^\s*(?:\[\d+\]:|Failures:)?\s*exitcode\s*:\s*-?\d+
error_file\s*:
To enable traceback see: https://pytorch\.org/docs/stable/elastic/errors\.html
elastic_launch\(|torch\.distributed\.elastic\.multiprocessing\.api:failed
failed \(exitcode: -?\d+\) local_rank
Sending process \d+ closing signal SIG
Received (?:Signals\.)?(?:SIG\w+|\d+) death signal
SignalException: Process \d+ got signal
\*\*\* (?:JOB|STEP) \S+ (?:ON \S+ )?(?:CANCELLED AT \S+ DUE TO TASK FAILURE|FAILED \(non-zero exit)
Watchdog caught collective operation timeout
(?i)watchdog (?:thread )?(?:terminated|timeout)
ProcessGroupNCCL.*(?:timed out|timeout|Timeout)
taking the entire process down
Some NCCL operations have failed or timed out
NCCL communicator was aborted
ncclRemoteError|remote process exit
socketPollConnect.*Connection refused
Connection (?:refused|reset by peer|closed by peer)
failed to recv, got 0 bytes
Ray job .*failed|Job '[^']+' failed
RayTaskError|ActorDiedError|The actor died unexpectedly
CalledProcessError: Command .* returned non-zero exit status
WorkerGroupFailureException
RendezvousClosedError|RendezvousConnectionError
line \d+: +\d+ (?:Killed|Segmentation fault|Bus error|Aborted)\b
DistStoreError: .*(?:Socket Timeout|timed out|Timed out)
```
"""

# Benign: noise of runs that worked; listed, never a cause. Seen at the end of successful
# slime runs (wandb's pipe closing after the job, torch's warning that
# destroy_process_group() was not called) and in every transformers/torch log.
BENIGN = {
    "wandb-broken-pipe": "```triage\n@near: wandb\nBrokenPipeError\n```",
    "destroy-process-group": "```triage\ndestroy_process_group\\(\\) was not called\n```",
    "python-warning": "```triage\n(?:Deprecation|PendingDeprecation|Future|User)Warning\\b\n```",
    "weights-not-initialized": "```triage\nSome weights of .* were not initialized\n```",
    # CPython prints these for exceptions in __del__ / atexit / other threads; the process
    # goes on (DataLoader iterators at shutdown print one after every successful run).
    "exception-ignored": "```triage\nException ignored in\nException in thread\n```",
    # torchrun's agent (LOGLEVEL=INFO) when its workers finished: after a restart
    # (--max-restarts) the failures before it were recovered from
    # (torch/distributed/elastic/agent/server/api.py:932 and :985 in torch 2.13).
    "torchrun-succeeded": "```triage\n\\] \\[\\w+\\] worker group successfully finished\n"
                          "Local worker group finished \\(WorkerState\\.SUCCEEDED\\)\n```",
    # ... and when it restarts them (api.py:942, "[default] Worker group FAILED. 1/1
    # attempts left; will restart worker group"): only what failed before a restart was
    # recovered from, not a failed torchrun that a later, successful one follows.
    "torchrun-restarted": "```triage\n\\] \\[\\w+\\] .*; will restart worker group\n```",
}
SUCCEEDED = "torchrun-succeeded"
RESTARTED = "torchrun-restarted"
NOT_FATAL_TRACEBACK = re.compile(r"Exception ignored in|Exception in thread")

# Anything that looks fatal but matches no runbook: an exception line inside a traceback.
GENERIC = "```triage\n@near: Traceback \\(most recent call last\\)\n(?:Error|Exception)\\b\n```"
# ... and argparse's refusal of the command line, which ends the program (exit 2) with no
# traceback: `parser.exit(2, '%(prog)s: error: %(message)s\n')` (CPython Lib/argparse.py
# ArgumentParser.error), e.g. ms-swift 4.6 "sft.py: error: argument --max_steps/--max-steps:
# invalid int value: 'ten'" after its usage text.
ARGPARSE_ERROR = (r"^(?:\[\w+\d+\]:\s*)?[\w.-]+: error: (?:argument |unrecognized arguments: |"
                  r"the following arguments are required: |one of the arguments )")


# bash's xtrace (`set -x`) of a `kill` the script itself runs: "+ kill -9 6640" (PS4, "+ " by
# default, its "+" repeated per level of indirection; a PS4 like '+ ${BASH_SOURCE}:${LINENO}:
# ' adds "run.sh:12: "). Never a cause: the pids it names let bash's report of a background
# job the script killed be told from a command that died (see script_killed).
XTRACE_KILL = re.compile(SOURCE + r"\++\s+(?:\S+:\s+)*(?:command\s+|builtin\s+)?(?:/\S*/)?"
                         r"(p?kill|killall)((?:\s+\S+)+)\s*$")
TRACE = ("```triage\n\\+\\s+(?:\\S+:\\s+)*(?:command\\s+|builtin\\s+)?(?:/\\S*/)?"
         "(?:p?kill|killall)\\s\n```")


# ... and of a `timeout` the script runs: "+ timeout 20 python -m torch.distributed.run ...".
XTRACE_TIMEOUT = re.compile(SOURCE + r"\++\s+(?:\S+:\s+)*(?:command\s+)?((?:/\S*/)?timeout\s.*)$")
TRACE_TIMEOUT = "```triage\n\\+\\s+(?:\\S+:\\s+)*(?:command\\s+)?(?:/\\S*/)?timeout\\s\n```"


def builtin_blocks() -> list[Block]:
    blocks = parse_blocks("consequence", CONSEQUENCES, role="consequence")
    blocks += parse_blocks("script-kill", TRACE, role="trace")
    blocks += parse_blocks("script-timeout", TRACE_TIMEOUT, role="trace")
    for bid, text in BENIGN.items():
        blocks += parse_blocks(bid, text, role="benign")
    blocks += parse_blocks("unknown", GENERIC, role="generic")
    blocks += parse_blocks("unknown", f"```triage\n{ARGPARSE_ERROR}\n```", role="generic")
    return blocks


# -- required literals: the prefilter ---------------------------------------------------------

def required_literals(pattern: str) -> set[str] | None:
    """Lowercased substrings at least one of which every match of `pattern` contains,
    or None when none of 3+ characters can be derived (the pattern is then run on every
    segment, which is slow: tests keep runbook patterns out of that path)."""
    try:
        parsed = sre_parse.parse(pattern)
    except Exception:
        return None
    return _seq_literals(list(parsed))


def _seq_literals(items: list[Any]) -> set[str] | None:
    best: set[str] | None = None
    run: list[str] = []
    candidates: list[set[str]] = []

    def flush() -> None:
        if len(run) >= 3:
            candidates.append({"".join(run).lower()})
        run.clear()

    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            run.append(chr(arg))
            continue
        flush()
        if name == "SUBPATTERN":
            sub = _seq_literals(list(arg[-1]))
            if sub:
                candidates.append(sub)
        elif name == "BRANCH":
            options = [_seq_literals(list(b)) for b in arg[1]]
            found = [o for o in options if o]
            if len(found) == len(options):
                candidates.append(set[str]().union(*found))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and arg[0] >= 1:
            sub = _seq_literals(list(arg[2]))
            if sub:
                candidates.append(sub)
    flush()
    for cand in candidates:  # the set whose shortest member is longest filters best
        if best is None or min(map(len, cand)) > min(map(len, best)):
            best = cand
    return best


@dataclass
class Matcher:
    block: Block
    pattern: re.Pattern[str]
    literals: set[str] | None


class Scanner:
    """Every block's patterns, with the substring triggers that select lines for them."""

    def __init__(self, blocks: list[Block]):
        self.blocks = blocks
        self.matchers: list[Matcher] = []
        self.markers: list[re.Pattern[str]] = []  # @log conditions, looked for everywhere
        for block in blocks:
            for pat in block.patterns:
                self.matchers.append(Matcher(block, pat, required_literals(pat.pattern)))
            for cond in block.log:
                if cond.pattern not in {m.pattern for m in self.markers}:
                    self.markers.append(cond)
        self.marker_literals = [required_literals(m.pattern) for m in self.markers]
        literals = {lit for m in self.matchers if m.literals for lit in m.literals}
        literals |= {lit for lits in self.marker_literals if lits for lit in lits}
        # A literal that contains another is found through the shorter one.
        self.triggers = sorted(lit for lit in literals
                               if not any(o != lit and o in lit for o in literals))
        self.trigger_bytes = [t.encode() for t in self.triggers]
        self.slow = [m for m in self.matchers if m.literals is None]
        self.slow_markers = [m for m, lits in zip(self.markers, self.marker_literals, strict=True)
                             if lits is None]
        self._candidates: dict[frozenset[str], list[Matcher]] = {}

    def candidates(self, triggers: set[str]) -> list[Matcher]:
        """The matchers a line with these triggers can match, in order; computed once per
        set of triggers (a crash loop repeats a few sets millions of times)."""
        key = frozenset(triggers)
        found = self._candidates.get(key)
        if found is None:
            found = [m for m in self.matchers if m.literals is None
                     or any(_covers(t, m.literals) for t in key)]
            if len(self._candidates) < 4096:  # bounded, whatever the log combines
                self._candidates[key] = found
        return found


# -- reading --------------------------------------------------------------------------------

@dataclass
class Hit:
    file: int
    line: int          # 1-based
    offset: int        # byte offset of the segment in the file
    text: str          # ANSI-stripped segment
    blocks: list[Block]


@dataclass
class FileScan:
    path: str          # as shown
    real: str          # where to read context from
    hits: list[Hit] = field(default_factory=list)
    benign: dict[str, list[int]] = field(default_factory=dict)
    benign_count: int = 0
    benign_hits: int = 0   # of `hits`, those only benign blocks match
    consequences: int = 0
    lines: int = 0
    # bash's reports of jobs the script's own `kill` (in its xtrace) ended: not failures
    script_killed: list[dict[str, Any]] = field(default_factory=list)
    # the `timeout` commands the script's xtrace shows: (line, timeout_args)
    traced_timeouts: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def clean(raw: bytes) -> str:
    return ANSI.sub("", raw.decode("utf-8", errors="replace")).strip()


# The @log conditions seen: pattern -> where it first matched (file index, line, text), the
# evidence a cause that needs the condition shows.
Marks = dict[str, tuple[int, int, str]]


def scan_file(scanner: Scanner, index: int, shown: str, real: str, markers: Marks) -> FileScan:
    result = FileScan(shown, real)
    with open(real, "rb") as handle:
        base_offset, base_line = 0, 0
        carry = b""
        while True:
            chunk = handle.read(BLOCK)
            data = carry + chunk
            if not data:
                break
            if chunk:
                cut = data.rfind(b"\n")
                if cut < 0 and len(data) < 4 * BLOCK:
                    carry = data
                    continue
                if cut < 0:
                    cut = len(data) - 1  # an absurd line: cut it
                block, carry = data[:cut + 1], data[cut + 1:]
            else:
                block, carry = data, b""
            _scan_block(scanner, index, block, base_offset, base_line, result, markers)
            base_line += block.count(b"\n")
            base_offset += len(block)
            if not chunk:
                break
    result.lines = base_line + (0 if not carry else 1)
    return result


def _segment_bounds(block: bytes, pos: int) -> tuple[int, int]:
    # The \r is looked for only inside the line: a search to the block's edge made a log
    # with an error on every line quadratic in the 4 MiB block.
    line_start = block.rfind(b"\n", 0, pos) + 1
    line_end = block.find(b"\n", pos)
    if line_end < 0:
        line_end = len(block)
    start = block.rfind(b"\r", line_start, pos) + 1 or line_start
    end = block.find(b"\r", pos, line_end)
    return start, line_end if end < 0 else end


def _scan_block(scanner: Scanner, index: int, block: bytes, base_offset: int, base_line: int,
                result: FileScan, markers: Marks) -> None:
    low = block.lower()
    segments: dict[int, tuple[int, set[str]]] = {}
    for trig, tb in zip(scanner.triggers, scanner.trigger_bytes, strict=True):
        pos = low.find(tb)
        while pos >= 0:
            start, end = _segment_bounds(block, pos)
            segments.setdefault(start, (end, set()))[1].add(trig)
            pos = low.find(tb, max(end, pos + 1))
    if scanner.slow or scanner.slow_markers:  # patterns without a literal: every segment
        for start, end in _all_segments(block):
            segments.setdefault(start, (end, set()))
    line, counted = base_line, 0
    for start in sorted(segments):
        end, trigs = segments[start]
        line += block.count(b"\n", counted, start)
        counted = start
        # @log conditions see the line's indentation (torchrun's failure table quotes a
        # worker's traceback 4 spaces in, a launcher's own traceback has 2); patterns do not.
        indented = ANSI.sub("", block[start:min(end, start + SEGMENT_CAP)]
                            .decode("utf-8", errors="replace")).rstrip()
        text = indented.strip()
        if not text:
            continue
        for marker in scanner.markers:
            if marker.pattern not in markers and marker.search(indented):
                markers[marker.pattern] = (index, line + 1, text)
        matched = []
        for m in scanner.candidates(trigs):
            if m.block not in matched and m.pattern.search(text):
                matched.append(m.block)
        if matched:
            _record(result, Hit(index, line + 1, base_offset + start, text, matched))


def _covers(trigger: str, literals: set[str]) -> bool:
    return any(trigger in lit for lit in literals)


def _all_segments(block: bytes) -> Iterator[tuple[int, int]]:
    start = 0
    for m in re.finditer(rb"[\r\n]", block):
        if m.start() > start:
            yield start, m.start()
        start = m.end()
    if start < len(block):
        yield start, len(block)


def _record(result: FileScan, hit: Hit) -> None:
    # Benign noise is never a cause, except that a runbook pattern beats the generic
    # warning categories (torch's "sm_120 is not compatible" is a UserWarning and the cause).
    benign = [b for b in hit.blocks if b.role == "benign"]
    causes = [b for b in hit.blocks if b.role == "cause"]
    if benign and causes and all(b.id == "python-warning" for b in benign):
        benign = []
    # Benign lines have a cap of their own: a long run's warnings (one UserWarning per
    # logging interval: 2,000 of them in a 500 MB log) filled the cap, and the error at the
    # end of the log was never looked at ('no fatal error found').
    if benign:
        hit.blocks = benign
        if result.benign_hits >= MAX_HITS:
            return
        result.benign_hits += 1
    elif len(result.hits) - result.benign_hits >= MAX_HITS:
        return
    result.hits.append(hit)


# -- context --------------------------------------------------------------------------------

def read_window(path: str, offset: int, before: int, after: int) -> tuple[list[str], int]:
    """`before` lines before the segment at `offset`, its line, `after` lines after it;
    and the index of the segment's line in that list. Bounded reads around the offset."""
    span = 512 * (before + 1)
    with open(path, "rb") as handle:
        start = max(0, offset - max(span, 64 << 10))
        handle.seek(start)
        head = handle.read(offset - start)
        tail = handle.read(max(512 * (after + 1), 16 << 10) + SEGMENT_CAP)
    head_lines = head.split(b"\n")
    if start > 0:
        head_lines = head_lines[1:]  # a partial first line
    prefix = head_lines[-1] if head_lines else b""
    head_lines = head_lines[:-1]
    tail_lines = (prefix + tail).split(b"\n")
    if len(tail_lines) > after + 1 and not tail.endswith(b"\n"):
        pass
    own = tail_lines[0]
    rest = tail_lines[1:after + 1]
    before_lines = [_display(x) for x in head_lines[-before:]] if before else []
    cur = own[len(prefix):] if len(prefix) <= len(own) else own
    own_text = _display(prefix + cur, focus=len(prefix))
    lines = before_lines + [own_text] + [_display(x) for x in rest if x or True][:after]
    return lines, len(before_lines)


def _display(raw: bytes, focus: int | None = None) -> str:
    """A physical line as a person reads it: the last \r segment of a progress bar, or the
    segment at `focus` (the match); ANSI colours removed; at most 400 characters."""
    raw = raw.rstrip(b"\r")
    if b"\r" in raw:
        if focus is not None:
            start = raw.rfind(b"\r", 0, focus) + 1
            end = raw.find(b"\r", focus)
            raw = raw[start:end if end >= 0 else len(raw)]
        else:
            raw = [s for s in raw.split(b"\r") if s.strip()][-1:][0] if raw.strip(b"\r") else b""
    text = ANSI.sub("", raw[:2048].decode("utf-8", errors="replace")).rstrip()
    text = "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in text)
    return text[:400]


# -- timestamps and job ids -------------------------------------------------------------------

ISO_TS = re.compile(r"\b(\d{4}-\d{2}-\d{2})[ T_](\d{2}:\d{2}:\d{2})(?:[.,]\d+)?")
# glog (torch's C++ and torchrun's logs, Ray's raylet): E1130 13:42:40.632553 - no year
GLOG_TS = re.compile(r"(?:^|[\[\s])[IWEF](\d{2})(\d{2}) (\d{2}:\d{2}:\d{2})\.\d+")
JOB_IDS = [
    re.compile(r"\b(raysubmit_[A-Za-z0-9]+)"),
    re.compile(r"Job '([^']+)' (?:submitted|failed|succeeded|stopped)"),
    re.compile(r"SLURM_JOB_ID\W+(\d+)"),
    re.compile(r"\*\*\* (?:JOB|STEP) (\d+)\b.* CANCELLED AT "),   # slurmstepd's
    re.compile(r"oom[-_]kill events?\S* in StepId=(\d+)"),
    re.compile(r"\brun_id\W+([\w.-]{6,})"),
    re.compile(r"wandb\.ai/\S+/runs/(\w+)"),
    re.compile(r"\b(v\d+-\d{8}-\d{6})\b"),   # ms-swift's output run dir
    # torchrun --log-dir: <log_dir>/<run_id>_<random>/attempt_N/<rank>/
    re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_\w+/attempt_\d+"),
]


def timestamp_of(text: str) -> str | None:
    m = ISO_TS.search(text)
    if m:
        return f"{m.group(1)} {m.group(2)}"
    m = GLOG_TS.search(text)
    return f"{m.group(1)}-{m.group(2)} {m.group(3)}" if m else None


def job_ids(texts: Iterable[str]) -> list[str]:
    found: list[str] = []
    for text in texts:
        for pat in JOB_IDS:
            for m in pat.finditer(text):
                if m.group(1) not in found:
                    found.append(m.group(1))
    return found[:10]


def head_tail(path: str, size: int = 256 << 10) -> list[str]:
    with open(path, "rb") as handle:
        head = handle.read(size)
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        handle.seek(max(len(head), end - size))
        tail = handle.read(size)
    return [clean(x) for x in (head + b"\n" + tail).splitlines()]


# -- judging --------------------------------------------------------------------------------

@dataclass
class Cause:
    id: str
    confidence: str
    hit: Hit
    block: Block | None
    weak: bool = False   # the matching line is also a consequence (a wrapper's summary)
    soft: bool = False   # not fatal by itself: a retry, a warning, a logged exception


# A rank's prefix (torchrun --tee's [rank1]: / [default0]:, srun --label's node0:, Ray's
# (pid=N)): the source of a line in a log several processes wrote into.
SOURCE_PREFIX = re.compile(r"^(?:\[(?:rank|default)\d+\]:|node\d+:\s?|\([\w ]*pid=\d+[^)]*\)\s?)+")
WIDEN = 8            # how much wider a window is read to find NEAR_BEFORE lines of one rank
MAX_WIDENED = 200    # wider windows read per run (a crash loop of one rank stays linear)


def _source(line: str) -> str:
    m = SOURCE_PREFIX.match(line.strip())
    return re.sub(r"\s+", "", m.group(0)) if m else ""


def _near_ok(block: Block, window: list[str]) -> bool:
    return all(any(cond.search(line) for line in window) for cond in block.near)


class _Windows:
    """The lines around a hit (its near-conditions look at them), read once per hit."""

    def __init__(self) -> None:
        self.cache: dict[tuple[int, int], list[str]] = {}
        self.at: dict[tuple[int, int], int] = {}
        self.widened = 0

    def __call__(self, scan: FileScan, hit: Hit) -> list[str]:
        key = (hit.file, hit.offset)
        if key not in self.cache:
            lines, at = read_window(scan.real, hit.offset, NEAR_BEFORE, NEAR_AFTER)
            lines = [ANSI.sub("", x) for x in lines]
            own = _source(hit.text)
            others = sum(_source(x) != own for x in lines)
            if self.widened < MAX_WIDENED and others * 2 > len(lines):
                lines, at = self._own_lines(scan, hit, own)
            self.cache[key], self.at[key] = lines, at
        return self.cache[key]

    def _own_lines(self, scan: FileScan, hit: Hit, own: str) -> tuple[list[str], int]:
        """The lines of the hit's own source (its rank prefix, or none) around it, when
        most lines nearby are other ranks' (eight ranks' tracebacks interleave line by
        line: the load_state_dict frame of an OOM is then 60 lines away, not 8)."""
        self.widened += 1
        lines, at = read_window(scan.real, hit.offset, NEAR_BEFORE * WIDEN, NEAR_AFTER * WIDEN)
        lines = [ANSI.sub("", x) for x in lines]
        before = [x for x in lines[:at] if _source(x) == own][-NEAR_BEFORE:]
        after = [x for x in lines[at + 1:] if _source(x) == own][:NEAR_AFTER]
        return before + [lines[at]] + after, len(before)

    def before(self, scan: FileScan, hit: Hit) -> list[str]:
        """The lines before the hit's own."""
        lines = self(scan, hit)
        return lines[:self.at[(hit.file, hit.offset)]]

    def after(self, scan: FileScan, hit: Hit) -> list[str]:
        """The lines after the hit's own."""
        lines = self(scan, hit)
        return lines[self.at[(hit.file, hit.offset)] + 1:]


def _count_benign(scan: FileScan, hit: Hit, window: _Windows) -> None:
    """A hit only benign blocks match: counted under the first whose near-condition holds;
    with none holding, it matches nothing."""
    near_needed = [b for b in hit.blocks if b.near]
    ok = [b for b in hit.blocks if not b.near or _near_ok(b, window(scan, hit))]
    if ok:
        scan.benign.setdefault(ok[0].id, [])
        if len(scan.benign[ok[0].id]) < MAX_BENIGN:
            scan.benign[ok[0].id].append(hit.line)
        scan.benign_count += 1
    elif near_needed:
        hit.blocks = []


def _live(block: Block, scan: FileScan, hit: Hit, markers: Marks, window: _Windows) -> bool:
    """A cause or generic block whose log markers and near-condition hold."""
    if block.role not in ("cause", "generic"):
        return False
    if block.log and not all(c.pattern in markers for c in block.log):
        return False
    if not all(c.search(scan.path.replace(os.sep, "/")) for c in block.file):
        return False
    return not block.near or _near_ok(block, window(scan, hit))


def _judge_hit(scan: FileScan, hit: Hit, markers: Marks,
               window: _Windows) -> tuple[Cause | None, bool]:
    """The cause a (not only benign) hit names, if any, and whether it is fatal."""
    consequence = "consequence" in {b.role for b in hit.blocks}
    if consequence:
        scan.consequences += 1
    soft = bool(RETRIED.search(hit.text) or (WARNING_RECORD.match(hit.text)
                                             and _went_on(window.after(scan, hit))))
    weak = consequence or soft
    live = [b for b in hit.blocks if _live(b, scan, hit, markers, window)]
    specific = [b for b in live if b.role == "cause"]
    if specific:
        top = max(b.specificity for b in specific)
        best = [b for b in specific if b.specificity == top]
        ids = sorted({b.id for b in best})
        block = best[0]
        # torchrun's own report of the death signal it got is a consequence line (a nested
        # launcher's); as a stop from outside it is the cause itself, not a summary of one.
        weak = soft if block.stop else weak
        likely = block.likely or len(ids) > 1 or weak
        return (Cause(block.id, "likely" if likely else "certain", hit, block, weak=weak,
                      soft=soft and not consequence), not soft)
    if live and not consequence and not _not_fatal(scan, hit):
        text = EXCEPTION_LINE.match(re.sub(r"^\S*\]:?\s*", "", hit.text))
        shaped = re.search(r"^\W*(?:\[[^\]]*\]\W*)*[\w.]*(?:Error|Exception)(?::\s|$)",
                           hit.text)
        if text or shaped or re.match(ARGPARSE_ERROR, hit.text):
            kind = _logged(window.before(scan, hit))
            after = window.after(scan, hit)
            logged = kind is not None and (
                _went_on(after, _source(hit.text), strict=kind == OUTERMOST)
                or (kind == OUTERMOST and not _source(hit.text)
                    and _same_program_on(window.before(scan, hit), after)))
            return Cause("unknown", "likely", hit, None, soft=logged), not logged
    # A consequence's words in a line that warns or retries (urllib3's "WARNING ...
    # Retrying (Retry(total=2, ...)) after connection broken by 'ConnectionResetError(104,
    # 'Connection reset by peer')'") are counted, and are not fatal.
    return None, consequence and not soft


def _went_on(after: list[str], source: str | None = None, strict: bool = False) -> bool:
    """The process printed on after the line: a warning or a logged exception that is the
    last thing in its log is likely why it ended (logger.warning of an OOM, then exit 1;
    logger.error, then raise). With a `source` (the line's rank prefix), only lines of
    that source count: another rank's lines are not this process going on (an unprefixed
    line's own may carry c10d's [rank0]: prefix: any line counts). `strict`: only a line
    behind the same prefix proves it, so an unprefixed line never does (lines after an
    unprefixed traceback may be any process's)."""
    if strict and not source:
        return False
    return any(x.strip() and not EXIT_NOISE.match(x.strip())
               and (not source or _source(x) == source) for x in after)


# A logging record's shape: what its format puts around the level (the stamp, digits
# made 0; the logger's name before or after the level) and its message after that. From
# the stamp on when one is in the line: a tqdm bar left on the line precedes it.
RECORD_SHAPE = re.compile(r"(?P<pre>.*?)\b(?P<level>" + LEVELS + r")\b"
                          r"(?P<post>[]:|\s-]*(?:\[?[\w.<>-]+\]?[:|\s-])?)(?P<message>.*)$")
STAMP_START = re.compile(DATE_TIME)


def _shape(line: str) -> tuple[str, str] | None:
    """(shape, message) of a logging record line, or None when it is not one."""
    text = line.strip()
    text = text[m.start():] if (m := STAMP_START.search(text)) else text
    if (m := RECORD_SHAPE.match(text)) is None:
        return None
    pre = re.sub(r"\d", "0", m.group("pre"))
    # a name before the level (HF's "%(asctime)s - %(name)s - %(levelname)s - "): the
    # word after it starts the message
    post = m.group("post") if not re.search(r"[A-Za-z]", pre) else \
        re.match(r"[]:|\s-]*", m.group("post")).group(0)  # type: ignore[union-attr]
    message = text[m.start("post") + len(post):].strip()
    return pre + "|" + post.strip(), message


def _same_program_on(before: list[str], after: list[str]) -> bool:
    """Whether the unprefixed traceback from the outermost frame under an ERROR record was
    logged by a program that then went on: a process that crashed logs no more. So when
    the ERROR record's logger (its format and name, RECORD_SHAPE) logged before it, and
    the first line after the traceback is a record of that logger too, the same program
    went on (a flat script's module-level try/logger.exception). Not when its message
    repeats one that logger wrote before: the same script started over (run twice in one
    log). Not when the logger wrote nothing before the ERROR record: another program
    with the same logger and format may print on after one that logged an error and
    crashed (tests/test_triage_robust.py TWO_PROGRAMS). Two programs whose logger and
    format are the same, the first of which logged before its error and crash, or exit
    handlers (atexit) logging through it after the crash, still read as going on."""
    heads = [i for i, x in enumerate(before) if TRACEBACK_HEAD.match(x.strip())]
    if not heads or heads[-1] == 0:
        return False
    record = _shape(before[heads[-1] - 1])
    nxt = next((x for x in after if x.strip() and not EXIT_NOISE.match(x.strip())), "")
    following = _shape(nxt)
    if record is None or following is None or following[0] != record[0]:
        return False
    earlier = [r for x in before[:heads[-1] - 1] if (r := _shape(x)) and r[0] == record[0]]
    return bool(earlier) and following[1] not in {r[1] for r in earlier}


LOGGED = "logged"         # a traceback that logging printed (under its record, or on it)
OUTERMOST = "outermost"   # ... under an ERROR record, but from the program's outermost frame


def _logged(before: list[str]) -> str | None:
    """Whether the traceback that ends at the hit (`before`: the lines above it) was
    printed under a logging record, the program logging the exception (LOGGED); OUTERMOST
    when it stands under an ERROR record but starts at the program's outermost frame, as
    sys.excepthook's report of an uncaught exception does; None when not under a record.
    A traceback behind another prefix than its record's is the interpreter's report:
    logging writes a record and its traceback in one write with one prefix, while torch's
    distributed excepthook prefixes each line of an uncaught one with "[rankN]: "."""
    heads = [i for i, x in enumerate(before)
             if TRACEBACK_HEAD.match(x.strip()) or LOGGED_HEAD.search(x)]
    if heads and LOGGED_HEAD.search(before[heads[-1]]):
        return LOGGED
    if not heads or heads[-1] == 0:
        return None
    head, above = before[heads[-1]].strip(), before[heads[-1] - 1].strip()
    if not (ERROR_RECORD.match(above) or STAMPED_ERROR.search(above)):
        return None
    if _source(head) != _source(above):
        return None
    frame = before[heads[-1] + 1] if heads[-1] + 1 < len(before) else ""
    return OUTERMOST if OUTERMOST_FRAME.match(frame.strip()) else LOGGED


def judge(scans: list[FileScan], markers: Marks,
          script: scriptkills.Script | None = None) -> tuple[list[Cause], bool]:
    """The causes, earliest real one first, and whether anything fatal was seen at all."""
    causes: list[Cause] = []
    fatal = False
    window = _Windows()
    closed = _closed_agents(scans)
    for scan in scans:
        done = _finished(scan)
        kills: Kills = {}
        named: list[scriptkills.Kill] = []
        for hit in scan.hits:
            roles = {b.role for b in hit.blocks}
            if "trace" in roles:
                _note_kill(hit, kills, named)
                if (t := XTRACE_TIMEOUT.match(hit.text)) and (bound := timeout_args(t.group(1))):
                    scan.traced_timeouts.append((hit.line, bound))
                if roles == {"trace"}:
                    continue
            if roles == {"benign"}:
                _count_benign(scan, hit, window)
                continue
            if (killed := script_killed(hit, kills, named, script)) is not None:
                scan.script_killed.append(killed)
                continue
            cause, hit_fatal = _judge_hit(scan, hit, markers, window)
            if cause is not None and cause.block is not None and cause.block.stop \
                    and _stop_pid(hit.text) in closed:
                cause = None  # a nested launcher that its outer torchrun was closing
            since, until = done.get(_node(hit.text), (0, 0))
            if since <= hit.line <= until and until:
                # torchrun restarted the workers and they then finished: recovered.
                hit_fatal = False
                if cause is not None:
                    cause.soft = True
            fatal = fatal or hit_fatal
            if cause is not None:
                causes.append(cause)
    # A fallback (the waiting ranks' collective timeout) comes after an unknown exception:
    # whatever kept the missing rank away is likelier in that exception than in the wait.
    last = [c for c in causes if c.block is not None and c.block.fallback]
    # What the program only warned about, retried or logged and went on after comes after
    # any fatal line, even an unknown exception (a KeyError that ended the run outranks
    # a hub request retried earlier).
    soft = [c for c in causes if c.soft and c not in last]
    rest = [c for c in causes if c not in last and c not in soft]
    strong = [c for c in rest if c.id != "unknown" and not c.weak]
    weak = [c for c in rest if c.id != "unknown" and c.weak]
    unknown = [c for c in rest if c.id == "unknown"]
    ordered = (_order(strong, scans) + _order(weak, scans) + _order(unknown, scans)
               + _order(soft, scans) + _order(last, scans))
    return _stop_order(ordered, scans), fatal


# What torchrun's agent prints as it stops each of its workers, the worker's pid after its
# own glog pid (torch/distributed/elastic/multiprocessing/api.py:1028 in torch 2.13).
CLOSING = re.compile(r"Sending process (\d+) closing signal SIG")
# a glog line's head: its stamp (month-day, time; no year), then the writer's pid
GLOG_HEAD = re.compile(r"[IWEF](\d{4} [\d:.]+) +(\d+) ")
# The pid of the process a stop line is about: torchrun's agent (its glog pid before
# api.py:753's "Received 15 death signal", or its SignalException, api.py:86), bash's
# report of a command a signal ended.
AGENT_STOP = re.compile(r"(?:[IWEF]\d{4} [\d:.]+ +(\d+) \S+\] Received|Process (\d+) got signal:)"
                        r" (?:Signals\.)?(SIG[A-Z0-9]+|\d+)")


# The outer torchrun's killpg reaches an inner launcher at once (the same millisecond in the
# committed nested logs): a closing line further back is an earlier run's (`torchrun a.py;
# torchrun b.py`, the first restarting its workers), not what stopped this launcher.
CLOSE_WINDOW_S = 5.0


def _glog_seconds(text: str) -> float | None:
    """A glog line's stamp (month, day, time; no year) in seconds, for differences."""
    m = GLOG_HEAD.search(text)
    if m is None:
        return None
    try:  # a leap year, so that 0229 parses
        stamp = datetime.strptime("2000" + m.group(1), "%Y%m%d %H:%M:%S.%f")
    except ValueError:
        return None
    return (stamp - datetime(2000, 1, 1)).total_seconds()


def _closed_by(senders: dict[int, float | None], pid: int, at: float | None) -> bool:
    """Whether a launcher other than `pid` closed its workers just before `at`; without
    stamps to compare, any earlier closing line counts. A stop stamped before the closing
    was not caused by it (the closing is logged before the signal is sent, api.py:1028):
    written after it, it is another log's, joined after that one."""
    return any(t is None or at is None or 0.0 <= at - t <= CLOSE_WINDOW_S
               for s, t in senders.items() if s != pid)


def _closed_agents(scans: list[FileScan]) -> set[int]:
    """The launchers whose stop was another launcher closing them (a nested torchrun): one
    whose pid a `Sending process N closing signal` names (in any file), or whose first
    stop line in a file comes right after another launcher's closing line there (the outer
    torchrun signals its worker's whole process group, os.killpg in torch 2.13's
    subprocess_handler.py:85: a bash worker's inner torchrun is not the pid it names)."""
    closed = {int(m.group(1)) for scan in scans for hit in scan.hits
              if (m := CLOSING.search(hit.text))}
    for scan in scans:
        senders: dict[int, float | None] = {}  # pid -> when it last closed its workers
        decided: set[int] = set()
        for hit in scan.hits:
            if CLOSING.search(hit.text) and (m := GLOG_HEAD.search(hit.text)):
                senders[int(m.group(2))] = _glog_seconds(hit.text)
            pid = _stop_pid(hit.text) if AGENT_STOP.search(hit.text) else None
            if pid is not None and pid not in decided:
                decided.add(pid)
                if _closed_by(senders, pid, _glog_seconds(hit.text)):
                    closed.add(pid)
            if (ended := _ended_agent(hit.text)) is not None:
                senders.pop(ended, None)
    return closed


def _ended_agent(text: str) -> int | None:
    """The launcher whose run a line ends: its SignalException, or its `failed (exitcode: N)`
    before the failure table. A launcher waits for the workers it closed to exit before
    either (torch 2.13 multiprocessing/api.py close(), then api.py:1002 or :86), so a
    nested launcher it closed printed its stop before: a stop after it is another
    launcher's (two nodes' logs joined one after the other, `cat node0.log node1.log`)."""
    if (m := re.search(r"SignalException: Process (\d+) got signal", text)) is not None:
        return int(m.group(1))
    if FAILED_ATTEMPT.search(text) and (m := GLOG_HEAD.search(text)) is not None:
        return int(m.group(2))
    return None


def _stop_pid(text: str) -> int | None:
    m = AGENT_STOP.search(text) or BASH_SIGNAL.search(text)
    return int(next(g for g in m.groups() if g)) if m else None


def _stop_order(ordered: list[Cause], scans: list[FileScan]) -> list[Cause]:
    """A stop from outside (@stop) comes first unless a fatal error comes before it: the
    fatal errors before the earliest stop, then the stops, then the rest (what the stopped
    ranks printed after it). Warnings, retries and the waiting ranks' timeouts (fallback)
    never come before a stop."""
    stops = _order([c for c in ordered if c.block is not None and c.block.stop and not c.soft],
                   scans)
    if not stops:
        return ordered
    before = [c for c in ordered if c not in stops and not c.soft
              and not (c.block is not None and c.block.fallback) and _precedes(c, stops[0])]
    return before + stops + [c for c in ordered if c not in before and c not in stops]


def _precedes(cause: Cause, stop: Cause) -> bool:
    """Whether `cause` happened before `stop`: by line in one file, by time across files;
    across files without comparable stamps, yes (the error is named, not the stop)."""
    if cause.hit.file == stop.hit.file:
        return cause.hit.line < stop.hit.line
    a, b = timestamp_of(cause.hit.text), timestamp_of(stop.hit.text)
    ta, tb = (_parse_ts(a) if a else None), (_parse_ts(b) if b else None)
    return ta <= tb if ta and tb else True


# The script's own kills seen so far in a file: pid -> (line, signal name, the xtrace line).
Kills = dict[int, tuple[int, str, str]]


def kill_args(args: str) -> tuple[str, list[int]] | None:
    """The signal (its name without SIG: "KILL") and the pids of a `kill` command line's
    arguments (bash's builtin: -s SIG, -n NUM, -SIG, -NUM; default TERM); None for
    `kill -l` and what cannot be split."""
    import signal as signals

    try:
        words = shlex.split(args)
    except ValueError:
        return None
    sig, pids, options = "TERM", [], True
    it = iter(words)
    for word in it:
        if options and word == "--":
            options = False
        elif options and word in ("-s", "-n"):
            sig = next(it, "")
        elif options and word.startswith("-") and len(word) > 1 and word[1:2] != "-":
            if word in ("-l", "-L"):
                return None
            sig = word[1:]
        else:
            options = False
            if word.isdigit():
                pids.append(int(word))
    if sig.isdigit():
        try:
            sig = signals.Signals(int(sig)).name
        except ValueError:
            return None
    return sig.upper().removeprefix("SIG"), pids


def _note_kill(hit: Hit, kills: Kills, named: list[scriptkills.Kill]) -> None:
    """A traced kill: the pids it names (`kill -9 6172`), or what it matches by name
    (`pkill -9 -f 'sleep 1'`, `killall -9 sleep`, `kill -9 %sleep`; `%1` names no command
    in a trace)."""
    m = XTRACE_KILL.match(hit.text)
    if m is None:
        return
    parsed = kill_args(m.group(2)) if m.group(1) == "kill" else None
    if parsed is not None:
        for pid in parsed[1]:
            kills[pid] = (hit.line, parsed[0], hit.text)
    try:
        words = [m.group(1), *shlex.split(m.group(2))]
    except ValueError:
        return
    found = scriptkills.parse_kill(words, lambda _: None)
    if found is not None:
        named.append(scriptkills.Kill(hit.line, found[0], hit.text, found[1]))


def script_killed(hit: Hit, kills: Kills, named: list[scriptkills.Kill] | None = None,
                  script: scriptkills.Script | None = None) -> dict[str, Any] | None:
    """bash's report of a job a signal ended ("run.sh: line 6:  6172 Killed  sleep 100")
    when the script's xtrace showed its own `kill` sending that signal to that pid before
    it: a background helper the script stopped (`helper & HPID=$!; ...; kill -9 $HPID`),
    not a failure. Non-interactive bash prints the same line for a foreground command a
    signal ended and for a background job (bash 5.2 jobs.c:4310 notify_of_job_status, one
    branch for both; its line number is where bash was when it noticed), so without that
    xtrace the two cannot be told apart."""
    m = BASH_SIGNAL.search(hit.text)
    if m is None:
        return None
    pid = int(m.group(1))
    name, _ = BASH_SIGNALS[m.group(2)]
    command = m.group(3).strip()
    found = {"line": hit.line, "pid": pid, "signal": name, "command": command}
    sent = kills.get(pid)
    if sent is not None and sent[1] == name.removeprefix("SIG"):
        return {**found, "kill": {"line": sent[0], "match": _display(sent[2].encode()),
                                  "from": "trace"}}
    by_name = next((k for k in named or [] if k.signal == name.removeprefix("SIG")
                    and k.targets(command)), None)
    if by_name is not None:
        return {**found, "kill": {"line": by_name.line, "match": _display(by_name.text.encode()),
                                  "from": "trace"}}
    at = re.match(BASH_AT, hit.text)
    if script is None or at is None or not _same_script(at.group("file"), script.path):
        return None
    in_script = script.matches(command, name.removeprefix("SIG"), int(at.group("line")))
    if in_script is None:
        return None
    return {**found, "kill": {"file": script.path, "line": in_script.line,
                              "match": _display(in_script.text.encode()), "from": "script"}}


def _same_script(reported: str, given: str) -> bool:
    """Whether bash's report names the script given (as run: `bash run.sh`, `./run.sh`,
    its full path; Slurm's copy of a batch script, slurm_script, is the script given)."""
    name = os.path.basename(reported)
    return name == os.path.basename(given) or name == "slurm_script"


def _node(line: str) -> str:
    """The node part of a line's source prefix (srun --label's, not the rank's)."""
    return re.sub(r"\[(?:rank|default)\d+\]:|\([^)]*\)", "", _source(line))


# torchrun's default log level (WARNING) says nothing of a restart nor of a success (the
# agent's "will restart worker group" and "successfully finished" are logger.info,
# torch/distributed/elastic/agent/server/api.py:942 and :932 in torch 2.13). What it does
# print for every failed attempt is multiprocessing/api.py:1002's "failed (exitcode: N)
# local_rank: R (pid: W)" (after :1028's "Sending process N closing signal" to the other
# workers); when no attempt is left, launcher/api.py:383 raises ChildFailedError and its
# failure table follows at once.
FAILED_ATTEMPT = re.compile(r"failed \(exitcode: -?\d+\) local_rank")
FINAL_FAILURE = re.compile(r"ChildFailedError|Root Cause \(first observed failure\)")


def _finished(scan: FileScan) -> dict[str, tuple[int, int]]:
    """Per node label of the file (a merged log's node 0 finishing says nothing of node
    1), the lines (first, last) that torchrun's restart of the workers recovered from. With
    LOGLEVEL=INFO: its last restart that a line saying they finished follows. At the
    default level: a failed attempt (FAILED_ATTEMPT) that the log goes on after with no
    final failure (its ChildFailedError table) nor a stop of that launcher ("Received N
    death signal") behind it: torchrun restarted the workers and nothing of theirs failed
    after (a log cut during the new attempt reads so too). Not a success alone, and not
    across a final failure: `torchrun train.py; torchrun eval.py` in one log, the first
    failed, the second restarted and finished: the first stays fatal."""
    restarted: dict[str, int] = {}
    done: dict[str, tuple[int, int]] = {}
    start: dict[str, int] = {}     # the line after the node's last final failure
    pending: dict[str, tuple[int, int]] = {}   # its failed attempt (line, offset), not
    # (yet) followed by a final failure
    for hit in scan.hits:
        ids = {b.id for b in hit.blocks}
        node = _node(hit.text)
        if FINAL_FAILURE.search(hit.text) or AGENT_STOP.search(hit.text):
            start[node] = hit.line + 1
            pending.pop(node, None)
            restarted.pop(node, None)
        elif FAILED_ATTEMPT.search(hit.text):
            pending[node] = (hit.line, hit.offset)
        elif RESTARTED in ids:
            restarted[node] = hit.line
        elif SUCCEEDED in ids and node in restarted:
            done[node] = (start.get(node, 0), restarted[node])
    for node, (line, offset) in pending.items():
        if done.get(node, (0, 0))[1] < line and _goes_on(scan, offset):
            done[node] = (start.get(node, 0), line)
    return done


def _recovered(scans: list[FileScan]) -> list[dict[str, Any]]:
    """Where torchrun restarted its workers and recovered (_finished): the restart line
    (LOGLEVEL=INFO) or the failed attempt it restarted from, per file and node."""
    out = []
    for scan in scans:
        for _, last in _finished(scan).values():
            hit = next((h for h in scan.hits if h.line == last), None)
            out.append({"file": scan.path, "line": last,
                        "match": _display(hit.text.encode()) if hit else ""})
    return out


def _goes_on(scan: FileScan, offset: int) -> bool:
    """Whether the log goes on after the failed attempt at `offset` with something other
    than the launcher's own traceback (a final failure cut before its table)."""
    lines, at = read_window(scan.real, offset, 0, 3)
    after = [x.strip() for x in lines[at + 1:] if x.strip()]
    return bool(after) and not TRACEBACK_HEAD.match(after[0])


def _not_fatal(scan: FileScan, hit: Hit) -> bool:
    """The traceback ending here was printed for an exception the process survived."""
    lines, at = read_window(scan.real, hit.offset, 12, 0)
    return any(NOT_FATAL_TRACEBACK.search(x) for x in lines[:at])


def _order(causes: list[Cause], scans: list[FileScan]) -> list[Cause]:
    """Earliest first: by timestamp across files when every cause has one, else by line
    within a file and by the order of the files."""
    stamps: dict[int, datetime | None] = {}
    for i, cause in enumerate(causes):
        ts = timestamp_of(cause.hit.text)
        stamps[i] = _parse_ts(ts) if ts else None
    use_time = len({c.hit.file for c in causes}) > 1 and all(stamps.values())
    order = sorted(range(len(causes)), key=lambda i: (
        (stamps[i], causes[i].hit.file, causes[i].hit.line) if use_time
        else (causes[i].hit.file, causes[i].hit.line)))
    if not use_time and len({c.hit.file for c in causes}) > 1:
        # Files without comparable times: a file with a certain cause before one with only
        # likely ones (node 0's store port taken, in a log without stamps, and node 1's
        # client timing out connecting to it: the timeout is at node 1's first line, the
        # bind failure at node 0's last, and node 1 was named), then the file whose first
        # cause comes first in its own log (fewest lines in), then file order; within a
        # file, line order.
        firsts: dict[int, int] = {}
        certain: set[int] = set()
        for c in causes:
            firsts.setdefault(c.hit.file, c.hit.line)
            if c.confidence == "certain":
                certain.add(c.hit.file)
        order = sorted(range(len(causes)), key=lambda i: (
            causes[i].hit.file not in certain,
            firsts[causes[i].hit.file] / max(1, scans[causes[i].hit.file].lines),
            causes[i].hit.file, causes[i].hit.line))
    return [causes[i] for i in order]


def _parse_ts(ts: str) -> datetime | None:
    try:
        return datetime.strptime(ts, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


# -- the fix, the runbook, the check --------------------------------------------------------

def fix_of(rid: str) -> str | None:
    try:
        text = runbooks.path_for(rid).read_text(encoding="utf-8")
    except OSError:
        return None
    section = re.search(r"^## Fix\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not section:
        return None
    code = re.search(r"^```(?:bash|sh)\s*\n(.*?)^```", section.group(1), re.M | re.S)
    return code.group(1).rstrip("\n") if code else None


# bash's own report of a script it cannot parse names the file (as it was given to bash,
# relative to where the job ran) and the line: "run.sh: line 7: syntax error near
# unexpected token `newline'" (bash 5.2 error.c parser_error: "%s: line %d: "). `bash -c`'s
# "bash: -c: line 1:" names no file.
BASH_AT = SOURCE + r"(?P<file>[^:\s][^:]*?): line (?P<line>\d+): "
BASH_PARSE_ERROR = re.compile(BASH_AT + r"(?:syntax error|unexpected EOF)")
# The runbook's example file and line in its launch-syntax fix block.
EXAMPLE_SCRIPT, EXAMPLE_LINE = re.compile(r"(?<![\w./-])run\.sh(?![\w.-])"), re.compile(r"'7p'")


def log_fix(rid: str, text: str, fix: str | None) -> tuple[str | None, bool]:
    """The runbook's fix with the log's own values where the log names them (launch-syntax:
    the file and line of bash's parse error, shell-quoted), and whether it was adapted."""
    if fix is not None and rid == "job-stopped" and (bound := timeout_report(text)):
        # the stop was the script's own timeout(1): only the runbook's timeout line
        fix = "\n".join(x for x in fix.splitlines() if "timeout(1)" in x) or None
        m = re.match(BASH_AT, text) if fix and bound.get("script") else None
    else:
        m = BASH_PARSE_ERROR.match(text) if rid == "launch-syntax" and fix else None
    if fix is None or m is None or not EXAMPLE_SCRIPT.search(fix):
        return fix, False
    script = shlex.quote(m.group("file"))
    adapted = EXAMPLE_SCRIPT.sub(lambda _: script, fix)
    return EXAMPLE_LINE.sub(f"'{int(m.group('line'))}p'", adapted), True


def _own_script(command: str, text: str, adapted: bool) -> str:
    """The check's command with the script bash named in place of its placeholder."""
    m = BASH_PARSE_ERROR.match(text) if adapted else None
    return command.replace("YOUR_LAUNCH_SCRIPT.sh", shlex.quote(m.group("file"))) if m else command


def check_command(check: str) -> str:
    """The command that runs `check` now. The launch checks (preflight/checks/test_launch.py)
    skip without the script to read, so their command names it. The cross-node checks are
    no node's pytest check: `preflight merge` judges the nodes' reports (cluster/merge.py
    cross_checks), `preflight cluster --ray` also opens the connections (checks.reach)."""
    checks = Path(__file__).parent / "checks"
    node_ids: set[str] = set()
    launch_ids: set[str] = set()
    for path in sorted(checks.glob("test_*.py")):
        try:
            ids = set(re.findall(r"pitfall\(\"([\w-]+)\"\)", path.read_text(encoding="utf-8")))
        except OSError:
            continue
        node_ids |= ids
        if path.name == "test_launch.py":
            launch_ids = ids
    if check in launch_ids:
        return f"preflight --check {check} --launch-script YOUR_LAUNCH_SCRIPT.sh"
    if check not in node_ids:
        try:
            from preflight.cluster import collective
            from preflight.cluster.checks import reach
            from preflight.cluster.merge import cross_checks
        except ImportError:  # pragma: no cover
            return f"preflight --check {check}"
        if check == collective.CHECK:
            return "preflight cluster --ray --workloads"
        if check == reach({}, {}).check:
            return "preflight cluster --ray"
        if check in {f.check for f in cross_checks([])}:
            return "preflight merge reports/"
    return f"preflight --check {check}"


# -- inputs ---------------------------------------------------------------------------------

def collect(paths: list[str], spool_dir: str) -> list[tuple[str, str]]:
    """(shown name, real path) of every log to read; stdin is spooled to a temp file."""
    if not paths:
        raise TriageInputError("triage: give a log file, a directory of logs, or - for stdin")
    found: list[tuple[str, str]] = []
    for arg in paths:
        if arg == "-":
            found.append(("<stdin>", _spool_stdin(spool_dir)))
            continue
        try:
            mode = os.stat(arg).st_mode
        except OSError as exc:
            raise TriageInputError(f"{arg}: {exc.strerror or exc}") from None
        if stat.S_ISREG(mode):
            _readable(arg)
            found.append((_shown(arg), arg))
        elif stat.S_ISDIR(mode):
            for full in _dir_files(arg):
                try:
                    _readable(full)
                except TriageInputError:
                    continue  # one unreadable file in a log dir does not hide the others
                found.append((_shown(full), full))
        else:
            raise TriageInputError(f"{arg}: not a regular file or a directory")
    return [(shown, _plain(shown, real, spool_dir, i)) for i, (shown, real) in enumerate(found)]


# Compressed logs (a job's log gzipped by logrotate or by hand before it was copied off the
# node) are read through their decompressor; by magic bytes, not by name. Each format's
# magic: RFC 1952 2.3.1 (gzip), the xz stream header magic, and for bzip2 all that its
# decoder checks before the first block's data (bzip2 1.0.8 decompress.c BZ2_decompress:
# "BZh", a block size '1'..'9', then a block header 0x314159265359 or, for an empty
# stream, the end-of-stream 0x177245385090): "BZh" alone starts plain text too (a log's
# first line "BZh9 ..." was bad input, "cannot decompress").
COMPRESSED: list[tuple[re.Pattern[bytes], Any]] = [
    (re.compile(rb"\x1f\x8b"), gzip.open),
    (re.compile(rb"BZh[1-9](?:\x31\x41\x59\x26\x53\x59|\x17\x72\x45\x38\x50\x90)"), bz2.open),
    (re.compile(rb"\xfd7zXZ\x00"), lzma.open)]
CATS = {gzip.open: "zcat", bz2.open: "bzcat", lzma.open: "xzcat"}
# A spooled log stops short of leaving less than this free where it is spooled ($TMPDIR):
# a log directory's 20 GB .gz (or thirty rotated logs: all are spooled before the scan)
# filled the node's /tmp under its jobs, and a write that then failed (ENOSPC) kept the
# text so far as if it were the whole log.
KEEP_FREE = 1 << 30
ROOM_EVERY = 16 << 20   # bytes spooled between two looks at the free space


def _plain(shown: str, real: str, spool_dir: str, index: int) -> str:
    """`real` itself, or for a compressed file its text spooled (streamed, bounded memory)
    to a file of the spool dir: the scan and the context reads seek in it. A stream cut
    short (a copy of a log still being written) keeps what it held; one that yields
    nothing is bad input."""
    with open(real, "rb") as handle:
        magic = handle.read(10)
    opener = next((op for head, op in COMPRESSED if head.match(magic)), None)
    if opener is None:
        return real
    spooled = os.path.join(spool_dir, f"{index}.log")
    size = look = 0
    try:
        with opener(real, "rb") as src, open(spooled, "wb") as out:
            while chunk := src.read1(1 << 16):  # read1: a cut stream keeps its text
                if size >= look:
                    look += ROOM_EVERY
                    _spool_write(out, b"", shown, spool_dir, CATS[opener])
                _spool_write(out, chunk, shown, spool_dir, CATS[opener])
                size += len(chunk)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        if size == 0:
            raise TriageInputError(f"{shown}: cannot decompress: {exc}") from None
    return spooled


def _spool_write(out: Any, chunk: bytes, shown: str, spool_dir: str, cat: str) -> None:
    """Write to the spool (an empty chunk: look at its free space first), or
    TriageInputError when it has no room: not an OSError, which for the decompressor means
    a cut stream whose text so far is kept; a spool that is full holds less than the log."""
    try:
        if not chunk:
            st = os.statvfs(spool_dir)
            if st.f_bavail * st.f_frsize >= KEEP_FREE:
                return
            why = f"under {KEEP_FREE >> 20} MiB free there"
        else:
            out.write(chunk)
            return
    except OSError as exc:
        why = exc.strerror or str(exc)
    where = os.path.dirname(spool_dir)
    if not cat:  # stdin: nothing to decompress, only no room to hold it
        raise TriageInputError(
            f"{shown}: no room to hold it in {where} ({why}); write the log where there is "
            "and give its path: preflight triage DIR_WITH_ROOM/log") from None
    raise TriageInputError(
        f"{shown}: no room for its decompressed text in {where} ({why}); "
        f"decompress it where there is: {cat} {shlex.quote(shown)} > DIR_WITH_ROOM/log && "
        "preflight triage DIR_WITH_ROOM/log") from None


def _spool_stdin(spool_dir: str) -> str:
    """stdin into the spool, under the same bound as a decompressed log (a full $TMPDIR
    was a traceback)."""
    spooled = os.path.join(spool_dir, "stdin.log")
    with open(spooled, "wb") as out:
        while chunk := sys.stdin.buffer.read(1 << 20):
            _spool_write(out, b"", "<stdin>", spool_dir, "")
            _spool_write(out, chunk, "<stdin>", spool_dir, "")
    return spooled


def _dir_files(arg: str) -> list[str]:
    """The regular files under a directory, in a stable order (at most MAX_FILES)."""
    files = []
    for root, dirs, names in os.walk(arg, onerror=None):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(root, name)
            try:
                if stat.S_ISREG(os.lstat(full).st_mode):
                    files.append(full)
            except OSError:
                continue
        if len(files) > MAX_FILES:
            raise TriageInputError(f"{arg}: more than {MAX_FILES} files")
    if not files:
        raise TriageInputError(f"{arg}: no regular files in this directory")
    return files


def _shown(path: str) -> str:
    """A path as printable text (file names need not be UTF-8)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _readable(path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise TriageInputError(f"{path}: {exc.strerror or exc}") from None


# -- the whole run --------------------------------------------------------------------------

def triage(paths: list[str], context: int = 8, blocks: list[Block] | None = None,
           script: str | None = None) -> dict[str, Any]:
    """The triage result as the `--json` object (unscrubbed; `main` scrubs it). `script`:
    the launch script the logs' bash ran (its kill lines tell its own helpers' ends)."""
    kills = read_launch_script(script) if script is not None else None
    with tempfile.TemporaryDirectory(prefix="preflight-triage-") as spool:
        inputs = collect(paths, spool)
        scanner = Scanner((blocks if blocks is not None else runbook_blocks()) + builtin_blocks())
        markers: Marks = {}
        scans = [scan_file(scanner, i, shown, real, markers)
                 for i, (shown, real) in enumerate(inputs)]
        causes, fatal = judge(scans, markers, kills)
        out_causes: list[dict[str, Any]] = []
        waits: list[dict[str, Any]] = []   # the fallback causes: ranks that waited
        seen: set[tuple[str, int, int]] = set()
        agents: set[tuple[int, int]] = set()   # (file, pid) of the stops listed
        for cause in causes:
            key = (cause.id, cause.hit.file, cause.hit.line)
            if key in seen or _same_stop(cause, agents):
                continue
            seen.add(key)
            out_causes.append(_cause_json(cause, scans, context, markers, full=not out_causes))
            if cause.block is not None and cause.block.fallback:
                waits.append(out_causes[-1])
            if len(out_causes) >= 10:
                break
        benign = [{"id": bid, "line": line, "file": scan.path}
                  for scan in scans for bid, lines in scan.benign.items() for line in lines]
        texts: list[str] = [scan.path for scan in scans]
        for scan in scans:
            texts += head_tail(scan.real)
        if out_causes:
            texts += out_causes[0]["context"]
        result: dict[str, Any] = {
            "schema": SCHEMA,
            "fatal": fatal,
            "causes": out_causes,
            "benign": benign,
            "files": [{"file": s.path, "lines": s.lines, "consequences": s.consequences,
                       "benign": s.benign_count} for s in scans],
            "job_ids": job_ids(texts),
        }
        stopped = [{"file": scan.path, **k, "kill": {"file": scan.path, **k["kill"]}}
                   for scan in scans for k in scan.script_killed]
        if script is not None:
            result["launch_script"] = script
        if stopped:
            result["killed_by_script"] = stopped
        recovered = _recovered(scans)
        if recovered:
            result["recovered"] = recovered
        first, last = _first_last_ts(scans)
        result["first_timestamp"], result["last_timestamp"] = first, last
        only_waits = len(waits) == len(out_causes)
        if fatal and only_waits and (death := died_by_signal(scans)) is not None:
            # A peer killed by a signal (the OOM killer's SIGKILL) printed nothing; the
            # others' failed collective is its consequence: the death is the root cause.
            death["consequences"] = [{k: c[k] for k in ("id", "file", "line", "match")}
                                     for c in waits]
            result["causes"] = []
            result["died_by_signal"] = death
        if waits and only_waits:
            result["collective"] = collective_summary(
                scans, [c for c in causes if c.block is not None and c.block.fallback])
        if out_causes and causes[0].block is not None and causes[0].block.stop:
            result["stopped"] = stopped_summary(
                scans, [c for c in causes if c.block is not None and c.block.stop], texts,
                died_by_signal(scans))
        if fatal and not result["causes"] and "died_by_signal" not in result:
            # Only the launcher's lines: under --log-dir --redirects the ranks' output is in
            # their own files; torchrun's start-up block (LOGLEVEL=INFO) names the folder
            # (torch/distributed/launcher/api.py:254 in 2.13, "log_dir : DIR").
            found = {m.group(1) for x in texts if (m := LOG_DIR.search(x))} - {"None"}
            given = {os.path.normpath(p) for p in paths}
            result["log_dirs"] = sorted(d for d in found if os.path.normpath(d) not in given)
        if not fatal and out_causes:
            # Nothing ended the run: what matched was a warning, a retry or an exception
            # the program logged and went on after. Named apart, never as a root cause.
            result["not_fatal"] = [{k: c[k] for k in ("id", "file", "line", "match")}
                                   for c in out_causes]
            result["causes"] = []
            result.pop("collective", None)
        return result


def _same_stop(cause: Cause, agents: set[tuple[int, int]]) -> bool:
    """Whether `cause` is a stop line of a launcher whose stop is already listed: torchrun's
    agent prints "Received 15 death signal" and, after its workers are closed, the
    SignalException of the same signal (api.py:753 and :86), one stop."""
    if cause.block is None or not cause.block.stop:
        return False
    pid = _stop_pid(cause.hit.text)
    if pid is None:
        return False
    if (cause.hit.file, pid) in agents:
        return True
    agents.add((cause.hit.file, pid))
    return False


def read_launch_script(path: str) -> scriptkills.Script:
    """The launch script's kills (--launch-script), read as the launch checks read it."""
    from preflight.launch.shell.model import ScriptFileError
    from preflight.launch.shell.source import read_script

    try:
        text, _ = read_script(path)
    except ScriptFileError as exc:
        raise TriageInputError(str(exc)) from None
    return scriptkills.read(path, text)


LOG_DIR = re.compile(r"launcher/api\.py:\d+\]\s+log_dir\s+:\s+(\S+)\s*$")

SIGNAL_NOTES = {
    "SIGKILL": "nothing in the process can print why: most often the kernel's OOM killer "
               "(dmesg -T | grep -iE 'killed process|out of memory'), else a kill -9 or a "
               "scheduler's memory limit",
    "SIGSEGV": "a crash in native code (a CUDA/NCCL/extension library): its core or "
               "faulthandler output, if any",
    "SIGABRT": "an abort in native code (a failed C++ check, std::terminate): the lines "
               "just before it in that rank's log",
    "SIGBUS": "often a full /dev/shm (see host-limits)",
}


# A non-interactive bash reports a command a signal ended (bash jobs.c,
# notify_of_job_status: _("%s: line %d: ") then pretty_print_job's pid and strsignal text):
# "train.sh: line 2:   457 Killed                  python train.py". SIGTERM and SIGPIPE are
# not reported (DONT_REPORT_SIGTERM, DONT_REPORT_SIGPIPE in bash's config-top.h).
BASH_SIGNAL = re.compile(r"line \d+: +(\d+) (Killed|Segmentation fault|Bus error|Aborted|Hangup)"
                         r"(?: \(core dumped\))? +(\S.*)$")
BASH_SIGNALS = {"Killed": ("SIGKILL", 9), "Segmentation fault": ("SIGSEGV", 11),
                "Bus error": ("SIGBUS", 7), "Aborted": ("SIGABRT", 6), "Hangup": ("SIGHUP", 1)}


# coreutils timeout(1) (9.1 src/timeout.c): `timeout [OPTION] DURATION COMMAND [ARG]...`,
# short options "+k:s:v" and --signal, --kill-after, --foreground, --preserve-status,
# --verbose (getopt_long: a long option may be abbreviated). At the bound it sends its
# signal (default TERM) to the command and, unless --foreground, to its own process group
# (cleanup(): send_sig (0, sig)): with KILL, or the KILL of --kill-after, timeout ends itself
# too, and bash reports timeout Killed ("run.sh: line 2: 24991 Killed  timeout -s KILL 1
# sleep 10", real bash 5.2 and coreutils 9.1). With TERM it exits 124 and prints nothing;
# --verbose prints "timeout: sending signal TERM to command 'sleep'" (in a UTF-8 locale
# with curly quotes) first.
TIMEOUT_LONG = ("signal", "kill-after", "foreground", "preserve-status", "verbose")
TIMEOUT_VERBOSE = re.compile(r"(?:^|: )timeout: sending signal ([A-Z0-9]+) to command (.+)$")


def timeout_args(command: str) -> dict[str, Any] | None:
    """timeout(1)'s bound in a command line: {"duration", "signal" (SIGTERM by default),
    "kill_after", "foreground", "command"}; None when it is not a timeout command."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or os.path.basename(words[0]) != "timeout":
        return None
    opts: dict[str, Any] = {"signal": "TERM", "kill_after": None, "foreground": False}
    rest, i = words[1:], 0
    while i < len(rest) and rest[i].startswith("-") and len(rest[i]) > 1:
        word, i = rest[i], i + 1
        if word == "--":
            break
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            full = next((o for o in TIMEOUT_LONG if o.startswith(name)), "")
            if full in ("signal", "kill-after") and not eq:
                value, i = (rest[i] if i < len(rest) else ""), i + 1
            opts[full.replace("-", "_")] = value if full in ("signal", "kill-after") else True
            continue
        for j, ch in enumerate(word[1:], 1):
            if ch in "sk":
                value = word[j + 1:]
                if not value:
                    value, i = (rest[i] if i < len(rest) else ""), i + 1
                opts["signal" if ch == "s" else "kill_after"] = value
                break
    if i >= len(rest):
        return None
    sig = str(opts["signal"]).upper().removeprefix("SIG")
    return {"duration": rest[i], "signal": _signal_name(sig) if sig.isdigit() else "SIG" + sig,
            "kill_after": opts["kill_after"], "foreground": bool(opts["foreground"]),
            "command": " ".join(rest[i + 1:])}


def timeout_report(text: str) -> dict[str, Any] | None:
    """What a stop line says of timeout(1) ending the run at its bound: bash's report of a
    timeout command Killed whose options send KILL (its own process group with it), with
    the script and line bash names; or timeout's --verbose line."""
    if (m := BASH_SIGNAL.search(text)) is not None and m.group(2) == "Killed":
        bound = timeout_args(m.group(3).strip())
        if bound is None or bound["foreground"] or not (
                bound["signal"] == "SIGKILL" or bound["kill_after"] is not None):
            return None
        at = re.match(BASH_AT, text)
        return {**bound, "pid": int(m.group(1)), "report": m.group(3).strip(),
                "script": at.group("file") if at else None,
                "line": int(at.group("line")) if at else None, "from": "report"}
    if (v := TIMEOUT_VERBOSE.search(text)) is not None:
        return {"duration": None, "signal": _signal_name(v.group(1)) if v.group(1).isdigit()
                else "SIG" + v.group(1), "kill_after": None, "foreground": None,
                "command": v.group(2).strip("'\u2018\u2019\"`"), "pid": None, "report": None,
                "script": None, "line": None, "from": "verbose"}
    return None


def died_by_signal(scans: list[FileScan]) -> dict[str, Any] | None:
    """The rank torchrun's failure table names as its Root Cause when that rank died by a
    signal (exitcode -N; exceptions.root_cause reads the table); else a command bash
    reports killed by one (rank null, its pid and command line)."""
    for scan in scans:
        for hit in scan.hits:
            if ROOT_CAUSE not in hit.text:
                continue
            lines, at = read_window(scan.real, hit.offset, 0, 12)
            found = root_cause(lines[at:])
            if found is not None and found["exitcode"] < 0:
                code = found["exitcode"]
                name = found["signal"] or f"signal {-code}"
                return {"file": scan.path, "line": hit.line, "rank": str(found["rank"]),
                        "exitcode": code, "signal": name, "note": SIGNAL_NOTES.get(name, "")}
    for scan in scans:
        stopped = {k["line"] for k in scan.script_killed}
        for hit in scan.hits:
            if hit.line not in stopped and (m := BASH_SIGNAL.search(hit.text)):
                name, number = BASH_SIGNALS[m.group(2)]
                return {"file": scan.path, "line": hit.line, "rank": None, "exitcode": -number,
                        "signal": name, "note": SIGNAL_NOTES.get(name, ""),
                        "pid": int(m.group(1)), "command": m.group(3).strip()}
    return None


# What the waiting ranks' lines say about a collective that timed out. gloo (captured from
# torch 2.13's own output, tests/logs/produce_collective.py): "[rank0]: RuntimeError:
# [.../gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 3000ms for recv operation
# to complete", "... pair.cc:553] Connection closed by peer [127.0.0.1]:58779", and under
# TORCH_DISTRIBUTED_DEBUG=DETAIL "[Rank 0]: Ranks 1 failed to pass monitoredBarrier in 3000
# ms". NCCL (string literals of torch 2.13.0's libtorch_cuda.so, not a captured log):
# "Watchdog caught collective operation timeout: " WorkNCCL(SeqNum=, OpType=, NumelIn=,
# NumelOut=, Timeout(ms)=) " ran for " N " milliseconds before timing out."
WAIT_RANK = re.compile(r"^\[rank(\d+)\]|\[Rank (\d+)\]")
MISSING = re.compile(r"Ranks? ([\d, ]+) failed to pass monitoredBarrier")
WAIT_OP = re.compile(r"for (\w+) operation to complete|OpType=(\w+)")
WAIT_MS = re.compile(r"Timed out waiting (\d+)ms|monitoredBarrier in (\d+) ms|Timeout\(ms\)=(\d+)")
PEER = re.compile(r"by peer \[([^\]]+)\]:(\d+)")


def collective_summary(scans: list[FileScan], waits: list[Cause]) -> dict[str, Any]:
    """The ranks whose collective failed, the ranks named as missing, the op, the timeout
    and the peers that closed the connection, as far as the waiting ranks' lines say."""
    ranks: list[str] = []
    missing: list[str] = []
    ops: list[str] = []
    timeouts: list[int] = []
    peers: list[str] = []
    lines: list[dict[str, Any]] = []

    def add(seq: list[Any], value: Any) -> None:
        if value not in seq:
            seq.append(value)

    for cause in waits:
        text = cause.hit.text
        if m := WAIT_RANK.search(text):
            add(ranks, m.group(1) or m.group(2))
        if m := MISSING.search(text):
            for rank in re.findall(r"\d+", m.group(1)):
                add(missing, rank)
        if m := WAIT_OP.search(text):
            add(ops, m.group(1) or m.group(2))
        if m := WAIT_MS.search(text):
            add(timeouts, int(next(g for g in m.groups() if g)))
        if m := PEER.search(text):
            add(peers, f"{m.group(1)}:{m.group(2)}")
        if len(lines) < 10:
            lines.append({"file": scans[cause.hit.file].path, "line": cause.hit.line})
    return {"ranks": sorted(ranks, key=int), "missing": sorted(missing, key=int), "ops": ops,
            "timeout_ms": timeouts, "peers": peers, "lines": lines}


def render_collective(summary: dict[str, Any]) -> str:
    """One line: who waited, for what, how long, who did not come."""
    parts = []
    who = ", ".join(summary["ranks"]) or "?"
    wait = f"rank(s) {who} failed in the collective"
    detail = []
    if summary["ops"]:
        detail.append("op " + ", ".join(summary["ops"]))
    if summary["timeout_ms"]:
        detail.append("timeout " + ", ".join(f"{t} ms" for t in summary["timeout_ms"]))
    parts.append(wait + (f" ({'; '.join(detail)})" if detail else ""))
    if summary["missing"]:
        parts.append(f"rank(s) {', '.join(summary['missing'])} did not reach it")
    elif summary["peers"]:
        parts.append(f"the peer at {', '.join(summary['peers'])} closed the connection "
                     "(it exited or crashed: read that rank's log)")
    else:
        parts.append("the log does not name the rank that did not arrive "
                     "(TORCH_DISTRIBUTED_DEBUG=DETAIL makes gloo name it)")
    return "; ".join(parts)


# What the stop lines say (runbook job-stopped): Slurm's slurmstepd cancelling a job or step
# (src/slurmd/slurmstepd/req.c:1122-1150 at SchedMD/slurm 284c3b95; 22.05's plain
# "CANCELLED AT" for scancel, req.c:749 there), its cgroup OOM count
# (src/plugins/task/cgroup/task_cgroup_memory.c:291; "oom-kill event(s)" before 23.02),
# bash's bare "Terminated" for a foreground command (bash 5.2 jobs.c:4313).
SLURM_CANCEL = re.compile(r"\*\*\* (JOB|STEP) ([\w.+]+) (?:ON (\S+) )?CANCELLED AT (\S+)"
                          r"(?: DUE (?:TO|to) ([A-Z][A-Za-z ]*?[A-Za-z])(?:,[^*]*)?)? \*\*\*")
SLURM_OOM = re.compile(r"Detected (\d+) oom[-_]kill event(?:s|\(s\))? in (?:StepId=)?([\w.+]+?)\.?"
                       r"(?:\s|$)")
BARE_TERMINATED = re.compile(r"^(?:\[\w+\d+\]:)?Terminated$")
SLURM_REASONS = {"TIME LIMIT": "time_limit", "PREEMPTION": "preemption",
                 "NODE FAILURE": "node_failure", "JOB REQUEUE": "requeue"}
STOP_WHY = {
    "timeout": "the run's own time bound: the launch wraps the command in timeout(1), which "
               "stops it when the duration passes (exit status 124 after its TERM, 137 after "
               "KILL); not a crash, and not the scheduler",
    "time_limit": "Slurm ended the job at its time limit (--time): it ran longer than it was "
                  "given",
    "preemption": "Slurm preempted the job: a job of a higher priority (partition tier, QOS) "
                  "needed its nodes",
    "node_failure": "Slurm ended the job because one of its nodes failed (slurmctld's log "
                    "says which)",
    "requeue": "Slurm requeued the job (scontrol requeue, or preemption with requeue)",
    "cancelled": "Slurm cancelled the job: scancel by you or an administrator (sacct's State "
                 "says CANCELLED by UID)",
    "oom_kill": "the job used more host memory than its cgroup allows (Slurm's --mem): the "
                "kernel's OOM killer killed a process of it by SIGKILL, which prints nothing",
}
SIGNAL_SENDERS = {
    "SIGTERM": "SIGTERM is sent by a scheduler (time limit, preemption, scancel), by "
               "Kubernetes evicting or deleting the pod, by a node shutting down, by "
               "timeout(1) around the launcher, or by someone's kill; these logs do not say "
               "which",
    "SIGINT": "SIGINT is Ctrl-C in the terminal that ran the launcher (or kill -INT)",
    "SIGHUP": "SIGHUP is sent when the terminal or ssh session the launcher ran in closes "
              "(launch it under sbatch, tmux or nohup), or by kill -HUP",
    "SIGQUIT": "SIGQUIT is Ctrl-\\ in the terminal that ran the launcher (or kill -QUIT)",
}
SACCT = "sacct -j {} -o JobID,JobName,State,ExitCode,Elapsed,Timelimit,MaxRSS,ReqMem"


def _signal_name(value: str) -> str:
    import signal as signals

    if value.isdigit():
        try:
            return signals.Signals(int(value)).name
        except ValueError:
            return f"signal {value}"
    return value


@dataclass
class _Stop:
    """What the stop lines of a run say, gathered line by line."""

    agent: tuple[int, str] | None = None      # torchrun's agent: pid, signal
    agents: list[int] = field(default_factory=list)  # every agent stopped (several nodes)
    command: tuple[int, str, str] | None = None  # bash's report: pid, signal, command
    reason: str | None = None
    slurm: str | None = None                   # the job or step slurmstepd names
    node: str | None = None
    oom: int = 0
    timeout: dict[str, Any] | None = None      # timeout(1)'s bound that ended the run
    traced: dict[str, Any] | None = None       # ... the one the xtrace shows, likely it
    lines: list[dict[str, Any]] = field(default_factory=list)

    def read(self, text: str) -> None:
        if (bound := timeout_report(text)) is not None:
            # a --verbose line, then bash's report: the report knows more
            if self.timeout is None or self.timeout.get("report") is None:
                self.timeout = {**(self.timeout or {}),
                                **{k: v for k, v in bound.items() if v is not None}}
            self.reason = self.reason or "timeout"
        if (m := SLURM_CANCEL.search(text)) is not None:
            self.slurm = self.slurm or f"{m.group(1)} {m.group(2)}"
            self.node = self.node or m.group(3)
            due = (m.group(5) or "").upper()
            self.reason = self.reason or SLURM_REASONS.get(due, "cancelled")
        elif (m := SLURM_OOM.search(text)) is not None:
            self.oom += int(m.group(1))
            self.slurm = self.slurm or f"STEP {m.group(2)}"
            self.reason = "oom_kill"
        elif (m := AGENT_STOP.search(text)) is not None:
            pid = int(m.group(1) or m.group(2))
            self.agent = self.agent or (pid, _signal_name(m.group(3)))
            if pid not in self.agents:
                self.agents.append(pid)
        elif BARE_TERMINATED.match(text) and self.command is None:
            self.command = (0, "SIGTERM", "")
        elif (m := BASH_SIGNAL.search(text)) is not None and self.command is None:
            self.command = (int(m.group(1)), BASH_SIGNALS[m.group(2)][0], m.group(3).strip())

    @property
    def signal(self) -> str | None:
        if self.agent:
            return self.agent[1]
        if self.command:
            return self.command[1]
        return self.timeout["signal"] if self.timeout else None


def stopped_summary(scans: list[FileScan], stops: list[Cause], texts: list[str],
                    death: dict[str, Any] | None) -> dict[str, Any]:
    """Who was stopped, by what signal, for what reason the scheduler gave, the Slurm job
    id (from the logs, else $SLURM_JOB_ID), why in words and the commands that find out."""
    seen = _Stop()
    for cause in stops:
        seen.read(cause.hit.text)
        if len(seen.lines) < 10:
            seen.lines.append({"file": scans[cause.hit.file].path, "line": cause.hit.line,
                               "match": _display(cause.hit.text.encode())})
    if seen.timeout is None and stops:
        seen.traced = _traced_timeout(scans, stops[0], seen.signal)
    job, source = _slurm_job(seen, texts)
    return {"reason": seen.reason or ("signal" if seen.signal else None),
            "signal": seen.signal,
            "launcher_pid": seen.agent[0] if seen.agent else None,
            "command": ({"pid": seen.command[0] or None, "command": seen.command[2] or None}
                        if seen.command else None),
            "scheduler": "slurm" if seen.slurm else None, "slurm": seen.slurm,
            "node": seen.node, "oom_kills": seen.oom, "job_id": job, "job_id_from": source,
            "timeout": ({k: seen.timeout.get(k) for k in ("duration", "signal", "kill_after",
                                                          "command", "script", "line", "from")}
                        if seen.timeout else seen.traced),
            "what": _stop_what(seen, death), "why": _stop_why(seen),
            "commands": _stop_commands(seen, job), "lines": seen.lines}


def _traced_timeout(scans: list[FileScan], stop: Cause, sig: str | None) -> dict[str, Any] | None:
    """The last `timeout` the script's xtrace shows before the stop, in its file, when its
    bound sends the very signal the launcher got: likely the sender, not certainly (the
    trace has no time: a scheduler's SIGTERM before the bound reads the same)."""
    before = [b for line, b in scans[stop.hit.file].traced_timeouts if line < stop.hit.line]
    if not before or sig is None or before[-1]["signal"] != sig:
        return None
    line = max(n for n, _ in scans[stop.hit.file].traced_timeouts if n < stop.hit.line)
    return {**{k: before[-1][k] for k in ("duration", "signal", "kill_after", "command")},
            "script": None, "line": None, "from": "trace",
            "trace": {"file": scans[stop.hit.file].path, "line": line}}


def _slurm_job(seen: _Stop, texts: list[str]) -> tuple[str | None, str | None]:
    if seen.slurm:
        return re.split(r"[ .]", seen.slurm)[1], "log"
    for text in texts:
        if (m := re.search(r"SLURM_JOB_ID\W+(\d+)", text)) is not None:
            return m.group(1), "log"
    env = os.environ.get("SLURM_JOB_ID", "")
    return (env, "environment") if env.isdigit() else (None, None)


def _stop_what(seen: _Stop, death: dict[str, Any] | None) -> str:
    """One sentence: what was stopped, by what."""
    parts = []
    if seen.timeout is not None:
        t = seen.timeout
        span = str(t.get("duration") or "")
        bound = (f"after {span}{' s' if span[-1:].isdigit() else ''}, its bound" if span
                 else "at its bound")
        if t.get("kill_after"):
            bound += f" (SIGKILL {t['kill_after']} later if it lived)"
        where = (f" (bash's report at {t['script']} line {t['line']})" if t.get("script")
                 else " (timeout's own --verbose line)")
        parts.append(f"timeout(1) around `{t.get('command') or '?'}` sent {t['signal']} "
                     f"{bound}{where}")
        if t["signal"] == "SIGKILL":
            # a launcher SIGKILLed closes nothing: torchrun's ranks (sessions of their own)
            # were left running in the real runs (tests/logs/produce_stopped.py)
            parts.append("a launcher killed by SIGKILL stops none of its workers: they may "
                         "still be running (preflight --check leftover-processes)")
    if seen.reason == "oom_kill":
        parts.append(f"Slurm's memory cgroup counted {seen.oom} OOM kill(s) in {seen.slurm}")
        if death and death.get("rank") is not None:
            parts.append(f"torchrun's table: rank {death['rank']} died by {death['signal']} "
                         f"(exitcode {death['exitcode']})")
    elif seen.slurm:
        why = {"time_limit": " due to its time limit", "preemption": " due to preemption",
               "node_failure": " due to a node failure", "requeue": " to requeue it"}
        on = f" on {seen.node}" if seen.node else ""
        parts.append(f"Slurm cancelled {seen.slurm}{on}{why.get(seen.reason or '', '')}")
    if seen.agent and len(seen.agents) > 1:
        pids = ", ".join(map(str, seen.agents))
        parts.append(f"torchrun's agents (pids {pids}: one per node or launch) got "
                     f"{seen.agent[1]} from outside the job and stopped their workers")
    elif seen.agent:
        parts.append(f"torchrun's agent (pid {seen.agent[0]}) got {seen.agent[1]} from outside "
                     "the job and stopped its workers")
    elif seen.command and seen.timeout is None:
        pid, sig, command = seen.command
        who = (f"`{command}` (pid {pid}, bash's report)" if command
               else "a foreground command of a bash script (bash's bare `Terminated`)")
        parts.append(f"{who} got {sig} from outside and ended")
    if seen.traced is not None:
        t = seen.traced
        parts.append(f"the script's trace shows `timeout {t['duration']} {t['command']}` at "
                     f"{t['trace']['file']}:{t['trace']['line']}, whose bound sends "
                     f"{t['signal']}: likely it (the log cannot rule out another sender)")
    return "; ".join(parts)


def _stop_why(seen: _Stop) -> str:
    if seen.reason in STOP_WHY:
        return STOP_WHY[seen.reason or ""]
    sig = seen.signal or ""
    return SIGNAL_SENDERS.get(sig, f"{sig} came from outside the job (kill, a scheduler)")


def _stop_commands(seen: _Stop, job: str | None) -> list[str]:
    """Copy-paste commands that tell which sender it was (never a placeholder)."""
    # srun forwards a Ctrl-C (SIGINT) to its tasks and `scancel --signal` sends any signal:
    # on Slurm, your recent jobs' states say which ended how.
    if seen.timeout is not None and not seen.slurm:
        # the sender is known: the script's own timeout(1); where its bound is set
        script = seen.timeout.get("script")
        return [f"grep -nw timeout {shlex.quote(script)}"] if script else []
    cmds = [SACCT.format(job) if job else
            'sacct -u "$USER" -S now-2days -o JobID,JobName,State,Elapsed,Timelimit']
    if seen.reason == "oom_kill":
        return cmds + ["journalctl -k --since yesterday | grep -iE 'oom|killed process'",
                       "dmesg -T | grep -iE 'killed process|out of memory'"]
    if seen.slurm or seen.signal in ("SIGINT", "SIGQUIT", "SIGHUP"):
        return cmds
    return cmds + ["last -x -n 5 shutdown reboot",
                   "journalctl -k --since yesterday | grep -iE 'oom|killed process'"]


def render_stopped(stopped: dict[str, Any]) -> list[str]:
    out = [f"  stopped: {stopped['what']}", f"  why: {stopped['why']}"]
    if stopped["job_id_from"] == "environment":
        out.append(f"  (the Slurm job id {stopped['job_id']} is this shell's $SLURM_JOB_ID, "
                   "not read from the logs)")
    if stopped["commands"]:
        out.append("  where its bound is set:" if stopped["reason"] == "timeout"
                   else "  find out which:")
        out += [f"    {c}" for c in stopped["commands"]]
    return out


def _first_last_ts(scans: list[FileScan]) -> tuple[str | None, str | None]:
    """The earliest and latest stamp over all files, of one kind: with a year (ISO) where
    any line has one, else glog's month-day. A glog stamp carries no year, so the two kinds
    are not put side by side ("12-01 05:44:47 .. 2026-12-01 05:44:47")."""
    stamps = [t for scan in scans for t in (timestamp_of(x)
                                            for x in head_tail(scan.real, 64 << 10)) if t]
    dated = [t for t in stamps if len(t) > len("12-01 05:44:47")] or stamps
    return (min(dated), max(dated)) if dated else (None, None)


def _cause_json(cause: Cause, scans: list[FileScan], context: int, markers: Marks,
                full: bool) -> dict[str, Any]:
    scan = scans[cause.hit.file]
    n = context if full else min(context, 2)
    lines, at = read_window(scan.real, cause.hit.offset, n, n)
    stamp = timestamp_of(cause.hit.text)
    if stamp is None:
        wide, wat = read_window(scan.real, cause.hit.offset, 200, 0)
        stamp = next((t for t in (timestamp_of(x) for x in reversed(wide[:wat + 1])) if t), None)
    rid = cause.id
    known = cause.block is not None
    fix, adapted = log_fix(rid, cause.hit.text, fix_of(rid) if known else None)
    return {
        "id": rid,
        "confidence": cause.confidence,
        "file": scan.path,
        "line": cause.hit.line,
        "match": _display(cause.hit.text.encode()),
        "context": lines,
        "context_start": cause.hit.line - at,
        "timestamp": stamp,
        "fix": fix,
        "fix_from": ("log" if adapted else "runbook") if fix else None,
        "runbook": str(runbooks.path_for(rid)) if known else None,
        "check": cause.block.check if cause.block else None,
        "check_command": (_own_script(check_command(cause.block.check), cause.hit.text,
                                      adapted)
                          if cause.block and cause.block.check else None),
        "evidence": _evidence(cause, scans, markers),
    }


def _evidence(cause: Cause, scans: list[FileScan], markers: Marks) -> list[dict[str, Any]]:
    """Where each @log condition of the cause's block held: the lines elsewhere in the logs
    that made this block, not a plainer one, name the matched line (the outer torchrun's
    `torch.distributed.run FAILED` that makes a bind failure nested-launcher)."""
    out: list[dict[str, Any]] = []
    for cond in cause.block.log if cause.block else []:
        if cond.pattern in markers:
            index, line, text = markers[cond.pattern]
            out.append({"file": scans[index].path, "line": line,
                        "match": _display(text.encode())})
    return out


# -- output ---------------------------------------------------------------------------------

def scrubber() -> Any:
    """The reports' redaction: secret-named environment values by value, the values of
    ./.env (as `preflight` masks them: the job's keys often sit there, not in this shell),
    command-line and free-text secrets by shape (redact.redact_text). A ./.env that cannot
    be read is bad input (TriageInputError): its values could not be masked."""
    from preflight.probes import dotenv

    scrub = redact.Scrubber()
    scrub.add_environ(os.environ)
    if os.path.isfile(".env"):
        try:
            scrub.add_mapping(dotenv.read(".env").values)
        except dotenv.EnvFileError as exc:
            raise TriageInputError(f"{exc} (triage masks the values of ./.env)") from None

    def apply(obj: Any) -> Any:
        obj = scrub(obj)
        return _map_strings(obj, redact.redact_text)
    return apply


def _map_strings(obj: Any, fn: Any) -> Any:
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_strings(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_strings(v, fn) for v in obj]
    return obj


def render(result: dict[str, Any]) -> str:
    out: list[str] = []
    files = result["files"]
    total = sum(f["lines"] for f in files)
    out.append(f"preflight triage: {len(files)} file(s), {total} lines")
    if not result["causes"]:
        out += _render_no_cause(result)
    for r in result.get("recovered") or []:
        out.append(f"  recovered: torchrun restarted its workers after the failure at "
                   f"{r['file']}:{r['line']} and the log shows no failure after it")
    for k in result.get("killed_by_script") or []:
        how = ("sent it" if k["kill"].get("from") != "script" else
               "sent it (read from the script: the log has no trace of it running)")
        out.append(f"  not a failure: `{k['command']}` (pid {k['pid']}) died by {k['signal']} "
                   f"(bash's report at {k['file']}:{k['line']}): the script's own "
                   f"`{k['kill']['match']}` at {k['kill']['file']}:{k['kill']['line']} {how}")
    for i, c in enumerate(result["causes"]):
        if i == 0:
            out += _render_root(c, result.get("collective"), result.get("stopped"))
            if len(result["causes"]) > 1:
                out.append("later errors (not the root cause):")
        else:
            out.append(f"  {c['id']} ({c['confidence']}) at {c['file']}:{c['line']}: {c['match']}")
    if result["job_ids"]:
        out.append("job ids: " + ", ".join(result["job_ids"]))
    if result["first_timestamp"]:
        out.append(f"log time: {result['first_timestamp']} .. {result['last_timestamp']}")
    discounted = sum(f["consequences"] for f in files)
    if discounted:
        out.append(f"discounted {discounted} consequence line(s) (watchdog timeouts, failure "
                   "tables, SIGTERMs, job summaries)")
    if result["benign"]:
        kinds = sorted({b["id"] for b in result["benign"]})
        out.append(f"benign: {sum(f['benign'] for f in files)} line(s) ({', '.join(kinds)})")
    return "\n".join(out)


def _render_no_cause(result: dict[str, Any]) -> list[str]:
    """The head of a result without a named cause: a death by a signal, only
    consequences, or no fatal error."""
    out: list[str] = []
    death = result.get("died_by_signal")
    if death and death["rank"] is None:
        out.append(f"FATAL: `{death['command']}` (pid {death['pid']}) died by "
                   f"{death['signal']} (bash's report at {death['file']}:{death['line']}) "
                   "and printed no error" + (f": {death['note']}" if death["note"] else ""))
        if not result.get("killed_by_script"):
            given = result.get("launch_script")
            out.append("  (bash prints the same line for a background job the script "
                       "itself ended with kill -9; with `set -x` in the script, triage "
                       "reads its own `kill` and says so" + (
                           f"; {given} has no kill of a background job `{death['command']}` "
                           "with that signal)" if given else
                           ", as it does from the script's text: preflight triage LOG "
                           "--launch-script SCRIPT)"))
    elif death:
        out.append(f"FATAL: rank {death['rank']} died by {death['signal']} (exitcode "
                   f"{death['exitcode']}; torchrun's Root Cause at {death['file']}:"
                   f"{death['line']}) and printed no error"
                   + (f": {death['note']}" if death["note"] else ""))
        for c in death.get("consequences") or []:
            out.append(f"  then the ranks waiting for it failed ({c['id']}, a consequence) "
                       f"at {c['file']}:{c['line']}: {c['match']}")
    elif result["fatal"]:
        out.append("FATAL: the run failed, but only consequences were found "
                   "(watchdog timeouts, failure tables); the cause is not in these logs")
        for d in result.get("log_dirs") or []:
            out.append(f"  the ranks' own output went to torchrun's --log-dir {d} (relative "
                       f"to where torchrun ran); read it with this log: preflight triage "
                       f"THIS_LOG {d}")
    else:
        out.append("no fatal error found")
        for c in result.get("not_fatal") or []:
            out.append(f"  not fatal here (a warning, a retry, an exception the run "
                       f"logged, or a failure torchrun restarted from, the run went on): "
                       f"{c['id']} at {c['file']}:{c['line']}: {c['match']}")
    return out


def _render_root(c: dict[str, Any], collective: dict[str, Any] | None = None,
                 stopped: dict[str, Any] | None = None) -> list[str]:
    """The root cause: where, the matching line in its context, the fix and the check."""
    label = "ROOT CAUSE" if c["id"] != "unknown" else "FIRST FATAL ERROR (no runbook matches)"
    out = [f"{label}: {c['id']} ({c['confidence']})"]
    where = f"  at {c['file']}:{c['line']}"
    if c.get("timestamp"):
        where += f"  [{c['timestamp']}]"
    out += [where, f"  > {c['match']}"]
    if collective is not None:
        out.append(f"  collective: {render_collective(collective)}")
    if stopped is not None:
        out += render_stopped(stopped)
    for ev in c.get("evidence") or []:
        out.append(f"  evidence: {ev['file']}:{ev['line']}: {ev['match']}")
    out.append("  context:")
    for k, line in enumerate(c["context"]):
        num = c["context_start"] + k
        mark = ">" if num == c["line"] else " "
        out.append(f"  {mark}{num:>7} | {line}")
    if c["fix"]:
        # The runbook's block was written from one incident (its paths, ports, PID
        # placeholders): never presented as this machine's command.
        if c.get("fix_from") == "log":
            out.append(f"  fix (with this log's values, from bash's message at {c['file']}:"
                       f"{c['line']}):")
        else:
            out.append(f"  fix (the runbook's example; {c['check_command']} gives this "
                       "machine's values):" if c["check"]
                       else "  fix (the runbook's example: adapt its values):")
        out += [f"    {line}" for line in c["fix"].splitlines()]
    if c["runbook"]:
        out.append(f"  runbook: {_near_path(c['runbook'])}")
    if c["check"]:
        out.append(f"  caught before launch by check `{c['check']}`; run it now: "
                   f"{c['check_command']}")
    elif c["id"] != "unknown":
        out.append("  no preflight check catches this before launch")
    return out


def _near_path(path: str) -> str:
    """Relative to the working directory when under it (a checkout), else as is."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


USAGE = ("usage: preflight triage PATH... [--json] [--context N] [--launch-script FILE]   "
         "(PATH: a log file, a directory, or - for stdin)")


def main(argv: list[str]) -> int:
    as_json, context, paths = False, 8, []
    script: str | None = None
    args = iter(argv)
    for arg in args:
        if arg == "--json":
            as_json = True
        elif arg == "--launch-script" or arg.startswith("--launch-script="):
            script = arg.partition("=")[2] if "=" in arg else next(args, "")
            if not script:
                print(f"ERROR: triage: --launch-script takes the launch script's path; {USAGE}",
                      file=sys.stderr)
                return 4
        elif arg in ("-h", "--help"):
            print(USAGE)
            return 0
        elif arg == "--context" or arg.startswith("--context="):
            value = arg.partition("=")[2] if "=" in arg else next(args, "")
            if not value.isdigit() or int(value) > 200:
                print(f"ERROR: triage: --context takes a number of lines 0..200, got {value!r}",
                      file=sys.stderr)
                return 4
            context = int(value)
        elif arg.startswith("-") and arg != "-":
            print(f"ERROR: triage: unknown option {arg}; {USAGE}", file=sys.stderr)
            return 4
        else:
            paths.append(arg)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")  # a log's bytes never crash the printing
    try:
        scrub = scrubber()
    except TriageInputError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 4
    # SIGTERM and SIGHUP unwind as Ctrl-C does, so the spool dir (stdin, a decompressed
    # log: a gzipped 20 MB log is 180 MB there) is removed; their default action left it.
    saved = interrupt_on_signals()
    try:
        result = triage(paths, context, script=script)
    except TriageInputError as exc:
        print(f"ERROR: {scrub(_shown(str(exc)))}", file=sys.stderr)
        return 4
    except KeyboardInterrupt:
        print("ERROR: preflight triage: interrupted", file=sys.stderr)
        return 2
    finally:
        restore_signals(saved)
    result = scrub(result)
    print(json.dumps(result, indent=1, ensure_ascii=False) if as_json else render(result))
    return 1 if result["fatal"] else 0
