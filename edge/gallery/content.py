"""What a gallery holds, independent of where it is stored, and its content version.

The version is a hash of content only (embedder, ids, names, template bytes, qualities and
source labels) in a canonical order, never of timestamps or insertion order: the same
gallery enrolled on two devices, or exported and imported, has the same version, and any
change to what is matched against changes it. Match events carry it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

_VERSION_DOMAIN = b"edge.gallery.content/1\n"
_TEMPLATE_ID_DOMAIN = b"edge.gallery.template-id/1\n"


def utc_now() -> str:
    """Current time as the ISO 8601 UTC text used in stores and bundles."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    """One template: 512 bytes of little-endian float32 embedding (never an image).

    threshold_factor: None (1), or 0 < f <= 1: the template's threshold is multiplied by it
    (negative feedback tightened it after a false alert, `edge.central.deployments.feedback`).
    """

    embedding: bytes
    quality: float | None
    source: str
    created_at: str
    threshold_factor: float | None = None

    def canonical(self) -> bytes:
        """Unambiguous bytes of the hashed fields: fixed-size embedding, tagged quality, sized
        source, then the factor only when there is one (so the versions of galleries without
        factors are what they were before factors existed)."""
        quality = b"\x00" if self.quality is None else b"\x01" + struct.pack("<d", self.quality)
        source = self.source.encode("utf-8")
        factor = b"" if self.threshold_factor is None else b"\x01" + struct.pack("<d", self.threshold_factor)
        return self.embedding + quality + _sized(source) + factor


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """One enrolled person with all their templates."""

    identity_id: str
    name: str
    enrolled_at: str
    templates: tuple[TemplateRecord, ...]


def canonical_order(identities: Iterable[IdentityRecord]) -> list[IdentityRecord]:
    """Identities sorted by id, each one's templates sorted by canonical bytes.

    The matcher uses this order too, so ties break the same way on every device.
    """
    return [
        IdentityRecord(
            r.identity_id,
            r.name,
            r.enrolled_at,
            tuple(sorted(r.templates, key=lambda t: t.canonical())),
        )
        for r in sorted(identities, key=lambda r: r.identity_id)
    ]


def content_version(model_id: str, model_sha256: str, identities: Iterable[IdentityRecord]) -> str:
    """First 16 hex characters of the sha256 over the embedder and the canonical content."""
    ordered = canonical_order(identities)
    h = hashlib.sha256(_VERSION_DOMAIN)
    h.update(_sized(model_id.encode("utf-8")))
    h.update(_sized(model_sha256.encode("ascii")))
    h.update(len(ordered).to_bytes(8, "little"))
    for identity in ordered:
        h.update(_sized(identity.identity_id.encode("utf-8")))
        h.update(_sized(identity.name.encode("utf-8")))
        h.update(len(identity.templates).to_bytes(8, "little"))
        for template in identity.templates:
            h.update(_sized(template.canonical()))
    return h.hexdigest()[:16]


def template_id(embedding: bytes) -> str:
    """An opaque id of one template: 16 hex characters of a sha256 over a domain prefix and its
    float32 bytes. The device and the central host compute the same id from the same template,
    so a match event can name the template that matched without carrying any of its values."""
    return hashlib.sha256(_TEMPLATE_ID_DOMAIN + embedding).hexdigest()[:16]


def _sized(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data
