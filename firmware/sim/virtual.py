"""The virtual node for `citygw node simulate` (MicroPython): the real firmware (main.Node) on
the virtual board (machine.py here) with a BME280, an SHT3x and a supply voltage whose values
drift. simulate.mjs calls start() once, then step() every ~100 ms with the bytes the gateway
sent; step() answers commands, runs a cycle when the node's interval is up, and returns the
bytes the node wrote on its UART (hex, so they cross into JavaScript unchanged).
"""

import json
import sys
import time

import machine

import main
import sht3x

BME280_CAL = "b16f2e6a3200e28f0ad7d00b751fc5fff9ffac260ad8bd10004b7701001220031e"
SUPPLY_PIN = 35


class BME280Dev:
    """A BME280's registers: the calibration of a real part, ADC values set by drift()."""

    def __init__(self):
        self.regs = bytearray(256)
        self.regs[0xD0] = 0x60  # chip id
        cal = bytes.fromhex(BME280_CAL)
        self.regs[0x88:0xA2] = cal[:26]
        self.regs[0xE1:0xE8] = cal[26:33]

    def set_adc(self, adc_t, adc_p, adc_h):
        self.regs[0xF7:0xFF] = bytes((
            adc_p >> 12, adc_p >> 4 & 0xFF, (adc_p & 0xF) << 4,
            adc_t >> 12, adc_t >> 4 & 0xFF, (adc_t & 0xF) << 4,
            adc_h >> 8, adc_h & 0xFF,
        ))

    def readfrom_mem(self, reg, n):
        return bytes(self.regs[reg : reg + n])

    def writeto_mem(self, reg, data):
        pass


class SHT3xDev:
    """Answers a measurement with the raw words set by drift(), each with its CRC-8."""

    def __init__(self):
        self.reply = b""

    def set_raw(self, raw_t, raw_rh):
        out = bytearray()
        for word in (raw_t, raw_rh):
            pair = bytes((word >> 8, word & 0xFF))
            out.extend(pair)
            out.append(sht3x.crc8(pair))
        self.reply = bytes(out)

    def writeto(self, data):
        return 1

    def readfrom(self, n):
        return self.reply[:n]


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


BME = BME280Dev()
SHT = SHT3xDev()
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
    SHT.set_raw(w["sht_t"], w["sht_rh"])
    machine.ADC_VALUES[SUPPLY_PIN] = w["supply"]


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
        "uart": {"id": 1, "baudrate": 115200},
        "sensors": [
            {"type": "bme280", "bus": 0, "address": 0x76},
            {"type": "sht3x", "bus": 0, "address": 0x44},
            {"type": "supply", "pin": SUPPLY_PIN, "scale": 2.0},
        ],
        "wdt_ms": 30000,
    }
    with open("node.json", "w") as f:
        json.dump(cfg, f)
    machine.I2C_DEVICES[(0, 0x76)] = BME
    machine.I2C_DEVICES[(0, 0x44)] = SHT
    drift()
    _boot()


def step(rx_hex):
    """Take the bytes received (hex), answer commands, run a cycle when due; the bytes sent."""
    if rx_hex:
        machine.RX.extend(bytes.fromhex(rx_hex))
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
    except machine.Reset:
        print("virtual node: reboot")
        _boot()
    except Exception as e:  # as Node.run(): one bad cycle never ends the node
        sys.print_exception(e)
    if not machine.TX:
        return ""  # (MicroPython 1.27 gives b"" for an empty bytes' hex())
    out = bytes(machine.TX).hex()
    machine.TX[:] = b""
    return out
