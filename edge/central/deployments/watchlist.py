"""Deployments and their watchlists: created, filled, listed, ended; one implementation behind the
CLI (`edge deploy`) and the console.

A device belongs to at most one deployment at a time (periods of deployments not ended may not
overlap on a device). A person's photos pass the enrollment quality gate one by one, each refusal
with its reason, and their templates are made here with the device's own stills pipeline; photos
and templates are stored sealed (`vault`). A person removed, and every person of an ended
deployment whose retention is 0 days, loses their photos and templates at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from edge.central.deployments.schema import deployments, people, photos
from edge.central.deployments.vault import PhotoVault
from edge.central.fleet.folder import FleetDir, parse_device
from edge.enrollment import Person, describe_people
from edge.errors import OperatorError
from edge.gallery.content import template_id
from edge.link.payloads import utc_now
from edge.vision import Vision

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class DeploymentError(OperatorError):
    """A deployment or watchlist change cannot be made as asked."""


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    devices: tuple[str, ...]  # "site/device"
    starts_at: datetime
    ends_at: datetime
    purpose: str
    authorised_by: str
    created_by: str
    retention_days: int = 0
    target_fmr: float | None = None


@dataclass
class Added:
    """What became of one person's photos."""

    identity_id: str
    accepted: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (photo, reason)


def _check_spec(spec: DeploymentSpec, fleet: FleetDir) -> None:
    if not _NAME.fullmatch(spec.name):
        raise DeploymentError(f"deployment name {spec.name!r}: 1 to 64 letters, digits, '_', '.', '-'")
    if not spec.purpose.strip() or not spec.authorised_by.strip():
        raise DeploymentError("a deployment states its purpose and who authorised it (--purpose, --authorised-by)")
    if spec.starts_at.tzinfo is None or spec.ends_at.tzinfo is None:
        raise DeploymentError("give the start and end with a time zone (UTC: ...Z)")
    if spec.ends_at <= spec.starts_at:
        raise DeploymentError(f"the deployment ends ({spec.ends_at:%Y-%m-%d %H:%M}) before it starts")
    if spec.retention_days < 0:
        raise DeploymentError("--retention-days cannot be negative")
    if spec.target_fmr is not None and not 0 < spec.target_fmr < 1:
        raise DeploymentError(f"--target-fmr must lie between 0 and 1, got {spec.target_fmr}")
    if not spec.devices:
        raise DeploymentError("a deployment needs at least one device (--device SITE/DEVICE)")
    for device in spec.devices:
        fleet.require_device(*parse_device(device))


def create(engine: sa.Engine, spec: DeploymentSpec, fleet: FleetDir) -> None:
    """Record a deployment; refused when one of its devices is in another deployment's period."""
    _check_spec(spec, fleet)
    with engine.begin() as connection:
        if connection.execute(sa.select(deployments.c.name).where(deployments.c.name == spec.name)).first():
            raise DeploymentError(f"deployment {spec.name!r} exists")
        others = connection.execute(
            sa.select(deployments).where(
                deployments.c.ended_at.is_(None),
                deployments.c.starts_at < spec.ends_at,
                deployments.c.ends_at > spec.starts_at,
            )
        )
        for other in others:
            shared = sorted(set(other.devices) & set(spec.devices))
            if shared:
                raise DeploymentError(
                    f"{', '.join(shared)} already serve deployment {other.name!r} "
                    f"({other.starts_at:%Y-%m-%d %H:%M} to {other.ends_at:%Y-%m-%d %H:%M} UTC): end it first"
                )
        connection.execute(
            deployments.insert(),
            {
                "name": spec.name,
                "devices": sorted(spec.devices),
                "starts_at": spec.starts_at,
                "ends_at": spec.ends_at,
                "target_fmr": spec.target_fmr,
                "purpose": spec.purpose.strip(),
                "authorised_by": spec.authorised_by.strip(),
                "retention_days": spec.retention_days,
                "created_by": spec.created_by,
                "created_at": utc_now(),
            },
        )


def get(engine: sa.Engine, name: str) -> Any:
    with engine.connect() as connection:
        row = connection.execute(sa.select(deployments).where(deployments.c.name == name)).first()
    if row is None:
        raise DeploymentError(f"no deployment {name!r} (edge deploy list)")
    return row


def period_end(d: Any) -> datetime:
    """When a deployment (a `deployments` row) ends: its stated end, or the moment it was ended if
    that came first."""
    return d.ends_at if d.ended_at is None else min(d.ended_at, d.ends_at)


