"""The `sql` connector's `comments_column`: a JSON aggregate of each row's comments, as
PostgreSQL's `json_agg`, MariaDB's `JSON_ARRAYAGG` and SQLite's `json_group_array` give it."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from connectors.base import BadRecord, SourceTicket
from connectors.sql import SqlConnector, SqlOptions
from fragment_emulator import Emulator
from sync.config import build_config
from sync.run import RunOptions, run_once
from sync.state import StateStore
from synckit import TOKEN, tasks_by_ticket

MARIADB_URL = os.environ.get("SYNC_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

AGGREGATE = {
    # One JSON array per ticket, from a correlated subquery: no GROUP BY over the ticket's columns.
    "sqlite": "(SELECT json_group_array(json_object('id', c.id, 'created_at', c.created_at, "
    "'author', c.author, 'body', c.body, 'public', c.public)) FROM {c} c "
    "WHERE c.ticket_id = t.id)",
    "postgres": "(SELECT json_agg(json_build_object('id', c.id, 'created_at', c.created_at, "
    "'author', c.author, 'body', c.body, 'public', c.public) ORDER BY c.created_at) FROM {c} c "
    "WHERE c.ticket_id = t.id)",
    "mariadb": "(SELECT JSON_ARRAYAGG(JSON_OBJECT('id', c.id, 'created_at', c.created_at, "
    "'author', c.author, 'body', c.body, 'public', c.public)) FROM {c} c "
    "WHERE c.ticket_id = t.id)",
}

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


class Desk:
    """A tickets table and a comments table of one test, in one database."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind, self.url = kind, url
        self.engine = sa.create_engine(url)
        suffix = uuid.uuid4().hex[:8]
        self.tickets, self.comments = f"tickets_{suffix}", f"comments_{suffix}"
        metadata = sa.MetaData()
        stamp = sa.DateTime(timezone=kind == "postgres")
        sa.Table(
            self.tickets,
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("subject", sa.String(100)),
            sa.Column("updated_at", stamp),
        )
        sa.Table(
            self.comments,
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("ticket_id", sa.Integer),
            sa.Column("created_at", stamp),
            sa.Column("author", sa.String(100)),
            sa.Column("body", sa.Text),
            sa.Column("public", sa.Boolean),
        )
        self.metadata = metadata
        metadata.create_all(self.engine)

    def stamp(self, minutes: int) -> dt.datetime:
        moment = T0 + dt.timedelta(minutes=minutes)
        return moment if self.kind == "postgres" else moment.replace(tzinfo=None)

    def ticket(self, number: int, minutes: int) -> None:
        table = self.metadata.tables[self.tickets]
        with self.engine.begin() as conn:
            row = {"id": number, "subject": f"Ticket {number}", "updated_at": self.stamp(minutes)}
            conn.execute(table.insert(), [row])

    def comment(
        self, number: int, ticket: int, minutes: int, body: str, public: bool = True
    ) -> None:
        table = self.metadata.tables[self.comments]
        row = {
            "id": number,
            "ticket_id": ticket,
            "created_at": self.stamp(minutes),
            "author": "Ana",
            "body": body,
            "public": public,
        }
        with self.engine.begin() as conn:
            conn.execute(table.insert(), [row])

    def query(self) -> str:
        aggregate = AGGREGATE[self.kind].format(c=self.comments)
        return (
            f"SELECT t.id, t.subject, t.updated_at, {aggregate} AS comments "  # noqa: S608
            f"FROM {self.tickets} t"  # the test's own table names, no input
        )

    def close(self) -> None:
        self.metadata.drop_all(self.engine)
        self.engine.dispose()


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'desk.db'}"
    elif request.param == "postgres":
        url = request.getfixturevalue("postgres_database")
    else:
        url = MARIADB_URL
        probe = sa.create_engine(url)
        try:
            with probe.connect():
                pass
        except sa.exc.OperationalError as exc:
            if os.environ.get("CI"):
                pytest.fail(f"MariaDB not reachable at {url}: {exc}")
            pytest.skip(f"MariaDB not reachable at {url}: {exc}")
        finally:
            probe.dispose()
    made = Desk(request.param, url)
    yield made
    made.close()


def _pull(desk: Desk, **options: object) -> list[SourceTicket | BadRecord]:
    source = SqlConnector(
        "warehouse",
        SqlOptions(url=SecretStr(desk.url), query=desk.query(), comments_column="comments"),
    )
    source.read_comments = True
    try:
        return list(source.pull(None))
    finally:
        source.close()


def test_a_json_aggregate_column_gives_each_row_its_comments(desk: Desk) -> None:
    desk.ticket(1, 10)
    desk.ticket(2, 20)
    desk.comment(11, 1, 2, "Second", public=False)
    desk.comment(10, 1, 1, "First")

    items = _pull(desk)

    assert all(isinstance(item, SourceTicket) for item in items)
    by_id = {item.source_id: item for item in items if isinstance(item, SourceTicket)}
    one = by_id["1"].comments
    assert one is not None
    assert [(c.comment_id, c.body, c.public, c.author) for c in one] == [
        ("10", "First", True, "Ana"),
        ("11", "Second", False, "Ana"),
    ]
    assert one[0].created_at == T0 + dt.timedelta(minutes=1)
    assert by_id["2"].comments == []  # no comment: [] (SQLite), NULL (PostgreSQL, MariaDB)


def test_the_comments_of_a_sqlite_query_reach_the_task(
    tmp_path: Path, emulator: Emulator, sqlite_url: str
) -> None:
    desk = Desk("sqlite", f"sqlite:///{tmp_path / 'desk.db'}")
    desk.ticket(1, 10)
    desk.comment(10, 1, 1, "Please  advise")
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
        "state": {"url": sqlite_url},
        "connectors": {
            "warehouse": {
                "kind": "sql",
                "url": desk.url,
                "query": desk.query(),
                "comments_column": "comments",
                "mapping": {"title": "{subject}"},
            }
        },
    }
    config = build_config(raw, source="test")
    with StateStore.open(sqlite_url) as store:
        [summary] = run_once(config, store, options=RunOptions())
    desk.close()

    assert summary.ok and summary.pushed == 1
    fields = tasks_by_ticket(emulator)["1"]["fields"]
    assert (fields["comment_count"], fields["last_comment"]) == (1, "Please advise")


def test_an_unset_comments_column_stays_out_of_the_settings_fingerprint() -> None:
    options = SqlOptions(url=SecretStr("sqlite:///x.db"), table="tickets")

    assert "comments_column" not in options.model_dump(mode="json")
