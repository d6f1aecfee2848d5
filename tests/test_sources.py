"""Frame sources and the latest-frame grabber, on real files, folders and loopback sockets."""

from __future__ import annotations

import importlib.util
import itertools
import logging
import sys
import time
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from support_camera import MjpegCamera, closed_port
from support_wait import wait_until

from edge.device.sources import (
    SCHEMES,
    Frame,
    FrameSource,
    LatestFrameGrabber,
    SourceError,
    SourceInfo,
    is_live,
    open_source,
    parse_uri,
)
from edge.device.sources.convert import bgr_to_rgb_in_place
from edge.device.sources.images import ImageFolderSource
from edge.device.sources.opencv import Kind, OpenCVSource

LOGGER = "edge.device.sources"
REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 64, 48


def green_level(index: int) -> int:
    """Each generated frame carries its number in the green channel, in steps MJPEG keeps."""
    return (index * 6) % 240


def write_video(path: Path, frames: int) -> Path:
    """A small MJPEG AVI: red frames (R=255, B=0) whose green level encodes the frame number."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((HEIGHT, WIDTH, 3), (0, green_level(i), 255), np.uint8))  # BGR
    writer.release()
    return path


def frame_number(frame: Frame) -> int:
    """The number written by `write_video`, read back from the green channel."""
    return int(round(float(frame.image[..., 1].mean()) / 6))


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "red.avi", 40)


# --- URIs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "scheme", "target", "live"),
    [
        ("v4l2:/dev/video0", "v4l2", "/dev/video0", True),
        ("/dev/video1", "v4l2", "/dev/video1", True),
        ("v4l2:2", "v4l2", "2", True),
        ("0", "index", "0", True),
        ("gst:videotestsrc ! appsink", "gst", "videotestsrc ! appsink", True),
        ("rtsp://cam.local:554/stream1", "rtsp", "rtsp://cam.local:554/stream1", True),
        ("rtsps://cam.local/s", "rtsps", "rtsps://cam.local/s", True),
        ("http://10.0.0.2:8080/video.mjpg", "http", "http://10.0.0.2:8080/video.mjpg", True),
        ("https://cam.example/live", "https", "https://cam.example/live", True),
        ("picam:1", "picam", "1", True),
        ("file:clips/a.mp4", "file", "clips/a.mp4", False),
        ("file:///data/a.mp4", "file", "/data/a.mp4", False),
        ("/data/a.mp4", "file", "/data/a.mp4", False),
        ("a.mp4", "file", "a.mp4", False),
        ("dir:/data/stills", "dir", "/data/stills", False),
    ],
)
def test_parse_every_scheme(uri: str, scheme: str, target: str, live: bool) -> None:
    assert parse_uri(uri) == (scheme, target)
    assert is_live(uri) is live


def test_every_registered_scheme_is_parsed() -> None:
    assert set(SCHEMES) == {"v4l2", "gst", "rtsp", "rtsps", "http", "https", "picam", "file", "dir"}


@pytest.mark.parametrize(
    ("uri", "kind", "target"),
    [
        ("v4l2:/dev/video0", Kind.V4L2, "/dev/video0"),
        ("v4l2:3", Kind.V4L2, 3),
        ("0", Kind.CAMERA, 0),
        ("gst:videotestsrc ! appsink", Kind.GSTREAMER, "videotestsrc ! appsink"),
        ("rtsp://cam/1", Kind.STREAM, "rtsp://cam/1"),
        ("http://cam/v.mjpg", Kind.STREAM, "http://cam/v.mjpg"),
        ("https://cam/v", Kind.STREAM, "https://cam/v"),
        ("file:a.mp4", Kind.FILE, "a.mp4"),
        ("a.mp4", Kind.FILE, "a.mp4"),
    ],
)
def test_open_source_builds_opencv_sources(uri: str, kind: Kind, target: str | int) -> None:
    source = open_source(uri, width=640, height=480, fps=15, timeout_s=3)
    assert isinstance(source, OpenCVSource)
    assert isinstance(source, FrameSource)
    assert (source._kind, source._target) == (kind, target)
    assert source.info.live is (kind is not Kind.FILE)


def test_open_source_builds_image_folder(tmp_path: Path) -> None:
    source = open_source(f"dir:{tmp_path}", width=640)  # camera options are ignored
    assert isinstance(source, ImageFolderSource)
    assert not source.info.live


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(SourceError) as err:
        open_source("webcam:0")
    message = str(err.value)
    assert "'webcam'" in message
    for scheme in SCHEMES:
        assert f"{scheme}:" in message


@pytest.mark.parametrize(
    ("uri", "options", "match"),
    [
        ("", {}, "empty source URI"),
        ("v4l2:", {}, "names nothing after v4l2:"),
        ("v4l2:front", {}, "v4l2:front: expected a camera number"),
        ("picam:left", {}, "picam:left: expected a camera number"),
        ("v4l2:0", {"widht": 640}, "unknown option.*widht"),
    ],
)
def test_malformed_uris_and_options(uri: str, options: dict, match: str) -> None:
    with pytest.raises(SourceError, match=match):
        open_source(uri, **options)


def test_passwords_are_masked_in_messages() -> None:
    with pytest.raises(SourceError) as err:
        open_source("rtsp://admin:hunter2@cam/1", widht=1)
    assert "admin:***@cam" in str(err.value)
    assert "hunter2" not in str(err.value)
    assert open_source("rtsp://admin:hunter2@cam/1").info.uri == "rtsp://admin:***@cam/1"


# --- video files ------------------------------------------------------------------------------


def test_video_file_read_to_the_end_in_rgb(video: Path) -> None:
    with open_source(f"file:{video}") as source:
        info = source.info
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    assert (info.width, info.height, info.frame_count, info.live) == (WIDTH, HEIGHT, 40, False)
    assert [f.index for f in frames] == list(range(40))
    first = frames[0].image
    assert first.shape == (HEIGHT, WIDTH, 3) and first.dtype == np.uint8
    red, green, blue = (float(first[..., c].mean()) for c in range(3))
    assert red > 240 and green < 10 and blue < 10  # written as pure red BGR (0, 0, 255)
    assert [frame_number(f) for f in frames] == list(range(40))
    assert all(a.captured_at <= b.captured_at for a, b in itertools.pairwise(frames))


def test_grab_then_retrieve_gives_each_frame_once(video: Path) -> None:
    with open_source(f"file:{video}") as source:
        assert source.grab()
        before_copy = time.monotonic()
        frame = source.retrieve()
        assert frame.captured_at <= before_copy  # captured when grabbed, not when copied
        assert (frame.index, frame_number(frame)) == (0, 0)
        with pytest.raises(SourceError, match="no grabbed frame"):
            source.retrieve()
        assert source.grab() and source.grab()  # a frame grabbed and never retrieved is skipped
        assert (frame := source.retrieve()).index == 1 and frame_number(frame) == 2


def test_bare_path_reads_into_the_given_buffer(video: Path) -> None:
    buffer = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    wrong = np.empty((10, 10, 3), np.uint8)
    with open_source(str(video)) as source:
        first = source.read(buffer)
        other = source.read(wrong)
    assert first is not None and first.image is buffer
    assert other is not None and other.image is not wrong and other.image.shape == buffer.shape


@pytest.mark.parametrize("shape", [(1080, 1920, 3), (7, 5, 3), (361, 641, 3)])
def test_channel_swap_in_place_matches_numpy(shape: tuple[int, int, int]) -> None:
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    expected = image[..., ::-1].copy()
    assert bgr_to_rgb_in_place(image) is image
    np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize("threads", [0, 2])
def test_decoder_threads_give_the_same_frames(video: Path, threads: int) -> None:
    def frames(**options: int) -> list[np.ndarray]:
        with open_source(f"file:{video}", **options) as source:
            return [frame.image for frame in iter(source.read, None)]

    one, several = frames(decode_threads=1), frames(decode_threads=threads)
    assert len(one) == len(several) == 40
    for a, b in zip(one, several, strict=True):
        np.testing.assert_array_equal(a, b)


def test_decoder_threads_apply_to_streams_and_files_only() -> None:
    assert open_source("file:a.mp4", decode_threads=3)._decode_threads == 3
    assert open_source("rtsp://cam/1", decode_threads=0)._decode_threads == 0
    assert open_source("v4l2:0", decode_threads=3)._open_params() == []  # a camera decodes nothing


def test_missing_file_names_the_uri(tmp_path: Path) -> None:
    uri = f"file:{tmp_path / 'nope.mp4'}"
    with pytest.raises(SourceError, match=f"cannot open {uri}: no such file"):
        open_source(uri).open()
    with pytest.raises(SourceError, match="no such file"):
        LatestFrameGrabber(open_source(uri)).start()  # finite sources fail at start, loudly


def test_file_that_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(SourceError, match=f"cannot open file:{path}: not a video"):
        open_source(f"file:{path}").open()


def test_video_without_frames_is_an_error(tmp_path: Path) -> None:
    path = write_video(tmp_path / "empty.avi", 0)
    with pytest.raises(SourceError, match=f"file:{path} has no frames"):
        open_source(f"file:{path}").open()


def test_corrupt_region_of_a_video_is_skipped_with_a_warning(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A third of the way into the slideshow, 20 kB of garbage: the decoder loses about 70
    frames there, and the file goes on after them instead of ending at the damage."""
    data = bytearray((data_dir / "videos" / "lfw_slideshow.mp4").read_bytes())
    start = len(data) // 3
    data[start : start + 20_000] = np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes()
    path = tmp_path / "damaged.mp4"
    path.write_bytes(data)
    source = open_source(f"file:{path}")
    with caplog.at_level(logging.WARNING, logger=LOGGER), LatestFrameGrabber(source, live=False) as grabber:
        taken = [index for index, _ in drain(grabber)]
    assert taken[0] == 0 and taken[-1] == 599, "the file was not read to its end"
    assert 0 < source.frames_skipped < 200 and len(taken) == 600 - source.frames_skipped
    assert taken == sorted(taken) and "unreadable" in caplog.text


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("v4l2:/dev/video97", "cannot open v4l2:/dev/video97: no such device"),
        ("v4l2:97", r"cannot open v4l2:97: no such device \(/dev/video97\)"),
        ("/dev/null", "cannot open /dev/null: not a video"),  # exists, but no camera
    ],
)
def test_unopenable_camera_names_the_uri(uri: str, match: str) -> None:
    with pytest.raises(SourceError, match=match):
        open_source(uri).open()


