"""The `edge` command line: one subcommand per job, each a small function."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from edge import __version__


class CommandError(Exception):
    """A command cannot do its job; the message is shown to the operator as is."""


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=Path, default=None, help="models folder (default: bundled models/)")
    parser.add_argument("--detector", default=None, help="detector model id (default: the manifest's)")
    parser.add_argument("--embedder", default=None, help="embedder model id (default: the manifest's)")
    parser.add_argument("--threads", type=int, default=1, help="inference threads")


def _vision(args: argparse.Namespace):
    from edge.vision import Vision, load_manifest

    manifest = load_manifest(args.models)
    return Vision(manifest, args.detector, args.embedder, threads=args.threads)


def cmd_verify(args: argparse.Namespace) -> int:
    """Compare the one face in each of two images; print distance, threshold and verdict."""
    from edge.vision import distance, load_image

    vision = _vision(args)
    results = {}
    for key, path in (("a", args.image_a), ("b", args.image_b)):
        result = vision.describe_single(load_image(path), str(path), gated=False)
        results[key] = result
    embedder = vision.embedder
    dist = distance(results["a"].embedding, results["b"].embedding)
    threshold = args.threshold if args.threshold is not None else embedder.threshold

    def face_json(path: Path, r) -> dict:
        q = r.quality
        return {
            "path": str(path),
            "box": [round(float(v), 1) for v in r.face.box],
            "score": round(r.face.score, 3),
            "quality": {"size_px": round(q.size_px, 1), "sharpness": round(q.sharpness, 1),
                        "yaw": round(q.yaw, 3), "roll_deg": round(q.roll_deg, 1)},
            "gate": r.rejected or "passed",
        }

    print(json.dumps({
        "distance": round(dist, 4),
        "threshold": threshold,
        "metric": embedder.metric,
        "same": bool(dist <= threshold),
        "model_id": embedder.model_id,
        "a": face_json(args.image_a, results["a"]),
        "b": face_json(args.image_b, results["b"]),
    }, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Edge face-matching appliance")
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    verify = sub.add_parser("verify", help="are the faces in two images the same person?")
    verify.add_argument("image_a", type=Path)
    verify.add_argument("image_b", type=Path)
    verify.add_argument("--threshold", type=float, default=None,
                        help="distance threshold (default: the embedder's; lower is stricter)")
    _add_model_options(verify)
    verify.set_defaults(func=cmd_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from edge.vision import FaceCountError, ImageError, ModelError

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (CommandError, FaceCountError, ImageError, ModelError) as e:
        print(f"edge {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
