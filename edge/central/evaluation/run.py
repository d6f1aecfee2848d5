"""One evaluation of the device's still-image path on a labeled set: what `edge eval` reports and
`edge calibrate` measures, from the CSV to the scores and the report.

The images go through the device's own stills pipeline (stills detector, configured quality
gate, aligner, embedder, `edge.device.parts`); the report holds the point in force, both
matching modes side by side at their calibrated entries for the same target, and, when asked,
simulated deployments (`edge.central.evaluation.watchlists`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.central.evaluation.calibrate import curves
from edge.central.evaluation.dataset import Dataset, DatasetError, read_identities, read_pairs
from edge.central.evaluation.evaluate import evaluate
from edge.central.evaluation.scores import ModeUnavailable, Scores, score
from edge.central.evaluation.side_by_side import compare_modes
from edge.central.evaluation.watchlists import Device, Population, scratch_folder, watchlists
from edge.config import Settings
from edge.device.parts import load_cohort, stills_vision
from edge.vision import Vision
from edge.vision.cohort import Cohort
from edge.vision.operating_point import OperatingPoint
from edge.vision.runtime import ModelError, load_manifest


@dataclass(frozen=True)
class LabeledSet:
    """A labeled CSV: pairs (columns of pairs.csv) or identities (compared all against all, only
    within equal values of `within` when the file has that column; None compares everything)."""

    csv_path: Path
    is_pairs: bool
    root: Path | None = None  # the folder image paths are relative to; None: the CSV's
    group_column: str = "group"
    within: str | None = "source"

    @classmethod
    def of(cls, pairs: Path | None, identities: Path | None, root: Path | None, group_column: str, within: str):
        """From the command line's flags: one of `pairs` and `identities`; `within` "-" compares everything."""
        csv_path = pairs or identities
        if csv_path is None:
            raise DatasetError("give a labeled set: --pairs CSV or --identities CSV")
        return cls(csv_path, pairs is not None, root, group_column, None if within == "-" else within)

    @property
    def image_root(self) -> Path:
        return self.root or self.csv_path.parent

    def read(self) -> Dataset:
        if self.is_pairs:
            return read_pairs(self.csv_path, self.image_root, self.group_column)
        return read_identities(self.csv_path, self.image_root, self.group_column, self.within)


@dataclass(frozen=True)
class WatchlistPlan:
    """Simulated deployments: lists of each size, drawn `lists` times, `photos` enrolled per person."""

    sizes: list[int]
    lists: int
    photos: int
    seed: int


def load_scores(settings: Settings, labeled: LabeledSet) -> tuple[Vision, Scores]:
    """The still-image pipeline as configured, and every pair's distance (global scores, with the
    images' cohort scales when the embedder has a cohort)."""
    dataset = labeled.read()
    vision = stills_vision(settings)
    try:
        cohort, why = Cohort.load(load_manifest(settings.models.models_dir), vision.embedder.model_id), ""
    except ModelError as e:
        cohort, why = None, str(e)
    return vision, score(vision, dataset, cohort, why)


def cohort_record(settings: Settings, embedder_id: str) -> dict[str, Any] | None:
    """The embedder's cohort model as the report names it: id, sha256, its statistic and the DEV
    comparison its parameters were chosen by (`scripts/build_cohort.py --grid`, when recorded)."""
    manifest = load_manifest(settings.models.models_dir)
    try:
        cohort = Cohort.load(manifest, embedder_id)
    except ModelError:
        return None
    raw = json.loads(manifest.path(manifest.get(cohort.model_id)).read_text(encoding="utf-8"))
    return {
        "id": cohort.model_id,
        "sha256": cohort.sha256,
        "k": raw["statistic"].get("k", len(cohort.counts)),
        "centroids": len(cohort.counts),
        "min_members": int(cohort.counts.min()),
        "quantile": cohort.quantile,
        "selection": raw.get("selection"),
    }


