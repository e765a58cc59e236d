"""Writing a MicroPython image (micropython.org/download) to a board, for `citygw node flash`.

ESP32: esptool erases the flash and writes the .bin at 0x1000 (the board must be reachable by
its ROM bootloader; DevKit boards enter it by themselves, others need BOOT held at reset).
Pico / Pico W (rp2): the .uf2 goes onto the board's USB drive (RPI-RP2, shown while BOOTSEL is
held at plug-in) when it is mounted, else through picotool if installed; otherwise the steps
are explained. The image is checked (magic, chip) before anything is erased.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.nodes.config import Board

log = logging.getLogger(__name__)

ESP_IMAGE_MAGIC = 0xE9
ESP32_CHIP_ID = 0  # in the image's extended header; S2 is 2, C3 5, S3 9
ESP32_OFFSET = "0x1000"
UF2_MAGIC = (0x0A324655, 0x9E5D5157)
UF2_DRIVES = (
    "/media/*/RPI-RP2",
    "/run/media/*/RPI-RP2",
    "/media/RPI-RP2",
    "/mnt/RPI-RP2",
    "/media/*/RP2350",
    "/run/media/*/RP2350",
)
ESPTOOL_TIMEOUT_S = 300


class ImageError(RuntimeError):
    """The image cannot be written; the message says what to do."""


def check_image(image: Path, *, board: Board) -> None:
    """ImageError unless `image` is a MicroPython image for `board` (nothing is touched)."""
    try:
        with image.open("rb") as handle:
            head = handle.read(64)
    except OSError as error:
        raise ImageError(f"{image}: cannot read the image ({error.strerror})") from None
    if board == "esp32":
        if len(head) < 24 or head[0] != ESP_IMAGE_MAGIC:
            raise ImageError(
                f"{image}: not an ESP32 firmware image (a .bin from "
                "micropython.org/download/ESP32_GENERIC)"
            )
        chip_id = struct.unpack_from("<H", head, 12)[0]
        if chip_id != ESP32_CHIP_ID:
            raise ImageError(
                f"{image}: built for another ESP chip (id {chip_id}), not the "
                "ESP32; take the ESP32_GENERIC image"
            )
    elif len(head) < 8 or struct.unpack_from("<II", head) != UF2_MAGIC:
        raise ImageError(
            f"{image}: not a UF2 image (a .uf2 from micropython.org/download/RPI_PICO_W)"
        )


def _esptool() -> list[str]:
    if importlib.util.find_spec("esptool") is not None:
        return [sys.executable, "-m", "esptool"]
    for name in ("esptool", "esptool.py"):
        found = shutil.which(name)
        if found:
            return [found]
    raise ImageError("esptool is not installed: pip install 'citygw[flash]'")


def _esptool_commands() -> tuple[str, str]:
    """esptool 5 spells its commands with dashes; 4 with underscores (5 still takes them)."""
    try:
        major = int(importlib.metadata.version("esptool").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        major = 4
    return ("erase-flash", "write-flash") if major >= 5 else ("erase_flash", "write_flash")


def _esptool_error(output: str) -> str:
    """The line of esptool's output that says what went wrong."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for marker in ("fatal error occurred:", "error:"):
        for line in lines:
            at = line.lower().find(marker)
            if at >= 0:
                return line[at + len(marker) :].strip()
    return lines[-1] if lines else ""


def _run(args: list[str], progress: Callable[[str], None], what: str) -> None:
    progress(" ".join(args[-4:]) if len(args) > 4 else " ".join(args))
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=ESPTOOL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise ImageError(
            f"{what} took over {ESPTOOL_TIMEOUT_S} s; unplug, replug and run the command again"
        ) from None
    log.debug("%s: %s%s", what, proc.stdout, proc.stderr)
    if proc.returncode != 0:
        detail = _esptool_error(proc.stderr + proc.stdout) or f"exit {proc.returncode}"
        raise ImageError(
            f"{what} failed: {detail}. Is the board in its bootloader? Hold BOOT, "
            "press EN (reset), release BOOT, and run the command again"
        )


def _write_esp32(image: Path, port: str, progress: Callable[[str], None]) -> None:
    esptool = [*_esptool(), "--chip", "esp32", "--port", port]
    erase, write = _esptool_commands()
    _run([*esptool, erase], progress, "esptool erase")
    _run(
        [*esptool, "--baud", "460800", write, "-z", ESP32_OFFSET, str(image)],
        progress,
        "esptool write",
    )


def _uf2_drive() -> Path | None:
    for pattern in UF2_DRIVES:
        for found in sorted(Path("/").glob(pattern.removeprefix("/"))):
            if (found / "INFO_UF2.TXT").is_file():
                return found
    return None


def _write_rp2(image: Path, progress: Callable[[str], None]) -> None:
    drive = _uf2_drive()
    if drive is not None:
        progress(f"copying {image.name} to {drive} (the board restarts when it has it)")
        with image.open("rb") as src, (drive / image.name).open("wb") as dst:
            shutil.copyfileobj(src, dst)
            dst.flush()
            try:
                os.fsync(dst.fileno())
            except OSError as error:  # the Pico may restart, and the drive go, on the last block
                log.debug("fsync on %s: %s", drive, error)
        return
    picotool = shutil.which("picotool")
    if picotool is not None:
        try:
            proc = subprocess.run(
                [picotool, "load", "-x", str(image)],
                capture_output=True,
                text=True,
                timeout=ESPTOOL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ImageError("picotool took too long; replug the board and retry") from None
        if proc.returncode == 0:
            progress(f"picotool loaded {image.name}")
            return
        log.debug("picotool: %s%s", proc.stdout, proc.stderr)
    raise ImageError(
        f"the Pico is not in its bootloader: unplug it, hold BOOTSEL while plugging it in, and "
        f"either copy {image} onto the RPI-RP2 drive that appears (then run this command again "
        "without --micropython) or run this command again as it is once the drive is mounted"
    )


def write_image(image: Path, *, board: Board, port: str, progress: Callable[[str], None]) -> None:
    """Write a checked image (check_image) to the board on `port`; ImageError on failure."""
    if board == "esp32":
        _write_esp32(image, port, progress)
    else:
        _write_rp2(image, progress)
