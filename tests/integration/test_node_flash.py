"""`citygw node flash` and `citygw node monitor` against a virtual board: the real MicroPython
interpreter (WebAssembly) with its REPL on a pty (tests/integration/virtual_board.py), driven by
real mpremote. The board's flash is a host directory, so what was written is read back here,
byte for byte, apart from the hashes the flasher reads from the board itself."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from virtual_board import VirtualBoard, require

from drivers import node as node_link
from gateway.devtools.sim_serial import close_pty, open_pty
from gateway.nodes import image as image_module
from gateway.nodes.board import BoardError
from gateway.nodes.config import Board, NodeConfigError
from gateway.nodes.flash import FIRMWARE_DIR, FlashError, FlashReport, compile_firmware, flash
from gateway.nodes.image import ImageError

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem + ".mpy" for p in FIRMWARE_DIR.glob("*.py") if p.name != "main.py")
NODE_CONFIG = {
    "node_id": 42,
    "interval_s": 30,
    "link": "uart",
    "uart": {"id": 1, "baudrate": 115200, "tx": 4, "rx": 5},
    "sensors": [{"type": "supply", "pin": 26, "scale": 2.0}],  # an ADC on both boards
    "wdt_ms": 20000,
}


@pytest.fixture
def esp32(tmp_path: Path) -> Iterator[VirtualBoard]:
    require()
    with VirtualBoard(tmp_path, platform="esp32") as board:
        yield board


@pytest.fixture
def node_json(tmp_path: Path) -> Path:
    path = tmp_path / "node.json"
    path.write_text(json.dumps(NODE_CONFIG, indent=2))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def _citygw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _flash(board: VirtualBoard, node_config: Path, *, platform: Board = "esp32") -> FlashReport:
    return flash(port=str(board.port), board=platform, node_config=node_config)


def test_flash_puts_compiled_firmware_main_and_config_on_the_board(
    esp32: VirtualBoard, node_json: Path
) -> None:
    report = _flash(esp32, node_json)

    on_board = esp32.files()
    assert sorted(on_board) == sorted([*MODULES, "main.py", "node.json"])
    assert on_board["main.py"] == (FIRMWARE_DIR / "main.py").read_bytes()
    assert on_board["node.json"] == node_json.read_bytes()
    compiled = {f.name: f.data for f in compile_firmware(FIRMWARE_DIR)}
    for name in MODULES:
        assert on_board[name] == compiled[name], name
        assert on_board[name][:2] == b"M\x06"  # .mpy v6
    # the hashes the board computed are the hashes of what is on its flash
    assert report.verified == {
        name: hashlib.sha256(data).hexdigest() for name, data in on_board.items()
    }


def test_second_flash_writes_nothing(esp32: VirtualBoard, node_json: Path) -> None:
    _flash(esp32, node_json)
    stamps = {p.name: p.stat().st_mtime_ns for p in esp32.root.iterdir()}

    again = _flash(esp32, node_json)

    assert again.written == []
    assert len(again.unchanged) == len(stamps)
    assert {p.name: p.stat().st_mtime_ns for p in esp32.root.iterdir()} == stamps


def test_the_command_line_flashes_and_repeats(esp32: VirtualBoard, node_json: Path) -> None:
    first = _citygw(
        "node",
        "flash",
        "--port",
        str(esp32.port),
        "--board",
        "esp32",
        "--node-config",
        str(node_json),
    )
    assert first.returncode == 0, first.stderr
    files = len(MODULES) + 2
    assert f"{files} written, 0 unchanged, 0 removed, {files} verified" in first.stdout
    again = _citygw(
        "node",
        "flash",
        "--port",
        str(esp32.port),
        "--board",
        "esp32",
        "--node-config",
        str(node_json),
    )
    assert again.returncode == 0, again.stderr
    assert f"0 written, {files} unchanged, 0 removed, {files} verified" in again.stdout


def test_changed_config_rewrites_only_node_json(esp32: VirtualBoard, node_json: Path) -> None:
    _flash(esp32, node_json)
    node_json.write_text(json.dumps(dict(NODE_CONFIG, interval_s=300)))

    report = _flash(esp32, node_json)

    assert report.written == ["node.json"]
    assert json.loads(esp32.files()["node.json"])["interval_s"] == 300


def test_stale_sources_and_leftovers_go_and_the_ble_counter_stays(
    esp32: VirtualBoard, node_json: Path
) -> None:
    (esp32.root / "link.py").write_text("raise ImportError('stale source install')\n")
    (esp32.root / "bthome_counter").write_text("4096")
    (esp32.root / "main.py.citygw-tmp").write_text("# a run that was cut off\n")

    report = _flash(esp32, node_json)

    assert report.removed == ["main.py.citygw-tmp", "link.py"]
    assert "link.py" not in esp32.files() and "main.py.citygw-tmp" not in esp32.files()
    assert esp32.files()["bthome_counter"] == b"4096"


def test_flashed_firmware_boots_on_the_board(esp32: VirtualBoard, node_json: Path) -> None:
    _flash(esp32, node_json)

    # The node as main.main() starts it, one cycle, from the board's own flash (.mpy modules,
    # main.py, node.json); the virtual board's UART (devices.UARTS) keeps what the node sent.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpremote",
            "connect",
            str(esp32.port),
            "exec",
            "import main, devices\ncfg, errors = main.load_config()\n"
            "node = main.Node(cfg, errors, sleep_ms=lambda ms: None)\nnode.run_once()\n"
            "print(bytes(devices.UARTS[1].written).hex())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    frames = node_link.StreamDecoder().feed(bytes.fromhex(proc.stdout.strip()))
    assert len(frames) == 1
    report = frames[0]
    assert isinstance(report, node_link.Report)
    assert report.node_id == 42 and report.interval_s == 30
    assert dict(report.status) == {"supply": "ok"}  # no "config": the node took node.json whole
    assert [m.quantity for m in report.measurements] == ["supply_v"]


def test_wrong_board_type_is_refused_before_writing(tmp_path: Path, node_json: Path) -> None:
    require()
    with VirtualBoard(tmp_path, platform="rp2") as pico:
        with pytest.raises(FlashError, match=r"this board is rp2 .* pass --board rp2"):
            _flash(pico, node_json)
        assert pico.files() == {}
        # and with the right type it flashes
        _flash(pico, node_json, platform="rp2")
        assert "main.py" in pico.files()


def test_invalid_node_config_fails_before_the_board_is_touched(
    esp32: VirtualBoard, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(dict(NODE_CONFIG, interval=60, sensors=[{"type": "bme280", "sda": 21}]))
    )
    proc = _citygw(
        "node", "flash", "--port", str(esp32.port), "--board", "esp32", "--node-config", str(bad)
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "interval: unknown key" in proc.stderr
    assert "sensors[0].sda, scl: give both pins or neither" in proc.stderr
    assert esp32.files() == {}


def test_node_config_is_checked_against_the_board(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_text((FIRMWARE_DIR / "node.json").read_text())  # the ESP32 example
    with pytest.raises(NodeConfigError, match=r"sensors\[2\]\.pin: expected an int 0\.\.29"):
        flash(port=str(tmp_path / "unused"), board="rp2", node_config=path)


def test_missing_port_is_one_clear_line(tmp_path: Path, node_json: Path) -> None:
    proc = _citygw(
        "node",
        "flash",
        "--port",
        str(tmp_path / "ttyUSB9"),
        "--board",
        "esp32",
        "--node-config",
        str(node_json),
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "ttyUSB9: no such port" in proc.stderr


def test_silent_port_is_not_a_micropython_board(tmp_path: Path, node_json: Path) -> None:
    """A pty where nothing answers: a board in its bootloader, or another device."""
    link = str(tmp_path / "ttySILENT")
    master_fd, _ = open_pty(link)
    try:
        with pytest.raises(BoardError, match="no MicroPython answers there"):
            flash(port=link, board="esp32", node_config=node_json, connect_timeout_s=1.0)
    finally:
        close_pty(master_fd, link)


def test_image_that_is_not_for_the_board_is_refused_before_erasing(
    tmp_path: Path, node_json: Path
) -> None:
    uf2 = tmp_path / "RPI_PICO_W.uf2"
    uf2.write_bytes(bytes.fromhex("554632465751 5d9e".replace(" ", "")) + bytes(504))
    with pytest.raises(ImageError, match="not an ESP32 firmware image"):
        flash(port=str(tmp_path / "ttyUSB0"), board="esp32", node_config=node_json, image=uf2)
    esp32_bin = tmp_path / "ESP32_GENERIC.bin"
    esp32_bin.write_bytes(bytes([0xE9, 3, 2, 0x20]) + bytes(60))
    with pytest.raises(ImageError, match="not a UF2 image"):
        flash(port=str(tmp_path / "ttyACM0"), board="rp2", node_config=node_json, image=esp32_bin)


def test_esp32_image_needs_the_rom_bootloader(
    esp32: VirtualBoard, node_json: Path, tmp_path: Path
) -> None:
    """Real esptool against a board that runs MicroPython (no ROM bootloader answers): one
    line saying how to get the board into its bootloader, and nothing on the board changes."""
    image = tmp_path / "ESP32_GENERIC.bin"
    image.write_bytes(bytes([0xE9, 3, 2, 0x20]) + bytes(60))
    proc = _citygw(
        "node",
        "flash",
        "--port",
        str(esp32.port),
        "--board",
        "esp32",
        "--node-config",
        str(node_json),
        "--micropython",
        str(image),
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "esptool erase failed: Failed to connect to ESP32" in proc.stderr
    assert "Hold BOOT" in proc.stderr
    assert esp32.files() == {}


def test_pico_image_goes_onto_its_uf2_drive(
    tmp_path: Path, node_json: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Pico held in BOOTSEL shows a USB drive (RPI-RP2); the image is copied onto it and the
    flasher waits for the board to come back. The drive is a folder here (no USB)."""
    require()
    drive = tmp_path / "media" / "RPI-RP2"
    drive.mkdir(parents=True)
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\n")
    monkeypatch.setattr(image_module, "UF2_DRIVES", (str(tmp_path / "media" / "RPI-RP2"),))
    uf2 = tmp_path / "RPI_PICO_W-v1.24.1.uf2"
    uf2.write_bytes(struct.pack("<II", 0x0A324655, 0x9E5D5157) + bytes(504))
    with VirtualBoard(tmp_path, platform="rp2") as pico:
        report = flash(port=str(pico.port), board="rp2", node_config=node_json, image=uf2)
        assert (drive / uf2.name).read_bytes() == uf2.read_bytes()
        assert report.board.platform == "rp2"
        assert "main.py" in pico.files()


