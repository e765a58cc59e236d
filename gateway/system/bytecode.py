"""Compile the agent's bytecode ahead of its first start: `python -OO -m gateway.system.bytecode`.

The unit runs the agent with -OO and PYTHONPYCACHEPREFIX (deploy/citygw.service) on a read-only
/opt: a module whose `.opt-2.pyc` is not in that cache is compiled from source at every start,
which costs time and, for the standard library modules the agent uses, ~6 MB of RSS that stays
(BENCHMARKS.md, "Bytecode"). `compileall` covers the virtual environment; the standard library
modules are written here by importing every module of `gateway` and `drivers` that a gateway
runs, with what they import (not the hub's service nor the developer tools: they run elsewhere,
and their extras may not be installed).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from pathlib import Path

PACKAGES = ("gateway", "drivers")
NOT_ON_A_GATEWAY = ("gateway.hub", "gateway.devtools")
ALSO = (
    "runpy",  # `python -m gateway.cli`
    "encodings.idna",  # a hub given by host name
    "decimal",  # imported inside a function (gateway/config)
    "cryptography.hazmat.primitives.ciphers.aead",  # BLE bind keys, imported when configured
    "cryptography.exceptions",
    "nacl.signing",  # remote config signatures, imported when configured
)
"""What the agent imports inside functions, so no module import brings it."""


def module_names() -> list[str]:
    """Every module of PACKAGES a gateway runs; not `__main__` (importing it would run the
    command line). Found on disk, so no package is imported before it is chosen."""
    names: list[str] = []

    def walk(path: Path, prefix: str) -> None:
        for info in pkgutil.iter_modules([str(path)]):
            name = f"{prefix}.{info.name}"
            if name.startswith(NOT_ON_A_GATEWAY) or info.name == "__main__":
                continue
            names.append(name)
            if info.ispkg:
                walk(path / info.name, name)

    for package in PACKAGES:
        names.append(package)
        spec = importlib.util.find_spec(package)
        if spec is None or spec.submodule_search_locations is None:
            raise SystemExit(f"citygw: package {package} not found")
        for location in spec.submodule_search_locations:
            walk(Path(location), package)
    return names


def warm() -> dict[str, str]:
    """Import every module; those that could not be (an extra not installed), with why."""
    skipped = {}
    for name in [*module_names(), *ALSO]:
        try:
            importlib.import_module(name)
        except ImportError as error:
            skipped[name] = str(error)
    return skipped


def main() -> None:
    """Exits with a message if the agent itself cannot be imported (a broken install)."""
    broken = {
        name: why
        for name, why in warm().items()
        if name.startswith(("gateway.agent", "gateway.cli"))
    }
    if broken:
        raise SystemExit("; ".join(f"citygw: cannot import {n}: {w}" for n, w in broken.items()))


if __name__ == "__main__":
    main()
