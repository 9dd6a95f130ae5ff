"""A ticket's comments as the connectors read them: `SourceComment`s from raw values.

Owns the one shape a comments list takes in a file or a database row (the
`jsonl` and `csv` connectors' `comments_field`, the `sql` connector's
`comments_column`) and the error that names the comment and key at fault.
Each API connector reads its vendor's own shape (`connectors.redmine`,
`connectors.jira`) through `comment`. This module does not summarise
comments: the mapper does (`sync.mapping.CommentSummary`).

The list's shape: a JSON array (or its text, as SQLite's `json_group_array`
and MariaDB's `JSON_ARRAYAGG` give it, or a CSV cell) of objects with
`id`, `created_at` (ISO 8601 or Unix time; naive in the connector's
timezone) and `body`, and optionally `author`, `author_id` and `public`
(true unless false, 0, "no"...). Null, absent or empty: no comments; a null
item (a LEFT JOIN's `[null]`) is skipped.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from connectors.base import BadRecord, SourceComment, SourceTicket
from connectors.records import MISSING, is_flag_set, source_id_text
from connectors.values import parse_datetime


class BadComment(ValueError):
    """A comment the connector can't read; `field` is its path (`comments.2.created_at`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def bad_record(self, ticket: SourceTicket, locator: str) -> BadRecord:
        """The ticket as a failed item naming the comment at fault; the pass goes on past it.

        `locator`: where the ticket was read (`line 7`); its cursor is kept, so the
        watermark moves past it.
        """
        return BadRecord(
            ticket.source_id,
            f"ticket {ticket.source_id} ({locator})",
            self.field,
            f"a comment can't be read: {self.message}",
            ticket.record,
            ticket.cursor,
        )


def comment(
    field: str,
    *,
    comment_id: Any,
    created_at: Any,
    body: Any,
    author: Any = None,
    author_id: Any = None,
    public: bool = True,
    zone: dt.tzinfo = dt.UTC,
    keys: Mapping[str, str] | None = None,
) -> SourceComment:
    """One comment from its raw values; `field` is its path, for errors (`journals.3`).

    `keys`: the source's name of each value, for errors (`{"created_at": "created_on"}`).
    Raises `BadComment` naming the value at fault: an id or a time that is
    missing or not one, a body that is not text.
    """
    names = {"id": "id", "created_at": "created_at", "body": "body", **(keys or {})}
    try:
        identifier = source_id_text(comment_id, names["id"])
    except ValueError as exc:
        raise BadComment(f"{field}.{names['id']}", str(exc)) from None
    if created_at is MISSING or created_at is None or created_at == "":
        raise BadComment(f"{field}.{names['created_at']}", "is missing")
    try:
        created = parse_datetime(created_at, zone)
    except ValueError as exc:
        raise BadComment(f"{field}.{names['created_at']}", str(exc)) from None
    if body is MISSING or body is None:
        body = ""
    if not isinstance(body, str):
        raise BadComment(f"{field}.{names['body']}", f"is {type(body).__name__}, not text")
    return SourceComment(
        comment_id=identifier,
        created_at=created,
        body=body,
        author=None if author in (None, MISSING, "") else str(author),
        author_id=None if author_id in (None, MISSING, "") else str(author_id),
        public=public,
    )


def comment_list(value: Any, field: str, zone: dt.tzinfo = dt.UTC) -> list[SourceComment]:
    """The comments a record's `field` holds (see the module for the shape), oldest first.

    Raises `BadComment` naming the comment and key at fault.
    """
    if value is MISSING or value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise BadComment(field, f"is text but not a JSON array: {exc}") from None
    if not isinstance(value, list):
        raise BadComment(field, f"is {type(value).__name__}, not a list of comments")
    comments = []
    for index, item in enumerate(value):
        if item is None:
            continue
        where = f"{field}.{index}"
        if not isinstance(item, Mapping):
            raise BadComment(where, f"is {type(item).__name__}, not an object")
        public = item.get("public")
        comments.append(
            comment(
                where,
                comment_id=item.get("id", MISSING),
                created_at=item.get("created_at", MISSING),
                body=item.get("body"),
                author=item.get("author"),
                author_id=item.get("author_id"),
                public=True if public is None else is_flag_set(public),
                zone=zone,
            )
        )
    comments.sort(key=lambda c: c.created_at)  # stable: the list's order among equals
    return comments
