"""Faults, end to end: the real `edge run` as a subprocess, a real Mosquitto, the slideshow.

Start-up errors must end the process with one line and exit 1; the fault runs (broker outage,
SIGKILL during an outage, a full state disk, two instances on one state folder) each print
expected / received / lost / duplicated match events and must lose and duplicate none. A
transport redelivery of the same event id is not a duplicate: receivers de-duplicate by id.

No test here depends on the machine being idle (a loaded 2-core CI runner included): each fault
is made while the device is known to be in the state the fault is about, and each wait is for an
event the device makes visible (a message, a row in the outbox, a line of its log), never for a
stretch of time. The fault runs watch a 25 fps camera that loops the slideshow, so the device is
still raising events when the fault comes however fast or slow this machine is (a file may be
over before it); what it raised is read from its log (one `match: track N -> ID` line per
event). Timeouts are only a safety net against a hang (`WAIT`).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import stat
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import cv2
import pytest
from support_camera import MjpegCamera
from support_wait import wait_until
from test_device_e2e import (  # noqa: F401 (gallery, slideshow, slideshow_jpegs: fixtures)
    edge_run_command,
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

WAIT = 300.0  # seconds: a safety net against a hang, never what a test's logic waits for


def run_edge(slideshow, gallery, broker, state: Path, *extra: str, timeout: float = WAIT) -> tuple[int, str]:  # noqa: F811
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

RAISED = re.compile(r"match: track (\d+) -> (\S+) \(distance")


class EdgeProcess:
    """`edge run` as a subprocess, its log (stderr) and summary (stdout) in files beside the
    test: the test reads the log while the device runs, and a long run never blocks on a full
    pipe nobody reads."""

    def __init__(self, command: list[str], logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / "edge-run.log"
        with self.log_path.open("w") as err, (logs / "edge-run.out").open("w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def raised(self) -> list[tuple[int, str]]:
        """(track id, identity id) of every match event the device raised so far, from its log."""
        return [(int(track), identity) for track, identity in RAISED.findall(self.log())]

    def finish(self, stop: signal.Signals | None = None, timeout: float = WAIT) -> tuple[int, str]:
        """Send `stop` (if still running), wait for the exit; (exit status, log). Killed if it hangs."""
        try:
            if stop is not None and self.process.poll() is None:
                self.process.send_signal(stop)
            self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        return self.process.returncode, self.log()


@pytest.fixture
def looping_camera(slideshow_jpegs, request) -> MjpegCamera:  # noqa: F811
    """A 25 fps camera that shows the slideshow over and over: the device keeps raising events
    until the test stops it, however fast or slow this machine is."""
    camera = MjpegCamera(lambda n: slideshow_jpegs[n % len(slideshow_jpegs)], fps=25).start()
    request.addfinalizer(camera.stop)
    return camera


def start_edge(camera: MjpegCamera, gallery, broker, state: Path, logs: Path) -> EdgeProcess:  # noqa: F811
    return EdgeProcess(edge_run_command(camera.url, gallery, broker.url, state), logs)


def tally(
    name: str, expected: list, events: list[dict], key: str | Callable[[dict], object] = "identity_id"
) -> tuple[int, int]:
    """Print and return (lost, duplicated) for the unique `events` received.

    lost: `expected` keys with no event (`key`: a field, or a function of the event);
    duplicated: one person pass (a track of one run: the window id starts with the run's boot
    id) sent under more than one event id. A redelivery of one event id is neither
    (`unique_events` drops it).
    """
    key_of = (lambda e: e[key]) if isinstance(key, str) else key
    lost = sum((Counter(expected) - Counter(key_of(e) for e in events)).values())
    duplicated = len(events) - len({(e["window_id"].split("-")[0], e["track_id"]) for e in events})
    print(f"\n{name:<34} expected {len(expected):3}  received {len(events):3}  lost {lost}  duplicated {duplicated}")
    return lost, duplicated


def track_and_identity(event: dict) -> tuple[int, str]:
    return event["track_id"], event["identity_id"]


def all_raised_arrive(sub, device: EdgeProcess) -> bool:
    """Wait until every event the (finished) device raised was received, by track and identity."""
    raised = set(device.raised())
    return sub.wait_for(lambda ms: raised <= {track_and_identity(e) for e in unique_events(sub)}, timeout=WAIT)


def a_match(ms) -> bool:
    """A match event went out: the device's loop runs (the status alone says only that the link
    connected once; the start is over when the loop runs)."""
    return any(m.topic.endswith("/match") for m in ms)


def online(sub) -> bool:
    return sub.wait_for(lambda ms: any(b'"online"' in m.payload for m in ms), timeout=WAIT)


def offline(sub) -> bool:
    """The device's last message, after everything in its outbox was acknowledged."""
    return sub.wait_for(lambda ms: any(b'"offline"' in m.payload for m in ms), timeout=WAIT)


def outbox_events(state: Path) -> set[str]:
    """Event ids waiting in the outbox, read without touching it."""
    return set(outbox_payloads(state))


