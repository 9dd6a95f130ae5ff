"""The census: tasks of tickets gone from the source are archived, within a safe share.

The merge is checked against a set-based model; the rest end to end over real
HTTP, a ticket file to the Fragment emulator, asserting on the tasks in the
emulator and the rows of the state.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from fragment_emulator import Emulator
from sync.batches import PushResult
from sync.census import (
    CensusSummary,
    ConnectorCensus,
    Finding,
    IdSpill,
    census_due,
    census_once,
    merge,
)
from sync.config import Config
from sync.fragment import FragmentClient
from sync.mapping import task_uid
from sync.run import RunOptions, run_once
from sync.state import StateStore, utcnow
from sync.state.schema import tasks as tasks_table
from synckit import make_config, pushed_items, write_tickets

# The merge, against a model


ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)


@given(
    source=st.lists(ids, max_size=60),
    tracked=st.dictionaries(ids, st.booleans(), max_size=60),
)
def test_merge_finds_what_a_set_difference_finds(
    source: list[str], tracked: dict[str, bool]
) -> None:
    with IdSpill() as spill:  # the source's ids in any order, repeated: sorted once spilled
        spill.add(source)
        rows = sorted(tracked.items())
        found = list(merge(spill.sorted_ids(), rows))

    at_source = set(source)
    gone = {i for i, archived in tracked.items() if not archived and i not in at_source}
    back = {i for i, archived in tracked.items() if archived and i in at_source}
    assert {f.source_id for f in found if f.finding is Finding.GONE} == gone
    assert {f.source_id for f in found if f.finding is Finding.BACK} == back
    assert len(found) == len(gone) + len(back)


def test_a_census_is_due_once_its_interval_passed_and_never_without_one() -> None:
    now = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
    six_hours = dt.timedelta(hours=6)
    assert census_due(six_hours, None, now)
    assert census_due(six_hours, now - six_hours, now)
    assert not census_due(six_hours, now - dt.timedelta(hours=5), now)
    assert not census_due(None, None, now)


# End to end


def tickets(count: int, *, updated: str = "2026-11-01T10:00:00Z") -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "subject": f"Printer {i} jams",
            "status": "open",
            "priority": "normal",
            "updated_at": updated,
            "requester": {"email": f"user{i}@example.com", "country": "FR"},
            "deleted": False,
        }
        for i in range(1, count + 1)
    ]


def sync(config: Config) -> None:
    with StateStore.open(config.state.url) as store:
        [summary] = run_once(config, store)
    assert summary.ok, summary.error


def census(config: Config, **kwargs: Any) -> CensusSummary:
    force = kwargs.pop("force", False)
    with StateStore.open(config.state.url) as store:
        [summary] = census_once(
            config, store, ["helpdesk"], options=RunOptions(**kwargs), force=force
        )
    return summary


def archived(emulator: Emulator, ids: range | list[int]) -> dict[int, bool]:
    found = {}
    for i in ids:
        task = emulator.store.get(task_uid("helpdesk", str(i)))
        assert task is not None, f"ticket {i} has no task"
        found[i] = bool(task["archived"])
    return found


def archived_rows(config: Config) -> set[str]:
    with StateStore.open(config.state.url) as store, store.engine.connect() as conn:
        return set(
            conn.execute(
                sa.select(tasks_table.c.source_id).where(tasks_table.c.archived == sa.true())
            ).scalars()
        )


@pytest.fixture
def ticket_file(tmp_path: Path) -> Path:
    return write_tickets(tmp_path / "tickets.jsonl", tickets(40))


def test_tickets_gone_from_the_file_get_their_tasks_archived_once(
    emulator: Emulator, ticket_file: Path, state_url: str
) -> None:
    config = make_config(emulator, ticket_file, state_url)
    sync(config)
    write_tickets(ticket_file, [t for t in tickets(40) if t["id"] not in (7, 23)])
    pushed_before = pushed_items(emulator)

    summary = census(config)

    assert summary.ok, summary.error
    assert (summary.at_source, summary.tracked, summary.gone, summary.archived) == (38, 40, 2, 2)
    assert pushed_items(emulator) - pushed_before == 2
    assert archived(emulator, range(1, 41)) == {i: i in (7, 23) for i in range(1, 41)}
    assert archived_rows(config) == {"7", "23"}

    again = census(config)  # nothing left to archive: nothing is sent
    assert (again.ok, again.tracked, again.gone, again.requests) == (True, 38, 0, 0)
    assert pushed_items(emulator) - pushed_before == 2


def test_a_census_over_the_share_archives_nothing_until_forced(
    emulator: Emulator, ticket_file: Path, sqlite_url: str
) -> None:
    config = make_config(emulator, ticket_file, sqlite_url)
    sync(config)
    write_tickets(ticket_file, tickets(40)[:30])  # a filter typo, or ten really deleted
    pushed_before = pushed_items(emulator)

    refused = census(config)

    assert refused.outcome == "refused"
    assert refused.error is not None
    assert "'helpdesk'" in refused.error
    assert "10 of 40" in refused.error
    assert "25.0%" in refused.error
    assert "--force" in refused.error
    assert pushed_items(emulator) == pushed_before
    assert not any(archived(emulator, range(1, 41)).values())
    assert archived_rows(config) == set()

    forced = census(config, force=True)

    assert (forced.outcome, forced.archived) == ("ok", 10)
    assert archived(emulator, range(31, 41)) == dict.fromkeys(range(31, 41), True)
    assert not any(archived(emulator, range(1, 31)).values())


def test_the_share_is_configurable(emulator: Emulator, ticket_file: Path, sqlite_url: str) -> None:
    config = make_config(emulator, ticket_file, sqlite_url, connector={"census_max_share": 0.3})
    sync(config)
    write_tickets(ticket_file, tickets(40)[:30])

    summary = census(config)

    assert (summary.outcome, summary.archived) == ("ok", 10)


def test_a_dry_run_counts_what_it_would_archive_and_sends_nothing(
    emulator: Emulator, ticket_file: Path, sqlite_url: str
) -> None:
    config = make_config(emulator, ticket_file, sqlite_url)
    sync(config)
    write_tickets(ticket_file, tickets(40)[1:])
    requests_before = len(emulator.requests)

    summary = census(config, dry_run=True)

    assert (summary.ok, summary.gone, summary.archived) == (True, 1, 0)
    assert len(emulator.requests) == requests_before
    assert archived_rows(config) == set()


def test_a_ticket_that_comes_back_is_unarchived_with_its_new_content(
    emulator: Emulator, ticket_file: Path, sqlite_url: str
) -> None:
    config = make_config(emulator, ticket_file, sqlite_url)
    sync(config)
    write_tickets(ticket_file, tickets(40)[1:])
    assert census(config).archived == 1
    assert archived(emulator, [1]) == {1: True}
    # Id 1 reused by a new ticket (Redmine on SQLite does it): the next pull reads it.
    back = tickets(40)
    back[0].update(subject="A new ticket reusing id 1", updated_at="2026-11-02T09:00:00Z")
    write_tickets(ticket_file, back)

    sync(config)

    task = emulator.store.get(task_uid("helpdesk", "1"))
    assert task is not None
    assert task["archived"] is False
    assert "A new ticket reusing id 1" in task["fields"]["title"]
    assert archived_rows(config) == set()


def test_a_ticket_back_unchanged_is_unarchived_by_a_full_pass(
    emulator: Emulator, ticket_file: Path, sqlite_url: str
) -> None:
    """Its stored hash is the tombstone's: the same content as before still goes out."""
    config = make_config(emulator, ticket_file, sqlite_url)
    sync(config)
    write_tickets(ticket_file, tickets(40)[1:])
    census(config)
    write_tickets(ticket_file, tickets(40))  # restored from a backup, as it was

    assert census(config).back == 1
    with StateStore.open(config.state.url) as store:
        [summary] = run_once(config, store, options=RunOptions(full=True))

    assert (summary.ok, summary.pushed) == (True, 1)
    assert archived(emulator, [1]) == {1: False}


