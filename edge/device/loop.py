"""The inference loop: newest frame -> faces -> tracks -> at most one decision per track.

Per frame: a scene cut ends every track; faces are detected and assigned to tracks; a track
still undecided gets its face aligned and measured (unless its box and keypoints alone rule it
out: too small, turned, or unable to beat the track's best chip), and when the face passes the quality
gate and is better than any chip of that track embedded so far (by `Quality.rank`), it is
embedded, up to `embed_attempts` times. The first descriptor within the threshold of an
enrolled identity raises the track's one match event (open set: a face not close enough to
anyone is unknown, never the nearest name). Descriptors are compared and dropped at once;
nothing of a face outlives the frame except the track's box and counters.

Before a face is embedded, a face that was small in the detector's input is found again on a
crop around it, where it is large (`LoopOptions.refine`): a face a few pixels across in the
input gets imprecise keypoints, and alignment matters more to the descriptor than anything
after it (see `Detector.refine`).

The loop publishes through a `publish(topic_suffix, payload)` callable that returns at once:
on the device, the MQTT link's publish queued on the `DiskWriter`, which commits the message to
the durable outbox on its own thread. No network call and no disk write happen here.

`edge bench` passes a `StageTimer`; without one the loop makes no timing call at all.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from edge.device.camera import Camera
from edge.device.counters import Counters
from edge.device.sources import Frame, LatestFrameGrabber
from edge.device.timing import StageTimer
from edge.device.watchdog import Notifier
from edge.gallery import Match, Matcher
from edge.link.payloads import MatchEvent, Payload, StatsPayload
from edge.vision import Vision
from edge.vision.scene import SceneCutDetector
from edge.vision.tracker import Track, Tracker

log = logging.getLogger(__name__)

Publish = Callable[[str, Payload], object]  # what it returns is not used


@dataclass(slots=True)
class TrackState:
    """What the loop remembers of one track: no image, no descriptor."""

    embeds: int = 0
    best_rank: float = -1.0
    scanned: bool = False
    decided: bool = False


@dataclass(frozen=True)
class LoopOptions:
    device_id: str
    site: str
    threshold: float
    embed_attempts: int = 3
    improve_ratio: float = 1.25  # a new chip must rank this much better to be embedded again
    refine: bool = True  # find a face again on a crop around it before embedding it


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


class Loop:
    def __init__(
        self,
        vision: Vision,
        matcher: Matcher,
        tracker: Tracker,
        scene: SceneCutDetector,
        counters: Counters,
        publish: Publish,
        options: LoopOptions,
        timer: StageTimer | None = None,
    ) -> None:
        self.vision = vision
        self.matcher = matcher
        self.tracker = tracker
        self.scene = scene
        self.counters = counters
        self.publish = publish
        self.options = options
        self.timer = timer
        self._states: dict[int, TrackState] = {}
        # The matcher asked for last, read once per frame and never reset: a swap from another
        # thread is one reference store, so none can be lost between a read and a reset.
        self._pending_matcher: Matcher = matcher
        self._dropped_seen = 0
        self._changes: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self.last_frame_at = time.monotonic()  # when the last frame was processed (a health sign)

    def swap_matcher(self, matcher: Matcher) -> None:
        """Use `matcher` from the next frame on (safe from any thread; the latest swap wins)."""
        self._pending_matcher = matcher

    def between_frames(self, change: Callable[[], object]) -> None:
        """Run `change` on the loop's thread before its next frame (safe from any thread): a
        remote configuration replaces options, tracker, gate or camera there, never mid-frame."""
        self._changes.put(change)

    def _run_changes(self) -> None:
        while True:
            try:
                change = self._changes.get_nowait()
            except queue.Empty:
                return
            change()

    def process(self, frame: Frame) -> None:
        """Everything the loop does with one frame."""
        timer, image = self.timer, frame.image
        if timer is not None:
            timer.begin(frame)
        self.matcher = self._pending_matcher
        self.counters.add("frames")
        if self.scene.is_cut(image):
            self._end(self.tracker.reset())
        if timer is not None:
            timer.lap("scene")
        faces = self.vision.detect(image)
        self.counters.add("detections", len(faces))
        if timer is not None:
            timer.lap("detect")
        pairs, ended = self.tracker.update(faces, frame.index)
        self._end(ended)
        if timer is not None:
            timer.lap("track")
        for track, face in pairs:
            state = self._states.setdefault(track.track_id, TrackState())
            if state.decided or state.embeds >= self.options.embed_attempts:
                continue
            ceiling = self.vision.ceiling(face)  # no alignment for a face that could not be embedded
            if ceiling is None or ceiling.rank() < state.best_rank * self.options.improve_ratio:
                continue
            quality, rejected = self.vision.assess(image, face)
            if timer is not None:
                timer.lap("align")
            if rejected is not None or quality.rank() < state.best_rank * self.options.improve_ratio:
                continue
            if self.options.refine:
                self.vision.refine(image, face)
                if timer is not None:
                    timer.lap("refine")
            descriptor = self.vision.embed()
            if timer is not None:
                timer.lap("embed")
            state.embeds += 1
            state.best_rank = quality.rank()
            if not state.scanned:
                state.scanned = True
                self.counters.add("scans")
            match = self.matcher.match(descriptor, self.options.threshold)
            if timer is not None:
                timer.lap("match")
            if match is not None:
                state.decided = True
                self.counters.add("matches")
                self._raise_event(track, match, frame)
                if timer is not None:
                    timer.lap("outbox")
        self.counters.latency((time.monotonic() - frame.captured_at) * 1000.0)

    def _raise_event(self, track: Track, match: Match, frame: Frame) -> None:
        # Rounded up so that the rounded score never exceeds it (the decision was distance/scale <= knob).
        template_threshold = math.ceil(max(match.threshold, match.distance) * 1e4) / 1e4
        event = MatchEvent(
            ts=utc(frame.wall_time),
            device_id=self.options.device_id,
            site=self.options.site,
            track_id=track.track_id,
            identity_id=match.identity_id,
            score=round(float(match.distance), 4),
            threshold=self.options.threshold,
            template_threshold=template_threshold,
            template_id=match.template_id or None,
            metric=self.vision.embedder.metric,
            model_id=self.vision.embedder.model_id,
            gallery_version=self.matcher.version,
            window_id=self.counters.window.window_id,
        )
        self.publish("match", event)
        log.info(
            "match: track %d -> %s (distance %.3f <= %.3f, this template's threshold)",
            track.track_id,
            match.identity_id,
            match.distance,
            template_threshold,
        )

    def _end(self, tracks: list[Track]) -> None:
        for track in tracks:
            state = self._states.pop(track.track_id, None)
            if state is None or not state.scanned:
                self.counters.add("quality_rejected")

    def finish(self) -> None:
        """End every open track (the source ended or the loop stops)."""
        self._end(self.tracker.reset())

    def close_window(self) -> StatsPayload:
        """Publish the counters of the window that just ended and log its one-line summary."""
        w = self.counters.close_window()
        stats = StatsPayload(
            device_id=self.options.device_id,
            site=self.options.site,
            **{**w, "window_start": utc(w["window_start"]), "window_end": utc(w["window_end"])},
        )
        self.publish("stats", stats)
        log.info(
            "window %s: %d frames (%.1f fps), %d dropped, %d detections, %d scans, "
            "%d quality-rejected, %d matches, latency p50 %.1f ms p95 %.1f ms",
            stats.window_id,
            stats.frames,
            stats.fps,
            stats.frames_dropped,
            stats.detections,
            stats.scans,
            stats.quality_rejected,
            stats.matches,
            stats.latency_ms_p50 or 0.0,
            stats.latency_ms_p95 or 0.0,
        )
        return stats

    def run(
        self,
        grabber: LatestFrameGrabber | Camera,
        stop: threading.Event,
        max_frames: int | None = None,
        notifier: Notifier | None = None,
    ) -> int:
        """Process frames until `stop` is set, the source ends or `max_frames`; returns frames done.
        `notifier` hears of every frame and every wait without one (systemd's watchdog)."""
        notifier = notifier or Notifier(None, None)  # not under systemd: no-op
        done = 0
        while not stop.is_set() and (max_frames is None or done < max_frames):
            self._run_changes()
            frame = grabber.latest(timeout=1.0)
            self._count_drops(grabber)
            if frame is None:
                if grabber.ended:
                    break
                notifier.no_frame()
            else:
                self.process(frame)
                notifier.frame()
                self.last_frame_at = time.monotonic()
                done += 1
            if self.counters.due():
                self.close_window()
        self.finish()
        self._count_drops(grabber)
        self.close_window()
        return done

    def _count_drops(self, grabber: LatestFrameGrabber | Camera) -> None:
        dropped = grabber.frames_dropped
        if dropped != self._dropped_seen:
            self.counters.add("frames_dropped", dropped - self._dropped_seen)
            self._dropped_seen = dropped
