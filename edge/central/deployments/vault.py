"""Reference photos and templates sealed at rest: AES-256-GCM with a key file in the fleet folder
(`photos.key`, 32 random bytes, made 0600 on first use). Each sealed value is a fresh 96-bit
nonce, then the ciphertext and its tag; the associated data binds it to its deployment and
person, so a value moved to another row does not open. A wrong key fails with one line."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.central.fleet.folder import FleetDir
from edge.errors import OperatorError

KEY_FILE = "photos.key"
NONCE_BYTES = 12


class VaultError(OperatorError):
    """The photo key is missing, malformed, or does not open what it should."""


class PhotoVault:
    def __init__(self, key: bytes, path: Path) -> None:
        self._aead = AESGCM(key)
        self._path = path

    @classmethod
    def of(cls, fleet: FleetDir, create: bool = False) -> PhotoVault:
        """The fleet's photo key; `create`: made (0600) when the fleet has none yet."""
        path = fleet.root / KEY_FILE
        if create and not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(AESGCM.generate_key(bit_length=256))
        try:
            key = path.read_bytes()
        except OSError as e:
            raise VaultError(f"cannot read the photo key {path}: {e.strerror or e}") from None
        if len(key) != 32:
            raise VaultError(f"{path} is not a photo key (32 bytes), it has {len(key)}")
        return cls(key, path)

    def seal(self, data: bytes, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError):
            raise VaultError(
                f"{self._path} does not open {context}'s photos: another fleet's key, or the data was changed"
            ) from None
