"""A MicroPython board on a serial port through its raw REPL; the one module importing mpremote.

`open_board(port)` interrupts whatever runs, soft-resets into the raw REPL (a soft reset in the
raw REPL does not run main.py) and gives a `MicroPythonBoard`: what it is (`identify`), SHA-256
of files computed on the board (`hashes`), atomic file writes (`write`: a temporary name, then
a rename), `remove`, `keep_watchdog_fed` and `reset`. `console` copies a running board's
output for `citygw node monitor`. Every failure is a BoardError whose message says what to do.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import io
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

log = logging.getLogger(__name__)
_T = TypeVar("_T")

BAUDRATE = 115_200
WRITE_CHUNK = 768  # bytes per exec: 1 KB of base64, small for a board's heap
TMP_SUFFIX = ".citygw-tmp"

_HASHER = """
import binascii, hashlib
def _citygw_sha256(name):
    try:
        f = open(name, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    buf = bytearray(512)
    with f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(memoryview(buf)[:n])
    return binascii.hexlify(h.digest()).decode()
"""

_WATCHDOG = """
_citygw_wdt = None
try:
    import machine
    _citygw_wdt = machine.WDT(timeout={timeout_ms})
    _citygw_wdt.feed()
except Exception:
    pass
"""


class BoardError(RuntimeError):
    """The board cannot be used as asked; the message says what is wrong and what to do."""


@dataclass(frozen=True, slots=True)
class BoardInfo:
    """What a board says about itself over its raw REPL."""

    platform: str  # sys.platform: "esp32", "rp2", ...
    version: str  # MicroPython's, e.g. "1.24.1"
    machine: str  # e.g. "Raspberry Pi Pico W with RP2040"
    mpy_version: int  # the .mpy format the board loads (6 since MicroPython 1.20)


def check_port(port: str) -> None:
    """BoardError unless `port` exists and this user may open it."""
    if not Path(port).exists():
        raise BoardError(
            f"{port}: no such port; plug the board in and look for it with "
            "`ls /dev/ttyUSB* /dev/ttyACM*` (docs/flashing.md)"
        )
    if not os.access(port, os.R_OK | os.W_OK):
        raise BoardError(
            f"{port}: permission denied; add yourself to the dialout group "
            "(`sudo usermod -aG dialout $USER`, then log in again)"
        )


class MicroPythonBoard:
    """A board in its raw REPL. Use through `open_board`."""

    def __init__(self, transport: SerialTransport, port: str) -> None:
        self._t = transport
        self.port = port
        self._t.exec(_HASHER)
        self._feed = ""
        self.was_reset = False

    def _exec(self, code: str) -> bytes:
        try:
            out: bytes = self._t.exec(self._feed + code)
        except TransportExecError as error:
            last = (error.error_output.strip().splitlines()[-1:] or ["?"])[0]
            if "ENOSPC" in last or last.endswith("OSError: 28"):
                raise BoardError(
                    f"{self.port}: the board's filesystem is full; make room "
                    "(mpremote fs rm) or start afresh with --micropython"
                ) from None
            raise BoardError(f"{self.port}: the board said {last!r}") from None
        except (TransportError, serial.SerialException, OSError) as error:
            raise BoardError(
                f"{self.port}: the connection failed ({error}); check the cable "
                "and run the command again"
            ) from None
        return out

    def _eval(self, expression: str, kind: type[_T]) -> _T:
        """The board's value of `expression` (a Python literal); BoardError if not a `kind`."""
        value = ast.literal_eval(self._exec(f"print(repr({expression}))").decode().strip())
        if not isinstance(value, kind):
            raise BoardError(
                f"{self.port}: expected a {kind.__name__} from the board, got {value!r}"
            )
        return value

    def identify(self) -> BoardInfo:
        """The board's platform, MicroPython version, machine and .mpy version."""
        self._exec("import sys")
        platform, version, machine, mpy = self._eval(
            "(sys.platform, '.'.join(str(v) for v in sys.implementation.version[:3]), "
            "getattr(sys.implementation, '_machine', ''), "
            "getattr(sys.implementation, '_mpy', 6) & 0xff)",
            tuple,
        )
        return BoardInfo(platform=platform, version=version, machine=machine, mpy_version=mpy)

    def listdir(self) -> list[str]:
        """The names in the board's root directory."""
        return [str(name) for name in self._eval("__import__('os').listdir()", list)]

    def hashes(self, names: list[str]) -> dict[str, str | None]:
        """SHA-256 (hex) of each file as the board reads it back; None where there is none."""
        found = self._eval(f"{{n: _citygw_sha256(n) for n in {names!r}}}", dict)
        return {str(name): None if sha is None else str(sha) for name, sha in found.items()}

    def keep_watchdog_fed(self, timeout_ms: int) -> None:
        """A node running the citygw firmware has armed the hardware watchdog, which nothing
        can disarm: re-arm it at `timeout_ms` and feed it before every command from now on."""
        self._exec(_WATCHDOG.format(timeout_ms=timeout_ms))
        self._feed = "_citygw_wdt and _citygw_wdt.feed()\n"

    def write(self, name: str, data: bytes) -> None:
        """Write `name` whole or not at all: to a temporary name first, then renamed."""
        tmp = name + TMP_SUFFIX
        self._exec(
            f"import binascii, os\n_f = open({tmp!r}, 'wb')\n_w = _f.write\n"
            "_d = binascii.a2b_base64"
        )
        for start in range(0, len(data), WRITE_CHUNK):
            chunk = base64.b64encode(data[start : start + WRITE_CHUNK])
            self._exec(f"_w(_d({chunk!r}))")
        self._exec(
            f"_f.close()\ntry:\n    os.remove({name!r})\nexcept OSError:\n    pass\n"
            f"os.rename({tmp!r}, {name!r})"
        )

    def remove(self, name: str) -> None:
        """Delete the file `name` on the board."""
        self._exec(f"import os\nos.remove({name!r})")

    def reset(self) -> None:
        """Hard reset: the board boots and runs main.py. The connection is not usable after."""
        self.was_reset = True
        with contextlib.suppress(TransportError, serial.SerialException, OSError):
            self._t.exec_raw_no_follow("import machine\nmachine.reset()")


def _connect(port: str, *, timeout_s: float) -> SerialTransport:
    check_port(port)
    try:
        transport = SerialTransport(port, baudrate=BAUDRATE)
    except TransportError:
        raise BoardError(
            f"{port}: cannot open it; another program has it open (a serial "
            "monitor, `citygw run`, screen?): close that and try again"
        ) from None
    chatter = io.StringIO()  # mpremote prints what it got when the raw REPL does not answer
    try:
        with contextlib.redirect_stdout(chatter):
            transport.enter_raw_repl(soft_reset=True, timeout_overall=timeout_s)
    except (TransportError, serial.SerialException, OSError):
        transport.close()
        log.debug("no raw REPL on %s: %r", port, chatter.getvalue())
        raise BoardError(
            f"{port}: no MicroPython answers there (is it the right port, or is the "
            "board in its bootloader?); flash MicroPython first with --micropython "
            "IMAGE, or unplug and replug the board"
        ) from None
    return transport


@contextlib.contextmanager
def open_board(
    port: str, *, timeout_s: float = 10.0, wait_s: float = 0.0
) -> Iterator[MicroPythonBoard]:
    """The board on `port` in its raw REPL; `wait_s` keeps trying that long for a port that is
    still coming up (after a new image)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            transport = _connect(port, timeout_s=timeout_s)
            break
        except BoardError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
    board = None
    try:
        board = MicroPythonBoard(transport, port)
        yield board
    finally:
        if board is None or not board.was_reset:  # a board that reboots takes no keys
            with contextlib.suppress(TransportError, serial.SerialException, OSError):
                transport.exit_raw_repl()
        with contextlib.suppress(serial.SerialException, OSError):
            transport.close()


def console(
    port: str,
    out: BinaryIO,
    *,
    on_open: Callable[[], None] = lambda: None,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Copy what the board prints to `out` until `stop()` or Ctrl-C (KeyboardInterrupt, left to
    the caller); `on_open` runs once the port is open. The board is not touched: the node
    keeps running."""
    check_port(port)
    try:
        line = serial.Serial(port, BAUDRATE, timeout=0.2, exclusive=True)
    except serial.SerialException as error:
        raise BoardError(
            f"{port}: cannot open it ({error}); is another program using it?"
        ) from None
    with line:
        on_open()
        while not stop():
            data = line.read(line.in_waiting or 1)
            if data:
                out.write(data)
                out.flush()
