"""`edge verify`: one JSON object, or a clear error and exit status 1."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.config import load_settings
from edge.device.parts import build_vision
from edge.vision import load_image
from edge.vision.cohort import Cohort
from edge.vision.operating_point import resolve


def verify(capsys, *args) -> tuple[int, dict | None, str]:
    code = main(["verify", *map(str, args)])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else None), out.err


def test_same_person(data_dir, capsys, manifest):
    lfw = data_dir / "lfw" / "Colin_Powell"
    code, result, _ = verify(capsys, lfw / "Colin_Powell_0001.jpg", lfw / "Colin_Powell_0002.jpg")
    embedder = manifest.get(manifest.default_embedder)
    in_force = resolve(embedder, None, None, mode="per_template")
    vision = build_vision(load_settings(), "blazeface_short_range")
    enrolled = vision.describe_single(load_image(lfw / "Colin_Powell_0001.jpg"), "a").embedded()
    scale = Cohort.load(manifest, embedder.model_id).scales(enrolled[None, :])  # image A plays the template
    assert code == 0 and result["same"] is True and result["metric"] == "euclidean"
    assert result["knob"] == in_force.threshold and result["mode"] == "per_template"
    assert result["distance"] <= result["threshold"] == pytest.approx(in_force.threshold * scale[0], abs=1e-4)
    assert result["fmr_at_threshold"] == in_force.fmr and result["threshold_origin"] == in_force.origin
    assert result["model_id"] == embedder.model_id and len(result["a"]["box"]) == 4


def test_different_people_and_threshold_flag(data_dir, capsys, monkeypatch):
    a = data_dir / "face_recognition/examples/obama.jpg"
    b = data_dir / "face_recognition/examples/biden.jpg"
    code, result, _ = verify(capsys, a, b)
    assert code == 0 and result["same"] is False and result["distance"] > result["threshold"]
    code, loose, _ = verify(capsys, a, b, "--threshold", "1.5")
    assert loose["same"] is True and loose["knob"] == 1.5 and loose["distance"] == result["distance"]
    _, scaled, _ = verify(capsys, a, b, "--threshold", "0.5")
    monkeypatch.setenv("EDGE_MATCH__THRESHOLDS", "global")
    _, flat, _ = verify(capsys, a, b, "--threshold", "0.5")
    assert flat["mode"] == "global" and flat["threshold"] == 0.5 != scaled["threshold"]


def test_several_faces_is_an_error(data_dir, capsys):
    code, _, err = verify(
        capsys, data_dir / "face_recognition/examples/obama.jpg", data_dir / "face_recognition/examples/two_people.jpg"
    )
    assert code == 1 and "2 faces found in" in err and "two_people.jpg" in err


def test_no_face_is_an_error(tmp_path, capsys, data_dir):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 128, np.uint8))
    code, _, err = verify(capsys, blank, data_dir / "face_recognition/examples/obama.jpg")
    assert code == 1 and f"no face found in {blank}" in err


def test_unreadable_file_is_an_error(tmp_path, capsys):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a jpeg")
    code, _, err = verify(capsys, junk, tmp_path / "missing.jpg")
    assert code == 1 and "cannot read image" in err and "junk.jpg" in err
