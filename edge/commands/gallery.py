"""`edge gallery list|remove|export|import`: look after a gallery file without running the loop."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.commands.common import print_json, settings_from
from edge.config import Settings
from edge.device.gallery_watch import running_device_note
from edge.device.parts import configured_embedder, load_cohort, open_gallery, operating_point
from edge.enrollment import enrolled_people
from edge.gallery import read_bundle, replace_gallery


def _settings(args: argparse.Namespace) -> Settings:
    settings, _, _ = settings_from(args, **{"models.models_dir": args.models})
    return settings


def run_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    entry = configured_embedder(settings)
    point, cohort = operating_point(settings, entry), load_cohort(settings, entry.model_id)
    with open_gallery(settings, args.gallery) as store:
        print_json({"gallery": str(args.gallery), **enrolled_people(store, point, cohort)})
    return 0


def run_remove(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with open_gallery(settings, args.gallery) as store:
        removed = store.remove(args.id)
        version = store.version
    print_json(
        {
            "gallery": str(args.gallery),
            "removed": args.id,
            "templates_removed": removed,
            "version": version,
            "running_device": running_device_note(settings.match, version),
        }
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    with open_gallery(_settings(args), args.gallery) as store:
        version = store.export(args.out)
    print_json({"gallery": str(args.gallery), "bundle": str(args.out), "version": version})
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Replace the gallery with a bundle, atomically, as a device does with `gallery/set`."""
    settings = _settings(args)
    entry = configured_embedder(settings)
    bundle = read_bundle(args.bundle)
    version = replace_gallery(
        args.gallery, bundle, entry.model_id, entry.sha256, scaler=load_cohort(settings, entry.model_id)
    )
    print_json(
        {
            "gallery": str(args.gallery),
            "bundle": str(args.bundle),
            "version": version,
            "identities": len(bundle.identities),
            "templates": sum(len(r.templates) for r in bundle.identities),
            "running_device": running_device_note(settings.match, version),
        }
    )
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("gallery", help="list, remove, export or import enrolled people")
    verbs = p.add_subparsers(dest="verb", required=True)
    for name, func, text in (
        ("list", run_list, "list enrolled people (no embeddings shown)"),
        ("remove", run_remove, "remove a person and every template of theirs"),
        ("export", run_export, "write a bundle to move the gallery to another device"),
        ("import", run_import, "replace the gallery with a bundle's content, atomically"),
    ):
        v = verbs.add_parser(name, help=text)
        v.add_argument("--gallery", type=Path, required=True)
        v.add_argument("--models", type=Path, help="models folder (default: the bundled models/)")
        if name == "remove":
            v.add_argument("--id", required=True, help="identity id to remove")
        if name == "export":
            v.add_argument(
                "--out", type=Path, required=True, help="bundle file (JSON with the templates of ENROLLED people only)"
            )
        if name == "import":
            v.add_argument("bundle", type=Path, help="bundle file (as edge gallery export writes it)")
        v.set_defaults(func=func)
