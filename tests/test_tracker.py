"""Tracking: one person is one track; tracks age out; a scene cut is seen."""

from __future__ import annotations

import numpy as np

from edge.vision import Face
from edge.vision.scene import SceneCutDetector
from edge.vision.tracker import Track, Tracker


def face(x: float, y: float, size: float = 100.0) -> Face:
    return Face(np.array([x, y, x + size, y + size], np.float32), np.zeros((6, 2), np.float32), 0.9)


def plain(**kwargs) -> Tracker:
    """The tracker before prediction and the initialization delay: IoU on the last box."""
    return Tracker(init_frames=1, predict=False, max_shift=0.0, **kwargs)


def track_ids(tracker: Tracker, xs: list[float | None], y: float = 50, size: float = 100.0) -> list[int | None]:
    """Feed one face per frame at x (None: no detection); the confirmed track id each frame."""
    ids: list[int | None] = []
    for i, x in enumerate(xs):
        pairs, _ = tracker.update([] if x is None else [face(x, y, size)], i)
        ids.append(pairs[0][0].track_id if pairs else None)
    return ids


def test_a_moving_face_keeps_its_track():
    for tracker in (plain(min_iou=0.2, max_missed=2), Tracker(min_iou=0.2, max_missed=2)):
        ids = track_ids(tracker, [10 + 5 * i for i in range(20)])
        assert set(ids) - {None} == {1} and ids[-1] == 1


def test_two_faces_two_tracks_and_no_swap():
    tracker = Tracker(init_frames=1)
    for i in range(10):
        pairs, _ = tracker.update([face(400 - 3 * i, 50), face(10 + 3 * i, 50)], i)
        by_x = {int(f.box[0]): t.track_id for t, f in pairs}
        assert by_x[400 - 3 * i] == 1 and by_x[10 + 3 * i] == 2


def test_two_walkers_crossing_keep_their_tracks():
    """Prediction carries each through the frames where their boxes overlap each other."""
    tracker = Tracker()
    for i in range(12):
        left, right = 40 + 30 * i, 400 - 30 * i
        pairs, _ = tracker.update([face(left, 50), face(right, 60)], i)
        if i >= tracker.init_frames - 1:
            by_row = {int(f.box[1]): t.track_id for t, f in pairs}
            assert by_row == {50: 1, 60: 2}


def test_prediction_follows_a_fast_walker_at_low_fps_that_plain_iou_loses():
    # 60 px a frame with a 100 px box: IoU 0.25 between frames, but the detector misses every
    # third frame, and across a miss the face is 120 px on: no overlap with its last box.
    xs = [None if i % 3 == 2 else 10.0 + 60 * i for i in range(12)]
    assert len(set(track_ids(plain(), xs)) - {None}) > 1  # one walker, several tracks
    ids = track_ids(Tracker(init_frames=2, max_shift=0.0), xs)
    assert set(ids) - {None} == {1}  # the prediction alone keeps one track


def test_the_centre_gate_starts_a_fast_walker_that_overlap_cannot():
    # 85 px a frame with a 100 px box: IoU 0.08, so overlap alone never links two frames; the
    # centre is 0.85 box sizes from the prediction, within max_shift
    xs = [10.0 + 85 * i for i in range(6)]
    assert track_ids(Tracker(max_shift=0.0), xs) == [None] * 6  # never two hits in a row
    assert track_ids(Tracker(max_shift=1.0), xs) == [None, None, 1, 1, 1, 1]  # confirmed at the third


def test_a_one_frame_false_detection_makes_no_track():
    tracker = Tracker(init_frames=2)
    pairs, ended = tracker.update([face(200, 200)], 0)
    assert pairs == [] and ended == []
    for i in range(1, 12):
        pairs, ended = tracker.update([], i)
        assert pairs == [] and ended == []  # a tentative track is never reported as ended
    assert tracker.active == [] and tracker.reset() == []


