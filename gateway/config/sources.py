"""`[[sources]]`: the sensors on serial ports, the BLE scanners and the Modbus meter buses,
each a typed record."""

from __future__ import annotations

import re
from dataclasses import field
from typing import Annotated, ClassVar, Literal

from gateway.config.fields import CONTROL, MAX_PATH_CHARS, NAME, PositiveSeconds, record
from gateway.config.register import RegisterRecord
from gateway.config.schema import Range

_ADAPTER = re.compile(r"hci[0-9]{1,3}")

SilentAfter = Annotated[float, Range(ge=0, le=604_800)] | None
"""A source's `silent_after_s`: seconds (at most a week), 0 for never, unset for the default."""


def _check_name_and_port(name: str, port: str) -> None:
    """What every source that opens a device checks first (ValueError "field: expected")."""
    if not NAME.fullmatch(name):
        raise ValueError("name: expected 1-64 characters from A-Z a-z 0-9 _ . -")
    if not port or len(port) > MAX_PATH_CHARS or CONTROL.search(port):
        raise ValueError(
            "port: expected a device path such as /dev/ttyUSB0 "
            f"(at most {MAX_PATH_CHARS} characters, no control characters)"
        )


@record
class DutyCycle:
    """Measure for on_s every period_s; the sensor sleeps in between (spares its laser)."""

    period_s: Annotated[float, Range(ge=10, le=86_400)]
    """Start a measurement every period_s."""
    on_s: Annotated[float, Range(ge=1, le=86_400)]
    """Keep the sensor awake this long each period (including warm-up)."""
    warmup_s: Annotated[float, Range(ge=0, le=3600)] = 15.0
    """Readings during the first warmup_s after wake-up are discarded (fan spin-up)."""

    def __post_init__(self) -> None:
        if self.on_s >= self.period_s:
            raise ValueError("on_s: expected less than period_s (else leave duty_cycle out)")
        if self.warmup_s >= self.on_s:
            raise ValueError("warmup_s: expected less than on_s")


@record
class SerialSourceConfig:
    """One sensor on a serial port (UART, USB adapter), decoded by its driver."""

    TYPE: ClassVar[str] = "serial"
    name: str
    """Name the readings carry; unique on this gateway."""
    owner: str = ""
    """Whose readings these are (docs/uplinks.md): only uplinks listing this owner carry them;
    empty: the gateway's owner (`gateway.owner`)."""
    port: str
    """The device, e.g. /dev/ttyUSB0 (deploy/'s udev rules give adapters stable names)."""
    driver: Literal["sds011", "pms5003", "pms7003", "pms5003t", "node", "ops243", "maxbotix"]
    """The sensor's codec (PMS7003 speaks PMS5003's frames); `node`: a citygw sensor node
    (firmware/) on its UART link (docs/node-link.md); `ops243`: OmniPreSense radar;
    `maxbotix`: MaxSonar-WR rangefinder (drivers/README.md)."""
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    """Line speed (the sensors' default: 9600; a citygw node: 115200)."""
    duty_cycle: DutyCycle | None = None
    """Wake the sensor for on_s every period_s and put it to sleep between (spares the laser)."""
    reopen_max_s: PositiveSeconds = 5.0
    """Longest wait between attempts to reopen a vanished port (an attempt is one open() call:
    cheap, so a replugged sensor is read again within seconds)."""
    node_interval_s: Annotated[int, Range(ge=5, le=86_400)] | None = None
    """`node` only: the measurement interval the gateway sets on the node at every connect
    (the node acknowledges it); unset: the node keeps the interval of its node.json."""
    units: Literal["mps", "kmh", "mph", "fps", "cmps", "m", "cm", "ft", "in", "yd"] | None = None
    """`ops243` only: the unit set at connect (speeds: UM UK US UF UC; OPS243-C ranges: uM uC
    uF uI uY); unset: mps, the radar's factory default."""
    json: bool | None = None
    """`ops243` only: ask for JSON reports (OJ, with their unit label); unset: plain lines."""
    aggregate_s: Annotated[float, Range(ge=1, le=86_400)] | None = None
    """`ops243` and `maxbotix`: instead of every report, readings per interval of this length.
    Radar: the vehicles per direction and their speed percentiles v50, v85 and max. Rangefinder:
    the median distance (and water level), min, max and the counts of reports with and without
    a target. Alert rules then see these (drivers/README.md)."""
    model: str | None = None
    """`maxbotix` only, required: the model, e.g. "MB7389" (cm or mm, limits, no-target value)."""
    mount_height_mm: Annotated[int, Range(ge=1, le=100_000)] | None = None
    """`maxbotix` only: the sensor's height above the zero of the water level; readings then
    include water_level_mm = mount_height_mm - distance_mm."""
    silent_after_s: SilentAfter = None
    """Say the sensor is silent when its port is open but nothing came for this long (status,
    metrics, one log line; docs/operations.md). 0: never. Unset: three times the longest gap
    of a working sensor, at least 60 s: 60 s streaming, 3 x (period_s - on_s + 2.3 s) with a
    duty cycle, 3 x node_interval_s for a node (unset there: never), never for an ops243 (it
    says nothing while nothing moves). Judged on frames, so aggregate_s does not change it."""
    register: RegisterRecord | None = None
    """The sensor's public register record (docs/register.md)."""

    def __post_init__(self) -> None:
        _check_name_and_port(self.name, self.port)
        _check_owner(self.owner)
        if self.driver == "node" and self.duty_cycle is not None:
            raise ValueError("duty_cycle: a node duty-cycles its own sensors (node.json)")
        if self.driver != "node" and self.node_interval_s is not None:
            raise ValueError('node_interval_s: only for driver = "node"')
        self._check_driver_options()

    def _check_driver_options(self) -> None:
        """Options only for some drivers (ops243, maxbotix), and what each driver needs."""
        for name, drivers in _DRIVER_OPTIONS.items():
            if getattr(self, name) is not None and self.driver not in drivers:
                listed = " or ".join(f'"{driver}"' for driver in drivers)
                raise ValueError(f"{name}: only for driver = {listed}")
        if self.driver in ("ops243", "maxbotix") and self.duty_cycle is not None:
            raise ValueError(f"duty_cycle: the {self.driver} has no sleep command")
        if self.aggregate_s is not None and self.units in ("m", "cm", "ft", "in", "yd"):
            raise ValueError("aggregate_s: counts vehicles, so units must be a speed unit")
        if self.driver == "maxbotix":
            from drivers.maxbotix_models import MODELS

            if self.model not in MODELS:
                raise ValueError("model: expected the MaxSonar model, one of " + ", ".join(MODELS))


