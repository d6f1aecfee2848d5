"""Negative feedback: an alert adjudicated false tightens, or quarantines, the template that matched.

A false alert at distance d on template T says T's threshold is too loose where that camera
stands. `propose` prices tightening T's threshold to just below d (d - 0.0001, rounded down to 4
decimals) from the embedder's cohort; `apply` records the change (tighten, or quarantine: T left
out of the gallery while the person keeps their other templates), `revert` takes it back. Every
change is a row of `template_adjustments` (who, when, the alert, the figures), never deleted, so
the deployment's report lists them (`changes`); the deployment's gallery (`gallery.watchlist_bundle`)
applies the active ones, and delivering it makes a new gallery version reach the devices.

The figures (`Pricing`: the configured embedder's calibration and cohort):

- expected false alerts per 1,000 scans, of this template: 1,000 x the false match rate per
  comparison that the embedder's per-template calibration curve (`fmr_at`, a crowd as mixed as
  the calibration data's impostors) gives at the template's own knob, its threshold divided by its
  scale: before (the threshold in force, from the alert) and after (the new threshold; 0 once
  quarantined). Scales make every template's rate at a knob the curve's rate at that knob, so the
  figure is the device's own predicted rate, one template's share of it. None outside the curve.
- the person's expected miss rate: the share of the cohort's genuine comparisons (a person's face
  against one of their own templates) whose distance divided by the template's scale lies beyond
  the person's loosest remaining normalized threshold, knob x factor (`Cohort.genuine_miss`). A
  person is missed only when every template misses, so with several templates this is an upper
  bound: it rises only when the template changed was the person's loosest. None when the cohort
  file has no genuine block ("not measured").

The factor stored makes the template's threshold knob x scale x factor equal the new threshold at
the knob the alert was raised at (its `threshold`); several active tightenings of one template: the
smallest factor counts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edge.central.deployments.schema import adjustments
from edge.central.deployments.vault import PhotoVault
from edge.central.deployments.watchlist import deployment_of, listed_people, templates_with_ids
from edge.central.trial.schema import events
from edge.central.trial.store import TrialStore
from edge.config import Settings
from edge.device.parts import configured_embedder, load_cohort
from edge.errors import OperatorError
from edge.link.payloads import utc_now
from edge.vision import ModelEntry
from edge.vision.cohort import Cohort
from edge.vision.operating_point import fmr_at

KINDS = ("tighten", "quarantine")
FALSE = ("false_alert", "confirmed_false")
MARGIN = 0.0001  # the new threshold lies this far below the false alert's distance, at least


class FeedbackError(OperatorError):
    """A feedback change cannot be proposed, applied or reverted as asked."""


@dataclass(frozen=True)
class Proposal:
    """What tightening the matched template to just below a false alert's distance costs and saves."""

    event_id: str
    deployment: str
    identity_id: str
    template_id: str
    distance: float  # the alert's score
    threshold: float  # the template's threshold in force when it alerted (from the alert)
    new_threshold: float  # just below the distance
    factor: float  # stored so that knob x scale x factor = new_threshold at the alert's knob
    miss_before: float | None  # the person's expected miss rate (None: not measured)
    miss_after: float | None  # ... with this template tightened
    miss_quarantined: float | None  # ... with this template left out instead
    false_alerts_per_1000_before: float | None  # this template's expected false alerts per 1,000 scans
    false_alerts_per_1000_after: float | None  # ... at the new threshold (0 when quarantined; None: not measured)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Pricing:
    """What a proposal's figures come from: the embedder's per-template calibration curve (false
    alerts) and its cohort (scales, genuine distances: misses)."""

    embedder: ModelEntry
    cohort: Cohort

    @classmethod
    def of(cls, settings: Settings) -> Pricing:
        """The configured embedder's (the devices' own)."""
        embedder = configured_embedder(settings)
        return cls(embedder, load_cohort(settings, embedder.model_id))

    def false_alerts_per_1000(self, threshold: float, scale: float) -> float | None:
        fmr = fmr_at(self.embedder, threshold / scale, "overall", "per_template")
        return None if fmr is None else round(1000 * fmr, 4)


@dataclass(frozen=True)
class _Template:
    """One listed template of the person an alert matched, and what is in force on it."""

    scale: float
    factors: dict[str, float]  # the person's templates not quarantined: id -> factor in force (1: none)
    quarantined: frozenset[str]  # the person's template ids quarantined now


