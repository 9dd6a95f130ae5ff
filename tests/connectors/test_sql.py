"""The `sql` connector against real SQLite, PostgreSQL and MariaDB databases.

Each behaviour runs on all three: order, the inclusive since bound, a large
tie group, rows edited while a pull runs, tombstones, NULLs, time zones, and
one sync end to end into the Fragment emulator. Every test makes its own
uniquely named table and drops it afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy.dialects import mysql

from connectors.base import BadRecord, Cursor, SourceTicket
from connectors.errors import SourceError
from connectors.registry import connector_class
from connectors.sql import SqlConnector, SqlOptions, since_value
from connectors.values import parse_datetime
from fragment_emulator import Emulator
from sync.config import build_config
from sync.errors import ConfigError
from sync.run import RunSummary, run_once
from sync.state import StateStore
from sync_http import clock
from synckit import TOKEN, tasks_by_ticket

MARIADB_URL = os.environ.get("SYNC_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

T0 = dt.datetime(2026, 3, 1, 9, 0, 0, 250_000, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)
MICROSECOND = dt.timedelta(microseconds=1)


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    """The machine's MariaDB (root, no password); a skip without it, a failure on CI."""
    engine = sa.create_engine(MARIADB_URL)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"MariaDB not reachable at {MARIADB_URL}: {exc}")
        pytest.skip(f"MariaDB not reachable at {MARIADB_URL}: {exc}")
    finally:
        engine.dispose()
    return MARIADB_URL


class TicketTable:
    """A tickets table of one test: id, subject, status, updated_at, deleted_at, version.

    Timestamps are stored the way each database usually holds them: SQLite as
    text, MariaDB as DATETIME(6), PostgreSQL as timestamptz, or, given a
    `zone`, as naive local times in it (PostgreSQL `timestamp`).
    """

    def __init__(self, database: Database, zone: str | None) -> None:
        self.database = database
        self.name = f"tickets_{uuid.uuid4().hex[:10]}"
        self.zone = ZoneInfo(zone) if zone else dt.UTC
        self.aware = database.kind == "postgres" and zone is None
        stamp: sa.types.TypeEngine[Any]
        if database.kind == "sqlite":
            stamp = sa.Text()
        elif database.kind == "mariadb":
            stamp = mysql.DATETIME(fsp=6)
        else:
            stamp = sa.DateTime(timezone=self.aware)
        self.table = sa.Table(
            self.name,
            sa.MetaData(),
            sa.Column("id", sa.Integer, unique=True),  # nullable, to test NULL ids
            sa.Column("subject", sa.String(200)),
            sa.Column("status", sa.String(20)),
            sa.Column("updated_at", stamp),
            sa.Column("deleted_at", stamp),
            sa.Column("version", sa.Integer),
            sa.Index(f"{self.name}_keyset", "updated_at", "id"),
        )
        self.table.create(database.engine)

    def stored(self, moment: dt.datetime | None) -> Any:
        """`moment` as this table's timestamp columns hold it."""
        if moment is None or self.aware:
            return moment
        local = moment.astimezone(self.zone).replace(tzinfo=None)
        if self.database.kind == "sqlite":
            return local.isoformat(sep=" ", timespec="microseconds")
        return local

    def insert(self, *rows: dict[str, Any]) -> None:
        encoded = [
            {
                **row,
                "updated_at": self.stored(row["updated_at"]),
                "deleted_at": self.stored(row["deleted_at"]),
            }
            for row in rows
        ]
        with self.database.engine.begin() as conn:
            conn.execute(self.table.insert(), encoded)

    def update(self, ticket_id: int, **changes: Any) -> None:
        for column in ("updated_at", "deleted_at"):
            if column in changes:
                changes[column] = self.stored(changes[column])
        with self.database.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.id == ticket_id).values(changes))

    def connector(self, **options: Any) -> SqlConnector:
        source = SqlConnector(
            "warehouse",
            SqlOptions(url=SecretStr(self.database.url), **{"table": self.name, **options}),
        )
        self.database.opened.append(source)
        return source