@dataclass(frozen=True)
class Periods:
    """Which deployment each device served when: every deployment's devices and period (until its
    early end), read in one query, so a page of alerts is placed without a query per alert."""

    served: tuple[tuple[str, frozenset[str], datetime, datetime], ...]  # name, devices, start, until

    @classmethod
    def read(cls, engine: sa.Engine) -> Periods:
        d = deployments.c
        with engine.connect() as connection:
            rows = connection.execute(sa.select(d.name, d.devices, d.starts_at, d.ends_at, d.ended_at))
            served = [(str(r.name), frozenset(r.devices), r.starts_at, period_end(r)) for r in rows]
        return cls(tuple(sorted(served, key=lambda s: s[2], reverse=True)))

    def deployment_of(self, site: str, device_id: str, at: datetime) -> str | None:
        """The deployment that `site/device_id` served at `at`; None when none did."""
        device = f"{site}/{device_id}"
        return next(
            (name for name, devices, start, until in self.served if start <= at < until and device in devices), None
        )


def deployment_of(engine: sa.Engine, site: str, device_id: str, at: datetime) -> str | None:
    """The deployment that `site/device_id` served at `at`: one whose devices include it and whose
    period (until it ended, when it was ended early) contains `at`; None when none did."""
    return Periods.read(engine).deployment_of(site, device_id, at)


def _context(deployment: str, identity_id: str) -> str:
    """The associated data that ties a sealed value to its row's deployment and person."""
    return f"{deployment}/{identity_id}"


def add_person(
    engine: sa.Engine,
    vault: PhotoVault,
    vision: Vision,
    deployment: str,
    person: Person,
    reason: str,
    added_by: str,
    expires_at: datetime | None = None,
) -> Added:
    """Gate and describe the person's photos, then store them with their templates, sealed; a
    person none of whose photos passes is not added (nothing is written)."""
    d = get(engine, deployment)
    if d.ended_at is not None:
        raise DeploymentError(f"deployment {deployment!r} has ended: its watchlist is withdrawn")
    if not reason.strip():
        raise DeploymentError("say why the person is listed (--reason)")
    expires = expires_at or d.ends_at
    if expires > d.ends_at:
        raise DeploymentError(f"the listing cannot outlast the deployment (it ends {d.ends_at:%Y-%m-%d %H:%M} UTC)")
    (outcome,) = describe_people(vision, [person])
    added = Added(person.id, [p.name for p, _ in outcome.accepted], [(p.name, why) for p, why in outcome.rejected])
    if not outcome.accepted:
        return added
    context = _context(deployment, person.id)
    descriptors = [result.embedded().astype(np.float32).tobytes() for _, result in outcome.accepted]
    with engine.begin() as connection:
        listed = connection.execute(
            sa.select(people.c.id, people.c.removed_at).where(
                people.c.deployment == deployment, people.c.identity_id == person.id
            )
        ).first()
        if listed is not None and listed.removed_at is None:
            raise DeploymentError(f"{person.id!r} is already on {deployment!r}'s watchlist")
        if listed is not None:
            connection.execute(people.delete().where(people.c.id == listed.id))
        person_id = connection.execute(
            people.insert().returning(people.c.id),
            {
                "deployment": deployment,
                "identity_id": person.id,
                "name": person.name,
                "reason": reason.strip(),
                "added_by": added_by,
                "added_at": utc_now(),
                "expires_at": expires,
            },
        ).scalar_one()
        connection.execute(
            photos.insert(),
            [
                {
                    "person_id": person_id,
                    "file_name": path.name[:255],
                    "sealed_photo": vault.seal(path.read_bytes(), context),
                    "sealed_template": vault.seal(descriptor, context),
                    "quality_rank": result.quality.rank(),
                    "template_id": template_id(descriptor),
                }
                for (path, result), descriptor in zip(outcome.accepted, descriptors, strict=True)
            ],
        )
    return added


def remove_person(engine: sa.Engine, deployment: str, identity_id: str) -> None:
    """Take a person off the list: their photos and templates are deleted now."""
    with engine.begin() as connection:
        row = connection.execute(
            sa.select(people.c.id).where(
                people.c.deployment == deployment, people.c.identity_id == identity_id, people.c.removed_at.is_(None)
            )
        ).first()
        if row is None:
            raise DeploymentError(f"{identity_id!r} is not on {deployment!r}'s watchlist")
        connection.execute(photos.delete().where(photos.c.person_id == row.id))
        connection.execute(people.update().where(people.c.id == row.id).values(removed_at=utc_now()))


