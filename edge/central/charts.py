"""matplotlib for the central tools' pictures (evaluation plots, the trial report), headless."""

from __future__ import annotations

import logging


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported only when a picture is drawn (the `central` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # matplotlib logs at INFO what it chose, e.g. "Using categorical units" for the trial report's
    # day labels, which are categories on purpose: not news to whoever runs the command.
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    return plt
