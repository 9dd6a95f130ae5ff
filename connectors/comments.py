"""A ticket's comments read out of a vendor's comment records: `CommentShape` and `read_comments`.

A connector that reads comments (`Connector.comments`) declares where its
vendor keeps each part of a comment (id, time, text, author, privacy) in a
`CommentShape`, and hands the raw records of one ticket to `read_comments`.
What the records are fetched with (a listing per ticket, a table queried per
page of tickets) is the connector's; this module only reads records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import BadRecord, SourceComment, SourceTicket
from connectors.records import MISSING, get_path
from connectors.values import parse_datetime


def _always_public(comment: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class CommentShape:
    """Where a vendor's comment record keeps each part of a `SourceComment` (field paths).

    `author` and `author_id` None: the record doesn't say. `public` reads the
    record's privacy (Zendesk's `public`, Freshdesk's `private`, ServiceNow's
    `element`); every comment is public by default (GitHub has no private ones).
    """

    id: str = "id"
    created_at: str = "created_at"
    body: str = "body"
    author: str | None = None
    author_id: str | None = None
    public: Callable[[Mapping[str, Any]], bool] = _always_public


class _BadComment(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def read_comments(
    ticket: SourceTicket, records: Iterable[Any], shape: CommentShape
) -> list[SourceComment] | BadRecord:
    """`records`, the raw comments of `ticket`, as `SourceComment`s oldest first.

    Sorted by `created_at` (stable: the source's order among equals). A record
    that can't be read (not an object, no id, no usable `created_at`) makes the
    whole ticket a `BadRecord` naming the field (`comments.2.created_at`, the
    comment's place in the listing, from 0) and the comment: the engine records
    the ticket as failed, as it does a malformed ticket, rather than push a
    conversation with a hole in it.
    """
    comments: list[SourceComment] = []
    for index, raw in enumerate(records):
        try:
            comments.append(_comment(raw, shape))
        except _BadComment as exc:
            comment_id = get_path(raw, shape.id) if isinstance(raw, dict) else MISSING
            which = f"comment {comment_id}" if _present(comment_id) else f"comment {index + 1}"
            return BadRecord(
                ticket.source_id,
                f"ticket {ticket.source_id}, {which}",
                f"comments.{index}.{exc.field}",
                f"a comment can't be read: {which}: {exc.message}",
                ticket.record,
                ticket.cursor,
            )
    comments.sort(key=lambda c: c.created_at)
    return comments


def _comment(raw: Any, shape: CommentShape) -> SourceComment:
    if not isinstance(raw, dict):
        raise _BadComment("(record)", f"expected an object, got {raw!r:.80}")
    comment_id = get_path(raw, shape.id)
    if not _present(comment_id) or isinstance(comment_id, bool | dict | list):
        raise _BadComment(shape.id, "the comment has no id")
    created = get_path(raw, shape.created_at)
    if not _present(created):
        raise _BadComment(shape.created_at, "the comment has no creation time")
    try:
        created_at = parse_datetime(created)
    except ValueError as exc:
        raise _BadComment(shape.created_at, str(exc)) from None
    body = get_path(raw, shape.body)
    return SourceComment(
        comment_id=str(comment_id),
        created_at=created_at,
        body="" if body is MISSING or body is None else str(body),
        author=_text(raw, shape.author),
        author_id=_text(raw, shape.author_id),
        public=shape.public(raw),
    )


def _text(raw: Mapping[str, Any], path: str | None) -> str | None:
    if path is None:
        return None
    value = get_path(raw, path)
    return str(value) if _present(value) else None


def _present(value: Any) -> bool:
    return value is not MISSING and value is not None and value != ""
