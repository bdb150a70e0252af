"""What a bash launch script would run, and with which values, without running it.

bashlex parses the shell grammar (commands, lists, pipelines, if/for/while, functions,
command substitutions); this package walks its tree and evaluates what a launch script
needs: assignments and exports, `${VAR:-default}` / `${VAR:=default}`, per-command
prefixes, `source`/`.` of files that exist, `cd`, simple `[ ... ]` tests, and the pure
command substitutions `$(pwd)`, `$(dirname X)`, `$(basename X)`, `$(which X)`. Whatever it cannot
evaluate becomes an unknown (shown as `⟨...⟩`), never a guess. Nothing is executed.

The script is read as `bash SCRIPT` with no arguments would run it: `$1` is empty, `$0`
is SCRIPT as given (`evaluate_script`'s path; `Evaluator.run_file`'s `zero`).

The package is cut by concern: `model` (what evaluation yields), `source` (reading and
parsing), `state`, `words` (expansion), `evaluate` (statements) and `writers` (which
files a program the script starts may write).
"""

from preflight.launch.shell.evaluate import Evaluator, evaluate_command, evaluate_script
from preflight.launch.shell.model import (
    NOT_CONSUMING,
    UNKNOWN_CLOSE,
    UNKNOWN_OPEN,
    WRAPPERS,
    Command,
    Exit,
    Read,
    ScriptFileError,
    Trace,
    Unknown,
    Var,
    Word,
    Written,
)
from preflight.launch.shell.source import decode, parse_chunks, read_script
from preflight.launch.shell.writers import Files, Writer

__all__ = [
    "NOT_CONSUMING", "UNKNOWN_CLOSE", "UNKNOWN_OPEN", "WRAPPERS", "Command", "Evaluator",
    "Exit", "Files", "Read", "ScriptFileError", "Trace", "Unknown", "Var", "Word", "Writer",
    "Written", "decode",
    "evaluate_command", "evaluate_script", "parse_chunks", "read_script",
]
