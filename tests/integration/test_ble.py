"""The BLE source through bleak's real BlueZ backend, against python-dbusmock's bluez5 template.

A private `dbus-daemon` plays the system bus (DBUS_SYSTEM_BUS_ADDRESS points at its socket),
dbusmock plays bluetoothd, and adverts are injected the way BlueZ reports them: as changes of a
device object's `ServiceData` / `ManufacturerData` / `RSSI` properties. The template's default
`ManufacturerData` is an array, which bleak rejects; here it is always an `a{qv}` dict, and
devices are added with the right types from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import pytest_asyncio
from skips import skip_or_fail

from drivers import bthome
from drivers.base import Measurement
from gateway import wire
from gateway.config import BleDevice, BleSourceConfig
from gateway.sources.ble.source import BleSource
from gateway.system.clock import WallClock

pytestmark = pytest.mark.integration

dbus = pytest.importorskip("dbus")

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
"""

DEVICE_IFACE = "org.bluez.Device1"
MOCK_IFACE = "org.freedesktop.DBus.Mock"
BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
SENSOR = "A4:C1:38:00:00:01"
SECRET_SENSOR = "A4:C1:38:00:00:02"
RUUVI = "F4:A5:74:89:16:57"
PHONE = "5C:F3:70:AB:CD:EF"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
RUUVI_DF5 = bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")


def plain(packet_id: int, temperature_c: float) -> bytes:
    """BTHome v2 service data: packet id, temperature (0.01 degC)."""
    raw = round(temperature_c * 100).to_bytes(2, "little", signed=True)
    return bytes((0x40, 0x00, packet_id, 0x02)) + raw


def sealed(counter: int, temperature_c: float, *, key: bytes = KEY) -> bytes:
    raw = round(temperature_c * 100).to_bytes(2, "little", signed=True)
    return bthome.seal(
        b"\x02" + raw, mac=bytes.fromhex(SECRET_SENSOR.replace(":", "")), key=key, counter=counter
    )


def ruuvi(sequence: int) -> bytes:
    return RUUVI_DF5[:16] + sequence.to_bytes(2, "big") + RUUVI_DF5[18:]


