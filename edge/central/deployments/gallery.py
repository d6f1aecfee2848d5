"""A deployment's gallery: the people listed at a moment, with their templates, as the gallery
bundle a device takes over MQTT (sent by `edge.central.deployments.delivery`). Made in a scratch
folder and removed there: the central host keeps the sealed templates, never an open gallery file."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from edge.central.deployments.feedback import active
from edge.central.deployments.vault import PhotoVault
from edge.central.deployments.watchlist import templates_with_ids
from edge.config import Settings
from edge.device.parts import open_gallery
from edge.gallery import Bundle


def watchlist_bundle(
    engine: sa.Engine, vault: PhotoVault, deployment: str, settings: Settings, at: datetime | None = None
) -> Bundle:
    """The bundle of everyone on `deployment`'s list at `at` (default now), for the configured
    embedder and its cohort; empty when nobody is. Negative feedback in force then applies
    (`feedback.active`): a quarantined template is left out, a tightened one carries its factor."""
    adjusted = active(engine, deployment, at)
    with tempfile.TemporaryDirectory(prefix="edge-deployment-") as scratch:
        with open_gallery(settings, Path(scratch) / "gallery.sqlite", create=True) as gallery:
            for person, ids, descriptors in templates_with_ids(engine, vault, deployment, at):
                kept = [i for i, t in enumerate(ids) if adjusted.get((person.identity_id, t), 1.0) is not None]
                factors = [adjusted.get((person.identity_id, ids[i])) for i in kept]
                gallery.add(person.identity_id, person.name, descriptors[kept], factors=factors)
            return gallery.bundle()
