"""The wire bytes do not change when the code around them does.

The hex strings below were produced by the encoders before they moved into gateway/wire/ and
shared one codec module (commit b7161c7, gateway/wire2.py and wire3.py); a refactor that
changes a single bit fails here, and so would every hub that decodes these formats. V4 is
what gateway/wire/v4.py wrote when v4 was added (branch wire4).
"""

from __future__ import annotations

import math

from gateway import wire
from gateway.readings import Series

NAMES = {
    0: Series("pm-north", "pm2_5", "ug/m3"),
    1: Series("pm-north", "pm10", "ug/m3"),
    2: Series("kerb", "temperature", "Cel"),
    3: Series("kerb", "humidity", "%"),
}
# Gaps in the sequence, a shared timestamp, milliseconds, unsynced-clock flags, NaN and -0.0.
BATCH = [
    (101, 1_700_000_000_250, 0, 3.4, 0),
    (102, 1_700_000_000_250, 1, 7.1, 0),
    (103, 1_700_000_001_250, 0, 3.5, 0),
    (104, 1_700_000_001_250, 1, 7.0, 0),
    (106, 1_700_000_003_250, 2, 12.25, 1),
    (107, 1_700_000_003_250, 3, 81.0, 1),
    (108, 1_700_000_004_250, 2, float("nan"), 0),
    (109, 1_700_000_004_250, 3, -0.0, 0),
]
V3 = (
    "03172a650880c49fd50cfa01e807031130c8e9885a0a68bd00a2000000000003fd015100000000000269ffe0"
    "000000000003400000000000000000"
)
V4 = (
    "472a656553f100fa01f14003111e472161383a2cf4028800000000000fa02a200000000000255ffe0000000000"
    "001c0000000000000000"
)
V2 = (
    "9a022a65ce6553f100ccfacd03e89800010101027f037f9292040192050101c42ee36000024610c1c0c4c002"
    "c4400e23133313b34b1f2313e369078d06b0dc6987100708a3fe070384019160600000"
)


def encode(version: int) -> bytes:
    return wire.encode_data(
        version, gateway_id="gw", epoch=42, batch=BATCH, series_of=NAMES.__getitem__
    )


def test_v3_bytes_are_those_of_the_encoder_before_the_refactor() -> None:
    assert encode(3).hex() == V3


def test_v2_bytes_are_those_of_the_encoder_before_the_refactor() -> None:
    assert encode(2).hex() == V2


def test_v4_bytes_are_those_of_its_first_release() -> None:
    assert encode(4).hex() == V4


def test_the_dispatch_decodes_each_back_to_the_batch() -> None:
    for version in (2, 3, 4):
        readings = list(
            wire.decode_data(encode(version), gateway="gw", series_tables=lambda epoch: NAMES)
        )
        assert [(r.seq, r.ts_ms) for r in readings] == [(s, t) for s, t, *_ in BATCH]
        assert [r.clock_synced for r in readings] == [not f for *_, f in BATCH]
        for reading, (_, _, sid, value, _) in zip(readings, BATCH, strict=True):
            assert reading.quantity == NAMES[sid].quantity
            if math.isnan(value):
                assert math.isnan(reading.value)
            else:
                assert reading.value == value
                assert math.copysign(1, reading.value) == math.copysign(1, value)


def test_the_dispatch_tells_the_formats_apart_by_their_first_byte() -> None:
    v1 = wire.encode_data(1, gateway_id="gw", epoch=42, batch=BATCH, series_of=NAMES.__getitem__)
    assert [wire.version_of(p) for p in (v1, encode(2), encode(3), encode(4))] == [1, 2, 3, 4]


def test_a_value_whose_scaled_float_rounds_the_wrong_way_still_comes_back_exactly() -> None:
    # 2**45 + 0.23 has two decimals, but its float times 100 rounds to ...22 (found by
    # hypothesis in test_wire3); each value of the series must come back bit for bit.
    values = [2**45 + 0.23, 5.5, 0.1 + 0.2, 2**44 + 0.07]
    batch = [(seq, 1_000 * seq, 0, value, 0) for seq, value in enumerate(values, start=1)]
    for version in (2, 3, 4):
        payload = wire.encode_data(
            version, gateway_id="gw", epoch=1, batch=batch, series_of=NAMES.__getitem__
        )
        decoded = wire.decode_data(payload, gateway="gw", series_tables=lambda epoch: NAMES)
        assert [r.value for r in decoded] == values, f"v{version}"
