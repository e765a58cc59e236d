"""What the UART particulate sensors share: timed frame reads and the duty cycle.

A reader wakes its sensor, waits `warmup_s` for the fan, discards `discard` readings, keeps the
next one and puts the sensor back to sleep (laser and fan off) until the next cycle.
"""

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class UartSensor:
    HEAD = b""
    LENGTH = 0

    def __init__(
        self,
        uart: "Any",
        warmup_s: int = 30,
        discard: int = 2,
        timeout_ms: int = 3000,
        sleep_ms: "Any" = None,
    ) -> None:
        self._uart = uart
        self._buf = bytearray()
        self.warmup_s = warmup_s
        self.discard = discard
        self.timeout_ms = timeout_ms
        self._sleep_ms = sleep_ms or time.sleep_ms

    def _valid(self, frame: bytes) -> bool:
        raise NotImplementedError

    def _command(self, cmd: bytes) -> None:
        self._uart.write(cmd)

    def read_frame(self) -> bytes:
        """The next valid frame from the UART; OSError on timeout. Noise is skipped."""
        start = time.ticks_ms()
        buf = self._buf
        while True:
            chunk = self._uart.read()
            if chunk:
                buf.extend(chunk)
            while len(buf) >= self.LENGTH:
                i = buf.find(self.HEAD)
                if i < 0:
                    buf[:] = buf[-1:]
                    break
                if i:
                    buf[:] = buf[i:]
                    continue
                if len(buf) < self.LENGTH:
                    break
                frame = bytes(buf[: self.LENGTH])
                if self._valid(frame):
                    buf[:] = buf[self.LENGTH :]
                    return frame
                buf[:] = buf[1:]
            if len(buf) > 4 * self.LENGTH:
                buf[:] = buf[-self.LENGTH :]
            if time.ticks_diff(time.ticks_ms(), start) > self.timeout_ms:
                raise OSError("no frame from sensor")
            self._sleep_ms(20)

    def flush(self) -> None:
        while self._uart.read():
            pass
        self._buf = bytearray()

    def wake(self) -> None:
        raise NotImplementedError

    def sleep(self) -> None:
        raise NotImplementedError

    def measure(self) -> "list[tuple[str, float, str]]":
        raise NotImplementedError

    def cycle(self) -> "list[tuple[str, float, str]]":
        """Wake, warm up, discard the first readings, keep one, sleep again."""
        self.wake()
        try:
            self._sleep_ms(self.warmup_s * 1000)
            self.flush()
            for _ in range(self.discard):
                self.measure()
            return self.measure()
        finally:
            self.sleep()