def test_gstreamer_needs_an_appsink_and_a_gstreamer_build() -> None:
    with pytest.raises(SourceError, match="cannot open gst:videotestsrc ! fakesink: "):
        open_source("gst:videotestsrc ! fakesink").open()


# --- image folders ----------------------------------------------------------------------------


def test_image_folder_skips_unreadable_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    colours = {"a_red.png": (0, 0, 255), "c_green.jpg": (0, 255, 0), "d_blue.BMP": (255, 0, 0)}
    for name, bgr in colours.items():
        assert cv2.imwrite(str(tmp_path / name), np.full((20, 30, 3), bgr, np.uint8))
    (tmp_path / "b_broken.jpg").write_bytes(b"\xff\xd8 truncated upload")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    (tmp_path / "sub.png").mkdir()  # a folder is not an image either

    source = open_source(f"dir:{tmp_path}")
    assert isinstance(source, ImageFolderSource)
    with caplog.at_level(logging.WARNING, logger=LOGGER), source:
        assert source.info.frame_count == 4
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    assert source.skipped == 1
    assert [f.index for f in frames] == [0, 2, 3]  # position in name order; the gap is b_broken
    assert [source.paths[f.index].name for f in frames] == [
        "a_red.png",
        "c_green.jpg",
        "d_blue.BMP",
    ]
    dominant = [int(np.argmax(f.image.reshape(-1, 3).mean(axis=0))) for f in frames]
    assert dominant == [0, 1, 2]  # R, G, B: converted from OpenCV's BGR
    assert "b_broken.jpg" in caplog.text


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=f"cannot open dir:{tmp_path / 'missing'}: no such folder"):
        open_source(f"dir:{tmp_path / 'missing'}").open()
    with pytest.raises(SourceError, match="no images"):
        open_source(f"dir:{tmp_path}").open()


