"""The state store on real SQLite and PostgreSQL: one transaction per checkpoint."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from fragment_emulator import Emulator
from sync.run import RunOptions, RunSummary, run_once
from sync.state import (
    HEAD_REVISION,
    MAX_ERROR_TEXT,
    Acked,
    FailedItem,
    HistoryPolicy,
    StateError,
    StateStore,
    bootstrap,
    utcnow,
)
from sync.state.schema import failed_items as failed_items_table
from sync.state.schema import runs as runs_table
from sync.state.upkeep import TableStatistics
from sync.watermark import encode
from synckit import make_config, pushed_items, write_tickets

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def test_a_new_database_gets_the_latest_schema_and_no_watermark(store: StateStore) -> None:
    assert store.watermark("helpdesk") is None
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"watermarks", "tasks", "runs", "failed_items", "alembic_version"} <= tables


def test_commit_batch_stores_hashes_failures_and_watermark_together(store: StateStore) -> None:
    store.commit_batch(
        "helpdesk",
        acked=[Acked("1", "uid-1", "h1", T0), Acked("2", "uid-2", "h2", T0)],
        failed=[FailedItem("3", "uid-3", "mapping", "title", "boom", cursor="7")],
        watermark=T0,
    )
    assert store.watermark("helpdesk") == T0
    stored = store.stored_tasks("helpdesk", ["1", "2", "3"])
    assert {k: v.content_hash for k, v in stored.items()} == {"1": "h1", "2": "h2"}
    [failed] = store.failed_items("helpdesk")
    assert (failed.source_id, failed.field, failed.error, failed.attempts) == (
        "3",
        "title",
        "boom",
        1,
    )


def test_failing_again_counts_attempts_and_acking_clears_the_failure(store: StateStore) -> None:
    item = FailedItem("3", "uid-3", "rejected", None, "unknown user")
    store.commit_batch("helpdesk", failed=[item])
    store.commit_batch("helpdesk", failed=[item])
    [failed] = store.failed_items("helpdesk")
    assert failed.attempts == 2
    assert failed.first_seen is not None and failed.last_seen is not None
    assert failed.first_seen <= failed.last_seen
    store.commit_batch("helpdesk", acked=[Acked("3", "uid-3", "h3", T0)])
    assert store.failed_items("helpdesk") == []


def test_rehashing_a_ticket_replaces_its_row(store: StateStore) -> None:
    store.commit_batch("helpdesk", acked=[Acked("1", "uid-1", "old", T0)])
    store.commit_batch("helpdesk", acked=[Acked("1", "uid-1", "new", T0)])
    assert store.stored_tasks("helpdesk", ["1"])["1"].content_hash == "new"
    assert store.task_count("helpdesk") == 1


def test_connectors_do_not_see_each_others_state(store: StateStore) -> None:
    store.commit_batch("a", acked=[Acked("1", "uid-a", "h", T0)], watermark=T0)
    assert store.stored_tasks("b", ["1"]) == {}
    assert store.watermark("b") is None


def test_integer_watermarks_round_trip(store: StateStore) -> None:
    store.set_watermark("versions", 1_234_567_890_123)
    assert store.watermark("versions") == 1_234_567_890_123
    store.set_watermark("versions", None)
    assert store.watermark("versions") is None


def test_runs_record_counts_and_outcome(store: StateStore) -> None:
    run_id = store.start_run("helpdesk", "helpdesk", None)
    store.finish_run(
        run_id,
        outcome="ok",
        counts={"pulled": 5, "pushed": 3, "unchanged": 1, "failed": 1, "requests": 1},
        watermark=T0,
    )
    [run] = store.recent_runs("helpdesk")
    assert (run.outcome, run.pulled, run.pushed, run.failed) == ("ok", 5, 3, 1)
    assert run.ended_at is not None


def test_many_ids_are_looked_up_in_chunks(store: StateStore) -> None:
    acked = [Acked(str(i), f"uid-{i}", f"h{i}", T0) for i in range(1_300)]
    store.commit_batch("helpdesk", acked=acked)
    found = store.stored_tasks("helpdesk", [str(i) for i in range(1_400)])
    assert len(found) == 1_300


def test_an_unreachable_state_database_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StateError) as caught:
        StateStore.open("postgresql+psycopg://sync:hunter2secret@127.0.0.1:1/nowhere")
    assert "127.0.0.1" in str(caught.value)
    assert "hunter2secret" not in str(caught.value)


def test_a_state_url_naming_a_missing_driver_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StateError) as caught:
        StateStore.open("postgresql+pg8000://sync:hunter2secret@127.0.0.1:1/nowhere")
    assert "driver is not installed" in str(caught.value)
    assert "pg8000" in str(caught.value)
    assert "hunter2secret" not in str(caught.value)


def test_a_database_made_by_the_first_schema_revision_upgrades_keeping_its_state(
    state_url: str,
) -> None:
    old = StateStore.open(state_url, upgrade=False)
    old.upgrade("0001")
    # Written as revision 0001's code would have: only its tables exist.
    with old.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO watermarks (connector, cursor_kind, cursor_value, updated_at)"
                " VALUES ('helpdesk', 'datetime', :cursor, :now)"
            ),
            {"cursor": encode(T0), "now": T0},
        )
        conn.execute(
            sa.text(
                "INSERT INTO tasks (connector, source_id, uid, content_hash, source_cursor,"
                " pushed_at) VALUES ('helpdesk', '1', 'uid-1', 'h1', 'x', :now)"
            ),
            {"now": T0},
        )
    old.close()

    upgraded = StateStore.open(state_url)

    assert upgraded.watermark("helpdesk") == T0
    assert upgraded.stored_tasks("helpdesk", ["1"])["1"].content_hash == "h1"
    upgraded.commit_batch("helpdesk", fingerprint="f" * 32, snapshot="blake2b:00")
    assert upgraded.settings_fingerprint("helpdesk") == "f" * 32
    assert upgraded.source_snapshot("helpdesk") == "blake2b:00"
    upgraded.close()


def test_a_lease_is_exclusive_until_it_expires_or_is_released(store: StateStore) -> None:
    assert store.acquire_lease("helpdesk", "host-a:1:x", ttl=30)
    assert not store.acquire_lease("helpdesk", "host-b:2:y", ttl=30)
    assert store.acquire_lease("helpdesk", "host-a:1:x", ttl=30)  # ours: renewed
    holder = store.lease("helpdesk")
    assert holder is not None and holder.owner == "host-a:1:x"
    store.release_lease("helpdesk", "host-a:1:x")
    assert store.lease("helpdesk") is None
    assert store.acquire_lease("helpdesk", "host-b:2:y", ttl=30)


def test_an_expired_lease_passes_to_the_next_process_and_fences_the_old_one(
    store: StateStore,
) -> None:
    import time

    from sync.state import LeaseLost

    assert store.acquire_lease("helpdesk", "dead:1:x", ttl=0.2)
    time.sleep(0.3)
    assert store.lease("helpdesk") is None
    assert store.acquire_lease("helpdesk", "alive:2:y", ttl=30)
    assert not store.renew_lease("helpdesk", "dead:1:x", ttl=30)
    with pytest.raises(LeaseLost):
        store.commit_batch(
            "helpdesk", acked=[Acked("1", "u", "h", T0)], watermark=T0, lease=("dead:1:x", 30)
        )
    assert store.watermark("helpdesk") is None  # the fenced commit wrote nothing
    store.commit_batch("helpdesk", watermark=T0, lease=("alive:2:y", 30))
    assert store.watermark("helpdesk") == T0


def test_the_head_revision_the_store_knows_is_alembics_head(state_url: str) -> None:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from sync.state import HEAD_REVISION, MIGRATIONS

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION
    store = StateStore.open(state_url)
    assert store.revision() == HEAD_REVISION
    store.close()


def _schema(engine: sa.Engine) -> dict[str, Any]:
    """Every table's columns, keys and indexes as the database reports them."""
    inspector = sa.inspect(engine)
    return {
        table: {
            "columns": [
                # (MySQL's fractional digits are not in the type's text.)
                (
                    c["name"],
                    str(c["type"]),
                    getattr(c["type"], "fsp", None),
                    c["nullable"],
                    str(c.get("default")),
                )
                for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": inspector.get_foreign_keys(table),
        }
        for table in sorted(inspector.get_table_names())
    }


def test_upgrading_to_0014_fills_each_connectors_summary_row_from_its_history(
    state_url: str,
) -> None:
    old = StateStore.open(state_url, upgrade=False)
    old.upgrade("0012")
    with old.engine.begin() as conn:
        for number, (outcome, pulled) in enumerate((("ok", 5), ("failed", 2), ("ok", 0))):
            conn.execute(
                sa.text(
                    "INSERT INTO runs (id, connector, name, started_at, ended_at, outcome,"
                    " pulled, pushed, unchanged, failed, requests, error) VALUES"
                    " (:id, 'helpdesk', 'desk', :at, :at, :outcome, :pulled, :pulled, 0, 0, 1,"
                    " NULL)"
                ),
                {"id": f"run-{number}", "at": T0 + dt.timedelta(minutes=number),
                 "outcome": outcome, "pulled": pulled},
            )  # fmt: skip
        for source_id in ("1", "2"):
            conn.execute(
                sa.text(
                    "INSERT INTO tasks (connector, source_id, uid, content_hash, source_cursor,"
                    " pushed_at) VALUES ('helpdesk', :id, :id, 'h', 'x', :now)"
                ),
                {"id": source_id, "now": T0},
            )
    old.close()

    upgraded = StateStore.open(state_url)

    stats = upgraded.connector_stats()["helpdesk"]
    assert (stats.run_id, stats.name, stats.outcome) == ("run-2", "desk", "ok")
    assert (stats.passes, stats.pulled_total, stats.pushed_total) == (3, 7, 7)
    assert (stats.tasks, stats.failed_items) == (2, 0)
    assert stats.last_ok_at == T0 + dt.timedelta(minutes=2)
    upgraded.close()


def test_a_fresh_database_gets_the_schema_the_migrations_build(state_url: str) -> None:
    """The one-step schema of a new database must be what replaying every migration builds."""
    fresh = StateStore.open(state_url)
    created = _schema(fresh.engine)
    tables = sa.MetaData()
    tables.reflect(fresh.engine)
    tables.drop_all(fresh.engine)
    assert _schema(fresh.engine) == {}

    fresh.upgrade(replay=True)
    migrated = _schema(fresh.engine)
    assert fresh.revision() == HEAD_REVISION
    fresh.close()

    assert set(created) >= {"alembic_version", "tasks", "watermarks", "pushes_in_flight"}
    assert created == migrated


def test_a_database_with_other_tables_still_gets_the_schema(state_url: str) -> None:
    """Tables that are not the store's (a shared database) don't stop the one-step schema."""
    engine = sa.create_engine(state_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    store = StateStore.open(state_url)
    assert store.revision() == HEAD_REVISION
    assert store.watermark("helpdesk") is None
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE someone_elses"))
    store.close()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_first_run_stopped_while_creating_the_schema_leaves_a_database_the_next_opens(
    database: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite each CREATE TABLE committed at once: a first run killed part-way through
    the schema (`tests/sync/test_crash.py`, under load) left tables that stopped every
    later run with "table watermarks already exists". (MariaDB commits each DDL statement
    whatever is done, so it is not among these databases.)"""
    url: str = request.getfixturevalue(f"{database}_url")

    def killed(*args: Any, **kwargs: Any) -> None:
        raise OSError("killed while creating the schema")

    monkeypatch.setattr(bootstrap._alembic_version, "create", killed)  # after the tables
    with pytest.raises(StateError, match="killed while creating the schema"):
        StateStore.open(url)
    monkeypatch.undo()

    store = StateStore.open(url)
    assert store.revision() == HEAD_REVISION
    store.commit_batch("helpdesk", acked=[Acked("1", "uid-1", "h1", T0)])
    assert store.task_count("helpdesk") == 1
    store.close()


def test_bulk_writes_store_times_the_way_every_other_write_reads_them(store: StateStore) -> None:
    """The checkpoint's rows bypass SQLAlchemy's per-row handling; their times must not."""
    before = dt.datetime.now(dt.UTC)
    store.commit_batch("helpdesk", acked=[Acked("1", "uid-1", "h1", T0)])
    after = dt.datetime.now(dt.UTC)

    pushed_at = store.stored_tasks("helpdesk", ["1"])["1"].pushed_at

    assert pushed_at is not None
    assert before - dt.timedelta(seconds=1) <= pushed_at <= after
    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT pushed_at FROM tasks")).scalar_one()
    if store.engine.dialect.name == "sqlite":
        assert raw == pushed_at.replace(tzinfo=None).isoformat(sep=" ")  # SQLAlchemy's format


def test_one_write_naming_a_ticket_twice_keeps_its_last_row(store: StateStore) -> None:
    """PostgreSQL takes a batch as one statement, which may not touch a row twice."""
    store.mark_in_flight("helpdesk", ["1", "2", "1"])
    store.commit_batch(
        "helpdesk",
        acked=[Acked("3", "uid-3", "old", T0), Acked("3", "uid-3", "new", T0)],
        failed=[
            FailedItem("4", None, "source", None, "first", None),
            FailedItem("4", None, "source", None, "second", None),
        ],
    )

    assert store.in_flight("helpdesk", ["1", "2", "3"]) == {"1", "2"}
    assert store.stored_tasks("helpdesk", ["3"])["3"].content_hash == "new"
    assert [(item.source_id, item.error) for item in store.failed_items()] == [("4", "second")]


def test_failed_items_are_read_in_pages_that_changes_between_them_do_not_shift(
    store: StateStore,
) -> None:
    failures = [FailedItem(f"t{n}", None, "mapping", "title", "boom", "7") for n in range(7)]
    store.commit_batch("helpdesk", failed=failures)
    store.commit_batch("other", failed=[FailedItem("t0", None, "mapping", None, "x", None)])

    pages = store.failed_item_pages("helpdesk", 3)
    first = next(pages)
    # Clearing one item already read, failing another again: the next page starts after t2.
    store.commit_batch("helpdesk", resolved=["t1"], failed=[failures[2]])
    rest = list(pages)

    assert [[item.source_id for item in page] for page in [first, *rest]] == [
        ["t0", "t1", "t2"],
        ["t3", "t4", "t5"],
        ["t6"],
    ]
    assert store.failed_errors("helpdesk", ["t1", "t2", "t6", "t9"]) == {"t2": "boom", "t6": "boom"}
    assert list(store.failed_item_pages("nobody", 3)) == []


def _retryable(source_id: str) -> FailedItem:
    return FailedItem(source_id, None, "mapping", None, "boom", "7", record='{"id": 1}')


def test_a_pass_reads_only_the_failed_items_due_a_page_at_a_time(store: StateStore) -> None:
    """Finding the items due used to read every failed item, record and all, each pass:
    a million items waiting out their backoff were a million rows every interval."""
    unreadable = FailedItem("t8", None, "source", None, "not JSON", None)  # nothing to map
    start = dt.datetime.now(dt.UTC)
    store.commit_batch("helpdesk", failed=[*map(_retryable, ["t0", "t1", "t2", "t3", "t4"])])
    store.commit_batch("helpdesk", failed=[unreadable])
    store.commit_batch("other", failed=[_retryable("t0")])
    # t3 and t4 have failed for two hours when tried again: each waits an hour, the cap.
    with store.engine.begin() as conn:
        two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        conn.execute(
            sa.update(failed_items_table)
            .where(failed_items_table.c.source_id.in_(["t3", "t4"]))
            .values(first_seen=two_hours_ago)
        )
    tried = dt.datetime.now(dt.UTC)
    store.commit_batch("helpdesk", failed=[_retryable("t3"), _retryable("t4")])
    began = dt.datetime.now(dt.UTC)

    retry_at = {item.source_id: item.retry_at for item in store.failed_items("helpdesk")}
    assert retry_at.pop("t8") is None
    due = {i: at for i, at in retry_at.items() if at is not None}
    assert all(start <= due[i] <= tried for i in ["t0", "t1", "t2"])
    hour = dt.timedelta(hours=1)
    assert all(tried + hour <= due[i] <= began + hour for i in ["t3", "t4"])
    assert store.waiting_count("helpdesk", began) == 2

    pages = store.due_failed_item_pages("helpdesk", 2, began)
    first = next(pages)
    # Tried again meanwhile: due after `began`, so not met twice; t1 went through.
    store.commit_batch("helpdesk", resolved=["t1"], failed=[_retryable("t0")])
    rest = list(pages)

    assert [[item.source_id for item in page] for page in [first, *rest]] == [["t0", "t1"], ["t2"]]
    assert all(item.record == '{"id": 1}' for item in first)
    assert list(store.due_failed_item_pages("nobody", 2, began)) == []


def test_the_migration_makes_existing_failed_items_due_at_once(state_url: str) -> None:
    """Failed items recorded before `retry_at` existed are due on the next pass, bar those
    with no record to map (they never were retried)."""
    store = StateStore.open(state_url, upgrade=False)
    store.upgrade("0005")
    rows = [
        ("1", "mapping", '{"id": 1}'),
        ("2", "rejected", '{"id": 2}'),
        ("3", "source", None),
        ("4", "mapping", None),
    ]
    with store.engine.begin() as conn:
        for source_id, stage, record in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO failed_items (connector, source_id, stage, error, deleted, "
                    "record, attempts, first_seen, last_seen) VALUES ('helpdesk', :id, :stage, "
                    "'boom', false, :record, 1, :seen, :seen)"
                ),
                {"id": source_id, "stage": stage, "record": record, "seen": T0},
            )

    store.upgrade()

    items = {item.source_id: item.retry_at for item in store.failed_items("helpdesk")}
    assert items == {"1": T0, "2": T0, "3": None, "4": None}
    due = [
        item.source_id
        for page in store.due_failed_item_pages("helpdesk", 10, T0 + dt.timedelta(seconds=1))
        for item in page
    ]
    assert due == ["1", "2"]
    store.close()


def test_ids_differing_only_in_case_accents_or_trailing_spaces_are_different_tickets(
    store: StateStore,
) -> None:
    """MariaDB's default collation compares text ignoring all three: there `ABC-1` and
    `abc-1` shared one row of state, each overwriting the other's hash."""
    ids = ["ABC-1", "abc-1", "Sé", "Se", "a", "a "]
    store.commit_batch(
        "helpdesk", acked=[Acked(i, f"uid-{n}", f"h{n}", T0) for n, i in enumerate(ids)]
    )
    store.commit_batch("helpdesk", failed=[_retryable(i) for i in ids])

    stored = store.stored_tasks("helpdesk", ids)
    assert {i: task.uid for i, task in stored.items()} == {i: f"uid-{n}" for n, i in enumerate(ids)}
    assert sorted(item.source_id for item in store.failed_items("helpdesk")) == sorted(ids)
    assert store.failed_errors("helpdesk", ["abc-1", "a "]) == {"abc-1": "boom", "a ": "boom"}


def test_times_keep_their_microseconds(store: StateStore) -> None:
    """MySQL's `DATETIME` kept whole seconds, so a failure recorded in the second a pass
    began read as older than that pass."""
    moment = dt.datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(failed_items_table).values(
                connector="helpdesk",
                source_id="1",
                stage="mapping",
                error="boom",
                deleted=False,
                attempts=1,
                first_seen=moment,
                last_seen=moment,
                retry_at=moment,
            )
        )
    [item] = store.failed_items("helpdesk")
    assert item.first_seen == item.last_seen == item.retry_at == moment


def test_a_value_too_long_for_its_column_is_refused_never_cut_short(store: StateStore) -> None:
    """PostgreSQL's batch upsert cast each column's array to `varchar(n)[]`, which cuts
    longer text to n characters without a word: a cursor came back as another number.
    Connectors refuse such values first; this is the store's own backstop."""
    cursor = int("9" * 70)
    if store.engine.dialect.name == "sqlite":  # keeps text of any length whole
        store.commit_batch("helpdesk", acked=[Acked("1", "uid-1", "h", cursor)])
        assert store.stored_tasks("helpdesk", ["1"])["1"].cursor == str(cursor)
        return
    with pytest.raises(sa.exc.DataError, match="too long"):
        store.commit_batch("helpdesk", acked=[Acked("1", "uid-1", "h", cursor)])
    assert store.stored_tasks("helpdesk", ["1"]) == {}


@pytest.mark.postgres
def test_postgresql_learns_as_the_tasks_table_grows(postgres_url: str) -> None:
    """Where autovacuum lags (or is off), a backfilled table kept the planner's empty-table
    estimate and every hash lookup scanned it whole; the store analyses it as it grows."""
    store = StateStore.open(postgres_url)
    for start in range(0, 3_000, 500):
        batch = [Acked(str(i), f"uid-{i}", f"h{i}", T0) for i in range(start, start + 500)]
        store.commit_batch("helpdesk", acked=batch)

    with store.engine.connect() as conn:
        estimate = conn.execute(
            sa.text("SELECT reltuples FROM pg_class WHERE oid = 'tasks'::regclass")
        ).scalar_one()
    store.close()
    assert estimate >= 2_000  # analysed at 1,000 rows written, and again at twice that


@pytest.mark.postgres
def test_statistics_that_cannot_be_taken_never_fail_the_checkpoint_behind_them(
    postgres_url: str,
) -> None:
    """The rows are committed before the table is analysed; a failing ANALYZE is only logged."""
    store = StateStore.open(postgres_url)
    missing = sa.Table("no_such_table", sa.MetaData(), sa.Column("id", sa.Integer))
    statistics = TableStatistics(missing)

    with capture_logs() as logs:
        statistics.wrote(store.engine, TableStatistics.MIN_ROWS)  # ANALYZE: no such table

    store.close()
    [entry] = [e for e in logs if e["event"] == "state_statistics_not_updated"]
    assert entry["table"] == "no_such_table" and "no_such_table" in entry["error"]


def test_a_failed_item_keeps_a_record_of_any_size_and_a_bounded_error(store: StateStore) -> None:
    """MySQL's and MariaDB's `TEXT` holds 64 KB: a bigger record or error failed the whole
    checkpoint with `Data too long for column`, on every pass."""
    record = json.dumps({"id": 1, "description": "é" * 100_000})
    error = "connector 'helpdesk', ticket '1', field 'due_at': '" + "9" * 100_000 + "' is bad"
    item = FailedItem("1", "uid-1", "mapping", "due_at", error, record=record)

    store.commit_batch("helpdesk", failed=[item])
    store.commit_batch("helpdesk", failed=[item])  # the update path too

    [failed] = store.failed_items("helpdesk")
    assert failed.record == record
    assert failed.attempts == 2
    assert len(failed.error) <= MAX_ERROR_TEXT < len(error)
    assert failed.error.startswith("connector 'helpdesk', ticket '1', field 'due_at': '999")
    assert failed.error.endswith("999' is bad")
    assert " characters cut] " in failed.error


def test_a_run_error_is_kept_bounded(store: StateStore) -> None:
    run_id = store.start_run("helpdesk", "helpdesk", None)
    error = "source failed: " + "x" * 100_000 + " (the end)"

    store.finish_run(run_id, outcome="failed", counts={}, watermark=None, error=error)

    [run] = store.recent_runs("helpdesk")
    assert run.error is not None and len(run.error) <= MAX_ERROR_TEXT
    assert run.error.startswith("source failed: xxx") and run.error.endswith("x (the end)")


def test_huge_unmappable_tickets_are_failed_items_and_the_good_ones_go_out_once(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    """A ticket over 64 KB with one unmappable field, or a 100 KB bad date, failed every
    pass on MySQL and MariaDB, and the good tickets were pushed again every pass."""
    good = [
        {"id": n, "subject": f"Ticket {n}", "updated_at": f"2026-11-02T09:0{n}:00Z"}
        for n in range(3)
    ]
    big = {"id": 10, "updated_at": "2026-11-02T09:10:00Z", "body": "é" * 70_000}  # no subject
    bad_date = {
        "id": 11,
        "subject": "Bad date",
        "updated_at": "2026-11-02T09:11:00Z",
        "due": "9" * 100_000 + "x",
    }
    path = write_tickets(tmp_path / "tickets.jsonl", [*good, big, bad_date])
    mapping = {"title": "{subject}", "due_at": "due"}
    config = make_config(
        emulator, path, state_url, mapping=mapping, connector={"deleted_field": None}
    )

    def sync() -> RunSummary:
        store = StateStore.open(state_url)
        try:
            [summary] = run_once(config, store, options=RunOptions(full=True))
        finally:
            store.close()
        return summary

    first = sync()
    assert first.ok, first.error
    assert (first.pushed, first.failed) == (3, 2)
    with capture_logs() as logs:
        second = sync()
    assert second.ok, second.error
    assert (second.pushed, second.failed) == (0, 2)
    # Failing the same way again is not news, though the error stored is the bounded one.
    assert [e["event"] for e in logs if e["event"].startswith("ticket_")] == [
        "ticket_still_failing",
        "ticket_still_failing",
    ]

    assert pushed_items(emulator) == 3
    store = StateStore.open(state_url)
    failed = {item.source_id: item for item in store.failed_items("helpdesk")}
    store.close()
    assert set(failed) == {"10", "11"}
    assert failed["10"].record is not None and json.loads(failed["10"].record) == big
    assert "template key 'subject' is absent" in failed["10"].error
    assert failed["11"].error.startswith("connector 'helpdesk', ticket '11', field 'due_at'")
    assert failed["11"].error.endswith("is not an ISO 8601 date-time")


def test_the_run_history_keeps_the_newest_runs_of_each_connector(store: StateStore) -> None:
    store = StateStore(store.engine, HistoryPolicy(keep=3))
    for _ in range(5):
        store.finish_run(
            store.start_run("helpdesk", "helpdesk", None), outcome="ok", counts={}, watermark=None
        )
    store.start_run("other", "other", None)
    kept = store.recent_runs("helpdesk", limit=100)
    assert len(kept) == 3
    assert len(store.recent_runs("other")) == 1


def test_commands_that_drop_failed_items_or_forget_tasks_recount_the_summary_row(
    store: StateStore,
) -> None:
    """Metrics read the counts from the summary row: a command changing them must count again."""
    store.start_run("helpdesk", "helpdesk", None)  # the connector's first pass makes its row
    store.commit_batch(
        "helpdesk",
        acked=[Acked("1", "uid-1", "h1", T0), Acked("2", "uid-2", "h2", T0)],
        failed=[FailedItem("3", None, "mapping", "title", "no subject")],
    )

    store.drop_failed("helpdesk")
    assert (store.connector_stats()["helpdesk"].tasks, store.failed_count("helpdesk")) == (2, 0)
    assert store.connector_stats()["helpdesk"].failed_items == 0
    store.forget_tasks("helpdesk")
    assert store.connector_stats()["helpdesk"].tasks == 0


def test_the_run_history_drops_runs_older_than_it_keeps(store: StateStore) -> None:
    """Pruned by age too: a connector that stopped running kept its thousand runs forever."""
    now = utcnow()
    with store.engine.begin() as conn:
        for connector, age in (("gone", 3), ("gone", 1), ("helpdesk", 3)):
            conn.execute(
                sa.insert(runs_table).values(
                    id=f"{connector}-{age}", connector=connector, name=connector,
                    started_at=now - dt.timedelta(days=age), outcome="ok",
                    pulled=0, pushed=0, unchanged=0, failed=0, requests=0,
                )
            )  # fmt: skip
    pruning = StateStore(store.engine, HistoryPolicy(keep_for=dt.timedelta(days=2)))

    started = pruning.start_run("helpdesk", "helpdesk", None)

    kept = pruning.recent_runs(limit=100)
    assert sorted(run.id for run in kept) == sorted(["gone-1", started])


def test_the_newest_runs_of_every_connector_are_read_at_once(store: StateStore) -> None:
    """The status page read each connector's runs with a query of its own."""
    started = {
        connector: [store.start_run(connector, connector, None) for _ in range(3)]
        for connector in ("alpha", "beta")
    }
    store.acquire_lease("beta", "host:1:alive", ttl=60)

    each = store.recent_runs_each(2)

    assert {name: [run.id for run in runs] for name, runs in each.items()} == {
        name: ids[:0:-1] for name, ids in started.items()
    }
    assert [run.outcome for run in each["alpha"]] == ["abandoned", "abandoned"]  # no lease
    assert [run.outcome for run in each["beta"]] == ["running", "abandoned"]  # newest is live


def test_a_run_whose_process_died_reads_abandoned_and_the_next_pass_records_it(
    store: StateStore,
) -> None:
    store.acquire_lease("helpdesk", "host:1:dead", ttl=60)
    died = store.start_run("helpdesk", "helpdesk", None)
    assert [run.outcome for run in store.recent_runs("helpdesk")] == ["running"]  # lease held

    store.release_lease("helpdesk", "host:1:dead")  # as its expiry would
    [abandoned] = store.recent_runs("helpdesk")
    assert (abandoned.id, abandoned.outcome) == (died, "abandoned")
    assert abandoned.error is not None and "ended without finishing" in abandoned.error

    store.acquire_lease("helpdesk", "host:2:next", ttl=60)
    store.start_run("helpdesk", "helpdesk", None)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, outcome FROM runs")).all()
    assert {(row.id, row.outcome) for row in rows if row.id == died} == {(died, "abandoned")}
    assert sorted(run.outcome for run in store.recent_runs("helpdesk")) == ["abandoned", "running"]
