"""The one embedding format of the gallery: 128 float32 values, little-endian on disk.

Kept in one place so the store, the bundle and the matcher can never disagree on shape,
byte order or what counts as a valid vector.
"""

from __future__ import annotations

import numpy as np

from edge.gallery.errors import InvalidEmbedding

EMBEDDING_DIM = 128
EMBEDDING_DTYPE = np.dtype("<f4")
EMBEDDING_BYTES = EMBEDDING_DIM * EMBEDDING_DTYPE.itemsize


def as_embeddings(values: np.ndarray, what: str = "embeddings") -> np.ndarray:
    """Validated (n, 128) little-endian float32 copy-or-view of `values`, n >= 1.

    Any floating dtype is accepted and converted; integer arrays, wrong shapes and rows with
    NaN or inf (also after conversion to float32) raise `InvalidEmbedding`.
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
    return arr


def check_blob(blob: bytes) -> bytes:
    """`blob` if it is one valid stored embedding: 512 bytes of finite little-endian float32."""
    if len(blob) != EMBEDDING_BYTES:
        raise InvalidEmbedding(f"embedding has {len(blob)} bytes, expected {EMBEDDING_BYTES}")
    if not np.isfinite(np.frombuffer(blob, dtype=EMBEDDING_DTYPE)).all():
        raise InvalidEmbedding("embedding contains NaN or inf")
    return blob
