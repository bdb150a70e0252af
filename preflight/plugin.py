"""The pytest plugin: options, profile markers, findings, the verdict and the reports.

Checks are ordinary pytest tests under `preflight/checks/` marked `pitfall(id)`.
This module only wires pytest: probes read the node, checks judge, report renders.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict, cast

import pytest

from preflight import __version__, report, runbooks
from preflight.errors import InputError
from preflight.model import STAGES, Finding, Kind, Severity, Verdict, verdict
from preflight.probes import Node
from preflight.profiles import Profile, ProfileError, load_profiles
from preflight.pytest_entry import _is_checks_path
from preflight.redact import Scrubber, redact_text, secret_values

if TYPE_CHECKING:
    from preflight.launch.shell import Read
    from preflight.launch.spec import LaunchSpec
    from preflight.probes.dotenv import EnvFile

# One description per setting serves the option, the ini key and the env variable.
SETTINGS: dict[str, tuple[str, str, str | None]] = {
    # dest: (ini key / env suffix, help, default)
    "profile": ("profile", "run the checks with this profile only (default: the one "
                "matching the detected hardware, `cpu` without an NVIDIA GPU)", None),
    "report_dir": ("report_dir", "where preflight-report.json/.md go", "preflight-report"),
    "env_file": ("env_file", ".env file whose keys must be exported (default ./.env "
                 "when it exists)", None),
    "expect_env": ("expect_env", "the conda env the job must run in (CONDA_DEFAULT_ENV)", None),
    "nvml_replay": ("nvml_replay", "read GPUs from this NVML snapshot (from `preflight info "
                    "--json`) instead of the NVML library", None),
    "launch_script": ("launch_script", "the bash launch script to analyse", None),
    "launch_cmd": ("launch_cmd", "one launch command line to analyse", None),
}
DEFAULT_REPORT_DIR = "preflight-report"


class Settings(TypedDict):
    """The effective settings, one key per SETTINGS entry (CLI > PREFLIGHT_* env > ini).
    A TypedDict, not a dataclass: checks read them as `settings["expect_env"]`."""

    profile: str | None
    report_dir: str
    env_file: str | None
    expect_env: str | None
    nvml_replay: str | None
    launch_script: str | None
    launch_cmd: str | None


CRASHED = "check crashed: "  # a check that raised something other than its verdict


@dataclass(eq=False)  # registered as a plugin: must stay hashable
class SessionState:
    """Everything the plugin holds for one run, under `state_key`."""

    profiles: dict[str, Profile]
    node: Node
    scrubber: Scrubber
    settings: Settings
    active: bool = False  # preflight checks were collected
    input_error: bool = False
    selected_profiles: list[str] = field(default_factory=list)
    profile_note: str = ""
    env_file: EnvFile | None = None
    findings: dict[str, Finding] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    report: dict[str, Any] | None = None
    written: list[Path] = field(default_factory=list)
    write_error: str = ""
    saved_handlers: dict[signal.Signals, Any] = field(default_factory=dict)
    detected: tuple[str, str] | None = None  # (profile, note), read once

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "preflight", None)
        if data is None:
            return
        found = Finding.from_json(data)
        previous = self.findings.get(found.nodeid)
        if previous is None or found.severity >= previous.severity:
            self.findings[found.nodeid] = found


state_key = pytest.StashKey[SessionState]()
face_key = pytest.StashKey[bool]()  # set when the `preflight` command's own output is on
recorder_key = pytest.StashKey["Recorder"]()


# -- options -----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("preflight", "preflight: GO / NO-GO checks for training nodes")
    for dest, (key, help_text, default) in SETTINGS.items():
        flag = "--" + dest.replace("_", "-")
        env = "PREFLIGHT_" + key.upper()
        group.addoption(flag, dest=dest, default=None,
                        help=f"{help_text} [env {env}, ini preflight_{key}]")
        parser.addini(f"preflight_{key}", help_text, default=default)
    group.addoption("--profile-dir", dest="profile_dir", action="append", default=[],
                    help="extra directory of profile TOML files (repeatable)")
    group.addoption("--check", dest="check_ids", action="append", default=[],
                    help="run only this check id (repeatable)")
    _addoption_levels(group)


def _setting(config: pytest.Config, dest: str) -> str | None:
    """CLI, then PREFLIGHT_* environment, then ini."""
    key = SETTINGS[dest][0]
    value: str | None = config.getoption(dest)
    if value is None:
        value = os.environ.get("PREFLIGHT_" + key.upper()) or None
    if value is None:
        value = config.getini(f"preflight_{key}") or None
    return value


def _as_given(config: pytest.Config, text: str) -> str:
    """An input error names its setting as the user gave it: `--profile nope` from the
    command line, `PREFLIGHT_PROFILE=nope` from the environment, `preflight_profile` from
    the ini (the messages are written with the option's name)."""
    for dest, (key, _, _) in SETTINGS.items():
        flag = "--" + dest.replace("_", "-")
        if not text.startswith((flag + " ", flag + ":")) or config.getoption(dest) is not None:
            continue
        env = "PREFLIGHT_" + key.upper()
        name = f"{env}=" if os.environ.get(env) else f"ini preflight_{key} = "
        value = _setting(config, dest) or ""
        rest = text[len(flag):]
        if rest.startswith(" " + value):
            return name + value + rest[1 + len(value):]
        return name.rstrip("= ") + rest
    return text


def _settings(config: pytest.Config) -> Settings:
    values = {dest: _setting(config, dest) for dest in SETTINGS}
    # as _report_dir reads it: an empty ini value means the default
    values["report_dir"] = values["report_dir"] or DEFAULT_REPORT_DIR
    return cast(Settings, values)  # tests/test_plugin.py: Settings has SETTINGS' keys


# -- configure: markers and profiles -------------------------------------------


def _no_exit_gc(config: pytest.Config) -> None:
    """pytest ends every run with five full gc.collect() passes, to turn unraisable
    exceptions of cyclic garbage into warnings (_pytest/unraisableexception.py: cleanup;
    gc_collect_iterations_key is a stash key so that pytester can lower it): about 0.1 s
    of CPU in a static stage of about 1 s. The gate prints no pytest warnings; an
    unraisable exception freed by reference counting is still reported."""
    try:
        from _pytest.unraisableexception import gc_collect_iterations_key
    except ImportError:  # another pytest: keep its default
        return
    config.stash[gc_collect_iterations_key] = 0


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "pitfall(id): the check id of a preflight check; its runbook is runbooks/<id>.md",
        "each(argname, values): parametrize a check per profile entry; values(profile, node) "
        "returns [(id, value), ...]",
        "static: preflight stage: reads the node, no workload (seconds)",
        "workload: preflight stage: runs a real torchrun workload",
        "stack: preflight stage: runs the user's training stack (ms-swift, SGLang)",
    ):
        config.addinivalue_line("markers", line)
    dirs = [Path(d) for d in config.getoption("profile_dir") or []]
    try:
        profiles = load_profiles(dirs)
    except ProfileError as exc:
        _discard_stale_report(config)
        raise pytest.UsageError(redact_text(str(exc))) from None
    for name, prof in profiles.items():
        config.addinivalue_line("markers", f"{name}: preflight profile: {prof.description}")
    settings = _settings(config)
    node = Node(nvml_replay=settings["nvml_replay"])
    scrubber = Scrubber()
    scrubber.add_environ(node.environ)
    state = SessionState(profiles, node, scrubber, settings)
    config.stash[state_key] = state
    config.pluginmanager.register(state, "preflight-session")
    config.pluginmanager.register(ArtifactGuard(config), "preflight-artifacts")
    _no_exit_gc(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(state_key, None)
    if state is not None:
        config.pluginmanager.unregister(state)
        from preflight.run import restore_signals

        restore_signals(state.saved_handlers)


# SIGTERM (CI timeout, `scancel`, pod shutdown) and SIGHUP (a dropped ssh) end the run
# as Ctrl-C does (run.interrupt_on_signals): KeyboardInterrupt unwinds every running check,
# whose launcher kills its process tree on the way out (torchrun.py, Runner), and the
# report is written with `complete: false`; the exit code is pytest's INTERRUPTED, 2.
# SIGKILL cannot be caught: the workloads then stop themselves at PREFLIGHT_DEADLINE.
def _install_signal_handlers(state: SessionState) -> None:
    from preflight.run import interrupt_on_signals

    if not state.saved_handlers:
        state.saved_handlers.update(interrupt_on_signals())


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash.get(state_key, None)
    if state is None:
        return []
    return [f"preflight {__version__}: profiles {', '.join(sorted(state.profiles))}"]


# -- collection: one parameter per profile, then pick the profile ------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "profile" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash[state_key]
    each = metafunc.definition.get_closest_marker("each")
    params = []
    wanted = _wanted_profiles(metafunc, state) if each is not None else None
    for name, prof in sorted(state.profiles.items()):
        mark = getattr(pytest.mark, name)
        if each is None:
            params.append(pytest.param(prof, marks=mark, id=name))
            continue
        if wanted is not None and name not in wanted:
            continue  # one case per entry of a profile not run: never built (count = 10^6)
        for value_id, value in each.args[1](prof, state.node):
            params.append(pytest.param(prof, value, marks=mark, id=f"{name}-{value_id}"))
    argnames = "profile" if each is None else f"profile,{each.args[0]}"
    metafunc.parametrize(argnames, params)


def _wanted_profiles(metafunc: pytest.Metafunc, state: SessionState) -> set[str] | None:
    """The profiles this check can run with in this session (None: cannot tell, all)."""
    config = metafunc.config
    chosen = state.settings["profile"]
    if chosen is not None:
        return {chosen} if chosen in state.profiles else None
    names = set(state.profiles)
    if not _markexpr_names_profile(config, names):
        if state.detected is None:
            try:
                state.detected = _detect_profile(state)
            except Exception as exc:  # a bad replay is reported by _load_inputs (exit 4)
                state.detected = ("cpu", f"GPU detection failed ({exc}): using cpu")
        return {state.detected[0]}
    try:
        from _pytest.mark.expression import Expression

        expr = Expression.compile(config.getoption("markexpr"))
        own = {m.name for m in metafunc.definition.iter_markers()}

        def matcher(profile: str) -> Callable[..., bool]:
            return lambda marker, **_: marker in own or marker == profile

        return {name for name in names if expr.evaluate(matcher(name))}
    except Exception:  # pytest's private API moved: build every profile's cases
        return None


def _check_id(item: pytest.Item) -> str:
    """The check id of an item marked pitfall (callers pass only those)."""
    mark = item.get_closest_marker("pitfall")
    if mark is None:
        raise pytest.UsageError(f"{item.nodeid}: not a preflight check (no pitfall mark)")
    return str(mark.args[0])


def _item_profile(item: pytest.Item) -> Profile | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("profile") if callspec else None


def _item_stage(item: pytest.Item) -> str:
    # The latest stage wins: a stack check is also marked `workload` (it runs one), but it
    # is reported, and ordered, as the stack stage.
    for stage in reversed(STAGES):
        if item.get_closest_marker(stage):
            return stage
    return "static"


def _detect_profile(state: SessionState) -> tuple[str, str]:
    """(name, note): the profile that matches the GPUs NVML reports."""
    from preflight.matching import gpu_match

    snapshot = state.node.gpus
    names = [g.name for g in snapshot.gpus]
    if not names:
        why = snapshot.error or "no NVIDIA GPU"
        return "cpu", f"no GPU detected ({why}): using profile cpu"
    candidates = [p for p in state.profiles.values() if p.is_gpu and gpu_match(p, names).ok]
    if candidates:
        best = max(candidates, key=lambda p: (p.gpu.count, len(p.gpu.model)))
        return best.name, f"detected {len(names)}x {names[0]}: using profile {best.name}"
    return "cpu", (f"detected {len(names)}x {names[0]} but no profile matches: "
                   "using profile cpu; pass --profile NAME or -m NAME")


def _markexpr_names_profile(config: pytest.Config, names: set[str]) -> bool:
    expr = config.getoption("markexpr", "") or ""
    return bool(set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr)) & names)


