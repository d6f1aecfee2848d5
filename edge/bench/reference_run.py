"""The reference pipeline over the same clip: face_recognition's video recipe, frame by frame.

As in face_recognition's `facerec_from_video_file.py`: read a frame, convert it to RGB, find
every face with HOG (upsampled once), compute dlib's descriptor for each (5-point landmarks,
ResNet) and compare it with every known encoding (`compare_faces`: Euclidean distances to all
templates, within the threshold). No tracking, so every face of every frame is described. The
known encodings are as many as the loop's gallery holds; their values do not change the cost.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edge.bench.gallery import synthetic_templates
from edge.bench.timer import StageTimer, cpu_seconds
from edge.central.evaluation.reference import DlibReference
from edge.device.sources import open_source


def run_reference(video: str, templates: int, threshold: float, max_frames: int | None = None) -> dict[str, Any]:
    reference = DlibReference(upsample=1)
    known, _ = synthetic_templates(templates, 1)
    timer = StageTimer()
    frames = faces = 0
    started, cpu_started = time.perf_counter(), cpu_seconds()
    with open_source(f"file:{video}") as source:
        buffer = None
        while max_frames is None or frames < max_frames:
            timer.restart()
            frame = source.read(buffer)
            if frame is None:
                break
            buffer = frame.image
            timer.lap("decode")
            rects = reference.detect(frame.image)
            timer.lap("detect")
            for rect in rects:
                shape = reference.landmarks(frame.image, rect)
                timer.lap("align")
                descriptor = reference.descriptor(frame.image, shape)
                timer.lap("embed")
                bool(np.any(np.linalg.norm(known - descriptor, axis=1) <= threshold))
                timer.lap("match")
            frames += 1
            faces += len(rects)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    return {
        "frames": frames,
        "wall_s": wall,
        "fps": frames / wall,
        "cpu_percent": 100.0 * cpu / wall,
        "faces_per_frame": faces / max(frames, 1),
        "stages": timer.summary(),
        "dlib": reference.version,
    }
