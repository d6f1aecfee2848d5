"""Each shipped model card (int8 mirror, int8, fp16) is exactly what scripts/make_model_card.py makes
from the report it cites, and that report was made with the shipped manifest's model and calibration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import load_settings
from edge.vision import load_manifest
from edge.vision.operating_point import resolve
from edge.vision.runtime import file_sha256

REPO = Path(__file__).resolve().parents[1]
# Each shipped card and the report it is made from (paths as the card cites them); the default
# embedder's card also shows scripts/check_watchlists_split.py's out-of-sample watchlists.
SPLIT = "models/eval/watchlists_split.json"
CARDS = {
    "int8_mirror": ("models/MODEL_CARD.md", "models/eval/report.json"),
    "int8": ("models/MODEL_CARD_int8.md", "models/eval-int8/report.json"),
    "fp16": ("models/MODEL_CARD_fp16.md", "models/eval-fp16/report.json"),
}


@pytest.fixture(scope="module", params=sorted(CARDS))
def shipped(request) -> tuple[Path, Path, dict]:
    card, report = (REPO / p for p in CARDS[request.param])
    assert report.is_file() and card.is_file(), f"run the commands at the end of {card}"
    return card, report, json.loads(report.read_text())


def split_of(card: Path) -> list[str]:
    """The out-of-sample option the card was made with, if any."""
    return ["--out-of-sample", str(REPO / SPLIT)] if card.name == "MODEL_CARD.md" else []


@pytest.fixture
def report(shipped) -> dict:
    return shipped[2]


def test_card_is_regenerated_byte_for_byte_from_the_report_it_cites(tmp_path, shipped):
    card, report, _ = shipped
    out = tmp_path / card.name
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "make_model_card.py"),
            *("--report", str(report), "--out", str(out)),
            *split_of(card),
        ],
        check=True,
        capture_output=True,
    )
    cited_card = card.relative_to(REPO).as_posix()
    regenerated = out.read_text().replace(f"--out {out}", f"--out {cited_card}")  # where this test wrote it
    assert regenerated == card.read_text(), f"{cited_card} is stale: regenerate it (see its last section)"
    assert f"`{report.relative_to(REPO).as_posix()}` (sha256 `{file_sha256(report)}`)" in regenerated
    assert f"make_model_card.py --report {report.relative_to(REPO).as_posix()} --out {cited_card}" in regenerated
    if split_of(card):
        assert f"`{SPLIT}`, sha256 `{file_sha256(REPO / SPLIT)}`" in regenerated


def test_out_of_sample_watchlists_ran_at_the_shipped_point():
    manifest = json.loads((REPO / "models" / "manifest.json").read_text())
    split = json.loads((REPO / SPLIT).read_text())
    embedder = manifest["default_embedder"]
    assert split["embedder"] == {"id": embedder, "sha256": manifest["models"][embedder]["sha256"]}
    point = resolve(load_manifest(REPO / "models").get(embedder), None, None, "worst_group", "per_template")
    assert (split["knob"], split["mode"]) == (point.threshold, point.mode)
    shipped = split["rates"]["shipped_dev"]["mixed_fmr"]
    assert point.mixed is not None and shipped == point.mixed.as_dict()
    assert [entry["size"] for entry in split["sizes"]] == [1, 5, 10, 50]


def test_report_was_made_with_the_shipped_model_and_calibration(report):
    manifest = json.loads((REPO / "models" / "manifest.json").read_text())
    record = manifest["models"][report["models"]["embedder"]["id"]]
    assert report["models"]["embedder"]["sha256"] == record["sha256"]
    assert report["models"]["detector"]["sha256"] == manifest["models"][report["models"]["detector"]["id"]]["sha256"]
    assert report["calibration"]["operating_point"] == record["operating_point"]
    assert report["calibration"]["entries"] == record["calibration_table"]["entries"]
    mode = load_settings().match.thresholds
    point = resolve(
        load_manifest(REPO / "models").get(report["models"]["embedder"]["id"]), None, None, "worst_group", mode
    )
    assert (report["threshold"]["value"], report["threshold"]["mode"]) == (
        point.threshold,
        mode,
    )  # the device's default


def test_card_states_its_limits_and_every_group(shipped, report):
    card = shipped[0].read_text()
    for phrase in (
        "## Intended use",
        "## Not fit for",
        "never a verdict",
        "Minors",
        "not self-reported",
        "grayscale",
        "## Rerun it on your own data",
        "edge calibrate",
        "--operating-point",
        f"EDGE_MODELS__EMBEDDER={report['models']['embedder']['id']} edge eval",
        "## Per-template and global thresholds side by side",
        "## Calibration at watchlist scale",
        "K = 128 k-means centroids",
        "## A calibration made on x86, used on an aarch64 board",
        "--mode per_template",
        "--mode global",
    ):
        assert phrase in card, phrase
    if any(e.get("group_column") == "gender" for e in report["calibration"]["entries"]):
        # a cohort knob read on this card's own groups: the cohort speaks for LFW's population only
        assert "here: worst sizeable group's FMR" in card
        assert re.search(r"\| all pairs \| \w+ [\d.]+% \(\d+/\d+\) \|", card), "a cohort row read on this card's data"
    for name, group in report["groups"].items():
        assert f"| {name} | {group['identities']} |" in card
        if not group["sizeable"]:
            assert group["not_sizeable_because"] in card
    chosen = report["calibration"]["operating_point"]
    entry = next(
        e
        for e in report["calibration"]["entries"]
        if (e["target_fmr"], e["scope"], e.get("mode", "global"))
        == (chosen["target_fmr"], chosen["scope"], report["threshold"]["mode"])
    )
    assert f"threshold {entry['threshold']:.4f}, set by {entry['deciding_group']}" in card
