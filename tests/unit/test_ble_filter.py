"""The BLE source's pure parts: the allow-list in the scanner callback, decoding and repeats."""

from __future__ import annotations

from typing import Any

from drivers import bthome
from gateway.config import BleDevice, BleSourceConfig
from gateway.sources.ble import source as ble_source
from gateway.sources.ble.filter import BTHOME_UUID, AdvertFilter, device_state
from gateway.sources.ble.source import BleSource as Source
from gateway.system.clock import WallClock

KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
MAC = "54:48:E6:8F:80:A5"
RUUVI_DF5 = bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def plain(packet_id: int | None, centi_c: int) -> bytes:
    pid = b"" if packet_id is None else bytes((0x00, packet_id))
    return b"\x40" + pid + b"\x02" + centi_c.to_bytes(2, "little", signed=True)


def values(result: tuple[str, Any]) -> list[float]:
    return [m.value for m in result[1]]


def test_bthome_repeated_packet_id_is_a_duplicate_and_a_new_one_forwards() -> None:
    device, check = (
        device_state(BleDevice(name="t", address=MAC, kind="bthome")),
        AdvertFilter(monotonic_s=Clock()).check,
    )
    assert values(check(device, plain(7, 2150))) == [21.5]
    assert check(device, plain(7, 2150)) == ("duplicate", ())
    assert values(check(device, plain(8, 2150))) == [21.5]


def test_bthome_without_packet_id_forwards_every_advert() -> None:
    device, check = (
        device_state(BleDevice(name="t", address=MAC, kind="bthome")),
        AdvertFilter(monotonic_s=Clock()).check,
    )
    assert check(device, plain(None, 100))[0] == "forward"
    assert check(device, plain(None, 100))[0] == "forward"


def test_encrypted_counter_replay_wrong_key_and_downgrade() -> None:
    device = device_state(BleDevice(name="t", address=MAC, kind="bthome", bind_key=KEY.hex()))
    check = AdvertFilter(monotonic_s=Clock()).check
    mac = bytes.fromhex(MAC.replace(":", ""))

    def sealed(counter: int, key: bytes = KEY) -> bytes:
        return bthome.seal(b"\x02\x66\x08", mac=mac, key=key, counter=counter)

    assert values(check(device, sealed(5))) == [21.5]
    assert check(device, sealed(5))[0] == "duplicate"
    assert check(device, sealed(4))[0] == "duplicate"
    assert check(device, sealed(6, bytes(16)))[0] == "decode_error"
    assert "decryption failed" in device.last_error
    assert check(device, plain(1, 100))[0] == "decode_error"  # downgrade
    assert check(device, sealed(6))[0] == "forward"


def test_ruuvi_sequence_repeats_are_duplicates() -> None:
    device = device_state(BleDevice(name="r", address=MAC, kind="ruuvi"))
    check = AdvertFilter(monotonic_s=Clock()).check
    assert check(device, RUUVI_DF5)[0] == "forward"
    assert check(device, RUUVI_DF5) == ("duplicate", ())
    assert check(device, RUUVI_DF5[:16] + b"\x00\x01" + RUUVI_DF5[18:])[0] == "forward"
    assert check(device, b"\x05\x00")[0] == "decode_error"


def test_min_interval_rate_limits_per_device() -> None:
    clock = Clock()
    device = device_state(BleDevice(name="t", address=MAC, kind="bthome", min_interval_s=10))
    check = AdvertFilter(monotonic_s=clock).check
    assert check(device, plain(1, 100))[0] == "forward"
    clock.now_s = 9.9
    assert check(device, plain(2, 100)) == ("rate_limited", ())
    clock.now_s = 10.0
    assert check(device, plain(3, 100))[0] == "forward"


def make_source(**devices: str) -> Source:
    config = BleSourceConfig(
        name="ble",
        devices=[
            BleDevice(name=name, address=address, kind="bthome")
            for name, address in devices.items()
        ],
    )
    return Source(config, clock=WallClock(synced=lambda: True))


def test_the_callback_drops_unlisted_devices_before_queueing_anything() -> None:
    source = make_source(kerb=MAC)
    source._on_advert("11:22:33:44:55:66", {BTHOME_UUID: plain(1, 1)}, {})
    source._on_advert(MAC.lower(), {BTHOME_UUID: plain(1, 1)}, {})
    source._on_advert(MAC, {}, {0x004C: b"\x02\x15"})  # nothing for its decoder
    assert source.stats.adverts_seen == 3
    assert source.stats.adverts_dropped_not_allowed == 1
    assert source._queue.qsize() == 1
    assert "11:22:33" not in repr(source.stats.as_dict())


def test_a_full_queue_drops_and_counts() -> None:
    source = make_source(kerb=MAC)
    for n in range(ble_source.QUEUE_MAX + 5):
        source._on_advert(MAC, {BTHOME_UUID: plain(n % 256, 1)}, {})
    assert source._queue.qsize() == ble_source.QUEUE_MAX
    assert source.stats.adverts_dropped_queue_full == 5