def _load_inputs(state: SessionState) -> None:
    """Read the files the user pointed at; any problem is one line and exit 4."""
    from preflight.probes import dotenv

    path = state.settings["env_file"]
    if path is None and Path(".env").is_file():
        path = ".env"
    if path is not None:
        state.env_file = dotenv.read(path)
        state.scrubber.add_mapping(state.env_file.values)
    if state.settings["launch_script"] or state.settings["launch_cmd"]:
        from preflight.launch import spec as launch

        spec = launch.load(
            script=state.settings["launch_script"],
            command=state.settings["launch_cmd"],
            environ=state.node.environ,
        )
        state.scrubber.add(spec.secrets)  # secrets the script itself sets
        for command in spec.commands:  # and passes as options
            state.scrubber.add(secret_values(w.text for w in command.argv))
        state.node.launch = _with_syntax(state, spec)
    if state.settings["nvml_replay"]:
        _ = state.node.gpus  # read now: a bad replay file is bad input (exit 4), not a crash
    report_dir = Path(state.settings["report_dir"])
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        probe = report_dir / f".preflight-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"{report_dir}: report dir is not writable: {exc.strerror}") from None


class JunitPathError(InputError):
    """--junitxml names a file that cannot be written."""


def _drop_junit(config: pytest.Config) -> None:
    """Unregister pytest's junitxml writer: its end-of-session write to a path that cannot
    be written would be a traceback after the one-line error."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is not None:  # as junitxml's own pytest_unconfigure lets it go
        del config.stash[xml_key]
        config.pluginmanager.unregister(xml)
    config.option.xmlpath = None


def _check_junit_path(xmlpath: str | None) -> None:
    """pytest's junitxml writes its file only at the session's end (_pytest/junitxml.py
    pytest_sessionfinish: os.makedirs of its directory, then open): a path it cannot
    write was a traceback after every check ran. Tried first, as the report dir is."""
    if not xmlpath:
        return
    path = Path(os.path.normpath(os.path.abspath(os.path.expanduser(os.path.expandvars(
        xmlpath)))))  # as junitxml resolves it (LogXML.__init__)
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".preflight-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise JunitPathError(f"--junitxml {xmlpath}: cannot be written: {exc.strerror}") \
            from None


def _with_syntax(state: SessionState, spec: LaunchSpec) -> LaunchSpec:
    """`bash -n` of the launch (probes.bash_syntax): where real bash stops at a syntax
    error, what the reader found after it is not what the job runs, so the launch checks
    see the spec as not read (UNKNOWN naming the error) and launch-syntax judges it."""
    import dataclasses

    from preflight.launch import shell
    from preflight.probes import bash_syntax

    script, command = state.settings["launch_script"], state.settings["launch_cmd"]
    text = command or ""
    if script:
        try:  # the launch reader's own bounded read (launch.load just read it the same way)
            text, _ = shell.read_script(script)
        except shell.ScriptFileError:
            text = ""
    found = bash_syntax.check(script, None if script else command, text,
                              scrub=state.scrubber.text)  # holds spec.secrets by now
    state.node.launch_syntax = found
    reads = _read_files(spec, script)
    texts = []
    for read in reads:
        try:
            texts.append((read.path, shell.read_script(read.path)[0]))
        except shell.ScriptFileError:
            texts.append((read.path, ""))  # bash -n says why it cannot read it
    judged = bash_syntax.check_files(texts, scrub=state.scrubber.text)
    if found.parse_changing or any(x.parse_changing for x in judged):
        # a `shopt -s extglob` / alias in one file changes how bash parses the others
        judged = [dataclasses.replace(x, parse_changing=True) for x in judged]
    state.node.launch_syntax_reads = tuple(zip(reads, judged, strict=True))
    for target, syntax in ((script, found), *((r.path, s) for r, s in
                                               state.node.launch_syntax_reads)):
        top = target is script
        # the script's own exit: named as bash was given it (basename), a read file's by
        # its path
        same = spec.exit is not None and target is not None and (
            os.path.basename(spec.exit.file) == os.path.basename(target) if top
            else spec.exit.file == target)
        exits_first = same and spec.exit is not None and syntax.line is not None and \
            spec.exit.line < syntax.line
        if syntax.ok is not False or syntax.parse_changing or exits_first:
            continue
        where = f"{os.path.basename(syntax.target)}:{syntax.line}"
        return dataclasses.replace(
            spec, syntax_error=f"{where}: {syntax.said}",
            unread=f"bash stops at {where} with a syntax error ({syntax.said}); what "
                   f"follows{'' if top else ' in that file'} never runs")
    return spec


def _read_files(spec: LaunchSpec, script: str | None) -> list[Read]:
    """The files on disk the launch sources or runs as scripts (LaunchSpec.reads), each
    once: `maybe` only where every read of it is on a branch that may not run."""
    import dataclasses

    first: dict[str, Read] = {}
    for read in spec.reads:
        if script is not None and os.path.abspath(read.path) == os.path.abspath(script):
            continue
        had = first.get(read.path)
        first[read.path] = read if had is None else \
            dataclasses.replace(had, maybe=had.maybe and read.maybe)
    return list(first.values())


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[state_key]
    checks = [it for it in items if it.get_closest_marker("pitfall")]
    _require_selection(config, state, checks, "-k/-m")
    if not checks:
        return
    state.active = True
    _install_signal_handlers(state)
    try:
        _load_inputs(state)
        _check_junit_path(config.getoption("xmlpath", None))
    except InputError as exc:
        if isinstance(exc, JunitPathError):
            _drop_junit(config)
        state.input_error = True
        raise pytest.UsageError(state.scrubber.text(_as_given(config, str(exc)))) from None

    keep, drop = [], []
    wanted_ids = set(config.getoption("check_ids") or [])
    unknown_ids = wanted_ids - {_check_id(it) for it in checks}
    if unknown_ids:
        state.input_error = True
        raise pytest.UsageError(f"--check: unknown check id(s): {', '.join(sorted(unknown_ids))}")
    chosen = state.settings["profile"]
    if chosen is not None and chosen not in state.profiles:
        state.input_error = True
        raise pytest.UsageError(_as_given(config, f"--profile {chosen}: unknown profile "
                                          f"(known: {', '.join(sorted(state.profiles))})"))
    if chosen is None and not _markexpr_names_profile(config, set(state.profiles)):
        if state.detected is None:
            try:
                state.detected = _detect_profile(state)
            except Exception as exc:  # never let detection crash the gate
                state.detected = ("cpu", f"GPU detection failed ({exc}): using cpu")
        chosen, state.profile_note = state.detected
    for item in items:
        pitfall = item.get_closest_marker("pitfall")
        prof = _item_profile(item)
        if pitfall is None:
            keep.append(item)
        elif wanted_ids and pitfall.args[0] not in wanted_ids:
            drop.append(item)
        elif chosen is not None and prof is not None and prof.name != chosen:
            drop.append(item)
        else:
            keep.append(item)
    keep, drop = _apply_levels(config, keep, drop, bool(wanted_ids))
    if drop:
        config.hook.pytest_deselected(items=drop)
    keep.sort(key=lambda it: STAGES.index(_item_stage(it)) if it.get_closest_marker("pitfall")
              else -1)
    items[:] = keep
    state.selected_profiles = sorted({p.name for it in keep if (p := _item_profile(it))})
    _require_selection(config, state, [it for it in keep if it.get_closest_marker("pitfall")],
                       "the stages run")
    config.stash[selected_key] = [it.nodeid for it in keep if it.get_closest_marker("pitfall")]


# -- levels: the static stage by default, workloads and the stack on request ----------

LEVELS = {
    # option dest: (flag, stages it adds, help)
    "run_workloads": ("--workloads", ("workload",),
                      "also run the real torchrun workloads (stage workload, tens of seconds)"),
    "run_stack": ("--stack", ("stack",),
                  "also run the user's training stack (stage stack: ms-swift, SGLang; minutes)"),
    "run_all": ("--all", ("workload", "stack"), "run every stage (--workloads --stack)"),
}


def _addoption_levels(group: Any) -> None:
    for dest, (flag, _, help_text) in LEVELS.items():
        group.addoption(flag, dest=dest, action="store_true", default=False, help=help_text)


def _enabled_stages(config: pytest.Config) -> set[str]:
    """The static stage always; a later one when a flag or `-m` names it (pytest users keep
    `-m workload` / `-m stack`)."""
    stages = {"static"}
    for dest, (_, adds, _) in LEVELS.items():
        if config.getoption(dest, False):
            stages.update(adds)
    expr = config.getoption("markexpr", "") or ""
    stages.update(set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr)) & set(STAGES))
    return stages


def _apply_levels(config: pytest.Config, keep: list[pytest.Item], drop: list[pytest.Item],
                  explicit: bool) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """Deselect the stages not asked for; `--check ID` names its checks explicitly."""
    if explicit:
        return keep, drop
    stages = _enabled_stages(config)
    kept = [it for it in keep
            if not it.get_closest_marker("pitfall") or _item_stage(it) in stages]
    left_out = [it for it in keep if it not in kept]
    config.stash[levels_key] = (sorted(stages, key=STAGES.index), len(left_out))
    return kept, drop + left_out


levels_key = pytest.StashKey[tuple[list[str], int]]()


# -- artifacts CI can trust: no report for a run that judged nothing ---------------------

selected_key = pytest.StashKey[list[str]]()
collected_key = pytest.StashKey[int]()
ARTIFACTS = (report.JSON_NAME, report.MD_NAME, report.HTML_NAME)
LOGS_DIR = "preflight-logs"  # under the report dir: pytest's basetemp for preflight runs


def _report_dir(config: pytest.Config) -> Path:
    return Path(_setting(config, "report_dir") or DEFAULT_REPORT_DIR)


def _discard_stale_report(config: pytest.Config) -> None:
    """A run that ends without a verdict leaves no report: an earlier run's GO in the same
    dir would otherwise read as current."""
    try:
        report_dir = _report_dir(config)
        for name in ARTIFACTS:
            (report_dir / name).unlink(missing_ok=True)
    except (OSError, ValueError):
        pass  # an unusable report dir is reported by the run itself


def _require_selection(config: pytest.Config, state: SessionState, checks: list[pytest.Item],
                       by: str) -> None:
    """`-k`/`-m` (or the level) leaving no check is bad input: exit 4, no verdict."""
    collected = config.stash.get(collected_key, 0)
    if checks or not collected:
        return
    state.input_error = True
    hint = ""
    if by != "-k/-m":
        hint = " (the workload and stack stages run with --workloads / --stack / --all)"
    expr = " ".join(f"{flag} {value!r}" for flag, value in (
        ("-k", config.getoption("keyword", "")), ("-m", config.getoption("markexpr", "")))
        if value)
    raise pytest.UsageError(
        f"no check selected: {expr or 'the selection'} matches no check{hint}; "
        "`preflight list` shows the check ids")


def _every_selected_check_ran(config: pytest.Config, state: SessionState) -> bool:
    """False after -x / --maxfail or any stop: a check that never ran is not a pass."""
    selected = config.stash.get(selected_key, [])
    return all(nodeid in state.findings for nodeid in selected)


class ArtifactGuard:
    """Counts the checks collected; puts workload/stack logs under the report dir; after
    the run, removes what a run without a verdict must not leave (report, JUnit) and makes
    WARN checks visible in JUnit."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        if (config.option.basetemp is None and not hasattr(config, "workerinput")
                and any(_is_checks_path(str(a)) for a in config.args)):
            # tmp_path of the checks (workload, stack logs) under the report dir, not
            # pytest's rotating /tmp/pytest-of-*; pytest empties it at the start of a run.
            config.option.basetemp = str(_report_dir(config) / LOGS_DIR)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        checks = [it for it in items if it.get_closest_marker("pitfall")]
        self.config.stash[collected_key] = len(checks)
        # `-k nccl-allreduce` selects by check id too: before pytest's own -k deselection
        # (_pytest/mark/__init__.py deselect_by_keyword), which matches these keywords.
        for it in checks:
            it.extra_keyword_matches.add(_check_id(it))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.config.option.collectonly and self.config.stash.get(collected_key, 0):
            terminalreporter.write_line(
                "preflight: --co lists the selected checks only: no verdict, no report")

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        state = config.stash.get(state_key, None)
        if state is None or hasattr(config, "workerinput"):
            return
        xmlpath = getattr(config.option, "xmlpath", None)
        if state.report is None and (state.input_error or config.option.collectonly):
            _discard_stale_report(config)
            if xmlpath:
                Path(xmlpath).unlink(missing_ok=True)
        elif state.report is not None and xmlpath and os.path.isfile(xmlpath):
            _junit_show_warnings(Path(xmlpath))


