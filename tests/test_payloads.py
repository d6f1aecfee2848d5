"""Payload models: JSON round trips, strictness, and the metadata-only rule."""

from __future__ import annotations

import collections.abc
import json
import types
import typing
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, JsonValue, ValidationError

from edge.link import payloads
from edge.link.payloads import (
    ConfigReported,
    MatchEvent,
    Payload,
    StatsPayload,
    StatusPayload,
    Topics,
    Versions,
)

T0 = datetime(2026, 5, 9, 7, 35, 25, 123456, tzinfo=timezone.utc)


def versions() -> Versions:
    return Versions(
        software="0.1.0",
        detector_model_id="blazeface-short-int8",
        embedder_model_id="mobilefacenet-int8",
        embedder_sha256="0123abcd",
        gallery_version="g-7",
    )


def status(**kw: object) -> StatusPayload:
    fields: dict[str, object] = dict(
        state="online",
        device_id="pi-01",
        site="lobby",
        ts=T0,
        started_at=T0 - timedelta(minutes=5),
        versions=versions(),
        details={"threshold": 0.42, "camera": "csi0"},
    )
    return StatusPayload(**{**fields, **kw})


def match(**kw: object) -> MatchEvent:
    fields: dict[str, object] = dict(
        ts=T0,
        device_id="pi-01",
        site="lobby",
        track_id=17,
        identity_id="person-0042",
        score=0.31,
        threshold=0.42,
        metric="cosine",
        model_id="mobilefacenet-int8",
        gallery_version="g-7",
        window_id="pi-01:boot-a:12",
    )
    return MatchEvent(**{**fields, **kw})


def stats(**kw: object) -> StatsPayload:
    fields: dict[str, object] = dict(
        window_id="pi-01:boot-a:12",
        device_id="pi-01",
        site="lobby",
        window_start=T0,
        window_end=T0 + timedelta(minutes=1),
        frames=600,
        frames_dropped=12,
        detections=250,
        scans=9,
        quality_rejected=3,
        matches=1,
        fps=10.0,
        latency_ms_p50=41.5,
        latency_ms_p95=80.25,
    )
    return StatsPayload(**{**fields, **kw})


def config_reported(**kw: object) -> ConfigReported:
    fields: dict[str, object] = dict(
        version=3,
        ts=T0,
        device_id="pi-01",
        site="lobby",
        config={"match": {"threshold": 0.42}, "camera": {"roi": [0, 0, 640, 480]}},
        last_error=None,
    )
    return ConfigReported(**{**fields, **kw})


EXAMPLES = [status, match, stats, config_reported]


@pytest.mark.parametrize("make", EXAMPLES, ids=lambda f: f.__name__)
def test_json_round_trip(make: typing.Callable[[], Payload]) -> None:
    payload = make()
    text = payload.to_json()
    again = type(payload).from_json(text)
    assert again == payload
    assert again.to_json() == text
    assert type(payload).from_json(text.encode()) == payload


def test_timestamps_are_utc_iso8601_with_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = match(ts=T0.astimezone(plus_two))
    assert event.ts == T0 and event.ts.utcoffset() == timedelta(0)
    assert json.loads(event.to_json())["ts"] == "2026-05-09T07:35:25.123456Z"
    with pytest.raises(ValidationError, match="timezone"):
        match(ts=T0.replace(tzinfo=None))


@pytest.mark.parametrize("make", EXAMPLES, ids=lambda f: f.__name__)
def test_unknown_fields_are_refused(make: typing.Callable[[], Payload]) -> None:
    data = json.loads(make().to_json())
    data["embedding"] = [0.1, 0.2]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        type(make()).from_json(json.dumps(data))


def test_types_are_strict() -> None:
    data = json.loads(match().to_json())
    data["track_id"] = "17"
    with pytest.raises(ValidationError):
        MatchEvent.from_json(json.dumps(data))


