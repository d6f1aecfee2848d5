"""The arithmetic of the error rates on hand-made distance lists: FMR, FNMR, TAR at FMR, the
threshold sweep, Wilson intervals, the support rule, and failures counted as errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.central.evaluation.metrics import (
    det_points,
    false_matches,
    false_non_matches,
    fmr_at,
    fnmr_at,
    roc_auc,
    sweep,
    tar_at_fmr,
    threshold_at_fmr,
)
from edge.central.evaluation.stats import (
    Rate,
    lowest_supported_fmr,
    min_comparisons,
    people_resampled_ci95,
    sizeable,
    wilson,
)

NAN = float("nan")
GENUINE = np.array([0.20, 0.30, 0.40, 0.50, 0.70])
IMPOSTOR = np.array([0.35, 0.55, 0.65, 0.75, 0.80, 0.85, 0.90, 0.95, 1.00, 1.05])


def test_fmr_and_fnmr_count_pairs_at_or_below_the_threshold_as_same():
    assert false_matches(IMPOSTOR, 0.55) == (2, 10)  # 0.35 and 0.55 (inclusive)
    assert fmr_at(IMPOSTOR, 0.55) == pytest.approx(0.2)
    assert false_non_matches(GENUINE, 0.55) == (1, 5)  # only 0.70 is farther
    assert fnmr_at(GENUINE, 0.55) == pytest.approx(0.2)
    assert fmr_at(IMPOSTOR, 0.30) == 0.0 and fnmr_at(GENUINE, 0.30) == pytest.approx(0.6)


def test_a_pair_with_no_face_is_an_error_never_dropped():
    genuine = np.array([0.2, 0.3, NAN])  # the third pair's image had no face
    assert false_non_matches(genuine, 0.6) == (1, 3)
    assert fnmr_at(genuine, 10.0) == pytest.approx(1 / 3)  # no threshold recovers it
    impostor = np.array([0.5, 0.9, NAN])
    assert false_matches(impostor, 0.6) == (1, 2)  # cannot falsely match; left out of the FMR's denominator
    assert false_matches(impostor, 10.0) == (2, 2)
    # AUC: a failed genuine pair is worse than every impostor; a failed impostor pair is left out
    assert roc_auc(np.array([0.1, NAN]), np.array([0.5])) == pytest.approx(0.5)
    assert roc_auc(np.array([0.1]), np.array([0.5, NAN])) == pytest.approx(1.0)


def test_threshold_at_fmr_is_the_largest_that_keeps_the_rate():
    assert threshold_at_fmr(IMPOSTOR, 0.1) == 0.5499  # one false match allowed: stop below 0.55
    assert fmr_at(IMPOSTOR, threshold_at_fmr(IMPOSTOR, 0.1)) == pytest.approx(0.1)
    assert threshold_at_fmr(IMPOSTOR, 0.05) == 0.3499  # none allowed: stop below the closest impostor
    assert threshold_at_fmr(IMPOSTOR, 0.25) == 0.6499  # floor(2.5) = 2 allowed
    assert threshold_at_fmr(np.array([0.4, NAN, 0.6]), 0.4) == 0.3999  # 2 comparisons, none allowed
    with pytest.raises(ValueError):
        threshold_at_fmr(np.array([NAN]), 0.1)


def test_tar_at_fmr():
    tar, threshold = tar_at_fmr(GENUINE, IMPOSTOR, 0.1)
    assert threshold == 0.5499 and tar == pytest.approx(0.8)  # 4 of 5 genuine at or below 0.5499
    tar, threshold = tar_at_fmr(np.array([0.2, 0.3, NAN, 0.5]), IMPOSTOR, 0.0)
    assert threshold == 0.3499 and tar == pytest.approx(0.5)  # the failed pair stays in the denominator


def test_sweep_counts_and_rates():
    s = sweep(np.array([0.2, 0.5, NAN]), np.array([0.45, 0.6, NAN, 0.9]), np.array([0.4, 0.5, 0.6]))
    assert s["thresholds"] == [0.4, 0.5, 0.6]
    assert s["genuine_pairs"] == 3 and s["impostor_pairs"] == 3
    assert s["false_matches"] == [0, 1, 2] and s["false_non_matches"] == [2, 1, 1]
    assert s["fmr"] == [0.0, pytest.approx(1 / 3, abs=1e-6), pytest.approx(2 / 3, abs=1e-6)]
    assert s["fnmr"] == [pytest.approx(2 / 3, abs=1e-6), pytest.approx(1 / 3, abs=1e-6), pytest.approx(1 / 3, abs=1e-6)]


def test_det_points_run_from_strict_to_loose():
    fmr, fnmr = det_points(GENUINE, IMPOSTOR)
    assert np.all(np.diff(fmr) >= 0) and np.all(np.diff(fnmr) <= 0)
    assert fmr[-1] == 1.0 and fnmr[-1] == 0.0 and fnmr[0] == pytest.approx(0.8)


def test_wilson_against_hand_computed_values():
    # k=0, n=10: upper = z^2 / (n + z^2) = 3.8415 / 13.8415
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.277533, abs=1e-6)
    # k=5, n=10: centre 0.5, half-width z * sqrt(2.5 + z^2/4) / (n + z^2)
    lo, hi = wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.236593, abs=1e-6), pytest.approx(0.763407, abs=1e-6))
    lo, hi = wilson(10, 10)
    assert lo == pytest.approx(1 - 0.277533, abs=1e-6) and hi == 1.0
    assert wilson(0, 0) == (0.0, 1.0)


def test_rate_json_carries_counts_and_interval():
    assert Rate(5, 10).to_json() == {"rate": 0.5, "k": 5, "n": 10, "ci95": [0.236593, 0.763407]}
    assert Rate(0, 0).to_json()["rate"] is None
    cohort = Rate(46, 46_708_724).to_json()  # a cohort-scale rate keeps its digits and a real interval
    assert cohort["rate"] == 9.84827e-07 and cohort["ci95"][0] < cohort["rate"] < cohort["ci95"][1] < 1.4e-06


def test_support_rule_and_sizeable_groups():
    assert min_comparisons(0.01) == 300 and min_comparisons(0.001) == 3000 and min_comparisons(0.012) == 250
    assert lowest_supported_fmr(257) == pytest.approx(3 / 257)
    assert math.ceil(3 / lowest_supported_fmr(257)) <= 257
    with pytest.raises(ValueError):
        min_comparisons(0.0)
    assert sizeable(5, 20, 20) == (True, None)
    ok, reason = sizeable(2, 30, 10)
    assert not ok and "2 identities" in reason and "10 impostor pairs" in reason


def comparisons(people: int, photos: int) -> tuple[np.ndarray, np.ndarray]:
    """Every photo of every person against every photo of every other person: (first, second) people."""
    a, b = np.triu_indices(people, 1)
    return np.repeat(a, photos * photos), np.repeat(b, photos * photos)


def test_false_matches_on_one_pair_of_lookalikes_are_less_sure_than_spread_ones():
    first, second = comparisons(120, 2)  # 28,560 comparisons between 120 people
    pairs = np.flatnonzero(np.arange(first.size) % 4 == 0)  # one comparison of each pair of people
    spread = np.zeros(first.size, bool)
    spread[pairs[:: pairs.size // 16][:16]] = True  # 16 false matches, 16 pairs of people
    twins = np.zeros(first.size, bool)
    twins[:4] = True  # 4 false matches, all four photo pairs of people 0 and 1
    wilson_spread, wilson_twins = wilson(16, first.size), wilson(4, first.size)
    lo, hi = people_resampled_ci95(first, second, spread, 120)
    assert lo <= wilson_spread[0] and hi >= wilson_spread[1]  # never narrower than Wilson
    assert hi / wilson_spread[1] < 1.6  # independent pairs of people: close to it
    lo, hi = people_resampled_ci95(first, second, twins, 120)
    assert lo == 0.0  # most draws of 120 people miss one of the two twins
    assert hi > 2 * wilson_twins[1]  # and a draw holding both twice counts them four times
    assert people_resampled_ci95(first, second, np.zeros(first.size, bool), 120) == wilson(0, first.size)
    assert people_resampled_ci95(first, second, twins, 120) == (lo, hi)  # the draws are the seed's