def propose(engine: sa.Engine, vault: PhotoVault, pricing: Pricing, event_id: str) -> Proposal:
    """The proposal for one alert; refused in one line unless the alert is tied to a listed template
    of a deployment and its verdict that counts (the engagement's, else the adjudication's) is false."""
    event = _event(engine, event_id)
    deployment = deployment_of(engine, event.site, event.device_id, event.ts)
    if deployment is None:
        raise FeedbackError(
            f"alert {event_id} from {event.site}/{event.device_id} at {event.ts:%Y-%m-%d %H:%M} UTC "
            "belongs to no deployment"
        )
    _check_false(engine, event_id)
    template = _template(engine, vault, pricing.cohort, deployment, event.identity_id, event.template_id)
    if event.template_id in template.quarantined:
        raise FeedbackError(f"template {event.template_id} of {event.identity_id} is quarantined already")
    knob = float(event.threshold)
    threshold = float(event.template_threshold if event.template_threshold is not None else event.threshold)
    distance = float(event.score)
    new_threshold = math.floor((distance - MARGIN) * 1e4) / 1e4
    if new_threshold <= 0:
        raise FeedbackError(f"alert {event_id} is at distance {distance}: no threshold lies below it")
    factor = min(new_threshold / (knob * template.scale), 1.0) if knob > 0 else 1.0
    tightened = {**template.factors, event.template_id: min(factor, template.factors[event.template_id])}
    left = {t: f for t, f in template.factors.items() if t != event.template_id}
    cohort = pricing.cohort
    return Proposal(
        event_id=event_id,
        deployment=deployment,
        identity_id=event.identity_id,
        template_id=event.template_id,
        distance=distance,
        threshold=threshold,
        new_threshold=new_threshold,
        factor=round(factor, 6),
        miss_before=_miss(cohort, knob, template.factors),
        miss_after=_miss(cohort, knob, tightened),
        miss_quarantined=_miss(cohort, knob, left),
        false_alerts_per_1000_before=pricing.false_alerts_per_1000(threshold, template.scale),
        false_alerts_per_1000_after=pricing.false_alerts_per_1000(new_threshold, template.scale),
    )


def apply(engine: sa.Engine, vault: PhotoVault, pricing: Pricing, event_id: str, kind: str, by: str) -> int:
    """Record `kind` ("tighten" or "quarantine") on the alert's template; returns the adjustment id.
    The deployment's next gallery carries it (deliver it to the devices)."""
    if kind not in KINDS:
        raise FeedbackError(f"kind {kind!r}: use tighten or quarantine")
    if not by.strip():
        raise FeedbackError("say who makes the change (--by)")
    proposal = propose(engine, vault, pricing, event_id)
    template = _template(engine, vault, pricing.cohort, proposal.deployment, proposal.identity_id, proposal.template_id)
    if kind == "quarantine" and len(template.factors) <= 1:
        raise FeedbackError(
            f"template {proposal.template_id} is {proposal.identity_id}'s last: the person stays listed while "
            "other templates remain (tighten it, or remove the person)"
        )
    if kind == "tighten" and template.factors[proposal.template_id] <= proposal.factor:
        raise FeedbackError(
            f"template {proposal.template_id} is tightened to factor {template.factors[proposal.template_id]:g} "
            f"already, at or below this alert's {proposal.factor:g}"
        )
    figures = {**proposal.as_json(), "kind": kind}
    if kind == "quarantine":
        figures.update(miss_after=proposal.miss_quarantined, false_alerts_per_1000_after=0.0)
    with engine.begin() as connection:
        return int(
            connection.execute(
                adjustments.insert().returning(adjustments.c.id),
                {
                    "deployment": proposal.deployment,
                    "identity_id": proposal.identity_id,
                    "template_id": proposal.template_id,
                    "kind": kind,
                    "factor": proposal.factor if kind == "tighten" else None,
                    "threshold_before": proposal.threshold,
                    "threshold_after": proposal.new_threshold if kind == "tighten" else None,
                    "event_id": event_id,
                    "figures": figures,
                    "made_by": by.strip(),
                    "made_at": utc_now(),
                },
            ).scalar_one()
        )


def revert(engine: sa.Engine, adjustment_id: int, by: str) -> str:
    """Take an adjustment back: the template is as it was before it (deliver the gallery again).
    Returns the adjustment's deployment."""
    if not by.strip():
        raise FeedbackError("say who reverts the change (--by)")
    with engine.begin() as connection:
        row = connection.execute(sa.select(adjustments).where(adjustments.c.id == adjustment_id)).first()
        if row is None:
            raise FeedbackError(f"no adjustment {adjustment_id} (edge deploy feedback list DEPLOYMENT)")
        if row.reverted_at is not None:
            raise FeedbackError(
                f"adjustment {adjustment_id} was reverted at {row.reverted_at:%Y-%m-%d %H:%M} UTC by {row.reverted_by}"
            )
        connection.execute(
            adjustments.update()
            .where(adjustments.c.id == adjustment_id)
            .values(reverted_by=by.strip(), reverted_at=utc_now())
        )
    return str(row.deployment)


