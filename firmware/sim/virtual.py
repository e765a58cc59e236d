"""The virtual node for `citygw node simulate` (MicroPython): the real firmware (main.Node) on
the virtual board (the fake `machine` and its devices in fakes/) with a BME280, an SHT3x and a
supply voltage whose values drift. simulate.mjs calls start() once, then step() every ~100 ms
with the bytes the gateway sent; step() answers commands, runs a cycle when the node's interval
is up, and returns the bytes the node wrote on its UART (hex, so they cross into JavaScript
unchanged).
"""

import json
import sys
import time

import devices
import main
import sht3x

BME280_CAL = "b16f2e6a3200e28f0ad7d00b751fc5fff9ffac260ad8bd10004b7701001220031e"
SUPPLY_PIN = 35
LINK_UART = 1


def sht3x_reply(raw_t, raw_rh):
    """The 6 bytes an SHT3x answers: each raw word with its CRC-8."""
    out = bytearray()
    for word in (raw_t, raw_rh):
        pair = bytes((word >> 8, word & 0xFF))
        out.extend(pair)
        out.append(sht3x.crc8(pair))
    return bytes(out)


class Walk:
    """A mean-reverting random walk within [low, high] (a small LCG: no `random` needed)."""

    def __init__(self, seed, low, high, step):
        self.state = seed
        self.low = low
        self.high = high
        self.step = step
        self.value = (low + high) // 2

    def next(self):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        delta = (self.state >> 8) % (2 * self.step + 1) - self.step
        mean = (self.low + self.high) // 2
        delta += (mean - self.value) // 8
        self.value = max(self.low, min(self.high, self.value + delta))
        return self.value


BME = devices.BME280Dev(bytes.fromhex(BME280_CAL), 0, 0, 0)  # a real part's calibration
SHT = devices.SHT3xDev(b"")
WALKS = {
    "adc_t": Walk(1, 520000, 560000, 800),  # about 24..30 degC
    "adc_p": Walk(2, 320000, 330000, 300),
    "adc_h": Walk(3, 23000, 26000, 100),
    "sht_t": Walk(4, 24000, 27000, 60),
    "sht_rh": Walk(5, 30000, 33000, 60),
    "supply": Walk(6, 48500, 49800, 40),  # about 4.9..5.0 V through the 1:2 divider
}
STATE = {"node": None, "last": None}


def drift():
    w = {name: walk.next() for name, walk in WALKS.items()}
    BME.set_adc(w["adc_t"], w["adc_p"], w["adc_h"])
    SHT.reply = sht3x_reply(w["sht_t"], w["sht_rh"])
    BME.writes[:] = []  # what the devices record is for tests; the virtual node runs for days
    SHT.commands[:] = []
    devices.ADC_VALUES[SUPPLY_PIN] = w["supply"]


def _boot():
    cfg, errors = main.load_config()
    STATE["node"] = main.Node(cfg, errors, sleep_ms=lambda ms: None)
    STATE["last"] = None


def start(node_id, interval_s):
    """Write node.json for the virtual board and boot the node from it, as main.main() does."""
    cfg = {
        "node_id": node_id,
        "interval_s": interval_s,
        "link": "uart",
        "uart": {"id": LINK_UART, "baudrate": 115200},
        "sensors": [
            {"type": "bme280", "bus": 0, "address": 0x76},
            {"type": "sht3x", "bus": 0, "address": 0x44},
            {"type": "supply", "pin": SUPPLY_PIN, "scale": 2.0},
        ],
        "wdt_ms": 30000,
    }
    with open("node.json", "w") as f:
        json.dump(cfg, f)
    devices.I2C_DEVICES[(0, 0x76)] = BME
    devices.I2C_DEVICES[(0, 0x44)] = SHT
    drift()
    _boot()


def step(rx_hex):
    """Take the bytes received (hex), answer commands, run a cycle when due; the bytes sent."""
    uart = devices.UARTS[LINK_UART]  # this boot's: a reboot's ack is still in it
    if rx_hex:
        uart.inject(bytes.fromhex(rx_hex))
    node = STATE["node"]
    try:
        node.wdt.feed()
        node.poll()
        now = time.ticks_ms()
        last = STATE["last"]
        if last is None or time.ticks_diff(now, last) >= node.interval_s * 1000:
            STATE["last"] = now
            drift()
            node.run_once()
    except devices.Reset:
        print("virtual node: reboot")
        _boot()
    except Exception as e:  # as Node.run(): one bad cycle never ends the node
        sys.print_exception(e)
    if not uart.written:
        return ""  # (MicroPython 1.27 gives b"" for an empty bytes' hex())
    out = bytes(uart.written).hex()
    uart.written[:] = b""
    return out