def test_image_folder_with_the_grabber_ends_cleanly(data_dir: Path) -> None:
    folder = data_dir / "face_recognition" / "examples" / "knn_examples" / "train" / "biden"
    expected = len([p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}])
    with LatestFrameGrabber(open_source(f"dir:{folder}")) as grabber:
        taken = drain(grabber)
    assert len(taken) == expected > 0
    assert grabber.ended and grabber.frames_dropped == 0


# --- the grabber ------------------------------------------------------------------------------


def drain(grabber: LatestFrameGrabber, pause_every: int = 7) -> list[tuple[int, int]]:
    """Take frames until the grabber ends; pause now and then so the capture thread runs ahead."""
    taken = []
    while not grabber.ended:
        frame = grabber.latest(timeout=5.0)
        if frame is None:
            continue
        taken.append((frame.index, int(frame.image[0, 0, 1])))
        if len(taken) % pause_every == 0:
            time.sleep(0.005)
    return taken


def test_finite_grabber_loses_nothing_on_a_generated_video(video: Path) -> None:
    grabber = LatestFrameGrabber(open_source(f"file:{video}"))
    assert grabber.live is False  # taken from the source
    with grabber:
        taken = drain(grabber)
    assert [index for index, _ in taken] == list(range(40))
    assert grabber.frames_read == grabber.frames_taken == 40
    assert grabber.frames_dropped == 0 and grabber.reconnects == 0 and grabber.error is None
    assert not grabber.running


