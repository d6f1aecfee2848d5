"""Both matching modes at the same calibrated target, side by side: what per-template thresholds buy.

Each mode is measured at its own calibration-table entry for one target (the operating point's):
"global" at its distance threshold, "per_template" at its knob. The FMRs should both sit near
the target; the difference is in the FNMR, reported per group with the relative reduction
1 - FNMR(per_template) / FNMR(global).
"""

from __future__ import annotations

import math
from typing import Any

from edge.central.evaluation.calibrate import entry_mode
from edge.central.evaluation.evaluate import at_threshold
from edge.central.evaluation.scores import Scores
from edge.vision.cohort import MODES


def find_entry(entries: list[dict[str, Any]], mode: str, target_fmr: float, scope: str) -> dict[str, Any] | None:
    """The calibration entry of `mode` for (target, scope), if the table has one."""
    return next(
        (
            e
            for e in entries
            if entry_mode(e) == mode and e["scope"] == scope and math.isclose(e["target_fmr"], target_fmr, rel_tol=1e-9)
        ),
        None,
    )


def _measured(scores: Scores, threshold: float) -> dict[str, Any]:
    return {
        "available": True,
        "threshold": threshold,
        "overall": at_threshold(*scores.split(None), threshold),
        "groups": {g: at_threshold(*scores.split(g), threshold) for g in scores.dataset.groups},
    }


def _reduction(global_: dict[str, Any], per_template: dict[str, Any]) -> float | None:
    before, after = global_["fnmr"]["rate"], per_template["fnmr"]["rate"]
    return None if not before or after is None else round(1 - after / before, 4)


def compare_modes(
    scores: dict[str, Scores], target: dict[str, Any] | None, entries: list[dict[str, Any]], why_missing: str
) -> dict[str, Any]:
    """Overall and per-group FMR/FNMR of each mode at its entry for `target` ({"target_fmr", "scope"}).

    `scores` holds the modes that could be scored; `why_missing` says why per_template could not.
    """
    if not target:
        return {"target_fmr": None, "scope": None, "reason": "no calibrated target to compare the modes at"}
    target_fmr, scope = float(target["target_fmr"]), str(target["scope"])
    modes: dict[str, Any] = {}
    for mode in MODES:
        entry = find_entry(entries, mode, target_fmr, scope)
        if entry is None:
            worst = " --worst-group" if scope == "worst_group" else ""
            reason = (
                f"no {mode} calibration for target {target_fmr:g} ({scope}): "
                f"edge calibrate ... --target-fmr {target_fmr:g}{worst} --mode {mode}"
            )
            modes[mode] = {"available": False, "reason": reason}
        elif mode not in scores:
            modes[mode] = {"available": False, "reason": why_missing}
        else:
            modes[mode] = _measured(scores[mode], float(entry["threshold"]))
    result: dict[str, Any] = {"target_fmr": target_fmr, "scope": scope, "modes": modes, "fnmr_reduction": None}
    g, p = modes["global"], modes["per_template"]
    if g["available"] and p["available"]:
        result["fnmr_reduction"] = {
            "overall": _reduction(g["overall"], p["overall"]),
            "groups": {name: _reduction(g["groups"][name], p["groups"][name]) for name in g["groups"]},
        }
    return result
