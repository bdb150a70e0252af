"""The judges: one pure function per check, typed facts + profile in, a `Verdict` out.

A judge never reads the machine, never spawns, never imports pytest: its facts are
gathered by the check's adapter (`preflight/checks/test_<subject>.py`) from the probes,
and its `Verdict` (`preflight.model`) is turned into the finding by `Recorder.conclude`.
That makes every judgement testable in-process from a table (tests/judges/).

Import rule: `preflight.model`, `preflight.numbers`, `preflight.fixes` and the probes'
and launch readers' *data types*; nothing that does I/O at import or call time.
"""
