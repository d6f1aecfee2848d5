"""A deployment's gallery: the people listed at a moment, with their templates, as the gallery
bundle a device takes over MQTT (sent by `edge.central.deployments.delivery`). Made in a scratch
folder and removed there: the central host keeps the sealed templates, never an open gallery file."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from edge.central.deployments.vault import PhotoVault
from edge.central.deployments.watchlist import templates
from edge.config import Settings
from edge.device.parts import open_gallery
from edge.gallery import Bundle


def watchlist_bundle(
    engine: sa.Engine, vault: PhotoVault, deployment: str, settings: Settings, at: datetime | None = None
) -> Bundle:
    """The bundle of everyone on `deployment`'s list at `at` (default now), for the configured
    embedder and its cohort, each template with its photo's quality rank; empty when nobody is."""
    with tempfile.TemporaryDirectory(prefix="edge-deployment-") as scratch:
        with open_gallery(settings, Path(scratch) / "gallery.sqlite", create=True) as gallery:
            for person, descriptors in templates(engine, vault, deployment, at):
                gallery.add(person.identity_id, person.name, descriptors)
            return gallery.bundle()

