"""Model loading refuses what it cannot vouch for, and says which file and why."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from edge.vision import ModelError, load_manifest
from edge.vision.cohort import Cohort
from edge.vision.detector import Detector
from edge.vision.runtime import file_sha256, load_interpreter


def _copy_models(models_dir, tmp_path, model_id):
    """A private models folder holding one model, so a test may damage it."""
    manifest = json.loads((models_dir / "manifest.json").read_text())
    entry = manifest["models"][model_id]
    shutil.copy(models_dir / entry["file"], tmp_path / entry["file"])
    manifest["models"] = {model_id: entry}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path / entry["file"], manifest


def test_manifest_models_load(manifest):
    for entry in manifest.models.values():
        if entry.kind == "cohort":
            assert Cohort.load(manifest, entry.spec["embedder"]).model_id == entry.model_id
        else:
            assert load_interpreter(manifest, entry) is not None


def test_unknown_model_lists_known(manifest):
    with pytest.raises(ModelError, match="blazeface_short_range"):
        manifest.get("no_such_model", "detector")


def test_missing_manifest_names_path(tmp_path):
    with pytest.raises(ModelError, match=str(tmp_path)):
        load_manifest(tmp_path)


def test_missing_model_file(models_dir, tmp_path):
    path, _ = _copy_models(models_dir, tmp_path, "blazeface_short_range")
    path.unlink()
    m = load_manifest(tmp_path)
    with pytest.raises(ModelError, match="model file missing: .*blazeface_short_range.tflite"):
        load_interpreter(m, m.get("blazeface_short_range"))


def test_wrong_sha256_refused(models_dir, tmp_path):
    path, manifest = _copy_models(models_dir, tmp_path, "blazeface_short_range")
    manifest["models"]["blazeface_short_range"]["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    m = load_manifest(tmp_path)
    with pytest.raises(ModelError, match=r"does not match the manifest"):
        Detector(m, m.get("blazeface_short_range"))


def test_truncated_model_refused_by_checksum(models_dir, tmp_path):
    path, _ = _copy_models(models_dir, tmp_path, "blazeface_short_range")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    m = load_manifest(tmp_path)
    with pytest.raises(ModelError, match=str(path)):
        load_interpreter(m, m.get("blazeface_short_range"))


def test_truncated_model_with_matching_checksum_fails_to_load(models_dir, tmp_path):
    """Even a manifest rewritten to match a truncated file cannot make it load."""
    path, manifest = _copy_models(models_dir, tmp_path, "blazeface_short_range")
    path.write_bytes(path.read_bytes()[:5000])
    manifest["models"]["blazeface_short_range"]["sha256"] = file_sha256(path)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    m = load_manifest(tmp_path)
    with pytest.raises(ModelError, match=f"cannot load model {path}"):
        load_interpreter(m, m.get("blazeface_short_range"))


def test_missing_runtime_says_what_to_install(manifest, monkeypatch):
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    with pytest.raises(ModelError, match=r"no TFLite runtime installed: pip install 'edge\[litert\]'"):
        load_interpreter(manifest, manifest.get("blazeface_short_range"))


def test_wrong_kind_refused(manifest):
    with pytest.raises(ModelError, match="not a detector"):
        Detector(manifest, manifest.get(manifest.default_embedder))


def test_runtime_banner_fenced_other_native_output_kept(models_dir):
    """LiteRT prints `INFO: Created TensorFlow Lite XNNPACK delegate` on fd 2 for every
    interpreter; the fence drops exactly that, and passes on anything else native code writes."""
    script = (
        "import os\n"
        "from edge.vision import load_manifest\n"
        "from edge.vision.runtime import load_interpreter, native_stderr_without\n"
        f"m = load_manifest({str(models_dir)!r})\n"
        "load_interpreter(m, m.get(m.default_embedder))\n"
        "with native_stderr_without('INFO: Created'):\n"
        "    os.write(2, b'INFO: Created something\\nnative warning kept\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "native warning kept\n"


def test_cli_prints_no_runtime_banner(data_dir):
    image = str(data_dir / "lfw" / "Abdullah_Gul" / "Abdullah_Gul_0001.jpg")
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "verify", image, image], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "XNNPACK" not in done.stderr and json.loads(done.stdout)["same"]
