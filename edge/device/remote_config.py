"""Remote configuration: `config/set` from the centre, checked, applied between frames, reported.

Threads: paho's thread only queues (`Inbox`, size limit before parsing); the "config" thread
checks each message and prepares the change; the loop's thread installs it between two frames
(`Loop.between_frames`), so no frame sees half of it.

Each message, in order: size; JSON; the fleet's Ed25519 signature (nothing else is read
before it holds); the message schema; a version above the one in force (no replay); only
`SETTABLE` keys, of the right types; the whole candidate configuration validated by the same
settings loader the device starts with (the candidate overlay written beside the real one and
loaded with the device's file, environment and flags); then what the change needs (operating
point, false-alert limit, a new vision pipeline for `models.*`, built on this thread). Any
failure is `rejected`, nothing changed. Then the overlay is replaced atomically, and the loop
installs the change: new threshold, gate, tracker and window at once, the camera reopened for
`camera.*`. Every outcome goes to the retained `config/reported` and the audit log.

Rollback: the change stays on trial for three times `fleet.rollback_after_s`. If in that time
no frame is processed, or the broker cannot be reached, for `fleet.rollback_after_s` (a camera
that broke at once or soon after), the last good overlay is
restored (same atomic write), installed, and reported `rolled_back`; the version is kept, so
the same message cannot be replayed. A camera that cannot even be opened is rolled back at
once. A restart during a trial resumes the trial.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from edge.atomic import remove_temporaries, temporary_beside, write_atomically
from edge.atomic import replace as replace_file
from edge.config import ConfigError, Settings, describe_validation_error
from edge.device.audit import AuditLog
from edge.device.camera import Camera
from edge.device.gallery_watch import GalleryWatcher
from edge.device.inbox import Inbox, Received, Refused, claimed_version, require_newer, signed_object
from edge.device.loop import Loop
from edge.device.overlay import MAX_MESSAGE_BYTES, Overlay, check_keys, sections_changed, shadowed
from edge.device.parts import (
    build_tracker,
    camera_vision,
    checked_false_alerts,
    effective_config,
    operating_point,
)
from edge.link import ConfigReported, MqttLink
from edge.link.payloads import ConfigSet, Scalar, utc_now
from edge.service import ServiceThread
from edge.vision import QualityGate, Vision
from edge.vision.cohort import Cohort
from edge.vision.false_alerts import FalseAlerts
from edge.vision.operating_point import OperatingPoint
from edge.vision.runtime import ModelError
from edge.vision.scene import SceneCutDetector

log = logging.getLogger(__name__)

Reload = Callable[[Path], Settings]
"""The device's settings loaded again with another overlay file (same file, environment, flags)."""
Outcome = Literal["applied", "rejected", "rolled_back"]
TRIAL_PERIODS = 3  # a change is on trial for this many fleet.rollback_after_s


@dataclass(frozen=True)
class Running:
    """A configuration and what it resolves to; `vision` is set when it needs a new pipeline."""

    settings: Settings
    point: OperatingPoint
    false_alerts: FalseAlerts
    vision: Vision | None = None


def operating_details(point: OperatingPoint, false_alerts: FalseAlerts, version: int) -> dict[str, Scalar]:
    """The status details that say which configuration and operating point are in force."""
    return {
        "threshold": point.threshold,
        "fmr": point.fmr,
        "target_fmr": point.target_fmr,
        "fmr_scope": point.scope,
        "threshold_origin": point.origin,
        **false_alerts.details(),
        "config_version": version,
    }


