"""`edge trial ...`: a field trial's verdicts and report, one module per verb.

Each module beside this one that defines `add_verb(verbs)` adds one verb, as in `edge fleet`.
"""

from __future__ import annotations

from edge.commands.common import add_verbs


def add_parser(sub) -> None:
    p = sub.add_parser("trial", help="a field trial: operator verdicts on alerts and the report")
    add_verbs(p, __name__, __path__)
