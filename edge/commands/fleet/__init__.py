"""`edge fleet ...`: the centre's commands for a fleet of devices, one module per verb.

Each module beside this one that defines `add_verb(verbs)` adds one verb (`init`, `provision`,
`broker-config`, `config`, `gallery`, `status`, ...), so a verb is added by adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil


def add_parser(sub) -> None:
    p = sub.add_parser("fleet", help="fleet keys, provisioning bundles and remote control of devices")
    verbs = p.add_subparsers(dest="verb", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_verb"):
            module.add_verb(verbs)
