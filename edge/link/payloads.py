"""Every MQTT payload the device sends, as strict pydantic models, and the topic names.

Topic root: `edge/<site>/<device_id>/`, then `status`, `match`, `stats`, `config/set`,
`config/reported`, `gallery/set` (docs/pages/mqtt.md, "MQTT contract"). Payloads are UTF-8 JSON.

Rules every model here follows:
- `extra="forbid"`, `strict=True`, frozen: a misspelt or mistyped field is an error on
  both ends, never a silent default.
- Timestamps are timezone-aware and normalised to UTC; JSON carries ISO 8601 with `Z`.
- Every value is bounded where it is parsed, so nothing reaches a database column that cannot
  hold it: integers fit a signed 64-bit column (counters of one window far below), floats are
  finite and bounded, times lie in [1970, 2100), a stats window is at most `MAX_WINDOW` long,
  and no string carries NUL or a control character (free text may hold tab and newline).
- Metadata only: no field may carry an image or a face embedding.
  `tests/test_payloads.py` walks every field and fails on bytes or numeric arrays; the two
  free-form fields (`StatusPayload.details`, `ConfigReported.config`) are guarded by value.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

TOPIC_PREFIX = "edge"

# Site and device ids become topic levels: no '/', '+', '#', spaces or empty strings.
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(_ID_PATTERN)
_UUID4_HEX = r"^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$"

# A free-form value may hold a short list of numbers (a region of interest, a size), never a
# vector: a list with more numbers than this is refused as a possible embedding.
MAX_NUMBERS_IN_A_LIST = 16
# Likewise a long string could smuggle an encoded image or vector.
MAX_FREE_STRING = 1024
MAX_DETAILS = 32

INT64_MAX = 2**63 - 1
"""The largest id, version or time a payload may carry: what a signed 64-bit column holds."""
MAX_COUNT = 10**12
"""The largest count in one stats window (about 11.6 million a second over `MAX_WINDOW`): the sum
of millions of windows still fits a 64-bit column."""
MAX_MEASURE = 1e9
"""The largest float a payload carries (fps, milliseconds, distances); finite floats only."""
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)
MAX_WINDOW = timedelta(days=2)
"""The longest stats window: `device.window_s` is at most a day; a day more for a stalled loop."""

# Any C0 control character or DEL; free text (`FreeText`) allows tab, newline and carriage return.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _to_utc(value: datetime) -> datetime:
    value = value.astimezone(timezone.utc)
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"time {value.isoformat()} is outside {EARLIEST.year}-{LATEST.year - 1}")
    return value


def escape_control(text: str) -> str:
    """Each control character written as an escape (`\\x00`): a hostile string shown safely."""
    return CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _no_control(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("contains a NUL or control character")
    return value


def _no_control_in_text(value: str) -> str:
    if _CONTROL_IN_TEXT.search(value):
        raise ValueError("contains a NUL or control character")
    return value


Ident = Annotated[str, StringConstraints(pattern=_ID_PATTERN)]
"""A site or device id: 1-64 of letters, digits, `_`, `.`, `-`, starting with a letter or digit."""

UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware time in [1970, 2100), stored and sent as UTC. Naive times are refused."""


NoControl = AfterValidator(_no_control)
"""Refuses NUL and every other control character (ids, labels, one-line reasons)."""
NoControlInText = AfterValidator(_no_control_in_text)
"""Refuses NUL and control characters other than tab and line breaks (error messages)."""


Label = Annotated[str, StringConstraints(min_length=1, max_length=128), NoControl]
"""A non-empty short string (model ids, versions, identity ids): no NUL or control characters."""

Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
"""A count of one stats window."""