def outbox_payloads(state: Path) -> dict[str, dict]:
    """The match events waiting in the outbox by event id, read without touching it."""
    with contextlib.closing(sqlite3.connect(f"file:{state / 'outbox.sqlite'}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT message_id, payload FROM outbox WHERE topic LIKE '%/match'")
        return {message_id: json.loads(payload) for message_id, payload in rows}


def test_broker_outage(broker_factory, subscriber_factory, looping_camera, gallery, tmp_path):  # noqa: F811
    """The broker goes away mid-run: events raised meanwhile wait in the outbox, then arrive."""
    broker = broker_factory(persistence=True)
    sub = subscriber_factory(broker.port, ["edge/test/cam-1/#"], client_id="fault-outage", persistent=True)
    state = tmp_path / "state"
    device = start_edge(looping_camera, gallery, broker, state, tmp_path / "logs")
    try:
        assert sub.wait_for(a_match, timeout=WAIT), device.log()[-2000:]
        broker.stop()
        stopped = datetime.now(timezone.utc)

        def raised_in_the_outage() -> set[str]:  # from a frame taken after the stop: not sent before it
            waiting = outbox_payloads(state)
            return {i for i, e in waiting.items() if datetime.fromisoformat(e["ts"].replace("Z", "+00:00")) > stopped}

        assert wait_until(lambda: len(raised_in_the_outage()) >= 2, timeout=WAIT), "no event waited in the outbox"
        stranded = raised_in_the_outage()
        broker.start()
        assert sub.wait_for(lambda ms: stranded <= {e["event_id"] for e in unique_events(sub)}, timeout=WAIT)
    finally:
        code, err = device.finish(signal.SIGTERM)
    assert code == 0, err[-2000:]
    assert offline(sub)
    assert all_raised_arrive(sub, device)
    assert tally("broker outage", device.raised(), unique_events(sub), key=track_and_identity) == (0, 0)


def test_sigkill_during_a_broker_outage(
    broker_factory,
    subscriber_factory,
    slideshow,  # noqa: F811 (fixtures imported above)
    looping_camera,
    gallery,  # noqa: F811
    tmp_path,
):
    """Killed while the broker is away: what was in the outbox goes at the next start."""
    broker = broker_factory(persistence=True)
    sub = subscriber_factory(broker.port, ["edge/test/cam-1/#"], client_id="fault-kill", persistent=True)
    state = tmp_path / "state"
    device = start_edge(looping_camera, gallery, broker, state, tmp_path / "logs")
    try:
        assert sub.wait_for(a_match, timeout=WAIT), device.log()[-2000:]
        broker.stop()
        assert wait_until(lambda: len(outbox_events(state)) >= 2, timeout=WAIT), "no event waited in the outbox"
    finally:
        device.finish(signal.SIGKILL)
    expected = {e["event_id"] for e in unique_events(sub)} | outbox_events(state)
    broker.start()
    code, err = run_edge(slideshow, gallery, broker, state, "--max-frames", "1")
    assert code == 0, err[-2000:]
    assert sub.wait_for(lambda ms: expected <= {e["event_id"] for e in unique_events(sub)}, timeout=WAIT)
    assert tally("SIGKILL during a broker outage", sorted(expected), unique_events(sub), key="event_id") == (0, 0)


def test_two_instances_on_one_state_dir(
    broker,
    subscriber_factory,
    slideshow,  # noqa: F811 (fixtures imported above)
    looping_camera,
    gallery,  # noqa: F811
    tmp_path,
):
    """A second `edge run` on a folder in use is refused, naming the first; the first goes on."""
    sub = subscriber_factory(broker.port, ["edge/test/cam-1/#"])
    state = tmp_path / "state"
    first = start_edge(looping_camera, gallery, broker, state, tmp_path / "logs")
    try:
        assert online(sub), first.log()[-2000:]  # the folder is locked before the link connects
        code, err = run_edge(slideshow, gallery, broker, state)
        assert_one_line_error(code, err, f"state folder {state} is in use", f"pid {first.pid}")
        assert sub.wait_for(a_match, timeout=WAIT), first.log()[-2000:]
    finally:
        first_code, first_err = first.finish(signal.SIGTERM)
    assert first_code == 0, first_err[-2000:]
    assert offline(sub)
    assert all_raised_arrive(sub, first)
    counts = tally("two instances on one state folder", first.raised(), unique_events(sub), key=track_and_identity)
    assert counts == (0, 0)


def test_full_state_disk(broker, subscriber_factory, slideshow, looping_camera, gallery, small_disk, tmp_path):  # noqa: F811
    """The disk fills up mid-run: events still go (from memory where the disk refuses them), the
    status says degraded; a restart on the full disk names it and advises nothing that would
    discard pending events."""
    state = small_disk / "state"
    sub = subscriber_factory(broker.port, ["edge/test/cam-1/#"])
    device = start_edge(looping_camera, gallery, broker, state, tmp_path / "logs")  # the log off the small disk

    def degraded(ms) -> bool:
        statuses = (json.loads(m.payload) for m in ms if m.topic.endswith("/status"))
        return any(s["state"] == "degraded" and "is full" in s["reason"] for s in statuses)

    try:
        assert sub.wait_for(a_match, timeout=WAIT), device.log()[-2000:]
        ballast = fill(small_disk)
        assert sub.wait_for(degraded, timeout=WAIT), device.log()[-2000:]
        before = len(device.raised())
        assert wait_until(lambda: len(device.raised()) > before, timeout=WAIT), "no event raised on the full disk"
    finally:
        code, err = device.finish(signal.SIGTERM)
    assert code == 0, err[-2000:]
    assert offline(sub)
    windows = {s["window_id"]: s for s in map(json.loads, (m.payload for m in sub.messages("edge/test/cam-1/stats")))}
    assert windows and sum(w["messages_dropped"] for w in windows.values()) == 0
    assert all_raised_arrive(sub, device)
    assert tally("full state disk", device.raised(), unique_events(sub), key=track_and_identity) == (0, 0)
    code, err = run_edge(slideshow, gallery, broker, state, "--max-frames", "1")
    line = assert_one_line_error(code, err, f"filesystem of {state} is full", "free space")
    assert "aside" not in line
    ballast.unlink()
    code, err = run_edge(slideshow, gallery, broker, state, "--max-frames", "1")
    assert code == 0, err[-2000:]
