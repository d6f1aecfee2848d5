"""Negative feedback: template ids in match events, tightened and quarantined templates, and the
proposal, application and reversal of a change after an alert adjudicated false."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge.central.trial.store import TrialStore
from edge.gallery import Matcher
from edge.gallery.content import template_id
from edge.link.payloads import MatchEvent

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def test_a_template_id_is_16_hex_digits_stable_and_of_the_bytes_only() -> None:
    a, b = unit(1), unit(2)
    assert template_id(a.tobytes()) == template_id(a.copy().tobytes())
    assert template_id(a.tobytes()) != template_id(b.tobytes())
    assert len(template_id(a.tobytes())) == 16 and int(template_id(a.tobytes()), 16) >= 0
    # not a plain hash of the descriptor: a domain prefix keeps it apart from any other sha256
    assert template_id(a.tobytes()) != hashlib.sha256(a.tobytes()).hexdigest()[:16]


def test_the_matcher_names_the_template_that_matched() -> None:
    a1, a2, b = unit(1), unit(2), unit(3)
    matcher = Matcher(np.stack([a1, a2, b]), ["a", "a", "b"], "v1")
    assert matcher.template_ids == tuple(template_id(t.tobytes()) for t in (a1, a2, b))
    match = matcher.match(a2 + 0.001, 0.5)
    assert match is not None and match.identity_id == "a" and match.template_id == template_id(a2.tobytes())


def event(template: str | None, seq: int = 1) -> MatchEvent:
    return MatchEvent(
        event_id=uuid.UUID(bytes=hashlib.md5(f"fb-{seq}".encode()).digest(), version=4).hex,
        ts=T0,
        device_id="cam1",
        site="north",
        track_id=seq,
        identity_id="id-7",
        score=0.31,
        threshold=0.4,
        template_threshold=0.42,
        template_id=template,
        metric="euclidean",
        model_id="m",
        gallery_version="v1",
        window_id="cam1.boot1-000001",
    )


def test_the_trial_store_keeps_the_template_id_and_none_from_older_devices(tmp_path: Path) -> None:
    with TrialStore.open(f"sqlite:///{tmp_path / 'trial.sqlite'}") as store:
        assert store.add(event("0123456789abcdef", 1)) and store.add(event(None, 2))
        stored = {e["track_id"]: e["template_id"] for e in store.events()}
    assert stored == {1: "0123456789abcdef", 2: None}
    older = json.loads(event(None).model_dump_json())
    del older["template_id"]
    assert MatchEvent.model_validate_json(json.dumps(older)).template_id is None  # absent from devices before it
