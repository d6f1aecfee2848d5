"""Several embedders on the same faces, for comparing them (`scripts/compare_embedders.py`).

Each image goes once through the device's own stills path (`Vision.describe_single`: detector,
quality gate, 150 px aligner, the default embedder), so every embedder sees the same face and
the same gate verdict; the other embedders describe the chip that path aligned, or, for a 112 px
model such as SFace, the same face aligned by its own aligner. An image that fails for the
device fails for all of them (NaN rows), as `edge.central.evaluation.scores` counts failures.

Fusion is at score level: each embedder's scores are z-normalised by the mean and standard
deviation of its impostor scores on the calibration data only, then averaged, so a fused score
is "how far below a typical stranger, in that embedder's own units".
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edge.central.evaluation.scores import Scores, describe_one
from edge.progress import progress
from edge.vision import Vision
from edge.vision.embedder import Embedder
from edge.vision.runtime import Manifest, ModelEntry, file_sha256, load_interpreter
from edge.vision.types import Face

Aligner = Callable[[np.ndarray, Face], np.ndarray]


class TfliteDescriber:
    """A TFLite descriptor model on square RGB chips of any size: uint8 input (scale 1, zero 0)
    or float32 0..255, outputs L2-normalised when `normalise` (SFace is compared by cosine; on
    unit vectors Euclidean distance is monotone in it, so the project's `distance` applies)."""

    def __init__(self, path: Path, model_id: str, threads: int = 1, normalise: bool = True) -> None:
        path = Path(path)
        entry = ModelEntry(model_id, "embedder", path.name, file_sha256(path), {})
        self.model_id, self.sha256, self.normalise = model_id, entry.sha256, normalise
        manifest = Manifest(path.parent, {model_id: entry}, "", model_id)
        self._interpreter = load_interpreter(manifest, entry, threads)
        (inp,), (out,) = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        self.size, self.dim = int(inp["shape"][1]), int(out["shape"][-1])
        self._input, self._in, self._out = np.zeros(inp["shape"], inp["dtype"]), inp["index"], out["index"]

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """(N, dim) float32 descriptors of (N, size, size, 3) or one (size, size, 3) uint8 RGB chips."""
        chips = np.asarray(chips)
        chips = chips[None] if chips.ndim == 3 else chips
        result = np.empty((len(chips), self.dim), np.float32)
        for i, chip in enumerate(chips):
            self._input[0] = chip
            self._interpreter.set_tensor(self._in, self._input)
            self._interpreter.invoke()
            result[i] = self._interpreter.get_tensor(self._out)[0]
        if self.normalise:
            result /= np.linalg.norm(result, axis=1, keepdims=True)
        return result


def mirrored(manifest: Manifest, embedder_id: str, threads: int = 1) -> Embedder:
    """`embedder_id`'s file with mirror-averaged descriptors (`Embedder`'s "mirror_mean"), for a
    record that ships only single-pass descriptors (the fp16 fallback)."""
    entry = manifest.get(embedder_id, "embedder")
    spec = {**entry.spec, "descriptor": "mirror_mean"}
    return Embedder(manifest, ModelEntry(f"{embedder_id}_mirror", "embedder", entry.file, entry.sha256, spec), threads)


@dataclass(frozen=True)
class Candidate:
    """An embedder to compare: on the device's 150 px chip (`aligner` None) or on its own chip."""

    name: str
    embedder: Embedder | TfliteDescriber
    aligner: Aligner | None = None


@dataclass(frozen=True)
class Described:
    """Every image's descriptor per candidate (NaN rows where the device path failed), by image path."""

    images: tuple[str, ...]
    descriptors: dict[str, np.ndarray]
    failures: dict[str, str]

    def rows(self, images: Iterable[str]) -> np.ndarray:
        index = {image: i for i, image in enumerate(self.images)}
        return np.array([index[image] for image in images], np.int64)


def describe_all(vision: Vision, root: Path, images: list[str], candidates: list[Candidate]) -> Described:
    """Describe each image once through the device path, then by every other candidate."""
    out = {vision.embedder.model_id: np.full((len(images), vision.embedder.dim), np.nan, np.float32)}
    out.update({c.name: np.full((len(images), c.embedder.dim), np.nan, np.float32) for c in candidates})
    failures: dict[str, str] = {}
    for i, rel in enumerate(progress(images, desc="describing", unit="image")):
        described = describe_one(vision, root, rel)
        if isinstance(described, str):
            failures[rel] = described
            continue
        frame, result = described
        out[vision.embedder.model_id][i] = result.embedded()
        for c in candidates:
            chip = vision.chip if c.aligner is None else c.aligner(frame, result.face)
            out[c.name][i] = c.embedder.embed(chip)[0]
    return Described(tuple(images), out, failures)


def ms_per_face(embed: Callable[[np.ndarray], np.ndarray], chips: np.ndarray) -> float:
    """Median milliseconds of one `embed` call per chip, over every chip after a warm-up call."""
    embed(chips[0])
    times = []
    for chip in chips:
        start = time.perf_counter()
        embed(chip)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


@dataclass(frozen=True)
class ZNorm:
    """One embedder's impostor score mean and spread on the calibration data."""

    mean: float
    std: float

    @classmethod
    def of(cls, calibration: Scores) -> ZNorm:
        impostor = calibration.split(None)[1]
        impostor = impostor[~np.isnan(impostor)]
        return cls(float(impostor.mean()), float(impostor.std()))


def fused(parts: list[Scores], norms: list[ZNorm]) -> Scores:
    """The mean of the parts' z-normalised scores (same dataset, same mode, same failures)."""
    first = parts[0]
    if any(p.dataset is not first.dataset or p.mode != first.mode for p in parts):
        raise ValueError("fusion needs scores of one dataset in one mode")
    total = np.zeros_like(first.distances)
    for part, norm in zip(parts, norms, strict=True):
        total += (part.distances - norm.mean) / norm.std
    return replace(first, distances=total / len(parts), scales=None, descriptors=None)