def _junit_show_warnings(path: Path) -> None:
    """WARN checks pass in JUnit; GitLab and Jenkins show a testcase's <system-out>, not its
    <properties>, so the warning, its fix and check id go there too."""
    import xml.etree.ElementTree as ET

    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return
    changed = False
    for case in tree.iter("testcase"):
        props = {p.get("name"): p.get("value") or "" for p in case.iter("property")}
        if props.get("preflight.severity") != "warning":
            continue
        text = f"WARN [{props.get('preflight.check', '')}]: {props.get('preflight.summary', '')}"
        if props.get("preflight.fix"):
            text += "\nfix: " + props["preflight.fix"]
        if props.get("preflight.why"):
            text += "\nwhy: " + props["preflight.why"]
        out = case.find("system-out")
        if out is None:
            out = ET.SubElement(case, "system-out")
        out.text = text + ("\n" + out.text if out.text else "")
        changed = True
    if changed:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)


# -- fixtures ----------------------------------------------------------------------


class Recorder:
    """What a check says beyond its assert: evidence, the fix, a warning."""

    def __init__(self, check: str, profile: Profile | None):
        self.check = check
        self.profile = profile
        self.facts: dict[str, Any] = {}
        self.fix_text = ""
        self.why_text = ""
        self.config: pytest.Config | None = None
        self.note = ""
        self.warned = False
        self.unknown_reason = ""

    def evidence(self, **facts: Any) -> None:
        self.facts.update(facts)

    def fix(self, text: str) -> None:
        self.fix_text = text

    def why(self, text: str) -> None:
        """Why the fix works, or what to look at: prose never goes in `fix`."""
        self.why_text = text

    def summary(self, text: str) -> None:
        self.note = text

    def warn(self, summary: str) -> None:
        """A problem that does not block: the test passes, the report says WARN."""
        self.warned = True
        self.note = summary

    def skip(self, reason: str) -> NoReturn:
        pytest.skip(reason)

    def progress(self, text: str) -> None:
        """A long check's progress (phase, elapsed against the bound, per rank): one
        refreshing line on a terminal, plain lines otherwise; past pytest's capture."""
        if self.config is not None:
            show_progress(self.config, f"{self.check}: {text}")

    def unknown(self, reason: str) -> NoReturn:
        """The check could not decide; that blocks GO."""
        self.unknown_reason = reason
        pytest.fail(reason, pytrace=False)

    def conclude(self, verdict: Verdict) -> None:
        """The one way a judged check ends: evidence, fix and outcome from its Verdict.

        The fix is the deciding problems' own fixes (never whichever ran last), else the
        verdict's default; see `Verdict` for the order of outcomes."""
        self.evidence(**verdict.evidence)
        deciding = verdict.deciding
        fixes = dict.fromkeys(p.fix for p in deciding if p.fix)
        self.fix_text = verdict.fix_joiner.join(fixes) or verdict.fix
        self.why_text = "; ".join(dict.fromkeys(p.why for p in deciding if p.why)) or verdict.why
        if verdict.skip:  # a skipped check still names its fix (e.g. how to install it)
            self.skip(verdict.skip)
        if verdict.of(Kind.BLOCKER):
            raise AssertionError(verdict.message)
        if deciding and deciding[0].kind is Kind.UNKNOWN:
            self.unknown(verdict.message)
        if deciding:
            self.warn(verdict.message)
        elif verdict.ok:
            self.summary(verdict.ok)


