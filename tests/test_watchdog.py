"""systemd's notify protocol: READY=1 once the loop runs, WATCHDOG=1 only while frames flow.

A real AF_UNIX datagram socket plays systemd's part; `edge run` runs as a subprocess, as the
unit starts it, with $NOTIFY_SOCKET and $WATCHDOG_USEC set.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import cv2
import pytest
from support_camera import MjpegCamera

from edge.cli import main
from edge.device.watchdog import RUNNING, WAITING, Notifier, watchdog_interval

WATCHDOG_USEC = "20000"  # pings at most every 10 ms: many per second of frames, if any came while stalled


class NotifySocket:
    """systemd's end: a bound datagram socket that records every message, in order."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.messages: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return  # closed
            with self._cond:
                self.messages.append(data.decode())
                self._cond.notify_all()

    def wait_for(self, message: str, after: int = 0, timeout: float = 60.0) -> int:
        """The index of the first `message` at or after index `after` (fails the test if none comes)."""
        with self._cond:
            found = self._cond.wait_for(lambda: message in self.messages[after:], timeout)
            assert found, f"no {message!r} after #{after} in {self.messages}"
            return self.messages.index(message, after)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket():
    listener = NotifySocket(f"@edge-test-{uuid.uuid4().hex}")  # abstract namespace, as systemd may use
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def gallery(data_dir, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gallery") / "gallery.sqlite"
    lfw = data_dir / "lfw" / "Colin_Powell"
    assert (
        main(
            ["enroll", "--gallery", str(path), "--name", "Colin Powell", "--id", "colin"]
            + [str(lfw / "Colin_Powell_0001.jpg")]
        )
        == 0
    )
    return path


def edge_run(
    source: str, gallery: Path, broker_url: str, state: Path, notify: str, *extra: str, usec: str = WATCHDOG_USEC
) -> subprocess.Popen:
    env = {**os.environ, "NOTIFY_SOCKET": notify, "WATCHDOG_USEC": usec}
    env.pop("WATCHDOG_PID", None)
    command = [sys.executable, "-m", "edge.cli", "run", "--source", source, "--gallery", str(gallery)]
    command += ["--broker", broker_url, "--site", "test", "--device-id", "cam-1", "--state-dir", str(state), *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_edge_run_says_ready_pings_while_frames_flow_and_says_stopping(
    data_dir, gallery, broker, notify_socket, tmp_path
):
    clip = data_dir / "videos" / "lfw_slideshow.mp4"
    # WatchdogSec 4 s: pings at most every 2 s, so 40 frames (well under a second here, and far
    # from 80 s on any board) cannot each ping, however fast or slow this machine is today.
    proc = edge_run(
        f"file:{clip}",
        gallery,
        broker.url,
        tmp_path / "state",
        notify_socket.address,
        "--max-frames",
        "40",
        usec="4000000",
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out)["frames"] == 40
    ready = notify_socket.wait_for(f"READY=1\n{RUNNING}")
    ping = notify_socket.wait_for("WATCHDOG=1", after=ready)
    notify_socket.wait_for("STOPPING=1", after=ping)
    assert notify_socket.messages.count("WATCHDOG=1") < 40  # rate-limited: not one per frame


def test_no_ping_while_the_camera_hangs(data_dir, gallery, broker, subscriber_factory, notify_socket, tmp_path):
    """The camera keeps the connection open but sends nothing: the pings stop until it sends again."""
    image = cv2.imread(str(data_dir / "lfw" / "Colin_Powell" / "Colin_Powell_0001.jpg"))
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    sending = threading.Event()
    sending.set()

    def jpeg_for(n: int) -> bytes:
        sending.wait()  # cleared: the camera hangs mid-stream
        return jpeg

    camera = MjpegCamera(jpeg_for, fps=25).start()
    stats = subscriber_factory(broker.port, ["edge/test/cam-1/stats"])
    proc = edge_run(camera.url, gallery, broker.url, tmp_path / "state", notify_socket.address, "--window", "1")
    try:
        flowing = notify_socket.wait_for("WATCHDOG=1", after=notify_socket.wait_for(f"READY=1\n{RUNNING}"))
        sending.clear()
        stalled = notify_socket.wait_for(WAITING, after=flowing)
        # A whole stats window without a frame: the loop went on for a second or more, with no ping
        seen = len(stats.messages())
        assert stats.wait_for(lambda got: any(json.loads(m.payload)["frames"] == 0 for m in got[seen:]), timeout=60)
        sending.set()
        resumed = notify_socket.wait_for(RUNNING, after=stalled)
        notify_socket.wait_for("WATCHDOG=1", after=resumed)
        assert "WATCHDOG=1" not in notify_socket.messages[stalled:resumed]
    finally:
        sending.set()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        camera.stop()
    assert proc.returncode == 0, err
    notify_socket.wait_for("STOPPING=1")


def test_pings_are_rate_limited_to_half_the_watchdog_period():
    with tempfile.TemporaryDirectory() as folder:
        listener = NotifySocket(os.path.join(folder, "notify"))  # a filesystem path, as systemd's default
        now = [0.0]
        notifier = Notifier(listener.address, watchdog_interval({"WATCHDOG_USEC": "1000000"}), clock=lambda: now[0])
        for t in (0.0, 0.2, 0.49, 0.5, 0.7, 1.2):
            now[0] = t
            notifier.frame()
        notifier.stopping()
        listener.wait_for("STOPPING=1")
        assert listener.messages == ["WATCHDOG=1"] * 3 + ["STOPPING=1"]  # at 0, 0.5 and 1.2 s
        listener.close()


def test_watchdog_off_without_systemd_or_for_another_process():
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    silent = Notifier.from_env({})
    silent.ready()
    silent.frame()
    silent.stopping()  # nothing to send to, nothing raised
