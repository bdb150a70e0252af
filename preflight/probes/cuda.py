"""Where a JIT build looks for libcudart, resolved the way flashinfer resolves it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from preflight.probes import paths, torch_build
from preflight.run import Runner


def cuda_home(environ: Mapping[str, str]) -> tuple[str, str]:
    """(path, how it was found), in the order of flashinfer's `get_cuda_path`
    (flashinfer/jit/cpp_ext.py): CUDA_HOME, CUDA_PATH, the parent of `which nvcc`,
    then /usr/local/cuda; the result is realpath'ed."""
    for key in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(key):
            return os.path.realpath(environ[key]), key
    nvcc = paths.which("nvcc", environ)
    if nvcc:
        return os.path.realpath(os.path.dirname(os.path.dirname(nvcc))), f"which nvcc = {nvcc}"
    return os.path.realpath("/usr/local/cuda"), "default /usr/local/cuda"


@dataclass(frozen=True)
class Kit:
    """An installed toolkit a job could point CUDA_HOME at."""

    path: str
    version: str  # "X.Y", from its directory name (cuda-X.Y) or its nvcc
    cudart: bool  # PATH/lib64/libcudart.so exists: what flashinfer's `-lcudart` link needs


def toolkits(*roots: str, extra: Mapping[str, str] | None = None) -> tuple[Kit, ...]:
    """Installed toolkits: ROOT/cuda-X.Y with bin/nvcc, named as NVIDIA's installers name
    them; toolkits are siblings, so the roots are /usr/local and the parent of the toolkit
    in use. `extra`: other prefixes with bin/nvcc (a conda env) and their nvcc release."""
    found: dict[str, str] = {}
    for root in roots:
        for d in sorted(Path(root).glob("cuda-*")) if os.path.isdir(root) else ():
            version = d.name[len("cuda-"):]
            if (d / "bin" / "nvcc").exists() and version.replace(".", "").isdigit():
                found.setdefault(str(d), version)
    for prefix, version in (extra or {}).items():
        found.setdefault(prefix, version)
    return tuple(Kit(path, version, (Path(path) / "lib64" / "libcudart.so").exists())
                 for path, version in found.items())


def installed(runner: Runner, environ: Mapping[str, str], home: str) -> tuple[Kit, ...]:
    """What cuda-stack and cudart-link both choose from: /usr/local/cuda-X.Y, the
    toolkits beside `home`, /usr/local/cuda when it is a toolkit of its own, and the job's
    conda env when it has its own nvcc (conda's cuda-toolkit)."""
    kits = toolkits("/usr/local", os.path.dirname(home))
    seen = {os.path.realpath(k.path) for k in kits}
    extra = {}
    # /usr/local/cuda as a directory of its own (not a link to a cuda-X.Y found above)
    for prefix in ("/usr/local/cuda", environ.get("CONDA_PREFIX") or ""):
        real = os.path.realpath(prefix) if prefix else ""
        if real and real not in seen and (Path(real) / "bin" / "nvcc").is_file():
            release = torch_build.nvcc(runner, real).release
            if release:
                extra[real] = release
                seen.add(real)
    return kits + toolkits(extra=extra)


def torch_cuda(runner: Runner, python: str, environ: Mapping[str, str]) -> str | None:
    """torch.version.cuda of the job's Python, from torch/version.py (torch not imported);
    None for a CPU-only build, no torch, or a torch without that file."""
    torch_dir, _ = torch_build.locate(runner, python, environ)
    facts = torch_build.version_file(torch_dir) if torch_dir is not None else None
    return facts.get("cuda") if facts else None


def _version(text: str) -> tuple[int, int]:
    parts = (text.split(".") + ["0"])[:2]
    return (int(parts[0]), int(parts[1])) if all(p.isdigit() for p in parts) else (0, 0)


def choose(kits: Sequence[Kit], torch_cuda: str | None, exclude: str = "") -> Kit | None:
    """The one toolkit both cudart-link and cuda-stack name: its lib64/ has libcudart.so
    (flashinfer links -L$CUDA_HOME/lib64 -lcudart) and its nvcc has torch's CUDA major
    (torch/utils/cpp_extension.py _check_cuda_version refuses another major); torch's own
    minor first, else the newest of that major. A CPU-only or unknown torch: the newest.
    None: no installed toolkit fits."""
    wanted = _version(torch_cuda) if torch_cuda else None
    fit = sorted((_version(k.version), k.path, k) for k in kits
                 if k.cudart and k.path != exclude and
                 (wanted is None or _version(k.version)[0] == wanted[0]))
    exact = [k for v, _, k in fit if v == wanted]
    return exact[0] if exact else fit[-1][2] if fit else None


@dataclass(frozen=True)
class LibLayout:
    prefix: str
    lib_cudart: tuple[str, ...]  # libcudart.so* under lib/
    lib64_exists: bool
    lib64_has_linker_name: bool  # lib64/libcudart.so, what `-lcudart` needs

    @property
    def present(self) -> bool:
        return bool(self.lib_cudart) or self.lib64_has_linker_name

    @property
    def broken(self) -> bool:
        """The trap of a 4×A800 slime node: the runtime is in lib/, the link searches lib64/."""
        return bool(self.lib_cudart) and not self.lib64_has_linker_name


def layout(prefix: str | Path) -> LibLayout:
    root = Path(prefix)
    lib = root / "lib"
    found = sorted(p.name for p in lib.glob("libcudart.so*")) if lib.is_dir() else []
    lib64 = root / "lib64"
    return LibLayout(
        prefix=str(root),
        lib_cudart=tuple(found),
        lib64_exists=lib64.is_dir(),
        lib64_has_linker_name=(lib64 / "libcudart.so").exists(),
    )


def link_argv(cc: str, out_dir: Path, home: str) -> list[str]:
    """A real link of an empty shared object the way flashinfer links (-lcudart only:
    -lcuda is the driver, present on GPU nodes only)."""
    src = out_dir / "empty.c"
    src.write_text("int preflight_probe(void) { return 0; }\n")
    return [cc, "-shared", "-o", str(out_dir / "probe.so"), str(src),
            f"-L{home}/lib64", f"-L{home}/lib64/stubs", "-lcudart"]
