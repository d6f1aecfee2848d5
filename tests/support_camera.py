"""An IP camera on loopback for tests: an HTTP MJPEG stream, as many network cameras serve it.

camera = MjpegCamera(lambda n: jpeg_bytes_of_frame(n), fps=25).start()
source = f"http://127.0.0.1:{camera.port}/stream.mjpg"
...
camera.stop()   # drops every viewer and closes the port, as a camera losing power
camera.start()  # back on the same port; the frame count goes on where it stopped
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import BinaryIO


def closed_port() -> int:
    """A loopback port nobody listens on (free at the time of the call)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # start() again on the port stop() just closed
    daemon_threads = True


class MjpegCamera:
    """Serves frame after frame (`jpeg_for(n)`: the JPEG bytes of frame n) at `fps` to every
    viewer, as multipart/x-mixed-replace; `frames_sent` counts over all viewers and restarts."""

    def __init__(self, jpeg_for: Callable[[int], bytes], fps: float = 25.0) -> None:
        self.jpeg_for = jpeg_for
        self.period = 1.0 / fps
        self.port = closed_port()
        self.frames_sent = 0
        self._server: _Server | None = None
        self._on = threading.Event()

    def start(self) -> MjpegCamera:
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while camera._on.is_set():
                        camera._send(self.wfile)
                        time.sleep(camera.period)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the viewer went away

            def log_message(self, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._on.set()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._on.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def _send(self, out: BinaryIO) -> None:
        jpeg = self.jpeg_for(self.frames_sent)
        out.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg))
        self.frames_sent += 1
