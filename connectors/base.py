"""The connector contract: what every source hands the engine.

A connector reads one source system and yields `SourceTicket`s. It owns the
source's query language, paging and rate limits; it does not map, diff, push
or store anything. The engine (`sync.run`) owns all of that.

Ordering promise: a connector whose class sets `ordered = True` yields tickets
in ascending order of `cursor` (ties in any order), starting at the `since`
bound it is given, inclusive. The engine then checkpoints after every
acknowledged batch. A connector that cannot promise the order sets
`ordered = False`; its watermark then moves only once a whole pass is through.

Census: a connector that can list the ids of every ticket in its scope
cheaply implements `scope_ids`; the engine (`sync.census`) compares them with
the state's to archive the tasks of tickets deleted or moved out of scope.
One that does not says so by leaving it out (`takes_census` is then False).

People: a connector whose records name their assignee by a source user id
(Redmine's `assigned_to.id`, Zendesk's `assignee_id`) resolves those ids to
people with emails through `people`, in batches; the engine caches what it
returns and asks once per person, not once per ticket.

Conversation: a connector that can read a ticket's comments says how in
`comments` ("listing": they come with the tickets at no extra request;
"requests": they cost extra requests). When the engine sets `read_comments`
before `pull`, it fills each ticket's `comments`, oldest first.

Write-back: a connector that can change a ticket implements `write`, for the
fields it names in `writes` ("status", "assignee"); the engine (two-way sync)
asks it to carry an operator's change in Fragment back to the ticket.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from connectors.errors import WriteRefused

Cursor = dt.datetime | int
"""A change cursor: a timezone-aware UTC datetime, or an integer version."""


class CursorKindMismatch(TypeError):
    """Two cursors of different kinds, a datetime and an integer, were compared.

    One connector's cursors are of one kind; a watermark saved before its
    `cursor_kind` changed is of the other. Callers that meet such a watermark
    decide what it means (the file connectors refuse it up front).
    """


def cursor_before(cursor: Cursor, other: Cursor) -> bool:
    """Whether `cursor` sorts strictly before `other`: the one cursor comparison.

    Raises `CursorKindMismatch` when one is a datetime and the other an integer.
    """
    if isinstance(cursor, dt.datetime) and isinstance(other, dt.datetime):
        return cursor < other
    if isinstance(cursor, int) and isinstance(other, int):
        return cursor < other
    raise CursorKindMismatch(f"cannot order cursors {cursor!r} and {other!r} of different kinds")


WHOLE_SECOND_LOOKBACK = dt.timedelta(seconds=2)
"""The default lookback of a source whose filter compares whole seconds.