def test_finite_grabber_needs_two_buffers_and_never_touches_the_held_one(video: Path) -> None:
    images: list[np.ndarray] = []  # kept alive, so distinct objects are distinct buffers
    with LatestFrameGrabber(open_source(f"file:{video}")) as grabber:
        while (frame := grabber.latest(timeout=5.0)) is not None:
            before = frame.image.copy()
            time.sleep(0.01)  # the capture thread reads the next frame meanwhile
            np.testing.assert_array_equal(frame.image, before)
            assert frame_number(frame) == frame.index
            if not any(frame.image is seen for seen in images):
                images.append(frame.image)
    assert grabber.frames_taken == 40
    assert len(images) == 2  # the held frame and the next one: a finite source never needs a third


@pytest.mark.parametrize(
    "relative",
    [
        "videos/lfw_slideshow.mp4",
        "videos/face_api_bbt_tiny.mp4",
        "face_recognition/examples/short_hamilton_clip.mp4",
    ],
)
def test_finite_grabber_loses_nothing_on_real_videos(data_dir: Path, relative: str) -> None:
    path = data_dir / relative
    capture = cv2.VideoCapture(str(path))
    expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    with LatestFrameGrabber(open_source(f"file:{path}"), live=False) as grabber:
        taken = drain(grabber)
    assert [index for index, _ in taken] == list(range(expected))
    assert grabber.frames_read == grabber.frames_taken == expected
    assert grabber.frames_dropped == 0


def test_live_grabber_drops_stale_frames_for_a_slow_consumer(tmp_path: Path) -> None:
    video = write_video(tmp_path / "long.avi", 300)
    grabber = LatestFrameGrabber(open_source(str(video)), live=True, reconnect_initial_s=0.01)
    indices: list[int] = []
    with grabber:
        while len(indices) < 12:
            frame = grabber.latest(timeout=5.0)
            assert frame is not None
            indices.append(frame.index)
            time.sleep(0.02)  # a slow detector
    late = grabber.latest(timeout=0)  # a frame may still wait in the mailbox after stop
    taken = grabber.frames_taken
    assert not grabber.running and grabber.ended
    assert grabber.frames_dropped > 0
    assert grabber.frames_read == taken + grabber.frames_dropped
    assert taken == len(indices) + (late is not None)
    assert indices == sorted(indices) and len(set(indices)) == len(indices)  # always newer


