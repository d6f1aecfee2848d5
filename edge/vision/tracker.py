"""Face tracks across frames: one person passing the camera is one track.

Each track carries a constant-velocity estimate of its box (centre and size, an alpha-beta
filter: the detector's boxes are precise, so the filter mostly trusts them and only learns the
motion), and a frame's faces are matched to where each track is *predicted* to be, not to where
it was last seen. At a low frame rate a person walking moves more than a box width between two
frames and plain overlap loses them; the prediction does not. Optionally a face whose centre is
within `max_shift` box sizes of a prediction continues the track even without overlap (a
camera that shakes, a detector box that jumps).

Association is greedy, best pairs first: at a few faces per frame this is as good as an
optimal assignment and much simpler. A new face starts a *tentative* track, confirmed only
after `init_frames` consecutive hits (ByteTrack's and norfair's initialization delay): one
stray detection, a poster glimpsed for a frame, never becomes a track, so never a scan. A
tentative track is dropped at its first miss and is never reported, neither in `update`'s
pairs nor as ended. A confirmed track survives `max_missed` frames without a detection (a
blink, an occlusion, a dropped frame) and then ends. `reset()` ends every track at once, for a
scene cut or a camera reconnect, where position says nothing about identity.

The defaults (3 hits, a 1.5 box-size gate, prediction on) are the best of those measured with
`scripts/bench_tracks.py`; `init_frames=1, predict=False, max_shift=0` is the tracker before
them. Without a descriptor, two faces side by side that move most of a face width a frame can
swap tracks, and a lost track continues with a new face where it is predicted to be.

A track holds boxes and counters only: no image, no descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.vision.types import Face

# Alpha-beta gains: how far the estimate moves toward a measured box, and how much of the
# surprise becomes velocity. Detector boxes jitter by a few pixels; these keep the estimate
# within that while a walker's speed is learnt from two frames (see `Track.correct`).
ALPHA = 0.85
BETA = 0.35


def _cxcywh(box: np.ndarray, out: np.ndarray) -> np.ndarray:
    """x1, y1, x2, y2 -> centre x, centre y, width, height, written into `out`."""
    out[0] = (box[0] + box[2]) * 0.5
    out[1] = (box[1] + box[3]) * 0.5
    out[2] = box[2] - box[0]
    out[3] = box[3] - box[1]
    return out


@dataclass(slots=True, eq=False)
class Track:
    """A face followed over frames.

    `box` is the latest matched detection (frame pixels, x1, y1, x2, y2); `motion` is the
    filtered (centre x, centre y, width, height) in row 0 and its change per frame in row 1.
    `hits` counts matched frames (consecutive ones until confirmation); `track_id` is 0 while
    tentative and numbered at confirmation, so confirmed tracks are numbered 1, 2, 3...
    """

    box: np.ndarray
    first_frame: int
    last_frame: int
    track_id: int = 0
    missed: int = 0
    hits: int = 1
    confirmed: bool = False
    motion: np.ndarray = field(default_factory=lambda: np.zeros((2, 4), np.float32))

    def predict(self, frame_index: int, out: np.ndarray, velocity: bool) -> np.ndarray:
        """The box expected at `frame_index`, x1, y1, x2, y2, written into `out` (4,)."""
        if not velocity:  # plain IoU tracking: where the face was last seen
            out[:] = self.box
            return out
        cx, cy, w, h = self.motion[0]
        dt = frame_index - self.last_frame
        if dt > 0:
            v = self.motion[1]
            cx, cy = cx + v[0] * dt, cy + v[1] * dt
            w, h = max(w + v[2] * dt, 1.0), max(h + v[3] * dt, 1.0)
        out[0], out[1], out[2], out[3] = cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5
        return out

    def correct(self, box: np.ndarray, frame_index: int, scratch: np.ndarray) -> None:
        """Take the matched detection `box` at `frame_index` into the estimate. The second hit
        sets the velocity from the two boxes outright (a filter starting from rest would need
        several frames to learn a walker's speed, which at 5 fps is most of the walk)."""
        dt = max(frame_index - self.last_frame, 1)
        measured = _cxcywh(box, scratch)
        state, velocity = self.motion
        if self.hits == 1:
            velocity[:] = (measured - state) / dt
            state[:] = measured
        else:
            residual = measured - (state + velocity * dt)
            state += velocity * dt + ALPHA * residual
            velocity += (BETA / dt) * residual
        self.box, self.last_frame, self.missed = box, frame_index, 0
        self.hits += 1


class Tracker:
    """Greedy association of faces to predicted track boxes, with an initialization delay.

    `min_iou`: overlap with a predicted box that continues a track. `max_missed`: frames a
    confirmed track survives unseen. `init_frames`: consecutive hits that confirm a track (1: the
    first detection is a track at once). `predict`: use each track's velocity (False: match
    against the last box, plain IoU tracking). `max_shift`: a face whose centre is within this
    many box sizes of a prediction continues the track without overlap (0: overlap only).
    """

    def __init__(
        self,
        min_iou: float = 0.2,
        max_missed: int = 8,
        init_frames: int = 3,
        predict: bool = True,
        max_shift: float = 1.5,
    ) -> None:
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.init_frames = init_frames
        self.predict = predict
        self.max_shift = max_shift
        self._tracks: list[Track] = []  # confirmed and tentative, in creation order
        self._next_id = 1
        self._capacity = 0
        self._predicted = np.zeros((0, 4), np.float32)
        self._detected = np.zeros((0, 4), np.float32)
        self._scratch = np.zeros(4, np.float32)
        self._grow(8)

    def _grow(self, needed: int) -> None:
        """Box buffers for `needed` tracks and faces, reused frame after frame."""
        if needed <= self._capacity:
            return
        self._capacity = max(needed, 2 * self._capacity)
        self._predicted = np.zeros((self._capacity, 4), np.float32)
        self._detected = np.zeros((self._capacity, 4), np.float32)

    @property
    def active(self) -> list[Track]:
        """The confirmed tracks now open."""
        return [t for t in self._tracks if t.confirmed]

    def update(self, faces: list[Face], frame_index: int) -> tuple[list[tuple[Track, Face]], list[Track]]:
        """Assign this frame's faces to tracks.

        Returns (pairs of a confirmed track and its face in this frame, tracks confirmed by this
        frame included; confirmed tracks that ended because they were missed for more than
        `max_missed` frames). Tentative tracks appear in neither.
        """
        matched = self._associate(faces, frame_index)
        pairs: list[tuple[Track, Face]] = []
        ended: list[Track] = []
        dropped = False  # some track ends or a tentative one is dropped this frame
        for ti, track in enumerate(self._tracks):
            fi = matched[ti]
            if fi >= 0:
                track.correct(faces[fi].box, frame_index, self._scratch)
                if not track.confirmed and track.hits >= self.init_frames:
                    self._confirm(track)
                if track.confirmed:
                    pairs.append((track, faces[fi]))
                continue
            track.missed += 1
            if not track.confirmed or track.missed > self.max_missed:
                dropped = True
                if track.confirmed:
                    ended.append(track)
        taken = set(int(fi) for fi in matched if fi >= 0)
        for fi, f in enumerate(faces):
            if fi in taken:
                continue
            track = Track(f.box, frame_index, frame_index)
            _cxcywh(f.box, track.motion[0])
            self._tracks.append(track)
            if self.init_frames <= 1:
                self._confirm(track)
                pairs.append((track, f))
        if dropped:  # kept: matched or new this frame, or confirmed and not yet ended
            self._tracks = [
                t for t in self._tracks if t.last_frame == frame_index or (t.confirmed and t.missed <= self.max_missed)
            ]
        return pairs, ended

    def _confirm(self, track: Track) -> None:
        track.confirmed, track.track_id = True, self._next_id
        self._next_id += 1

    def _associate(self, faces: list[Face], frame_index: int) -> list[int]:
        """For each track (in order), the index of its face in `faces`, or -1."""
        n_tracks, n_faces = len(self._tracks), len(faces)
        matched = [-1] * n_tracks
        if not n_tracks or not n_faces:
            return matched
        self._grow(max(n_tracks, n_faces))
        predicted, detected = self._predicted[:n_tracks], self._detected[:n_faces]
        for ti, track in enumerate(self._tracks):
            track.predict(frame_index, predicted[ti], self.predict)
        for fi, f in enumerate(faces):
            detected[fi] = f.box
        affinity = self._affinity(predicted, detected)
        face_free = [True] * n_faces
        for flat in np.argsort(-affinity, axis=None, kind="stable"):
            ti, fi = divmod(int(flat), n_faces)
            if affinity[ti, fi] <= 0.0:
                break
            if matched[ti] < 0 and face_free[fi]:
                matched[ti], face_free[fi] = fi, False
        return matched

    def _affinity(self, predicted: np.ndarray, detected: np.ndarray) -> np.ndarray:
        """(tracks, faces): the IoU where it reaches `min_iou`; else, within `max_shift`, a
        value below `min_iou` that falls with the centre distance (so overlap wins ties); else 0."""
        p, d = predicted[:, None, :], detected[None, :, :]
        inter_w = np.clip(np.minimum(p[..., 2], d[..., 2]) - np.maximum(p[..., 0], d[..., 0]), 0, None)
        inter_h = np.clip(np.minimum(p[..., 3], d[..., 3]) - np.maximum(p[..., 1], d[..., 1]), 0, None)
        inter = inter_w * inter_h
        area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
        area_d = (d[..., 2] - d[..., 0]) * (d[..., 3] - d[..., 1])
        overlap = inter / np.maximum(area_p + area_d - inter, 1e-6)
        affinity = np.where(overlap >= self.min_iou, overlap, 0.0)
        if self.max_shift > 0:
            sides = p[..., 2] - p[..., 0] + p[..., 3] - p[..., 1] + d[..., 2] - d[..., 0] + d[..., 3] - d[..., 1]
            size = 0.25 * sides  # the mean side of the two boxes
            dx = (p[..., 0] + p[..., 2] - d[..., 0] - d[..., 2]) * 0.5
            dy = (p[..., 1] + p[..., 3] - d[..., 1] - d[..., 3]) * 0.5
            shift = np.hypot(dx, dy) / np.maximum(size, 1.0)
            near = np.clip(1.0 - shift / self.max_shift, 0.0, None) * self.min_iou * 0.999
            affinity = np.where(affinity > 0, affinity, near)
        return affinity

    def reset(self) -> list[Track]:
        """End every track now; returns the confirmed ones (tentative tracks just vanish)."""
        ended = self.active
        self._tracks = []
        return ended
