"""The node: read the sensors in node.json on a schedule and send them to the gateway.

Never bricks itself: the hardware watchdog is fed every cycle and while waiting; a sensor that
is missing or fails becomes a status entry ("error: ...") and is retried next cycle; a bad
node.json is reported (status "config") and safe defaults are used; memory is collected every
cycle so it stays flat. On the UART link the gateway may send commands (set_interval, identify,
sleep, wake, reboot); each is acknowledged. On the BLE link readings go out as BTHome v2.
"""

import gc
import json
import sys
import time

import bthome
import hal
import link
import msgpack_dec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VERSION = "0.1.0"
MIN_INTERVAL_S = 5
MAX_INTERVAL_S = 86400
ROTATE_MS = 2000
COUNTER_FILE = "bthome_counter"  # BLE encryption counter reservations (one flash write per block)
COUNTER_BLOCK = 1024  # BLE: how long each advert of a cycle stays up when there are several
DEFAULTS: "dict[str, Any]" = {
    "node_id": 0,
    "interval_s": 60,
    "link": "uart",
    "uart": {"id": 1, "baudrate": 115200, "tx": None, "rx": None},
    "ble": {"interval_ms": 1000, "key": None},
    "sensors": [],
    "led": None,
    "wdt_ms": 30000,
}
SENSOR_TYPES = ("bme280", "sht3x", "sds011", "pms5003", "supply")


def _check(cfg: dict) -> "list[str]":
    """What is wrong with a node.json dict; each bad key is reset to its default."""
    errors = []
    for key in list(cfg):
        if key not in DEFAULTS:
            errors.append("unknown key " + key)
            del cfg[key]
    checks = (
        ("node_id", lambda v: isinstance(v, int) and 0 <= v <= 0xFFFF, "an int 0..65535"),
        (
            "interval_s",
            lambda v: isinstance(v, int) and MIN_INTERVAL_S <= v <= MAX_INTERVAL_S,
            "an int 5..86400",
        ),
        ("link", lambda v: v in ("uart", "ble"), '"uart" or "ble"'),
        ("uart", lambda v: isinstance(v, dict), "an object"),
        ("ble", lambda v: isinstance(v, dict), "an object"),
        (
            "sensors",
            lambda v: (
                isinstance(v, list)
                and all(isinstance(s, dict) and s.get("type") in SENSOR_TYPES for s in v)
            ),
            "a list of {type: " + "|".join(SENSOR_TYPES) + ", ...}",
        ),
        ("wdt_ms", lambda v: isinstance(v, int) and 1000 <= v <= 60000, "an int 1000..60000"),
    )
    for key, ok, expected in checks:
        if key in cfg and not ok(cfg[key]):
            errors.append(key + ": expected " + expected)
            del cfg[key]
    merged = {}
    for key in DEFAULTS:
        value = cfg.get(key, DEFAULTS[key])
        if isinstance(DEFAULTS[key], dict):
            value = dict(DEFAULTS[key], **value)  # type: ignore[arg-type]
        merged[key] = value
    cfg.clear()
    cfg.update(merged)
    return errors


