"""Two-way sync's pass: an operator's changes in Fragment, written back to their tickets.

It reads Fragment's changes from the connector's mark (`sync.changes`), and for
each task this connector pushed compares its status and assignee with two
hashes (`sync.mapping.sides_hash`): what the last push set (`tasks.sides_hash`:
Fragment holds the echo of a push) and what was last written back or met
(`write_backs`). A task that differs from both changed in Fragment: the
connector writes what `[connectors.NAME.write_back]` asks of that change
(`Connector.write`), then the hash is recorded, so a change is met once. The
forward pass that follows reads the ticket it changed and pushes it, its status
now the one Fragment holds: that push's echo matches `tasks.sides_hash`, and
nothing comes back.

The rule for conflicts: the source owns the fields it maps; Fragment owns status
and assignee once write-back is on, unless the source closed the ticket. A
connector says so (`WriteConflict`); the conflict is recorded, and the ticket
stays as the source has it. A refusal (`WriteRefused`: a workflow, a permission,
a deleted ticket) is a failed item of this direction, retried with the failed
items' backoff; neither stops the pass. A source out of reach does: the mark
stays before the page, and the next pass meets its changes again. A write
repeated after a crash finds the ticket already there and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from connectors.base import Connector, TicketWrite
from connectors.errors import WriteConflict, WriteRefused
from sync.changes import ChangedTask, FragmentPoll, TaskChanges, TaskLister
from sync.config import ConnectorConfig
from sync.mapping import sides_hash
from sync.state import StateStore, utcnow
from sync.state.write_back import Refusal, TrackedTask, WriteBackLedger, Written
from sync.summary import WRITE_BACK_OBSERVERS

log = structlog.get_logger("sync.write_back")


@dataclass
class WriteBackSummary:
    """What one write-back pass did: changes met, written, refused, lost to a conflict."""

    connector: str
    seen: int = 0
    """Tasks of this connector the poll listed."""
    echoes: int = 0
    """Of those, tasks holding what a push set: nothing to write."""
    written: int = 0
    refused: int = 0
    conflicts: int = 0
    retried: int = 0
    """Refused writes tried again this pass."""

    def as_json(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class Observed:
    """A task's status and assignee as Fragment lists them."""

    status: str | None
    email: str | None

    @classmethod
    def of(cls, task: dict[str, Any]) -> Observed:
        assignee = task.get("assignee")
        email = assignee.get("email") if isinstance(assignee, dict) else None
        status = task.get("status")
        return cls(
            status if isinstance(status, str) else None, email if isinstance(email, str) else None
        )

    @property
    def hash(self) -> str:
        return sides_hash(self.status, self.email)

    def wanted(self) -> dict[str, Any]:
        return {"status": self.status, "assignee_email": self.email}


def baseline(known: TrackedTask, last: Written | None) -> str | None:
    """The status and assignee (their hash) the ticket holds, as far as this sync knows.

    What was last written back, while no push came since (the task's `sides_hash` is
    still the one it had then); else what the last push set. A task in Fragment that
    holds it changed by nobody but this sync: nothing to write.
    """
    if last is not None and last.hash is not None and last.over == known.sides_hash:
        return last.hash
    return known.sides_hash