@pytest.fixture(scope="session")
def node(request: pytest.FixtureRequest) -> Node:
    return request.config.stash[state_key].node


@pytest.fixture(scope="session")
def preflight_state(request: pytest.FixtureRequest) -> SessionState:
    return request.config.stash[state_key]


@pytest.fixture(scope="session")
def env_file(preflight_state: SessionState) -> EnvFile | None:
    """The parsed --env-file (None when there is none); values never leave the probe."""
    return preflight_state.env_file


@pytest.fixture(scope="session")
def launch(node: Node) -> LaunchSpec | None:
    """The launch the user pointed at (--launch-script / --launch-cmd); None without one."""
    return node.launch


@pytest.fixture
def finding(request: pytest.FixtureRequest) -> Recorder:
    item = request.node
    pitfall = item.get_closest_marker("pitfall")
    if pitfall is None:
        raise pytest.UsageError(f"{item.nodeid}: the finding fixture needs @pytest.mark.pitfall")
    recorder = Recorder(pitfall.args[0], _item_profile(item))
    recorder.config = item.config
    item.stash[recorder_key] = recorder
    return recorder


def show_progress(config: pytest.Config, text: str) -> None:
    """The printing surface for progress: through pytest's TerminalReporter, with output
    capture suspended, so it shows under `preflight` and `pytest preflight/` alike."""
    from contextlib import nullcontext

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    capman = config.pluginmanager.get_plugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else nullcontext():
        if reporter.isatty():
            reporter.rewrite(text[: max(20, reporter._tw.fullwidth - 1)], erase=True)
            config.stash[progress_key] = True
        else:
            reporter.write_line(text)


