"""`edge run`: build the device from its settings, check everything, then run the loop.

Start-up order is chosen so that a bad start changes nothing on disk: the models, the
gallery, the frame source and the broker are all checked before the state folder, the outbox,
the counters file or the empty gallery of a device awaiting one is created or touched. The
parts come from `edge.device.parts`, as every other command's do.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from edge import __version__
from edge.config import ConfigError, Settings
from edge.device.audit import AUDIT_LOG, AuditLog
from edge.device.camera import Camera
from edge.device.counters import Counters
from edge.device.gallery_watch import GalleryWatcher
from edge.device.overlay import OVERLAY_FILE, Overlay
from edge.device.parts import (
    Parts,
    assemble,
    awaited_gallery,
    build_loop,
    effective_config,
    home_assistant_discovery,
    mqtt_options,
    remote_config_key,
)
from edge.device.remote_config import Reload, RemoteConfig, Running, operating_details
from edge.device.remote_gallery import RemoteGallery, accepted_version, push_keys
from edge.device.sources import SourceError
from edge.device.start_fallback import StartRollback, roll_back_unstartable
from edge.device.state_dir import lock_state_dir
from edge.device.watchdog import Notifier
from edge.device.writer import DiskWriter
from edge.gallery import GalleryStore
from edge.link import ConfigReported, MqttLink, Outbox, StatusPayload, Topics, Versions, probe_broker
from edge.vision import ModelError
from edge.vision.false_alerts import per_1000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    frames: int
    totals: dict[str, int]
    outbox_pending: int


def run_device(
    settings: Settings,
    stop: threading.Event,
    max_frames: int | None = None,
    reload: Reload | None = None,
) -> RunSummary:
    """Run until `stop` is set, the source ends, or `max_frames` frames were processed.

    `reload` loads the settings again with another remote overlay (same file, environment and
    flags): remote configuration (`fleet.signing_public_key`) validates each change with it, and a
    start that a change on trial broke (its camera cannot be opened, its models cannot be loaded)
    is rolled back and started once more with the last good configuration
    (`edge.device.start_fallback`); that start says so on its first `config/reported`.
    """
    try:
        return _run(settings, stop, max_frames, reload, None)
    except (SourceError, ModelError) as e:
        rolled_back = None if reload is None else roll_back_unstartable(settings.device.state_dir, e)
        if reload is None or rolled_back is None:
            raise
        return _run(reload(settings.device.state_dir / OVERLAY_FILE), stop, max_frames, reload, rolled_back)


def _run(
    settings: Settings,
    stop: threading.Event,
    max_frames: int | None,
    reload: Reload | None,
    rolled_back: StartRollback | None,
) -> RunSummary:
    """One start: everything checked, then the services started in order and stopped in reverse.

    Two `ExitStack`s: the outer holds the resources (camera, state-folder lock, outbox), the inner
    the services, so the outbox outlives the link's last flush and its pending rows can be
    counted. Every step after the capture thread starts runs inside them, so whatever fails
    (a corrupt counters file, a foreign outbox, a locked state folder) stops that thread
    before the error leaves: a thread still decoding at interpreter exit aborts the process.
    """
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames must be at least 1, not {max_frames}")
    device, site, state = settings.device.device_id, settings.device.site, settings.device.state_dir
    parts = assemble(settings)
    push = push_keys(settings.fleet)  # None: no gallery/set
    pushed = accepted_version(state) if push is not None else 0
    fleet_key = remote_config_key(settings)
    if fleet_key is not None and reload is None:
        raise ValueError("remote configuration needs `reload`, the device's settings loader")
    camera = Camera(settings.camera)
    options = mqtt_options(settings)
    topics = Topics(site, device)
    discovery = home_assistant_discovery(settings, topics)
    probe_broker(options, f"edge-{site}-{device}", settings.mqtt.connect_timeout_s)
    with contextlib.ExitStack() as running:
        camera.start()
        running.callback(camera.stop)
        _log_start(settings, camera, parts)
        running.enter_context(lock_state_dir(state))  # before anything in it is written
        config_version = Overlay.read(state / OVERLAY_FILE).version
        writer = DiskWriter()  # the loop's disk writes, off its thread
        counters = Counters(state / "counters.json", settings.stats.window_s, write=writer.submit)  # reads only: first
        outbox = running.enter_context(Outbox(state / "outbox.sqlite"))
        if (awaited := awaited_gallery(settings)) is not None:  # the empty gallery the loaded matcher stands for
            embedder = parts.vision.embedder
            GalleryStore.create(awaited, embedder.model_id, embedder.sha256, scaler=parts.cohort).close()
        counters.dropped_messages = lambda: outbox.dropped
        status = _online_status(settings, parts, config_version)
        link = MqttLink(options, topics, outbox, status)
        for topic, config in discovery.items():
            link.announce(topic, config)
        loop = build_loop(
            settings, parts.vision, parts.matcher, parts.point.threshold, counters, writer.defer(link.publish)
        )
        link.publish("config/reported", _first_report(settings, parts, config_version, rolled_back), retain=True)
        with contextlib.ExitStack() as services:  # stopped in reverse order
            services.callback(_stop_link, link, settings.mqtt.connect_timeout_s)
            link.start()
            services.callback(writer.stop)  # every event and the last window into the outbox before the link flushes
            writer.start()
            services.callback(camera.stop)  # no frames decoded while the rest stops
            watcher = GalleryWatcher(
                settings.match,
                parts.point,
                parts.vision.embedder.entry,
                parts.matcher,
                loop.swap_matcher,
                link,
                status.versions,
                parts.cohort,
            )
            services.callback(watcher.stop)  # no status change after the link's offline
            watcher.start()  # after the link, which republishes the status it changes
            audit = AuditLog(state / AUDIT_LOG)
            if push is not None:
                pushes = RemoteGallery(
                    push, f"{site}/{device}", parts.vision.embedder.entry, watcher, link, state, pushed, audit
                )
                services.callback(pushes.stop)  # before the watcher: it swaps galleries through it
                pushes.start()
            if fleet_key is not None and reload is not None:
                now = Running(settings, parts.point, parts.false_alerts)
                remote = RemoteConfig(
                    now, reload, fleet_key, link, loop, camera, parts.cohort, state / OVERLAY_FILE, audit, watcher
                )
                services.callback(remote.stop)  # first: it changes the loop and the camera
                remote.start()
            notifier = Notifier.from_env()  # systemd: READY=1 now, WATCHDOG=1 while frames flow
            services.callback(notifier.stopping)
            link.require_connected(settings.mqtt.connect_timeout_s)
            notifier.ready()
            frames = loop.run(camera, stop, max_frames, notifier)
        pending = outbox.count_pending()
    return RunSummary(frames, dict(counters.totals), pending)


def _log_start(settings: Settings, camera: Camera, parts: Parts) -> None:
    vision, point, matcher, false_alerts = parts.vision, parts.point, parts.matcher, parts.false_alerts
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
        point.threshold,
        vision.embedder.metric,
        point.origin,
        "unknown (uncalibrated)" if point.fmr is None else f"{point.fmr:.2g} ({point.scope})",
        per_1000(false_alerts.mixed),
        per_1000(false_alerts.bound),
    )


def _online_status(settings: Settings, parts: Parts, config_version: int) -> StatusPayload:
    """The retained status the link announces at every connect."""
    vision, now = parts.vision, datetime.now(timezone.utc)
    return StatusPayload(
        state="online",
        device_id=settings.device.device_id,
        site=settings.device.site,
        ts=now,
        started_at=now,
        versions=Versions(
            software=__version__,
            detector_model_id=vision.detector.entry.model_id,
            embedder_model_id=vision.embedder.model_id,
            embedder_sha256=vision.embedder.sha256,
            gallery_version=parts.matcher.version,
        ),
        details={
            **operating_details(parts.point, parts.false_alerts, config_version),
            "metric": vision.embedder.metric,
            "gallery_identities": len(parts.matcher.identity_ids),
        },
    )


def _first_report(
    settings: Settings, parts: Parts, config_version: int, rolled_back: StartRollback | None
) -> ConfigReported:
    """The retained `config/reported` of this start: the configuration in force, and the rollback
    that made it, if one did."""
    return ConfigReported(
        version=config_version,
        ts=datetime.now(timezone.utc),
        device_id=settings.device.device_id,
        site=settings.device.site,
        config=effective_config(settings, parts.point),
        status=None if rolled_back is None else "rolled_back",
        answered_version=None if rolled_back is None else rolled_back.version,
        last_error=None if rolled_back is None else rolled_back.reason[:2000],
    )


def _stop_link(link: MqttLink, timeout_s: float) -> None:
    """Hand the broker what is queued, within `timeout_s`, then go offline; the outbox keeps the rest."""
    if not link.flush(timeout_s):
        log.warning("broker did not acknowledge everything in time; the outbox keeps the rest")
    link.stop()
