"""Face tracks across frames: one person passing the camera is one track.

Association is greedy by box overlap (IoU), best pairs first: at a few faces per frame this
is as good as an optimal assignment and much simpler. A track survives `max_missed` frames
without a detection (a blink, a missed frame) and then ends. `reset()` ends every track at
once, for a scene cut or a camera reconnect, where overlap says nothing about identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.vision.nms import iou
from edge.vision.types import Face


@dataclass(slots=True, eq=False)
class Track:
    """A face followed over frames. `box` is the latest matched box (frame pixels)."""

    track_id: int
    box: np.ndarray
    first_frame: int
    last_frame: int
    missed: int = 0


class Tracker:
    def __init__(self, min_iou: float = 0.2, max_missed: int = 8) -> None:
        self.min_iou = min_iou
        self.max_missed = max_missed
        self._tracks: list[Track] = []
        self._next_id = 1

    @property
    def active(self) -> list[Track]:
        return list(self._tracks)

    def update(self, faces: list[Face], frame_index: int) -> tuple[list[tuple[Track, Face]], list[Track]]:
        """Assign this frame's faces to tracks.

        Returns (pairs of track and its face in this frame, new tracks included; tracks that
        ended because they were missed for more than `max_missed` frames).
        """
        pairs: list[tuple[Track, Face]] = []
        unmatched_faces = list(range(len(faces)))
        unmatched_tracks = list(range(len(self._tracks)))
        if faces and self._tracks:
            boxes = np.stack([f.box for f in faces])
            overlap = np.stack([iou(t.box, boxes) for t in self._tracks])  # (tracks, faces)
            for flat in np.argsort(-overlap, axis=None):
                ti, fi = divmod(int(flat), len(faces))
                if overlap[ti, fi] < self.min_iou:
                    break
                if ti in unmatched_tracks and fi in unmatched_faces:
                    unmatched_tracks.remove(ti)
                    unmatched_faces.remove(fi)
                    pairs.append((self._tracks[ti], faces[fi]))
        for track, face in pairs:
            track.box, track.last_frame, track.missed = face.box, frame_index, 0
        ended = []
        for ti in unmatched_tracks:
            track = self._tracks[ti]
            track.missed += 1
            if track.missed > self.max_missed:
                ended.append(track)
        for fi in unmatched_faces:
            track = Track(self._next_id, faces[fi].box, frame_index, frame_index)
            self._next_id += 1
            self._tracks.append(track)
            pairs.append((track, faces[fi]))
        if ended:
            self._tracks = [t for t in self._tracks if t not in ended]
        return pairs, ended

    def reset(self) -> list[Track]:
        """End every track now; returns them."""
        ended, self._tracks = self._tracks, []
        return ended
