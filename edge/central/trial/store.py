"""The field-trial store: device traffic and operator verdicts, SQLite (WAL) or PostgreSQL.

One code path for both backends (SQLAlchemy Core, Alembic migrations run on open). Devices send
at least once, so every `add_*` is idempotent: a message already stored (same `window_id`,
`event_id`, or the same device, time and state of a status or config report) is skipped and
reported as not new. `add_many` does a whole batch in one transaction (the collector's
throughput); when another writer stores one of its messages meanwhile, the batch is done again
row by row, each duplicate skipped (portable: no dialect's "ON CONFLICT"). A batch the database
refuses for its data raises `StoreRefused`; one it cannot reach raises SQLAlchemy's error.
Messages the collector can never store go to `dead_letters` in the same transaction.
Verdicts are append-only, in two stages (the operator's adjudication, then the outcome where an
officer engaged: `terms.py`): the latest per event and stage counts, the history is kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from edge.central.trial.intake import DeadLetter, printable
from edge.central.trial.queries import LatestVerdicts, MissingWindows, TrialFilter, TrialQueries
from edge.central.trial.schema import (
    DEAD_LETTER_TOPIC,
    UNIQUE_KEYS,
    configs,
    dead_letters,
    devices,
    events,
    statuses,
    verdicts,
    windows,
)
from edge.central.trial.terms import OUTCOMES, StoreRefused, TrialStoreError, outcome_problem
from edge.link.payloads import ConfigReported, MatchEvent, Payload, StatsPayload, StatusPayload, utc_now

__all__ = [
    "OUTCOMES",
    "LatestVerdicts",
    "MissingWindows",
    "StoreRefused",
    "TrialFilter",
    "TrialStore",
    "TrialStoreError",
    "VerdictInput",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_WINDOW_ID = re.compile(r"^(?P<boot>.+)-(?P<seq>\d{1,9})$")


ALERTS_CHANNEL = "edge_alerts"
"""PostgreSQL notification channel: a commit that stored new alerts notifies it (empty payload)."""


@dataclass(frozen=True)
class VerdictInput:
    """One verdict to store: who found what about which alert, and when; `outcome` is one of
    `terms.OUTCOMES` (its stage follows from it)."""

    event_id: str
    outcome: str
    by: str
    note: str | None = None
    at: datetime | None = None  # None: now


def database_url(url: str) -> sa.URL:
    """A SQLAlchemy URL: `postgresql://` uses psycopg 3; a plain path is a SQLite file."""
    try:
        parsed = sa.make_url(url if "://" in url else f"sqlite:///{Path(url).resolve()}")
    except sa.exc.ArgumentError as e:
        raise TrialStoreError(f"--db {url!r} is not a database URL: {e}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise TrialStoreError(
            f"--db {url!r} is not a SQLite or PostgreSQL database URL: use sqlite:///FILE or postgresql://USER@HOST:PORT/DB"
        )
    if parsed.get_backend_name() == "sqlite" and (parsed.host or not parsed.database or parsed.database == ":memory:"):
        raise TrialStoreError(
            f"--db {url!r} names no SQLite file: use sqlite:///FILE (three slashes, then a relative path), "
            "sqlite:////ABSOLUTE/PATH, or just the file's path"
        )
    return parsed


def _sqlite_setup(engine: sa.Engine) -> None:
    """WAL (readers never block the writer) and BEGIN IMMEDIATE: a batch's look-up and insert
    hold the write lock together, so two writers never both insert what neither saw."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions begin below, not in the driver
        for pragma in ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=NORMAL"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: sa.Engine, revision: str = "head", migrations: Path = MIGRATIONS) -> None:
    """Bring the database to the newest schema (creates it when empty); an older `revision`
    builds a database as an earlier release left it (what upgrade tests start from).
    `migrations`: another Alembic folder of tables kept beside the trial's (the console's, the
    deployments': each with its own version table)."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _revision(engine: sa.Engine) -> str | None:
    """The Alembic revision the database is at; None for a database without trial tables."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _row(payload: Payload, received_at: datetime) -> tuple[sa.Table, dict[str, Any]]:
    """The table and row for one message."""
    if isinstance(payload, StatsPayload):
        parsed = _WINDOW_ID.match(payload.window_id)
        row = payload.model_dump()
        row.update(
            boot_id=parsed["boot"] if parsed else None,
            sequence=int(parsed["seq"]) if parsed else None,
            received_at=received_at,
        )
        return windows, row
    if isinstance(payload, MatchEvent):
        return events, {**payload.model_dump(), "received_at": received_at}
    if isinstance(payload, StatusPayload):
        row = payload.model_dump(exclude={"versions"})
        row.update(payload.versions.model_dump(), received_at=received_at)
        return statuses, row
    if isinstance(payload, ConfigReported):
        return configs, {**payload.model_dump(), "received_at": received_at}
    raise TypeError(f"the trial store keeps status, match, stats and config/reported, not {type(payload).__name__}")


