#!/usr/bin/env python3
"""Scans per person and alerts per enrolled appearance: the tracker before and after, in one run.

    python scripts/bench_tracks.py                  # ../shared/data, 5, 10 and 25 fps
    python scripts/bench_tracks.py --fps 5 --conditions walk walk+occluded
    EDGE_TRACKER__INIT_FRAMES=2 python scripts/bench_tracks.py   # AFTER with other settings

A scan is the trial's denominator and must be one person passing (docs/pages/device.md,
"Counters"). The LFW slideshow shows 24 photos of 12 people for 1 s each (its .csv says who,
when); every photo is one appearance, so the ideal is one scan per appearance and one alert per
appearance of an enrolled person. The clip is replayed through the device's own parts
(`edge.device.parts`: the configured camera pipeline, tracker, scene-cut detector, gallery
matcher and loop), subsampled to each frame rate (the frames a slower camera never takes), as:

- still: the slideshow as it is (a scene cut between photos ends every track);
- walk: each photo shrunk to 0.4 of the frame and moved across it, left to right, during its
  second (a person passing; no scene cut between two people);
- walk+dropped: besides, a fifth of the frames lost at random (a loop falling behind);
- walk+jitter: the photo's place shifted at random every frame by up to `--jitter` face widths
  (a detector box that jumps; shifting the whole picture instead reads as a scene cut beyond
  about 16 px);
- walk+occluded: the face masked for `--occlusion-s` in the middle of each appearance.

Columns: split and unscanned count appearances with more than one scan and with none (one
photo shows a second, blurred face: walked, it can pass the gate, a second person rightly).

Each at 5, 10 and 25 fps, with the old tracker (BEFORE: plain IoU on the last box, a track from
the first detection) and the configured one (AFTER), over the same frames. All randomness is
seeded. The people enrolled are those of tests/test_device_e2e.py, from photos not in the video.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.bench.clips import DATA_DIR, SLIDESHOW, slideshow_people  # noqa: E402
from edge.bench.gallery import build_gallery  # noqa: E402
from edge.config import Settings, load_settings  # noqa: E402
from edge.device.counters import Counters  # noqa: E402
from edge.device.parts import Parts, assemble, build_loop, load_cohort, stills_vision  # noqa: E402
from edge.device.sources import Frame  # noqa: E402
from edge.link.payloads import MatchEvent, Payload  # noqa: E402
from edge.vision import Vision  # noqa: E402
from edge.vision.scene import SceneCutDetector  # noqa: E402

ENROLLED = ("marco_antonio_barrera", "angela_bassett", "li_peng", "george_w_bush", "queen_rania")
CONDITIONS = ("still", "walk", "walk+dropped", "walk+jitter", "walk+occluded")
WALK_SCALE = 0.4  # a walking photo's side, as a fraction of the frame's
BACKGROUND = 110  # grey level of the frame a photo walks across
BEFORE: dict[str, object] = {"init_frames": 1, "predict": False, "max_shift": 0.0}  # the tracker before issue 23
DROP_RATE = 0.2


@dataclass(frozen=True)
class Appearance:
    """One photo on screen: source frames [start, end) of the clip, its identity and face box."""

    start: int
    end: int
    identity: str
    box: np.ndarray  # x1, y1, x2, y2 of the face in the clip's pixels


@dataclass
class Outcome:
    """What one run counted, per appearance."""

    scans: np.ndarray  # scans started during each appearance
    right: np.ndarray  # alerts naming the identity on screen, per appearance
    wrong: int  # alerts naming someone else
    cuts: int  # scene cuts the loop saw


def appearances(data_dir: Path, video: cv2.VideoCapture, vision: Vision) -> list[Appearance]:
    """The slideshow's rows, each with its face box found by the camera pipeline on its first frame."""
    rows = list(csv.DictReader(open(data_dir / "videos" / "lfw_slideshow.csv", newline="")))
    found = []
    for row in rows:
        start = int(row["start_frame"])
        video.set(cv2.CAP_PROP_POS_FRAMES, start)
        ok, bgr = video.read()
        if not ok:
            raise SystemExit(f"the slideshow ends before frame {start}")
        faces = vision.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        box = max(faces, key=lambda f: f.box[2] - f.box[0]).box.copy() if faces else np.zeros(4, np.float32)
        found.append(Appearance(start, int(row["end_frame_exclusive"]), row["identity"], box))
    return found


