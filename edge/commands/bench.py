"""`edge bench`: frames per second, stage times, latency, memory and faces found, for the whole
device loop on this machine, beside face_recognition's pipeline on the same frames."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from edge.bench.clips import DATA_DIR, Clip, sample_clip, shared_clips
from edge.bench.runner import BenchPlan, run_bench
from edge.commands.common import CommandError, config_file
from edge.enrollment import Person
from edge.vision.tiling import DEFAULT_TILE_PX

DETECTORS = ["blazeface_short_range", "blazeface_full_range"]


def run(args: argparse.Namespace) -> int:
    if args.passes < 1:
        raise CommandError(f"--passes must be at least 1, not {args.passes}")
    with tempfile.TemporaryDirectory(prefix="edge-bench-clip-") as scratch:  # a generated clip, if one is needed
        plan = BenchPlan(
            clips=_clips(args, Path(scratch)),
            detectors=args.detectors,
            threads=args.threads,
            tile_px=args.tile_px,
            refine=not args.no_refine,
            reference=not args.no_reference,
            synthetic_identities=args.gallery_size,
            max_frames=args.max_frames,
            passes=args.passes,
            config_file=config_file(args),
            models_dir=args.models,
        )
        results, path = run_bench(plan, args.out)
    print(path.with_suffix(".md").read_text())
    print(f"results: {path} and {path.with_suffix('.md')}")
    return 1 if any("error" in r for r in results["runs"]) else 0


def _clips(args: argparse.Namespace, scratch: Path) -> list[Clip]:
    """The clips named with --video, else the shared data's, else one generated in `scratch`."""
    if args.video:
        missing = [str(v) for v in args.video if not v.is_file()]
        if missing:
            raise CommandError(f"no such video: {', '.join(missing)}")
        people = tuple(Person(photo.stem, (photo.resolve(),)) for photo in args.enroll)
        return [Clip(v.resolve(), people) for v in args.video]
    clips = shared_clips(args.data)
    if clips:
        return clips
    try:
        return [sample_clip(scratch)]
    except FileNotFoundError as e:
        raise CommandError(str(e)) from None


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure the whole loop on this machine, beside the dlib reference")
    p.add_argument(
        "--video",
        type=Path,
        nargs="+",
        help="clips to measure (default: the real clips of --data, else a generated one)",
    )
    p.add_argument(
        "--enroll",
        type=Path,
        nargs="+",
        default=[],
        help="with --video: photos of people the clips show, one person per photo (named by file name)",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=DATA_DIR,
        help="shared data folder with the default clips (default: $EDGE_TEST_DATA, else ../shared/data beside "
        "the checkout)",
    )
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="inference thread counts to measure")
    p.add_argument("--detectors", nargs="+", default=DETECTORS, help="detector model ids to measure")
    p.add_argument(
        "--tile-px",
        type=int,
        default=DEFAULT_TILE_PX,
        help="largest tile side for the detector; larger frames are tiled (0: never)",
    )
    p.add_argument("--no-refine", action="store_true", help="embed faces without finding them again on a crop")
    p.add_argument("--no-reference", action="store_true", help="skip the dlib reference pipeline")
    p.add_argument(
        "--gallery-size",
        type=int,
        default=100,
        help="synthetic identities (5 templates each) enrolled beside the real people of the clips",
    )
    p.add_argument("--max-frames", type=int, help="measure only the first N frames of each clip")
    p.add_argument(
        "--passes",
        type=int,
        default=5,
        help="throughput passes over each clip per configuration; the median pass is reported (the "
        "reference runs once: it is slow enough to average out other load)",
    )
    p.add_argument("--models", type=Path, help="models folder (models.models_dir)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for the JSON and Markdown results")
    p.set_defaults(func=run)
