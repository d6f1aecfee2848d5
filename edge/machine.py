"""The machine a benchmark ran on, for the header of its table: figures mean nothing without it."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from edge import __version__


def cpu_model() -> str:
    """The board (Raspberry Pi, Jetson: device tree) and CPU model name (/proc/cpuinfo), as known."""
    parts = []
    board = Path("/proc/device-tree/model")
    if board.is_file():
        parts.append(board.read_text(errors="replace").strip("\x00 \n"))
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip() not in parts:
                parts.append(value.strip())
                break
    except OSError:
        pass
    return " / ".join(parts) or platform.processor() or "unknown CPU"


def package_version(*names: str) -> str | None:
    """`name version` of the first of `names` that is installed, else None."""
    for name in names:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def machine_info() -> dict[str, object]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tflite_runtime": package_version("ai-edge-litert", "tflite-runtime") or "none",
        "opencv": cv2.__version__,
        "dlib": package_version("dlib-bin", "dlib"),
        "edge": __version__,
        "load_average_1m": round(load[0], 2),
    }
