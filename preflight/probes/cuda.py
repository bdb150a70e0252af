"""Where a JIT build looks for libcudart, resolved the way flashinfer resolves it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from preflight.probes import paths


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


def toolkits(*roots: str) -> tuple[tuple[str, str], ...]:
    """Installed toolkits: (ROOT/cuda-X.Y with bin/nvcc, "X.Y"), named as NVIDIA's
    installers name them; toolkits are siblings, so the roots are /usr/local and the
    parent of the toolkit in use."""
    found: dict[str, str] = {}
    for root in roots:
        for d in sorted(Path(root).glob("cuda-*")) if os.path.isdir(root) else ():
            version = d.name[len("cuda-"):]
            if (d / "bin" / "nvcc").exists() and version.replace(".", "").isdigit():
                found.setdefault(str(d), version)
    return tuple(found.items())


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