class Degraded:
    """The slideshow as one condition at one frame rate: yields (source frame, camera index, RGB
    image); a camera index counts the frames the camera delivered, dropped ones included.

    `still` is the slideshow as it is. The `walk` conditions shrink each photo to `WALK_SCALE`
    of the frame and move it across a grey frame, left to right, during its second on screen:
    a person passing, whose face moves about 0.7 face widths between two frames at 5 fps."""

    def __init__(
        self, path: Path, shown: list[Appearance], condition: str, fps: float, jitter: float, occlusion_s: float
    ) -> None:
        self.path, self.shown, self.condition, self.fps = path, shown, condition, fps
        self.jitter, self.occlusion_s = jitter, occlusion_s
        widths = [a.box[2] - a.box[0] for a in shown if a.box[2] > a.box[0]]
        self.face_px = WALK_SCALE * float(np.median(widths)) if widths else 100.0

    def __iter__(self) -> Iterator[tuple[int, int, np.ndarray]]:
        video = cv2.VideoCapture(str(self.path))
        source_fps = video.get(cv2.CAP_PROP_FPS) or 25.0
        owner = appearance_of(self.shown)
        rng = np.random.default_rng(0)
        rgb = canvas = small = None
        index, source = -1, -1
        while True:
            ok, bgr = video.read()
            if not ok:
                break
            source += 1
            if source and int(source * self.fps / source_fps) == int((source - 1) * self.fps / source_fps):
                continue  # between two frames of the slower camera
            index += 1
            drop = rng.random() < DROP_RATE  # drawn for every condition, so all see the same sequence
            shift = rng.uniform(-1.0, 1.0, 2) * self.jitter * self.face_px
            if self.condition == "walk+dropped" and drop:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=rgb)
            a = self.shown[owner[source]] if 0 <= source < len(owner) and owner[source] >= 0 else None
            if self.condition == "still" or a is None:
                yield source, index, rgb
                continue
            h, w = rgb.shape[:2]
            side = int(round(WALK_SCALE * w))
            small = cv2.resize(rgb, (side, side), dst=small, interpolation=cv2.INTER_AREA)
            if canvas is None:
                canvas = np.empty_like(rgb)
            canvas[:] = BACKGROUND
            progress = (source - a.start) / max(a.end - a.start - 1, 1)
            x, y = progress * (w - side), (h - side) / 2
            if self.condition == "walk+jitter":
                x, y = float(np.clip(x + shift[0], 0, w - side)), float(np.clip(y + shift[1], 0, h - side))
            x0, y0 = int(round(x)), int(round(y))
            canvas[y0 : y0 + side, x0 : x0 + side] = small
            if self.condition == "walk+occluded":
                self._mask(source, source_fps, a, canvas, x0, y0)
            yield source, index, canvas

    def _mask(self, source: int, source_fps: float, a: Appearance, canvas: np.ndarray, x0: int, y0: int) -> None:
        """Grey over the face for `occlusion_s` from the middle of its appearance."""
        middle = (a.start + a.end) // 2
        if middle <= source < middle + self.occlusion_s * source_fps and a.box[2] > a.box[0]:
            x1, y1, x2, y2 = (int(round(v * WALK_SCALE)) for v in a.box)
            canvas[y0 + max(y1, 0) : y0 + y2, x0 + max(x1, 0) : x0 + x2] = BACKGROUND


def appearance_of(shown: list[Appearance]) -> np.ndarray:
    """For each source frame, the index of the appearance on screen (-1: none)."""
    owner = np.full(shown[-1].end, -1)
    for i, a in enumerate(shown):
        owner[a.start : a.end] = i
    return owner


def settings_with(base: Settings, tracker: dict[str, object]) -> Settings:
    return base.model_copy(update={"tracker": base.tracker.model_copy(update=tracker)})


class CountedCuts(SceneCutDetector):
    """The loop's scene-cut detector, counting the cuts it reports."""

    def __init__(self, threshold: float) -> None:
        super().__init__(threshold)
        self.cuts = 0

    def is_cut(self, frame: np.ndarray) -> bool:
        cut = super().is_cut(frame)
        self.cuts += cut
        return cut