def clear_progress(config: pytest.Config) -> None:
    """Erase a refreshing progress line (terminal only) before the next output."""
    if config.stash.get(progress_key, False):
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.rewrite("", erase=True)
        config.stash[progress_key] = False


progress_key = pytest.StashKey[bool]()


# -- reports -----------------------------------------------------------------------


def _first_line(text: object) -> str:
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def _build_finding(item: pytest.Item, call: pytest.CallInfo[None], rep: pytest.TestReport,
                   state: SessionState) -> Finding:
    check = _check_id(item)
    prof = _item_profile(item)
    recorder = item.stash.get(recorder_key, None) or Recorder(check, prof)
    found = Finding(
        check=check,
        nodeid=item.nodeid,
        evidence=recorder.facts,
        fix=recorder.fix_text,
        runbook=str(runbooks.path_for(check)),
        profile=prof.name if prof else "",
        stage=_item_stage(item),
        duration_s=round(call.duration, 3),
    )
    excinfo = call.excinfo
    if rep.passed:
        found.outcome = "passed"
        found.severity = Severity.WARNING if recorder.warned else Severity.OK
        found.summary = recorder.note or "ok"
    elif rep.skipped:
        found.outcome = "skipped"
        found.severity = Severity.INFO
        longrepr = rep.longrepr
        found.summary = longrepr[2] if isinstance(longrepr, tuple) else _first_line(longrepr)
        found.summary = found.summary.removeprefix("Skipped: ")
    elif rep.when != "call":
        found.outcome = "error"
        found.severity = Severity.UNKNOWN
        found.summary = f"{rep.when} error: {_first_line(excinfo.exconly() if excinfo else '')}"
    else:
        found.outcome = "failed"
        judged = excinfo is not None and excinfo.errisinstance(
            (AssertionError, pytest.fail.Exception))
        if recorder.unknown_reason:
            found.severity = Severity.UNKNOWN
            found.summary = recorder.unknown_reason
        elif judged:
            found.severity = prof.severity_for(check) if prof else Severity.BLOCKER
            message = str(excinfo.value) if excinfo else ""
            found.summary = _first_line(message) or "check failed"
        else:
            found.severity = Severity.UNKNOWN
            found.summary = f"{CRASHED}{_first_line(excinfo.exconly()) if excinfo else ''}"
    scrub = state.scrubber
    found.summary = scrub(found.summary)
    found.evidence = scrub(found.evidence)
    found.fix = scrub(found.fix)
    _split_fix(found, scrub(recorder.why_text))
    return found


