"""`edge fleet ...`: the centre's commands for a fleet of devices, one module per verb.

Each module beside this one that defines `add_verb(verbs)` adds one verb (`init`, `provision`,
`broker-config`, `config`, `gallery`, `status`, ...), so a verb is added by adding a file.
"""

from __future__ import annotations

from edge.commands.common import add_verbs


def add_parser(sub) -> None:
    p = sub.add_parser("fleet", help="fleet keys, provisioning bundles and remote control of devices")
    add_verbs(p, __name__, __path__)
