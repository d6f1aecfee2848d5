"""Errors of the gallery, one class per thing an operator has to fix differently.

Every message names the gallery or bundle path it is about, so a log line alone says what
to do. All derive from `GalleryError`, so callers that only need "gallery unusable, keep the
previous one" catch that.
"""

from __future__ import annotations


class GalleryError(Exception):
    """Base of every gallery error."""


class GalleryNotFound(GalleryError):
    """The gallery file does not exist (or is not a regular file)."""


class GalleryExists(GalleryError):
    """`create` refuses to overwrite an existing file: galleries are never replaced by accident."""


class GalleryCorrupt(GalleryError):
    """The file is not a readable SQLite database, or its contents fail an integrity check."""


class GallerySchemaError(GalleryError):
    """A readable SQLite file that is not a gallery this software understands."""


class GalleryModelMismatch(GalleryError):
    """The gallery was built with a different embedder than the one running.

    Distances between descriptors of two different models mean nothing, so matching against
    such a gallery would produce silently wrong results.
    """


class GalleryBundleError(GalleryError):
    """A gallery bundle (JSON) is malformed, damaged or for another embedder."""


class UnknownIdentity(GalleryError):
    """The identity id is not enrolled."""


class InvalidInput(GalleryError, ValueError):
    """An argument is wrong: an identity id, name, quality, source label or embedder id."""


class InvalidEmbedding(InvalidInput):
    """An embedding has the wrong shape or dtype, or holds NaN or inf."""