def test_live_grabber_on_a_real_video(data_dir: Path) -> None:
    source = open_source(f"file:{data_dir / 'videos' / 'lfw_slideshow.mp4'}")
    with LatestFrameGrabber(source, live=True) as grabber:
        for _ in range(5):
            assert grabber.latest(timeout=5.0) is not None
            time.sleep(0.05)
    grabber.latest(timeout=0)
    assert grabber.frames_dropped > 0
    assert grabber.frames_read == grabber.frames_taken + grabber.frames_dropped


def load_bench_capture() -> ModuleType:
    """scripts/bench_capture.py, whose `ReadOnly` wrapper shows a source without grab/retrieve."""
    spec = importlib.util.spec_from_file_location("bench_capture", REPO / "scripts" / "bench_capture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("read_only", "buffers"), [(False, 2), (True, 3)])
def test_held_frame_is_not_overwritten_and_buffers_are_reused(tmp_path: Path, read_only: bool, buffers: int) -> None:
    """A live source that grabs apart from retrieving needs two buffers; one that can only read, three."""
    video = write_video(tmp_path / "long.avi", 300)
    source = open_source(str(video))
    grabber = LatestFrameGrabber(
        load_bench_capture().ReadOnly(source) if read_only else source, live=True, reconnect_initial_s=0.01
    )
    with grabber:
        held = grabber.latest(timeout=5.0)
        assert held is not None
        before = held.image.copy()
        read_then = grabber.frames_read
        assert wait_until(lambda: grabber.frames_read >= read_then + 30)
        np.testing.assert_array_equal(held.image, before)  # 30 frames later, still intact
        images = set()
        for _ in range(20):
            frame = grabber.latest(timeout=5.0)
            assert frame is not None
            images.add(id(frame.image))
            read = grabber.frames_read
            assert wait_until(lambda r=read: grabber.frames_read >= r + 2)  # the capture thread fills the mailbox
    assert len(images) == buffers
    grabber.latest(timeout=0)  # the frame still waiting, if any, is taken
    assert grabber.frames_read == grabber.frames_taken + grabber.frames_dropped


def test_bench_capture_counts_the_buffers_of_both_ways_to_read(tmp_path: Path) -> None:
    video = write_video(tmp_path / "long.avi", 300)
    bench_capture = load_bench_capture()
    with_split = bench_capture.measure(video, read_only=False, frames=15, loop_ms=5)
    read_only = bench_capture.measure(video, read_only=True, frames=15, loop_ms=5)
    assert (with_split["buffers"], read_only["buffers"]) == (2, 3)
    assert with_split["shape"] == [HEIGHT, WIDTH, 3] and with_split["dropped"] > 0
    assert read_only["peak_rss_mb"] > 0


class FlakySource(FrameSource):
    """A live source whose reads fail `failures` times after `good` frames, then recover."""

    def __init__(self, good: int, failures: int) -> None:
        self.good, self.failures = good, failures
        self.reads = self.opens = self.closes = 0
        self._info = SourceInfo(uri="test:flaky", live=True, width=8, height=8)

    @property
    def info(self) -> SourceInfo:
        return self._info

    def open(self) -> None:
        self.opens += 1

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        self.reads += 1
        if self.good < self.reads <= self.good + self.failures:
            raise SourceError("test:flaky read failed: cable pulled")
        time.sleep(0.001)
        image = out if out is not None else np.empty((8, 8, 3), np.uint8)
        image[...] = self.reads % 256
        return Frame(image, self.reads, time.monotonic(), time.time())

    def close(self) -> None:
        self.closes += 1


def test_failing_reads_reconnect_with_backoff_and_come_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = FlakySource(good=5, failures=3)
    grabber = LatestFrameGrabber(source, reconnect_initial_s=0.01, reconnect_max_s=0.02)
    with caplog.at_level(logging.INFO, logger=LOGGER), grabber:
        assert wait_until(lambda: grabber.frames_read > 20)
    assert grabber.reconnects == 3
    assert source.opens == 4 and source.closes >= 4  # closed after each failure and at stop
    lost = [r.getMessage() for r in caplog.records if r.getMessage().startswith("camera lost")]
    assert lost == [
        "camera lost: test:flaky read failed: cable pulled; retrying in 0.01 s",
        "camera lost: test:flaky read failed: cable pulled; retrying in 0.02 s",
        "camera lost: test:flaky read failed: cable pulled; retrying in 0.02 s",  # capped
    ]
    assert "camera back: test:flaky" in caplog.text
    assert not grabber.running


def red_jpeg(n: int) -> bytes:
    """Frame n of `write_video`'s numbering, as the JPEG a camera sends."""
    return cv2.imencode(".jpg", np.full((HEIGHT, WIDTH, 3), (0, green_level(n % 40), 255), np.uint8))[1].tobytes()


def test_live_http_stream_is_lost_and_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    """A real network stream through OpenCV's FFmpeg: newest frames only, two buffers; when the
    camera goes away the grabber says so and retries; when it is back, frames flow again."""
    camera = MjpegCamera(red_jpeg, fps=50).start()
    grabber = LatestFrameGrabber(open_source(camera.url, timeout_s=2), reconnect_initial_s=0.05, reconnect_max_s=0.2)
    images: set[int] = set()
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER), grabber:
            assert grabber.live
            before = []
            for _ in range(10):
                frame = grabber.latest(timeout=5.0)
                assert frame is not None
                before.append(frame)
                images.add(id(frame.image))
                time.sleep(0.05)  # slower than the camera: stale frames are dropped
            red, _, blue = (float(before[-1].image[..., c].mean()) for c in range(3))
            assert red > 240 and blue < 10  # the camera's red frame, in RGB
            assert [f.index for f in before] == sorted({f.index for f in before})  # always newer
            camera.stop()
            assert wait_until(lambda: "camera lost" in caplog.text)
            assert wait_until(lambda: grabber.reconnects >= 2)  # refused while it is down, retried
            camera.start()
            assert wait_until(lambda: "camera back" in caplog.text)
            after = grabber.latest(timeout=5.0)
            assert after is not None and after.index > before[-1].index
    finally:
        camera.stop()
    grabber.latest(timeout=0)  # the frame still waiting, if any, is taken
    assert grabber.frames_dropped > 0
    assert grabber.frames_read == grabber.frames_taken + grabber.frames_dropped
    assert len(images) == 2


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_unreachable_stream_at_start_is_an_error(scheme: str) -> None:
    """At start an unopenable stream fails at once (a typo must not become a silent retry loop);
    a stream lost later is retried (see the test above)."""
    port = closed_port()
    uri = f"{scheme}://viewer:s3cret@127.0.0.1:{port}/stream"
    grabber = LatestFrameGrabber(open_source(uri, timeout_s=2), reconnect_initial_s=0.01)
    assert grabber.live
    with pytest.raises(SourceError) as error:
        grabber.start()
    assert f"cannot open {scheme}://viewer:***@127.0.0.1:{port}/stream" in str(error.value)
    assert "s3cret" not in str(error.value)
    assert not grabber.running


