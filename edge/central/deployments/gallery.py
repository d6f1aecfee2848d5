"""A deployment's gallery: the people listed at a moment, with their templates, as the gallery
bundle a device takes over MQTT, and its delivery to the deployment's devices (`edge fleet
gallery push`'s path). Made in a scratch folder and removed there: the central host keeps the
sealed templates, never an open gallery file."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from edge.central.deployments.vault import PhotoVault
from edge.central.deployments.watchlist import get, templates
from edge.central.fleet.folder import FleetDir, parse_device
from edge.central.fleet.push import push_gallery
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


def deliver(
    engine: sa.Engine,
    vault: PhotoVault,
    deployment: str,
    fleet: FleetDir,
    broker_url: str,
    settings: Settings,
    wait_s: float | None = None,
) -> list[dict[str, Any]]:
    """Push the watchlist as it stands now (nobody, once the deployment ended) to each of the
    deployment's devices, sealed to it, signed and retained (`edge.central.fleet.push`): a device
    offline now gets it when it reconnects. With `wait_s`, each device's answer."""
    devices = get(engine, deployment).devices
    bundle = watchlist_bundle(engine, vault, deployment, settings)
    return [push_gallery(fleet, *parse_device(d), bundle, broker_url, wait_s, retain=True) for d in devices]
