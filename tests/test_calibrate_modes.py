"""Calibration in both matching modes on synthetic scores (no images): per-template scores, entries
keyed by mode, the curve replacement rule, and refusals at cohort-scale targets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edge.central.evaluation.calibrate import CalibrationRefused, calibrate, fmr_curve, record_calibration
from edge.central.evaluation.dataset import read_identities
from edge.central.evaluation.scores import ModeUnavailable, Scores


def people(path: Path, counts: dict[str, int], column: str = "gender") -> Path:
    """An identities file of `counts[group]` images per group, two per person."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "identity", column])
        for group, n in counts.items():
            for i in range(n):
                writer.writerow([f"{group}/{i}.jpg", f"{group}_{i // 2}", group])
    return path


def synthetic(path: Path, counts: dict[str, int], seed: int = 0, column: str = "gender") -> Scores:
    dataset = read_identities(people(path, counts, column), path.parent, column, None)
    rng = np.random.default_rng(seed)
    distances = rng.uniform(0.2, 1.0, dataset.a.size).astype(np.float32)
    scales = rng.uniform(0.8, 1.25, len(dataset.images)).astype(np.float32)
    scales[3] = np.nan  # a failed image: its pairs are NaN in both modes
    distances[(dataset.a == 3) | (dataset.b == 3)] = np.nan
    return Scores(dataset, distances, {"female/3.jpg": "no face found"}, scales)


def test_per_template_scores_divide_by_the_first_images_scale(tmp_path):
    scores = synthetic(tmp_path / "p.csv", {"female": 50, "male": 60})
    scaled = scores.in_mode("per_template")
    a = scores.dataset.a
    assert scaled.mode == "per_template" and scaled.distances.dtype == np.float32
    expected = scores.distances / scores.scales[a]
    np.testing.assert_array_equal(np.isnan(scaled.distances), np.isnan(scores.distances))
    np.testing.assert_allclose(scaled.distances, expected, rtol=1e-6)
    assert scores.in_mode("global") is scores
    with pytest.raises(ModeUnavailable, match="no cohort model"):
        Scores(scores.dataset, scores.distances, {}).in_mode("per_template")
    assert scores.dataset.a.dtype == np.int32 and scores.dataset.pair_group.dtype == np.int8


def test_overall_supported_where_worst_group_is_refused(tmp_path):
    """As on the cohort (female-female 2.4 million comparisons): 200 women give 19,900 pairs, short of
    the 30,000 a worst-group 1e-4 needs, while all pairs together support it overall."""
    scores = synthetic(tmp_path / "p.csv", {"female": 200, "male": 300}).in_mode("per_template")
    entry = calibrate(scores, 1e-4, "overall", "det")
    assert entry["mode"] == "per_template" and entry["impostor_pairs"] >= 30_000 and entry["fmr"] <= 1e-4
    assert entry["groups"]["female"]["supports_target"] is False and entry["groups"]["male"]["supports_target"]
    with pytest.raises(CalibrationRefused, match=r"needs at least 30000 impostor comparisons in each of at least 2"):
        calibrate(scores, 1e-4, "worst_group", "det")
    worst = calibrate(scores, 1e-3, "worst_group", "det")
    assert worst["deciding_group"] in ("female", "male") and worst["group_column"] == "gender"


def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"models": {"emb": {"kind": "embedder"}}}))
    return path


def table(path: Path) -> dict:
    return json.loads(path.read_text())["models"]["emb"]["calibration_table"]


def test_entries_are_keyed_by_mode_and_curves_kept_per_mode(tmp_path):
    path = manifest(tmp_path)
    scores = synthetic(tmp_path / "p.csv", {"female": 50, "male": 60})
    for mode in ("global", "per_template"):
        s = scores.in_mode(mode)
        record_calibration(path, "emb", [calibrate(s, 0.01, "worst_group", "det")], fmr_curve(s), mode == "global")
    t = table(path)
    assert [(e["mode"], e["scope"]) for e in t["entries"]] == [
        ("global", "worst_group"),
        ("per_template", "worst_group"),
    ]
    assert t["entries"][0]["threshold"] != t["entries"][1]["threshold"]
    assert {m: c["mode"] for m, c in t["fmr_curves"].items()} == {"global": "global", "per_template": "per_template"}
    op = json.loads(path.read_text())["models"]["emb"]["operating_point"]
    assert op == {"mode": "global", "target_fmr": 0.01, "scope": "worst_group"}


def test_a_curve_from_another_file_is_kept_unless_replaced(tmp_path):
    path = manifest(tmp_path)
    first = synthetic(tmp_path / "a.csv", {"female": 50, "male": 60}).in_mode("per_template")
    record_calibration(path, "emb", [calibrate(first, 0.01, "overall", "det")], fmr_curve(first), False)
    (tmp_path / "b").mkdir()
    other = synthetic(tmp_path / "b" / "b.csv", {"female": 60, "male": 60}, seed=1).in_mode("per_template")
    record_calibration(path, "emb", [calibrate(other, 0.001, "overall", "det")], fmr_curve(other), False)
    t = table(path)
    assert t["fmr_curves"]["per_template"]["dataset_file"].endswith("a.csv")  # kept: another file
    assert [e["target_fmr"] for e in t["entries"]] == [0.001, 0.01]  # the entry is recorded all the same
    record_calibration(path, "emb", [calibrate(other, 0.001, "overall", "det")], fmr_curve(other), False, True)
    assert table(path)["fmr_curves"]["per_template"]["dataset_file"].endswith("b.csv")


def test_weaker_or_regrouped_replacements_are_refused(tmp_path):
    path = manifest(tmp_path)
    strong = synthetic(tmp_path / "p.csv", {"female": 50, "male": 60}).in_mode("per_template")
    record_calibration(path, "emb", [calibrate(strong, 0.01, "overall", "det")], fmr_curve(strong), False)
    before = path.read_bytes()
    weak = synthetic(tmp_path / "p.csv", {"female": 44, "male": 44}).in_mode("per_template")  # same file, fewer pairs
    with pytest.raises(
        CalibrationRefused,
        match=r"per_template FMR curve rests on 5832 .*\(p.csv .*per_template entry for target 0.01 \(overall\)",
    ):
        record_calibration(path, "emb", [calibrate(weak, 0.01, "overall", "det")], fmr_curve(weak), False)
    (tmp_path / "e").mkdir()
    regrouped = synthetic(tmp_path / "e" / "e.csv", {"x": 50, "y": 50}, column="ethnicity").in_mode("per_template")
    with pytest.raises(CalibrationRefused, match=r"measured per 'gender', this run per 'ethnicity'"):
        record_calibration(path, "emb", [calibrate(regrouped, 0.01, "overall", "det")], fmr_curve(regrouped), False)
    assert path.read_bytes() == before