class RemoteConfig:
    """The "config" thread: `start()` subscribes and runs, `stop()` ends it."""

    def __init__(
        self,
        running: Running,
        reload: Reload,
        key: Ed25519PublicKey,
        link: MqttLink,
        loop: Loop,
        camera: Camera,
        cohort: Cohort,
        overlay_path: Path,
        audit: AuditLog,
        gallery: GalleryWatcher,
    ) -> None:
        self._running = running
        self._gallery = gallery
        self._reload = reload
        self._key = key
        self._link = link
        self._loop = loop
        self._camera = camera
        self._cohort = cohort
        self._path = overlay_path
        self._audit = audit
        self._overlay = Overlay.read(overlay_path)
        remove_temporaries(overlay_path)  # of a killed process
        self._trial_since = time.monotonic() if self._overlay.trial else None  # a restart resumes a trial
        self._broker_seen = time.monotonic()
        self.inbox = Inbox(MAX_MESSAGE_BYTES)
        self._thread = ServiceThread("config", self._run)

    def start(self) -> None:
        self._link.subscribe("config/set", self.inbox.offer)
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def _run(self) -> None:
        while not self._thread.stopping.is_set():
            try:
                received = self.inbox.take(0.25)
                if received is not None:
                    self._handle(received)
                self._watch()
            except Exception:  # keep answering: one bad message must not end remote configuration
                log.exception("remote configuration failed")

    # -- one message -------------------------------------------------------------------------

    def _handle(self, received: Received) -> None:
        claimed, keys = claimed_version(received), []
        try:
            signed_object(received, self._key)
            try:
                change = ConfigSet.model_validate_json(received.payload or b"")
            except ValidationError as e:
                raise Refused(describe_validation_error(e)) from None
            keys = sorted({*change.set, *change.unset})
            require_newer(change.version, self._overlay.version, "config")
            check_keys(change.set, change.unset)
            candidate = self._overlay.changed(change.set, change.unset, change.version)
            prepared = self._persist(candidate, change.set)
        except Refused as e:
            log.warning("config/set refused: %s", e)
            self._report("rejected", claimed, str(e), keys)
            return
        self._overlay = candidate
        try:
            installed = self._install(prepared)
        except Exception as e:  # the camera of the change cannot be opened; the old one runs again
            self._roll_back(f"cannot apply version {change.version}: {e}", claimed, keys, reinstall=False)
            return
        if installed:
            self._trial_since = time.monotonic()
            log.info("config version %d applied: %s", change.version, ", ".join(keys))
            self._report("applied", claimed, None, keys)

    def _persist(self, candidate: Overlay, set_: dict[str, Any]) -> Running:
        """Validate `candidate` as the device's whole configuration, prepare what it needs, and
        only then make it the overlay on disk; `Refused` leaves the disk as it was."""
        try:
            temporary = temporary_beside(self._path, candidate.encode())
        except OSError as e:
            raise Refused(f"cannot write {self._path.name}: {e.strerror or e}") from None
        try:
            try:
                settings = self._reload(temporary)
            except ConfigError as e:
                raise Refused(str(e)) from None
            hidden = shadowed(settings, set_)
            if hidden:
                raise Refused(
                    f"{', '.join(hidden)}: set on the device by a flag or an EDGE_ variable, which outrank "
                    "remote configuration"
                )
            prepared = self._prepare(settings)
            replace_file(temporary, self._path)
        finally:
            temporary.unlink(missing_ok=True)
        return prepared

    def _prepare(self, settings: Settings) -> Running:
        """What `settings` resolve to, built off the loop's thread; `Refused` when they cannot run."""
        try:
            point = operating_point(settings, self._loop.vision.embedder.entry)
            false_alerts = checked_false_alerts(settings, point, self._loop.matcher, self._cohort)
            vision = camera_vision(settings) if "models" in sections_changed(self._running.settings, settings) else None
        except (ConfigError, ModelError) as e:
            raise Refused(str(e)) from None
        return Running(settings, point, false_alerts, vision)

    def _install(self, new: Running) -> bool:
        """Hand `new` to the loop, between two frames; False when the device stopped first."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def change() -> None:
            try:
                self._swap_in(new)
            except BaseException as e:
                done.set_exception(e)
            else:
                done.set_result(None)

        self._loop.between_frames(change)
        while not self._thread.stopping.is_set():
            try:
                done.result(timeout=0.25)
            except concurrent.futures.TimeoutError:
                continue
            self._running = replace(new, vision=None)
            self._gallery.use_operating_point(new.settings.match, new.point)
            return True
        return False

    def _swap_in(self, new: Running) -> None:
        """On the loop's thread. The camera first: if it fails, nothing else has changed."""
        old, s, loop = self._running.settings, new.settings, self._loop
        if s.camera != old.camera:
            self._camera.reopen(s.camera)
        if s.tracker != old.tracker:
            loop.finish()
            loop.tracker = build_tracker(s.tracker)
            loop.scene = SceneCutDetector(s.tracker.scene_cut_threshold)
        if new.vision is not None:
            loop.vision = new.vision
        loop.vision.gate = QualityGate(**s.quality.model_dump())
        loop.options = replace(
            loop.options,
            threshold=new.point.threshold,
            embed_attempts=s.tracker.embed_attempts,
            refine=s.models.refine,
        )
        loop.counters.window_s = s.stats.window_s

    # -- trial and rollback ------------------------------------------------------------------

    def _watch(self) -> None:
        """During a trial: roll back when frames or the broker stay away, confirm when neither did."""
        since = self._trial_since
        if since is None:
            return
        now = time.monotonic()
        if self._link.connected:
            self._broker_seen = now
        limit = self._running.settings.fleet.rollback_after_s
        version = self._overlay.version
        if now - max(since, self._loop.last_frame_at) >= limit:
            self._roll_back(f"no frame for {limit:g} s after version {version} was applied", version, [])
        elif now - max(since, self._broker_seen) >= limit:
            self._roll_back(f"broker unreachable for {limit:g} s after version {version} was applied", version, [])
        elif now - since >= TRIAL_PERIODS * limit:
            confirmed = self._overlay.confirmed()
            try:
                write_atomically(self._path, confirmed.encode())
            except OSError as e:
                log.warning("cannot confirm config version %d on disk: %s", version, e.strerror or e)
                return
            self._overlay, self._trial_since = confirmed, None
            log.info("config version %d confirmed after %g s of frames and broker", version, now - since)

    def _roll_back(self, why: str, answered: int | None, keys: list[str], reinstall: bool = True) -> None:
        """Back to the last good overlay, on disk and (unless it still runs) in the loop."""
        target = self._overlay.rolled_back()
        self._trial_since = None
        try:
            prepared = self._persist(target, {})
        except Refused as e:  # the device's own file changed under it: keep what runs
            log.error("cannot roll back config version %d: %s", target.version, e)
            self._report("rolled_back", answered, f"{why}; the rollback failed too: {e}", keys)
            return
        self._overlay = target
        if reinstall:
            self._install(prepared)
        log.warning("config version %d rolled back: %s", target.version, why)
        self._report("rolled_back", answered, why, keys)

    # -- reporting ---------------------------------------------------------------------------

    def _report(self, outcome: Outcome, answered: int | None, error: str | None, keys: list[str]) -> None:
        r, version = self._running, self._overlay.version
        self._audit.append("config", outcome, version=answered, reason=error, keys=keys)
        self._link.publish(
            "config/reported",
            ConfigReported(
                version=version,
                ts=utc_now(),
                device_id=r.settings.device.device_id,
                site=r.settings.device.site,
                config=effective_config(r.settings, r.point),
                last_error=None if error is None else error[:2000],
                status=outcome,
                answered_version=answered,
            ),
            retain=True,
        )
        self._link.update_status(details=operating_details(r.point, r.false_alerts, version))
