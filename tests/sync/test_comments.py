"""Comment sync end to end: ticket files with comments -> a pass -> comments on Fragment tasks.

Each test asserts on what a user would see: the comments on the tasks in the
emulator, the rows of the state store, the pass's summary and log lines.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from fragment_emulator import Emulator
from sync.comments import marker, posted_here
from sync.config import Config
from sync.mapping import task_uid
from sync.run import RunOptions, RunSummary, run_once
from sync.shell.metrics import Metrics
from sync.shell.status import collect, render_table
from sync.state import StateStore
from sync.state.comments import CommentLedger
from sync.state.schema import comments as comments_table
from synckit import TOKEN, make_config, write_tickets

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
LONG_AGO = "2020-01-01T09:00:00Z"


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ticket(
    number: int, comments: list[dict[str, Any]], updated: str | None = None
) -> dict[str, Any]:
    return {
        "id": number,
        "subject": f"Ticket {number}",
        "status": "open",
        "priority": "normal",
        "requester": {"country": "FR"},
        "updated_at": updated or stamp(NOW),
        "comments": comments,
    }


def comment(cid: int, body: str, *, at: str | None = None, **extra: Any) -> dict[str, Any]:
    # By default made after any pass of the test began (comment sync's start point).
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1, seconds=cid)
    return {"id": cid, "created_at": at or stamp(later), "body": body,
            "author": "Ada Lovelace", "author_id": 7, **extra}  # fmt: skip


def config_for(
    emulator: Emulator, path: Path, state_url: str, *, backfill: bool = False, **connector: Any
) -> Config:
    conversation = {"sync": True, "backfill": backfill}
    return make_config(
        emulator,
        path,
        state_url,
        connector={"comments_field": "comments", "conversation": conversation, **connector},
    )


def sync(config: Config) -> RunSummary:
    store = StateStore.open(config.state.url)
    try:
        [summary] = run_once(config, store, options=RunOptions())
    finally:
        store.close()
    assert summary.ok, summary.error
    return summary


def on_task(emulator: Emulator, number: int) -> list[str]:
    return [c["content"] for c in emulator.store.comments(task_uid("helpdesk", str(number)))]


def test_each_public_comment_lands_once_on_its_task_with_author_time_and_marker(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    path = tmp_path / "tickets.jsonl"
    write_tickets(path, [ticket(1, [])])
    config = config_for(emulator, path, state_url)
    sync(config)  # comment sync begins: NOW-ish
    write_tickets(path, [
        ticket(1, [comment(11, "First reply"), comment(12, "internal", public=False),
                   comment(13, "Second reply")], updated=stamp(NOW + dt.timedelta(minutes=1))),
        ticket(2, [comment(21, "Hello")], updated=stamp(NOW + dt.timedelta(minutes=1))),
    ])  # fmt: skip

    summary = sync(config)
    again = sync(config)

    assert summary.comments_posted == 3
    assert again.comments_posted == 0
    first = on_task(emulator, 1)
    assert len(first) == 2
    assert first[0].startswith("Ada Lovelace, ")
    assert first[0].split("\n")[0].endswith(marker("helpdesk", "11"))
    assert first[0].endswith("First reply")
    assert first[1].endswith("Second reply")
    assert not any("internal" in text for text in first)
    assert [text.endswith("Hello") for text in on_task(emulator, 2)] == [True]
    store = StateStore.open(state_url)
    try:
        counts = CommentLedger(store).counts("helpdesk")
    finally:
        store.close()
    assert (counts.pending, counts.posted, counts.failed) == (0, 3, 0)


def test_comments_made_before_comment_sync_began_are_left_out_unless_backfill(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    path = write_tickets(
        tmp_path / "tickets.jsonl",
        [ticket(1, [comment(11, "old one", at=LONG_AGO), comment(12, "new one")])],
    )

    sync(config_for(emulator, path, state_url))

    assert [text.endswith("new one") for text in on_task(emulator, 1)] == [True]

    backfilled = sync(config_for(emulator, path, state_url, backfill=True))
    later = sync(config_for(emulator, path, state_url, backfill=True))

    assert backfilled.comments_posted == 1
    assert later.comments_posted == 0 and later.pulled == 0
    assert sorted(text.rsplit("\n", 1)[-1] for text in on_task(emulator, 1)) == [
        "new one",
        "old one",
    ]


def test_a_comment_fragment_refuses_is_a_failed_item_naming_it_and_the_rest_go_on(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    path = write_tickets(tmp_path / "tickets.jsonl", [ticket(1, []), ticket(2, [])])
    # The summary fields off: with them, a new comment changes the task, which goes out again.
    conversation = {"sync": True, "enabled": False}
    config = config_for(emulator, path, state_url, conversation=conversation)
    sync(config)
    # Someone deletes task 1 in Fragment; the tickets gain comments, nothing the tasks show
    # changes (same cursor, re-read at the watermark), so task 1 is not pushed again.
    with emulator.store.writing() as writer:
        writer.delete(task_uid("helpdesk", "1"))
    write_tickets(path, [ticket(1, [comment(11, "to a task gone")]),
                         ticket(2, [comment(21, "fine")])])  # fmt: skip

    with capture_logs() as logs:
        summary = sync(config)
    store = StateStore.open(state_url)
    try:
        ledger = CommentLedger(store)
        failed = ledger.failures("helpdesk")
        counts = ledger.counts("helpdesk")
    finally:
        store.close()

    assert summary.pushed == 0
    assert (summary.comments_failed, summary.comments_posted) == (1, 1)
    assert [(source_id, comment_id) for source_id, comment_id, _ in failed] == [("1", "11")]
    message = failed[0][2]
    assert "connector 'helpdesk', ticket '1', comment '11'" in message
    assert "404" in message and "Task not found" in message
    assert any(e["event"] == "comment_failed" and e["comment_id"] == "11" for e in logs)
    assert (counts.pending, counts.posted, counts.failed) == (0, 1, 1)
    assert [text.endswith("fine") for text in on_task(emulator, 2)] == [True]


def test_an_in_flight_comment_whose_answer_was_lost_is_found_and_not_posted_again(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    path = write_tickets(tmp_path / "tickets.jsonl", [ticket(1, [comment(11, "once")])])
    config = config_for(emulator, path, state_url, backfill=True)
    store = StateStore.open(state_url)
    try:
        # Tasks go through; then every answer is lost: the comment lands, its answer doesn't.
        emulator.faults.lost_response_rate = 0.0
        original = emulator.api.handle

        def lose_comment_answers(request: Any) -> Any:
            reply = original(request)
            if request.path.endswith("/comments") and request.method == "POST":
                emulator.faults.lost_response_rate = 1.0
            return reply

        emulator.api.handle = lose_comment_answers  # type: ignore[method-assign]
        [first] = run_once(config, store, options=RunOptions())
        emulator.api.handle = original  # type: ignore[method-assign]
        emulator.faults.lost_response_rate = 0.0
        with store.engine.connect() as conn:
            state = conn.execute(sa.select(comments_table.c.state)).scalar_one()
        [second] = run_once(config, store, options=RunOptions())
    finally:
        store.close()

    assert first.comments_posted == 0
    assert state == "sending"
    assert second.comments_posted == 1
    texts = on_task(emulator, 1)
    assert len(texts) == 1 and posted_here("helpdesk", "11", texts)
    posts = [r for r in emulator.requests if r["method"] == "POST" and "comments" in r["path"]]
    assert len(posts) == 1


def test_comments_left_pending_go_out_in_a_later_pass_without_reading_the_source(
    emulator: Emulator, tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_tickets(
        tmp_path / "tickets.jsonl", [ticket(1, [comment(i, f"c{i}") for i in range(1, 6)])]
    )
    config = config_for(emulator, path, state_url, backfill=True)
    monkeypatch.setattr("sync.run.COMMENT_SHARE", 0.0)  # no time for comments this pass
    first = sync(config)
    monkeypatch.setattr("sync.run.COMMENT_SHARE", 0.5)
    second = sync(config)

    assert first.comments_posted == 0
    assert second.pulled == 0  # the source was not read again
    assert second.comments_posted == 5
    assert [text.rsplit("\n", 1)[-1] for text in on_task(emulator, 1)] == [
        f"c{i}" for i in range(1, 6)
    ]


def test_status_and_metrics_show_comments_posted_pending_and_failed(
    emulator: Emulator, tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_tickets(
        tmp_path / "tickets.jsonl", [ticket(1, [comment(11, "a"), comment(12, "b")])]
    )
    config = config_for(emulator, path, sqlite_url, backfill=True)
    store = StateStore.open(sqlite_url)
    metrics = Metrics(config, store)
    metrics.install()
    try:
        monkeypatch.setattr("sync.run.COMMENT_SHARE", 0.0)
        run_once(config, store, options=RunOptions())
        pending_row = collect(config, store)[0]
        monkeypatch.setattr("sync.run.COMMENT_SHARE", 0.5)
        run_once(config, store, options=RunOptions())
        rows = collect(config, store)
        exposition = metrics.exposition().decode()
    finally:
        metrics.uninstall()
        store.close()

    assert pending_row["comments"] == {"pending": 2, "posted": 0, "failed": 0}
    assert rows[0]["comments"] == {"pending": 0, "posted": 2, "failed": 0}
    assert "2 posted, 0 pending, 0 failed" in render_table(rows)
    assert 'fragment_sync_comments_posted_total{connector="helpdesk"} 2.0' in exposition
    assert 'fragment_sync_comments_failed_total{connector="helpdesk"} 0.0' in exposition
    assert 'fragment_sync_comments_pending{connector="helpdesk"} 0.0' in exposition


def test_the_marker_is_read_on_a_comments_first_line_only() -> None:
    from connectors.base import SourceComment
    from sync.comments import render

    made = dt.datetime(2026, 11, 2, 9, 15, tzinfo=dt.UTC)
    text = render("helpdesk", SourceComment("42", made, "Quoting: [helpdesk comment 7]"))
    unnamed = render("helpdesk", SourceComment("8", made, "x", author_id="12"))

    assert text.startswith("someone, 2026-11-02 09:15 UTC [helpdesk comment 42]\n\n")
    assert unnamed.startswith("user 12, ")
    assert posted_here("helpdesk", "42", [text])
    assert not posted_here("helpdesk", "7", [text])  # quoted in the text, not its marker
    assert not posted_here("other", "42", [text])


def test_a_comment_without_a_readable_time_fails_its_ticket_naming_the_field(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    path = write_tickets(
        tmp_path / "tickets.jsonl",
        [ticket(1, [comment(11, "fine")]), ticket(2, [comment(21, "bad", at="yesterday")])],
    )
    config = config_for(emulator, path, sqlite_url, backfill=True)

    summary = sync(config)
    store = StateStore.open(sqlite_url)
    try:
        [failed] = store.failed_items("helpdesk")
    finally:
        store.close()

    assert summary.comments_posted == 1
    assert (failed.source_id, failed.field) == ("2", "comments.0.created_at")
    assert "line 2" in failed.error


def test_failures_list_names_a_refused_comment(
    emulator: Emulator, tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from sync.shell.cli import main

    path = write_tickets(tmp_path / "tickets.jsonl", [ticket(1, [])])
    config = tmp_path / "sync.toml"
    config.write_text(
        f'[fragment]\nurl = "{emulator.base_url}"\ntoken = "{TOKEN}"\n\n'
        f'[state]\nurl = "{sqlite_url}"\n\n'
        f'[connectors.helpdesk]\nkind = "jsonl"\npath = "{path}"\ncomments_field = "comments"\n\n'
        "[connectors.helpdesk.mapping]\ntitle = '{subject}'\n\n"
        # The summary fields off, or the new comment would push task 1 again.
        "[connectors.helpdesk.conversation]\nsync = true\nenabled = false\n"
    )
    assert main(["run", "--once", "--config", str(config)]) == 0
    with emulator.store.writing() as writer:
        writer.delete(task_uid("helpdesk", "1"))
    write_tickets(path, [ticket(1, [comment(11, "to a task gone")])])
    assert main(["run", "--once", "--config", str(config)]) == 0
    capsys.readouterr()

    assert main(["failures", "list", "--config", str(config)]) == 0

    out = capsys.readouterr().out
    assert "helpdesk 1 [comment 11]: connector 'helpdesk', ticket '1', comment '11'" in out
    assert "1 failed comments" in out
