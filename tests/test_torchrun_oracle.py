"""preflight's torchrun reading against torch 2.13 itself (nothing is launched).

Random command lines and `PET_*` environments go through torch's own `parse_args` and
`run()` (torch/distributed/run.py), with `elastic_launch` replaced by a recorder, so
`config_from_args` and the rendezvous defaults of `run()` are torch's. The rendezvous
port is torch's own `parse_rendezvous_endpoint` with each backend's default. preflight
must agree on every field, or say unknown only where torch itself has no concrete value
(nproc `auto`/`cpu`/`gpu`: the machine decides; port 0: the kernel decides).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import tempfile

import pytest

from preflight.launch import launchers
from preflight.launch.shell import Var, Word

torch_run = pytest.importorskip("torch.distributed.run")
torch_launch = pytest.importorskip("torch.distributed.launch")
from torch.distributed.elastic.rendezvous.utils import (  # noqa: E402
    parse_rendezvous_endpoint,
)

CASES = 1200
# torch/distributed/elastic/rendezvous: c10d_rendezvous_backend.py:32, static_tcp_rendezvous
# .py:113 (-1: no default), etcd_rendezvous_backend.py:144; registry.py:52-55.
BACKEND_DEFAULT_PORT = {"c10d": 29400, "static": -1, "etcd": 2379, "etcd-v2": 2379}

# (option strings, valid values, values torch rejects; None = a flag)
OPTIONS = [
    (["--nnodes"], ["1", "1", "2", "1:1", "1:2", "2:4"], ["0", "x", "1:2:3", "4:2"]),
    (["--nproc-per-node", "--nproc_per_node"], ["1", "2", "4", "8", "auto", "cpu", " 4"],
     ["gpu", "x", "4.0"]),
    (["--rdzv-backend", "--rdzv_backend"], ["static", "c10d", "c10d", "etcd"], ["bogus"]),
    (["--rdzv-endpoint", "--rdzv_endpoint"],
     ["", "host", "host:0", "host:29401", "localhost:1234", "[::1]:5000", "localhost:0",
      "[::1]", "10.0.0.1:", ":1234"], ["h:99999", "bad host:1"]),
    (["--rdzv-id", "--rdzv_id"], ["job1"], []),
    (["--rdzv-conf", "--rdzv_conf"], ["", "timeout=10", "a=1,read_timeout=5"], ["a="]),
    (["--standalone"], None, None),
    (["--max-restarts", "--max_restarts"], ["0", "3"], ["-1", "x"]),
    (["--monitor-interval", "--monitor_interval"], ["0.5", "1"], []),
    (["--start-method", "--start_method"], ["spawn", "fork"], ["bogus"]),
    (["--role"], ["trainer"], []),
    (["-m", "--module"], None, None),
    (["--no-python", "--no_python"], None, None),
    (["--run-path", "--run_path"], None, None),
    (["--log-dir", "--log_dir"], ["logs"], []),  # made by torch under the test's cwd
    (["-r", "--redirects"], ["0", "3", "0:1,1:2"], ["9"]),
    (["-t", "--tee"], ["0", "3", "1"], ["x"]),
    (["--local-ranks-filter", "--local_ranks_filter"], ["0,1"], ["a"]),
    (["--node-rank", "--node_rank"], ["0", "1"], ["x"]),
    (["--master-addr", "--master_addr"], ["127.0.0.1", "node0"], ["bad host"]),
    (["--master-port", "--master_port"], ["29501", "0", "1234", "29500", "6000"],
     ["x", "70000"]),
    (["--local-addr", "--local_addr"], ["10.0.0.2"], []),
    (["--numa-binding", "--numa_binding"], ["node"], ["bogus"]),
    (["--signals-to-handle", "--signals_to_handle"], ["SIGTERM"], []),
    (["--shutdown-timeout", "--shutdown_timeout"], ["30"], ["x"]),
    (["--virtual-local-rank", "--virtual_local_rank"], None, None),
]
ENV = {
    "PET_NNODES": ["1", "2", "1:2", "x"], "PET_NPROC_PER_NODE": ["2", "4", "auto", "8"],
    "PET_MASTER_PORT": ["29600", "0", "6000"], "PET_STANDALONE": ["0", "1", "0", "x"],
    "PET_RDZV_BACKEND": ["c10d", "static"], "PET_RDZV_ENDPOINT": ["host:1", "host", ""],
    "PET_MODULE": ["0", "1"], "PET_NO_PYTHON": ["0", "1"], "PET_MASTER_ADDR": ["node1"],
    "PET_TEE": ["3", "x"], "PET_MAX_RESTARTS": ["2"],
}
SCRIPTS = ["train.py", "pkg.train", "/abs/train.py", "-", "run.sh", ""]
SCRIPT_ARGS = ["--nproc_per_node", "8", "-m", "--", "--lr", "1e-4", "x.yaml", "-t3",
               "--master_port=1"]


def spell(rng: random.Random, names: list[str]) -> str:
    name = rng.choice(names)
    if name.startswith("--") and rng.random() < 0.3:  # argparse accepts unique prefixes
        return name[:rng.randint(max(4, len(name) // 2), len(name))]
    return name


def command_line(rng: random.Random) -> tuple[list[str], dict[str, str]]:
    argv: list[str] = []
    for _ in range(rng.choice([0, 1, 2, 3, 3, 4, 5, 6])):
        names, values, bad = rng.choice(OPTIONS)
        name = spell(rng, names)
        if values is None:
            argv.append(name)
            continue
        value = rng.choice(bad if bad and rng.random() < 0.05 else values)
        form = rng.random()
        if name.startswith("--") and form < 0.3:
            argv.append(f"{name}={value}")
        elif not name.startswith("--") and form < 0.5 and value:
            argv.append(name + value)  # -t3
        else:
            argv += [name, value]
    if rng.random() < 0.05:
        argv.append(rng.choice(["--bogus", "--nproc", "--rdzv"]))  # unknown / ambiguous
    if rng.random() < 0.1:
        argv.append("--")
    if rng.random() < 0.97:
        argv.append(rng.choice(SCRIPTS))
        argv += rng.sample(SCRIPT_ARGS, rng.randint(0, 4))
    env = {k: rng.choice(v) for k, v in ENV.items() if rng.random() < 0.12}
    return argv, env


@pytest.fixture(autouse=True)
def own_temp_dir(tmp_path, monkeypatch):
    """torch's config_from_args makes its log dir as it reads the options: --log-dir's
    value, else tempfile.mkdtemp(prefix="torchelastic_") (torch/distributed/elastic/
    multiprocessing/api.py:260-264, DefaultLogsSpecs): 1,200 cases left 1,200 empty
    directories in the machine's /tmp (and /tmp/logs). Both go under tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def quiet_torch():
    """torch logs a warning per launch (OMP_NUM_THREADS); thousands would drown the log."""
    logger = logging.getLogger("torch.distributed")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@contextlib.contextmanager
