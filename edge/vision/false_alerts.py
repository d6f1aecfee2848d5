"""Expected false alerts: each enrolled person's expected stranger FMR, and the gallery's sum.

The calibrated false match rate of an operating point is per comparison of one probe with one
template. A stranger is compared with every template of every person, so each person adds their
own chance of a false match: the per-comparison rate times how much more often a stranger matches
a person with k templates than a person with one (measured on the cohort of strangers,
`Cohort.person_factor`; k itself, the union bound, where no cohort says otherwise). The gallery's
expected false alerts per 1,000 scans of strangers is 1,000 times the sum over its people, so a
1,000-person gallery at 1e-4 per comparison raises about one false alert per ten strangers.

Two figures, from two per-comparison rates of the operating point (`OperatingPoint.mixed`,
`OperatingPoint.bound`), each with the calibration data's 95% interval:
- **mixed**: the passers-by are a crowd mixed as the calibration data's impostors are, people of
  every group (the FMR over all impostor comparisons): what a street is expected to raise;
- **bound**: every passer-by shares the enrolled person's demographic group, and that group is
  the worst one (its within-group FMR): the most a crowd of one group raises. The worst-group
  target of the shipped operating point is a promise about this figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edge.vision.cohort import Cohort
from edge.vision.operating_point import MeasuredRate, OperatingPoint

MIXED, BOUND = "mixed", "bound"
LEGACY_DETAIL = "expected_false_alerts_per_1000_scans"  # the one figure of earlier devices: the bound
BASES = (MIXED, BOUND)
SHORT = {MIXED: "in a mixed crowd", BOUND: "at most, in a crowd of the worst group"}
MEANING = {
    MIXED: "passers-by of every group, as mixed as the calibration data's impostors: the false match rate "
    "over all impostor comparisons",
    BOUND: "every passer-by shares the enrolled person's group, the worst one: its within-group false match rate",
}


@dataclass(frozen=True)
class Expectation:
    """Expected false alerts per 1,000 scans of strangers with its 95% interval (None: the
    operating point's rate for it is unknown, or has no interval)."""

    per_1000: float | None
    ci95: tuple[float, float] | None = None


@dataclass(frozen=True)
class FalseAlerts:
    """The gallery's two expectations (see the module docstring)."""

    mixed: Expectation
    bound: Expectation

    def of(self, basis: str) -> Expectation:
        return self.mixed if basis == MIXED else self.bound

    @classmethod
    def from_details(cls, details: Mapping[str, object]) -> FalseAlerts:
        """Both figures from a device's status details (`details`); from a device before the two
        figures, its one figure (`expected_false_alerts_per_1000_scans`) was the bound."""

        def number(key: str) -> float | None:
            value = details.get(key)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        def expectation(basis: str) -> Expectation:
            key = f"false_alerts_per_1000_{basis}"
            lo, hi = number(f"{key}_lo"), number(f"{key}_hi")
            return Expectation(number(key), None if lo is None or hi is None else (lo, hi))

        if all(f"false_alerts_per_1000_{b}" not in details for b in BASES):
            return cls(Expectation(None), Expectation(number(LEGACY_DETAIL)))
        return cls(expectation(MIXED), expectation(BOUND))

    def details(self) -> dict[str, float | None]:
        """The status details that carry both, rounded, with their intervals."""
        out: dict[str, float | None] = {}
        for basis in BASES:
            e = self.of(basis)
            key = f"false_alerts_per_1000_{basis}"
            out[key] = _rounded(e.per_1000)
            out[f"{key}_lo"] = None if e.ci95 is None else _rounded(e.ci95[0])
            out[f"{key}_hi"] = None if e.ci95 is None else _rounded(e.ci95[1])
        return out


def over_limit(expected: FalseAlerts, limit: float, basis: str) -> str | None:
    """Why the gallery is over `limit` of the `basis` figure (words for a refusal), or None."""
    figure = expected.of(basis).per_1000
    if figure is None or figure <= limit:
        return None
    return (
        f"expect {figure:.2f} false alerts per 1,000 scans of strangers {SHORT[basis]}, above "
        f"match.max_false_alerts_per_1000_scans = {limit:g}, which limits the {basis} figure "
        f"(match.max_false_alerts_basis; {MEANING[basis]})"
    )


def per_1000(e: Expectation) -> str:
    """ "2.1 (1.1-4.0)": a figure with its interval, for logs and tables; "unknown" without one."""
    if e.per_1000 is None:
        return "unknown"
    return f"{e.per_1000:.2f}" + ("" if e.ci95 is None else f" ({e.ci95[0]:.2f}-{e.ci95[1]:.2f})")


def _rounded(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.4g}")


def person_fmr(rate: float | None, point: OperatingPoint, cohort: Cohort | None, templates: int) -> float | None:
    """Expected false match rate of one person with `templates` templates at a per-comparison
    `rate` of the point; None when the rate is unknown."""
    if rate is None:
        return None
    factor = float(templates) if cohort is None else cohort.person_factor(templates, point.threshold, point.mode)
    return min(1.0, rate * factor)


def _expectation(
    rate: MeasuredRate | None, point: OperatingPoint, cohort: Cohort | None, counts: list[int]
) -> Expectation:
    if rate is None:
        return Expectation(None)

    def per_1000(fmr: float) -> float:
        return 1000.0 * sum(person_fmr(fmr, point, cohort, k) or 0.0 for k in counts)

    ci = None if rate.ci95 is None else (per_1000(rate.ci95[0]), per_1000(rate.ci95[1]))
    return Expectation(per_1000(rate.fmr), ci)


def expected_false_alerts(point: OperatingPoint, cohort: Cohort | None, template_counts: Iterable[int]) -> FalseAlerts:
    """Both expectations of false alerts per 1,000 scans of strangers for a gallery whose people
    have `template_counts` templates each."""
    counts = list(template_counts)
    return FalseAlerts(
        _expectation(point.mixed, point, cohort, counts), _expectation(point.bound, point, cohort, counts)
    )
