"""`edge eval` on a small subset of ../shared/data: the three outputs, per-group counts and intervals,
and an image without a face counted as errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.config import load_settings
from edge.vision import load_manifest
from edge.vision.operating_point import resolve

COLUMNS = ["path", "identity", "source", "group"]


def lfw_subset(data_dir: Path, groups: dict[str, int], per_identity: int) -> list[dict[str, str]]:
    """The first `groups[g]` LFW identities of each group with enough images, `per_identity` images each,
    ordered by group and identity."""
    by_identity: dict[str, list[dict[str, str]]] = {}
    with (data_dir / "identities.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["source"] == "lfw" and row["group"] in groups:
                by_identity.setdefault(row["identity"], []).append(row)
    rows, taken = [], dict.fromkeys(groups, 0)
    for identity in sorted(by_identity):
        images = by_identity[identity]
        group = images[0]["group"]
        if len(images) >= per_identity and taken[group] < groups[group]:
            taken[group] += 1
            rows += [{c: r[c] for c in COLUMNS} for r in images[:per_identity]]
    assert taken == groups, f"not enough identities in {data_dir}: {taken}"
    return sorted(rows, key=lambda r: (r["group"], r["identity"], r["path"]))


def image_root(data_dir: Path, tmp_path: Path) -> Path:
    """A root with the LFW folder (linked) and room for images the test writes."""
    root = tmp_path / "images"
    root.mkdir()
    (root / "lfw").symlink_to(data_dir / "lfw")
    return root


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def subset(data_dir: Path, tmp_path_factory) -> tuple[Path, Path, list[dict[str, str]]]:
    """6 identities x 3 images in two groups, plus a blank image labeled as the first identity."""
    import cv2

    tmp = tmp_path_factory.mktemp("eval")
    root = image_root(data_dir, tmp)
    rows = lfw_subset(data_dir, {"female_East_Asian": 3, "male_White": 3}, 3)
    cv2.imwrite(str(root / "blank.png"), np.full((250, 250, 3), 128, np.uint8))
    rows.append({**rows[0], "path": "blank.png"})
    return write_csv(tmp / "identities.csv", rows), root, rows


def run_eval(capsys, out: Path, *args) -> tuple[dict, dict]:
    code = main(["eval", *map(str, args), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert all((out / name).stat().st_size > 0 for name in ("report.json", "report.md", "det.png", "groups.png"))
    return json.loads((out / "report.json").read_text()), json.loads(printed.out)


def test_identities_all_against_all(subset, tmp_path, capsys, models_dir):
    csv_path, root, rows = subset
    report, summary = run_eval(capsys, tmp_path / "out", "--identities", csv_path, "--root", root)
    d = report["dataset"]
    assert d["images"] == 19 and d["identities"] == 6 and d["pairs"] == 19 * 18 // 2
    assert d["genuine_pairs"] == 6 * 3 + 3  # three per identity, plus the blank with three others
    assert len(d["sha256"]) == 64 and len(report["models"]["embedder"]["sha256"]) == 64
    assert summary["images_failed"] == report["failures"]["images"] >= 1
    # the blank image: no face, listed, and each of its genuine pairs a false non-match
    assert {"path": "blank.png", "reason": "no face found"} in report["failures"]["list"]
    overall = report["overall"]
    assert overall["genuine_pairs_failed"] >= 3
    assert overall["at_threshold"]["fnmr"]["k"] >= overall["genuine_pairs_failed"]
    assert overall["at_threshold"]["fnmr"]["n"] == d["genuine_pairs"]
    assert overall["impostor_pairs"] + overall["impostor_pairs_failed"] == d["impostor_pairs"]
    # per group: counts, rates and intervals, small groups flagged with the reason, not hidden
    assert set(report["groups"]) == {"female_East_Asian", "male_White"}
    for name, group in report["groups"].items():
        assert group["identities"] == 3 and group["images"] == (10 if name == "female_East_Asian" else 9)
        assert group["sizeable"] is False and "3 identities (< 5)" in group["not_sizeable_because"]
        for key in ("fmr", "fnmr"):
            rate = group["at_threshold"][key]
            assert rate["n"] > 0 and 0 <= rate["k"] <= rate["n"]
            lo, hi = rate["ci95"]
            assert 0 <= lo <= rate["rate"] <= hi <= 1
        assert len(group["sweep"]["false_matches"]) == len(group["sweep"]["thresholds"]) == 51
        assert [t["fmr"] for t in group["tar_at_fmr"]] == [0.1, 0.01, 0.001]
    # the threshold in force is the one the device resolves (the manifest's operating point by default)
    mode = load_settings().match.thresholds
    manifest = load_manifest(models_dir)
    point = resolve(manifest.get(manifest.default_embedder), None, None, "worst_group", mode)
    assert report["threshold"] == {
        "value": point.threshold,
        "source": point.origin,
        "calibrated_fmr": point.fmr,
        "mode": mode,
    }
    md = (tmp_path / "out" / "report.md").read_text()
    assert "female_East_Asian" in md and "Wilson" in md and "no face found 1" in md


def test_labeled_pairs_and_threshold_flag(subset, tmp_path, capsys):
    _, root, rows = subset
    a, b, c, blank = rows[0], rows[1], rows[-4], rows[-1]  # c: the last male_White identity
    pairs = [
        {
            "path_a": x["path"],
            "path_b": y["path"],
            "same": str(int(x["identity"] == y["identity"])),
            "identity_a": x["identity"],
            "identity_b": y["identity"],
            "group_a": x["group"],
            "group_b": y["group"],
        }
        for x, y in [(a, b), (a, blank), (a, c), (b, c), (rows[3], rows[6]), (blank, rows[3])]
    ]
    pairs_csv = write_csv(tmp_path / "pairs.csv", pairs)
    report, summary = run_eval(capsys, tmp_path / "out", "--pairs", pairs_csv, "--root", root, "--threshold", "0.55")
    assert report["threshold"]["value"] == 0.55 == summary["threshold"]
    assert report["threshold"]["source"] == "configured threshold"
    assert report["dataset"]["pairs"] == 6 and report["overall"]["genuine_pairs"] == 2
    fnmr = report["overall"]["at_threshold"]["fnmr"]
    assert fnmr["n"] == 2 and fnmr["k"] >= 1  # (a, blank) cannot be recognised
    assert report["overall"]["impostor_pairs_failed"] == 1  # (blank, rows[3])
    # cross-group pairs count overall only; each group's figures are over pairs inside it
    east_asian = report["groups"]["female_East_Asian"]
    assert east_asian["genuine_pairs"] == 2 and east_asian["impostor_pairs"] + east_asian["impostor_pairs_failed"] == 2


def test_missing_column_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,identity\nx.jpg,a\n")
    assert main(["eval", "--identities", str(bad), "--out", str(tmp_path / "out")]) == 1
    assert "lacks the column(s) group" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
