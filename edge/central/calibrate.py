"""Thresholds chosen for a false match rate, and the calibration table the manifest carries.

`calibrate` picks the largest distance threshold whose measured FMR is at most the target,
over all impostor pairs ("overall") or in every sizeable group that supports the target
("worst_group": the group that needs the strictest threshold decides it). An overall FMR can
hide a group that is falsely matched ten times more often; the worst-group threshold cannot.
A target the data cannot support (`edge.central.stats.SUPPORT_RULE`) is refused, never
approximated. The table lives in the embedder's manifest record, so it travels with the exact
model file (sha256) it was measured on.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge import __version__
from edge.bench.machine import cpu_model, package_version
from edge.central.evaluate import SWEEP_THRESHOLDS, group_size
from edge.central.metrics import false_matches, false_non_matches, fmr_at, threshold_at_fmr
from edge.central.scores import Scores
from edge.central.stats import Rate, lowest_supported_fmr, min_comparisons
from edge.vision.runtime import file_sha256

SCOPES = ("overall", "worst_group")
MIN_SUPPORTING_GROUPS = 2


class CalibrationRefused(ValueError):
    """The data cannot support the target asked for; the message says what it can support."""


def _group_row(scores: Scores, group: str, threshold: float, supports: bool) -> dict[str, Any]:
    genuine, impostor = scores.split(group)
    fmr = Rate(*false_matches(impostor, threshold)).to_json()
    fnmr = Rate(*false_non_matches(genuine, threshold)).to_json()
    return {
        "fmr": fmr["rate"],
        "fmr_ci95": fmr["ci95"],
        "false_matches": fmr["k"],
        "impostor_pairs": fmr["n"],
        "fnmr": fnmr["rate"],
        "fnmr_ci95": fnmr["ci95"],
        "genuine_pairs": fnmr["n"],
        "supports_target": supports,
    }


def _supporting_groups(scores: Scores, target_fmr: float) -> tuple[list[str], dict[str, int]]:
    """(sizeable groups with enough impostor comparisons for the target, compared impostors per sizeable group)."""
    need = min_comparisons(target_fmr)
    counts = {
        g: false_matches(scores.split(g)[1], 0.0)[1] for g in scores.dataset.groups if group_size(scores, g)["sizeable"]
    }
    return [g for g, n in counts.items() if n >= need], counts


def _refuse_worst_group(target_fmr: float, supporting: list[str], counts: dict[str, int]) -> CalibrationRefused:
    need = min_comparisons(target_fmr)
    ranked = sorted(counts.values(), reverse=True)
    lowest = (
        (
            f"; the lowest target {MIN_SUPPORTING_GROUPS} sizeable groups support is "
            f"{lowest_supported_fmr(ranked[MIN_SUPPORTING_GROUPS - 1]):.3g}, every sizeable group "
            f"{lowest_supported_fmr(ranked[-1]):.3g}"
        )
        if len(ranked) >= MIN_SUPPORTING_GROUPS
        else ""
    )
    have = ", ".join(f"{g} {n}" for g, n in sorted(counts.items())) or "none"
    return CalibrationRefused(
        f"target FMR {target_fmr:g} needs at least {need} impostor comparisons in each of at least "
        f"{MIN_SUPPORTING_GROUPS} sizeable groups (rule of three); {len(supporting)} have that many "
        f"(sizeable groups: {have}){lowest}"
    )


def calibrate(scores: Scores, target_fmr: float, scope: str, detector_id: str) -> dict[str, Any]:
    """One calibration table entry; raises `CalibrationRefused` for a target the data cannot support."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; known: {', '.join(SCOPES)}")
    need = min_comparisons(target_fmr)
    supporting, counts = _supporting_groups(scores, target_fmr)
    if scope == "overall":
        impostor = scores.split(None)[1]
        compared = false_matches(impostor, 0.0)[1]
        if compared < need:
            raise CalibrationRefused(
                f"target FMR {target_fmr:g} needs at least {need} impostor comparisons (rule of three); "
                f"{scores.dataset.description} has {compared}: the lowest target it supports is "
                f"{lowest_supported_fmr(compared):.3g}"
            )
        threshold, deciding = threshold_at_fmr(impostor, target_fmr), None
        claimed = Rate(*false_matches(impostor, threshold))
    else:
        if len(supporting) < MIN_SUPPORTING_GROUPS:
            raise _refuse_worst_group(target_fmr, supporting, counts)
        per_group = {g: threshold_at_fmr(scores.split(g)[1], target_fmr) for g in supporting}
        deciding = min(per_group, key=per_group.__getitem__)
        threshold = per_group[deciding]
        rates = {g: Rate(*false_matches(scores.split(g)[1], threshold)) for g in supporting}
        claimed = max(rates.values(), key=lambda r: r.k / r.n)
    dataset, measured = scores.dataset, claimed.to_json()
    return {
        "target_fmr": target_fmr,
        "scope": scope,
        "threshold": threshold,
        "fmr": measured["rate"],
        "fmr_ci95": measured["ci95"],
        "impostor_pairs": measured["n"],
        "deciding_group": deciding,
        "groups": {g: _group_row(scores, g, threshold, g in supporting) for g in dataset.groups},
        "dataset": dataset.description,
        "dataset_file": str(dataset.csv_path),
        "dataset_sha256": file_sha256(dataset.csv_path),
        "detector": detector_id,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **measured_on(),
    }


