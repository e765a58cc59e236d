"""Modules a dependency imports but the agent never runs, loaded on first use instead.

paho-mqtt imports `urllib.request` (which pulls in http.client, email, tempfile, shutil, bz2,
lzma, ...: ~1.7 MB of RSS, BENCHMARKS.md) only to read proxy settings, and calls it only when
PySocks is installed. `defer` puts a stand-in module in `sys.modules` that imports the real
one the moment any of its attributes is read, so behaviour never changes: only the cost moves
to the first use, which for the agent is never. (`importlib.util.LazyLoader` cannot do this on
3.11: the import statement itself reads `__spec__` from it, which loads the module.)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType


def defer(name: str) -> ModuleType:
    """Register `name` (e.g. "urllib.request") to load on first attribute access.

    Already imported modules are returned as they are; ModuleNotFoundError if it does not exist.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)  # imports the parent package
    if spec is None:
        raise ModuleNotFoundError(f"cannot defer {name}: no such module", name=name)
    stand_in = ModuleType(name, f"{name}, imported on first use (gateway.uplinks.lazy_import)")
    stand_in.__spec__ = spec

    def load(attribute: str) -> object:  # PEP 562: only for attributes the stand-in lacks
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attribute)

    stand_in.__getattr__ = load  # type: ignore[method-assign]
    sys.modules[name] = stand_in
    parent_name, _, child = name.rpartition(".")
    if parent_name:
        setattr(sys.modules[parent_name], child, stand_in)  # as importing a submodule does
    return stand_in


def defer_paho_proxy_lookup() -> None:
    """Make paho-mqtt's `import urllib.request` free until its proxy lookup really runs.

    paho-mqtt 2.2.0 imports `urllib.request` at the top of `paho/mqtt/client.py` and reads it
    only in `Client._get_proxy`, which returns before that without PySocks.
    tests/unit/test_lazy_import.py fails when a paho release uses the module anywhere else.
    Called once, by `gateway.uplinks.client` before it imports paho; a second call changes
    nothing. Measured: ~1.7 MB less RSS for the agent (BENCHMARKS.md).
    """
    defer("urllib.request")