def listed_people(engine: sa.Engine, deployment: str, at: datetime | None = None) -> list[Any]:
    """Who is on the list at `at` (default now): added, not removed, not expired, of a deployment
    not ended (an ended deployment's list is withdrawn)."""
    at = at or utc_now()
    query = (
        sa.select(people)
        .join(deployments, deployments.c.name == people.c.deployment)
        .where(
            people.c.deployment == deployment,
            people.c.removed_at.is_(None),
            people.c.expires_at > at,
            sa.or_(deployments.c.ended_at.is_(None), deployments.c.ended_at > at),
        )
        .order_by(people.c.identity_id)
    )
    with engine.connect() as connection:
        return list(connection.execute(query))


def templates(
    engine: sa.Engine, vault: PhotoVault, deployment: str, at: datetime | None = None
) -> list[tuple[Any, np.ndarray]]:
    """Each listed person with their templates (n x 128 float32), opened: what a gallery is made of."""
    return [(person, descriptors) for person, _, descriptors in templates_with_ids(engine, vault, deployment, at)]


def templates_with_ids(
    engine: sa.Engine, vault: PhotoVault, deployment: str, at: datetime | None = None
) -> list[tuple[Any, tuple[str, ...], np.ndarray]]:
    """`templates` with each template's id (`edge.gallery.content.template_id`, the one match events
    carry), in photo order; computed from the template where a photo stored before ids has none."""
    result = []
    with engine.connect() as connection:
        for person in listed_people(engine, deployment, at):
            rows = connection.execute(
                sa.select(photos.c.sealed_template, photos.c.template_id)
                .where(photos.c.person_id == person.id)
                .order_by(photos.c.id)
            )
            context = _context(deployment, person.identity_id)
            opened = [(vault.open(sealed, context), stored) for sealed, stored in rows]
            ids = tuple(stored or template_id(blob) for blob, stored in opened)
            descriptors = np.stack([np.frombuffer(blob, dtype=np.float32) for blob, _ in opened])
            result.append((person, ids, descriptors))
    return result


def photo(engine: sa.Engine, vault: PhotoVault, deployment: str, identity_id: str) -> bytes | None:
    """The person's best reference photo, opened (for the operators of the deployment's sites)."""
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(photos.c.sealed_photo)
            .join(people, people.c.id == photos.c.person_id)
            .where(people.c.deployment == deployment, people.c.identity_id == identity_id)
            .order_by(photos.c.quality_rank.desc())
            .limit(1)
        ).first()
    return None if row is None else vault.open(row.sealed_photo, _context(deployment, identity_id))


def end(engine: sa.Engine, name: str, at: datetime | None = None) -> None:
    """End a deployment now (or at `at`): its watchlist is withdrawn; with no retention its photos
    and templates go at once (a retention period keeps them that long: `expired_retention`)."""
    d = get(engine, name)
    if d.ended_at is not None:
        raise DeploymentError(f"deployment {name!r} ended at {d.ended_at:%Y-%m-%d %H:%M} UTC")
    at = at or utc_now()
    with engine.begin() as connection:
        connection.execute(deployments.update().where(deployments.c.name == name).values(ended_at=at))
        if d.retention_days == 0:
            delete_photos(connection, name)


def delete_photos(connection: sa.Connection, deployment: str) -> None:
    ids = sa.select(people.c.id).where(people.c.deployment == deployment).scalar_subquery()
    connection.execute(photos.delete().where(photos.c.person_id.in_(ids)))


def summary(engine: sa.Engine) -> list[dict[str, Any]]:
    """Every deployment with its period, state and watchlist size (no photo, no template)."""
    now = utc_now()
    with engine.connect() as connection:
        rows = list(connection.execute(sa.select(deployments).order_by(deployments.c.starts_at)))
    return [
        {
            "name": r.name,
            "devices": r.devices,
            "starts_at": r.starts_at.isoformat(),
            "ends_at": r.ends_at.isoformat(),
            "state": "ended" if r.ended_at else ("running" if r.starts_at <= now < r.ends_at else "scheduled"),
            "purpose": r.purpose,
            "authorised_by": r.authorised_by,
            "retention_days": r.retention_days,
            "target_fmr": r.target_fmr,
            "watchlist": len(listed_people(engine, r.name)),
        }
        for r in rows
    ]
