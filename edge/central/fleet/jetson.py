"""A Jetson's bundle, placed in NVIDIA's BSP root filesystem before the board is flashed.

`Linux_for_Tegra/rootfs/` is the root filesystem that `l4t_initrd_flash.sh` writes to the board
(after `apply_binaries.sh`). A Jetson has no FAT partition to carry the bundle, so it goes straight
to a root-only folder of that file system, with a unit that runs the same first-boot script as a
Raspberry Pi card does (firmware-config/firstboot.sh):

    var/lib/edge-firstboot/                      0700
        edge-bundle/                             the bundle (device.key, box.key 0600)
        edge-firstboot.sh                        firmware-config/firstboot.sh
    etc/systemd/system/edge-firstboot.service    firmware-config/edge-firstboot.service
    etc/systemd/system/multi-user.target.wants/edge-firstboot.service -> that unit (enabled)

The unit runs only while `edge-bundle/install.sh` is there; first boot removes the bundle once
installed, so later boots skip it. Placed files get the owner of `rootfs/` (root in a BSP).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from edge.central.fleet.card.bundle_source import open_bundle
from edge.errors import OperatorError
from edge.resources import shipped

BOARD = "jetson"
STAGE = "var/lib/edge-firstboot"
BUNDLE = "edge-bundle"
SCRIPT = "edge-firstboot.sh"
UNIT = "edge-firstboot.service"
UNITS = "etc/systemd/system"
WANTS = f"{UNITS}/multi-user.target.wants"
FIRMWARE = shipped("firmware-config")
SOURCES = {SCRIPT: FIRMWARE / "firstboot.sh", UNIT: FIRMWARE / UNIT}  # what each placed file is a copy of
# What tells a Linux_for_Tegra folder: NVIDIA's flash scripts beside the root filesystem.
FLASH_SCRIPTS = ("flash.sh", "tools/kernel_flash/l4t_initrd_flash.sh")
PRIVATE = ("certs/device.key", "certs/box.key")


class JetsonError(OperatorError, ValueError):
    """The BSP folder or the bundle cannot make a Jetson that installs itself; nothing was placed."""


@dataclass(frozen=True)
class Placed:
    """What was placed, for the command's line."""

    device: str  # site/device_id
    stage: Path
    replaced: bool


def place(l4t: Path, bundle: Path, replace: bool = False) -> Placed:
    """Place `bundle` (folder or tarball of `edge fleet provision --board jetson`) and the
    first-boot unit into `l4t`/rootfs; everything is checked before the first write."""
    rootfs = _rootfs(l4t)
    owner = owner_for(rootfs, os.geteuid())
    stage = rootfs / STAGE
    with open_bundle(bundle, BOARD) as folder:
        manifest = _manifest(folder, bundle)
        _check_python(rootfs, manifest.get("python_version"))
        _check_not_placed(stage, replace)
        for source in SOURCES.values():
            if not source.is_file():
                raise JetsonError(f"{source} not found: run from a checkout or an install of edge")
        replaced = stage.exists()
        if replaced:
            shutil.rmtree(stage)
        _write(rootfs, folder, owner)
    return Placed(f"{manifest.get('site')}/{manifest.get('device_id')}", stage, replaced)


def owner_for(rootfs: Path, euid: int) -> tuple[int, int] | None:
    """The uid:gid placed files get: rootfs/'s, which only root can give; None: keep the caller's
    (a rootfs/ of the caller's own, as in tests). A rootfs/ of someone else's needs root."""
    info = rootfs.stat()
    if euid == 0:
        return info.st_uid, info.st_gid
    if info.st_uid == euid:
        return None
    raise JetsonError(f"{rootfs} is owned by uid {info.st_uid}: run with sudo (the placed files must be root's)")


def _rootfs(l4t: Path) -> Path:
    rootfs = l4t / "rootfs"
    if not l4t.is_dir():
        raise JetsonError(f"--l4t {l4t}: no such folder (give the Linux_for_Tegra folder of NVIDIA's Jetson Linux)")
    missing = [name for name in FLASH_SCRIPTS if not (l4t / name).is_file()]
    if not rootfs.is_dir():
        missing.insert(0, "rootfs/")
    if missing:
        raise JetsonError(
            f"--l4t {l4t}: not a Linux_for_Tegra folder (no {missing[0]}): give the folder NVIDIA's Jetson Linux "
            "tarball unpacks to"
        )
    if not (rootfs / "etc" / "os-release").exists() and not (rootfs / "usr" / "lib" / "os-release").exists():
        raise JetsonError(
            f"--l4t {l4t}: rootfs/ holds no root filesystem: unpack the sample root filesystem into it and run "
            "sudo ./apply_binaries.sh first"
        )
    return rootfs


