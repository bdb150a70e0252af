"""Launcher command lines read by the launchers' own rules, without importing them.

torchrun (and `python -m torch.distributed.run|launch`) is parsed with an argparse parser
built from torch 2.13's own option table (torch/distributed/run.py `get_args_parser`), so
argparse's own rules apply exactly: option-name prefixes (`--nproc_per=4`), `-`/`_`
spellings, attached values (`-t3`, `--x=y`), `PET_*` environment twins
(torch/distributed/argparse_util.py `env`/`check_env`) and the script-arguments boundary.
What torchrun then derives (`run()` and `config_from_args`) is computed from that parse.
deepspeed is read the same way, from deepspeed 0.19.8's own option table and resource
rules (deepspeed/launcher/runner.py); `accelerate launch` by accelerate 1.x's rules with
its config file.

Values the script could not evaluate are carried through the parse as `⟨...⟩` text; any
field built from one is unknown. tests/test_torchrun_oracle.py, test_deepspeed_oracle.py
and test_accelerate_oracle.py compare these readings with the tools' own code.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any, NoReturn, TypeVar

from preflight.inputs import display
from preflight.launch.shell import UNKNOWN_CLOSE, UNKNOWN_OPEN, Var, Word, Written
from preflight.launch.shell.writers import default_accelerate_config

C10D_DEFAULT_PORT = 29400  # torch/distributed/elastic/rendezvous/c10d_rendezvous_backend.py:32
STATIC_DEFAULT_PORT = 29500  # torch/distributed/run.py:1018 (`run`: master_port None -> 29500)
ETCD_DEFAULT_PORT = 2379  # torch/distributed/elastic/rendezvous/etcd_rendezvous_backend.py:144
# torch/distributed/elastic/rendezvous/registry.py:52-55
RDZV_BACKENDS = ("etcd", "etcd-v2", "c10d", "static")
# torch/distributed/run.py:745 `determine_local_world_size`: names resolved on the device.
DEVICE_NPROC = ("cpu", "gpu", "xpu", "auto")
RANDOM = "free"  # the port text of a port the kernel picks (an endpoint port 0)
# An unknown word carried through a parse: ⟨#i⟩ names the word it came from.
TAG = re.compile(UNKNOWN_OPEN + r"#(\d+)" + UNKNOWN_CLOSE)

T = TypeVar("T")


class _ParseError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print usage and exit 2
        raise _ParseError(message)


def _is_unknown(value: object) -> bool:
    return isinstance(value, str) and UNKNOWN_OPEN in value


def _typed(convert: Callable[[str], T]) -> Callable[[str], T | str]:
    """argparse `type=` that lets an unknown `⟨...⟩` value through untouched."""
    def parse(text: str) -> T | str:
        return text if _is_unknown(text) else convert(text)
    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


class _Choices(list[str]):
    def __contains__(self, value: object) -> bool:
        return _is_unknown(value) or list.__contains__(self, value)


def _tag(args: Sequence[Word]) -> list[str]:
    """The words as argparse sees them: an unknown word is tagged ⟨#i⟩ so that a value can
    be traced to the word it came from; one that starts with `-` stays an option with an
    unknown (attached) value."""
    texts = []
    for n, w in enumerate(args):
        if w.known:
            texts.append(w.text)
        elif w.prefix.startswith("-") and UNKNOWN_OPEN in w.text:
            texts.append(w.text.replace(UNKNOWN_OPEN, f"{UNKNOWN_OPEN}#{n}{UNKNOWN_CLOSE}"
                                        + UNKNOWN_OPEN, 1))
        else:
            texts.append(f"{UNKNOWN_OPEN}#{n}{UNKNOWN_CLOSE}{w.text}")
    return texts


def _single(word: Word) -> bool:
    """An unknown word bash keeps as exactly one argument (quoted, not "$@"/"${A[@]}")."""
    return word.source[:1] in ("'", '"') and "@" not in word.source and "[*]" not in \
        word.source


@dataclass(frozen=True)
class _Parsed:
    script_i: int  # the index of the script word in args (-1: not found)
    tail: tuple[Word, ...]  # the script's arguments
    stray: Word | None  # an unknown word that may hold the launcher's own options


def _split_script(args: Sequence[Word], texts: list[str], ns: argparse.Namespace,
                  script: str, rest: str) -> _Parsed:
    """Where argparse put the script and its REMAINDER arguments, and whether an unknown
    word lies where options go (`torchrun $DISTRIBUTED_ARGS train.py`)."""
    script_args = getattr(ns, rest)
    k = len(script_args)
    tail = tuple(args[len(args) - k:]) if k else ()
    script_i = len(args) - k - 1
    if not (0 <= script_i < len(args) and texts[script_i] == getattr(ns, script)):
        script_i = texts.index(getattr(ns, script)) if getattr(ns, script) in texts else -1
    option_values = "\n".join(
        v if isinstance(v, str) else "\n".join(map(str, v))
        for d, v in vars(ns).items() if d not in (script, rest) and isinstance(v, (str, list)))
    in_options = {int(m) for m in TAG.findall(option_values)}
    for n, w in enumerate(args):
        if w.known or n in in_options or n >= len(args) - k:
            continue
        if n == script_i and _single(w) and not w.prefix.startswith("-"):
            continue
        return _Parsed(script_i, tail, w)
    return _Parsed(script_i, tail, None)


def _stray(w: Word, launcher: str) -> str:
    return f"{w.text} may hold {launcher} options ({w.reason or 'not evaluated'})"


# -- torchrun --------------------------------------------------------------------------


def _comma_separated_list(value: str) -> list[str]:
    # torch/distributed/run.py:414
    placeholder = "<COMMA_PLACEHOLDER>"
    return [i.replace(placeholder, ",") for i in value.replace(",,", placeholder).split(",")]


class env(argparse.Action):  # noqa: N801 - torch's name
    """torch/distributed/argparse_util.py `env`: the value, else $PET_<DEST> (applied by
    `_apply_pet`, so that one parser serves every environment), else the default."""

    pet = True

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None
                 ) -> None:
        namespace._given[self.dest] = option_string or self.dest
        setattr(namespace, self.dest, values)


class check_env(argparse.Action):  # noqa: N801
    """torch/distributed/argparse_util.py `check_env`: a flag, else bool(int($PET_<DEST>))."""

    pet = True

    def __init__(self, dest: str, default: bool = False, **kwargs: Any) -> None:
        super().__init__(dest=dest, const=True, default=default, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None
                 ) -> None:
        namespace._given[self.dest] = option_string or self.dest
        setattr(namespace, self.dest, self.const)


def _int_twin(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _ParseError(f"{name}={text!r} is not an integer (torchrun reads it with "
                          "int())") from None


def _apply_pet(parser: argparse.ArgumentParser, ns: argparse.Namespace,
               environ: Mapping[str, Var]) -> dict[str, str]:
    """The `PET_*` twins of the options not on the command line; argparse converts such a
    string default with the option's type (an error there is a usage error)."""
    used = {}
    for action in parser._actions:
        if not getattr(action, "pet", False):
            continue
        name = f"PET_{action.dest.upper()}"
        var = environ.get(name)
        if var is None:
            continue
        if action.dest in ns._given:
            # check_env reads its PET_ twin with int() when the parser is built: a bad one
            # stops torchrun even when the flag is given (argparse_util.py `check_env`)
            if isinstance(action, check_env) and var.value is not None:
                _int_twin(name, var.value)
            continue
        used[action.dest] = name
        text = var.value if var.value is not None else f"⟨${name}⟩"
        if _is_unknown(text):
            setattr(ns, action.dest, text)
        elif isinstance(action, check_env):
            setattr(ns, action.dest, bool(_int_twin(name, text)))
        else:
            try:
                convert = action.type if callable(action.type) else str
                setattr(ns, action.dest, convert(text))
            except (TypeError, ValueError):
                raise _ParseError(f"argument {'/'.join(action.option_strings)}: invalid "
                                  f"value: {text!r} (from {name})") from None
    return used


