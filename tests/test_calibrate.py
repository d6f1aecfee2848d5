"""`edge calibrate` on a subset: entries written into a copy of the manifest, thresholds that keep
their measured FMR, worst group at least as strict as overall, unsupported targets refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_eval import image_root, lfw_subset, write_csv

from edge.central.modelcard.card import render
from edge.cli import main
from edge.modelbuild.manifest import CALIBRATION_KEYS, write_manifest
from edge.vision import load_manifest
from edge.vision.operating_point import resolve

TARGET = 0.05  # needs 60 impostor comparisons per group; each group here has about 160
EMBEDDER = load_manifest().default_embedder  # what `edge calibrate` and `edge enroll` use


def without_calibration(manifest: dict) -> dict:
    dropped = set(CALIBRATION_KEYS) - {"cohort"}  # the cohort model stays: per_template needs it
    models = {m: {k: v for k, v in r.items() if k not in dropped} for m, r in manifest["models"].items()}
    return {**manifest, "models": models}


@pytest.fixture(scope="module")
def setup(data_dir: Path, models_dir: Path, tmp_path_factory) -> tuple[list[str], Path]:
    """Data flags for 2 groups x 5 identities x 4 images, and a copy of models/ without calibration."""
    tmp = tmp_path_factory.mktemp("calibrate")
    rows = lfw_subset(data_dir, {"female_East_Asian": 5, "male_White": 5}, 4)
    csv_path = write_csv(tmp / "identities.csv", rows)
    models = tmp / "models"
    shutil.copytree(models_dir, models)
    manifest = models / "manifest.json"
    manifest.write_text(json.dumps(without_calibration(json.loads(manifest.read_text())), indent=2) + "\n")
    return ["--identities", str(csv_path), "--root", str(image_root(data_dir, tmp)), "--models", str(models)], models


def calibrate(capsys, data: list[str], *flags: str) -> tuple[int, str]:
    code = main(["calibrate", *data, *flags])
    out = capsys.readouterr()
    return code, out.err if code else out.out


RUNS = (
    [],  # per_template is the default mode
    ["--worst-group", "--operating-point"],
    ["--mode", "global"],
    ["--mode", "global", "--worst-group"],
    [],  # replaces the first run's entry
)


@pytest.fixture(scope="module")
def entries(setup) -> dict[str, dict]:
    """Per-template entries by scope (as before the modes), global ones under "global <scope>"."""
    data, models = setup
    for flags in RUNS:
        assert main(["calibrate", *data, "--target-fmr", str(TARGET), *flags]) == 0
    record = json.loads((models / "manifest.json").read_text())["models"][EMBEDDER]
    by_key = {
        ("" if e["mode"] == "per_template" else "global ") + e["scope"]: e
        for e in record["calibration_table"]["entries"]
    }
    return by_key | {"record": record}


def test_entries_written_into_the_copy_only(setup, entries, models_dir):
    _, models = setup
    table = entries["record"]["calibration_table"]
    assert [(e["mode"], e["target_fmr"], e["scope"]) for e in table["entries"]] == [
        (mode, TARGET, scope) for mode in ("global", "per_template") for scope in ("overall", "worst_group")
    ]
    assert entries["record"]["operating_point"] == {
        "mode": "per_template",
        "target_fmr": TARGET,
        "scope": "worst_group",
    }
    # the device resolves its default threshold, and a configured target, through the entries of its mode
    embedder = load_manifest(models).get(EMBEDDER)
    for mode, prefix in (("per_template", ""), ("global", "global ")):
        assert (
            resolve(embedder, None, None, "worst_group", mode).threshold == entries[prefix + "worst_group"]["threshold"]
        )
        assert resolve(embedder, None, TARGET, "overall", mode).threshold == entries[prefix + "overall"]["threshold"]
    assert set(table["fmr_curves"]) == {"global", "per_template"} and "fmr_curve" not in table
    for mode, curve in table["fmr_curves"].items():
        assert (
            curve["mode"] == mode
            and len(curve["thresholds"]) == len(curve["overall"]) == len(curve["worst_group"]) > 10
        )
        assert curve["dataset_sha256"] == entries["overall"]["dataset_sha256"]
    # the two modes score the same pairs differently: per_template divides by the template's scale
    assert table["fmr_curves"]["global"]["overall"] != table["fmr_curves"]["per_template"]["overall"]
    # nothing else in the manifest changed, and the bundled manifest is untouched
    copy = json.loads((models / "manifest.json").read_text())
    original = json.loads((models_dir / "manifest.json").read_text())
    assert without_calibration(copy) == without_calibration(original)
    assert copy["models"][EMBEDDER]["cohort"]  # per_template scores came from the shipped cohort


def test_thresholds_keep_their_measured_fmr(entries):
    overall, worst = entries["overall"], entries["worst_group"]
    assert overall["deciding_group"] is None and overall["fmr"] <= TARGET
    assert overall["impostor_pairs"] >= 60 and overall["fmr_ci95"][0] <= overall["fmr"] <= overall["fmr_ci95"][1]
    assert worst["deciding_group"] in ("female_East_Asian", "male_White")
    supporting = {g: row for g, row in worst["groups"].items() if row["supports_target"]}
    assert set(supporting) == {"female_East_Asian", "male_White"}
    for row in supporting.values():
        assert row["false_matches"] / row["impostor_pairs"] <= TARGET and row["impostor_pairs"] >= 60
        assert row["genuine_pairs"] == 30 and 0 <= row["fnmr"] <= 1 and len(row["fnmr_ci95"]) == 2
    assert worst["fmr"] == max(row["fmr"] for row in supporting.values())
    assert worst["threshold"] <= overall["threshold"]  # worst group is at least as strict
    # every entry also records the rate over all impostor comparisons at its threshold (a mixed crowd)
    assert (
        overall["overall"]["fmr"] == overall["fmr"]
        and overall["overall"]["impostor_pairs"] == overall["impostor_pairs"]
    )
    mixed = worst["overall"]
    assert mixed["impostor_pairs"] == overall["impostor_pairs"] and mixed["fmr"] <= overall["fmr"]  # stricter knob
    assert mixed["false_matches"] / mixed["impostor_pairs"] == pytest.approx(mixed["fmr"], rel=1e-5)
    assert mixed["fmr_ci95"][0] <= mixed["fmr"] <= mixed["fmr_ci95"][1]
    for entry in (overall, worst, entries["global overall"], entries["global worst_group"]):
        assert entry["detector"] == "blazeface_short_range" and len(entry["dataset_sha256"]) == 64
        assert entry["group_column"] == "group" and entry["fmr"] <= TARGET
        assert entry["dataset"] == "identities.csv (all against all within source)"


def test_eval_measures_the_calibrated_threshold(setup, entries, tmp_path, capsys):
    """An independent measurement: `edge eval` with the calibrated manifest runs at the worst-group threshold."""
    data, _ = setup
    assert main(["eval", *data, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "report.json").read_text())
    worst = entries["worst_group"]
    in_force = report["threshold"]
    assert (
        in_force["value"] == entries[("global " if in_force["mode"] == "global" else "") + "worst_group"]["threshold"]
    )
    assert "manifest default" in in_force["source"]
    for group in ("female_East_Asian", "male_White"):
        assert report["groups"][group]["at_threshold"]["fmr"]["rate"] <= TARGET
    assert [(p["mode"], p["threshold"]) for p in report["operating_points"][1:]] == [
        ("global", entries["global overall"]["threshold"]),
        ("global", entries["global worst_group"]["threshold"]),
        ("per_template", entries["overall"]["threshold"]),
        ("per_template", worst["threshold"]),
    ]
    compared = report["modes"]
    assert (compared["target_fmr"], compared["scope"]) == (TARGET, "worst_group")
    assert compared["modes"]["per_template"]["threshold"] == worst["threshold"]
    assert compared["modes"]["global"]["threshold"] == entries["global worst_group"]["threshold"]
    for mode in ("global", "per_template"):
        for group in ("female_East_Asian", "male_White"):
            assert compared["modes"][mode]["groups"][group]["fmr"]["rate"] <= TARGET
    fnmr = {m: compared["modes"][m]["overall"]["fnmr"]["rate"] for m in ("global", "per_template")}
    assert compared["fnmr_reduction"]["overall"] == pytest.approx(1 - fnmr["per_template"] / fnmr["global"], abs=1e-4)
    markdown = (tmp_path / "report.md").read_text()
    assert "## Matching modes side by side" in markdown and "| **overall** |" in markdown
    assert f"per_template FMR at knob {worst['threshold']:.4f}" in markdown
    card = render(report, "r/report.json", "0" * 64, "c/MODEL_CARD.md")  # the card shows both modes too
    assert "## Per-template and global thresholds side by side" in card and "| **overall** |" in card
    assert "--worst-group --mode per_template --operating-point" in card and "--mode global" in card
    assert "No cohort-scale calibration" in card and "## A calibration made on x86, used on an aarch64 board" in card


def test_unsupported_targets_are_refused_and_nothing_written(setup, entries, capsys):
    data, models = setup
    before = (models / "manifest.json").read_bytes()
    code, err = calibrate(capsys, data, "--target-fmr", "0.001", "--worst-group")
    assert code == 1 and "needs at least 3000 impostor comparisons" in err and "nothing written" in err
    assert "0 have that many" in err and "female_East_Asian" in err and "the lowest target 2 sizeable groups" in err
    code, err = calibrate(capsys, data, "--target-fmr", "0.0001")
    assert code == 1 and "needs at least 30000 impostor comparisons" in err and "lowest target it supports" in err
    code, err = calibrate(capsys, data, "--target-fmr", "1.5")
    assert code == 1 and "between 0 and 1" in err
    code, err = calibrate(capsys, data, "--target-fmr", str(TARGET), "0.0001")  # one refused: none written
    assert code == 1 and "needs at least 30000" in err and "nothing written" in err
    code, err = calibrate(capsys, data, "--target-fmr", str(TARGET), "0.1", "--operating-point")
    assert code == 1 and "--operating-point takes one --target-fmr" in err
    assert (models / "manifest.json").read_bytes() == before


def test_several_targets_from_one_description(setup, entries, capsys):
    data, models = setup
    before = (models / "manifest.json").read_bytes()
    code, out = calibrate(capsys, data, "--target-fmr", str(TARGET), "0.1", "--mode", "global", "--dry-run")
    assert code == 0, out
    printed = json.loads(out)
    assert [(e["target_fmr"], e["written"]) for e in printed] == [(TARGET, False), (0.1, False)]
    assert printed[0]["threshold"] == entries["global overall"]["threshold"] <= printed[1]["threshold"]
    assert (models / "manifest.json").read_bytes() == before


def test_model_build_keeps_calibration_of_unchanged_embedders(tmp_path):
    previous = tmp_path / "old.json"
    table = {"entries": [], "fmr_curve": {}}
    previous.write_text(
        json.dumps(
            {
                "models": {
                    "same": {
                        "sha256": "aa",
                        "calibration_table": table,
                        "operating_point": {"target_fmr": 0.01},
                        "cohort": "cohort_same",
                    },
                    "rebuilt": {"sha256": "bb", "calibration_table": table, "cohort": "cohort_rebuilt"},
                    "cohort_same": {"kind": "cohort", "sha256": "dd", "embedder": "same"},
                    "cohort_rebuilt": {"kind": "cohort", "sha256": "ee", "embedder": "rebuilt"},
                }
            }
        )
    )
    written = write_manifest(tmp_path, {"same": {"sha256": "aa"}, "rebuilt": {"sha256": "cc"}}, previous=previous)
    models = json.loads(written.read_text())["models"]
    assert models["same"] == {
        "sha256": "aa",
        "calibration_table": table,
        "operating_point": {"target_fmr": 0.01},
        "cohort": "cohort_same",
    }
    assert models["cohort_same"] == {"kind": "cohort", "sha256": "dd", "embedder": "same"}
    # other weights: the old table and cohort scales would be false claims
    assert models["rebuilt"] == {"sha256": "cc"} and "cohort_rebuilt" not in models


def test_entries_record_data_software_and_cpu(setup, entries):
    data, _ = setup
    for entry in (entries["overall"], entries["worst_group"]):
        assert entry["dataset_file"] == data[data.index("--identities") + 1]
        assert set(entry["software"]) >= {"edge", "numpy", "opencv", "runtime"}
        assert entry["software"]["runtime"].startswith(("ai-edge-litert", "tflite-runtime"))
        assert entry["cpu"]["machine"] and entry["cpu"]["model"]
    curves = entries["record"]["calibration_table"]["fmr_curves"]
    assert curves["per_template"]["impostor_pairs"] == entries["overall"]["impostor_pairs"]


def test_weaker_calibration_replaces_only_when_asked(setup, entries, data_dir, tmp_path, capsys):
    """A run on fewer images may not silently replace an entry (or the curve) measured on more."""
    data, models = setup
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    rows = lfw_subset(data_dir, {"female_East_Asian": 5, "male_White": 5}, 2)
    smaller = ["--identities", str(write_csv(tmp_path / "small.csv", rows)), "--root", data[3], "--models", str(copy)]
    before = (copy / "manifest.json").read_bytes()
    code, err = calibrate(capsys, smaller, "--target-fmr", str(TARGET))
    assert code == 1 and "--replace" in err and "nothing written" in err
    assert str(entries["overall"]["impostor_pairs"]) in err
    assert (copy / "manifest.json").read_bytes() == before
    code, out = calibrate(capsys, smaller, "--target-fmr", str(TARGET), "--replace")
    assert code == 0, out
    table = json.loads((copy / "manifest.json").read_text())["models"][EMBEDDER]["calibration_table"]
    overall = next(e for e in table["entries"] if (e["mode"], e["scope"]) == ("per_template", "overall"))
    assert overall["impostor_pairs"] < entries["overall"]["impostor_pairs"] and overall["dataset_file"].endswith(
        "small.csv"
    )
