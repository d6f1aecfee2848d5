"""The trial store on SQLite and on a real PostgreSQL: migrations, idempotent storage, gaps."""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from edge.central.trial.intake import EXCERPT, SCHEMA, DeadLetter
from edge.central.trial.schema import devices, metadata, verdicts
from edge.central.trial.store import (
    MIGRATIONS,
    MissingWindows,
    StoreRefused,
    TrialFilter,
    TrialStore,
    TrialStoreError,
    database_url,
    migrate,
)
from edge.link.payloads import ConfigReported, MatchEvent, StatsPayload, StatusPayload, Versions

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def window(seq: int, boot: str = "boot1", device: str = "cam1", site: str = "north", scans: int = 4) -> StatsPayload:
    """Window `seq` of a device's boot; window ids are unique across devices (a random boot id)."""
    start = T0 + timedelta(minutes=seq)
    return StatsPayload(
        window_id=f"{device}.{boot}-{seq:06d}",
        device_id=device,
        site=site,
        window_start=start,
        window_end=start + timedelta(minutes=1),
        frames=600,
        frames_dropped=3,
        detections=20,
        scans=scans,
        quality_rejected=2,
        matches=1,
        fps=10.0,
        latency_ms_p50=30.0,
        latency_ms_p95=45.0,
    )


def alert(seq: int, device: str = "cam1", site: str = "north", template_threshold: float | None = None) -> MatchEvent:
    """The alert of window `seq`: the same arguments give the same event (the same event_id)."""
    return MatchEvent(
        event_id=uuid.UUID(bytes=hashlib.md5(f"{device}-{seq}".encode()).digest(), version=4).hex,
        ts=T0 + timedelta(minutes=seq, seconds=20),
        device_id=device,
        site=site,
        track_id=seq,
        identity_id="id-7",
        score=0.31,
        threshold=0.4,
        template_threshold=template_threshold,
        metric="cosine",
        model_id="mobilefacenet",
        gallery_version="g3",
        window_id=f"{device}.boot1-{seq:06d}",
    )


def status(minute: int, state: str = "online") -> StatusPayload:
    versions = Versions(software="0.3.0", detector_model_id="bf", embedder_model_id="mfn", embedder_sha256="abcd1234")
    return StatusPayload(
        state=state,  # type: ignore[arg-type]
        device_id="cam1",
        site="north",
        ts=T0 + timedelta(minutes=minute),
        started_at=T0,
        versions=versions,
        details={"threshold": 0.4},
    )


@pytest.fixture
def store(db_url: str):
    with TrialStore.open(db_url) as s:
        yield s


def test_migrations_from_empty_make_exactly_the_schema(db_url: str) -> None:
    with TrialStore.open(db_url) as store, store.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == "0006"
        assert compare_metadata(context, metadata) == []
    with TrialStore.open(db_url) as again:  # opening a migrated database changes nothing
        assert again.windows() == []


def test_the_wheel_ships_the_migrations(edge_wheel: Path) -> None:
    names = zipfile.ZipFile(edge_wheel).namelist()
    assert "edge/central/trial/migrations/env.py" in names
    assert "edge/central/trial/migrations/versions/0001_trial_tables.py" in names
    assert "edge/central/trial/migrations/versions/0002_event_template_threshold.py" in names
    assert "edge/central/trial/migrations/versions/0003_bigint_versions_dead_letters.py" in names
    assert "edge/central/trial/migrations/versions/0004_adjudication_vocabulary.py" in names
    assert "edge/central/trial/migrations/versions/0006_event_template_id.py" in names


def _utc_naive(t: datetime) -> datetime:
    return t.astimezone(timezone.utc).replace(tzinfo=None)


def _old_database(db_url: str, revision: str, table: str, row: dict) -> sa.Table:
    """A database as release `revision` left it, holding device north/cam1 and `row` in `table`
    (times as that schema stores them); returns `table` as that revision made it."""
    engine = sa.create_engine(database_url(db_url))
    try:
        migrate(engine, revision)
        with engine.begin() as connection:
            old = sa.MetaData()
            old.reflect(connection, only=["devices", table])
            connection.execute(
                old.tables["devices"].insert(), {"site": "north", "device_id": "cam1", "first_seen": _utc_naive(T0)}
            )
            connection.execute(
                old.tables[table].insert(), {**row, "ts": _utc_naive(row["ts"]), "received_at": _utc_naive(T0)}
            )
            return old.tables[table]
    finally:
        engine.dispose()