@functools.lru_cache(maxsize=2)
def torchrun_parser(launch_module: bool = False) -> _Parser:
    """torch 2.13 torch/distributed/run.py:410 `get_args_parser`, option for option
    (plus `--use-env` for torch/distributed/launch.py `parse_args`)."""
    p = _Parser(add_help=True)
    s, i, f = _typed(str), _typed(int), _typed(float)
    p.add_argument("--nnodes", action=env, type=s, default="1:1")
    p.add_argument("--nproc-per-node", "--nproc_per_node", action=env, type=s, default="1")
    p.add_argument("--rdzv-backend", "--rdzv_backend", action=env, type=s, default="static")
    p.add_argument("--rdzv-endpoint", "--rdzv_endpoint", action=env, type=s, default="")
    p.add_argument("--rdzv-id", "--rdzv_id", action=env, type=s, default="none")
    p.add_argument("--rdzv-conf", "--rdzv_conf", action=env, type=s, default="")
    p.add_argument("--standalone", action=check_env)
    p.add_argument("--max-restarts", "--max_restarts", action=env, type=i, default=0)
    p.add_argument("--monitor-interval", "--monitor_interval", action=env, type=f,
                   default=0.1)
    p.add_argument("--start-method", "--start_method", action=env, type=s, default="spawn",
                   choices=_Choices(["spawn", "fork", "forkserver"]))
    p.add_argument("--event-log-handler", "--event_log_handler", action=env, type=s,
                   default="null")
    p.add_argument("--role", action=env, type=s, default="default")
    p.add_argument("-m", "--module", action=check_env)
    p.add_argument("--no-python", "--no_python", action=check_env)
    p.add_argument("--run-path", "--run_path", action=check_env)
    p.add_argument("--log-dir", "--log_dir", action=env, type=s, default=None)
    p.add_argument("-r", "--redirects", action=env, type=s, default="0")
    p.add_argument("-t", "--tee", action=env, type=s, default="0")
    p.add_argument("--local-ranks-filter", "--local_ranks_filter", action=env, type=s,
                   default="")
    p.add_argument("--duplicate-stdout-filters", "--duplicate_stdout_filters", action=env,
                   type=_typed(_comma_separated_list), default=[])
    p.add_argument("--duplicate-stderr-filters", "--duplicate_stderr_filters", action=env,
                   type=_typed(_comma_separated_list), default=[])
    p.add_argument("--node-rank", "--node_rank", type=i, action=env, default=0)
    p.add_argument("--master-addr", "--master_addr", default="127.0.0.1", type=s, action=env)
    p.add_argument("--master-port", "--master_port", default=None, type=i, action=env)
    p.add_argument("--local-addr", "--local_addr", default=None, type=s, action=env)
    p.add_argument("--logs-specs", "--logs_specs", default=None, type=s)
    # torch/numa/binding.py `AffinityMode` values
    p.add_argument("--numa-binding", "--numa_binding", type=s, default=None,
                   choices=_Choices(["node", "socket", "exclusive", "core-complex"]))
    p.add_argument("--signals-to-handle", "--signals_to_handle", action=env, type=s,
                   default="SIGTERM,SIGINT,SIGHUP,SIGQUIT")
    p.add_argument("--shutdown-timeout", "--shutdown_timeout", action=env, type=i,
                   default=None)
    p.add_argument("--virtual-local-rank", "--virtual_local_rank", action=check_env)
    p.add_argument("training_script", type=s)
    p.add_argument("training_script_args", nargs=argparse.REMAINDER)
    if launch_module:
        p.add_argument("--use-env", "--use_env", default=False, action="store_true")
    return p


@dataclass(frozen=True)
class TorchrunConfig:
    """What torchrun would run with; None / "" fields are not known (see `unknown`)."""

    nproc: int | None = None
    nproc_text: str = ""
    nproc_source: str = ""
    min_nodes: int | None = None
    max_nodes: int | None = None
    backend: str | None = None
    endpoint: str | None = None
    port: int | None = None  # the rendezvous endpoint's port; None with port_text RANDOM
    port_text: str = ""
    port_source: str = ""
    standalone: bool | None = None
    master_addr: str = ""
    node_rank: int | None = None  # --node-rank; None when not known
    rdzv_id: str | None = None  # the run id its workers get; None: not known or a fresh uuid
    module: bool | None = None
    no_python: bool | None = None
    run_path: bool | None = None
    program: Word | None = None  # the training script / module
    args: tuple[Word, ...] = ()  # its arguments
    error: str = ""  # torchrun itself would stop with this
    unknown: str = ""  # why the options could not be read at all


