#!/usr/bin/env python3
"""Memory of the capture side for a live source: frame buffers with and without grab/retrieve.

    python scripts/bench_capture.py                       # the 1080p street clip of ../shared/data
    python scripts/bench_capture.py --video CLIP --frames 40 --loop-ms 15

Reads CLIP as a live source through `LatestFrameGrabber` (the capture thread decodes as fast as it
can and drops the frames the loop has not taken), with a consumer that takes a frame every LOOP_MS
as a busy loop does. Two configurations, each in a process of its own so each peak RSS is its own:
- grab/retrieve: the OpenCV source as the device uses it;
- read only (the baseline): the same source seen through `read` alone, as any source without the
  split is read.
Prints a Markdown table: distinct buffers the consumer was handed, frames read and dropped by the
capture thread, peak RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.bench.clips import DATA_DIR  # noqa: E402
from edge.bench.timer import peak_rss_mb  # noqa: E402
from edge.device.sources import Frame, FrameSource, LatestFrameGrabber, SourceInfo, open_source  # noqa: E402

STREET = DATA_DIR / "videos" / "facenet_pytorch_street.mp4"
CONFIGS = {"grab/retrieve": False, "read only (baseline)": True}


class ReadOnly(FrameSource):
    """`source` through `read` alone: how the grabber sees a source without grab/retrieve."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source

    @property
    def info(self) -> SourceInfo:
        return self.source.info

    def open(self) -> None:
        self.source.open()

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        return self.source.read(out)

    def close(self) -> None:
        self.source.close()


def _consume(grabber: LatestFrameGrabber, loop_ms: float) -> None:
    """Spend `loop_ms` on the frame, and at least as long as the capture side takes to read two
    more: a consumer slower than its camera, as the buffers are counted for, even on a machine
    so loaded that decoding is slower than `loop_ms`."""
    target = grabber.frames_read + 2
    time.sleep(loop_ms / 1000.0)
    deadline = time.monotonic() + 5.0
    while grabber.frames_read < target and time.monotonic() < deadline:
        time.sleep(0.001)


def measure(video: Path, read_only: bool, frames: int, loop_ms: float) -> dict:
    source = open_source(f"file:{video}")
    # At its end the file is opened again at once, as a stream that came back.
    grabber = LatestFrameGrabber(
        ReadOnly(source) if read_only else source, live=True, reconnect_initial_s=0.01, reconnect_max_s=0.01
    )
    images: list[np.ndarray] = []  # kept alive, so distinct objects are distinct buffers
    with grabber:
        for _ in range(frames):
            frame = grabber.latest(timeout=5.0)
            if frame is None:
                break
            if not any(frame.image is seen for seen in images):
                images.append(frame.image)
            _consume(grabber, loop_ms)
    return {
        "buffers": len(images),
        "read": grabber.frames_read,
        "dropped": grabber.frames_dropped,
        "peak_rss_mb": peak_rss_mb(),
        "shape": list(images[0].shape) if images else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=STREET, help="clip read as a live source")
    parser.add_argument("--frames", type=int, default=40, help="frames the consumer takes")
    parser.add_argument("--loop-ms", type=float, default=15.0, help="time the consumer spends per frame")
    parser.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        logging.basicConfig(level=logging.ERROR)  # a file read as live "reconnects" at its end
        print(json.dumps(measure(args.video, CONFIGS[args.worker], args.frames, args.loop_ms)))
        return 0
    if not args.video.is_file():
        print(f"no clip at {args.video}: pass --video", file=sys.stderr)
        return 1
    print(
        f"{args.video.name} read as a live source; the consumer takes {args.frames} frames, {args.loop_ms:g} ms each\n"
    )
    print("| capture | buffers | frames read / dropped | peak RSS MB |\n|---|---|---|---|")
    rows = {}
    for name in CONFIGS:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                name,
                "--video",
                str(args.video),
                "--frames",
                str(args.frames),
                "--loop-ms",
                str(args.loop_ms),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows[name] = row = json.loads(out.strip().splitlines()[-1])
        print(f"| {name} | {row['buffers']} | {row['read']} / {row['dropped']} | {row['peak_rss_mb']:.1f} |")
    saved = rows["read only (baseline)"]["peak_rss_mb"] - rows["grab/retrieve"]["peak_rss_mb"]
    print(f"\ngrab/retrieve saves {saved:.1f} MB (frames of {rows['grab/retrieve']['shape']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
