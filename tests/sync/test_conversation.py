"""The conversation's summary fields: comment_count, last_comment_at, last_comment_author,
last_comment, from the comments a connector read, into the task, through the whole pass."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.base import SourceComment, SourceTicket
from fragment_emulator import Emulator
from sync.config import ConnectorSettings, build_config
from sync.errors import ConfigError
from sync.mapping import CommentSummary, Mapper, excerpt
from sync.run import RunOptions, RunSummary, run_once
from sync.state import StateStore
from synckit import TOKEN, make_config, pushed_items, tasks_by_ticket, write_tickets

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def note(number: int, body: str = "", *, public: bool = True, **more: Any) -> SourceComment:
    return SourceComment(
        comment_id=str(number),
        created_at=T0 + dt.timedelta(minutes=number),
        body=body or f"note {number}",
        author=more.pop("author", f"agent {number}"),
        public=public,
        **more,
    )


# The excerpt


def test_excerpt_collapses_whitespace_and_keeps_short_text_whole() -> None:
    assert excerpt("  Printer\n\n on\tfire  ", 280) == "Printer on fire"


def test_excerpt_cuts_at_a_word_end_within_the_limit_and_marks_the_cut() -> None:
    text = "The printer on the third floor is on fire again"

    cut = excerpt(text, 20)

    assert cut == "The printer on the…"
    assert len(cut) <= 20


def test_excerpt_cuts_one_long_word_where_it_must() -> None:
    assert excerpt("x" * 50, 10) == "x" * 9 + "…"


def test_excerpt_never_parts_a_letter_from_its_combining_mark() -> None:
    text = "e" * 8 + "e\u0301" + "tail"  # é as e + combining acute, straddling the cut

    assert excerpt(text, 10) == "e" * 8 + "…"


# The summary


def test_summary_counts_public_comments_and_shows_the_latest() -> None:
    comments = [note(1), note(3, "  Latest\n public  reply "), note(5, public=False)]

    fields = CommentSummary().fields(comments)

    assert fields == {
        "comment_count": 2,
        "last_comment_at": "2026-11-02T09:03:00Z",
        "last_comment_author": "agent 3",
        "last_comment": "Latest public reply",
    }


def test_summary_counts_private_comments_when_asked() -> None:
    fields = CommentSummary(private=True).fields([note(1), note(5, "internal", public=False)])

    assert fields["comment_count"] == 2
    assert fields["last_comment"] == "internal"


def test_summary_of_no_comment_is_a_zero_count_and_nulls_that_clear_fragment() -> None:
    assert CommentSummary().fields([note(1, public=False)]) == {
        "comment_count": 0,
        "last_comment_at": None,
        "last_comment_author": None,
        "last_comment": None,
    }


def test_summary_without_an_excerpt_leaves_last_comment_out() -> None:
    assert "last_comment" not in CommentSummary(excerpt=0).fields([note(1)])


def test_summary_names_the_author_by_id_when_the_source_gives_no_name() -> None:
    comment = note(1, author=None, author_id="42")

    assert CommentSummary().fields([comment])["last_comment_author"] == "42"


# The mapper


SUMMARY = CommentSummary()


def mapper(comments: CommentSummary | None = SUMMARY, **mapping: Any) -> Mapper:
    settings = ConnectorSettings.model_validate(
        {"kind": "jsonl", "mapping": {"title": "{subject}", **mapping}}
    )
    return Mapper("helpdesk", "helpdesk", settings.mapping, comments=comments)


def ticket(comments: list[SourceComment] | None) -> SourceTicket:
    return SourceTicket("7", T0, {"id": 7, "subject": "Printer"}, comments=comments)


def test_mapper_puts_the_summary_in_the_tasks_fields() -> None:
    task = mapper().map(ticket([note(1), note(2)])).task()

    assert task["fields"]["comment_count"] == 2
    assert task["fields"]["last_comment_at"] == "2026-11-02T09:02:00Z"


def test_a_new_comment_changes_the_tasks_hash() -> None:
    before = mapper().map(ticket([note(1)]))
    after = mapper().map(ticket([note(1), note(2)]))

    assert before.content_hash != after.content_hash


def test_a_ticket_whose_comments_were_not_read_gets_no_summary() -> None:
    fields = mapper().map(ticket(None)).task()["fields"]

    assert not {"comment_count", "last_comment"} & set(fields)


def test_a_connector_reading_no_comments_maps_no_summary() -> None:
    fields = mapper(comments=None).map(ticket([note(1)])).task()["fields"]

    assert "comment_count" not in fields


def test_a_mapped_field_of_the_same_name_wins_over_the_summary() -> None:
    mapped = mapper(fields={"comment_count": "id"})

    fields = mapped.map(ticket([note(1), note(2)])).task()["fields"]

    assert fields["comment_count"] == 7
    assert fields["last_comment_author"] == "agent 2"


# Configuration


def config_of(connector: dict[str, Any]) -> Any:
    raw = {"connectors": {"desk": {"kind": "jsonl", "path": "/tmp/t.jsonl", **connector}}}
    return build_config(raw, source="test").connectors["desk"]


def test_enabling_the_conversation_where_no_comments_can_be_read_names_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        config_of({"conversation": {"enabled": True}})

    assert caught.value.key == "connectors.desk.conversation.enabled"
    assert "can't read comments" in str(caught.value)


def test_comments_are_read_by_default_where_the_records_carry_them() -> None:
    assert not config_of({}).reads_comments
    assert config_of({"comments_field": "comments"}).reads_comments
    off = {"comments_field": "comments", "conversation": {"enabled": False}}
    assert not config_of(off).reads_comments


def test_the_fingerprint_of_a_config_leaving_the_conversation_alone_is_unchanged() -> None:
    plain = config_of({})
    # The fingerprint as it was computed before the conversation existed.
    decisive = {
        "kind": "jsonl",
        "options": plain.options.model_dump(mode="json"),
        "mapping": plain.settings.mapping.model_dump(mode="json"),
    }
    before = hashlib.blake2b(
        json.dumps(decisive, sort_keys=True, default=str).encode(), digest_size=16
    ).hexdigest()

    assert plain.fingerprint() == before
    assert config_of({"conversation": {"excerpt": 80}}).fingerprint() == before


def test_comment_sync_on_a_connector_that_reads_no_comments_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        config_of({"conversation": {"sync": True}})

    assert caught.value.key == "connectors.desk.conversation.sync"
    assert "comments_field" in str(caught.value)


def test_the_fingerprint_follows_what_changes_the_tasks() -> None:
    reading = {"comments_field": "comments"}
    default = config_of(reading).fingerprint()

    assert config_of({**reading, "conversation": {"enabled": True}}).fingerprint() == default
    assert config_of({**reading, "conversation": {"sync": True}}).fingerprint() == default
    for changed in ({"enabled": False}, {"excerpt": 80}, {"private": True}):
        assert config_of({**reading, "conversation": changed}).fingerprint() != default


# Through a pass: a jsonl file with its comments, the emulator, the state


def sync(config: Any, **options: Any) -> RunSummary:
    store = StateStore.open(config.state.url)
    try:
        [summary] = run_once(config, store, options=RunOptions(**options))
    finally:
        store.close()
    return summary


def record(number: int, updated: str, comments: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": number, "subject": f"Ticket {number}", "updated_at": updated, "notes": comments}


def raw_note(number: int, body: str, **more: Any) -> dict[str, Any]:
    created = f"2026-11-02T08:{number:02d}:00Z"
    return {"id": number, "created_at": created, "body": body, "author": "Ana", **more}


def conversing(emulator: Emulator, path: Path, state_url: str, **connector: Any) -> Any:
    return make_config(
        emulator,
        path,
        state_url,
        mapping={"title": "{subject}"},
        connector={"comments_field": "notes", **connector},
    )


def test_a_comment_only_change_updates_the_task_and_an_identical_pass_pushes_nothing(
    tmp_path: Path, emulator: Emulator, sqlite_url: str
) -> None:
    path = tmp_path / "tickets.jsonl"
    first_notes = [raw_note(1, "Is it plugged in?"), raw_note(2, "internal", public=False)]
    write_tickets(
        path,
        [record(1, "2026-11-02T09:00:00Z", first_notes), record(2, "2026-11-02T09:01:00Z", [])],
    )
    config = conversing(emulator, path, sqlite_url)

    assert sync(config).pushed == 2
    task = tasks_by_ticket(emulator)["1"]["fields"]
    assert (task["comment_count"], task["last_comment"]) == (1, "Is it plugged in?")
    assert tasks_by_ticket(emulator)["2"]["fields"]["comment_count"] == 0

    write_tickets(
        path,
        [
            record(1, "2026-11-02T09:05:00Z", [*first_notes, raw_note(9, "Yes.  It is.")]),
            record(2, "2026-11-02T09:01:00Z", []),
        ],
    )
    again = sync(config)

    assert (again.pushed, again.unchanged) == (1, 1)
    task = tasks_by_ticket(emulator)["1"]["fields"]
    assert task["comment_count"] == 2
    assert task["last_comment_at"] == "2026-11-02T08:09:00Z"
    assert (task["last_comment_author"], task["last_comment"]) == ("Ana", "Yes. It is.")

    items = pushed_items(emulator)
    assert sync(config, full=True).pushed == 0
    assert pushed_items(emulator) == items


def test_a_comment_that_cant_be_read_fails_its_ticket_only_naming_the_field(
    tmp_path: Path, emulator: Emulator, sqlite_url: str
) -> None:
    broken = {"id": 3, "body": "no date", "author": "Ana"}
    path = write_tickets(
        tmp_path / "tickets.jsonl",
        [
            record(1, "2026-11-02T09:00:00Z", [raw_note(1, "fine")]),
            record(2, "2026-11-02T09:01:00Z", [raw_note(2, "fine"), broken]),
        ],
    )

    summary = sync(conversing(emulator, path, sqlite_url))

    assert summary.ok and (summary.pushed, summary.failed) == (1, 1)
    store = StateStore.open(sqlite_url)
    [item] = store.failed_items("helpdesk")
    store.close()
    assert (item.source_id, item.field) == ("2", "notes.1.created_at")
    assert "connector 'helpdesk'" in item.error and "ticket 2" in item.error
    assert "is missing" in item.error


def test_a_failed_item_retried_keeps_the_comments_it_was_read_with(
    tmp_path: Path, sqlite_url: str
) -> None:
    ticket_ = {**record(1, "2026-11-02T09:00:00Z", [raw_note(1, "Hello")]), "to": "ghost@x.example"}
    path = write_tickets(tmp_path / "tickets.jsonl", [ticket_])
    mapping = {"title": "{subject}", "assignee_email": "to"}
    connector = {"comments_field": "notes"}
    with Emulator(tokens=[TOKEN], users=["agent@x.example"]) as refusing:
        config = make_config(refusing, path, sqlite_url, mapping=mapping, connector=connector)
        assert sync(config).failed == 1
    with Emulator(tokens=[TOKEN], users=["ghost@x.example"]) as accepting:
        config = make_config(accepting, path, sqlite_url, mapping=mapping, connector=connector)

        retried = sync(config, retry_only=True)

        assert (retried.pushed, retried.failed) == (1, 0)
        fields = tasks_by_ticket(accepting)["1"]["fields"]
        assert (fields["comment_count"], fields["last_comment"]) == (1, "Hello")


def test_a_failed_items_record_is_told_apart_from_a_record_with_comments() -> None:
    from sync.state import ticket_json, ticket_parts

    lookalike = {"$record": {"id": 1}, "subject": "a source's own odd keys"}
    assert ticket_parts(json.loads(ticket_json(lookalike, None) or "")) == (lookalike, None)

    record, comments = ticket_parts(json.loads(ticket_json({"id": 1}, [note(1)]) or ""))

    assert record == {"id": 1}
    assert comments == [note(1)]