def _show(value: object) -> str:
    return TAG.sub("", str(value))


def _nnodes(nnodes: str) -> tuple[int | None, int | None, str]:
    """torch/distributed/run.py:731 `parse_min_max_nnodes`: (min, max, error)."""
    if _is_unknown(nnodes):
        return None, None, ""
    parts = nnodes.split(":")
    try:
        if len(parts) == 1:
            return int(parts[0]), int(parts[0]), ""
        if len(parts) == 2:
            return int(parts[0]), int(parts[1]), ""
    except ValueError as exc:  # int()'s own message, as torchrun prints it
        return None, None, f"--nnodes {nnodes!r}: {exc}"
    return None, None, f'nnodes={nnodes} is not in "MIN:MAX" format'


@dataclass(frozen=True)
class _Rdzv:
    backend: str | None
    endpoint: str | None
    random: bool
    port_source: str


def _rendezvous(ns: argparse.Namespace, max_nodes: int | None, error: str) -> _Rdzv:
    """torch/distributed/run.py:988-1015 `run`: --standalone, or a static rendezvous
    without endpoint and --master-port on at most one node, is c10d on localhost:0."""
    standalone = None if _is_unknown(ns.standalone) else ns.standalone
    backend = None if _is_unknown(ns.rdzv_backend) else ns.rdzv_backend
    endpoint = None if _is_unknown(ns.rdzv_endpoint) else ns.rdzv_endpoint
    if standalone:
        return _Rdzv("c10d", "localhost:0", True, "--standalone picks a random free port")
    if standalone is None:
        return _Rdzv(None, None, False, "")
    static_bare = backend == "static" and endpoint == ""
    if static_bare and ns.master_port is None:
        if max_nodes == 1 and not error:
            return _Rdzv("c10d", "localhost:0", True, "no --master-port on one node: "
                                                      "torchrun picks a random free port")
        if max_nodes is None and not error:
            return _Rdzv(None, None, False, "")
    elif static_bare and _is_unknown(ns.master_port):
        pass
    elif backend is None or endpoint is None:
        return _Rdzv(None, None, False, "")  # whether the one-node rewrite applies is unknown
    return _Rdzv(backend, endpoint, False, "")


def _nproc(ns: argparse.Namespace) -> tuple[int | None, str]:
    """(nproc, error): an int, a device name resolved on the machine, else torchrun stops."""
    if _is_unknown(ns.nproc_per_node):
        return None, ""
    try:
        return int(ns.nproc_per_node), ""
    except ValueError:
        if ns.nproc_per_node in DEVICE_NPROC:
            return None, ""
        return None, f"Unsupported nproc_per_node value: {ns.nproc_per_node}"


@dataclass(frozen=True)
class _Port:
    port: int | None
    text: str
    source: str
    error: str


def _endpoint_port(backend: str | None, endpoint: str | None, source: str) -> _Port:
    """The port the rendezvous binds: parse_rendezvous_endpoint with the backend's default
    (static needs one: static_tcp_rendezvous.py:114)."""
    if backend is not None and backend not in RDZV_BACKENDS:
        # torch/distributed/elastic/rendezvous/api.py `RendezvousHandlerRegistry.create`
        return _Port(None, "", source, f"--rdzv-backend: The rendezvous backend {backend!r} "
                                       "is not registered. Did you forget to call `register`?")
    if endpoint is None or backend is None:
        return _Port(None, "", source, "")
    default = {"c10d": C10D_DEFAULT_PORT, "static": -1}.get(backend, ETCD_DEFAULT_PORT)
    try:
        _host, port = parse_rendezvous_endpoint(endpoint, default)
    except ValueError as exc:
        return _Port(None, "", source, str(exc))
    if port == -1:
        return _Port(None, "", source, f"Port is absent in endpoint: {endpoint}. Try "
                                       "launching with --master-port")
    if port == 0:
        return _Port(None, RANDOM, source or "port 0: the kernel picks a random free port", "")
    if ":" not in endpoint.rpartition("]")[2]:
        source = f"default of the {backend} rendezvous"
    return _Port(port, str(port), source, "")


def _program_flags(ns: argparse.Namespace, launch_module: bool
                   ) -> tuple[bool | None, bool | None, bool | None, str]:
    """(run_path, module, no_python, error): torch/distributed/run.py:948 `--run-path`
    takes precedence over -m and --no-python."""
    run_path = None if _is_unknown(ns.run_path) else ns.run_path
    module = None if _is_unknown(ns.module) or run_path is None else \
        ns.module and not run_path
    no_python = None if _is_unknown(ns.no_python) or run_path is None else \
        ns.no_python and not run_path
    error = ""
    if module and no_python:
        error = "Don't use both the '--no-python' flag and the '--module' flag at the same time."
    # torch/distributed/launch.py `launch`: checked before run(), on the flag itself
    elif launch_module and ns.no_python is True and not ns.use_env:
        error = "When using the '--no-python' flag, you must also set the '--use-env' flag."
    return run_path, module, no_python, error


def _node_errors(ns: argparse.Namespace, min_nodes: int | None, max_nodes: int | None) -> str:
    if min_nodes is not None and max_nodes is not None and not 0 < min_nodes <= max_nodes:
        return (f"min_nodes must be > 0 and <= max_nodes, got min_nodes={min_nodes}, "
                f"max_nodes={max_nodes}")
    if not _is_unknown(ns.max_restarts) and ns.max_restarts < 0:
        return "max_restarts must be >= 0"
    return ""


