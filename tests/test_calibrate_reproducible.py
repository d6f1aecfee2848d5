"""The shipped calibration reruns: DEV identities.csv, worst group, target 0.012, in both matching
modes, measured again here with the shipped models (`edge calibrate --dry-run`, nothing written),
lands within `TOLERANCE` of the threshold the manifest ships.

TOLERANCE = 0.01 (distance, or knob in mode per_template): a rerun on another x86 machine gave
0.4168 against the shipped 0.4125 (0.0043: float kernels and the BLAS differ), so a tighter bound
would fail on honest machines; on aarch64 pair distances move by p95 0.011 (`../shared/notes/arm64.md`),
so a board may rightly fall outside it and should be calibrated on itself. A rerun beyond 0.01 means
the pipeline (detector, gate, aligner, embedder, cohort) no longer gives the numbers shipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.vision.runtime import file_sha256

TOLERANCE = 0.01
TARGET, SCOPE = 0.012, "worst_group"


def shipped_entry(manifest_path: Path, mode: str) -> dict:
    """The manifest's default embedder's entry for (mode, TARGET, SCOPE); fails naming the command."""
    manifest = json.loads(manifest_path.read_text())
    record = manifest["models"][manifest["default_embedder"]]
    for entry in record.get("calibration_table", {}).get("entries", []):
        if (entry.get("mode", "global"), entry["target_fmr"], entry["scope"]) == (mode, TARGET, SCOPE):
            return entry
    pytest.fail(
        f"{manifest_path} ships no {mode} entry for {TARGET} ({SCOPE}): record it with `edge calibrate "
        f"--identities ../shared/data/identities.csv --root ../shared/data --target-fmr {TARGET} --worst-group "
        f"--mode {mode}`"
    )


@pytest.mark.parametrize("mode", ["per_template", "global"])
def test_shipped_calibration_reruns_within_tolerance(mode, data_dir, models_dir, capsys):
    entry = shipped_entry(models_dir / "manifest.json", mode)
    before = (models_dir / "manifest.json").read_bytes()
    csv_path = data_dir / "identities.csv"
    assert entry["dataset_sha256"] == file_sha256(csv_path), "the shipped entry was measured on another identities.csv"
    flags = ["--identities", str(csv_path), "--root", str(data_dir), "--models", str(models_dir)]
    code = main(["calibrate", *flags, "--target-fmr", str(TARGET), "--worst-group", "--mode", mode, "--dry-run"])
    out = capsys.readouterr()
    assert code == 0, out.err
    rerun = json.loads(out.out)
    assert rerun["written"] is False and (models_dir / "manifest.json").read_bytes() == before
    assert (rerun["mode"], rerun["target_fmr"], rerun["scope"]) == (mode, TARGET, SCOPE)
    assert abs(rerun["threshold"] - entry["threshold"]) <= TOLERANCE, (
        f"{mode}: rerun {rerun['threshold']} on {rerun['cpu']['model']}, shipped {entry['threshold']} "
        f"on {entry.get('cpu', {}).get('model')}"
    )
