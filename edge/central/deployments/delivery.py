"""Delivering each deployment's gallery to its devices, and recording every push.

`deliver` pushes the watchlist as it stands now to a deployment's devices (sealed to each device,
signed, retained: a device offline now gets it when it reconnects, and the next delivery
replaces it) and records each push in `gallery_deliveries` with why it went and who sent it.
`deliver_due` is what runs by itself (the console, every few seconds): every started deployment
whose devices do not hold its current gallery gets it, and an ended one (or one past its end,
whose people have all expired) sends the empty gallery to each device still holding its list.
A device served by a running deployment is left to that deployment alone, so the withdrawal of
the one before never replaces the gallery of the one after. `reported` sets what each device
reports against what was last delivered to it, and flags a device still carrying a withdrawn
gallery.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edge.central.deployments.gallery import watchlist_bundle
from edge.central.deployments.schema import adjustments, deliveries, deployments, people
from edge.central.deployments.vault import PhotoVault
from edge.central.deployments.watchlist import get
from edge.central.fleet.folder import FleetDir, parse_device
from edge.central.fleet.push import MessageError, push_gallery
from edge.config import Settings
from edge.errors import OperatorError
from edge.gallery import Bundle
from edge.link import LinkError
from edge.link.payloads import utc_now

log = logging.getLogger(__name__)

BY_HAND = "by hand"  # the reason `edge deploy deliver` gives


def deliver(
    engine: sa.Engine,
    vault: PhotoVault,
    deployment: str,
    fleet: FleetDir,
    broker_url: str,
    settings: Settings,
    wait_s: float | None = None,
    reason: str = BY_HAND,
    by: str = "cli",
) -> list[dict[str, Any]]:
    """Push the watchlist as it stands now (nobody, once the deployment ended) to each of its
    devices and record each push; with `wait_s`, each device's answer (a device that refuses or
    stays silent raises `MessageError`, its push recorded all the same: it was sent and retained)."""
    bundle = watchlist_bundle(engine, vault, deployment, settings)
    return [
        _push(engine, fleet, broker_url, deployment, device, bundle, wait_s, reason, by)
        for device in get(engine, deployment).devices
    ]


def _push(
    engine: sa.Engine,
    fleet: FleetDir,
    broker_url: str,
    deployment: str,
    device: str,
    bundle: Bundle,
    wait_s: float | None,
    reason: str,
    by: str,
) -> dict[str, Any]:
    """One device's push, recorded once it is published (`MessageError` comes only after that)."""
    try:
        report = push_gallery(fleet, *parse_device(device), bundle, broker_url, wait_s, retain=True)
    except MessageError:
        _record(engine, deployment, device, bundle, reason, by)
        raise
    _record(engine, deployment, device, bundle, reason, by)
    return {"deployment": deployment, "reason": reason, **report}


def _record(engine: sa.Engine, deployment: str, device: str, bundle: Bundle, reason: str, by: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            deliveries.insert(),
            {
                "deployment": deployment,
                "device": device,
                "gallery_version": bundle.version,
                "people": len(bundle.identities),
                "reason": reason[:64],
                "delivered_by": by[:64],
                "delivered_at": utc_now(),
            },
        )


def latest_deliveries(connection: sa.Connection) -> dict[str, Any]:
    """Each device's latest delivery, of any deployment (device -> row)."""
    rows = connection.execute(sa.select(deliveries).order_by(deliveries.c.delivered_at, deliveries.c.id))
    return {row.device: row for row in rows}


def _running(d: Any, now: datetime) -> bool:
    return d.ended_at is None and d.starts_at <= now < d.ends_at


def _targets(d: Any, holders: dict[str, str], latest: dict[str, Any]) -> list[str]:
    """The devices `d` may deliver to now: those it serves while it runs; once it stopped, those
    still holding a list of its own that no running deployment serves."""
    served = [device for device in d.devices if holders.get(device, d.name) == d.name]
    if d.name in holders.values():
        return served
    return [x for x in served if x in latest and latest[x].deployment == d.name and latest[x].people > 0]


