"""The `preflight` command's terminal face, as a plugin object the command registers.

pytest's reporter stays in place (we never replace it): the command runs it quiet
(`-qq --tb=no -rN`, see cli.py), this plugin blanks the progress letters of preflight's
checks and writes preflight's own lines through the same TerminalReporter. `pytest
preflight/` (and `preflight --pytest-output`) never registers it and keeps pytest's output.
"""

from __future__ import annotations

import socket
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from preflight import __version__, console
from preflight.redact import printable

if TYPE_CHECKING:
    from preflight.plugin import SessionState

# pytest_report_teststatus's answer: (category, short letter, verbose word or (word, markup))
TestStatus = tuple[str, str, str | tuple[str, dict[str, bool]]]


class Face:
    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.config: pytest.Config | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        from preflight.plugin import face_key

        config.stash[face_key] = True
        self.config = config

    @staticmethod
    def _state(config: pytest.Config) -> SessionState | None:
        from preflight.plugin import state_key

        return config.stash.get(state_key, None)

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config
                                 ) -> Generator[None, TestStatus | None, TestStatus | None]:
        res = yield
        if res and getattr(report, "preflight", None) is not None:
            return res[0], "", ""  # counted as before, printed by us
        return res

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        if self.config is not None:
            from preflight.plugin import clear_progress

            clear_progress(self.config)

    def _write(self, config: pytest.Config, line: console.Line) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            # a line may quote what another user wrote (a /dev/shm file's name, a process's
            # title): its control characters must not drive this terminal
            reporter.write_line(printable(line[0]), **line[1])

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from preflight.plugin import levels_key

        state = self._state(session.config)
        if (state is None or not state.active or state.input_error
                or session.config.option.collectonly):
            return
        stages = session.config.stash.get(levels_key, (None, 0))[0] or []
        self._write(session.config, console.header(
            __version__, ",".join(state.selected_profiles) or "-", self._why(session.config,
                                                                            state),
            socket.gethostname(), stages))

    @staticmethod
    def _why(config: pytest.Config, state: SessionState) -> str:
        if state.profile_note:  # "no GPU detected (why): using profile cpu"
            why = state.profile_note.split(": using profile")[0]
            if why.endswith(")") and " (" in why:
                why = why[:-1].replace(" (", ": ", 1)
            return why
        if config.getoption("profile", None):
            return "from --profile"
        if state.settings.get("profile"):
            return "from PREFLIGHT_PROFILE / preflight_profile"
        return f"from -m {config.getoption('markexpr', '')}".rstrip()

    @pytest.hookimpl(tryfirst=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # After pytest's own last words ("stopping after 1 failures", the interrupt
        # location): the verdict line is the last line.
        from preflight.plugin import levels_key

        state = self._state(config)
        if state is None or state.report is None:
            return
        enabled, left_out = config.stash.get(levels_key, (None, 0))
        not_run = [s for s in ("workload", "stack") if enabled and s not in enabled] \
            if left_out else []
        for line in console.render(state.report, verbose=self.verbose, not_run=not_run,
                                   written=[str(p) for p in state.written]):
            self._write(config, line)
        if state.write_error:
            self._write(config, ("ERROR: " + state.write_error, {"red": True}))
