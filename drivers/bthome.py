"""BTHome v2 advertisements: the service data under UUID 0xFCD2, decoded to measurements (sans-IO).

Service data as a scanner delivers it (after the UUID `D2 FC`):

    info | [MAC, 6 bytes, reversed]? | objects                                    (bit 0 clear)
    info | [MAC, 6 bytes, reversed]? | AES-CCM(objects) | counter u32le | MIC 4   (bit 0 set)

info byte: bit 0 encrypted, bit 2 trigger-based device, bits 5-7 version (must be 2). Bit 1 is
reserved in bthome.io; bthome-ble reads it as "the MAC follows", and so do we. Objects: an id, then
a little-endian value laid out as `bthome_objects.OBJECTS` says; a receiver stops at the first
unknown id. Encryption: AES-128-CCM, nonce = MAC (display order) | D2 FC | info | counter bytes,
4-byte MIC, no associated data. Replay and downgrade checks need state: `bthome_replay`.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from drivers import aes_ccm
from drivers.base import DecodeError, Measurement
from drivers.bthome_objects import BUTTON_EVENTS, DIMMER_SIGN, OBJECTS, Kind, ObjectType

UUID16: Final = 0xFCD2
INFO_ENCRYPTED: Final = 0x01
INFO_MAC_INCLUDED: Final = 0x02
INFO_TRIGGER_BASED: Final = 0x04
VERSION: Final = 2
MAC_LEN: Final = 6
COUNTER_LEN: Final = 4
_UUID_WIRE: Final = UUID16.to_bytes(2, "little")
_MEASURED: Final[frozenset[Kind]] = frozenset(("sensor", "binary", "button", "dimmer"))


class KeyRequired(DecodeError):
    """An encrypted advert and no bind key (or no MAC for the nonce) to open it."""


@dataclass(frozen=True, slots=True)
class Advert:
    """One decoded BTHome advert. `counter` is the encryption counter (None when unencrypted);
    `mac` is the MAC carried in the payload (info bit 1), not the sender's address."""

    measurements: tuple[Measurement, ...]
    packet_id: int | None = None
    encrypted: bool = False
    counter: int | None = None
    trigger_based: bool = False
    mac: bytes | None = None
    texts: tuple[str, ...] = ()
    raw: tuple[bytes, ...] = ()
    commands: tuple[bytes, ...] = ()
    device_type: int | None = None
    firmware: str | None = None


@dataclass(slots=True)
class _Parts:
    """What the objects of one advert add up to, before it is frozen into an Advert."""

    measurements: list[Measurement] = field(default_factory=list)
    packet_id: int | None = None
    texts: list[str] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    commands: list[bytes] = field(default_factory=list)
    device_type: int | None = None
    firmware: str | None = None


def _quantity(stem: str, obj: ObjectType) -> str:
    return f"{stem}_{obj.suffix}" if obj.suffix else stem


def _sensor(parts: _Parts, obj: ObjectType, body: bytes, stem: str) -> None:
    raw = int.from_bytes(body, "little", signed=obj.signed)
    value = raw * obj.num / obj.den if obj.den != 1 else raw * obj.num
    parts.measurements.append(Measurement(_quantity(stem, obj), value, obj.unit))


def _binary(parts: _Parts, obj: ObjectType, body: bytes, stem: str) -> None:
    parts.measurements.append(Measurement(stem, 1 if body[0] else 0, obj.unit))


def _button(parts: _Parts, obj: ObjectType, body: bytes, stem: str) -> None:
    if body[0] in BUTTON_EVENTS:
        parts.measurements.append(Measurement(stem, body[0], obj.unit))


def _dimmer(parts: _Parts, obj: ObjectType, body: bytes, stem: str) -> None:
    sign = DIMMER_SIGN.get(body[0])
    if sign is not None:
        parts.measurements.append(Measurement(stem, sign * body[1], obj.unit))


def _packet_id(parts: _Parts, obj: ObjectType, body: bytes, stem: str) -> None:
    parts.packet_id = body[0]


def _text(parts: _Parts, obj: ObjectType, body: bytes, stem: str) -> None:
    with contextlib.suppress(UnicodeDecodeError):  # the spec says: drop invalid UTF-8
        parts.texts.append(body[1:].decode("utf-8"))


def _raw(parts: _Parts, obj: ObjectType, body: bytes, stem: str) -> None:
    parts.raw.append(body[1:])


def _command(parts: _Parts, obj: ObjectType, body: bytes, stem: str) -> None:
    parts.commands.append(body[1:])  # opcode, then its arguments


def _device_type(parts: _Parts, obj: ObjectType, body: bytes, stem: str) -> None:
    parts.device_type = int.from_bytes(body, "little")


def _firmware(parts: _Parts, obj: ObjectType, body: bytes, stem: str) -> None:
    parts.firmware = ".".join(str(part) for part in reversed(body))


_APPLY: Final[dict[Kind, Callable[[_Parts, ObjectType, bytes, str], None]]] = {
    "sensor": _sensor,
    "binary": _binary,
    "button": _button,
    "dimmer": _dimmer,
    "packet_id": _packet_id,
    "text": _text,
    "raw": _raw,
    "command": _command,
    "device_type": _device_type,
    "firmware": _firmware,
}


