"""Simulated deployments: does a gallery raise the false alerts the device says it will?

The device states, for its gallery, how many false alerts per 1,000 scans of strangers to expect
(`edge.vision.false_alerts`: in a mixed crowd, and at most, in a crowd of the worst group), from
per-comparison rates and the cohort's multiplicity factors. Here the statement meets labelled
people. Each simulated watchlist enrolls K people, up to M photos each, in a gallery store with
the cohort's per-template scales, as `edge enroll` writes one; every photo of every other person
is a passer-by, matched with `Matcher.match` at the operating point in force, as the device's loop
matches a scan: matched to anyone, it is a false alert. The prediction is the device's own
(`expected_false_alerts` with the list's template counts).

Descriptors are computed once (`edge.central.evaluation.scores.describe_images`) and shared by every list.
Where the dataset compares only within a column (identities files: the source), a list and its
passers-by come from one value of it: the same person may carry different labels in different
sources, and an alert on them would be counted false when it is true.
"""

from __future__ import annotations

import csv
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.central.evaluation.dataset import Dataset, DatasetError
from edge.central.evaluation.stats import significant
from edge.gallery import GalleryStore
from edge.progress import progress
from edge.vision.cohort import Cohort
from edge.vision.false_alerts import BASES, Expectation, FalseAlerts, expected_false_alerts
from edge.vision.operating_point import OperatingPoint

LISTS, PHOTOS, SEED = 1000, 2, 0
BOOTSTRAP_DRAWS = 2000
SIZES = (1, 5, 10, 50)
RAM_FOLDER = Path("/dev/shm")
RULES = {
    "alert": "a passer-by (a described photo of someone not on the list) whose nearest template is within its "
    "threshold at the operating point in force, matched by the device's Matcher against a gallery built by the "
    "device's GalleryStore",
    "predicted": "the device's expected false alerts per 1,000 scans (mixed and bound) for each list's template "
    "counts, averaged over lists weighted by their scans (of the group, per group), with the interval of the "
    "calibration rate",
    "observed": "false alerts / scans x 1,000 over all lists; its 95% interval resamples whole lists "
    f"({BOOTSTRAP_DRAWS:,} bootstrap draws), since the people drawn onto the lists vary as much as the scans do "
    "(lists share passers-by, and a few people draw most false alerts)",
    "checks": "in_mixed_ci95: the observed rate lies in the mixed prediction's interval; overlaps_mixed_ci95: the "
    "two intervals overlap (with few scans, a count of 0 or 1 cannot lie in a small predicted interval); "
    "above_bound: the observed rate exceeds the bound's value",
}


@dataclass(frozen=True)
class Population:
    """The described images a simulation draws from: descriptor, person, group and pool of each
    (the pool is the value of the dataset's `within` column, "" without one)."""

    descriptors: np.ndarray
    people: np.ndarray
    groups: np.ndarray
    pools: np.ndarray
    within: str | None = None

    @classmethod
    def of(cls, dataset: Dataset, descriptors: np.ndarray) -> Population:
        """The images of an identities dataset with a descriptor (NaN rows are failures)."""
        with dataset.csv_path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if tuple(r["path"] for r in rows) != dataset.images:
            raise DatasetError(f"{dataset.csv_path} changed while it was evaluated")
        described = ~np.isnan(descriptors).any(axis=1)
        pools = [r[dataset.within] if dataset.within else "" for r in rows]
        return cls(
            descriptors[described],
            np.array(dataset.identities)[described],
            np.array([r[dataset.group_column] for r in rows])[described],
            np.array(pools)[described],
            dataset.within,
        )


@dataclass(frozen=True)
class Device:
    """What every simulated gallery is built and matched with, as on the device; galleries are
    written in `folder` and removed once matched."""

    point: OperatingPoint
    cohort: Cohort
    embedder_id: str
    embedder_sha256: str
    folder: Path


def scratch_folder() -> tempfile.TemporaryDirectory[str]:
    """A private folder for the throwaway galleries, in memory where the system has one: each
    enrolment is a committed transaction, about 15 ms on disk here and 0.4 ms in memory."""
    return tempfile.TemporaryDirectory(prefix="edge-watchlists-", dir=RAM_FOLDER if RAM_FOLDER.is_dir() else None)


@dataclass(frozen=True)
class Outcome:
    """One list: the device's expectation, its templates, and scans and alerts per passer-by group."""

    expected: FalseAlerts
    templates: int
    scans: Counter[str]
    alerts: Counter[str]


def deploy(device: Device, population: Population, enrolled: Mapping[str, np.ndarray], scans: np.ndarray) -> Outcome:
    """Enroll each person's photos (rows of `population`) in a new gallery and scan the rows `scans`."""
    path = device.folder / "watchlist.sqlite"
    with GalleryStore.create(path, device.embedder_id, device.embedder_sha256, scaler=device.cohort) as store:
        for n, (person, rows) in enumerate(enrolled.items()):
            store.add(f"p{n}", person, population.descriptors[rows])
        matcher = store.matcher(per_template=device.point.mode == "per_template")
    path.unlink()
    knob = device.point.threshold
    alerted = np.array([matcher.match(v, knob) is not None for v in population.descriptors[scans]], bool)
    groups = population.groups[scans]
    expected = expected_false_alerts(device.point, device.cohort, matcher.template_counts().values())
    return Outcome(expected, matcher.template_count, Counter(groups.tolist()), Counter(groups[alerted].tolist()))


