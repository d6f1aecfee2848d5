"""Galleries pushed over MQTT (`gallery/set`): checked, decrypted, written atomically, swapped in.

A push replaces the whole gallery. Its checks, in order, each refusal reported with its reason
(status detail `gallery_push_error`, a warning in the log, a line in the audit log):

1. size, before anything is parsed (`edge.link.gallery_set.MAX_BYTES`), on paho's thread;
2. JSON and the fleet's signature, before any field is read (`edge.device.inbox`);
3. the fields (`edge.link.gallery_set.fields`), the device it is for (this one), the embedder
   it was made for (the running one), a version above the last push accepted (no replay);
4. only then the sealed bundle is opened with this device's X25519 key, and the bundle is
   checked (intact, this embedder's model and sha256) and held against
   `match.max_false_alerts_per_1000_scans` as the gallery watcher would.

An accepted gallery replaces the gallery file atomically (`edge.gallery.replace_gallery`: the
old or the new file, never a mixture, also after a SIGKILL), the push version is saved in
`state_dir/gallery-push.json`, and the watcher swaps the new gallery into the loop at once, so
it is in force from the next frame. That file is written beside its place before the gallery is
touched and renamed into place after, so what is reported never disagrees with the gallery in
use: a state disk that refuses it refuses the push, the old gallery still in use. The watcher
republishes the status with the new gallery version and the expected false alerts. All of this
runs on the `gallery-push` thread: paho's thread only queues, and the loop's thread never waits
for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge.atomic import remove_temporaries, temporary_beside
from edge.atomic import replace as replace_file
from edge.config import ConfigError, FleetConfig
from edge.device.audit import AuditLog
from edge.device.inbox import (
    Inbox,
    Received,
    Refused,
    claimed_version,
    require_newer,
    signed_object,
    stored_version,
)
from edge.gallery import Bundle, GalleryError, parse_bundle, remove_leftovers, replace_gallery
from edge.link import gallery_set
from edge.link.signed import SealError, load_private_key, load_public_key, open_sealed
from edge.service import ServiceThread

if TYPE_CHECKING:
    from edge.device.gallery_watch import GalleryWatcher
    from edge.link.base import MessageHandler
    from edge.link.payloads import Scalar, Versions
    from edge.vision import ModelEntry

log = logging.getLogger(__name__)

PUSH_STATE = "gallery-push.json"
AUDIT_KIND = "gallery"
# Pushes waiting for the gallery-push thread: each may be up to MAX_BYTES, so few.
MAX_WAITING = 4
_DETAIL_CHARS = 200  # the longest string a status detail may hold


class PushLink(Protocol):
    def subscribe(self, topic_suffix: str, handler: MessageHandler) -> None: ...

    def update_status(self, *, versions: Versions | None = None, details: dict[str, Scalar] | None = None) -> None: ...


@dataclass(frozen=True)
class PushKeys:
    """The fleet's key (who may push) and this device's key (what opens a push)."""

    fleet: Ed25519PublicKey
    box: X25519PrivateKey


def push_keys(fleet: FleetConfig) -> PushKeys | None:
    """The keys from the settings; None when either is unset (no `gallery/set` subscription).
    A key file that cannot be used stops the start (`KeyFileError`)."""
    if fleet.signing_public_key is None or fleet.device_key is None:
        return None
    return PushKeys(
        load_public_key(fleet.signing_public_key, Ed25519PublicKey, "fleet.signing_public_key"),
        load_private_key(fleet.device_key, X25519PrivateKey, "fleet.device_key"),
    )


def accepted_version(state_dir: Path) -> int:
    """The version of the last push accepted (0: none yet), from `state_dir/gallery-push.json`;
    one from the future (stored before the device refused those) is replaced (`stored_version`)."""
    path = state_dir / PUSH_STATE
    try:
        version = json.loads(path.read_bytes())["version"]
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is unreadable ({e}); remove it to accept gallery pushes of any version") from None
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ConfigError(f"{path} holds version {version!r}; remove it to accept gallery pushes of any version")
    return stored_version(version, "gallery push", path)


class _InForce(Exception):
    """An identical copy of the push in force: a deployment's delivery is retained per device,
    so the broker hands it over again at every connect."""


def _accepted_digest(path: Path) -> str | None:
    """The sha256 of the message of the push in force, as `gallery-push.json` records it (None:
    not recorded, then a copy is refused as a replay, as before)."""
    try:
        digest = json.loads(path.read_bytes()).get("message_sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return digest if isinstance(digest, str) else None


class RemoteGallery:
    """The `gallery-push` thread and its `gallery/set` subscription: `start()`, `stop()`."""

    def __init__(
        self,
        keys: PushKeys,
        device: str,
        embedder: ModelEntry,
        watcher: GalleryWatcher,
        link: PushLink,
        state_dir: Path,
        accepted: int,
        audit: AuditLog,
    ) -> None:
        """`accepted`: the last push version accepted (`accepted_version`, read before start-up
        touches the state folder)."""
        self._keys = keys
        self._device = device  # "<site>/<device_id>"
        self._embedder = embedder
        self._watcher = watcher
        self._link = link
        self._state = state_dir / PUSH_STATE
        self._audit = audit
        self._accepted = accepted
        self._accepted_digest = _accepted_digest(self._state)
        self._inbox = Inbox(gallery_set.MAX_BYTES, MAX_WAITING)
        self._thread = ServiceThread("gallery-push", self._run)

    def start(self) -> None:
        """Subscribe to `gallery/set` (paho's thread only queues) and start the thread."""
        remove_leftovers(self._watcher.path)  # of a push killed half-way (biometric data)
        remove_temporaries(self._state)
        self._report(None)
        self._thread.start()
        self._link.subscribe(gallery_set.TOPIC, self._inbox.offer)

    def stop(self) -> None:
        self._thread.stop()

    def _run(self) -> None:
        while not self._thread.stopping.is_set():
            received = self._inbox.take(0.5)
            if received is not None:
                self._handle(received)

    def _handle(self, received: Received) -> None:
        try:
            version, bundle = self._apply(received)
        except _InForce:
            log.info("gallery push %d is the one in force, received again: nothing to do", self._accepted)
            return
        except Refused as e:
            self._refuse(received, str(e))
            return
        except Exception as e:  # nothing a message holds may stop this thread
            log.exception("gallery push could not be handled")
            self._refuse(received, f"cannot be handled: {type(e).__name__}: {e}")
            return
        self._audit.append(
            AUDIT_KIND,
            "accepted",
            version=version,
            reason=f"gallery version {bundle.version}: {len(bundle.identities)} people",
        )
        self._report(None)
        log.info(
            "gallery push %d accepted: gallery version %s with %d people, in use from the next frame",
            version,
            bundle.version,
            len(bundle.identities),
        )

    def _apply(self, received: Received) -> tuple[int, Bundle]:
        """Check, open and install one push; `Refused` with the reason for anything wrong."""
        signed_object(received, self._keys.fleet)  # size, JSON, signature: before anything else
        assert received.payload is not None  # signed_object refuses a message without one
        try:
            push = gallery_set.fields(received.payload)
        except gallery_set.GallerySetError as e:
            raise Refused(str(e)) from None
        if push.device != self._device:
            raise Refused(f"gallery push for device {push.device}, this is {self._device}")
        embedder = self._embedder
        if push.embedder_model_id != embedder.model_id:
            raise Refused(f"gallery push for embedder {push.embedder_model_id}, this device runs {embedder.model_id}")
        digest = hashlib.sha256(received.payload).hexdigest()
        if push.version == self._accepted and digest == self._accepted_digest:  # this very message, again
            raise _InForce
        require_newer(push.version, self._accepted, "gallery push")
        try:
            bundle = parse_bundle(open_sealed(push.sealed, self._keys.box), f"gallery push {push.version}'s bundle")
        except (SealError, GalleryError) as e:
            raise Refused(str(e)) from None
        refusal = self._watcher.over_limit(bundle.version, {r.identity_id: len(r.templates) for r in bundle.identities})
        if refusal is not None:
            raise Refused(refusal)
        saved = self._prepare_state(push.version, bundle.version, digest)
        try:
            try:
                replace_gallery(
                    self._watcher.path, bundle, embedder.model_id, embedder.sha256, scaler=self._watcher.cohort
                )
            except GalleryError as e:  # another embedder's sha256, a full disk
                raise Refused(str(e)) from None
            # The new gallery is in force from here (the watcher would find it at its next poll):
            # accepted, whatever follows. The version after the gallery: a kill in between
            # re-applies the same push, never loses one.
            self._accepted, self._accepted_digest = push.version, digest
            self._save_state(saved, push.version)
        finally:
            saved.unlink(missing_ok=True)
        self._watcher.check()  # swapped in now, not at the next poll
        return push.version, bundle

    def _prepare_state(self, version: int, gallery_version: str, message_sha256: str) -> Path:
        """`gallery-push.json` for this push, written beside the real one before the gallery is
        touched: a state disk that refuses it refuses the push with the old gallery in use."""
        state = {
            "version": version,
            "gallery_version": gallery_version,
            "message_sha256": message_sha256,  # an identical copy (a retained delivery) is dropped
            "accepted_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        }
        try:
            return temporary_beside(self._state, json.dumps(state).encode())
        except OSError as e:
            raise Refused(f"cannot write {PUSH_STATE}: {e.strerror or e}") from None

    def _save_state(self, prepared: Path, version: int) -> None:
        """Rename the prepared state over `gallery-push.json`. The gallery is in use already, so a
        failure here (all but impossible once the file is written) is logged, not a refusal."""
        try:
            replace_file(prepared, self._state)
        except OSError as e:
            log.error(
                "gallery push %d is in use, but %s cannot be replaced (%s): after a restart this push, "
                "or an older one, would be accepted again",
                version,
                self._state,
                e.strerror or e,
            )

    def _refuse(self, received: Received, why: str) -> None:
        version = claimed_version(received)
        self._audit.append(AUDIT_KIND, "refused", version=version, reason=why)
        log.warning("gallery push %s refused: %s", "?" if version is None else version, why)
        self._report(f"push {'?' if version is None else version} refused: {why}")

    def _report(self, error: str | None) -> None:
        if error is not None and len(error) > _DETAIL_CHARS:
            error = error[: _DETAIL_CHARS - 3] + "..."
        self._link.update_status(details={"gallery_push_version": self._accepted, "gallery_push_error": error})