def torchrun(args: list[Word], environ: Mapping[str, Var], launch_module: bool = False
             ) -> TorchrunConfig:
    """torchrun ARGS as torch 2.13 reads them: `parse_args`, the rendezvous defaults of
    `run()` (torch/distributed/run.py:985) and `config_from_args` (:840)."""
    texts = _tag(args)
    try:
        parser = torchrun_parser(launch_module)
        ns = parser.parse_args(texts, argparse.Namespace(_given={}))
        pet_used = _apply_pet(parser, ns, environ)
    except _ParseError as exc:
        unknown = next((w for w in args if not w.known), None)
        if unknown is not None:
            return TorchrunConfig(unknown=_stray(unknown, "torchrun"))
        return TorchrunConfig(error=f"torchrun: error: {exc}")
    parsed = _split_script(args, texts, ns, "training_script", "training_script_args")
    if parsed.stray is not None:
        return TorchrunConfig(unknown=_stray(parsed.stray, "torchrun"))

    def source(dest: str) -> str:
        return pet_used.get(dest) or str(ns._given.get(dest, "default"))

    min_nodes, max_nodes, error = _nnodes(ns.nnodes)
    rdzv = _rendezvous(ns, max_nodes, error)
    backend, endpoint, port_src = rdzv.backend, rdzv.endpoint, rdzv.port_source
    master_port = STATIC_DEFAULT_PORT if ns.master_port is None else ns.master_port
    error = error or _node_errors(ns, min_nodes, max_nodes)
    nproc, nproc_error = _nproc(ns)
    error = error or nproc_error or _config_errors(ns)
    # torch/distributed/run.py:790 `get_rdzv_endpoint`
    if backend == "static" and endpoint == "":
        endpoint = None if _is_unknown(ns.master_addr) or _is_unknown(master_port) else \
            f"{ns.master_addr}:{master_port}"
        if endpoint is not None:
            port_src = port_src or source("master_port")
            if port_src == "default":
                port_src = f"default ({STATIC_DEFAULT_PORT})"
    elif endpoint:
        port_src = port_src or f"--rdzv-endpoint ({backend})"
    got = _Port(None, "", port_src, "") if error else _endpoint_port(backend, endpoint,
                                                                      port_src)
    port, port_text, port_src, error = got.port, got.text, got.source, error or got.error
    if rdzv.random:
        port, port_text = None, RANDOM
    if not port_text and not error:
        port_text = "⟨unknown⟩"
        port_src = "not known: " + ", ".join(
            _show(v) for v in (ns.rdzv_backend, ns.rdzv_endpoint, ns.master_port, ns.nnodes,
                               ns.standalone) if _is_unknown(v))
    run_path, module, no_python, flag_error = _program_flags(ns, launch_module)
    program = args[parsed.script_i] if parsed.script_i >= 0 else Word(ns.training_script, "")
    return TorchrunConfig(
        nproc=nproc, nproc_text=_show(ns.nproc_per_node), nproc_source=source("nproc_per_node"),
        min_nodes=min_nodes, max_nodes=max_nodes, backend=backend, endpoint=endpoint,
        port=port, port_text=port_text, port_source=port_src,
        standalone=None if _is_unknown(ns.standalone) else ns.standalone,
        master_addr=_show(ns.master_addr),
        node_rank=None if _is_unknown(ns.node_rank) else ns.node_rank,
        # run.py:991/:1012: --standalone and the one-node rewrite draw a fresh uuid
        rdzv_id=None if rdzv.random or _is_unknown(ns.rdzv_id) else ns.rdzv_id,
        module=module, no_python=no_python,
        run_path=run_path, program=program, args=parsed.tail, error=error or flag_error)


def _rdzv_conf_error(conf: str) -> str:
    """torch/distributed/elastic/rendezvous/utils.py:23 `_parse_rendezvous_config`."""
    for kv in conf.strip().split(","):
        key, *values = kv.split("=", 1)
        if not key.strip():
            return "The rendezvous configuration string must be in format " \
                   "<key1>=<value1>,...,<keyN>=<valueN>."
        if not (values[0].strip() if values else None):
            return f"The rendezvous configuration option '{key.strip()}' must have a " \
                   "value specified."
    return ""


def _config_errors(ns: argparse.Namespace) -> str:
    """The other checks of `config_from_args` (torch/distributed/run.py:840-920)."""
    conf = ns.rdzv_conf
    if not _is_unknown(conf) and conf.strip() and _rdzv_conf_error(conf):
        return _rdzv_conf_error(conf)
    ranks = ns.local_ranks_filter
    if not _is_unknown(ranks) and ranks:
        try:
            set(map(int, ranks.split(",")))
        except ValueError:
            return "--local_ranks_filter must be a comma-separated list of integers"
    if ns.logs_specs is not None and not _is_unknown(ns.logs_specs):
        group = metadata.entry_points().select(group="torchrun.logs_specs")
        if not group.select(name=ns.logs_specs):
            return f"Could not find entrypoint under 'torchrun.logs_specs[{ns.logs_specs}]' key"
    # torch/distributed/elastic/multiprocessing/api.py:116-117 `Std.from_str`
    for flag, vm in (("--redirects", ns.redirects), ("--tee", ns.tee)):
        if _is_unknown(vm):
            continue
        if not (re.match(r"^[0123]$", vm) or re.match(r"^(\d:[0123],)*(\d:[0123])$", vm)):
            return f"{flag} {vm} does not match: <^[0123]$> or <^(\\d:[0123],)*(\\d:[0123])$>"
    return ""


def parse_rendezvous_endpoint(endpoint: str | None, default_port: int) -> tuple[str, int]:
    """torch/distributed/elastic/rendezvous/utils.py:68, line for line."""
    if endpoint is not None:
        endpoint = endpoint.strip()
    if not endpoint:
        return ("localhost", default_port)
    if endpoint[0] == "[" and endpoint[-1] == "]":
        host, rest = endpoint, []
    else:
        host, *rest = endpoint.rsplit(":", 1)
    if len(host) > 1 and host[0] == "[" and host[-1] == "]":
        host = host[1:-1]
    if len(rest) == 1:
        port = int(rest[0]) if rest[0] and re.match(r"^[0-9]{1,5}$", rest[0]) else None
        if port is None or port >= 2**16:
            raise ValueError(f"The port number of the rendezvous endpoint '{endpoint}' must "
                             "be an integer between 0 and 65536.")
    else:
        port = default_port
    if not re.match(r"^[\w\.:-]+$", host):
        raise ValueError(f"The hostname of the rendezvous endpoint '{endpoint}' must be a "
                         "dot-separated list of labels, an IPv4 address, or an IPv6 address.")
    return host, port


# -- the files a launcher reads ---------------------------------------------------------