Int64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A non-negative id or version that a signed 64-bit column holds."""

Measure = Annotated[float, Field(ge=0, le=MAX_MEASURE, allow_inf_nan=False)]
"""A finite non-negative float (fps, milliseconds, a distance)."""

Scalar = (
    Annotated[str, StringConstraints(max_length=200), NoControl]
    | Annotated[int, Field(ge=-INT64_MAX, le=INT64_MAX)]
    | Annotated[float, Field(ge=-MAX_MEASURE, le=MAX_MEASURE, allow_inf_nan=False)]
    | bool
    | None
)
"""One operator detail: a short string, a 64-bit integer, a finite float, a flag or nothing."""


def utc_now() -> datetime:
    """The current time in UTC, the form every timestamp field takes."""
    return datetime.now(timezone.utc)


def new_event_id() -> str:
    """A fresh UUID4 in hex (32 lowercase hex digits), the de-duplication key of an event."""
    return uuid.uuid4().hex


P = TypeVar("P", bound="Payload")


class Payload(BaseModel):
    """Base of every payload: strict, frozen, JSON in and out."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @property
    def message_id(self) -> str | None:
        """The key receivers de-duplicate on, when the payload has one (None: a fresh id)."""
        return None

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls: type[P], data: str | bytes) -> P:
        """Parse and validate one payload; raises `pydantic.ValidationError` on any mismatch."""
        return cls.model_validate_json(data)


class Versions(Payload):
    """What the device runs; lets the centre tell which results came from which models."""

    software: Label = Field(description="Version of the `edge` package, e.g. '0.1.0'.")
    detector_model_id: Label = Field(description="Detector id from models/manifest.json.")
    embedder_model_id: Label = Field(description="Embedder id from models/manifest.json.")
    embedder_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,64}$")] = Field(
        description="Leading hex digits (8 to 64, lowercase) of the embedder file's sha256."
    )
    gallery_version: Label | None = Field(
        default=None, description="Version of the loaded gallery; None when none is loaded."
    )


class StatusPayload(Payload):
    """`status`, QoS 1, retained: `online` (or `degraded`) birth from each connect and on each
    change of health, `offline` will and stop."""

    state: Literal["online", "degraded", "offline"] = Field(
        description="'online' while connected and healthy; 'degraded' while connected but a fault "
        "needs an operator (`reason` says which, e.g. a full state disk); 'offline' after a clean "
        "stop or as last will."
    )
    reason: Annotated[str, StringConstraints(max_length=200), NoControl] | None = Field(
        default=None, description="Why the state is 'degraded'; None otherwise."
    )
    device_id: Ident = Field(description="The device, as in the topic.")
    site: Ident = Field(description="The site, as in the topic.")
    ts: UtcDatetime = Field(
        description="When this status was made. For the last will: when it was registered "
        "with the broker (the connect), not when the broker sent it."
    )
    started_at: UtcDatetime = Field(description="When the device process started (UTC).")
    versions: Versions = Field(description="Software and model versions running.")
    details: dict[str, Scalar] = Field(
        default_factory=dict,
        max_length=MAX_DETAILS,
        description="Up to 32 named scalar values for operators, e.g. the effective threshold.",
    )


class MatchEvent(Payload):
    """`match`, QoS 1: one alert, i.e. one track whose best score crossed the threshold.

    A track produces at most one event; `event_id` is the de-duplication key (QoS 1 and the
    outbox may deliver an event more than once, never zero times).
    """

    event_id: Annotated[str, StringConstraints(pattern=_UUID4_HEX)] = Field(
        default_factory=new_event_id, description="UUID4 as 32 lowercase hex digits."
    )
    ts: UtcDatetime = Field(description="When the best-scoring face of the track was seen (UTC).")
    device_id: Ident = Field(description="The device that saw it.")
    site: Ident = Field(description="The device's site.")
    track_id: Int64 = Field(description="The tracker's id for this person pass; unique within one device run only.")
    identity_id: Label = Field(description="The enrolled identity matched (gallery id, no name).")
    score: Measure = Field(
        description="Distance between the track's best embedding and the identity: lower is "
        "closer. A match has score <= template_threshold (<= threshold when that is absent)."
    )
    threshold: Measure = Field(
        description="The threshold in force (same unit): with per-template thresholds, the knob that "
        "multiplies each template's scale; with one global threshold, that threshold."
    )
    template_threshold: Measure | None = Field(
        None,
        description="The threshold of the template that matched (knob x its scale, rounded up to 4 decimals); "
        "equal to `threshold` with one global threshold. Absent from devices before per-template thresholds.",
    )
    template_id: Label | None = Field(
        None,
        description="Opaque id of the template that matched (16 hex digits of a hash of it; not a descriptor, "
        "nothing of the face can be recovered from it): the central host ties an alert adjudicated false to "
        "that template. Absent from devices before this change.",
    )
    metric: Literal["cosine", "euclidean"] = Field(
        description="How `score` was computed: 'cosine' is 1 - cosine similarity (0 to 2); "
        "'euclidean' is the L2 distance between embeddings."
    )
    model_id: Label = Field(description="Embedder model id the score comes from.")
    gallery_version: Label = Field(description="Version of the gallery matched against.")
    window_id: Label = Field(description="`StatsPayload.window_id` of the counters window this match is counted in.")

    @model_validator(mode="after")
    def _is_a_match(self) -> MatchEvent:
        limit = self.threshold if self.template_threshold is None else self.template_threshold
        if self.score > limit:
            raise ValueError(f"score {self.score} is above threshold {limit}: not a match")
        return self

    @property
    def message_id(self) -> str:
        return self.event_id