def _manifest(folder: Path, given: Path) -> dict:
    manifest = json.loads((folder / "bundle.json").read_text())  # open_bundle read it already
    missing = [name for name in ("install.sh", *PRIVATE) if not (folder / name).is_file()]
    if missing:
        raise JetsonError(f"--bundle {given}: no {missing[0]} in it: not a complete bundle of edge fleet provision")
    return manifest


def _check_python(rootfs: Path, version: str | None) -> None:
    """The board's Python must be the one the bundle's wheels are for, with venv (install.sh makes
    /opt/edge/venv at first boot, offline: nothing can be fetched then)."""
    if version is None:
        return
    if not os.path.lexists(rootfs / "usr" / "bin" / f"python{version}"):
        found = sorted(
            p.name.removeprefix("python")
            for p in (rootfs / "usr" / "bin").glob("python3.*")
            if re.fullmatch(r"python3\.\d+", p.name)
        )
        has = f"Python {', '.join(found)}" if found else "no Python 3"
        raise JetsonError(
            f"the bundle's wheels are for Python {version}, {rootfs} has {has}: provision the bundle with "
            f"--python-version {found[-1] if found else '...'} (JetPack 6 has 3.10)"
        )
    if not (rootfs / "usr" / "lib" / f"python{version}" / "ensurepip" / "__init__.py").is_file():
        raise JetsonError(
            f"{rootfs} has Python {version} without venv, which install.sh needs at first boot: install "
            f"python{version}-venv into the root filesystem first (docs/pages/fleet.md, Flash a Jetson)"
        )


def _check_not_placed(stage: Path, replace: bool) -> None:
    if not stage.exists() or replace:
        return
    manifest = stage / BUNDLE / "bundle.json"
    try:
        placed = json.loads(manifest.read_text())
        whose = f"the bundle of {placed.get('site')}/{placed.get('device_id')}"
    except (OSError, ValueError):
        whose = "a first boot" if (stage / "done").exists() else "a bundle"
    raise JetsonError(
        f"{stage}: {whose} is already placed there: add --replace to place this one instead (or sudo rm -r {stage})"
    )


def _write(rootfs: Path, folder: Path, owner: tuple[int, int] | None) -> None:
    """The bundle first (into a scratch name, renamed at the end), then the unit, its link last:
    an interrupted run leaves nothing enabled."""
    stage = rootfs / STAGE
    (rootfs / "var" / "lib").mkdir(parents=True, exist_ok=True)
    stage.mkdir(mode=0o700)
    os.chmod(stage, 0o700)  # whatever the umask
    scratch = stage / f".{BUNDLE}.part"
    shutil.copytree(folder, scratch, symlinks=False)
    _private(scratch)
    scratch.rename(stage / BUNDLE)
    _copy(SOURCES[SCRIPT], stage / SCRIPT, 0o700)
    (rootfs / WANTS).mkdir(parents=True, exist_ok=True)
    _copy(SOURCES[UNIT], rootfs / UNITS / UNIT, 0o644)
    if owner is not None:
        _chown_tree(stage, owner)
        os.chown(rootfs / UNITS / UNIT, *owner)
    link = rootfs / WANTS / UNIT
    link.unlink(missing_ok=True)
    link.symlink_to(f"/{UNITS}/{UNIT}")  # what `systemctl enable` makes, pointing inside the board
    if owner is not None:
        os.chown(link, *owner, follow_symlinks=False)


def _private(bundle: Path) -> None:
    """Root's alone: folders 0700, the keys 0600, the rest 0600 or 0700 (executable stays so)."""
    for path in (bundle, *bundle.rglob("*")):
        mode = path.stat().st_mode
        os.chmod(path, 0o700 if path.is_dir() or mode & 0o100 else 0o600)
    for name in PRIVATE:
        os.chmod(bundle / name, 0o600)


def _copy(source: Path, target: Path, mode: int) -> None:
    shutil.copyfile(source, target)
    os.chmod(target, mode)


def _chown_tree(top: Path, owner: tuple[int, int]) -> None:
    for path in (top, *top.rglob("*")):
        os.chown(path, *owner, follow_symlinks=False)
