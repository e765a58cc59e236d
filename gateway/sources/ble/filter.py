"""What the BLE source forwards of an allow-listed device's advert: decode, then drop repeats.

Pure and synchronous (no bleak, no asyncio): an allow-listed device's payload in, a verdict and
its measurements out. Repeats are told apart per device by the BTHome packet id, the BTHome
encryption counter (`ReplayGuard`, which also refuses replays and downgrades) and the Ruuvi
measurement sequence; `min_interval_s` then limits the rate of what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from drivers import bthome, ruuvi
from drivers.base import DecodeError, Measurement
from drivers.ble import parse_mac
from drivers.bthome_replay import ReplayGuard
from gateway.config import BleDevice

BTHOME_UUID: Final = "0000fcd2-0000-1000-8000-00805f9b34fb"
RUUVI_COMPANY: Final = ruuvi.COMPANY_ID

Verdict: TypeAlias = Literal["forward", "duplicate", "rate_limited", "decode_error"]
_Checked: TypeAlias = tuple[Verdict, tuple[Measurement, ...]]


@dataclass(slots=True)
class DeviceState:
    """One allow-listed device: its config and what the last forwarded advert said."""

    config: BleDevice
    mac: bytes  # empty for a device allow-listed by its bind key alone
    key: bytes | None
    last_packet_id: int | None = None
    last_sequence: int | None = None
    last_forward_s: float | None = None
    last_error: str = field(default="")


def device_state(config: BleDevice) -> DeviceState:
    """A configured device's starting state, its address and bind key parsed once."""
    key = bytes.fromhex(config.bind_key) if config.bind_key else None
    return DeviceState(
        config=config, mac=parse_mac(config.address) if config.address else b"", key=key
    )


def is_encrypted_bthome(service_data: Mapping[str, bytes]) -> bool:
    """Whether an advert carries encrypted BTHome data (the only kind a bind key can claim)."""
    payload = service_data.get(BTHOME_UUID)
    return payload is not None and len(payload) > 0 and bool(payload[0] & bthome.INFO_ENCRYPTED)


def owner_by_key(keyed: list[DeviceState], mac: bytes, payload: bytes) -> DeviceState | None:
    """The key-only device whose bind key opens this advert (the AES-CCM tag proves it)."""
    for device in keyed:
        try:
            bthome.decode(payload, mac=mac, key=device.key)
        except DecodeError:
            continue
        return device
    return None


def payload_of(
    kind: str, service_data: Mapping[str, bytes], manufacturer_data: Mapping[int, bytes]
) -> bytes | None:
    """The bytes the device's decoder reads, or None if the advert carries none."""
    if kind == "bthome":
        return service_data.get(BTHOME_UUID)
    return manufacturer_data.get(RUUVI_COMPANY)


class AdvertFilter:
    """Decodes allow-listed adverts and drops repeats; one per source."""

    def __init__(self, *, monotonic_s: Callable[[], float]) -> None:
        self._monotonic_s = monotonic_s
        self._guard = ReplayGuard()

    def check(self, device: DeviceState, payload: bytes, *, mac: bytes = b"") -> _Checked:
        """`mac`: the advert's address, for devices allow-listed by key (it is in the nonce)."""
        try:
            if device.config.kind == "bthome":
                verdict, measurements = self._bthome(device, payload, mac or device.mac)
            else:
                verdict, measurements = self._ruuvi(device, payload)
        except DecodeError as error:
            device.last_error = str(error)
            return "decode_error", ()
        if verdict != "forward":
            return verdict, ()
        now, last = self._monotonic_s(), device.last_forward_s
        if last is not None and now - last < device.config.min_interval_s:
            return "rate_limited", ()
        device.last_forward_s = now
        return "forward", measurements

    def _bthome(self, device: DeviceState, payload: bytes, mac: bytes) -> _Checked:
        advert = bthome.decode(payload, mac=mac, key=device.key)
        guard = self._guard.check(device.config.name, advert, has_key=device.key is not None)
        if guard == "downgrade":
            raise DecodeError("unencrypted advert from a device with a bind key", offset=0)
        if guard == "replay":
            return "duplicate", ()
        if advert.packet_id is not None:
            if advert.packet_id == device.last_packet_id:
                return "duplicate", ()
            device.last_packet_id = advert.packet_id
        return "forward", advert.measurements

    def _ruuvi(self, device: DeviceState, payload: bytes) -> _Checked:
        frame = ruuvi.decode(payload)
        if frame.sequence is not None:
            if frame.sequence == device.last_sequence:
                return "duplicate", ()
            device.last_sequence = frame.sequence
        return "forward", frame.measurements
