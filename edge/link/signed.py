"""Signed and sealed messages between the centre and a device: the one place for their crypto.

Every command the centre sends (`config/set`, `gallery/set`) is a JSON object signed with the
fleet's Ed25519 key. The signature covers the object's canonical form (every field but
`signature`, keys sorted, no whitespace, UTF-8), so any change to any field breaks it, and
whoever holds only the broker (or its persistence file) can neither forge nor alter a command.

A gallery also carries face templates, which the broker must never hold in plaintext: its bundle
is sealed to the one device it is for (`seal`): an ephemeral X25519 key agreed with the device's
X25519 public key, HKDF-SHA256 to an AES-256-GCM key, a random nonce; the device opens it with its
private key (`open_sealed`). The fleet signature covers the sealed form, so the device checks who
sent it before it decrypts anything.

Everything here is the `cryptography` library's; this module only fixes the formats.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge.link.errors import LinkError
from edge.regular_file import FileRefused, read_regular_file

SIGNATURE = "signature"
SEAL_INFO = b"edge sealed v1"  # HKDF context: a key agreed for anything else never opens these


class SignatureError(LinkError):
    """A command is unsigned, signed with another key, or was changed after signing."""


class SealError(LinkError):
    """A sealed payload is malformed, truncated, tampered with, or sealed to another device."""


class KeyFileError(LinkError):
    """A key file is missing, unreadable, or not the kind of key expected."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise SealError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SealError(f"{what} is not valid base64") from None


def canonical(message: dict[str, Any]) -> bytes:
    """The bytes a signature covers: every field but `signature`, sorted, compact, UTF-8."""
    body = {k: v for k, v in message.items() if k != SIGNATURE}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sign(message: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of `message` with its `signature` (base64 Ed25519 over `canonical(message)`)."""
    return {**message, SIGNATURE: b64(key.sign(canonical(message)))}


def verify(message: dict[str, Any], key: Ed25519PublicKey) -> None:
    """Raise `SignatureError` unless `message` carries a valid signature by `key`."""
    signature = message.get(SIGNATURE)
    if signature is None:
        raise SignatureError("unsigned: the message has no signature")
    try:
        raw = unb64(signature, "signature")
    except SealError as e:
        raise SignatureError(str(e)) from None
    try:
        key.verify(raw, canonical(message))
    except InvalidSignature:
        raise SignatureError("bad signature: not signed by this fleet's key, or changed after signing") from None
    except (TypeError, ValueError) as e:  # a body JSON cannot encode canonically (NaN, ...)
        raise SignatureError(f"cannot check the signature: {e}") from None


def seal(plaintext: bytes, recipient: X25519PublicKey) -> dict[str, str]:
    """`plaintext` encrypted so that only the holder of `recipient`'s private key can read it."""
    ephemeral = X25519PrivateKey.generate()
    epk = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _derive(ephemeral.exchange(recipient), epk)
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, epk)
    return {"alg": "X25519-HKDF-SHA256-AES256GCM", "epk": b64(epk), "nonce": b64(nonce), "ciphertext": b64(ciphertext)}


def open_sealed(sealed: object, key: X25519PrivateKey) -> bytes:
    """The plaintext of a `seal` result; `SealError` for anything malformed or not for `key`."""
    if not isinstance(sealed, dict):
        raise SealError("sealed payload is not an object")
    epk = unb64(sealed.get("epk"), "sealed.epk")
    nonce = unb64(sealed.get("nonce"), "sealed.nonce")
    ciphertext = unb64(sealed.get("ciphertext"), "sealed.ciphertext")
    if len(epk) != 32 or len(nonce) != 12 or len(ciphertext) < 16:
        raise SealError("sealed payload is truncated (ephemeral key, nonce or ciphertext too short)")
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(epk))
        return AESGCM(_derive(shared, epk)).decrypt(nonce, ciphertext, epk)
    except (InvalidTag, ValueError):
        raise SealError("sealed payload does not open: tampered with, or sealed to another device") from None


def _derive(shared: bytes, epk: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=epk, info=SEAL_INFO).derive(shared)


# -- key files (PEM) --------------------------------------------------------------------------


def write_private_key(path: Path, key: Ed25519PrivateKey | X25519PrivateKey | EllipticCurvePrivateKey) -> None:
    """PKCS#8 PEM, created 0600 (never readable by others, not even for a moment); the EC keys are TLS keys."""
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def write_public_key(path: Path, key: Ed25519PublicKey | X25519PublicKey) -> None:
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


KEY_FILE_BYTES = 64 * 1024  # a PEM key is a few hundred bytes


def _read(path: Path, what: str) -> bytes:
    try:
        return read_regular_file(path, KEY_FILE_BYTES)
    except FileRefused as e:
        raise KeyFileError(f"cannot read {what} {path}: it {e}") from None
    except OSError as e:
        raise KeyFileError(f"cannot read {what} {path}: {e.strerror or e}") from None


def load_private_key(
    path: Path, kind: type[Ed25519PrivateKey] | type[X25519PrivateKey] | type[EllipticCurvePrivateKey], what: str
) -> Any:
    """A PEM private key of `kind` (Ed25519 for signing, X25519 for opening galleries, EC for TLS)."""
    try:
        key = serialization.load_pem_private_key(_read(path, what), password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{what} {path} is not a PEM private key: {e}") from None
    if not isinstance(key, kind):
        raise KeyFileError(f"{what} {path} holds a {type(key).__name__}, not a {kind.__name__}")
    return key


def load_public_key(path: Path, kind: type[Ed25519PublicKey] | type[X25519PublicKey], what: str) -> Any:
    """A PEM public key of `kind` (the fleet's Ed25519 key, a device's X25519 key)."""
    try:
        key = serialization.load_pem_public_key(_read(path, what))
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{what} {path} is not a PEM public key: {e}") from None
    if not isinstance(key, kind):
        raise KeyFileError(f"{what} {path} holds a {type(key).__name__}, not a {kind.__name__}")
    return key
