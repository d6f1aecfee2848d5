"""The matched person's reference photo beside an alert: the best photo of the watchlist of the
deployment the alert's device was serving when it fired. Only the enrolled person's photo exists to
show; nothing of the passer-by ever reaches the console.

Which alerts have one is read for a whole page at once: the watchlist photos of the page's
identities (one query, usually none), then the deployments' periods (one query), which place
each alert.
The photo itself is served by `edge.console.feedback` to admins and to the operators who
adjudicate the alert's site.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from edge.central.deployments import watchlist
from edge.central.deployments.schema import people, photos
from edge.central.deployments.vault import PhotoVault, VaultError
from edge.console.fleet import FleetAccess

NONE_SHOWN = "no reference photo"

_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def image_type(data: bytes) -> str:
    """The content type of an enrolled photo, from its first bytes (the file name may lie)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    return "application/octet-stream"


def _photographed(engine: sa.Engine, identities: set[str]) -> set[tuple[str, str]]:
    """(deployment, identity) of each of `identities` whose watchlist photos are still kept."""
    if not identities:
        return set()
    query = (
        sa.select(people.c.deployment, people.c.identity_id)
        .join(photos, photos.c.person_id == people.c.id)
        .where(people.c.identity_id.in_(sorted(identities)))
        .distinct()
    )
    with engine.connect() as connection:
        return {(r.deployment, r.identity_id) for r in connection.execute(query)}


def deployment_with_photo(engine: sa.Engine, event: Any) -> str | None:
    """The deployment whose watchlist photo of `event`'s person may be shown, or None."""
    kept = _photographed(engine, {event.identity_id})
    if not kept:
        return None
    deployment = watchlist.deployment_of(engine, event.site, event.device_id, event.ts)
    return deployment if (deployment, event.identity_id) in kept else None


def with_photo(engine: sa.Engine, rows: Iterable[Any]) -> set[str]:
    """The event ids among `rows` (events rows) whose matched person has a reference photo kept in
    the deployment their device served at the alert's time."""
    rows = list(rows)
    kept = _photographed(engine, {r.identity_id for r in rows})
    if not kept:
        return set()
    periods = watchlist.Periods.read(engine)
    return {r.event_id for r in rows if (periods.deployment_of(r.site, r.device_id, r.ts), r.identity_id) in kept}


def photo(engine: sa.Engine, vault: PhotoVault, event: Any) -> tuple[str, bytes] | None:
    """The deployment and the opened reference photo for `event`'s matched person, or None."""
    deployment = deployment_with_photo(engine, event)
    if deployment is None:
        return None
    data = watchlist.photo(engine, vault, deployment, event.identity_id)
    return None if data is None else (deployment, data)


def vault_of(fleet: FleetAccess | None) -> PhotoVault:
    """The fleet's photo key, read when needed (`edge deploy` may make it after the console starts)."""
    if fleet is None:
        raise VaultError("the console runs without --fleet: it has no photo key to open reference photos")
    return PhotoVault.of(fleet.folder)
