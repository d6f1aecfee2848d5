"""`edge verify IMG_A IMG_B`: are the faces in two images the same person?

IMG_A plays the enrolled photo: with per-template thresholds (the default) the pair is judged
at the knob times IMG_A's cohort scale, as the device would judge IMG_B against a template of A."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.commands.common import print_json, settings_from
from edge.device.parts import load_cohort, operating_point, stills_vision
from edge.vision import FaceResult, distance, load_image


def face_json(path: Path, result: FaceResult) -> dict:
    q = result.quality
    return {
        "path": str(path),
        "box": [round(float(v), 1) for v in result.face.box],
        "score": round(result.face.score, 3),
        "quality": {
            "size_px": round(q.size_px, 1),
            "sharpness": round(q.sharpness, 1),
            "yaw": round(q.yaw, 3),
            "roll_deg": round(q.roll_deg, 1),
        },
        "gate": result.rejected or "passed",
    }


def run(args: argparse.Namespace) -> int:
    settings, _, _ = settings_from(args, **{"models.models_dir": args.models, "match.threshold": args.threshold})
    vision = stills_vision(settings, args.detector)
    a = vision.describe_single(load_image(args.image_a), str(args.image_a), gated=False)
    b = vision.describe_single(load_image(args.image_b), str(args.image_b), gated=False)
    dist = float(distance(a.embedded(), b.embedded()))
    point = operating_point(settings, vision.embedder.entry)
    scale = 1.0
    if point.mode == "per_template":
        scale = float(load_cohort(settings, vision.embedder.model_id).scales(a.embedded()[None, :])[0])
    threshold = round(point.threshold * scale, 4)
    print_json(
        {
            "distance": round(dist, 4),
            "threshold": threshold,
            "knob": point.threshold,
            "mode": point.mode,
            "metric": vision.embedder.metric,
            "same": bool(dist <= point.threshold * scale),
            "fmr_at_threshold": point.fmr,
            "threshold_origin": point.origin,
            "model_id": vision.embedder.model_id,
            "a": face_json(args.image_a, a),
            "b": face_json(args.image_b, b),
        }
    )
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="are the faces in two images the same person? (prints JSON)")
    p.add_argument("image_a", type=Path)
    p.add_argument("image_b", type=Path)
    p.add_argument(
        "--threshold",
        type=float,
        help="the knob (per-template mode) or distance threshold (default: the configured operating point; "
        "lower is stricter)",
    )
    p.add_argument("--detector", help="detector model id (default: models.stills_detector)")
    p.add_argument("--models", type=Path, help="models folder (default: the bundled models/)")
    p.set_defaults(func=run)
