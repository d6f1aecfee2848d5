#!/usr/bin/env python3
"""How the shipped models' inference time depends on the runtime's settings, baseline first.

    python scripts/bench_inference.py [--runs 100] [--threads 1 2]

For the default detector and the default (mirror-averaged) embedder: the interpreter as the
device creates it (XNNPACK, the runtime's default delegate) against XNNPACK with its newest
features switched on and TFLite's built-in kernels without it, at each thread count; for the
embedder also the chip and its mirror as two invokes (what the device does) against one batch of
two. With `../shared/data`, also the detector input's whole-factor shrink on the real clips'
frames: OpenCV's area averaging against `shrink_whole`. Each row is the median and p90 of `--runs`
invokes after a warm-up, all in one process, interleaved round by round so that load from
elsewhere falls on every row alike. Needs ai-edge-litert (tflite-runtime has no resolver choice).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.bench.clips import DATA_DIR, HAMILTON, STREET  # noqa: E402
from edge.vision import load_manifest  # noqa: E402
from edge.vision.align import CHIP_SIZE  # noqa: E402
from edge.vision.detector import shrink_whole  # noqa: E402
from edge.vision.runtime import RUNTIME_BANNER, native_stderr_without, verify_model_file  # noqa: E402

ROUND = 10  # invokes per row per round


def runtimes() -> dict[str, dict[str, Any]]:
    """The interpreter settings compared: the device's (XNNPACK, the runtime's default delegate),
    XNNPACK with its newest features switched on, and TFLite's built-in kernels without it."""
    from ai_edge_litert.interpreter import OpResolverType

    return {
        "XNNPACK": {},
        "XNNPACK latest features": {"experimental_default_delegate_latest_features": True},
        "built-in kernels": {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES},
    }


def interpreter(path: Path, threads: int, settings: dict[str, Any], batch: int = 1) -> tuple[object, int]:
    """A ready interpreter and its input index."""
    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_without(RUNTIME_BANNER):
        it = Interpreter(model_path=str(path), num_threads=threads, **settings)
    index = it.get_input_details()[0]["index"]
    if batch > 1:
        shape = list(it.get_input_details()[0]["shape"])
        it.resize_tensor_input(index, [batch, *shape[1:]])
    it.allocate_tensors()
    return it, index


def runner(it: object, index: int, inputs: list[np.ndarray]) -> Callable[[], None]:
    """One unit of work: every input set and invoked in turn."""

    def run() -> None:
        for x in inputs:
            it.set_tensor(index, x)  # type: ignore[attr-defined]
            it.invoke()  # type: ignore[attr-defined]

    return run


def rows(threads: list[int]) -> dict[str, Callable[[], None]]:
    manifest = load_manifest()
    detector = manifest.get(manifest.default_detector, "detector")
    embedder = manifest.get(manifest.default_embedder, "embedder")
    det_path, emb_path = verify_model_file(manifest, detector), verify_model_file(manifest, embedder)
    size = int(detector.spec["input"]["width"])
    rng = np.random.default_rng(0)
    frame = rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    chip = rng.integers(0, 256, (CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    pair = np.ascontiguousarray(np.stack([chip, chip[:, ::-1]]))
    singles = [np.ascontiguousarray(pair[:1]), np.ascontiguousarray(pair[1:])]
    found: dict[str, Callable[[], None]] = {}
    for n in threads:
        for runtime, settings in runtimes().items():
            it, index = interpreter(det_path, n, settings)
            found[f"detector {detector.model_id}, {runtime}, {n} thread(s)"] = runner(it, index, [frame])
            it, index = interpreter(emb_path, n, settings)
            found[f"embedder, chip + mirror as 2 invokes, {runtime}, {n} thread(s)"] = runner(it, index, singles)
            it, index = interpreter(emb_path, n, settings, batch=2)
            found[f"embedder, chip + mirror as 1 batch of 2, {runtime}, {n} thread(s)"] = runner(it, index, [pair])
    return found


def shrink_rows() -> dict[str, Callable[[], None]]:
    """The detector input's whole-factor shrink on the real clips' frames (each call the next
    frame, so it comes from memory as in the loop): OpenCV's area averaging, the baseline, against
    `shrink_whole` (a box blur read at block centres, the same pixels). Empty without the data."""
    found: dict[str, Callable[[], None]] = {}
    for clip, factor, width in ((HAMILTON, 3, 639), (STREET, 5, 1080)):  # 639: divides by 3
        capture = cv2.VideoCapture(str(DATA_DIR / clip))
        frames = []
        while len(frames) < 100 and (read := capture.read())[0]:
            frames.append(np.ascontiguousarray(read[1][:, :width]))
        capture.release()
        if frames:
            h, w = frames[0].shape[:2]
            name = f"{Path(clip).stem} {w}x{h} shrunk by {factor}"
            area, ours = shrinks(frames, factor)
            found[f"{name}: area averaging (baseline)"], found[f"{name}: shrink_whole"] = area, ours
    return found


def shrinks(frames: list[np.ndarray], factor: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """Area averaging and `shrink_whole`, each on the next of `frames` at every call."""
    h, w = frames[0].shape[:2]
    out, scratch = np.empty((h // factor, w // factor, 3), np.uint8), np.empty_like(frames[0])
    position = {"area": 0, "ours": 0}

    def area() -> None:
        frame = frames[position["area"]]
        cv2.resize(frame, (w // factor, h // factor), dst=out, interpolation=cv2.INTER_AREA)
        position["area"] = (position["area"] + 1) % len(frames)

    def ours() -> None:
        shrink_whole(frames[position["ours"]], factor, out, scratch)
        position["ours"] = (position["ours"] + 1) % len(frames)

    return area, ours


def measure(work: dict[str, Callable[[], None]], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in work}
    for run in work.values():  # warm-up: XNNPACK packs weights on the first invokes
        for _ in range(3):
            run()
    while min(len(t) for t in times.values()) < runs:
        for name, run in work.items():
            for _ in range(ROUND):
                start = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="timed invokes per row")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts")
    args = parser.parse_args()
    try:
        work = rows(args.threads) | shrink_rows()
    except ImportError:
        print("bench_inference.py needs ai-edge-litert: pip install -e '.[litert]'", file=sys.stderr)
        return 1
    times = measure(work, args.runs)
    print("| work | median ms | p90 ms |\n|---|---|---|")
    for name, t in times.items():
        p90 = statistics.quantiles(t, n=10)[-1]
        print(f"| {name} | {statistics.median(t):.2f} | {p90:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
