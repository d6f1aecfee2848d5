"""What `edge bench` runs over: the real clips of `../shared/data` when present, else a clip it
makes, each with the people it shows who can be enrolled from other photos (so that matches,
and with them outbox writes, happen as they would in service)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.enrollment import Person

REPO = Path(__file__).resolve().parents[2]
# $EDGE_TEST_DATA when set (as for the tests and the demo), else ../shared/data beside the checkout
DATA_DIR = Path(os.environ.get("EDGE_TEST_DATA") or REPO.parent / "shared" / "data")
STREET = "videos/facenet_pytorch_street.mp4"  # 1920x1080, a street crowd, no identities
HAMILTON = "face_recognition/examples/short_hamilton_clip.mp4"  # 640x360, two people on stage
SLIDESHOW = "videos/lfw_slideshow.mp4"  # 640x640, 24 LFW photos of 12 people, 1 s each


@dataclass(frozen=True)
class Clip:
    path: Path
    people: tuple[Person, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.path.stem


def shared_clips(data_dir: Path = DATA_DIR) -> list[Clip]:
    """The three real clips that exist under `data_dir`, with their enrollable people."""
    clips = []
    if (data_dir / STREET).is_file():
        clips.append(Clip(data_dir / STREET))
    if (data_dir / HAMILTON).is_file():
        examples = (data_dir / HAMILTON).parent
        clips.append(
            Clip(
                data_dir / HAMILTON,
                (
                    Person("Lin-Manuel Miranda", (examples / "lin-manuel-miranda.png",)),
                    Person("Alex Lacamoire", (examples / "alex-lacamoire.png",)),
                ),
            )
        )
    if (data_dir / SLIDESHOW).is_file():
        clips.append(Clip(data_dir / SLIDESHOW, slideshow_people(data_dir)))
    return clips


def slideshow_people(data_dir: Path) -> tuple[Person, ...]:
    """Everyone the slideshow shows, from their photos in identities.csv that it does not show."""
    shown = list(csv.DictReader(open(data_dir / "videos" / "lfw_slideshow.csv", newline="")))
    shown_paths = {r["source_path"] for r in shown}
    rows = list(csv.DictReader(open(data_dir / "identities.csv", newline="")))
    people = []
    for identity in dict.fromkeys(r["identity"] for r in shown):
        photos = tuple(data_dir / r["path"] for r in rows if r["identity"] == identity and r["path"] not in shown_paths)
        if photos:
            people.append(Person(identity, photos))
    return tuple(people)


def sample_clip(folder: Path, frames_per_appearance: int = 60) -> Clip:
    """Grace Hopper's public-domain portrait (matplotlib's sample data) crossing a 640x480 frame
    twice, with a gap between; for machines without `../shared/data`. Needs matplotlib."""
    try:
        from matplotlib import cbook
    except ImportError:
        raise FileNotFoundError(
            "no clip to measure: pass --video PATH, or install matplotlib for the generated sample clip"
        ) from None
    portrait_path = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    portrait = cv2.imread(str(portrait_path))
    if portrait is None:
        raise FileNotFoundError(f"matplotlib's sample portrait {portrait_path} cannot be read")
    path = folder / "sample_clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25, (640, 480))
    for appearance in range(2):
        face = cv2.flip(portrait, 1) if appearance else portrait
        for t in range(frames_per_appearance):
            frame = np.full((480, 640, 3), 40 + 20 * appearance, np.uint8)
            small = cv2.resize(face, None, fx=0.45 + 0.002 * t, fy=0.45 + 0.002 * t, interpolation=cv2.INTER_AREA)
            x, y = 40 + 4 * t, 40
            h, w = small.shape[:2]
            frame[y : y + h, x : x + w] = small[: 480 - y, : 640 - x]
            writer.write(frame)
        for _ in range(frames_per_appearance // 4):
            writer.write(np.full((480, 640, 3), 40, np.uint8))
    writer.release()
    return Clip(path, (Person("Grace Hopper", (portrait_path,)),))
