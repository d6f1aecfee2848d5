"""`edge eval (--pairs CSV | --identities CSV) --root DIR --out DIR`: error rates, overall and per group.

Runs the device's own still-image path (stills detector, configured quality gate, aligner,
embedder) over a labeled set and writes report.json, report.md, det.png and groups.png: the
point in force, and both matching modes side by side at their calibrated entries for the same
target. The PNGs need matplotlib (the central extra); without it they are skipped with a note,
so the command also runs on a board. `--watchlists K ...` adds simulated deployments
(`edge.central.evaluation.watchlists`): the false alerts the device predicts for a list of K people
against those its gallery and matcher raise on the other people of the set.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.central.evaluation.calibrate import curves
from edge.central.evaluation.dataset import Dataset, DatasetError, read_identities, read_pairs
from edge.central.evaluation.evaluate import evaluate
from edge.central.evaluation.plots import write_plots
from edge.central.evaluation.report import write_report
from edge.central.evaluation.scores import ModeUnavailable, Scores, score
from edge.central.evaluation.side_by_side import compare_modes
from edge.central.evaluation.watchlists import (
    LISTS,
    PHOTOS,
    SEED,
    SIZES,
    Device,
    Population,
    scratch_folder,
    watchlists,
)
from edge.commands.common import CommandError, print_json, settings_from
from edge.config import Settings
from edge.device.app import build_vision, load_cohort, operating_point
from edge.vision import Vision
from edge.vision.cohort import Cohort
from edge.vision.operating_point import OperatingPoint
from edge.vision.runtime import ModelError, load_manifest


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The labeled-set flags `edge eval` and `edge calibrate` share."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", type=Path, help="labeled pairs CSV (columns of ../shared/data/pairs.csv)")
    source.add_argument(
        "--identities", type=Path, help="labeled image CSV (columns of identities.csv), compared all against all"
    )
    p.add_argument("--root", type=Path, help="folder the CSV's image paths are relative to (default: the CSV's)")
    p.add_argument(
        "--group-column",
        default="group",
        help="demographic group column (pairs: <column>_a and <column>_b; default: group)",
    )
    p.add_argument(
        "--within",
        default="source",
        help="--identities only: compare only images with the same value in this column, when the "
        "file has it (default: source, since one person may carry other labels in other "
        "sources); '-' compares everything",
    )
    p.add_argument("--models", type=Path, help="models folder (default: the bundled models/)")


def read_dataset(args: argparse.Namespace) -> Dataset:
    csv_path = args.pairs or args.identities
    root = args.root or csv_path.parent
    try:
        if args.pairs is not None:
            return read_pairs(csv_path, root, args.group_column)
        return read_identities(csv_path, root, args.group_column, None if args.within == "-" else args.within)
    except DatasetError as e:
        raise CommandError(str(e)) from None


def load_scores(args: argparse.Namespace, **flags: Any) -> tuple[Settings, Vision, Scores]:
    """Settings (with `flags`, dotted keys), the still-image pipeline as configured, and every
    pair's distance (global scores, with the images' cohort scales when the embedder has a cohort)."""
    settings, _, _ = settings_from(args, **{"models.models_dir": args.models, **flags})
    dataset = read_dataset(args)
    vision = build_vision(settings, settings.models.stills_detector)
    try:
        cohort, why = Cohort.load(load_manifest(settings.models.models_dir), vision.embedder.model_id), ""
    except ModelError as e:
        cohort, why = None, str(e)
    return settings, vision, score(vision, dataset, cohort, why)


def in_mode(scores: Scores, mode: str) -> Scores:
    """`scores` in matching mode `mode`; an operator error when per_template has no cohort."""
    try:
        return scores.in_mode(mode)
    except ModeUnavailable as e:
        raise CommandError(str(e)) from None


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


def watchlist_sizes(args: argparse.Namespace) -> list[int] | None:
    """The list sizes `--watchlists` asks for (`SIZES` when given bare), checked before any image is read."""
    if args.watchlists is None:
        return None
    if args.identities is None:
        raise CommandError("--watchlists draws people and their photos from an identities file: use --identities")
    sizes = sorted(set(args.watchlists or SIZES))
    if min(*sizes, args.lists, args.photos) < 1:
        raise CommandError("--watchlists sizes, --lists and --photos must be at least 1")
    return sizes


def simulated_watchlists(
    args: argparse.Namespace,
    sizes: list[int],
    settings: Settings,
    vision: Vision,
    scores: Scores,
    point: OperatingPoint,
) -> dict[str, Any]:
    """Simulated deployments at `point`: galleries built with the cohort's scales, as the device builds them."""
    try:
        cohort = load_cohort(settings, vision.embedder.model_id)
    except ModelError as e:
        raise CommandError(f"--watchlists builds galleries as the device does, with the cohort model: {e}") from None
    assert scores.descriptors is not None, "score() keeps the descriptors it measured"
    try:
        population = Population.of(scores.dataset, scores.descriptors)
    except DatasetError as e:
        raise CommandError(str(e)) from None
    with scratch_folder() as folder:
        device = Device(point, cohort, vision.embedder.model_id, vision.embedder.sha256, Path(folder))
        return watchlists(device, population, sizes, args.lists, args.photos, args.seed)