def test_a_0001_database_upgrades_on_open_and_keeps_its_events(db_url: str) -> None:
    """A database as the release before per-template thresholds left it, with one event stored:
    opening it adds `template_threshold`, NULL for the old event, kept for a new one."""
    old = _old_database(db_url, "0001", "events", alert(1).model_dump(exclude={"template_threshold"}))
    assert "template_threshold" not in old.c
    with TrialStore.open(db_url) as store:
        assert not store.add(alert(1))  # the old event is still there: a resend is a duplicate
        assert store.add(alert(2, template_threshold=0.4377))
        stored = {e["event_id"]: (e["threshold"], e["template_threshold"]) for e in store.events()}
    assert stored == {alert(1).event_id: (0.4, None), alert(2).event_id: (0.4, 0.4377)}


def test_a_message_stored_twice_counts_once_in_any_order(store: TrialStore) -> None:
    sent = [window(s) for s in range(1, 11)] + [alert(s) for s in (2, 5, 9)]
    replay = sent + random.Random(4).sample(sent, len(sent))  # every message again, reordered
    assert store.add_many(replay[:8]) == [True] * 8
    new = store.add_many(replay[8:])
    assert sum(new) == len(sent) - 8
    assert store.add(window(3)) is False and store.add_match(alert(5)) is False

    stored = store.windows()
    assert len(stored) == 10 and sum(w["scans"] for w in stored) == 40
    assert [e["event_id"] for e in store.events()] == [e.event_id for e in sorted(sent[10:], key=lambda e: e.ts)]
    assert stored[0]["boot_id"] == "cam1.boot1" and stored[0]["sequence"] == 1
    assert stored[0]["window_start"] == T0 + timedelta(minutes=1)  # aware UTC on both backends


def test_duplicates_inside_one_batch_are_new_once(store: TrialStore) -> None:
    assert store.add_many([window(1), window(1), alert(1), alert(1)]) == [True, False, True, False]


def test_status_and_config_history_is_kept_without_duplicates(store: TrialStore) -> None:
    config = ConfigReported(version=2, ts=T0, device_id="cam1", site="north", config={"match": {"threshold": 0.4}})
    assert store.add_many([status(0), status(0), status(30, "degraded"), config, config]) == [
        True,
        False,
        True,
        True,
        False,
    ]
    assert [(s["state"], s["embedder_model_id"], s["details"]) for s in store.statuses()] == [
        ("online", "mfn", {"threshold": 0.4}),
        ("degraded", "mfn", {"threshold": 0.4}),
    ]
    assert [(c["version"], c["config"]) for c in store.configs()] == [(2, {"match": {"threshold": 0.4}})]


def test_missing_windows_per_device_and_boot(store: TrialStore) -> None:
    store.add_many(
        [window(s) for s in (1, 2, 5, 6)]  # 3 and 4 missing
        + [window(s, boot="boot2") for s in (1, 3)]  # a new boot starts again at 1; 2 missing
        + [window(s, device="cam2") for s in (7, 8, 9)]  # complete
        + [window(s, device="cam3", site="south") for s in (1, 3)]
    )
    gaps = store.missing_windows()
    assert [(g.device_id, g.boot_id, g.first, g.last, g.count) for g in gaps] == [
        ("cam1", "cam1.boot1", 3, 4, 2),  # one run, one row
        ("cam1", "cam1.boot2", 2, 2, 1),
        ("cam3", "cam3.boot1", 2, 2, 1),
    ]
    assert gaps[0] == MissingWindows(
        "north", "cam1", "cam1.boot1", 3, 4, T0 + timedelta(minutes=3), T0 + timedelta(minutes=5)
    )
    assert gaps[0].window_ids() == ("cam1.boot1-000003", "cam1.boot1-000004")
    assert [g.first for g in store.missing_windows(TrialFilter(site="south"))] == [2]
    # a gap is never a zero: the missing windows are absent, not stored as empty ones
    assert {(w["boot_id"], w["sequence"]) for w in store.windows(TrialFilter(device_id="cam1"))} == {
        ("cam1.boot1", 1),
        ("cam1.boot1", 2),
        ("cam1.boot1", 5),
        ("cam1.boot1", 6),
        ("cam1.boot2", 1),
        ("cam1.boot2", 3),
    }


def test_filters_by_time_site_and_device(store: TrialStore) -> None:
    store.add_many([window(s) for s in range(1, 6)] + [window(1, device="cam9", site="south"), alert(2), alert(4)])
    later = TrialFilter(start=T0 + timedelta(minutes=3), end=T0 + timedelta(minutes=5))
    assert [w["sequence"] for w in store.windows(later)] == [3, 4]
    assert [e["track_id"] for e in store.events(later)] == [4]
    assert [w["device_id"] for w in store.windows(TrialFilter(site="south"))] == ["cam9"]
    assert len(store.windows(TrialFilter(site="north", device_id="cam1"))) == 5


