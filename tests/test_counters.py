"""Counters: windows with unique ids, totals that survive a restart, honest latency figures."""

from __future__ import annotations

import json

import pytest
from test_outbox import fill, small_disk  # noqa: F401 (small_disk: a fixture)

from edge.device.counters import COUNTS, Counters, CountersError
from edge.device.loop import utc
from edge.link.payloads import StatsPayload


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_figures_and_totals_persist(tmp_path):
    clock = Clock()
    path = tmp_path / "counters.json"
    c = Counters(path, window_s=10, clock=clock)
    for _ in range(50):
        c.add("frames")
    c.add("detections", 7)
    c.add("scans", 2)
    c.add("matches")
    for ms in range(1, 101):
        c.latency(float(ms))
    assert not c.due()
    clock.now += 10
    assert c.due()
    w = c.close_window()
    assert w["frames"] == 50 and w["detections"] == 7 and w["scans"] == 2 and w["matches"] == 1
    assert w["fps"] == pytest.approx(5.0)
    assert w["latency_ms_p50"] == pytest.approx(50.5) and w["latency_ms_p95"] == pytest.approx(95.05)
    assert c.window.frames == 0 and c.window.window_id != w["window_id"]

    again = Counters(path, window_s=10, clock=clock)
    assert again.totals["frames"] == 50 and again.totals["matches"] == 1
    again.add("frames", 5)
    again.close_window()
    assert Counters(path, window_s=10, clock=clock).totals["frames"] == 55


def test_totals_are_saved_through_the_given_writer(tmp_path):
    path = tmp_path / "counters.json"
    jobs = []
    c = Counters(path, window_s=1, write=jobs.append)
    c.add("frames", 3)
    c.close_window()
    c.add("frames", 4)
    c.close_window()
    assert not path.exists() and len(jobs) == 2  # nothing written on the loop's thread
    jobs[0]()
    assert Counters(path, window_s=1).totals["frames"] == 3  # each job holds its window's totals
    jobs[1]()
    assert Counters(path, window_s=1).totals["frames"] == 7


def test_window_ids_unique_across_restarts(tmp_path):
    ids = set()
    for _ in range(3):
        c = Counters(tmp_path / "c.json", window_s=1)
        ids.add(c.close_window()["window_id"])
        ids.add(c.close_window()["window_id"])
    assert len(ids) == 6


def test_corrupt_totals_file_is_a_clear_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(CountersError, match=str(path)):
        Counters(path, window_s=1)
    path.write_text("[1, 2]")
    with pytest.raises(CountersError, match="move it aside"):
        Counters(path, window_s=1)


def test_empty_window_has_zero_latency(tmp_path):
    w = Counters(None, window_s=1).close_window()
    assert all(w[k] == 0 for k in COUNTS) and w["latency_ms_p95"] == 0.0


def test_messages_dropped_by_the_outbox_are_counted_per_window_and_in_totals(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**{k: 0 for k in COUNTS if k != "messages_dropped"}, "frames": 5}))
    dropped = [0]
    c = Counters(path, window_s=1)  # a totals file from before messages_dropped existed
    c.dropped_messages = lambda: dropped[0]
    assert c.close_window()["messages_dropped"] == 0
    dropped[0] = 3
    assert c.close_window()["messages_dropped"] == 3
    dropped[0] = 4
    assert c.close_window()["messages_dropped"] == 1
    assert Counters(path, window_s=1).totals == {**dict.fromkeys(COUNTS, 0), "frames": 5, "messages_dropped": 4}


def test_a_full_disk_delays_the_totals_file_and_loses_no_count(small_disk, caplog):  # noqa: F811
    path = small_disk / "counters.json"
    c = Counters(path, window_s=1)
    ballast = fill(small_disk)
    c.add("frames", 3)
    c.close_window()  # refused: logged, nothing raised, no half-written file left
    assert "not saved" in caplog.text and not path.exists() and not list(small_disk.glob(".counters.json.*"))
    ballast.unlink()
    c.add("frames", 4)
    c.close_window()
    assert Counters(path, window_s=1).totals["frames"] == 7


@pytest.mark.parametrize(
    ("start", "jump_s"), [(1000.0, 56 * 365 * 86400.0), (1.8e9, -3600.0)], ids=["first NTP sync", "set back an hour"]
)
def test_a_clock_jump_inside_a_window_gives_a_window_as_long_as_it_was(start, jump_s):
    """A board without a real-time clock boots in 1970 and jumps at its first NTP sync: the window
    it was counting is then neither 56 years long (a payload refuses more than two days) nor negative."""
    wall, monotonic = Clock(), Clock()
    wall.now = start
    c = Counters(None, window_s=10, clock=wall, monotonic=monotonic)
    c.add("frames", 30)
    wall.now += 4 + jump_s
    monotonic.now += 4
    assert not c.due()
    wall.now += 6
    monotonic.now += 6
    assert c.due()
    w = c.close_window()
    assert w["window_end"] - w["window_start"] == pytest.approx(10.0)
    assert w["window_end"] == wall.now and w["fps"] == pytest.approx(3.0)
    StatsPayload(
        device_id="pi-01",
        site="lobby",
        **{**w, "window_start": utc(w["window_start"]), "window_end": utc(w["window_end"])},
    )
