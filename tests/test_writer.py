"""DiskWriter: the loop's disk writes run in order on their own thread, and none is lost on stop."""

from __future__ import annotations

import logging
import threading

import pytest

from edge.device.writer import DiskWriter


def test_jobs_run_in_order_on_the_disk_thread_and_stop_runs_them_all() -> None:
    done: list[tuple[int, str]] = []
    gate = threading.Event()
    writer = DiskWriter().start()
    writer.submit(lambda: gate.wait(5.0))  # a disk that hangs for a while
    record = writer.defer(lambda n: done.append((n, threading.current_thread().name)))
    for n in range(100):
        record(n)  # returns at once although the disk thread is blocked
    assert done == []
    gate.set()
    writer.stop()
    assert [n for n, _ in done] == list(range(100))
    assert {name for _, name in done} == {"disk"}


def test_a_failing_job_is_logged_and_the_next_ones_still_run(caplog: pytest.LogCaptureFixture) -> None:
    done: list[int] = []

    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    writer = DiskWriter().start()
    writer.submit(lambda: done.append(1))
    writer.submit(full_disk)
    writer.submit(lambda: done.append(2))
    with caplog.at_level(logging.ERROR, logger="edge.device.writer"):
        writer.stop()
    assert done == [1, 2] and writer.failures == 1
    assert "disk write failed and is lost" in caplog.text and "No space left" in caplog.text


def test_stop_without_start_runs_the_queued_jobs_here() -> None:
    done: list[str] = []
    writer = DiskWriter()
    writer.submit(lambda: done.append(threading.current_thread().name))
    writer.stop()
    writer.stop()  # twice is harmless
    assert done == [threading.current_thread().name]
