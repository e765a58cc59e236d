"""AES-128-CCM with a 4-byte MIC and no associated data (BTHome v2), behind two functions.

`cryptography` is imported on first use, so a gateway without encrypted sensors never loads it
(import about 20 ms and 9 MiB RSS; see drivers/README.md for why this library).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

KEY_LEN: Final = 16
NONCE_LEN: Final = 13
MIC_LEN: Final = 4


@lru_cache(maxsize=64)
def _cipher(key: bytes) -> AESCCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

    return AESCCM(key, tag_length=MIC_LEN)


def _check(key: bytes, nonce: bytes) -> None:
    if len(key) != KEY_LEN:
        raise ValueError(f"an AES-128 key has {KEY_LEN} bytes, got {len(key)}")
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"the nonce has {NONCE_LEN} bytes, got {len(nonce)}")


def decrypt(key: bytes, nonce: bytes, sealed: bytes) -> bytes | None:
    """The plaintext of `ciphertext + MIC`, or None when the MIC does not verify."""
    from cryptography.exceptions import InvalidTag

    _check(key, nonce)
    try:
        return _cipher(bytes(key)).decrypt(nonce, sealed, None)
    except InvalidTag:
        return None


def encrypt(key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
    """`ciphertext + MIC` (for the simulator, the node firmware's tests and round trips)."""
    _check(key, nonce)
    return _cipher(bytes(key)).encrypt(nonce, plaintext, None)
