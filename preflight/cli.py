"""`preflight`: run the installed checks from any directory, with preflight's own output.

`preflight [options] [pytest args]` is `pytest <installed preflight/checks> [args]` with the
quiet reporter plus face.py's lines, and exits with the verdict (see EXIT_CODES). A
subcommand is one entry of COMMANDS: name -> ("module:function", one-line help); the
function takes the remaining argv and returns the exit code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Generator
from pathlib import Path

CHECKS_DIR = Path(__file__).parent / "checks"

COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("preflight.info:main",
             "the GPUs and host limits the checks see (--json: an NVML snapshot for "
             "--nvml-replay)"),
    "list": ("preflight.cli:list_main", "every check id, its stage and the pitfall it catches"),
    "explain": ("preflight.cli:explain_main", "print the runbook of a check id"),
    "triage": ("preflight.triage:main",
               "name the root cause of a failed run from its logs (PATH... or -; --json)"),
    "merge": ("preflight.cluster:merge_main",
              "one cluster verdict from per-node preflight-report.json files"),
    "cluster": ("preflight.cluster:cluster_main",
                "run preflight on every node of a Ray cluster (--ray [ADDRESS])"),
}

EXIT_CODES = (
    (0, "GO: every selected check passed (warnings allowed)"),
    (1, "NO-GO: a blocker, or a check that could not decide (UNKNOWN)"),
    (2, "interrupted (Ctrl-C, SIGTERM, SIGHUP): the report is written with complete: false, "
        "never GO"),
    (4, "bad input (unknown check id or profile, malformed .env/profile, unwritable report "
        "dir, -k/-m selecting no check): one ERROR: line, no report, no JUnit"),
)

# Options of the command itself (not pytest's): flag -> help.
OWN_OPTIONS = (
    ("-v, --verbose", "show each case and its evidence under its check line"),
    ("--pytest-output", "pytest's own output instead of preflight's (dots, FAILURES, ...)"),
    ("--help-pytest", "every pytest option (preflight's runs are pytest runs)"),
    ("--version", "print preflight's version"),
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from preflight import __version__

    try:
        pytest_version = version("pytest")
    except PackageNotFoundError:  # pragma: no cover - pytest is a dependency
        pytest_version = "?"
    return f"preflight {__version__} (distribution pytest-preflight; pytest {pytest_version})"


def _plugin_options() -> list[tuple[str, str]]:
    """preflight's pytest options, read off the plugin's own pytest_addoption."""
    from _pytest.config.argparsing import Parser

    from preflight import plugin

    parser = Parser(processopt=lambda opt: None, _ispytest=True)
    plugin.pytest_addoption(parser)
    out = []
    for opt in parser.getgroup("preflight").options:
        names = opt.names()
        metavar = "" if opt.attrs().get("action") in ("store_true",) else " " + \
            opt.dest.upper()
        out.append((", ".join(names) + metavar, opt.attrs().get("help", "")))
    return out


def help_text() -> str:
    lines = [
        _version(),
        "",
        "usage: preflight [options] [pytest args]      run the checks, print the verdict",
        "       preflight COMMAND [args]",
        "",
        "GO / NO-GO for a training node. By default the static stage and the launch",
        "analysis run (about a second); --workloads / --stack / --all add the real",
        "workloads and the training stack.",
        "",
        "commands:",
    ]
    width = max(len(n) for n in COMMANDS) + 2
    lines += [f"  {name:<{width}}{text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "options:"]
    options = list(OWN_OPTIONS) + _plugin_options()
    width = max(len(flag) for flag, _ in options) + 2
    for flag, text in options:
        lines.append(f"  {flag:<{width}}{text}")
    lines += ["", "pytest options work too: -k EXPR, -m EXPR, -x, --maxfail N, --co,",
              "--junitxml FILE, ... (preflight --help-pytest lists them all).", "",
              "exit codes:"]
    lines += [f"  {code}  {text}" for code, text in EXIT_CODES]
    lines += ["", "runbooks: preflight explain ID; checks: preflight list"]
    return "\n".join(lines)


def _base_args() -> list[str]:
    import os

    # A gate loads only what it needs: other installed plugins (hypothesis alone costs
    # half a second) stay out unless PREFLIGHT_AUTOLOAD=1. rootdir and config at the checks
    # keep a user's unrelated pytest.ini / pyproject.toml / conftest out of the run.
    plugins = ["-p", "no:cacheprovider"]
    if os.environ.get("PREFLIGHT_AUTOLOAD") != "1":
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        plugins += ["-p", "preflight.plugin", "-p", "pytest_timeout"]
    return [str(CHECKS_DIR), "--rootdir", str(CHECKS_DIR), "-c", str(CHECKS_DIR / "gate.ini"),
            *plugins]


def _split_verbose(args: list[str]) -> tuple[list[str], bool]:
    verbose = False
    rest = []
    for arg in args:
        if arg in ("--verbose",) or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            verbose = True
        else:
            rest.append(arg)
    return rest, verbose


def one_line_usage() -> object:
    """A plugin: pytest reports a bad option as usage + error + its inifile/rootdir (four
    lines, the checks' own gate.ini among them); preflight's contract is one ERROR: line."""
    import pytest
    from _pytest.config.exceptions import UsageError

    class OneLineUsage:
        @pytest.hookimpl(wrapper=True)
        def pytest_cmdline_parse(self) -> Generator[None, object, object]:
            try:
                return (yield)
            except UsageError as exc:
                lines = [x for x in str(exc).splitlines() if x.strip()]
                said = next((x for x in lines if ": error: " in x), lines[0] if lines else "")
                raise UsageError("preflight: " + said.split(": error: ", 1)[-1] +
                                 " (preflight --help lists the options)") from None

    return OneLineUsage()


def run_checks(args: list[str]) -> int:
    import pytest

    if "--pytest-output" in args:
        args = [a for a in args if a != "--pytest-output"]
        return int(pytest.main([*_base_args(), *args], plugins=[one_line_usage()]))
    from preflight.face import Face

    args, verbose = _split_verbose(args)
    # pytest's reporter stays, quiet: no header, no progress letters (face.py blanks them),
    # no tracebacks (a judged failure's finding says it all), no short summary.
    quiet = ["-qq", "--tb=no", "-rN", "-p", "no:warnings"]
    return int(pytest.main([*_base_args(), *quiet, *args],
                           plugins=[Face(verbose), one_line_usage()]))


# -- subcommands ---------------------------------------------------------------------


def check_table() -> list[tuple[str, str, str]]:
    """(check id, stage, one line) for every check: read off pytest's own collection."""
    import os

    import pytest

    from preflight import runbooks
    from preflight.model import STAGES

    found: dict[str, str] = {}

    class Lister:
        @pytest.hookimpl(tryfirst=True)
        def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
            from preflight.plugin import _item_stage

            for item in items:
                mark = item.get_closest_marker("pitfall")
                if mark:
                    found.setdefault(mark.args[0], _item_stage(item))

    import tempfile

    env_before = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    # --co: a listing, never a run; its own report dir, so no report of the user's is touched
    scratch = tempfile.TemporaryDirectory(prefix="preflight-list-")
    try:
        pytest.main([*_base_args(), "--co", "--report-dir", scratch.name, "-p", "no:terminal",
                     "-p", "no:junitxml"], plugins=[Lister()])
    finally:
        scratch.cleanup()
        if env_before is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    # Runbooks no node check runs: the cross-node checks of `merge` / `cluster` (cluster-*)
    # and root causes only `triage` names (resume-memory, cuda-oom).
    for check in sorted(runbooks.all_ids() - set(found)):
        found[check] = "cluster" if check.startswith("cluster-") else "triage"
    out = []
    for check, stage in found.items():
        title = runbooks.title(check)
        out.append((check, stage, title.split(":", 1)[1].strip() if ":" in title else title))
    order = (*STAGES, "cluster", "triage")
    out.sort(key=lambda row: (order.index(row[1]) if row[1] in order else 9, row[0]))
    return out


HELP_FLAGS = ("-h", "--help")


def list_main(args: list[str]) -> int:
    if args and args[0] in HELP_FLAGS:
        print("usage: preflight list\n\nevery check id, its stage (cluster: run by merge / "
              "cluster; triage: named only by triage) and the pitfall it catches")
        return 0
    if args:
        print(f"ERROR: preflight list takes no arguments (got {' '.join(args)})",
              file=sys.stderr)
        return 4
    rows = check_table()
    width = max(len(r[0]) for r in rows) + 2
    for check, stage, text in rows:
        print(f"{check:<{width}}{stage:<10}{text}")
    return 0


def explain_main(args: list[str]) -> int:
    from preflight import runbooks

    known = sorted(runbooks.all_ids())
    if args[:1] and args[0] in HELP_FLAGS:
        print("usage: preflight explain ID\n\nprint the runbook of a check id "
              "(runbooks/ID.md); `preflight list` shows the ids")
        return 0
    if len(args) != 1:
        print(f"ERROR: preflight explain ID: give one check id (got {len(args)}; "
              "`preflight list` shows them)", file=sys.stderr)
        return 4
    if args[0] not in known:
        print(f"ERROR: preflight explain ID: unknown check id {args[0]!r} (known: "
              f"{', '.join(known)})", file=sys.stderr)
        return 4
    sys.stdout.write(runbooks.path_for(args[0]).read_text(encoding="utf-8"))
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `preflight --help-pytest | head`: the reader left, no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] and args[0] in COMMANDS:
        target, _ = COMMANDS[args[0]]
        module, func = target.split(":")
        return int(getattr(importlib.import_module(module), func)(args[1:]))
    if "--version" in args or "-V" in args:
        print(_version())
        return 0
    if "--help" in args or "-h" in args:
        print(help_text())
        return 0
    if "--help-pytest" in args:
        import pytest

        return int(pytest.main([*_base_args(), "--help"]))
    return run_checks(args)


if __name__ == "__main__":
    sys.exit(main())