def _split_fix(found: Finding, why: str) -> None:
    """`fix` keeps the shell commands, one per line; comments and sentences go to `why`."""
    from preflight import fixes

    found.fix, moved = fixes.split(found.fix)
    found.why = "; ".join(part for part in (why, moved) if part)


def _longrepr(found: Finding) -> str:
    import json

    lines = [f"[{found.check}] {found.severity.label.upper()}: {found.summary}"]
    if found.evidence:
        lines.append("evidence: " + json.dumps(found.evidence, sort_keys=True))
    if found.fix:
        lines.append("fix: " + found.fix.replace("\n", "\n     "))
    if found.why:
        lines.append("why: " + found.why)
    lines.append(f"runbook: {found.runbook}")
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    pitfall = item.get_closest_marker("pitfall")
    state = item.config.stash.get(state_key, None)
    if pitfall is None or state is None:
        return rep
    if rep.when == "call" or not rep.passed:
        found = _build_finding(item, call, rep, state)
        if rep.failed and found.severity == Severity.WARNING:
            # The profile downgraded this check: the test passes, the report says WARN.
            rep.outcome = "passed"
            rep.longrepr = None
            found.outcome = "passed"
        elif rep.failed and found.outcome == "failed" and not found.summary.startswith(CRASHED):
            rep.longrepr = _longrepr(found)  # judged: the finding says it all
        elif rep.failed:
            rep.longrepr = state.scrubber.text(str(rep.longrepr))  # a crash keeps its trace
        elif rep.skipped and isinstance(rep.longrepr, tuple):
            # The skip reason reaches the terminal (-rs) and JUnit's <skipped message>.
            path, lineno, reason = rep.longrepr
            rep.longrepr = (path, lineno, state.scrubber.text(str(reason)))
        # Extra report attributes live in its __dict__, as pytest's own TestReport(**extra)
        # puts them (_pytest/reports.py, TestReport.__init__): they survive serialization.
        vars(rep).update(preflight=found.to_json(),
                         preflight_warned=found.severity == Severity.WARNING)
        if rep.when != "teardown":  # junitxml reads the properties off the teardown report
            item.user_properties.extend([
                ("preflight.check", found.check),
                ("preflight.severity", found.severity.label),
                ("preflight.fix", found.fix),
                ("preflight.runbook", found.runbook),
                ("preflight.summary", found.summary),
                ("preflight.why", found.why),
            ])
    return rep


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config
                             ) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
    if report.when == "call" and report.passed and getattr(report, "preflight_warned", False):
        return "warned", "W", ("WARN", {"yellow": True})
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(state_key, None)
    if state is None or not state.active or state.input_error:
        return
    if session.config.option.collectonly:
        return  # a listing, not a run: no verdict, no report (ArtifactGuard says so)
    if hasattr(session.config, "workerinput"):  # xdist workers leave writing to the controller
        return
    for sig in state.saved_handlers:  # the run is over: a late SIGTERM must not cut the write
        signal.signal(sig, signal.SIG_IGN)
    findings = list(state.findings.values())
    complete = exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
    complete = complete and _every_selected_check_ran(session.config, state)
    state.report = report.build(
        findings,
        verdict=verdict(findings, complete),
        profile=",".join(state.selected_profiles),
        host=socket.gethostname(),
        started=datetime.fromtimestamp(state.started, UTC).isoformat(timespec="seconds"),
        duration_s=time.time() - state.started,
        complete=complete,
        version=__version__,
    )
    if state.profile_note:
        state.report["profile_note"] = state.profile_note
    state.report["node"] = _node_facts(state)
    state.report = state.scrubber(state.report)  # the last gate before any output
    try:
        state.written = report.write(state.report, Path(state.settings["report_dir"]))
    except OSError as exc:
        state.write_error = f"{state.settings['report_dir']}: cannot write report: {exc.strerror}"
        session.exitstatus = pytest.ExitCode.USAGE_ERROR