def test_a_track_is_confirmed_after_init_frames_hits_and_numbered_then():
    tracker = Tracker(init_frames=3)
    tracker.update([face(500, 500)], 0)  # a stray detection elsewhere, never seen again
    assert track_ids(tracker, [None, 10, 12, 14, 16]) == [None, None, None, 1, 1]


def test_track_ends_after_max_missed_frames():
    tracker = Tracker(max_missed=3, init_frames=1)
    tracker.update([face(0, 0)], 0)
    ended_at = None
    for i in range(1, 10):
        _, ended = tracker.update([], i)
        if ended:
            ended_at = i
            break
    assert ended_at == 4 and tracker.active == []


def test_an_occlusion_shorter_than_max_missed_keeps_the_track():
    for tracker in (plain(max_missed=3), Tracker(max_missed=3)):
        xs = [0.0, 4, 8, None, None, None, 24, 28]  # walking slowly, hidden for three frames
        ids = track_ids(tracker, xs)
        assert set(ids) - {None} == {1} and ids[-1] == 1


def test_far_jump_starts_a_new_track():
    tracker = Tracker(max_missed=0, init_frames=1)
    tracker.update([face(0, 0)], 0)
    pairs, ended = tracker.update([face(500, 500)], 1)
    assert pairs[0][0].track_id == 2 and [t.track_id for t in ended] == [1]


def test_a_lost_walker_does_not_capture_the_next_person_where_it_started():
    # a fast walker (no overlap between frames) crosses and leaves; then a second person
    # appears where the first one came in
    xs: list[float | None] = [0.0, 85, 170, 255, None, 0.0, 0.0, 0.0]
    assert track_ids(plain(max_missed=8), xs)[-1] == 1  # plain IoU: the walker's first track takes them
    assert track_ids(Tracker(max_missed=8), xs)[-1] == 2


def test_reset_ends_everything():
    tracker = Tracker(init_frames=2)
    tracker.update([face(0, 0), face(300, 0)], 0)
    tracker.update([face(0, 0), face(300, 0)], 1)
    tracker.update([face(600, 0)], 2)  # tentative
    assert sorted(t.track_id for t in tracker.reset()) == [1, 2]
    assert tracker.active == []
    pairs, _ = tracker.update([face(600, 0)], 3)
    assert pairs == []  # the tentative track is gone too: this starts again


def test_a_track_holds_boxes_and_counters_only():
    """Nothing of a face beyond the frame: no image, no descriptor."""
    assert set(Track.__slots__) == {
        "box",
        "first_frame",
        "last_frame",
        "track_id",
        "missed",
        "hits",
        "confirmed",
        "motion",
    }
    tracker = Tracker(init_frames=1)
    tracker.update([face(0, 0)], 0)
    track = tracker.active[0]
    assert track.box.shape == (4,) and track.motion.shape == (2, 4)


def test_scene_cut_on_a_changed_picture_only():
    cuts = SceneCutDetector(threshold=25)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    b = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    a[:, :160] = 20
    b[:, 160:] = 20
    assert cuts.is_cut(a) is False  # the first frame is never a cut
    assert cuts.is_cut(a.copy()) is False
    shifted = np.roll(a, 3, axis=1)  # a small motion is not a cut
    assert cuts.is_cut(shifted) is False
    assert cuts.is_cut(b) is True


def test_real_clips_cut_where_the_picture_changes_and_nowhere_else(data_dir):
    """The slideshow changes photo every 25 frames; the street clip is one continuous shot. The
    thumbnails are averaged from sampled pixels (not every pixel), which must not move a cut."""
    import cv2

    for clip, expected in (
        ("videos/lfw_slideshow.mp4", list(range(25, 600, 25))),
        ("videos/facenet_pytorch_street.mp4", []),
    ):
        capture, cuts, found = cv2.VideoCapture(str(data_dir / clip)), SceneCutDetector(threshold=25), []
        index = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            if cuts.is_cut(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)):
                found.append(index)
            index += 1
        assert index > 100 and found == expected, (clip, found)
