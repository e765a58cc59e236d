"""BLE device addresses as the advertisement decoders take and give them: 6 bytes, display order."""

from __future__ import annotations

import re
from typing import Final

_MAC = re.compile(r"[0-9A-Fa-f]{2}(?:([:-]?)[0-9A-Fa-f]{2})(?:\1[0-9A-Fa-f]{2}){4}")
MAC_LEN: Final = 6


def parse_mac(text: str) -> bytes:
    """`54:48:E6:8F:80:A5`, `54-48-e6-8f-80-a5` or `5448E68F80A5` as 6 bytes in that order.

    ValueError for anything else.
    """
    text = text.strip()
    if not _MAC.fullmatch(text):
        raise ValueError(f"not a MAC address (want 6 hex bytes like 54:48:E6:8F:80:A5): {text!r}")
    return bytes.fromhex(text.replace(":", "").replace("-", ""))


def format_mac(mac: bytes) -> str:
    """6 bytes as lower-case `aa:bb:cc:dd:ee:ff` (the form Ruuvi's tables use)."""
    if len(mac) != MAC_LEN:
        raise ValueError(f"a MAC address has 6 bytes, got {len(mac)}")
    return mac.hex(":")
