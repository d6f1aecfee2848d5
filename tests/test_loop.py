"""The loop's decisions: one event per track, embed only on a better chip, timing hooks.

The decision rules are checked with a scripted vision pipeline (exact qualities, no models);
the whole loop once more with the real models on the first four photos of the LFW slideshow.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import numpy as np
import pytest

from edge.bench.timer import StageTimer
from edge.device.counters import Counters
from edge.device.loop import Loop, LoopOptions
from edge.device.sources import Frame
from edge.gallery import Matcher
from edge.gallery.content import template_id
from edge.link.payloads import MatchEvent
from edge.vision import Face, Quality
from edge.vision.quality import QualityGate
from edge.vision.scene import SceneCutDetector
from edge.vision.tracker import Tracker

PERSON = np.full(128, 0.1, np.float32)
STRANGER = np.full(128, -0.1, np.float32)


class ScriptedVision:
    """One face per frame, always at the same place; frame i's chip has sharpness[i] (so its
    quality rank is 100 px * sqrt(sharpness)) and describes `descriptor`."""

    def __init__(self, sharpness: list[float], descriptor: np.ndarray) -> None:
        self.sharpness = sharpness
        self.embedder = SimpleNamespace(metric="euclidean", model_id="scripted")
        self.embedded_ranks: list[float] = []
        self._descriptor = descriptor
        self._quality: Quality | None = None
        self._frame = -1

    def detect(self, image: np.ndarray) -> list[Face]:
        self._frame += 1
        return [Face(np.array([100, 100, 200, 200], np.float32), np.zeros((6, 2), np.float32), 0.9)]

    def ceiling(self, face: Face) -> Quality | None:
        return Quality(100.0, 0.9, math.inf, 0.0, 0.0)

    def assess(self, image: np.ndarray, face: Face) -> tuple[Quality, str | None]:
        self._quality = Quality(100.0, 0.9, self.sharpness[self._frame], 0.0, 0.0)
        return self._quality, None

    def refine(self, image: np.ndarray, face: Face) -> Face:
        return face

    def embed(self) -> np.ndarray:
        self.embedded_ranks.append(self._quality.rank())
        return self._descriptor


def run(
    vision,
    frames: list[np.ndarray],
    matcher: Matcher,
    timer: StageTimer | None = None,
    threshold: float = 0.5,
    tracker: Tracker | None = None,
) -> tuple[list, Counters]:
    events: list = []
    counters = Counters(None, window_s=1e9)
    loop = Loop(
        vision,
        matcher,
        tracker or Tracker(),
        SceneCutDetector(25.0),
        counters,
        lambda suffix, payload: events.append(payload) or "id",
        LoopOptions("dev-0", "lab", threshold),
        timer=timer,
    )
    for i, image in enumerate(frames):
        loop.process(Frame(image, i, time.monotonic(), time.time()))
    loop.finish()
    return [e for e in events if isinstance(e, MatchEvent)], counters


def blank_frames(n: int) -> list[np.ndarray]:
    return [np.zeros((360, 640, 3), np.uint8) for _ in range(n)]


def test_a_track_is_embedded_only_when_its_chip_is_clearly_better():
    # ranks 1000, 1100, 1300, 1240, 2000, 3000: a chip must rank 1.25 times the best embedded
    vision = ScriptedVision([100, 121, 169, 154, 400, 900], STRANGER)
    events, counters = run(vision, blank_frames(6), Matcher(PERSON[None], ["p"], "v1"), tracker=Tracker(init_frames=1))
    assert vision.embedded_ranks == [1000, 1300, 2000]  # then embed_attempts (3) is reached
    assert events == [] and counters.window.scans == 1


def test_a_tentative_track_is_never_embedded_scanned_or_rejected():
    # the same chips with the default tracker: the first frame only starts a tentative track
    vision = ScriptedVision([100, 121, 169, 154, 400, 900], STRANGER)
    events, counters = run(vision, blank_frames(6), Matcher(PERSON[None], ["p"], "v1"))
    assert vision.embedded_ranks == [1300, 2000]  # from the confirming third frame on (sharpness counts up to 400)
    assert counters.window.scans == 1 and counters.window.quality_rejected == 0
    # black, white, black...: a cut every frame ends every track before a second hit confirms it
    flicker = [np.full((360, 640, 3), 255 * (i % 2), np.uint8) for i in range(6)]
    vision = ScriptedVision([100] * 6, PERSON)
    events, counters = run(vision, flicker, Matcher(PERSON[None], ["p"], "v1"))
    w = counters.window
    assert vision.embedded_ranks == [] and events == []
    assert (w.detections, w.scans, w.quality_rejected, w.matches) == (6, 0, 0, 0)


def test_one_event_per_track_at_the_first_match():
    vision = ScriptedVision([100, 200, 300, 400, 500, 600], PERSON)
    events, counters = run(vision, blank_frames(6), Matcher(PERSON[None], ["p"], "v1"))
    assert [e.identity_id for e in events] == ["p"] and events[0].track_id == 1
    assert events[0].template_id == template_id(PERSON.tobytes())  # the template that matched, by its id
    assert len(vision.embedded_ranks) == 1  # a decided track is never embedded again
    assert counters.window.matches == 1


def test_the_timer_sees_every_stage_and_nothing_when_absent():
    timer = StageTimer()
    vision = ScriptedVision([100, 200, 300, 400], PERSON)
    run(vision, blank_frames(4), Matcher(PERSON[None], ["p"], "v1"), timer)
    calls = {stage: len(v) for stage, v in timer.samples.items()}
    assert calls == {
        "wait": 4,
        "scene": 4,
        "detect": 4,
        "track": 4,
        "align": 1,
        "refine": 1,
        "embed": 1,
        "match": 1,
        "outbox": 1,
    }
    assert all(ms >= 0 for v in timer.samples.values() for ms in v)
    # three frames: the default tracker confirms a track at its third detection
    events, _ = run(ScriptedVision([100, 200, 300], PERSON), blank_frames(3), Matcher(PERSON[None], ["p"], "v1"), None)
    assert len(events) == 1  # and no timer to call


@pytest.fixture(scope="module")
def slideshow(data_dir):
    """The first four photos of the slideshow (Marco Antonio Barrera twice, Patti Labelle twice)."""
    import cv2

    capture = cv2.VideoCapture(str(data_dir / "videos" / "lfw_slideshow.mp4"))
    frames = []
    while len(frames) < 100:
        ok, bgr = capture.read()
        assert ok
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return frames


@pytest.fixture(scope="module")
def marco(data_dir, manifest) -> Matcher:
    """Marco Antonio Barrera enrolled from his photos that the slideshow does not show."""
    from edge.bench.clips import slideshow_people
    from edge.vision import Vision, load_image

    person = next(p for p in slideshow_people(data_dir) if p.name == "marco_antonio_barrera")
    stills = Vision(manifest, "blazeface_short_range")
    templates = np.stack([stills.describe_single(load_image(p), str(p), gated=False).embedding for p in person.photos])
    return Matcher(templates, ["marco"] * len(templates), "v1")


def test_real_models_one_event_per_appearance_of_the_enrolled_person(manifest, slideshow, marco):
    from edge.vision import Vision

    vision = Vision(manifest, "blazeface_full_range", threads=2)
    timer = StageTimer()
    events, counters = run(vision, slideshow, marco, timer)
    w = counters.window
    assert w.frames == 100 and w.detections == 100  # one face in every frame
    assert [e.identity_id for e in events] == ["marco", "marco"]  # his two photos, not Patti's
    assert len({e.track_id for e in events}) == 2
    assert len(timer.samples["embed"]) <= 3 * 4  # at most embed_attempts per photo's track
    assert len(timer.samples["outbox"]) == 2


def test_faces_ruled_out_before_alignment_change_nothing_but_the_work(manifest, slideshow, marco):
    """The loop skips aligning a face whose box and keypoints alone fail the gate or cannot beat
    its track's best chip; the same loop aligning every face embeds the same chips and decides
    the same, with more alignments."""
    from edge.vision import Vision

    class AlignsEveryFace(Vision):
        def ceiling(self, face: Face) -> Quality | None:
            return Quality(math.inf, 1.0, math.inf, 0.0, 0.0)  # the highest rank there is

    # Marco's first photo (yaw 0.125) and Patti Labelle's second (-0.085) are turned beyond this gate's limit
    gate = QualityGate(max_abs_yaw=0.08)
    outcomes = []
    for cls in (Vision, AlignsEveryFace):
        vision = cls(manifest, "blazeface_full_range", gate=gate)
        timer = StageTimer()
        events, counters = run(vision, slideshow, marco, timer)
        w = counters.window
        decisions = [(e.track_id, e.identity_id, e.score) for e in events]
        outcomes.append((decisions, (w.scans, w.quality_rejected, w.matches), len(timer.samples["embed"])))
        outcomes.append(len(timer.samples["align"]))
    checked, aligned_checked, everything, aligned_everything = outcomes
    assert checked == everything and len(checked[0]) == 1  # Marco's second photo
    assert aligned_checked < aligned_everything


class PreemptedLoop(Loop):
    """A loop whose thread is preempted right after its `nth` read of the hand-over slot while
    another thread swaps in `late`: every spot where a swap could land, tried one at a time."""

    def __init__(self, *args, nth: int, late: Matcher, **kwargs) -> None:
        self._reads, self._nth, self._late = 0, nth, late
        super().__init__(*args, **kwargs)

    @property
    def _pending_matcher(self) -> Matcher | None:
        value = self._slot
        self._reads += 1
        if self._reads == self._nth:
            self.swap_matcher(self._late)
        return value

    @_pending_matcher.setter
    def _pending_matcher(self, value: Matcher | None) -> None:
        self._slot = value


@pytest.mark.parametrize("nth", [1, 2, 3, 4])
def test_a_swap_arriving_while_the_loop_takes_the_previous_one_is_not_lost(nth):
    events: list = []
    loop = PreemptedLoop(
        ScriptedVision([100] * 6, PERSON),
        Matcher(STRANGER[None], ["q"], "v0"),
        Tracker(init_frames=1),  # a track from the first detection: one per frame here
        SceneCutDetector(25.0),
        Counters(None, window_s=1e9),
        lambda suffix, payload: events.append(payload) or "id",
        LoopOptions("dev-0", "lab", 0.5),
        nth=nth,
        late=Matcher(PERSON[None], ["p"], "v2"),  # a person enrolled just then
    )
    loop.swap_matcher(Matcher(STRANGER[None], ["q"], "v1"))
    for i in range(6):  # black, white, black...: a cut every frame, so each frame is a new track
        loop.process(Frame(np.full((360, 640, 3), 255 * (i % 2), np.uint8), i, time.monotonic(), time.time()))
    matches = [(e.identity_id, e.gallery_version) for e in events if isinstance(e, MatchEvent)]
    assert matches and set(matches) == {("p", "v2")}, "the later swap was lost"
    assert events[-1].gallery_version == "v2"
