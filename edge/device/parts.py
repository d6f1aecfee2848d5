"""The device's parts, assembled from its settings: the one place `edge run`, the other commands,
`edge bench` and the scripts build the vision pipeline, the cohort, the operating point, the
gallery's matcher and the MQTT options from, so none of them can build a device other than the
one that runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge import __version__
from edge.config import ConfigError, Settings, TrackerConfig
from edge.device.counters import Counters
from edge.device.loop import Loop, LoopOptions, Publish
from edge.device.timing import StageTimer
from edge.gallery import GalleryNotFound, GalleryStore, Matcher, empty_matcher
from edge.link import MqttOptions, Topics
from edge.link.homeassistant import discovery_configs
from edge.link.signed import load_public_key
from edge.redact import masked
from edge.vision import Detector, FaceDetector, ModelEntry, QualityGate, Vision, load_manifest
from edge.vision.cohort import Cohort
from edge.vision.false_alerts import FalseAlerts, expected_false_alerts, over_limit
from edge.vision.operating_point import OperatingPoint, OperatingPointError, resolve
from edge.vision.scene import SceneCutDetector
from edge.vision.tiling import TiledDetector
from edge.vision.tracker import Tracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parts:
    """What the loop matches with, resolved and checked before anything runs."""

    vision: Vision
    point: OperatingPoint
    cohort: Cohort
    matcher: Matcher
    false_alerts: FalseAlerts


def assemble(settings: Settings, detector_id: str | None = None, tile_px: int | None = None) -> Parts:
    """The camera pipeline, its operating point, cohort and gallery, and the false alerts they
    predict (a start above the configured limit is refused here). `detector_id` and `tile_px`
    override the configured ones (`edge bench` compares them)."""
    vision = camera_vision(settings, detector_id, tile_px)
    point = operating_point(settings, vision.embedder.entry)
    cohort = load_cohort(settings, vision.embedder.model_id)
    matcher = load_matcher(settings, vision, cohort)
    return Parts(vision, point, cohort, matcher, checked_false_alerts(settings, point, matcher, cohort))


def build_vision(settings: Settings, detector_id: str | None = None, tile_px: int | None = None) -> Vision:
    """The vision pipeline as configured; `detector_id` overrides the configured detector, and
    with `tile_px` it detects over tiles of at most that side (`TiledDetector`)."""
    m = settings.models
    manifest = load_manifest(m.models_dir)
    plain = Detector.load(manifest, detector_id or m.detector, m.threads, m.score_threshold)
    detector: FaceDetector = plain if tile_px is None else TiledDetector(plain, tile_px)
    gate = QualityGate(**settings.quality.model_dump())
    return Vision(manifest, embedder_id=m.embedder, threads=m.threads, gate=gate, detector=detector)


def camera_vision(settings: Settings, detector_id: str | None = None, tile_px: int | None = None) -> Vision:
    """The pipeline the loop runs: the camera detector over tiles of large frames."""
    return build_vision(settings, detector_id, settings.models.tile_px if tile_px is None else tile_px)


def stills_vision(settings: Settings, detector_id: str | None = None) -> Vision:
    """The pipeline for photos (enrollment, verification, evaluation): the stills detector, untiled."""
    return build_vision(settings, detector_id or settings.models.stills_detector)


def build_loop(
    settings: Settings,
    vision: Vision,
    matcher: Matcher,
    threshold: float,
    counters: Counters,
    publish: Publish,
    refine: bool | None = None,
    timer: StageTimer | None = None,
) -> Loop:
    """The loop as configured; `edge run` and `edge bench` both build it here."""
    t = settings.tracker
    options = LoopOptions(
        settings.device.device_id,
        settings.device.site,
        threshold,
        t.embed_attempts,
        refine=settings.models.refine if refine is None else refine,
    )
    return Loop(
        vision,
        matcher,
        build_tracker(t),
        SceneCutDetector(t.scene_cut_threshold),
        counters,
        publish,
        options,
        timer=timer,
    )


def build_tracker(t: TrackerConfig) -> Tracker:
    """The tracker as configured (at start and after a remote change)."""
    return Tracker(t.min_iou, t.max_missed_frames, t.init_frames, t.predict, t.max_shift)


def operating_point(settings: Settings, embedder: ModelEntry) -> OperatingPoint:
    """The threshold in force and its measured FMR (see `edge.vision.operating_point`)."""
    m = settings.match
    try:
        return resolve(embedder, m.threshold, m.target_fmr, m.fmr_scope, m.thresholds)
    except OperatingPointError as e:
        raise ConfigError(str(e)) from None


def checked_false_alerts(settings: Settings, point: OperatingPoint, matcher: Matcher, cohort: Cohort) -> FalseAlerts:
    """Expected false alerts per 1,000 scans of strangers, both figures (the sum over the enrolled
    people, `edge.vision.false_alerts`); refuses a start above the configured limit."""
    expected = expected_false_alerts(point, cohort, matcher.template_counts().values())
    m = settings.match
    if m.max_false_alerts_per_1000_scans is None:
        return expected
    if expected.of(m.max_false_alerts_basis).per_1000 is None:
        raise ConfigError(
            f"match.max_false_alerts_per_1000_scans is {m.max_false_alerts_per_1000_scans:g} but threshold "
            f"{point.threshold:g} has no measured {m.max_false_alerts_basis} false match rate to check it against: "
            "use match.target_fmr or a calibrated threshold, or limit the other figure (match.max_false_alerts_basis = "
            f"{'bound' if m.max_false_alerts_basis == 'mixed' else 'mixed'}) if it is known"
        )
    why = over_limit(expected, m.max_false_alerts_per_1000_scans, m.max_false_alerts_basis)
    if why is not None:
        raise ConfigError(
            f"{len(matcher)} enrolled people ({matcher.template_count} templates) at threshold {point.threshold:.3f} "
            f"({point.mode}) {why}: lower match.target_fmr, enroll fewer people, or raise the limit"
        )
    return expected


def effective_config(settings: Settings, point: OperatingPoint) -> dict:
    """The settings as JSON for `config/reported`, secrets removed, with the operating point."""
    return {**masked(settings.model_dump(mode="json")), "operating_point": point.as_dict()}


def load_cohort(settings: Settings, embedder_id: str) -> Cohort:
    """The embedder's cohort model: it computes each template's scale whenever a gallery is written."""
    return Cohort.load(load_manifest(settings.models.models_dir), embedder_id)


def configured_embedder(settings: Settings) -> ModelEntry:
    """The configured embedder's manifest entry, read without loading the model."""
    manifest = load_manifest(settings.models.models_dir)
    return manifest.get(settings.models.embedder or manifest.default_embedder, "embedder")


