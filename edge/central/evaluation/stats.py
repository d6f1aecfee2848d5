"""How sure a measured rate is, and how much data a claimed rate needs.

A rate is always shown with its counts (k of n) and a 95% Wilson score interval: with the few
hundred comparisons a demographic group has here, the interval is as wide as the differences
between groups, and a bare percentage would hide that. The mixed-crowd rate that predicts false
alerts also resamples the people compared (`PeopleRate`): a prediction for new people is only as
sure as the number of people it was measured on.

Two rules decide what the data can speak for:
- **Sizeable group**: at least `MIN_IDENTITIES` people and `MIN_PAIRS` genuine and impostor
  comparisons. Smaller groups are still reported, flagged with the reason, never hidden.
- **Support for a claim "FMR <= F"** (the rule of three): at least ceil(3 / F) impostor
  comparisons. With zero false matches among n comparisons the 95% upper bound on the rate is
  about 3 / n, so fewer comparisons cannot back the claim even when none of them matched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.vision.rates import Z95, wilson  # noqa: F401 (one implementation, shared with the device)

MIN_IDENTITIES = 5
MIN_PAIRS = 20
SIZEABLE_RULE = (
    f"a group is sizeable with at least {MIN_IDENTITIES} identities and at least {MIN_PAIRS} "
    f"genuine and {MIN_PAIRS} impostor comparisons"
)
SUPPORT_RULE = (
    "a claim FMR <= F needs at least ceil(3 / F) impostor comparisons (rule of three: with none "
    "falsely matched, the 95% upper bound is then about F)"
)


@dataclass(frozen=True)
class Rate:
    """k events out of n trials."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    def to_json(self) -> dict:
        lo, hi = self.ci95
        value = self.value
        return {
            "rate": None if value is None else significant(value),
            "k": self.k,
            "n": self.n,
            "ci95": [significant(lo), significant(hi)],
        }


PEOPLE_DRAWS = 1000


@dataclass(frozen=True)
class PeopleRate(Rate):
    """k false matches of n comparisons between people, whose interval also resamples the people
    (`people_resampled_ci95`): false matches cluster on lookalikes (on the cohort's calibration
    quarter 84 came from 74 pairs of people), so comparisons are not independent trials."""

    interval: tuple[float, float] = (0.0, 1.0)

    @property
    def ci95(self) -> tuple[float, float]:
        return self.interval


def people_resampled_ci95(
    first: np.ndarray, second: np.ndarray, matched: np.ndarray, people: int, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the rate matched / compared over comparisons between person `first[i]` and
    person `second[i]` (indices below `people`), as the wider of Wilson's and a bootstrap that draws
    the people with replacement (a person drawn w times brings their comparisons w times, so a pair
    weighs w_a * w_b; `PEOPLE_DRAWS` draws). Wilson's keeps the rule of three when nothing matched.
    Memory grows with people squared: 250 MB for the cohort's 5,561."""
    k, n = int(np.count_nonzero(matched)), int(first.size)
    lo, hi = wilson(k, n)
    if k == 0:
        return lo, hi
    cells = first.astype(np.int64) * people + second
    compared = np.bincount(cells, minlength=people * people).reshape(people, people).astype(np.float64)
    hit_cells, hits = np.unique(cells[np.asarray(matched, bool)], return_counts=True)
    hit_first, hit_second = np.divmod(hit_cells, people)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(people, np.full(people, 1 / people), size=PEOPLE_DRAWS).astype(np.float64)
    drawn_compared = np.einsum("dp,dp->d", weights @ compared, weights)
    drawn_hits = (weights[:, hit_first] * weights[:, hit_second]) @ hits
    rates = drawn_hits[drawn_compared > 0] / drawn_compared[drawn_compared > 0]
    low, high = np.percentile(rates, [2.5, 97.5])
    return min(lo, float(low)), max(hi, float(high))


def significant(x: float, digits: int = 6) -> float:
    """`x` to `digits` significant digits: a rate of 1e-6 keeps its digits (rounding to decimals would not)."""
    return float(f"{x:.{digits}g}")


def min_comparisons(target_fmr: float) -> int:
    """Impostor comparisons needed to support "FMR <= target_fmr" (rule of three)."""
    if not 0 < target_fmr < 1:
        raise ValueError(f"a false match rate must lie between 0 and 1, got {target_fmr}")
    return math.ceil(3 / target_fmr - 1e-9)


def lowest_supported_fmr(impostor_pairs: int) -> float:
    """The smallest FMR that `impostor_pairs` comparisons can support (inverse of `min_comparisons`)."""
    return 3 / impostor_pairs if impostor_pairs else 1.0


def sizeable(identities: int, genuine_pairs: int, impostor_pairs: int) -> tuple[bool, str | None]:
    """(is the group sizeable, why not) under `SIZEABLE_RULE`."""
    short = []
    if identities < MIN_IDENTITIES:
        short.append(f"{identities} {'identity' if identities == 1 else 'identities'} (< {MIN_IDENTITIES})")
    if genuine_pairs < MIN_PAIRS:
        short.append(f"{genuine_pairs} genuine pairs (< {MIN_PAIRS})")
    if impostor_pairs < MIN_PAIRS:
        short.append(f"{impostor_pairs} impostor pairs (< {MIN_PAIRS})")
    return (not short), ("; ".join(short) or None)
