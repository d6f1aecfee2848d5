"""Tracking: one person is one track; tracks age out; a scene cut is seen."""

from __future__ import annotations

import numpy as np

from edge.vision import Face
from edge.vision.scene import SceneCutDetector
from edge.vision.tracker import Tracker


def face(x: float, y: float, size: float = 100.0) -> Face:
    return Face(np.array([x, y, x + size, y + size], np.float32), np.zeros((6, 2), np.float32), 0.9)


def test_a_moving_face_keeps_its_track():
    tracker = Tracker(min_iou=0.2, max_missed=2)
    ids = set()
    for i in range(20):
        pairs, ended = tracker.update([face(10 + 5 * i, 50)], i)
        assert not ended
        ids.add(pairs[0][0].track_id)
    assert ids == {1}


def test_two_faces_two_tracks_and_no_swap():
    tracker = Tracker()
    for i in range(10):
        pairs, _ = tracker.update([face(400 - 3 * i, 50), face(10 + 3 * i, 50)], i)
        by_x = {int(f.box[0]): t.track_id for t, f in pairs}
        assert by_x[400 - 3 * i] == 1 and by_x[10 + 3 * i] == 2


def test_track_ends_after_max_missed_frames():
    tracker = Tracker(max_missed=3)
    tracker.update([face(0, 0)], 0)
    ended_at = None
    for i in range(1, 10):
        _, ended = tracker.update([], i)
        if ended:
            ended_at = i
            break
    assert ended_at == 4 and tracker.active == []


def test_a_short_gap_does_not_split_a_track():
    tracker = Tracker(max_missed=3)
    tracker.update([face(0, 0)], 0)
    tracker.update([], 1)
    tracker.update([], 2)
    pairs, _ = tracker.update([face(4, 0)], 3)
    assert pairs[0][0].track_id == 1


def test_far_jump_starts_a_new_track():
    tracker = Tracker(max_missed=0)
    tracker.update([face(0, 0)], 0)
    pairs, ended = tracker.update([face(500, 500)], 1)
    assert pairs[0][0].track_id == 2 and [t.track_id for t in ended] == [1]


def test_reset_ends_everything():
    tracker = Tracker()
    tracker.update([face(0, 0), face(300, 0)], 0)
    assert sorted(t.track_id for t in tracker.reset()) == [1, 2]
    assert tracker.active == []


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
