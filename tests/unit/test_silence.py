"""A sensor whose device is open but that sends nothing is silent (gateway/sources/silence.py):
pure judgements with the clock passed in, the default thresholds a working sensor never
reaches, each episode logged once, and what `citygw status` prints of it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from drivers import eastron
from drivers.base import Measurement
from gateway.cli.agent import format_status
from gateway.config import (
    BleDevice,
    BleSourceConfig,
    DutyCycle,
    ModbusMeter,
    ModbusSourceConfig,
    SerialSourceConfig,
)
from gateway.sources.ble.scanner import OnAdvert
from gateway.sources.modbus.source import ModbusSource
from gateway.sources.modbus.transport import Bus, BusSettings
from gateway.sources.silence import (
    BLE_ADVERT_GAP_S,
    Silence,
    judge_all,
    serial_gap_s,
    threshold_s,
)
from gateway.system.clock import WallClock

log = logging.getLogger("test.silence")


def serial(**options: object) -> SerialSourceConfig:
    return SerialSourceConfig(
        name="pm",
        port="/dev/ttyUSB0",
        **{"driver": "sds011", **options},  # type: ignore[arg-type]
    )


def test_a_sensor_is_silent_once_nothing_came_for_after_s_while_its_device_is_open() -> None:
    silence = Silence(after_s=60)
    assert silence.judge(1000) is None and silence.silent_for_s(1000) is None  # not open yet
    silence.listen(100)
    assert silence.silent_for_s(159.9) is None
    assert silence.judge(159.9) is None
    assert silence.silent_for_s(160) == 60
    assert silence.judge(160) == "silent"
    assert silence.judge(161) is None  # once per episode
    assert silence.silent_for_s(700) == 600
    silence.heard(701)
    assert silence.silent_for_s(702) is None
    assert silence.judge(702) == "heard again"
    assert silence.judge(703) is None


def test_a_reading_resets_the_wait_and_a_missing_port_is_not_silence() -> None:
    silence = Silence(after_s=60)
    silence.listen(0)
    silence.heard(50)
    assert silence.judge(109) is None  # 59 s since the last reading
    assert silence.judge(110) == "silent"
    silence.stop()  # the port vanished: "port missing" says so, not silence
    assert silence.silent_for_s(10_000) is None
    assert silence.judge(10_000) == "not listening"
    silence.listen(10_001)  # reopened: a full after_s before it can be silent again
    assert silence.judge(10_060) is None
    assert silence.judge(10_061) == "silent"


def test_a_threshold_of_zero_turns_it_off() -> None:
    assert threshold_s(0, 1.0) is None
    silence = Silence(after_s=threshold_s(0, 1.0))
    silence.listen(0)
    assert silence.judge(1e9) is None and silence.silent_for_s(1e9) is None


def test_default_thresholds_follow_how_each_sensor_reports() -> None:
    assert threshold_s(5, 1.0) == 5  # set: as set
    assert threshold_s(None, serial_gap_s(serial())) == 60  # SDS011 streaming: a minute
    cycle = DutyCycle(period_s=300, on_s=30, warmup_s=15)
    assert threshold_s(None, serial_gap_s(serial(duty_cycle=cycle))) == pytest.approx(816.9)
    assert threshold_s(None, serial_gap_s(serial(driver="node", node_interval_s=600))) == 1800
    assert threshold_s(None, serial_gap_s(serial(driver="node"))) is None  # interval unknown
    assert threshold_s(None, serial_gap_s(serial(driver="ops243"))) is None  # quiet street
    assert threshold_s(None, serial_gap_s(serial(driver="maxbotix", model="MB7389",
                                                 aggregate_s=300))) == 60  # fmt: skip
    assert threshold_s(None, BLE_ADVERT_GAP_S) == 900


def test_a_duty_cycled_sds011_is_never_silent_by_default_over_a_day() -> None:
    """Frames every second while awake (warm-up included), nothing while asleep."""
    cycle = DutyCycle(period_s=300, on_s=30, warmup_s=15)
    silence = Silence(after_s=threshold_s(None, serial_gap_s(serial(duty_cycle=cycle))))
    silence.listen(0)
    for second in range(86_400):
        if second % 300 < 30:
            silence.heard(second)
        assert silence.judge(second + 0.999) is None


def test_each_episode_is_logged_once_and_a_meter_said_elsewhere_not_at_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sensors = {"pm": Silence(after_s=10), "bus/m2": Silence(after_s=10)}
    for silence in sensors.values():
        silence.listen(0)
    caplog.set_level(logging.INFO, logger=log.name)
    for now_s in (5, 10, 11, 12):
        silent = judge_all(sensors, now_s, log=log, source="x", said_elsewhere={"bus/m2"})
    assert silent == {"pm": 12, "bus/m2": 12}
    assert [r.getMessage() for r in caplog.records] == [
        "pm is silent: nothing heard from it for 10 s while its port or adapter is up "
        "(silent_after_s 10)"
    ]
    assert caplog.records[0].levelno == logging.WARNING
    caplog.clear()
    for silence in sensors.values():
        silence.heard(20)
    assert judge_all(sensors, 21, log=log, source="x") == {}
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "pm is heard again after 20 s of silence")
    ]


RUUVI_DF5 = bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")  # its spec


class FakeScanner:
    """A scan that starts at once on an adapter that stays; adverts go to `on_advert`."""

    def __init__(self, on_advert: OnAdvert, *, adapter: str, passive: bool) -> None:
        self.on_advert = on_advert

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def adapter_ready(self) -> bool:
        return True


class CountingSink:
    def __init__(self) -> None:
        self.readings = 0

    def emit(self, source: str, measurements: Sequence[Measurement], ts: int, fl: int) -> None:
        self.readings += len(measurements)

    async def room(self) -> None:
        return None


async def test_each_ble_device_is_judged_on_its_own_adverts_and_threshold() -> None:
    from gateway.sources.ble.source import BleSource

    config = BleSourceConfig(
        name="ble",
        devices=[
            BleDevice(name="thermo", address="A4:C1:38:00:00:01", kind="bthome"),
            BleDevice(name="button", address="A4:C1:38:00:00:02", kind="bthome",
                      silent_after_s=0),
            BleDevice(name="ruuvi", address="F4:A5:74:00:00:03", kind="ruuvi",
                      silent_after_s=120),
        ],
    )  # fmt: skip
    now = [0.0]
    scanners: list[FakeScanner] = []

    def scanner_factory(on_advert: OnAdvert, *, adapter: str, passive: bool) -> FakeScanner:
        scanners.append(FakeScanner(on_advert, adapter=adapter, passive=passive))
        return scanners[-1]

    source = BleSource(
        config, clock=WallClock(), scanner_factory=scanner_factory, monotonic_s=lambda: now[0]
    )
    sink = CountingSink()
    task = asyncio.create_task(source.run(sink))
    try:
        async with asyncio.timeout(5):
            while source.stats.state != "scanning":  # noqa: ASYNC110  # no event to wait on
                await asyncio.sleep(0.001)
        now[0] = 119.0
        assert source.check_silence() == {}
        now[0] = 899.0
        assert source.check_silence() == {"ble/ruuvi": 899.0}
        scanners[-1].on_advert("F4:A5:74:00:00:03", {}, {0x0499: RUUVI_DF5})
        async with asyncio.timeout(5):
            while not sink.readings:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        now[0] = 900.0
        assert source.check_silence() == {"ble/thermo": 900.0}  # the button: never
        assert source.stats.silent == {"thermo": 900.0}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    text = format_status(
        {"gateway": "gw", "agent": "running", "buffer": {"depth": 0},
         "sources": {"ble": {"type": "ble", "adapter": "hci0", "devices": 3,
                             **source.stats.as_dict()}}}
    )  # fmt: skip
    assert "1 SILENT" in text
    assert "    device thermo: SILENT for 15 min" in text.splitlines()


class ExceptionsAndSilence:
    """Meter 1 refuses every request (an exception answer: it answers, but reads nothing);
    meter 2 never answers."""

    async def read_input_registers(self, slave: int, start_register: int, count: int) -> bytes:
        return eastron.encode_exception(slave, 2) if slave == 1 else b""

    def close(self) -> None:
        pass


class Sink:
    def emit(self, source: str, measurements: Sequence[Measurement], ts: int, fl: int) -> None:
        raise AssertionError("no meter gave a reading")

    async def room(self) -> None:
        return None


async def test_a_meter_is_silent_once_and_a_meter_not_answering_is_not_logged_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = ModbusSourceConfig(
        name="energy",
        port="/dev/null",
        silent_after_s=30,
        meters=[
            ModbusMeter(name="refusing", address=1, model="sdm120"),
            ModbusMeter(name="mute", address=2, model="sdm120"),
        ],
    )
    now = [0.0]

    async def open_bus(settings: BusSettings) -> Bus:
        return ExceptionsAndSilence()

    source = ModbusSource(
        config, clock=WallClock(), open_bus=open_bus, turnaround_s=0, monotonic_s=lambda: now[0]
    )
    caplog.set_level(logging.INFO)
    task = asyncio.create_task(source.run(Sink()))
    try:
        async with asyncio.timeout(5):
            while source.stats.polls < 1:  # noqa: ASYNC110  # stats change without an event
                await asyncio.sleep(0.001)
        assert source.check_silence() == {}
        now[0] = 30.0  # the poll loop sleeps for real; only the judgement's clock moves
        assert source.check_silence() == {"energy/refusing": 30.0, "energy/mute": 30.0}
        assert source.check_silence() == {"energy/refusing": 30.0, "energy/mute": 30.0}
        meters = source.stats.meters
        assert (meters["refusing"].state, meters["refusing"].silent_for_s) == ("errors", 30.0)
        assert (meters["mute"].state, meters["mute"].silent_for_s) == ("not answering", 30.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    lines = [r.getMessage() for r in caplog.records]
    assert sum("energy/refusing is silent" in line for line in lines) == 1
    assert sum("mute" in line for line in lines) == 1  # "is not answering", said at the poll
    assert not any("energy/mute is silent" in line for line in lines)
    text = format_status(
        {"gateway": "gw", "agent": "running", "buffer": {"depth": 0},
         "sources": {"energy": {"type": "modbus", "port": "/dev/null",
                                **source.stats.as_dict()}}}
    )  # fmt: skip
    assert "2 SILENT" in text
    assert "    meter refusing (sdm120 at address 1): SILENT for 30 s, ERRORS for 0 polls" in text


def test_citygw_status_says_how_long_a_serial_sensor_has_been_silent() -> None:
    source = {
        "type": "serial", "driver": "sds011", "port": "/dev/ttyUSB0", "state": "measuring",
        "readings": 40, "bad_frames": 0, "reopens": 0, "silent_for_s": 735.0,
    }  # fmt: skip
    text = format_status({"gateway": "gw", "agent": "running", "buffer": {"depth": 0},
                          "sources": {"pm": source}})  # fmt: skip
    assert "  source pm (sds011 on /dev/ttyUSB0): SILENT for 12 min, 40 readings" in text
    source["silent_for_s"] = None
    assert "  source pm (sds011 on /dev/ttyUSB0): measuring, 40 readings" in format_status(
        {"gateway": "gw", "agent": "running", "buffer": {"depth": 0}, "sources": {"pm": source}}
    )
