"""Plantower PMS5003 / PMS7003 on a UART (9600 8N1), passive mode, duty-cycled by the node.

Frames as in the gateway's drivers/pms5003.py: commands 42 4D cmd data_hi data_lo sum_hi sum_lo,
data frames 42 4D 00 1C + 13 big-endian words + checksum (32 bytes).
"""

from micropython import const

from uart_sensor import UartSensor

_CMD_MODE = const(0xE1)
_CMD_READ = const(0xE2)
_CMD_SLEEP = const(0xE4)


def command(cmd: int, data: int = 0) -> bytes:
    body = bytes((0x42, 0x4D, cmd, data >> 8, data & 0xFF))
    s = sum(body)
    return body + bytes((s >> 8, s & 0xFF))


class PMS5003(UartSensor):
    HEAD = b"\x42\x4d\x00\x1c"
    LENGTH = 32

    def _valid(self, frame: bytes) -> bool:
        return sum(frame[:30]) & 0xFFFF == frame[30] << 8 | frame[31]

    def wake(self) -> None:
        self._command(command(_CMD_SLEEP, 1))
        self._command(command(_CMD_MODE, 0))  # passive: one frame per read command

    def sleep(self) -> None:
        self._command(command(_CMD_SLEEP, 0))

    def measure(self) -> "list[tuple[str, float, str]]":
        self._command(command(_CMD_READ))
        f = self.read_frame()
        return [
            ("pm1_0_ugm3", f[10] << 8 | f[11], "ug/m3"),
            ("pm2_5_ugm3", f[12] << 8 | f[13], "ug/m3"),
            ("pm10_ugm3", f[14] << 8 | f[15], "ug/m3"),
        ]