@dataclass(frozen=True)
class JobFile:
    """A file as the job opens it (`job_file`): `text` None when it is missing (no
    `unknown`, no `error`), not known (`unknown` says why) or not readable (`error`)."""

    path: str
    text: str | None = None
    unknown: str = ""
    error: str = ""
    written: str = ""  # where the script wrote it ("run.sh:3"); "" when read from disk

    @property
    def exists(self) -> bool | None:
        return None if self.unknown else self.text is not None or bool(self.error)


JOB_FILE_LIMIT = 8 << 20  # a launcher's config or hostfile is a few KiB


def job_file(path: str, files: Mapping[str, Written], errors: str = "strict") -> JobFile:
    """The one way the launch analysis reads a file a launcher will open (accelerate's
    config, deepspeed's hostfile, swift's --config): what the script wrote there before
    the launch when it did (it runs first, so it wins over the file on disk), else the
    file on disk. `files` is the launching Command's `files` (shell.Files): it also
    answers for a program run before that may write the path (shell/writers.py), and
    then the file is not known: the launcher reads what that program leaves."""
    path = posixpath.normpath(path)
    written = files.get(path)
    if written is not None:
        if written.by:
            # a race (writers.Files.racing) says when itself; a writer before: "first"
            first = "" if written.race else " first"
            return JobFile(path, unknown=f"{path} may be written by {written.by}{first}: "
                                         "what the launcher reads is not known",
                                         written=written.where)
        if written.text is None:
            return JobFile(path, unknown=f"{path} is written by the script at "
                                         f"{written.where}; what it holds is not known "
                                         f"({written.reason})", written=written.where)
        return JobFile(path, written.text, written=written.where)
    if not os.path.isfile(path):  # accelerate config_args.py:45, deepspeed runner.py:213
        return JobFile(path)
    try:
        # a sparse 2 GB file named as the config was read whole (4 GB of memory, 10 s)
        if (size := os.path.getsize(path)) > JOB_FILE_LIMIT:
            return JobFile(path, unknown=f"{display(path)} is {size} bytes, too large to "
                                         "read here: what the launcher reads is not known")
        with open(path, encoding="utf-8", errors=errors) as f:
            return JobFile(path, f.read(JOB_FILE_LIMIT + 1))
    except (OSError, ValueError) as exc:
        return JobFile(path, error=f"cannot read {path}: {str(exc).splitlines()[0]}")


# -- what accelerate and deepspeed share --------------------------------------------------


@dataclass(frozen=True)
class LauncherConfig:
    """What a launcher would run with (accelerate, deepspeed); None / "" fields are not
    known, `error` is where the launcher itself stops, `unknown` why nothing is known."""

    nproc: int | None = None
    nproc_text: str = ""
    nproc_source: str = ""
    nnodes: int | None = None
    port: int | None = None
    port_text: str = ""
    port_source: str = ""
    program: Word | None = None
    args: tuple[Word, ...] = ()
    module: bool = False
    no_python: bool = False
    error: str = ""
    unknown: str = ""


# -- accelerate launch -----------------------------------------------------------------

# accelerate 1.15 accelerate/commands/launch.py `launch_command_parser`: the options that
# take no value (allow_abbrev=False there: no prefixes; `-` and `_` spellings both exist).
ACCELERATE_FLAGS = frozenset({
    "--cpu", "--debug", "--downcast_bf16", "--dynamo_use_dynamic", "--dynamo_use_fullgraph",
    "--dynamo_use_regional_compilation", "--enable_cpu_affinity",
    "--fp8_use_autocast_during_eval", "--help", "--module", "--multi_gpu", "--no_python",
    "--no_tpu_cluster", "--quiet", "--same_network", "--tpu", "--tpu_cluster",
    "--tpu_use_sudo", "--use_deepspeed", "--use_fsdp", "--use_megatron_lm",
    "--use_parallelism_config", "-h", "-m", "-q"})
ACCELERATE_MODES = ("--multi_gpu", "--cpu", "--tpu", "--use_deepspeed", "--use_fsdp")
# argparse `_negative_number_matcher` (Lib/argparse.py): such a word is a value, not an option
_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")


@dataclass(frozen=True)
class AccelerateConfig(LauncherConfig):
    gpu_ids: str | None = None
    config_file: str = ""  # the config file accelerate reads ("" if none)


def _looks_like_option(w: Word) -> bool:
    """argparse `_parse_optional`: a word that starts with `-` is an option (so not the
    value of the one before it), unless it is `-`, a negative number or holds a space."""
    t = w.text
    return w.known and len(t) > 1 and t.startswith("-") and not _NEGATIVE.match(t) and \
        " " not in t


@dataclass(frozen=True)
class _Options:
    opts: dict[str, Word]
    rest: list[Word]
    unknown: str = ""
    error: str = ""


def _accelerate_options(args: list[Word]) -> _Options:
    opts: dict[str, Word] = {}
    i = 0
    while i < len(args):
        w = args[i]
        t = w.text
        if not w.known and not w.prefix.startswith("-"):
            if _single(w):
                return _Options(opts, args[i:])
            return _Options(opts, [], unknown=_stray(w, "accelerate"))
        if t == "--":
            return _Options(opts, args[i + 1:])
        if not t.startswith("-") or t == "-":
            return _Options(opts, args[i:])
        name, eq, value = t.partition("=")
        key = "--" + name[2:].replace("-", "_") if name.startswith("--") else name
        if eq:
            opts[key] = Word(value, w.source, w.known, w.reason, w.refs)
            i += 1
        elif key in ACCELERATE_FLAGS:
            opts[key] = Word("1", t)
            i += 1
        elif i + 1 < len(args) and not _looks_like_option(args[i + 1]):
            opts[key] = args[i + 1]
            i += 2
        else:
            return _Options(opts, [], error=f"accelerate launch: argument {t}: expected one "
                                            "argument")
    return _Options(opts, [])


