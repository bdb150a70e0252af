"""`preflight merge`: real node reports (the plugin run for real, one per "node") merged into
one cluster verdict. Several nodes on one machine differ the way real nodes do: an NVML
snapshot per node (`--nvml-replay`, the GPU seam), a package of another version installed
on one node's path, PREFLIGHT_NODE_ID as `preflight cluster` sets it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import CHECKS, FIXTURES, REPO, base_env

NVML = FIXTURES / "nvml"


def node_report(tmp: Path, name: str, snapshot: str = "a800x4-healthy.json",
                node_id: str | None = None, extra_path: Path | None = None,
                profile: str = "a800", checks: tuple[str, ...] = ("port-free",),
                extra: tuple[str, ...] = (), code: int = 0, **env: str) -> Path:
    """Run the plugin as one node does; returns its report dir."""
    report_dir = tmp / "reports" / name
    environ = base_env(PREFLIGHT_NODE_ID=node_id or name, **env)
    if extra_path is not None:
        environ["PYTHONPATH"] = str(extra_path)
    argv = [sys.executable, "-m", "pytest", str(CHECKS), "-p", "no:cacheprovider",
            "--rootdir", str(REPO), "--report-dir", str(report_dir), "-q",
            "-m", profile, "--nvml-replay", str(NVML / snapshot),
            *(a for c in checks for a in ("--check", c)), *extra]
    proc = subprocess.run(argv, cwd=tmp, env=environ, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
    return report_dir


def merge(*paths: Path | str, out: Path, extra: tuple[str, ...] = ()
          ) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "preflight", "merge", "--report-dir", str(out), *extra,
            *map(str, paths)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=base_env())


def cluster_json(out: Path) -> dict:
    return json.loads((out / "cluster-report.json").read_text())


def named(cluster: dict, node_id: str) -> str:
    """The report's name of a node (hostname, or hostname@id when hostnames repeat)."""
    [row] = [n for n in cluster["nodes"] if n["node_id"] == node_id]
    return row["name"]


def check(cluster: dict, check_id: str) -> dict:
    [found] = [c for c in cluster["checks"] if c["id"] == check_id]
    return found


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("merge")


@pytest.fixture(scope="module")
def healthy(tmp) -> list[Path]:
    # as `srun --ntasks-per-node=1 bash -c 'preflight --report-dir reports/$(hostname)'`
    # runs them: step 0 of Slurm job 77, on 2 nodes
    slurm = {"SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_NODES": "2",
             "SLURM_STEP_NODELIST": "node-[a-b]"}
    return [node_report(tmp, "node-a", **slurm), node_report(tmp, "node-b", **slurm)]


def test_node_facts_are_in_every_report(healthy):
    report = json.loads((healthy[0] / "preflight-report.json").read_text())
    facts = report["node"]
    import platform

    assert facts["node_id"] == "node-a"
    assert facts["versions"]["python"] == platform.python_version()
    assert facts["versions"]["torch"].startswith("2.")  # from torch's installed metadata
    assert facts["versions"]["nvidia_driver"] == "535.129.03"  # the NVML seam
    assert facts["versions"]["cuda_driver"] == "12.2"
    assert facts["versions"]["gpu_model"] == "NVIDIA A800-SXM4-80GB"
    assert facts["gpu_count"] == 4
    assert facts["hostname"] and facts["ips"]
    # unchanged fields stay (schema additions only)
    assert {"schema", "verdict", "checks", "host"} <= set(report)