def test_event_id_is_a_fresh_uuid4_hex_and_the_message_id() -> None:
    a, b = match(), match()
    assert a.event_id != b.event_id
    assert uuid.UUID(hex=a.event_id).version == 4 and a.event_id == uuid.UUID(a.event_id).hex
    assert a.message_id == a.event_id
    with pytest.raises(ValidationError):
        match(event_id=uuid.uuid1().hex)
    with pytest.raises(ValidationError):
        match(event_id=str(uuid.uuid4()))  # dashed form is not the hex form


def test_a_match_event_must_be_a_match() -> None:
    with pytest.raises(ValidationError, match="above threshold"):
        match(score=0.5, threshold=0.42)
    assert match(score=0.42, threshold=0.42).score == 0.42


def test_stats_are_consistent_and_keyed_by_window() -> None:
    assert stats().message_id == "pi-01:boot-a:12"
    assert stats(frames=0, fps=0.0, latency_ms_p50=None, latency_ms_p95=None).frames == 0
    # A track scanned at the end of one window may match early in the next.
    assert stats(matches=10, scans=9).matches == 10
    with pytest.raises(ValidationError, match="before"):
        stats(window_end=T0 - timedelta(seconds=1))
    with pytest.raises(ValidationError, match="p50"):
        stats(latency_ms_p50=90.0, latency_ms_p95=80.0)
    with pytest.raises(ValidationError):
        stats(frames=-1)
    with pytest.raises(ValidationError):
        stats(window_id="has space")


def test_degraded_status_and_dropped_messages_are_new_optional_fields() -> None:
    """Payloads of devices that predate them still parse; new ones carry them."""
    old_status = status().model_dump(mode="json", exclude={"reason"})
    assert StatusPayload.model_validate_json(json.dumps(old_status)).reason is None
    degraded = status(state="degraded", reason="state disk full")
    assert StatusPayload.from_json(degraded.to_json()) == degraded
    with pytest.raises(ValidationError):
        status(reason="x" * 201)
    old_stats = stats().model_dump(mode="json", exclude={"messages_dropped"})
    assert StatsPayload.model_validate_json(json.dumps(old_stats)).messages_dropped == 0
    assert StatsPayload.from_json(stats(messages_dropped=3).to_json()).messages_dropped == 3


def test_ids_that_cannot_be_topic_levels_are_refused() -> None:
    for bad in ["", "a/b", "a+", "#", "with space", "-lead"]:
        with pytest.raises(ValidationError):
            status(device_id=bad)
        with pytest.raises(ValueError, match="topic level"):
            Topics(site="lobby", device_id=bad)


def test_topics() -> None:
    t = Topics(site="lobby", device_id="pi-01")
    assert t.root == "edge/lobby/pi-01"
    assert (t.status, t.match, t.stats) == (
        "edge/lobby/pi-01/status",
        "edge/lobby/pi-01/match",
        "edge/lobby/pi-01/stats",
    )
    assert t.config_set == "edge/lobby/pi-01/config/set"
    assert t.config_reported == "edge/lobby/pi-01/config/reported"
    assert t.gallery_set == "edge/lobby/pi-01/gallery/set"
    for bad in ["", "/status", "status/", "config/+", "#"]:
        with pytest.raises(ValueError, match="plain topic path"):
            t.topic(bad)


# -- metadata only: no image, no embedding -------------------------------------------------

# Fields typed as free-form JSON, each guarded by value (tested below). A new free-form field
# fails `test_no_field_can_carry_an_embedding_or_image` until it is guarded and listed here.
FREE_FORM = {"ConfigReported.config"}

_SEQUENCES = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)


