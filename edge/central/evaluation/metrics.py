"""Verification figures from distance lists: lower distance means "more alike".

Genuine distances come from pairs of the same person, impostor distances from pairs of
different people. A pair is called "same" when its distance is <= the threshold.

A pair one of whose images gave no descriptor (no face, or refused by the quality gate) has
distance NaN. It is never silently dropped: a genuine NaN is a false non-match (the person
would not have been recognised), and it stays in the FNMR's denominator. An impostor NaN cannot
falsely match; it is left out of the FMR's denominator, where it would only dilute the rate,
and the callers report it as a failed comparison.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def roc_auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Probability that a random genuine pair is closer than a random impostor pair (ties half).

    A failed genuine pair (NaN) counts as farther than every impostor; failed impostor pairs are left out.
    """
    genuine = np.asarray(genuine, np.float64)
    genuine = np.sort(np.where(np.isnan(genuine), np.inf, genuine))
    impostor = np.asarray(impostor, np.float64)
    impostor = impostor[~np.isnan(impostor)]
    if genuine.size == 0 or impostor.size == 0:
        return float("nan")
    below = np.searchsorted(genuine, impostor, side="left")
    equal = np.searchsorted(genuine, impostor, side="right") - below
    return float((below.sum() + 0.5 * equal.sum()) / (genuine.size * impostor.size))


def accuracy_at(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> float:
    """Share of pairs called right at `threshold`."""
    genuine, impostor = np.asarray(genuine), np.asarray(impostor)
    right = np.count_nonzero(genuine <= threshold) + np.count_nonzero(impostor > threshold)
    return right / (genuine.size + impostor.size)


def best_accuracy(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """(accuracy, threshold) of the threshold that calls the most pairs right."""
    candidates = np.unique(np.concatenate([genuine, impostor]))
    accuracies = [accuracy_at(genuine, impostor, t) for t in candidates]
    best = int(np.argmax(accuracies))
    return float(accuracies[best]), float(candidates[best])


def false_matches(impostor: np.ndarray, threshold: float) -> tuple[int, int]:
    """(false matches, impostor comparisons made) at `threshold`; NaN pairs are not comparisons."""
    impostor = np.asarray(impostor)
    matched = np.count_nonzero(impostor <= np.float64(threshold))  # NaN never matches; float32 kept, no copy
    return int(matched), int(impostor.size - np.count_nonzero(np.isnan(impostor)))


def false_non_matches(genuine: np.ndarray, threshold: float) -> tuple[int, int]:
    """(false non-matches, genuine pairs) at `threshold`; a NaN pair is a false non-match."""
    genuine = np.asarray(genuine)
    return int(genuine.size - np.count_nonzero(genuine <= np.float64(threshold))), int(genuine.size)


def sorted_compared(scores: np.ndarray) -> np.ndarray:
    """The scores that were compared (NaN dropped), sorted: one sort serves a whole sweep."""
    compared = np.asarray(scores)[~np.isnan(scores)]  # already a copy: sorted in place, not copied again
    compared.sort()
    return compared


def counts_at(sorted_scores: np.ndarray, thresholds: np.ndarray) -> list[int]:
    """How many of `sorted_scores` are <= each threshold (a pair matches at distance <= threshold)."""
    wanted = np.asarray(thresholds, np.float64)
    keys = wanted.astype(sorted_scores.dtype)  # searched in the scores' own type (no copy of them) ...
    keys = np.where(keys.astype(np.float64) > wanted, np.nextafter(keys, -np.inf), keys)  # ... rounded down
    return [int(k) for k in np.searchsorted(sorted_scores, keys, side="right")]


def fmr_at(impostor: np.ndarray, threshold: float) -> float:
    k, n = false_matches(impostor, threshold)
    return k / n if n else float("nan")


def fnmr_at(genuine: np.ndarray, threshold: float) -> float:
    k, n = false_non_matches(genuine, threshold)
    return k / n if n else float("nan")


def threshold_at_fmr(impostor: np.ndarray, fmr: float, decimals: int = 4) -> float:
    """The largest threshold on a 10**-decimals grid whose measured FMR is <= `fmr`.

    Rounded down, never up, so the claim holds for the threshold as written in a manifest.
    """
    compared = sorted_compared(impostor)
    if compared.size == 0:
        raise ValueError("no impostor comparisons to set a threshold from")
    allowed = math.floor(fmr * compared.size + 1e-9)  # false matches the target tolerates
    if allowed >= compared.size:
        return math.inf
    first_refused = np.nextafter(np.float64(compared[allowed]), -np.inf)  # strictly below the first extra match
    scale = 10**decimals
    return math.floor(first_refused * scale) / scale


def tar_at_fmr(genuine: np.ndarray, impostor: np.ndarray, fmr: float) -> tuple[float, float]:
    """(true accept rate, threshold) at the largest threshold whose FMR is <= `fmr`."""
    threshold = threshold_at_fmr(impostor, fmr)
    return 1.0 - fnmr_at(genuine, threshold), threshold


def sweep(genuine: np.ndarray, impostor: np.ndarray, thresholds: np.ndarray) -> dict[str, Any]:
    """FMR and FNMR, with their counts, at each threshold."""
    compared = sorted_compared(impostor)
    impostor_pairs, genuine_pairs = int(compared.size), int(np.asarray(genuine).size)
    fm = counts_at(compared, thresholds)
    fnm = [genuine_pairs - k for k in counts_at(sorted_compared(genuine), thresholds)]
    return {
        "thresholds": [round(float(t), 4) for t in thresholds],
        "impostor_pairs": impostor_pairs,
        "genuine_pairs": genuine_pairs,
        "false_matches": fm,
        "false_non_matches": fnm,
        "fmr": [round(k / impostor_pairs, 6) if impostor_pairs else None for k in fm],
        "fnmr": [round(k / genuine_pairs, 6) if genuine_pairs else None for k in fnm],
    }


def det_points(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FMR, FNMR) at every distinct distance, for a DET curve (failures counted as in fmr_at/fnmr_at)."""
    genuine, impostor = np.asarray(genuine, np.float64), np.asarray(impostor, np.float64)
    g = np.sort(genuine[~np.isnan(genuine)])
    i = np.sort(impostor[~np.isnan(impostor)])
    thresholds = np.unique(np.concatenate([g, i]))
    fmr = np.searchsorted(i, thresholds, side="right") / max(i.size, 1)
    fnmr = 1.0 - np.searchsorted(g, thresholds, side="right") / max(genuine.size, 1)
    return fmr, fnmr
