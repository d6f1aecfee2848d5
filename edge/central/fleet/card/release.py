"""Which first-boot mechanism a Raspberry Pi OS boot partition uses, and its file with the hook in.

- cloud-init (`user-data`, `meta-data`, `network-config`; Raspberry Pi OS from Trixie, Oct 2025):
  a `runcmd` entry in `user-data`.
- Imager's `firstrun.sh`, run by `systemd.run=` in `cmdline.txt` (Bookworm and earlier): a line
  before it removes itself.

Bookworm's `custom.toml` has no place for a command, and an image written without customisation
has neither hook: both are refused, saying what was looked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.central.fleet.card.boot import BootPartition
from edge.central.fleet.card.cloudinit import hook_user_data
from edge.central.fleet.card.errors import CardError
from edge.central.fleet.card.firstrun import firstrun_path, hook_firstrun

LOOKED_FOR = (
    "user-data (cloud-init, Raspberry Pi OS from Trixie) or cmdline.txt running firstrun.sh "
    "(systemd.run=, Imager's customisation on Bookworm)"
)


@dataclass(frozen=True)
class Hook:
    """The release found, and the file to write so that it runs the first-boot script."""

    release: str
    name: str
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new


def find_hook(boot: BootPartition) -> Hook:
    """The hooked file for the release on `boot`; refuses a partition without a known hook."""
    where = boot.describe()
    firstrun = firstrun_path(boot.read_text("cmdline.txt") or "")
    if firstrun is not None:
        text = boot.read_text("firstrun.sh")
        if text is None:
            raise CardError(f"{where}: cmdline.txt runs {firstrun} but the partition has no firstrun.sh")
        hooked = hook_firstrun(text, firstrun, f"{where}: firstrun.sh")
        return Hook("firstrun.sh (Bookworm)", "firstrun.sh", text, hooked)
    text = boot.read_text("user-data")
    if text is not None:
        return Hook("cloud-init (Trixie)", "user-data", text, hook_user_data(text, f"{where}: user-data"))
    custom = " (custom.toml has no place for a command: customise with Imager's firstrun.sh or use a Trixie image)"
    found = custom if boot.read_text("custom.toml") is not None else ""
    raise CardError(f"{where}: unknown release, no first-boot hook found; looked for {LOOKED_FOR}{found}")
