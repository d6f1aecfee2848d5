"""How fast the operator console shows an alert, and how fast its pages load on a full database.

    .venv/bin/python scripts/bench_console.py [--streams 50] [--per-minute 200] [--alerts 200] [--stored 100000]

On a throwaway PostgreSQL (scripts/postgres_server.py) and a real Mosquitto: `--stored` match
events are stored first (a long trial), then the console is served by uvicorn in this process
with `--streams` operators' alert pages open (each a real server-sent event stream over HTTP).
A publisher sends `--alerts` match events through Mosquitto at `--per-minute`, one real
collector stores them (as `edge collect` does), and each stream's receipt of each alert is timed.

Printed: publish -> committed by the collector (its own time, the baseline measured in the same
run), publish -> received on a console stream, p50 and p95 over every stream and alert; and the
alerts page's load time (median and p95 of 20 loads) with everything stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.central.trial.collector import Collector
from edge.central.trial.store import TrialStore
from edge.console import sessions, users
from edge.console.app import COOKIE, ConsoleServer, create_app
from edge.console.schema import migrate
from edge.link import MqttOptions
from edge.link.payloads import MatchEvent, utc_now
from local_broker import Broker, free_port
from postgres_server import PostgresServer

PASSWORD = "a bench password"
SITES = 4


def event(n: int, ts=None) -> MatchEvent:
    ts = ts or utc_now()
    site, device = f"site{n % SITES}", f"cam{n % 40}"
    return MatchEvent(
        event_id=uuid.uuid4().hex,
        ts=ts,
        device_id=device,
        site=site,
        track_id=n,
        identity_id=f"id-{n % 50}",
        score=0.3,
        threshold=0.44,
        template_threshold=0.42,
        metric="euclidean",
        model_id="dlib_resnet_v1_int8_mirror",
        gallery_version="bench",
        window_id=f"{device}.bench-{n:06d}",
    )


def fill(store: TrialStore, count: int) -> None:
    """`count` older alerts, as a long trial leaves them."""
    start = utc_now() - timedelta(days=30)
    for first in range(0, count, 5000):
        batch = [event(n, start + timedelta(seconds=n * 20)) for n in range(first, min(count, first + 5000))]
        store.add_many(batch, received_at=start + timedelta(seconds=first * 20))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def open_streams(url: str, tokens: list[str], received: dict[str, list[float]], ready: threading.Event):
    """One SSE client per token; every alert's receipt time, per event id."""
    connected = 0

    async def one(token: str) -> None:
        nonlocal connected
        async with httpx.AsyncClient(cookies={COOKIE: token}, timeout=None) as client:
            since = utc_now().isoformat()
            async with client.stream("GET", f"{url}/alerts/stream", params={"since": since}) as response:
                connected += 1
                if connected == len(tokens):
                    ready.set()
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and line != "data: {}":
                        received.setdefault(json.loads(line[6:])["event_id"], []).append(time.time())

    await asyncio.gather(*(one(t) for t in tokens))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--per-minute", type=float, default=200.0)
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--stored", type=int, default=100_000)
    args = parser.parse_args()
    with PostgresServer(fsync=False) as pg_url, TrialStore.open(pg_url) as store:
        migrate(store.engine)
        users.add(store.engine, "bench", "admin", [], PASSWORD)
        t0 = time.perf_counter()
        fill(store, args.stored)
        print(f"stored {args.stored:,} alerts in {time.perf_counter() - t0:.1f} s")
        tokens = [sessions.log_in(store.engine, "bench", PASSWORD, "127.0.0.1")[0] for _ in range(args.streams)]
        port = free_port()
        server = ConsoleServer(create_app(store), host="127.0.0.1", port=port, log_level="warning")
        serving = threading.Thread(target=server.run, daemon=True)
        serving.start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        loads = []
        with httpx.Client(cookies={COOKIE: tokens[0]}) as client:
            for _ in range(20):
                start = time.perf_counter()
                assert client.get(f"{url}/alerts").status_code == 200
                loads.append((time.perf_counter() - start) * 1000)

        broker = Broker(Path(tempfile.mkdtemp(prefix="bench-console-")))
        broker.start()
        committed: dict[str, float] = {}

        def sink(payloads, aside):
            new = store.add_many(payloads, aside)
            now = time.time()
            for p in payloads:
                committed.setdefault(getattr(p, "event_id", ""), now)
            return new

        collector = Collector(MqttOptions.from_url(broker.url), sink, client_id="bench-collector")
        collector.start()
        collector.wait_subscribed(10)
        received: dict[str, list[float]] = {}
        ready = threading.Event()
        threading.Thread(target=lambda: asyncio.run(open_streams(url, tokens, received, ready)), daemon=True).start()
        ready.wait(60)
        publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-device", protocol=paho.MQTTv5)
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        published: dict[str, float] = {}
        for n in range(args.alerts):
            alert = event(n)
            published[alert.event_id] = time.time()
            publisher.publish(f"edge/{alert.site}/{alert.device_id}/match", alert.to_json(), qos=1)
            time.sleep(60.0 / args.per_minute)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(len(v) for v in received.values()) < args.alerts * args.streams:
            time.sleep(0.1)
        publisher.loop_stop()
        collector.stop()
        server.stop()
        serving.join(timeout=30)  # the open streams end before the database does
        broker.stop()
    commit_ms = [(committed[e] - t) * 1000 for e, t in published.items() if e in committed]
    stream_ms = [(r - published[e]) * 1000 for e, times in received.items() if e in published for r in times]
    expected = args.alerts * args.streams
    print(f"\n{args.streams} open alert streams, {args.alerts} alerts at {args.per_minute:g}/min, "
          f"{args.stored:,} stored before; PostgreSQL\n")  # fmt: skip
    print("| measure | p50 ms | p95 ms | count |\n|---|---|---|---|")
    print(f"| publish -> committed (collector, baseline) | {percentile(commit_ms, 0.5):.0f} | "
          f"{percentile(commit_ms, 0.95):.0f} | {len(commit_ms)} of {args.alerts} |")  # fmt: skip
    print(f"| publish -> on a console stream | {percentile(stream_ms, 0.5):.0f} | {percentile(stream_ms, 0.95):.0f} | "
          f"{len(stream_ms)} of {expected} |")  # fmt: skip
    print(f"| alerts page load | {statistics.median(loads):.0f} | {percentile(loads, 0.95):.0f} | {len(loads)} |")
    return 0 if len(stream_ms) == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