_DRIVER_OPTIONS = {
    "units": ("ops243",),
    "json": ("ops243",),
    "aggregate_s": ("ops243", "maxbotix"),
    "model": ("maxbotix",),
    "mount_height_mm": ("maxbotix",),
}
"""Source options that belong to some drivers (a codec's options of the same name, drivers/;
`aggregate_s` the source's own, gateway/sources/serial/aggregate.py)."""


def _check_owner(owner: str) -> None:
    if owner and not NAME.fullmatch(owner):
        raise ValueError("owner: expected 1-64 characters from A-Z a-z 0-9 _ . - (or empty)")


_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{32}")


@record
class BleDevice:
    """One allow-listed BLE sensor. Adverts from any other address are dropped unread."""

    name: str
    """Sent to the hub as `<source name>/<device name>`; the address never leaves the gateway."""
    address: str = ""
    """`AA:BB:CC:DD:EE:FF` as BlueZ reports it (public or static random address). May be left
    out for an encrypted BTHome device (allow-listed by its bind key, whatever its address)."""
    kind: Literal["bthome", "ruuvi"]
    """The advertisement format: BTHome v2 or RuuviTag data format 5."""
    bind_key: str = field(default="", repr=False)
    """BTHome only: 32 hex digits; when set, unencrypted adverts from the device are refused."""
    min_interval_s: Annotated[float, Range(ge=0, le=86_400)] = 0.0
    """Forward at most one advert per this many seconds (0: every new measurement)."""
    silent_after_s: SilentAfter = None
    """This device's own silence threshold (0: never, e.g. a button that advertises only when
    pressed); unset: the source's `silent_after_s`."""

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError("name: expected 1-64 characters from A-Z a-z 0-9 _ . -")
        if not self.address and not self.bind_key:
            raise ValueError(
                "address: expected a MAC address like AA:BB:CC:DD:EE:FF (or a "
                "bind_key for an encrypted BTHome device)"
            )
        if self.address and not _MAC.fullmatch(self.address):
            raise ValueError("address: expected a MAC address like AA:BB:CC:DD:EE:FF")
        if self.bind_key and self.kind != "bthome":
            raise ValueError("bind_key: only BTHome devices have a bind key")
        if self.bind_key and not _HEX_KEY.fullmatch(self.bind_key):
            raise ValueError("bind_key: expected 32 hex digits (a 16-byte AES key)")


