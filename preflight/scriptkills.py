"""Which background jobs a launch script kills itself: its `kill`, `pkill` and `killall`
lines, read from the script's text (`preflight triage --launch-script FILE`) or from its
`set -x` trace in the log, as matchers of the command line bash prints when it reports the
job a signal ended ("run.sh: line 6:  6172 Killed  sleep 100").

Non-interactive bash prints that report for a foreground command a signal ended and for a
background job alike (bash 5.2 jobs.c:4310 notify_of_job_status), so the log alone cannot
tell the helper a script stopped with `kill -9 %1` from a trainer the OOM killer ended. A
match here says the script has a kill that sends that signal to a job with that command;
the report then reads as the script's own doing, not a failure. What the trace cannot
resolve (`kill -9 %1`: the trace shows no job numbers) the script's text can: its
background commands (`CMD &`) in order, `VAR=$!` after one, `%N`, `%%`, `%+`, `%-`,
`%str`, `%?str` (bash's jobspecs, bash(1) JOB CONTROL).
"""

from __future__ import annotations

import os
import re
import shlex
import signal as signals
from collections.abc import Callable
from dataclasses import dataclass

# pkill's options that take a value (procps-ng 4 pgrep.c's getopt string); `-s` is the
# session there, not the signal.
PKILL_VALUED = {"-g", "-G", "-P", "-s", "-t", "-u", "-U", "-F", "--ns", "--nslist",
                "--pidfile", "--group", "--pgroup", "--parent", "--session", "--terminal",
                "--euid", "--uid", "--cgroup", "-e", "--env"}
KILLERS = ("kill", "pkill", "killall")
LAST_PID = re.compile(r"\b(?P<var>[A-Za-z_]\w*)=\"?\$!\"?")


def signal_name(word: str) -> str | None:
    """KILL for "9", "KILL", "SIGKILL", "kill"; None for what is no signal."""
    word = word.upper().removeprefix("SIG")
    if word.isdigit():
        try:
            return signals.Signals(int(word)).name.removeprefix("SIG")
        except ValueError:
            return None
    return word if hasattr(signals, "SIG" + word) else None


def normal(command: str) -> str:
    """A command line without its spacing: bash prints a job's command from its parse
    (`python h.py >h.log 2>&1` is reported `python h.py > h.log 2>&1`)."""
    return re.sub(r"\s+", "", command)


@dataclass
class Kill:
    """One kill line: where, what it sends, and which reported commands it would end."""

    line: int
    signal: str                       # name without SIG: "KILL"
    text: str
    targets: Callable[[str], bool]    # the reported command -> does this kill end it?


def _options(words: list[str], sig_opts: set[str], valued: set[str]
             ) -> tuple[str, list[str], set[str]]:
    """(signal, operands, flags) of a kill/pkill/killall word list: `sig_opts` take the
    signal as their value, `valued` take another value."""
    sig, operands, flags = "TERM", [], set()
    it = iter(words)
    for word in it:
        if word == "--":
            operands += list(it)
            break
        if word in sig_opts:
            sig = signal_name(next(it, "")) or sig
        elif word.startswith("--signal="):
            sig = signal_name(word.partition("=")[2]) or sig
        elif word in valued:
            next(it, None)
        elif word.startswith("-") and len(word) > 1 and not word.startswith("--"):
            found = signal_name(word[1:])
            if found:
                sig = found
            else:
                flags |= set(word[1:])
        elif word.startswith("-"):
            flags.add(word)
        else:
            operands.append(word)
    return sig, operands, flags


def parse_kill(words: list[str], jobs: Callable[[str], str | None]
               ) -> tuple[str, Callable[[str], bool]] | None:
    """The signal and target matcher of a kill/pkill/killall command's words (the first
    word the command); `jobs(operand)`: the background command a `kill` operand names
    (`$VAR`, `%1`), if known. None when it names nothing a report can be matched to."""
    name, args = os.path.basename(words[0]), words[1:]
    if name == "kill":
        sig, operands, _ = _options(args, {"-s", "-n"}, set())
        named = [c for c in (jobs(o) for o in operands) if c]
        prefixes = [normal(o[1:]) for o in operands if re.match(r"%[^\d%+?-]", o)]
        contains = [normal(o[2:]) for o in operands if o.startswith("%?")]
        if not (named or prefixes or contains):
            return None
        return sig, lambda cmd: (normal(cmd) in named
                                 or any(normal(cmd).startswith(p) for p in prefixes)
                                 or any(c in normal(cmd) for c in contains))
    if name == "pkill":
        sig, operands, flags = _options(args, {"--signal"}, PKILL_VALUED)
        if not operands:
            return None
        try:
            pattern = re.compile(operands[-1])
        except re.error:
            return None
        full = "f" in flags or "--full" in flags
        return sig, lambda cmd: bool(pattern.search(_cmdline(cmd) if full else _comm(cmd)))
    if name == "killall":
        sig, operands, _ = _options(args, {"-s", "--signal"}, {
            "-o", "-y", "-u", "--user", "--older-than", "--younger-than"})
        names = {o[:15] for o in operands}
        return (sig, lambda cmd: _comm(cmd) in names) if names else None
    return None