def _node_facts(state: SessionState) -> dict[str, Any]:
    """The node's identity and versions (preflight/node_facts.py), for `preflight merge`."""
    from preflight import node_facts

    try:
        facts: dict[str, Any] = state.scrubber(node_facts.collect(state.node.gpus,
                                                                   state.node.environ))
        return facts
    except Exception as exc:  # the facts never cost the verdict
        return {"hostname": socket.gethostname(), "error": f"{type(exc).__name__}: {exc}"}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    state = config.stash.get(state_key, None)
    if state is None or state.report is None or config.stash.get(face_key, False):
        return  # under the `preflight` command, face.py writes the output
    terminalreporter.section("preflight")
    if state.profile_note:
        terminalreporter.write_line(state.profile_note)
    go = state.report["verdict"] == "GO"
    for index, line in enumerate(report.terminal_lines(state.report)):
        terminalreporter.write_line(line, bold=index == 0, green=go and index == 0,
                                    red=not go and index == 0)
    if state.written:
        terminalreporter.write_line("report: " + ", ".join(str(p) for p in state.written))
    if state.write_error:
        terminalreporter.write_line("ERROR: " + state.write_error, red=True)


@pytest.fixture(scope="session")
def settings(preflight_state: SessionState) -> Settings:
    """The effective preflight settings (CLI > PREFLIGHT_* env > ini); a copy."""
    return preflight_state.settings.copy()
