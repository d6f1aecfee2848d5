"""`edge run`: build the device from its settings, check everything, then run the loop.

Start-up order is chosen so that a bad start changes nothing on disk: the models, the
gallery, the frame source and the broker are all checked before the state folder, the outbox,
the counters file or the empty gallery of a device awaiting one is created or touched.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge import __version__
from edge.config import ConfigError, Settings
from edge.device.audit import AUDIT_LOG, AuditLog
from edge.device.camera import Camera
from edge.device.counters import Counters
from edge.device.gallery_watch import GalleryWatcher
from edge.device.loop import Loop, LoopOptions, Publish
from edge.device.overlay import OVERLAY_FILE, Overlay
from edge.device.remote_config import Builders, Reload, RemoteConfig, Running, operating_details
from edge.device.remote_gallery import RemoteGallery, accepted_version, push_keys
from edge.device.start_fallback import StartRollback
from edge.device.state_dir import lock_state_dir
from edge.device.timing import StageTimer
from edge.device.watchdog import Notifier
from edge.device.writer import DiskWriter
from edge.gallery import GalleryStore, Matcher, empty_matcher
from edge.link import ConfigReported, MqttLink, MqttOptions, Outbox, StatusPayload, Topics, Versions, probe_broker
from edge.link.homeassistant import discovery_configs
from edge.link.signed import load_public_key
from edge.redact import masked
from edge.vision import Detector, FaceDetector, ModelEntry, QualityGate, Vision, load_manifest
from edge.vision.cohort import Cohort
from edge.vision.false_alerts import FalseAlerts, expected_false_alerts, over_limit, per_1000
from edge.vision.operating_point import OperatingPoint, OperatingPointError, resolve
from edge.vision.scene import SceneCutDetector
from edge.vision.tiling import TiledDetector
from edge.vision.tracker import Tracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    frames: int
    totals: dict[str, int]
    outbox_pending: int


def build_vision(settings: Settings, detector_id: str | None = None, tile_px: int | None = None) -> Vision:
    """The vision pipeline as configured; `detector_id` overrides the configured detector, and
    with `tile_px` it detects over tiles of at most that side (`TiledDetector`)."""
    m = settings.models
    manifest = load_manifest(m.models_dir)
    plain = Detector.load(manifest, detector_id or m.detector, m.threads, m.score_threshold)
    detector: FaceDetector = plain if tile_px is None else TiledDetector(plain, tile_px)
    gate = QualityGate(**settings.quality.model_dump())
    return Vision(manifest, embedder_id=m.embedder, threads=m.threads, gate=gate, detector=detector)


def build_camera_vision(settings: Settings, detector_id: str | None = None, tile_px: int | None = None) -> Vision:
    """The pipeline the loop runs: the camera detector over tiles of large frames."""
    return build_vision(settings, detector_id, settings.models.tile_px if tile_px is None else tile_px)


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
        Tracker(t.min_iou, t.max_missed_frames),
        SceneCutDetector(t.scene_cut_threshold),
        counters,
        publish,
        options,
        timer=timer,
    )


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
    made only once the start succeeded (`run_device`). Anywhere else a missing gallery stops the
    start, since it is most likely a wrong path."""
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


def remote_config_key(settings: Settings, reload: Reload | None) -> Ed25519PublicKey | None:
    """The fleet key that signs `config/set`; None: remote configuration is off."""
    path = settings.fleet.signing_public_key
    if path is None:
        return None
    if reload is None:
        raise ValueError("remote configuration needs `reload`, the device's settings loader")
    return load_public_key(path, Ed25519PublicKey, "fleet.signing_public_key")


