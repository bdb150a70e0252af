"""preflight's own face: the command's output, levels, CLI surface, artifacts CI can trust,
and the pytest11 shim that leaves unrelated pytest runs alone. The real command runs in a
subprocess (`python -m preflight`), as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support import CHECKS, FIXTURES, REPO, base_env

from preflight import __version__, cli, console
from preflight.report import markdown, terminal_lines
from preflight.runbooks import all_ids

NO_NVML = FIXTURES / "nvml" / "no-nvml.json"
STATUS_LINE = re.compile(r"^  (PASS|WARN|FAIL|UNKNOWN|SKIP) +([a-z0-9-]+) +\S")


def preflight(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
              report_dir: Path | None = None, timeout: float = 180):
    report_dir = report_dir or tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "preflight", "--report-dir", str(report_dir),
                           *args], cwd=tmp_path, env=env or base_env(), capture_output=True,
                          text=True, timeout=timeout)
    report = report_dir / "preflight-report.json"
    return proc, (json.loads(report.read_text()) if report.exists() else None)


def _nonempty(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- output and levels ------------------------------------------------------------------


def test_default_run_is_the_static_stage_with_preflights_own_output(tmp_path):
    started = time.monotonic()
    proc, report = preflight(tmp_path)
    took = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    lines = _nonempty(out)
    assert lines[0].startswith(f"preflight {__version__} | profile cpu (")
    assert " | node " in lines[0] and "stages static" in lines[0]
    # No pytest noise: header, timeout settings, paths of the installed checks, progress.
    for noise in ("test session starts", "timeout:", "site-packages", "rootdir:",
                  "test_node.py", "passed", "deselected", "[100%]"):
        assert noise not in out, noise
    # One line per check id, with its status; grouped by stage (only static by default).
    ids = [m.group(2) for line in lines if (m := STATUS_LINE.match(line))]
    assert len(ids) == len(set(ids)) == len({c["id"] for c in report["checks"]})
    assert {s["stage"] for s in report["stages"]} == {"static"}
    assert "not run: stage workload, stack" in out
    # The verdict line is last and agrees with the exit code and the report.
    assert lines[-1].startswith(report["verdict"] + "  profile cpu")
    assert (proc.returncode == 0) == (report["verdict"] == "GO")
    # Reports are readable; logs of checks (tmp_path) live under the report dir.
    for name in ("preflight-report.json", "preflight-report.md"):
        assert (tmp_path / "report" / name).stat().st_mode & 0o777 == 0o644
    assert "pytest-of-" not in json.dumps(report)
    print(f"default preflight: {took:.2f} s, {len(ids)} checks")


def test_levels_select_the_stages_asked_for(tmp_path):
    def collected(*args: str) -> set[str]:
        proc = subprocess.run([sys.executable, "-m", "pytest", str(CHECKS), "--co", "-q",
                               "-p", "no:cacheprovider", "--rootdir", str(REPO), "--profile",
                               "cpu", "--report-dir", str(tmp_path / "r"), *args],
                              cwd=tmp_path, env=base_env(), capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return {line.split("::")[0].rsplit("/", 1)[-1] for line in proc.stdout.splitlines()
                if "::" in line}

    assert "test_workloads.py" not in collected()
    assert "test_workloads.py" in collected("--workloads")
    assert "test_workloads.py" in collected("-m", "workload")  # pytest users keep -m
    both = collected("--all")
    assert {"test_workloads.py", "test_stack.py"} <= both
    assert not (tmp_path / "r" / "preflight-report.json").exists()  # --co writes no report


def test_missing_nvml_is_reported_once_under_gpu_inventory(tmp_path):
    checks = ("gpu-inventory", "gpu-free", "gpu-health", "profile-match", "host-limits")
    proc, report = preflight(tmp_path, "--profile", "a800", "--nvml-replay", str(NO_NVML),
                             *sum((["--check", c] for c in checks), []))
    out = proc.stdout
    assert proc.returncode == 1 and report["verdict"] == "NO-GO", out + proc.stderr
    blocked = {c["id"] for c in report["checks"] if c["blocked_by"] == "gpu-inventory"}
    assert {"gpu-free", "gpu-health", "profile-match"} <= blocked
    assert "gpu-inventory" not in blocked and "host-limits" not in blocked
    blockers = out[out.index("blockers:"):]
    assert "  gpu-inventory: " in blockers
    assert "also fails because of it: gpu-free, gpu-health, profile-match" in blockers
    for dependent in ("gpu-free", "gpu-health", "profile-match"):
        assert f"  {dependent}: " not in blockers  # not a blocker of its own
        line = next(x for x in out.splitlines() if STATUS_LINE.match(x)
                    and STATUS_LINE.match(x).group(2) == dependent)
        assert "blocked by gpu-inventory: NVML unavailable" in line
    assert out.count("cannot read GPU") == 0  # the per-GPU repeats are folded
    assert "(5 of 5 cases FAIL)" in out  # 4 GPUs + the visibility case, one line


def test_verbose_shows_evidence_and_pytest_output_keeps_pytests(tmp_path):
    from preflight.probes.ports import free_port

    # a free MASTER_PORT: another program on a shared box may hold the default 29500
    env = base_env(MASTER_PORT=str(free_port("0.0.0.0")))
    proc, report = preflight(tmp_path, "--profile", "cpu", "--check", "port-free", "-v",
                             env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "evidence: {" in proc.stdout and '"port": ' in proc.stdout
    raw, _ = preflight(tmp_path, "--profile", "cpu", "--check", "port-free",
                       "--pytest-output", report_dir=tmp_path / "raw", env=env)
    assert raw.returncode == 0
    assert "preflight verdict: GO" in raw.stdout and "passed" in raw.stdout


def test_render_is_pure_and_colours_only_through_markup():
    finding = {"id": "port-free", "nodeid": "x::t[cpu]", "outcome": "failed",
               "severity": "blocker", "summary": "MASTER_PORT 29500 is held",
               "evidence": {"port": 29500}, "fix": "export MASTER_PORT=29611\n",
               "why": "the port is bound by pid 7", "runbook": "", "profile": "cpu",
               "stage": "static", "duration_s": 0.0}
    report = {"verdict": "NO-GO", "complete": False, "profile": "cpu", "duration_s": 0.2,
              "stages": [], "checks": [finding]}
    lines = console.render(report)
    texts = [text for text, _ in lines]
    assert "    $ export MASTER_PORT=29611" in texts
    assert "    why: the port is bound by pid 7" in texts
    assert "\x1b" not in "".join(texts)  # escapes come from TerminalWriter on a TTY only
    assert texts[-1].startswith("NO-GO") and "INCOMPLETE" in texts[-1]
    assert lines[-1][1]["red"] and lines[-1][1]["bold"]


def _finding(check: str, severity: str, summary: str, fix: str) -> dict:
    return {"id": check, "nodeid": f"x::t[{check}]", "outcome": "failed", "severity": severity,
            "summary": summary, "evidence": {}, "fix": fix, "why": "", "runbook": "",
            "profile": "cpu", "stage": "static", "duration_s": 0.0, "blocked_by": ""}


MIXED = {"verdict": "NO-GO", "complete": True, "profile": "cpu", "host": "n", "started": "t",
         "duration_s": 0.2, "stages": [], "preflight_version": "0",
         "counts": {"blocker": 1, "unknown": 1},
         "checks": [_finding("port-free", "blocker", "MASTER_PORT 29500 is held",
                             "export MASTER_PORT=29611"),
                    _finding("launch-ports", "unknown", "cannot check the ports: the node's "
                             "GPU count could not be read (NVML unavailable)", "nvidia-smi -L")]}


def test_an_unknown_is_listed_apart_from_the_blockers():
    """An UNKNOWN blocks GO but is not a blocker: console, Markdown and the pytest section
    list it in its own section with what could not be read and its command; the verdict
    line's count keeps its meaning (what blocks GO) and says how many only could not decide."""
    texts = [text for text, _ in console.render(MIXED)]
    out = "\n".join(texts)
    blockers = out[out.index("\nblockers:"):out.index("\nunknown (could not decide):")]
    unknown = out[out.index("\nunknown (could not decide):"):out.index("\nNO-GO")]
    assert "  port-free: MASTER_PORT 29500 is held" in blockers and "launch-ports" not in blockers
    assert "  launch-ports: cannot check the ports: the node's GPU count could not be read " \
           "(NVML unavailable)" in unknown and "    $ nvidia-smi -L" in unknown
    assert texts[-1].startswith("NO-GO  profile cpu: 2 blocker(s) (incl. 1 unknown), ")
    md = markdown(MIXED)
    assert md.index("## Blockers") < md.index("`port-free`") < \
        md.index("## Unknown (could not decide)") < md.index("`launch-ports`")
    section = terminal_lines(MIXED)
    assert section[0].startswith("preflight verdict: NO-GO  (profile cpu; 2 blocker(s) (incl. "
                                 "1 unknown), ")
    assert "  BLOCKER port-free [cpu]: MASTER_PORT 29500 is held" in section
    assert any(line.startswith("  UNKNOWN launch-ports [cpu]: ") for line in section)


