"""The JSON gallery bundle: how a gallery moves between trusted machines.

This is the format central pushes as `gallery/set`. It holds the embeddings of ENROLLED
people only (never images, never probes seen by a camera) plus names and source labels, so
it is biometric data: move it only between trusted machines, over an authenticated channel.
Files are written with mode 0600.

Layout (format_version 1)::

    {"format": "edge-gallery-bundle", "format_version": 1,
     "embedder": {"model_id": str, "sha256": str, "dim": 128, "dtype": "float32-le"},
     "version": str,            # content version, see edge.gallery.content
     "exported_at": str,        # ISO 8601 UTC
     "identities": [{"identity_id": str, "name": str, "enrolled_at": str,
                     "templates": [{"embedding": base64 of 128 little-endian float32,
                                    "quality": float | null, "source": str,
                                    "created_at": str,
                                    "threshold_factor": float}, ...]}, ...]}

`threshold_factor` (0 < f <= 1) is present only on a template whose threshold negative feedback
tightened; it is part of the content version, so a device before factors refuses such a bundle
(the version it computes differs) rather than matching it looser than meant.

Reading checks every field and recomputes the version, so a damaged or edited bundle is
refused rather than half applied. Only a regular file of at most `MAX_BYTES` is read: a device
node or a FIFO named by mistake is refused, not read until memory runs out or a writer comes.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.atomic import write_atomically
from edge.gallery.content import IdentityRecord, TemplateRecord, content_version, utc_now
from edge.gallery.embedding import EMBEDDING_DIM, check_blob
from edge.gallery.errors import GalleryBundleError, InvalidEmbedding, InvalidInput
from edge.gallery.fields import (
    check_embedder,
    check_identity_id,
    check_name,
    check_quality,
    check_source,
    check_threshold_factor,
)
from edge.regular_file import FileRefused, TooLarge, read_regular_file

FORMAT = "edge-gallery-bundle"
FORMAT_VERSION = 1
# The largest bundle file read. A template takes about 800 bytes of bundle JSON, so 32 MiB holds
# about 40,000 templates (8,000 people with 5 photos each), well above a device's gallery.
MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Bundle:
    """A parsed, checked bundle."""

    model_id: str
    model_sha256: str
    version: str
    identities: tuple[IdentityRecord, ...]


def encode_bundle(bundle: Bundle) -> bytes:
    """`bundle` as the JSON bytes a bundle file holds (and `gallery/set` seals)."""
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "embedder": {
            "model_id": bundle.model_id,
            "sha256": bundle.model_sha256,
            "dim": EMBEDDING_DIM,
            "dtype": "float32-le",
        },
        "version": bundle.version,
        "exported_at": utc_now(),
        "identities": [_identity_doc(r) for r in bundle.identities],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def write_bundle(path: str | os.PathLike[str], bundle: Bundle) -> None:
    """Write `bundle` as JSON, atomically (`edge.atomic`: temporary file, fsync, rename, fsync of
    the folder) and with mode 0600."""
    data = encode_bundle(bundle)
    target = Path(path)
    if target.is_dir():
        raise GalleryBundleError(f"cannot write gallery bundle {target}: it is a folder; name a file in it")
    try:
        write_atomically(target, data)
    except OSError as e:  # no such folder, no permission, a full disk
        raise GalleryBundleError(f"cannot write gallery bundle {target}: {e.strerror} ({target.parent})") from None


def read_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Parse and check a bundle file; any problem raises `GalleryBundleError` naming the path."""
    what = f"gallery bundle {path}"
    try:
        data = read_regular_file(path, MAX_BYTES)
    except TooLarge as e:
        raise GalleryBundleError(f"{what} {e}, the most a bundle may be (about 40,000 templates)") from e
    except FileRefused as e:
        raise GalleryBundleError(f"{what} {e}") from e
    except FileNotFoundError as e:
        raise GalleryBundleError(f"{what} does not exist") from e
    except OSError as e:
        raise GalleryBundleError(f"{what} cannot be read: {e.strerror or e}") from e
    return parse_bundle(data, what)


def parse_bundle(data: bytes, what: str = "gallery bundle") -> Bundle:
    """Parse and check a bundle's bytes; any problem raises `GalleryBundleError` naming `what`."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise GalleryBundleError(f"{what} is not readable JSON: {e}") from e
    try:
        return _parse(doc)
    except (InvalidInput, KeyError, TypeError, ValueError) as e:
        problem = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        raise GalleryBundleError(f"{what} is invalid: {problem}") from e


def _identity_doc(r: IdentityRecord) -> dict[str, Any]:
    return {
        "identity_id": r.identity_id,
        "name": r.name,
        "enrolled_at": r.enrolled_at,
        "templates": [_template_doc(t) for t in r.templates],
    }


def _template_doc(t: TemplateRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "embedding": base64.b64encode(t.embedding).decode("ascii"),
        "quality": t.quality,
        "source": t.source,
        "created_at": t.created_at,
    }
    if t.threshold_factor is not None:
        doc["threshold_factor"] = t.threshold_factor
    return doc


def _parse(doc: Any) -> Bundle:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not an {FORMAT} document")
    if doc["format_version"] != FORMAT_VERSION:
        raise ValueError(f"format_version {doc['format_version']!r}, this software reads {FORMAT_VERSION}")
    embedder = doc["embedder"]
    model_id, sha = check_embedder(embedder["model_id"], embedder["sha256"])
    if embedder["dim"] != EMBEDDING_DIM or embedder["dtype"] != "float32-le":
        raise ValueError(
            f"embeddings are {embedder['dim']}-d {embedder['dtype']}, expected {EMBEDDING_DIM}-d float32-le"
        )
    identities = tuple(_parse_identity(item) for item in doc["identities"])
    ids = [r.identity_id for r in identities]
    if len(set(ids)) != len(ids):
        raise ValueError("an identity id appears more than once")
    version = content_version(model_id, sha, identities)
    if doc["version"] != version:
        raise ValueError(
            f"declared version {doc['version']!r} does not match its content ({version}): damaged or edited"
        )
    return Bundle(model_id, sha, version, identities)


def _parse_identity(item: dict[str, Any]) -> IdentityRecord:
    identity_id = check_identity_id(item["identity_id"])
    templates = tuple(_parse_template(t, identity_id) for t in item["templates"])
    if not templates:
        raise ValueError(f"identity {identity_id!r} has no templates")
    return IdentityRecord(identity_id, check_name(item["name"]), _check_time(item["enrolled_at"]), templates)


def _parse_template(item: dict[str, Any], identity_id: str) -> TemplateRecord:
    try:
        blob = base64.b64decode(item["embedding"], validate=True)
    except (binascii.Error, TypeError) as e:
        raise ValueError(f"identity {identity_id!r}: embedding is not base64") from e
    try:
        check_blob(blob)
    except InvalidEmbedding as e:
        raise ValueError(f"identity {identity_id!r}: {e}") from e
    return TemplateRecord(
        blob,
        check_quality(item["quality"]),
        check_source(item["source"]),
        _check_time(item["created_at"]),
        check_threshold_factor(item.get("threshold_factor")),
    )


def _check_time(value: Any) -> str:
    if not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is None:
        raise ValueError(f"time {value!r} is not ISO 8601 with a UTC offset")
    return value
