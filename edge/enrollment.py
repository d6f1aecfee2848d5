"""Enrollment: photos of people -> gated descriptors -> templates in a gallery, and what the
people enrolled are expected to cost in false alerts.

One path for `edge enroll` (one person, or a folder of people), `edge bench` and
`scripts/bench_gallery.py`. Every photo goes through the stills pipeline and the quality gate: a
photo with no face, several faces, or a face too small, blurred or turned away is refused with
its reason, never enrolled. Photos are described first and the gallery is written only after,
so a run where nothing passes leaves the gallery file untouched (or uncreated).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.device.sources.images import IMAGE_SUFFIXES
from edge.gallery import GalleryStore, InvalidInput, check_identity_id, check_name
from edge.vision import FaceCountError, FaceResult, ImageError, Vision, load_image
from edge.vision.cohort import Cohort
from edge.vision.false_alerts import BASES, MEANING, expected_false_alerts, person_fmr
from edge.vision.operating_point import OperatingPoint


@dataclass(frozen=True)
class Person:
    """Someone to enroll: a display name, their photos, and an id (default: made from the name)."""

    name: str
    photos: tuple[Path, ...]
    identity_id: str | None = None

    def __post_init__(self) -> None:
        """Checked as the gallery will check them, so a bad id or name stops before any photo is read."""
        check_name(self.name)
        check_identity_id(self.id)

    @property
    def id(self) -> str:
        return self.identity_id or identity_id_for(self.name)


@dataclass
class Outcome:
    """What the gate made of one person's photos."""

    person: Person
    accepted: list[tuple[Path, FaceResult]] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)


def identity_id_for(name: str) -> str:
    """A stable id from a display name: "Ada Lovelace" -> "ada_lovelace"."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise InvalidInput(f"cannot make an id from the name {name!r}: give one (--id)")
    return slug


def people_in_folder(folder: Path) -> list[Person]:
    """One person per subfolder of `folder`, named by it, with its photos in name order.

    Files directly in `folder` and deeper subfolders are not read. Raises `InvalidInput` when
    `folder` is not a folder or holds no subfolder with a photo.
    """
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder")
    people = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        photos = tuple(sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        if photos:
            people.append(Person(sub.name, photos))
    if not people:
        raise InvalidInput(f"{folder} has no subfolder with photos: make one folder per person, named by the person")
    by_id: dict[str, str] = {}
    for person in people:
        if (other := by_id.setdefault(person.id, person.name)) != person.name:
            raise InvalidInput(f"{folder}: folders {other!r} and {person.name!r} both make the id {person.id!r}")
    return people


def describe_people(
    vision: Vision, people: Sequence[Person], on_photo: Callable[[], object] | None = None
) -> list[Outcome]:
    """Gate and describe every photo of every person; `on_photo()` is called after each one
    (a progress bar's update). Writes nothing."""
    outcomes = []
    for person in people:
        outcome = Outcome(person)
        for photo in person.photos:
            try:
                result = vision.describe_single(load_image(photo), str(photo))
            except (ImageError, FaceCountError) as e:
                outcome.rejected.append((photo, str(e)))
            else:
                if result.rejected is None:
                    outcome.accepted.append((photo, result))
                else:
                    outcome.rejected.append((photo, result.rejected))
            if on_photo is not None:
                on_photo()
        outcomes.append(outcome)
    return outcomes


def add_to_gallery(store: GalleryStore, outcomes: Sequence[Outcome]) -> None:
    """Add each person with an accepted photo, one transaction per person; the templates carry
    each photo's quality rank and file name (never the image).

    An id already enrolled under another name is refused for all before anything is added
    (raises `InvalidInput`), so a bad folder never leaves half its people in the gallery.
    """
    enrolled = {i.identity_id: i.name for i in store.identities()}
    clashes = [
        f"{o.person.id!r} is enrolled as {enrolled[o.person.id]!r}, not {o.person.name!r}"
        for o in outcomes
        if o.accepted and enrolled.get(o.person.id, o.person.name) != o.person.name
    ]
    if clashes:
        raise InvalidInput(f"nothing added: {'; '.join(clashes)} (remove the identity to rename it)")
    for o in outcomes:
        if o.accepted:
            store.add(
                o.person.id,
                o.person.name,
                np.stack([r.embedded() for _, r in o.accepted]),
                [r.quality.rank() for _, r in o.accepted],
                [p.name for p, _ in o.accepted],
            )


def rounded(value: float | None) -> float | None:
    """Six significant digits: an estimate, not a measurement to the last bit."""
    return None if value is None else float(f"{value:.6g}")


def enrolled_people(store: GalleryStore, point: OperatingPoint, cohort: Cohort) -> dict[str, Any]:
    """Who a gallery holds (names, ids, template counts; no embeddings) and the false alerts it is
    expected to raise at `point`, overall and per person (`edge.vision.false_alerts`)."""
    identities = store.identities()
    return {
        "version": store.version,
        "identities": len(identities),
        "templates": sum(i.templates for i in identities),
        "operating_point": point.as_dict(),
        "false_alerts_per_1000_scans": {
            "meaning": MEANING,
            **expected_false_alerts(point, cohort, [i.templates for i in identities]).details(),
        },
        "people": [
            {
                "identity_id": i.identity_id,
                "name": i.name,
                "templates": i.templates,
                "expected_stranger_fmr": {
                    basis: rounded(person_fmr(None if rate is None else rate.fmr, point, cohort, i.templates))
                    for basis, rate in zip(BASES, (point.mixed, point.bound), strict=True)
                },
                "enrolled_at": i.enrolled_at,
            }
            for i in identities
        ],
    }
