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
# embedder's card also shows scripts/check_watchlists_split.py's out-of-sample watchlists and
# scripts/compare_embedders.py's summary.
SPLIT = "models/eval/watchlists_split.json"
EMBEDDERS = "models/eval/embedders.json"
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


def extra_inputs(card: Path) -> list[str]:
    """The options beyond the report that the card was made with, if any."""
    if card.name != "MODEL_CARD.md":
        return []
    return ["--out-of-sample", str(REPO / SPLIT), "--embedders", str(REPO / EMBEDDERS)]


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
            *extra_inputs(card),
        ],
        check=True,
        capture_output=True,
    )
    cited_card = card.relative_to(REPO).as_posix()
    regenerated = out.read_text().replace(f"--out {out}", f"--out {cited_card}")  # where this test wrote it
    assert regenerated == card.read_text(), f"{cited_card} is stale: regenerate it (see its last section)"
    assert f"`{report.relative_to(REPO).as_posix()}` (sha256 `{file_sha256(report)}`)" in regenerated
    assert f"make_model_card.py --report {report.relative_to(REPO).as_posix()} --out {cited_card}" in regenerated
    if extra_inputs(card):
        for cited in (SPLIT, EMBEDDERS):
            assert f"`{cited}`, sha256 `{file_sha256(REPO / cited)}`" in regenerated


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("nope", "not a readable JSON file"),
        ("[1]", "expected a JSON object"),
        ('{"a": 1}', "--embedders compare_embedders.py --summary"),
    ],
)
def test_a_wrong_input_file_is_one_line_not_a_traceback(tmp_path, content, said):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    report = REPO / CARDS["int8_mirror"][1]
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_model_card.py"), "--report", str(report)]
        + ["--out", str(tmp_path / "card.md"), "--embedders", str(bad)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and said in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "card.md").exists()


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


def test_embedder_comparison_ran_with_the_shipped_default_at_its_point():
    manifest = json.loads((REPO / "models" / "manifest.json").read_text())
    summary = json.loads((REPO / EMBEDDERS).read_text())
    record = manifest["models"][manifest["default_embedder"]]
    assert summary["sha256"][summary["default"]] == record["sha256"]
    point = record["operating_point"]
    assert summary["point"] == f"{point['mode']} {point['scope']} {point['target_fmr']:g}"
    assert summary["embedders"][0] == summary["default"] and len(summary["embedders"]) > 1


def _rate(k: int, n: int) -> dict:
    from edge.central.evaluation.stats import Rate

    return Rate(k, n).to_json()


def test_comparison_summary_keeps_misses_at_equal_fmr_and_every_group():
    from edge.central.modelcard.embedders import comparison_rows, summarise

    def figures(fnmr: int, equal: int | None) -> dict:
        at = {"fmr": _rate(5, 1000), "fnmr": _rate(fnmr, 100)}
        groups = {"a": {**at, "sizeable": True}, "b": {**at, "sizeable": False}}
        out = {"threshold": 0.5, **{w: {"overall": at, "groups": groups} for w in ("heldout", "dev")}}
        if equal is not None:
            out.update(
                {f"{w}_equal_fmr": {"fmr": _rate(5, 1000), "fnmr": _rate(equal, 100)} for w in ("heldout", "dev")}
            )
        return out

    results = {"old": {"p": figures(30, None)}, "new": {"p": figures(20, 10)}, "bad": {"p": {"refused": "too few"}}}
    summary = summarise(results, {"old": 3.0, "new": 2.0, "bad": 1.0}, "p", "old", {}, ["Verdict: none"])
    assert summary["equal_fmr"]["old"]["dev"]["fnmr"]["k"] == 30  # the default at its own threshold
    assert summary["equal_fmr"]["new"]["dev"]["fnmr"]["k"] == 10  # the others at the default's FMR
    rows = comparison_rows(summary, "`x.json`")
    assert "| **old** (default) | 30.00% (30/100, " in "\n".join(rows)
    assert any(r.startswith("| new | 10.00% (10/100, ") for r in rows)
    assert "| bad | refused: too few | | 1.00 |" in rows
    assert any(r.startswith("| b* FNMR | 30.00% (30/100") and r.endswith("| - |") for r in rows)
    assert rows[-1] == "Verdict: none"


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
