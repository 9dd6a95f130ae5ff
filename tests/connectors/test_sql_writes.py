"""The `sql` connector's write-back: `status_update` and `assignee_update`, run against real
SQLite, PostgreSQL and MariaDB databases, one connector at a time and through `run_once`.

Each table counts the UPDATEs that reached a row (`writes`, which the test's statements
bump), so a test can tell a write sent from one that wasn't.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from connectors.base import TicketWrite
from connectors.errors import SourceError, WriteConflict, WriteRefused
from connectors.sql import SqlConnector, SqlOptions
from fragment_emulator import Emulator
from sync.config import Config, build_config
from sync.errors import ConfigError
from sync.mapping import task_uid
from sync.run import RunSummary, run_once
from sync.state import StateStore
from sync.state.write_back import WriteBackLedger
from synckit import TOKEN, tasks_by_ticket

MARIADB_URL = os.environ.get("SYNC_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

NOW = {
    "sqlite": "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    "postgres": "CURRENT_TIMESTAMP",
    "mariadb": "UTC_TIMESTAMP(6)",  # the connector reads naive times in UTC
}
"""Each database's current time, as the table's `updated_at` holds it."""


class Desk:
    """A tickets table of one test, with CHECKs on its status and assignee, in a database.

    Its statements say TABLE for the table's name and NOW for the database's time."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind, self.url = kind, url
        self.engine = sa.create_engine(url)
        self.name = f"desk_{uuid.uuid4().hex[:10]}"
        stamp = {"sqlite": "TEXT", "postgres": "TIMESTAMPTZ", "mariadb": "DATETIME(6)"}[kind]
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"CREATE TABLE {self.name} ("
                    "id INTEGER PRIMARY KEY, subject VARCHAR(100) NOT NULL, "
                    "status VARCHAR(20) NOT NULL, assignee_id INTEGER, "
                    f"updated_at {stamp} NOT NULL, deleted_at {stamp}, "
                    "writes INTEGER NOT NULL DEFAULT 0, CONSTRAINT status_is_known "
                    "CHECK (status IN ('open', 'pending', 'solved', 'closed')), "
                    "CONSTRAINT assignee_is_staff CHECK (assignee_id < 1000))"
                )
            )
        self.opened: list[SqlConnector] = []
        self.now = NOW[kind]

    def add(self, *ids: int, status: str = "open") -> None:
        start = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
        with self.engine.begin() as conn:
            for number in ids:
                at: Any = start + dt.timedelta(seconds=number)
                at = at.strftime("%Y-%m-%d %H:%M:%S.000") if self.kind == "sqlite" else at
                at = at.replace(tzinfo=None) if self.kind == "mariadb" else at
                conn.execute(
                    sa.text(
                        self.sql(
                            "INSERT INTO TABLE (id, subject, status, updated_at) "
                            "VALUES (:id, :subject, :status, :at)"
                        )
                    ),
                    {"id": number, "subject": f"Ticket {number}", "status": status, "at": at},
                )

    def set(self, number: int, **changes: Any) -> None:
        assignments = ", ".join(f"{column} = :{column}" for column in changes)
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    self.sql(
                        "UPDATE TABLE SET ASSIGNMENTS, updated_at = NOW WHERE id = :id"
                    ).replace("ASSIGNMENTS", assignments)
                ),
                {**changes, "id": number},
            )

    def delete(self, number: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(self.sql("DELETE FROM TABLE WHERE id = :id")), {"id": number})

    def row(self, number: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.text(self.sql("SELECT status, assignee_id, writes FROM TABLE WHERE id = :id")),
                {"id": number},
            ).one()
        return dict(found._mapping)

    def status_update(self, guard: str = "") -> str:
        return (
            self.sql(
                "UPDATE TABLE SET status = :status, writes = writes + 1, updated_at = NOW "
                "WHERE id = :source_id"
            )
            + guard
        )

    def assignee_update(self) -> str:
        return self.sql(
            "UPDATE TABLE SET assignee_id = :assignee_id, writes = writes + 1, updated_at = NOW "
            "WHERE id = :source_id"
        )

    def sql(self, statement: str) -> str:
        return statement.replace("TABLE", self.name).replace("NOW", self.now)

    def connector(self, **options: Any) -> SqlConnector:
        keys = {"status_update": self.status_update(), "assignee_update": self.assignee_update()}
        source = SqlConnector(
            "desk",
            SqlOptions.model_validate(
                {"url": SecretStr(self.url), "table": self.name, **keys, **options}
            ),
        )
        self.opened.append(source)
        return source

    def close(self) -> None:
        for source in self.opened:
            source.close()
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {self.name}"))
        self.engine.dispose()


