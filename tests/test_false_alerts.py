"""Each person's expected stranger FMR and the gallery's expected false alerts (their sum), for a
mixed crowd and as the bound of a crowd of one group, each with its interval."""

from __future__ import annotations

import pytest
from support_cohort import cohort_for

from edge.vision.false_alerts import (
    LEGACY_DETAIL,
    Expectation,
    FalseAlerts,
    expected_false_alerts,
    over_limit,
    person_fmr,
)
from edge.vision.operating_point import MeasuredRate, OperatingPoint

EMBEDDER = "dlib_resnet_v1_int8"


def point(mixed: float | None, bound: float | None = None, knob: float = 0.55) -> OperatingPoint:
    rate = lambda f: None if f is None else MeasuredRate(f, (f / 2, f * 2))  # noqa: E731
    return OperatingPoint(knob, bound, None, "worst_group", "test", "per_template", rate(mixed), rate(bound))


def test_a_thousand_people_at_1e4_raise_a_false_alert_for_one_stranger_in_ten():
    expected = expected_false_alerts(point(1e-4, 1e-2), None, [1] * 1000)
    assert expected.mixed.per_1000 == pytest.approx(100.0)
    assert expected.mixed.ci95 == (pytest.approx(50.0), pytest.approx(200.0))  # the rate's interval, scaled
    assert expected.bound.per_1000 == pytest.approx(1000.0 * 1000 * 1e-2)
    assert expected_false_alerts(point(1e-4), None, []).mixed.per_1000 == 0.0


def test_unknown_rates_give_no_figure():
    expected = expected_false_alerts(point(None, None), cohort_for(EMBEDDER), [1, 2])
    assert expected == FalseAlerts(Expectation(None), Expectation(None))
    assert person_fmr(None, point(None), None, 3) is None


def test_more_templates_weigh_as_the_cohort_measured_them():
    cohort = cohort_for(EMBEDDER)
    p = point(0.001, 0.01)
    one, two = person_fmr(0.001, p, cohort, 1), person_fmr(0.001, p, cohort, 2)
    factor = cohort.person_factor(2, 0.55, "per_template")
    assert one == pytest.approx(0.001)
    assert two == pytest.approx(0.001 * factor) and 1.0 < factor <= 2.5  # measured on the cohort at 0.55
    expected = expected_false_alerts(p, cohort, [1, 2])
    assert expected.mixed.per_1000 == pytest.approx(1000 * (one + two))
    assert expected.bound.per_1000 == pytest.approx(1000 * 0.01 * (1 + factor))


def test_without_a_measured_factor_each_template_counts_in_full():
    assert person_fmr(0.001, point(0.001), None, 4) == pytest.approx(0.004)
    cohort = cohort_for(EMBEDDER)
    assert cohort.person_factor(7, 0.30, "per_template") == pytest.approx(7.0)  # too strict to measure
    assert person_fmr(0.9, point(0.9), cohort, 5) == 1.0  # a rate stays a rate


def test_a_watchlist_and_a_stranger_stream_with_a_known_count_of_false_matches():
    """Ten people of one template each; 2,000 strangers, each compared with all ten: 4 of the
    20,000 comparisons matched, all within the worst group (its 500 strangers, 5,000 comparisons).
    The mixed figure is the overall rate (4 / 20,000) times ten people per 1,000 scans; the bound,
    the worst group's rate (4 / 5,000); the observed count (4 in 2,000 scans) is what both predict
    for their own crowd."""
    from edge.vision.rates import wilson

    mixed = MeasuredRate(4 / 20_000, wilson(4, 20_000))
    bound = MeasuredRate(4 / 5_000, wilson(4, 5_000))
    p = OperatingPoint(0.5, bound.fmr, None, "worst_group", "test", "per_template", mixed, bound)
    expected = expected_false_alerts(p, None, [1] * 10)
    observed_per_1000 = 1000 * 4 / 2000
    assert expected.mixed.per_1000 == pytest.approx(observed_per_1000)  # the whole crowd
    assert expected.bound.per_1000 == pytest.approx(1000 * 4 / 500)  # the worst group's 500 strangers
    lo, hi = expected.mixed.ci95 or (0, 0)
    assert lo < observed_per_1000 < hi
    assert expected.bound.per_1000 >= observed_per_1000


def test_the_limit_names_its_figure_and_what_it_means():
    expected = expected_false_alerts(point(1e-4, 1e-2), None, [1] * 10)  # mixed 1.0, bound 100 per 1,000
    assert over_limit(expected, 5.0, "mixed") is None
    why = over_limit(expected, 5.0, "bound")
    assert why is not None and "100.00 false alerts per 1,000 scans" in why and "worst group" in why
    assert "match.max_false_alerts_basis" in why


def test_status_details_carry_both_figures_and_read_back():
    expected = expected_false_alerts(point(1e-4, 1e-2), None, [1] * 10)
    details = expected.details()
    assert set(details) == {f"false_alerts_per_1000_{b}{s}" for b in ("mixed", "bound") for s in ("", "_lo", "_hi")}
    back = FalseAlerts.from_details(details)
    assert back.mixed.per_1000 == pytest.approx(1.0) and back.bound.ci95 == (pytest.approx(50.0), pytest.approx(200.0))
    old = FalseAlerts.from_details({LEGACY_DETAIL: 56.5})  # a device before the two figures: its one was the bound
    assert old == FalseAlerts(Expectation(None), Expectation(56.5))
