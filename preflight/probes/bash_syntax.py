"""Real bash as the judge of a launch script's syntax: `bash -n` reads every command
without executing one (bash(1), `-n`: "Read commands but do not execute them").

Where it reports a syntax error, `bash FILE` runs the commands before it and then exits
with status 2 at that line; nothing after it ever starts. Data only: the judge is
`judges.launch.launch_syntax`.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from preflight.redact import redact_text
from preflight.run import Runner

TIMEOUT_S = 10.0
MAX_MESSAGE = 400
# `s.sh: line 2: syntax error near unexpected token ...` (bash's parse_error_location);
# under -c it is `bash: -c: line 1: ...`
_LINE = re.compile(r"^(?:.*?): line (\d+): ")
# what bash -n does not apply (it executes nothing): `shopt -s extglob` and aliases change
# how later lines parse, so a script that sets them may parse under bash but not -n
# (in command position: `--alias` or `--enable-x` as an argument is not one)
_PARSE_CHANGING = re.compile(r"(?m)(?:^|[;&|(){}]|\b(?:then|do|else)\b)[ \t]*"
                             r"(?:builtin[ \t]+|command[ \t]+)?(?:shopt|alias)\b(?!-)")


@dataclass(frozen=True)
class BashSyntax:
    target: str  # the script path, or "--launch-cmd"
    ok: bool | None  # True: bash parses it all; False: a syntax error; None: not known
    line: int | None = None  # the line bash reports (1-based; -c: of the command)
    message: str = ""  # bash's own first lines, secrets masked
    error: str = ""  # why it is not known (no bash, timed out)
    parse_changing: bool = False  # the text sets shopt/alias, which bash -n does not apply

    @property
    def said(self) -> str:
        """bash's first line without its `FILE: line N: ` prefix."""
        first = self.message.splitlines()[0] if self.message else "syntax error"
        return _LINE.sub("", first, count=1)


def check(script: str | None, command: str | None, text: str, cwd: str | None = None,
          scrub: Callable[[str], str] = redact_text, runner: Runner | None = None
          ) -> BashSyntax:
    """`bash -n SCRIPT` (or `bash -n -c COMMAND`), bounded, stdin closed, nothing run;
    bash's message goes through `scrub` (the run's Scrubber.text: known secret values and
    secret shapes)."""
    target = script if script else "--launch-cmd"
    bash = shutil.which("bash")
    if bash is None:
        return BashSyntax(target, None, error="bash not found on PATH")
    argv = [bash, "-n", script] if script else [bash, "-n", "-c", command or ""]
    done = (runner or Runner()).run(argv, timeout=TIMEOUT_S, env={"PATH": "/usr/bin:/bin",
                                                                   "LC_ALL": "C"}, cwd=cwd)
    changing = bool(_PARSE_CHANGING.search(text))
    if done.timed_out:
        return BashSyntax(target, None, error=f"bash -n did not finish in {TIMEOUT_S:.0f}s",
                          parse_changing=changing)
    if done.returncode == 0:
        return BashSyntax(target, True, parse_changing=changing)
    lines = [x for x in done.stderr.splitlines() if x.strip()][:3]
    found = _LINE.match(lines[0]) if lines else None
    message = scrub("\n".join(lines))[:MAX_MESSAGE]
    if done.returncode != 2 or found is None:  # not a syntax error bash names a line for
        return BashSyntax(target, None, message=message, parse_changing=changing,
                          error=f"bash -n exited {done.returncode}: {message or 'no message'}")
    return BashSyntax(target, False, int(found.group(1)), message, parse_changing=changing)


MAX_FILES = 16  # files the launch script sources or runs, each judged by `bash -n`
FILES_BUDGET_S = 20.0  # all of them together; past it the rest are not known


def check_files(files: Sequence[tuple[str, str]],
                scrub: Callable[[str], str] = redact_text, runner: Runner | None = None
                ) -> list[BashSyntax]:
    """`bash -n` of each (path, text) the launch script sources or runs, bounded in count
    and in time together: one not judged within the bounds is not known (ok None)."""
    out: list[BashSyntax] = []
    start = time.monotonic()
    for i, (path, text) in enumerate(files):
        if i >= MAX_FILES or time.monotonic() - start > FILES_BUDGET_S:
            out.append(BashSyntax(path, None, error=f"not judged: preflight runs bash -n on "
                                                    f"at most {MAX_FILES} files the script "
                                                    f"reads, within {FILES_BUDGET_S:.0f}s"))
            continue
        out.append(check(path, None, text, scrub=scrub, runner=runner))
    return out
