"""The fake board's world, for tests/firmware and the virtual node: what is on its buses and pins.

The fake `machine` (machine.py here) answers from these tables, which a test or the virtual node
fills before the firmware runs: I2C_DEVICES[(bus, addr)] = a device (readfrom_mem / writeto_mem /
writeto / readfrom), UART_RESPONDERS[id] = fn(written) -> reply, ADC_VALUES[pin] = u16. Every
UART the firmware opens is in UARTS[id]: what it wrote in .written, received bytes go in with
.inject(). WDT_FEEDS and RESETS count watchdog feeds and machine.reset() calls.
"""

I2C_DEVICES = {}
UART_RESPONDERS = {}
UARTS = {}
ADC_VALUES = {}
WDT_FEEDS = [0]
RESETS = [0]


class Reset(Exception):
    """What machine.reset() raises instead of rebooting; the virtual node then boots again."""


class BME280Dev:
    """Register map of a BME280: calibration given, one set of ADC values; records writes."""

    def __init__(self, calib, adc_t, adc_p, adc_h, chip_id=0x60):
        self.regs = bytearray(256)
        self.regs[0xD0] = chip_id
        self.regs[0x88:0xA2] = calib[:26]
        self.regs[0xE1:0xE8] = calib[26:33]
        self.set_adc(adc_t, adc_p, adc_h)
        self.writes = []

    def set_adc(self, adc_t, adc_p, adc_h):
        self.regs[0xF7:0xFF] = bytes(
            (
                adc_p >> 12,
                adc_p >> 4 & 0xFF,
                (adc_p & 0xF) << 4,
                adc_t >> 12,
                adc_t >> 4 & 0xFF,
                (adc_t & 0xF) << 4,
                adc_h >> 8,
                adc_h & 0xFF,
            )
        )

    def readfrom_mem(self, reg, n):
        return bytes(self.regs[reg : reg + n])

    def writeto_mem(self, reg, data):
        self.writes.append((reg, bytes(data)))


class SHT3xDev:
    """Answers every measurement with the same 6 bytes (`reply`); records commands."""

    def __init__(self, reply):
        self.reply = bytes(reply)
        self.commands = []

    def writeto(self, data):
        self.commands.append(bytes(data))
        return 1

    def readfrom(self, n):
        return self.reply[:n]


def sds011_frame(pm25_raw, pm10_raw):
    body = bytes((pm25_raw & 0xFF, pm25_raw >> 8, pm10_raw & 0xFF, pm10_raw >> 8, 0xA1, 0x60))
    return b"\xaa\xc0" + body + bytes((sum(body) & 0xFF, 0xAB))


def sds011_responder(values):
    """Answers each query (sub-command 04) with the next (pm2.5, pm10) raw pair, noise first;
    the values repeat forever."""
    values = list(values)
    at = [0]

    def respond(data):
        if data[:3] == b"\xaa\xb4\x04":
            at[0] += 1
            return b"\x00\xab" + sds011_frame(*values[(at[0] - 1) % len(values)])
        return b""

    return respond


def pms5003_frame(pm1, pm25, pm10):
    words = [pm1, pm25, pm10, pm1, pm25, pm10, 300, 100, 20, 5, 1, 0, 0x9700]
    body = bytearray(b"\x42\x4d\x00\x1c")
    for w in words:
        body.extend(bytes((w >> 8, w & 0xFF)))
    s = sum(body)
    return bytes(body) + bytes((s >> 8 & 0xFF, s & 0xFF))


def pms5003_responder(values):
    values = list(values)
    at = [0]

    def respond(data):
        if data[:3] == b"\x42\x4d\xe2":
            at[0] += 1
            return pms5003_frame(*values[(at[0] - 1) % len(values)])
        return b""

    return respond