class BlueZMock:
    """bluetoothd as far as bleak can tell: adapters and devices on the private system bus."""

    def __init__(self, address: str, spawn: Callable[[], subprocess.Popen[bytes]]) -> None:
        self.address = address
        self.bus = dbus.bus.BusConnection(address)
        self._spawn = spawn
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        proc = self._spawn()
        deadline = time.monotonic() + 10
        while not self.bus.name_has_owner("org.bluez"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dbusmock bluez5 did not start")
            time.sleep(0.02)
        self._bluez = self.bus.get_object("org.bluez", "/org/bluez")
        self._root = dbus.Interface(self.bus.get_object("org.bluez", "/"), MOCK_IFACE)
        self._devices: set[str] = set()
        return proc

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart_bluetoothd(self) -> None:
        """bluetoothd killed and started again (no adapter until `add_adapter`)."""
        self.proc.kill()
        self.proc.wait()
        deadline = time.monotonic() + 10
        while self.bus.name_has_owner("org.bluez") and time.monotonic() < deadline:
            time.sleep(0.02)
        self.proc = self._start()

    def add_adapter(self, name: str = "hci0") -> None:
        dbus.Interface(self._bluez, "org.bluez.Mock").AddAdapter(name, "citygw-test")

    def remove_adapter(self, name: str = "hci0") -> None:
        """Adapter and its devices go, as when a USB dongle is pulled."""
        dbus.Interface(self._bluez, "org.bluez.Mock").RemoveAdapterWithDevices(name)
        self._devices = {p for p in self._devices if not p.startswith(f"/org/bluez/{name}/")}

    def power(self, on: bool, name: str = "hci0") -> None:
        """The adapter powered off or on (`hciconfig hci0 down`, rfkill, a reset)."""
        adapter = self.bus.get_object("org.bluez", f"/org/bluez/{name}", introspect=False)
        dbus.Interface(adapter, MOCK_IFACE).UpdateProperties(
            "org.bluez.Adapter1",
            dbus.Dictionary({"Powered": dbus.Boolean(on)}, signature="sv"),
            signature="sa{sv}",
        )

    def _device_path(self, address: str, adapter: str) -> str:
        return f"/org/bluez/{adapter}/dev_{address.replace(':', '_')}"

    def advertise(
        self,
        address: str,
        *,
        service_data: dict[str, bytes] | None = None,
        manufacturer_data: dict[int, bytes] | None = None,
        rssi: int = -60,
        adapter: str = "hci0",
    ) -> None:
        """One advert: the device object appears (first time) or its properties change."""
        path = self._device_path(address, adapter)
        props = {
            "ServiceData": dbus.Dictionary(
                {k: dbus.Array(v, signature="y") for k, v in (service_data or {}).items()},
                signature="sv",
            ),
            "ManufacturerData": dbus.Dictionary(
                {
                    dbus.UInt16(k): dbus.Array(v, signature="y")
                    for k, v in (manufacturer_data or {}).items()
                },
                signature="qv",
            ),
            "RSSI": dbus.Int16(rssi),
        }
        if path in self._devices:
            device = self.bus.get_object("org.bluez", path, introspect=False)
            dbus.Interface(device, MOCK_IFACE).UpdateProperties(
                DEVICE_IFACE, dbus.Dictionary(props, signature="sv"), signature="sa{sv}"
            )
        else:
            self._add_device(path, address, adapter, props)
            self._devices.add(path)

    def _add_device(self, path: str, address: str, adapter: str, props: dict[str, Any]) -> None:
        everything = {
            "Address": dbus.String(address),
            "AddressType": dbus.String("public"),
            "Alias": dbus.String(address.replace(":", "-")),
            "Adapter": dbus.ObjectPath(f"/org/bluez/{adapter}"),
            "Paired": dbus.Boolean(False),
            "Connected": dbus.Boolean(False),
            "Trusted": dbus.Boolean(False),
            "Blocked": dbus.Boolean(False),
            "LegacyPairing": dbus.Boolean(False),
            "ServicesResolved": dbus.Boolean(False),
            "UUIDs": dbus.Array([], signature="s"),
            **props,
        }
        properties = dbus.Dictionary(everything, signature="sv")
        dbus.Interface(self._bluez, MOCK_IFACE).AddObject(
            path,
            DEVICE_IFACE,
            properties,
            dbus.Array([], signature="(ssss)"),
            signature="ssa{sv}a(ssss)",
        )
        self._root.EmitSignal(
            "org.freedesktop.DBus.ObjectManager",
            "InterfacesAdded",
            "oa{sa{sv}}",
            dbus.Array(
                [
                    dbus.ObjectPath(path),
                    dbus.Dictionary({DEVICE_IFACE: properties}, signature="sa{sv}"),
                ],
                signature="v",
            ),
            signature="sssav",
        )

    def close(self) -> None:
        self.bus.close()


def _start_bluez(tmp_path: Path, parameters: dict[str, Any]) -> Iterator[BlueZMock]:
    daemon_binary = shutil.which("dbus-daemon")
    if daemon_binary is None:
        skip_or_fail("dbus-daemon not installed (Debian package 'dbus'; make deps as root)")
    assert daemon_binary is not None
    socket = tmp_path / "system_bus_socket"
    config = tmp_path / "system-bus.conf"
    config.write_text(BUS_CONFIG.format(socket=socket))
    daemon = subprocess.Popen(
        [daemon_binary, "--config-file", str(config), "--nofork", "--print-address"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    bluez: BlueZMock | None = None
    try:
        assert daemon.stdout is not None
        address = daemon.stdout.readline().decode().strip()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
        log = tmp_path / "dbusmock.log"

        def spawn() -> subprocess.Popen[bytes]:
            with log.open("ab") as stderr:
                return subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "dbusmock",
                        "--system",
                        "--template",
                        "bluez5",
                        "--parameters",
                        json.dumps(parameters),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )

        bluez = BlueZMock(address, spawn)
        yield bluez
    finally:
        if bluez is not None:
            bluez.stop()
            bluez.close()
        daemon.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.wait(5)
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if daemon.stdout is not None:
            daemon.stdout.close()


@pytest.fixture
def bluez(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BlueZMock]:
    """A mocked bluetoothd with adapter hci0 (advertisement monitors supported) on a private
    system bus, which this test and the processes it starts use."""
    for mock in _start_bluez(tmp_path, {}):
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", mock.address)
        mock.add_adapter("hci0")
        yield mock


@pytest.fixture
def bluez_no_monitors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BlueZMock]:
    """As `bluez`, but BlueZ without advertisement monitors (no passive scanning)."""
    for mock in _start_bluez(tmp_path, {"enable_monitor_api": False}):
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", mock.address)
        mock.add_adapter("hci0")
        yield mock


class Reading(NamedTuple):
    source: str
    quantity: str
    unit: str
    value: float
    ts_ms: int
    flags: int


class ListSink:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.changed = asyncio.Event()

    def emit(
        self, source: str, measurements: Sequence[Measurement], ts_ms: int, flags: int
    ) -> None:
        self.readings += [
            Reading(source, m.quantity, m.unit, m.value, ts_ms, flags) for m in measurements
        ]
        self.changed.set()

    async def room(self) -> None:
        return None

    async def wait_for(
        self,
        predicate: Callable[[list[Reading]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[Reading]:
        async with asyncio.timeout(timeout):
            while not predicate(self.readings):
                self.changed.clear()
                await self.changed.wait()
        return self.readings


def source_config(scanning: str = "auto", **extra: Any) -> BleSourceConfig:
    return BleSourceConfig(
        name="ble",
        adapter="hci0",
        scanning=scanning,  # type: ignore[arg-type]
        restart_max_s=0.5,
        devices=[
            BleDevice(name="kerbside", address=SENSOR, kind="bthome", **extra),
            BleDevice(name="vault", address=SECRET_SENSOR, kind="bthome", bind_key=KEY.hex()),
            BleDevice(name="cabinet", address=RUUVI, kind="ruuvi"),
        ],
    )


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Callable[..., Any]]:
    """Factory: `source, sink = await running(config)` runs a BleSource until teardown and
    returns once it scans."""
    tasks: list[asyncio.Task[None]] = []

    async def start(config: BleSourceConfig) -> tuple[BleSource, ListSink]:
        source, sink = BleSource(config, clock=WallClock(synced=lambda: True)), ListSink()
        tasks.append(asyncio.create_task(source.run(sink)))
        await until(lambda: source.stats.state == "scanning")
        return source, sink

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - polls the source's stats
            await asyncio.sleep(0.02)


def values(readings: list[Reading], source: str) -> list[float]:
    return [r.value for r in readings if r.source == source]


async def test_an_allow_listed_bthome_sensor_arrives_under_its_configured_name(
    bluez: BlueZMock,
    running: Any,
) -> None:
    source, sink = await running(source_config())
    assert source.stats.scanning_mode == "passive"
    bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(1, 21.5)})
    got = await sink.wait_for(lambda rs: len(rs) >= 1)
    assert [(r.source, r.quantity, r.value, r.unit) for r in got] == [
        ("ble/kerbside", "temperature_c", 21.5, "Cel")
    ]
    assert SENSOR not in repr(got)


async def test_without_advertisement_monitors_auto_falls_back_to_active_scanning(
    bluez_no_monitors: BlueZMock,
    running: Any,
) -> None:
    source, sink = await running(source_config())
    assert source.stats.scanning_mode == "active"
    bluez_no_monitors.advertise(SENSOR, service_data={BTHOME_UUID: plain(7, 3.25)})
    got = await sink.wait_for(lambda rs: len(rs) >= 1)
    assert values(got, "ble/kerbside") == [3.25]


async def test_a_device_not_on_the_allow_list_is_dropped_and_its_address_is_nowhere(
    bluez: BlueZMock,
    running: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, bleak's debug log included
    source, sink = await running(source_config())
    # A phone that happens to send BTHome-shaped and Ruuvi-shaped data: still not on the list.
    bluez.advertise(
        PHONE, service_data={BTHOME_UUID: plain(1, 99.0)}, manufacturer_data={0x0499: ruuvi(5)}
    )
    bluez.advertise(PHONE, service_data={BTHOME_UUID: plain(2, 98.0)}, rssi=-70)
    bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(1, 20.0)})
    got = await sink.wait_for(lambda rs: len(rs) >= 1)
    await asyncio.sleep(0.2)
    assert [r.source for r in got] == ["ble/kerbside"]
    assert source.stats.adverts_dropped_not_allowed >= 2
    stats_text = json.dumps(source.stats.as_dict())
    for form in (PHONE, PHONE.lower(), PHONE.replace(":", ""), PHONE.replace(":", "_")):
        assert form not in caplog.text
        assert form not in stats_text
        assert form not in repr(got)


