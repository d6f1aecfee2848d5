"""`edge config show`: the effective configuration and where each value came from."""

from __future__ import annotations

import argparse
from typing import Any

from edge.commands.common import config_file, settings_from
from edge.config import Settings, provenance, show
from edge.device.parts import operating_point
from edge.vision import load_manifest


def in_force(settings: Settings, origins: dict[str, str]) -> dict[str, tuple[Any, str]]:
    """The detector, embedder and threshold the device starts with, each with its origin.

    Unset in the configuration they are not "null" on the device: the manifest names the
    models and its calibration gives the threshold, so show what `edge run` will use.
    """
    m = settings.models
    manifest = load_manifest(m.models_dir)
    models = {
        key: (configured, origins[key]) if configured else (default, "manifest default")
        for key, configured, default in (
            ("models.detector", m.detector, manifest.default_detector),
            ("models.embedder", m.embedder, manifest.default_embedder),
        )
    }
    point = operating_point(settings, manifest.get(models["models.embedder"][0], "embedder"))
    if settings.match.threshold is not None:
        threshold_origin = origins["match.threshold"]
    elif settings.match.target_fmr is not None:
        threshold_origin = f"{origins['match.target_fmr']}: {point.origin}"
    else:
        threshold_origin = point.origin
    return {**models, "match.threshold": (point.threshold, threshold_origin)}


def run_show(args: argparse.Namespace) -> int:
    settings, flags, overlay = settings_from(args)
    origins = provenance(config_file(args), overlay, **flags)
    print(show(settings, origins, in_force(settings, origins)))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="configuration tools")
    verbs = p.add_subparsers(dest="verb", required=True)
    verbs.add_parser("show", help="print effective values and their sources").set_defaults(func=run_show)
