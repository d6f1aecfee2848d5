"""First boot (firmware-config/firstboot.sh) as a card's boot partition meets it: a temp "boot" folder
holding `edge-bundle/` and `edge-firstboot.sh`, and `--root` standing in for the root filesystem."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from test_firmware_config import FIRMWARE, installed_version, make_bundle, sh

from edge.link.signed import write_private_key

STAGE = "var/lib/edge-firstboot"

# Stands in for install.sh to see what first boot did before running it: where the bundle is, who
# can read it, and whether the boot partition still has it. Then the real install.sh runs.
RECORDING_INSTALL = """#!/bin/sh
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
{{
  echo "from=$HERE"
  echo "on-boot=$([ -e "{boot}/edge-bundle" ] && echo yes || echo no)"
  echo "stage-mode=$(stat -c %a "$HERE/..")"
  echo "key-mode=$(stat -c %a "$HERE/certs/device.key")"
}} >"{record}"
exec sh "$HERE/install-real.sh" "$@"
"""

# An install.sh that fails after printing the key and the config (a broken step that talks too much).
LEAKY_INSTALL = """#!/bin/sh
HERE=$(cd "$(dirname "$0")" && pwd)
echo "install.sh: reading the key"
cat "$HERE/certs/device.key"
od -An -tx1 "$HERE/certs/device.key" | tr -d ' \\n' | head -c 200; echo
echo "install.sh: python3 not found (install python3 and python3-venv)" >&2
exit 3
"""


def card(tmp_path: Path, wheels: Path) -> tuple[Path, Path]:
    """A boot folder laid out as `edge fleet card` leaves it, and an empty root; a real EC key."""
    boot = tmp_path / "boot"
    bundle = make_bundle(boot / "edge-bundle", wheels, board="pi")
    write_private_key(bundle / "certs" / "device.key", ec.generate_private_key(ec.SECP256R1()))
    os.chmod(bundle / "certs" / "device.key", 0o755)  # as a FAT mount shows every file
    shutil.copy2(FIRMWARE / "firstboot.sh", boot / "edge-firstboot.sh")
    return boot, tmp_path / "root"


def first_boot(boot: Path, root: Path):
    return sh(boot / "edge-firstboot.sh", "--root", str(root), env={**os.environ, "EDGE_BOOT": str(boot)})


def tree(folder: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every path under `folder` with its mode and contents (a link's target): to see nothing changed."""
    found: dict[str, tuple[int, bytes | str]] = {}
    for path in sorted(folder.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            found[str(path)] = (mode, os.readlink(path))
        elif stat.S_ISREG(mode):
            found[str(path)] = (mode, path.read_bytes())
        else:
            found[str(path)] = (mode, "")
    return found


def test_first_boot_moves_the_bundle_off_the_boot_partition_before_it_installs(edge_wheels, tmp_path):
    boot, root = card(tmp_path, edge_wheels)
    record = tmp_path / "install.record"
    bundle = boot / "edge-bundle"
    (bundle / "install.sh").rename(bundle / "install-real.sh")
    (bundle / "install.sh").write_text(RECORDING_INSTALL.format(boot=boot, record=record))

    result = first_boot(boot, root)
    assert result.returncode == 0, result.stdout + result.stderr
    seen = dict(line.split("=", 1) for line in record.read_text().splitlines())
    assert seen["on-boot"] == "no"  # the key left FAT before install.sh started
    assert seen["from"] == str(root / STAGE / "edge-bundle")
    assert seen["stage-mode"] == "700" and not int(seen["key-mode"], 8) & 0o077
    assert installed_version(root).strip().startswith("edge ")
    # the staged bundle was private, but what install.sh made is not: the edge user runs the venv
    assert stat.S_IMODE((root / "opt/edge/venv/pyvenv.cfg").stat().st_mode) == 0o644
    assert os.readlink(root / "etc/systemd/system/multi-user.target.wants/edge.service") == (
        "/etc/systemd/system/edge.service"
    )
    assert not bundle.exists() and not (root / STAGE / "edge-bundle").exists()
    assert (root / STAGE / "done").is_file()
    log = (boot / "edge-firstboot.log").read_text()
    assert "step move: ok" in log and "step install: ok" in log and "step check: ok" in log
    assert "installed" in log.splitlines()[-1]

    before = tree(tmp_path)
    again = first_boot(boot, root)
    assert again.returncode == 0 and "nothing to install" in again.stdout
    assert tree(tmp_path) == before  # the second boot changes nothing, not even the log


def test_a_failed_install_leaves_a_readable_log_without_the_key_and_a_retry_installs(edge_wheels, tmp_path):
    boot, root = card(tmp_path, edge_wheels)
    bundle = boot / "edge-bundle"
    key = (bundle / "certs" / "device.key").read_bytes()
    (bundle / "install.sh").write_text(LEAKY_INSTALL)

    result = first_boot(boot, root)
    assert result.returncode == 1
    assert not bundle.exists()  # off FAT even though the install failed
    log = (boot / "edge-firstboot.log").read_text()
    assert "step install failed (status 3)" in log
    assert "python3 not found" in log  # what went wrong, for whoever reads the card
    body = [line for line in key.decode().splitlines() if line and not line.startswith("-----")]
    assert not any(line in log for line in body) and "PRIVATE KEY" not in log
    assert key.hex()[:40] not in log.replace(" ", "")
    assert not any(line in result.stdout + result.stderr for line in body)  # the journal neither
    assert stat.S_IMODE((boot / "edge-firstboot.log").stat().st_mode) == 0o644
    waiting = root / STAGE / "edge-bundle"
    assert (waiting / "certs" / "device.key").read_bytes() == key
    assert stat.S_IMODE((root / STAGE).stat().st_mode) == 0o700
    assert not (root / STAGE / "done").exists()

    shutil.copy2(FIRMWARE / "install.sh", waiting / "install.sh")  # fixed on the board: run it again
    retry = first_boot(boot, root)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert "step move" not in (boot / "edge-firstboot.log").read_text()  # nothing left to move
    assert (root / "etc/edge/device.key").read_bytes() == key
    assert not waiting.exists() and (root / STAGE / "done").is_file()


def test_no_bundle_on_the_card_does_nothing(tmp_path):
    boot, root = tmp_path / "boot", tmp_path / "root"
    boot.mkdir()
    shutil.copy2(FIRMWARE / "firstboot.sh", boot / "edge-firstboot.sh")
    result = first_boot(boot, root)
    assert result.returncode == 0 and "nothing to install" in result.stdout
    assert sorted(p.name for p in boot.iterdir()) == ["edge-firstboot.sh"] and not root.exists()


def test_a_bundle_that_cannot_be_moved_stays_and_the_log_says_why(tmp_path):
    boot = tmp_path / "boot"
    (boot / "edge-bundle").mkdir(parents=True)
    (boot / "edge-bundle" / "install.sh").write_text("exit 0\n")
    shutil.copy2(FIRMWARE / "firstboot.sh", boot / "edge-firstboot.sh")
    root = tmp_path / "root"
    root.write_text("a file where the root filesystem should be\n")
    result = first_boot(boot, root)
    assert result.returncode == 1
    log = (boot / "edge-firstboot.log").read_text()
    assert "step move failed" in log and "Not a directory" in log
    assert (boot / "edge-bundle" / "install.sh").is_file()


def test_an_incomplete_bundle_still_leaves_the_boot_partition(tmp_path):
    """Half a bundle copied to the card (no install.sh) may still hold the key: it moves all the same."""
    boot = tmp_path / "boot"
    (boot / "edge-bundle/certs").mkdir(parents=True)
    write_private_key(boot / "edge-bundle/certs/device.key", ec.generate_private_key(ec.SECP256R1()))
    shutil.copy2(FIRMWARE / "firstboot.sh", boot / "edge-firstboot.sh")
    root = tmp_path / "root"
    result = first_boot(boot, root)
    assert result.returncode == 1
    assert not (boot / "edge-bundle").exists() and (root / STAGE / "edge-bundle/certs/device.key").is_file()
    log = (boot / "edge-firstboot.log").read_text()
    assert "step move: ok" in log and "step install failed" in log and "install.sh" in log
