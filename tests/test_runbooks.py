"""Every check id has a runbook entry and every entry a check."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from preflight import runbooks

CHECK_DIR = Path(__file__).resolve().parent.parent / "preflight" / "checks"
SECTIONS = ("## Symptom", "## Root cause", "## Fix", "## Prevention")
# Runbooks that only `preflight triage` names (a failure no check can see before launch):
# the symptom of a run that has already failed. Documented in README "After a failure".
TRIAGE_ONLY = {"resume-memory", "cuda-oom", "collective-timeout", "dataloader-killed",
               "job-stopped"}


def check_ids() -> set[str]:
    ids = set()
    for path in sorted(CHECK_DIR.glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"_checks_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for obj in vars(module).values():
            for mark in getattr(obj, "pytestmark", []):
                if mark.name == "pitfall":
                    ids.add(mark.args[0])
    return ids


# Checks that judge several nodes at once: run by `preflight merge` / `preflight cluster`
# (preflight/cluster/checks.py), never by one node's pytest run, so check_ids() cannot see
# them. master-addr is both: a node check and a cross-node one. cluster-reach and
# cluster-allreduce run only under `preflight cluster --ray`, while every node is up.
CLUSTER_CHECK_IDS = {"cluster-nodes", "cluster-versions", "cluster-gpus", "master-addr",
                     "cluster-reach", "cluster-allreduce"}


def test_cluster_check_ids_are_the_ones_merge_runs():
    from preflight.cluster.checks import CollectiveFacts, collective, conclude, reach
    from preflight.cluster.merge import cross_checks

    ran = {f.check for f in cross_checks([])} | {reach({}, {}).check} | {conclude(
        "cluster-allreduce", collective(CollectiveFacts((), (), "", 1, 1.0))).check}
    assert ran == CLUSTER_CHECK_IDS


def test_every_check_has_a_runbook_and_every_runbook_a_check():
    checks, entries = check_ids() | CLUSTER_CHECK_IDS, runbooks.all_ids()
    assert checks, "no checks found"
    assert sorted(checks - entries) == [], "checks without a runbook entry"
    assert sorted(entries - checks - TRIAGE_ONLY) == [], "runbook entries without a check"
    assert sorted(TRIAGE_ONLY & checks) == [], "a triage-only id is a check now: unlist it"


def test_runbook_entries_have_every_section():
    for check in sorted(runbooks.all_ids()):
        text = runbooks.path_for(check).read_text(encoding="utf-8")
        assert text.startswith(f"# {check}: "), check
        for section in SECTIONS:
            assert section in text, f"{check}: missing {section}"
        assert "```" in text, f"{check}: the fix has no copy-paste command"


def test_readme_documents_every_check_id():
    readme = (CHECK_DIR.parent.parent / "README.md").read_text(encoding="utf-8")
    missing = sorted(c for c in check_ids() | CLUSTER_CHECK_IDS if f"`{c}`" not in readme)
    assert missing == []


def test_readme_documents_every_profile_key():
    from preflight.profiles import SCHEMA

    readme = (CHECK_DIR.parent.parent / "README.md").read_text(encoding="utf-8")
    missing = sorted(f"{section}.{key}" for section, keys in SCHEMA.items() for key in keys
                     if f"`{key}`" not in readme)
    assert missing == []


def fix_blocks() -> list[tuple[str, str]]:
    """(check id, body) of every bash block under a runbook's `## Fix`: what triage prints
    and what users paste."""
    import re

    out = []
    for check in sorted(runbooks.all_ids()):
        text = runbooks.path_for(check).read_text(encoding="utf-8")
        section = re.search(r"^## Fix\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
        assert section, f"{check}: no ## Fix section"
        out += [(check, body) for body in re.findall(r"```bash\n(.*?)```", section[1], re.S)]
    return out


def test_runbook_fixes_are_bash_without_placeholders():
    """A fix is pasted: `<the matching profile>` is a bash syntax error (a redirect)."""
    import re
    import subprocess

    for check, body in fix_blocks():
        done = subprocess.run(["bash", "-n"], input=body, text=True, capture_output=True,
                              timeout=30, check=False)
        assert done.returncode == 0, f"{check}: {done.stderr}"
        code = "\n".join(line.split(" #", 1)[0] for line in body.splitlines()
                         if not line.lstrip().startswith("#"))
        assert not re.search(r"<[a-z][^<>]*>", code), f"{check}: a <placeholder> in the fix"


# nvidia-smi's `-d` display types (nvidia-smi --help, drivers 470-565: an unknown type is
# rejected; there is no PCIE type: the link is read with --query-gpu=pcie.link.*).
NVIDIA_SMI_DISPLAY = {"MEMORY", "UTILIZATION", "ECC", "TEMPERATURE", "POWER", "CLOCK",
                      "COMPUTE", "PIDS", "PERFORMANCE", "SUPPORTED_CLOCKS", "PAGE_RETIREMENT",
                      "ACCOUNTING", "ENCODER_STATS", "SUPPORTED_GPU_TARGET_TEMP", "VOLTAGE",
                      "FBC_STATS", "ROW_REMAPPER", "RESET_STATUS", "GSP_FIRMWARE_VERSION"}


def test_runbook_and_judge_fixes_use_real_nvidia_smi_display_types():
    import re

    texts = [(check, body) for check, body in fix_blocks()]
    texts += [(str(p), p.read_text(encoding="utf-8"))
              for p in (CHECK_DIR.parent / "judges").glob("*.py")]
    for where, text in texts:
        for types in re.findall(r"nvidia-smi[^\n\"]*?\s-d\s+([A-Z_,]+)", text):
            # a judge's string may go on in the next literal: "-d ECC," "ROW_REMAPPER"
            assert set(filter(None, types.split(","))) <= NVIDIA_SMI_DISPLAY, f"{where}: {types}"


def test_runbook_fixes_use_torchruns_own_options():
    """Every option a fix gives torchrun before the script is one torch 2.13's
    torch.distributed.run.get_args_parser() has."""
    import re
    import shlex

    import pytest

    run = pytest.importorskip("torch.distributed.run")
    known = {o for a in run.get_args_parser()._actions for o in a.option_strings}
    for check, body in fix_blocks():
        for line in body.replace("\\\n", " ").splitlines():
            for tail in re.findall(r"\btorchrun\s+([^#\n]*)", line):
                for word in shlex.split(tail):
                    if not word.startswith("-"):
                        break  # the script or module: the rest is its own argv
                    assert word.split("=", 1)[0] in known, f"{check}: torchrun {word}"


README = CHECK_DIR.parent.parent / "README.md"


def test_readme_report_fields_are_the_reports():
    """The JSON example under "The report" has exactly the top-level and per-check fields
    report.build writes; the ones the plugin adds (node, profile_note) and the cluster
    report's are named in the README too. Fields are a contract: only ever added."""
    import json
    import re
    import time

    from preflight import report
    from preflight.cluster import merge
    from preflight.model import Finding

    readme = README.read_text(encoding="utf-8")
    example = json.loads(re.search(r"## The report\n.*?```json\n(.*?)```", readme, re.S)[1])
    built = report.build([Finding("port-free", "x")], verdict="GO", profile="cpu", host="h",
                         started="", duration_s=0.0, complete=True, version="0")
    assert set(example) == set(built)
    assert set(example["checks"][0]) == set(built["checks"][0])
    assert set(example["stages"][0]) == set(built["stages"][0])
    cluster = merge.build([], [], time.time(), "merge")
    named = [k for k in (*cluster, "node", "profile_note") if f"`{k}`" not in readme]
    assert named == []


