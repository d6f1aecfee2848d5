"""`edge fleet jetson-rootfs` on a Linux_for_Tegra folder made in the test: what lands in rootfs/, with
which modes, the unit that runs first boot there, and the refusals (one line, nothing placed)."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import cv2
import pytest
from test_firmware_config import FIRMWARE, make_bundle

from edge.central.fleet.jetson import JetsonError, owner_for
from edge.cli import main

STAGE = "rootfs/var/lib/edge-firstboot"
UNIT = "rootfs/etc/systemd/system/edge-firstboot.service"
LINK = "rootfs/etc/systemd/system/multi-user.target.wants/edge-firstboot.service"


def l4t_tree(top: Path, python: str = "3.10", venv: bool = True) -> Path:
    """The parts of a Linux_for_Tegra folder the command looks at: NVIDIA's flash scripts and a
    root filesystem (after apply_binaries.sh) with its Python."""
    l4t = top / "Linux_for_Tegra"
    (l4t / "tools/kernel_flash").mkdir(parents=True)
    (l4t / "flash.sh").write_text("#!/bin/bash\n")
    (l4t / "tools/kernel_flash/l4t_initrd_flash.sh").write_text("#!/bin/bash\n")
    rootfs = l4t / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/os-release").write_text('NAME="Ubuntu"\nVERSION_ID="22.04"\n')
    (rootfs / "usr/bin").mkdir(parents=True)
    (rootfs / "usr/bin" / f"python{python}").write_text("")
    if venv:
        (rootfs / f"usr/lib/python{python}/ensurepip").mkdir(parents=True)
        (rootfs / f"usr/lib/python{python}/ensurepip/__init__.py").write_text("")
    return l4t


def bundle(top: Path, board: str = "jetson", device: str = "jet-01") -> Path:
    """A bundle as `edge fleet provision` lays it out, for Python 3.10 (wheels are not read here)."""
    folder = make_bundle(top / device, top / "no-wheels", board=board)
    (folder / "wheels").unlink()  # a folder of its own, as in a tarball
    (folder / "wheels").mkdir()
    (folder / "wheels/edge-0-py3-none-any.whl").write_text("a wheel\n")
    (folder / "firstboot.sh").write_bytes((FIRMWARE / "firstboot.sh").read_bytes())
    manifest = {"board": board, "site": "north", "device_id": device, "python_version": "3.10"}
    (folder / "bundle.json").write_text(json.dumps(manifest))
    return folder


def tarball(folder: Path) -> Path:
    path = folder.with_name(folder.name + ".tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return path


def jetson_rootfs(l4t: Path, given: Path, *extra: str) -> int:
    return main(["fleet", "jetson-rootfs", "--l4t", str(l4t), "--bundle", str(given), *extra])


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge fleet") and "\n" not in err and "Traceback" not in err, err
    return err


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("as_tarball", [False, True], ids=["folder", "tarball"])
def test_places_the_bundle_root_only_and_enables_first_boot(tmp_path, capsys, as_tarball):
    l4t = l4t_tree(tmp_path)
    folder = bundle(tmp_path)
    assert jetson_rootfs(l4t, tarball(folder) if as_tarball else folder) == 0
    out = capsys.readouterr().out
    assert "north/jet-01" in out and "l4t_initrd_flash.sh" in out

    stage = l4t / STAGE
    placed = stage / "edge-bundle"
    assert mode(stage) == 0o700 and mode(placed) == 0o700 and mode(placed / "certs") == 0o700
    for name in ("device.key", "box.key", "ca.crt"):
        assert (placed / "certs" / name).read_bytes() == (folder / "certs" / name).read_bytes()
        assert mode(placed / "certs" / name) == 0o600
    assert (placed / "install.sh").read_bytes() == (folder / "install.sh").read_bytes()
    assert (placed / "wheels/edge-0-py3-none-any.whl").is_file()
    assert (stage / "edge-firstboot.sh").read_bytes() == (FIRMWARE / "firstboot.sh").read_bytes()
    assert mode(stage / "edge-firstboot.sh") == 0o700
    assert sorted(p.name for p in stage.iterdir()) == ["edge-bundle", "edge-firstboot.sh"]

    unit = l4t / UNIT
    assert unit.read_bytes() == (FIRMWARE / "edge-firstboot.service").read_bytes() and mode(unit) == 0o644
    assert os.readlink(l4t / LINK) == "/etc/systemd/system/edge-firstboot.service"  # `systemctl enable`'s link
    st = stage.stat()
    assert (st.st_uid, st.st_gid) == ((l4t / "rootfs").stat().st_uid, (l4t / "rootfs").stat().st_gid)


def test_the_unit_runs_the_placed_script_only_while_a_bundle_waits():
    """Paths in the unit are the ones the command places, as the board sees them."""
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read(FIRMWARE / "edge-firstboot.service")
    assert unit["Unit"]["ConditionPathExists"] == "/var/lib/edge-firstboot/edge-bundle/install.sh"
    assert unit["Service"]["ExecStart"] == "/bin/sh /var/lib/edge-firstboot/edge-firstboot.sh"
    assert unit["Service"]["Type"] == "oneshot" and unit["Install"]["WantedBy"] == "multi-user.target"
    assert "EDGE_FIRSTBOOT_LOG=/var/log/" in unit["Service"]["Environment"]


def test_a_second_bundle_is_refused_until_replace(tmp_path, capsys):
    l4t = l4t_tree(tmp_path)
    assert jetson_rootfs(l4t, bundle(tmp_path, device="jet-01")) == 0
    capsys.readouterr()
    second = bundle(tmp_path, device="jet-02")
    assert jetson_rootfs(l4t, second) == 1
    err = one_line(capsys)
    assert "north/jet-01 is already placed" in err and "--replace" in err
    assert json.loads((l4t / STAGE / "edge-bundle/bundle.json").read_text())["device_id"] == "jet-01"

    assert jetson_rootfs(l4t, second, "--replace") == 0
    assert "instead of the one placed before" in capsys.readouterr().out
    assert json.loads((l4t / STAGE / "edge-bundle/bundle.json").read_text())["device_id"] == "jet-02"
    assert os.readlink(l4t / LINK) == "/etc/systemd/system/edge-firstboot.service"


def test_refusals_are_one_line_and_place_nothing(tmp_path, capsys):
    good = bundle(tmp_path)
    not_l4t = tmp_path / "somewhere"
    (not_l4t / "rootfs").mkdir(parents=True)
    assert jetson_rootfs(not_l4t, good) == 1
    assert "not a Linux_for_Tegra folder (no flash.sh)" in one_line(capsys)

    no_rootfs = l4t_tree(tmp_path / "a")
    for path in sorted((no_rootfs / "rootfs").rglob("*"), reverse=True):
        path.unlink() if not path.is_dir() else path.rmdir()
    (no_rootfs / "rootfs").rmdir()
    assert jetson_rootfs(no_rootfs, good) == 1
    assert "no rootfs/" in one_line(capsys)

    empty = l4t_tree(tmp_path / "b")
    (empty / "rootfs/etc/os-release").unlink()
    assert jetson_rootfs(empty, good) == 1
    assert "apply_binaries.sh" in one_line(capsys)

    l4t = l4t_tree(tmp_path / "c")
    pi = bundle(tmp_path, board="pi", device="pi-01")
    assert jetson_rootfs(l4t, pi) == 1
    assert "made for board 'pi'" in one_line(capsys)

    jetpack5 = l4t_tree(tmp_path / "d", python="3.8")
    assert jetson_rootfs(jetpack5, good) == 1
    err = one_line(capsys)
    assert "Python 3.10" in err and "has Python 3.8" in err and "--python-version 3.8" in err

    no_venv = l4t_tree(tmp_path / "e", venv=False)
    assert jetson_rootfs(no_venv, good) == 1
    assert "python3.10-venv" in one_line(capsys)

    for tree in (l4t, jetpack5, no_venv, empty):
        assert not (tree / STAGE).exists() and not (tree / UNIT).exists() and not (tree / LINK).exists()


def test_a_rootfs_of_someone_else_needs_root(tmp_path):
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    uid = rootfs.stat().st_uid
    assert owner_for(rootfs, 0) == (uid, rootfs.stat().st_gid)
    if uid != 0:  # the caller's own rootfs/, as in tests run by a user: files keep the caller's owner
        assert owner_for(rootfs, uid) is None
    with pytest.raises(JetsonError, match="run with sudo"):
        owner_for(rootfs, uid + 1000)


def system_opencv(folder: Path) -> Path:
    """Stands in for JetPack's python3-opencv, which a Jetson's venv imports (install.sh removes the
    wheel's): this interpreter's OpenCV, alone on a path of its own."""
    folder.mkdir()
    package = Path(cv2.__file__).parent
    for part in (package, package.parent / "opencv_python_headless.libs"):
        if part.exists():
            (folder / part.name).symlink_to(part)
    return folder


def test_first_boot_of_the_flashed_rootfs_installs_once(edge_wheels, tmp_path, capsys):
    """The placed script run as the unit runs it, on the rootfs (--root stands in for the board's /)."""
    l4t = l4t_tree(tmp_path)
    folder = make_bundle(tmp_path / "jet-01", edge_wheels, board="jetson")
    assert jetson_rootfs(l4t, folder) == 0
    rootfs = l4t / "rootfs"
    no_fat = tmp_path / "no-boot-partition"
    no_fat.mkdir()
    env = {**os.environ, "EDGE_BOOT": str(no_fat), "EDGE_FIRSTBOOT_LOG": str(rootfs / "var/log/edge-firstboot.log")}
    env["PYTHONPATH"] = str(system_opencv(tmp_path / "system-site"))
    (rootfs / "var/log").mkdir(parents=True)
    script = rootfs / "var/lib/edge-firstboot/edge-firstboot.sh"
    first = subprocess.run(["sh", str(script), "--root", str(rootfs)], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (rootfs / "opt/edge/venv/bin/edge").is_file()
    assert (rootfs / "etc/edge/device.key").read_bytes() == (folder / "certs/device.key").read_bytes()
    assert os.path.islink(rootfs / "etc/systemd/system/multi-user.target.wants/edge.service")
    assert not (rootfs / "var/lib/edge-firstboot/edge-bundle").exists()  # the unit's condition is false now
    assert "step install: ok" in (rootfs / "var/log/edge-firstboot.log").read_text()
    again = subprocess.run(["sh", str(script), "--root", str(rootfs)], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "nothing to install" in again.stdout


@pytest.mark.skipif(
    not shutil.which("systemd-analyze"), reason="systemd-analyze not installed (apt-get install systemd)"
)
def test_first_boot_unit_passes_systemd_analyze_verify():
    result = subprocess.run(
        ["systemd-analyze", "verify", str(FIRMWARE / "edge-firstboot.service")], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr  # unknown keys are warnings on stderr
