"""A remote change on trial that keeps the device from starting is rolled back at the start.

`RemoteConfig` watches a change on trial only in a device that runs. A device restarted while a
change is on trial (a power cut, a crash) whose change then keeps it from starting (its camera
cannot be opened, its models cannot be loaded) would be restarted by systemd into the same
failure for ever, out of reach of the centre. `edge run` therefore writes the last good overlay
(atomically), audits why, and starts once more with it; that start reports the rollback on
`config/reported`. Errors no remote change can cause (a broker that is down, a locked state
folder) never roll anything back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edge.atomic import write_atomically
from edge.device.audit import AUDIT_LOG, AuditLog
from edge.device.overlay import OVERLAY_FILE, Overlay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartRollback:
    """The change that was rolled back at the start, and why."""

    version: int
    reason: str


def roll_back_unstartable(state_dir: Path, error: Exception) -> StartRollback | None:
    """Roll back the overlay on trial after `error` stopped the start; None when none is on trial."""
    path = state_dir / OVERLAY_FILE
    try:
        overlay = Overlay.read(path)
    except (OSError, ValueError):
        return None
    if not overlay.trial:
        return None
    reason = f"version {overlay.version} stopped the start: {error}"
    write_atomically(path, overlay.rolled_back().encode())
    AuditLog(state_dir / AUDIT_LOG).append("config", "rolled_back", version=overlay.version, reason=reason)
    log.error("config %s; starting again with the last good configuration", reason)
    return StartRollback(overlay.version, reason)
