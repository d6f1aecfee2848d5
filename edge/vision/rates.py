"""The 95% interval of a measured rate, for the device and the central tools alike.

A false match rate is k false matches among n impostor comparisons; the Wilson score interval
says how sure that is, and stays inside [0, 1] where a normal approximation would not.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of the proportion k / n; (0, 1) when n is 0 (nothing known)."""
    if n == 0:
        return 0.0, 1.0
    z2 = z * z
    centre = (k + z2 / 2) / (n + z2)
    half = z * math.sqrt(k * (n - k) / n + z2 / 4) / (n + z2)
    return max(0.0, centre - half), min(1.0, centre + half)