class StopAfterFirstBatch(FragmentClient):
    """A real client whose census is asked to stop once one batch is acknowledged."""

    def push(self, items: Any, into: PushResult | None = None) -> PushResult:
        result = super().push(items, into)
        self.stop.set()
        return result


def test_a_census_cut_short_archives_the_rest_next_time_and_none_twice(
    emulator: Emulator, ticket_file: Path, sqlite_url: str
) -> None:
    config = make_config(
        emulator, ticket_file, sqlite_url,
        fragment={"batch_size": 3, "max_in_flight": 1}, connector={"census_max_share": 1},
    )  # fmt: skip
    sync(config)
    write_tickets(ticket_file, tickets(40)[:30])
    pushed_before = pushed_items(emulator)
    options = RunOptions()

    with StateStore.open(config.state.url) as store:
        client = StopAfterFirstBatch(config.fragment, stop=options.stop)
        try:
            cut = ConnectorCensus(config.connectors["helpdesk"], store, client, 3, options)
            first = cut.execute()
        finally:
            client.close()

    assert first.outcome == "interrupted"
    assert first.archived == 3
    assert len(archived_rows(config)) == 3

    rest = census(config)

    assert (rest.ok, rest.tracked, rest.gone, rest.archived) == (True, 37, 7, 7)
    assert pushed_items(emulator) - pushed_before == 10  # each tombstone sent once
    assert archived(emulator, range(31, 41)) == dict.fromkeys(range(31, 41), True)