def _reason(connection: sa.Connection, d: Any, last: Any, now: datetime) -> str:
    """Why `d`'s gallery goes to a device whose last delivery was `last` (None: never)."""
    if d.ended_at is not None or now >= d.ends_at:
        return "end"
    if last is None or last.deployment != d.name:
        return "start"
    since = last.delivered_at
    p, a = people.c, adjustments.c
    checks = (
        ("person added", sa.select(p.id).where(p.deployment == d.name, p.added_at > since)),
        ("person removed", sa.select(p.id).where(p.deployment == d.name, p.removed_at > since)),
        ("expiry", sa.select(p.id).where(p.deployment == d.name, p.expires_at > since, p.expires_at <= now)),
        (
            "feedback",
            sa.select(a.id).where(a.deployment == d.name, sa.or_(a.made_at > since, a.reverted_at > since)),
        ),
    )
    found = [why for why, query in checks if connection.execute(query.limit(1)).first() is not None]
    return ", ".join(found) or "watchlist changed"


def deliver_due(
    engine: sa.Engine,
    vault: PhotoVault,
    fleet: FleetDir,
    broker_url: str,
    settings: Settings,
    by: str = "console",
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Deliver every gallery a device should hold and does not (by the records), each with why;
    a device that cannot be reached now is logged in one line and tried again at the next call.
    Returns what was sent (with `error` for a push that failed)."""
    now = now or utc_now()
    with engine.connect() as connection:
        started = list(connection.execute(sa.select(deployments).where(deployments.c.starts_at <= now)))
        latest = latest_deliveries(connection)
    holders = {device: d.name for d in started if _running(d, now) for device in d.devices}
    sent = []
    for d in started:
        targets = _targets(d, holders, latest)
        if not targets:
            continue
        bundle = watchlist_bundle(engine, vault, d.name, settings, now)
        for device in targets:
            last = latest.get(device)
            if last is not None and last.deployment == d.name and last.gallery_version == bundle.version:
                continue
            with engine.connect() as connection:
                reason = _reason(connection, d, last, now)
            try:
                sent.append(_push(engine, fleet, broker_url, d.name, device, bundle, None, reason, by))
            except (OperatorError, LinkError) as e:
                log.warning("deployment %s: gallery for %s not delivered (%s): next round retries", d.name, device, e)
                sent.append({"deployment": d.name, "device": device, "reason": reason, "error": str(e)})
    return sent


def reported(
    engine: sa.Engine, rows: Iterable[dict[str, Any]], now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Per device (of the fleet `rows`, `edge.central.fleet.status.DeviceRow.as_json`, and of the
    deliveries): the gallery version it reports against the last one delivered to it, and
    `withdrawn` when it reports a list that was taken back (a delivery a later one replaced,
    or one of a deployment that has ended), so someone can see to it."""
    now = now or utc_now()
    with engine.connect() as connection:
        history = list(connection.execute(sa.select(deliveries).order_by(deliveries.c.delivered_at, deliveries.c.id)))
        stopped = {
            name
            for name, ended_at, ends_at in connection.execute(
                sa.select(deployments.c.name, deployments.c.ended_at, deployments.c.ends_at)
            )
            if ended_at is not None or ends_at <= now
        }
    by_device: dict[str, list[Any]] = {}
    for row in history:
        by_device.setdefault(row.device, []).append(row)
    fleet = {row["device"]: row for row in rows}
    result = {}
    for device in sorted(set(fleet) | set(by_device)):
        past = by_device.get(device, [])
        last = past[-1] if past else None
        status = fleet.get(device, {})
        version = status.get("gallery_version")
        carried = [r for r in past if r.gallery_version == version and r.people > 0]
        withdrawn = (
            last is not None and bool(carried) and (last.gallery_version != version or last.deployment in stopped)
        )
        result[device] = {
            "device": device,
            "state": status.get("state", "unknown"),
            "reported_version": version,
            "deployment": None if last is None else last.deployment,
            "delivered_version": None if last is None else last.gallery_version,
            "delivered_people": None if last is None else last.people,
            "delivered_at": None if last is None else last.delivered_at.isoformat(),
            "reason": None if last is None else last.reason,
            "in_step": last is not None and version == last.gallery_version,
            "withdrawn": withdrawn,
            "withdrawn_from": carried[-1].deployment if withdrawn else None,
        }
    return result
