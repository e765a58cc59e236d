"""BLE addresses: the forms `parse_mac` accepts, the one `format_mac` gives."""

from __future__ import annotations

import pytest

from drivers.ble import format_mac, parse_mac


@pytest.mark.parametrize("text", ["54:48:E6:8F:80:A5", "54-48-e6-8f-80-a5", "5448E68F80A5"])
def test_parse_mac_accepts_colons_dashes_or_bare_hex_in_display_order(text: str) -> None:
    assert parse_mac(text) == bytes.fromhex("5448e68f80a5")


@pytest.mark.parametrize(
    "text", ["", "54:48:E6:8F:80", "54:48-E6:8F:80:A5", "5448E68F80A5FF", "zz"]
)
def test_parse_mac_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        parse_mac(text)


def test_format_mac_gives_lower_case_with_colons_and_refuses_other_lengths() -> None:
    assert format_mac(bytes.fromhex("CBB8334C884F")) == "cb:b8:33:4c:88:4f"
    with pytest.raises(ValueError, match="6 bytes"):
        format_mac(b"\x00")