def _cmdline(command: str) -> str:
    """The process's command line pkill -f matches (its argv joined by spaces) from the
    shell text bash reports: words unquoted, redirections left out."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    argv, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif re.fullmatch(r"\d*(?:>>?|<|&>>?|>\|)", word):
            skip = True
        elif not re.fullmatch(r"\d*(?:>>?|<|&>>?)\S+|\d*[<>]&\d*-?", word):
            argv.append(word)
    return " ".join(argv)


def _comm(command: str) -> str:
    """The process name pkill/killall match without -f: the program's base name, as the
    kernel keeps it (15 characters)."""
    first = command.strip().split(None, 1)[0] if command.strip() else ""
    return os.path.basename(first)[:15]


def split_line(line: str) -> list[tuple[str, str]]:
    """A script line's simple commands and what ends each (`;`, `&&`, `||`, `|`, `&`, or
    "" at the end), outside quotes; `2>&1`, `&>`, `>&` are redirections, `#` after a blank
    starts a comment."""
    out: list[tuple[str, str]] = []
    start, i, quote, stop = 0, 0, "", len(line)
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch == "\\":
            i += 1
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t;&|"):
            stop = i
            break
        elif ch in ";|&":
            two = line[i:i + 2]
            if ch == "&" and (line[i - 1:i] in "<>" and i > 0 or two == "&>"):
                i += 1
                continue
            end = two if two in ("&&", "||", ";;") else ch
            out.append((line[start:i].strip(), end))
            i += len(end)
            start = i
            continue
        i += 1
    out.append((line[start:stop].strip(), ""))
    return [(seg, end) for seg, end in out if seg]


def _strip_prefix(words: list[str]) -> list[str]:
    while words and words[0] in ("command", "builtin", "sudo", "exec", "then", "do", "else"):
        words = words[1:]
    return words


@dataclass
class Script:
    """What a launch script's text says about its background jobs and its kills."""

    path: str
    jobs: list[tuple[int, str]]       # (line, command normalised) of each `CMD &`, in order
    kills: list[Kill]

    def matches(self, command: str, sig: str, at: int | None = None) -> Kill | None:
        """The kill line that ends a background job whose reported command is `command`
        with `sig`; None when the command is not one of the script's background jobs.
        `at`: the script line bash names in its report, where it noticed the death: a kill
        further down ran after it (or never)."""
        if not any(job == normal(command) for _, job in self.jobs):
            return None
        return next((k for k in self.kills if k.signal == sig and k.targets(command)
                     and (at is None or k.line <= at)), None)


# A function's definition: `name() {`, `function name {` (bash(1) Shell Function Definitions)
FUNCTION = re.compile(r"^(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\s*\)\s*\{?"
                      r"|^function\s+([A-Za-z_][\w-]*)")


def read(path: str, text: str) -> Script:
    """The script's background jobs and the kills that can end them. Left out, since they
    run after a death rather than cause it: kills in a `trap` (its quoted command, or the
    function it names: a cleanup on EXIT/ERR), and kills after `||` (run when the command
    before failed: `wait $P || pkill -9 -f train.py`)."""
    jobs: list[tuple[int, str]] = []
    variables: dict[str, str] = {}
    kills: list[tuple[Kill, str]] = []    # with the function it is in ("": top level)
    handlers: set[str] = set()
    function = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if (m := FUNCTION.match(line)) is not None:
            function = m.group(1) or m.group(2)
        after = ""
        for segment, end in split_line(line):
            segment = re.sub(r"^(?:function\s+)?[A-Za-z_][\w-]*\s*\(\s*\)\s*", "", segment)
            segment = re.sub(r"^(?:(?:then|do|else|\{|\(|!)\s*)+", "", segment)
            previous, after = after, end
            if end == "&":
                jobs.append((number, normal(segment)))
                continue
            for m in LAST_PID.finditer(segment):
                if jobs:
                    variables[m.group("var")] = jobs[-1][1]
            try:
                words = _strip_prefix(shlex.split(segment))
            except ValueError:
                continue
            if words[:1] == ["trap"] and len(words) > 1:
                handlers.add(words[1])
            if not words or os.path.basename(words[0]) not in KILLERS or previous == "||":
                continue
            parsed = parse_kill(words, lambda o: _job(o, jobs, variables))
            if parsed is not None:
                kills.append((Kill(number, parsed[0], line, parsed[1]), function))
        if line.endswith("}") and not FUNCTION.match(line) or line == "}":
            function = ""
    return Script(path, jobs, [k for k, fn in kills if not fn or fn not in handlers])


def _job(operand: str, jobs: list[tuple[int, str]], variables: dict[str, str]) -> str | None:
    """The command of the background job a kill operand names in the script's text."""
    m = re.fullmatch(r"\$\{?([A-Za-z_]\w*)\}?", operand)
    if m:
        return variables.get(m.group(1))
    if operand == "$!":
        return jobs[-1][1] if jobs else None
    if operand in ("%%", "%+", "%"):
        return jobs[-1][1] if jobs else None
    if operand == "%-":
        return jobs[-2][1] if len(jobs) > 1 else None
    m = re.fullmatch(r"%(\d+)", operand)
    if m and 0 < int(m.group(1)) <= len(jobs):
        return jobs[int(m.group(1)) - 1][1]
    return None