def run(args: argparse.Namespace) -> int:
    sizes = watchlist_sizes(args)
    settings, vision, scores = load_scores(args, **{"match.threshold": args.threshold})
    point = operating_point(settings, vision.embedder.entry)  # the device's own resolution
    by_mode, why_missing = scores_by_mode(scores)
    if point.mode not in by_mode:
        raise CommandError(why_missing)
    spec = vision.embedder.entry.spec
    entries = spec.get("calibration_table", {}).get("entries", [])
    csv_path = args.pairs or args.identities
    context = {
        "dataset_path": str(csv_path),
        "root": str(args.root or csv_path.parent),
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
    modes = compare_modes(by_mode, target, entries, why_missing)
    report = evaluate(by_mode, threshold, context, modes)
    if sizes is not None:
        report["watchlists"] = simulated_watchlists(args, sizes, settings, vision, scores, point)
    written = [*write_report(args.out, report), *write_plots(args.out, by_mode, report)]
    at = report["overall"]["at_threshold"]
    print_json(
        {
            "out": str(args.out),
            "files": [p.name for p in written],
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
            **({} if sizes is None else {"watchlists": watchlist_summary(report["watchlists"])}),
        }
    )
    return 0


def watchlist_summary(section: dict[str, Any]) -> dict[str, Any]:
    """Per list size, the whole population's observed and predicted false alerts per 1,000 scans."""
    return {
        str(entry["size"]): {k: entry["overall"][k] for k in ("alerts", "scans", "observed", "predicted")}
        if entry["supported"]
        else entry["reason"]
        for entry in section["sizes"]
    }


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="error rates of the device pipeline on a labeled set, overall and per group")
    add_data_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="folder for report.json, report.md and the PNGs")
    p.add_argument(
        "--threshold",
        type=float,
        help="distance threshold (default: the configured operating point, as the device resolves "
        "it: match.threshold, match.target_fmr, the manifest's operating point, the embedder's)",
    )
    p.add_argument(
        "--watchlists",
        type=int,
        nargs="*",
        action="extend",
        metavar="K",
        help="--identities only: simulate watchlists of K people each (several K allowed; bare: "
        f"{' '.join(map(str, SIZES))}), every other person of the set a passer-by, and compare the false alerts "
        "the device predicts with those its gallery raises",
    )
    p.add_argument("--lists", type=int, default=LISTS, help=f"random watchlists per size (default: {LISTS})")
    p.add_argument(
        "--photos", type=int, default=PHOTOS, help=f"photos enrolled per person, at most (default: {PHOTOS})"
    )
    p.add_argument("--seed", type=int, default=SEED, help=f"seed of the watchlist draws (default: {SEED})")
    p.set_defaults(func=run)
