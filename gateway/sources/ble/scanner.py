"""What the BLE source needs from a scanner: the seam between it and bleak (and tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, TypeAlias

OnAdvert: TypeAlias = Callable[[str, Mapping[str, bytes], Mapping[int, bytes]], None]
"""Called from the scanner's callback for each advert: (address as BlueZ gives it, service data
by 128-bit UUID string, manufacturer data by company id). It must not block or raise."""


class Scanner(Protocol):
    """One scan session on one adapter."""

    async def start(self) -> None:
        """Start scanning; raises if the adapter cannot scan (the source retries)."""
        ...

    async def stop(self) -> None:
        """Stop scanning and release the session; may raise once the adapter is gone."""
        ...

    async def adapter_ready(self) -> bool:
        """False once the adapter is gone or powered off (scanning has then stopped)."""
        ...


class ScannerFactory(Protocol):
    """Builds a scan session: bleak on BlueZ by default, a fake in tests."""

    def __call__(self, on_advert: OnAdvert, *, adapter: str, passive: bool) -> Scanner:
        """A new, not yet started session that calls `on_advert` for each advert."""
        ...


def default_scanner_factory(on_advert: OnAdvert, *, adapter: str, passive: bool) -> Scanner:
    """bleak on BlueZ, imported only when a BLE source runs (bleak is not small)."""
    from gateway.sources.ble.bluez import bleak_scanner

    return bleak_scanner(on_advert, adapter=adapter, passive=passive)
