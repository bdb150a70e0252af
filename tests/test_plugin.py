"""The plugin end to end: verdict = exit code, the three report outputs, JUnit
properties, profile selection, bad input, and secrets never leaving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support import CHECKS, REPO, base_env


def test_default_run_on_this_machine_is_a_verdict_with_three_outputs(run_preflight, tmp_path):
    junit = tmp_path / "junit.xml"
    run = run_preflight("-m", "static", f"--junitxml={junit}")
    assert run.returncode in (0, 1)
    report = run.report
    assert report["verdict"] == ("GO" if run.returncode == 0 else "NO-GO")
    assert report["profile"] == "cpu"  # no NVIDIA GPU here: detected, others deselected
    assert {"verdict", "profile", "host", "started", "duration_s", "checks"} <= set(report)
    for check in report["checks"]:
        assert {"id", "nodeid", "outcome", "severity", "summary", "evidence", "fix",
                "runbook"} <= set(check)
        assert check["outcome"] in ("passed", "failed", "skipped", "error")
        assert "[cpu" in check["nodeid"]
    assert (run.report_dir / "preflight-report.md").read_text().startswith(
        f"# preflight: {report['verdict']}")
    assert f"preflight verdict: {report['verdict']}" in run.stdout
    assert "deselected" in run.stdout  # other profiles are deselected, not skipped
    tree = ET.parse(junit)
    props = {}
    for case in tree.iter("testcase"):
        for prop in case.iter("property"):
            props.setdefault(case.get("name"), {})[prop.get("name")] = prop.get("value")
    assert props, "JUnit testcases carry no properties"
    for values in props.values():
        assert {"preflight.check", "preflight.severity", "preflight.fix",
                "preflight.runbook"} <= set(values)


def test_a800_on_this_machine_is_no_go_from_profile_match(run_preflight):
    run = run_preflight("-m", "a800")
    assert run.returncode == 1
    report = run.report
    assert report["verdict"] == "NO-GO" and report["profile"] == "a800"
    match = run.one("profile-match")
    assert match["outcome"] == "failed" and match["severity"] == "blocker"
    assert "Traceback" not in run.output and "INTERNALERROR" not in run.output
    md = (run.report_dir / "preflight-report.md").read_text()
    assert md.index("## Blockers") < md.index("profile-match")


def test_marker_expression_combines_profile_and_stage(run_preflight):
    run = run_preflight("-m", "a800 and static", "--check", "profile-match")
    assert run.report["profile"] == "a800"
    assert all(c["stage"] == "static" for c in run.report["checks"])


def test_failed_check_shows_id_evidence_fix_in_terminal(run_preflight):
    run = run_preflight("--profile", "cpu", "--check", "conda-env", "--expect-env", "nope",
                        env=base_env(CONDA_DEFAULT_ENV="base"))
    assert "[conda-env] BLOCKER: CONDA_DEFAULT_ENV is 'base', expected 'nope'" in run.stdout
    assert "fix: conda activate nope" in run.stdout
    assert "BLOCKER conda-env [cpu]" in run.stdout  # the verdict section


def test_severity_override_in_profile_downgrades_to_warning(run_preflight, tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "lenient.toml").write_text(
        'extends = "cpu"\n[env]\nconda_env = "prl_clean"\n[severity]\nconda-env = "warning"\n')
    run = run_preflight("--profile", "lenient", "--profile-dir", str(tmp_path / "p"),
                        "--check", "conda-env", env=base_env(CONDA_DEFAULT_ENV="base"))
    assert run.returncode == 0, run.output
    result = run.one("conda-env")
    assert (result["outcome"], result["severity"]) == ("passed", "warning")
    assert run.report["verdict"] == "GO"
    assert "1 warned" in run.stdout


def test_settings_precedence_cli_over_env(run_preflight, tmp_path):
    env = base_env(PREFLIGHT_EXPECT_ENV="from_env", CONDA_DEFAULT_ENV="from_env")
    via_env = run_preflight("--profile", "cpu", "--check", "conda-env", env=env)
    assert via_env.returncode == 0
    via_cli = run_preflight("--profile", "cpu", "--check", "conda-env",
                            "--expect-env", "from_cli", env=env)
    assert via_cli.one("conda-env")["evidence"]["expected"] == "from_cli"


# -- bad input: one line, exit 4, nothing written --------------------------------------


def _bad(run, needle: str) -> None:
    assert run.returncode == 4, run.output
    assert needle in run.output
    assert "Traceback" not in run.output
    assert not (run.report_dir / "preflight-report.json").exists()
    assert not (run.report_dir / "preflight-report.md").exists()


@pytest.mark.parametrize("content, needle", [
    ('HF_TOKEN="unterminated\n', ":1: cannot parse"),
    ("GOOD=1\nthis is not a line\n", ":2: cannot parse"),
    ("A=1\0\n", "NUL byte"),
    ('GOOD=1\n"\n', ":2: cannot parse"),  # python-dotenv takes `"` for a key
    ("GOOD=1\nhf_PastedTokenLine x\n", ":2: cannot parse"),
])
def test_malformed_env_file(run_preflight, tmp_path, content, needle):
    env_file = tmp_path / "bad.env"
    env_file.write_text(content)
    _bad(run_preflight("--env-file", str(env_file)), needle)


def test_env_file_errors_never_echo_the_line(run_preflight, tmp_path):
    env_file = tmp_path / "bad.env"
    env_file.write_text("GOOD=1\nhf_PastedTokenLine x\n")
    run = run_preflight("--env-file", str(env_file))
    assert run.returncode == 4 and "hf_PastedTokenLine" not in run.output


def test_a_bare_key_line_sets_nothing(tmp_path):
    """`FOO` without `=`: python-dotenv sets nothing for it (its value is None), so it is no
    key the job must export; the check used to say `FOO` was not exported."""
    from dotenv import dotenv_values

    from preflight.probes import dotenv

    env_file = tmp_path / ".env"
    env_file.write_text("A=1\nBARE\nB=\n")
    assert dotenv.read(env_file).keys == ["A", "B"]
    assert dotenv_values(env_file)["BARE"] is None  # the loader's own reading


def test_missing_env_file(run_preflight, tmp_path):
    _bad(run_preflight("--env-file", str(tmp_path / "nope.env")), "nope.env: cannot read")


@pytest.mark.parametrize("content, needle", [
    ("[gpu\ncount = 1\n", "invalid TOML"),
    ("[gpu]\ncuont = 1\n", "unknown key gpu.cuont"),
    ("[gpu]\ncount = \"four\"\n", "gpu.count: expected int"),
    ("bogus = 1\n", "unknown key 'bogus'"),
    ('extends = "nowhere"\n', "extends unknown profile 'nowhere'"),
    ('[severity]\nport-free = "fatal"\n', "use \"warning\" or \"blocker\""),
])
def test_broken_profile(run_preflight, tmp_path, content, needle):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "site.toml").write_text(content)
    _bad(run_preflight("--profile-dir", str(tmp_path / "p")), needle)


def test_unknown_profile_and_check(run_preflight):
    _bad(run_preflight("--profile", "a900"), "--profile a900: unknown profile")
    _bad(run_preflight("--check", "no-such-check"), "unknown check id(s): no-such-check")


def test_bad_setting_named_as_given(run_preflight, tmp_path):
    """A bad value from the environment is named by its variable: the user never typed
    `--profile`, so an error saying `--profile a900` points at the wrong place."""
    _bad(run_preflight(env=base_env(PREFLIGHT_PROFILE="a900")),
         "PREFLIGHT_PROFILE=a900: unknown profile")
    missing = str(tmp_path / "nope.sh")
    _bad(run_preflight(env=base_env(PREFLIGHT_LAUNCH_SCRIPT=missing)),
         f"PREFLIGHT_LAUNCH_SCRIPT={missing}: launch script does not exist")
    _bad(run_preflight("--launch-script", missing),
         f"--launch-script {missing}: launch script does not exist")


def test_k_selects_by_check_id(run_preflight):
    """`-k port-free` / `-k "host-limits or port-free"`: the check ids users read in every
    report select the checks (their test names say test_port_free)."""
    from preflight.probes.ports import free_port

    env = base_env(MASTER_PORT=str(free_port("0.0.0.0")))
    run = run_preflight("--profile", "cpu", "-k", "host-limits or port-free", env=env)
    ids = {c["id"] for c in run.report["checks"]}
    assert ids == {"host-limits", "port-free"}, ids


def test_unwritable_report_dir(run_preflight, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    run = run_preflight("--profile", "cpu", report_dir=blocker / "sub")
    assert run.returncode == 4 and "report dir is not writable" in run.output
    assert "Traceback" not in run.output


# -- secrets -----------------------------------------------------------------------------


def test_secret_canary_never_leaves(run_preflight, tmp_path):
    canaries = {k: f"canary-{k.lower()}-{os.urandom(12).hex()}"
                for k in ("HF_TOKEN", "WANDB_KEY", "OPENAI_API_KEY", "DB_PASSWORD")}
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in canaries.items()))
    junit = tmp_path / "junit.xml"
    # Half exported with a wrong value, half missing: the check must fail.
    env = base_env(HF_TOKEN="wrong-" + canaries["HF_TOKEN"][::-1],
                   OPENAI_API_KEY=canaries["OPENAI_API_KEY"])
    run = run_preflight("--profile", "cpu", "--env-file", str(env_file), f"--junitxml={junit}",
                        "-l", "-vv", env=env)  # showlocals and full diffs: still nothing leaks
    assert run.returncode == 1
    assert run.one("dotenv-exported")["outcome"] == "failed"
    outputs = [run.stdout, run.stderr, junit.read_text()]
    outputs += [p.read_text() for p in run.report_dir.rglob("*") if p.is_file()]  # logs too
    for value in canaries.values():
        for text in outputs:
            assert value not in text


# -- speed and imports ------------------------------------------------------------------


def test_static_stage_imports_neither_torch_nor_bashlex(tmp_path):
    code = (
        "import sys, pytest\n"
        f"rc = pytest.main([{str(CHECKS)!r}, '-q', '-m', 'static', '-p', 'no:cacheprovider',"
        f" '--report-dir', {str(tmp_path)!r}])\n"
        "assert 'torch' not in sys.modules, 'the static stage imported torch'\n"
        # bashlex builds parser tables on import (~0.2 s): only a launch analysis needs it.
        "assert 'bashlex' not in sys.modules, 'the static stage imported bashlex'\n"
        "sys.exit(0 if rc in (0, 1) else rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=base_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_console_script_runs_installed_checks_from_any_directory(tmp_path):
    exe = Path(sys.executable).parent / "preflight"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "preflight"]
    proc = subprocess.run([*argv, "--check", "profile-match", "--report-dir", str(tmp_path / "r"),
                           "-q"], cwd=tmp_path, env=base_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "r" / "preflight-report.json").read_text())["verdict"] == "GO"


def test_own_test_sessions_write_no_report(pytester):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "preflight-report").exists()


def test_repo_layout():
    for name in ("pyproject.toml", "conftest.py", "tox.ini", "README.md", ".ci/run"):
        assert (REPO / name).exists(), name


def test_settings_type_names_every_setting():
    # plugin._settings casts the SETTINGS table to Settings: the two must name the same keys.
    from preflight.plugin import SETTINGS, Settings

    assert set(Settings.__annotations__) == set(SETTINGS)
