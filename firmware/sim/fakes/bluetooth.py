"""A fake `bluetooth`: BLE() records every gap_advertise call in ADVERTS."""

ADVERTS = []
MAC = [bytes.fromhex("5448E68F80A5")]


class BLE:
    def __init__(self):
        self._active = False

    def active(self, on=None):
        if on is not None:
            self._active = bool(on)
        return self._active

    def config(self, name):
        if name == "mac":
            return (0, MAC[0])
        raise ValueError("unknown config " + name)

    def gap_advertise(self, interval_us, adv_data=None, **kwargs):
        ADVERTS.append((interval_us, bytes(adv_data) if adv_data is not None else None))
