"""gateway.uplinks.lazy_import: a deferred module loads on first use and then is the real module."""

from __future__ import annotations

import subprocess
import sys

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
