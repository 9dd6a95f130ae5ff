"""The state of comment sync: each source comment met, and where it stands.

One row per source comment (`schema.comments`), keyed by connector, ticket and
the source's comment id: `pending` once met, `sending` from just before its
POST (written ahead: it may have landed when the process dies), then `posted`
or `failed` (with `retry_at`, as `sync.failures` says). A posted row keeps no
text. One row per connector (`schema.comment_sync`) says when comment sync
began there. What to post and when is `sync.comments`'; this only keeps it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from sync import failures
from sync.batches import batched
from sync.state.bulk import IN_CHUNK
from sync.state.schema import comment_sync, comments, tasks
from sync.state.store import LeaseLost, StateStore, renew, utcnow
from sync.state.text import error_text

PENDING, SENDING, POSTED, FAILED = "pending", "sending", "posted", "failed"
UNPOSTED = (PENDING, SENDING, FAILED)


@dataclass(frozen=True)
class NewComment:
    """A source comment to post: its ticket, its id, when it was made, the text to post."""

    source_id: str
    comment_id: str
    created_at: dt.datetime
    body: str


@dataclass(frozen=True)
class DueComment:
    """A comment to post now, with its task's uid (its ticket's task is in Fragment)."""

    source_id: str
    comment_id: str
    uid: str
    body: str
    state: str
    """`pending`, `failed`, or `sending`: a POST went out and its answer was never recorded."""
    attempts: int
    first_failed: dt.datetime | None


@dataclass(frozen=True)
class CommentCounts:
    """A connector's comments by state (`waiting`: pending or sending, its task not in yet)."""

    pending: int = 0
    posted: int = 0
    failed: int = 0


@dataclass(frozen=True)
class CommentStart:
    """When comment sync began for a connector, and when a backfill last read every ticket."""

    since: dt.datetime
    backfilled_at: dt.datetime | None