def _accelerate_config(opts: dict[str, Word], environ: Mapping[str, Var], cwd: str | None,
                       files: Mapping[str, Written]) -> tuple[str, dict[str, Any], str, str]:
    """(path, config, error, unknown): the config file accelerate reads (config_args.py
    `load_config_from_file`), `process_config`'s defaults applied."""
    cfg_word = opts.get("--config_file")
    found = JobFile("")
    if cfg_word is not None:
        if not cfg_word.known:
            return "", {}, "", f"--config_file {cfg_word.text} not known"
        found = job_file(cfg_word.text if posixpath.isabs(cfg_word.text) or not cwd else
                         posixpath.join(cwd, cfg_word.text), files)
        if found.exists is False:  # config_args.py:44-51
            return found.path, {}, f"the --config_file {found.path} does not exist " \
                                   "(accelerate stops there)", ""
    elif "--cpu" not in opts:
        default = default_accelerate_config(environ)
        if default is None:
            return "", {}, "", "the default accelerate config path ($HF_HOME) is not known"
        found = job_file(default, files)
    path = found.path if found.exists is not False else ""
    if found.unknown or found.error or not path:
        return path, {}, found.error, found.unknown
    import yaml  # here: only a launch with a config file pays for it (~22 ms)

    # where the fix goes: the file, or the here-document of the script that writes it
    shown = f"{path} (written by the script at {found.written})" if found.written else path
    try:
        text = found.text or ""
        config = (json.loads(text) if path.endswith(".json") else yaml.safe_load(text)) or {}
    except (ValueError, yaml.YAMLError) as exc:
        return path, {}, f"cannot read {shown}: {str(exc).splitlines()[0]}", ""
    except RecursionError:  # json and PyYAML recurse per level: `[[[[...` (accelerate too)
        return path, {}, f"cannot read {shown}: nested too deeply", ""
    if not isinstance(config, dict):
        return path, {}, f"{shown} is not a mapping", ""
    # config_args.py:103-112 `process_config`
    if "distributed_type" not in config:
        return path, {}, f"{shown} has no distributed_type (accelerate stops there)", ""
    if "num_processes" not in config and config["distributed_type"] == "NO":
        config = {**config, "num_processes": 1}
    return path, config, "", ""


