"""The `gallery/set` message: a gallery bundle sealed to one device and signed by the fleet.

    {"version": int,                 # > the last push this device accepted (no replay)
     "issued_at": ISO 8601 UTC,
     "device": "<site>/<device_id>", # the one device it is for
     "embedder_model_id": str,       # the embedder its templates were made with
     "sealed": seal(bundle JSON, the device's X25519 public key),
     "signature": base64 Ed25519 over every other field}

The centre builds it (`build`). The device checks its size before parsing anything, then its
JSON and fleet signature (`edge.device.inbox`), then its fields (`fields`); only then is it
worth checking further (device, embedder, version) and decrypting
(`edge.link.signed.open_sealed`, in `edge.device.remote_gallery`). The broker, its persistence
file and anyone on the topic see ciphertext only.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from edge.link.errors import LinkError
from edge.link.payloads import Label, UtcDatetime
from edge.link.signed import seal, sign

TOPIC = "gallery/set"
# The largest gallery/set message a device takes, checked before it is parsed. A template is
# about 800 bytes of bundle JSON and sealing adds a third: 8 MiB carries about 7,500 templates
# (1,500 people with 5 photos each). Mosquitto (message_size_limit / max_packet_size 0: no limit
# by default) and paho (no receive limit) both pass messages of this size.
MAX_BYTES = 8 * 1024 * 1024


class GallerySetError(LinkError):
    """A `gallery/set` message is refused; the text is the reason reported."""


class GallerySet(BaseModel):
    """A well-formed `gallery/set` message, its bundle still sealed. Not an `edge.link.payloads`
    model: those carry metadata only, and this one carries templates (encrypted)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: int = Field(ge=1, lt=2**63, description="Above the last push the device accepted (no replay).")
    issued_at: UtcDatetime
    device: Annotated[str, StringConstraints(max_length=129, pattern=r"^[^/]+/[^/]+$")]
    embedder_model_id: Label
    sealed: dict[str, str] = Field(description="`edge.link.signed.seal` of the bundle's JSON bytes.")
    signature: Annotated[str, StringConstraints(min_length=1, max_length=200)]


def build(
    bundle_json: bytes,
    *,
    version: int,
    device: str,
    embedder_model_id: str,
    recipient: X25519PublicKey,
    signing_key: Ed25519PrivateKey,
) -> bytes:
    """The message for `device`, ready to publish; `GallerySetError` if it exceeds `MAX_BYTES`."""
    message = {
        "version": version,
        "issued_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "device": device,
        "embedder_model_id": embedder_model_id,
        "sealed": seal(bundle_json, recipient),
    }
    payload = json.dumps(sign(message, signing_key), separators=(",", ":")).encode()
    if len(payload) > MAX_BYTES:
        raise GallerySetError(
            f"the sealed gallery is {len(payload):,} bytes, above the {MAX_BYTES:,}-byte limit of one "
            "gallery/set message: push fewer people or fewer templates per person"
        )
    return payload


def fields(payload: bytes) -> GallerySet:
    """The message's fields, checked; `GallerySetError` with what is wrong. Call it only on a
    message whose size and signature were checked already (`edge.device.inbox`)."""
    try:
        return GallerySet.model_validate_json(payload)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'message'}: {x['msg']}" for x in e.errors()[:3])
        raise GallerySetError(f"malformed gallery/set: {problems}") from None
