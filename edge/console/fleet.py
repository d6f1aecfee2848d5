"""The fleet as the console shows it: every device's retained status and config/reported (as
`edge fleet status` reads them), and signed configuration changes (as `edge fleet config set`
sends them). The fleet's signing key is read here, on the central host, and never reaches a
browser; the device checks each key against its own allow-list, as for the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.central.fleet.client import central_options
from edge.central.fleet.folder import FleetDir, parse_device
from edge.central.fleet.push import parse_assignment, set_config
from edge.central.fleet.status import collect
from edge.console.users import User

ANSWER_WAIT_S = 30.0


@dataclass(frozen=True)
class FleetAccess:
    """The fleet folder and broker the console reads devices from and sends changes through."""

    folder: FleetDir
    broker_url: str

    def devices(self, user: User) -> list[dict[str, Any]]:
        """One row per device of the sites `user` may see (`edge.central.fleet.status.DeviceRow`)."""
        rows = collect(central_options(self.folder, self.broker_url))
        return [r.as_json() for r in rows if user.may_see(r.device.split("/")[0])]

    def change(self, device: str, assignments: str, unset: str) -> dict[str, Any]:
        """Sign and send one change (`key=value` per line, keys to unset separated by spaces or
        lines) and wait for the device's answer; raises `OperatorError`s with what is wrong."""
        site, device_id = parse_device(device)
        set_ = dict(parse_assignment(line.strip()) for line in assignments.splitlines() if line.strip())
        changes = set_, unset.split()
        return set_config(self.folder, site, device_id, changes, self.broker_url, None, ANSWER_WAIT_S)