@pytest.fixture(scope="session")
def mariadb_server() -> str:
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


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'desk.db'}"
    elif request.param == "postgres":
        url = request.getfixturevalue("postgres_database")
    else:
        url = request.getfixturevalue("mariadb_server")
    table = Desk(request.param, url)
    yield table
    table.close()


# The connector


def test_a_status_written_back_lands_and_writing_it_again_is_harmless(desk: Desk) -> None:
    desk.add(1, 2)
    source = desk.connector()

    source.write(TicketWrite("1", status="solved"))
    source.write(TicketWrite("1", status="solved"))  # repeated after a crash

    assert desk.row(1) == {"status": "solved", "assignee_id": None, "writes": 2}
    assert desk.row(2)["status"] == "open"  # bound, never spliced: one row only


def test_an_assignee_is_written_and_unassigned_and_both_fields_go_in_one_change(
    desk: Desk,
) -> None:
    desk.add(1)
    source = desk.connector()

    source.write(TicketWrite("1", assign=True, assignee_id="7"))
    assigned = desk.row(1)
    source.write(TicketWrite("1", status="pending", assign=True, assignee_id=None))

    assert assigned == {"status": "open", "assignee_id": 7, "writes": 1}
    assert desk.row(1) == {"status": "pending", "assignee_id": None, "writes": 3}


def test_a_value_the_database_refuses_is_refused_in_its_words_and_nothing_is_written(
    desk: Desk,
) -> None:
    desk.add(1)
    source = desk.connector()

    with pytest.raises(WriteRefused) as refused:
        # The status lands first, then the assignee fails: the transaction keeps neither.
        source.write(TicketWrite("1", status="pending", assign=True, assignee_id="99999"))
    with pytest.raises(WriteRefused) as checked:
        source.write(TicketWrite("1", status="Resolved"))

    assert not isinstance(checked.value, WriteConflict)
    assert "field 'assignee'" in str(refused.value) and "'99999'" in str(refused.value)
    assert "field 'status'" in str(checked.value) and "'Resolved'" in str(checked.value)
    assert "assignee_is_staff" in str(refused.value)  # the database's own words
    assert "status_is_known" in str(checked.value)
    assert desk.row(1) == {"status": "open", "assignee_id": None, "writes": 0}


def test_a_deleted_row_is_refused_as_gone(desk: Desk) -> None:
    desk.add(1, 2)
    desk.delete(1)
    desk.set(2, deleted_at="2026-03-02 00:00:00")
    source = desk.connector(
        deleted_column="deleted_at", status_update=desk.status_update(" AND deleted_at IS NULL")
    )

    with pytest.raises(WriteRefused) as gone:
        source.write(TicketWrite("1", status="solved"))
    with pytest.raises(WriteRefused) as soft:
        source.write(TicketWrite("2", status="solved"))

    assert not isinstance(gone.value, WriteConflict) and not isinstance(soft.value, WriteConflict)
    assert "no row with id '1'" in str(gone.value) and "deleted?" in str(gone.value)
    assert "the row with id '2'" in str(soft.value) and "is marked deleted" in str(soft.value)


def test_a_row_the_statements_guard_leaves_out_stays_as_it_is_as_a_conflict(desk: Desk) -> None:
    desk.add(1, 2)
    desk.set(1, status="closed")
    guard = " AND (status <> 'closed' OR :status = 'closed')"
    source = desk.connector(status_update=desk.status_update(guard))

    with pytest.raises(WriteConflict) as conflict:
        source.write(TicketWrite("1", status="pending"))
    source.write(TicketWrite("1", status="closed"))  # where it is already: no conflict
    source.write(TicketWrite("2", status="pending"))

    assert "WHERE leaves it out" in str(conflict.value)
    assert conflict.value.target == "pending"
    assert desk.row(1)["status"] == "closed"
    assert desk.row(2)["status"] == "pending"


