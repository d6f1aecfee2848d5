"""Face descriptors from aligned chips, on the quantized dlib ResNet in TFLite.

Distance: Euclidean between raw 128-d descriptors, as dlib defines it. Lower is more alike;
the manifest's `threshold` (dlib's 0.6 unless calibrated otherwise) separates "same person"
(distance <= threshold) from "different".

An embedder record may declare `"descriptor": "mirror_mean"`: the descriptor is then the mean of
the chip's and its mirror image's, which costs a second inference and measurably lowers the
misses (docs/pages/models.md, "Mirror-averaged descriptors"). Such a record is a model of its own (its own id,
cohort model and calibration, the same file), because its descriptors are not comparable with
the single-pass ones a gallery may hold.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from edge.vision.align import CHIP_SIZE
from edge.vision.runtime import Manifest, ModelEntry, ModelError, load_interpreter


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Euclidean distance between descriptors a (..., D) and b (..., D), broadcasting."""
    d = np.sqrt(np.sum((np.asarray(a, np.float32) - np.asarray(b, np.float32)) ** 2, axis=-1))
    return float(d) if np.ndim(d) == 0 else d


Descriptor = Literal["single", "mirror_mean"]


class Embedder:
    """128-d descriptors for (N, 150, 150, 3) uint8 RGB chips from `edge.vision.align`."""

    def __init__(self, manifest: Manifest, entry: ModelEntry, threads: int = 1) -> None:
        if entry.kind != "embedder":
            raise ModelError(f"model '{entry.model_id}' is a {entry.kind}, not an embedder")
        self.entry = entry
        self.model_id = entry.model_id
        self.sha256 = entry.sha256
        self.dim = int(entry.spec["output"]["dim"])
        self.threshold = float(entry.spec["threshold"])
        declared = entry.spec.get("distance", "euclidean")
        if declared != "euclidean":  # `distance` and the matcher compute nothing else
            raise ModelError(f"embedder '{entry.model_id}' declares distance {declared!r}; only 'euclidean' exists")
        self.metric: Literal["euclidean"] = "euclidean"
        descriptor = entry.spec.get("descriptor", "single")
        if descriptor not in get_args(Descriptor):
            raise ModelError(
                f"embedder '{entry.model_id}' declares descriptor {descriptor!r}; "
                f"expected one of {', '.join(get_args(Descriptor))}"
            )
        self.descriptor: Descriptor = descriptor
        self._interpreter = load_interpreter(manifest, entry, threads)
        inp = self._interpreter.get_input_details()[0]
        out = self._interpreter.get_output_details()[0]
        if tuple(inp["shape"]) != (1, CHIP_SIZE, CHIP_SIZE, 3) or int(out["shape"][-1]) != self.dim:
            raise ModelError(
                f"embedder '{entry.model_id}' takes {list(inp['shape'])} and gives "
                f"{list(out['shape'])}; expected [1, {CHIP_SIZE}, {CHIP_SIZE}, 3] -> {self.dim}"
            )
        self._input_index, self._output_index = inp["index"], out["index"]
        self._input = np.zeros(inp["shape"], inp["dtype"])
        self._input_quant = inp.get("quantization", (0.0, 0))
        self._output_quant = out.get("quantization", (0.0, 0))
        self._raw_uint8 = inp["dtype"] == np.uint8 and tuple(self._input_quant) in ((1.0, 0), (0.0, 0))

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors, shape (N, dim) float32, for chips (N, 150, 150, 3) or one (150, 150, 3)."""
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or chips.dtype != np.uint8:
            raise ValueError(f"embed expects uint8 chips (N, 150, 150, 3), got {chips.shape} {chips.dtype}")
        result = np.empty((len(chips), self.dim), np.float32)
        for i, chip in enumerate(chips):
            result[i] = self._infer(chip)
            if self.descriptor == "mirror_mean":
                result[i] += self._infer(chip[:, ::-1])
                result[i] *= 0.5
        return result

    def _infer(self, chip: np.ndarray) -> np.ndarray:
        self._set_input(chip)
        self._interpreter.invoke()
        return self._output()

    def _set_input(self, chip: np.ndarray) -> None:
        if self._raw_uint8 or self._input.dtype == np.float32:
            self._input[0] = chip
        else:  # any other quantized input: q = x / scale + zero_point
            scale, zero = self._input_quant
            info = np.iinfo(self._input.dtype)
            self._input[0] = np.clip(np.rint(chip / scale + zero), info.min, info.max)
        self._interpreter.set_tensor(self._input_index, self._input)

    def _output(self) -> np.ndarray:
        raw = self._interpreter.get_tensor(self._output_index)[0]
        if raw.dtype == np.float32:
            return raw
        scale, zero = self._output_quant
        return (raw.astype(np.float32) - zero) * scale
