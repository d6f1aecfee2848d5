"""How fast `edge collect` stores a fleet's traffic, end to end, and that it loses nothing.

    .venv/bin/python scripts/bench_collect.py [--devices 200] [--windows 1440]

Makes a fleet's traffic in memory (scripts/fleet_traffic.py: by default 200 devices, one day of
60 s windows = 288,000 stats, their match events, statuses and config reports, ~1% sent twice,
neighbours swapped, one window never sent), then replays it through a real Mosquitto into one,
then two `edge collect` processes sharing the subscription, each run into a fresh database on a
throwaway PostgreSQL (fsync on). The publisher waits while the collectors are more than
`--backlog` messages behind, so the broker's queues stay bounded and the rate measured is the
collectors' sustained rate. Checks, per run: every message stored once, per-device totals plus
the missing window equal the devices' counters, the missing window reported. Prints a table
with the per-message cost: parse (JSON alone, timed here on the same payloads), validate
(the collector's decode time less parse) and write (the batch transactions, commit included).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from edge.central.trial.store import TrialStore
from fleet_traffic import COUNTED, Publisher, Traffic, make_traffic
from local_broker import Broker
from postgres_server import PostgresServer


def stored_rows(store: TrialStore) -> int:
    with store.engine.connect() as connection:
        return connection.exec_driver_sql(
            "SELECT (SELECT count(*) FROM windows) + (SELECT count(*) FROM events)"
            " + (SELECT count(*) FROM statuses) + (SELECT count(*) FROM configs)"
        ).scalar_one()


def check(store: TrialStore, traffic: Traffic) -> list[str]:
    """What is wrong with the stored trial (empty: nothing)."""
    problems = []
    totals: dict[str, Counter[str]] = {name: Counter() for name in traffic.expected}
    windows = store.windows()
    for w in windows:
        totals[f"{w['site']}/{w['device_id']}"].update({k: w[k] for k in COUNTED})
    site, device, window_id = traffic.gap
    totals[f"{site}/{device}"].update(traffic.gap_counts)
    if totals != traffic.expected:
        problems.append("per-device totals differ from the devices' counters")
    if len(windows) != traffic.windows - 1:
        problems.append(f"{len(windows)} windows stored, {traffic.windows - 1} sent")
    events = len(store.events())
    if events != traffic.events:
        problems.append(f"{events} events stored, {traffic.events} sent")
    missing = [(m.site, m.device_id, m.window_ids()[0]) for m in store.missing_windows() if m.count == 1]
    if missing != [traffic.gap] or len(store.missing_windows()) != 1:
        problems.append(f"missing windows {missing}, expected {[traffic.gap]}")
    return problems


def run_once(collectors: int, traffic: Traffic, server_url: str, workdir: Path, backlog: int) -> dict:
    """One replay into `collectors` processes; their counts, the rate, and the checks."""
    import psycopg

    name = f"bench_{collectors}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    db_url = server_url.rsplit("/", 1)[0] + f"/{name}"
    broker_dir = workdir / f"broker-{collectors}"
    broker_dir.mkdir()
    broker = Broker(broker_dir)
    broker.start()
    store = TrialStore.open(db_url)  # migrated here, before the collectors race to do it
    processes, logs = [], []
    for i in range(collectors):
        log = workdir / f"collect-{collectors}-{i}.log"
        logs.append(log)
        command = [sys.executable, "-m", "edge.cli", "collect", "--broker", broker.url, "--db", db_url]
        command += ["--client-id", f"bench-{i}", "--log-every", "10"]
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log.open("wb"), text=True))
    deadline = time.monotonic() + 60
    while sum(log.read_text().count("subscribed to") for log in logs) < collectors:
        if time.monotonic() > deadline:
            raise RuntimeError("collectors did not subscribe:\n" + "\n".join(log.read_text() for log in logs))
        time.sleep(0.1)
    share = traffic.unique / len(traffic.messages)
    publisher = Publisher("127.0.0.1", broker.port, client_id=f"bench-fleet-{collectors}")
    started = time.monotonic()
    publisher.replay(traffic.messages, behind=lambda sent: sent * share - stored_rows(store) > backlog)
    while stored_rows(store) < traffic.unique:
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    publisher.stop()
    counts = []
    for p in processes:
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=60)
        counts.append(json.loads(out))
    problems = check(store, traffic)
    store.close()
    broker.stop()
    received = sum(c["received"] for c in counts)
    return {
        "collectors": collectors,
        "seconds": elapsed,
        "rate": len(traffic.messages) / elapsed,
        "received": received,
        "stored": sum(c["stored"] for c in counts),
        "duplicates": sum(c["duplicates"] for c in counts),
        "refused": sum(sum(c["refused"].values()) for c in counts),
        "split": [c["received"] for c in counts],
        "decode_us": 1e6 * sum(c["decode_s"] for c in counts) / received,
        "write_us": 1e6 * sum(c["write_s"] for c in counts) / received,
        "batch": received / sum(c["batches"] for c in counts),
        "problems": problems,
    }


def parse_cost_us(traffic: Traffic) -> float:
    """JSON parsing alone per message, on the same payloads (the part of decode that is not validation)."""
    started = time.perf_counter()
    for _, payload in traffic.messages:
        json.loads(payload)
    return 1e6 * (time.perf_counter() - started) / len(traffic.messages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--windows", type=int, default=1440, help="60 s windows per device (1440: one day)")
    parser.add_argument("--backlog", type=int, default=20_000, help="most messages the collectors may be behind")
    args = parser.parse_args()
    started = time.monotonic()
    traffic = make_traffic(args.devices, args.windows)
    print(
        f"traffic: {args.devices} devices x {args.windows} windows: {len(traffic.messages)} messages "
        f"({traffic.windows - 1} stats, {traffic.events} match events, {2 * args.devices} status/config, "
        f"{traffic.duplicates} sent twice, 1 window never sent), made in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    parse_us = parse_cost_us(traffic)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp, PostgresServer() as server_url:
        for collectors in (1, 2):
            runs.append(run_once(collectors, traffic, server_url, Path(tmp), args.backlog))
            print(f"{collectors} collector(s): done", flush=True)
    print()
    print(
        "| collectors | messages | seconds | msgs/s | stored | duplicates absorbed | lost | split | batch "
        "| parse us | validate us | write us |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        lost = traffic.unique - r["stored"]
        print(
            f"| {r['collectors']} | {len(traffic.messages)} | {r['seconds']:.1f} | {r['rate']:,.0f} | {r['stored']} "
            f"| {r['duplicates']} | {lost} | {'/'.join(map(str, r['split']))} | {r['batch']:.0f} | {parse_us:.1f} "
            f"| {r['decode_us'] - parse_us:.1f} | {r['write_us']:.1f} |"
        )
    base, two = runs
    print(f"\ntwo collectors vs one: {two['rate'] / base['rate']:.2f}x")
    failed = False
    for r in runs:
        for problem in r["problems"]:
            print(f"FAIL ({r['collectors']} collector(s)): {problem}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
