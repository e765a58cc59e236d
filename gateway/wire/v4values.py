"""Wire v4's value model: how a reading's value is predicted and coded (docs/protocol.md).

Encoder and decoder keep the same state: per series its decimals and previous scaled value in
this message; per quantity the decimals of its series, latest first, and the sum and count of
its values so far (of any series at any decimals). A series' decimals are coded by their place
in that recency list; a value as the zigzag difference to its prediction, with an adaptive
Exp-Golomb code: the series' previous value (one context for all repeats), else the mean of the
quantity's values so far at this series' decimals (a context per quantity), else 0.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from gateway.readings import StoredReading
from gateway.wire.bits import Adaptive, BitReader, BitWriter
from gateway.wire.codec import MAX_DECIMALS, MAX_EXACT, WireError, scaled_integer, unzigzag, zigzag
from gateway.wire.codec import decimals as exact_decimals

RAW = 15  # decimals code: the series' values travel as IEEE 754 float64 (NaN, inf, -0.0, ...)


def decimals(value: float) -> int:
    """Decimal places that represent `value` exactly, or RAW (float64)."""
    places = exact_decimals(value)
    return RAW if places is None else places


def series_decimals(batch: Sequence[StoredReading]) -> dict[int, int]:
    """Per series, the decimals all its values in this batch need (RAW if one needs float64)."""
    places: dict[int, int] = {}
    largest: dict[int, float] = {}
    for _, _, alias, value, _ in batch:
        current = places.get(alias, 0)
        if current != RAW:
            places[alias] = max(current, decimals(value))
            largest[alias] = max(largest.get(alias, 0.0), abs(value))
    for alias, scale in places.items():  # more decimals may push a large value past 2**53
        if scale != RAW and largest[alias] * 10**scale >= MAX_EXACT:
            places[alias] = RAW
    return places


def _remember(recent: list[int], scale: int) -> None:
    """Move `scale` to the front of a recency list."""
    if scale in recent:
        recent.remove(scale)
    recent.insert(0, scale)


def put_decimals(bits: BitWriter, recent: list[int], scale: int) -> None:
    """Decimals by their place in a recency list: '1' the latest, '01' the one before (with
    two known), else a 0 or '00' escape and 4 bits (4 bits alone when none is known)."""
    if recent:
        if scale == recent[0]:
            bits.put(1, 1)
            return
        if len(recent) > 1:
            bits.put(int(scale == recent[1]), 2)
            if scale == recent[1]:
                return
        else:
            bits.put(0, 1)
    bits.put(scale, 4)


def get_decimals(bits: BitReader, recent: list[int]) -> int:
    """The decimals `put_decimals` wrote."""
    if recent:
        if bits.get(1):
            return recent[0]
        if len(recent) > 1 and bits.get(1):
            return recent[1]
    return bits.get(4)


def rescale(scaled: int, from_scale: int, to_scale: int) -> int:
    """A scaled value at other decimals (floor when dropping digits); 0 if beyond 2**53."""
    if to_scale >= from_scale:
        scaled *= 10 ** (to_scale - from_scale)
    else:
        scaled //= 10 ** (from_scale - to_scale)
    return scaled if -MAX_EXACT < scaled < MAX_EXACT else 0


class ValueContexts:
    """The adaptive codes of the values: repeats of a series, first values per quantity."""

    __slots__ = ("delta", "first", "fresh")

    def __init__(self) -> None:
        self.delta = Adaptive(64)
        self.first: dict[str, Adaptive] = {}
        self.fresh: dict[str, Adaptive] = {}

    def first_of(self, quantity: str, known: bool) -> Adaptive:
        """The context of a series' first value: predicted from its quantity, or from 0."""
        table, mean = (self.first, 64) if known else (self.fresh, 1024)
        context = table.get(quantity)
        if context is None:
            context = table[quantity] = Adaptive(mean)
        return context


class Values:
    """The value prediction, the same in the encoder and the decoder."""

    __slots__ = ("ctx", "last", "quantity_sum", "recent", "recent_any", "scales")

    def __init__(self) -> None:
        self.ctx = ValueContexts()
        self.last: dict[int, int] = {}
        self.quantity_sum: dict[str, tuple[int, int]] = {}  # at MAX_DECIMALS, and a count
        self.recent: dict[str, list[int]] = {}  # per quantity, its series' decimals, latest first
        self.recent_any: list[int] = []  # the same over all quantities
        self.scales: dict[int, int] = {}

    def _recent(self, quantity: str) -> list[int]:
        return self.recent.get(quantity, self.recent_any)

    def _new_scale(self, alias: int, quantity: str, scale: int) -> None:
        self.scales[alias] = scale
        _remember(self.recent.setdefault(quantity, []), scale)
        _remember(self.recent_any, scale)

    def _context(self, alias: int, quantity: str, scale: int) -> tuple[int, Adaptive]:
        if alias in self.last:
            return self.last[alias], self.ctx.delta
        total = self.quantity_sum.get(quantity)
        if total is None:
            return 0, self.ctx.first_of(quantity, False)
        mean = total[0] // total[1]
        return rescale(mean, MAX_DECIMALS, scale), self.ctx.first_of(quantity, True)

    def _remember(self, alias: int, quantity: str, scaled: int, scale: int) -> None:
        self.last[alias] = scaled
        total, count = self.quantity_sum.get(quantity, (0, 0))
        self.quantity_sum[quantity] = (total + scaled * 10 ** (MAX_DECIMALS - scale), count + 1)

    def put(self, bits: BitWriter, alias: int, quantity: str, scale: int, value: float) -> None:
        """Append one value of series `alias` (at its decimals `scale` in this message)."""
        if alias not in self.scales:
            put_decimals(bits, self._recent(quantity), scale)
            self._new_scale(alias, quantity, scale)
        if scale == RAW:
            bits.put(int.from_bytes(struct.pack(">d", value), "big"), 64)
            return
        scaled = scaled_integer(value, scale)
        prediction, context = self._context(alias, quantity, scale)
        bits.golomb(zigzag(scaled - prediction), context)
        self._remember(alias, quantity, scaled, scale)

    def get(self, bits: BitReader, alias: int, quantity: str) -> float:
        """The next value of series `alias`, as `put` wrote it; WireError if out of range."""
        scale = self.scales.get(alias)
        if scale is None:
            scale = get_decimals(bits, self._recent(quantity))
            self._new_scale(alias, quantity, scale)
        if scale == RAW:
            value: float = struct.unpack(">d", bits.get(64).to_bytes(8, "big"))[0]
            return value
        if scale > MAX_DECIMALS:
            raise WireError(f"v4 series {alias} has {scale} decimals")
        prediction, context = self._context(alias, quantity, scale)
        scaled = prediction + unzigzag(bits.golomb(context))
        if not -MAX_EXACT < scaled < MAX_EXACT:
            raise WireError(f"v4 series {alias}: a scaled value beyond 2**53")
        self._remember(alias, quantity, scaled, scale)
        return scaled / 10**scale if scale else float(scaled)
