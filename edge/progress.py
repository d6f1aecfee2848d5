"""Progress bars for long commands, drawn only when stderr is a terminal.

A bar redraws itself with carriage returns: in a journal or a redirected log it becomes
hundreds of lines of noise, so under systemd or in a pipe there is no bar at all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def progress(iterable: Iterable[Any] | None = None, **options: Any) -> Any:
    """A tqdm bar on stderr (`desc`, `unit`, `total`, ...), disabled unless stderr is a terminal."""
    from tqdm import tqdm  # only the commands that draw bars pay for the import

    return tqdm(iterable, file=sys.stderr, disable=not sys.stderr.isatty(), **options)
