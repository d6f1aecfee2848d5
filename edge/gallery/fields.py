"""Checks for the text and number fields of a gallery, shared by enrolment and bundle import.

Source labels are short names (a file name), length-limited so that image data or other
bulk cannot be smuggled into the gallery through them.
"""

from __future__ import annotations

import math
import numbers
import re

from edge.gallery.errors import InvalidInput

MAX_ID_CHARS = 128
MAX_NAME_CHARS = 200
MAX_SOURCE_CHARS = 256
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_identity_id(value: object) -> str:
    if not isinstance(value, str) or not value or value != value.strip() or len(value) > MAX_ID_CHARS:
        raise InvalidInput(
            f"identity id must be a non-empty string of at most {MAX_ID_CHARS} characters "
            f"without surrounding spaces, got {value!r}"
        )
    return value


def check_name(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
        raise InvalidInput(f"name must be a string of at most {MAX_NAME_CHARS} characters, got {value!r}")
    return value


def check_quality(value: object) -> float | None:
    """None (unknown) or a finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidInput(f"quality must be a finite number or None, got {value!r}")
    return float(value)


def check_source(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_SOURCE_CHARS:
        raise InvalidInput(
            f"source must be a short label such as a file name (at most {MAX_SOURCE_CHARS} "
            f"characters), got {value!r:.80}"
        )
    return value


def check_embedder(model_id: object, model_sha256: object) -> tuple[str, str]:
    """(model_id, lower-case sha256); the sha256 must be the full 64 hex digits."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise InvalidInput(f"embedder model id must be a non-empty string, got {model_id!r}")
    sha = model_sha256.lower() if isinstance(model_sha256, str) else model_sha256
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise InvalidInput(f"embedder sha256 must be 64 hex digits, got {model_sha256!r}")
    return model_id, sha
