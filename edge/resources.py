"""Folders that live at the top of the checkout and ship inside the wheel: one rule finds them.

`models/` (what the device runs) and `firmware-config/` (what `edge fleet provision` puts in a
bundle) stay at the repository root; `setup.py` copies them into a built wheel as
`edge/models/` and `edge/firmware-config/`. An installed package finds its own copy; a checkout
or an editable install finds the folder beside the package.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """`edge/<name>/` inside an installed wheel, else `<checkout>/<name>/`."""
    packaged = PACKAGE / name
    return packaged if packaged.is_dir() else PACKAGE.parent / name