def scores_by_mode(scores: Scores) -> tuple[dict[str, Scores], str]:
    """The scores of every matching mode that can be scored, and why per_template cannot (or "")."""
    try:
        return {"global": scores, "per_template": scores.in_mode("per_template")}, ""
    except ModeUnavailable as e:
        return {"global": scores}, str(e)


def simulated_watchlists(
    settings: Settings, vision: Vision, scores: Scores, point: OperatingPoint, plan: WatchlistPlan
) -> dict[str, Any]:
    """Simulated deployments at `point`: galleries built with the cohort's scales, as the device builds them."""
    try:
        cohort = load_cohort(settings, vision.embedder.model_id)
    except ModelError as e:
        raise ModelError(f"--watchlists builds galleries as the device does, with the cohort model: {e}") from None
    assert scores.descriptors is not None, "score() keeps the descriptors it measured"
    population = Population.of(scores.dataset, scores.descriptors)
    with scratch_folder() as folder:
        device = Device(point, cohort, vision.embedder.model_id, vision.embedder.sha256, Path(folder))
        return watchlists(device, population, plan.sizes, plan.lists, plan.photos, plan.seed)


def evaluation_report(
    settings: Settings,
    labeled: LabeledSet,
    vision: Vision,
    scores: Scores,
    point: OperatingPoint,
    plan: WatchlistPlan | None,
) -> tuple[dict[str, Any], dict[str, Scores]]:
    """The report of one evaluation at `point` (`report.json`), and the scores of each mode it
    compared (for the plots)."""
    by_mode, why_missing = scores_by_mode(scores)
    if point.mode not in by_mode:
        raise ModeUnavailable(why_missing)
    spec = vision.embedder.entry.spec
    entries = spec.get("calibration_table", {}).get("entries", [])
    context = {
        "dataset_path": str(labeled.csv_path),
        "root": str(labeled.image_root),
        "models": {
            "detector": {"id": vision.detector.entry.model_id, "sha256": vision.detector.entry.sha256},
            "embedder": {
                "id": vision.embedder.model_id,
                "sha256": vision.embedder.sha256,
                "descriptor": vision.embedder.descriptor,
            },
            "cohort": cohort_record(settings, vision.embedder.model_id),
        },
        "quality_gate": settings.quality.model_dump(),
        "calibration": {
            "operating_point": spec.get("operating_point"),
            "entries": entries,
            "fmr_curves": curves(spec.get("calibration_table", {})),
        },
    }
    threshold = {"value": point.threshold, "source": point.origin, "calibrated_fmr": point.fmr, "mode": point.mode}
    target = {"target_fmr": point.target_fmr, "scope": point.scope} if point.target_fmr else spec.get("operating_point")
    report = evaluate(by_mode, threshold, context, compare_modes(by_mode, target, entries, why_missing))
    if plan is not None:
        report["watchlists"] = simulated_watchlists(settings, vision, scores, point, plan)
    return report, by_mode


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures `edge eval` prints: the point in force, each mode, and the watchlists' overall rates."""
    at = report["overall"]["at_threshold"]
    modes = report.get("modes", {})
    result = {
        "threshold": at["threshold"],
        "fmr": at["fmr"],
        "fnmr": at["fnmr"],
        "roc_auc": report["overall"]["roc_auc"],
        "images_failed": report["failures"]["images"],
        "modes": {
            mode: {k: m[k] for k in ("threshold", "overall")} if m["available"] else m
            for mode, m in modes.get("modes", {}).items()
        },
        "fnmr_reduction": (modes.get("fnmr_reduction") or {}).get("overall"),
    }
    if "watchlists" in report:
        result["watchlists"] = {
            str(entry["size"]): {k: entry["overall"][k] for k in ("alerts", "scans", "observed", "predicted")}
            if entry["supported"]
            else entry["reason"]
            for entry in report["watchlists"]["sizes"]
        }
    return result
