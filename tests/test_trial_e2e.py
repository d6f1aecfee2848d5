"""A real device, a real `edge fleet config set` and a real collector: the trial database
(SQLite and PostgreSQL) stores every window and event of the run."""

from __future__ import annotations

import json

from support_wait import wait_until
from test_collector import collector_factory, store  # noqa: F401, F811 (fixtures)
from test_device_e2e import gallery, slideshow, slideshow_jpegs  # noqa: F401, F811 (fixtures)
from test_remote_config import ROOT, camera, device, fleet  # noqa: F401, F811 (fixtures)

from edge.cli import main


def test_a_config_set_then_a_device_run_is_stored_whole(
    device,  # noqa: F811 (the fixtures imported above)
    broker,
    fleet,  # noqa: F811
    collector_factory,  # noqa: F811
    store,  # noqa: F811
    subscriber_factory,
    capsys,
):
    """A PostgreSQL trial database once stopped storing at the first ordinary `edge fleet config set`
    (its version, Unix milliseconds, overflowed a 32-bit column). A real device takes a real config
    set; every window and event it sends is stored, and so is the config report with its version."""
    collector = collector_factory()
    sub = subscriber_factory(broker.port, [f"{ROOT}/#"])
    device.start()
    first_report = lambda: sub.messages(f"{ROOT}/config/reported")  # noqa: E731
    assert wait_until(first_report, timeout=90), device.log.read_text()[-2000:]
    assert main(["fleet", "config", "set", "test/cam-1", "match.threshold=0.45", "--fleet", str(fleet)]
                + ["--broker", broker.url, "--wait", "60"]) == 0  # fmt: skip
    version = json.loads(capsys.readouterr().out)["version_in_force"]
    assert version > 2**31, "a millisecond version"
    assert wait_until(lambda: len(sub.messages(f"{ROOT}/stats")) >= 3, timeout=60)
    device.stop()
    assert wait_until(lambda: any(b"offline" in m.payload for m in sub.messages(f"{ROOT}/status")), 60)
    sent_windows = {json.loads(m.payload)["window_id"] for m in sub.messages(f"{ROOT}/stats")}
    sent_events = {json.loads(m.payload)["event_id"] for m in sub.messages(f"{ROOT}/match")}
    assert wait_until(lambda: {w["window_id"] for w in store.windows()} == sent_windows, timeout=30)
    assert wait_until(lambda: {e["event_id"] for e in store.events()} == sent_events, timeout=30)
    assert version in {c["version"] for c in store.configs()}
    assert not collector.counts().refused and store.dead_letters() == []