def _problems(annotation: object, where: str, seen: set[type]) -> list[str]:
    """Why `annotation` could carry bytes or a numeric vector (empty list: it cannot)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is JsonValue or annotation is typing.Any:
        field = where.split("{")[0].split("[")[0]
        return [] if field in FREE_FORM else [f"{where}: free-form JSON"]
    if origin is typing.Annotated:
        return _problems(args[0], where, seen)
    if origin is typing.Union or origin is types.UnionType:
        return [p for a in args for p in _problems(a, where, seen)]
    if origin is typing.Literal:
        return []
    if origin in _SEQUENCES or annotation in _SEQUENCES:
        items = [a for a in args if a is not Ellipsis] or [typing.Any]
        numeric = [a for a in items if _could_be_number(a)]
        out = [f"{where}: sequence of {numeric}"] if numeric else []
        return out + [p for a in items for p in _problems(a, f"{where}[]", seen)]
    if origin in (dict, collections.abc.Mapping) or annotation is dict:
        return [p for a in args for p in _problems(a, f"{where}{{}}", seen)]
    if isinstance(annotation, type):
        if issubclass(annotation, (bytes, bytearray, memoryview)):
            return [f"{where}: {annotation.__name__}"]
        if annotation.__module__.split(".")[0] in ("numpy", "torch", "PIL"):
            return [f"{where}: {annotation.__module__}.{annotation.__name__}"]
        if issubclass(annotation, BaseModel) and annotation not in seen:
            seen.add(annotation)
            return [
                p
                for name, f in annotation.model_fields.items()
                for p in _problems(f.annotation, f"{annotation.__name__}.{name}", seen)
            ]
        return []
    return [f"{where}: cannot tell what {annotation!r} may hold"]


def _could_be_number(annotation: object) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _could_be_number(args[0])
    if args and origin is not typing.Literal and origin not in _SEQUENCES and origin is not dict:
        return any(_could_be_number(a) for a in args)  # a union
    if annotation is typing.Any or annotation is JsonValue:
        return True
    return isinstance(annotation, type) and issubclass(annotation, (int, float, complex))


def _all_payload_models() -> list[type[Payload]]:
    found, todo = [], [Payload]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__ == payloads.__name__ and c is not Payload]


def test_every_payload_model_is_checked() -> None:
    names = {c.__name__ for c in _all_payload_models()}
    assert {"StatusPayload", "Versions", "MatchEvent", "StatsPayload", "ConfigReported"} <= names


@pytest.mark.parametrize("model", _all_payload_models(), ids=lambda c: c.__name__)
def test_no_field_can_carry_an_embedding_or_image(model: type[Payload]) -> None:
    problems = [
        p for name, f in model.model_fields.items() for p in _problems(f.annotation, f"{model.__name__}.{name}", set())
    ]
    assert problems == [], "payloads carry metadata only: no image, no embedding"


def test_the_walker_catches_vectors_and_bytes() -> None:
    """The check above is only worth something if it fails on the fields it guards against."""

    class Leaky(BaseModel):
        embedding: list[float]
        chip: bytes
        ids: tuple[int, ...]
        maybe: list[float] | None
        nested: dict[str, list[typing.Annotated[float, "unit"]]]
        anything: dict[str, typing.Any]

    found = [p for name, f in Leaky.model_fields.items() for p in _problems(f.annotation, f"Leaky.{name}", set())]
    assert len({p.split(":")[0] for p in found}) == 6, found


def test_free_form_fields_refuse_vectors_and_blobs() -> None:
    assert "ConfigReported.config" in FREE_FORM
    with pytest.raises(ValidationError, match="looks like a vector"):
        config_reported(config={"gallery": {"templates": [[0.01 * i for i in range(128)]]}})
    with pytest.raises(ValidationError, match="encoded data"):
        config_reported(config={"snapshot": "iVBORw0KGgo" + "A" * 5000})
    with pytest.raises(ValidationError):
        status(details={"embedding": [0.1] * 128})
    with pytest.raises(ValidationError):
        status(details={f"k{i}": i for i in range(33)})
    with pytest.raises(ValidationError):
        status(details={"blob": "A" * 201})


def _leaves(value: object, path: tuple[str, ...] = ()) -> typing.Iterator[tuple[tuple[str, ...], object]]:
    """Every scalar in a payload's JSON form with its path; free-form fields are walked too."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, str(i)))
    else:
        yield path, value


