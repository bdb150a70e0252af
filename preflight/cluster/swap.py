"""The profile a node's preflight runs with, read the way its plugin resolves it, and the
options that run `cpu` in its place on a node Ray offers no GPU that finds none.

The plugin's order (plugin._setting, then _markexpr_names_profile): `--profile NAME`,
then PREFLIGHT_PROFILE, then the ini key `preflight_profile` (the `preflight` command
reads only its own gate.ini, so `-o preflight_profile=NAME` / `--override-ini`), then a
`-m` expression naming profiles; without any, the node detects its own (no GPU: `cpu`,
nothing to swap). Pure: the node task runs it with its own environment and profiles.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from preflight.profiles import Profile

CPU = "cpu"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # plugin._markexpr_names_profile's words


def _last_value(argv: list[str], long: str, short: str = "") -> str | None:
    """The value of the last `--long V` / `--long=V` (`-sV` / `-s V`), as argparse reads
    repeated options; None when not given."""
    found = None
    for arg, following in zip(argv, [*argv[1:], ""], strict=False):
        if arg == long or (short and arg == short):
            found = following
        elif arg.startswith(long + "="):
            found = arg.partition("=")[2]
        elif short and arg.startswith(short) and not arg.startswith("--") and len(arg) > 2:
            found = arg[len(short):]
    return found


def _ini_profile(argv: list[str]) -> str | None:
    """`-o preflight_profile=NAME` (pytest's --override-ini; the last one counts)."""
    found = None
    for arg, following in zip(argv, [*argv[1:], ""], strict=False):
        value = following if arg in ("-o", "--override-ini") else \
            arg.partition("=")[2] if arg.startswith("--override-ini=") else \
            arg[2:] if arg.startswith("-o") and not arg.startswith("--") else None
        if value is not None and value.partition("=")[0].strip() == "preflight_profile":
            found = value.partition("=")[2].strip()
    return found


def chosen(argv: list[str], environ: Mapping[str, str]) -> tuple[str, str]:
    """(profile, where it comes from: `--profile`, `PREFLIGHT_PROFILE`, `ini`); ("", "")
    when none is chosen this way (the `-m` expression or detection decide)."""
    cli = _last_value(argv, "--profile")
    if cli:
        return cli, "--profile"
    env = environ.get("PREFLIGHT_PROFILE") or ""
    if env:
        return env, "PREFLIGHT_PROFILE"
    ini = _ini_profile(argv)
    return (ini, "ini") if ini else ("", "")


def _marked_gpu(expr: str, profiles: Mapping[str, Profile]) -> list[str]:
    """The GPU profiles a `-m` expression selects by name (not those after `not`)."""
    words = _WORD.findall(expr)
    return [w for i, w in enumerate(words) if w in profiles and profiles[w].is_gpu
            and (i == 0 or words[i - 1] != "not")]


def _to_cpu(expr: str, profiles: Mapping[str, Profile]) -> str:
    """The expression with each GPU profile it selects as `cpu` (`not h100` stays)."""
    out, last, previous = [], 0, ""
    for m in _WORD.finditer(expr):
        word = m.group(0)
        if word in profiles and profiles[word].is_gpu and previous != "not":
            out += [expr[last:m.start()], CPU]
            last = m.end()
        previous = word
    return "".join(out) + expr[last:]


def gpu_profile(argv: list[str], environ: Mapping[str, str],
                profiles: Mapping[str, Profile]) -> str:
    """The GPU profile this node's preflight would run with; "" when it runs none (or one
    not known here: the node says so itself)."""
    name, _ = chosen(argv, environ)
    if name:
        return name if name in profiles and profiles[name].is_gpu else ""
    expr = _last_value(argv, "-m", "-m")
    marked = _marked_gpu(expr, profiles) if expr else []
    return marked[-1] if marked else ""


def cpu_argv(argv: list[str], environ: Mapping[str, str],
             profiles: Mapping[str, Profile]) -> tuple[list[str], str]:
    """The options that run `cpu` in place of the GPU profile `argv` and `environ` choose,
    and that profile; (argv, "") when they choose none. Every `--profile` and every GPU
    profile named in `-m` becomes `cpu`; one from PREFLIGHT_PROFILE or the ini is
    overridden by `--profile cpu` in front (the command line comes first)."""
    asked = gpu_profile(argv, environ, profiles)
    if not asked:
        return list(argv), ""
    out: list[str] = []
    after: str = ""  # the option whose value comes next
    for arg in argv:
        if after == "--profile":
            out.append(CPU)
        elif after == "-m":
            out.append(_to_cpu(arg, profiles))
        elif arg.startswith("--profile="):
            out.append("--profile=" + CPU)
        elif arg.startswith("-m") and not arg.startswith("--") and len(arg) > 2:
            out.append("-m" + _to_cpu(arg[2:], profiles))
        else:
            out.append(arg)
        after = arg if arg in ("--profile", "-m") and not after else ""
    if _last_value(argv, "--profile") is None and chosen(argv, environ)[0]:
        out = ["--profile", CPU, *out]
    return out, asked
