"""MediaPipe SSD anchor centres for BlazeFace, from the options in `models/manifest.json`.

Mirrors mediapipe/calculators/tflite/ssd_anchors_calculator.cc for the options BlazeFace
uses (fixed anchor size, so only centres matter): layers that share a stride share one
feature map, and each cell repeats its centre once per aspect ratio (two per layer when an
interpolated scale is added, one otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def ssd_anchor_centres(options: Mapping[str, Any], input_width: int, input_height: int) -> np.ndarray:
    """Anchor centres, shape (N, 2), float32, (x, y) normalised to [0, 1] of the model input."""
    strides: list[int] = list(options["strides"])
    if len(strides) != options["num_layers"]:
        raise ValueError(f"anchors: {len(strides)} strides for {options['num_layers']} layers")
    per_layer = 2 if options["interpolated_scale_aspect_ratio"] == 1.0 else 1
    blocks = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        repeats = 0
        while layer < len(strides) and strides[layer] == stride:
            repeats += per_layer
            layer += 1
        rows, cols = input_height // stride, input_width // stride
        ys = (np.arange(rows, dtype=np.float32) + options["offset_y"]) / rows
        xs = (np.arange(cols, dtype=np.float32) + options["offset_x"]) / cols
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        blocks.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(blocks).astype(np.float32)
