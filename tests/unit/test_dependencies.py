"""pyproject.toml declares every distribution that gateway/ and drivers/ import themselves
(a transitive dependency can vanish when the library that brought it changes)."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
# what `pip install citygw[...]` offers users; not `test`
SHIPPED_EXTRAS = ("demo", "flash", "hub", "sta-server")


def _imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for root in ("gateway", "drivers"):
        for path in (REPO / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    return found


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in SHIPPED_EXTRAS:
        requirements += project["optional-dependencies"][extra]
    return {Requirement(r).name.lower().replace("_", "-") for r in requirements}


def test_every_imported_distribution_is_declared() -> None:
    ours = {"gateway", "drivers"}
    distributions = packages_distributions()
    undeclared = {
        f"{module} ({dist})"
        for module in _imported_top_level_modules() - ours - set(sys.stdlib_module_names)
        for dist in distributions.get(module, [module])
        if dist.lower().replace("_", "-") not in _declared()
    }
    assert undeclared == set(), "declare them in pyproject.toml [project] dependencies"
