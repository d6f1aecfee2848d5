"""`edge calibrate (--pairs CSV | --identities CSV) --target-fmr F [--worst-group] [--mode M]`: a threshold for an FMR.

Measures the device's still-image path on a labeled set, picks the largest threshold whose
measured FMR is at most F (overall, or in every sizeable group that supports F) in matching mode
M (per_template: the knob of each template's scaled threshold; global: a distance), and records it
in the embedder's `calibration_table` in the manifest, with the data set, software and CPU it
was measured on. A target the data cannot support, or a run on fewer impostor comparisons than
the entry or curve it would replace (without --replace), exits with status 1 and writes nothing.
"""

from __future__ import annotations

import argparse

from edge.central.evaluation.calibrate import CalibrationRefused, calibrate, fmr_curve, record_calibration
from edge.central.evaluation.run import LabeledSet, load_scores
from edge.central.evaluation.stats import SUPPORT_RULE
from edge.commands.common import CommandError, add_data_arguments, print_json, settings_from
from edge.vision.cohort import MODES
from edge.vision.runtime import MANIFEST_NAME, load_manifest


def run(args: argparse.Namespace) -> int:
    for target in args.target_fmr:
        if not 0 < target < 1:
            raise CommandError(f"--target-fmr must lie between 0 and 1, got {target}")
    if args.operating_point and len(args.target_fmr) > 1:
        raise CommandError("--operating-point takes one --target-fmr, got several")
    labeled = LabeledSet.of(args.pairs, args.identities, args.root, args.group_column, args.within)
    settings, _, _ = settings_from(args, **{"models.models_dir": args.models})
    vision, scores = load_scores(settings, labeled)
    scores = scores.in_mode(args.mode)
    scope = "worst_group" if args.worst_group else "overall"
    try:  # every target first: one the data cannot support writes nothing at all
        entries = [calibrate(scores, t, scope, vision.detector.entry.model_id) for t in args.target_fmr]
    except CalibrationRefused as e:
        raise CommandError(f"{e}; nothing written") from None
    manifest_path = load_manifest(settings.models.models_dir).directory / MANIFEST_NAME
    try:
        if not args.dry_run:
            record_calibration(
                manifest_path, vision.embedder.model_id, entries, fmr_curve(scores), args.operating_point, args.replace
            )
    except CalibrationRefused as e:
        raise CommandError(f"{e}; nothing written") from None
    context = {
        "manifest": str(manifest_path),
        "written": not args.dry_run,
        "embedder": vision.embedder.model_id,
        "operating_point": args.operating_point,
    }
    shown = [{**context, **_summary(entry)} for entry in entries]
    print_json(shown[0] if len(shown) == 1 else shown)
    return 0


def _summary(entry: dict) -> dict:
    """The entry as printed: each group's counts and rates without its intervals."""
    keep = ("fmr", "false_matches", "impostor_pairs", "fnmr", "genuine_pairs", "supports_target")
    groups = {g: {k: row[k] for k in keep} for g, row in entry["groups"].items()}
    return {**{k: v for k, v in entry.items() if k != "groups"}, "groups": groups}


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="set a distance threshold for a target false match rate (manifest table)")
    add_data_arguments(p)
    p.add_argument(
        "--target-fmr",
        type=float,
        nargs="+",
        required=True,
        help="false match rate(s) to hold, e.g. 0.01 (several: one entry each, from one description of the "
        "images; all refused if one is); " + SUPPORT_RULE.replace("%", "%%"),
    )
    p.add_argument(
        "--worst-group",
        action="store_true",
        help="hold the target in every sizeable group that supports it (the worst group decides), "
        "not only over all impostor pairs",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default="per_template",
        help="matching mode to calibrate: per_template (the knob times each template's cohort scale; "
        "default) or global (one distance threshold)",
    )
    p.add_argument(
        "--operating-point",
        action="store_true",
        help="also make this entry the embedder's operating point (the device's default threshold)",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace an entry or FMR curve measured on more impostor comparisons or other groups than this run's "
        "(refused otherwise), and a curve from another data set file (kept otherwise)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="measure and print the entry, write nothing (check a shipped calibration on this machine)",
    )
    p.set_defaults(func=run)
