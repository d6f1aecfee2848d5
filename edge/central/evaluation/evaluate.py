"""The figures of one evaluation run, overall and per group, as one JSON-ready dict.

Every rate carries its counts and a 95% Wilson interval (`edge.central.evaluation.stats`); groups too
small for a meaningful rate are flagged with the reason and kept. Besides the threshold in
force, the run is measured at every threshold of the manifest's calibration table, so a model
card can put the operating points side by side.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

import numpy as np

from edge import __version__
from edge.central.evaluation.metrics import false_matches, false_non_matches, roc_auc, sweep, tar_at_fmr
from edge.central.evaluation.scores import Scores
from edge.central.evaluation.stats import SIZEABLE_RULE, SUPPORT_RULE, Rate, min_comparisons, sizeable
from edge.vision.runtime import file_sha256

SCHEMA = 1
TAR_FMRS = (1e-1, 1e-2, 1e-3)
SWEEP_THRESHOLDS = np.round(np.arange(30, 81) / 100, 2)  # 0.30 .. 0.80, step 0.01
FAILURE_NOTE = (
    "an image with no descriptor (unreadable, no face, or refused by the quality gate) makes every "
    "genuine pair it is in a false non-match; its impostor pairs cannot falsely match, are left out "
    "of the FMR's denominator and are counted as failed"
)


def at_threshold(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> dict[str, Any]:
    fm, compared = false_matches(impostor, threshold)
    fnm, pairs = false_non_matches(genuine, threshold)
    return {"threshold": threshold, "fmr": Rate(fm, compared).to_json(), "fnmr": Rate(fnm, pairs).to_json()}


def tar_levels(genuine: np.ndarray, impostor: np.ndarray) -> list[dict[str, Any]]:
    """TAR at each of `TAR_FMRS` the impostor comparisons support (`SUPPORT_RULE`)."""
    _, compared = false_matches(impostor, 0.0)
    levels = []
    for fmr in TAR_FMRS:
        need = min_comparisons(fmr)
        if compared < need:
            levels.append(
                {"fmr": fmr, "supported": False, "reason": f"needs {need} impostor comparisons, has {compared}"}
            )
            continue
        _, threshold = tar_at_fmr(genuine, impostor, fmr)
        fnm, pairs = false_non_matches(genuine, threshold)
        levels.append(
            {
                "fmr": fmr,
                "supported": True,
                "threshold": threshold,
                "tar": Rate(pairs - fnm, pairs).to_json(),
                "measured_fmr": Rate(*false_matches(impostor, threshold)).to_json(),
            }
        )
    return levels


def _auc(genuine: np.ndarray, impostor: np.ndarray) -> float | None:
    value = roc_auc(genuine, impostor)
    return None if np.isnan(value) else round(value, 6)


def figures(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> dict[str, Any]:
    """Counts, ROC AUC, rates at `threshold`, TAR at fixed FMRs and the threshold sweep.

    `roc_auc` counts failed genuine pairs as errors; `roc_auc_compared` is over the pairs both of
    whose images gave a descriptor (the figure benchmarks usually quote).
    """
    _, compared = false_matches(impostor, 0.0)
    return {
        "genuine_pairs": int(genuine.size),
        "genuine_pairs_failed": int(np.isnan(genuine).sum()),
        "impostor_pairs": compared,
        "impostor_pairs_failed": int(np.isnan(impostor).sum()),
        "roc_auc": _auc(genuine, impostor),
        "roc_auc_compared": _auc(genuine[~np.isnan(genuine)], impostor),
        "at_threshold": at_threshold(genuine, impostor, threshold),
        "tar_at_fmr": tar_levels(genuine, impostor),
        "sweep": sweep(genuine, impostor, SWEEP_THRESHOLDS),
    }


def group_size(scores: Scores, group: str) -> dict[str, Any]:
    """Who takes part in the group's pairs, and whether that is enough (`SIZEABLE_RULE`)."""
    dataset = scores.dataset
    members = dataset.group_members(group)
    identities = len({dataset.identities[i] for i in members})
    genuine, impostor = scores.split(group)
    ok, reason = sizeable(identities, genuine.size, false_matches(impostor, 0.0)[1])
    return {
        "identities": identities,
        "images": int(members.size),
        "images_failed": sum(dataset.images[i] in scores.failures for i in members),
        "sizeable": ok,
        "not_sizeable_because": reason,
    }


