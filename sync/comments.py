"""The comment stream: each public source comment becomes a comment on its Fragment task, once.

    tickets' comments ─> intake (new, public, since the start) ─> state ─> post ─> state
                         `CommentIntake`, as a pass reads          `CommentPoster`, after its tasks

Off unless `connectors.NAME.conversation.sync`. As a pass reads tickets,
the intake keeps each public comment it has not met before as pending in the
state (`sync.state.comments`), with the text to post: a comment made before
comment sync was first turned on for the connector is left out unless
`backfill`. After the pass's tasks are checkpointed, the poster posts the
pending comments whose task is in Fragment, oldest first, one request each,
on turns of the request budget no task push wants (`RequestBudget.acquire_spare`),
until none is left, a stop, the pass's deadline or its `until`. The rest stay
pending for later passes, which post them without reading the source again.

Exactly once: `POST /tasks/{uid}/comments` is not idempotent, so a comment is
marked `sending` before its POST goes out, and the text carries a marker of
its source comment (`marker`). A comment found `sending` (the process died,
or the answer was lost) is looked for among its task's comments first, and
posted only if it is not there. Edits and deletions of a source comment are
not carried over: a comment is posted as it was when first met.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from connectors.base import SourceComment, SourceTicket
from sync.errors import FragmentAuthError, FragmentError, RunInterrupted
from sync.state import utcnow
from sync.state.comments import SENDING, CommentLedger, CommentStart, DueComment, NewComment

MAX_TEXT = 50_000
"""Characters of a comment's text posted; a longer one is cut, and says so."""
PAGE = 100
"""Comments read from the state at a time to post."""
MAX_UNCLEAR = 3
"""Answers in a row that leave unknown whether a comment landed before a pass stops posting."""


def marker(namespace: str, comment_id: str) -> str:
    """What a posted comment's first line ends with: its source comment, for people and for
    the check after a crash (`CommentPoster`)."""
    return f"[{namespace} comment {comment_id}]"


def render(namespace: str, comment: SourceComment) -> str:
    """The text posted for `comment`: who wrote it and when, its marker, then its text."""
    who = comment.author or (f"user {comment.author_id}" if comment.author_id else "someone")
    when = comment.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = comment.body.strip()
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + f"\n[… cut at {MAX_TEXT} characters]"
    head = f"{who}, {when} {marker(namespace, comment.comment_id)}"
    return f"{head}\n\n{text}" if text else head


def posted_here(namespace: str, comment_id: str, texts: Sequence[str]) -> bool:
    """Whether one of a task's comments, `texts`, is the one posted for `comment_id`."""
    wanted = marker(namespace, comment_id)
    return any(text.split("\n", 1)[0].endswith(wanted) for text in texts)


@runtime_checkable
class CommentClient(Protocol):
    """What posting comments needs of Fragment's client (`sync.fragment.FragmentClient`)."""

    def post_comment(self, uid: str, text: str) -> Any: ...

    def task_comments(self, uid: str) -> list[str] | None: ...


class CommentIntake:
    """Keeps the new public comments of the tickets a pass reads as pending in the state."""

    def __init__(
        self, ledger: CommentLedger, namespace: str, start: CommentStart, *, backfill: bool
    ) -> None:
        self.ledger, self.namespace = ledger, namespace
        self.since = None if backfill else start.since
        self.kept = 0

    def take(self, tickets: Sequence[SourceTicket]) -> None:
        """Keep those of `tickets`' comments not met before. Call it before the tickets are
        fed to the task stream: their checkpoint may move the watermark past them."""
        wanted = [
            (ticket.source_id, comment)
            for ticket in tickets
            if ticket.comments and not ticket.deleted
            for comment in ticket.comments
            if comment.public and (self.since is None or comment.created_at >= self.since)
        ]
        if not wanted:
            return
        known = self.ledger.known(self.namespace, {source_id for source_id, _ in wanted})
        new: dict[tuple[str, str], NewComment] = {}
        for source_id, comment in wanted:
            key = (source_id, comment.comment_id)
            if key not in known and key not in new:
                body = render(self.namespace, comment)
                new[key] = NewComment(source_id, comment.comment_id, comment.created_at, body)
        self.ledger.add(self.namespace, list(new.values()))
        self.kept += len(new)


@dataclass
class CommentCount:
    posted: int = 0
    failed: int = 0
    requests: int = 0


