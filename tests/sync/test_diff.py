"""The diff: which versions of a chunk go to Fragment, which are unchanged, which superseded.

Pure, so its guarantees are checked over any order of versions an unordered
source may give, as the watermark's are.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from connectors.base import SourceTicket
from sync.diff import Decision, Queued, Verdict, diff
from sync.errors import MappingError
from sync.watermark import encode, newer

PASS_STARTED = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
EARLIER_PASS = PASS_STARTED - dt.timedelta(hours=1)


@dataclass(frozen=True)
class Payload:
    source_id: str
    content_hash: str


@dataclass(frozen=True)
class Stored:
    content_hash: str
    cursor: str
    pushed_at: dt.datetime | None


def map_ticket(ticket: SourceTicket) -> Payload:
    """The record's content is its hash; a record marked `bad` won't map."""
    if ticket.record.get("bad"):
        raise MappingError("helpdesk", ticket.source_id, "title", "is empty")
    return Payload(ticket.source_id, str(ticket.record["content"]))


IDS = st.sampled_from(["1", "2", "3"])
CONTENT = st.sampled_from(["A", "B", "C"])
versions = st.lists(
    st.builds(
        lambda source_id, cursor, content, deleted, bad: SourceTicket(
            source_id, cursor, {"content": content, "bad": bad}, deleted
        ),
        IDS,
        st.integers(0, 6),
        CONTENT,
        st.booleans(),
        st.booleans(),
    ),
    max_size=12,
)
stored_tasks = st.dictionaries(
    IDS,
    st.builds(
        lambda content, cursor, this_pass: Stored(
            content, encode(cursor), PASS_STARTED if this_pass else EARLIER_PASS
        ),
        CONTENT,
        st.integers(0, 6),
        st.booleans(),
    ),
)
queued_versions = st.dictionaries(IDS, st.builds(Queued, st.integers(0, 6), CONTENT))
sent_unrecorded = st.sets(IDS)


def run(
    tickets: list[SourceTicket],
    stored: dict[str, Stored],
    queued: dict[str, Queued],
    sent: set[str],
) -> list[Decision[SourceTicket, Payload]]:
    return diff(
        tickets,
        stored,
        map_ticket,
        queued=queued,
        pass_started=PASS_STARTED,
        sent_unrecorded=sent,
    )


def newest_versions(tickets: list[SourceTicket]) -> dict[str, SourceTicket]:
    """Each ticket's newest version: the highest cursor, the last given among equals."""
    newest: dict[str, SourceTicket] = {}
    for ticket in tickets:
        known = newest.get(ticket.source_id)
        if known is None or ticket.cursor >= known.cursor:  # type: ignore[operator]
            newest[ticket.source_id] = ticket
    return newest


def landed(
    decisions: list[Decision[SourceTicket, Payload]],
    stored: dict[str, Stored],
    queued: dict[str, Queued],
) -> dict[str, Stored]:
    """The state once every push (those queued before, then the diff's) has landed."""
    after = dict(stored)
    for source_id, version in queued.items():
        known = stored.get(source_id)
        recorded = known is not None and known.pushed_at == PASS_STARTED
        if recorded and newer(int(known.cursor), version.cursor):  # type: ignore[union-attr]
            continue  # can't be: a version goes out only once every older one landed
        after[source_id] = Stored(version.content_hash, encode(version.cursor), PASS_STARTED)
    for decision in decisions:
        if decision.verdict is Verdict.PUSH:
            assert decision.payload is not None
            ticket = decision.ticket
            after[ticket.source_id] = Stored(
                decision.payload.content_hash, encode(ticket.cursor), PASS_STARTED
            )
    return after


@given(versions, stored_tasks, queued_versions, sent_unrecorded)
def test_each_version_gets_exactly_one_verdict_in_stream_order(
    tickets: list[SourceTicket],
    stored: dict[str, Stored],
    queued: dict[str, Queued],
    sent: set[str],
) -> None:
    decisions = run(tickets, stored, queued, sent)

    assert [d.ticket for d in decisions] == tickets
    by_verdict = defaultdict(list)
    for decision in decisions:
        by_verdict[decision.verdict].append(decision.ticket)
        assert (decision.payload is not None) == (decision.verdict is Verdict.PUSH)
        assert (decision.error is not None) == (decision.verdict is Verdict.UNMAPPABLE)
    assert sum(map(len, by_verdict.values())) == len(tickets)


@given(versions, stored_tasks, queued_versions, sent_unrecorded)
def test_an_older_version_never_goes_out_after_a_newer_one(
    tickets: list[SourceTicket],
    stored: dict[str, Stored],
    queued: dict[str, Queued],
    sent: set[str],
) -> None:
    decisions = run(tickets, stored, queued, sent)

    out: dict[str, int] = {k: int(v.cursor) for k, v in queued.items()}
    for decision in decisions:
        if decision.verdict is Verdict.PUSH:
            ticket = decision.ticket
            assert isinstance(ticket.cursor, int)
            assert ticket.cursor >= out.get(ticket.source_id, ticket.cursor)
            out[ticket.source_id] = ticket.cursor


