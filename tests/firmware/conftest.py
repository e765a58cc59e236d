"""Runs firmware/ on the real MicroPython interpreter (WebAssembly port under Node.js).

`micropython(code)` copies firmware/*.py and firmware/sim/fakes/*.py (fake `machine`,
`bluetooth`, `cryptolib` and sensors) into a fresh interpreter's filesystem, runs `code` and
returns its stdout; `micropython_json(code)` parses the last line printed as JSON. run.mjs takes
the interpreter from firmware/sim, where `make test` (or `make firmware-interpreter`) installs it
for `citygw node simulate` too; without it the tests skip locally and fail in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
FIRMWARE = HERE.parent.parent / "firmware"
FAKES = FIRMWARE / "sim" / "fakes"
PACKAGE = FIRMWARE / "sim" / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not PACKAGE.is_dir():
        return "the MicroPython npm package is missing (run make firmware-interpreter)"
    return None


def _sources() -> dict[str, str]:
    files = {p.name: p.read_text() for p in sorted(FIRMWARE.glob("*.py"))}
    files.update({p.name: p.read_text() for p in sorted(FAKES.glob("*.py"))})
    return files


@pytest.fixture(scope="session")
def micropython() -> Callable[[str], str]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"firmware tests cannot run in CI: {reason}")
        pytest.skip(reason)
    files = _sources()

    def run(code: str, *, extra: dict[str, str] | None = None, timeout_s: float = 60) -> str:
        job = {"files": {**files, **(extra or {})}, "code": code}
        proc = subprocess.run(
            ["node", str(HERE / "run.mjs")],
            input=json.dumps(job).encode(),
            capture_output=True,
            cwd=HERE,
            timeout=timeout_s,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"MicroPython failed:\n{proc.stderr.decode()}\nstdout:\n{proc.stdout.decode()}"
            )
        return proc.stdout.decode()

    return run


@pytest.fixture(scope="session")
def micropython_json(micropython: Callable[..., str]) -> Callable[..., Any]:
    def run(code: str, **kwargs: Any) -> Any:
        lines = micropython(code, **kwargs).strip().splitlines()
        return json.loads(lines[-1])

    return run
