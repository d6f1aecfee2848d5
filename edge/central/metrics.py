"""Verification figures from distance lists: lower distance means "more alike".

Genuine distances come from pairs of the same person, impostor distances from pairs of
different people. A pair is called "same" when its distance is <= the threshold.
"""

from __future__ import annotations

import numpy as np


def roc_auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Probability that a random genuine pair is closer than a random impostor pair (ties half)."""
    genuine = np.sort(np.asarray(genuine, np.float64))
    impostor = np.asarray(impostor, np.float64)
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
