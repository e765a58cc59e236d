"""Screening a message on a config topic: cheap, before it waits, is written or reported.

Anyone allowed on the broker can publish to the config topics, so everything that fails here
is counted as junk by `kind` (the rule it broke, never a value the sender chose): oversized,
not JSON, not an envelope, unsigned, signed by an untrusted key, a bad signature, a body
nested too deep or of the wrong shape, addressed to another gateway or group. What passes is
signed by a trusted key and meant for this gateway; whether it is fresh the channel decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.remote import signing

if TYPE_CHECKING:  # PyNaCl is reached through signing.py only
    from nacl.signing import VerifyKey


class Rejected(Exception):
    """A push refused; the message is the reason in the state report, `kind` the rule (the
    log's rate limit and the junk counters key on it, never on what the sender chose)."""

    def __init__(self, message: str, *, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


def screen(
    payload: bytes,
    *,
    trusted: dict[str, VerifyKey],
    max_payload_bytes: int,
    gateway_id: str,
    groups: list[str],
) -> signing.Envelope:
    """The verified envelope, if the payload is one for this gateway; Rejected if not."""
    if len(payload) > max_payload_bytes:
        raise Rejected(
            f"payload of {len(payload)} bytes exceeds max_payload_bytes {max_payload_bytes}",
            kind="oversized",
        )
    try:
        envelope = signing.verify(payload, trusted)
    except signing.EnvelopeError as error:
        raise Rejected(str(error), kind=error.kind) from None
    target = envelope.target
    if "gateway" in target and target["gateway"] != gateway_id:
        raise Rejected(
            f"addressed to gateway {target['gateway'][:64]!r}, this is {gateway_id!r}",
            kind="misaddressed",
        )
    if "group" in target and target["group"] not in groups:
        raise Rejected(
            f"addressed to group {target['group'][:64]!r}, which this gateway is not in",
            kind="misaddressed",
        )
    return envelope


def stale_reason(envelope: signing.Envelope, floor: int) -> str:
    """Why a push whose version is not above `floor` is refused."""
    if envelope.kind == "keys":
        return (
            f"key rotation version {envelope.version} is not newer than {floor} (stale or replayed)"
        )
    return (
        f"version {envelope.version} is not newer than {floor} (the version "
        "in force or last refused): stale or replayed"
    )
