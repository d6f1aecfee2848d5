"""ServiceThread: the shared start/stop of the background threads, an error in a body reaches its
owner, and a thread that ignores stop is reported, not waited for without end."""

from __future__ import annotations

import logging
import queue
import threading

import pytest

from edge.service import ServiceThread


def test_start_runs_the_body_on_a_named_thread_and_stop_ends_it() -> None:
    names: list[str] = []
    started = threading.Event()

    def body() -> None:
        names.append(threading.current_thread().name)
        started.set()
        thread.stopping.wait()

    thread = ServiceThread("worker", body)
    thread.start()
    assert started.wait(10.0) and thread.running
    assert thread.stop() is True
    assert not thread.running and names == ["worker"]
    assert thread.stop() is True  # twice is harmless


def test_stop_before_start_is_harmless() -> None:
    thread = ServiceThread("never", lambda: None)
    assert thread.stop(timeout=1.0) is True and thread.stopping.is_set()


def test_a_shared_stop_event_and_wake_rouse_a_body_waiting_on_a_queue() -> None:
    stopping = threading.Event()
    items: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    seen: list[str] = []

    def body() -> None:
        while (item := items.get()) is not None:
            seen.append(item)

    thread = ServiceThread("queue", body, stopping=stopping, wake=lambda: items.put(None))
    thread.start()
    items.put("a")
    assert thread.stop() is True
    assert stopping.is_set() and seen == ["a"]


def test_an_error_that_ends_the_body_is_logged_and_raised_by_stop(caplog: pytest.LogCaptureFixture) -> None:
    def body() -> None:
        raise OSError(5, "Input/output error")

    thread = ServiceThread("failing", body)
    with caplog.at_level(logging.ERROR, logger="edge.service"):
        thread.start()
        with pytest.raises(OSError, match="Input/output error"):
            thread.stop()
    assert "thread failing ended by an error" in caplog.text
    assert thread.stop() is True  # raised once


def test_a_body_that_ignores_stop_is_reported_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    thread = ServiceThread("stuck", lambda: release.wait())
    thread.start()
    try:
        with caplog.at_level(logging.WARNING, logger="edge.service"):
            assert thread.stop(timeout=0.05) is False
        assert thread.running
        assert "thread stuck still running 0.05 s after it was asked to stop" in caplog.text
    finally:
        release.set()
    assert thread.stop() is True
