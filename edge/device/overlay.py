"""The remote overlay: which settings the centre may change, and the file that holds its changes.

`state_dir/remote-config.json` is the overlay the settings loader already reads (between the
environment and the device's TOML file). Besides the settings it holds one `_meta` entry, which
the loader skips: the version in force (so an old or replayed `config/set` is refused, also
after a restart), whether the overlay is still on trial, and the last good overlay to roll back
to. One file, replaced atomically (`edge.atomic`): a crash leaves the old or the new
configuration with its own version, never a mixture.

Only the keys in `SETTABLE` can be changed remotely: what the matching, the quality gate, the
tracker, the counters window, the camera and the detector do. Never `device.*` (identity and
state folder), `mqtt.*` (a wrong broker cuts the device off for good), `fleet.*` (whoever can
change the keys owns the device), `match.gallery` or `models.models_dir`/`models.embedder` (the
gallery and its embedder change only through a signed gallery push).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from edge.config import OVERLAY_META, CameraConfig, ModelsConfig, QualityConfig, Settings, TrackerConfig
from edge.device.inbox import Refused, stored_version

OVERLAY_FILE = "remote-config.json"  # in the state folder
MAX_MESSAGE_BYTES = 16 * 1024  # a config/set is a few hundred bytes; anything this big is refused unread


def _all(section: str, model: type[BaseModel]) -> set[str]:
    return {f"{section}.{key}" for key in model.model_fields}


SETTABLE = frozenset(
    {
        "match.threshold",
        "match.target_fmr",
        "match.fmr_scope",
        "match.max_false_alerts_per_1000_scans",
        "match.max_false_alerts_basis",
    }
    | _all("quality", QualityConfig)
    | _all("tracker", TrackerConfig)
    | {"stats.window_s"}
    | _all("camera", CameraConfig)
    | (_all("models", ModelsConfig) - {"models.models_dir", "models.embedder", "models.stills_detector"})
)
"""Keys `config/set` may set or unset; docs/pages/fleet.md, "Remote configuration", lists them."""


def _field(key: str) -> Any:
    section, _, name = key.partition(".")
    model = Settings.model_fields.get(section)
    fields = getattr(model.annotation, "model_fields", {}) if model is not None else {}
    return fields.get(name)


def check_keys(set_: dict[str, Any], unset: list[str]) -> None:
    """`Refused` naming every key that is unknown or not remotely settable, or of the wrong type.

    Types are checked strictly here (`"0.4"` is not a number) because the overlay file, once
    written, is read leniently like any JSON settings file; ranges are the settings' job.
    """
    problems = []
    for key in sorted({*set_, *unset}):
        if _field(key) is None:
            problems.append(f"{key} is not a setting")
        elif key not in SETTABLE:
            problems.append(f"{key} cannot be set remotely")
    both = sorted(set(set_) & set(unset))
    if both:
        problems.append(f"{', '.join(both)} both set and unset")
    for key, value in sorted(set_.items()):
        info = _field(key)
        if info is not None and key in SETTABLE:
            try:
                TypeAdapter(info.annotation).validate_python(value, strict=True)
            except ValidationError as e:
                problems.append(f"{key}: {e.errors()[0]['msg']} (got {json.dumps(value)})")
    if problems:
        raise Refused("; ".join(problems))


@dataclass(frozen=True)
class Overlay:
    """The overlay's settings (`{"match": {"threshold": 0.45}}`) and its bookkeeping."""

    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 0  # of the last config/set accepted; kept by a rollback, so it cannot be replayed
    trial: bool = False  # applied, not yet confirmed by fleet.rollback_after_s of frames and broker
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)  # the last good settings

    def changed(self, set_: dict[str, Any], unset: list[str], version: int) -> Overlay:
        """This overlay with `set_` and `unset` applied, on trial, the current one to fall back to."""
        settings = {section: dict(keys) for section, keys in self.settings.items()}
        for key, value in set_.items():
            section, _, name = key.partition(".")
            settings.setdefault(section, {})[name] = value
        for key in unset:
            section, _, name = key.partition(".")
            settings.get(section, {}).pop(name, None)
        settings = {section: keys for section, keys in settings.items() if keys}
        return Overlay(settings, version, trial=True, previous=self.good)

    @property
    def good(self) -> dict[str, dict[str, Any]]:
        """The settings to fall back to: these once confirmed, else the previous ones."""
        return self.previous if self.trial else self.settings

    def rolled_back(self) -> Overlay:
        return Overlay(self.good, self.version)

    def confirmed(self) -> Overlay:
        return Overlay(self.settings, self.version)

    def encode(self) -> bytes:
        meta = {"version": self.version, "trial": self.trial, "previous": self.previous if self.trial else None}
        return json.dumps({OVERLAY_META: meta, **self.settings}, indent=1, sort_keys=True).encode()

    @classmethod
    def read(cls, path: Path) -> Overlay:
        """The overlay at `path`; none yet is the empty overlay at version 0. The settings loader
        read the same file at start, so a damaged one has already stopped the device. A version
        from the future (stored before the device refused those) is replaced (`stored_version`)."""
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8-sig") or "{}")
        meta = data.pop(OVERLAY_META, None) or {}
        version = stored_version(int(meta.get("version", 0)), "config", path)
        return cls(data, version, bool(meta.get("trial")), meta.get("previous") or {})


def flat(settings: Settings) -> dict[str, Any]:
    """The settings as `{"section.key": JSON value}`."""
    dumped = settings.model_dump(mode="json")
    return {f"{section}.{key}": value for section, keys in dumped.items() for key, value in keys.items()}


def shadowed(settings: Settings, set_: dict[str, Any]) -> list[str]:
    """Keys of `set_` whose value is not in force in `settings`: a flag or an `EDGE_` variable
    on the device sets them, and both outrank the remote overlay."""
    effective = flat(settings)
    return sorted(key for key, value in set_.items() if effective.get(key) != value)


def sections_changed(old: Settings, new: Settings) -> set[str]:
    """The sections whose values differ: what a change has to rebuild."""
    before, after = flat(old), flat(new)
    return {key.partition(".")[0] for key in after if before.get(key) != after[key]}
