"""Thresholds chosen for a false match rate, and the calibration table the manifest carries.

`calibrate` picks the largest distance threshold whose measured FMR is at most the target,
over all impostor pairs ("overall") or in every sizeable group that supports the target
("worst_group": the group that needs the strictest threshold decides it). An overall FMR can
hide a group that is falsely matched ten times more often; the worst-group threshold cannot.
A target the data cannot support (`edge.central.evaluation.stats.SUPPORT_RULE`) is refused, never
approximated. The table lives in the embedder's manifest record, so it travels with the exact
model file (sha256) it was measured on.

Entries are keyed by (mode, target FMR, scope): in mode "global" the threshold is a raw
distance, in "per_template" it is the knob that multiplies each template's cohort scale
(`edge.central.evaluation.scores`). An entry without "mode" predates the modes and is global. The table
keeps one FMR curve per mode (`fmr_curves`); a run replaces a mode's curve only when it was
measured on the same data set file (a cohort run must not swap the DEV curve the device reads
its FMR from without --replace).
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
from edge.atomic import write_atomically
from edge.central.evaluation.evaluate import SWEEP_THRESHOLDS, group_size
from edge.central.evaluation.metrics import (
    counts_at,
    false_matches,
    false_non_matches,
    sorted_compared,
    threshold_at_fmr,
)
from edge.central.evaluation.scores import Scores
from edge.central.evaluation.stats import (
    PeopleRate,
    Rate,
    lowest_supported_fmr,
    min_comparisons,
    people_resampled_ci95,
    significant,
)
from edge.machine import cpu_model, package_version
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
        claimed = worst_group_rate(scores, supporting, threshold)
    dataset, measured = scores.dataset, claimed.to_json()
    overall = mixed_rate(scores, threshold).to_json()
    return {
        "mode": scores.mode,
        "target_fmr": target_fmr,
        "scope": scope,
        "threshold": threshold,
        "fmr": measured["rate"],
        "fmr_ci95": measured["ci95"],
        "impostor_pairs": measured["n"],
        "deciding_group": deciding,
        "overall": {
            "fmr": overall["rate"],
            "fmr_ci95": overall["ci95"],
            "false_matches": overall["k"],
            "impostor_pairs": overall["n"],
        },
        "groups": {g: _group_row(scores, g, threshold, g in supporting) for g in dataset.groups},
        "dataset": dataset.description,
        "dataset_file": str(dataset.csv_path),
        "dataset_sha256": file_sha256(dataset.csv_path),
        "dataset_root": str(dataset.root),
        "dataset_kind": dataset.kind,
        "group_column": dataset.group_column,
        "within": dataset.within,
        "detector": detector_id,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **measured_on(),
    }


def mixed_rate(scores: Scores, threshold: float) -> PeopleRate:
    """FMR over every impostor comparison at `threshold`, a crowd mixed as the data set is: what
    the mixed expectation of false alerts reads (`edge.vision.false_alerts`), whatever the scope;
    its interval resamples the people as well as the comparisons."""
    dataset, distances = scores.dataset, scores.distances
    compared = ~dataset.genuine & ~np.isnan(distances)
    person = np.unique(np.asarray(dataset.identities), return_inverse=True)[1]
    first, second = person[dataset.a[compared]], person[dataset.b[compared]]
    matched = distances[compared] <= np.float64(threshold)
    interval = people_resampled_ci95(first, second, matched, int(person.max(initial=-1)) + 1)
    return PeopleRate(int(np.count_nonzero(matched)), int(first.size), interval)


def worst_group_rate(scores: Scores, groups: list[str], threshold: float) -> Rate:
    """The highest within-group FMR among `groups` at `threshold`: a crowd of one group, the bound."""
    rates = [Rate(*false_matches(scores.split(g)[1], threshold)) for g in groups]
    return max(rates, key=lambda r: r.k / r.n)


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


def _fmrs(impostor: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    compared = sorted_compared(impostor)
    return np.asarray(counts_at(compared, thresholds), float) / max(compared.size, 1)


def fmr_curve(scores: Scores, thresholds: np.ndarray = SWEEP_THRESHOLDS) -> dict[str, Any]:
    """FMR at each threshold (knob in mode per_template), overall and in the worst sizeable group,
    for turning a threshold into an FMR."""
    sizeable = [g for g in scores.dataset.groups if group_size(scores, g)["sizeable"]]
    overall = scores.split(None)[1]
    worst = np.max([_fmrs(scores.split(g)[1], thresholds) for g in sizeable], axis=0) if sizeable else None
    return {
        "mode": scores.mode,
        "thresholds": [round(float(t), 4) for t in thresholds],
        "overall": [significant(f) for f in _fmrs(overall, thresholds)],
        "worst_group": [significant(f) for f in worst] if worst is not None else [None] * len(thresholds),
        "impostor_pairs": false_matches(overall, 0.0)[1],
        "dataset": scores.dataset.description,
        "dataset_file": str(scores.dataset.csv_path),
        "dataset_sha256": file_sha256(scores.dataset.csv_path),
        "group_column": scores.dataset.group_column,
    }


def entry_mode(entry: dict[str, Any]) -> str:
    """An entry's or curve's matching mode; one recorded before the modes existed is global."""
    return str(entry.get("mode", "global"))


def curves(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The table's FMR curve per mode (a table from before the modes has one, global, `fmr_curve`)."""
    if "fmr_curves" in table:
        return dict(table["fmr_curves"])
    return {"global": table["fmr_curve"]} if table.get("fmr_curve") else {}


