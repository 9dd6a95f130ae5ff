"""Batches: cutting a stream or a list into them (the one place the engine does it), and
what became of one sent to Fragment.

A pass reads its source in chunks (to look up stored hashes a chunk at a time) and
sends a shipment to Fragment in requests of `batch_size`; both cut here. What Fragment
made of a batch (`PushResult`) is a plain value, apart from the client (`sync.fragment`)
that fills it: a pass holds one before it knows whether it has anything to send.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from connectors.base import Cursor

T = TypeVar("T")


class Payload(Protocol):
    """An item sent to a sink, as its checkpoint records it (`sync.mapping.TaskPayload` is one).

    The item's id at its source, its uid at the sink, the hash of what was sent
    and the version (cursor) it was made from. Another stream's items (a
    Fragment task on its way back to a source) need only these to be shipped
    and checkpointed.
    """

    @property
    def source_id(self) -> str: ...
    @property
    def uid(self) -> str: ...
    @property
    def content_hash(self) -> str: ...
    @property
    def cursor(self) -> Cursor: ...
    @property
    def archived(self) -> bool:
        """Whether it archives the item's task (the state keeps it: see `sync.census`)."""
        ...


def batched(
    items: Iterable[T],
    size: int,
    *,
    flush_on: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> Iterator[list[T]]:
    """`items` in lists of `size`, in order; the last may be shorter.

    When reading `items` raises one of `flush_on`, the items read since the last
    list come out first, then the error: a pass whose source fails after 150
    tickets keeps those. Other errors propagate at once. Raises `ValueError` when
    `size` is below 1.
    """
    if size < 1:
        raise ValueError(f"a batch holds at least 1 item, not {size}")
    batch: list[T] = []
    try:
        for item in items:
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
    except flush_on:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


@dataclass(frozen=True)
class Rejected:
    """An item Fragment refused: its message, and the task key it named, if it named one."""

    payload: Payload
    message: str
    field: str | None = None
    """As Fragment spells it (`assignee_email`, `fields.due_at`): the `loc` of its 422."""


@dataclass(frozen=True)
class Refusal:
    """Fragment's answer to a request it refused: the items it named, or only a message.

    Ship isolates the bad items from it (`sync.ship.isolate`): those named are set
    aside at once; a refusal naming none is split in two until they show.
    """

    named: Mapping[int, tuple[str | None, str]]
    """Index in the request → (the field it named, if any; the message)."""
    message: str = ""
    """The answer, summarised and redacted: what an item refused unnamed is failed with."""


@dataclass
class PushResult:
    """What became of one batch: the items that landed and the ones refused."""

    acked: list[Payload] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    requests: int = 0
    """HTTP requests sent for this batch, retries and isolation included; counted as they go
    out, so a push that raises has still counted each of its attempts."""
    isolation_requests: int = 0
    """Of those, the extra requests spent isolating rejected items."""
