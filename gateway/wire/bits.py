"""Bit streams with adaptive Exp-Golomb codes: what wire v3 is written in (docs/protocol.md)."""

from __future__ import annotations

from gateway.wire.codec import WireError

MAX_CODE_BITS = 80
"""The longest value a decoder reads (an encoder writes at most ~71 bits: 64-bit gaps and
steps, 54-bit values): longer codes would let a few bytes ask for ever larger numbers."""


class Adaptive:
    """The order k of an Exp-Golomb code, following the running mean of what it coded
    (as in LOCO-I); encoder and decoder update it the same way."""

    __slots__ = ("count", "total")

    def __init__(self, mean: int) -> None:
        self.total, self.count = mean, 1

    def k(self) -> int:
        """The smallest k with count * 2**k >= total."""
        ceiling = -(-self.total // self.count)
        return (ceiling - 1).bit_length() if ceiling > 1 else 0

    def update(self, u: int) -> None:
        """Take one coded number into the running mean (halved every 16, to adapt)."""
        self.total += u
        self.count += 1
        if self.count >= 16:
            self.total >>= 1
            self.count >>= 1


class Contexts:
    """One adaptive code per kind of number; first values of a series one per quantity."""

    __slots__ = ("delta", "first", "gap", "step")

    def __init__(self) -> None:
        self.gap, self.step, self.delta = Adaptive(1), Adaptive(4), Adaptive(64)
        self.first: dict[str, Adaptive] = {}

    def first_of(self, quantity: str) -> Adaptive:
        """The context for the first value of a series of `quantity`."""
        context = self.first.get(quantity)
        if context is None:
            context = self.first[quantity] = Adaptive(1024)
        return context


class BitWriter:
    """Bits appended most significant first; `finish` pads the last byte with zeros."""

    __slots__ = ("acc", "bits", "out")

    def __init__(self) -> None:
        self.out, self.acc, self.bits = bytearray(), 0, 0

    def put(self, value: int, width: int) -> None:
        """Append the low `width` bits of `value`."""
        self.acc = (self.acc << width) | value
        self.bits += width
        if self.bits >= 64:
            whole = self.bits >> 3
            rest = self.bits & 7
            self.out += (self.acc >> rest).to_bytes(whole, "big")
            self.acc &= (1 << rest) - 1
            self.bits = rest

    def golomb(self, u: int, context: Adaptive) -> None:
        """Append `u` >= 0 as an Exp-Golomb code of the context's order, then adapt it."""
        k = context.k()
        v = u + (1 << k)
        length = v.bit_length()
        self.put(v, 2 * length - k - 1)  # length-k-1 zeros, then v
        context.update(u)

    def finish(self) -> bytes:
        """Everything written, the last byte zero-padded."""
        if self.bits:
            pad = -self.bits % 8
            self.out += (self.acc << pad).to_bytes((self.bits + pad) >> 3, "big")
        return bytes(self.out)


class BitReader:
    """Reads what a BitWriter wrote, from byte `start`; WireError past the end."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, start: int) -> None:
        self.data, self.pos, self.end = data, start * 8, len(data) * 8

    def get(self, width: int) -> int:
        """The next `width` bits as an unsigned integer."""
        if self.pos + width > self.end:
            raise WireError("the data ends inside its bit stream")
        first, last = self.pos >> 3, (self.pos + width + 7) >> 3
        chunk = int.from_bytes(self.data[first:last], "big")
        shift = (last << 3) - self.pos - width
        self.pos += width
        return (chunk >> shift) & ((1 << width) - 1)

    def golomb(self, context: Adaptive) -> int:
        """The next Exp-Golomb coded number, adapting the context as the writer did."""
        k = context.k()
        zeros = 0
        while not self.get(1):
            zeros += 1
            if zeros + k >= MAX_CODE_BITS:
                raise WireError(f"Exp-Golomb code over {MAX_CODE_BITS} bits")
        length = zeros + k + 1
        if length > MAX_CODE_BITS:
            raise WireError(f"Exp-Golomb code over {MAX_CODE_BITS} bits")
        v = (1 << (length - 1)) | self.get(length - 1)
        u = v - (1 << k)
        context.update(u)
        return u
