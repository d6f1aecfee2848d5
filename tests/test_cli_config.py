"""`edge config show`: the detector, embedder and threshold in force, with where each came from."""

from __future__ import annotations

import json
import re

from edge.cli import main


def shown(capsys, *argv: str) -> dict[str, tuple[object, str]]:
    assert main(["config", "show", *argv]) == 0
    lines = re.findall(r"^(\S+) += (.*?)  # (.*)$", capsys.readouterr().out, re.M)
    return {key: (json.loads(value), origin) for key, value, origin in lines}


def test_models_and_threshold_in_force_come_from_the_manifest(capsys, manifest):
    out = shown(capsys)
    assert out["models.detector"] == (manifest.default_detector, "manifest default")
    assert out["models.embedder"] == (manifest.default_embedder, "manifest default")
    threshold, origin = out["match.threshold"]
    embedder = manifest.get(manifest.default_embedder).spec
    default = embedder["operating_point"]
    assert origin.startswith("manifest default: target_fmr") and default["scope"] in origin
    assert threshold == next(
        e["threshold"]
        for e in embedder["calibration_table"]["entries"]
        if (e["target_fmr"], e["scope"], e.get("mode")) == (default["target_fmr"], default["scope"], "per_template")
    )


def test_configured_values_keep_their_source(capsys, monkeypatch):
    monkeypatch.setenv("EDGE_MATCH__THRESHOLD", "0.5")
    monkeypatch.setenv("EDGE_MODELS__EMBEDDER", "dlib_resnet_v1_fp16")
    out = shown(capsys)
    assert out["match.threshold"] == (0.5, "env")
    assert out["models.embedder"] == ("dlib_resnet_v1_fp16", "env")


def test_target_fmr_resolved_through_the_calibration(capsys, monkeypatch, manifest):
    monkeypatch.setenv("EDGE_MATCH__TARGET_FMR", "0.01")
    monkeypatch.setenv("EDGE_MATCH__FMR_SCOPE", "overall")
    threshold, origin = shown(capsys)["match.threshold"]
    assert origin == "env: configured target_fmr 0.01 (overall, per_template)"
    assert 0 < threshold < 1