async def test_encrypted_sensor_decodes_with_its_key_and_a_wrong_key_is_a_decode_error(
    bluez: BlueZMock,
    running: Any,
) -> None:
    source, sink = await running(source_config())
    bluez.advertise(SECRET_SENSOR, service_data={BTHOME_UUID: sealed(1, 18.5)})
    got = await sink.wait_for(lambda rs: len(rs) >= 1)
    assert values(got, "ble/vault") == [18.5]
    bluez.advertise(SECRET_SENSOR, service_data={BTHOME_UUID: sealed(2, 19.0, key=bytes(16))})
    await until(lambda: source.stats.decode_errors >= 1)
    bluez.advertise(SECRET_SENSOR, service_data={BTHOME_UUID: sealed(1, 18.5)}, rssi=-61)
    bluez.advertise(SECRET_SENSOR, service_data={BTHOME_UUID: sealed(3, 19.5)})
    await sink.wait_for(lambda rs: len(rs) >= 2)
    assert values(sink.readings, "ble/vault") == [18.5, 19.5]  # the replayed counter 1 is not
    assert source.stats.decode_errors == 1
    assert source.stats.adverts_duplicate >= 1
    assert "ble/vault" not in [r.source for r in sink.readings if r.value == 19.0]


async def test_repeated_bthome_packet_ids_and_ruuvi_sequences_are_forwarded_once(
    bluez: BlueZMock,
    running: Any,
) -> None:
    source, sink = await running(source_config())
    for rssi in (-60, -61, -62):  # the same advert heard three times
        bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(5, 10.0)}, rssi=rssi)
        bluez.advertise(RUUVI, manufacturer_data={0x0499: ruuvi(100)}, rssi=rssi)
    bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(6, 11.0)})
    bluez.advertise(RUUVI, manufacturer_data={0x0499: ruuvi(101)})
    await sink.wait_for(
        lambda rs: (
            len(values(rs, "ble/kerbside")) >= 2
            and len({r.ts_ms for r in rs if r.source == "ble/cabinet"}) >= 1
        )
    )
    await until(lambda: source.stats.adverts_duplicate >= 4)
    await asyncio.sleep(0.2)
    assert values(sink.readings, "ble/kerbside") == [10.0, 11.0]
    temperatures = [
        r.value
        for r in sink.readings
        if r.source == "ble/cabinet" and r.quantity == "temperature_c"
    ]
    assert len(temperatures) == 2


