"""`edge enroll`: add people's templates to a gallery from photos, each one gated.

One person: `edge enroll --gallery G --name "Ada Lovelace" ada1.jpg ada2.jpg`.
Many: `edge enroll --gallery G --folder people/`, one subfolder per person, named by it
(`people/Ada Lovelace/*.jpg`). A progress bar on stderr counts the photos when it is a terminal;
the JSON summary on stdout says, per person, which photos went in and why the others did not.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.commands.common import CommandError, print_json, settings_from
from edge.device.gallery_watch import running_device_note
from edge.device.parts import open_gallery, stills_vision
from edge.enrollment import Outcome, Person, add_to_gallery, describe_people, people_in_folder
from edge.progress import progress
from edge.vision import Vision


def run(args: argparse.Namespace) -> int:
    if args.folder is not None and (args.name or args.id or args.images):
        raise CommandError("--folder takes no --name, --id or photos: the subfolders name the people")
    if args.folder is None and not (args.name and args.images):
        raise CommandError("give --name and photos of that person, or --folder")
    settings, _, _ = settings_from(args, **{"models.models_dir": args.models})
    if args.folder is not None:
        people = people_in_folder(args.folder)
    else:
        people = [Person(args.name, tuple(args.images), args.id)]
    vision = stills_vision(settings)
    outcomes = _describe_with_progress(vision, people)
    enrolled = [o for o in outcomes if o.accepted]
    summary: dict[str, Any] = {"gallery": str(args.gallery)}
    if enrolled:
        with open_gallery(settings, args.gallery, create=True) as store:
            add_to_gallery(store, enrolled)
            templates = {i.identity_id: i.templates for i in store.identities()}
            summary["gallery_version"] = store.version
            summary["running_device"] = running_device_note(settings.match, store.version)
    else:
        templates = {}
        summary["error"] = "no image passed; the gallery was not changed"
    people_summaries = [_person_summary(o, templates) for o in outcomes]
    if args.folder is None:
        summary.update(people_summaries[0])
    else:
        summary.update(
            folder=str(args.folder),
            people_enrolled=len(enrolled),
            photos=sum(len(p.photos) for p in people),
            photos_rejected=sum(len(o.rejected) for o in outcomes),
            people=people_summaries,
        )
    print_json(summary)
    return 0 if enrolled else 1


def _describe_with_progress(vision: Vision, people: list[Person]) -> list[Outcome]:
    with progress(total=sum(len(p.photos) for p in people), desc="enroll", unit="photo") as bar:
        return describe_people(vision, people, on_photo=bar.update)


def _person_summary(outcome: Outcome, templates: dict[str, int]) -> dict[str, Any]:
    person = outcome.person
    summary: dict[str, Any] = {
        "identity_id": person.id,
        "name": person.name,
        "enrolled": [str(p) for p, _ in outcome.accepted],
        "rejected": [{"image": str(p), "reason": reason} for p, reason in outcome.rejected],
    }
    if outcome.accepted:
        summary["templates"] = templates[person.id]
    return summary


def add_parser(sub) -> None:
    p = sub.add_parser("enroll", help="enroll people from photos (each gated for quality)")
    p.add_argument("--gallery", type=Path, required=True, help="gallery file (created if missing)")
    p.add_argument("--name", help="display name of the one person the photos show")
    p.add_argument("--id", help="identity id (default: made from the name)")
    p.add_argument(
        "--folder", type=Path, help="enroll everyone in FOLDER instead: one subfolder per person, named by the person"
    )
    p.add_argument("--models", type=Path, help="models folder (default: the bundled models/)")
    p.add_argument("images", type=Path, nargs="*", help="photos with exactly one face each")
    p.set_defaults(func=run)
