"""Expected false alerts: each enrolled person's expected stranger FMR, and the gallery's sum.

The calibrated false match rate of an operating point is per comparison of one probe with one
template. A stranger is compared with every template of every person, so each person adds their
own chance of a false match: the calibrated rate times how much more often a stranger matches a
person with k templates than a person with one (measured on the cohort of strangers,
`Cohort.person_factor`; k itself, the union bound, where no cohort says otherwise). The gallery's
expected false alerts per 1,000 scans of strangers is 1,000 times the sum over its people, so a
1,000-person gallery at 1e-4 per comparison raises about one false alert per ten strangers.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge.vision.cohort import Cohort
from edge.vision.operating_point import OperatingPoint


def person_fmr(point: OperatingPoint, cohort: Cohort | None, templates: int) -> float | None:
    """Expected false match rate of one person with `templates` templates; None when the point's FMR is unknown."""
    if point.fmr is None:
        return None
    factor = float(templates) if cohort is None else cohort.person_factor(templates, point.threshold, point.mode)
    return min(1.0, point.fmr * factor)


def false_alerts_per_1000(point: OperatingPoint, cohort: Cohort | None, template_counts: Iterable[int]) -> float | None:
    """Expected false alerts per 1,000 scans of strangers: 1,000 x the sum of the people's FMRs."""
    if point.fmr is None:
        return None
    return 1000.0 * sum(person_fmr(point, cohort, k) or 0.0 for k in template_counts)