def test_readme_triage_example_is_what_triage_prints(capsys, monkeypatch):
    import json
    import re

    from preflight import triage

    readme = README.read_text(encoding="utf-8")
    command = "$ preflight triage --context 3 tests/logs/real/ranks-dataset\n"
    shown = re.search(re.escape(command) + r"(.*?)```", readme, re.S)[1]
    monkeypatch.chdir(README.parent)
    assert triage.main(command.split()[3:]) == 1
    assert capsys.readouterr().out == shown
    assert triage.main(["--json", *command.split()[5:]]) == 1
    result = json.loads(capsys.readouterr().out)
    fields = {*result, *result["causes"][0], *result["files"][0]}
    assert sorted(k for k in fields if f'"{k}"' not in readme) == []


def test_readme_documents_every_option_of_every_command(capsys):
    """What `preflight [COMMAND] --help` offers, the README explains (and --help-pytest's
    pytest options are pytest's own)."""
    import re

    from preflight import cli

    readme = README.read_text(encoding="utf-8")
    missing = []
    for argv in ([], *([c] for c in sorted(cli.COMMANDS))):
        try:
            cli.main([*argv, "--help"])
        except SystemExit:  # argparse's --help
            pass
        for option in set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", capsys.readouterr().out)):
            if f"`{option}" not in readme and f" {option}" not in readme:
                missing.append(f"{' '.join(argv) or 'preflight'} {option}")
    assert sorted(missing) == []