class StatsPayload(Payload):
    """`stats`, QoS 1: counters for one window (definitions: docs/pages/device.md, "Counters").

    The centre sums windows keyed by `window_id`, so a repeated message changes no total.
    """

    window_id: Annotated[str, StringConstraints(pattern=r"^\S{1,200}$"), NoControl] = Field(
        description="Unique id of this window, e.g. '<device_id>:<boot_id>:<seq>'; the key "
        "the central sum de-duplicates on. Re-sending a window must reuse its id."
    )
    device_id: Ident = Field(description="The device counted.")
    site: Ident = Field(description="The device's site.")
    window_start: UtcDatetime = Field(description="Start of the window, inclusive (UTC).")
    window_end: UtcDatetime = Field(description="End of the window, exclusive (UTC).")
    frames: Count = Field(description="Frames the loop processed.")
    frames_dropped: Count = Field(description="Frames the camera delivered that the loop skipped (newer one waiting).")
    detections: Count = Field(description="Face boxes above the detector threshold, summed over frames.")
    scans: Count = Field(description="Tracks that passed the quality gate, then embedded.")
    quality_rejected: Count = Field(description="Tracks that never passed quality gate.")
    matches: Count = Field(
        description="Scans whose score crossed the threshold in this window (the scan itself may "
        "have been counted in the previous window, so matches may exceed scans in one window)."
    )
    messages_dropped: Count = Field(
        default=0,
        description="Messages (events, windows) lost in this window because the state disk refused "
        "them and the memory queue that holds them meanwhile was full too; 0 on a healthy device.",
    )
    fps: Measure = Field(description="frames / window length in seconds.")
    latency_ms_p50: Measure | None = Field(
        description="Median per-frame processing time in milliseconds; None when frames == 0."
    )
    latency_ms_p95: Measure | None = Field(
        description="95th percentile per-frame processing time in ms; None when frames == 0."
    )

    @model_validator(mode="after")
    def _consistent(self) -> StatsPayload:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        if self.window_end - self.window_start > MAX_WINDOW:
            raise ValueError(f"window is longer than {MAX_WINDOW.days} days")
        p50, p95 = self.latency_ms_p50, self.latency_ms_p95
        if p50 is not None and p95 is not None and p50 > p95:
            raise ValueError(f"latency p50 ({p50}) is above p95 ({p95})")
        return self

    @property
    def message_id(self) -> str:
        return self.window_id