class CommentLedger:
    """Comment sync's rows in `store`'s database. Thread-safe, as `StateStore`."""

    def __init__(self, store: StateStore) -> None:
        self.engine = store.engine
        self.retry_policy = store.retry_policy

    # When it began

    def start(self, connector: str, now: dt.datetime) -> CommentStart:
        """When comment sync began for `connector`: `now` if this is its first time."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(comment_sync.c.since, comment_sync.c.backfilled_at).where(
                    comment_sync.c.connector == connector
                )
            ).first()
            if row is None:
                conn.execute(sa.insert(comment_sync).values(connector=connector, since=now))
                return CommentStart(now, None)
            since = _aware(row[0])
            assert since is not None
            return CommentStart(since, _aware(row[1]))

    def backfilled(self, connector: str, when: dt.datetime) -> None:
        """Record that a pass read every ticket for their older comments, at `when`."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(comment_sync)
                .where(comment_sync.c.connector == connector)
                .values(backfilled_at=when)
            )

    # Comments met

    def known(self, connector: str, source_ids: Iterable[str]) -> set[tuple[str, str]]:
        """The (ticket, comment id) of every comment already kept for these tickets."""
        wanted = list(dict.fromkeys(source_ids))
        found: set[tuple[str, str]] = set()
        with self.engine.connect() as conn:
            for chunk in batched(wanted, IN_CHUNK):
                rows = conn.execute(
                    sa.select(comments.c.source_id, comments.c.comment_id).where(
                        comments.c.connector == connector, comments.c.source_id.in_(chunk)
                    )
                )
                found.update((row[0], row[1]) for row in rows)
        return found

    def add(self, connector: str, new: Sequence[NewComment]) -> None:
        """Keep `new` as pending (none of them kept yet: see `known`)."""
        if not new:
            return
        rows = [
            {
                "connector": connector,
                "source_id": c.source_id,
                "comment_id": c.comment_id,
                "created_at": c.created_at,
                "state": PENDING,
                "body": c.body,
                "attempts": 0,
            }
            for c in new
        ]
        with self.engine.begin() as conn:
            conn.execute(sa.insert(comments), rows)

    # Posting

    def due(self, connector: str, now: dt.datetime, limit: int) -> list[DueComment]:
        """Up to `limit` comments to post now, oldest first: not posted, not waiting for a
        retry, and their ticket's task is in Fragment (the state holds its hash)."""
        query = (
            sa.select(
                comments.c.source_id,
                comments.c.comment_id,
                tasks.c.uid,
                comments.c.body,
                comments.c.state,
                comments.c.attempts,
                comments.c.first_failed,
            )
            .join(
                tasks,
                sa.and_(
                    tasks.c.connector == comments.c.connector,
                    tasks.c.source_id == comments.c.source_id,
                ),
            )
            .where(
                comments.c.connector == connector,
                comments.c.state.in_(UNPOSTED),
                sa.or_(comments.c.retry_at.is_(None), comments.c.retry_at <= now),
            )
            .order_by(comments.c.created_at, comments.c.source_id, comments.c.comment_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                DueComment(
                    row[0],
                    row[1],
                    row[2],
                    row[3] or "",
                    row[4],
                    row[5],
                    _aware(row[6]),
                )
                for row in conn.execute(query)
            ]

    def sending(
        self, connector: str, comment: DueComment, lease: tuple[str, float] | None = None
    ) -> None:
        """Mark `comment` in flight, before its POST goes out.

        With `lease` (owner, ttl seconds) the same transaction renews the
        connector's lease, and raises `LeaseLost` (writing nothing) if another
        process holds it now: that one may be posting the same comment.
        """
        self._set(connector, comment, lease=lease, state=SENDING, retry_at=None)

    def posted(self, connector: str, comment: DueComment, fragment_id: str | None) -> None:
        """Mark `comment` posted, and let go of its text."""
        values: dict[str, Any] = {"state": POSTED, "body": None, "error": None, "retry_at": None}
        values.update(posted_at=_now(), fragment_id=fragment_id)
        self._set(connector, comment, **values)

    def failed(self, connector: str, comment: DueComment, error: str, now: dt.datetime) -> None:
        """Mark `comment` failed with `error` (Fragment refused it); due again per the policy."""
        first = comment.first_failed or now
        self._set(
            connector,
            comment,
            state=FAILED,
            error=error_text(error),
            attempts=comment.attempts + 1,
            first_failed=first,
            retry_at=failures.retry_at(first, now, self.retry_policy),
        )

    def _set(
        self,
        connector: str,
        comment: DueComment,
        lease: tuple[str, float] | None = None,
        **values: Any,
    ) -> None:
        with self.engine.begin() as conn:
            if lease is not None and not renew(conn, connector, *lease, utcnow()):
                raise LeaseLost(f"connector {connector!r}: the lease passed to another process")
            conn.execute(
                sa.update(comments)
                .where(
                    comments.c.connector == connector,
                    comments.c.source_id == comment.source_id,
                    comments.c.comment_id == comment.comment_id,
                )
                .values(**values)
            )

    # Reading

    def counts(self, connector: str) -> CommentCounts:
        """How many of `connector`'s comments are pending (sending too), posted, failed."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(comments.c.state, sa.func.count())
                .where(comments.c.connector == connector)
                .group_by(comments.c.state)
            ).all()
        by_state = {row[0]: int(row[1]) for row in rows}
        return CommentCounts(
            pending=by_state.get(PENDING, 0) + by_state.get(SENDING, 0),
            posted=by_state.get(POSTED, 0),
            failed=by_state.get(FAILED, 0),
        )

    def counts_each(self) -> dict[str, CommentCounts]:
        """`counts` of every connector with comments, by connector: one query, whatever their
        number (a range of the index on connector and state)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(comments.c.connector, comments.c.state, sa.func.count()).group_by(
                    comments.c.connector, comments.c.state
                )
            ).all()
        by_connector: dict[str, dict[str, int]] = {}
        for connector, state, count in rows:
            by_connector.setdefault(connector, {})[state] = int(count)
        return {
            connector: CommentCounts(
                pending=by_state.get(PENDING, 0) + by_state.get(SENDING, 0),
                posted=by_state.get(POSTED, 0),
                failed=by_state.get(FAILED, 0),
            )
            for connector, by_state in by_connector.items()
        }

    def failures(self, connector: str) -> list[tuple[str, str, str]]:
        """(ticket, comment id, error) of each failed comment of `connector`."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(comments.c.source_id, comments.c.comment_id, comments.c.error)
                .where(comments.c.connector == connector, comments.c.state == FAILED)
                .order_by(comments.c.source_id, comments.c.comment_id)
            ).all()
        return [(row[0], row[1], row[2] or "") for row in rows]


def _now() -> dt.datetime:
    return utcnow()


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment
