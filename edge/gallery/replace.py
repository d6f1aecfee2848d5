"""Replacing a whole gallery file atomically with a bundle's content (`gallery/set`, `edge gallery import`)."""

from __future__ import annotations

import glob
import os
import secrets
from pathlib import Path

from edge.atomic import fsync, replace
from edge.gallery.bundle import Bundle
from edge.gallery.errors import GalleryError
from edge.gallery.scales import TemplateScaler
from edge.gallery.store import GalleryStore

_INCOMING = ".incoming"  # suffix of a replacement being built


def replace_gallery(
    path: str | os.PathLike[str], bundle: Bundle, model_id: str, model_sha256: str, *, scaler: TemplateScaler
) -> str:
    """Replace the gallery file at `path` (or create it) with `bundle`'s content, atomically;
    returns the new version. `edge gallery import` and `gallery/set` both come here.

    The new file is built beside the old one (same folder, so the same filesystem), fsynced,
    renamed over it, and the folder fsynced (`edge.atomic`): a reader (a running device's
    `GalleryWatcher`) or a power cut sees the old gallery or the new one, never a mixture, and
    never a half-built file. A bundle that is invalid or for another embedder changes nothing. Each template's scale
    is computed here with `scaler` (a bundle carries none).
    """
    path = Path(path)
    if path.is_dir():  # also "" (taken as ".") and "/", which have no name to build the replacement beside
        raise GalleryError(f"gallery {path} is a folder: name the gallery file")
    remove_leftovers(path)
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(6)}{_INCOMING}")
    try:
        GalleryStore.from_bundle(bundle, scratch, model_id, model_sha256, scaler=scaler).close()
        fsync(scratch)
        replace(scratch, path)  # with the folder's fsync: the rename itself survives a power cut
    except OSError as e:
        raise GalleryError(f"cannot replace gallery {path}: {e.strerror or e}") from e
    finally:
        scratch.unlink(missing_ok=True)
    return bundle.version


def remove_leftovers(path: str | os.PathLike[str]) -> None:
    """Delete half-built replacements of the gallery at `path` that a killed process left
    (they hold templates: biometric data, so they are not left lying about)."""
    path = Path(path)
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*{_INCOMING}*"):
        leftover.unlink(missing_ok=True)