def _same_file(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return old.get("dataset_sha256") == new["dataset_sha256"] or old.get("dataset_file") == new["dataset_file"]


def _weaker(old: dict[str, Any] | None, new: dict[str, Any], what: str) -> str | None:
    """Why `new` may not silently replace `old`: it rests on fewer impostor comparisons."""
    if old is None or old.get("impostor_pairs", 0) <= new["impostor_pairs"]:
        return None
    source = f"{old.get('dataset', 'a data set')} {old.get('dataset_sha256', '')[:12]}".strip()
    return (
        f"{what} rests on {old['impostor_pairs']} impostor comparisons ({source}), this run on {new['impostor_pairs']}"
    )


def _regrouped(old: dict[str, Any], new: dict[str, Any], what: str) -> str | None:
    """Why `new` may not silently replace `old`: its groups are another column's (gender, not ethnicity)."""
    before, after = old.get("group_column", "group"), new.get("group_column", "group")
    return None if before == after else f"{what} was measured per {before!r}, this run per {after!r}"


def record_calibration(
    manifest_path: Path,
    embedder_id: str,
    new: list[dict[str, Any]],
    curve: dict[str, Any],
    operating_point: bool,
    replace_stronger: bool = False,
) -> None:
    """Add the `new` entries of one run (each replacing one with the same mode, target and scope)
    and their mode's curve to the embedder's record, all or nothing.

    An entry or same-file curve measured on more impostor comparisons than this run's, or an
    entry grouped by another column, is kept and the run refused (`CalibrationRefused`), unless
    `replace_stronger`: a quick run on a subset must not silently undo a calibration on the full
    set. A curve from another data set file is kept (the entries are still recorded) unless
    `replace_stronger`. Only `calibration_table` and, with `operating_point` (one entry),
    `operating_point` change; the file is replaced atomically so a device never reads half a manifest.
    """
    manifest = json.loads(manifest_path.read_text())
    record = manifest["models"][embedder_id]
    table = record.get("calibration_table", {})
    mode = curve["mode"]
    old_curve = curves(table).get(mode)
    refused = [_weaker(old_curve, curve, f"the {mode} FMR curve")] if old_curve and _same_file(old_curve, curve) else []
    entries = table.get("entries", [])
    for entry in new:
        key = (entry_mode(entry), entry["target_fmr"], entry["scope"])
        same = [e for e in entries if (entry_mode(e), e["target_fmr"], e["scope"]) == key]
        what = f"the {key[0]} entry for target {key[1]:g} ({key[2]})"
        refused += [_weaker(same[0], entry, what), _regrouped(same[0], entry, what)] if same else []
        entries = [*[e for e in entries if e not in same], entry]
    reasons = [why for why in refused if why]
    if reasons and not replace_stronger:
        raise CalibrationRefused("; ".join(reasons) + ": pass --replace to replace them with this run's")
    new_curves = curves(table)
    if old_curve is None or replace_stronger or _same_file(old_curve, curve):
        new_curves[mode] = curve
    record["calibration_table"] = {
        "entries": sorted(entries, key=lambda e: (entry_mode(e), e["target_fmr"], e["scope"])),
        "fmr_curves": dict(sorted(new_curves.items())),
    }
    if operating_point:
        (entry,) = new
        record["operating_point"] = {"mode": mode, "target_fmr": entry["target_fmr"], "scope": entry["scope"]}
    write_atomically(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