NO_REOPENING = {
    "sqlite": "CREATE TRIGGER TABLE_no_reopening BEFORE UPDATE OF status ON TABLE "
    "WHEN NEW.status = 'open' AND OLD.status <> 'open' "
    "BEGIN SELECT RAISE(ABORT, 'tickets are reopened by a supervisor'); END",
    "postgres": "CREATE FUNCTION TABLE_no_reopening() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN IF NEW.status = 'open' AND OLD.status <> 'open' THEN "
    "RAISE EXCEPTION 'tickets are reopened by a supervisor'; END IF; RETURN NEW; END $$; "
    "CREATE TRIGGER TABLE_no_reopening BEFORE UPDATE ON TABLE "
    "FOR EACH ROW EXECUTE FUNCTION TABLE_no_reopening()",
    "mariadb": "CREATE TRIGGER TABLE_no_reopening BEFORE UPDATE ON TABLE FOR EACH ROW "
    "IF NEW.status = 'open' AND OLD.status <> 'open' THEN SIGNAL SQLSTATE '45000' "
    "SET MESSAGE_TEXT = 'tickets are reopened by a supervisor'; END IF",
}
"""A trigger that refuses to reopen a ticket, in each database's dialect."""


def test_a_triggers_refusal_is_a_refused_write_in_its_words(desk: Desk) -> None:
    desk.add(1)
    desk.set(1, status="solved")
    with desk.engine.begin() as conn:
        conn.exec_driver_sql(desk.sql(NO_REOPENING[desk.kind]))
    source = desk.connector()

    with pytest.raises(WriteRefused) as refused:
        source.write(TicketWrite("1", status="open"))
    source.write(TicketWrite("1", status="pending"))  # the trigger lets this one through

    assert not isinstance(refused.value, WriteConflict)
    assert "'open'" in str(refused.value)
    assert "tickets are reopened by a supervisor" in str(refused.value)
    assert desk.row(1)["status"] == "pending"


def test_a_connection_lost_mid_write_is_a_source_error_not_a_refusal(
    postgres_database: str,
) -> None:
    desk = Desk("postgres", postgres_database)
    try:
        desk.add(1)
        # The server ends this session while the UPDATE runs, as a restart or a network
        # failure would.
        dying = desk.status_update(" AND pg_terminate_backend(pg_backend_pid())")
        source = desk.connector(status_update=dying)

        with pytest.raises(SourceError) as caught:
            source.write(TicketWrite("1", status="solved"))

        assert not isinstance(caught.value, WriteRefused)
        assert "cannot write to table" in str(caught.value)
        assert desk.row(1)["status"] == "open"
    finally:
        desk.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://sync:hunter2@127.0.0.1:9/desk",
        "mysql+pymysql://sync:hunter2@127.0.0.1:9/desk",
    ],
)
def test_a_database_out_of_reach_is_a_source_error_without_the_password(url: str) -> None:
    source = SqlConnector(
        "desk",
        SqlOptions.model_validate(
            {
                "url": url,
                "table": "t",
                "status_update": "UPDATE t SET s = :status WHERE id = :source_id",
            }
        ),
    )
    try:
        with pytest.raises(SourceError) as caught:
            source.write(TicketWrite("1", status="solved"))
    finally:
        source.close()

    assert not isinstance(caught.value, WriteRefused)
    assert "cannot write to" in str(caught.value) and "hunter2" not in str(caught.value)


# Configuration


def desk_config(**keys: Any) -> dict[str, Any]:
    return {
        "connectors": {
            "desk": {"kind": "sql", "url": "sqlite:///desk.db", "table": "tickets", **keys}
        }
    }


