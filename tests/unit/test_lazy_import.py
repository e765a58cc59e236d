"""gateway.uplinks.lazy_import: a deferred module loads on first use and then is the real module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.uplinks import lazy_import


def _run(code: str) -> str:
    """In a fresh interpreter: what is imported depends on the whole process."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.strip()


def test_deferred_module_is_not_executed_by_import_statements() -> None:
    out = _run(
        "import sys\n"
        "from gateway.uplinks import lazy_import\n"
        "lazy_import.defer('urllib.request')\n"
        "import urllib.request\n"  # what paho-mqtt does at import
        "print('http.client' in sys.modules, 'email' in sys.modules)\n"
    )
    assert out == "False False"


def test_first_attribute_loads_the_real_module_everywhere() -> None:
    out = _run(
        "import sys, urllib\n"
        "from gateway.uplinks import lazy_import\n"
        "stand_in = lazy_import.defer('urllib.request')\n"
        "import urllib.request\n"
        "print(callable(urllib.request.getproxies))\n"
        "real = sys.modules['urllib.request']\n"
        "print(real is not stand_in, urllib.request is real, 'http.client' in sys.modules)\n"
        "from urllib.request import Request\n"
        "print(Request.__module__)\n"
    )
    assert out.splitlines() == ["True", "True True True", "urllib.request"]


def test_already_imported_module_is_returned_as_is() -> None:
    import json

    assert lazy_import.defer("json") is json


def test_unknown_module_is_refused() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        lazy_import.defer("no_such_module_here")


def test_agent_does_not_load_what_it_never_runs() -> None:
    """The agent's imports leave out paho's proxy lookup and argparse's shutil (RSS)."""
    out = _run(
        "import sys\n"
        "import gateway.agent, gateway.cli\n"
        "gateway.cli.build_parser()\n"
        "print(sorted(m for m in ('http.client', 'email', 'shutil', 'lzma', 'bz2',\n"
        "      'gateway.sources.ble.source', 'ctypes.util') if m in sys.modules))\n"
    )
    assert out == "[]"


def _mentions_urllib_request(node: ast.AST) -> str | None:
    """ "import" or "use" if `node` imports or reads urllib.request, else None."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        names = [f"{node.module}.{alias.name}" for alias in node.names]
    else:
        names = []
    if any(name.startswith("urllib.request") for name in names):
        return "import"
    if (
        isinstance(node, ast.Attribute)
        and node.attr == "request"
        and isinstance(node.value, ast.Name)
        and node.value.id == "urllib"
    ):
        return "use"
    return None


def _urllib_request_uses(node: ast.AST, where: str = "<module>") -> set[tuple[str, str]]:
    """(enclosing function or "<module>", "import" or "use") for each mention of urllib.request."""
    found: set[tuple[str, str]] = set()
    for child in ast.iter_child_nodes(node):
        kind = _mentions_urllib_request(child)
        if kind is not None:
            found.add((where, kind))
        is_function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        found |= _urllib_request_uses(child, child.name if is_function else where)
    return found


def test_paho_imports_urllib_request_only_for_its_proxy_lookup() -> None:
    """The deferral (defer_paho_proxy_lookup) saves RSS only while this holds: paho-mqtt 2.2.0
    imports urllib.request at the top of paho/mqtt/client.py and reads it in `_get_proxy`
    alone. If a paho release changes that, re-measure (bench/imports.py) and revisit it."""
    import paho

    uses = {}
    for path in sorted(Path(paho.__file__).parent.rglob("*.py")):
        found = _urllib_request_uses(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            uses[path.name] = found
    assert uses == {"client.py": {("<module>", "import"), ("_get_proxy", "use")}}


def test_the_uplinks_defer_pahos_proxy_lookup_before_paho_is_imported() -> None:
    out = _run(
        "import sys\n"
        "import gateway.uplinks.client\n"
        "print('paho.mqtt.client' in sys.modules, type(sys.modules['urllib.request']).__name__,\n"
        "      'http.client' in sys.modules)\n"
    )
    assert out == "True module False"
