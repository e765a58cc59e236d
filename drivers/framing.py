"""The resynchronising scan that the head-delimited serial codecs (SDS011, PMS5003) share.

A frame starts with `head`; `probe` tells from the first bytes whether a frame can start there
and how long it is; `decode_at` checks and decodes it. Bytes that cannot start a frame are
skipped one at a time, so a frame hidden behind noise or a corrupt frame is still found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from drivers.base import DecodeError, StreamStats

F = TypeVar("F")

NEED_MORE = -1
"""`probe`: not enough bytes yet to tell."""
NOT_A_FRAME = 0
"""`probe`: no frame starts here; skip one byte."""


def scan(
    buf: bytes,
    head: bytes,
    probe: Callable[[bytes, int], int],
    decode_at: Callable[[bytes, int], F],
    stats: StreamStats,
) -> tuple[list[F], int]:
    """The frames in `buf` and how many bytes were used up; the rest waits for more data.
    Counts frames, frame-shaped garbage (`bad_frames`) and skipped bytes. Never raises."""
    n, pos = len(buf), 0
    frames: list[F] = []
    while True:
        i = buf.find(head, pos)
        if i < 0:  # keep a trailing part of the head: the rest may come next
            keep = next(
                (k for k in range(len(head) - 1, 0, -1) if n - pos >= k and buf.endswith(head[:k])),
                0,
            )
            stats.skipped_bytes += n - pos - keep
            return frames, n - keep
        stats.skipped_bytes += i - pos
        pos = i
        length = probe(buf, i)
        if length == NEED_MORE or n - i < length:
            return frames, pos
        if length == NOT_A_FRAME:
            stats.skipped_bytes += 1
            pos = i + 1
            continue
        try:
            frame = decode_at(buf, i)
        except DecodeError:
            stats.bad_frames += 1
            stats.skipped_bytes += 1
            pos = i + 1
            continue
        frames.append(frame)
        stats.frames += 1
        pos = i + length
