"""Text lines from a byte stream: the framing of the line-based serial codecs (OPS243).

`feed(bytes)` returns the complete lines (ended by LF; a CR before it stays on the line, the
codec strips it). A byte that cannot be in a text line (not printable ASCII, CR or LF) is
skipped together with everything before it on its line, so a line after noise is still found;
a line longer than `max_line` is dropped to its end. Never raises; at most `max_line` bytes stay
pending; skipped bytes are counted in `stats`.
"""

from __future__ import annotations

from drivers.base import StreamStats

_TEXT = bytes((*range(0x20, 0x7F), 0x0D))


class LineSplitter:
    """Splits a stream into text lines, skipping noise (see the module docstring)."""

    __slots__ = ("_buf", "_discarding", "max_line", "stats")

    def __init__(self, max_line: int, stats: StreamStats | None = None) -> None:
        self.max_line = max_line
        self.stats = StreamStats() if stats is None else stats
        self._buf = b""
        self._discarding = False

    @property
    def pending(self) -> int:
        """Bytes of a line still waiting for its LF."""
        return len(self._buf)

    def _clean(self, part: bytes) -> tuple[bytes, bool]:
        """`part` after its last noise byte (the rest counted as skipped); whether it had any."""
        noise = part.translate(None, _TEXT)
        if not noise:
            return part, False
        last = max(part.rfind(bytes((byte,))) for byte in set(noise))
        self.stats.skipped_bytes += last + 1
        return part[last + 1 :], True

    def feed(self, data: bytes) -> list[bytes]:
        """The lines `data` completes, without their LF."""
        buf = self._buf + data
        lines: list[bytes] = []
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            line, start = buf[start:end], end + 1
            if self._discarding:  # the end of a line that was too long
                self._discarding = False
                self.stats.skipped_bytes += len(line) + 1
                continue
            line, noisy = self._clean(line)
            if noisy and not line.rstrip(b"\r"):
                self.stats.skipped_bytes += len(line) + 1
                continue
            lines.append(line)
        rest, _ = self._clean(buf[start:])
        if len(rest) > self.max_line:
            self.stats.skipped_bytes += len(rest)
            rest, self._discarding = b"", True
        self._buf = rest
        return lines