def load_config(path: str = "node.json") -> "tuple[dict, list[str]]":
    """(config, errors). A missing or unreadable file gives the defaults and an error."""
    try:
        with open(path) as f:
            cfg = json.load(f)
        if not isinstance(cfg, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as e:
        cfg = {}
        errors = [path + ": " + str(e)]
        return cfg, errors + _check(cfg)
    return cfg, _check(cfg)


def _i2c(spec: dict) -> "Any":
    return hal.i2c(spec.get("bus", 0), spec.get("sda"), spec.get("scl"), spec.get("freq", 100000))


def _uart(spec: dict, baudrate: int) -> "Any":
    return hal.uart(spec.get("uart", 1), baudrate, spec.get("tx"), spec.get("rx"))


class Supply:
    """Supply or battery voltage through an ADC pin and a divider (`scale`)."""

    def __init__(self, adc: "Any", scale: float) -> None:
        self._adc = adc
        self._scale = scale

    def read(self) -> "list[tuple[str, float, str]]":
        return [("supply_v", round(self._adc.read_u16() * 3.3 / 65535 * self._scale, 3), "V")]


def make_sensor(spec: dict, sleep_ms: "Any") -> "Any":
    """The driver object for one sensor entry of node.json."""
    kind = spec["type"]
    if kind == "bme280":
        import bme280

        return bme280.BME280(_i2c(spec), spec.get("address", 0x76), sleep_ms)
    if kind == "sht3x":
        import sht3x

        return sht3x.SHT3x(_i2c(spec), spec.get("address", 0x44), sleep_ms)
    if kind == "sds011":
        import sds011

        return sds011.SDS011(
            _uart(spec, 9600),
            spec.get("warmup_s", 30),
            spec.get("discard", 2),
            spec.get("timeout_ms", 3000),
            sleep_ms,
        )
    if kind == "pms5003":
        import pms5003

        return pms5003.PMS5003(
            _uart(spec, 9600),
            spec.get("warmup_s", 30),
            spec.get("discard", 2),
            spec.get("timeout_ms", 3000),
            sleep_ms,
        )
    return Supply(hal.adc(spec["pin"]), spec.get("scale", 1.0))


def read_sensor(kind: str, sensor: "Any") -> "list[tuple[str, float, str]]":
    if kind == "bme280":
        t, p, h = sensor.read()
        return [("temperature_c", t, "Cel"), ("pressure_hpa", p, "hPa"), ("humidity_pct", h, "%")]
    if kind == "sht3x":
        t, h = sensor.read()
        return [("temperature_c", t, "Cel"), ("humidity_pct", h, "%")]
    if kind in ("sds011", "pms5003"):
        return sensor.cycle()
    return sensor.read()


class Node:
    def __init__(
        self, cfg: dict, errors: "list[str] | None" = None, sleep_ms: "Any" = None
    ) -> None:
        self.cfg = cfg
        self.node_id = cfg["node_id"]
        self.interval_s = cfg["interval_s"]
        self.seq = 0
        self.cycles = 0
        self.config_error = "; ".join(errors) if errors else None
        self._sleep_ms = sleep_ms or time.sleep_ms
        self._start = time.ticks_ms()
        self.wdt = hal.watchdog(cfg["wdt_ms"])
        self.names: "list[str]" = []
        self.kinds: "dict[str, str]" = {}
        self.specs: "dict[str, dict]" = {}
        self.sensors: "dict[str, Any]" = {}
        self.asleep: "dict[str, bool]" = {}
        for spec in cfg["sensors"]:
            name = spec.get("name") or spec["type"]
            while name in self.specs:
                name += "_"
            self.names.append(name)
            self.kinds[name] = spec["type"]
            self.specs[name] = spec
        self.led = hal.output(cfg["led"]) if cfg["led"] is not None else None
        self.link = None
        self.ble = None
        self.ble_key = None
        self.ble_counter = 0
        self.adverts: "list[bytes]" = []
        self.advert_at = 0
        if cfg["link"] == "uart":
            u = cfg["uart"]
            self.link = link.Link(hal.uart(u["id"], u["baudrate"], u["tx"], u["rx"]))
        else:
            self.ble = hal.radio()
            key = cfg["ble"]["key"]
            self.ble_key = bytes.fromhex(key) if key else None
            self.ble_mac = bytes(self.ble.config("mac")[1])
            if self.ble_key:
                self.ble_counter = self._reserve_counters(0)

    def _read_all(self) -> "tuple[list, dict]":
        readings = []
        status = {}
        if self.config_error:
            status["config"] = self.config_error
        for name in self.names:
            if self.asleep.get(name):
                status[name] = "asleep"
                continue
            try:
                sensor = self.sensors.get(name)
                if sensor is None:
                    sensor = self.sensors[name] = make_sensor(self.specs[name], self.nap)
                for q, v, u in read_sensor(self.kinds[name], sensor):
                    readings.append([q, v, u, name])  # the sensor keeps same-named quantities apart
                status[name] = "ok"
            except Exception as e:  # a sensor never takes the node down
                self.sensors.pop(name, None)  # build it again next cycle
                status[name] = "error: " + (str(e) or type(e).__name__)
            self.wdt.feed()
        return readings, status

    def nap(self, ms: int) -> None:
        """Sleep `ms` in slices of at most a second, feeding the watchdog (sensor warm-ups)."""
        while ms > 0:
            self.wdt.feed()
            self._sleep_ms(min(ms, 1000))
            ms -= 1000
        self.wdt.feed()

    def uptime_s(self) -> int:
        return time.ticks_diff(time.ticks_ms(), self._start) // 1000

    def _send(self, ftype: int, body: dict) -> None:
        if self.link is not None:
            self.link.send(ftype, self.node_id, self.seq, body)
        self.seq = (self.seq + 1) & 0xFFFF

    def _advertise(self, readings: list) -> None:
        """Readings as BTHome adverts: more than one when they do not fit one legacy advert;
        `wait()` rotates through them."""
        self.adverts = []
        for objs in bthome.split(readings, self.seq & 0xFF, self.ble_key is not None):
            if self.ble_key:
                self.ble_counter += 1
                if self.ble_counter % COUNTER_BLOCK == 0:
                    self._reserve_counters(self.ble_counter)
                data = bthome.service_data(objs, self.ble_key, self.ble_mac, self.ble_counter)
            else:
                data = bthome.service_data(objs)
            self.adverts.append(bthome.advert(data))
            self.seq = (self.seq + 1) & 0xFFFF
        self.advert_at = 0
        self._show_advert()

    def _reserve_counters(self, current: int) -> int:
        """The encryption counter must grow across reboots (receivers reject replays): the
        file keeps the end of a block of COUNTER_BLOCK counters; a boot starts after it."""
        start = current
        try:
            with open(COUNTER_FILE) as f:
                start = max(start, int(f.read()))
        except (OSError, ValueError):
            pass
        try:
            with open(COUNTER_FILE, "w") as f:
                f.write(str(start + COUNTER_BLOCK))
        except OSError:
            pass
        return start

    def _show_advert(self) -> None:
        adv = self.adverts[self.advert_at % len(self.adverts)]
        self.ble.gap_advertise(self.cfg["ble"]["interval_ms"] * 1000, adv)  # type: ignore
        self.advert_at += 1

    def run_once(self) -> None:
        """One cycle: read every sensor, send one report."""
        self.wdt.feed()
        readings, status = self._read_all()
        if self.ble is not None:
            self._advertise(readings)
        else:
            self._send(
                link.T_REPORT,
                {"r": readings, "s": status, "up_s": self.uptime_s(), "iv_s": self.interval_s},
            )
        self.cycles += 1
        readings = status = None  # type: ignore[assignment]
        gc.collect()
        self.wdt.feed()

    def poll(self) -> None:
        """Handle the commands waiting on the UART link."""
        if self.link is None:
            return
        for ftype, node_id, seq, body in self.link.receive():
            if ftype == link.T_COMMAND and node_id in (self.node_id, 0xFFFF):
                self._command(seq, body)

    def _command(self, cmd_seq: int, body: bytes) -> None:
        cmd, ok, err, reboot = None, False, None, False
        try:
            msg = msgpack_dec.unpackb(body)
            cmd = msg.get("cmd")
            arg = msg.get("arg")
            if cmd == "set_interval":
                if not isinstance(arg, int) or not MIN_INTERVAL_S <= arg <= MAX_INTERVAL_S:
                    raise ValueError("interval must be an int 5..86400")
                self.interval_s = arg
            elif cmd == "identify":
                for i in range(2 * (arg if isinstance(arg, int) and 0 < arg < 20 else 3)):
                    if self.led is not None:
                        self.led.value(i % 2 == 0)
                    self._sleep_ms(100)
            elif cmd in ("sleep", "wake"):
                names = [arg] if arg else self.names
                for name in names:
                    if name not in self.kinds:
                        raise ValueError("no sensor " + str(name))
                    sensor = self.sensors.get(name)
                    if cmd == "sleep" and sensor is not None and hasattr(sensor, "sleep"):
                        sensor.sleep()
                    self.asleep[name] = cmd == "sleep"
            elif cmd == "reboot":
                reboot = True
            else:
                raise ValueError("unknown command")
            ok = True
        except Exception as e:
            err = str(e) or type(e).__name__
        self._send(link.T_ACK, {"ack": cmd_seq, "cmd": cmd, "ok": ok, "err": err})
        if reboot:
            self._sleep_ms(100)
            hal.reset()

    def wait(self) -> None:
        """Sleep until the next cycle, feeding the watchdog and answering commands."""
        start = time.ticks_ms()
        shown = start
        while time.ticks_diff(time.ticks_ms(), start) < self.interval_s * 1000:
            self.wdt.feed()
            self.poll()
            if len(self.adverts) > 1 and time.ticks_diff(time.ticks_ms(), shown) >= ROTATE_MS:
                self._show_advert()
                shown = time.ticks_ms()
            self._sleep_ms(200)

    def run(self) -> None:
        while True:
            try:
                self.run_once()
                self.wait()
            except Exception as e:  # one bad cycle never ends the loop; the watchdog guards hangs
                sys.print_exception(e)  # type: ignore[attr-defined]
                self.nap(1000)


def main() -> None:
    cfg, errors = load_config()
    try:
        node = Node(cfg, errors)
    except Exception as e:  # e.g. pins the board does not have: run on the defaults instead
        errors.append("setup failed (" + (str(e) or type(e).__name__) + "): using defaults")
        cfg = {}
        _check(cfg)
        node = Node(cfg, errors)
    node.run()


if __name__ == "__main__":
    main()
