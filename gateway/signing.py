"""Signed config envelopes: Ed25519 keys, signing and verification (docs/remote-config.md).

An envelope is a small JSON object whose `signed` member is the exact JSON text that was signed,
so no canonicalisation is needed on either side: the gateway verifies the bytes it received, then
parses them. The signature covers a fixed context string plus those bytes, so a signature made
for something else (another protocol, a future envelope version) never verifies here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.config import ConfigError

ENVELOPE_TYPE = "citygw.config/1"
CONTEXT = b"citygw config envelope v1\x00"
KINDS = ("config", "patch", "keys")


class EnvelopeError(ValueError):
    """A payload that is not a valid, trusted envelope; the message is the reason reported."""


class KeyFileError(ConfigError):
    """A key file that cannot be read or is not an Ed25519 key."""

    what = "key"


def key_id(public: Ed25519PublicKey) -> str:
    """First 8 bytes of SHA-256 of the raw public key, in hex: short, stable, printable."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_raw_b64(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_from_b64(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise EnvelopeError("expected a base64 Ed25519 public key (32 bytes)") from None


def generate(out_dir: Path, name: str) -> tuple[Path, Path]:
    """Writes `<name>.key` (PKCS#8 PEM, mode 0600) and `<name>.pub` (PEM); refuses to overwrite."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def load_private(path: str | Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read: {error.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def load_public(path: str | Path) -> Ed25519PublicKey:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read: {error.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as error:
        raise KeyFileError(f"{path}: not a PEM public key ({error})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


@dataclass(frozen=True, slots=True)
class Envelope:
    """A verified envelope's body, parsed."""

    kind: str
    version: int
    issued_ms: int
    key_id: str
    body: dict[str, Any]
    digest: str
    """SHA-256 of the whole payload as received, hex: names one push in state reports."""

    @property
    def target(self) -> dict[str, str]:
        target: dict[str, str] = self.body.get("target") or {}
        return target


def sign(private: Ed25519PrivateKey, body: dict[str, Any]) -> bytes:
    """The exact payload to publish on `config/set` for this body."""
    signed = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    signature = private.sign(CONTEXT + signed.encode("ascii"))
    envelope = {"type": ENVELOPE_TYPE, "key_id": key_id(private.public_key()),
                "sig": base64.b64encode(signature).decode("ascii"), "signed": signed}
    return json.dumps(envelope, indent=None, separators=(",", ":")).encode("ascii")


def _json_object(text: str | bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise EnvelopeError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} must be a JSON object")
    return value


def _int_field(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise EnvelopeError(f"signed.{name}: expected a positive integer")
    return value


def verify(payload: bytes, trusted: dict[str, Ed25519PublicKey]) -> Envelope:
    """Checks the signature against the trusted keys (key id -> key), then parses the body."""
    document = _json_object(payload, "payload")
    if document.get("type") != ENVELOPE_TYPE:
        raise EnvelopeError(f"not a citygw config envelope (type must be {ENVELOPE_TYPE!r})")
    kid, sig, signed = document.get("key_id"), document.get("sig"), document.get("signed")
    if not isinstance(signed, str) or not isinstance(sig, str) or not isinstance(kid, str):
        raise EnvelopeError("unsigned: key_id, sig and signed are required")
    key = trusted.get(kid)
    if key is None:
        raise EnvelopeError(f"signed by key {kid[:16]!r}, which this gateway does not trust")
    try:
        key.verify(base64.b64decode(sig, validate=True), CONTEXT + signed.encode("utf-8"))
    except (InvalidSignature, binascii.Error, ValueError):
        raise EnvelopeError(f"bad signature (key {kid})") from None
    body = _json_object(signed, "signed")
    kind = body.get("kind")
    if kind not in KINDS:
        raise EnvelopeError(f"signed.kind: expected one of {', '.join(KINDS)}")
    target = body.get("target", {})
    if not isinstance(target, dict) or not set(target) <= {"gateway", "group"} or len(target) > 1 \
            or not all(isinstance(v, str) for v in target.values()):
        raise EnvelopeError('signed.target: expected {} or {"gateway": ID} or {"group": NAME}')
    return Envelope(kind=str(kind), version=_int_field(body, "version"),
                    issued_ms=_int_field(body, "issued_ms"), key_id=kid, body=body,
                    digest=hashlib.sha256(payload).hexdigest())
