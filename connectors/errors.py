"""Failure kinds named by what the engine does with them, and the one a source raises.

The four intents, here because both the sources and the engine reach them
(`sync.errors` re-exports them beside the engine's own kinds):

- `RetryLater`: transient. The pass stops with its checkpoint intact and the
  next pass resumes from it (outcome `failed`: someone may need to know).
- `FixConfiguration`: a setting is wrong; `key` names it. At start the command
  exits 2 before any work; during a pass this connector's run fails naming it.
- `SkipTicket`: this ticket can't go through. It is recorded as failed naming
  the connector, the ticket and the field; the pass goes on.
- `StopConnector`: this connector's run fails with the message, its checkpoint
  intact; the other connectors go on.

`WriteRefused` is the `SkipTicket` of write-back: the source refused to change
one ticket, which is recorded and retried; the pass goes on.

`SourceError`, what a source raises when it can't be read, is a
`StopConnector`. Every message is redacted as it is built
(`sync_http.redaction`): a source's answer or a ticket's value quoted in it may
echo a credential, and nothing that shows the error need think of it.
`StopRequested` (from `sync_http.ratelimit`, where waits end on a stop) is
re-exported: a connector's waits end with it too. It is a request, not a
failure: the pass ends at its last checkpoint (outcome `interrupted`).
The HTTP toolkit raises no intent: the same refused request means one thing
for a source and another for Fragment, so whoever sends it names the failure.
"""

from __future__ import annotations

from sync_http.ratelimit import StopRequested
from sync_http.redaction import redact

__all__ = [
    "FixConfiguration",
    "RetryLater",
    "SkipTicket",
    "SourceError",
    "SourceNotFound",
    "StopConnector",
    "StopRequested",
    "SyncError",
    "WriteConflict",
    "WriteRefused",
]


class SyncError(Exception):
    """Base of every error fragment-sync raises on purpose; its message is redacted."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class RetryLater(SyncError):
    """Transient: the pass stops at its last checkpoint and the next pass resumes there."""


class FixConfiguration(SyncError):
    """A setting is wrong: `key` names it (`fragment.token`, `connectors.NAME.mapping.title`).

    At start the command exits 2 before any work; in a pass, this connector's
    run fails with the message.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class SkipTicket(SyncError):
    """This ticket can't go through: it is recorded as failed and the pass goes on.

    The message names the connector, the ticket and the field; `reason` is
    what is wrong, without them.
    """

    def __init__(self, connector: str, source_id: str, field: str, message: str) -> None:
        super().__init__(
            f"connector {connector!r}, ticket {source_id!r}, field {field!r}: {message}"
        )
        self.connector = connector
        self.source_id = source_id
        self.field = field
        self.reason = redact(message)


class WriteRefused(SkipTicket):
    """The source refused to change this ticket (write-back): its workflow forbids the
    transition, a permission is missing, the ticket is gone.

    Recorded as a failed item of the reverse direction, naming the ticket, the
    field, the value asked (`target`) and the source's own words; retried with
    the usual backoff; the rest of the pass, and the forward sync, go on.
    """

    def __init__(
        self, connector: str, source_id: str, field: str, target: str | None, message: str
    ) -> None:
        asked = "nobody" if target is None else repr(target)
        super().__init__(connector, source_id, field, f"can't set it to {asked}: {message}")
        self.target = target


class WriteConflict(WriteRefused):
    """The ticket changed in the source in a way the conflict rule lets win over Fragment's
    change (the source closed it): recorded as a conflict, not retried."""


class StopConnector(SyncError):
    """This connector's run fails with this message, its checkpoint intact; the others go on."""


class SourceError(StopConnector):
    """The source could not be read; this connector's run fails with this message."""

    def __init__(self, connector: str, message: str) -> None:
        message = redact(message)
        super().__init__(f"connector {connector!r}: {message}")
        self.connector = connector
        self.reason = message


class SourceNotFound(SourceError):
    """The source answered 404: fails the run like any `SourceError`, unless the caller
    asked for one ticket that may be gone since a listing named it."""
