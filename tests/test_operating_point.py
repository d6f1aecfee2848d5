"""Thresholds as false match rates, and what the gallery's size does to them."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from edge.cli import main
from edge.config import ConfigError, load_settings
from edge.device.app import run_device
from edge.vision.operating_point import (
    MeasuredRate,
    OperatingPoint,
    OperatingPointError,
    fmr_at,
    resolve,
)
from edge.vision.rates import wilson
from edge.vision.runtime import ModelEntry

TABLE = {
    "entries": [
        {"target_fmr": 0.01, "scope": "worst_group", "threshold": 0.5, "fmr": 0.008},
        {"target_fmr": 0.01, "scope": "overall", "threshold": 0.55, "fmr": 0.0095},
    ],
    "fmr_curve": {"thresholds": [0.4, 0.5, 0.6], "overall": [0.001, 0.004, 0.03], "worst_group": [0.002, 0.008, 0.1]},
}


def entry(**spec) -> ModelEntry:
    return ModelEntry("emb", "embedder", "emb.tflite", "0" * 64, {"threshold": 0.6, **spec})


def test_target_fmr_resolves_through_the_table():
    point = resolve(entry(calibration_table=TABLE), None, 0.01, "worst_group")
    assert (point.threshold, point.fmr, point.target_fmr) == (0.5, 0.008, 0.01)
    assert resolve(entry(calibration_table=TABLE), None, 0.01, "overall").threshold == 0.55


def test_uncalibrated_target_is_refused_with_what_is_known():
    known = r"no global calibration for target_fmr 0.001 .*calibrated: 0.01 \(worst_group, global\)"
    with pytest.raises(OperatingPointError, match=known):
        resolve(entry(calibration_table=TABLE), None, 0.001)
    with pytest.raises(OperatingPointError, match="3000 impostor comparisons"):
        resolve(entry(), None, 0.001)


def test_threshold_and_target_are_alternatives():
    with pytest.raises(OperatingPointError, match="alternatives"):
        resolve(entry(calibration_table=TABLE), 0.5, 0.01)
    with pytest.raises(ConfigError, match="alternatives"):
        load_settings(match={"threshold": 0.5, "target_fmr": 0.01})


def test_raw_threshold_gets_its_fmr_from_the_curve():
    e = entry(calibration_table=TABLE)
    assert resolve(e, 0.45, None).fmr == pytest.approx(0.005)
    assert fmr_at(e, 0.55, "overall") == pytest.approx(0.017)
    assert fmr_at(e, 0.9) is None and fmr_at(entry(), 0.5) is None


def test_defaults_manifest_operating_point_then_embedder():
    calibrated = entry(calibration_table=TABLE, operating_point={"target_fmr": 0.01, "scope": "worst_group"})
    point = resolve(calibrated, None, None)
    assert point.threshold == 0.5 and point.origin.startswith("manifest default")
    plain = resolve(entry(), None, None)
    assert plain.threshold == 0.6 and plain.fmr is None and "uncalibrated" in plain.origin


MODED = {
    "entries": [
        {"mode": "global", "target_fmr": 0.01, "scope": "worst_group", "threshold": 0.45, "fmr": 0.009},
        {"mode": "per_template", "target_fmr": 0.01, "scope": "worst_group", "threshold": 0.5, "fmr": 0.008},
    ],
    "fmr_curves": {
        "global": {"thresholds": [0.4, 0.5], "overall": [0.001, 0.01], "worst_group": [0.002, 0.02]},
        "per_template": {"thresholds": [0.4, 0.5], "overall": [0.0005, 0.005], "worst_group": [0.001, 0.008]},
    },
}


def test_a_target_resolves_to_the_entry_of_its_mode():
    e = entry(
        calibration_table=MODED, operating_point={"mode": "per_template", "target_fmr": 0.01, "scope": "worst_group"}
    )
    knob = resolve(e, None, None, "worst_group", "per_template")
    assert (knob.threshold, knob.fmr, knob.mode) == (0.5, 0.008, "per_template")
    assert "per_template" in knob.origin and knob.as_dict()["mode"] == "per_template"
    assert resolve(e, None, 0.01, "worst_group", "global").threshold == 0.45
    assert fmr_at(e, 0.45, "worst_group", "per_template") == pytest.approx(0.0045)
    assert fmr_at(e, 0.45, "worst_group", "global") == pytest.approx(0.011)


def test_per_template_without_its_entries_names_the_command():
    legacy = entry(calibration_table=TABLE, operating_point={"target_fmr": 0.01, "scope": "worst_group"})
    assert resolve(legacy, None, None, "worst_group", "global").threshold == 0.5  # no "mode": global
    with pytest.raises(OperatingPointError, match=r"no per_template calibration .*--worst-group --mode per_template"):
        resolve(legacy, None, None, "worst_group", "per_template")
    assert fmr_at(legacy, 0.5, "worst_group", "per_template") is None


@pytest.fixture
def calibrated_models(models_dir, tmp_path):
    """A copy of models/ whose embedder carries the table above, in both modes, and a default operating point."""
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["models"][manifest["default_embedder"]]["calibration_table"] = {
        "entries": [{**e, "mode": mode} for mode in ("global", "per_template") for e in TABLE["entries"]],
        "fmr_curves": {mode: TABLE["fmr_curve"] for mode in ("global", "per_template")},
    }  # the same numbers in both modes: the device's mode (match.thresholds) finds them either way
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.fixture
def small_gallery(data_dir, tmp_path, calibrated_models):
    path = tmp_path / "g.sqlite"
    lfw = data_dir / "lfw"
    for who in ("Colin_Powell", "Li_Peng", "Queen_Rania"):
        assert (
            main(
                [
                    "enroll",
                    "--gallery",
                    str(path),
                    "--name",
                    who,
                    "--models",
                    str(calibrated_models),
                    str(lfw / who / f"{who}_0004.jpg"),
                ]
            )
            == 0
        )
    return path


def test_device_with_target_fmr_uses_and_reports_it(
    broker, subscriber_factory, data_dir, calibrated_models, small_gallery, tmp_path
):
    sub = subscriber_factory(broker.port, ["edge/#"])
    settings = load_settings(
        device={"device_id": "cam-1", "site": "t", "state_dir": tmp_path / "state"},
        camera={"source": f"file:{data_dir / 'videos' / 'lfw_slideshow.mp4'}"},
        models={"models_dir": calibrated_models, "detector": "blazeface_short_range"},
        match={"gallery": small_gallery, "target_fmr": 0.01},
        mqtt={"url": broker.url},
    )
    run_device(settings, threading.Event(), max_frames=30)
    assert sub.wait_for(lambda ms: any(m.topic.endswith("config/reported") for m in ms), timeout=10)
    status = json.loads(sub.messages("edge/t/cam-1/status")[0].payload)
    details = status["details"]
    assert details["threshold"] == 0.5 and details["target_fmr"] == 0.01 and details["fmr"] == 0.008
    # three people of one template each: 1,000 x 3 x 0.004, the overall rate at 0.5 (a mixed crowd),
    # and 1,000 x 3 x 0.008, the worst group's (the bound)
    assert details["false_alerts_per_1000_mixed"] == pytest.approx(12.0)
    assert details["false_alerts_per_1000_bound"] == pytest.approx(24.0)
    reported = json.loads(sub.messages("edge/t/cam-1/config/reported")[0].payload)
    assert reported["config"]["operating_point"]["threshold"] == 0.5
    assert reported["config"]["match"]["target_fmr"] == 0.01


def test_start_refused_above_the_false_alert_limit(
    broker, data_dir, calibrated_models, small_gallery, tmp_path, capsys
):
    code = main(
        [
            "run",
            "--source",
            f"file:{data_dir / 'videos' / 'lfw_slideshow.mp4'}",
            "--gallery",
            str(small_gallery),
            "--broker",
            broker.url,
            "--state-dir",
            str(tmp_path / "state"),
            "--models",
            str(calibrated_models),
            "--target-fmr",
            "0.01",
            "--max-false-alerts",
            "10",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert (
        "3 enrolled people" in err and "expect 12.00 false alerts per 1,000 scans of strangers in a mixed crowd" in err
    )
    assert "which limits the mixed figure" in err and "lower match.target_fmr" in err
    assert not (tmp_path / "state").exists()


def test_gallery_list_shows_expected_false_alerts(calibrated_models, small_gallery, capsys, monkeypatch):
    monkeypatch.setenv("EDGE_MATCH__TARGET_FMR", "0.01")
    assert main(["gallery", "list", "--gallery", str(small_gallery), "--models", str(calibrated_models)]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["operating_point"]["fmr"] == 0.008
    expected = listing["false_alerts_per_1000_scans"]
    assert (expected["false_alerts_per_1000_mixed"], expected["false_alerts_per_1000_bound"]) == (12.0, 24.0)
    assert "every group" in expected["meaning"]["mixed"] and "the worst one" in expected["meaning"]["bound"]
    assert [p["expected_stranger_fmr"] for p in listing["people"]] == [{"mixed": 0.004, "bound": 0.008}] * 3


def test_the_limit_applies_to_the_bound_when_told(
    broker, data_dir, calibrated_models, small_gallery, tmp_path, capsys, monkeypatch
):
    """match.max_false_alerts_basis = "bound": 20 admits the mixed crowd's 12 but not the bound's 24."""
    monkeypatch.setenv("EDGE_MATCH__MAX_FALSE_ALERTS_BASIS", "bound")
    source = f"file:{data_dir / 'videos' / 'lfw_slideshow.mp4'}"
    args = ["run", "--source", source, "--gallery", str(small_gallery), "--broker", broker.url]
    args += ["--state-dir", str(tmp_path / "state"), "--models", str(calibrated_models), "--target-fmr", "0.01"]
    assert main([*args, "--max-false-alerts", "20"]) == 1
    err = capsys.readouterr().err
    assert "expect 24.00 false alerts per 1,000 scans of strangers at most, in a crowd of the worst group" in err
    assert "which limits the bound figure" in err


def test_a_point_carries_the_mixed_crowd_and_the_worst_group_rates_at_its_threshold():
    """The mixed rate (all impostor comparisons) and the bound (the worst group's within-group
    rate) at the threshold, from the entry where it recorded them, else from the mode's curve
    measured on the same data, with the calibration data's intervals."""
    curve = {**TABLE["fmr_curve"], "impostor_pairs": 10_000, "dataset_sha256": "a" * 64}
    groups = {
        "g1": {"fmr": 0.004, "fmr_ci95": [0.002, 0.007], "supports_target": True},
        "g2": {"fmr": 0.009, "fmr_ci95": [0.005, 0.015], "supports_target": True},
        "tiny": {"fmr": 0.05, "fmr_ci95": [0.01, 0.2], "supports_target": False},  # too few comparisons
    }
    worst = {"target_fmr": 0.01, "scope": "worst_group", "threshold": 0.5, "fmr": 0.008, "fmr_ci95": [0.005, 0.012]}
    overall = {"target_fmr": 0.01, "scope": "overall", "threshold": 0.55, "fmr": 0.0095, "fmr_ci95": [0.008, 0.011]}
    recorded = {"fmr": 0.003, "fmr_ci95": [0.002, 0.0045]}

    def point(cal: dict, sha: str = "a" * 64) -> OperatingPoint:
        table = {"entries": [{**cal, "dataset_sha256": sha}], "fmr_curve": curve}
        return resolve(entry(calibration_table=table), None, 0.01, cal["scope"])

    with_overall = point({**worst, "overall": recorded})
    assert with_overall.mixed == MeasuredRate(0.003, (0.002, 0.0045))
    assert with_overall.bound == MeasuredRate(0.008, (0.005, 0.012))
    from_curve = point(worst).mixed  # the curve's overall rate at 0.5, 40 of 10,000
    assert from_curve is not None and from_curve.fmr == pytest.approx(0.004) and from_curve.ci95 == wilson(40, 10_000)
    assert point(worst, sha="b" * 64).mixed is None, "a curve of other data says nothing about this entry"
    of_overall = point({**overall, "groups": groups})
    assert of_overall.mixed == MeasuredRate(0.0095, (0.008, 0.011))
    assert of_overall.bound == MeasuredRate(0.009, (0.005, 0.015)), "the worst group with data enough"
    configured = resolve(entry(calibration_table={"entries": [], "fmr_curve": curve}), 0.6, None)
    assert configured.mixed == MeasuredRate(0.03, wilson(300, 10_000)) and configured.bound == MeasuredRate(0.1, None)


def test_a_limit_without_a_measured_rate_refuses_the_start_and_says_what_to_do(
    broker, data_dir, calibrated_models, small_gallery, tmp_path, capsys
):
    """A threshold beyond the calibration curve has no rate: a limit cannot be checked against it."""
    source = f"file:{data_dir / 'videos' / 'lfw_slideshow.mp4'}"
    args = ["run", "--source", source, "--gallery", str(small_gallery), "--broker", broker.url]
    args += ["--state-dir", str(tmp_path / "state"), "--models", str(calibrated_models)]
    assert main([*args, "--threshold", "0.9", "--max-false-alerts", "20"]) == 1
    err = capsys.readouterr().err
    assert "has no measured mixed false match rate" in err and "match.max_false_alerts_basis = bound" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "state").exists()
