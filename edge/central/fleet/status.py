"""`edge fleet status`: one row per device, from what the broker retains for it.

Each device keeps two retained messages: `status` (state, versions, operating point; refreshed
while connected) and `config/reported` (the configuration in force and the last refusal). They
are read as sent, and read defensively: a message that does not parse is shown as malformed,
never taken for a healthy device, and one bad device does not hide the others.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from edge.central.fleet.client import retained
from edge.link import ConfigReported, MqttOptions, StatusPayload, utc_now
from edge.link.payloads import TOPIC_PREFIX
from edge.vision.false_alerts import Expectation, FalseAlerts

# A device refreshes its retained status at least every keepalive (30 s by default, 3.1.1 or 5):
# an online status older than this is what a broker that cannot expire it (MQTT 3.1.1, or a
# restart from its persistence file) keeps of a device that died.
DEFAULT_STALE_AFTER_S = 600.0


@dataclass
class DeviceRow:
    """What the centre knows of one device; None where a message did not say."""

    device: str  # "<site>/<device_id>"
    state: str = "unknown"  # online, degraded, offline, malformed, unknown (no status retained)
    stale: bool = False  # an online/degraded status whose ts is older than the stale limit
    reason: str | None = None  # why degraded
    last_seen: datetime | None = None
    software: str | None = None
    detector: str | None = None
    embedder: str | None = None
    config_version: int | None = None
    config_outcome: str | None = None  # what became of the last config/set: applied, rejected, rolled_back
    config_answered: int | None = None  # the version that last config/set claimed
    gallery_version: str | None = None
    threshold: float | None = None
    fmr: float | None = None
    false_alerts_per_1000_mixed: Expectation = field(default_factory=lambda: Expectation(None))
    false_alerts_per_1000_bound: Expectation = field(default_factory=lambda: Expectation(None))
    last_refused: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["last_seen"] = self.last_seen.isoformat() if self.last_seen else None
        return data


def _short(error: ValidationError | ValueError) -> str:
    """The first problem of a parse error, on one line."""
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
        return f"{where}: {first['msg']}{more}"
    return str(error).splitlines()[0]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _apply_status(row: DeviceRow, payload: bytes, now: datetime, stale_after_s: float) -> None:
    try:
        status = StatusPayload.from_json(payload)
    except (ValidationError, ValueError) as e:
        row.state = "malformed"
        row.problems.append(f"status is malformed: {_short(e)}")
        return
    row.state, row.reason, row.last_seen = status.state, status.reason, status.ts
    row.stale = status.state != "offline" and now - status.ts > timedelta(seconds=stale_after_s)
    v = status.versions
    row.software, row.detector, row.embedder, row.gallery_version = (
        v.software,
        v.detector_model_id,
        v.embedder_model_id,
        v.gallery_version,
    )
    d = status.details
    row.threshold = _number(d.get("threshold"))
    row.fmr = _number(d.get("fmr"))
    expected = FalseAlerts.from_details(d)
    row.false_alerts_per_1000_mixed, row.false_alerts_per_1000_bound = expected.mixed, expected.bound
    # A refused gallery/set push, else a gallery file the device could not load.
    refused = next((d[k] for k in ("gallery_push_error", "gallery_error") if isinstance(d.get(k), str)), None)
    if refused:
        row.last_refused = f"gallery: {refused}"


def _apply_reported(row: DeviceRow, payload: bytes) -> None:
    try:
        reported = ConfigReported.from_json(payload)
    except (ValidationError, ValueError) as e:
        row.problems.append(f"config/reported is malformed: {_short(e)}")
        return
    row.config_version = reported.version
    row.config_outcome, row.config_answered = reported.status, reported.answered_version
    if reported.last_error:
        row.last_refused = f"config: {reported.last_error}"  # a config refusal is named before a gallery one
    point = reported.config.get("operating_point")
    if isinstance(point, dict):  # the status's figures win; these fill in for a device offline since
        row.threshold = row.threshold if row.threshold is not None else _number(point.get("threshold"))
        row.fmr = row.fmr if row.fmr is not None else _number(point.get("fmr"))


def _device_of(topic: str, suffix: str) -> str | None:
    """`edge/<site>/<device>/<suffix>` -> "<site>/<device>"; None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 3 + suffix.count("/") + 1 or parts[0] != TOPIC_PREFIX or "/".join(parts[3:]) != suffix:
        return None
    return f"{parts[1]}/{parts[2]}"


def fleet_rows(
    statuses: dict[str, bytes],
    reports: dict[str, bytes],
    now: datetime | None = None,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
) -> list[DeviceRow]:
    """Rows, sorted by device, from the retained `status` and `config/reported` messages."""
    now = now or utc_now()
    rows: dict[str, DeviceRow] = {}
    for topic, payload in statuses.items():
        if (device := _device_of(topic, "status")) is not None:
            _apply_status(rows.setdefault(device, DeviceRow(device)), payload, now, stale_after_s)
    for topic, payload in reports.items():
        if (device := _device_of(topic, "config/reported")) is not None:
            _apply_reported(rows.setdefault(device, DeviceRow(device)), payload)
    return [rows[d] for d in sorted(rows)]


def collect(
    options: MqttOptions, site: str | None = None, stale_after_s: float = DEFAULT_STALE_AFTER_S
) -> list[DeviceRow]:
    """Ask the broker for every device's retained messages (of one site, or all)."""
    root = f"{TOPIC_PREFIX}/{site or '+'}/+"
    statuses = retained(options, f"{root}/status")
    return fleet_rows(statuses, retained(options, f"{root}/config/reported"), None, stale_after_s)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def _state(row: DeviceRow) -> str:
    state = f"{row.state} ({row.reason})" if row.reason else row.state
    return f"{state}, stale" if row.stale else state


def _cell(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[DeviceRow], now: datetime | None = None) -> str:
    """The rows as an aligned plain-text table, then one line per problem found."""
    now = now or utc_now()
    header = (
        "DEVICE",
        "STATE",
        "LAST SEEN",
        "SOFTWARE",
        "MODELS",
        "CONFIG",
        "GALLERY",
        "THRESHOLD",
        "FMR",
        "FALSE ALERTS/1000 MIXED",
        "BOUND",
        "LAST REFUSED",
    )
    lines = [header]
    for r in rows:
        seen = "-"
        if r.last_seen is not None:
            seen = f"{r.last_seen:%Y-%m-%d %H:%M:%S}Z ({_age((now - r.last_seen).total_seconds())} ago)"
        models = "-" if r.detector is None else f"{r.detector} + {r.embedder}"
        config = _cell(r.config_version)
        if r.config_outcome is not None:
            answered = r.config_answered not in (None, r.config_version)
            config += f" (v{r.config_answered} {r.config_outcome})" if answered else f" {r.config_outcome}"
        refused = r.last_refused if r.last_refused is None or len(r.last_refused) <= 60 else r.last_refused[:59] + "…"
        lines.append(
            (
                r.device,
                _state(r),
                seen,
                _cell(r.software),
                models,
                config,
                _cell(r.gallery_version),
                _cell(r.threshold, ".4f"),
                _cell(r.fmr, ".2g"),
                _cell(r.false_alerts_per_1000_mixed.per_1000, ".2f"),
                _cell(r.false_alerts_per_1000_bound.per_1000, ".2f"),
                _cell(refused),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text += [f"{r.device}: {problem}" for r in rows for problem in r.problems]
    return "\n".join(text)


def as_json(rows: list[DeviceRow]) -> str:
    return json.dumps([r.as_json() for r in rows], indent=2)
