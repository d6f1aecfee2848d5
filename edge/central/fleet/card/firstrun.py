"""Hooking the first-boot script into Imager's `firstrun.sh` (Raspberry Pi OS Bookworm and earlier).

Imager writes `firstrun.sh` to the boot partition and adds `systemd.run=/boot/firstrun.sh` to
`cmdline.txt`; the script applies the customisation, then deletes itself (`rm -f
/boot/firstrun.sh`) and its `cmdline.txt` entry. The hook goes on the line before that `rm`, so
it runs once, after the customisation, and every original line stays as and where it was.
"""

from __future__ import annotations

import posixpath
import re

from edge.central.fleet.card.errors import CardError

SCRIPT = "edge-firstboot.sh"
_SYSTEMD_RUN = re.compile(r"(?:^|\s)systemd\.run=(\S*firstrun\.sh)(?:\s|$)")
_REMOVES_ITSELF = re.compile(r"^(?P<indent>\s*)rm\s+(?:-\w+\s+)*\S*firstrun\.sh\b")


def firstrun_path(cmdline: str) -> str | None:
    """The firstrun.sh that `cmdline.txt` runs at boot (e.g. /boot/firstrun.sh), or None."""
    match = _SYSTEMD_RUN.search(cmdline)
    return match.group(1) if match else None


def hook_line(firstrun: str) -> str:
    """The command that runs the script from where firstrun.sh sees the boot partition.

    On Bookworm, Imager's `systemd.run=/boot/firstrun.sh` finds the partition at /boot at that
    point of boot, so the script is told so ($EDGE_BOOT); at /boot/firmware it finds it itself.
    """
    boot = posixpath.dirname(firstrun) or "/boot"
    run = f"sh {boot}/{SCRIPT} >/var/log/edge-firstboot.log 2>&1 || true"
    return run if boot == "/boot/firmware" else f"EDGE_BOOT={boot} {run}"


def hook_firstrun(text: str, firstrun: str, where: str) -> str:
    """`text` with the hook before its line that removes firstrun.sh; as is if already hooked."""
    if SCRIPT in text:
        return text
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(newline)
    for i, line in enumerate(lines):
        match = _REMOVES_ITSELF.match(line)
        if match:
            lines.insert(i, match.group("indent") + hook_line(firstrun))
            return newline.join(lines)
    raise CardError(f"{where}: no line that removes it (rm -f .../firstrun.sh) to run {SCRIPT} before; cannot hook it")