def _dead_letter_row(letter: DeadLetter, received_at: datetime) -> dict[str, Any]:
    return {
        "topic": printable(letter.topic, DEAD_LETTER_TOPIC - 3),
        "payload_sha256": letter.sha256,
        "payload_bytes": len(letter.payload),
        "excerpt": letter.excerpt(),
        "reason": letter.reason,
        "detail": printable(letter.detail, 1000),
        "received_at": received_at,
    }


def refused_by_database(e: Exception) -> bool:
    """Whether the database refused the data (a value, a constraint), not its connection: a
    connection, disk or lock problem is worth retrying, a refused value never is."""
    if isinstance(e, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return False
    if isinstance(e, sa.exc.DBAPIError) and e.connection_invalidated:
        return False
    return isinstance(e, (sa.exc.StatementError, ValueError, OverflowError))


def one_line(e: BaseException) -> str:
    """The database's own message on one line, without the statement and its parameters."""
    cause = e.orig if isinstance(e, sa.exc.DBAPIError) and e.orig is not None else e
    return " ".join(str(cause).split())[:500]


def _key(table: sa.Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in UNIQUE_KEYS[table.name])


def _stored_keys(connection: sa.Connection, table: sa.Table, keys: list[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    """The keys among these that the table holds."""
    names = UNIQUE_KEYS[table.name]
    key_columns = sa.tuple_(*(table.c[n] for n in names))
    found = connection.execute(sa.select(*(table.c[n] for n in names)).where(key_columns.in_(keys)))
    return {tuple(row) for row in found}


def _insert_new(
    connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], one_by_one: bool = False
) -> set[tuple[Any, ...]]:
    """Insert the rows whose key is not stored yet; returns the keys inserted.

    `one_by_one`: each row in its own savepoint, a duplicate key skipped (slower; for a batch
    that met a concurrent writer storing the same message between the look-up and the insert).
    """
    fresh: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        fresh.setdefault(_key(table, row), row)
    for found in _stored_keys(connection, table, list(fresh)):
        fresh.pop(found, None)
    ordered = sorted(fresh)  # two writers lock the same keys in the same order: no deadlock
    if not one_by_one:
        if ordered:
            connection.execute(table.insert(), [fresh[k] for k in ordered])
        return set(ordered)
    inserted: set[tuple[Any, ...]] = set()
    for key in ordered:
        try:
            with connection.begin_nested():
                connection.execute(table.insert(), fresh[key])
            inserted.add(key)
        except IntegrityError:
            if _stored_keys(connection, table, [key]):
                continue  # the other writer stored it first
            raise  # another constraint refused the row
    return inserted


class TrialStore(TrialQueries):
    """A trial database: `TrialStore.open(url)` migrates it to the newest schema; the reads
    (`windows`, `events`, `verdicts`, `verdict_history`, `latest_verdicts`, `statuses`, `configs`,
    `missing_windows`) come from `TrialQueries`."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, create: bool = True, also: Sequence[Callable[[sa.Engine], None]] = ()) -> TrialStore:
        """Open and migrate the trial database at `url`; `create=False` (the commands that only
        read or annotate) refuses one that does not exist yet, so a misspelt name is an error,
        not an empty trial. `also`: the migrations of tables kept beside the trial's (the
        console's, the deployments'), run after the trial's."""
        parsed = database_url(url)
        if not create and parsed.get_backend_name() == "sqlite" and not Path(str(parsed.database)).is_file():
            raise TrialStoreError(f"no trial database at {parsed.database}: `edge collect --db` makes one (a typo?)")
        # hide_parameters: an error names the statement, never a batch's values (logs stay short)
        engine = sa.create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
        if parsed.get_backend_name() == "sqlite":
            _sqlite_setup(engine)
        try:
            if not create and _revision(engine) is None:
                raise TrialStoreError(f"{parsed!r} holds no trial database: `edge collect --db` makes one (a typo?)")
            migrate(engine)
            for more in also:
                more(engine)
        except TrialStoreError:
            engine.dispose()
            raise
        except sa.exc.OperationalError as e:
            engine.dispose()
            raise TrialStoreError(
                f"cannot open the trial database {parsed!r}: {' '.join(str(e.orig).split())}"
            ) from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> TrialStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- device traffic ----------------------------------------------------------------------

    def add_many(
        self, payloads: Sequence[Payload], aside: Sequence[DeadLetter] = (), received_at: datetime | None = None
    ) -> list[bool]:
        """Store a batch, and the messages set `aside`, in one transaction; for each payload,
        whether it was new (False: a duplicate, of a stored message or of an earlier one in the
        batch). Raises `StoreRefused` when the database refuses a value."""
        received = received_at or utc_now()
        rows = [_row(p, received) for p in payloads]
        by_table: dict[sa.Table, list[dict[str, Any]]] = {t: [] for t in (windows, events, statuses, configs)}
        for table, row in rows:
            by_table.setdefault(table, []).append(row)
        by_table[dead_letters] = [_dead_letter_row(d, received) for d in aside]
        device_rows = [{"site": r["site"], "device_id": r["device_id"], "first_seen": received} for _, r in rows]
        try:
            try:
                inserted = self._insert_batch(device_rows, by_table, one_by_one=False)
            except IntegrityError:
                inserted = self._insert_batch(device_rows, by_table, one_by_one=True)
        except Exception as e:
            if refused_by_database(e):
                raise StoreRefused(f"the trial database refused the batch: {one_line(e)}") from e
            raise
        new = []
        for table, row in rows:  # the first of two equal messages in the batch is the new one
            key = _key(table, row)
            new.append(key in inserted[table])
            inserted[table].discard(key)
        return new

    def _insert_batch(
        self, device_rows: list[dict[str, Any]], by_table: dict[sa.Table, list[dict[str, Any]]], one_by_one: bool
    ) -> dict[sa.Table, set[tuple[Any, ...]]]:
        with self.engine.begin() as connection:
            _insert_new(connection, devices, device_rows, one_by_one)
            inserted = {t: _insert_new(connection, t, r, one_by_one) for t, r in by_table.items() if r}
            if inserted.get(events) and connection.dialect.name == "postgresql":
                # delivered at commit, to whoever listens (the console's open alert pages)
                connection.execute(sa.select(sa.func.pg_notify(ALERTS_CHANNEL, "")))
            return inserted

    def add(self, payload: Payload) -> bool:
        """Store one message; False when it was already stored."""
        return self.add_many([payload])[0]

    add_status = add_match = add_stats = add_config = add

    # -- verdicts ----------------------------------------------------------------------------

    def unknown_events(self, event_ids: Iterable[str]) -> set[str]:
        """The ids among these that name no stored event."""
        wanted = set(event_ids)
        with self.engine.connect() as connection:
            known = connection.scalars(sa.select(events.c.event_id).where(events.c.event_id.in_(wanted)))
            return wanted - set(known)

    def add_verdicts(self, items: Sequence[VerdictInput]) -> None:
        """Append verdicts, all or none: an unknown event or outcome refuses the whole lot. The one
        way verdicts are written (the CLI, the CSV import and the console call it)."""
        for item in items:
            if problem := outcome_problem(item.outcome):
                raise TrialStoreError(f"verdict on {item.event_id}: {problem}")
            if not item.by.strip():
                raise TrialStoreError(f"verdict on {item.event_id}: say who checked it (by)")
            if item.at is not None and item.at.tzinfo is None:
                raise TrialStoreError(f"verdict on {item.event_id}: time {item.at} has no time zone")
        unknown = self.unknown_events(i.event_id for i in items)
        if unknown:
            raise TrialStoreError(f"no alert with event id {', '.join(sorted(unknown))} in the trial database")
        now = utc_now()
        rows = [
            {"event_id": i.event_id, "outcome": i.outcome, "by": i.by, "note": i.note, "at": i.at or now} for i in items
        ]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(verdicts.insert(), rows)

    def add_verdict(
        self, event_id: str, outcome: str, by: str, note: str | None = None, at: datetime | None = None
    ) -> None:
        """Append one verdict (an adjudication or an engagement outcome); an unknown event id or
        outcome is refused."""
        self.add_verdicts([VerdictInput(event_id, outcome, by, note, at)])
