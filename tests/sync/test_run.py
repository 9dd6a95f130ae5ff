"""End to end over real HTTP: ticket files -> the run loop -> the Fragment emulator.

Each test asserts on what a user would see: the tasks in the emulator, the
rows of the state store, the requests Fragment received.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from connectors import files
from connectors.base import BadRecord, SourceTicket
from fragment_emulator import Emulator
from sync.batches import PushResult
from sync.config import Config
from sync.fragment import FragmentClient
from sync.mapping import TaskPayload, task_uid
from sync.run import (
    FAILURES_LOGGED,
    ConnectorRun,
    RunOptions,
    RunSummary,
    run_once,
    with_usable_ids,
)
from sync.state import StateStore
from sync.state.schema import failed_items as failed_items_table
from sync_demo import generate_tickets
from synckit import (
    MAPPING,
    TOKEN,
    live_ids,
    make_config,
    pushed_items,
    read_tickets,
    tasks_by_ticket,
    write_tickets,
)


def sync(config: Config, **options: Any) -> RunSummary:
    store = StateStore.open(config.state.url)
    try:
        [summary] = run_once(config, store, options=RunOptions(**options))
    finally:
        store.close()
    return summary


@pytest.fixture
def demo_file(tmp_path: Path) -> Path:
    return write_tickets(tmp_path / "tickets.jsonl", generate_tickets(400))


def test_demo_tickets_land_once_each_and_a_second_run_pushes_nothing(
    emulator: Emulator, demo_file: Path, state_url: str
) -> None:
    config = make_config(emulator, demo_file, state_url)
    tickets = read_tickets(demo_file)

    first = sync(config)

    assert first.ok, first.error
    landed = tasks_by_ticket(emulator)
    assert set(landed) == live_ids(tickets)
    for ticket in tickets:
        if ticket["deleted"]:
            continue
        task = landed[str(ticket["id"])]
        assert task["uid"] == task_uid("helpdesk", str(ticket["id"]))
        assert task["fields"]["title"] == f"[{ticket['priority']}] {ticket['subject']}"
        assert task["fields"]["country"] == ticket["requester"]["country"]
        assert task["external_status"] in ("TODO", "STARTED", "DONE")
    assert first.pushed == len(landed)
    assert first.requests == math.ceil(first.pushed / config.fragment.batch_size)

    requests_before = len(emulator.requests)
    second = sync(config)
    assert (second.ok, second.pushed, second.requests) == (True, 0, 0)
    assert len(emulator.requests) == requests_before


def test_changing_ten_tickets_pushes_exactly_those_ten(
    emulator: Emulator, demo_file: Path, sqlite_url: str
) -> None:
    config = make_config(emulator, demo_file, sqlite_url)
    assert sync(config).ok
    tickets = read_tickets(demo_file)
    live = [t for t in tickets if not t["deleted"]]
    changed = {str(t["id"]) for t in live[::37][:10]}
    for ticket in tickets:
        if str(ticket["id"]) in changed:
            ticket["subject"] += " (follow-up)"
            ticket["updated_at"] = "2026-11-15T10:00:00Z"
    write_tickets(demo_file, tickets)
    pushed_before = pushed_items(emulator)

    summary = sync(config)

    assert (summary.pushed, summary.requests) == (10, 1)
    assert pushed_items(emulator) - pushed_before == 10
    landed = tasks_by_ticket(emulator)
    assert all(landed[i]["fields"]["title"].endswith("(follow-up)") for i in changed)


def test_a_fresh_state_database_resyncs_to_the_same_uids_without_duplicates(
    emulator: Emulator, demo_file: Path, tmp_path: Path
) -> None:
    sync(make_config(emulator, demo_file, f"sqlite:///{tmp_path / 'one.db'}"))
    before = {k: t["uid"] for k, t in tasks_by_ticket(emulator).items()}

    summary = sync(make_config(emulator, demo_file, f"sqlite:///{tmp_path / 'two.db'}"))

    assert summary.ok
    after = {k: t["uid"] for k, t in tasks_by_ticket(emulator).items()}
    assert after == before
    assert emulator.store.count() == len(before)


class StopAfterFirstBatch(FragmentClient):
    """A real client whose run is asked to stop as soon as one batch is acknowledged."""

    def push(self, items: Any, into: PushResult | None = None) -> PushResult:
        result = super().push(items, into)
        self.stop.set()
        return result


def test_tickets_sharing_a_timestamp_across_a_batch_boundary_are_pushed_once(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    tie = "2026-11-02T09:00:00Z"
    tickets = [_ticket(i, tie) for i in range(25)] + [
        _ticket(100 + i, f"2026-11-02T09:0{i + 1}:00Z") for i in range(5)
    ]
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    # A sorted file checkpoints mid-pass; one batch in flight makes the stop point exact.
    config = make_config(
        emulator,
        path,
        sqlite_url,
        fragment={"batch_size": 10, "max_in_flight": 1},
        connector={"sorted": True},
    )
    store = StateStore.open(sqlite_url)
    stop = threading.Event()

    # First pass: stopped right after its first batch of 10 of the 25 tied tickets.
    with StopAfterFirstBatch(config.fragment, stop=stop) as client:
        interrupted = ConnectorRun(
            config.connectors["helpdesk"], store, client, 10, RunOptions(stop=stop)
        ).execute()
    assert not interrupted.ok and interrupted.pushed == 10
    assert store.watermark(config.connectors["helpdesk"].uid_namespace) == dt.datetime(
        2026, 11, 2, 9, 0, tzinfo=dt.UTC
    )

    # Late arrivals at the same second, then the pass resumes.
    tickets += [_ticket(200 + i, tie) for i in range(3)]
    write_tickets(path, sorted(tickets, key=lambda ticket: ticket["updated_at"]))
    resumed = sync(config)

    assert resumed.ok
    assert resumed.pushed == 23
    assert resumed.unchanged == 10
    assert set(tasks_by_ticket(emulator)) == {str(t["id"]) for t in tickets}
    assert pushed_items(emulator) == len(tickets)  # none sent twice
    store.close()


def _stopped_after_first_batch(config: Config, store: StateStore) -> RunSummary:
    """A pass of `config`'s helpdesk stopped as its first batch of 10 is acknowledged."""
    stop = threading.Event()
    with StopAfterFirstBatch(config.fragment, stop=stop) as client:
        return ConnectorRun(
            config.connectors["helpdesk"], store, client, 10, RunOptions(stop=stop)
        ).execute()