class CommentPoster:
    """Posts a connector's pending comments, each once, for one pass (`post_due`)."""

    def __init__(
        self,
        ledger: CommentLedger,
        client: CommentClient,
        namespace: str,
        name: str,
        log: Any,
        *,
        check_stop: Callable[[], None],
        until: float,
        lease: tuple[str, float] | None,
    ) -> None:
        self.ledger, self.client, self.namespace, self.name = ledger, client, namespace, name
        self.log, self.check_stop, self.until, self.lease = log, check_stop, until, lease
        self.count = CommentCount()

    def post_due(self) -> CommentCount:
        """Post the due comments until none is left or the pass's turn is over.

        Refused comments become failed (tried again later, `sync.failures`).
        One whose answer leaves unknown whether it landed stays in flight for
        the next pass to look for, and its ticket's later comments wait for
        it; `MAX_UNCLEAR` of those in a row (Fragment out of reach) end the
        posting, the rest pending. Raises what
        `check_stop` raises (a stop, the deadline, the lease lost), and
        `LeaseLost` when another process took the connector.
        """
        skipped: set[tuple[str, str]] = set()  # left in flight, or behind one, this pass
        held: set[str] = set()  # tickets with a comment in flight: the later ones wait
        unclear = 0
        while time.monotonic() < self.until:
            due = [
                c
                for c in self.ledger.due(self.namespace, utcnow(), PAGE + len(skipped))
                if (c.source_id, c.comment_id) not in skipped
            ]
            if not due:
                break
            for comment in due[:PAGE]:
                self.check_stop()
                if time.monotonic() >= self.until:
                    break
                key = (comment.source_id, comment.comment_id)
                if comment.source_id in held:
                    skipped.add(key)  # posted after the one in flight, or not at all
                    continue
                try:
                    if not self._post(comment):
                        skipped.add(key)  # refused: tried again in a later pass
                    unclear = 0
                except (RunInterrupted, FragmentAuthError):
                    raise
                except FragmentError as exc:
                    # Out of reach, or an answer that says nothing: the comment stays as it is
                    # (sending: the next pass looks first), and its ticket's later ones wait.
                    skipped.add(key)
                    held.add(comment.source_id)
                    unclear += 1
                    self.log.warning(
                        "comment_unclear",
                        source_id=comment.source_id,
                        comment_id=comment.comment_id,
                        error=str(exc),
                        detail="looked for on its task by the next pass before it is posted",
                    )
                    if unclear >= MAX_UNCLEAR:
                        self.log.warning(
                            "comments_paused",
                            detail=f"{MAX_UNCLEAR} unclear answers in a row: the comments "
                            "left stay pending for the next pass",
                        )
                        return self.count
        return self.count

    def _post(self, comment: DueComment) -> bool:
        """Post `comment` (or find it posted); False when Fragment refused it."""
        if comment.state == SENDING:
            self.count.requests += 1
            if posted_here(self.namespace, comment.comment_id, self._on_task(comment)):
                self.ledger.posted(self.namespace, comment, None)
                self.count.posted += 1
                self.log.info(
                    "comment_found_posted",
                    source_id=comment.source_id,
                    comment_id=comment.comment_id,
                )
                return True
        self.ledger.sending(self.namespace, comment, self.lease)
        self.count.requests += 1
        # Raises on an answer that leaves unknown whether it landed: the comment stays
        # `sending`, and the next pass looks for it first. Not at once: a request that
        # timed out may still be applied after the answer was given up on.
        answer = self.client.post_comment(comment.uid, comment.body)
        if answer.refused is None:
            self.ledger.posted(self.namespace, comment, answer.comment_id)
            self.count.posted += 1
            return True
        message = (
            f"connector {self.name!r}, ticket {comment.source_id!r}, comment "
            f"{comment.comment_id!r}: Fragment refused it: {answer.refused}"
        )
        self.ledger.failed(self.namespace, comment, message, utcnow())
        self.count.failed += 1
        self.log.warning(
            "comment_failed",
            source_id=comment.source_id,
            comment_id=comment.comment_id,
            error=message,
        )
        return False

    def _on_task(self, comment: DueComment) -> list[str]:
        """The texts of the comments on `comment`'s task; [] when the task is gone."""
        return self.client.task_comments(comment.uid) or []
