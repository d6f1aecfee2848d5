"""models/MODEL_CARD.md is exactly what scripts/make_model_card.py makes from the report it cites,
and that report was made with the shipped manifest's model and calibration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.vision import load_manifest
from edge.vision.operating_point import resolve
from edge.vision.runtime import file_sha256

REPO = Path(__file__).resolve().parents[1]
CARD = REPO / "models" / "MODEL_CARD.md"
REPORT = REPO / "models" / "eval" / "report.json"


@pytest.fixture(scope="module")
def report() -> dict:
    assert REPORT.is_file() and CARD.is_file(), "run the commands at the end of models/MODEL_CARD.md"
    return json.loads(REPORT.read_text())


def test_card_is_regenerated_byte_for_byte_from_the_report_it_cites(tmp_path, report):
    out = tmp_path / "MODEL_CARD.md"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_model_card.py"), "--report", str(REPORT),
                    "--out", str(out)], check=True, capture_output=True)
    assert out.read_bytes() == CARD.read_bytes(), "MODEL_CARD.md is stale: regenerate it (see its last section)"
    assert f"`models/eval/report.json` (sha256 `{file_sha256(REPORT)}`)" in out.read_text()


def test_report_was_made_with_the_shipped_model_and_calibration(report):
    manifest = json.loads((REPO / "models" / "manifest.json").read_text())
    record = manifest["models"][report["models"]["embedder"]["id"]]
    assert report["models"]["embedder"]["sha256"] == record["sha256"]
    assert report["models"]["detector"]["sha256"] == manifest["models"][report["models"]["detector"]["id"]]["sha256"]
    assert report["calibration"]["operating_point"] == record["operating_point"]
    assert report["calibration"]["entries"] == record["calibration_table"]["entries"]
    point = resolve(load_manifest(REPO / "models").get(report["models"]["embedder"]["id"]), None, None)
    assert report["threshold"]["value"] == point.threshold  # the device's default


def test_card_states_its_limits_and_every_group(report):
    card = CARD.read_text()
    for phrase in ("## Intended use", "## Not fit for", "never a verdict", "Minors", "not self-reported",
                   "grayscale", "## Rerun it on your own data", "edge calibrate", "--operating-point"):
        assert phrase in card, phrase
    for name, group in report["groups"].items():
        assert f"| {name} | {group['identities']} |" in card
        if not group["sizeable"]:
            assert group["not_sizeable_because"] in card
    entry = next(e for e in report["calibration"]["entries"]
                 if (e["target_fmr"], e["scope"]) == tuple(report["calibration"]["operating_point"].values()))
    assert f"threshold {entry['threshold']:.4f}, set by {entry['deciding_group']}" in card
