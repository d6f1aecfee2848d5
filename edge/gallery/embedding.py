"""The one embedding format of the gallery: 128 float32 values, little-endian on disk.

Kept in one place so the store, the bundle and the matcher can never disagree on shape,
byte order or what counts as a valid vector: finite, and no longer than `MAX_NORM`, checked
before any arithmetic on it, so a hostile template cannot overflow a distance or a scale.
"""

from __future__ import annotations

import numpy as np

from edge.gallery.errors import InvalidEmbedding

EMBEDDING_DIM = 128
EMBEDDING_DTYPE = np.dtype("<f4")
EMBEDDING_BYTES = EMBEDDING_DIM * EMBEDDING_DTYPE.itemsize
# The longest valid embedding (L2 norm). Descriptors are about 1.3 long (the cohort centroids: 1.2
# to 1.5); squared distances between vectors this long stay far inside float32.
MAX_NORM = 100.0


def as_embeddings(values: np.ndarray, what: str = "embeddings") -> np.ndarray:
    """Validated (n, 128) little-endian float32 copy-or-view of `values`, n >= 1.

    Any floating dtype is accepted and converted; integer arrays, wrong shapes, rows with NaN or
    inf (also after conversion to float32) and rows longer than `MAX_NORM` raise `InvalidEmbedding`.
    """
    arr = np.asarray(values)
    if arr.dtype.kind != "f":
        raise InvalidEmbedding(f"{what} must be floating point (float32), got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != EMBEDDING_DIM:
        raise InvalidEmbedding(f"{what} must have shape (n, {EMBEDDING_DIM}) with n >= 1, got {arr.shape}")
    with np.errstate(over="ignore"):  # overflow to inf is reported below, as a bad row
        arr = np.ascontiguousarray(arr, dtype=EMBEDDING_DTYPE)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise InvalidEmbedding(f"{what}: row(s) {bad[:5].tolist()} contain NaN or inf")
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float64))  # finite float32: no overflow in float64
    bad = np.flatnonzero(norms > MAX_NORM)
    if bad.size:
        raise InvalidEmbedding(
            f"{what}: row(s) {bad[:5].tolist()} are {norms[bad[0]]:.3g} long, above {MAX_NORM:g} "
            "(a face descriptor is about 1.3 long)"
        )
    return arr


def check_blob(blob: bytes) -> bytes:
    """`blob` if it is one valid stored embedding: 512 bytes of little-endian float32 that
    `as_embeddings` accepts."""
    if len(blob) != EMBEDDING_BYTES:
        raise InvalidEmbedding(f"embedding has {len(blob)} bytes, expected {EMBEDDING_BYTES}")
    as_embeddings(np.frombuffer(blob, dtype=EMBEDDING_DTYPE)[None], "embedding")
    return blob