def test_monitor_shows_the_console_and_ctrl_c_ends_it(esp32: VirtualBoard, node_json: Path) -> None:
    monitor = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "node", "monitor", "--port", str(esp32.port)],
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert monitor.stderr is not None and monitor.stdout is not None
        assert b"Ctrl-C" in monitor.stderr.readline()  # printed once the port is open
        # the node prints something: here its REPL answering a line typed at it
        fd = os.open(esp32.port, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, b"print('hello from', 6 * 7)\r")
            seen = b""
            os.set_blocking(monitor.stdout.fileno(), False)
            deadline = time.monotonic() + 20
            while b"hello from 42" not in seen and time.monotonic() < deadline:
                seen += monitor.stdout.read() or b""
                time.sleep(0.05)
        finally:
            os.close(fd)
        assert b"hello from 42" in seen
        with pytest.raises(BoardError, match="another program has it open"):
            flash(port=str(esp32.port), board="esp32", node_config=node_json)
        monitor.send_signal(signal.SIGINT)
        assert monitor.wait(timeout=10) == 0
    finally:
        if monitor.poll() is None:
            monitor.kill()
        for pipe in (monitor.stdout, monitor.stderr):
            if pipe is not None:
                pipe.close()
            monitor.wait()


def test_monitor_of_a_missing_port_is_one_clear_line(tmp_path: Path) -> None:
    proc = _citygw("node", "monitor", "--port", str(tmp_path / "ttyACM7"))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "ttyACM7: no such port" in proc.stderr
