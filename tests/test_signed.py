"""Signed and sealed centre-to-device messages: what verifies, what opens, and what does not."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from edge.link.signed import (
    KeyFileError,
    SealError,
    SignatureError,
    load_private_key,
    load_public_key,
    open_sealed,
    seal,
    sign,
    verify,
    write_private_key,
    write_public_key,
)


def test_signature_covers_every_field_in_any_key_order():
    key = Ed25519PrivateKey.generate()
    signed = sign({"version": 3, "set": {"match.threshold": 0.4}}, key)
    verify(dict(reversed(list(signed.items()))), key.public_key())
    for changed in ({**signed, "version": 4}, {**signed, "set": {"match.threshold": 0.5}}, {**signed, "extra": 1}):
        with pytest.raises(SignatureError, match="bad signature"):
            verify(changed, key.public_key())


def test_unsigned_and_other_key_are_refused():
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    with pytest.raises(SignatureError, match="unsigned"):
        verify({"version": 1}, key.public_key())
    with pytest.raises(SignatureError, match="bad signature"):
        verify(sign({"version": 1}, other), key.public_key())
    with pytest.raises(SignatureError, match="base64"):
        verify({"version": 1, "signature": "not base64!"}, key.public_key())


def test_sealed_opens_only_for_its_device_and_only_intact():
    device, other = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    sealed = seal(b"templates", device.public_key())
    assert b"templates" not in repr(sealed).encode()
    assert open_sealed(sealed, device) == b"templates"
    with pytest.raises(SealError, match="another device"):
        open_sealed(sealed, other)
    flipped = bytearray(base64.b64decode(sealed["ciphertext"]))
    flipped[0] ^= 1
    with pytest.raises(SealError, match="tampered"):
        open_sealed({**sealed, "ciphertext": base64.b64encode(bytes(flipped)).decode()}, device)
    with pytest.raises(SealError, match="truncated"):
        open_sealed({**sealed, "ciphertext": sealed["ciphertext"][:8]}, device)
    with pytest.raises(SealError):
        open_sealed("nope", device)


def test_key_files_round_trip_private_ones_0600(tmp_path):
    signing, box = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    write_private_key(tmp_path / "sign.pem", signing)
    write_public_key(tmp_path / "sign.pub.pem", signing.public_key())
    write_private_key(tmp_path / "box.pem", box)
    assert stat.S_IMODE(os.stat(tmp_path / "sign.pem").st_mode) == 0o600
    loaded = load_private_key(tmp_path / "sign.pem", Ed25519PrivateKey, "signing key")
    verify(sign({"a": 1}, loaded), load_public_key(tmp_path / "sign.pub.pem", Ed25519PublicKey, "fleet key"))
    with pytest.raises(KeyFileError, match="not a Ed25519PrivateKey|X25519PrivateKey, not"):
        load_private_key(tmp_path / "box.pem", Ed25519PrivateKey, "signing key")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_public_key(tmp_path / "missing.pem", X25519PublicKey, "device key")
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(KeyFileError, match="not a PEM"):
        load_public_key(tmp_path / "junk.pem", X25519PublicKey, "device key")


def test_a_key_path_that_is_no_regular_file_or_is_huge_is_refused_at_once(tmp_path):
    """A FIFO would wait for a writer for ever and /dev/zero would be read until memory runs out."""
    fifo = tmp_path / "signing.key"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.key"
    with huge.open("wb") as f:
        f.truncate(10 * 2**20)  # sparse: 10 MiB of nothing
    for path, why in (
        (fifo, "is not a regular file"),
        (huge, "is larger than"),
        ("/dev/zero", "is not a regular file"),
    ):
        with pytest.raises(KeyFileError, match=why):
            load_private_key(path, Ed25519PrivateKey, "fleet signing key")
