"""Checks for the text and number fields of a gallery, shared by enrolment, the store and
bundle import (files and `gallery/set`): every way into a gallery passes the same checks.

Identity ids travel in match events (`identity_id`, at most 128 characters) and embedder ids
in status messages, so `check_label` holds them to what a payload label may carry. Names and
source labels stay on the device; source labels are short names (a file name), length-limited
so that image data or other bulk cannot be smuggled into the gallery through them. No text
field holds a control character (NUL, newline, escape, DEL) or a lone surrogate (not UTF-8).
"""

from __future__ import annotations

import math
import numbers
import re
import unicodedata

from edge.gallery.errors import InvalidInput

MAX_ID_CHARS = 128  # `edge.link.payloads.Label`: the longest identity id a match event carries
MAX_NAME_CHARS = 200
MAX_SOURCE_CHARS = 256
_SHA256 = re.compile(r"[0-9a-f]{64}")
# The Unicode categories refused, and what a character of each is: no gallery text holds a
# control (NUL, newline, escape, DEL, C1) or a lone surrogate; no label holds an invisible format
# character (zero-width, bidirectional override) or a line separator either, which would make two
# ids look alike or break a log line.
_REFUSED = {
    "Cc": "a control character",
    "Cs": "a lone surrogate (not UTF-8)",
    "Cf": "an invisible format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
_NOT_TEXT = frozenset({"Cc", "Cs"})
_NOT_LABEL = frozenset(_REFUSED)


def check_label(value: object, what: str) -> str:
    """`value` if it is an id that may travel in a payload: 1 to `MAX_ID_CHARS` characters, no
    surrounding spaces, nothing invisible or controlling."""
    if not isinstance(value, str) or not value or value != value.strip() or len(value) > MAX_ID_CHARS:
        raise InvalidInput(
            f"{what} must be a non-empty string of at most {MAX_ID_CHARS} characters "
            f"without surrounding spaces, got {value!r:.200}"
        )
    return _printable(value, what, _NOT_LABEL)


def check_identity_id(value: object) -> str:
    return check_label(value, "identity id")


def check_name(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
        raise InvalidInput(f"name must be a string of at most {MAX_NAME_CHARS} characters, got {value!r:.200}")
    return _printable(value, "name", _NOT_TEXT)


def check_quality(value: object) -> float | None:
    """None (unknown) or a finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidInput(f"quality must be a finite number or None, got {value!r}")
    return float(value)


def check_threshold_factor(value: object) -> float | None:
    """None (no factor: 1) or a finite number with 0 < f <= 1: a factor only ever tightens."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < float(value) <= 1):
        raise InvalidInput(f"threshold factor must be a number above 0 and at most 1, or None, got {value!r}")
    return float(value)


def check_source(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_SOURCE_CHARS:
        raise InvalidInput(
            f"source must be a short label such as a file name (at most {MAX_SOURCE_CHARS} "
            f"characters), got {value!r:.80}"
        )
    return _printable(value, "source", _NOT_TEXT)


def check_embedder(model_id: object, model_sha256: object) -> tuple[str, str]:
    """(model_id, lower-case sha256); the sha256 must be the full 64 hex digits."""
    sha = model_sha256.lower() if isinstance(model_sha256, str) else model_sha256
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise InvalidInput(f"embedder sha256 must be 64 hex digits, got {model_sha256!r:.200}")
    return check_label(model_id, "embedder model id"), sha


def _printable(value: str, what: str, refused: frozenset[str]) -> str:
    if value.isprintable():  # holds none of the refused categories: the usual case, in C
        return value
    for position, char in enumerate(value):
        category = unicodedata.category(char)
        if category in refused:
            raise InvalidInput(
                f"{what} {value!r:.200} holds U+{ord(char):04X}, {_REFUSED[category]}, at position {position}"
            )
    return value
