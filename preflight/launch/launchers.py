"""Launcher command lines read by the launchers' own rules, without importing them.

torchrun (and `python -m torch.distributed.run|launch`) is parsed with an argparse parser
built from torch 2.13's own option table (torch/distributed/run.py `get_args_parser`), so
argparse's own rules apply exactly: option-name prefixes (`--nproc_per=4`), `-`/`_`
spellings, attached values (`-t3`, `--x=y`), `PET_*` environment twins
(torch/distributed/argparse_util.py `env`/`check_env`) and the script-arguments boundary.
What torchrun then derives (`run()` and `config_from_args`) is computed from that parse.

Values the script could not evaluate are carried through the parse as `⟨...⟩` text; any
field built from one is unknown. tests/test_torchrun_oracle.py compares this reading with
torch's own `parse_args` + `config_from_args` on random command lines.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import metadata

from preflight.launch.shell import UNKNOWN_CLOSE, UNKNOWN_OPEN, Var, Word

C10D_DEFAULT_PORT = 29400  # torch/distributed/elastic/rendezvous/c10d_rendezvous_backend.py:32
STATIC_DEFAULT_PORT = 29500  # torch/distributed/run.py:1018 (`run`: master_port None -> 29500)
ETCD_DEFAULT_PORT = 2379  # torch/distributed/elastic/rendezvous/etcd_rendezvous_backend.py:144
# torch/distributed/elastic/rendezvous/registry.py:52-55
RDZV_BACKENDS = ("etcd", "etcd-v2", "c10d", "static")
# torch/distributed/run.py:745 `determine_local_world_size`: names resolved on the device.
DEVICE_NPROC = ("cpu", "gpu", "xpu", "auto")
RANDOM = "free"  # the port text of a port the kernel picks (an endpoint port 0)


class _ParseError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit 2
        raise _ParseError(message)


def _is_unknown(value: object) -> bool:
    return isinstance(value, str) and UNKNOWN_OPEN in value


def _typed(convert):
    """argparse `type=` that lets an unknown `⟨...⟩` value through untouched."""
    def parse(text: str):
        return text if _is_unknown(text) else convert(text)
    parse.__name__ = convert.__name__
    return parse


class _Choices(list):
    def __contains__(self, value: object) -> bool:
        return _is_unknown(value) or list.__contains__(self, value)


def _comma_separated_list(value: str) -> list[str]:
    # torch/distributed/run.py:414
    placeholder = "<COMMA_PLACEHOLDER>"
    return [i.replace(placeholder, ",") for i in value.replace(",,", placeholder).split(",")]


class env(argparse.Action):  # noqa: N801 - torch's name
    """torch/distributed/argparse_util.py `env`: the value, else $PET_<DEST> (applied by
    `_apply_pet`, so that one parser serves every environment), else the default."""

    pet = True

    def __call__(self, parser, namespace, values, option_string=None):
        namespace._given[self.dest] = option_string or self.dest
        setattr(namespace, self.dest, values)


class check_env(argparse.Action):  # noqa: N801
    """torch/distributed/argparse_util.py `check_env`: a flag, else bool(int($PET_<DEST>))."""

    pet = True

    def __init__(self, dest, default=False, **kwargs) -> None:
        super().__init__(dest=dest, const=True, default=default, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        namespace._given[self.dest] = option_string or self.dest
        setattr(namespace, self.dest, self.const)


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
                try:
                    int(var.value)
                except ValueError:
                    raise _ParseError(f"{name}={var.value!r} is not an integer (torchrun "
                                      "reads it with int())") from None
            continue
        used[action.dest] = name
        text = var.value if var.value is not None else f"⟨${name}⟩"
        if _is_unknown(text):
            setattr(ns, action.dest, text)
        elif isinstance(action, check_env):
            try:
                setattr(ns, action.dest, bool(int(text)))
            except ValueError:
                raise _ParseError(f"{name}={text!r} is not an integer (torchrun reads it "
                                  "with int())") from None
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

    nproc: int | None
    nproc_text: str
    nproc_source: str
    min_nodes: int | None
    max_nodes: int | None
    backend: str | None
    endpoint: str | None
    port: int | None  # the rendezvous endpoint's port; None with port_text RANDOM: random
    port_text: str
    port_source: str
    standalone: bool | None
    master_addr: str
    module: bool | None
    no_python: bool | None
    run_path: bool | None
    program: Word | None  # the training script / module
    args: tuple[Word, ...]  # its arguments
    error: str = ""  # torchrun itself would stop with this
    unknown: str = ""  # why the options could not be read at all


def _single(word: Word) -> bool:
    """An unknown word bash keeps as exactly one argument (quoted, not "$@"/"${A[@]}")."""
    return word.source[:1] in ("'", '"') and "@" not in word.source and "[*]" not in \
        word.source


def torchrun(args: list[Word], environ: Mapping[str, Var], launch_module: bool = False
             ) -> TorchrunConfig:
    """torchrun ARGS as torch 2.13 reads them: `parse_args`, the rendezvous defaults of
    `run()` (torch/distributed/run.py:985) and `config_from_args` (:840)."""
    # Unknown words are tagged ⟨#i⟩ so a value can be traced to the word it came from; an
    # unknown word that starts with `-` stays an option with an unknown (attached) value.
    tag = re.compile(UNKNOWN_OPEN + r"#(\d+)" + UNKNOWN_CLOSE)
    texts = []
    for n, w in enumerate(args):
        if w.known:
            texts.append(w.text)
        elif w.prefix.startswith("-") and UNKNOWN_OPEN in w.text:
            texts.append(w.text.replace(UNKNOWN_OPEN, f"{UNKNOWN_OPEN}#{n}{UNKNOWN_CLOSE}"
                                        + UNKNOWN_OPEN, 1))
        else:
            texts.append(f"{UNKNOWN_OPEN}#{n}{UNKNOWN_CLOSE}{w.text}")
    empty = TorchrunConfig(None, "", "", None, None, None, None, None, "", "", None, "",
                           None, None, None, None, ())
    unknown_words = [w for w in args if not w.known]
    try:
        parser = torchrun_parser(launch_module)
        ns = parser.parse_args(texts, argparse.Namespace(_given={}))
        pet_used = _apply_pet(parser, ns, environ)
    except _ParseError as exc:
        if unknown_words:
            w = unknown_words[0]
            return _replace(empty, unknown=f"{w.text} may hold torchrun options "
                                           f"({w.reason or 'not evaluated'})")
        return _replace(empty, error=f"torchrun: error: {exc}")

    k = len(ns.training_script_args)
    if k and texts[-k:] == ns.training_script_args or not k:
        tail = list(args[len(args) - k:]) if k else []
        script_i = len(args) - k - 1
    else:  # pragma: no cover - argparse keeps REMAINDER as the tail of argv
        tail, script_i = [Word(t, t) for t in ns.training_script_args], -1
    if not (0 <= script_i < len(args) and texts[script_i] == ns.training_script):
        script_i = texts.index(ns.training_script) if ns.training_script in texts else -1
    option_values = "\n".join(
        v if isinstance(v, str) else "\n".join(map(str, v))
        for d, v in vars(ns).items() if d not in ("training_script", "training_script_args")
        and isinstance(v, (str, list)))
    in_options = {int(m) for m in tag.findall(option_values)}
    # An unknown word that is not an option's value and not a script argument could
    # expand to any options (`torchrun $DISTRIBUTED_ARGS train.py`).
    for n, w in enumerate(args):
        if w.known or n in in_options or n >= len(args) - k:
            continue
        if n == script_i and _single(w) and not w.prefix.startswith("-"):
            continue
        return _replace(empty, unknown=f"{w.text} may hold torchrun options "
                                       f"({w.reason or 'not evaluated'})")

    def show(value: object) -> str:
        return tag.sub("", str(value))

    def source(dest: str, flag: str) -> str:
        if dest in pet_used:
            return pet_used[dest]
        return ns._given.get(dest, "default")

    error = ""
    nnodes = ns.nnodes
    min_nodes = max_nodes = None
    if not _is_unknown(nnodes):
        # torch/distributed/run.py:731 `parse_min_max_nnodes`
        parts = nnodes.split(":")
        try:
            if len(parts) == 1:
                min_nodes = max_nodes = int(parts[0])
            elif len(parts) == 2:
                min_nodes, max_nodes = int(parts[0]), int(parts[1])
            else:
                error = f'nnodes={nnodes} is not in "MIN:MAX" format'
        except ValueError:
            error = f"--nnodes {nnodes!r}: invalid literal for int()"
    standalone = None if _is_unknown(ns.standalone) else ns.standalone
    backend = None if _is_unknown(ns.rdzv_backend) else ns.rdzv_backend
    endpoint = None if _is_unknown(ns.rdzv_endpoint) else ns.rdzv_endpoint
    master_port = ns.master_port
    random_rdzv = False
    port_src = ""
    # torch/distributed/run.py:988-1015 `run`: --standalone, or a static rendezvous without
    # endpoint and --master-port on at most one node, is c10d on localhost:0.
    if standalone:
        backend, endpoint, random_rdzv = "c10d", "localhost:0", True
        port_src = "--standalone picks a random free port"
    elif standalone is None:
        backend = endpoint = None
    elif backend == "static" and endpoint == "" and master_port is None:
        if max_nodes == 1 and not error:
            backend, endpoint, random_rdzv = "c10d", "localhost:0", True
            port_src = "no --master-port on one node: torchrun picks a random free port"
        elif max_nodes is None and not error:
            backend = endpoint = None
    elif backend == "static" and endpoint == "" and _is_unknown(master_port):
        pass
    elif backend is None or endpoint is None:
        backend = endpoint = None  # whether the one-node rewrite applies is not known
    if master_port is None:
        master_port = STATIC_DEFAULT_PORT
    if not error and min_nodes is not None and max_nodes is not None and \
            not (0 < min_nodes <= max_nodes):
        error = (f"min_nodes must be > 0 and <= max_nodes, got min_nodes={min_nodes}, "
                 f"max_nodes={max_nodes}")
    if not error and not _is_unknown(ns.max_restarts) and ns.max_restarts < 0:
        error = "max_restarts must be >= 0"
    nproc: int | None = None
    nproc_text = show(ns.nproc_per_node)
    if not _is_unknown(ns.nproc_per_node):
        try:
            nproc = int(ns.nproc_per_node)
        except ValueError:
            if ns.nproc_per_node not in DEVICE_NPROC and not error:
                error = f"Unsupported nproc_per_node value: {ns.nproc_per_node}"
    error = error or _config_errors(ns)
    # torch/distributed/run.py:790 `get_rdzv_endpoint`
    if backend == "static" and endpoint == "":
        endpoint = None if _is_unknown(ns.master_addr) or _is_unknown(master_port) else \
            f"{ns.master_addr}:{master_port}"
        if endpoint is not None:
            port_src = port_src or source("master_port", "--master-port")
            if port_src == "default":
                port_src = f"default ({STATIC_DEFAULT_PORT})"
    elif endpoint:
        port_src = port_src or f"--rdzv-endpoint ({backend})"
    port: int | None = None
    port_text = ""
    if backend is not None and backend not in RDZV_BACKENDS and not error:
        error = f"no rendezvous handler is registered for --rdzv-backend {backend!r}"
    if endpoint is not None and backend is not None and not error:
        default = {"c10d": C10D_DEFAULT_PORT, "static": -1}.get(backend, ETCD_DEFAULT_PORT)
        try:
            _host, port = parse_rendezvous_endpoint(endpoint, default)
        except ValueError as exc:
            error = str(exc)
        else:
            if port == -1:  # static_tcp_rendezvous.py:114
                error = f"Port is absent in endpoint: {endpoint}. Try launching with " \
                        "--master-port"
                port = None
            elif port == 0:
                port, port_text = None, RANDOM
                port_src = port_src or "port 0: the kernel picks a random free port"
            else:
                port_text = str(port)
                if ":" not in endpoint.rpartition("]")[2]:
                    port_src = f"default of the {backend} rendezvous"
    if random_rdzv:
        port, port_text = None, RANDOM
    if not port_text and not error:
        port_text = "⟨unknown⟩"
        port_src = "not known: " + ", ".join(
            show(v) for v in (ns.rdzv_backend, ns.rdzv_endpoint, ns.master_port, ns.nnodes,
                              ns.standalone) if _is_unknown(v))
    # torch/distributed/run.py:948 `--run-path` takes precedence over -m and --no-python
    run_path = None if _is_unknown(ns.run_path) else ns.run_path
    module = None if _is_unknown(ns.module) or run_path is None else \
        ns.module and not run_path
    no_python = None if _is_unknown(ns.no_python) or run_path is None else \
        ns.no_python and not run_path
    if not error and module and no_python:
        error = "Don't use both the '--no-python' flag and the '--module' flag at the same time."
    # torch/distributed/launch.py `launch`: checked before run(), on the flag itself
    if launch_module and not error and ns.no_python is True and not ns.use_env:
        error = "When using the '--no-python' flag, you must also set the '--use-env' flag."
    program = args[script_i] if script_i >= 0 else Word(ns.training_script, "")
    rest = tuple(tail)
    return TorchrunConfig(
        nproc=nproc, nproc_text=nproc_text, nproc_source=source("nproc_per_node",
                                                                "--nproc-per-node"),
        min_nodes=min_nodes, max_nodes=max_nodes, backend=backend, endpoint=endpoint,
        port=port, port_text=port_text, port_source=port_src, standalone=standalone,
        master_addr=show(ns.master_addr), module=module, no_python=no_python,
        run_path=run_path,
        program=program, args=rest, error=error)


def _replace(cfg: TorchrunConfig, **kw) -> TorchrunConfig:
    return replace(cfg, **kw)


def _config_errors(ns: argparse.Namespace) -> str:
    """The other checks of `config_from_args` (torch/distributed/run.py:840-920)."""
    conf = ns.rdzv_conf
    if not _is_unknown(conf) and conf.strip():
        # torch/distributed/elastic/rendezvous/utils.py:23 `_parse_rendezvous_config`
        for kv in conf.strip().split(","):
            key, *values = kv.split("=", 1)
            if not key.strip():
                return "The rendezvous configuration string must be in format " \
                       "<key1>=<value1>,...,<keyN>=<valueN>."
            if not (values[0].strip() if values else None):
                return f"The rendezvous configuration option '{key.strip()}' must have a " \
                       "value specified."
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


@dataclass(frozen=True)
class AccelerateConfig:
    nproc: int | None
    nproc_text: str
    nproc_source: str
    nnodes: int | None
    port: int | None
    port_text: str
    port_source: str
    gpu_ids: str | None
    config_file: str  # the config file accelerate reads ("" if none)
    program: Word | None
    args: tuple[Word, ...]
    module: bool = False
    no_python: bool = False
    error: str = ""
    unknown: str = ""


def default_accelerate_config(environ: Mapping[str, Var]) -> str | None:
    """accelerate/commands/config/config_args.py:29-40: $HF_HOME, else
    $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface; + accelerate/default_config.yaml
    (None when a variable it depends on is not known)."""
    def get(name: str) -> str | None:
        var = environ.get(name)
        return "" if var is None else var.value

    hf_home, xdg, home = get("HF_HOME"), get("XDG_CACHE_HOME"), get("HOME")
    if hf_home is None or (not hf_home and xdg is None):
        return None
    base = hf_home or posixpath.join(xdg or "~/.cache", "huggingface")
    if base.startswith("~"):
        if home is None:
            return None
        base = (home or posixpath.expanduser("~")) + base[1:]
    return posixpath.join(base, "accelerate", "default_config.yaml")


def _accelerate_options(args: list[Word]) -> tuple[dict[str, Word], list[Word], str]:
    opts: dict[str, Word] = {}
    i = 0
    while i < len(args):
        w = args[i]
        t = w.text
        if not w.known and not w.prefix.startswith("-"):
            if _single(w):
                return opts, args[i:], ""
            return opts, [], f"{t} may hold accelerate options ({w.reason or 'not evaluated'})"
        if t == "--":
            return opts, args[i + 1:], ""
        if not t.startswith("-") or t == "-":
            return opts, args[i:], ""
        name, eq, value = t.partition("=")
        key = "--" + name[2:].replace("-", "_") if name.startswith("--") else name
        if eq:
            opts[key] = Word(value, w.source, w.known, w.reason, w.refs)
            i += 1
        elif key in ACCELERATE_FLAGS:
            opts[key] = Word("1", t)
            i += 1
        elif i + 1 < len(args):
            opts[key] = args[i + 1]
            i += 2
        else:
            return opts, [], f"accelerate launch: {t} expects a value"
    return opts, [], ""


def accelerate(args: list[Word], environ: Mapping[str, Var], cwd: str | None
               ) -> AccelerateConfig:
    """`accelerate launch ARGS` as accelerate 1.x resolves it with its config file
    (accelerate/commands/launch.py `_validate_launch_command`, utils/launch.py
    `prepare_multi_gpu_env`)."""
    opts, rest, unknown = _accelerate_options(args)
    empty = AccelerateConfig(None, "", "", None, None, "", "", None, "", None, ())
    if unknown:
        return replace(empty, unknown=unknown)
    program, script_args = (rest[0], tuple(rest[1:])) if rest else (None, ())
    base = replace(empty, program=program, args=script_args, module="-m" in opts or
                   "--module" in opts, no_python="--no_python" in opts)

    def given(key: str) -> Word | None:
        return opts.get(key)

    # launch.py:1204-1209
    modes = [k for k in ("--multi_gpu", "--cpu", "--tpu", "--use_deepspeed", "--use_fsdp")
             if k in opts]
    if len(modes) > 1:
        return replace(base, error=f"accelerate launch: only one of {', '.join(modes)}")
    cfg_word = given("--config_file")
    config: dict = {}
    path = ""
    if cfg_word is not None:
        if not cfg_word.known:
            return replace(base, unknown=f"--config_file {cfg_word.text} not known")
        path = cfg_word.text if posixpath.isabs(cfg_word.text) or not cwd else \
            posixpath.join(cwd, cfg_word.text)
        if not os.path.isfile(path):  # config_args.py:44-51
            return replace(base, config_file=path, error=f"the --config_file {path} does not "
                                                         "exist (accelerate stops there)")
    elif "--cpu" not in opts:
        default = default_accelerate_config(environ)
        if default is None:
            return replace(base, unknown="the default accelerate config path ($HF_HOME) is "
                                         "not known")
        path = default if os.path.isfile(default) else ""
    if path:
        import yaml  # here: every run collects this module, few launches use accelerate

        try:
            with open(path, encoding="utf-8") as f:
                config = (json.load(f) if path.endswith(".json") else yaml.safe_load(f)) or {}
        except (OSError, ValueError, yaml.YAMLError) as exc:
            return replace(base, config_file=path, error=f"cannot read {path}: "
                                                         f"{str(exc).splitlines()[0]}")
        if not isinstance(config, dict):
            return replace(base, config_file=path, error=f"{path} is not a mapping")
        # config_args.py:103-112 `process_config`
        if "distributed_type" not in config:
            return replace(base, config_file=path, error=f"{path} has no distributed_type "
                                                         "(accelerate stops there)")
        if "num_processes" not in config and config["distributed_type"] == "NO":
            config = {**config, "num_processes": 1}

    def number(key: str, cfg_key: str, cfg_default):
        w = given(key)
        if w is not None:
            if not w.known:
                return None, f"{key} {w.text}", True
            try:
                return int(w.text), key, False
            except ValueError:
                return "error", f"{key} {w.text!r} is not an integer", False
        if path and cfg_key in config:
            return config[cfg_key], f"{cfg_key} in {path}", False
        return (cfg_default if path else None), (f"{cfg_key} default of the accelerate config"
                                                 if path else ""), False

    nproc, nproc_src, _ = number("--num_processes", "num_processes", -1)
    nnodes, _, _ = number("--num_machines", "num_machines", 1)
    port, port_src, _ = number("--main_process_port", "main_process_port", None)
    for value, what in ((nproc, nproc_src), (nnodes, "--num_machines"), (port, port_src)):
        if value == "error":
            return replace(base, config_file=path, error=f"accelerate launch: {what}")
    gpu = given("--gpu_ids")
    gpu_ids = (gpu.text if gpu.known else None) if gpu is not None else \
        (str(config.get("gpu_ids")) if config.get("gpu_ids") is not None else
         ("all" if path else None))
    multi_gpu = "--multi_gpu" in opts or (
        path and not modes and str(config.get("distributed_type", "")).startswith("MULTI_"))
    if "--multi_gpu" in opts and isinstance(nproc, int) and given("--num_processes") and \
            nproc < 2:
        return replace(base, error="accelerate launch: --multi_gpu needs at least 2 processes")
    machines = nnodes if given("--num_machines") or not multi_gpu or not path else \
        config.get("num_machines", 1)
    if multi_gpu and gpu_ids is not None and gpu_ids != "all" and \
            len(gpu_ids.split(",")) < 2 and isinstance(machines, int) and machines <= 1:
        return replace(base, config_file=path, error="accelerate launch: fewer than two "
                       "--gpu_ids for multi-GPU (launch.py:1258)")
    if path and nproc == -1:  # launch.py:1305
        return replace(base, config_file=path, error="the accelerate config has no "
                       "num_processes: pass --num_processes (accelerate stops there)")
    nproc_text = str(nproc) if isinstance(nproc, int) else "all GPUs"
    if nproc is None and given("--num_processes") is None:
        nproc_src = "default (every visible GPU: no accelerate config)"
    nnodes = nnodes if nnodes is not None or given("--num_machines") else 1
    # utils/launch.py:206-247: port 0 -> a free port; None -> 29500; on one machine a
    # port in use makes accelerate fall back to a free one (standalone) instead of failing.
    if port == 0:
        port_value, port_text, port_src = None, RANDOM, f"{port_src}: 0 picks a free port"
    elif port is None and given("--main_process_port") is not None:
        port_value, port_text = None, f"⟨{port_src}⟩"
    else:
        port_value = port if port is not None else STATIC_DEFAULT_PORT
        port_text = str(port_value)
        port_src = port_src or f"default ({STATIC_DEFAULT_PORT})"
        if isinstance(nnodes, int) and nnodes <= 1:
            port_src += "; accelerate takes a free port instead if it is in use"
    return replace(base, nproc=nproc if isinstance(nproc, int) else None,
                   nproc_text=nproc_text, nproc_source=nproc_src,
                   nnodes=nnodes if isinstance(nnodes, int) else None, port=port_value,
                   port_text=port_text, port_source=port_src, gpu_ids=gpu_ids,
                   config_file=path)


# -- deepspeed -------------------------------------------------------------------------

DLTS_HOSTFILE = "/job/hostfile"  # deepspeed/launcher/runner.py:35


@dataclass(frozen=True)
class DeepspeedConfig:
    nproc: int | None
    nproc_text: str
    nproc_source: str
    nnodes: int | None
    port: int | None
    port_text: str
    hostfile: str  # the hostfile read ("" when none)
    program: Word | None
    args: tuple[Word, ...]
    module: bool = False
    no_python: bool = False
    error: str = ""
    unknown: str = ""


@functools.lru_cache(maxsize=1)
def deepspeed_parser() -> _Parser:
    """deepspeed/launcher/runner.py `parse_args` (argparse with its default prefix matching);
    every value is kept as text here and converted where the runner uses it."""
    p = _Parser(add_help=True)
    s = _typed(str)
    for names, kind in ((("-H", "--hostfile"), s), (("-i", "--include"), s),
                        (("-e", "--exclude"), s), (("--num_nodes",), _typed(int)),
                        (("--min_elastic_nodes",), _typed(int)),
                        (("--max_elastic_nodes",), _typed(int)),
                        (("--num_gpus", "--num_accelerators"), _typed(int)),
                        (("--master_port",), _typed(int)), (("--master_addr",), s),
                        (("--node_rank",), _typed(int)), (("--launcher",), s),
                        (("--launcher_args",), s), (("--enable_each_rank_log",), s),
                        (("--autotuning",), s), (("--comment",), s), (("--account",), s),
                        (("--bind_core_list",), s), (("--ssh_port",), _typed(int))):
        p.add_argument(*names, type=kind, default=None)
    for flag in ("--module", "--no_python", "--no_local_rank", "--no_ssh", "--no_ssh_check",
                 "--force_multi", "--save_pid", "--elastic_training", "--bind_cores_to_rank"):
        p.add_argument(flag, action="store_true")
    p.add_argument("user_script", type=s)
    p.add_argument("user_args", nargs=argparse.REMAINDER)
    return p


def _hostfile(path: str) -> dict[str, int]:
    """runner.py `_parse_hostfile`: `host slots=N` lines; ValueError on a bad one."""
    pool: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
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
    """runner.py `parse_node_config_list`: `host[:slot,slot]@host...`."""
    out: dict[str, list[int]] = {}
    for node in spec.split("@"):
        host, _, slots = node.partition(":")
        out.setdefault(host, [])
        if slots:
            out[host] += [int(x) for x in slots.split(",")]
    return {k: sorted(set(v)) for k, v in out.items()}


def deepspeed(args: list[Word], environ: Mapping[str, Var], cwd: str | None
              ) -> DeepspeedConfig:
    """`deepspeed ARGS` as deepspeed/launcher/runner.py `main` resolves its resources:
    hostfile, --include/--exclude, --num_nodes, --num_gpus, CUDA_VISIBLE_DEVICES."""
    empty = DeepspeedConfig(None, "", "", None, None, "", "", None, ())
    if any(not w.known for w in args[:next((i for i, w in enumerate(args)
                                            if w.known and not w.text.startswith("-")),
                                           len(args))]):
        w = next(w for w in args if not w.known)
        return replace(empty, unknown=f"{w.text} may hold deepspeed options")
    try:
        ns = deepspeed_parser().parse_args([w.text for w in args])
    except _ParseError as exc:
        return replace(empty, error=f"deepspeed: error: {exc}")
    k = len(ns.user_args)
    program = args[len(args) - k - 1]
    base = replace(empty, program=program, args=tuple(args[len(args) - k:]),
                   module=ns.module, no_python=ns.no_python)
    values = [ns.num_nodes, ns.num_gpus, ns.include, ns.exclude, ns.hostfile, ns.master_port]
    if any(_is_unknown(v) for v in values):
        return replace(base, unknown="a deepspeed resource option is not known")
    num_nodes = -1 if ns.num_nodes is None else ns.num_nodes
    num_gpus = -1 if ns.num_gpus is None else ns.num_gpus
    include, exclude = ns.include or "", ns.exclude or ""
    port = 29500 if ns.master_port is None else ns.master_port  # TORCH_DISTRIBUTED_DEFAULT_PORT
    hostfile = ns.hostfile or DLTS_HOSTFILE
    if cwd and not posixpath.isabs(hostfile):
        hostfile = posixpath.join(cwd, hostfile)
    pool: dict[str, int] | None = None
    if os.path.isfile(hostfile):  # runner.py `fetch_hostfile`
        try:
            pool = _hostfile(hostfile)
        except (OSError, ValueError) as exc:
            return replace(base, hostfile=hostfile, error=f"deepspeed: {exc}")
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if pool is None and visible is not None:
        if visible.value is None:
            return replace(base, unknown="CUDA_VISIBLE_DEVICES is not known")
        if visible.value and not (include or exclude or num_nodes > 1 or num_gpus > 0):
            include = f"localhost:{visible.value}"  # runner.py: respects VISIBLE_DEVICES
    if (num_nodes >= 0 or num_gpus >= 0) and (include or exclude):
        return replace(base, error="deepspeed: Cannot specify num_nodes/gpus with "
                                   "include/exclude")
    if include and exclude:
        return replace(base, error="deepspeed: include_str and exclude_str are mutually "
                                   "exclusive")
    port_text = str(port)
    if pool is None:
        if num_nodes > 1:
            return replace(base, error="deepspeed: Num nodes is >1 but no extra nodes "
                                       "available via hostfile")
        try:
            slots = _node_slots(include).get("localhost", []) if include else []
        except ValueError:
            return replace(base, error=f"deepspeed: bad --include {include!r}")
        if num_gpus > 0:
            nproc, text, src = num_gpus, str(num_gpus), "--num_gpus"
        elif slots:
            nproc, text, src = len(slots), str(len(slots)), f"--include {include}"
        else:  # every visible GPU (minus --exclude): counted on the machine
            nproc, text, src = None, "all GPUs", "default (every visible GPU)"
        return replace(base, nproc=nproc, nproc_text=text, nproc_source=src, nnodes=1,
                       port=port, port_text=port_text)
    try:
        active = {h: list(range(n)) for h, n in pool.items()}
        if include:
            chosen = _node_slots(include)
            for host in chosen:
                if host not in pool:
                    raise ValueError(f"Hostname '{host}' not found in hostfile")
            active = {h: (chosen[h] or active[h]) for h in pool if h in chosen}
        elif exclude:
            for host, slots in _node_slots(exclude).items():
                if host not in pool:
                    raise ValueError(f"Hostname '{host}' not found in hostfile")
                active[host] = [s for s in active[host] if s not in slots] if slots else []
            active = {h: v for h, v in active.items() if v}
    except ValueError as exc:
        return replace(base, hostfile=hostfile, error=f"deepspeed: {exc}")
    if num_nodes > 0:
        active = dict(list(active.items())[:num_nodes])
    if num_gpus > 0:
        active = {h: list(range(num_gpus)) for h in active}
    counts = sorted({len(v) for v in active.values()})
    nproc = counts[0] if len(counts) == 1 else None
    return replace(base, nproc=nproc, nproc_text=str(nproc) if nproc else
                   f"{counts} per host", nproc_source=f"hostfile {hostfile}" +
                   (" and --num_gpus" if num_gpus > 0 else ""), nnodes=len(active),
                   port=port, port_text=port_text, hostfile=hostfile)
