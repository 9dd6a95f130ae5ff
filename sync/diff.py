"""The diff: which tickets of a chunk go to Fragment, which are unchanged, which superseded.

A pure function over plain values: the tickets of a chunk in stream order,
what the state stored of each (its content hash, its cursor, when it was
pushed) and the newest version this pass already queued or sent. It maps
(through the function it is given) only the tickets it must compare, and
does no I/O; the pass (`sync.run`) looks the hashes up and acts on the verdicts.

Within a pass an older version of a ticket never replaces a newer one,
whatever order an unordered source gives them in: a version is superseded
when this pass already queued, sent or recorded a strictly newer one.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Generic, NamedTuple, Protocol, TypeVar

from connectors.base import Cursor
from sync.errors import SkipTicket
from sync.watermark import decode_text, newer


class Version(Protocol):
    """A version of a ticket as a source gave it (`SourceTicket` is one)."""

    @property
    def source_id(self) -> str: ...
    @property
    def cursor(self) -> Cursor: ...
    @property
    def deleted(self) -> bool: ...


class Hashed(Protocol):
    """What a version maps to (`TaskPayload` is one): its content's hash is compared."""

    @property
    def content_hash(self) -> str: ...


class Stored(Protocol):
    """What the state keeps of the last version pushed (`sync.state.StoredTask` is one)."""

    @property
    def content_hash(self) -> str: ...
    @property
    def cursor(self) -> str: ...
    @property
    def pushed_at(self) -> dt.datetime | None: ...


V = TypeVar("V", bound=Version)
P = TypeVar("P", bound=Hashed)


class Verdict(enum.Enum):
    PUSH = "push"
    """Its content differs from what was last pushed: it goes to Fragment."""
    UNCHANGED = "unchanged"
    """Its content is what was last pushed."""
    SUPERSEDED = "superseded"
    """This pass already queued, sent or recorded a newer version of it."""
    NEVER_SENT = "never_sent"
    """Deleted before it ever reached Fragment: there is no task to archive."""
    UNMAPPABLE = "unmappable"
    """Mapping it failed (`error`)."""


class Decision(NamedTuple, Generic[V, P]):
    """What becomes of one version: its verdict, its payload (PUSH), its error (UNMAPPABLE)."""

    ticket: V
    verdict: Verdict
    payload: P | None = None
    error: SkipTicket | None = None


class Queued(NamedTuple):
    """The newest version of a ticket this pass queued or sent, or met unchanged."""

    cursor: Cursor
    content_hash: str


def superseded(
    ticket: Version,
    stored: Stored | None,
    queued: Queued | None,
    pass_started: dt.datetime | None,
) -> bool:
    """Whether a strictly newer version of `ticket` was queued, sent or recorded in this pass.

    `queued`: the newest version this pass queued, sent or met unchanged;
    `stored` counts when it was pushed at or after `pass_started` (an earlier
    pass's push is no version of this pass: the source's current one wins).
    """
    if queued is not None and newer(queued.cursor, ticket.cursor):
        return True
    return (
        stored is not None
        and pass_started is not None
        and stored.pushed_at is not None
        and stored.pushed_at >= pass_started
        and newer(decode_text(stored.cursor), ticket.cursor)
    )


def diff(
    tickets: Iterable[V],
    stored: Mapping[str, Stored],
    map_ticket: Callable[[V], P],
    *,
    queued: Mapping[str, Queued] | None = None,
    pass_started: dt.datetime | None = None,
    sent_unrecorded: Collection[str] = (),
) -> list[Decision[V, P]]:
    """One decision per ticket, in the order given.

    `stored`: what the state holds, by source id. `map_ticket`: the ticket's
    payload; it may raise `SkipTicket` (the ticket is UNMAPPABLE). `queued`:
    the newest version of each ticket this pass queued or sent before these.
    `sent_unrecorded`: deleted tickets with no stored hash whose push went out
    unrecorded (Fragment may hold their tasks, so their deletions go out).

    A version is unchanged when its content is the stored one and no other
    content is on its way (queued): a ticket changed and changed back within
    the pass goes out again. A ticket met again later in `tickets` is decided
    again: a newer or equal version is pushed too, an older one is superseded.
    """
    newest: dict[str, Queued] = dict(queued or {})
    decisions: list[Decision[V, P]] = []
    decide = decisions.append  # in locals: this loop runs once per ticket read
    push, unchanged = Verdict.PUSH, Verdict.UNCHANGED
    for ticket in tickets:
        source_id = ticket.source_id
        known = stored.get(source_id)
        on_its_way = newest.get(source_id)
        if superseded(ticket, known, on_its_way, pass_started):
            decide(Decision(ticket, Verdict.SUPERSEDED))
            continue
        if ticket.deleted and known is None and source_id not in sent_unrecorded:
            decide(Decision(ticket, Verdict.NEVER_SENT))
            continue
        try:
            payload = map_ticket(ticket)
        except SkipTicket as exc:
            decide(Decision(ticket, Verdict.UNMAPPABLE, error=exc))
            continue
        content_hash = payload.content_hash
        newest[source_id] = Queued(ticket.cursor, content_hash)
        if (
            known is not None
            and known.content_hash == content_hash
            and (on_its_way is None or on_its_way.content_hash == content_hash)
        ):
            decide(Decision(ticket, unchanged))
        else:
            decide(Decision(ticket, push, payload))
    return decisions
