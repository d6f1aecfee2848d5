"""The wheel as a user installs it: models inside, device dependencies only, run from anywhere.

Each command runs from the installed venv, in a folder outside the checkout, with neither
$EDGE_MODELS_DIR nor $PYTHONPATH: nothing of the source tree can be found that way.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

from support_wheel import REPO

from edge.vision.runtime import file_sha256, load_manifest

# Device code: what `edge run`, `edge verify`, `edge enroll`, `edge gallery` and `edge config` import.
DEVICE_IMPORTS = """
import importlib, pkgutil, sys
import edge.cli, edge.commands.run, edge.commands.verify, edge.commands.enroll, edge.commands.gallery
import edge.commands.config
for name in ("edge.vision", "edge.gallery", "edge.device", "edge.link"):
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        importlib.import_module(module.name)
print(sorted(m for m in ("matplotlib", "dlib", "face_recognition_models", "tensorflow") if m in sys.modules))
"""


def outside_env() -> dict[str, str]:
    drop = {"EDGE_MODELS_DIR", "PYTHONPATH", "VIRTUAL_ENV", "EDGE_CONFIG"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def run_in(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=outside_env(), capture_output=True, text=True, timeout=300
    )


def test_wheel_carries_the_manifest_and_every_model_it_lists(edge_wheel, models_dir):
    manifest = load_manifest(models_dir)
    with zipfile.ZipFile(edge_wheel) as wheel:
        names = set(wheel.namelist())
        assert "edge/models/manifest.json" in names
        for entry in manifest.models.values():
            assert f"edge/models/{entry.file}" in names
        assert json.loads(wheel.read("edge/models/manifest.json")) == json.loads(
            (models_dir / "manifest.json").read_text()
        )
        for board in ("pi", "jetson", "usb"):  # what `edge fleet provision` needs outside a checkout
            assert f"edge/firmware-config/boards/{board}.toml" in names
        for name in ("install.sh", "firstboot.sh", "edge.service", "edge-firstboot.service"):
            assert f"edge/firmware-config/{name}" in names


def test_installed_package_finds_its_own_models_and_no_checkout(installed_edge, tmp_path):
    result = run_in(installed_edge, tmp_path, "python", "-c", "import edge.vision.runtime as r; print(r.__file__)")
    assert result.returncode == 0, result.stderr
    package = Path(result.stdout.strip()).parents[1]
    assert REPO not in package.parents  # the venv's copy, not the checkout's
    result = run_in(
        installed_edge, tmp_path, "python", "-c", "import edge.vision as v; print(v.load_manifest().directory)"
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == package / "models"
    manifest = load_manifest(package / "models")
    for entry in manifest.models.values():
        assert file_sha256(manifest.path(entry)) == entry.sha256


def test_default_install_is_device_dependencies_only(installed_edge, tmp_path):
    listed = run_in(installed_edge, tmp_path, "python", "-m", "pip", "list", "--format=json")
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"edge", "numpy", "opencv-python-headless", "paho-mqtt", "ai-edge-litert"} <= installed
    assert not installed & {"matplotlib", "dlib", "dlib-bin", "face-recognition-models", "tensorflow", "amqtt"}
    result = run_in(installed_edge, tmp_path, "python", "-c", DEVICE_IMPORTS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_installed_edge_verify_outside_the_checkout(installed_edge, data_dir, tmp_path):
    lfw = data_dir / "lfw" / "Colin_Powell"
    same = run_in(
        installed_edge,
        tmp_path,
        "edge",
        "verify",
        str(lfw / "Colin_Powell_0001.jpg"),
        str(lfw / "Colin_Powell_0002.jpg"),
    )
    assert same.returncode == 0, same.stderr
    result = json.loads(same.stdout)
    assert result["same"] is True and result["distance"] <= result["threshold"]
    other = run_in(
        installed_edge,
        tmp_path,
        "edge",
        "verify",
        str(lfw / "Colin_Powell_0001.jpg"),
        str(data_dir / "face_recognition/examples/obama.jpg"),
    )
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["same"] is False


def test_installed_edge_run_on_a_clip(installed_edge, data_dir, broker, subscriber_factory, tmp_path):
    gallery = tmp_path / "gallery.sqlite"
    lfw = data_dir / "lfw" / "Colin_Powell"
    enrolled = run_in(
        installed_edge,
        tmp_path,
        "edge",
        "enroll",
        "--gallery",
        str(gallery),
        "--name",
        "Colin Powell",
        "--id",
        "colin",
        str(lfw / "Colin_Powell_0001.jpg"),
        str(lfw / "Colin_Powell_0002.jpg"),
    )
    assert enrolled.returncode == 0, enrolled.stderr
    status = subscriber_factory(broker.port, ["edge/test/cam-1/status"])
    ran = run_in(
        installed_edge,
        tmp_path,
        "edge",
        "run",
        "--source",
        f"file:{data_dir / 'videos' / 'lfw_slideshow.mp4'}",
        "--gallery",
        str(gallery),
        "--broker",
        broker.url,
        "--site",
        "test",
        "--device-id",
        "cam-1",
        "--state-dir",
        str(tmp_path / "state"),
        "--max-frames",
        "10",
    )
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["frames"] == 10 and summary["outbox_pending"] == 0
    assert status.wait_for(lambda got: any(json.loads(m.payload)["state"] == "online" for m in got))
