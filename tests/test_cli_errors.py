"""Operator mistakes and hostile files end in one line `edge <cmd>: ...` and exit 1, never a traceback."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from support_cohort import cohort_for
from support_images import huge_png

from edge.cli import main
from edge.device.sources import open_source
from edge.gallery import GalleryStore
from edge.vision import ImageError, ModelError, load_image, load_manifest


def one_line_error(capsys, argv: list[str], command: str) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"edge {command}: ") and "\n" not in err and "Traceback" not in err, err
    return err


# --- images above OpenCV's pixel limit ---------------------------------------------------------


def test_load_image_names_the_pixel_limit(tmp_path):
    path = huge_png(tmp_path / "huge.png")
    with pytest.raises(ImageError, match=f"cannot read image {path}: .*pixel"):
        load_image(path)


def test_verify_huge_image(tmp_path, capsys):
    path = huge_png(tmp_path / "huge.png")
    err = one_line_error(capsys, ["verify", str(path), str(path)], "verify")
    assert str(path) in err and "pixel" in err


def test_enroll_rejects_huge_image(tmp_path, capsys):
    path = huge_png(tmp_path / "huge.png")
    assert main(["enroll", "--gallery", str(tmp_path / "g.db"), "--name", "Big", str(path)]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in summary["rejected"]] == [str(path)] and "pixel" in summary["rejected"][0]["reason"]


def test_image_folder_skips_huge_image(tmp_path, caplog):
    assert cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    huge_png(tmp_path / "b.png")
    assert cv2.imwrite(str(tmp_path / "c.png"), np.zeros((8, 8, 3), np.uint8))
    source = open_source(f"dir:{tmp_path}")
    with caplog.at_level(logging.WARNING), source:
        indices = [frame.index for frame in iter(source.read, None)]
    assert indices == [0, 2] and source.skipped == 1
    assert "b.png" in caplog.text and "pixel" in caplog.text


# --- manifests that are not JSON files ---------------------------------------------------------


@pytest.fixture
def models_copy(models_dir, tmp_path) -> Path:
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy, ignore=shutil.ignore_patterns("*.tflite"))
    return copy


def test_binary_manifest(models_copy, capsys, tmp_path):
    manifest = models_copy / "manifest.json"
    manifest.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary")
    with pytest.raises(ModelError, match=f"model manifest {manifest} is malformed"):
        load_manifest(models_copy)
    one_line_error(
        capsys, ["gallery", "list", "--gallery", str(tmp_path / "g.db"), "--models", str(models_copy)], "gallery"
    )


def test_manifest_that_is_a_folder(models_copy):
    manifest = models_copy / "manifest.json"
    manifest.unlink()
    manifest.mkdir()
    with pytest.raises(ModelError, match=f"model manifest {manifest} is not a file"):
        load_manifest(models_copy)


# --- gallery export to places it cannot write --------------------------------------------------


@pytest.fixture
def gallery(tmp_path, manifest) -> Path:
    entry = manifest.get(manifest.default_embedder)
    path = tmp_path / "g.db"
    GalleryStore.create(path, entry.model_id, entry.sha256, scaler=cohort_for(entry.model_id)).close()
    return path


@pytest.mark.parametrize("out", ["missing/bundle.json", "."], ids=["missing-folder", "onto-a-folder"])
def test_export_to_unwritable_place(gallery, tmp_path, capsys, out):
    target = tmp_path / out
    err = one_line_error(capsys, ["gallery", "export", "--gallery", str(gallery), "--out", str(target)], "gallery")
    assert str(target) in err
