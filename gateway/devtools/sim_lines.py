"""Text-line sensors on pseudo-terminals: an OPS243 radar with passing cars, a MaxBotix with a
rising water level. Same shape as sim_serial.py (whose pty helpers and base class they use):

    master_fd, slave_path = open_pty("/tmp/ttyRadar")
    radar = SimulatedOps243(master_fd, cars=passing_cars(seed=1))
    sonar = SimulatedMaxbotix(other_fd, model="MB7389", distances=rising_water(...))
    tasks = [asyncio.create_task(radar.run()), asyncio.create_task(sonar.run())]

For `make demo`, `demo_sources(radar_port, sonar_port)` gives the two `[[sources]]` entries to
read them with, and DEMO_LEVEL_ALERT_MM a water level the default rise crosses ~25 s after start.

The radar obeys the commands the gateway sends at connect (units, decimals, OJ/Oj, OU/Ou,
OM/Om, OT/Ot), answers `U*` with a `Units` reply and `?P`/`?V` like the real one, and reports
each passing car as a run of detections at `interval_s` (a speed that peaks as the car passes).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from drivers import maxbotix
from drivers.maxbotix_models import MODELS
from drivers.ops243_units import CANCEL, UNITS, Unit
from gateway.devtools.sim_serial import _PtySensor


@dataclass(frozen=True, slots=True)
class Car:
    """One vehicle passing the radar: its true speed, direction (+1 towards the radar, -1
    away), how long it is in the beam, and the quiet time after it."""

    speed_kmh: float
    direction: int
    in_view_s: float = 1.5
    gap_after_s: float = 3.0


def passing_cars(
    *, seed: int = 0, mean_kmh: float = 38.0, gap_s: tuple[float, float] = (2.0, 6.0)
) -> Iterator[Car]:
    """Endless, reproducible traffic: speeds around `mean_kmh`, both directions."""
    rng = random.Random(seed)
    while True:
        speed = max(5.0, rng.gauss(mean_kmh, 7.0))
        yield Car(round(speed, 1), rng.choice((1, -1)), rng.uniform(1.0, 2.0), rng.uniform(*gap_s))


def rising_water(
    *, mount_height_mm: int, start_level_mm: float, rise_mm_per_s: float, interval_s: float
) -> Iterator[float]:
    """Distances a downward-looking sensor sees while the water rises steadily (per reading)."""
    level = start_level_mm
    while True:
        yield mount_height_mm - level
        level += rise_mm_per_s * interval_s


DEMO_MOUNT_HEIGHT_MM = 4000
DEMO_LEVEL_ALERT_MM = 1000
"""SimulatedMaxbotix's default water starts at 500 mm and rises 20 mm/s: past this in ~25 s."""


def demo_sources(radar_port: str, sonar_port: str) -> list[dict[str, object]]:
    """Config `[[sources]]` for the two simulators: every detection of the radar in km/h, and
    the canal's distance and water level."""
    return [
        {"type": "serial", "name": "radar", "port": radar_port, "driver": "ops243", "units": "kmh"},
        {
            "type": "serial",
            "name": "canal",
            "port": sonar_port,
            "driver": "maxbotix",
            "model": "MB7389",
            "mount_height_mm": DEMO_MOUNT_HEIGHT_MM,
        },
    ]


