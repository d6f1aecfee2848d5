"""The cohort model: what it holds, and the files it refuses (each a one-line error naming the file)."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from edge.cli import main
from edge.vision import ModelError, load_manifest
from edge.vision.cohort import Cohort

EMBEDDER = load_manifest().default_embedder  # what `edge calibrate` and `edge enroll` use


@pytest.fixture
def models_copy(models_dir, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    return copy


def rewrite(models, change) -> None:
    """Change the cohort file's JSON and record its new sha256, as a careless rebuild would."""
    manifest = json.loads((models / "manifest.json").read_text())
    record = manifest["models"][manifest["models"][EMBEDDER]["cohort"]]
    path = models / record["file"]
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))
    record["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (models / "manifest.json").write_text(json.dumps(manifest))


def test_shipped_cohort_identifies_nobody_and_scales_around_one():
    cohort = Cohort.load(load_manifest(), EMBEDDER)
    assert len(cohort.centroids) == len(cohort.counts) == 128 and cohort.counts.min() >= 10
    rng = np.random.default_rng(0)
    near = cohort.centroids[rng.integers(0, len(cohort.centroids), 200)]
    scales = cohort.scales(near + rng.normal(0, 0.02, near.shape).astype(np.float32))
    assert scales.dtype == np.float32 and (scales > 0).all() and 0.5 < float(np.median(scales)) < 1.5


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda raw: raw.update(embedder_sha256="0" * 64), "rebuild it with scripts/build_cohort.py"),
        (lambda raw: raw["counts"].__setitem__(0, 3), "fewer than 10 people"),
        (lambda raw: raw["statistic"].update(quantile=1.5), "out of range"),
        (lambda raw: raw.update(format="something else"), "format"),
    ],
)
def test_a_bad_cohort_file_is_refused_by_name(models_copy, change, words):
    rewrite(models_copy, change)
    with pytest.raises(ModelError, match=words):
        Cohort.load(load_manifest(models_copy), EMBEDDER)


def test_enroll_with_a_bad_cohort_is_one_line(models_copy, data_dir, tmp_path, capsys):
    rewrite(models_copy, lambda raw: raw.update(embedder_sha256="0" * 64))
    image = data_dir / "lfw" / "Colin_Powell" / "Colin_Powell_0001.jpg"
    gallery = tmp_path / "g.sqlite"
    code = main(["enroll", "--gallery", str(gallery), "--name", "c", "--models", str(models_copy), str(image)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "cohort" in err and "rebuild" in err
    assert not gallery.exists()
