"""Eastron SDM120/SDM630 meters on a simulated RS-485 bus, for tests, `citygw sim-modbus` and
the demo.

The bus is a socat pseudo-terminal pair: pymodbus's own Modbus RTU serial server on one end
(one SimDevice per meter, the register map of `drivers.eastron` filled with values that change
over time), the gateway's client on the other, so the real RTU stack runs on both sides. Like
a real bus, the server says nothing to an address no meter has, or to a meter that was
`unplug`ged (pymodbus would answer exception 4 for an unknown device). As a real meter does, it
answers exception 02 to a read with an odd start or count.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from drivers import eastron

_REGISTER_COUNT = max(r.address for rs in eastron.REGISTERS.values() for r in rs) + 2
_START_TIMEOUT_S = 5.0
_DECIMALS = {"V": 1, "A": 3, "W": 1, "V.A": 1, "var": 1, "1": 3, "Hz": 2, "kW.h": 3, "kvar.h": 3}
"""The resolution each unit is simulated at (what the meters' displays show)."""


@dataclass(slots=True)
class SimMeter:
    """One meter: its address, model and a load that drifts (a streetlight cabinet's evening).

    `values(t_s)` gives every register of its model's map at t_s seconds; the energy
    counters integrate the power between calls, so they only ever grow."""

    address: int
    model: str = "sdm120"
    seed: int = 0
    energy_kwh: float = 0.0
    _last_t_s: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.energy_kwh:
            self.energy_kwh = 1000.0 + random.Random(self.seed).uniform(0, 9000)

    def _phase(self, t_s: float, phase: int) -> dict[str, float]:
        rng = random.Random(hash((self.seed, phase, int(t_s * 10))))
        volts = 230.0 + 3.0 * math.sin(t_s / 40.0 + phase) + rng.gauss(0, 0.3)
        amps = max(
            0.0, 4.0 + 2.5 * math.sin(t_s / 25.0 + 2.1 * phase + self.seed) + rng.gauss(0, 0.1)
        )
        pf = 0.93 + 0.04 * math.sin(t_s / 60.0 + phase)
        apparent = volts * amps
        power = apparent * pf
        return {
            "voltage": volts,
            "current": amps,
            "power": power,
            "apparent": apparent,
            "reactive": math.sqrt(max(0.0, apparent**2 - power**2)),
            "pf": -pf,  # an inductive load (lamp ballasts): negative
        }

    def values(self, t_s: float) -> dict[str, float]:
        """quantity -> value for every register of the model at time t_s (seconds)."""
        phases = [self._phase(t_s, i) for i in range(3 if self.model == "sdm630" else 1)]
        total_w = sum(p["power"] for p in phases)
        if self._last_t_s is not None and t_s > self._last_t_s:
            self.energy_kwh += total_w * (t_s - self._last_t_s) / 3_600_000
        self._last_t_s = t_s
        out = {
            "frequency_hz": 50.0 + 0.03 * math.sin(t_s / 7.0),
            "energy_import_kwh": self.energy_kwh,
            "energy_export_kwh": 0.0,
            "energy_reactive_import_kvarh": self.energy_kwh * 0.31,
            "energy_reactive_export_kvarh": 0.0,
            "energy_total_kwh": self.energy_kwh,
        }
        if self.model == "sdm630":
            for i, p in enumerate(phases, start=1):
                out |= {
                    f"voltage_l{i}_v": p["voltage"],
                    f"current_l{i}_a": p["current"],
                    f"power_l{i}_w": p["power"],
                    f"apparent_power_l{i}_va": p["apparent"],
                    f"reactive_power_l{i}_var": p["reactive"],
                    f"power_factor_l{i}": p["pf"],
                }
            out["power_total_w"] = total_w
            out["apparent_power_total_va"] = sum(p["apparent"] for p in phases)
            out["reactive_power_total_var"] = sum(p["reactive"] for p in phases)
            out["power_factor_total"] = -total_w / out["apparent_power_total_va"]
        else:
            p = phases[0]
            out |= {
                "voltage_v": p["voltage"],
                "current_a": p["current"],
                "power_w": p["power"],
                "apparent_power_va": p["apparent"],
                "reactive_power_var": p["reactive"],
                "power_factor": p["pf"],
            }
        return out

    def fill(self, registers: list[int], t_s: float) -> None:
        """Write the values at t_s into a register block that starts at register 0."""
        values = self.values(t_s)
        for register in eastron.REGISTERS[self.model]:
            value = round(values[register.quantity], _DECIMALS.get(register.unit, 3))
            high, low = eastron.float_registers(value)
            registers[register.address] = high
            registers[register.address + 1] = low


class ModbusBusSimulator:
    """Meters on one simulated bus. `device` is the gateway's end (a source's `port`)."""

    def __init__(
        self,
        meters: Sequence[SimMeter],
        *,
        directory: Path,
        baud: int = 9600,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.meters = {meter.address: meter for meter in meters}
        self.device = directory / "rs485"
        self._meters_end = directory / "rs485-meters"
        self._baud = baud
        self._clock_s = clock_s
        self._t0 = clock_s()
        self.unplugged: set[int] = set()
        self.corrupt_next: dict[int, int] = {}  # address -> answers to send with a bad CRC
        self.requests: dict[int, int] = {}  # requests heard per address
        self._socat: asyncio.subprocess.Process | None = None
        self._server: ModbusSerialServer | None = None

    async def start(self) -> None:
        """Create the pty pair and start the server on the meters' end."""
        self.device.parent.mkdir(parents=True, exist_ok=True)
        self._socat = await asyncio.create_subprocess_exec(
            "socat",
            f"PTY,link={self._meters_end},raw,echo=0",
            f"PTY,link={self.device},raw,echo=0",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not (self.device.exists() and self._meters_end.exists()):
            if time.monotonic() > deadline or self._socat.returncode is not None:
                await self.stop()
                raise RuntimeError("socat did not create the pty pair")
            await asyncio.sleep(0.02)
        devices = [
            SimDevice(
                id=address,
                simdata=[
                    SimData(address=0, count=_REGISTER_COUNT, values=0, datatype=DataType.REGISTERS)
                ],
                action=self._action_for(meter),
            )
            for address, meter in self.meters.items()
        ]
        self._server = ModbusSerialServer(
            devices,
            framer=FramerType.RTU,
            port=str(self._meters_end),
            baudrate=self._baud,
            ignore_missing_devices=True,
            trace_pdu=self._screen,  # None drops the request
            trace_packet=self._garble,
        )
        await self._server.serve_forever(background=True)

    def _screen(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """pymodbus hands each received request here first; returning None drops it, so an
        unplugged or absent meter stays silent, as on a real bus."""
        if sending:
            return pdu
        address = int(pdu.dev_id)
        self.requests[address] = self.requests.get(address, 0) + 1
        if address not in self.meters or address in self.unplugged:
            return None  # type: ignore[return-value]  # pymodbus then does not answer
        return pdu

    def _garble(self, sending: bool, data: bytes) -> bytes:
        """Outgoing answers of a meter set to `corrupt` leave with a wrong CRC (line noise)."""
        if sending and data and self.corrupt_next.get(data[0], 0) > 0:
            self.corrupt_next[data[0]] -= 1
            return data[:-1] + bytes((data[-1] ^ 0xFF,))
        return data

    def corrupt(self, address: int, answers: int = 1) -> None:
        """The meter's next `answers` answers arrive with a bad CRC (noise on the line)."""
        self.corrupt_next[address] = self.corrupt_next.get(address, 0) + answers

    def _action_for(self, meter: SimMeter) -> SimAction:
        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if function_code != eastron.READ_INPUT_REGISTERS or set_values:
                return ExcCodes.ILLEGAL_FUNCTION
            if address % 2 or count % 2:  # a read that would split a float
                return ExcCodes.ILLEGAL_ADDRESS
            meter.fill(registers, self._clock_s() - self._t0)
            return None

        return action

    def unplug(self, address: int) -> None:
        """The meter stops answering (its wires pulled): requests to it get silence."""
        self.unplugged.add(address)

    def plug(self, address: int) -> None:
        """The meter answers again."""
        self.unplugged.discard(address)

    async def stop(self) -> None:
        """Stop the server and remove the pty pair (the gateway's end vanishes)."""
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.shutdown(), timeout=5)  # type: ignore[no-untyped-call]
            self._server = None
        if self._socat is not None:
            if self._socat.returncode is None:
                self._socat.terminate()
                try:
                    await asyncio.wait_for(self._socat.wait(), timeout=5)
                except TimeoutError:
                    self._socat.kill()
                    await self._socat.wait()
            self._socat = None

    async def __aenter__(self) -> ModbusBusSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def demo_meters() -> list[SimMeter]:
    """The demo's bus: the streetlights' SDM630 at address 1, the cabinet's SDM120 at 2."""
    return [SimMeter(1, "sdm630", seed=0), SimMeter(2, "sdm120", seed=1)]


def demo_source(port: str) -> dict[str, object]:
    """The config `[[sources]]` entry that polls `demo_meters()` on `port` every 2 s."""
    return {
        "type": "modbus",
        "name": "energy",
        "port": port,
        "interval_s": 2,
        "timeout_s": 0.3,
        "meters": [
            {"name": "streetlights", "address": 1, "model": "sdm630"},
            {"name": "cabinet", "address": 2, "model": "sdm120"},
        ],
    }


def parse_meters(text: str) -> list[SimMeter]:
    """`1:sdm630,2:sdm120` -> the meters (address:model, comma-separated)."""
    meters = []
    for index, item in enumerate(text.split(",")):
        address, _, model = item.strip().partition(":")
        if model not in eastron.MODELS or not address.isdigit():
            raise ValueError(
                f"expected ADDRESS:MODEL (model {' or '.join(eastron.MODELS)}), got {item!r}"
            )
        meters.append(SimMeter(int(address), model, seed=index))
    return meters


async def run_bus(
    meters: Sequence[SimMeter], *, directory: Path, baud: int, seconds: float | None
) -> None:
    """Serve until SIGTERM, SIGINT or `seconds`; prints the device path for a config. The pty
    pair goes with it (socat is stopped, its links removed)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with ModbusBusSimulator(meters, directory=directory, baud=baud) as bus:
        listed = ", ".join(f"{m.model} at {a}" for a, m in bus.meters.items())
        print(f"meters ({listed}) on {bus.device} at {baud} baud 8N1", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