class Database:
    """One of the three databases, and the tables and connectors a test made in it."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.engine = sa.create_engine(url)
        self.tables: list[TicketTable] = []
        self.opened: list[SqlConnector] = []

    def ticket_table(self, zone: str | None = None) -> TicketTable:
        table = TicketTable(self, zone)
        self.tables.append(table)
        return table

    def close(self) -> None:
        for source in self.opened:
            source.close()
        for table in self.tables:
            table.table.drop(self.engine, checkfirst=True)
        self.engine.dispose()


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.db'}"
    elif request.param == "postgres":
        url = request.getfixturevalue("postgres_database")
    else:
        url = request.getfixturevalue("mariadb_url")
    database = Database(request.param, url)
    yield database
    database.close()


def row(ticket_id: int | None, at: dt.datetime | None, **values: Any) -> dict[str, Any]:
    return {
        "id": ticket_id,
        "subject": f"Ticket {ticket_id}",
        "status": "open",
        "updated_at": at,
        "deleted_at": None,
        "version": ticket_id,
        **values,
    }


def pull(source: SqlConnector, since: Cursor | None = None) -> list[SourceTicket | BadRecord]:
    return list(source.pull(since))


def tickets_of(items: list[SourceTicket | BadRecord]) -> list[SourceTicket]:
    assert [item for item in items if isinstance(item, BadRecord)] == []
    return [item for item in items if isinstance(item, SourceTicket)]


def keys(items: Sequence[SourceTicket | BadRecord]) -> list[tuple[Cursor | None, str | None]]:
    return [(item.cursor, item.source_id) for item in items]


# Order and bounds


def test_full_pull_yields_every_row_in_cursor_then_id_order(db: Database) -> None:
    table = db.ticket_table()
    stamps = [T0 + n * SECOND for n in (3, 0, 1, 1, 0, 2, 1, 3)]
    rows = [row(ticket_id, at) for ticket_id, at in enumerate(stamps, start=1)]
    random.Random(7).shuffle(rows)
    table.insert(*rows)
    source = table.connector(page_size=3)

    tickets = tickets_of(pull(source))

    assert keys(tickets) == sorted((at, str(i)) for i, at in enumerate(stamps, start=1))
    assert [t.source_id for t in tickets] == ["2", "5", "3", "4", "7", "6", "1", "8"]
    first = tickets[0]
    assert first.record["subject"] == "Ticket 2"
    assert first.record["updated_at"] == T0  # aware UTC, microseconds kept
    assert first.deleted is False
    assert source.estimate(None) == 8
    assert source.estimate(T0 + SECOND) == 6


def test_since_bound_is_inclusive_to_the_microsecond(db: Database) -> None:
    table = db.ticket_table()
    table.insert(
        row(1, T0 - MICROSECOND), row(2, T0), row(3, T0), row(4, T0 + MICROSECOND), row(5, None)
    )
    source = table.connector()

    items = pull(source, since=T0)

    [null_cursor] = [item for item in items if isinstance(item, BadRecord)]
    assert (null_cursor.source_id, null_cursor.field, null_cursor.cursor) == (
        "5",
        "updated_at",
        None,
    )
    assert keys([i for i in items if isinstance(i, SourceTicket)]) == [
        (T0, "2"),
        (T0, "3"),
        (T0 + MICROSECOND, "4"),
    ]
    assert keys(tickets_of(pull(source, since=T0 + MICROSECOND)[1:])) == [(T0 + MICROSECOND, "4")]


def test_tie_group_of_2500_rows_pages_through_each_row_once(db: Database) -> None:
    table = db.ticket_table()
    table.insert(
        row(0, T0 - SECOND),
        *(row(ticket_id, T0) for ticket_id in range(1, 2501)),
        row(2501, T0 + SECOND),
    )
    source = table.connector(page_size=100)

    tickets = tickets_of(pull(source, since=T0))

    assert [t.source_id for t in tickets] == [str(i) for i in range(1, 2502)]
    assert Counter(t.cursor for t in tickets) == {T0: 2500, T0 + SECOND: 1}


def test_rows_updated_while_a_pull_runs_are_met_again_not_skipped(db: Database) -> None:
    table = db.ticket_table()
    table.insert(*(row(i, T0 + i * SECOND) for i in range(1, 301)))
    late = T0 + 1000 * SECOND
    stream = table.connector(page_size=50).pull(None)

    seen = [next(stream) for _ in range(120)]  # mid-way through the third page
    table.update(10, subject="edited after it was read", updated_at=late)
    table.update(250, subject="edited before it was read", updated_at=late + SECOND)
    seen += list(stream)

    tickets = tickets_of(seen)
    assert {t.source_id for t in tickets} == {str(i) for i in range(1, 301)}
    assert [t.cursor for t in tickets] == sorted(t.cursor for t in tickets)
    assert Counter(t.source_id for t in tickets)["10"] == 2
    assert keys(tickets[-2:]) == [(late, "10"), (late + SECOND, "250")]
    assert tickets[-1].record["subject"] == "edited before it was read"
    assert [t for t in tickets if t.source_id == "250"] == tickets[-1:]


# What a row becomes


def test_soft_deleted_rows_come_as_tombstones(db: Database) -> None:
    table = db.ticket_table()
    table.insert(row(1, T0), row(2, T0 + SECOND, deleted_at=T0), row(3, T0 + 2 * SECOND))
    source = table.connector(deleted_column="deleted_at")

    tickets = tickets_of(pull(source))

    assert [(t.source_id, t.deleted) for t in tickets] == [("1", False), ("2", True), ("3", False)]
    # Only the cursor column is parsed: SQLite's other timestamps stay text.
    assert parse_datetime(tickets[1].record["deleted_at"]) == T0


def test_census_lists_every_live_id_across_pages_and_leaves_soft_deleted_rows_out(
    db: Database,
) -> None:
    table = db.ticket_table()
    table.insert(*(row(i, T0 + i * SECOND) for i in range(1, 26)))
    table.insert(row(26, None))  # no cursor: a bad record each pass, but the ticket is there
    table.update(7, deleted_at=T0)
    source = table.connector(deleted_column="deleted_at", page_size=1)  # pages of 10 ids

    ids = list(source.scope_ids())

    assert source.takes_census
    assert sorted(ids, key=int) == [str(i) for i in range(1, 27) if i != 7]


def test_census_of_a_query_lists_only_the_ids_it_selects(db: Database) -> None:
    table = db.ticket_table()
    table.insert(row(1, T0), row(2, T0, status="closed"), row(3, T0))
    source = SqlConnector(
        "warehouse",
        SqlOptions(
            url=SecretStr(db.url),
            query=f"SELECT * FROM {table.name} WHERE status = 'open'",  # noqa: S608
        ),
    )
    db.opened.append(source)

    assert sorted(source.scope_ids()) == ["1", "3"]


def test_int_version_cursor_pages_ties_and_bounds_inclusively(db: Database) -> None:
    table = db.ticket_table()
    table.insert(*(row(i, T0, version=10 + i // 4) for i in range(1, 13)))
    source = table.connector(cursor_column="version", cursor_kind="int", page_size=2)

    tickets = tickets_of(pull(source, since=12))

    assert keys(tickets) == [(12, str(i)) for i in range(8, 12)] + [(13, "12")]
    assert source.estimate(12) == 5


def test_query_is_read_as_a_subquery_with_its_own_columns(db: Database) -> None:
    table = db.ticket_table()
    table.insert(
        row(1, T0), row(2, T0, status="spam"), row(3, T0 + SECOND), row(4, T0 + 2 * SECOND)
    )
    query = f"SELECT id, subject, updated_at FROM {table.name} WHERE status <> 'spam';\n"  # noqa: S608 (our own table name)
    source = SqlConnector("warehouse", SqlOptions(url=SecretStr(db.url), query=query, page_size=1))
    db.opened.append(source)

    tickets = tickets_of(pull(source, since=T0))

    assert keys(tickets) == [(T0, "1"), (T0 + SECOND, "3"), (T0 + 2 * SECOND, "4")]
    assert {key.lower() for key in tickets[0].record} == {"id", "subject", "updated_at"}
    assert source.estimate(None) is None
    source.check()


def test_columns_option_reads_only_those_and_the_key_columns(db: Database) -> None:
    table = db.ticket_table()
    table.insert(row(1, T0))

    [ticket] = tickets_of(pull(table.connector(columns=["subject"])))

    assert set(ticket.record) == {"id", "updated_at", "subject"}


def test_naive_timestamps_are_read_in_the_configured_zone(db: Database) -> None:
    table = db.ticket_table(zone="America/New_York")
    table.insert(row(1, T0 - MICROSECOND), row(2, T0), row(3, T0 + SECOND))
    source = table.connector(timezone="America/New_York")

    tickets = tickets_of(pull(source, since=T0))

    assert keys(tickets) == [(T0, "2"), (T0 + SECOND, "3")]
    assert tickets[0].record["updated_at"] == T0


# Rows that can't be tickets


def test_rows_with_a_null_id_or_cursor_are_reported_and_every_other_row_is_read(
    db: Database,
) -> None:
    table = db.ticket_table()
    table.insert(
        row(1, T0),
        row(None, T0, subject="orphan"),
        row(2, T0),
        row(3, None),
        row(4, T0),
        row(5, T0 + SECOND),
    )
    source = table.connector(page_size=2)

    items = pull(source)

    bad = [item for item in items if isinstance(item, BadRecord)]
    assert items[: len(bad)] == bad  # reported first: they have no place in the order
    assert sorted((b.source_id or "", b.field) for b in bad) == [("", "id"), ("3", "updated_at")]
    assert all(b.cursor is None for b in bad)
    orphan = next(b for b in bad if b.source_id is None)
    assert orphan.locator.startswith("row with a NULL id #")
    assert orphan.record is not None
    assert orphan.record["subject"] == "orphan"
    assert keys(items[len(bad) :]) == [(T0, "1"), (T0, "2"), (T0, "4"), (T0 + SECOND, "5")]


def test_sqlite_cursor_that_is_not_a_date_is_a_bad_record_in_its_place(tmp_path: Path) -> None:
    database = Database("sqlite", f"sqlite:///{tmp_path / 'source.db'}")
    try:
        table = database.ticket_table()
        table.insert(row(1, T0), row(3, T0 + SECOND))
        with database.engine.begin() as conn:
            conn.execute(
                table.table.insert(),
                [
                    # Sorts first, so the since bound's form must not be learnt from it alone.
                    {"id": 0, "updated_at": "(unknown)"},
                    {"id": 2, "updated_at": "2026-03-01 09:00:00.7 or so"},
                ],
            )

        items = pull(table.connector(page_size=1))

        assert [(type(i).__name__, i.source_id) for i in items] == [
            ("BadRecord", "0"),
            ("SourceTicket", "1"),
            ("BadRecord", "2"),
            ("SourceTicket", "3"),
        ]
        assert isinstance(items[2], BadRecord)
        assert items[2].field == "updated_at"
        assert [i.source_id for i in pull(table.connector(), since=T0 + SECOND)] == ["3"]
    finally:
        database.close()


# Errors


def test_missing_column_is_a_source_error_naming_it(db: Database) -> None:
    table = db.ticket_table()
    table.insert(row(1, T0))
    source = table.connector(cursor_column="modified_at")

    with pytest.raises(SourceError, match=r"no column 'modified_at' \(from cursor_column\)"):
        source.check()
    with pytest.raises(SourceError, match="modified_at"):
        pull(source)


def test_missing_table_is_a_source_error_naming_it(db: Database) -> None:
    source = SqlConnector("warehouse", SqlOptions(url=SecretStr(db.url), table="no_such_tickets"))
    db.opened.append(source)

    with pytest.raises(SourceError, match="no_such_tickets") as caught:
        source.check()
    assert "connector 'warehouse'" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://sync:hunter2-secret@127.0.0.1:1/tickets",
        "mysql+pymysql://sync:hunter2-secret@127.0.0.1:1/tickets",
    ],
)
def test_unreachable_database_is_a_source_error_without_the_password(url: str) -> None:
    source = SqlConnector("warehouse", SqlOptions(url=SecretStr(url), table="tickets"))
    try:
        with pytest.raises(SourceError) as caught:
            source.check()
        with pytest.raises(SourceError):
            pull(source)
    finally:
        source.close()
    message = str(caught.value)
    assert "hunter2" not in message
    assert "sync:***@127.0.0.1:1/tickets" in message
    assert "refused" in message.lower() or "can't connect" in message.lower()


def test_a_missing_sqlite_file_is_reported_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.db"
    source = SqlConnector("warehouse", SqlOptions(url=SecretStr(f"sqlite:///{path}"), table="t"))

    with pytest.raises(SourceError, match="does not exist"):
        source.check()
    assert not path.exists()


def sql_config(**options: Any) -> dict[str, Any]:
    return {
        "connectors": {
            "warehouse": {"kind": "sql", "url": "sqlite:///tickets.db", "table": "t", **options}
        }
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"query": "SELECT * FROM t"}, "set exactly one of table and query"),
        ({"table": None}, "set exactly one of table and query"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"page_size": 0}, "greater than or equal to 1"),
        ({"page_size": 50_001}, "less than or equal to 50000"),
        ({"cursor_kind": "uuid"}, "'datetime' or 'int'"),
        ({"url": "nosuchdb://u:hunter2-secret@h/db"}, "unknown database dialect"),
        ({"url": "not a url hunter2-secret"}, "not a SQLAlchemy URL"),
        ({"limit": 5}, "unknown key"),
    ],
)
def test_bad_config_fails_at_validation(options: dict[str, Any], message: str) -> None:
    raw = sql_config(**options)
    if options.get("table", "t") is None:
        del raw["connectors"]["warehouse"]["table"]

    with pytest.raises(ConfigError, match=message) as caught:
        build_config(raw, source="test")
    assert "hunter2" not in str(caught.value)


def test_the_sql_kind_is_registered() -> None:
    assert connector_class("sql") is SqlConnector


# The since bound for text cursors


@pytest.mark.parametrize(
    "layout",
    [
        "%Y-%m-%d %H:%M:%S",  # SQLite's CURRENT_TIMESTAMP
        "%Y-%m-%d %H:%M:%S.%f",  # SQLAlchemy's DateTime on SQLite
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y-%m-%dT%H:%M:%S+02:00",
    ],
)
def test_sqlite_text_cursors_are_bounded_in_their_own_layout(tmp_path: Path, layout: str) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    zone = dt.timezone(dt.timedelta(hours=2)) if layout.endswith("+02:00") else dt.UTC
    moment = T0.replace(microsecond=0)
    stamps = [moment - SECOND, moment, moment, moment + SECOND, moment + dt.timedelta(days=1)]
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER, updated_at TEXT)"))
        conn.execute(
            sa.text("INSERT INTO t VALUES (:id, :at)"),
            [{"id": i, "at": at.astimezone(zone).strftime(layout)} for i, at in enumerate(stamps)],
        )
    engine.dispose()
    source = SqlConnector(
        "warehouse", SqlOptions(url=SecretStr(f"sqlite:///{tmp_path / 'source.db'}"), table="t")
    )
    try:
        assert [t.source_id for t in tickets_of(pull(source, since=moment))] == ["1", "2", "3", "4"]
        half = moment + dt.timedelta(milliseconds=500)
        assert [t.source_id for t in tickets_of(pull(source, since=half))] == ["3", "4"]
        assert tickets_of(pull(source, since=moment))[0].cursor == moment
    finally:
        source.close()


TEXT_LAYOUTS = {
    # layout: the unit its text resolves
    "%Y-%m-%d %H:%M:%S": dt.timedelta(seconds=1),
    "%Y-%m-%d %H:%M:%S.%f": dt.timedelta(seconds=1),
    "%Y-%m-%dT%H:%M:%S.%fZ": dt.timedelta(seconds=1),
    "%Y-%m-%dT%H:%M": dt.timedelta(minutes=1),
    "%Y-%m-%d": dt.timedelta(days=1),
}
moments = st.datetimes(
    min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2090, 1, 1), timezones=st.just(dt.UTC)
)


def floor(moment: dt.datetime, unit: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return moment - (moment - epoch) % unit


@settings(max_examples=300, deadline=None)
@given(since=moments, stored=moments, layout=st.sampled_from(sorted(TEXT_LAYOUTS)))
def test_text_bound_sorts_at_or_before_exactly_the_rows_at_or_after_since(
    since: dt.datetime, stored: dt.datetime, layout: str
) -> None:
    # Python's isoformat drops a zero fraction: the layout that sorts worst.
    text = stored.isoformat() if layout.endswith("Z") else stored.strftime(layout)
    sample = (
        "2026-01-01T00:00:00Z" if layout.endswith("Z") else dt.datetime(2026, 1, 1).strftime(layout)
    )
    unit = TEXT_LAYOUTS[layout]

    bound = since_value(since, sample, dt.UTC)

    assert (text >= bound) == (floor(stored, unit) >= floor(since, unit))


def test_naive_and_aware_datetime_samples_get_bounds_of_their_kind() -> None:
    paris = ZoneInfo("Europe/Paris")
    naive = since_value(T0, dt.datetime(2026, 1, 1), paris)
    assert naive == dt.datetime(2026, 3, 1, 10, 0, 0, 250_000)
    assert since_value(T0, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), paris) == T0
    assert since_value(T0, 1_700_000_000, dt.UTC) == int(T0.timestamp())
    assert since_value(T0, 1_700_000_000_000, dt.UTC) == int(T0.timestamp() * 1000)
    assert since_value(42, "anything", dt.UTC) == 42
    with pytest.raises(ValueError, match="not ISO 8601"):
        since_value(T0, "03/01/2026 09:00", dt.UTC)


# End to end


MAPPING = {
    "title": "{subject}",
    "status": "status",
    "status_map": {"open": "TODO", "pending": "STARTED", "solved": "DONE"},
    "external_updated_at": "updated_at",
}


def sync(emulator: Emulator, url: str, table: str, state_url: str) -> RunSummary:
    raw = {
        "fragment": {
            "url": emulator.base_url,
            "token": TOKEN,
            "requests_per_minute": 100_000,
            "max_retry_wait": "5s",
        },
        "state": {"url": state_url},
        "connectors": {
            "warehouse": {
                "kind": "sql",
                "url": url,
                "table": table,
                "deleted_column": "deleted_at",
                "page_size": 40,
                "mapping": MAPPING,
            }
        },
    }
    config = build_config(raw, source="test")
    store = StateStore.open(state_url)
    try:
        [summary] = run_once(config, store)
    finally:
        store.close()
    assert summary.ok, summary.error
    return summary


def test_rows_sync_into_fragment_once_each_and_changes_at_the_watermark_push_exactly(
    db: Database, emulator: Emulator, tmp_path: Path
) -> None:
    table = db.ticket_table()
    statuses = ["open", "pending", "solved"]
    rows = [
        row(
            i,
            T0 + (i // 7) * SECOND,  # ties of seven
            status=statuses[i % 3],
            deleted_at=T0 if i % 25 == 0 else None,
        )
        for i in range(1, 201)
    ]
    table.insert(*rows)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    live = {str(r["id"]) for r in rows if r["deleted_at"] is None}

    first = sync(emulator, db.url, table.name, state_url)

    landed = tasks_by_ticket(emulator)
    assert set(landed) == live
    assert first.pushed == len(live)
    assert landed["7"]["fields"]["title"] == "Ticket 7"
    assert landed["7"]["external_status"] == "STARTED"

    newest = max(r["updated_at"] for r in rows)
    edited = [3, 51, 99, 151, 199]
    for ticket_id in edited:
        table.update(ticket_id, subject=f"Ticket {ticket_id} (follow-up)", updated_at=newest)
    table.insert(*(row(i, newest) for i in (201, 202, 203)))

    second = sync(emulator, db.url, table.name, state_url)

    assert second.pushed == 8
    landed = tasks_by_ticket(emulator)
    assert set(landed) == live | {"201", "202", "203"}
    assert all(landed[str(i)]["fields"]["title"].endswith("(follow-up)") for i in edited)
    assert landed["202"]["fields"]["title"] == "Ticket 202"


def test_a_cursor_computed_on_each_read_fails_the_pass_instead_of_running_forever(
    request: pytest.FixtureRequest,
) -> None:
    database = Database("postgres", request.getfixturevalue("postgres_database"))
    try:
        table = database.ticket_table()
        table.insert(row(1, T0), row(2, None), row(3, None), row(4, None))
        query = (
            f"SELECT id, COALESCE(updated_at, clock_timestamp()) AS updated_at FROM {table.name}"  # noqa: S608
        )
        source = SqlConnector(
            "warehouse", SqlOptions(url=SecretStr(database.url), query=query, page_size=2)
        )
        database.opened.append(source)

        with pytest.raises(SourceError, match="computed on each read"):
            pull(source)
    finally:
        database.close()


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_a_late_commit_begun_during_a_pass_is_not_lost_when_this_host_runs_ahead(
    kind: str,
    request: pytest.FixtureRequest,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This machine's clock runs 30 s ahead of the database's, which stamps the rows.

    Row 3 is stamped by a transaction that began while the first pass ran and
    commits after it, behind row 2 stamped later: the first pass's watermark
    must stop at its start on the database's clock, not on this machine's.
    """
    url = request.getfixturevalue("postgres_database" if kind == "postgres" else "mariadb_url")
    database = Database(kind, url)
    try:
        table = database.ticket_table()
        query = "SELECT CURRENT_TIMESTAMP" if kind == "postgres" else "SELECT UTC_TIMESTAMP(6)"
        with database.engine.connect() as conn:
            now = conn.execute(sa.text(query)).scalar_one().replace(tzinfo=dt.UTC)
        table.insert(row(1, now - 60 * SECOND), row(2, now + 20 * SECOND))
        monkeypatch.setattr(clock, "now", lambda: dt.datetime.now(dt.UTC) + 30 * SECOND)
        state_url = f"sqlite:///{tmp_path / 'state.db'}"
        sync(emulator, database.url, table.name, state_url)

        table.insert(row(3, now + 10 * SECOND))
        sync(emulator, database.url, table.name, state_url)
    finally:
        database.close()

    assert set(tasks_by_ticket(emulator)) == {"1", "2", "3"}
