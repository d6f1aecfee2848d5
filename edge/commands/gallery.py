"""`edge gallery list|remove|export|import`: look after a gallery file without running the loop."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.commands.common import print_json, settings_from
from edge.config import Settings
from edge.device.app import load_cohort, operating_point
from edge.gallery import GalleryStore, read_bundle, replace_gallery
from edge.vision import ModelEntry, load_manifest
from edge.vision.false_alerts import BASES, MEANING, expected_false_alerts, person_fmr


def configured_embedder(args: argparse.Namespace) -> tuple[Settings, ModelEntry]:
    settings, _, _ = settings_from(args, **{"models.models_dir": args.models})
    manifest = load_manifest(settings.models.models_dir)
    return settings, manifest.get(settings.models.embedder or manifest.default_embedder, "embedder")


def open_store(args: argparse.Namespace) -> GalleryStore:
    """Open the gallery for the configured embedder (no model is loaded to do it)."""
    settings, entry = configured_embedder(args)
    return GalleryStore.open(args.gallery, entry.model_id, entry.sha256, scaler=load_cohort(settings, entry.model_id))


def rounded(value: float | None) -> float | None:
    """Six significant digits: an estimate, not a measurement to the last bit."""
    return None if value is None else float(f"{value:.6g}")


def run_list(args: argparse.Namespace) -> int:
    settings, entry = configured_embedder(args)
    point = operating_point(settings, entry)
    cohort = load_cohort(settings, entry.model_id)
    with GalleryStore.open(args.gallery, entry.model_id, entry.sha256, scaler=cohort) as store:
        identities = store.identities()
        counts = [i.templates for i in identities]
        print_json(
            {
                "gallery": str(args.gallery),
                "version": store.version,
                "identities": len(identities),
                "templates": sum(i.templates for i in identities),
                "operating_point": point.as_dict(),
                "false_alerts_per_1000_scans": {
                    "meaning": MEANING,
                    **expected_false_alerts(point, cohort, counts).details(),
                },
                "people": [
                    {
                        "identity_id": i.identity_id,
                        "name": i.name,
                        "templates": i.templates,
                        "expected_stranger_fmr": {
                            basis: rounded(person_fmr(None if rate is None else rate.fmr, point, cohort, i.templates))
                            for basis, rate in zip(BASES, (point.mixed, point.bound), strict=True)
                        },
                        "enrolled_at": i.enrolled_at,
                    }
                    for i in identities
                ],
            }
        )
    return 0


def running_device_note(settings: Settings, version: str) -> str:
    """What a device running on the changed gallery does with the change (`edge.device.gallery_watch`)."""
    return (
        f"a running device on this gallery uses version {version} within {settings.match.gallery_poll_s:g} s "
        "(match.gallery_poll_s), from its next frame on"
    )


def run_remove(args: argparse.Namespace) -> int:
    settings, entry = configured_embedder(args)
    with GalleryStore.open(
        args.gallery, entry.model_id, entry.sha256, scaler=load_cohort(settings, entry.model_id)
    ) as store:
        removed = store.remove(args.id)
        version = store.version
    print_json(
        {
            "gallery": str(args.gallery),
            "removed": args.id,
            "templates_removed": removed,
            "version": version,
            "running_device": running_device_note(settings, version),
        }
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        version = store.export(args.out)
    print_json({"gallery": str(args.gallery), "bundle": str(args.out), "version": version})
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Replace the gallery with a bundle, atomically, as a device does with `gallery/set`."""
    settings, entry = configured_embedder(args)
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
            "running_device": running_device_note(settings, version),
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