One second covers the filter's granularity (a `since` compared strictly, or
against a time the source rounds), one more a change committed a moment after
a later one was read. Longer transactions need a longer `lookback`.
"""


@dataclass(frozen=True, slots=True)
class SourceComment:
    """One comment of a ticket's conversation (a Redmine journal note, a Jira comment).

    `comment_id` is the source's own stable id of the comment, as text: comment
    sync posts each comment to Fragment once, keyed by it. `created_at` is
    timezone-aware UTC. `body` is plain text (HTML and markup as the source
    gives it; the engine cuts excerpts). `public` is False for internal notes
    (Zendesk's private comments, Redmine's private notes, ServiceNow's work notes).
    """

    comment_id: str
    created_at: dt.datetime
    body: str
    author: str | None = None
    """The author's display name, as the source shows it."""
    author_id: str | None = None
    """The author's source user id, as text (resolvable through `Connector.people`)."""
    public: bool = True


@dataclass(frozen=True, slots=True)
class Person:
    """A source user, resolved: what `Connector.people` yields for each id asked.

    `email` None: the source has no email for them, or hides it; `reason` then
    says why in a few words ("email hidden by the user's privacy settings",
    "no such user"), for `python -m sync people`.
    """

    user_id: str
    email: str | None
    name: str | None = None
    reason: str | None = None


# Not frozen: one is built per ticket, and frozen dataclasses cost ~1 µs more each.
@dataclass(slots=True)
class SourceTicket:
    """One ticket as the source reports it.

    `source_id` is the source's stable primary key as text. `cursor` is its
    change cursor. `deleted` marks a tombstone. `record` is the raw record,
    JSON-compatible, that the mapper reads from. `comments`: the ticket's
    conversation, oldest first, when the connector read it (`read_comments`);
    None when it did not, which is not the same as `[]`, no comments.
    """

    source_id: str
    cursor: Cursor
    record: Mapping[str, Any]
    deleted: bool = False
    comments: Sequence[SourceComment] | None = None

    def __post_init__(self) -> None:
        if type(self.cursor) is dt.datetime and self.cursor.tzinfo is dt.UTC:
            return  # the common case, already what the checks below make of it
        if isinstance(self.cursor, dt.datetime):
            offset = self.cursor.utcoffset()
            if offset is None:
                raise TypeError(f"ticket {self.source_id!r}: cursor {self.cursor!r} is naive")
            if offset:
                object.__setattr__(self, "cursor", self.cursor.astimezone(dt.UTC))
        elif isinstance(self.cursor, bool) or not isinstance(self.cursor, int):
            raise TypeError(
                f"ticket {self.source_id!r}: cursor {self.cursor!r} is neither datetime nor int"
            )


@dataclass(frozen=True, slots=True)
class TicketWrite:
    """What write-back asks of one ticket, after an operator changed its task in Fragment.

    `status` is the source's own status to reach (a value of the connector's
    `write_back.status` table: "Resolved", "closed"), None to leave the status
    alone. With `assign`, the ticket is assigned to `assignee_id`, a source
    user id (None: unassigned); without it the assignee is left alone.
    """

    source_id: str
    status: str | None = None
    assign: bool = False
    assignee_id: str | None = None

    @property
    def target(self) -> str | None:
        """The value this write asks for, as a refusal names it: the status, else the
        assignee."""
        return self.status if self.status is not None else self.assignee_id

    @property
    def fields(self) -> tuple[str, ...]:
        """The ticket fields this write changes: ("status",), ("assignee",) or both."""
        return (
            *(("status",) if self.status is not None else ()),
            *(("assignee",) if self.assign else ()),
        )


def unset(value: Any) -> bool:
    """For `Field(exclude_if=unset)`: whether an option is at its empty default (None, []).

    Such an option is kept out of the settings fingerprint, so adding an option
    to a connector leaves the fingerprint of every config that doesn't set it
    as it was: a changed one makes the next pass read everything again.
    """
    return value is None or (isinstance(value, list | tuple | set | frozenset) and not value)


class ConnectorOptions(BaseModel):
    """Base class of a connector's own config keys: unknown keys are errors.

    Each key's docstring is its description in the configuration reference and the schema.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Connector:
    """Base class of every connector.

    Subclasses declare `kind`, `summary` (one line for `python -m sync
    connectors`), `Options` (a `ConnectorOptions` model of their own keys) and
    `ordered`, and implement `pull`. `check` and `close` are optional. The
    engine reads `ordered` from the instance, so a connector whose order
    depends on its configuration may set it in `__init__`.
    """

    kind: ClassVar[str]
    summary: ClassVar[str] = ""
    Options: ClassVar[type[ConnectorOptions]] = ConnectorOptions
    ordered: bool = True

    default_mapping: ClassVar[dict[str, Any]] = {}
    """The mapping a user gets without writing one; each key can be overridden in config."""

    cursors_from_source_clock: ClassVar[bool] = False
    """Whether the source stamps each cursor with its own clock as it records a change (an
    `updated_on` it sets itself): the cursors read then bound that clock from below, which
    the engine uses when `clock_offset` knows nothing (a server that sends no `Date`)."""

    default_lookback: ClassVar[dt.timedelta] = dt.timedelta(0)
    """The `lookback` a pass uses when the user sets none: what the source's filter needs
    to miss nothing (its granularity, its lag); `WHOLE_SECOND_LOOKBACK` for whole seconds."""

    comments: ClassVar[Literal["listing", "requests"] | None] = None
    """How this connector reads a ticket's comments: "listing", they come with the tickets
    at no extra request; "requests", they cost extra requests; None, it can't."""

    @classmethod
    def comments_with(cls, options: ConnectorOptions) -> Literal["listing", "requests"] | None:
        """`comments` for a connector configured with `options`: one that reads comments
        only where an option says where they are (the file and SQL connectors'
        `comments_field`, `comments_column`) answers None without it."""
        return cls.comments

    def __init__(
        self, name: str, options: ConnectorOptions, stop: threading.Event | None = None
    ) -> None:
        self.name = name
        self.options = options
        self.stop = stop or threading.Event()
        """Set when the run must stop: long waits (rate limits) end early on it."""
        self.read_comments = False
        """Set by the engine before `pull` (from `connectors.NAME.conversation`): fill each
        ticket's `comments`. Only for a connector whose `comments` is not None."""

    def pull(self, since: Cursor | None) -> Iterator[SourceTicket | BadRecord]:
        """Yield the tickets whose cursor is at or after `since` (all when None).

        Raises `connectors.errors.SourceError` (or a subclass) when the source
        cannot be read; a ticket that can be read but is malformed is yielded
        as a `BadRecord` instead, so the rest of the pass goes on.
        """
        raise NotImplementedError

    def estimate(self, since: Cursor | None) -> int | None:
        """How many tickets `pull(since)` will yield, if cheap to know; else None."""
        return None

    def scope_ids(self) -> Iterator[str]:
        """The source id of every ticket in the connector's scope now, in any order.

        As cheaply as the source allows (ids only, the largest pages), within
        its rate limit; a ticket the source reports deleted is left out. The
        census (`sync.census`) archives the tasks of tracked tickets missing
        here, so an id left out by mistake archives a live ticket's task: a
        connector that cannot list its whole scope must not implement this.
        Raises `connectors.errors.SourceError` when the source can't be read.
        """
        raise NotImplementedError

    @property
    def takes_census(self) -> bool:
        """Whether this connector lists its scope's ids (`scope_ids`) for a census.

        A connector that can only with some options overrides it (GitHub: not with
        pull requests, whose ids its listing can't give)."""
        return type(self).scope_ids is not Connector.scope_ids

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """The people behind source user ids: one `Person` for each id, in any order.

        In batches where the API allows (Zendesk's `users/show_many`), else one
        request per id, within the source's rate limit; an id the source doesn't
        know, or whose email it hides, still yields a `Person`, with `email` None
        and a `reason`. The engine asks each id once and caches the answer.
        Raises `connectors.errors.SourceError` when the source can't be read.
        """
        raise NotImplementedError

    @property
    def resolves_people(self) -> bool:
        """Whether this connector resolves source user ids to people (`people`)."""
        return type(self).people is not Connector.people

    writes: ClassVar[frozenset[str]] = frozenset()
    """The ticket fields `write` can change: "status", "assignee"; empty: it can't write."""

    @classmethod
    def writes_with(cls, options: ConnectorOptions) -> frozenset[str]:
        """`writes` for a connector configured with `options`: one that writes a field only
        where an option says how (the SQL connector's `status_update`, the REST connector's
        `write_request`) leaves that field out without it."""
        return cls.writes

    def write(self, change: TicketWrite) -> None:
        """Apply `change` to its ticket, as the source's API allows (one request or a few).

        Idempotent: a ticket already in the asked state is no error, so a write
        repeated after a crash changes nothing more. Raises
        `connectors.errors.WriteRefused` when the source refuses this ticket's
        change (its workflow forbids the transition, a permission is missing,
        the ticket is gone), naming the source's reason; `SourceError` when the
        source can't be reached.
        """
        raise NotImplementedError

    def refused(self, change: TicketWrite, reason: str) -> WriteRefused:
        """The refusal of `change` for `reason` (the source's words), to raise from `write`."""
        return WriteRefused(
            self.name, change.source_id, "+".join(change.fields), change.target, reason
        )

    def snapshot(self, previous: str | None = None) -> str | None:
        """A token of the source's whole content, where that is cheap; else None.

        The engine takes it before a pass reads and keeps it with a complete
        pass; the next pass ends at once when the token equals that kept one,
        `previous`. It must change whenever any ticket could have (a file's
        content hash does); a connector that can prove the content is what
        `previous` describes without reading it all may return `previous`.
        """
        return None

    def same_content(self, snapshot: str, previous: str) -> bool:
        """Whether two of this connector's `snapshot` tokens describe the same content.

        Tokens may carry hints besides the content (a file's size and times);
        the engine keeps the fresher one when only those differ.
        """
        return snapshot == previous

    def clock_offset(self) -> dt.timedelta | None:
        """How far the source's clock is ahead of this machine's (`sync_http.clock`), if known.

        Read during a pull, from what the source says its time is (an HTTP
        `Date` header, the database's clock). The estimate must never exceed
        the true offset: the engine stops checkpoints at the time a pass
        started on the source's clock, and a later one could pass a change made
        during the pass. None: the source gives no time of its own.
        """
        return None

    def check(self) -> None:
        """Reach the source once; raise `SourceError` with a clear message if it can't."""

    def close(self) -> None:
        """Release connections and files."""


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record the connector could read but not turn into a ticket.

    Yielded in place of a `SourceTicket`, so the engine records it as failed
    (naming `source_id` when known, else `locator` such as "line 17", and the
    `field` at fault) and goes on. `cursor` is the position in the stream,
    when known, so the watermark can still move past it.
    """

    source_id: str | None
    locator: str
    field: str
    message: str
    record: Mapping[str, Any] | None = None
    cursor: Cursor | None = None