async def test_min_interval_limits_the_rate_of_a_device(bluez: BlueZMock, running: Any) -> None:
    source, sink = await running(source_config(min_interval_s=3600))
    for n in range(1, 4):
        bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(n, 10.0 + n)})
    await until(lambda: source.stats.adverts_rate_limited >= 2)
    assert values(sink.readings, "ble/kerbside") == [11.0]


async def test_adapter_removed_and_added_again_while_running_resumes_readings(
    bluez: BlueZMock,
    running: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    source, sink = await running(source_config())
    bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(1, 1.0)})
    await sink.wait_for(lambda rs: len(rs) >= 1)
    bluez.remove_adapter("hci0")
    await until(lambda: source.stats.state == "adapter missing")
    await asyncio.sleep(1.5)  # several retries: said once, not once per retry
    assert (
        caplog.text.count("waiting for it to come back")
        + caplog.text.count("retrying until it is back")
        == 1
    )
    bluez.add_adapter("hci0")
    await until(lambda: source.stats.state == "scanning")
    assert source.stats.adapter_restarts == 1
    bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(2, 2.0)})
    await sink.wait_for(lambda rs: len(rs) >= 2)
    assert values(sink.readings, "ble/kerbside") == [1.0, 2.0]


async def test_adapter_powered_off_and_on_again_resumes_scanning(
    bluez: BlueZMock,
    running: Any,
) -> None:
    source, sink = await running(source_config())
    bluez.power(False)
    await until(lambda: source.stats.state == "adapter missing")
    bluez.power(True)
    await until(lambda: source.stats.state == "scanning")
    assert source.stats.adapter_restarts == 1
    bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(1, 4.5)})
    await sink.wait_for(lambda rs: len(rs) >= 1)
    assert values(sink.readings, "ble/kerbside") == [4.5]