def _acc_number(opts: dict[str, Word], key: str, cfg_key: str, cfg_default: Any, path: str,
                config: dict[str, Any]) -> tuple[Any, str]:
    """(value, where from): the option, else the config file's key, else its default;
    "error" when the option is not an integer; None when not known."""
    w = opts.get(key)
    if w is not None:
        if not w.known:
            return None, f"{key} {w.text}"
        try:
            return int(w.text), key
        except ValueError:
            return "error", f"{key} {w.text!r} is not an integer"
    if path and cfg_key in config:
        value = config[cfg_key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            # `num_processes: ${NGPU}` from a here-document with a quoted delimiter: a
            # string accelerate passes on; what its launch does with it is not modelled
            return "unknown", f"{cfg_key} in {path} is {value!r}, not a number"
        return value, f"{cfg_key} in {path}"
    if path:
        return cfg_default, f"{cfg_key} default of the accelerate config"
    return None, ""


def _acc_gpu_errors(opts: dict[str, Word], nproc: Any, gpu_ids: str | None, machines: Any,
                    multi_gpu: bool) -> str:
    if "--multi_gpu" in opts and isinstance(nproc, int) and "--num_processes" in opts and \
            nproc < 2:
        return "accelerate launch: --multi_gpu needs at least 2 processes"
    if multi_gpu and gpu_ids is not None and gpu_ids != "all" and \
            len(gpu_ids.split(",")) < 2 and isinstance(machines, int) and machines <= 1:
        return "accelerate launch: fewer than two --gpu_ids for multi-GPU (launch.py:1258)"
    return ""


def _acc_port(opts: dict[str, Word], port: Any, port_src: str, nnodes: Any
              ) -> tuple[int | None, str, str]:
    """utils/launch.py:206-247: port 0 -> a free port; None -> 29500; on one machine a
    port in use makes accelerate fall back to a free one (standalone) instead of failing."""
    if port == 0:
        return None, RANDOM, f"{port_src}: 0 picks a free port"
    if port is None and opts.get("--main_process_port") is not None:
        return None, f"⟨{port_src}⟩", port_src
    value = port if port is not None else STATIC_DEFAULT_PORT
    port_src = port_src or f"default ({STATIC_DEFAULT_PORT})"
    if isinstance(nnodes, int) and nnodes <= 1:
        port_src += "; accelerate takes a free port instead if it is in use"
    return value, str(value), port_src


def accelerate(args: list[Word], environ: Mapping[str, Var], cwd: str | None,
               files: Mapping[str, Written] | None = None) -> AccelerateConfig:
    """`accelerate launch ARGS` as accelerate 1.x resolves it with its config file
    (accelerate/commands/launch.py `_validate_launch_command`, utils/launch.py
    `prepare_multi_gpu_env`)."""
    parsed = _accelerate_options(args)
    if parsed.unknown or parsed.error:  # argparse stops before anything runs
        return AccelerateConfig(unknown=parsed.unknown, error=parsed.error)
    opts, rest = parsed.opts, parsed.rest
    program, script_args = (rest[0], tuple(rest[1:])) if rest else (None, ())
    base = AccelerateConfig(program=program, args=script_args, module="-m" in opts or
                            "--module" in opts, no_python="--no_python" in opts)
    modes = [k for k in ACCELERATE_MODES if k in opts]
    if len(modes) > 1:  # launch.py:1204-1209
        return replace(base, error=f"accelerate launch: only one of {', '.join(modes)}")
    path, config, error, unknown = _accelerate_config(opts, environ, cwd, files or {})
    if error or unknown:
        return replace(base, config_file=path, error=error, unknown=unknown)
    nproc, nproc_src = _acc_number(opts, "--num_processes", "num_processes", -1, path, config)
    nnodes, nnodes_src = _acc_number(opts, "--num_machines", "num_machines", 1, path, config)
    port, port_src = _acc_number(opts, "--main_process_port", "main_process_port", None, path,
                                 config)
    for value, what in ((nproc, nproc_src), (nnodes, nnodes_src), (port, port_src)):
        if value == "error":
            return replace(base, config_file=path, error=f"accelerate launch: {what}")
        if value == "unknown":
            return replace(base, config_file=path, unknown=what)
    gpu = opts.get("--gpu_ids")
    gpu_ids = (gpu.text if gpu.known else None) if gpu is not None else \
        (str(config.get("gpu_ids")) if config.get("gpu_ids") is not None else
         ("all" if path else None))
    multi_gpu = "--multi_gpu" in opts or bool(
        path and not modes and str(config.get("distributed_type", "")).startswith("MULTI_"))
    machines = nnodes if "--num_machines" in opts or not multi_gpu or not path else \
        config.get("num_machines", 1)
    error = _acc_gpu_errors(opts, nproc, gpu_ids, machines, multi_gpu)
    if not error and path and nproc == -1:  # launch.py:1305
        error = "the accelerate config has no num_processes: pass --num_processes " \
                "(accelerate stops there)"
    if error:
        return replace(base, config_file=path, error=error)
    if nproc is None and "--num_processes" not in opts:
        nproc_src = "default (every visible GPU: no accelerate config)"
    nnodes = nnodes if nnodes is not None or "--num_machines" in opts else 1
    port_value, port_text, port_src = _acc_port(opts, port, port_src, nnodes)
    return replace(base, nproc=nproc if isinstance(nproc, int) else None,
                   nproc_text=str(nproc) if isinstance(nproc, int) else "all GPUs",
                   nproc_source=nproc_src, nnodes=nnodes if isinstance(nnodes, int) else None,
                   port=port_value, port_text=port_text, port_source=port_src,
                   gpu_ids=gpu_ids, config_file=path)


# -- deepspeed -------------------------------------------------------------------------

DLTS_HOSTFILE = "/job/hostfile"  # deepspeed/launcher/constants.py (runner.py:51 default)
DEEPSPEED_DEFAULT_PORT = 29500  # deepspeed/constants.py TORCH_DISTRIBUTED_DEFAULT_PORT


@dataclass(frozen=True)
class DeepspeedConfig(LauncherConfig):
    hostfile: str = ""  # the hostfile read ("" when none)


@functools.lru_cache(maxsize=1)
def deepspeed_parser() -> _Parser:
    """deepspeed 0.19.8 deepspeed/launcher/runner.py:46 `parse_args`, option for option
    (argparse with its default prefix matching: `--num_g 2`)."""
    p = _Parser(add_help=True)
    s, i = _typed(str), _typed(int)
    p.add_argument("-H", "--hostfile", type=s, default=DLTS_HOSTFILE)
    p.add_argument("-i", "--include", type=s, default="")
    p.add_argument("-e", "--exclude", type=s, default="")
    p.add_argument("--num_nodes", type=i, default=-1)
    p.add_argument("--num_gpus", "--num_accelerators", type=i, default=-1)
    p.add_argument("--master_port", type=i, default=DEEPSPEED_DEFAULT_PORT)
    p.add_argument("--master_addr", type=s, default="")
    p.add_argument("--node_rank", type=i, default=-1)
    p.add_argument("--launcher", type=s, default="pdsh")
    p.add_argument("--launcher_args", type=s, default="")
    for flag in ("--module", "--no_python", "--no_local_rank", "--no_ssh", "--no_ssh_check",
                 "--force_multi", "--save_pid"):
        p.add_argument(flag, action="store_true")
    p.add_argument("--enable_each_rank_log", type=s, default="None")
    p.add_argument("--autotuning", type=s, default="", choices=_Choices(["tune", "run"]))
    p.add_argument("user_script", type=s)
    p.add_argument("user_args", nargs=argparse.REMAINDER)
    p.add_argument("--bind_cores_to_rank", action="store_true")
    p.add_argument("--bind_core_list", type=s, default=None)
    p.add_argument("--ssh_port", type=i, default=None)
    p.add_argument("--venv_script", type=s, default=None)
    p.add_argument("--log_level", type=s, default="info",
                   choices=_Choices(["debug", "info", "warning", "error", "critical"]))
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def _hostfile(text: str) -> dict[str, int]:
    """runner.py:225 `_parse_hostfile`: `host slots=N` lines; ValueError on a bad one."""
    pool: dict[str, int] = {}
    # the lines of `for line in open(path)`: universal newlines
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.strip()
        match = re.search(r"^(\S+)\s+slots=(\d+)", line)
        if line.startswith("#") or not line:
            continue
        if not match:
            raise ValueError(f"Hostfile contains a bad entry: {line}")
        if match.group(1) in pool:
            raise ValueError(f"Hostfile contains multiple entries for {match.group(1)}")
        pool[match.group(1)] = int(match.group(2))
    if not pool:
        raise ValueError("Hostfile is empty or not formatted correctly")
    return pool


def _node_slots(spec: str) -> dict[str, list[int]]:
    """runner.py:267-290 `parse_node_config(_list)`: `host[:slot,slot]@host...`; a second
    `:` or a slot that is not an integer is a ValueError there too."""
    out: dict[str, list[int]] = {}
    for node in spec.split("@"):
        if ":" in node:
            host, slots = node.split(":")  # ValueError on a second `:`, as deepspeed
            out.setdefault(host, []).extend(int(x) for x in slots.split(","))
        else:
            out.setdefault(node, [])
    return {k: sorted(set(v)) for k, v in out.items()}


def _resource_filter(hosts: dict[str, list[int] | None], include: str, exclude: str
                     ) -> dict[str, list[int] | None]:
    """runner.py:292 `parse_resource_filter`. A host's slots are None where the machine
    decides them (no hostfile: every GPU of this node); a slot checked against them is
    then taken as given."""
    if include and exclude:
        raise ValueError("include_str and exclude_str are mutually exclusive.")
    if not include and not exclude:
        return hosts
    filtered: dict[str, list[int] | None] = {} if include else dict(hosts)
    for host, slots in _node_slots(include or exclude).items():
        if host not in hosts:
            raise ValueError(f"Hostname '{host}' not found in hostfile")
        have = hosts[host]
        for slot in slots:
            if have is not None and slot not in have:
                raise ValueError(f"No slot '{slot}' specified on host '{host}'")
        if include:
            filtered[host] = slots if slots else have
        elif slots:
            left = filtered[host]
            filtered[host] = None if left is None else [s for s in left if s not in slots]
        else:
            filtered[host] = []
    return {h: filtered[h] for h in hosts if h in filtered and filtered[h] != []}


def _apply_counts(active: dict[str, list[int] | None], num_nodes: int, num_gpus: int
                  ) -> dict[str, list[int] | None]:
    """runner.py:385 `apply_num_nodes_and_gpus`."""
    if num_nodes > 0:
        active = dict(list(active.items())[:num_nodes])
    if num_gpus > 0:
        active = {h: list(range(num_gpus)) for h in active}
    return active


def _ds_values(ns: argparse.Namespace) -> list[object]:
    return [ns.num_nodes, ns.num_gpus, ns.include, ns.exclude, ns.hostfile, ns.master_port,
            ns.node_rank, ns.no_ssh, ns.autotuning, ns.force_multi]


def _ds_pool(ns: argparse.Namespace, environ: Mapping[str, Var], hostfile: JobFile
             ) -> tuple[dict[str, int] | None, str, str]:
    """(pool, include, unknown): runner.py:446-462 `main`: the hostfile, else one node
    that respects CUDA_VISIBLE_DEVICES when no resource option is given."""
    if hostfile.unknown:
        return None, ns.include, f"its hostfile {hostfile.unknown}"
    if hostfile.error:
        raise OSError(hostfile.error)
    # `fetch_hostfile`
    pool = _hostfile(hostfile.text) if hostfile.text is not None else None
    include = ns.include
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if pool is None and visible is not None:
        if visible.value is None:
            return pool, include, "CUDA_VISIBLE_DEVICES is not known"
        if visible.value and not (include or ns.exclude or ns.num_nodes > 1 or
                                  ns.num_gpus > 0):
            include = f"localhost:{visible.value}"
    return pool, include, ""


def _ds_active(ns: argparse.Namespace, pool: dict[str, int] | None, include: str
               ) -> dict[str, list[int] | None]:
    """The hosts and slots --include/--exclude leave (runner.py:464-480); ValueError
    where deepspeed stops."""
    if (ns.num_nodes >= 0 or ns.num_gpus >= 0) and (include or ns.exclude):
        raise ValueError("Cannot specify num_nodes/gpus with include/exclude")
    if pool is None and ns.num_nodes > 1:
        raise ValueError("Num nodes is >1 but no extra nodes available via hostfile")
    hosts: dict[str, list[int] | None] = {"localhost": None} if pool is None else \
        {h: list(range(n)) for h, n in pool.items()}
    return _resource_filter(hosts, include, ns.exclude)


def _ds_launched(ns: argparse.Namespace, active: dict[str, list[int] | None]
                 ) -> dict[str, list[int] | None]:
    """runner.py:525-536: --num_nodes/--num_gpus applied, then --no_ssh's rank check;
    an empty world stops deepspeed/launcher/launch.py:155 (`node_list[node_rank]`)."""
    active = _apply_counts(active, ns.num_nodes, ns.num_gpus)
    if ns.no_ssh and not 0 <= ns.node_rank < len(active):
        raise AssertionError("Launching training without ssh, but --node_rank is not set "
                             "correctly.")
    if not active:
        raise ValueError("--include/--exclude leave no GPU to launch on")
    return active


def _ds_nproc(active: dict[str, list[int] | None], exclude: str) -> tuple[int | None, str]:
    counts = {len(v) if v is not None else None for v in active.values()}
    if None in counts:  # every visible GPU (minus --exclude): counted on the machine
        return None, "all GPUs" if not exclude else f"all GPUs but --exclude {exclude}"
    if len(counts) == 1:
        n = counts.pop()
        return n, str(n)
    return None, f"{sorted(c for c in counts if c is not None)} per host"


def deepspeed(args: list[Word], environ: Mapping[str, Var], cwd: str | None,
              files: Mapping[str, Written] | None = None) -> DeepspeedConfig:
    """`deepspeed ARGS` as deepspeed 0.19.8's deepspeed/launcher/runner.py `main` resolves
    its resources: hostfile, --include/--exclude, --num_nodes, --num_gpus,
    CUDA_VISIBLE_DEVICES. tests/test_deepspeed_oracle.py holds it to runner.main itself."""
    texts = _tag(args)
    try:
        ns = deepspeed_parser().parse_args(texts)
    except _ParseError as exc:
        unknown = next((w for w in args if not w.known), None)
        if unknown is not None:
            return DeepspeedConfig(unknown=_stray(unknown, "deepspeed"))
        return DeepspeedConfig(error=f"deepspeed: error: {exc}")
    parsed = _split_script(args, texts, ns, "user_script", "user_args")
    if parsed.stray is not None:
        return DeepspeedConfig(unknown=_stray(parsed.stray, "deepspeed"))
    program = args[parsed.script_i] if parsed.script_i >= 0 else Word(ns.user_script, "")
    base = DeepspeedConfig(program=program, args=parsed.tail, module=ns.module is True,
                           no_python=ns.no_python is True)
    if any(_is_unknown(v) for v in _ds_values(ns)):
        return replace(base, unknown="a deepspeed resource option is not known: " + ", ".join(
            _show(v) for v in _ds_values(ns) if _is_unknown(v)))
    hostfile = ns.hostfile
    if cwd and not posixpath.isabs(hostfile):
        hostfile = posixpath.join(cwd, hostfile)
    found = job_file(hostfile, files or {}, errors="replace")
    hostfile = found.path
    try:
        pool, include, why = _ds_pool(ns, environ, found)
        if why:
            return replace(base, unknown=why)
        active = _ds_active(ns, pool, include)
        if ns.autotuning:  # runner.py:522: after --include/--exclude, before the counts
            return replace(base, unknown="--autotuning runs deepspeed's autotuner first")
        active = _ds_launched(ns, active)
    except (OSError, ValueError, AssertionError) as exc:
        return replace(base, hostfile=hostfile if found.exists else "",
                       error=f"deepspeed: {exc}")
    nproc, text = _ds_nproc(active, ns.exclude)
    if pool is None:
        src = "--num_gpus" if ns.num_gpus > 0 else f"--include {include}" if nproc else \
            "default (every visible GPU)"
    else:
        src = f"hostfile {hostfile}" + (" and --num_gpus" if ns.num_gpus > 0 else "")
    return replace(base, nproc=nproc, nproc_text=text, nproc_source=src, nnodes=len(active),
                   port=ns.master_port, port_text=str(ns.master_port),
                   port_source="--master_port" if ns.master_port != DEEPSPEED_DEFAULT_PORT
                   else f"default ({DEEPSPEED_DEFAULT_PORT})",
                   hostfile=hostfile if pool is not None else "")