def environment(env: dict[str, str]):
    saved = dict(os.environ)
    try:
        for k in [k for k in os.environ if k.startswith("PET_")]:
            del os.environ[k]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def torch_reading(argv: list[str], env: dict[str, str], launch: bool,
                  monkeypatch) -> dict:
    """What torch itself makes of the command line: its config, or its error."""
    seen: dict = {}

    def recorder(config, entrypoint):
        seen.update(config=config, entrypoint=entrypoint)
        return lambda *args: seen.update(args=list(args))

    monkeypatch.setattr(torch_run, "elastic_launch", recorder)
    monkeypatch.setattr(torch.multiprocessing, "_set_thread_name", lambda name: None)
    module = torch_launch if launch else torch_run
    with environment(env), contextlib.redirect_stderr(io.StringIO()):
        try:
            args = module.parse_args(argv)
            standalone = bool(args.standalone)
            (torch_launch.launch if launch else torch_run.run)(args)
        except SystemExit:
            return {"error": "usage"}
        except Exception as exc:  # torch's own validation
            return {"error": str(exc)}
    config = seen["config"]
    backend, endpoint = config.rdzv_backend, config.rdzv_endpoint
    if backend not in BACKEND_DEFAULT_PORT:
        return {"error": f"backend {backend}"}
    try:
        _, port = parse_rendezvous_endpoint(endpoint, BACKEND_DEFAULT_PORT[backend])
    except ValueError as exc:
        return {"error": str(exc)}
    if port == -1:
        return {"error": "static endpoint without port"}
    entry, cargs = seen["entrypoint"], seen["args"]
    if isinstance(entry, str) and cargs[:1] == ["-u"]:  # python -u [-m] script args
        module_flag = cargs[1] == "-m"
        rest = cargs[2:] if module_flag else cargs[1:]
        program, script_args = rest[0], rest[1:]
    elif isinstance(entry, str):  # --no-python: the script is the command
        module_flag, program, script_args = False, entry, cargs
    else:  # --run-path
        module_flag, program, script_args = False, cargs[0], cargs[1:]
    if launch and not args.use_env:
        script_args = [a for a in script_args if not a.startswith("--local-rank=")]
    return {"nproc": config.nproc_per_node, "nodes": (config.min_nodes, config.max_nodes),
            "backend": backend, "port": port, "standalone": standalone,
            "module": module_flag, "program": program, "args": script_args}


import torch  # noqa: E402