def _split_objects(payload: bytes, base: int) -> list[tuple[ObjectType, bytes]]:
    """(type, bytes after the id) for each object up to the first unknown id. `base` is where
    `payload` starts in the advert, for the offsets in errors."""
    objects: list[tuple[ObjectType, bytes]] = []
    i, n = 0, len(payload)
    while i < n:
        obj = OBJECTS.get(payload[i])
        if obj is None:
            break
        start = i + 1
        end = start + obj.size
        if obj.length_mask and end <= n:
            end += payload[start] & obj.length_mask
        if end > n:
            raise DecodeError(
                f"object 0x{payload[i]:02x} ({obj.name}) needs {end - start} bytes, "
                f"{n - start} left",
                offset=base + i,
            )
        objects.append((obj, payload[start:end]))
        i = end
    return objects


def _group(obj: ObjectType) -> tuple[Kind, str, str]:
    return obj.kind, obj.name, obj.suffix


def _parts(objects: list[tuple[ObjectType, bytes]]) -> _Parts:
    """Apply each object. A quantity (kind, name and unit) that repeats among the measured kinds is
    numbered from 1, as bthome-ble numbers its keys; `mass_kg` and `mass_lb` are not numbered."""
    totals = Counter(_group(obj) for obj, _ in objects if obj.kind in _MEASURED)
    seen: Counter[tuple[Kind, str, str]] = Counter()
    parts = _Parts()
    for obj, body in objects:
        group = _group(obj)
        seen[group] += 1
        stem = f"{obj.name}_{seen[group]}" if totals[group] > 1 else obj.name
        _APPLY[obj.kind](parts, obj, body, stem)
    return parts


def _nonce(mac: bytes, info: int, counter: bytes) -> bytes:
    return mac + _UUID_WIRE + bytes((info,)) + counter


def _open(data: bytes, start: int, *, mac: bytes | None, key: bytes | None) -> tuple[bytes, int]:
    """The plaintext objects and the counter of an encrypted advert whose ciphertext starts at
    `start`."""
    if key is None:
        raise KeyRequired("encrypted advert: a bind key is needed to read it", offset=0)
    if mac is None:
        raise KeyRequired("encrypted advert: the device MAC is needed for the nonce", offset=0)
    end = len(data) - COUNTER_LEN - aes_ccm.MIC_LEN
    if end < start:
        raise DecodeError(
            f"encrypted advert is {len(data)} bytes, too short for a counter and a MIC",
            offset=len(data),
        )
    counter, mic = data[end : end + COUNTER_LEN], data[end + COUNTER_LEN :]
    plain = aes_ccm.decrypt(key, _nonce(mac, data[0], counter), data[start:end] + mic)
    if plain is None:
        raise DecodeError(
            "decryption failed: wrong bind key or MAC, or a corrupted advert",
            offset=end + COUNTER_LEN,
        )
    return plain, int.from_bytes(counter, "little")


def _mac_bytes(mac: bytes) -> bytes:
    if len(mac) != MAC_LEN:
        raise ValueError(f"a MAC address has {MAC_LEN} bytes, got {len(mac)}")
    return bytes(mac)


def decode(data: bytes, *, mac: bytes | None = None, key: bytes | None = None) -> Advert:
    """Decode one advert's service data. `mac` (6 bytes, display order) and `key` (16 bytes) are
    needed for encrypted adverts only. DecodeError (KeyRequired without key or MAC) if invalid;
    ValueError if `mac` or `key` has the wrong length."""
    data = bytes(data)
    mac = None if mac is None else _mac_bytes(mac)
    if key is not None and len(key) != aes_ccm.KEY_LEN:
        raise ValueError(f"a bind key has {aes_ccm.KEY_LEN} bytes, got {len(key)}")
    if not data:
        raise DecodeError("empty service data", offset=0)
    info = data[0]
    if info >> 5 != VERSION:
        raise DecodeError(f"BTHome version {info >> 5}, expected {VERSION}", offset=0)
    start, payload_mac = 1, None
    if info & INFO_MAC_INCLUDED:
        start = 1 + MAC_LEN
        if len(data) < start:
            raise DecodeError("advert ends inside its MAC", offset=len(data))
        payload_mac = data[1:start][::-1]
    encrypted = bool(info & INFO_ENCRYPTED)
    payload, counter = data[start:], None
    if encrypted:
        payload, counter = _open(data, start, mac=payload_mac or mac, key=key)
    parts = _parts(_split_objects(payload, start))
    return Advert(
        measurements=tuple(parts.measurements),
        packet_id=parts.packet_id,
        encrypted=encrypted,
        counter=counter,
        trigger_based=bool(info & INFO_TRIGGER_BASED),
        mac=payload_mac,
        texts=tuple(parts.texts),
        raw=tuple(parts.raw),
        commands=tuple(parts.commands),
        device_type=parts.device_type,
        firmware=parts.firmware,
    )


def decode_plain(data: bytes) -> Advert:
    """`decode` without a key: what the registry's one-argument `decode_frame` calls."""
    return decode(data)


def seal(
    objects: bytes, *, mac: bytes, key: bytes, counter: int, trigger_based: bool = False
) -> bytes:
    """The service data of an encrypted advert carrying `objects` (for tests and simulators)."""
    info = (VERSION << 5) | INFO_ENCRYPTED | (INFO_TRIGGER_BASED if trigger_based else 0)
    counter_bytes = counter.to_bytes(COUNTER_LEN, "little")
    sealed = aes_ccm.encrypt(key, _nonce(_mac_bytes(mac), info, counter_bytes), objects)
    return bytes((info,)) + sealed[: -aes_ccm.MIC_LEN] + counter_bytes + sealed[-aes_ccm.MIC_LEN :]
