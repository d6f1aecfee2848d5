"""`edge enroll`: add a person's templates to a gallery from photos, each one gated."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from edge.commands.common import CommandError, print_json, settings_from
from edge.device.app import build_vision
from edge.gallery import GalleryNotFound, GalleryStore
from edge.vision import FaceCountError, ImageError, load_image


def identity_id_for(name: str) -> str:
    """A stable id from a display name: "Ada Lovelace" -> "ada_lovelace"."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise CommandError(f"cannot make an id from the name {name!r}: pass --id")
    return slug


def run(args: argparse.Namespace) -> int:
    settings, _, _ = settings_from(args, **{"models.models_dir": args.models})
    vision = build_vision(settings, settings.models.stills_detector)
    identity_id = args.id or identity_id_for(args.name)
    accepted, rejected = [], []
    for path in args.images:
        try:
            result = vision.describe_single(load_image(path), str(path))
        except (ImageError, FaceCountError) as e:
            rejected.append({"image": str(path), "reason": str(e)})
            continue
        if result.rejected is not None:
            rejected.append({"image": str(path), "reason": result.rejected})
            continue
        accepted.append((path, result))
    summary = {"gallery": str(args.gallery), "identity_id": identity_id, "name": args.name,
               "enrolled": [str(p) for p, _ in accepted], "rejected": rejected}
    if not accepted:
        summary["error"] = "no image passed; the gallery was not changed"
        print_json(summary)
        return 1
    embedder = vision.embedder
    try:
        store = GalleryStore.open(args.gallery, embedder.model_id, embedder.sha256)
    except GalleryNotFound:
        store = GalleryStore.create(args.gallery, embedder.model_id, embedder.sha256)
    with store:
        store.add(
            identity_id, args.name,
            np.stack([r.embedding for _, r in accepted]),
            [r.quality.rank() for _, r in accepted],
            [Path(p).name for p, _ in accepted],
        )
        summary["templates"] = next(i.templates for i in store.identities() if i.identity_id == identity_id)
        summary["gallery_version"] = store.version
    print_json(summary)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("enroll", help="enroll a person from photos (each gated for quality)")
    p.add_argument("--gallery", type=Path, required=True, help="gallery file (created if missing)")
    p.add_argument("--name", required=True, help="display name")
    p.add_argument("--id", help="identity id (default: made from the name)")
    p.add_argument("--models", type=Path, help="models folder (default: the bundled models/)")
    p.add_argument("images", type=Path, nargs="+", help="photos with exactly one face each")
    p.set_defaults(func=run)