def test_two_writers_storing_the_same_messages_store_each_once(store: TrialStore) -> None:
    """Two collectors may both receive a message (a redelivery after a restart): each key is
    stored once, and exactly one of them reports it new."""
    messages = [window(s) for s in range(1, 201)] + [alert(s) for s in range(1, 201, 3)]
    news: list[list[bool]] = [[], []]

    def write(i: int) -> None:
        order = random.Random(i).sample(messages, len(messages))
        for start in range(0, len(order), 25):
            news[i].extend(store.add_many(order[start : start + 25]))

    threads = [threading.Thread(target=write, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [len(n) for n in news] == [len(messages), len(messages)]  # neither writer failed
    assert sum(news[0]) + sum(news[1]) == len(messages)
    assert len(store.windows()) == 200 and len(store.events()) == 67


@pytest.mark.parametrize("url", ["mysql://x@y/z", "not a url://", "sqlite:///no/such/folder/trial.db"])
def test_a_bad_database_url_is_one_clear_error(url: str) -> None:
    with pytest.raises(TrialStoreError, match="database"):
        TrialStore.open(url)


def test_a_naive_time_is_refused(store: TrialStore) -> None:
    with store.engine.begin() as connection, pytest.raises(sa.exc.StatementError, match="naive"):
        connection.execute(devices.insert(), {"site": "s", "device_id": "d", "first_seen": datetime(2026, 1, 1)})


def test_a_0002_database_upgrades_to_64_bit_config_versions_and_keeps_its_reports(db_url: str) -> None:
    """Config versions are Unix milliseconds: a 32-bit column (0001, 0002) refused the first
    `edge fleet config set` on PostgreSQL and stalled the collector. A 0002 database with a
    report stored upgrades on open, keeps it, then takes a millisecond version."""
    old = _old_database(
        db_url,
        "0002",
        "configs",
        ConfigReported(version=7, ts=T0, device_id="cam1", site="north", config={}).model_dump(),
    )
    assert isinstance(old.c.version.type, sa.Integer) and not isinstance(old.c.version.type, sa.BigInteger)
    ms = 1796320553024
    with TrialStore.open(db_url) as store:
        assert store.add(
            ConfigReported(
                version=ms,
                answered_version=ms,
                status="applied",
                ts=T0 + timedelta(minutes=1),
                device_id="cam1",
                site="north",
                config={},
            )
        )
        assert [(c["version"], c["answered_version"]) for c in store.configs()] == [(7, None), (ms, ms)]
        assert store.add(window(1))  # and the store goes on


def test_a_0003_database_moves_its_verdicts_to_the_adjudication_vocabulary(db_url: str) -> None:
    """A database as the release before South Wales Police's vocabulary left it, with one alert's
    history in the earlier words (confirmed, false_alert, not_checked): opening it renames each
    verdict (confirmed -> confirmed_true, not_checked -> not_adjudicated), keeps every row, who,
    note and time, then refuses an earlier word and takes the new ones."""
    _old_database(db_url, "0003", "events", alert(1).model_dump())
    given = [  # (outcome, by, note, minutes after T0)
        ("not_checked", "ann", None, 1),
        ("confirmed", "bob", "known face", 2),
        ("false_alert", "cy", "lookalike", 3),
        ("confirmed", "dee", None, 4),
    ]
    engine = sa.create_engine(database_url(db_url))
    try:
        with engine.begin() as connection:
            old = sa.MetaData()
            old.reflect(connection, only=["verdicts"])
            connection.execute(
                old.tables["verdicts"].insert(),
                [
                    {
                        "event_id": alert(1).event_id,
                        "outcome": o,
                        "by": by,
                        "note": note,
                        "at": _utc_naive(T0) + timedelta(minutes=m),
                    }
                    for o, by, note, m in given
                ],
            )
            with pytest.raises(sa.exc.IntegrityError), connection.begin_nested():  # 0003 knows only its words
                connection.execute(
                    old.tables["verdicts"].insert(),
                    {"event_id": alert(1).event_id, "outcome": "true_alert", "by": "x", "at": _utc_naive(T0)},
                )
    finally:
        engine.dispose()
    with TrialStore.open(db_url) as store:
        history = [
            (v["outcome"], v["stage"], v["by"], v["note"], v["at"]) for v in store.verdict_history(alert(1).event_id)
        ]
        assert history == [
            ("not_adjudicated", "adjudication", "ann", None, T0 + timedelta(minutes=1)),
            ("confirmed_true", "engagement", "bob", "known face", T0 + timedelta(minutes=2)),
            ("false_alert", "adjudication", "cy", "lookalike", T0 + timedelta(minutes=3)),
            ("confirmed_true", "engagement", "dee", None, T0 + timedelta(minutes=4)),
        ]
        latest = store.latest_verdicts([alert(1).event_id])[alert(1).event_id]
        assert latest.adjudication is not None and latest.adjudication["by"] == "cy"
        assert latest.engagement is not None and latest.engagement["by"] == "dee"
        with store.engine.begin() as connection, pytest.raises(sa.exc.IntegrityError):  # the CHECK has the new words
            connection.execute(
                verdicts.insert(), {"event_id": alert(1).event_id, "outcome": "confirmed", "by": "x", "at": T0}
            )
        store.add_verdict(alert(1).event_id, "confirmed_false", "pc 7", at=T0 + timedelta(minutes=5))
        assert len(store.verdict_history(alert(1).event_id)) == 5


def test_going_back_to_0003_puts_the_verdicts_in_the_earlier_words(db_url: str) -> None:
    """Revision 0004's downgrade (a release rolled back): each verdict kept, in the words 0003
    allows; lossy by nature (true_alert and confirmed_true both become confirmed)."""
    words = ["true_alert", "false_alert", "not_adjudicated", "confirmed_true", "confirmed_false"]
    with TrialStore.open(db_url) as store:
        store.add(alert(1))
        for minute, word in enumerate(words):
            store.add_verdict(alert(1).event_id, word, "ann", at=T0 + timedelta(minutes=minute))
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with store.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
        with store.engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == "0003"
            old = connection.scalars(sa.select(verdicts.c.outcome).order_by(verdicts.c.at)).all()
    assert old == ["confirmed", "false_alert", "not_checked", "confirmed", "false_alert"]


def test_a_value_the_database_cannot_hold_is_refused_as_such(store: TrialStore) -> None:
    """Defence behind the payload models' bounds: a value that slipped past them (built without
    validation here) is a `StoreRefused`, which the collector sets aside, not an outage it retries."""
    poison = StatsPayload.model_construct(**{**window(2).model_dump(), "frames": 2**63})
    with pytest.raises(StoreRefused, match="refused"):
        store.add_many([window(1), poison])
    assert store.windows() == [], "all or nothing: the batch is one transaction"
    assert store.add_many([window(1)]) == [True]


def test_dead_letters_are_stored_once_with_an_escaped_excerpt(store: TrialStore) -> None:
    letter = DeadLetter("edge/north/cam1/stats", b'{"window_id": "a\x00\x1b[2J' + b"x" * 1000, SCHEMA, "bad\x00")
    assert store.add_many([window(1)], [letter, letter]) == [True]
    store.add_many([], [letter])
    (stored,) = store.dead_letters()
    assert stored["excerpt"].startswith('{"window_id": "a\\x00\\x1b[2J') and stored["excerpt"].endswith("...")
    assert len(stored["excerpt"]) == EXCERPT + len("...") + 2 * 3, "cut to EXCERPT characters, two of them escaped"
    assert stored["detail"] == "bad\\x00"
    assert (stored["payload_bytes"], stored["payload_sha256"]) == (len(letter.payload), letter.sha256)


def test_a_reader_refuses_a_database_that_does_not_exist(db_url: str, tmp_path: Path) -> None:
    """`--db trail.db` (a typo) once made an empty database and a report of zeros."""
    typo = tmp_path / "trail.db"
    with pytest.raises(TrialStoreError, match="no trial database at .*trail.db"):
        TrialStore.open(str(typo), create=False)
    assert not typo.exists(), "nothing is created"
    with pytest.raises(TrialStoreError, match="no trial database"):
        TrialStore.open(db_url, create=False)  # an empty one (PostgreSQL) or none (SQLite)
    with TrialStore.open(db_url):  # the collector creates it
        pass
    with TrialStore.open(db_url, create=False) as store:
        assert store.windows() == []


@pytest.mark.parametrize("url", ["sqlite://trial.db", "sqlite://", "sqlite:///:memory:"])
def test_a_sqlite_url_without_a_file_is_refused_in_one_line(url: str) -> None:
    with pytest.raises(TrialStoreError, match="names no SQLite file: use sqlite:///FILE"):
        database_url(url)
