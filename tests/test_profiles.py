"""Profiles: built-ins load, `extends` overrides a few keys, validation names the file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from preflight.model import Severity
from preflight.profiles import ProfileError, load_profiles


def test_builtin_profiles_load_with_defaults():
    profiles = load_profiles([])
    assert {"cpu", "a800", "h100", "h20", "h200"} <= set(profiles)
    assert profiles["cpu"].is_gpu is False
    a800 = profiles["a800"]
    assert (a800.gpu.model, a800.gpu.count, a800.gpu.compute_capability) == ("A800", 4, "8.0")
    assert profiles["cpu"].severity_for("cudart-link") == Severity.WARNING
    assert a800.severity_for("cudart-link") == Severity.BLOCKER


def test_site_profile_extends_and_overrides_two_keys(tmp_path):
    (tmp_path / "beijing.toml").write_text(
        'extends = "a800"\n[gpu]\ncount = 8\n[env]\nconda_env = "slime"\n')
    site = load_profiles([tmp_path])["beijing"]
    assert (site.gpu.count, site.gpu.model, site.env.conda_env) == (8, "A800", "slime")
    assert site.env.hf_mirror is True  # inherited


def test_extends_cycle_is_an_error(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b"\n')
    (tmp_path / "b.toml").write_text('extends = "a"\n')
    with pytest.raises(ProfileError, match="extends cycle"):
        load_profiles([tmp_path])


def test_profile_name_must_be_a_marker_name(tmp_path):
    (tmp_path / "4x-a800.toml").write_text("")
    with pytest.raises(ProfileError, match="valid marker name"):
        load_profiles([tmp_path])


def test_a_file_given_as_profile_dir_is_named_a_file(tmp_path):
    """`--profile-dir site.toml` (a file where a directory goes) said the directory does
    not exist, while `ls` shows it."""
    (tmp_path / "site.toml").write_text('extends = "cpu"\n')
    with pytest.raises(ProfileError, match="site.toml: is a file, not a profile directory"):
        load_profiles([tmp_path / "site.toml"])


def test_missing_profile_dir(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        load_profiles([tmp_path / "nope"])


def test_profile_sections_are_typed_and_frozen(tmp_path):
    import dataclasses

    from preflight.profiles import SCHEMA, SECTIONS, GpuSection

    (tmp_path / "site.toml").write_text('extends = "a800"\n[ports]\nprobe = [7000]\n')
    site = load_profiles([tmp_path])["site"]
    assert isinstance(site.gpu, GpuSection) and site.ports.probe == (7000,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        site.gpu.count = 8  # type: ignore[misc]
    with pytest.raises(AttributeError):
        site.gpus  # noqa: B018 - a typo is an error, not a silent None
    # One declaration: every TOML key is a field of its section, with its type and default.
    assert set(SCHEMA) == set(SECTIONS)
    for name, cls in SECTIONS.items():
        assert list(SCHEMA[name]) == [f.name for f in dataclasses.fields(cls)]
    assert SCHEMA["ports"]["probe"] == ((list, int), ())
    assert SCHEMA["env"]["hf_timeout_s"] == (float, 3.0)


@pytest.mark.parametrize("body", ['[processes]\npatterns = ["train.py", ""]\n',
                                  '[processes]\npatterns = ["  "]\n',
                                  '[disk]\npaths = [""]\n'])
def test_an_empty_pattern_or_path_is_bad_input_not_every_process(tmp_path, body):
    """An empty processes.patterns entry is a substring of every program: the run named
    every process of the user, pid 1 too, as a leftover and its fix was `kill 1 ...`."""
    (tmp_path / "site.toml").write_text(f'extends = "cpu"\n{body}')
    with pytest.raises(ProfileError, match="an empty or blank entry"):
        load_profiles([tmp_path])
    proc = subprocess.run([sys.executable, "-m", "preflight", "--profile-dir", str(tmp_path),
                           "--profile", "site", "--check", "leftover-processes",
                           "--report-dir", str(tmp_path / "report")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4, proc.stdout[-2000:]
    assert proc.stderr.startswith("ERROR: ") and "Traceback" not in proc.stderr
    assert "kill" not in proc.stdout
