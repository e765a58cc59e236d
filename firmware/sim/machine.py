"""The virtual board's `machine` for `citygw node simulate` (MicroPython, not a board module).

The link UART (the one main.py opens from node.json) writes into TX, which the runner drains to
its stdout, and reads from RX, which the runner fills from its stdin. I2C answers from the
devices in I2C_DEVICES[(bus, addr)]; ADC from ADC_VALUES[pin]. The watchdog only counts feeds:
the runner's loop is the only thing that could hang, and it is not the firmware's to guard.
"""

TX = bytearray()
RX = bytearray()
I2C_DEVICES = {}
ADC_VALUES = {}
RESETS = [0]


class Reset(Exception):
    """What reset() raises: the runner starts the node again, as a reboot would."""


def reset():
    RESETS[0] += 1
    raise Reset()


class Pin:
    IN = 0
    OUT = 1

    def __init__(self, pin_id, mode=-1, *args, **kwargs):
        self.id = pin_id
        self.mode = mode
        self._value = 0

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        return None


class UART:
    """Every UART is the link: the virtual node has no UART sensors."""

    def __init__(self, uart_id, baudrate=9600, **kwargs):
        self.id = uart_id
        self.baudrate = baudrate

    def write(self, data):
        TX.extend(data)
        return len(data)

    def any(self):
        return len(RX)

    def read(self, n=None):
        if not RX:
            return None
        n = len(RX) if n is None else min(n, len(RX))
        data = bytes(RX[:n])
        RX[:n] = b""
        return data


class I2C:
    def __init__(self, bus_id, *args, **kwargs):
        self.id = bus_id

    def _dev(self, addr):
        dev = I2C_DEVICES.get((self.id, addr))
        if dev is None:
            raise OSError(19)  # ENODEV, as on a board when nothing acknowledges the address
        return dev

    def readfrom_mem(self, addr, reg, n):
        return self._dev(addr).readfrom_mem(reg, n)

    def writeto_mem(self, addr, reg, data):
        self._dev(addr).writeto_mem(reg, bytes(data))

    def writeto(self, addr, data):
        return self._dev(addr).writeto(bytes(data))

    def readfrom(self, addr, n):
        return self._dev(addr).readfrom(n)

    def scan(self):
        return sorted(addr for bus, addr in I2C_DEVICES if bus == self.id)


SoftI2C = I2C


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class ADC:
    def __init__(self, pin):
        self.pin = pin.id if isinstance(pin, Pin) else pin

    def read_u16(self):
        return ADC_VALUES.get(self.pin, 0)