def _no_vectors(value: JsonValue, where: str = "config") -> JsonValue:
    """Refuse what could smuggle an embedding or image into free-form JSON, and what no
    database column holds: integers beyond 64 bits, non-finite floats, control characters."""
    if isinstance(value, str):
        if len(value) > MAX_FREE_STRING:
            raise ValueError(
                f"{where}: a string of {len(value)} characters may be encoded data; payloads never "
                f"carry images or embeddings (at most {MAX_FREE_STRING} characters)"
            )
        if _CONTROL_IN_TEXT.search(value):
            raise ValueError(f"{where}: a string contains a NUL or control character")
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int) and not -INT64_MAX <= value <= INT64_MAX:
        raise ValueError(f"{where}: integer {value} does not fit 64 bits")
    elif isinstance(value, float) and not (math.isfinite(value) and abs(value) <= MAX_MEASURE):
        raise ValueError(f"{where}: {value} is not a finite number within +-{MAX_MEASURE:g}")
    if isinstance(value, list):
        numbers = sum(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if numbers > MAX_NUMBERS_IN_A_LIST:
            raise ValueError(
                f"{where}: a list of {numbers} numbers looks like a vector; payloads never "
                f"carry embeddings (at most {MAX_NUMBERS_IN_A_LIST} numbers per list)"
            )
        for i, v in enumerate(value):
            _no_vectors(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            if CONTROL_CHARACTERS.search(k):
                raise ValueError(f"{where}: key {k!r} contains a NUL or control character")
            _no_vectors(v, f"{where}.{k}")
    return value


class ConfigReported(Payload):
    """`config/reported`, QoS 1, retained: the configuration the device actually runs."""

    version: Int64 = Field(description="Version of the remote config in force (from `config/set`); 0 = none yet.")
    ts: UtcDatetime = Field(description="When this config took effect or the error happened (UTC).")
    device_id: Ident = Field(description="The device reporting.")
    site: Ident = Field(description="The device's site.")
    config: Annotated[dict[str, JsonValue], AfterValidator(_no_vectors)] = Field(
        description="The effective configuration as JSON, secrets removed by the sender."
    )
    last_error: Annotated[str, NoControlInText] | None = Field(
        default=None,
        max_length=2000,
        description="Why the last `config/set` was refused or rolled back (previous config kept); else None.",
    )
    status: Literal["applied", "rejected", "rolled_back"] | None = Field(
        default=None,
        description="What became of the last `config/set`: 'applied' (in force), 'rejected' (refused, "
        "nothing changed), 'rolled_back' (applied, then the last good configuration restored); None "
        "when none came since the device started.",
    )
    answered_version: Int64 | None = Field(
        default=None,
        description="The version the last `config/set` claimed, so the sender can tell its answer; "
        "None when it had none readable.",
    )


DottedKey = Annotated[str, StringConstraints(pattern=r"^[a-z_]+\.[a-z0-9_]+$")]
"""A setting as `section.key`."""

SettingValue = (
    Annotated[str, StringConstraints(max_length=MAX_FREE_STRING), NoControl]
    | Annotated[int, Field(ge=-INT64_MAX, le=INT64_MAX)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | bool
    | None
)
"""One setting's value: every remotely settable setting is a scalar (a camera pipeline may be long)."""


class ConfigSet(Payload):
    """`config/set`, centre -> device, QoS 1: a signed change to the device's remote overlay.

    The signature (`edge.link.signed.sign` with the fleet key) covers every other field.
    """

    version: Annotated[int, Field(ge=1, le=INT64_MAX)] = Field(
        description="Must be above the version in force on the device (no replay); Unix milliseconds when "
        "`edge fleet config set` issues it."
    )
    issued_at: UtcDatetime = Field(description="When the centre issued it (UTC); for the audit log.")
    set: dict[DottedKey, SettingValue] = Field(
        default_factory=dict, description="Dotted keys (`match.threshold`) and their new values (scalars)."
    )
    unset: list[DottedKey] = Field(
        default_factory=list, description="Dotted keys removed from the overlay (back to the device's file)."
    )
    signature: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="Base64 Ed25519 signature over the canonical form of the other fields."
    )


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names under `edge/<site>/<device_id>/`."""

    site: str
    device_id: str

    def __post_init__(self) -> None:
        for name in ("site", "device_id"):
            value = getattr(self, name)
            if not _ID_RE.match(value):
                raise ValueError(
                    f"{name} {value!r} cannot be a topic level: use 1-64 letters, digits, "
                    "'_', '.', '-', starting with a letter or digit"
                )

    @property
    def root(self) -> str:
        return f"{TOPIC_PREFIX}/{self.site}/{self.device_id}"

    def topic(self, suffix: str) -> str:
        """`root/suffix`; the suffix must be a plain topic path (no wildcards, no leading '/')."""
        plain = suffix and not suffix.startswith("/") and not suffix.endswith("/")
        if not plain or any(c in suffix for c in "+#\0"):
            raise ValueError(f"topic suffix {suffix!r} is not a plain topic path")
        return f"{self.root}/{suffix}"

    @property
    def status(self) -> str:
        return self.topic("status")

    @property
    def match(self) -> str:
        return self.topic("match")

    @property
    def stats(self) -> str:
        return self.topic("stats")

    @property
    def config_set(self) -> str:
        return self.topic("config/set")

    @property
    def config_reported(self) -> str:
        return self.topic("config/reported")

    @property
    def gallery_set(self) -> str:
        return self.topic("gallery/set")