def test_healthy_nodes_merge_to_go(healthy, tmp):
    out = tmp / "out-healthy"
    proc = merge(*healthy, out=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cluster = cluster_json(out)
    assert cluster["verdict"] == "GO"
    assert [n["verdict"] for n in cluster["nodes"]] == ["GO", "GO"]
    assert {c["id"]: c["severity"] for c in cluster["checks"]} == {
        "cluster-nodes": "ok", "cluster-versions": "ok", "cluster-gpus": "ok",
        "master-addr": "info"}
    assert set(cluster["reports"]) == {n["name"] for n in cluster["nodes"]}
    assert (out / "cluster-report.md").read_text().startswith("# preflight cluster: GO")
    assert "preflight cluster verdict: GO" in proc.stdout


def test_version_skew_names_the_odd_node_and_fact(healthy, tmp):
    # node-c has another ray installed where its Python looks first, and an older driver.
    site = tmp / "old-ray"
    dist = site / "ray-2.12.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ray\nVersion: 2.12.0\n")
    odd = node_report(tmp, "node-c", snapshot="a800x4-old-driver.json", extra_path=site)
    out = tmp / "out-skew"
    proc = merge(*healthy, odd, out=out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cluster = cluster_json(out)
    assert cluster["verdict"] == "NO-GO"
    found = check(cluster, "cluster-versions")
    assert found["severity"] == "blocker"
    c = named(cluster, "node-c")
    assert found["evidence"]["odd_ones_out"][c]["ray"] == "2.12.0"
    assert found["evidence"]["odd_ones_out"][c]["nvidia_driver"] == "470.199.02"
    assert found["evidence"]["odd_ones_out"][c]["cuda_driver"] == "11.4"
    assert set(found["evidence"]["odd_ones_out"]) == {c}
    assert "pip install 'ray==" in found["fix"] and c in found["fix"]
    md = (out / "cluster-report.md").read_text()
    assert f"| {c} |" in md and "2.12.0" in md
    # allowed spread: the same nodes with ray and the driver facts allowed to differ
    out2 = tmp / "out-skew-allowed"
    allowed = merge(*healthy, odd, out=out2, extra=(
        "--allow-differ", "ray", "--allow-differ", "nvidia_driver",
        "--allow-differ", "cuda_driver"))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert check(cluster_json(out2), "cluster-versions")["severity"] == "ok"


def test_missing_gpu_is_caught_across_nodes(healthy, tmp):
    short = node_report(tmp, "node-d", snapshot="a800x4-gpu-missing.json")
    out = tmp / "out-gpu"
    proc = merge(*healthy, short, out=out)
    assert proc.returncode == 1
    cluster = cluster_json(out)
    found = check(cluster, "cluster-gpus")
    d = named(cluster, "node-d")
    assert found["severity"] == "blocker"
    assert found["evidence"]["short"] == {d: {"count": 3, "model": "NVIDIA A800-SXM4-80GB"}}
    assert found["evidence"]["expected"]["count"] == 4
    assert f"{d} has 3 GPU(s), 4 expected" in found["summary"]


def test_duplicate_node_and_node_rank(healthy, tmp):
    out = tmp / "out-dup"
    proc = merge(healthy[0] / "preflight-report.json", healthy[0], healthy[1], out=out)
    assert proc.returncode == 1
    found = check(cluster_json(out), "cluster-nodes")
    assert found["severity"] == "blocker"
    assert "the same node reported 2 times" in found["summary"]
    # two nodes of one job both declaring NODE_RANK=0
    r0 = node_report(tmp, "rank-a", NNODES="2", NODE_RANK="0", MASTER_ADDR="127.0.0.1")
    r1 = node_report(tmp, "rank-b", NNODES="2", NODE_RANK="0", MASTER_ADDR="127.0.0.1")
    out = tmp / "out-rank"
    proc = merge(r0, r1, out=out)
    assert proc.returncode == 1
    cluster = cluster_json(out)
    found = check(cluster, "cluster-nodes")
    assert f"NODE_RANK=0 on {named(cluster, 'rank-a')}, {named(cluster, 'rank-b')}" \
        in found["summary"]
    assert "SLURM_NODEID" in found["fix"]


def test_a_node_judged_by_another_profile_or_other_checks_is_no_go(healthy, tmp):
    """Same GPUs, same versions, GO on its own: but node-e was judged against the cpu
    profile (PREFLIGHT_PROFILE left in its environment, a `-m` typo in one srun line), and
    ran fewer checks than the others, so what the others proved was never asked of it.
    The cluster said GO."""
    odd = node_report(tmp, "node-e", profile="cpu", checks=("host-limits",))
    out = tmp / "out-profile"
    proc = merge(*healthy, odd, out=out)
    assert proc.returncode == 1, proc.stdout
    cluster = cluster_json(out)
    assert cluster["verdict"] == "NO-GO"
    found = check(cluster, "cluster-nodes")
    e = named(cluster, "node-e")
    assert found["severity"] == "unknown", found
    assert f"{e} ran profile cpu, the other node(s) a800" in found["summary"], found
    assert "did not run port-free (the others did)" in found["summary"], found
    assert f"preflight --profile a800 --check port-free   # on {e}" in found["fix"].splitlines()
    assert found["evidence"]["profiles"] == {"a800": [named(cluster, "node-a"),
                                                      named(cluster, "node-b")], "cpu": [e]}


def test_a_cpu_only_head_beside_gpu_workers_is_go_and_a_short_gpu_worker_is_not(healthy,
                                                                                tmp):
    """KubeRay and most Ray-on-Slurm / cloud clusters: a head without GPUs (no NVIDIA
    driver at all, profile cpu) beside the GPU workers; it runs no training. It is not a
    GPU worker short of its GPUs (cluster-gpus), its missing driver facts are not a skew
    (cluster-versions), its cpu profile is its role (cluster-nodes): GO. A GPU worker with
    fewer GPUs than its peers still fails beside it, and so does a node whose driver is
    there but cannot read its GPUs (Driver Not Loaded), even judged under cpu."""
    head = node_report(tmp, "head", snapshot="no-nvml.json", profile="cpu")
    out = tmp / "out-head"
    proc = merge(*healthy, head, out=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cluster = cluster_json(out)
    h = named(cluster, "head")
    assert {c["id"]: c["severity"] for c in cluster["checks"]} == {
        "cluster-nodes": "ok", "cluster-versions": "ok", "cluster-gpus": "ok",
        "master-addr": "info"}
    gpus = check(cluster, "cluster-gpus")
    assert gpus["evidence"]["cpu_nodes"] == [h]
    assert gpus["evidence"]["expected"] == {"count": 4, "model": "A800",
                                            "from": "the profile's gpu.count"}
    assert gpus["summary"].startswith("2 node(s) with 4 GPU(s) each; without GPUs by role")
    assert h in gpus["summary"]
    assert check(cluster, "cluster-versions")["evidence"]["gpu_facts_not_compared_on"] == [h]
    assert {r["name"]: r["role"] for r in cluster["nodes"]} == {
        named(cluster, "node-a"): "gpu", named(cluster, "node-b"): "gpu", h: "cpu"}
    # always named on the terminal: a GPU node given no GPU at all looks the same
    assert f"  role cpu (no GPU found, none offered: not judged as GPU nodes): {h} (1 node)" \
        in proc.stdout.splitlines(), proc.stdout
    # --gpu-nodes: that look-alike is a blocker when fewer GPU nodes than expected answer
    fewer = merge(*healthy, head, out=tmp / "out-head-3", extra=("--gpu-nodes", "3"))
    assert fewer.returncode == 1, fewer.stdout + fewer.stderr
    gpus = check(cluster_json(tmp / "out-head-3"), "cluster-gpus")
    assert gpus["severity"] == "blocker", gpus
    assert gpus["summary"] == f"2 GPU node(s), 3 expected (--gpu-nodes); without GPUs by " \
        f"role: {h}", gpus
    assert gpus["evidence"]["gpu_nodes"] == {"expected": 3, "found": 2}
    assert "BLOCKER cluster-gpus: 2 GPU node(s), 3 expected" in fewer.stdout
    enough = merge(*healthy, head, out=tmp / "out-head-2", extra=("--gpu-nodes", "2"))
    assert enough.returncode == 0, enough.stdout + enough.stderr
    bad = merge(*healthy, head, out=tmp / "out-head-neg", extra=("--gpu-nodes", "-1"))
    assert (bad.returncode, bad.stderr) == (
        4, "ERROR: --gpu-nodes: must be a number of nodes >= 0, not -1\n")

    short = node_report(tmp, "node-f", snapshot="a800x4-gpu-missing.json")
    lost = tmp / "driver-not-loaded.json"
    lost.write_text((NVML / "no-nvml.json").read_text().replace(
        "NVML Shared Library Not Found", "Driver Not Loaded"))
    dead = node_report(tmp, "node-g", snapshot=str(lost), profile="cpu")
    out = tmp / "out-head-short"
    proc = merge(*healthy, head, short, dead, out=out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cluster = cluster_json(out)
    f, g = named(cluster, "node-f"), named(cluster, "node-g")
    gpus = check(cluster, "cluster-gpus")
    assert gpus["severity"] == "blocker"
    assert gpus["evidence"]["short"] == {
        f: {"count": 3, "model": "NVIDIA A800-SXM4-80GB"}, g: {"count": 0, "model": None}}
    assert gpus["evidence"]["cpu_nodes"] == [named(cluster, "head")]
    assert gpus["summary"].startswith(f"{f} has 3 GPU(s), 4 expected; {g} has 0 GPU(s)")
    assert named(cluster, "head") not in gpus["summary"]


HOSTILE = "\x1b]0;owned\x07\x1b[2J\rOK\x9b31m\x00\ud800"  # title, clear, CSI; a lone surrogate


def test_control_characters_a_node_wrote_never_reach_the_terminal(healthy, tmp):
    """A node report is another machine's text: an ESC sequence or \\r in its hostname,
    a check's summary, fix or evidence drove the terminal that `merge` prints to (set its
    title, cleared the screen, overwrote the verdict line). They print as `?`, as a
    replayed GPU name does on a node (redact.printable, the one sanitiser); the JSON keeps
    what the node wrote."""
    data = json.loads((healthy[0] / "preflight-report.json").read_text())
    data["node"]["hostname"] = f"evil{HOSTILE}"
    data["node"]["node_id"] = "hostile"
    data["verdict"] = "NO-GO"
    data["checks"].append({"id": "conda-env", "severity": "blocker", "outcome": "failed",
                           "summary": f"bad{HOSTILE}", "fix": f"echo fix{HOSTILE}\nrm -rf x",
                           "evidence": {"e": HOSTILE}})
    path = tmp / "hostile" / "preflight-report.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))  # \ud800 as JSON writes it: an escape
    out = tmp / "out-hostile"
    proc = merge(healthy[1], path, out=out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BLOCKER conda-env on evil?]0;owned??[2J?OK?31m?\\ud800 (1 node): " \
        "bad?]0;owned??[2J?OK?31m?\\ud800" in proc.stdout, proc.stdout
    lines = proc.stdout.splitlines()  # a fix's lines are its lines: \\r ends one as \\n does
    at = lines.index("        echo fix?]0;owned??[2J")
    assert lines[at + 1:at + 3] == ["        OK?31m?\\ud800", "        rm -rf x"], lines
    shown = proc.stdout.replace("\n", "")
    assert not [c for c in shown if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f], proc.stdout
    # the Markdown too (`cat cluster-report.md`, a pager): `?` as on the terminal
    md = (out / "cluster-report.md").read_text(encoding="utf-8")
    assert "| evil?]0;owned??[2J?OK?31m?\\ud800 |" in md, md
    assert "- **evil?]0;owned??[2J?OK?31m?\\ud800 (1 node)** `conda-env`: " \
        "bad?]0;owned??[2J?OK?31m?\\ud800" in md, md
    assert "  echo fix?]0;owned??[2J\n  OK?31m?\\ud800\n  rm -rf x\n" in md, md
    assert not [c for c in md.replace("\n", "") if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f]
    cluster = cluster_json(out)  # the data as the node wrote it
    [row] = [r for r in cluster["nodes"] if r["node_id"] == "hostile"]
    assert row["hostname"] == f"evil{HOSTILE}"
    [problem] = cluster["node_problems"]
    assert problem["summary"] == f"bad{HOSTILE}" and problem["nodes"] == [row["name"]]
    # bad input naming a file someone else named: the ERROR line is escaped too
    bad = tmp / f"dir{HOSTILE[:-2]}" / "preflight-report.json"  # no NUL in a file name
    bad.parent.mkdir()
    bad.write_text("{")
    proc = merge(bad, out=tmp / "out-hostile-bad")
    assert proc.returncode == 4
    assert proc.stderr == "ERROR: " + str(bad).replace(HOSTILE[:-2], "?]0;owned??[2J?OK?31m") \
        + ": not a preflight report: truncated (line 1 column 2)\n", proc.stderr


def test_a_cpu_box_with_the_nvidia_driver_installed_is_a_node_without_gpus(healthy, tmp):
    """NVML on a CPU box where the driver package is installed (no GPU for its kernel
    module): `Driver Not Loaded`, as on a GPU node whose driver broke, and merge counted it
    a GPU node with 0 GPUs: a false NO-GO. Its PCI bus (the report's `nvidia_pci_gpus`)
    has no NVIDIA GPU: role cpu, GO; a node with NVIDIA GPUs on its bus stays a GPU node."""
    base = node_report(tmp, "box", snapshot="no-nvml.json", profile="cpu")
    data = json.loads((base / "preflight-report.json").read_text())
    data["node"]["unknown"]["nvidia_driver"] = "NVML unavailable: Driver Not Loaded"
    for name, on_bus, code, role in (("cpu-box", 0, 0, "cpu"), ("broken-gpu", 8, 1, "gpu")):
        data["node"].update(hostname=name, node_id=name, nvidia_pci_gpus=on_bus)
        path = tmp / name / "preflight-report.json"
        path.parent.mkdir()
        path.write_text(json.dumps(data))
        out = tmp / f"out-{name}"
        proc = merge(*healthy, path, out=out)
        assert proc.returncode == code, proc.stdout + proc.stderr
        cluster = cluster_json(out)
        assert {r["name"]: r["role"] for r in cluster["nodes"]}[named(cluster, name)] == role
        assert check(cluster, "cluster-gpus")["severity"] == ("ok" if code == 0 else
                                                              "blocker")


def md_table_rows(md: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table under `header`, as GFM splits them (cmark-gfm
    extensions/table.c: a cell ends at a `|` no backslash escapes)."""
    lines = md.split("\n")
    at = lines.index(header)
    rows = []
    for line in lines[at + 2:]:
        if not line.startswith("|"):
            break
        cells, cell, i = [], "", 1
        while i < len(line):
            if line[i] == "\\" and i + 1 < len(line):
                cell += line[i:i + 2]
                i += 2
                continue
            if line[i] == "|":
                cells.append(cell.strip())
                cell = ""
            else:
                cell += line[i]
            i += 1
        rows.append(cells)
    return rows


def test_a_pipe_a_node_wrote_is_one_cell_of_the_markdown_tables(healthy, tmp):
    """A hostname or a version with `|` (a node's own text) added a column to the node
    table and the version table of cluster-report.md, shifting every cell after it."""
    data = json.loads((healthy[0] / "preflight-report.json").read_text())
    data["node"]["hostname"] = "gpu|01\\|x"
    data["node"]["node_id"] = "piped"
    data["node"]["versions"]["torch"] = "2.5|evil"
    path = tmp / "piped" / "preflight-report.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    out = tmp / "out-piped"
    proc = merge(healthy[1], path, out=out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    md = (out / "cluster-report.md").read_text(encoding="utf-8")
    nodes = md_table_rows(md, "| node | ip | role | verdict | blocking GO |")
    assert len(nodes) == 2 and all(len(r) == 5 for r in nodes), nodes
    assert "gpu\\|01\\\\\\|x" in [r[0] for r in nodes], nodes
    versions = md_table_rows(md, "| node | torch |")
    assert [len(r) for r in versions] == [2, 2], versions
    assert "2.5\\|evil" in {r[1] for r in versions}, versions
    try:  # a GFM renderer, where one is installed: one cell, the text as the node wrote it
        from markdown_it import MarkdownIt
    except ImportError:
        return
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<td>gpu|01\\|x</td>" in html and "<td>2.5|evil</td>" in html, html


def test_truncated_report_is_exit_4_naming_it(healthy, tmp):
    bad = tmp / "bad" / "preflight-report.json"
    bad.parent.mkdir()
    text = (healthy[1] / "preflight-report.json").read_text()
    bad.write_text(text[: len(text) // 2])
    out = tmp / "out-bad"
    proc = merge(healthy[0], bad, out=out)
    assert proc.returncode == 4
    assert proc.stderr.startswith(f"ERROR: {bad}: not a preflight report: truncated")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists()  # nothing half-written
    for args in (("nowhere",), ("--allow-differ", "colour", str(healthy[0])), ()):
        proc = merge(*args, out=out)
        assert proc.returncode == 4, proc.stderr
        assert proc.stderr.startswith("ERROR: ") and len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("field, value", [
    ("node.versions", None), ("node.versions", ["torch"]), ("node.ips", ["10.0.0.2"]),
    ("node.launch_env", ["NNODES=2"]), ("node.launch_env", {"NNODES": 2, "NODE_RANK": 0}),
    ("node.gpu_count", "eight"), ("node", [1]), ("checks", ["port-free"]),
    ("checks", [{"severity": "blocker"}]), ("profile", ["a800"]), ("profile", {"a": 1}),
])
def test_a_report_of_the_wrong_shape_is_exit_4_naming_the_field(healthy, tmp, field, value):
    """A hand-edited or foreign report with the right top-level keys: one ERROR line naming
    the file and the field, never a traceback with exit 1 (read by a CI gate as NO-GO)."""
    data = json.loads((healthy[1] / "preflight-report.json").read_text())
    where, _, key = field.rpartition(".")
    (data[where] if where else data)[key] = value
    bad = tmp / "shape" / "preflight-report.json"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text(json.dumps(data))
    out = tmp / "out-shape"
    proc = merge(healthy[0], bad, out=out)
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"ERROR: {bad}: not a preflight report: {field} ")
    assert len(proc.stderr.splitlines()) == 1 and not out.exists()


def test_merge_of_1000_synthetic_nodes_is_fast(healthy, tmp):
    base = json.loads((healthy[0] / "preflight-report.json").read_text())
    root = tmp / "thousand"
    for i in range(1000):
        base["node"]["node_id"] = f"n{i:04d}"
        base["node"]["hostname"] = f"gpu-{i:04d}"
        path = root / f"gpu-{i:04d}" / "preflight-report.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(base))
    sys.path.insert(0, str(REPO))
    from preflight.cluster import merge as merge_mod

    out = tmp / "out-1000"
    start, cpu = time.perf_counter(), time.process_time()
    code = merge_mod.merge([str(root)], out, [], set())
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert code == 0
    assert cluster_json(out)["node_count"] == 1000
    print(f"merge of 1000 node reports: {took:.2f} s wall, {cpu:.2f} s CPU")
    # CPU time: the wall time of a shared CI box measures its other tenants
    assert cpu <= 2.0


def test_node_facts_read_torch_cuda_and_nccl_from_the_install_without_importing(tmp):
    """A CUDA build of torch made visible on one node's path (its metadata and its
    torch/version.py, as pip installs them) is read as such; torch is never imported."""
    site = tmp / "cuda-torch"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "version.py").write_text(
        "from typing import Optional\n__version__ = '2.5.1+cu121'\n"
        "cuda: Optional[str] = '12.1'\ngit_version = 'abc'\n")
    for name, version in (("torch", "2.5.1+cu121"), ("nvidia_nccl_cu12", "2.21.5")):
        dist = site / f"{name}-{version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}"
                                       f"\nVersion: {version}\n")
        (dist / "RECORD").write_text("")
    code = ("import json, sys\nfrom preflight import node_facts\n"
            "from preflight.probes import nvml\n"
            "facts = node_facts.collect(nvml.empty('no NVML here'), {})\n"
            "print(json.dumps([facts, 'torch' in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=base_env(PYTHONPATH=str(site)), timeout=60)
    facts, imported = json.loads(proc.stdout)
    assert facts["versions"]["torch"] == "2.5.1+cu121"
    assert facts["versions"]["torch_cuda"] == "12.1"
    assert facts["versions"]["nccl"] == "2.21.5"
    assert facts["versions"]["nvidia_driver"] is None
    assert facts["unknown"]["nvidia_driver"] == "no NVML here"
    assert imported is False


def test_markdown_lists_unknown_apart_from_blockers() -> None:
    """An UNKNOWN blocks GO but is not a blocker: the cluster Markdown gives it its own
    heading, for cross-node checks and for node checks alike (the JSON keeps its fields)."""
    from preflight.cluster import merge as cluster_merge

    def row(cid: str, severity: str) -> dict[str, Any]:
        return {"id": cid, "severity": severity, "summary": f"{cid} said {severity}",
                "evidence": {}, "fix": f"fix-{cid}", "runbook": f"runbooks/{cid}.md"}

    cluster = {"verdict": "NO-GO", "node_count": 1, "node_verdicts": {"NO-GO": 1},
               "gathered_by": "merge", "started": "t", "duration_s": 0.1,
               "checks": [row("cluster-reach", "blocker"), row("cluster-gpus", "unknown"),
                          row("cluster-versions", "warning")],
               "nodes": [{"name": "n1", "ip": "10.0.0.1", "verdict": "NO-GO",
                          "blockers": ["gpu-free", "cuda-stack"]}],
               "reports": {"n1": {"checks": [row("gpu-free", "blocker"),
                                             row("cuda-stack", "unknown")]}}}
    md = cluster_merge.markdown(cluster)
    sections = {title: body for title, body in
                (part.split("\n", 1) for part in md.split("\n## ")[1:])}
    assert "cluster-reach" in sections["Cross-node blockers"]
    assert "cluster-gpus" not in sections["Cross-node blockers"]
    assert "cluster-gpus" in sections["Cross-node unknown (could not decide)"]
    assert "cluster-versions" in sections["Cross-node warnings"]
    assert "gpu-free" in sections["Node blockers"]
    assert "cuda-stack" not in sections["Node blockers"]
    assert "cuda-stack" in sections["Node unknown (could not decide)"]


def test_every_line_of_a_fix_is_shown_in_the_cluster_markdown_and_terminal() -> None:
    """A node's `dotenv-exported` fix is three lines (set -a / source .env / set +a): the
    cluster Markdown showed `set -a` alone, which does nothing when pasted; the terminal
    did the same with a cross-node fix of two lines."""
    from preflight.cluster import merge as cluster_merge

    dotenv = {"id": "dotenv-exported", "severity": "blocker", "summary": "not exported: X",
              "evidence": {}, "fix": "set -a\nsource .env\nset +a", "runbook": "r.md"}
    nodes = {"id": "cluster-nodes", "severity": "blocker", "summary": "two problems",
             "evidence": {}, "fix": "export NNODES=2   # the same on every node\n"
                                    "preflight --report-dir reports/$(hostname)",
             "runbook": "r.md"}
    cluster = {"verdict": "NO-GO", "node_count": 1, "node_verdicts": {"NO-GO": 1},
               "gathered_by": "merge", "started": "t", "duration_s": 0.1, "checks": [nodes],
               "nodes": [{"name": "n1", "ip": "10.0.0.1", "verdict": "NO-GO",
                          "blockers": ["dotenv-exported"]}],
               "reports": {"n1": {"checks": [dotenv]}}}
    md = cluster_merge.markdown(cluster)
    node_part = md.split("## Node blockers", 1)[1]
    assert "```bash\n  set -a\n  source .env\n  set +a\n  ```" in node_part, node_part
    shown = "\n".join(cluster_merge.terminal_lines(cluster))
    assert "export NNODES=2" in shown and "preflight --report-dir reports/$(hostname)" in shown


def test_the_terminal_says_unknown_for_a_cross_node_check_that_could_not_decide() -> None:
    """An UNKNOWN blocks GO but is not a blocker (as on a node's terminal): the cluster
    terminal printed `BLOCKER cluster-versions: cannot compare versions ...`."""
    from preflight.cluster import merge as cluster_merge

    unknown = {"id": "cluster-versions", "severity": "unknown", "evidence": {},
               "summary": "cannot compare versions: no node facts in the report of old",
               "fix": "pip install -U pytest-preflight", "runbook": "r.md"}
    cluster = {"verdict": "NO-GO", "node_count": 1, "node_verdicts": {"GO": 1},
               "checks": [unknown], "nodes": []}
    shown = cluster_merge.terminal_lines(cluster)
    assert "  UNKNOWN cluster-versions: cannot compare versions" in "\n".join(shown)
    assert not any("BLOCKER" in line for line in shown)


def test_one_problem_on_many_nodes_is_one_line_naming_them_with_its_fix(healthy, tmp, capsys):
    """Eight nodes in the wrong conda env (one real node report, as eight nodes wrote it):
    the terminal printed eight `NO-GO node-N: conda-env` lines and no fix at all, the
    Markdown the same summary and fix eight times. Now one entry names the eight nodes,
    with the fix once, where to run it said; the JSON gains `node_problems` (rows and
    reports unchanged)."""
    from preflight.cluster import merge as cluster_merge

    seed = node_report(tmp, "env-seed", checks=("conda-env",), extra=("--expect-env", "train"),
                       code=1, CONDA_DEFAULT_ENV="base")
    text = (seed / "preflight-report.json").read_text()
    nodes = [cluster_merge.read_node(healthy[0] / "preflight-report.json")]
    for i in range(8):
        data = json.loads(text)
        data["node"] |= {"node_id": f"id-{i}", "hostname": f"gpu-{i:02d}"}
        nodes.append(cluster_merge.from_report(data, f"reports/gpu-{i:02d}"))
    out = tmp / "out-grouped"
    code = cluster_merge.finish(nodes, time.time(), "merge", out, [], set())
    shown = capsys.readouterr().out
    assert code == 1
    cluster = cluster_json(out)
    [group] = cluster["node_problems"]
    names = [f"gpu-{i:02d}" for i in range(8)]
    assert group["id"] == "conda-env" and group["severity"] == "blocker"
    assert group["nodes"] == names and group["node_count"] == 8
    [conda] = [c for c in json.loads(text)["checks"] if c["id"] == "conda-env"]
    assert group["summary"] == conda["summary"] and group["fix"] == conda["fix"]
    lines = shown.splitlines()
    said = [ln for ln in lines if conda["summary"] in ln]
    assert len(said) == 1 and "gpu-00, gpu-01" in said[0] and "(8 nodes)" in said[0], shown
    fix_lines = [ln for ln in lines if conda["fix"].splitlines()[0] in ln]
    assert len(fix_lines) == 1, shown
    assert "(on each of those nodes)" in lines[lines.index(fix_lines[0]) - 1]
    # the eight rows: one line, as the problem
    assert [ln for ln in lines if ln.startswith("  NO-GO ")] == [
        "  NO-GO gpu-00, gpu-01, gpu-02, gpu-03, gpu-04, ... (8 nodes): conda-env"], shown
    md = (out / "cluster-report.md").read_text()
    assert md.count(conda["summary"]) == 1, md
    assert [r["blockers"] for r in cluster["nodes"]].count(["conda-env"]) == 8


def test_a_report_that_says_go_while_a_check_in_it_blocks_is_not_go(healthy) -> None:
    """The merge trusted the report's `verdict` alone: a report saying GO with a blocking
    check in it (edited by hand, or written by another tool) made its row GO and the
    cluster GO. The checks in it decide; the row names them."""
    from preflight.cluster import merge as cluster_merge

    nodes = [cluster_merge.read_node(h / "preflight-report.json") for h in healthy]
    data = json.loads(nodes[1].text)
    port = next(c for c in data["checks"] if c["id"] == "port-free")
    port |= {"outcome": "failed", "severity": "blocker", "summary": "29500 is taken"}
    nodes[1] = cluster_merge.from_report(data, "edited")
    cluster = cluster_merge.build(nodes, cluster_merge.cross_checks(nodes), time.time(), "merge")
    assert cluster["verdict"] == "NO-GO"
    assert [(r["verdict"], r["blockers"]) for r in cluster["nodes"]] == [
        ("GO", []), ("NO-GO", ["port-free"])]


def test_a_slurm_node_without_a_report_or_a_report_left_from_another_job_is_not_go(
        healthy, tmp, capsys) -> None:
    """The Slurm recipe writes reports/$(hostname) on every node, then merges reports/: a
    node whose preflight never wrote (its srun task died, the node hung) was simply not
    there, and yesterday's report of a node left in reports/ was merged as if it were
    today's: GO both times. Each report now carries its Slurm job step (SLURM_JOB_ID,
    SLURM_STEP_ID, SLURM_STEP_NUM_NODES, SLURM_STEP_NODELIST)."""
    from preflight.cluster import merge as cluster_merge

    facts = json.loads((healthy[0] / "preflight-report.json").read_text())["node"]
    assert facts["launch_env"]["SLURM_JOB_ID"] == "77"
    assert facts["launch_env"]["SLURM_STEP_NUM_NODES"] == "2"

    one = [cluster_merge.read_node(healthy[0] / "preflight-report.json")]
    found = check(cluster_merge.build(one, cluster_merge.cross_checks(one), time.time(),
                                      "merge"), "cluster-nodes")
    assert found["severity"] == "unknown", found
    assert found["summary"] == ("Slurm job 77 step 0 ran on 2 node(s) (node-[a-b]), 1 "
                                f"reported: {one[0].name}"), found
    assert "scontrol show hostnames 'node-[a-b]'" in found["fix"]

    stale_dir = tmp / "reports" / "old-node"
    stale_dir.mkdir(parents=True)
    data = json.loads((healthy[1] / "preflight-report.json").read_text())
    data["node"]["launch_env"]["SLURM_JOB_ID"] = "70"
    data["node"]["node_id"] = "old-node"
    (stale_dir / "preflight-report.json").write_text(json.dumps(data))
    out = tmp / "out-stale"
    proc = merge(*healthy, stale_dir, out=out)
    assert proc.returncode == 1, proc.stdout
    found = check(cluster_json(out), "cluster-nodes")
    assert found["severity"] == "blocker", found
    assert "reports from 2 Slurm job steps: 77.0 on" in found["summary"], found
    assert f"rm {stale_dir / 'preflight-report.json'}   # left by Slurm job 70 step 0" in \
        found["fix"].splitlines(), found["fix"]


def test_nodes_in_slurm_steps_of_their_own_are_one_run_under_ray_or_when_each_step_reported(
        healthy) -> None:
    """Ray on Slurm starts each node's raylet in a step of its own (`srun --nodes=1
    --ntasks=1 -w NODE ray start ... --block &`), and a per-node loop of `srun --nodes=1 -w
    NODE preflight ... &` does the same: every such cluster was NO-GO 'reports from 2 Slurm
    job steps ... (reports left by an earlier run?)'. A report of an earlier job is still."""
    from preflight.cluster.checks import NodeReport, judge_nodes

    def nodes(source: str, jobs: tuple[str, str]) -> list[NodeReport]:
        out = []
        for i, (path, job) in enumerate(zip(healthy, jobs, strict=True)):
            data = json.loads((path / "preflight-report.json").read_text())
            data["node"]["launch_env"].update(SLURM_JOB_ID=job, SLURM_STEP_ID=str(i),
                                              SLURM_STEP_NUM_NODES="1",
                                              SLURM_STEP_NODELIST=data["node"]["node_id"])
            out.append(NodeReport(data["node"]["node_id"], source.format(i=i), data))
        return out

    for verdict in (judge_nodes(nodes("ray:{i}", ("77", "77"))),
                    judge_nodes(nodes("reports/{i}/preflight-report.json", ("77", "77")))):
        assert (verdict.problems, verdict.ok) == ([], "2 distinct node(s)")
    stale = judge_nodes(nodes("reports/{i}/preflight-report.json", ("77", "70")))
    assert stale.problems and "reports from 2 Slurm job steps" in stale.problems[0].text


def test_a_timed_out_node_with_an_older_preflight_is_unknown_not_a_crash():
    # Ray runs node_task from the node's own installation: an older preflight's answer
    # has no `bound_s`, and reading it raised KeyError in the driver
    from preflight.cluster.fanout_ray import _collect

    class Ray:
        @staticmethod
        def get(ref: Any) -> dict[str, Any]:
            return {"hostname": "n2", "returncode": None, "timed_out": True,
                    "elapsed_s": 30.0, "report": None, "error": ""}

    node, died = _collect(Ray, object(), {"NodeID": "ab" * 28, "NodeManagerHostname": "n2"},
                          ["--profile", "a800"])
    assert node.verdict == "UNKNOWN" and not died  # it answered: its task removed its dir
    assert "did not finish within --node-timeout" in node.reason
    assert node.extra["fix"].startswith("preflight -v --profile a800")


def test_a_report_nested_too_deeply_is_exit_4_naming_it(healthy, tmp):
    # json's decoder recurses once per level: `[[[[...` was a RecursionError traceback
    bad = tmp / "deep" / "preflight-report.json"
    bad.parent.mkdir()
    bad.write_text("[" * 100_000 + "]" * 100_000)
    out = tmp / "out-deep"
    proc = merge(healthy[0], bad, out=out)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.strip() == f"ERROR: {bad}: not a preflight report: nested too deeply"
    assert not out.exists()