def test_a_connector_without_a_census_says_so(
    emulator: Emulator, ticket_file: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.base import Connector
    from connectors.files import FileConnector

    monkeypatch.setattr(FileConnector, "scope_ids", Connector.scope_ids)
    config = make_config(emulator, ticket_file, sqlite_url)

    summary = census(config)

    assert summary.outcome == "unsupported"
    assert summary.error is not None and "takes no census" in summary.error


# The shell: metrics, the command, the daemon's schedule


def test_a_refused_census_raises_the_alert_gauge_until_one_goes_through(
    emulator: Emulator, ticket_file: Path, sqlite_url: str
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from sync.shell.metrics import Metrics

    def scrape(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        text = metrics.exposition().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
              **labels: str) -> float | None:  # fmt: skip
        return samples.get((name, frozenset(labels.items())))

    config = make_config(emulator, ticket_file, sqlite_url, connector={"census": "6h"})
    sync(config)
    write_tickets(ticket_file, tickets(40)[:20])
    with StateStore.open(config.state.url) as store:
        metrics = Metrics(config, store)
        metrics.install()
        try:
            assert value(scrape(metrics), "fragment_sync_census_refused", connector="helpdesk") == 0
            assert census(config).outcome == "refused"
            refused = scrape(metrics)
            assert census(config, force=True).archived == 20
            forced = scrape(metrics)
        finally:
            metrics.uninstall()

    assert value(refused, "fragment_sync_census_refused", connector="helpdesk") == 1
    assert (
        value(refused, "fragment_sync_censuses_total", connector="helpdesk", outcome="refused") == 1
    )
    assert value(forced, "fragment_sync_census_refused", connector="helpdesk") == 0
    assert value(forced, "fragment_sync_census_archived_tasks_total", connector="helpdesk") == 20


def test_the_census_command_fails_over_the_share_and_archives_with_force(
    emulator: Emulator, ticket_file: Path, sqlite_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from sync.shell.cli import main
    from synckit import small_config_file

    options = {"kind": "jsonl", "path": str(ticket_file), "deleted_field": "deleted"}
    config_file = small_config_file(
        tmp_path / "sync.toml", emulator.base_url, sqlite_url, "helpdesk", options
    )
    assert main(["run", "--once", "--config", str(config_file)]) == 0
    write_tickets(ticket_file, tickets(40)[:30])
    capsys.readouterr()

    assert main(["census", "--connector", "helpdesk", "--config", str(config_file)]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and "10 of 40" in out and "nothing was archived" in out
    assert main(["census", "--connector", "helpdesk", "--dry-run", "--force",
                 "--config", str(config_file)]) == 0  # fmt: skip
    assert "would archive 10" in capsys.readouterr().out
    assert not any(archived(emulator, range(31, 41)).values())

    assert main(["census", "--connector", "helpdesk", "--force", "--config", str(config_file)]) == 0
    assert "archived 10" in capsys.readouterr().out
    assert all(archived(emulator, range(31, 41)).values())


def test_status_shows_each_connectors_last_census_refused_then_forced(
    emulator: Emulator, ticket_file: Path, state_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """What an operator asks after an alert: did the census run, was it refused, how many
    tasks did it archive, and did someone force it."""
    from sync.shell.cli import main
    from synckit import small_config_file

    options = {"kind": "jsonl", "path": str(ticket_file), "census": "6h"}
    config_file = small_config_file(
        tmp_path / "sync.toml", emulator.base_url, state_url, "helpdesk", options
    )

    def status() -> tuple[dict[str, Any], str]:
        capsys.readouterr()
        assert main(["status", "--json", "--config", str(config_file)]) == 0
        [row] = json.loads(capsys.readouterr().out)
        assert main(["status", "--config", str(config_file)]) == 0
        return row, capsys.readouterr().out

    assert main(["run", "--once", "--config", str(config_file)]) == 0
    row, table = status()
    assert row["last_census"] is None and row["census_every"] == "6:00:00"
    assert "LAST CENSUS" in table and "never" in table

    write_tickets(ticket_file, tickets(40)[:30])
    assert main(["census", "--connector", "helpdesk", "--config", str(config_file)]) == 1
    row, table = status()
    refused = row["last_census"]
    assert (refused["outcome"], refused["gone"], refused["archived"]) == ("refused", 10, 0)
    assert refused["forced"] is False
    assert "refused at " in table and "10 gone, archived nothing" in table

    assert main(["census", "--connector", "helpdesk", "--force", "--config", str(config_file)]) == 0
    row, table = status()
    forced = row["last_census"]
    assert (forced["outcome"], forced["gone"], forced["archived"]) == ("ok", 10, 10)
    assert forced["forced"] is True
    assert dt.datetime.fromisoformat(forced["began_at"]) > dt.datetime.fromisoformat(
        refused["began_at"]
    )
    assert "archived 10 of 10 gone (forced)" in table


def test_the_daemon_takes_a_census_after_a_pass_once_its_interval_is_up(
    emulator: Emulator, ticket_file: Path, sqlite_url: str
) -> None:
    import threading

    from sync.shell.daemon import Daemon
    from sync.state.claims import Claim

    config = make_config(emulator, ticket_file, sqlite_url, connector={"census": "6h"})
    with StateStore.open(config.state.url) as store:
        daemon = Daemon(config, store, None, threading.Event())

        def turn() -> None:
            """The connector's turn in the daemon, claimed as its scheduler loop claims it."""
            assert store.acquire_lease("helpdesk", daemon.options.owner, ttl=60)
            daemon.work(Claim("helpdesk", utcnow()))

        try:
            turn()  # a pass, then the first census: nothing gone
            first = store.last_census("helpdesk")
            assert first is not None
            write_tickets(ticket_file, tickets(40)[1:])

            turn()  # not due yet: six hours between censuses
            assert archived(emulator, [1]) == {1: False}
            assert store.last_census("helpdesk") == first

            store.record_census("helpdesk", first - dt.timedelta(hours=6), "ok")
            turn()
        finally:
            daemon.client.close()
            daemon.pool.shutdown()

    assert archived(emulator, [1]) == {1: True}
