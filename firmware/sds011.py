"""Nova Fitness SDS011 on a UART (9600 8N1), query mode, duty-cycled by the node.

Frames as in the gateway's drivers/sds011.py: commands AA B4 sub d2..d13 FF FF sum AB (19 bytes),
data AA C0 pm25 lo hi pm10 lo hi id id sum AB (10 bytes), values in 0.1 ug/m3.
"""

from micropython import const

from uart_sensor import UartSensor

_REPORTING_MODE = const(0x02)
_QUERY_DATA = const(0x04)
_SLEEP_WORK = const(0x06)


def command(sub: int, data: bytes = b"") -> bytes:
    body = bytearray(15)
    body[0] = sub
    body[1 : 1 + len(data)] = data
    body[13] = body[14] = 0xFF  # every sensor on the line
    return b"\xaa\xb4" + bytes(body) + bytes((sum(body) & 0xFF, 0xAB))


class SDS011(UartSensor):
    HEAD = b"\xaa\xc0"
    LENGTH = 10

    def _valid(self, frame: bytes) -> bool:
        return frame[9] == 0xAB and sum(frame[2:8]) & 0xFF == frame[8]

    def set_query_mode(self) -> None:
        self._command(command(_REPORTING_MODE, b"\x01\x01"))

    def wake(self) -> None:
        self._command(command(_SLEEP_WORK, b"\x01\x01"))
        self.set_query_mode()

    def sleep(self) -> None:
        self._command(command(_SLEEP_WORK, b"\x01\x00"))

    def measure(self) -> "list[tuple[str, float, str]]":
        self._command(command(_QUERY_DATA))
        f = self.read_frame()
        return [
            ("pm2_5_ugm3", (f[2] | f[3] << 8) / 10, "ug/m3"),
            ("pm10_ugm3", (f[4] | f[5] << 8) / 10, "ug/m3"),
        ]
