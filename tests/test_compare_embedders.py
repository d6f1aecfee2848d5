"""The comparison's parts (edge.central.evaluation.embedders): score fusion, the generic TFLite
describer and the mirrored fp16 embedder, on the shipped models and real faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.central.evaluation.dataset import read_identities
from edge.central.evaluation.embedders import (
    Candidate,
    TfliteDescriber,
    ZNorm,
    describe_all,
    fused,
    mirrored,
)
from edge.central.evaluation.scores import scored
from edge.vision import Embedder

REPO = Path(__file__).resolve().parents[1]
IMAGES = ["lfw/Colin_Powell/Colin_Powell_0001.jpg", "face_recognition/examples/obama.jpg"]


def small_set(tmp_path: Path):
    """Six images of three people in two groups, compared all against all."""
    rows = ["path,identity,group"] + [f"img{i}.jpg,p{i // 2},{'ab'[i % 2]}" for i in range(6)]
    (tmp_path / "ids.csv").write_text("\n".join(rows) + "\n")
    return read_identities(tmp_path / "ids.csv", tmp_path, "group", None)


def test_fusion_averages_z_scores_from_the_calibration_impostors(tmp_path: Path):
    dataset = small_set(tmp_path)
    rng = np.random.default_rng(3)
    one, two = rng.normal(size=(6, 8)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
    one[5] = np.nan  # a failed image stays a failure after fusion
    a, b = scored(dataset, one, {"img5.jpg": "no face found"}), scored(dataset, two, {})
    norms = [ZNorm.of(a), ZNorm.of(b)]
    impostor = a.distances[~dataset.genuine]
    impostor = impostor[~np.isnan(impostor)]
    assert norms[0].mean == pytest.approx(impostor.mean()) and norms[0].std == pytest.approx(impostor.std())
    f = fused([a, b], norms)
    expected = ((a.distances - norms[0].mean) / norms[0].std + (b.distances - norms[1].mean) / norms[1].std) / 2
    np.testing.assert_allclose(f.distances, expected, rtol=1e-6)
    assert np.isnan(f.distances[(dataset.a == 5) | (dataset.b == 5)]).all()
    assert f.failures == a.failures
    with pytest.raises(ValueError, match="one dataset"):
        fused([a, scored(small_set(tmp_path / ".." / tmp_path.name), two, {})], norms)


def test_tflite_describer_is_the_device_embedder_on_the_same_file(data_dir, manifest, stills_vision):
    """Unnormalised, the generic describer gives the shipped int8 embedder's single-pass output."""
    entry = manifest.get("dlib_resnet_v1_int8")
    describer = TfliteDescriber(manifest.path(entry), "dlib_int8", normalise=False)
    frame = cv2.cvtColor(cv2.imread(str(data_dir / IMAGES[0])), cv2.COLOR_BGR2RGB)
    stills_vision.assess(frame, stills_vision.detect(frame)[0])
    chip = stills_vision.chip.copy()
    np.testing.assert_array_equal(describer.embed(chip), Embedder(manifest, entry).embed(chip))
    normalised = TfliteDescriber(manifest.path(entry), "dlib_int8").embed(chip)
    assert np.linalg.norm(normalised) == pytest.approx(1.0, abs=1e-5)


def test_mirrored_fp16_is_the_mean_of_the_chip_and_its_mirror(data_dir, manifest, stills_vision):
    plain = Embedder(manifest, manifest.get("dlib_resnet_v1_fp16"))
    both = mirrored(manifest, "dlib_resnet_v1_fp16")
    frame = cv2.cvtColor(cv2.imread(str(data_dir / IMAGES[1])), cv2.COLOR_BGR2RGB)
    stills_vision.assess(frame, stills_vision.detect(frame)[0])
    chip = stills_vision.chip.copy()
    expected = (plain.embed(chip) + plain.embed(chip[:, ::-1])) / 2
    np.testing.assert_allclose(both.embed(chip), expected, atol=1e-6)
    assert both.model_id == "dlib_resnet_v1_fp16_mirror" and both.sha256 == plain.sha256


def test_describe_all_gives_every_candidate_the_device_face(data_dir, manifest, stills_vision):
    """The default's descriptors are the device path's; a candidate on the same chip agrees with it."""
    entry = manifest.get(stills_vision.embedder.model_id)
    twin = Candidate("twin", Embedder(manifest, entry))
    result = describe_all(stills_vision, data_dir, [*IMAGES, "no/such/image.jpg"], [twin])
    assert set(result.failures) == {"no/such/image.jpg"}
    ours = result.descriptors[stills_vision.embedder.model_id]
    np.testing.assert_allclose(result.descriptors["twin"], ours, atol=1e-6, equal_nan=True)
    frame = cv2.cvtColor(cv2.imread(str(data_dir / IMAGES[0])), cv2.COLOR_BGR2RGB)
    device = stills_vision.describe_single(frame, IMAGES[0], gated=True, several="central").embedded()
    np.testing.assert_allclose(ours[0], device, atol=1e-6)


def _figures(equal_fnmr: tuple[int, int], group_fmr: tuple[int, int]) -> dict:
    """One embedder's figures at one point: misses at equal FMR on both sets, one sizeable group."""
    from edge.central.evaluation.stats import Rate

    at = {"fmr": Rate(5, 1000).to_json(), "fnmr": Rate(30, 1000).to_json()}
    group = {"fmr": Rate(*group_fmr).to_json(), "fnmr": Rate(1, 100).to_json(), "sizeable": True}
    out = {w: {"overall": at, "groups": {"g": group}} for w in ("heldout", "dev")}
    out.update({f"{w}_equal_fmr": {"fmr": at["fmr"], "fnmr": Rate(*equal_fnmr).to_json()} for w in ("heldout", "dev")})
    return {"p": out}


def test_verdict_needs_intervals_apart_and_no_group_with_more_false_matches():
    import importlib.util

    spec = importlib.util.spec_from_file_location("compare_embedders", REPO / "scripts" / "compare_embedders.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    results = {
        script.DEFAULT: _figures((30, 1000), (20, 1000)),
        "better": _figures((5, 1000), (22, 1000)),  # far fewer misses, the group's FMR within noise
        "riskier": _figures((5, 1000), (80, 1000)),  # far fewer misses, the group's FMR far higher
        "close": _figures((25, 1000), (20, 1000)),  # intervals overlap
    }
    lines = script.verdict(results, dict.fromkeys(results, 1.0), "p")
    by_name = {line.split(":")[0][2:]: line for line in lines[1:]}
    assert by_name["better"].endswith("ships if `edge bench` keeps the speed targets with it")
    assert "groups whose DEV FMR it raises: g 8.00%" in by_name["riskier"]
    assert by_name["riskier"].endswith("does not ship") and by_name["close"].endswith("does not ship")
    assert "intervals apart (held-out and DEV): no" in by_name["close"]


def test_without_sface_built_the_comparison_says_how_to_build_it(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compare_embedders.py"), "--sface", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "build SFace first" in done.stderr and "python -m edge.modelbuild.sface" in done.stderr