async def test_bluetoothd_restarted_while_running_resumes_readings(
    bluez: BlueZMock,
    running: Any,
) -> None:
    source, sink = await running(source_config())
    bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(1, 1.0)})
    await sink.wait_for(lambda rs: len(rs) >= 1)
    bluez.restart_bluetoothd()
    await until(lambda: source.stats.state == "adapter missing")
    bluez.add_adapter("hci0")
    await until(lambda: source.stats.state == "scanning")
    bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(2, 2.0)})
    await sink.wait_for(lambda rs: len(rs) >= 2)
    assert values(sink.readings, "ble/kerbside") == [1.0, 2.0]
    assert source.stats.adapter_restarts == 1


@pytest.mark.agent_ble
async def test_agent_with_a_ble_source_delivers_a_bthome_reading_to_the_hub(
    tmp_path: Path,
    bluez: BlueZMock,
    mosquitto: Any,
    topic_prefix: str,
    write_config: Any,
    agent_process: Any,
    hub_subscriber: Any,
) -> None:
    from gateway import agent

    if BleSourceConfig not in agent.SOURCE_TYPES:
        pytest.skip("gateway.agent.SOURCE_TYPES has no entry for the BLE source yet")
    sub = await hub_subscriber(mosquitto, f"{topic_prefix}/#")
    proc = agent_process(
        write_config(
            {
                "gateway": {"id": "gw-ble", "data_dir": str(tmp_path / "data")},
                "hub": {
                    "url": mosquitto.url,
                    "topic_prefix": topic_prefix,
                    "flush_interval_s": 0.2,
                    "wire_format": 1,  # decoded message by message
                },
                "buffer": {"commit_interval_ms": 50},
                "sources": [
                    {
                        "type": "ble",
                        "name": "ble",
                        "adapter": "hci0",
                        "devices": [{"name": "kerbside", "address": SENSOR, "kind": "bthome"}],
                    }
                ],
            }
        )
    )
    proc.start()  # inherits DBUS_SYSTEM_BUS_ADDRESS from the bluez fixture
    await proc.wait_for_log("connected to hub")
    await proc.wait_for_log("scanning on hci0")
    bluez.advertise(PHONE, service_data={BTHOME_UUID: plain(1, 50.0)})
    bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(1, 22.25)})

    def readings(messages: list[Any]) -> list[wire.HubReading]:
        return [
            r for m in messages if m.topic.endswith("/data") for r in wire.decode_data(m.payload)
        ]

    msgs = await sub.wait_for(lambda ms: len(readings(ms)) >= 1, timeout=15)
    assert [(r.source, r.quantity, r.value) for r in readings(msgs)] == [
        ("ble/kerbside", "temperature_c", 22.25)
    ]
    assert PHONE not in proc.log_text()
    assert all(PHONE.encode() not in m.payload for m in msgs)


async def test_an_encrypted_sensor_listed_by_bind_key_alone_is_found_at_any_address(
    bluez: BlueZMock,
    running: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    rotating = "7A:11:22:33:44:55"  # a resolvable private address: it changes over time
    config = BleSourceConfig(
        name="ble",
        adapter="hci0",
        restart_max_s=0.5,
        devices=[BleDevice(name="keyed", kind="bthome", bind_key=KEY.hex())],
    )
    source, sink = await running(config)
    raw = round(17.25 * 100).to_bytes(2, "little", signed=True)
    mac = bytes.fromhex(rotating.replace(":", ""))
    bluez.advertise(
        rotating,
        service_data={BTHOME_UUID: bthome.seal(b"\x02" + raw, mac=mac, key=KEY, counter=5)},
    )
    # Someone else's encrypted sensor, and a plain one: neither is ours.
    bluez.advertise(
        PHONE,
        service_data={
            BTHOME_UUID: bthome.seal(
                b"\x02" + raw, mac=bytes.fromhex(PHONE.replace(":", "")), key=bytes(16), counter=1
            )
        },
    )
    bluez.advertise(SENSOR, service_data={BTHOME_UUID: plain(1, 20.0)})
    got = await sink.wait_for(lambda rs: len(rs) >= 1)
    await until(lambda: source.stats.adverts_dropped_not_allowed >= 2)
    assert [(r.source, r.value) for r in got] == [("ble/keyed", 17.25)]
    assert source.stats.decode_errors == 0
    for address in (rotating, PHONE):
        assert address not in caplog.text and address not in json.dumps(source.stats.as_dict())