def run_device(
    settings: Settings,
    stop: threading.Event,
    max_frames: int | None = None,
    reload: Reload | None = None,
    rolled_back: StartRollback | None = None,
) -> RunSummary:
    """Run until `stop` is set, the source ends, or `max_frames` frames were processed.

    `reload` loads the settings again with another remote overlay (same file, environment and
    flags): remote configuration (`fleet.signing_public_key`) validates each change with it.
    `rolled_back`: a change on trial kept the last start from starting and was rolled back
    (`edge.device.start_fallback`); the first `config/reported` says so.

    Every step after the capture thread starts runs inside one `ExitStack`, so whatever fails
    (a corrupt counters file, a foreign outbox, a locked state folder) stops that thread
    before the error leaves: a thread still decoding at interpreter exit aborts the process.
    """
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames must be at least 1, not {max_frames}")
    device, site = settings.device.device_id, settings.device.site
    vision = build_camera_vision(settings)
    point = operating_point(settings, vision.embedder.entry)
    threshold = point.threshold
    cohort = load_cohort(settings, vision.embedder.model_id)
    matcher = load_matcher(settings, vision, cohort)
    false_alerts = checked_false_alerts(settings, point, matcher, cohort)
    push = push_keys(settings.fleet)  # None: no gallery/set
    pushed = accepted_version(settings.device.state_dir) if push is not None else 0
    fleet_key = remote_config_key(settings, reload)
    camera = Camera(settings.camera)
    options = mqtt_options(settings)
    topics = Topics(site, device)
    discovery = home_assistant_discovery(settings, topics)
    probe_broker(options, f"edge-{site}-{device}", settings.mqtt.connect_timeout_s)
    with contextlib.ExitStack() as running:
        camera.start()
        running.callback(camera.stop)
        log.info(
            "source %s, detector %s, embedder %s (sha256 %s), gallery %s: %d identities, version %s",
            camera.info.uri,
            vision.detector.entry.model_id,
            vision.embedder.model_id,
            vision.embedder.sha256[:12],
            settings.match.gallery,
            len(matcher.identity_ids),
            matcher.version,
        )
        log.info(
            "threshold %.3f (%s, %s): FMR %s per comparison; expected false alerts per 1,000 scans of strangers: "
            "%s in a mixed crowd, at most %s in a crowd of the worst group",
            threshold,
            vision.embedder.metric,
            point.origin,
            "unknown (uncalibrated)" if point.fmr is None else f"{point.fmr:.2g} ({point.scope})",
            per_1000(false_alerts.mixed),
            per_1000(false_alerts.bound),
        )

        state = settings.device.state_dir
        running.enter_context(lock_state_dir(state))  # before anything in it is written
        config_version = Overlay.read(state / OVERLAY_FILE).version
        writer = DiskWriter()  # the loop's disk writes, off its thread (started with the link)
        counters = Counters(state / "counters.json", settings.stats.window_s, write=writer.submit)  # reads only: first
        outbox = running.enter_context(Outbox(state / "outbox.sqlite"))
        if (awaited := awaited_gallery(settings)) is not None:  # the empty gallery the loaded matcher stands for
            GalleryStore.create(awaited, vision.embedder.model_id, vision.embedder.sha256, scaler=cohort).close()
        counters.dropped_messages = lambda: outbox.dropped
        status = StatusPayload(
            state="online",
            device_id=device,
            site=site,
            ts=datetime.now(timezone.utc),
            started_at=datetime.now(timezone.utc),
            versions=Versions(
                software=__version__,
                detector_model_id=vision.detector.entry.model_id,
                embedder_model_id=vision.embedder.model_id,
                embedder_sha256=vision.embedder.sha256,
                gallery_version=matcher.version,
            ),
            details={
                **operating_details(point, false_alerts, config_version),
                "metric": vision.embedder.metric,
                "gallery_identities": len(matcher.identity_ids),
            },
        )
        link = MqttLink(options, topics, outbox, status)
        for topic, config in discovery.items():
            link.announce(topic, config)
        loop = build_loop(settings, vision, matcher, threshold, counters, writer.defer(link.publish))
        link.publish(
            "config/reported",
            ConfigReported(
                version=config_version,
                ts=datetime.now(timezone.utc),
                device_id=device,
                site=site,
                config=effective_config(settings, point),
                status=None if rolled_back is None else "rolled_back",
                answered_version=None if rolled_back is None else rolled_back.version,
                last_error=None if rolled_back is None else rolled_back.reason[:2000],
            ),
            retain=True,
        )
        link.start()
        writer.start()
        watcher = GalleryWatcher(
            settings.match,
            point,
            vision.embedder.entry,
            matcher,
            loop.swap_matcher,
            link,
            status.versions,
            cohort,
        )
        watcher.start()  # after the link, which republishes the status it changes
        audit = AuditLog(state / AUDIT_LOG)
        pushes = None
        if push is not None:
            pushes = RemoteGallery(push, f"{site}/{device}", vision.embedder.entry, watcher, link, state, pushed, audit)
            pushes.start()
        remote = None
        if fleet_key is not None and reload is not None:
            false_alerts_of = functools.partial(checked_false_alerts, cohort=cohort)
            builders = Builders(build_camera_vision, operating_point, false_alerts_of, effective_config)
            now = Running(settings, point, false_alerts)
            remote = RemoteConfig(
                now, reload, fleet_key, link, loop, camera, builders, state / OVERLAY_FILE, audit, watcher
            )
            remote.start()
        notifier = Notifier.from_env()  # systemd: READY=1 now, WATCHDOG=1 while frames flow
        try:
            link.require_connected(settings.mqtt.connect_timeout_s)
            notifier.ready()
            frames = loop.run(camera, stop, max_frames, notifier)
        finally:
            notifier.stopping()
            if remote is not None:
                remote.stop()  # first: it changes the loop and the camera
            if pushes is not None:
                pushes.stop()  # first: it swaps galleries through the watcher
            watcher.stop()  # first: no status change after the link's offline
            camera.stop()
            writer.stop()  # every event and the last window into the outbox before the link flushes
            if not link.flush(settings.mqtt.connect_timeout_s):
                log.warning("broker did not acknowledge everything in time; the outbox keeps the rest")
            link.stop()
            pending = outbox.count_pending()
    return RunSummary(frames, dict(counters.totals), pending)
