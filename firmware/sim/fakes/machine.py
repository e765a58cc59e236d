"""A fake `machine` for tests/firmware and the virtual node (firmware/sim): buses that record
what the firmware writes and answer from the devices wired in devices.py, a WDT that counts
feeds, an ADC with set values, and reset() raising devices.Reset.
"""

import devices


def reset():
    devices.RESETS[0] += 1
    raise devices.Reset()


class Pin:
    IN = 0
    OUT = 1

    def __init__(self, pin_id, mode=-1, *args, **kwargs):
        if not 0 <= pin_id < 49:
            raise ValueError("invalid pin")  # as the ports say for a pin the chip lacks
        self.id = pin_id
        self.mode = mode
        self.history = []
        self._value = 0

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        self.history.append(self._value)
        return None


class UART:
    def __init__(self, uart_id, baudrate=9600, **kwargs):
        self.id = uart_id
        self.baudrate = baudrate
        self.kwargs = kwargs
        self.written = bytearray()
        self.rx = bytearray()
        devices.UARTS[uart_id] = self

    def inject(self, data):
        self.rx.extend(data)

    def write(self, data):
        self.written.extend(data)
        responder = devices.UART_RESPONDERS.get(self.id)
        if responder is not None:
            reply = responder(bytes(data))
            if reply:
                self.rx.extend(reply)
        return len(data)

    def any(self):
        return len(self.rx)

    def read(self, n=None):
        if not self.rx:
            return None
        n = len(self.rx) if n is None else min(n, len(self.rx))
        data = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return data


class I2C:
    def __init__(self, bus_id, *args, **kwargs):
        self.id = bus_id
        self.kwargs = kwargs

    def _dev(self, addr):
        dev = devices.I2C_DEVICES.get((self.id, addr))
        if dev is None:
            raise OSError(19)  # ENODEV: nothing acknowledged the address, as on a board
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
        return sorted(addr for bus, addr in devices.I2C_DEVICES if bus == self.id)


SoftI2C = I2C


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        devices.WDT_FEEDS[0] += 1


class ADC:
    def __init__(self, pin):
        self.pin = pin.id if isinstance(pin, Pin) else pin

    def read_u16(self):
        return devices.ADC_VALUES.get(self.pin, 0)
