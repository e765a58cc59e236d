"""BTHome v2 advertisements: objects packed as bthome.io lays them out, plain or AES-CCM sealed.

`objects(readings)` packs the readings the node knows (ascending object ids, as the spec asks);
`service_data(objs, ...)` is what goes after the UUID; `advert(data)` is the whole AD payload
(Flags 02 01 06, then Service Data 16-bit UUID 0xFCD2). Encryption: AES-128-CCM, 4-byte MIC,
no associated data, nonce = MAC (display order) | D2 FC | info | counter u32le, built on
`cryptolib.aes(key, 1)` (ECB) as the block cipher.
"""

import struct

from micropython import const

INFO_PLAIN = const(0x40)
INFO_ENCRYPTED = const(0x41)
# 31 bytes of legacy advertising - Flags (3) - service data header (4) - info byte (1)
MAX_OBJECTS_PLAIN = const(23)
MAX_OBJECTS_ENCRYPTED = const(15)  # the counter and the MIC take 8 more

# quantity -> (object id, struct format, factor); sorted by id when packed.
OBJECTS = {
    "packet_id": (0x00, "<B", 1),
    "battery_pct": (0x01, "<B", 1),
    "temperature_c": (0x02, "<h", 100),
    "humidity_pct": (0x03, "<H", 100),
    "pressure_hpa": (0x04, "<I", 100),  # u24: the low 3 bytes are sent
    "supply_v": (0x0C, "<H", 1000),
    "pm2_5_ugm3": (0x0D, "<H", 1),
    "pm10_ugm3": (0x0E, "<H", 1),
}
_LIMITS = {"<B": (0, 0xFF), "<h": (-0x8000, 0x7FFF), "<H": (0, 0xFFFF), "<I": (0, 0xFFFFFF)}


def _items(readings: "list[tuple[str, float, str]]") -> "list[tuple[int, bytes]]":
    """(object id, object bytes) for each reading BTHome can carry, in ascending id order."""
    items = []
    for reading in readings:
        quantity, value = reading[0], reading[1]
        spec = OBJECTS.get(quantity)
        if spec is None or quantity == "packet_id":
            continue
        low, high = _LIMITS[spec[1]]
        packed = struct.pack(spec[1], min(max(round(value * spec[2]), low), high))
        items.append((spec[0], bytes((spec[0],)) + (packed[:3] if spec[1] == "<I" else packed)))
    items.sort(key=lambda item: item[0])
    return items


def objects(readings: "list[tuple[str, float, str]]", packet_id: "int | None" = None) -> bytes:
    """The object bytes for the readings BTHome can carry; others are left out."""
    head = b"" if packet_id is None else bytes((0x00, packet_id & 0xFF))
    return head + b"".join(obj for _oid, obj in _items(readings))


def split(
    readings: "list[tuple[str, float, str]]", first_packet_id: int, encrypted: bool
) -> "list[bytes]":
    """Object bytes for as many adverts as the readings need: each starts with its own packet id
    and fits a legacy advert (23 object bytes plain, 15 encrypted)."""
    room = MAX_OBJECTS_ENCRYPTED if encrypted else MAX_OBJECTS_PLAIN
    chunks = []
    current = bytearray()
    for _oid, obj in _items(readings):
        if not current or len(current) + len(obj) > room:
            if current:
                chunks.append(bytes(current))
            current = bytearray((0x00, (first_packet_id + len(chunks)) & 0xFF))
        current.extend(obj)
    if not current:
        current = bytearray((0x00, first_packet_id & 0xFF))
    chunks.append(bytes(current))
    return chunks


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def ccm_encrypt(aes: "object", nonce: bytes, plain: bytes) -> bytes:
    """AES-CCM (M=4, L=2, no associated data): ciphertext + 4-byte MIC. `aes` encrypts blocks."""
    enc = aes.encrypt  # type: ignore[attr-defined]
    n = len(plain)
    mac = enc(bytes((0x09,)) + nonce + struct.pack(">H", n))  # flags: M=4 -> 1<<3, L=2 -> 1
    for i in range(0, n, 16):
        mac = enc(_xor(mac, plain[i : i + 16] + bytes(16 - len(plain[i : i + 16]))))
    out = bytearray()
    for i in range(0, n, 16):
        stream = enc(bytes((0x01,)) + nonce + struct.pack(">H", i // 16 + 1))
        out.extend(_xor(plain[i : i + 16], stream))
    s0 = enc(bytes((0x01,)) + nonce + b"\x00\x00")
    return bytes(out) + _xor(mac[:4], s0[:4])


def service_data(
    objs: bytes, key: "bytes | None" = None, mac: "bytes | None" = None, counter: int = 0
) -> bytes:
    """Service data after the UUID: plain, or sealed with `key` (needs the 6-byte MAC)."""
    if key is None:
        return bytes((INFO_PLAIN,)) + objs
    if mac is None or len(mac) != 6 or len(key) != 16:
        raise ValueError("encryption needs a 16-byte key and the 6-byte MAC")
    import cryptolib

    counter_bytes = struct.pack("<I", counter & 0xFFFFFFFF)
    nonce = bytes(mac) + b"\xd2\xfc" + bytes((INFO_ENCRYPTED,)) + counter_bytes
    sealed = ccm_encrypt(cryptolib.aes(key, 1), nonce, objs)
    return bytes((INFO_ENCRYPTED,)) + sealed[:-4] + counter_bytes + sealed[-4:]


def advert(data: bytes) -> bytes:
    """The advertising payload: Flags (LE general discoverable, no BR/EDR), then service data."""
    if len(data) > 31 - 3 - 4:
        raise ValueError("BTHome advert too long for legacy advertising")
    return b"\x02\x01\x06" + bytes((len(data) + 3, 0x16, 0xD2, 0xFC)) + data