def test_missing_camera_at_start_is_an_error() -> None:
    with pytest.raises(SourceError, match="cannot open v4l2:/dev/video97"):
        LatestFrameGrabber(open_source("v4l2:/dev/video97")).start()


# --- picamera2 --------------------------------------------------------------------------------


def test_picam_without_picamera2_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # absent, even on a Pi
    with pytest.raises(SourceError, match=r"picam:0 needs picamera2: install edge\[picamera\]"):
        open_source("picam:0", width=640, height=480)


class FakeRequest:
    """A completed request of the fake camera: frame `number`, to be released exactly once."""

    def __init__(self, camera: FakePicamera2, number: int) -> None:
        self.camera, self.number = camera, number

    def release(self) -> None:
        self.camera.outstanding.remove(self)  # a second release would raise here


class FakeMappedArray:
    """picamera2's `MappedArray(request, stream)`: the stream's buffer as a (H, W, 3) array, in
    "RGB888" memory order [B, G, R]. Blue carries the frame number, red is 200."""

    def __init__(self, request: FakeRequest, stream: str) -> None:
        assert stream == "main"
        self.request = request

    def __enter__(self) -> FakeMappedArray:
        width, height = self.request.camera.camera_config["main"]["size"]
        self.array = np.zeros((height, width, 3), np.uint8)
        self.array[..., 0] = self.request.number % 256
        self.array[..., 2] = 200
        return self

    def __exit__(self, *exc: object) -> None:
        del self.array


