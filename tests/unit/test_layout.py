"""The layout CONTRIBUTING.md draws stays true: packages for the data path, the agent apart
from the tools, one place for each library that touches the outside, modules a reader can hold.

Static: every import statement in the tree counts, including those inside functions (the lazy
ones), so a tool imported on one rarely taken path still shows up here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
AGENT_PACKAGES = ("agent", "config", "sources", "store", "uplinks", "wire", "remote", "system")
TOOL_PACKAGES = ("hub", "nodes", "devtools", "cli")


def modules(*tops: str) -> Iterator[tuple[str, Path]]:
    for top in tops:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def imports(path: Path, name: str) -> set[str]:
    """Every module `path` imports at run time, absolute, wherever the import statement is
    (imports for type checkers only, under `if TYPE_CHECKING:`, load nothing and do not count)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    todo: list[ast.AST] = [ast.parse(path.read_text())]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


GRAPH = {name: imports(path, name) for name, path in modules("gateway", "drivers")}


def closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module in seen or module not in GRAPH:
            continue
        seen.add(module)
        todo.extend(GRAPH[module])
    return seen


def test_gateway_top_level_holds_at_most_eight_modules() -> None:
    top = [p.name for p in (ROOT / "gateway").glob("*.py")]
    assert len(top) <= 8, top


def test_every_package_says_its_one_job_and_is_a_real_package() -> None:
    for directory in [ROOT / "gateway", *(ROOT / "gateway").rglob("*/"), ROOT / "drivers"]:
        if directory.name == "__pycache__" or not any(directory.glob("*.py")):
            continue
        init = directory / "__init__.py"
        assert init.exists(), f"{directory} has modules but no __init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring, f"{init} has no docstring naming the package's job"


@pytest.mark.parametrize("top", ["gateway", "drivers"])
def test_no_module_is_longer_than_a_reader_can_hold(top: str) -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for _, path in modules(top)
        if (lines := path.read_text().count("\n")) > MAX_MODULE_LINES
    }
    assert long == {}


@pytest.mark.parametrize("top", ["gateway", "drivers"])
def test_no_function_is_longer_than_sixty_lines(top: str) -> None:
    long = {}
    for _, path in modules(top):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert long == {}


def test_the_agent_never_imports_the_hub_side_or_the_tools() -> None:
    packages = {m.split(".")[1] for m in closure("gateway.agent") if m.count(".") >= 2}
    assert packages & set(TOOL_PACKAGES) == set()
    assert packages <= {*AGENT_PACKAGES, "readings", "backoff"}, packages


def importers(*libraries: str) -> set[str]:
    return {
        name
        for name, found in GRAPH.items()
        if any(i == lib or i.startswith(f"{lib}.") for i in found for lib in libraries)
    }


@pytest.mark.parametrize(
    ("libraries", "through"),
    [
        (("aiomqtt", "paho"), {"gateway.uplinks.client"}),
        (("h11", "httpx", "aiohttp", "requests", "urllib3"), {"gateway.uplinks.http_client"}),
        (("bleak", "dbus_fast"), {"gateway.sources.ble.bluez"}),
        (("nacl",), {"gateway.remote.signing"}),
        (("mpremote",), {"gateway.nodes.board"}),
        (
            ("sqlite3",),
            {
                "gateway.store.database",
                "gateway.store.buffer",
                "gateway.store.at_rest",
                "gateway.store.marks",
                "gateway.store.names",
                "gateway.store.upkeep",
            },
        ),
    ],
)
def test_each_outside_library_is_reached_through_one_place(
    libraries: tuple[str, ...], through: set[str]
) -> None:
    """The hub side may use MQTT its own way; everything else goes through the one seam."""
    assert {m for m in importers(*libraries) if not m.startswith("gateway.hub.")} == through


def test_drivers_are_pure_codecs() -> None:
    io = importers("asyncio", "serial", "bleak", "aiomqtt", "paho", "socket", "sqlite3")
    assert {m for m in io if m.startswith("drivers")} == set()