@pytest.mark.parametrize(
    ("key", "statement", "message"),
    [
        ("status_update", "SELECT 1", "must be an UPDATE"),
        (
            "status_update",
            "UPDATE t SET status = :status WHERE id = :source_id; DROP TABLE t",
            "more than one statement",
        ),
        ("status_update", "UPDATE t SET status = :state WHERE id = :source_id", ":state"),
        ("status_update", "UPDATE t SET status = 'solved' WHERE id = :source_id", ":status"),
        ("status_update", "UPDATE t SET status = :status", ":source_id"),
        (
            "assignee_update",
            "UPDATE t SET owner = :assignee_id, status = :status WHERE id = :source_id",
            ":status",
        ),
    ],
)
def test_a_bad_statement_fails_the_config_naming_its_key(
    key: str, statement: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(desk_config(**{key: statement}), source="test")

    assert caught.value.key == f"connectors.desk.{key}"
    assert message in str(caught.value)


def test_a_semicolon_in_a_literal_and_a_trailing_one_are_one_statement() -> None:
    statement = "UPDATE t SET status = :status, note = 'a; b' WHERE id = :source_id;"

    config = build_config(desk_config(status_update=statement), source="test")

    options = config.connectors["desk"].options
    assert isinstance(options, SqlOptions)
    assert options.status_update == statement.rstrip(";")


def test_write_back_needs_the_update_of_each_field_it_writes() -> None:
    status_only = "UPDATE t SET status = :status WHERE id = :source_id"
    write_back = {"status": {"DONE": "solved"}, "assignee": True}

    with pytest.raises(ConfigError) as caught:
        build_config(desk_config(status_update=status_only, write_back=write_back), source="test")
    with pytest.raises(ConfigError) as neither:
        build_config(desk_config(write_back={"status": {"DONE": "solved"}}), source="test")

    assert caught.value.key == "connectors.desk.write_back.assignee"
    assert "it can write: status" in str(caught.value)
    assert neither.value.key == "connectors.desk.write_back.status"
    assert "it can write: nothing" in str(neither.value) and "its page" in str(neither.value)


# Through the engine


def engine_config(desk: Desk, emulator: Emulator, state_url: str) -> Config:
    """The desk's table with write-back of status and assignee on, people named by id."""
    return build_config(
        {
            "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 10**5},
            "state": {"url": state_url},
            "connectors": {
                "desk": {
                    "kind": "sql",
                    "url": desk.url,
                    "table": desk.name,
                    "status_update": desk.status_update(),
                    "assignee_update": desk.assignee_update(),
                    "mapping": {
                        "title": "{subject}",
                        "status": "status",
                        "status_map": {
                            "open": "TODO",
                            "pending": "STARTED",
                            "solved": "DONE",
                            "closed": "DONE",
                        },
                        "assignee": "assignee_id",
                        "fields": {"source_status": "status"},
                    },
                    "people": {"table": {"7": "carol@example.com", "8": "dan@example.com"}},
                    "write_back": {
                        "status": {"DONE": "solved", "STARTED": "pending"},
                        "assignee": True,
                    },
                }
            },
        },
        source="test",
    )


def operator_patch(emulator: Emulator, source_id: str, **changes: Any) -> None:
    answer = httpx.patch(
        f"{emulator.base_url}/tasks/{task_uid('desk', source_id)}",
        json=changes,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 200, answer.text


def one_run(config: Config, store: StateStore) -> RunSummary:
    [summary] = run_once(config, store)  # write-back, then the forward pass
    assert summary.outcome == "ok", summary.error
    return summary


def test_an_operators_done_lands_in_the_row_once_and_the_next_run_sends_nothing(
    desk: Desk, emulator: Emulator, sqlite_url: str
) -> None:
    desk.add(1, 2, 3)
    config = engine_config(desk, emulator, sqlite_url)
    with StateStore.open(sqlite_url) as store:
        assert one_run(config, store).pushed == 3
        operator_patch(emulator, "2", status="DONE")

        written = one_run(config, store)
        after_the_write = desk.row(2)
        settled = one_run(config, store)

        # Both UPDATEs ran (write-back asks for the assignee with every change while it
        # writes assignees back; the row's unassigned already, so that one is harmless).
        assert after_the_write == {"status": "solved", "assignee_id": None, "writes": 2}
        assert written.pushed == 1  # the row, as the UPDATE left it
        assert tasks_by_ticket(emulator)["2"]["fields"]["source_status"] == "solved"
        assert settled.pushed == 0
        assert desk.row(2) == after_the_write  # nothing written twice
        assert desk.row(1)["writes"] == desk.row(3)["writes"] == 0
        assert WriteBackLedger(store).rows("desk") == []


def test_an_operators_assignee_lands_as_the_people_tables_user_and_a_refusal_is_kept(
    desk: Desk, emulator: Emulator, sqlite_url: str
) -> None:
    desk.add(1, 2)
    desk.set(1, assignee_id=7)
    config = engine_config(desk, emulator, sqlite_url)
    with StateStore.open(sqlite_url) as store:
        one_run(config, store)
        operator_patch(emulator, "1", assignee_email="dan@example.com")
        operator_patch(emulator, "2", assignee_email="eve@example.com")  # in no table

        one_run(config, store)
        settled = one_run(config, store)

        # One UPDATE: the task's TODO is no status write_back.status names.
        assert desk.row(1) == {"status": "open", "assignee_id": 8, "writes": 1}
        assert tasks_by_ticket(emulator)["1"]["assignee"]["email"] == "dan@example.com"
        assert desk.row(2) == {"status": "open", "assignee_id": None, "writes": 0}
        [refused] = WriteBackLedger(store).rows("desk")
        assert refused.source_id == "2" and refused.field == "assignee"
        assert refused.error is not None and "eve@example.com" in refused.error
        assert settled.pushed == 0