class FakePicamera2:
    """The part of `picamera2.Picamera2` the source uses, for a machine without a Pi camera.
    `fail_at`: capture numbers, counted over every instance, whose `capture_request` raises, as
    a stalled camera does."""

    fail_at: set[int] = set()
    all_captures = 0

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.captures = 0
        self.outstanding: list[FakeRequest] = []
        self.camera_config: dict = {}
        self.started = False

    def create_video_configuration(self, main: dict, controls: dict | None = None) -> dict:
        return {"main": {**main, "size": tuple(main["size"])}, "controls": controls or {}}

    def configure(self, config: dict) -> None:
        self.camera_config = config

    def start(self) -> None:
        self.started = True

    def capture_request(self, wait: float | None = None) -> FakeRequest:
        assert self.started and wait is not None
        self.captures += 1
        FakePicamera2.all_captures += 1
        if FakePicamera2.all_captures in self.fail_at:
            raise TimeoutError("frame wait timed out")
        time.sleep(0.002)
        request = FakeRequest(self, self.captures)
        self.outstanding.append(request)
        return request

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        assert not self.outstanding, "closed with camera buffers still held"


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakePicamera2]:
    module = type(sys)("picamera2")
    module.Picamera2, module.MappedArray = FakePicamera2, FakeMappedArray
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setattr(FakePicamera2, "fail_at", set())
    monkeypatch.setattr(FakePicamera2, "all_captures", 0)
    return FakePicamera2


def test_picam_frames_are_rgb_and_every_request_goes_back(fake_picamera2: type[FakePicamera2]) -> None:
    source = open_source("picam:0", width=64, height=48, fps=30)
    with source:
        camera = source._cam
        frames = [source.read() for _ in range(3)]
        assert camera.outstanding == []  # each request released once its copy was made
        assert source.grab() and len(camera.outstanding) == 1  # grabbed, not retrieved
    assert camera.outstanding == [] and not camera.started  # close gave it back, then stopped
    assert (source.info.width, source.info.height, source.info.fps) == (64, 48, 30)
    assert [f.index for f in frames] == [0, 1, 2]
    image = frames[1].image
    assert image.shape == (48, 64, 3)
    assert (image[..., 0].min(), image[..., 2].max()) == (200, 2)  # [B, G, R] memory turned RGB


def test_picam_with_the_live_grabber_uses_two_buffers_and_recovers(
    fake_picamera2: type[FakePicamera2],
) -> None:
    fake_picamera2.fail_at = {20}
    grabber = LatestFrameGrabber(open_source("picam:0", width=64, height=48), reconnect_initial_s=0.01)
    images, indices = set(), []
    with grabber:
        assert grabber.live
        while len(indices) < 40:
            frame = grabber.latest(timeout=5.0)
            assert frame is not None
            images.add(id(frame.image))
            indices.append(frame.index)
            time.sleep(0.005)  # slower than the camera: frames are dropped
    assert len(images) == 2
    assert grabber.reconnects == 1 and grabber.frames_dropped > 0
    assert indices == sorted(set(indices))  # always a newer frame
