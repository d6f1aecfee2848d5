"""The SQLite outbox: durable, idempotent, in-flight rows skipped until released."""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from edge.link.errors import OutboxError
from edge.link.outbox import Outbox


def put(box: Outbox, n: int, prefix: str = "m") -> list[str]:
    ids = [f"{prefix}{i:03d}" for i in range(n)]
    for i in ids:
        assert box.put("edge/s/d/match", f'{{"id": "{i}"}}', message_id=i)
    return ids


def test_rows_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as box:
        ids = put(box, 5)
        box.mark_delivered(ids[0])
    with Outbox(path) as box:
        rows = box.pending(10)
        assert [r.message_id for r in rows] == ids[1:]
        assert rows[0].topic == "edge/s/d/match" and rows[0].payload == '{"id": "m001"}'
        assert rows[0].qos == 1 and rows[0].retain is False
        assert box.count_pending() == 4


def test_pending_is_oldest_first_and_limited(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        ids = put(box, 10)
        assert [r.message_id for r in box.pending(3)] == ids[:3]


def test_put_is_idempotent_on_message_id(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        assert box.put("t/a", "first", message_id="e1")
        assert not box.put("t/b", "second", message_id="e1")
        [row] = box.pending(10)
        assert (row.topic, row.payload) == ("t/a", "first")
        assert box.count_pending() == 1


def test_in_flight_rows_are_skipped_until_released_or_restart(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    ids = put(box, 4)
    box.mark_in_flight(ids[0])
    box.mark_in_flight(ids[1])
    assert [r.message_id for r in box.pending(10)] == ids[2:]
    assert [r.message_id for r in box.pending(1)] == ids[2:3]
    assert box.count_pending() == 4  # in flight is still unacknowledged
    box.mark_delivered(ids[0])
    box.release_in_flight()
    assert [r.message_id for r in box.pending(10)] == ids[1:]
    box.mark_in_flight(ids[1])
    box.close()
    with Outbox(path) as again:  # a new process: nothing is in flight any more
        assert [r.message_id for r in again.pending(10)] == ids[1:]


def test_failed_rows_stay_on_disk_but_are_not_sent(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        ids = put(box, 2)
        box.mark_in_flight(ids[0])
        box.mark_failed(ids[0], "Not authorized")
        assert [r.message_id for r in box.pending(10)] == ids[1:]
        assert (box.count_pending(), box.count_failed()) == (1, 1)


def test_qos_0_is_refused(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box, pytest.raises(ValueError, match="QoS 1 or 2"):
        box.put("t", "x", message_id="a", qos=0)


def test_uses_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        put(box, 1)
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    garbage = b"this is not a database, it is a shopping list\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(OutboxError, match=str(path)):
        Outbox(path)
    assert path.read_bytes() == garbage


def test_a_corrupt_outbox_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as box:
        for i in range(20):
            box.put("edge/s/d/match", "x" * 1000, message_id=f"m{i}")
    data = bytearray(path.read_bytes())
    assert len(data) > 8192
    data[4096:8192] = b"\xff" * 4096  # trash the second page
    path.write_bytes(bytes(data))
    with pytest.raises(OutboxError, match=str(path)):
        Outbox(path)
    assert path.read_bytes() == bytes(data)


def test_another_applications_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gallery.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE templates (id TEXT)")
    db.commit()
    db.close()
    with pytest.raises(OutboxError, match="another application"):
        Outbox(path)
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("templates",)]


def test_missing_directory_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "outbox.db"
    with pytest.raises(OutboxError, match=str(path)):
        Outbox(path)


def test_one_writer_one_marker_thread(tmp_path: Path) -> None:
    """The loop thread puts while the network thread marks: no row lost or left behind."""
    box = Outbox(tmp_path / "o.db")
    n = 300
    done = threading.Event()
    delivered: list[str] = []

    def deliver() -> None:
        while len(delivered) < n:
            for row in box.pending(20):
                box.mark_in_flight(row.message_id)
                box.mark_delivered(row.message_id)
                delivered.append(row.message_id)
        done.set()

    marker = threading.Thread(target=deliver, name="test-marker")
    marker.start()
    ids = put(box, n)
    assert done.wait(30)
    marker.join()
    assert delivered == ids
    assert box.count_pending() == 0
    box.close()


# -- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 400 KB tmpfs (needs root: `mount -t tmpfs`); skips where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Write a ballast file until the filesystem refuses; returns it (delete it to free space)."""
    ballast = disk / "ballast"
    with open(ballast, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return ballast


def put_until_refused(box: Outbox, limit: int = 500) -> list[str]:
    """Put 2 KB messages until the disk refuses one (it goes to memory); all ids put."""
    ids = []
    while box.disk_error is None:
        assert len(ids) < limit, "the disk never refused a write"
        ids.append(f"m{len(ids):04d}")
        assert box.put("edge/s/d/match", "x" * 2048, message_id=ids[-1])
    return ids


def test_full_disk_keeps_messages_in_memory_until_acknowledged(small_disk: Path) -> None:
    with Outbox(small_disk / "outbox.db") as box:
        fill(small_disk)
        ids = put_until_refused(box) + put(box, 5, prefix="late")
        assert "full" in box.disk_error
        assert box.count_pending() == len(ids)
        sent = []
        while rows := box.pending(10):
            for row in rows:
                box.mark_delivered(row.message_id)
                sent.append(row.message_id)
        assert sent == ids and box.count_pending() == 0 and box.dropped == 0


def test_full_disk_write_is_retried_and_nothing_is_lost(small_disk: Path) -> None:
    path = small_disk / "outbox.db"
    with Outbox(path) as box:
        ballast = fill(small_disk)
        ids = put_until_refused(box)
        box.retry_disk()
        assert box.disk_error is not None, "the disk is still full"
        ballast.unlink()
        box.retry_disk()
        assert box.disk_error is None
        ids += put(box, 3, prefix="after")
    with Outbox(path) as box:
        assert [r.message_id for r in box.pending(1000)] == ids


def test_memory_queue_overflow_is_counted_not_silent(small_disk: Path, caplog) -> None:
    with Outbox(small_disk / "outbox.db", memory_limit=4) as box:
        fill(small_disk)
        put_until_refused(box)
        extra = [box.put("edge/s/d/match", "{}", message_id=f"x{i}") for i in range(10)]
        assert extra == [True] * 3 + [False] * 7
        assert box.dropped == 7 and "dropped" in caplog.text


def test_restart_on_a_full_disk_names_it_and_keeps_the_outbox(small_disk: Path) -> None:
    path = small_disk / "outbox.db"
    with Outbox(path) as box:
        put(box, 3)
    (small_disk / "other.db").touch()
    fill(small_disk)
    try:
        with Outbox(path) as box:
            assert box.count_pending() == 3
    except OutboxError as e:
        assert "full" in str(e) and "free space" in str(e) and "aside" not in str(e)
    with pytest.raises(OutboxError, match="full") as refused:
        Outbox(small_disk / "other.db")  # a new outbox needs room for its schema
    assert "free space" in str(refused.value) and "aside" not in str(refused.value)


def test_wal_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        for i in range(300):
            box.put("edge/s/d/match", "x" * 2048, message_id=f"m{i}")
            box.mark_delivered(f"m{i}")
        wal = path.with_name(path.name + "-wal").stat().st_size
    assert wal <= 256 * 1024, f"WAL grew to {wal} bytes"
