"""Put a bundle and the first-boot script on a boot partition and hook the script, in one way for
an image file and a mounted card: everything is checked (release, room) before the first write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.central.fleet.card.boot import BootPartition, clusters_for
from edge.central.fleet.card.errors import CardError
from edge.central.fleet.card.release import find_hook
from edge.resources import shipped

BUNDLE_NAME = "edge-bundle"
SCRIPT_NAME = "edge-firstboot.sh"
FIRSTBOOT = shipped("firmware-config") / "firstboot.sh"
MB = 1024 * 1024


@dataclass(frozen=True)
class Applied:
    """What was done, for the command's one line."""

    release: str
    hooked_file: str
    newly_hooked: bool
    bundle_bytes: int


def apply(boot: BootPartition, bundle: Path, script: Path = FIRSTBOOT) -> Applied:
    """Copy `bundle` as edge-bundle/ and `script` as edge-firstboot.sh to the top of `boot`, then
    hook the script; the hook is written last, so it never points at a missing script."""
    if not script.is_file():
        raise CardError(f"{script} not found: run edge fleet image/card from a checkout or an install of edge")
    hook = find_hook(boot)
    needed = _needed(boot, bundle, script, hook.new if hook.changed else "")
    boot.put_file(script, SCRIPT_NAME)
    boot.put_tree(bundle, BUNDLE_NAME)
    if hook.changed:
        boot.write_text(hook.name, hook.new)
    return Applied(hook.release, hook.name, hook.changed, needed)


def _needed(boot: BootPartition, bundle: Path, script: Path, rewritten: str) -> int:
    """Bytes the copy takes; refuses when the partition cannot hold them (counting what it replaces)."""
    cluster = boot.cluster_bytes()
    text = -(-len(rewritten.encode()) // cluster) * cluster
    # One cluster of slack for the top folder's new entries (long names take several).
    needed = clusters_for(bundle, cluster) + clusters_for(script, cluster) + text + cluster
    available = boot.free_bytes() + boot.used_bytes(BUNDLE_NAME) + boot.used_bytes(SCRIPT_NAME)
    if needed > available:
        raise CardError(
            f"{boot.describe()}: no room for the bundle: it needs {needed / MB:.1f} MB, the partition has "
            f"{available / MB:.1f} MB free"
        )
    return needed
