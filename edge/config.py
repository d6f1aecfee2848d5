"""The device's configuration: one strict model per concern, loaded from layered sources.

Precedence, highest first (docs/pages/device.md, "Configuration"): command-line flags, `EDGE_` environment
variables (nested with `__`, e.g. EDGE_MQTT__HOST), the remote overlay accepted over MQTT
(persisted as JSON on the device), the device's TOML file, defaults. A typo in any key is an
error, not a silently ignored value.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from edge.redact import masked
from edge.vision.tiling import DEFAULT_TILE_PX

DEFAULT_CONFIG_FILE = Path("/etc/edge/edge.toml")


def _named(value: object) -> object:
    """A blank path would be taken as "." (the current folder, which `device.state_dir` makes
    private): refused, whichever source gave it."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("an empty path names nothing: give a file or folder, or leave the setting unset")
    return value


SettingPath = Annotated[Path, BeforeValidator(_named)]
"""The type of every path setting."""


class Section(BaseModel):
    """Strict base for every section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DeviceConfig(Section):
    device_id: str = Field(
        "dev-0", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="unique device name; part of every MQTT topic"
    )
    site: str = Field(
        "lab", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="site name; part of every MQTT topic"
    )
    state_dir: SettingPath = Field(
        Path("/var/lib/edge"), description="outbox, counters and the remote config overlay live here"
    )


class CameraConfig(Section):
    source: str = Field(
        "v4l2:0",
        description="frame source URI: picam:N, v4l2:/dev/videoN, gst:..., "
        "rtsp://..., http(s)://..., file:PATH, dir:PATH",
    )
    width: int | None = Field(None, gt=0, description="requested capture width (cameras only)")
    height: int | None = Field(None, gt=0, description="requested capture height (cameras only)")
    fps: float | None = Field(None, gt=0, description="requested capture rate (cameras only)")
    reconnect_max_s: float = Field(30.0, gt=0, le=3600, description="longest wait between reconnect attempts")
    decode_threads: int = Field(
        1,
        ge=0,
        le=16,
        description="FFmpeg decoder threads for streams and files "
        "(0: one per core); inference already uses the cores, and each thread "
        "holds frames of its own",
    )


class ModelsConfig(Section):
    models_dir: SettingPath | None = Field(None, description="folder with manifest.json (default: bundled models/)")
    detector: str | None = Field(None, description="detector model id for the camera (default: the manifest's)")
    stills_detector: str = Field(
        "blazeface_short_range", description="detector for still images (enroll, verify, eval): portraits are close-up"
    )
    embedder: str | None = Field(
        None,
        description="embedder model id (default: the manifest's); a gallery records it and refuses another "
        "(the refusal names the gallery's, which this key can select)",
    )
    threads: int = Field(2, ge=1, le=16, description="TFLite inference threads")
    score_threshold: float = Field(0.5, gt=0, lt=1, description="detector confidence cut (higher is stricter)")
    tile_px: int = Field(
        DEFAULT_TILE_PX,
        ge=0,
        description="camera frames whose long side exceeds this are split "
        "into overlapping squares of at most this side, one detector pass each (0: never)",
    )
    refine: bool = Field(
        True,
        description="before embedding a face small in the detector input, find it again "
        "on a crop around it for precise keypoints",
    )


class QualityConfig(Section):
    min_size_px: float = Field(40.0, ge=0, description="shorter side of the face box, pixels")
    min_score: float = Field(0.6, ge=0, le=1, description="detector confidence a face must reach")
    min_sharpness: float = Field(15.0, ge=0, description="Laplacian variance of the chip")
    max_abs_yaw: float = Field(0.6, ge=0, description="nose offset in inter-eye distances (0 = frontal)")
    max_abs_roll_deg: float = Field(30.0, ge=0, le=90, description="eye-line tilt, degrees")


class MatchConfig(Section):
    gallery: SettingPath | None = Field(None, description="gallery SQLite file")
    threshold: float | None = Field(
        None,
        gt=0,
        le=2,
        description="the knob (match.thresholds = per_template) or the Euclidean distance threshold (global); "
        "lower is stricter (default: the manifest's calibrated operating point)",
    )
    target_fmr: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="false match rate to hold, resolved through the embedder's "
        "calibration table (alternative to threshold)",
    )
    thresholds: Literal["per_template", "global"] = Field(
        "per_template",
        description="per_template: each template's threshold is the knob times its cohort scale "
        "(the knob is match.threshold or the calibrated one); global: one distance threshold for all",
    )
    fmr_scope: Literal["worst_group", "overall"] = Field(
        "worst_group", description="whose FMR target_fmr bounds: every sizeable group, or all pairs together"
    )
    max_false_alerts_per_1000_scans: float | None = Field(
        None,
        ge=0,
        description="refuse to start (or a gallery change that only adds people) when the gallery's "
        "size and the FMR expect more false alerts per 1,000 scans of strangers than this "
        "(the figure match.max_false_alerts_basis names)",
    )
    max_false_alerts_basis: Literal["mixed", "bound"] = Field(
        "mixed",
        description="which expectation the limit applies to: mixed, strangers of every group as in the "
        "calibration data; bound, every passer-by of the worst group's own group",
    )
    gallery_poll_s: float = Field(
        2.0, gt=0, le=60, description="how often a running device checks the gallery file for changes"
    )

    @model_validator(mode="after")
    def _one_threshold(self) -> MatchConfig:
        if self.threshold is not None and self.target_fmr is not None:
            raise ValueError("match.threshold and match.target_fmr are alternatives: set one")
        return self


class TrackerConfig(Section):
    max_missed_frames: int = Field(8, ge=0, description="frames a track survives without a detection")
    min_iou: float = Field(0.2, gt=0, lt=1, description="box overlap with a track's predicted box that continues it")
    init_frames: int = Field(
        3, ge=1, le=30, description="consecutive detections that confirm a track (1: the first one; fewer: no scan)"
    )
    predict: bool = Field(True, description="predict each track's box from its velocity (false: its last box)")
    max_shift: float = Field(
        1.5, ge=0, le=5, description="centre distance, in box sizes, that continues a track without overlap (0: off)"
    )
    embed_attempts: int = Field(3, ge=1, le=20, description="descriptors computed per track at most")
    scene_cut_threshold: float = Field(
        25.0, ge=0, le=255, description="grey-level change that ends every track (0: never)"
    )


class MqttConfig(Section):
    url: str = Field("mqtt://127.0.0.1:1883", description="broker: mqtt://HOST:PORT or mqtts://HOST:PORT (TLS)")
    username: str | None = Field(None, description="broker user name (with mqtt.password: both or neither)")
    password: str | None = Field(
        None, repr=False, description="broker password (with mqtt.username: both or neither); masked when shown"
    )
    ca_file: SettingPath | None = Field(None, description="CA certificate for TLS")
    cert_file: SettingPath | None = Field(None, description="client certificate for TLS")
    key_file: SettingPath | None = Field(None, description="client key for TLS")
    protocol: Literal["5", "3.1.1"] = Field(
        "5",
        description="MQTT version; 3.1.1 for brokers without MQTT 5 "
        "(then refused messages cannot be told apart from delivered ones)",
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive, seconds")
    connect_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="how long `edge run` waits for the broker at start"
    )

    @model_validator(mode="after")
    def _pairs(self) -> MqttConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("mqtt.username and mqtt.password go together")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mqtt.cert_file and mqtt.key_file go together")
        return self


class StatsConfig(Section):
    window_s: float = Field(60.0, ge=1, le=86400, description="length of one counters window, seconds")


class FleetConfig(Section):
    """What ties a device to its fleet: the keys that let the centre, and nobody else, change it."""

    signing_public_key: SettingPath | None = Field(
        None,
        description="the fleet's Ed25519 public key (PEM); remote configuration and galleries signed with "
        "it are accepted (unset: config/set and gallery/set are not subscribed)",
    )
    device_key: SettingPath | None = Field(
        None, description="this device's X25519 private key (PEM): opens the galleries sealed to it"
    )
    rollback_after_s: float = Field(
        60.0,
        gt=0,
        le=86400,
        description="a remote change after which no frame arrives or the broker cannot be "
        "reached for this long is rolled back to the last good configuration",
    )


class HomeAssistantConfig(Section):
    """Home Assistant MQTT discovery: the device announces its sensors so nobody writes YAML."""

    enabled: bool = Field(False, description="publish Home Assistant discovery configs (retained) at every connect")
    discovery_prefix: str = Field(
        "homeassistant",
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        description="Home Assistant's discovery prefix (its MQTT integration's setting)",
    )


class Settings(BaseSettings):
    """Everything the device reads at start. Build with `load_settings`, which adds the files."""

    model_config = SettingsConfigDict(env_prefix="EDGE_", env_nested_delimiter="__", extra="forbid", frozen=True)

    device: DeviceConfig = Field(default_factory=DeviceConfig, description="the device's name, site and state folder")
    camera: CameraConfig = Field(default_factory=CameraConfig, description="the frame source")
    models: ModelsConfig = Field(
        default_factory=ModelsConfig, description="the detector and embedder models and how they run"
    )
    quality: QualityConfig = Field(
        default_factory=QualityConfig, description="the quality gate a face passes before it is embedded"
    )
    match: MatchConfig = Field(
        default_factory=MatchConfig, description="the gallery, the threshold and the false-alert limit"
    )
    tracker: TrackerConfig = Field(
        default_factory=TrackerConfig, description="one track per person passing, one decision per track"
    )
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="the broker and how to reach it")
    stats: StatsConfig = Field(default_factory=StatsConfig, description="the counters' windows")
    fleet: FleetConfig = Field(
        default_factory=FleetConfig, description="the fleet's keys: remote configuration and galleries over MQTT"
    )
    homeassistant: HomeAssistantConfig = Field(
        default_factory=HomeAssistantConfig, description="Home Assistant MQTT discovery"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings


class ConfigError(ValueError):
    """The configuration cannot be used; the message names each bad key and the problem."""


# `EDGE_` variables that are not settings: read by other parts, or by the tests
OTHER_VARIABLES = frozenset({"EDGE_CONFIG", "EDGE_MODELS_DIR", "EDGE_MOSQUITTO", "EDGE_TEST_DATA"})


def _unknown_variable(name: str) -> str | None:
    """Why `name` (an EDGE_ variable) sets no setting, or None when it sets one."""
    upper = name.upper()
    section, _, key = upper.removeprefix("EDGE_").partition("__")
    model = Settings.model_fields.get(section.lower())
    if model is not None and (not key or key.lower() in model.annotation.model_fields):  # type: ignore[union-attr]
        return None
    near = [
        f"EDGE_{s.upper()}__{upper[len(s) + 6 :]}"
        for s in Settings.model_fields
        if upper.startswith(f"EDGE_{s.upper()}_")
    ]
    hint = f" (did you mean {near[0]}?)" if near and not key else ""
    return f"unknown environment variable {name}{hint}"


def _check_environment() -> None:
    """Unknown `EDGE_` variables are errors, like unknown keys in files: a typo must not pass unseen."""
    problems = [
        why
        for name in sorted(os.environ)
        if name.upper().startswith("EDGE_") and name.upper() not in OTHER_VARIABLES
        if (why := _unknown_variable(name)) is not None
    ]
    if problems:
        raise ConfigError("; ".join(problems) + "; settings are EDGE_<SECTION>__<KEY>, e.g. EDGE_MQTT__URL")


def _read_config_file(path: Path, parse: Callable[[str], Any]) -> dict[str, Any]:
    """The file's top-level table; any problem is a ConfigError naming the file. A UTF-8
    byte-order mark (written by some Windows editors) is accepted."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
        data = parse(text) if text.strip() else {}
    except (OSError, ValueError) as e:  # UnicodeDecodeError, TOMLDecodeError, JSONDecodeError
        raise ConfigError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"cannot read {path}: expected a table of sections, got {type(data).__name__}")
    return data