@given(versions, stored_tasks, queued_versions, sent_unrecorded)
def test_fragment_ends_with_the_newest_version_of_each_ticket(
    tickets: list[SourceTicket],
    stored: dict[str, Stored],
    queued: dict[str, Queued],
    sent: set[str],
) -> None:
    """Whatever order the versions come in, the newest one's content is what lands.

    For each ticket whose newest version this pass may push (nothing newer was
    queued or recorded in the pass, it maps, and it is not a deletion of a
    task that never reached Fragment).
    """
    decisions = run(tickets, stored, queued, sent)
    after = landed(decisions, stored, queued)

    for source_id, newest in newest_versions(tickets).items():
        known = stored.get(source_id)
        on_its_way = queued.get(source_id)
        if on_its_way is not None and newer(on_its_way.cursor, newest.cursor):
            continue
        recorded = known is not None and known.pushed_at == PASS_STARTED
        if recorded and newer(int(known.cursor), newest.cursor):  # type: ignore[union-attr]
            continue
        if newest.record["bad"]:
            continue
        if newest.deleted and known is None and source_id not in sent:
            continue
        assert after[source_id].content_hash == newest.record["content"]


@given(versions, stored_tasks, queued_versions, sent_unrecorded)
def test_unchanged_and_superseded_verdicts_say_why(
    tickets: list[SourceTicket],
    stored: dict[str, Stored],
    queued: dict[str, Queued],
    sent: set[str],
) -> None:
    decisions = run(tickets, stored, queued, sent)

    seen: dict[str, list[int]] = defaultdict(list)
    for source_id, version in queued.items():
        seen[source_id].append(int(version.cursor))
    for decision in decisions:
        ticket = decision.ticket
        assert isinstance(ticket.cursor, int)
        known = stored.get(ticket.source_id)
        if decision.verdict is Verdict.UNCHANGED:
            assert known is not None and known.content_hash == ticket.record["content"]
        if decision.verdict is Verdict.SUPERSEDED:
            recorded = known is not None and known.pushed_at == PASS_STARTED
            newer_seen = any(c > ticket.cursor for c in seen[ticket.source_id])
            assert newer_seen or (recorded and int(known.cursor) > ticket.cursor)  # type: ignore[union-attr]
        if decision.verdict is Verdict.NEVER_SENT:
            assert ticket.deleted and known is None and ticket.source_id not in sent
        if decision.verdict in (Verdict.PUSH, Verdict.UNCHANGED):
            seen[ticket.source_id].append(ticket.cursor)


@given(
    st.lists(st.tuples(IDS, st.integers(0, 6)), unique=True, max_size=12).flatmap(
        lambda keys: st.tuples(
            st.just(keys), st.lists(CONTENT, min_size=len(keys), max_size=len(keys))
        )
    ),
    stored_tasks,
    queued_versions,
    sent_unrecorded,
)
def test_diffing_again_once_the_pushes_landed_pushes_nothing(
    keyed: tuple[list[tuple[str, int]], list[str]],
    stored: dict[str, Stored],
    queued: dict[str, Queued],
    sent: set[str],
) -> None:
    """Idempotent: the same versions again, after what went out landed, are all unchanged.

    (Versions of a ticket have distinct cursors here: two contents under one
    cursor are the source contradicting itself, and the later one given wins.)
    """
    keys, contents = keyed
    tickets = [
        SourceTicket(source_id, cursor, {"content": content, "bad": False})
        for (source_id, cursor), content in zip(keys, contents, strict=True)
    ]
    first = run(tickets, stored, queued, sent)

    again = run(tickets, landed(first, stored, queued), {}, sent)

    assert [d.ticket for d in again if d.verdict is Verdict.PUSH] == []


def test_a_ticket_changed_and_changed_back_in_one_pass_goes_out_again() -> None:
    """Stored A; the source gives B, then A again (newer): Fragment must end with A."""
    stored = {"1": Stored("A", encode(1), EARLIER_PASS)}
    tickets = [
        SourceTicket("1", 2, {"content": "B", "bad": False}),
        SourceTicket("1", 3, {"content": "A", "bad": False}),
    ]

    decisions = run(tickets, stored, {}, set())

    assert [d.verdict for d in decisions] == [Verdict.PUSH, Verdict.PUSH]


def test_an_older_version_after_an_unchanged_newer_one_is_superseded() -> None:
    """Stored A at cursor 3; an unordered source gives 3 (A), then an older 2 (B)."""
    stored = {"1": Stored("A", encode(3), EARLIER_PASS)}
    tickets = [
        SourceTicket("1", 3, {"content": "A", "bad": False}),
        SourceTicket("1", 2, {"content": "B", "bad": False}),
    ]

    decisions = run(tickets, stored, {}, set())

    assert [d.verdict for d in decisions] == [Verdict.UNCHANGED, Verdict.SUPERSEDED]


def test_a_ticket_met_twice_with_the_same_content_is_pushed_each_time_until_recorded() -> None:
    """No stored hash: each version is pushed (the batch keeps the later one, latest wins)."""
    tickets = [
        SourceTicket("1", 2, {"content": "A", "bad": False}),
        SourceTicket("1", 2, {"content": "A", "bad": False}),
    ]

    decisions = run(tickets, {}, {}, set())

    assert [d.verdict for d in decisions] == [Verdict.PUSH, Verdict.PUSH]


def test_a_deletion_of_a_ticket_that_never_reached_fragment_sends_nothing() -> None:
    gone = SourceTicket("1", 2, {"content": "A", "bad": False}, deleted=True)

    assert run([gone], {}, {}, set())[0].verdict is Verdict.NEVER_SENT
    assert run([gone], {}, {}, {"1"})[0].verdict is Verdict.PUSH  # its push went out unrecorded
