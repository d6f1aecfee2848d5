"""`edge eval (--pairs CSV | --identities CSV) --root DIR --out DIR`: error rates, overall and per group.

Runs the device's own still-image path over a labeled set (`edge.central.evaluation.run`) and
writes report.json, report.md, det.png and groups.png. The PNGs need matplotlib (the central
extra); without it they are skipped with a note, so the command also runs on a board.
`--watchlists K ...` adds simulated deployments: the false alerts the device predicts for a list
of K people against those its gallery and matcher raise on the other people of the set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.central.evaluation.plots import write_plots
from edge.central.evaluation.report import write_report
from edge.central.evaluation.run import LabeledSet, WatchlistPlan, evaluation_report, load_scores, summary
from edge.central.evaluation.watchlists import LISTS, PHOTOS, SEED, SIZES
from edge.commands.common import CommandError, add_data_arguments, print_json, settings_from
from edge.device.parts import operating_point


def watchlist_plan(args: argparse.Namespace) -> WatchlistPlan | None:
    """The watchlists `--watchlists` asks for (`SIZES` when given bare), checked before any image is read."""
    if args.watchlists is None:
        return None
    if args.identities is None:
        raise CommandError("--watchlists draws people and their photos from an identities file: use --identities")
    plan = WatchlistPlan(sorted(set(args.watchlists or SIZES)), args.lists, args.photos, args.seed)
    if min(*plan.sizes, plan.lists, plan.photos) < 1:
        raise CommandError("--watchlists sizes, --lists and --photos must be at least 1")
    return plan


def run(args: argparse.Namespace) -> int:
    plan = watchlist_plan(args)
    labeled = LabeledSet.of(args.pairs, args.identities, args.root, args.group_column, args.within)
    settings, _, _ = settings_from(args, **{"models.models_dir": args.models, "match.threshold": args.threshold})
    vision, scores = load_scores(settings, labeled)
    point = operating_point(settings, vision.embedder.entry)  # the device's own resolution
    report, by_mode = evaluation_report(settings, labeled, vision, scores, point, plan)
    written = [*write_report(args.out, report), *write_plots(args.out, by_mode, report)]
    print_json({"out": str(args.out), "files": [p.name for p in written], **summary(report)})
    return 0


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