def disagreement(argv, env, launch, monkeypatch, want: dict | None = None) -> str:
    want = want or torch_reading(argv, env, launch, monkeypatch)
    got = launchers.torchrun([Word(a, a) for a in argv],
                             {k: Var(v, True) for k, v in env.items()}, launch_module=launch)
    nproc_text = got.nproc_text.strip()
    device_nproc = nproc_text in launchers.DEVICE_NPROC
    if "error" in want:
        if got.error or got.unknown:
            return ""
        if device_nproc and got.nproc is None and (
                "not available" in want["error"] or "Unsupported" not in want["error"]):
            return ""  # `gpu` on this CPU box: torch fails for lack of a device
        return f"torch fails ({want['error']}) but preflight reads {got}"
    if got.error or got.unknown:
        return f"torch reads {want} but preflight says {got.error or got.unknown}"
    return "; ".join(_differences(got, want, nproc_text, device_nproc))


def _port_difference(got, want: dict) -> list[str]:
    if want["port"] == 0:
        if got.port is not None or got.port_text != launchers.RANDOM:
            return [f"port {got.port} {got.port_text} for a random port"]
    elif got.port != want["port"]:
        return [f"port {got.port} ({got.port_text}) != {want['port']}"]
    return []


def _differences(got, want: dict, nproc_text: str, device_nproc: bool) -> list[str]:
    problems = []
    if device_nproc:
        if got.nproc is not None:
            problems.append(f"nproc {got.nproc} for {nproc_text!r}")
    elif got.nproc != want["nproc"]:
        problems.append(f"nproc {got.nproc} != {want['nproc']}")
    if (got.min_nodes, got.max_nodes) != want["nodes"]:
        problems.append(f"nodes {(got.min_nodes, got.max_nodes)} != {want['nodes']}")
    if got.backend != want["backend"]:
        problems.append(f"backend {got.backend} != {want['backend']}")
    problems += _port_difference(got, want)
    if got.standalone != want["standalone"]:
        problems.append(f"standalone {got.standalone} != {want['standalone']}")
    if bool(got.module) != want["module"]:
        problems.append(f"module {got.module} != {want['module']}")
    if got.program is None or got.program.text != want["program"]:
        problems.append(f"program {got.program} != {want['program']}")
    if [a.text for a in got.args] != want["args"]:
        problems.append(f"args {[a.text for a in got.args]} != {want['args']}")
    return problems


def test_torchrun_reading_matches_torch(monkeypatch, capsys):
    rng = random.Random(20261130)
    counts = {"cases": 0, "torch_error": 0, "agree": 0, "mismatch": 0, "random_port": 0}
    mismatches = []
    for _ in range(CASES):
        argv, env = command_line(rng)
        launch = rng.random() < 0.1
        want = torch_reading(argv, env, launch, monkeypatch)
        problem = disagreement(argv, env, launch, monkeypatch, want)
        counts["cases"] += 1
        counts["torch_error"] += "error" in want
        counts["random_port"] += want.get("port") == 0
        if problem:
            counts["mismatch"] += 1
            mismatches.append(f"{'launch' if launch else 'torchrun'} {argv} env={env}: "
                              f"{problem}")
        else:
            counts["agree"] += 1
    with capsys.disabled():
        print(f"\ntorchrun oracle: {counts}")
    assert counts["cases"] >= 1000
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:15])


@pytest.mark.parametrize("argv, env, port, nproc", [
    (["--nproc_per=4", "t.py"], {}, launchers.RANDOM, 4),
    (["-t3", "t.py"], {}, launchers.RANDOM, 1),
    (["--rdzv-backend", "c10d", "t.py"], {}, 29400, 1),
    (["--rdzv_backend=c10d", "--rdzv-endpoint", "h", "t.py"], {}, 29400, 1),
    (["--rdzv_backend=c10d", "--rdzv-endpoint", "h:0", "t.py"], {}, launchers.RANDOM, 1),
    (["--nnodes", "2", "t.py"], {}, 29500, 1),
    (["--nnodes", "1:2", "--nproc-per-node", "8", "t.py"], {}, 29500, 8),
    (["--master_port", "1234", "t.py"], {"PET_STANDALONE": "0"}, 1234, 1),
    (["--master_port", "1234", "t.py"], {"PET_STANDALONE": "1"}, launchers.RANDOM, 1),
    (["t.py"], {"PET_NPROC_PER_NODE": "4", "PET_MASTER_PORT": "6000"}, 6000, 4),
])
def test_torchrun_known_cases(argv, env, port, nproc, monkeypatch):
    """The command lines of the issue, each also checked against torch."""
    assert not disagreement(argv, env, False, monkeypatch)
    got = launchers.torchrun([Word(a, a) for a in argv], {k: Var(v, True) for k, v in
                                                          env.items()})
    assert (got.port if got.port is not None else got.port_text) == port
    assert got.nproc == nproc