@record
class BleSourceConfig:
    """BLE advertisements of allow-listed BTHome v2 and RuuviTag sensors, via BlueZ."""

    TYPE: ClassVar[str] = "ble"
    name: str
    """Readings come from "<name>/<device name>"; unique on this gateway."""
    owner: str = ""
    """Whose readings these are (docs/uplinks.md): only uplinks listing this owner carry them;
    empty: the gateway's owner (`gateway.owner`)."""
    adapter: str = "hci0"
    """The BlueZ adapter that scans."""
    scanning: Literal["auto", "passive", "active"] = "auto"
    """`passive` needs BlueZ advertisement monitors (bluetoothd --experimental, kernel >= 5.10);
    `auto` tries passive and falls back to active scanning."""
    restart_max_s: PositiveSeconds = 30.0
    """Longest wait between attempts while the adapter is missing."""
    devices: list[BleDevice] = field(default_factory=list)
    """The allow-list: only these devices' adverts are decoded."""
    silent_after_s: SilentAfter = None
    """Say a device is silent when the adapter scans but no advert of it came for this long
    (each device on its own; docs/operations.md). 0: never. Unset: 900 s (BTHome and Ruuvi
    sensors advertise every 1-60 s; a device may set its own)."""
    register: RegisterRecord | None = None
    """The sensor's public register record (docs/register.md)."""

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError("name: expected 1-64 characters from A-Z a-z 0-9 _ . -")
        _check_owner(self.owner)
        if not _ADAPTER.fullmatch(self.adapter):
            raise ValueError("adapter: expected an adapter name such as hci0")
        names: set[str] = set()
        addresses: set[str] = set()
        for index, device in enumerate(self.devices):
            if device.name in names:
                raise ValueError(f"devices[{index}].name: {device.name!r} is used twice")
            if device.address and device.address.upper() in addresses:
                raise ValueError(f"devices[{index}].address: the address is listed twice")
            names.add(device.name)
            addresses.add(device.address.upper())


@record
class ModbusMeter:
    """One energy meter on a Modbus RTU bus, known by its address."""

    name: str
    """Readings come from "<source name>/<meter name>"."""
    address: Annotated[int, Range(ge=1, le=247)]
    """The meter's Modbus address (set on the meter; Eastron's default is 1)."""
    model: Literal["sdm120", "sdm630"]
    """Eastron SDM120 (single phase) or SDM630 (three phase): which registers are read."""

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError("name: expected 1-64 characters from A-Z a-z 0-9 _ . -")


@record
class ModbusSourceConfig:
    """Energy meters on one RS-485 bus, polled over Modbus RTU (docs/modbus.md)."""

    TYPE: ClassVar[str] = "modbus"
    name: str
    """Readings come from "<name>/<meter name>"; unique on this gateway."""
    port: str
    """The RS-485 adapter, e.g. /dev/ttyUSB0."""
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400] = 9600
    """Line speed, the same on every meter of the bus (set on each meter)."""
    parity: Literal["N", "E", "O"] = "N"
    """None, even or odd (Eastron's default: none)."""
    stop_bits: Literal[1, 2] = 1
    """1, or 2 (Eastron's "N-2" setting)."""
    interval_s: Annotated[float, Range(ge=1, le=86_400)] = 10.0
    """Read every meter once per interval_s (a poll that runs late starts the next at once)."""
    timeout_s: Annotated[float, Range(ge=0.05, le=10)] = 0.5
    """How long to wait for one answer (a meter answers within ~100 ms at 9600 baud)."""
    retries: Annotated[int, Range(ge=0, le=5)] = 1
    """Requests sent again after a timeout or a corrupt answer before the block counts as lost."""
    reopen_max_s: PositiveSeconds = 5.0
    """Longest wait between attempts to reopen a vanished adapter."""
    silent_after_s: SilentAfter = None
    """Say a meter is silent when the adapter is open but it gave no reading for this long
    (each meter on its own; one that does not answer is already logged as such;
    docs/modbus.md). 0: never. Unset: 3 x the longest gap between a meter's readings, at
    least 60 s: max(interval_s, a poll in which every request times out after its retries)."""
    meters: list[ModbusMeter] = field(default_factory=list)
    """The meters on the bus, by address."""
    owner: str = ""
    """Whose readings these are (docs/uplinks.md): only uplinks listing this owner carry them;
    empty: the gateway's owner (`gateway.owner`)."""
    register: RegisterRecord | None = None
    """The meters' public register record (docs/register.md)."""

    def __post_init__(self) -> None:
        _check_name_and_port(self.name, self.port)
        _check_owner(self.owner)
        if not self.meters:
            raise ValueError("meters: expected at least one meter")
        if len(self.meters) > 32:
            raise ValueError("meters: expected at most 32 meters on one bus (RS-485 unit loads)")
        names: set[str] = set()
        addresses: set[int] = set()
        for index, meter in enumerate(self.meters):
            if meter.name in names:
                raise ValueError(f"meters[{index}].name: {meter.name!r} is used twice")
            if meter.address in addresses:
                raise ValueError(f"meters[{index}].address: address {meter.address} is used twice")
            names.add(meter.name)
            addresses.add(meter.address)


SourceConfig = SerialSourceConfig | BleSourceConfig | ModbusSourceConfig
