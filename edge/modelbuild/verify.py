"""Check built models the way the device will run them: under ai-edge-litert, against dlib.

`check_io` refuses a file whose tensors disagree with its manifest record (the runtime trusts
the record); `agreement` compares descriptors with dlib's own on the same chips.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

# A quantized model whose descriptors point elsewhere than dlib's by more than this fails.
MIN_COSINE = 0.999


class VerificationError(RuntimeError):
    """A built model disagrees with its manifest record or with the dlib reference."""


def _interpreter(path: Path, threads: int = 1) -> Interpreter:
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def check_io(path: Path, record: dict[str, Any]) -> None:
    """Input shape, dtype and quantization and output shapes must be what the record says."""
    interpreter = _interpreter(path)
    (inp,), outputs = interpreter.get_input_details(), interpreter.get_output_details()
    spec = record["input"]
    expected_input = [1, spec["height"], spec["width"], 3]
    problems = []
    if list(inp["shape"]) != expected_input or np.dtype(inp["dtype"]).name != spec["dtype"]:
        problems.append(
            f"input {list(inp['shape'])} {np.dtype(inp['dtype']).name}, manifest {expected_input} {spec['dtype']}"
        )
    if spec["dtype"] == "uint8" and tuple(inp["quantization"]) != (1.0, 0):
        problems.append(f"uint8 input quantization {inp['quantization']}, expected (1.0, 0)")
    if record["kind"] == "detector":
        expected_outputs = sorted([record["output"]["regressors"], record["output"]["classificators"]])
    else:
        expected_outputs = [[1, record["output"]["dim"]]]
    found_outputs = sorted(list(map(int, d["shape"])) for d in outputs)
    if found_outputs != expected_outputs:
        problems.append(f"outputs {found_outputs}, manifest {expected_outputs}")
    if any(np.dtype(d["dtype"]) != np.float32 for d in outputs):
        problems.append("outputs are not float32")
    if problems:
        raise VerificationError(f"{path}: " + "; ".join(problems))


def tflite_descriptors(path: Path, chips: np.ndarray, threads: int = 1) -> tuple[np.ndarray, float]:
    """Descriptors (N, 128) for uint8 chips, and the median milliseconds per chip."""
    interpreter = _interpreter(path, threads)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    descriptors, times = [], []
    for chip in chips:
        interpreter.set_tensor(inp["index"], chip[None].astype(inp["dtype"]))
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
        descriptors.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(descriptors), 1000.0 * statistics.median(times[1:] or times)


def dlib_descriptors(dat_path: Path, chips: np.ndarray) -> np.ndarray:
    """dlib's own descriptors (compute_face_descriptor, no jitter) for 150x150 RGB chips."""
    import dlib

    model = dlib.face_recognition_model_v1(str(dat_path))
    return np.stack([np.array(model.compute_face_descriptor(np.ascontiguousarray(c)), np.float32) for c in chips])


def agreement(candidate: np.ndarray, reference: np.ndarray, groups: list[str]) -> dict[str, Any]:
    """Cosine similarity and Euclidean error of candidate descriptors vs reference, per chip,
    summarised overall and as the worst cosine in each demographic group."""
    cand = candidate.astype(np.float64)
    ref = reference.astype(np.float64)
    cosine = (cand * ref).sum(1) / (np.linalg.norm(cand, axis=1) * np.linalg.norm(ref, axis=1))
    error = np.linalg.norm(cand - ref, axis=1)
    by_group: dict[str, float] = {}
    for group, value in zip(groups, cosine, strict=True):
        by_group[group] = min(by_group.get(group, 1.0), float(value))
    return {
        "chips": len(ref),
        "cosine_min": _figure(cosine.min()),
        "cosine_mean": _figure(cosine.mean()),
        "euclidean_max": _figure(error.max()),
        "euclidean_mean": _figure(error.mean()),
        "cosine_min_by_group": {g: _figure(v) for g, v in sorted(by_group.items())},
    }


def _figure(value: float) -> float:
    """Seven significant digits: enough to tell fp16's 0.9999997 from 1."""
    return float(f"{value:.7g}")
