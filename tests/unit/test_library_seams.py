"""Each platform library is reached through one module of the agent (CONTRIBUTING.md, STYLE.md).

The hub side, node tools and dev tools are never imported by the agent and may import what
they need; everything else in gateway/ is the agent.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
NOT_THE_AGENT = ("hub", "nodes", "devtools")


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _agent_modules_importing(library: str) -> list[str]:
    return sorted(
        str(path.relative_to(GATEWAY.parent))
        for path in GATEWAY.rglob("*.py")
        if path.relative_to(GATEWAY).parts[0] not in NOT_THE_AGENT
        and library in _imported_roots(path)
    )


@pytest.mark.parametrize(
    ("library", "module"),
    [
        ("aiomqtt", "gateway/uplinks/client.py"),
        ("paho", "gateway/uplinks/client.py"),
        ("bleak", "gateway/sources/ble/bluez.py"),
        ("dbus_fast", "gateway/sources/ble/bluez.py"),
    ],
)
def test_only_one_agent_module_imports_the_library(library: str, module: str) -> None:
    assert _agent_modules_importing(library) == [module]
