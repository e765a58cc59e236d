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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from gateway.config import ConfigError

ENVELOPE_TYPE = "citygw.config/1"
CONTEXT = b"citygw config envelope v1\x00"
KINDS = ("config", "patch", "keys")

# Ed25519 keys in the PEM files OpenSSL writes (`openssl genpkey -algorithm ed25519`): the DER
# of an Ed25519 key is a fixed prefix and the 32 key bytes (RFC 8410).
_PUBLIC_DER = bytes.fromhex("302a300506032b6570032100")
_PRIVATE_DER = bytes.fromhex("302e020100300506032b657004220420")
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----\s+([A-Za-z0-9+/=\s]+?)\s*-----END \1-----")


class EnvelopeError(ValueError):
    """A payload that is not a valid, trusted envelope; the message is the reason reported,
    `kind` one word for the rule it broke (counted and rate-limited by it, never by content)."""

    def __init__(self, message: str, *, kind: str = "body") -> None:
        super().__init__(message)
        self.kind = kind


class KeyFileError(ConfigError):
    """A key file that cannot be read or is not an Ed25519 key."""

    what = "key"


def key_id(public: VerifyKey) -> str:
    """First 8 bytes of SHA-256 of the raw public key, in hex: short, stable, printable."""
    return hashlib.sha256(bytes(public)).hexdigest()[:16]


def public_raw_b64(public: VerifyKey) -> str:
    """The raw 32-byte public key in base64, as a rotation record lists it."""
    return base64.b64encode(bytes(public)).decode("ascii")


def public_from_b64(text: str) -> VerifyKey:
    """A public key from `public_raw_b64` text; EnvelopeError if it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise EnvelopeError("expected a base64 Ed25519 public key (32 bytes)", kind="key")
    return VerifyKey(raw)


def _pem(label: str, prefix: bytes, raw: bytes) -> bytes:
    body = base64.encodebytes(prefix + raw).replace(b"\n", b"")
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label.encode(), body, label.encode())


def _read_pem(path: str | Path, label: str, prefix: bytes) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read: {error.strerror}") from None
    match = _PEM.search(data)
    if match is None or match.group(1).decode() != label:
        raise KeyFileError(
            f"{path}: expected a PEM {label} (from citygw keys generate or "
            "openssl genpkey -algorithm ed25519)"
        )
    try:
        der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
    except (binascii.Error, ValueError):
        der = b""
    if len(der) != len(prefix) + 32 or not der.startswith(prefix):
        raise KeyFileError(f"{path}: not an Ed25519 key (or an encrypted one)")
    return der[len(prefix) :]


def generate(out_dir: Path, name: str) -> tuple[Path, Path]:
    """Writes `<name>.key` (PKCS#8 PEM, mode 0600) and `<name>.pub` (PEM); refuses to overwrite."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; not overwriting a key")
    key = SigningKey.generate()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(_pem("PRIVATE KEY", _PRIVATE_DER, bytes(key)))
    public_path.write_bytes(_pem("PUBLIC KEY", _PUBLIC_DER, bytes(key.verify_key)))
    return private_path, public_path


def load_private(path: str | Path) -> SigningKey:
    """An Ed25519 private key from a PKCS#8 PEM file (`citygw keys generate`)."""
    return SigningKey(_read_pem(path, "PRIVATE KEY", _PRIVATE_DER))


def load_public(path: str | Path) -> VerifyKey:
    """An Ed25519 public key from an SPKI PEM file."""
    return VerifyKey(_read_pem(path, "PUBLIC KEY", _PUBLIC_DER))


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
        """Whom the push is for: `{"gateway": id}` or `{"group": name}` (empty: anyone)."""
        target: dict[str, str] = self.body.get("target") or {}
        return target


def sign(private: SigningKey, body: dict[str, Any]) -> bytes:
    """The exact payload to publish on `config/set` for this body."""
    signed = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    signature = private.sign(CONTEXT + signed.encode("ascii")).signature
    envelope = {
        "type": ENVELOPE_TYPE,
        "key_id": key_id(private.verify_key),
        "sig": base64.b64encode(signature).decode("ascii"),
        "signed": signed,
    }
    return json.dumps(envelope, indent=None, separators=(",", ":")).encode("ascii")


MAX_DEPTH = 32
"""Deepest nesting of objects and arrays in a signed body (a config needs about 6). Checked
before parsing: the merge, the copies and the schema recurse, and a body nested some hundred
levels deep would exhaust Python's recursion limit there."""
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def nesting_depth(text: str) -> int:
    """How deeply objects and arrays nest in a JSON text (brackets inside strings do not
    count); for text that is not JSON, a number that is at least as large as its nesting."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _json_object(text: str | bytes, what: str, *, max_depth: int | None = None) -> dict[str, Any]:
    if max_depth is not None and isinstance(text, str) and nesting_depth(text) > max_depth:
        raise EnvelopeError(
            f"{what} nests objects or arrays more than {max_depth} deep", kind="too_deep"
        )
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise EnvelopeError(f"{what} is not valid JSON", kind="not_json") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} must be a JSON object", kind="not_json")
    return value


def _int_field(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise EnvelopeError(f"signed.{name}: expected a positive integer")
    return value


def verify(payload: bytes, trusted: dict[str, VerifyKey]) -> Envelope:
    """Checks the signature against the trusted keys (key id -> key), then parses the body."""
    document = _json_object(payload, "payload")
    if document.get("type") != ENVELOPE_TYPE:
        raise EnvelopeError(
            f"not a citygw config envelope (type must be {ENVELOPE_TYPE!r})", kind="not_envelope"
        )
    kid, sig, signed = document.get("key_id"), document.get("sig"), document.get("signed")
    if not isinstance(signed, str) or not isinstance(sig, str) or not isinstance(kid, str):
        raise EnvelopeError("unsigned: key_id, sig and signed are required", kind="unsigned")
    key = trusted.get(kid)
    if key is None:
        raise EnvelopeError(
            f"signed by key {kid[:16]!r}, which this gateway does not trust", kind="untrusted_key"
        )
    try:
        key.verify(CONTEXT + signed.encode("utf-8"), base64.b64decode(sig, validate=True))
    except (BadSignatureError, binascii.Error, ValueError):
        raise EnvelopeError(f"bad signature (key {kid})", kind="bad_signature") from None
    body = _json_object(signed, "signed", max_depth=MAX_DEPTH)
    kind = body.get("kind")
    if kind not in KINDS:
        raise EnvelopeError(f"signed.kind: expected one of {', '.join(KINDS)}")
    target = body.get("target", {})
    if (
        not isinstance(target, dict)
        or not set(target) <= {"gateway", "group"}
        or len(target) > 1
        or not all(isinstance(v, str) for v in target.values())
    ):
        raise EnvelopeError('signed.target: expected {} or {"gateway": ID} or {"group": NAME}')
    return Envelope(
        kind=str(kind),
        version=_int_field(body, "version"),
        issued_ms=_int_field(body, "issued_ms"),
        key_id=kid,
        body=body,
        digest=hashlib.sha256(payload).hexdigest(),
    )