def measured_on() -> dict[str, Any]:
    """The software and CPU a calibration ran on.

    The same data on another machine or runtime gives a slightly different threshold (float
    kernels differ; 0.4168 against 0.4125 on one rerun): the entry has to say where it came from.
    """
    return {
        "software": {
            "edge": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "runtime": package_version("ai-edge-litert", "tflite-runtime") or "none",
        },
        "cpu": {"machine": platform.machine(), "model": cpu_model(), "cores": os.cpu_count()},
    }


def fmr_curve(scores: Scores, thresholds: np.ndarray = SWEEP_THRESHOLDS) -> dict[str, Any]:
    """FMR at each threshold, overall and in the worst sizeable group, for turning a raw threshold into an FMR."""
    sizeable = [g for g in scores.dataset.groups if group_size(scores, g)["sizeable"]]
    overall = scores.split(None)[1]
    groups = [scores.split(g)[1] for g in sizeable]
    return {
        "thresholds": [round(float(t), 4) for t in thresholds],
        "overall": [round(fmr_at(overall, t), 6) for t in thresholds],
        "worst_group": [round(max(fmr_at(i, t) for i in groups), 6) if groups else None for t in thresholds],
        "impostor_pairs": false_matches(overall, 0.0)[1],
        "dataset_sha256": file_sha256(scores.dataset.csv_path),
    }


def _weaker(old: dict[str, Any] | None, new: dict[str, Any], what: str) -> str | None:
    """Why `new` may not silently replace `old`: it rests on fewer impostor comparisons."""
    if old is None or old.get("impostor_pairs", 0) <= new["impostor_pairs"]:
        return None
    source = f"{old.get('dataset', 'a data set')} {old.get('dataset_sha256', '')[:12]}".strip()
    return (
        f"{what} rests on {old['impostor_pairs']} impostor comparisons ({source}), this run on {new['impostor_pairs']}"
    )


def record_calibration(
    manifest_path: Path,
    embedder_id: str,
    entry: dict[str, Any],
    curve: dict[str, Any],
    operating_point: bool,
    replace_stronger: bool = False,
) -> None:
    """Add `entry` (replacing one with the same target and scope) and the curve to the embedder's record.

    An entry or curve measured on more impostor comparisons than this run's is kept, and the
    run refused (`CalibrationRefused`), unless `replace_stronger`: a quick run on a subset must
    not silently undo a calibration on the full set. Only `calibration_table` and, with
    `operating_point`, `operating_point` change; the file is replaced atomically so a device
    never reads half a manifest.
    """
    manifest = json.loads(manifest_path.read_text())
    record = manifest["models"][embedder_id]
    table = record.get("calibration_table", {})
    same = [
        e for e in table.get("entries", []) if (e["target_fmr"], e["scope"]) == (entry["target_fmr"], entry["scope"])
    ]
    weaker = [
        why
        for why in (
            _weaker(
                same[0] if same else None, entry, f"the entry for target {entry['target_fmr']:g} ({entry['scope']})"
            ),
            _weaker(table.get("fmr_curve"), curve, "the FMR curve"),
        )
        if why
    ]
    if weaker and not replace_stronger:
        raise CalibrationRefused("; ".join(weaker) + ": pass --replace to replace them with this run's")
    kept = [e for e in table.get("entries", []) if e not in same]
    entries = sorted([*kept, entry], key=lambda e: (e["target_fmr"], e["scope"]))
    record["calibration_table"] = {"entries": entries, "fmr_curve": curve}
    if operating_point:
        record["operating_point"] = {"target_fmr": entry["target_fmr"], "scope": entry["scope"]}
    temporary = manifest_path.with_name(manifest_path.name + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(temporary, manifest_path)
