"""Text as the state keeps it: JSON records, storable and redacted free text, bounded errors.

Every text the state keeps about a failure goes through here on the way in
(`kept_text`, `kept_record`, `error_text`): a run's error, a failed item's
error and field, and its record. Not every such text is an exception's
message, already redacted: Fragment's reasons for refusing a ticket, a
source's for a bad record and the record itself are made elsewhere, and
`status`, `failures list` and the status page show what is stored. This
module knows no database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import SourceComment
from connectors.values import isoformat, parse_datetime
from sync_http.redaction import holds_secret, redact, without_secrets

MAX_ERROR_TEXT = 4000
"""Characters of the longest error text the state keeps (a failed item's, a run's)."""


def record_json(record: Any) -> str | None:
    """A raw record as JSON text for the failed items (dates become ISO strings).

    Text UTF-8 can't carry (a lone surrogate, from a source's half-escaped
    pair) is written as JSON escapes, which read back as the same record.
    None when the record is nested too deeply to write (it can't be retried).
    """
    try:
        text = json.dumps(record, ensure_ascii=False, default=str, sort_keys=True)
    except RecursionError:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, default=str, sort_keys=True)
    return text


_RECORD, _COMMENTS = "$record", "$comments"


def ticket_json(record: Any, comments: Sequence[SourceComment] | None) -> str | None:
    """A failed ticket's record and the comments read with it, as JSON text (`record_json`).

    Without comments (None: not read), the record alone, as before; with them,
    `{"$record": ..., "$comments": [...]}`, so that a retry maps the same
    summary fields as the pass that read them (`ticket_parts` reads either).
    """
    if comments is None:
        return record_json(record)
    kept = [
        {
            "id": c.comment_id,
            "created_at": isoformat(c.created_at),
            "body": c.body,
            "author": c.author,
            "author_id": c.author_id,
            "public": c.public,
        }
        for c in comments
    ]
    return record_json({_RECORD: record, _COMMENTS: kept})


def ticket_parts(stored: Any) -> tuple[Any, list[SourceComment] | None]:
    """A failed item's decoded record as (record, comments): `ticket_json` undone.

    Raises `ValueError` when the comments kept are not what `ticket_json` wrote.
    """
    if not (isinstance(stored, Mapping) and stored.keys() == {_RECORD, _COMMENTS}):
        return stored, None
    comments = [
        SourceComment(
            comment_id=str(c["id"]),
            created_at=parse_datetime(c["created_at"]),
            body=str(c["body"]),
            author=c.get("author"),
            author_id=c.get("author_id"),
            public=bool(c.get("public", True)),
        )
        for c in stored[_COMMENTS]
    ]
    return stored[_RECORD], comments


def storable_text(text: str) -> str:
    """`text` with what a state database can't keep written as backslash escapes.

    That is a lone surrogate (UTF-8 can't carry it: no database takes it) and
    the NUL character (PostgreSQL refuses it in text). Free-text columns get this.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def error_text(text: str) -> str:
    """`text` as the state keeps an error: as `kept_text`, at most `MAX_ERROR_TEXT` long.

    A message has no reason to run to 100 KB, yet one quoting a bad value can (a
    100 KB date), and MySQL's `TEXT` holds 64 KB. A longer one keeps its start
    (connector, ticket, field) and its end (what is wrong), with the number of
    characters cut between them. Applying it twice changes nothing, so an error
    compares equal to the one stored for it.
    """
    text = kept_text(text)
    if len(text) <= MAX_ERROR_TEXT:
        return text

    def marker(cut: int) -> str:
        return f" … [{cut:,} characters cut] … "

    # `len(text)` is more than the count cut: a marker at least as long as the real one.
    keep = MAX_ERROR_TEXT - len(marker(len(text)))
    head = keep // 2
    tail = keep - head
    return text[:head] + marker(len(text) - keep) + text[len(text) - tail :]


def kept_text(text: str) -> str:
    """`text` as a free-text column keeps it: redacted, then storable."""
    return storable_text(redact(text))


def kept_record(record: str | None) -> str | None:
    """A failed item's record (JSON text) as the state keeps it: without registered secrets.

    Only registered secrets go (the rest is the ticket, to map again as it
    was); the record is read back and written again only when it holds one.
    """
    if record is None or not holds_secret(record):
        return record
    try:
        return record_json(without_secrets(json.loads(record)))
    except (ValueError, RecursionError):  # not JSON after all: keep none of it
        return None