def group_figures(scores: Scores, group: str, threshold: float) -> dict[str, Any]:
    return {**group_size(scores, group), **figures(*scores.split(group), threshold)}


def operating_points(scores: dict[str, Scores], threshold: dict[str, Any], entries: list[dict]) -> list[dict[str, Any]]:
    """Overall and per-group FMR/FNMR at the threshold in force and at each calibrated threshold,
    each in its own matching mode (entries of a mode that could not be scored are left out)."""
    points = [
        {"name": "in force", "source": threshold["source"], "mode": threshold["mode"], "threshold": threshold["value"]}
    ]
    points += [
        {
            "name": f"calibration {e.get('mode', 'global')} {e['scope']} FMR <= {e['target_fmr']:g}",
            "source": "manifest calibration_table",
            "mode": e.get("mode", "global"),
            "scope": e["scope"],
            "target_fmr": e["target_fmr"],
            "threshold": e["threshold"],
        }
        for e in entries
        if e.get("mode", "global") in scores
    ]
    for point in points:
        scored = scores[point["mode"]]
        point["overall"] = at_threshold(*scored.split(None), point["threshold"])
        point["groups"] = {g: at_threshold(*scored.split(g), point["threshold"]) for g in scored.dataset.groups}
    return points


def evaluate(
    by_mode: dict[str, Scores], threshold: dict[str, Any], context: dict[str, Any], modes: dict[str, Any]
) -> dict[str, Any]:
    """The whole report. `by_mode` holds the scores of each matching mode that could be scored;
    `threshold` is {"value", "source", "mode"} (the point in force); `context` carries the dataset
    paths as given, models, quality gate and the manifest's calibration table (see
    `edge.central.evaluation.run`); `modes` is `edge.central.evaluation.side_by_side.compare_modes`'s comparison."""
    scores = by_mode[threshold["mode"]]
    dataset = scores.dataset
    value = threshold["value"]
    calibration = context.get("calibration") or {}
    kinds = Counter(reason.split(" (")[0] for reason in scores.failures.values())
    return {
        "schema": SCHEMA,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software": {"edge": __version__},
        "dataset": {
            "path": context["dataset_path"],
            "root": context["root"],
            "sha256": file_sha256(dataset.csv_path),
            "kind": dataset.kind,
            "group_column": dataset.group_column,
            "within": dataset.within,
            "description": dataset.description,
            "images": len(dataset.images),
            "identities": len(set(dataset.identities)),
            "pairs": int(dataset.a.size),
            "genuine_pairs": int(dataset.genuine.sum()),
            "impostor_pairs": int((~dataset.genuine).sum()),
        },
        "models": context["models"],
        "quality_gate": context["quality_gate"],
        "threshold": threshold,
        "rules": {
            "sizeable": SIZEABLE_RULE,
            "support": SUPPORT_RULE,
            "failures": FAILURE_NOTE,
            "interval": "95% Wilson score interval",
            "decision": "same person when distance <= threshold (global), or when distance / the "
            "template's cohort scale <= knob (per_template; the template is the pair's first image)",
        },
        "failures": {
            "images": len(scores.failures),
            "by_reason": dict(sorted(kinds.items())),
            "list": [{"path": p, "reason": r} for p, r in sorted(scores.failures.items())],
        },
        "overall": figures(*scores.split(None), value),
        "groups": {g: group_figures(scores, g, value) for g in dataset.groups},
        "calibration": calibration,
        "operating_points": operating_points(by_mode, threshold, calibration.get("entries", [])),
        "modes": modes,
        "files": ["report.json", "report.md", "det.png", "groups.png"],
    }