# -- CLI surface ------------------------------------------------------------------------


def test_version_help_explain(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"preflight {__version__} (distribution "
                                              "pytest-preflight")
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "usage: preflight" in text and "pytest.main" not in text
    assert len(text.splitlines()) < 80
    for needle in ("--workloads", "--stack", "--all", "--profile", "--pytest-output",
                   "--help-pytest", "list", "explain", "info", "  4  bad input"):
        assert needle in text, needle
    assert text.index("commands:") < text.index("options:") < text.index("exit codes:")
    assert cli.main(["explain", "port-free"]) == 0
    assert capsys.readouterr().out.startswith("# port-free:")
    assert cli.main(["explain", "no-such"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("ERROR: ") and len(err.splitlines()) == 1


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_answers_help(command, capsys):
    """A first-time user types `preflight explain --help`: usage, exit 0, not an ERROR
    about a check id named `--help`."""
    for flag in ("-h", "--help"):
        try:
            code = cli.main([command, flag])
        except SystemExit as exc:  # argparse's own --help exits 0 (info, merge, cluster)
            code = exc.code
        assert code == 0, flag
        out = capsys.readouterr()
        assert f"preflight {command}" in out.out and out.err == "", out


@pytest.mark.parametrize("argv, says", [
    (["explain"], "preflight explain ID: give one check id"),
    (["explain", "port-free", "gpu-free"], "preflight explain ID: give one check id"),
    (["info", "--bogus"], "unrecognized arguments: --bogus"),
    (["info", "--nvml-replay"], "expected one argument"),
])
def test_usage_errors_are_one_error_line_and_exit_4(argv, says, capsys):
    # exit 2 means "interrupted" in preflight's contract: argparse's own exit 2 and
    # multi-line usage must not leak out of a subcommand
    assert cli.main(argv) == 4
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("ERROR: ") and \
        len(out.err.splitlines()) == 1, out
    assert says in out.err


@pytest.mark.parametrize("argv, says", [
    (["--bogus-opt"], "ERROR: preflight: unrecognized arguments: --bogus-opt"),
    (["--check"], "ERROR: preflight: argument --check: expected one argument"),
    (["--pytest-output", "--profile"], "ERROR: preflight: argument --profile: expected one"),
])
def test_a_mistyped_option_is_one_error_line(argv, says, tmp_path):
    # pytest's own report was four lines: usage, the error, the checks' inifile and rootdir
    proc = subprocess.run([sys.executable, "-m", "preflight", *argv], cwd=tmp_path,
                          env=base_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4
    lines = [x for x in (proc.stdout + proc.stderr).splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(says), lines
    assert not (tmp_path / "preflight-report").exists()


def test_list_names_every_check_with_its_stage(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "preflight", "list"], cwd=tmp_path,
                          env=base_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    rows = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()}
    assert set(rows) == all_ids()
    assert rows["port-free"] == "static" and rows["nccl-allreduce"] == "workload"
    assert rows["swift-smoke-10"] == "stack"
    assert rows["cluster-versions"] == "cluster" and rows["cuda-oom"] == "triage"
    assert not (tmp_path / "preflight-report").exists()
    # a listing never touches the user's last report
    (tmp_path / "preflight-report").mkdir()
    (tmp_path / "preflight-report" / "preflight-report.json").write_text("{}")
    subprocess.run([sys.executable, "-m", "preflight", "list"], cwd=tmp_path, env=base_env(),
                   capture_output=True, timeout=120, check=True)
    assert (tmp_path / "preflight-report" / "preflight-report.json").read_text() == "{}"


# -- artifacts CI can trust --------------------------------------------------------------


def _stale(report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    for name in ("preflight-report.json", "preflight-report.md"):
        (report_dir / name).write_text('{"verdict": "GO"}')


@pytest.mark.parametrize("args, code, needle", [
    (("--check", "no-such-check"), 4, "ERROR: --check: unknown check id"),
    (("-k", "ncl and not nccl"), 4, "ERROR: no check selected: -k 'ncl and not nccl'"),
    (("-k", "allreduce"), 4, "run with --workloads"),  # a workload, at the default level
    (("--co",), 0, "no verdict, no report"),
])
def test_a_run_without_a_verdict_leaves_no_report_and_no_junit(tmp_path, args, code, needle):
    report_dir, junit = tmp_path / "report", tmp_path / "junit.xml"
    _stale(report_dir)
    proc, report = preflight(tmp_path, "--profile", "cpu", f"--junitxml={junit}", *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out
    assert needle in out
    assert "Traceback" not in out and "verdict: " not in out and "NO-GO" not in out
    assert report is None and not (report_dir / "preflight-report.md").exists()
    assert not junit.exists()


def test_maxfail_is_incomplete_and_junit_carries_id_summary_fix(tmp_path):
    junit = tmp_path / "junit.xml"
    proc, report = preflight(tmp_path, "--profile", "cpu", "--expect-env", "nope", "-x",
                             "--check", "conda-env", "--check", "nccl-ifname",
                             f"--junitxml={junit}",
                             env=base_env(CONDA_DEFAULT_ENV="base", NCCL_SOCKET_IFNAME="lo"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert report["complete"] is False and report["verdict"] == "NO-GO"
    assert "INCOMPLETE" in _nonempty(proc.stdout)[-1]
    failure = next(ET.parse(junit).iter("failure"))
    message = failure.get("message")
    assert "[conda-env]" in message and "CONDA_DEFAULT_ENV is 'base'" in message
    assert "fix: conda activate nope" in message


def test_warn_checks_are_visible_in_junit(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "lenient.toml").write_text(
        'extends = "cpu"\n[env]\nconda_env = "prl_clean"\n[severity]\nconda-env = "warning"\n')
    junit = tmp_path / "junit.xml"
    proc, report = preflight(tmp_path, "--profile", "lenient", "--profile-dir",
                             str(tmp_path / "p"), "--check", "conda-env",
                             f"--junitxml={junit}", env=base_env(CONDA_DEFAULT_ENV="base"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    case = next(ET.parse(junit).iter("testcase"))
    out = case.find("system-out")
    assert out is not None, ET.tostring(case).decode()
    assert out.text.startswith("WARN [conda-env]: CONDA_DEFAULT_ENV is 'base'")
    assert "fix: conda activate prl_clean" in out.text
    assert "warnings:" in proc.stdout and "WARN    conda-env" in proc.stdout


# -- a name of its own: the shim leaves unrelated pytest runs alone ----------------------


def _unrelated(tmp_path: Path) -> Path:
    work = tmp_path / "unrelated"
    work.mkdir()
    (work / "test_one.py").write_text("def test_one():\n    assert True\n")
    (work / "conftest.py").write_text(
        "import sys\n\ndef pytest_unconfigure(config):\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith('preflight'))\n"
        "    open('modules.txt', 'w').write(' '.join(loaded))\n")
    return work


def test_unrelated_pytest_run_gets_no_markers_options_or_imports(tmp_path):
    work = _unrelated(tmp_path)
    env = base_env()
    markers = subprocess.run([sys.executable, "-m", "pytest", "--markers"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=120).stdout
    for marker in ("@pytest.mark.static:", "@pytest.mark.workload:", "@pytest.mark.stack:",
                   "@pytest.mark.cpu:", "@pytest.mark.each(", "@pytest.mark.pitfall("):
        assert marker not in markers
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"], cwd=work,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    loaded = (work / "modules.txt").read_text().split()
    assert "preflight.pytest_entry" in loaded  # the entry point is installed and loaded ...
    assert "preflight.plugin" not in loaded and "preflight.probes" not in loaded  # ... only it
    assert not (work / "preflight-report").exists()


SHIM_COST = """\
import sys, time
from types import SimpleNamespace
import pytest
started = time.perf_counter()
from preflight import pytest_entry
imported = time.perf_counter() - started
args = sys.argv[1:]
started = time.perf_counter()
code = pytest.main(list(args))
run = time.perf_counter() - started
config = SimpleNamespace(pluginmanager=SimpleNamespace(has_plugin=lambda name: False))
started = time.perf_counter()
for _ in range(1000):
    pytest_entry.pytest_load_initial_conftests(config, None, list(args))
hook = (time.perf_counter() - started) / 1000
print(f"SHIM {int(code)} {imported:.6f} {hook:.9f} {run:.6f}")
"""


def test_unrelated_pytest_run_is_at_most_5_percent_slower(tmp_path):
    """What installing preflight adds to an unrelated run, measured inside that run: the
    shim's cold import (after pytest's own, as when pytest loads the entry point; `-X
    importtime` cannot see it, importlib.import_module bypasses it) and its hook's decision
    on the run's arguments, against the run's own time (pytest.main, without interpreter
    start: the share is overstated, not hidden). pytest does nothing else for a plugin it
    does not register: `-p no:preflight` skips only this import and hook (pluggy's
    load_setuptools_entrypoints enumerates the entry points either way). Paired whole runs,
    with and without the shim, are `benchmarks/unrelated_pytest.py`: their per-pair ratio
    spreads about +-20% on a 2-core box, too wide for a 5% bound in a test (a CI run once
    read a median of 1.11 for a shim that costs well under 1%)."""
    work = _unrelated(tmp_path)
    run = subprocess.run([sys.executable, "-c", SHIM_COST, "-q", "-p", "no:cacheprovider"],
                         cwd=work, env=base_env(), capture_output=True, text=True, timeout=120)
    line = next((x for x in run.stdout.splitlines() if x.startswith("SHIM ")), None)
    assert line is not None, run.stdout + run.stderr[-2000:]
    code, imported, hook, whole = line.split()[1:]
    assert code == "0", run.stdout
    cost = float(imported) + float(hook)
    share = cost / float(whole)
    print(f"unrelated run: {float(whole) * 1e3:.0f} ms in pytest.main; the shim: import "
          f"{float(imported) * 1e6:.0f} us, hook {float(hook) * 1e6:.1f} us = {share:.2%}")
    assert share <= 0.05
    assert (work / "modules.txt").read_text().split() == ["preflight", "preflight.pytest_entry"]


def test_shim_decides_from_the_command_line(tmp_path):
    from preflight.pytest_entry import wants_preflight

    env_before = os.environ.pop("PREFLIGHT_PLUGIN", None)
    try:
        assert wants_preflight([str(CHECKS)])
        assert wants_preflight([str(CHECKS / "checks" / "test_node.py") + "::test_x"])
        assert wants_preflight(["--profile", "cpu"]) and wants_preflight(["--report-dir=x"])
        assert not wants_preflight([str(tmp_path), "-q", "-k", "profile"])
        assert not wants_preflight([str(REPO / "tests")])
    finally:
        if env_before is not None:
            os.environ["PREFLIGHT_PLUGIN"] = env_before


def test_progress_lines_pass_pytests_capture(pytester):
    """The printing surface for long checks: `finding.progress` reaches the terminal while
    the check's own prints stay captured (plain lines when not a terminal)."""
    pytester.makepyfile(
        "import pytest\n\n"
        "@pytest.mark.pitfall('port-free')\n"
        "def test_long(finding):\n"
        "    finding.progress('phase 1 of 2, 0.5/10 s')\n"
        "    print('captured-by-pytest')\n")
    result = pytester.runpytest_subprocess("-p", "preflight.plugin", "-p", "no:cacheprovider",
                                           "--report-dir", str(pytester.path / "r"))
    result.stdout.fnmatch_lines(["*port-free: phase 1 of 2, 0.5/10 s*"])
    assert "captured-by-pytest" not in result.stdout.str()


HOSTILE = ["HF_ENDPOINT='<img src=x onerror=alert(1)>**x**|' is not", "# heading", "1. x",
           "12) y", "a_b *c* [l](u) &lt; ~~s~~ `c`", "> quote", "- item", "+ item", "=== x",
           "a\\b", "x <!-- c --> y", "![i](u)", "http://u:p@h/<t>", "***", "| a | b |"]


def test_markdown_report_shows_a_measured_value_as_measured(tmp_path):
    """A summary quotes what was measured (HF_ENDPOINT here): in the Markdown report it
    is text, not markup (a raw `<img onerror=...>` rendered as HTML, `**x**` as bold,
    `&lt;` as `<`)."""
    value = "<img src=x onerror=alert(1)>**x**&lt;"
    proc, report = preflight(tmp_path, "--check", "hf-endpoint",
                             env=base_env(HF_ENDPOINT=value))
    assert report is not None and proc.returncode == 1, proc.stdout[-1500:]
    md = (tmp_path / "report" / "preflight-report.md").read_text()
    assert not re.search(r"(?<!\\)<img", md) and "**x**" not in md and "\\<img src=x" in md
    # every escape is a backslash before an ASCII punctuation (CommonMark): removing
    # them gives the text back
    from preflight.report import md_text

    for text in HOSTILE:
        assert re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md_text(text)) == text


def test_markdown_escapes_render_as_the_text_itself():
    """The oracle: a CommonMark renderer shows md_text(t) as exactly t."""
    markdown_it = pytest.importorskip("markdown_it")
    import html

    from preflight.report import md_text

    md = markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough")
    for text in HOSTILE:
        shown = html.unescape(re.sub(r"<[^>]+>", "", md.render(md_text(text)))).strip()
        assert shown == text


def test_a_junitxml_path_that_cannot_be_written_is_bad_input(tmp_path):
    """pytest writes --junitxml only at the session's end: a path under a file, or in a
    directory nobody may create files in, was a traceback (exit 1, read as NO-GO) after
    every check ran. Tried first: one line, exit 4, no report."""
    (tmp_path / "afile").write_text("")
    for bad in ("afile/j.xml", "/proc/j.xml"):
        proc, report = preflight(tmp_path, "--check", "port-free", "--junitxml", bad)
        assert proc.returncode == 4, proc.stdout[-1500:] + proc.stderr[-1500:]
        assert proc.stderr.startswith(f"ERROR: --junitxml {bad}: cannot be written")
        assert "Traceback" not in proc.stdout + proc.stderr and report is None
    good = tmp_path / "new" / "dir" / "j.xml"
    proc, report = preflight(tmp_path, "--check", "port-free", "--junitxml", str(good))
    assert proc.returncode == 0 and good.is_file() and report is not None
