"""`edge trial ...`: a field trial's verdicts and report, one module per verb.

Each module beside this one that defines `add_verb(verbs)` adds one verb, as in `edge fleet`.
"""

from __future__ import annotations

import importlib
import pkgutil


def add_parser(sub) -> None:
    p = sub.add_parser("trial", help="a field trial: operator verdicts on alerts and the report")
    verbs = p.add_subparsers(dest="verb", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_verb"):
            module.add_verb(verbs)