def run_once(settings: Settings, parts: Parts, clip: Degraded) -> Outcome:
    """The loop over one degraded clip; scans and alerts attributed to the appearance on screen."""
    shown = clip.shown
    owner = appearance_of(shown)
    scans, right, wrong = np.zeros(len(shown), int), np.zeros(len(shown), int), 0
    on_screen = -1

    def publish(suffix: str, payload: Payload) -> None:
        nonlocal wrong
        if isinstance(payload, MatchEvent):
            if on_screen >= 0 and payload.identity_id == shown[on_screen].identity:
                right[on_screen] += 1
            else:
                wrong += 1

    counters = Counters(None, window_s=1e9)
    loop = build_loop(settings, parts.vision, parts.matcher, parts.point.threshold, counters, publish)
    loop.scene = cuts = CountedCuts(settings.tracker.scene_cut_threshold)
    for source, index, image in clip:
        on_screen = int(owner[source]) if source < len(owner) else -1
        before = counters.window.scans
        loop.process(Frame(image, index, time.monotonic(), time.time()))
        if counters.window.scans > before and on_screen >= 0:
            scans[on_screen] += counters.window.scans - before
    loop.finish()
    return Outcome(scans, right, wrong, cuts.cuts)


def row(condition: str, fps: float, label: str, shown: list[Appearance], o: Outcome) -> str:
    enrolled = np.array([a.identity in ENROLLED for a in shown])
    n = len(shown)
    return (
        f"| {condition} | {fps:g} | {label} | {n} ({len({a.identity for a in shown})}) | {o.scans.sum()} "
        f"| {o.scans.sum() / n:.2f} | {(o.scans > 1).sum()} | {(o.scans == 0).sum()} "
        f"| {o.right[enrolled].sum() / max(enrolled.sum(), 1):.2f} | {(o.right[enrolled] == 0).sum()} "
        f"| {o.wrong} | {o.cuts} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="the shared data folder")
    parser.add_argument("--fps", type=float, nargs="+", default=[5.0, 10.0, 25.0])
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--jitter", type=float, default=0.3, help="largest shift, in face widths (default 0.3)")
    parser.add_argument("--occlusion-s", type=float, default=0.2, help="how long each face is masked (default 0.2)")
    args = parser.parse_args()
    video_path = args.data / SLIDESHOW
    if not video_path.is_file():
        print(f"skipped: no slideshow at {video_path} (the shared data is absent)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-tracks-") as work:
        base = load_settings(None, None, match={"gallery": str(Path(work) / "g.sqlite")}, device={"state_dir": work})
        stills = stills_vision(base)
        people = [p for p in slideshow_people(args.data) if p.name in ENROLLED]
        cohort = load_cohort(base, stills.embedder.model_id)
        build_gallery(Path(work) / "g.sqlite", stills, people, 0, cohort)
        del stills
        parts = assemble(base)
        shown = appearances(args.data, cv2.VideoCapture(str(video_path)), parts.vision)
        after: dict[str, object] = {k: getattr(base.tracker, k) for k in BEFORE}
        print(
            f"BEFORE: {BEFORE}; AFTER (the configured defaults): {after}; max_missed_frames "
            f"{base.tracker.max_missed_frames}, min_iou {base.tracker.min_iou}; jitter {args.jitter} face widths, "
            f"occlusion {args.occlusion_s} s, {DROP_RATE:.0%} dropped; threshold {parts.point.threshold}\n"
        )
        head = (
            "condition",
            "fps",
            "tracker",
            "appearances (people)",
            "scans",
            "scans/appearance",
            "split",
            "unscanned",
            "alerts/enrolled appearance",
            "enrolled unalerted",
            "wrong alerts",
            "cuts",
        )
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for condition in args.conditions:
            for fps in args.fps:
                clip = Degraded(video_path, shown, condition, fps, args.jitter, args.occlusion_s)
                for label, tracker in (("before", BEFORE), ("after", after)):
                    outcome = run_once(settings_with(base, tracker), parts, clip)
                    print(row(condition, fps, label, shown, outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
