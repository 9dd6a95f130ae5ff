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
from connectors.conversation import BadComment, comment
from connectors.records import MISSING, get_path


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


def read_comments(
    ticket: SourceTicket, records: Iterable[Any], shape: CommentShape
) -> list[SourceComment] | BadRecord:
    """`records`, the raw comments of `ticket`, as `SourceComment`s oldest first.

    Sorted by `created_at` (stable: the source's order among equals). A record
    that can't be read (not an object, no id, no usable `created_at`) makes the
    whole ticket a `BadRecord` naming the field (`comments.2.created_at`, the
    comment's place in the listing, from 0) and the comment: the engine records
    the ticket as failed, as it does a malformed ticket, rather than push a
    conversation with a hole in it. Each value is read by `connectors.conversation.comment`,
    the one reading of a comment every connector shares.
    """
    comments: list[SourceComment] = []
    for index, raw in enumerate(records):
        try:
            comments.append(_comment(raw, shape, f"comments.{index}"))
        except BadComment as exc:
            comment_id = get_path(raw, shape.id) if isinstance(raw, dict) else MISSING
            which = f"comment {comment_id}" if _present(comment_id) else f"comment {index + 1}"
            return BadRecord(
                ticket.source_id,
                f"ticket {ticket.source_id}, {which}",
                exc.field,
                f"a comment can't be read: {which}: {exc.message}",
                ticket.record,
                ticket.cursor,
            )
    comments.sort(key=lambda c: c.created_at)
    return comments


def _comment(raw: Any, shape: CommentShape, where: str) -> SourceComment:
    if not isinstance(raw, dict):
        raise BadComment(where, f"expected an object, got {raw!r:.80}")
    return comment(
        where,
        comment_id=get_path(raw, shape.id),
        created_at=get_path(raw, shape.created_at),
        body=get_path(raw, shape.body),
        author=_text(raw, shape.author),
        author_id=_text(raw, shape.author_id),
        public=shape.public(raw),
        keys={"id": shape.id, "created_at": shape.created_at, "body": shape.body},
    )


def _text(raw: Mapping[str, Any], path: str | None) -> str | None:
    if path is None:
        return None
    value = get_path(raw, path)
    return str(value) if _present(value) else None


def _present(value: Any) -> bool:
    return value is not MISSING and value is not None and value != ""
