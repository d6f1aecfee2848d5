"""A fleet's MQTT traffic, made with the real payload models, and a publisher to replay it.

For the collector's tests (tests/test_collector.py) and benchmark (scripts/bench_collect.py).
`make_traffic` builds every message in memory first, so a replay times the broker and the
collectors, not the making: one online status and one config report per device, then window
after window every device's stats (ids `<boot id>-<6-digit sequence>`, as edge/device/counters.py
makes them) and its match events. Faults a real fleet has: a share of messages sent twice
(at-least-once delivery), neighbours swapped (reordering), and one window never sent (a gap).
`Traffic.expected` is what the devices themselves counted, gap included.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.link.payloads import ConfigReported, MatchEvent, StatsPayload, StatusPayload, Topics, Versions

COUNTED = ("frames", "frames_dropped", "detections", "scans", "quality_rejected", "matches")
START = datetime(2026, 11, 2, tzinfo=timezone.utc)
VERSIONS = Versions(
    software="0.1.0",
    detector_model_id="blazeface_short_range",
    embedder_model_id="dlib_resnet_v1",
    embedder_sha256="0123456789abcdef",
    gallery_version="g1",
)


@dataclass
class Traffic:
    messages: list[tuple[str, bytes]]  # (topic, payload) in sending order, faults included
    expected: dict[str, Counter[str]]  # "site/device" -> what the device counted, gap included
    events: int  # distinct match events
    windows: int  # distinct windows the devices closed, gap included
    gap: tuple[str, str, str]  # (site, device_id, window_id) of the window never sent
    gap_counts: Counter[str]
    duplicates: int = 0
    by_device: dict[str, list[int]] = field(default_factory=dict)  # indexes into messages

    @property
    def unique(self) -> int:
        """Distinct messages that arrive: every one made, less the gap, less the repeats."""
        return len(self.messages) - self.duplicates


def device_name(i: int, sites: int) -> tuple[str, str]:
    return f"site-{i % sites:02d}", f"cam-{i:05d}"


def make_traffic(devices: int, windows: int, *, sites: int = 4, window_s: int = 60, seed: int = 12) -> Traffic:
    """Every device's traffic for `windows` windows of `window_s` seconds (see the module doc)."""
    rng = random.Random(seed)
    names = [device_name(i, sites) for i in range(devices)]
    boots = {n: f"{rng.getrandbits(48):012x}" for n in names}
    gap_device, gap_seq = names[len(names) // 2], max(1, windows // 2)
    ordered: list[tuple[str, bytes]] = []
    expected: dict[str, Counter[str]] = {f"{s}/{d}": Counter() for s, d in names}
    gap: tuple[str, str, str] = ("", "", "")
    gap_counts: Counter[str] = Counter()
    events = 0
    for site, device in names:
        topics = Topics(site, device)
        status = StatusPayload(
            state="online", device_id=device, site=site, ts=START, started_at=START, versions=VERSIONS
        )
        config = ConfigReported(version=0, ts=START, device_id=device, site=site, config={"match.threshold": 0.5})
        ordered += [(topics.status, status.to_json().encode()), (topics.config_reported, config.to_json().encode())]
    for seq in range(1, windows + 1):
        start = START + timedelta(seconds=(seq - 1) * window_s)
        for site, device in names:
            topics = Topics(site, device)
            window_id = f"{boots[(site, device)]}-{seq:06d}"
            frames = rng.randint(500, 600)
            scans = rng.randint(0, 12)
            matches = 1 if rng.random() < 0.05 else 0
            counts = Counter(
                frames=frames,
                frames_dropped=rng.randint(0, 5),
                detections=scans + rng.randint(0, 20),
                scans=scans,
                quality_rejected=rng.randint(0, 3),
                matches=matches,
            )
            expected[f"{site}/{device}"].update(counts)
            for _ in range(matches):
                event = MatchEvent(
                    ts=start + timedelta(seconds=rng.uniform(0, window_s)),
                    device_id=device,
                    site=site,
                    track_id=seq,
                    identity_id=f"person-{rng.randint(1, 50)}",
                    score=0.3,
                    threshold=0.5,
                    metric="euclidean",
                    model_id=VERSIONS.embedder_model_id,
                    gallery_version="g1",
                    window_id=window_id,
                )
                ordered.append((topics.match, event.to_json().encode()))
                events += 1
            if (site, device) == gap_device and seq == gap_seq:
                gap, gap_counts = (site, device, window_id), counts
                continue
            stats = StatsPayload(
                window_id=window_id,
                device_id=device,
                site=site,
                window_start=start,
                window_end=start + timedelta(seconds=window_s),
                fps=frames / window_s,
                latency_ms_p50=40.0,
                latency_ms_p95=80.0,
                **counts,
            )
            ordered.append((topics.stats, stats.to_json().encode()))
    messages: list[tuple[str, bytes]] = []
    duplicates = 0
    for message in ordered:
        messages.append(message)
        if rng.random() < 0.01:  # sent again: a lost PUBACK, an outbox resend after a restart
            messages.append(message)
            duplicates += 1
    for i in range(0, len(messages) - 1, 50):  # neighbours swapped: one in 50
        messages[i], messages[i + 1] = messages[i + 1], messages[i]
    return Traffic(messages, expected, events, windows * devices, gap, gap_counts, duplicates)


class Publisher:
    """One paho MQTT 5 client that publishes with QoS 1 and counts the broker's acknowledgements."""

    def __init__(self, host: str, port: int, client_id: str = "fleet-replay", inflight: int = 1000) -> None:
        self._acked = 0
        self._lock = threading.Lock()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self._client.max_inflight_messages_set(inflight)
        self._client.max_queued_messages_set(inflight)
        self._client.on_publish = self._on_publish
        self._client.connect(host, port, 60)
        self._client.loop_start()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self._acked += 1

    @property
    def acked(self) -> int:
        with self._lock:
            return self._acked

    def replay(self, messages: list[tuple[str, bytes]], behind: Callable[[int], bool] | None = None) -> None:
        """Publish every message, QoS 1, as fast as the broker takes them; `behind(sent)` True
        makes it wait (the collectors are too far behind: bounds the broker's queues)."""
        for sent, (topic, payload) in enumerate(messages):
            while True:
                info = self._client.publish(topic, payload, qos=1)
                if info.rc != paho.MQTT_ERR_QUEUE_SIZE:
                    break
                time.sleep(0.001)
            if behind is not None and sent % 500 == 0:
                while behind(sent):
                    time.sleep(0.05)

    def wait_acked(self, n: int, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.acked < n:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