class ConnectorWriteBack:
    """One write-back pass of one connector, through `changes` (Fragment's poll by default)."""

    def __init__(
        self,
        config: ConnectorConfig,
        store: StateStore,
        client: TaskLister,
        source: Connector,
        *,
        changes: TaskChanges | None = None,
    ) -> None:
        self.config = config
        self.namespace = config.uid_namespace
        self.settings = config.settings.write_back
        self.ledger = WriteBackLedger(store)
        self.source = source
        self.changes = changes or FragmentPoll(client, lookback=self.settings.lookback)
        self.summary = WriteBackSummary(config.name)
        self.log = log.bind(connector=config.name)

    def execute(self) -> WriteBackSummary:
        """Meet every change since the mark, then retry the refusals due. Raises
        `SourceError` (the source out of reach) and `FragmentError` (Fragment's)."""
        mark = self.ledger.mark(self.namespace)
        if mark is None:
            self._start()
            return self.summary
        due = self.ledger.due(self.namespace, utcnow())  # before this pass refuses any
        met: set[str] = set()
        for page in self.changes.pages(mark):
            met.update(self._meet(page.tasks))
            if page.mark is not None:
                self.ledger.set_mark(self.namespace, page.mark)
        retrying = [r for r in due if r.source_id not in met]  # else a newer change was met
        current = self.ledger.tracked(self.namespace, (r.uid for r in retrying))
        for refusal in retrying:
            self.summary.retried += 1
            wanted = refusal.wanted
            observed = Observed(wanted.get("status"), wanted.get("assignee_email"))
            known = current.get(refusal.uid)
            over = None if known is None else known.sides_hash
            self._write(refusal.source_id, refusal.uid, observed, over, previous=refusal)
        self.log.info("write_back_finished", **self.summary.as_json())
        for observer in WRITE_BACK_OBSERVERS:
            observer(self.summary)
        return self.summary

    def _start(self) -> None:
        """Write-back's first pass: it carries operators' changes from now on, not every
        status a task ever had (nor those of tasks pushed before hashes were kept). The
        tasks a poll from now would read again (its lookback) are met as they stand."""
        start = self.changes.now()
        mark = start
        for page in self.changes.pages(start):
            tracked = self.ledger.tracked(self.namespace, (t.uid for t in page.tasks))
            for task in page.tasks:
                known = tracked.get(task.uid)
                if known is not None:
                    observed = Observed.of(task.task)
                    self.ledger.wrote(
                        self.namespace, known.source_id, task.uid, observed.hash, known.sides_hash
                    )
            mark = max(mark, page.mark or mark)
        self.ledger.set_mark(self.namespace, mark)
        self.log.info("write_back_started", detail="changes in Fragment from now on")

    def _meet(self, tasks: list[ChangedTask]) -> set[str]:
        """Write back what changed among `tasks`; the tickets whose change was met."""
        tracked = self.ledger.tracked(self.namespace, (t.uid for t in tasks))
        mine = [(t, tracked[t.uid]) for t in tasks if t.uid in tracked]
        written = self.ledger.written(self.namespace, (known.source_id for _, known in mine))
        self.summary.seen += len(mine)
        met = set()
        for task, known in mine:
            observed = Observed.of(task.task)
            last = written.get(known.source_id)
            if last is not None and last.writing is not None:
                pass  # a write a crash cut short may not have landed: write again
            elif observed.hash == baseline(known, last):
                self.summary.echoes += 1
                continue
            self._write(known.source_id, task.uid, observed, known.sides_hash)
            met.add(known.source_id)
        return met

    def _write(
        self,
        source_id: str,
        uid: str,
        observed: Observed,
        over: str | None,
        previous: Refusal | None = None,
    ) -> None:
        """Write `observed` to ticket `source_id` as configured, and record what came of it;
        `over` is the task's `sides_hash` now (what the source had when last pushed)."""
        ns = self.namespace
        try:
            change = self._change(source_id, observed)
            if change.fields:
                self.ledger.writing(ns, source_id, uid, observed.hash)
                self.source.write(change)
                self.summary.written += 1
                self.log.info("written_back", ticket=source_id, fields=list(change.fields))
        except WriteConflict as exc:
            self.summary.conflicts += 1
            self.log.warning("write_back_conflict", ticket=source_id, error=str(exc))
            self.ledger.conflicted(ns, source_id, uid, str(exc), observed.hash, over)
        except WriteRefused as exc:
            self.summary.refused += 1
            self.log.warning("write_back_refused", ticket=source_id, error=str(exc))
            self.ledger.refused(
                ns,
                source_id,
                uid,
                wanted=observed.wanted(),
                written_hash=observed.hash,
                over=over,
                field=exc.field,
                error=str(exc),
                previous=previous,
            )
        else:
            self.ledger.wrote(ns, source_id, uid, observed.hash, over)

    def _change(self, source_id: str, observed: Observed) -> TicketWrite:
        """What `observed` asks of the ticket, as configured. Raises `WriteRefused` for an
        assignee whose email names no user of the source."""
        table: dict[str, str] = {str(key): name for key, name in self.settings.status.items()}
        status = None if observed.status is None else table.get(observed.status)
        if not self.settings.assignee:
            return TicketWrite(source_id, status=status)
        assignee_id = None
        if observed.email is not None:
            assignee_id = self._user_id(observed.email)
            if assignee_id is None:
                raise WriteRefused(
                    self.config.name,
                    source_id,
                    "assignee",
                    observed.email,
                    f"no {self.config.kind} user is known by this email: name them in "
                    f"[connectors.{self.config.name}.people] table",
                )
        return TicketWrite(source_id, status=status, assign=True, assignee_id=assignee_id)

    def _user_id(self, email: str) -> str | None:
        """The source user id of `email`: the config's people table first, then the cache."""
        wanted = email.casefold()
        people = self.config.people.values()
        named = [p.user_id for p in people if (p.email or "").casefold() == wanted]
        if len(named) == 1:
            return named[0]
        return self.ledger.user_ids(self.namespace, [email]).get(wanted)