class _TomlFile(TomlConfigSettingsSource):
    def _read_file(self, file_path: Path) -> dict[str, Any]:  # type: ignore[override]
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # Python 3.10: the same parser, as the package tomli (a dependency there)
            import tomli as tomllib

        return _read_config_file(file_path, tomllib.loads)


# The remote overlay's own bookkeeping (version in force, last good overlay): not settings.
OVERLAY_META = "_meta"


class _JsonFile(JsonConfigSettingsSource):
    def _read_file(self, file_path: Path) -> dict[str, Any]:  # type: ignore[override]
        data = _read_config_file(file_path, json.loads)
        data.pop(OVERLAY_META, None)
        return data


def _named_sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    config_file: Path | None,
    overlay_file: Path | None,
) -> list[tuple[str, PydanticBaseSettingsSource]]:
    """The sources in precedence order, each with the name `edge config show` prints."""
    sources = [("flag", init_settings), ("env", env_settings)]
    if overlay_file is not None:
        overlay = _JsonFile(settings_cls, json_file=overlay_file)
        sources.append((f"remote overlay {overlay_file}", overlay))
    if config_file is not None:
        sources.append((f"file {config_file}", _TomlFile(settings_cls, toml_file=config_file)))
    return sources


def _checked_paths(config_file: Path | None, overlay_file: Path | None) -> tuple[Path | None, Path | None]:
    """Absolute paths (systemd runs us in /); a named config file must exist, an overlay may not."""
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(f"config file not found: {config_file}")
    config = Path(config_file).resolve() if config_file is not None else None
    overlay = Path(overlay_file).resolve() if overlay_file is not None and Path(overlay_file).is_file() else None
    return config, overlay


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: `key.path: what is wrong (got value)`."""
    lines = []
    for problem in error.errors():
        key = ".".join(str(p) for p in problem["loc"]) or "(root)"
        got = masked(problem.get("input"), key)
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{key}: {problem['msg']}{shown}")
    return "; ".join(lines)


def load_settings(config_file: Path | None = None, overlay_file: Path | None = None, **flags: Any) -> Settings:
    """Settings from flags (keyword arguments, nested dicts), environment, overlay and file.

    A named config file that is missing is an error (pydantic-settings would skip it); a
    missing overlay means no remote change has been accepted yet.
    """
    _check_environment()
    config, overlay = _checked_paths(config_file, overlay_file)

    class LayeredSettings(Settings):
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings, **_):
            return tuple(s for _, s in _named_sources(settings_cls, init_settings, env_settings, config, overlay))

    try:
        return LayeredSettings(**flags)
    except ConfigError:
        raise
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e)) from None
    except ValueError as e:  # malformed TOML or JSON, non-JSON complex environment values
        raise ConfigError(f"cannot read configuration: {e}") from None


def provenance(config_file: Path | None = None, overlay_file: Path | None = None, **flags: Any) -> dict[str, str]:
    """For each key set by some source, the name of the highest source that set it."""
    config, overlay = _checked_paths(config_file, overlay_file)
    sources = _named_sources(
        Settings, InitSettingsSource(Settings, init_kwargs=flags), EnvSettingsSource(Settings), config, overlay
    )
    origin: dict[str, str] = {}
    for name, source in sources:
        for key in _leaf_items(source()):
            origin.setdefault(key, name)
    return origin


def _leaf_items(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to {"a.b": value}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_leaf_items(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def show(settings: Settings, origins: dict[str, str], in_force: dict[str, tuple[Any, str]] | None = None) -> str:
    """`key = value  # source` lines for `edge config show`, secrets masked.

    `in_force` replaces unset values the device resolves at start (the manifest's detector, the
    calibrated threshold) with the value it will use and where that came from.
    """
    flat = _leaf_items(masked(settings.model_dump(mode="json")))
    width = max(len(k) for k in flat)
    lines = []
    for key, value in flat.items():
        value, origin = (in_force or {}).get(key, (value, origins.get(key, "default")))
        lines.append(f"{key:<{width}} = {json.dumps(value)}  # {origin}")
    return "\n".join(lines)