def changes(engine: sa.Engine, deployment: str) -> list[dict[str, Any]]:
    """Every adjustment of the deployment, active or reverted, oldest first, JSON-ready."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(adjustments).where(adjustments.c.deployment == deployment).order_by(adjustments.c.id)
        ).mappings()
        return [_as_json(row) for row in rows]


def change(engine: sa.Engine, adjustment_id: int) -> dict[str, Any]:
    """One adjustment, as `changes` lists it."""
    with engine.connect() as connection:
        row = connection.execute(sa.select(adjustments).where(adjustments.c.id == adjustment_id)).mappings().first()
    if row is None:
        raise FeedbackError(f"no adjustment {adjustment_id} (edge deploy feedback list DEPLOYMENT)")
    return _as_json(row)


def _as_json(row: sa.RowMapping) -> dict[str, Any]:
    return {
        **{k: v for k, v in row.items() if k not in ("made_at", "reverted_at")},
        "made_at": row["made_at"].isoformat(),
        "reverted_at": None if row["reverted_at"] is None else row["reverted_at"].isoformat(),
        "active": row["reverted_at"] is None,
    }


def active(engine: sa.Engine, deployment: str, at: datetime | None = None) -> dict[tuple[str, str], float | None]:
    """The adjustments in force at `at` (default now), per (identity id, template id): None for a
    quarantined template, else the smallest factor of its tightenings. What the gallery applies."""
    at = at or utc_now()
    t = adjustments.c
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(t.identity_id, t.template_id, t.kind, t.factor)
            .where(t.deployment == deployment, t.made_at <= at, sa.or_(t.reverted_at.is_(None), t.reverted_at > at))
            .order_by(t.id)
        )
        result: dict[tuple[str, str], float | None] = {}
        for identity_id, template, kind, factor in rows:
            key = (identity_id, template)
            if kind == "quarantine" or (key in result and result[key] is None):
                result[key] = None
            else:
                result[key] = min(float(factor), result.get(key) or 1.0)
        return result


def _event(engine: sa.Engine, event_id: str) -> Any:
    with engine.connect() as connection:
        event = connection.execute(sa.select(events).where(events.c.event_id == event_id)).first()
    if event is None:
        raise FeedbackError(f"no alert {event_id} in the trial database")
    if event.template_id is None:
        raise FeedbackError(
            f"alert {event_id} was sent by a device before template ids: it cannot be tied to a template"
        )
    return event


def _check_false(engine: sa.Engine, event_id: str) -> None:
    latest = TrialStore(engine).latest_verdicts([event_id])[event_id]
    counting = latest.engagement or latest.adjudication
    if counting is None or counting["outcome"] not in FALSE:
        said = "no verdict" if counting is None else f"verdict {counting['outcome']}"
        raise FeedbackError(
            f"alert {event_id} has {said}: feedback takes an alert adjudicated false_alert or confirmed_false"
        )


def _template(
    engine: sa.Engine, vault: PhotoVault, cohort: Cohort, deployment: str, identity_id: str, template_id: str
) -> _Template:
    listed = {p.identity_id for p in listed_people(engine, deployment)}
    if identity_id not in listed:
        raise FeedbackError(f"{identity_id} is no longer on {deployment}'s watchlist: nothing to tighten")
    for person, ids, descriptors in templates_with_ids(engine, vault, deployment):
        if person.identity_id != identity_id:
            continue
        if template_id not in ids:
            raise FeedbackError(f"template {template_id} is no longer on {deployment}'s watchlist ({identity_id})")
        in_force = active(engine, deployment)
        quarantined = frozenset(t for t in ids if (identity_id, t) in in_force and in_force[(identity_id, t)] is None)
        factors = {t: in_force.get((identity_id, t)) or 1.0 for t in ids if t not in quarantined}
        scale = float(cohort.scales(descriptors[ids.index(template_id)][None])[0])
        return _Template(scale, factors, quarantined)
    raise FeedbackError(f"{identity_id} is no longer on {deployment}'s watchlist: nothing to tighten")


def _miss(cohort: Cohort, knob: float, factors: dict[str, float]) -> float | None:
    """The person's expected miss rate with these templates (id -> factor): see the module docstring."""
    if not factors:
        return None
    miss = cohort.genuine_miss(knob * max(factors.values()))
    return None if miss is None else round(miss, 4)
