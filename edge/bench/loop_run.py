"""One configuration of the device loop over one clip, measured the way the device runs it.

Everything but the network is the device's: the frame source in file mode (live=False) on its
capture thread, the configured vision pipeline (tiled detector, refinement), tracker,
scene-cut detector, gallery matcher, counters, and the disk thread that commits each event to
the SQLite outbox. Only the MQTT sender thread is missing: events stay in the outbox, and an
event's latency ends when its row is committed there.

Two kinds of pass over the clip, with the same models:
- throughput, `passes` times: frames as fast as the source decodes them, none dropped, so every
  configuration sees the same frames: frames per second, stage times, faces per frame, CPU, from
  the pass with the median fps (a 640x360 clip passes in about a second, and one second of a
  shared machine moved fps by 20% here); every pass's fps is kept. Here the capture thread reads
  ahead, so a frame waits about two loop periods before the loop takes it (`wait`); that is the
  harness, not the device.
- camera: frames released at the clip's own rate, as a camera delivers them, a frame whose
  time has passed while the loop was busy being dropped (a camera overwrites it): latency
  from capture to processed frame and to the event committed in the outbox.
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.timer import StageTimer, cpu_seconds, peak_rss_mb, summarise
from edge.config import Settings
from edge.device.counters import Counters
from edge.device.parts import assemble, build_loop
from edge.device.sources import Frame, FrameSource, LatestFrameGrabber, SourceInfo, open_source
from edge.device.writer import DiskWriter
from edge.gallery import Matcher
from edge.link import Outbox
from edge.link.payloads import MatchEvent, Payload, StatsPayload, Topics, new_event_id
from edge.vision import Vision

_DEFAULT_FPS = 25.0  # for a file that does not say its rate


@dataclass(frozen=True)
class LoopSpec:
    """One configuration: the clip, the detector and threads, tiling and refinement."""

    video: str
    detector: str
    threads: int
    tile_px: int
    refine: bool
    max_frames: int | None = None
    passes: int = 1


class ClipSource(FrameSource):
    """A video file source whose reads (decode and colour conversion) are timed, and, when
    `paced`, released at the file's frame rate, skipping frames whose time has passed."""

    def __init__(self, source: FrameSource, paced: bool) -> None:
        self.source = source
        self.paced = paced
        self.pace_fps: float | None = None
        self.read_ms: list[float] = []
        self.skipped = 0
        self._first_due: float | None = None
        self._next = 0

    @property
    def info(self) -> SourceInfo:
        return self.source.info

    def open(self) -> None:
        self.source.open()
        if self.paced:
            self.pace_fps = self.source.info.fps or _DEFAULT_FPS

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        while self.pace_fps is not None and self._late(self.pace_fps):
            if self._timed_read(out) is None:
                return None
            self.skipped += 1
        return self._timed_read(out)

    def _late(self, fps: float) -> bool:
        """Wait for the next frame's time; True when it passed a whole frame ago."""
        now = time.monotonic()
        if self._first_due is None:
            self._first_due = now
        due = self._first_due + self._next / fps
        if due > now:
            time.sleep(due - now)
        return now - due > 1.0 / fps

    def _timed_read(self, out: np.ndarray | None) -> Frame | None:
        start = time.perf_counter()
        frame = self.source.read(out)
        self._next += 1
        if frame is not None:
            self.read_ms.append((time.perf_counter() - start) * 1000.0)
        return frame

    def close(self) -> None:
        self.source.close()


class OutboxPublisher:
    """What `MqttLink.publish` does on the device's disk thread (serialise, commit to the
    outbox), and the time from each event's frame capture to its row being committed."""

    def __init__(self, outbox: Outbox, topics: Topics) -> None:
        self.outbox = outbox
        self.topics = topics
        self.event_latency_ms: list[float] = []
        self.stats: StatsPayload | None = None

    def publish(self, topic_suffix: str, payload: Payload) -> str:
        message_id = payload.message_id or new_event_id()
        self.outbox.put(self.topics.topic(topic_suffix), payload.to_json(), message_id=message_id, qos=1)
        if isinstance(payload, MatchEvent):
            self.event_latency_ms.append((time.time() - payload.ts.timestamp()) * 1000.0)
        elif isinstance(payload, StatsPayload):
            self.stats = payload
        return message_id


def run_loop(settings: Settings, spec: LoopSpec) -> dict[str, Any]:
    """The throughput passes and the camera pass; the figures `report` prints, and more."""
    parts = assemble(settings, spec.detector, spec.tile_px)
    vision, matcher, threshold = parts.vision, parts.matcher, parts.point.threshold
    passes = [_run_pass(settings, vision, matcher, threshold, spec, False, "throughput-1")]
    # What a device run of the clip needs; later passes and the camera pass add a little.
    one_run_peak = peak_rss_mb()
    for n in range(2, spec.passes + 1):
        passes.append(_run_pass(settings, vision, matcher, threshold, spec, False, f"throughput-{n}"))
    throughput = sorted(passes, key=lambda p: p["fps"])[len(passes) // 2]
    throughput["fps_passes"] = [p["fps"] for p in passes]
    camera = _run_pass(settings, vision, matcher, threshold, spec, True, "camera")
    return {
        **throughput,
        "peak_rss_mb": one_run_peak,
        "threshold": threshold,
        "gallery_templates": matcher.template_count,
        "camera": {
            k: camera[k]
            for k in ("frames", "frames_skipped", "pace_fps", "frame_latency_ms", "event_latency_ms", "events")
        },
    }


def _run_pass(
    settings: Settings, vision: Vision, matcher: Matcher, threshold: float, spec: LoopSpec, paced: bool, name: str
) -> dict[str, Any]:
    """One pass over the clip (`paced`: at its frame rate, else as fast as it decodes).

    Each pass starts with its own empty outbox, `outbox-{name}.sqlite`, and with the previous
    pass's garbage collected: its capture thread and frame buffers sit in reference cycles, which
    would otherwise be freed whenever the collector next runs, during a later pass (12 MB a 1080p
    pass here; the device builds them once).
    """
    gc.collect()
    outbox = Outbox(Path(settings.device.state_dir) / f"outbox-{name}.sqlite")
    publisher = OutboxPublisher(outbox, Topics(settings.device.site, settings.device.device_id))
    counters = Counters(None, window_s=1e9)  # one window: the whole clip
    timer = StageTimer()
    writer = DiskWriter()
    loop = build_loop(
        settings, vision, matcher, threshold, counters, writer.defer(publisher.publish), spec.refine, timer
    )
    source = ClipSource(open_source(f"file:{spec.video}", decode_threads=settings.camera.decode_threads), paced)
    grabber = LatestFrameGrabber(source, live=False)
    started, cpu_started = time.perf_counter(), cpu_seconds()
    writer.start()
    grabber.start()
    try:
        frames = loop.run(grabber, threading.Event(), spec.max_frames)
    finally:
        grabber.stop()
        writer.stop()
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    outbox.close()
    stats = publisher.stats
    return {
        "frames": frames,
        "frames_skipped": source.skipped,
        "pace_fps": source.pace_fps,
        "wall_s": wall,
        "fps": frames / wall,
        "cpu_percent": 100.0 * cpu / wall,
        "faces_per_frame": counters.totals["detections"] / max(frames, 1),
        "counters": dict(counters.totals),
        "stages": {"decode": summarise(source.read_ms), **timer.summary()},
        "frame_latency_ms": {"p50": stats.latency_ms_p50, "p95": stats.latency_ms_p95} if stats else None,
        "event_latency_ms": summarise(publisher.event_latency_ms),
        "events": len(publisher.event_latency_ms),
    }