class SimulatedOps243(_PtySensor[bytes]):
    """An OPS243-A radar: detections of `cars` (an iterator; when it ends, the street is quiet)
    every `interval_s` while a car is in view, nothing in between."""

    def __init__(
        self, master_fd: int, *, cars: Iterator[Car] | None = None, interval_s: float = 0.1
    ) -> None:
        super().__init__(master_fd, interval_s=interval_s)
        self.unit: Unit = UNITS["mps"]  # the factory default
        self.decimals = 2
        self.json = False
        self.units_label = False
        self.magnitude = False
        self.time = False
        self.commands: list[bytes] = []  # every command obeyed, in order (for tests)
        self.cars_passed = 0
        self.last_car: Car | None = None
        self.cars = passing_cars() if cars is None else cars
        """The traffic still to come (may be replaced while it runs)."""
        self._car: Car | None = None
        self._car_t = 0.0  # seconds into the current car, or into the gap after it
        self._clock_s = 0.0
        self._typed = b""
        self._rng = random.Random(1)

    def _parse(self, chunk: bytes) -> list[bytes]:
        """Two-character commands; Ctrl-C drops what was typed; CR, LF and spaces separate."""
        commands: list[bytes] = []
        for byte in chunk:
            if byte in CANCEL + b"\r\n ":
                self._typed = b""
            else:
                self._typed += bytes((byte,))
                if len(self._typed) == 2:
                    commands.append(self._typed)
                    self._typed = b""
        return commands

    def _handle(self, command: bytes, now_s: float) -> None:
        self.commands.append(command)
        unit = next((u for u in UNITS.values() if u.command == command and u.speed), None)
        if unit is not None:
            self.unit = unit
            self._reply("Units", unit.reply)
        elif command[:1] == b"F" and command[1:].isdigit():
            self.decimals = int(command[1:])
        elif command[:1] == b"O" and command[1:].upper() in (b"J", b"U", b"M", b"T"):
            on = command[1:].isupper()
            setting = {b"J": "json", b"U": "units_label", b"M": "magnitude", b"T": "time"}
            setattr(self, setting[command[1:].upper()], on)
        elif command == b"?P":
            self._reply("Product", "OPS243")
        elif command == b"?V":
            self._reply("Version", "1.3.1")

    def _reply(self, key: str, value: str) -> None:
        if self._deliverable() and self._write(
            json.dumps({key: value}, separators=(",", ":")).encode() + b"\r\n"
        ):
            self.replies_sent += 1

    def _streaming(self) -> bool:
        return True

    def _next_car(self) -> Car | None:
        if self._car is None or self._car_t >= self._car.in_view_s + self._car.gap_after_s:
            self._car = next(self.cars, None)
            self._car_t = 0.0
        return self._car

    def _send_data(self) -> None:
        self._clock_s += self.interval_s
        car = self._next_car()
        if car is None:
            return
        t, self._car_t = self._car_t, self._car_t + self.interval_s
        if t >= car.in_view_s:
            return
        if t + self.interval_s >= car.in_view_s:
            self.cars_passed += 1
            self.last_car = car
        # the radial speed peaks when the car is closest to straight on (cosine effect)
        phase = abs(2 * t / car.in_view_s - 1)
        speed_kmh = car.speed_kmh * (1 - 0.15 * phase) + self._rng.gauss(0, 0.2)
        value = car.direction * speed_kmh / 3.6 / self.unit.si
        magnitude = round(120 + 80 * (1 - phase), 1)
        if self._deliverable() and self._write(self._line(value, magnitude)):
            self.frames_sent += 1

    def _line(self, value: float, magnitude: float) -> bytes:
        speed = f"{value:.{self.decimals}f}"
        if self.json:
            report: dict[str, str] = {}
            if self.time:
                report["time"] = f"{self._clock_s:.3f}"
            if self.units_label:
                report["unit"] = self.unit.key
            if self.magnitude:
                report["magnitude"] = f"{magnitude}"
            report["speed"] = speed
            return json.dumps(report, separators=(",", ":")).encode() + b"\r\n"
        fields = [f'"{self.unit.key}"'] if self.units_label else []
        fields += [f"{self._clock_s:.3f}"] if self.time else []
        fields += [f"{magnitude}"] if self.magnitude else []
        return ",".join([*fields, speed]).encode() + b"\r\n"


_BANNER = (b"HRXL-MaxSonar-WR", b"PN:%s", b"Copyright 2011-2013", b"MaxBotix Inc.", b"TempI")


class SimulatedMaxbotix(_PtySensor[bytes]):
    """A free-running MaxSonar-WR: the power-up banner, then a range line at the model's rate
    (or every `interval_s`). `distances` gives mm per reading (None: no target); an iterator
    that runs out makes the sensor fall silent. It ignores anything written to it."""

    def __init__(
        self,
        master_fd: int,
        *,
        model: str = maxbotix.DEFAULT_MODEL,
        distances: Callable[[], float | None] | Iterator[float | None] | None = None,
        interval_s: float | None = None,
        banner: bool = True,
    ) -> None:
        spec = MODELS[model]
        super().__init__(master_fd, interval_s=interval_s or round(1 / spec.rate_hz, 3))
        self.model = model
        self.last_distance_mm: float | None = None
        self._banner = banner
        default = rising_water(
            mount_height_mm=DEMO_MOUNT_HEIGHT_MM,
            start_level_mm=500,
            rise_mm_per_s=20,
            interval_s=self.interval_s,
        )
        self._distances = default if distances is None else distances
        self.silent = False  # `distances` ran out

    def _parse(self, chunk: bytes) -> list[bytes]:
        return []

    def _handle(self, command: bytes, now_s: float) -> None:
        return

    def _streaming(self) -> bool:
        return True

    def _send_data(self) -> None:
        if not self._deliverable():
            return
        if self._banner:
            self._banner = False
            lines = [line % self.model.encode() if b"%" in line else line for line in _BANNER]
            self._write(b"".join(line + b"\r" for line in lines))
            return
        if self.silent:
            return
        try:
            distance = (
                next(self._distances)
                if isinstance(self._distances, Iterator)
                else self._distances()
            )
        except StopIteration:
            self.silent = True
            return
        if self._write(maxbotix.encode_distance(distance, model=self.model)):
            self.frames_sent += 1
            self.last_distance_mm = distance