def open_gallery(settings: Settings, path: Path, create: bool = False) -> GalleryStore:
    """The gallery file at `path` for the configured embedder, with its cohort's scales (no model
    is loaded to open it); `create`: made empty when it does not exist."""
    entry = configured_embedder(settings)
    cohort = load_cohort(settings, entry.model_id)
    try:
        return GalleryStore.open(path, entry.model_id, entry.sha256, scaler=cohort)
    except GalleryNotFound:
        if not create:
            raise
        return GalleryStore.create(path, entry.model_id, entry.sha256, scaler=cohort)


def awaited_gallery(settings: Settings) -> Path | None:
    """The gallery file of a fleet device (it takes galleries over MQTT) that does not exist yet,
    as on a board fresh from its bundle; None when there is none to wait for."""
    gallery, fleet = settings.match.gallery, settings.fleet
    if gallery is None or gallery.exists() or fleet.signing_public_key is None or fleet.device_key is None:
        return None
    return gallery


def load_matcher(settings: Settings, vision: Vision, cohort: Cohort) -> Matcher:
    """The gallery's matcher. A device awaiting its gallery (`awaited_gallery`) starts with an empty
    one, matches nobody and counts scans until `edge fleet gallery push` gives it one; the file is
    made only once the start succeeded (`edge.device.app`). Anywhere else a missing gallery stops
    the start, since it is most likely a wrong path."""
    gallery, embedder = settings.match.gallery, vision.embedder
    if gallery is None:
        raise ConfigError("match.gallery is not set: enroll people (edge enroll) and pass --gallery")
    per_template = settings.match.thresholds == "per_template"
    if awaited_gallery(settings) is not None:
        log.warning("no gallery at %s yet: starting with nobody enrolled until a gallery is pushed", gallery)
        return empty_matcher(embedder.model_id, embedder.sha256, per_template)
    with GalleryStore.open(gallery, embedder.model_id, embedder.sha256, scaler=cohort) as store:
        return store.matcher(per_template)


def mqtt_options(settings: Settings) -> MqttOptions:
    """The broker connection as configured."""
    q = settings.mqtt

    def text(path: Path | None) -> str | None:
        return str(path) if path is not None else None

    return MqttOptions.from_url(
        q.url,
        username=q.username,
        password=q.password,
        ca_certs=text(q.ca_file),
        certfile=text(q.cert_file),
        keyfile=text(q.key_file),
        keepalive=q.keepalive_s,
        protocol=q.protocol,
    )


def home_assistant_discovery(settings: Settings, topics: Topics) -> dict[str, str]:
    """The Home Assistant discovery configs to announce at every connect; none unless enabled."""
    ha = settings.homeassistant
    if not ha.enabled:
        return {}
    try:
        return discovery_configs(ha.discovery_prefix, topics, __version__)
    except ValueError as e:
        raise ConfigError(f"homeassistant.enabled: {e}") from None


def remote_config_key(settings: Settings) -> Ed25519PublicKey | None:
    """The fleet key that signs `config/set`; None: remote configuration is off."""
    path = settings.fleet.signing_public_key
    return None if path is None else load_public_key(path, Ed25519PublicKey, "fleet.signing_public_key")
