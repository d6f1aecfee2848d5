"""Each person's expected stranger FMR and the gallery's expected false alerts (their sum)."""

from __future__ import annotations

import pytest
from support_cohort import cohort_for

from edge.vision.false_alerts import false_alerts_per_1000, person_fmr
from edge.vision.operating_point import OperatingPoint

EMBEDDER = "dlib_resnet_v1_int8"


def point(fmr: float | None, knob: float = 0.55, mode: str = "per_template") -> OperatingPoint:
    return OperatingPoint(knob, fmr, None, "overall", "test", mode)


def test_a_thousand_people_at_1e4_raise_a_false_alert_for_one_stranger_in_ten():
    assert false_alerts_per_1000(point(1e-4), None, [1] * 1000) == pytest.approx(100.0)
    assert false_alerts_per_1000(point(1e-4), None, []) == 0.0


def test_unknown_fmr_gives_no_figure():
    assert person_fmr(point(None), None, 3) is None
    assert false_alerts_per_1000(point(None), cohort_for(EMBEDDER), [1, 2]) is None


def test_more_templates_weigh_as_the_cohort_measured_them():
    cohort = cohort_for(EMBEDDER)
    one = person_fmr(point(0.001), cohort, 1)
    two = person_fmr(point(0.001), cohort, 2)
    factor = cohort.person_factor(2, 0.55, "per_template")
    assert one == pytest.approx(0.001)
    assert two == pytest.approx(0.001 * factor) and 1.0 < factor <= 2.5  # measured on the cohort at 0.55
    assert false_alerts_per_1000(point(0.001), cohort, [1, 2]) == pytest.approx(1000 * (one + two))


def test_without_a_measured_factor_each_template_counts_in_full():
    assert person_fmr(point(0.001), None, 4) == pytest.approx(0.004)
    cohort = cohort_for(EMBEDDER)
    assert cohort.person_factor(7, 0.30, "per_template") == pytest.approx(7.0)  # too strict to measure
    assert person_fmr(point(0.9), cohort, 5) == 1.0  # a rate stays a rate