def test_a_first_backfill_stopped_part_way_resumes_from_its_checkpoint(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    """No pass has completed: the next resumes where the first stopped, not from the start."""
    path = write_tickets(tmp_path / "tickets.jsonl", _minute_apart(30))
    config = make_config(
        emulator,
        path,
        sqlite_url,
        fragment={"batch_size": 10, "max_in_flight": 1},
        connector={"sorted": True},
    )
    store = StateStore.open(sqlite_url)
    stopped = _stopped_after_first_batch(config, store)
    store.close()
    assert (stopped.outcome, stopped.pushed) == ("interrupted", 10)

    with capture_logs() as logs:
        resumed = sync(config)

    assert "settings_changed" not in [entry["event"] for entry in logs]
    assert (resumed.pulled, resumed.unchanged, resumed.pushed) == (21, 1, 20)  # ticket 9 again
    assert set(tasks_by_ticket(emulator)) == {str(n) for n in range(30)}


def test_a_settings_change_cut_short_is_read_in_full_again_by_the_next_pass(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    """A re-read for new settings stopped before it reached the watermark has not covered the
    tickets behind it: the next pass reads everything again, so every task gets the change."""
    path = write_tickets(tmp_path / "tickets.jsonl", _minute_apart(30))
    options: dict[str, Any] = {
        "fragment": {"batch_size": 10, "max_in_flight": 1},
        "connector": {"sorted": True},
    }
    assert sync(make_config(emulator, path, sqlite_url, **options)).ok
    mapping = {**MAPPING, "fields": {**MAPPING["fields"], "summary": "subject"}}
    config = make_config(emulator, path, sqlite_url, mapping=mapping, **options)
    store = StateStore.open(sqlite_url)
    stopped = _stopped_after_first_batch(config, store)
    store.close()
    assert (stopped.outcome, stopped.pushed) == ("interrupted", 10)

    with capture_logs() as logs:
        again = sync(config)

    assert "settings_changed" in [entry["event"] for entry in logs]
    assert (again.pulled, again.pushed) == (30, 20)
    assert all(task["fields"]["summary"] for task in tasks_by_ticket(emulator).values())


def test_rejected_items_are_set_aside_and_delivered_once_the_mapping_is_fixed(
    tmp_path: Path, sqlite_url: str
) -> None:
    known = [f"agent{i}@support.example.com" for i in range(5)]
    tickets = [
        {**_ticket(i, f"2026-11-02T09:{i:02d}:00Z"), "assignee": known[i % 5]} for i in range(40)
    ]
    poisoned = {3, 17, 18, 29}
    for index in poisoned:
        tickets[index]["assignee"] = "ghost@elsewhere.example"
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    with Emulator(tokens=[TOKEN], users=known) as emulator:
        config = make_config(emulator, path, sqlite_url, fragment={"batch_size": 20})

        first = sync(config)

        assert first.ok
        assert (first.pushed, first.failed) == (36, 4)
        assert set(tasks_by_ticket(emulator)) == {str(i) for i in range(40) if i not in poisoned}
        store = StateStore.open(sqlite_url)
        failed = {item.source_id: item for item in store.failed_items("helpdesk")}
        assert set(failed) == {str(i) for i in poisoned}
        assert all("unknown user ghost@elsewhere.example" in f.error for f in failed.values())
        assert all(f.stage == "rejected" for f in failed.values())

        # The fix: map assignees only from the support domain.
        fixed = make_config(
            emulator,
            path,
            sqlite_url,
            mapping={"title": "[{priority}] {subject}", "fields": {"country": "requester.country"}},
        )
        second = sync(fixed)

        assert second.ok and second.failed == 0
        assert set(tasks_by_ticket(emulator)) == {str(i) for i in range(40)}
        assert store.failed_items("helpdesk") == []
        store.close()


def test_a_retry_of_failed_items_checkpoints_batch_by_batch(tmp_path: Path, state_url: str) -> None:
    """A broken mapping can fail a whole backfill: retrying it, once fixed, goes a batch at
    a time, like a pull. It used to go out as one shipment (every record in memory at
    once), so a retry cut short recorded none of what had already landed."""
    path = write_tickets(tmp_path / "tickets.jsonl", _minute_apart(45))
    with Emulator(tokens=[TOKEN]) as emulator:
        options = {"batch_size": 10, "max_retry_wait": "1s"}
        broken = make_config(
            emulator, path, state_url, fragment=options, mapping={"title": "{subjet}"}
        )
        assert sync(broken).failed == 45
        fixed = make_config(emulator, path, state_url, fragment=options)
        # Two requests an hour: the third is told to wait longer than the client will.
        emulator.faults.rate_limit = (2, 3600.0)

        cut_short = sync(fixed)

        assert not cut_short.ok and "rate limited" in (cut_short.error or "")
        assert cut_short.pushed == 20
        landed = set(tasks_by_ticket(emulator))
        assert len(landed) == 20
        with StateStore.open(state_url) as store:
            still_failed = {item.source_id for item in store.failed_items("helpdesk")}
            assert still_failed == {str(i) for i in range(45)} - landed
            assert set(store.stored_tasks("helpdesk", landed)) == landed

        emulator.faults.rate_limit = None
        healed = sync(fixed)

        assert healed.ok and (healed.pushed, healed.failed) == (25, 0)
        assert set(tasks_by_ticket(emulator)) == {str(i) for i in range(45)}
        with StateStore.open(state_url) as store:
            assert store.failed_items("helpdesk") == []


def test_items_failing_again_the_same_way_are_one_line_a_pass_not_one_each(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A broken mapping in a daemon used to log a warning for every failed item on every
    pass. Only a new or different failure is news; repeats are counted in one line."""
    path = _assigned(tmp_path, 30, rejected=(4, 9))
    with Emulator(tokens=[TOKEN], users=[_AGENT]) as emulator:
        fragment = {"batch_size": 10}
        unmappable = {**_ASSIGNING, "url": "{link}"}  # no ticket has a link
        broken = make_config(emulator, path, sqlite_url, fragment=fragment, mapping=unmappable)
        fixed = make_config(emulator, path, sqlite_url, fragment=fragment, mapping=_ASSIGNING)
        passes = []
        for config in (broken, broken, fixed, fixed):
            with capture_logs() as logs:
                summary = sync(config)
            passes.append((summary, logs))

    def failed(logs: list[Any]) -> list[int]:
        return sorted(int(e["source_id"]) for e in logs if e["event"] == "ticket_failed")

    def still(logs: list[Any]) -> list[int]:
        return [e["count"] for e in logs if e["event"] == "failed_items_still_failing"]

    [(first, logs1), (second, logs2), (third, logs3), (fourth, logs4)] = passes
    assert first.failed == 30 and failed(logs1) == list(range(30)) and still(logs1) == []
    assert second.failed == 30 and failed(logs2) == [] and still(logs2) == [30]
    # Mapped now: 28 land; 4 and 9 are rejected, a different error, so news again. The
    # changed mapping re-reads every ticket, and each is tried once (they were tried
    # twice, first from the failed items and then by the re-read, and counted twice).
    assert third.failed == 2 and failed(logs3) == [4, 9] and still(logs3) == []
    assert fourth.failed == 2 and failed(logs4) == [] and still(logs4) == [2]


def test_a_pass_logs_its_first_hundred_failures_and_counts_the_rest_in_one_line(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A mapping typo fails every ticket of a backfill: a warning each was a million lines
    for a million tickets. Every ticket is still a failed item, and a debug line."""
    tickets = [_ticket(i, f"2026-11-02T{9 + i // 60:02d}:{i % 60:02d}:00Z") for i in range(150)]
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    with path.open("a") as handle:
        handle.write("not json\n[1]\n{}\n")  # three bad lines, last in the file
    with Emulator(tokens=[TOKEN]) as emulator:
        broken = make_config(emulator, path, sqlite_url, mapping={"title": "{subjet}"})
        with capture_logs() as logs:
            summary = sync(broken)

    def events(level: str, *names: str) -> list[Any]:
        return [e for e in logs if e["log_level"] == level and e["event"] in names]

    assert summary.failed == 153
    warned = events("warning", "ticket_failed", "bad_record")
    assert [int(e["source_id"]) for e in warned] == list(range(FAILURES_LOGGED))
    assert [e["count"] for e in events("warning", "more_tickets_failed")] == [53]
    assert len(events("debug", "ticket_failed")) == 50
    assert len(events("debug", "bad_record")) == 3
    with StateStore.open(sqlite_url) as store:
        assert store.failed_count("helpdesk") == 153


def test_a_long_failing_item_is_retried_after_a_wait_as_long_as_it_has_been_failing(
    tmp_path: Path, state_url: str
) -> None:
    """Every pass used to map and send every failed item again: a thousand tickets that
    Fragment keeps rejecting cost requests and state writes each interval, forever."""
    path = _assigned(tmp_path, 12, rejected=(3, 7))
    with Emulator(tokens=[TOKEN], users=[_AGENT]) as emulator:
        config = make_config(emulator, path, state_url, mapping=_ASSIGNING)
        assert sync(config).failed == 2
        store = StateStore.open(state_url)

        def failing_for(span: dt.timedelta) -> None:
            with store.engine.begin() as conn:
                first_seen = dt.datetime.now(dt.UTC) - span
                conn.execute(sa.update(failed_items_table).values(first_seen=first_seen))

        def retry_at() -> list[dt.datetime | None]:
            return [item.retry_at for item in store.failed_items("helpdesk")]

        # Failing for 3 minutes: tried on every pass.
        failing_for(dt.timedelta(minutes=3))
        before = len(emulator.requests)
        assert sync(config).failed == 2
        assert len(emulator.requests) > before

        # Failing for 2 hours when tried: it waits an hour (the cap) for the next try.
        failing_for(dt.timedelta(hours=2))
        tried = dt.datetime.now(dt.UTC)
        assert sync(config).failed == 2
        hour = dt.timedelta(hours=1)
        assert all(
            tried + hour <= at <= tried + hour + dt.timedelta(minutes=1) for at in retry_at()
        )
        before = len(emulator.requests)
        with capture_logs() as logs:
            waited = sync(config)
        assert waited.ok and waited.failed == 0
        assert len(emulator.requests) == before
        assert [e["count"] for e in logs if e["event"] == "failed_items_waiting"] == [2]
        assert {item.source_id for item in store.failed_items("helpdesk")} == {"3", "7"}

        # `failures retry` doesn't wait; nor does a pass once the hour has passed.
        assert sync(config, retry_only=True).failed == 2
        with store.engine.begin() as conn:
            an_hour_later = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            conn.execute(sa.update(failed_items_table).values(retry_at=an_hour_later))
        assert sync(config).failed == 2

        # Waiting an hour again, but the mapping changed (assignees no longer sent): no
        # waiting then either.
        assert all(at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=59) for at in retry_at())
        fixed = make_config(emulator, path, state_url, mapping={"title": "{subject}"})
        healed = sync(fixed)
        assert healed.ok and healed.failed == 0
        assert store.failed_items("helpdesk") == []
        store.close()


def test_a_fixed_mapping_delivers_failed_items_the_re_read_no_longer_meets(
    tmp_path: Path, state_url: str
) -> None:
    """A changed mapping re-reads the source, which tries the failed items it meets; those
    it doesn't (gone from the export) are tried from their stored records in the same pass."""
    tickets = _minute_apart(10)
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    with Emulator(tokens=[TOKEN]) as emulator:
        broken = make_config(emulator, path, state_url, mapping={"title": "{subjet}"})
        assert sync(broken).failed == 10
        write_tickets(path, [ticket for ticket in tickets if ticket["id"] != 3])

        fixed = sync(make_config(emulator, path, state_url))

        assert fixed.ok and (fixed.pulled, fixed.pushed, fixed.failed) == (9, 10, 0)
        assert set(tasks_by_ticket(emulator)) == {str(i) for i in range(10)}
        assert pushed_items(emulator) == 10  # each once
        with StateStore.open(state_url) as store:
            assert store.failed_items("helpdesk") == []


def test_a_fixed_mapping_delivers_failed_items_though_the_source_fails_part_way(
    tmp_path: Path, state_url: str
) -> None:
    """The re-read after a settings change tries the failed items it meets; when the
    source fails part-way, the rest still go out from their stored records."""
    tickets = _minute_apart(10)
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    with Emulator(tokens=[TOKEN]) as emulator:
        sorted_file = {"sorted": True}
        broken = make_config(
            emulator, path, state_url, mapping={"title": "{subjet}"}, connector=sorted_file
        )
        assert sync(broken).failed == 10
        # Line 2 breaks the promised order: the re-read stops there.
        write_tickets(path, [tickets[5], *tickets[:5], *tickets[6:]])

        fixed = sync(make_config(emulator, path, state_url, connector=sorted_file))

        assert not fixed.ok and "sorted = true" in (fixed.error or "")
        assert fixed.pushed == 10
        assert set(tasks_by_ticket(emulator)) == {str(i) for i in range(10)}
        with StateStore.open(state_url) as store:
            assert store.failed_items("helpdesk") == []


def test_no_request_goes_out_before_a_retry_after_expires(tmp_path: Path, sqlite_url: str) -> None:
    # One batch in flight: with two, the other sender may have passed the budget just
    # before the 429 came back and be on the wire a moment after it (the README's
    # caveat), which made this test fail now and then (0.3 ms after a 429, in CI).
    tickets = _minute_apart(50)
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    with Emulator(tokens=[TOKEN]) as emulator:
        emulator.faults.rate_limit = (2, 1.5)
        fragment = {"batch_size": 10, "max_in_flight": 1}
        config = make_config(emulator, path, sqlite_url, fragment=fragment)
        timeline: list[tuple[str, float, float | None]] = []
        store = StateStore.open(sqlite_url)
        with FragmentClient(config.fragment) as client:
            client.session.http.event_hooks["request"].append(
                lambda request: timeline.append(("sent", time.monotonic(), None))
            )
            client.session.http.event_hooks["response"].append(
                lambda response: timeline.append(
                    (
                        str(response.status_code),
                        time.monotonic(),
                        float(response.headers["Retry-After"])
                        if response.status_code == 429
                        else None,
                    )
                )
            )
            summary = ConnectorRun(
                config.connectors["helpdesk"], store, client, 10, RunOptions()
            ).execute()
        store.close()

        assert summary.ok and summary.pushed == 50
        assert set(tasks_by_ticket(emulator)) == {str(i) for i in range(50)}
        limited = [i for i, (kind, _, _) in enumerate(timeline) if kind == "429"]
        assert limited, "the emulator never rate-limited: the test proves nothing"
        for index in limited:
            _, answered_at, retry_after = timeline[index]
            assert retry_after is not None
            next_send = next(t for kind, t, _ in timeline[index + 1 :] if kind == "sent")
            assert next_send - answered_at >= retry_after


def test_5xx_and_dropped_connections_are_retried_to_the_exact_final_state(
    tmp_path: Path, sqlite_url: str
) -> None:
    tickets = [_ticket(i, f"2026-11-02T{i // 60:02d}:{i % 60:02d}:00Z") for i in range(200)]
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    with Emulator(tokens=[TOKEN]) as emulator:
        emulator.faults.update(
            {"error_rate": 0.2, "drop_rate": 0.1, "lost_response_rate": 0.1, "seed": 7}
        )
        config = make_config(
            emulator,
            path,
            sqlite_url,
            fragment={"batch_size": 10, "max_attempts": 30, "max_retry_wait": "50ms"},
        )
        summary = sync(config)
        assert summary.ok, summary.error
        assert set(tasks_by_ticket(emulator)) == {str(i) for i in range(200)}
        assert summary.requests > 20  # the faults really hit


def test_fragment_down_fails_the_run_and_the_next_run_resumes(
    tmp_path: Path, sqlite_url: str
) -> None:
    tickets = _minute_apart(30)
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    with Emulator(tokens=[TOKEN]) as emulator:
        config = make_config(
            emulator,
            path,
            sqlite_url,
            fragment={"batch_size": 10, "max_attempts": 2, "max_retry_wait": "10ms"},
        )
        emulator.faults.error_rate = 1.0
        down = sync(config)
        assert not down.ok
        assert "still failing after 2 attempts" in (down.error or "")
        store = StateStore.open(sqlite_url)
        assert store.watermark("helpdesk") is None
        [run] = store.recent_runs("helpdesk")
        assert run.outcome == "failed" and run.error == down.error

        emulator.faults.error_rate = 0.0
        up = sync(config)
        assert up.ok and up.pushed == 30
        assert store.watermark("helpdesk") == dt.datetime(2026, 11, 2, 9, 29, tzinfo=dt.UTC)
        store.close()


def test_a_bad_line_is_recorded_and_the_rest_of_the_file_goes_on(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    path = write_tickets(tmp_path / "tickets.jsonl", _minute_apart(5))
    with path.open("a") as file:
        file.write(
            '{"id": 99, "subject": "no cursor"}\n{"id": 98, "updated_at": "2026-11-02T10:00:00Z"}\n'
        )
    summary = sync(make_config(emulator, path, sqlite_url))
    assert summary.ok
    assert summary.failed == 2
    assert set(tasks_by_ticket(emulator)) == {str(i) for i in range(5)}
    store = StateStore.open(sqlite_url)
    failed = {item.source_id: item for item in store.failed_items("helpdesk")}
    assert failed["99"].field == "updated_at"
    assert failed["98"].field == "title" and "is absent" in failed["98"].error
    store.close()


def test_ids_and_text_a_database_cannot_keep_are_failed_items_and_the_rest_goes_on(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    # A JSON source may escape half of a UTF-16 pair ("\\ud800"): Python reads it as a lone
    # surrogate, which neither Fragment nor the state database can take. PostgreSQL also
    # refuses a NUL ("\\u0000") in text: such an id crashed every pass on the production
    # backend while SQLite took it.
    good = _minute_apart(4)
    bad_id = {**_ticket(0, "2026-11-02T10:00:00Z"), "id": "lost\ud800half"}
    nul_id = {**_ticket(0, "2026-11-02T10:00:30Z"), "id": "nul\u0000inside"}
    bad_text = {**_ticket(7, "2026-11-02T10:01:00Z"), "subject": "cut \ud83d here"}
    path = write_tickets(tmp_path / "tickets.jsonl", [*good, bad_id, nul_id, bad_text])
    config = make_config(emulator, path, state_url)

    first = sync(config)

    assert first.ok, first.error
    assert (first.pushed, first.failed) == (4, 3)
    assert set(tasks_by_ticket(emulator)) == {"0", "1", "2", "3"}
    with StateStore.open(state_url) as store:
        failed = {item.source_id: item for item in store.failed_items("helpdesk")}
        # The ids shown with their escapes:
        assert set(failed) == {"7", "ticket lost\\ud800half", "ticket nul\\x00inside"}
        assert failed["7"].field == "title" and "surrogate" in failed["7"].error
        shown = failed["ticket lost\\ud800half"]
        assert shown.field == "id" and "'helpdesk'" in shown.error and "surrogate" in shown.error
        assert "NUL" in failed["ticket nul\\x00inside"].error
        assert store.watermark("helpdesk") == dt.datetime(2026, 11, 2, 10, 1, tzinfo=dt.UTC)
    second = sync(config)
    assert (second.ok, second.pushed, second.requests, second.failed) == (True, 0, 0, 1)


def test_records_nested_near_and_past_the_parser_limit_fail_alone_pass_after_pass(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    good = _minute_apart(3)
    path = write_tickets(tmp_path / "tickets.jsonl", good)
    with path.open("a") as file:  # 900 levels still parse; 100,000 don't
        for number, depth in ((7, 900), (8, 100_000)):
            nested = "[" * depth + "]" * depth
            file.write(
                f'{{"id": {number}, "subject": "deep", "updated_at": "2026-11-02T10:00:00Z", '
                f'"priority": "low", "requester": {{"country": {nested}}}}}\n'
            )
    config = make_config(emulator, path, state_url)

    first = sync(config)
    assert (first.ok, first.failed) == (True, 2), first.error
    retried = sync(config)  # maps ticket 7 again from its stored record
    assert (retried.ok, retried.failed) == (True, 1), retried.error

    assert set(tasks_by_ticket(emulator)) == {"0", "1", "2"}
    with StateStore.open(state_url) as store:
        failed = {item.source_id: item for item in store.failed_items("helpdesk")}
    assert failed["7"].field == "country" and "nested deeper" in failed["7"].error
    assert "nested too deeply" in failed["line 5"].error


def test_a_blank_id_from_any_connector_is_a_bad_record_naming_the_id_field() -> None:
    """The built-in readers refuse blank ids; a plugin's ticket meets the same rule here.

    Pushed, every blank-id ticket would land on one task, each overwriting the last.
    """
    cursor = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
    chunk: list[SourceTicket | BadRecord] = [
        SourceTicket(source_id, cursor, {"id": source_id}) for source_id in ("1", "", "  ", "2")
    ]

    checked = with_usable_ids(chunk)

    assert [item.source_id for item in checked] == ["1", None, None, "2"]
    for bad in checked[1:3]:
        assert isinstance(bad, BadRecord)
        assert bad.field == "id" and "is empty" in bad.message
        assert bad.cursor == cursor  # the watermark may still pass it
    assert checked[2].locator == "ticket '  '"


def test_an_id_longer_than_the_state_keeps_is_recorded_as_failed_not_cut_short(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    # PostgreSQL cut such ids to 255 characters: they never matched their stored hash again,
    # so every pass pushed them anew, and two sharing a prefix overwrote each other's state.
    good = _minute_apart(3)
    long_ids = [
        {**_ticket(0, f"2026-11-02T10:0{n}:00Z"), "id": "k" * 300 + str(n)} for n in range(2)
    ]
    path = write_tickets(tmp_path / "tickets.jsonl", [*good, *long_ids])
    config = make_config(emulator, path, state_url)

    first = sync(config)

    assert first.ok, first.error
    assert (first.pushed, first.failed) == (3, 2)
    assert set(tasks_by_ticket(emulator)) == {"0", "1", "2"}
    with StateStore.open(state_url) as store:
        failed = store.failed_items("helpdesk")
        assert len(failed) == 2  # one each: a digest tells the shortened ids apart
        for item in failed:
            assert item.field == "id" and len(item.source_id) < 100
            assert "301 characters long" in item.error and "'helpdesk'" in item.error
        assert store.watermark("helpdesk") == dt.datetime(2026, 11, 2, 10, 1, tzinfo=dt.UTC)
    second = sync(config)
    assert (second.ok, second.pushed, second.requests) == (True, 0, 0)


def test_a_ticket_dated_far_ahead_does_not_hide_the_changes_after_it(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    # A source's placeholder date (9999-12-31) used to become the watermark: every later
    # pass started there, and no change made after it was ever read.
    tickets = _minute_apart(3)
    tickets.append(_ticket(9, "9999-12-31T23:59:59Z"))
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    config = make_config(emulator, path, state_url)

    with capture_logs() as logs:
        first = sync(config)

    assert first.ok and first.pushed == 4
    [warning] = [line for line in logs if line["event"] == "cursor_ahead_of_clock"]
    assert warning["cursor"].startswith("9999-12-31") and warning["log_level"] == "warning"
    with StateStore.open(state_url) as store:
        held = store.watermark("helpdesk")
        assert isinstance(held, dt.datetime) and held <= dt.datetime.now(dt.UTC)  # its start
    changed_since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # after that pass
    write_tickets(path, [*tickets, _ticket(4, changed_since)])

    second = sync(config)

    assert (second.ok, second.pushed) == (True, 1)
    assert set(tasks_by_ticket(emulator)) == {"0", "1", "2", "4", "9"}


def test_a_watermark_stored_far_ahead_is_healed_by_reading_everything_again(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    tickets = _minute_apart(3)
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    config = make_config(emulator, path, state_url)
    assert sync(config).pushed == 3
    # What an earlier version stored after meeting a ticket dated 9999-12-31:
    with StateStore.open(state_url) as store:
        store.commit_batch("helpdesk", watermark=dt.datetime(9999, 12, 31, tzinfo=dt.UTC))
    write_tickets(path, [*tickets, _ticket(4, "2026-11-03T09:00:00Z")])

    with capture_logs() as logs:
        healed = sync(config)

    assert (healed.ok, healed.pulled, healed.pushed) == (True, 4, 1)
    assert "watermark_ahead_of_clock" in [line["event"] for line in logs]
    with StateStore.open(state_url) as store:
        assert store.watermark("helpdesk") == dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC)


def test_deleted_ticket_archives_its_task(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    tickets = _minute_apart(3)
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    config = make_config(emulator, path, sqlite_url)
    sync(config)
    tickets[1] = {"id": 1, "updated_at": "2026-11-03T00:00:00Z", "deleted": True}
    write_tickets(path, tickets)

    summary = sync(config)

    assert summary.pushed == 1
    landed = tasks_by_ticket(emulator)
    assert landed["1"]["archived"] is True
    assert landed["1"]["fields"]["title"] == "[normal] Ticket 1"  # kept from before
    assert landed["0"]["archived"] is False


def test_dry_run_pushes_and_stores_nothing(
    emulator: Emulator, demo_file: Path, sqlite_url: str
) -> None:
    planned: list[TaskPayload] = []
    summary = sync(
        make_config(emulator, demo_file, sqlite_url),
        dry_run=True,
        planned=lambda name, payload: planned.append(payload),
    )
    assert summary.pushed == len(planned) > 0
    assert emulator.store.count() == 0
    assert emulator.requests == []
    store = StateStore.open(sqlite_url)
    assert store.watermark("helpdesk") is None and store.recent_runs() == []
    store.close()


def test_a_wrong_token_fails_the_run_with_a_clear_message(
    emulator: Emulator, demo_file: Path, sqlite_url: str
) -> None:
    summary = sync(make_config(emulator, demo_file, sqlite_url, fragment={"token": "wrong-one"}))
    assert not summary.ok
    assert "401" in (summary.error or "") and "fragment.token" in (summary.error or "")


def test_the_client_sends_bearer_auth_and_a_user_agent(emulator: Emulator) -> None:
    seen: list[httpx.Request] = []
    config_fragment = make_config(emulator, Path("unused"), "sqlite://").fragment
    with FragmentClient(config_fragment) as client:
        client.session.http.event_hooks["request"].append(seen.append)
        assert client.account()
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0].headers["User-Agent"].startswith("fragment-sync/")


_AGENT = "agent@support.example.com"
_ASSIGNING = {"title": "{subject}", "assignee_email": "assignee"}


def _assigned(tmp_path: Path, count: int, rejected: tuple[int, ...]) -> Path:
    """`_minute_apart(count)` assigned to `_AGENT`, but for `rejected`: their assignee is
    unknown to an emulator whose users are `[_AGENT]`, so it rejects them."""
    tickets = [{**ticket, "assignee": _AGENT} for ticket in _minute_apart(count)]
    for index in rejected:
        tickets[index]["assignee"] = "ghost@elsewhere.example"
    return write_tickets(tmp_path / "tickets.jsonl", tickets)


def _minute_apart(count: int) -> list[dict[str, Any]]:
    """Tickets 0 … count-1, updated a minute apart from 2026-11-02 09:00Z."""
    return [_ticket(i, f"2026-11-02T09:{i:02d}:00Z") for i in range(count)]


def _ticket(number: int, updated_at: str) -> dict[str, Any]:
    return {
        "id": number,
        "subject": f"Ticket {number}",
        "priority": "normal",
        "status": "open",
        "assignee": None,
        "requester": {"country": "FR"},
        "updated_at": updated_at,
        "deleted": False,
    }


def test_a_changed_mapping_rereads_everything_and_pushes_what_it_changed(
    emulator: Emulator, demo_file: Path, sqlite_url: str
) -> None:
    assert sync(make_config(emulator, demo_file, sqlite_url)).ok
    unchanged_config = sync(make_config(emulator, demo_file, sqlite_url))
    assert unchanged_config.pulled <= 1  # only the inclusive boundary is read again

    mapping = {**MAPPING, "fields": {**MAPPING["fields"], "summary": "description"}}
    changed = sync(make_config(emulator, demo_file, sqlite_url, mapping=mapping))

    live = live_ids(read_tickets(demo_file))
    assert changed.pulled == len(read_tickets(demo_file))
    assert changed.pushed == len(live)
    assert all(t["fields"]["summary"] for t in tasks_by_ticket(emulator).values())
    assert sync(make_config(emulator, demo_file, sqlite_url, mapping=mapping)).pulled <= 1


@pytest.mark.parametrize("max_in_flight", [1, 3])
def test_an_unsorted_file_keeps_the_latest_version_of_a_ticket_met_twice(
    emulator: Emulator, tmp_path: Path, sqlite_url: str, max_in_flight: int
) -> None:
    """Newest first in the file, far apart: the older copy, read later, must not win."""
    newer = {**_ticket(7, "2026-11-02T10:00:00Z"), "subject": "Second version"}
    older = {**_ticket(7, "2026-11-02T09:00:00Z"), "subject": "First version"}
    filler = [_ticket(100 + i, f"2026-11-02T09:{i % 60:02d}:00Z") for i in range(45)]
    # Ticket 8's two copies share a cursor: the later line wins, as in a sorted read.
    tie_first = {**_ticket(8, "2026-11-02T09:30:00Z"), "subject": "Tie, first line"}
    tie_last = {**_ticket(8, "2026-11-02T09:30:00Z"), "subject": "Tie, last line"}
    tickets = [newer, tie_first, *filler[:20], older, *filler[20:], tie_last]
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    config = make_config(
        emulator,
        path,
        sqlite_url,
        fragment={"batch_size": 5, "max_in_flight": max_in_flight},
    )

    first = sync(config)

    assert first.ok and first.pulled == len(tickets)
    tasks = tasks_by_ticket(emulator)
    assert tasks["7"]["fields"]["title"].endswith("Second version")
    assert tasks["8"]["fields"]["title"].endswith("Tie, last line")
    assert first.pushed == len(filler) + 3  # the older copy of 7 is never sent
    assert StateStore.open(sqlite_url).watermark(
        config.connectors["helpdesk"].uid_namespace
    ) == dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)

    again = sync(config)  # a second pass over the same file changes nothing

    assert again.ok and again.pushed == 0
    assert tasks_by_ticket(emulator)["7"]["fields"]["title"].endswith("Second version")


@pytest.mark.parametrize("batch_size", [1, 500])
def test_a_ticket_changed_and_changed_back_within_a_pass_ends_with_its_last_content(
    emulator: Emulator, tmp_path: Path, sqlite_url: str, batch_size: int
) -> None:
    """Synced as "First"; then edited and, a minute later, put back as it was.

    The last version's content is the stored one, but the edit is on its way
    to Fragment: the last version must go out too, or Fragment keeps the edit.
    """
    mapping = {k: v for k, v in MAPPING.items() if k != "external_updated_at"}
    original = {**_ticket(7, "2026-11-02T09:00:00Z"), "subject": "First"}
    path = write_tickets(tmp_path / "tickets.jsonl", [original])
    config = make_config(
        emulator, path, sqlite_url, mapping=mapping, fragment={"batch_size": batch_size}
    )
    assert sync(config).pushed == 1

    edited = {**_ticket(7, "2026-11-02T09:01:00Z"), "subject": "Edited"}
    put_back = {**_ticket(7, "2026-11-02T09:02:00Z"), "subject": "First"}
    write_tickets(path, [edited, put_back])
    second = sync(config)

    assert second.ok
    assert tasks_by_ticket(emulator)["7"]["fields"]["title"].endswith("First")
    assert sync(config).pushed == 0


def test_an_unchanged_file_is_not_read_again_until_it_changes_or_is_reset(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    tickets = _minute_apart(30)
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    config = make_config(emulator, path, sqlite_url)
    namespace = config.connectors["helpdesk"].uid_namespace
    assert sync(config).pushed == 30

    unchanged = sync(config)

    assert unchanged.ok and (unchanged.pulled, unchanged.pushed, unchanged.requests) == (0, 0, 0)

    tickets[4] = {**tickets[4], "subject": "Edited", "updated_at": "2026-11-02T10:00:00Z"}
    write_tickets(path, tickets)
    edited = sync(config)

    assert edited.pulled > 0 and edited.pushed == 1
    assert tasks_by_ticket(emulator)["4"]["fields"]["title"].endswith("Edited")
    assert sync(config).pulled == 0

    store = StateStore.open(sqlite_url)
    store.set_watermark(namespace, dt.datetime(2026, 11, 2, 9, 20, tzinfo=dt.UTC))  # `reset --to`
    store.close()
    replayed = sync(config)

    assert replayed.pulled > 0 and replayed.pushed == 0  # read again; the hashes say unchanged


def test_an_unchanged_file_keeps_the_token_that_spares_the_next_pass_its_hash(
    emulator: Emulator, tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_tickets(tmp_path / "tickets.jsonl", [_ticket(1, "2026-11-02T09:00:00Z")])
    config = make_config(emulator, path, sqlite_url)
    namespace = config.connectors["helpdesk"].uid_namespace
    assert sync(config).pushed == 1
    store = StateStore.open(sqlite_url)
    written = store.source_snapshot(namespace)
    assert written is not None and " stat:" not in written  # the file was seconds old

    monkeypatch.setattr(files, "_SETTLED_S", 0.0)
    unchanged = sync(config)

    refreshed = store.source_snapshot(namespace)
    store.close()
    assert unchanged.ok and unchanged.pulled == 0
    assert refreshed is not None and refreshed.startswith(f"{written} stat:")


class SendsTheBatchLate(FragmentClient):
    """A real client that holds back the batch carrying one given ticket before sending it.

    As a slow connection or a retried request would: later batches reach
    Fragment first unless the engine waits for it.
    """

    def __init__(self, *args: Any, held: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: str | None = held

    def push(self, items: Any, into: PushResult | None = None) -> PushResult:
        if any(item.source_id == self.held for item in items):
            self.held = None  # only its first batch
            time.sleep(0.3)
        return super().push(items, into)


def test_a_newer_version_is_not_sent_while_an_older_one_is_still_out(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    """Two versions of a ticket in flight at once could land in either order."""
    tickets = _minute_apart(10)
    tickets.append(
        {**tickets[2], "subject": "Second version", "updated_at": "2026-11-02T10:00:00Z"}
    )
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)  # an unsorted file: 2 twice
    config = make_config(emulator, path, sqlite_url, fragment={"batch_size": 5, "max_in_flight": 3})
    store = StateStore.open(sqlite_url)

    # Batches of 5: tickets 0-4 (the first 2, held back), 5-9, then the second 2.
    with SendsTheBatchLate(config.fragment, held="2") as client:
        summary = ConnectorRun(
            config.connectors["helpdesk"], store, client, 5, RunOptions()
        ).execute()
    store.close()

    assert summary.ok and summary.pushed == 11
    assert tasks_by_ticket(emulator)["2"]["fields"]["title"].endswith("Second version")


class FailsTheBatchWith(FragmentClient):
    """A real client whose batch holding one given ticket fails, slowly, as if Fragment died.

    The batches after it are answered first, so their checkpoints are ready
    before the failure is known: the order of checkpoints is what is tested.
    """

    def __init__(self, *args: Any, poisoned: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.poisoned = poisoned

    def push(self, items: Any, into: PushResult | None = None) -> PushResult:
        if any(item.source_id == self.poisoned for item in items):
            time.sleep(0.3)
            from sync.errors import FragmentUnavailable

            raise FragmentUnavailable("Fragment: still failing after 3 attempts (test)")
        return super().push(items, into)


def test_a_failed_batch_holds_the_watermark_though_later_batches_landed_first(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    tickets = _minute_apart(30)
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    config = make_config(
        emulator,
        path,
        sqlite_url,
        fragment={"batch_size": 5, "max_in_flight": 4},
        connector={"sorted": True},
    )
    namespace = config.connectors["helpdesk"].uid_namespace
    store = StateStore.open(sqlite_url)

    # Batches of 5: tickets 0-4, 5-9 (holding the poisoned 7), 10-14, ...
    with FailsTheBatchWith(config.fragment, poisoned="7") as client:
        failed = ConnectorRun(
            config.connectors["helpdesk"], store, client, 5, RunOptions()
        ).execute()

    assert failed.outcome == "failed" and "still failing" in (failed.error or "")
    # The checkpoint stops before the failed batch: the first batch's last ticket.
    assert store.watermark(namespace) == dt.datetime(2026, 11, 2, 9, 4, tzinfo=dt.UTC)
    landed = set(tasks_by_ticket(emulator))
    assert {str(i) for i in range(5)} <= landed
    assert not {str(i) for i in range(5, 10)} & landed
    later_landed = landed - {str(i) for i in range(5)}
    assert later_landed, "no later batch was out when the failure came: the test proves nothing"
    # What landed after the failure is recorded, so the next pass doesn't send it again.
    assert set(store.stored_tasks(namespace, later_landed)) == later_landed
    store.close()

    resumed = sync(config)

    assert resumed.ok
    assert resumed.pushed == 30 - len(landed)
    assert set(tasks_by_ticket(emulator)) == {str(t["id"]) for t in tickets}
    assert pushed_items(emulator) == len(tickets)  # nothing sent twice


def test_a_source_whose_cursors_changed_kind_fails_the_pass_and_says_to_reset(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    """A datetime watermark, then integer versions: nothing moves, and the error says to reset."""
    tickets = write_tickets(
        tmp_path / "tickets.jsonl",
        [{"id": n, "subject": f"Ticket {n}", "version": 100 + n} for n in range(1, 4)],
    )
    config = make_config(
        emulator, tickets, state_url, connector={"cursor_field": "version", "cursor_kind": "int"}
    )
    watermark = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    store = StateStore.open(state_url)
    store.set_watermark("helpdesk", watermark)
    store.close()

    summary = sync(config, full=True)  # a full pass reads from the start, past the kind check

    assert not summary.ok
    assert summary.error is not None and "python -m sync reset helpdesk" in summary.error
    assert "cursor kinds differ" in summary.error
    store = StateStore.open(state_url)
    assert store.watermark("helpdesk") == watermark
    store.close()