def _patched(payload: Payload, path: tuple[str, ...], value: object) -> str:
    data = json.loads(payload.to_json())
    node = data
    for key in path[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(path[-1]) if isinstance(node, list) else path[-1]] = value
    return json.dumps(data, allow_nan=True)


def _poisons(value: object) -> list[object]:
    """Values no database column should receive in place of `value`."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int):
        return [2**63, 10**30, -(2**64)]
    if isinstance(value, float):
        return [float("inf"), float("nan"), 1e300]
    if isinstance(value, str):
        return [value[:1] + "\x00" + value[1:], value + "\x1b[2J"]
    raise AssertionError(value)


FULL = [
    status,
    lambda: match(template_threshold=0.4),
    stats,
    lambda: config_reported(status="rejected", answered_version=4, last_error="no"),
]


@pytest.mark.parametrize("make", FULL, ids=["status", "match", "stats", "config_reported"])
def test_every_value_is_bounded_where_it_is_parsed(make: typing.Callable[[], Payload]) -> None:
    """What stopped the collector (frames=2**63, 10**30, track_id=2**63, NUL in identity_id,
    window_id or reason, fps=Infinity) and anything like it in any field is refused by the model,
    before it can reach a database column that cannot hold it."""
    payload = make()
    checked = 0
    for path, value in _leaves(json.loads(payload.to_json())):
        if path[-1] == "ts" or path[-1].endswith(("_start", "_end", "_at")):
            continue  # times: the next test
        for poison in _poisons(value):
            with pytest.raises(ValidationError):
                type(payload).from_json(_patched(payload, path, poison))
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("make", FULL, ids=["status", "match", "stats", "config_reported"])
def test_times_lie_between_1970_and_2100(make: typing.Callable[[], Payload]) -> None:
    payload = make()
    times = [p for p, v in _leaves(json.loads(payload.to_json())) if isinstance(v, str) and v.startswith("2026-")]
    assert times
    for path in times:
        for when in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z"):
            with pytest.raises(ValidationError, match="outside 1970-2099"):
                type(payload).from_json(_patched(payload, path, when))


def test_a_stats_window_is_at_most_two_days_long() -> None:
    stats(window_end=T0 + payloads.MAX_WINDOW)
    with pytest.raises(ValidationError, match="longer than 2 days"):
        stats(window_end=T0 + payloads.MAX_WINDOW + timedelta(seconds=1))


def test_counts_of_one_window_sum_within_64_bits() -> None:
    """The report sums windows: a million windows at the largest count still fit a signed 64-bit sum."""
    assert 10**6 * payloads.MAX_COUNT < payloads.INT64_MAX
    stats(frames=payloads.MAX_COUNT)
    with pytest.raises(ValidationError):
        stats(frames=payloads.MAX_COUNT + 1)


def test_config_versions_are_bounded_like_gallery_pushes() -> None:
    """A `--version 100000000000000000000` config/set is refused where it is parsed; Unix
    milliseconds (what `edge fleet config set` issues) fit."""
    fields = dict(version=1796320553024, issued_at=T0, set={"match.threshold": 0.4}, signature="c2ln")
    payloads.ConfigSet(**fields)
    for version in (10**20, 2**63, 0):
        with pytest.raises(ValidationError):
            payloads.ConfigSet(**{**fields, "version": version})
    with pytest.raises(ValidationError):
        config_reported(version=10**20)


def test_free_form_values_hold_no_control_characters_or_unbounded_numbers() -> None:
    for config in ({"camera": {"pipeline": "a\x00b"}}, {"a\x00": 1}, {"n": 10**30}):
        with pytest.raises(ValidationError):
            config_reported(config=config)
    with pytest.raises(ValidationError):
        ConfigReported.from_json(_patched(config_reported(), ("config", "match", "threshold"), float("inf")))
    config_reported(last_error="line one\nline two\ttabbed")  # free text keeps its line breaks
    with pytest.raises(ValidationError):
        status(details={"camera": "csi\x000"})
