"""models/manifest.json against the committed model files: every model is there, unchanged,
with its provenance, licence and tensors as the record says."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edge.modelbuild.manifest import CALIBRATION_KEYS, DESCRIPTOR_VARIANTS, variant_records
from edge.modelbuild.sources import BLAZEFACE, DLIB_MODELS
from edge.vision.anchors import ssd_anchor_centres

PINNED = {BLAZEFACE.package: BLAZEFACE, DLIB_MODELS.package: DLIB_MODELS}


@pytest.fixture(scope="module")
def manifest(models_dir: Path) -> dict:
    path = models_dir / "manifest.json"
    assert path.is_file(), f"{path} is missing: run scripts/build_models.py"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def models(manifest: dict) -> dict[str, dict]:
    """The TFLite models (detectors, embedders); the cohort models are data, checked apart."""
    tflite = {m: r for m, r in manifest["models"].items() if r["kind"] != "cohort"}
    assert tflite, "the manifest lists no models"
    return tflite


def test_cohort_models_are_recorded_and_tied_to_their_embedder(models_dir: Path, manifest: dict) -> None:
    cohorts = {m: r for m, r in manifest["models"].items() if r["kind"] == "cohort"}
    embedders = {m: r for m, r in manifest["models"].items() if r["kind"] == "embedder"}
    assert {r["cohort"] for r in embedders.values()} == set(cohorts), "every embedder names its own cohort model"
    for model_id, record in cohorts.items():
        assert record["embedder"] in embedders and embedders[record["embedder"]]["cohort"] == model_id
        digest = hashlib.sha256((models_dir / record["file"]).read_bytes()).hexdigest()
        assert digest == record["sha256"], f"{model_id} differs from the manifest's sha256"
        assert record["license"] and record["source"]["dataset"] and len(record["source"]["dataset_sha256"]) == 64
        content = json.loads((models_dir / record["file"]).read_text())
        assert content["embedder"] == record["embedder"] and min(content["counts"]) >= content["min_members"] >= 10


def test_descriptor_variants_read_their_files_record_with_the_descriptor_declared(manifest: dict) -> None:
    """What a rebuild writes for a variant (`variant_records`) is what the manifest holds, less calibration."""
    build_keys = {m: {k: v for k, v in r.items() if k not in CALIBRATION_KEYS} for m, r in manifest["models"].items()}
    for model_id, record in variant_records(build_keys).items():
        assert build_keys[model_id] == record and record["descriptor"] == "mirror_mean"
        base = build_keys[DESCRIPTOR_VARIANTS[model_id]["file_of"]]
        assert (record["file"], record["sha256"], record["verification"]) == (
            base["file"],
            base["sha256"],
            base["verification"],
        )
        assert "descriptor" not in base
    assert manifest["default_embedder"] in DESCRIPTOR_VARIANTS


def test_schema_and_defaults(manifest: dict, models: dict[str, dict]) -> None:
    assert manifest["schema"] == 1
    assert models[manifest["default_detector"]]["kind"] == "detector"
    assert models[manifest["default_embedder"]]["kind"] == "embedder"


def test_files_exist_and_match_sha256(models_dir: Path, models: dict[str, dict]) -> None:
    for model_id, record in models.items():
        path = models_dir / record["file"]
        assert path.is_file(), f"{model_id}: {path} is missing"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == record["sha256"], f"{model_id}: {path} differs from the manifest's sha256"


def test_provenance_and_licence(models: dict[str, dict]) -> None:
    for model_id, record in models.items():
        source = record["source"]
        pin = PINNED[source["package"]]
        assert (source["version"], source["artifact"], source["artifact_sha256"]) == (
            pin.version,
            pin.artifact,
            pin.sha256,
        ), f"{model_id}: source differs from the pin in edge/modelbuild/sources.py"
        assert source["member"] and source["upstream"], model_id
        expected = "Apache-2.0" if record["kind"] == "detector" else "CC0-1.0"
        assert record["license"] == expected, model_id


def test_inputs_and_outputs_described(models: dict[str, dict]) -> None:
    for model_id, record in models.items():
        spec = record["input"]
        assert {"width", "height", "dtype", "range", "color"} <= spec.keys(), model_id
        assert spec["color"] == "RGB", model_id
        output = record["output"]
        if record["kind"] == "detector":
            anchors = len(ssd_anchor_centres(record["anchors"], spec["width"], spec["height"]))
            assert output["regressors"] == [1, anchors, 16], model_id
            assert output["classificators"] == [1, anchors, 1], model_id
        else:
            assert (spec["width"], spec["height"], spec["range"]) == (150, 150, [0, 255]), model_id
            assert output == {"dim": 128, "dtype": "float32"}, model_id
            assert record["distance"] == "euclidean", model_id
            assert record["threshold"] == pytest.approx(0.6), model_id


def test_embedders_verified_against_dlib(models: dict[str, dict]) -> None:
    embedders = {m: r for m, r in models.items() if r["kind"] == "embedder"}
    assert embedders, "no embedder in the manifest"
    for model_id, record in embedders.items():
        figures = record["verification"]
        assert figures["chips"] >= 64, model_id
        assert 0.999 <= figures["cosine_min"] <= figures["cosine_mean"] <= 1.0, model_id
        assert 0.0 <= figures["euclidean_mean"] <= figures["euclidean_max"] < 0.6, model_id
        if record["input"]["dtype"] == "uint8":
            assert record["calibration"]["images"] >= 50, model_id


def test_tensors_match_records(models_dir: Path, models: dict[str, dict]) -> None:
    """What the device runtime trusts the records for: shapes, dtypes, and the uint8 input's
    scale 1.0 and zero point 0 (check_io raises naming the file and the mismatch)."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is needed to read the models")
    from edge.modelbuild.verify import check_io

    for record in models.values():
        check_io(models_dir / record["file"], record)
