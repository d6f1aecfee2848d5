"""Faults, end to end: the real `edge run` as a subprocess, a real Mosquitto, the slideshow.

Start-up errors must end the process with one line and exit 1; the fault runs (broker outage,
SIGKILL during an outage, a full state disk, two instances on one state folder) each print
expected / received / lost / duplicated match events and must lose and duplicate none. A
transport redelivery of the same event id is not a duplicate: receivers de-duplicate by id.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import stat
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import pytest
from support_camera import MjpegCamera
from support_wait import wait_until
from test_device_e2e import (  # noqa: F401 (gallery, slideshow, slideshow_jpegs: fixtures)
    edge_run_command,
    expected_events,
    gallery,
    settings_for,
    slideshow,
    slideshow_jpegs,
    unique_events,
)
from test_outbox import fill, small_disk  # noqa: F401 (small_disk: a fixture)

from edge.device.app import run_device
from edge.device.counters import CountersError
from edge.link import OutboxError

pytestmark = pytest.mark.usefixtures("data_dir")


def run_edge(slideshow, gallery, broker, state: Path, *extra: str, timeout: float = 120) -> tuple[int, str]:  # noqa: F811
    video, _ = slideshow
    done = subprocess.run(
        edge_run_command(video, gallery, broker.url, state, *extra), capture_output=True, text=True, timeout=timeout
    )
    return done.returncode, done.stderr


def assert_one_line_error(code: int, err: str, *words: str) -> str:
    """Exit 1, the last line of stderr is `edge run: ...` naming `words`; no traceback, no abort."""
    last = err.strip().splitlines()[-1]
    assert code == 1, err[-2000:]
    assert "Traceback" not in err and "terminate called" not in err, err[-2000:]
    assert last.startswith("edge run: ") and all(w in last for w in words), last
    return last


def corrupt_counters(state: Path) -> str:
    (state / "counters.json").write_text('{"frames": -1}')
    return "counters.json"


def foreign_outbox(state: Path) -> str:
    with sqlite3.connect(state / "outbox.sqlite") as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    return "outbox.sqlite"


def garbage_outbox(state: Path) -> str:
    (state / "outbox.sqlite").write_bytes(b"not sqlite" * 1000)
    return "outbox.sqlite"


@pytest.mark.parametrize("damage", [corrupt_counters, foreign_outbox, garbage_outbox])
def test_corrupt_state_file_exits_with_one_line(broker, slideshow, gallery, tmp_path, damage):  # noqa: F811
    state = tmp_path / "state"
    state.mkdir()
    name = damage(state)
    before = (state / name).read_bytes()
    code, err = run_edge(slideshow, gallery, broker, state, "--max-frames", "5")
    assert_one_line_error(code, err, name)
    assert (state / name).read_bytes() == before, "the damaged file was changed"


@pytest.mark.parametrize(("damage", "error"), [(corrupt_counters, CountersError), (foreign_outbox, OutboxError)])
def test_failed_start_stops_the_capture_thread(broker, slideshow, gallery, tmp_path, damage, error):  # noqa: F811
    """The cause of the aborts (exit 134): a capture thread still decoding at interpreter exit."""
    video, _ = slideshow
    state = tmp_path / "state"
    state.mkdir()
    damage(state)
    with pytest.raises(error):
        run_device(settings_for(broker, gallery, video, state), threading.Event())
    assert [t.name for t in threading.enumerate() if t.name == "camera" or "paho" in t.name] == []


def test_state_dir_that_is_a_file_exits_with_one_line(broker, slideshow, gallery, tmp_path):  # noqa: F811
    state = tmp_path / "state"
    state.write_text("a file, not a folder")
    code, err = run_edge(slideshow, gallery, broker, state, "--max-frames", "5")
    assert_one_line_error(code, err, str(state))


@pytest.mark.parametrize("frames", ["0", "-1"])
def test_max_frames_below_one_is_refused_before_any_state(broker, slideshow, gallery, tmp_path, frames):  # noqa: F811
    code, err = run_edge(slideshow, gallery, broker, tmp_path / "state", "--max-frames", frames)
    assert_one_line_error(code, err, "--max-frames")
    assert not (tmp_path / "state").exists()


def test_video_without_frames_is_refused_before_any_state(broker, gallery, tmp_path):  # noqa: F811
    empty = tmp_path / "empty.avi"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 64)).release()
    code, err = run_edge((empty, []), gallery, broker, tmp_path / "state")
    assert_one_line_error(code, err, "has no frames")
    assert not (tmp_path / "state").exists()


def test_state_is_private_to_the_device(broker, slideshow, gallery, tmp_path):  # noqa: F811
    """The outbox holds identity ids and times: owner only (0700 folder, 0600 files)."""
    state = tmp_path / "state"
    code, err = run_edge(slideshow, gallery, broker, state, "--max-frames", "30")
    assert code == 0, err[-2000:]
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()}
    assert {"outbox.sqlite", "counters.json"} <= set(files)
    assert all(mode == 0o600 for mode in files.values()), files


def test_no_error_is_logged_on_a_normal_run(broker, slideshow, gallery, tmp_path):  # noqa: F811
    code, err = run_edge(slideshow, gallery, broker, tmp_path / "state", "--max-frames", "5")
    assert code == 0, err[-2000:]
    assert [line for line in err.splitlines() if " ERROR " in line] == []


# -- fault runs: every match event arrives, once --------------------------------------------


def tally(name: str, expected: list[str], events: list[dict], key: str = "identity_id") -> tuple[int, int]:
    """Print and return (lost, duplicated) for the unique `events` received.

    lost: `expected` keys with no event; duplicated: one person pass (a track of one run: the
    window id starts with the run's boot id) sent under more than one event id. A redelivery
    of one event id is neither (`unique_events` drops it).
    """
    lost = sum((Counter(expected) - Counter(e[key] for e in events)).values())
    duplicated = len(events) - len({(e["window_id"].split("-")[0], e["track_id"]) for e in events})
    print(f"\n{name:<34} expected {len(expected):3}  received {len(events):3}  lost {lost}  duplicated {duplicated}")
    return lost, duplicated


def start_edge(slideshow, gallery, broker, state: Path, *extra: str) -> subprocess.Popen:  # noqa: F811
    video, _ = slideshow
    return subprocess.Popen(
        edge_run_command(video, gallery, broker.url, state, *extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err


def online(sub) -> bool:
    return sub.wait_for(lambda ms: any(b'"online"' in m.payload for m in ms), timeout=60)


def test_broker_outage(broker_factory, subscriber_factory, slideshow, gallery, tmp_path):  # noqa: F811
    _, rows = slideshow
    broker = broker_factory(persistence=True)
    sub = subscriber_factory(broker.port, ["edge/test/cam-1/match"], client_id="fault-outage", persistent=True)
    device = start_edge(slideshow, gallery, broker, tmp_path / "state")
    try:
        assert sub.wait_for(lambda ms: len(ms) >= 2, timeout=60)
        broker.stop()
        time.sleep(1.5)  # the device goes on; events wait in the outbox
        broker.start()
    finally:
        code, err = finish(device)
    assert code == 0, err[-2000:]
    expected = expected_events(rows)
    assert sub.wait_for(lambda ms: len({json.loads(m.payload)["event_id"] for m in ms}) >= len(expected), timeout=20)
    assert tally("broker outage", expected, unique_events(sub)) == (0, 0)


def test_sigkill_during_a_broker_outage(
    broker_factory,
    subscriber_factory,
    slideshow,  # noqa: F811 (fixtures imported above)
    slideshow_jpegs,  # noqa: F811
    gallery,  # noqa: F811
    tmp_path,
    request,
):
    """Killed while the broker is away: what was in the outbox goes at the next start. The device
    watches a 25 fps camera looping the slideshow, so events still come after the broker stops."""
    camera = MjpegCamera(lambda n: slideshow_jpegs[n % len(slideshow_jpegs)], fps=25).start()
    request.addfinalizer(camera.stop)
    broker = broker_factory(persistence=True)
    sub = subscriber_factory(broker.port, ["edge/test/cam-1/#"], client_id="fault-kill", persistent=True)
    state = tmp_path / "state"
    device = subprocess.Popen(
        edge_run_command(camera.url, gallery, broker.url, state), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert sub.wait_for(lambda ms: any(m.topic.endswith("/match") for m in ms), timeout=60)
        broker.stop()
        assert wait_until(lambda: len(outbox_events(state)) >= 2, timeout=60), "no event waited in the outbox"
        device.send_signal(signal.SIGKILL)
    finally:
        finish(device)
    expected = {e["event_id"] for e in unique_events(sub)} | outbox_events(state)
    broker.start()
    code, err = run_edge(slideshow, gallery, broker, state, "--max-frames", "1")
    assert code == 0, err[-2000:]
    assert sub.wait_for(lambda ms: expected <= {e["event_id"] for e in unique_events(sub)}, timeout=20)
    assert tally("SIGKILL during a broker outage", sorted(expected), unique_events(sub), key="event_id") == (0, 0)


def outbox_events(state: Path) -> set[str]:
    """Event ids waiting in the outbox, read without touching it."""
    with contextlib.closing(sqlite3.connect(f"file:{state / 'outbox.sqlite'}?mode=ro", uri=True)) as db:
        return {r[0] for r in db.execute("SELECT message_id FROM outbox WHERE topic LIKE '%/match'")}


def test_two_instances_on_one_state_dir(broker, subscriber_factory, slideshow, gallery, tmp_path):  # noqa: F811
    _, rows = slideshow
    sub = subscriber_factory(broker.port, ["edge/test/cam-1/#"])
    state = tmp_path / "state"
    first = start_edge(slideshow, gallery, broker, state)
    try:
        assert online(sub)
        code, err = run_edge(slideshow, gallery, broker, state)
        assert_one_line_error(code, err, f"state folder {state} is in use", f"pid {first.pid}")
    finally:
        first_code, first_err = finish(first)
    assert first_code == 0, first_err[-2000:]
    assert sub.wait_for(lambda ms: any(b'"offline"' in m.payload for m in ms), timeout=10)
    assert tally("two instances on one state folder", expected_events(rows), unique_events(sub)) == (0, 0)


def test_full_state_disk(broker, subscriber_factory, slideshow, gallery, small_disk):  # noqa: F811
    """The disk fills up mid-run: events go from memory, the status says degraded; a restart on
    the full disk names it and advises nothing that would discard pending events."""
    _, rows = slideshow
    state = small_disk / "state"
    sub = subscriber_factory(broker.port, ["edge/test/cam-1/#"])
    device = start_edge(slideshow, gallery, broker, state)
    try:
        assert online(sub)
        ballast = fill(small_disk)
    finally:
        code, err = finish(device)
    assert code == 0, err[-2000:]
    statuses = [json.loads(m.payload) for m in sub.messages("edge/test/cam-1/status")]
    assert any(s["state"] == "degraded" and "is full" in s["reason"] for s in statuses), statuses
    assert sub.wait_for(lambda ms: any(b'"offline"' in m.payload for m in ms), timeout=10)
    windows = {s["window_id"]: s for s in map(json.loads, (m.payload for m in sub.messages("edge/test/cam-1/stats")))}
    assert sum(w["messages_dropped"] for w in windows.values()) == 0
    assert tally("full state disk", expected_events(rows), unique_events(sub)) == (0, 0)
    code, err = run_edge(slideshow, gallery, broker, state, "--max-frames", "1")
    line = assert_one_line_error(code, err, f"filesystem of {state} is full", "free space")
    assert "aside" not in line
    ballast.unlink()
    code, err = run_edge(slideshow, gallery, broker, state, "--max-frames", "1")
    assert code == 0, err[-2000:]