class _Tally:
    """Scans and alerts of each list, overall (None) and per passer-by group, with the predictions
    summed weighted by scans (a list with more passers-by weighs more in the pooled rate)."""

    def __init__(self, seed: int) -> None:
        self.templates = 0
        self.per_list: dict[str | None, list[tuple[int, int]]] = {}  # (scans, alerts) of each list, 0s where none
        self.weighted: dict[tuple[str | None, str], np.ndarray] = {}  # scans x (figure, lo, hi); NaN: unknown
        self.seed = seed

    def add(self, outcome: Outcome) -> None:
        self.templates += outcome.templates
        lists = len(next(iter(self.per_list.values()), []))
        counts: dict[str | None, tuple[int, int]] = {None: (outcome.scans.total(), outcome.alerts.total())}
        counts |= {g: (n, outcome.alerts[g]) for g, n in outcome.scans.items()}
        for group in counts.keys() | self.per_list.keys():
            scans, alerts = counts.get(group, (0, 0))
            self.per_list.setdefault(group, [(0, 0)] * lists).append((scans, alerts))
            for basis in BASES:
                figures = scans * _figures(outcome.expected.of(basis))
                self.weighted[group, basis] = self.weighted.get((group, basis), 0.0) + figures

    @property
    def groups(self) -> list[str]:
        return sorted(g for g in self.per_list if g is not None)

    def scans(self, group: str | None) -> int:
        return sum(n for n, _ in self.per_list[group])

    def row(self, group: str | None) -> dict[str, Any]:
        """Scans, alerts, observed and predicted rates per 1,000 scans, and the checks of `RULES`."""
        per_list = np.array(self.per_list[group], np.int64)
        scans, alerts = (int(x) for x in per_list.sum(axis=0))
        value = significant(1000 * alerts / scans)
        ci = [significant(1000 * x) for x in _resampled_ci95(per_list, self.seed)]
        mixed, bound = (self._predicted(group, basis) for basis in BASES)
        return {
            "scans": scans,
            "alerts": alerts,
            "observed": {"per_1000": value, "ci95": ci},
            "predicted": {"mixed": mixed, "bound": bound},
            "in_mixed_ci95": None if mixed["ci95"] is None else mixed["ci95"][0] <= value <= mixed["ci95"][1],
            "overlaps_mixed_ci95": None if mixed["ci95"] is None else _overlap(ci, mixed["ci95"]),
            "above_bound": None if bound["per_1000"] is None else value > bound["per_1000"],
        }

    def _predicted(self, group: str | None, basis: str) -> dict[str, Any]:
        value, lo, hi = (
            None if np.isnan(x) else significant(float(x)) for x in self.weighted[group, basis] / self.scans(group)
        )
        return {"per_1000": value, "ci95": None if lo is None or hi is None else [lo, hi]}


def _resampled_ci95(per_list: np.ndarray, seed: int) -> tuple[float, float]:
    """95% percentile interval of alerts / scans over lists drawn with replacement from `per_list`
    (rows: scans, alerts of one list); resamples without a scan are left out."""
    rng = np.random.default_rng([seed, len(per_list)])
    drawn = per_list[rng.integers(0, len(per_list), (BOOTSTRAP_DRAWS, len(per_list)))].sum(axis=1)
    rates = drawn[drawn[:, 0] > 0, 1] / drawn[drawn[:, 0] > 0, 0]
    lo, hi = np.percentile(rates, [2.5, 97.5])
    return float(lo), float(hi)


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _figures(e: Expectation) -> np.ndarray:
    """(figure, lo, hi) of an expectation, NaN where unknown."""
    lo, hi = e.ci95 or (None, None)
    return np.array([np.nan if x is None else x for x in (e.per_1000, lo, hi)], float)


def simulate(device: Device, population: Population, size: int, lists: int, photos: int, seed: int) -> dict[str, Any]:
    """`lists` random watchlists of `size` people, each enrolled with up to `photos` of their photos
    (drawn at random), every other person of the list's pool a passer-by; the figures of `_Tally.row`
    overall and per group. A list's pool is drawn in proportion to its people, among the pools that
    leave passers-by; the draws depend on `seed` and `size` only."""
    rng = np.random.default_rng([seed, size])
    people = {pool: np.unique(population.people[population.pools == pool]) for pool in np.unique(population.pools)}
    eligible = sorted(pool for pool, who in people.items() if who.size > size)
    if not eligible:
        largest = max((who.size for who in people.values()), default=0)
        where = f"one {population.within}" if population.within else "the set"
        return {
            "size": size,
            "supported": False,
            "reason": f"needs more than {size} people with a descriptor in {where} to leave passers-by; "
            f"the most is {largest}",
        }
    weights = np.array([people[pool].size for pool in eligible], float)
    tally = _Tally(seed)
    for _ in progress(range(lists), desc=f"watchlists of {size}", unit="list"):
        pool = eligible[rng.choice(len(eligible), p=weights / weights.sum())]
        in_pool = population.pools == pool
        members = rng.choice(people[pool], size, replace=False)
        enrolled = {}
        for person in members.tolist():
            rows = np.flatnonzero(in_pool & (population.people == person))
            enrolled[person] = rng.choice(rows, min(photos, rows.size), replace=False)
        scans = np.flatnonzero(in_pool & ~np.isin(population.people, members))
        tally.add(deploy(device, population, enrolled, scans))
    return {
        "size": size,
        "supported": True,
        "lists": lists,
        "templates_per_list": significant(tally.templates / lists),
        "overall": tally.row(None),
        "groups": {g: tally.row(g) for g in tally.groups},
    }


def watchlists(
    device: Device, population: Population, sizes: list[int], lists: int, photos: int, seed: int
) -> dict[str, Any]:
    """The report section: the operating point, the simulation's settings and rules, one entry per size."""
    return {
        "operating_point": device.point.as_dict(),
        "lists": lists,
        "photos": photos,
        "seed": seed,
        "pools": population.within,
        "rules": RULES,
        "sizes": [simulate(device, population, size, lists, photos, seed) for size in sizes],
    }
