"""The failure kinds, named by what the runtime does with them.

The intents (defined in `connectors.errors`, where the sources reach them too):

- `FixConfiguration`: a setting is wrong and `key` names it. At start the
  command exits 2 before any work (`ConfigError`; `sync.state.StateError`,
  naming `state.url`); in a pass, this connector's run fails naming the key
  (`FragmentAuthError`: Fragment refused `fragment.token`).
- `SkipTicket`: record the ticket as failed, naming the connector, the ticket
  and the field, and go on (`MappingError`).
- `RetryLater`: the pass stops with its checkpoint intact and the next pass
  resumes there (`FragmentUnavailable`: Fragment's retries ran out).
- `StopConnector`: this connector's run fails, its checkpoint intact, and the
  other connectors go on (`connectors.errors.SourceError`: the source could
  not be read; `sync.state.LeaseLost`: another process runs the connector now,
  outcome `lease_lost`).

A pass stopped by `RetryLater`, `FixConfiguration` or `StopConnector` ends
`failed` with the error's message (`sync.summary.outcome_of`); a stop request
(`StopRequested`, `RunInterrupted` here) is no failure: it ends `interrupted`.
Handlers catch the intent; a few catch a cause where the stage that failed
matters more than what to do (a source failing part-way: what it gave is
still pushed, `sync.run` and `sync.pull` catch `SourceError`). Below these,
each layer's own errors (`sync_http.session.RequestFailed`, the paginators'
`PaginationLoop`, the file formats' `UnreadableFile`) are translated into a
kind where they leave it, by whoever knows what the failure means there.
Every message is redacted as the error is built (`sync_http.redaction`): it
may quote a ticket's value or a server's answer, and whatever shows it (an
output, a log line, a row of the state) gets it clean.
"""

from __future__ import annotations

from connectors.errors import (
    FixConfiguration,
    RetryLater,
    SkipTicket,
    SourceError,
    StopConnector,
    StopRequested,
    SyncError,
    WriteRefused,
)
from sync_http.redaction import redact

__all__ = [
    "ConfigError",
    "FixConfiguration",
    "FragmentAuthError",
    "FragmentError",
    "FragmentUnavailable",
    "MappingError",
    "RetryLater",
    "RunInterrupted",
    "SkipTicket",
    "SourceError",
    "StopConnector",
    "StopRequested",
    "SyncError",
    "WriteRefused",
    "first_line",
]


class ConfigError(FixConfiguration):
    """The configuration is invalid: `key` says where, the message what is wrong."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message, key=key)
        self.reason = redact(message)


class MappingError(SkipTicket):
    """A ticket can't be turned into a task; the run records it and goes on."""


class FragmentError(SyncError):
    """Fragment could not take a request; its subclasses say what to do about it."""


class FragmentUnavailable(FragmentError, RetryLater):
    """Fragment did not take a request: its retries ran out, or it failed it for a reason no
    token fixes (404, 409, an answer too large). The pass stops at its checkpoint; the next
    one sends what was not acknowledged again."""


class FragmentAuthError(FragmentError, FixConfiguration):
    """Fragment refused the token (401/403); nothing will go through until it is fixed."""

    def __init__(self, message: str, *, key: str = "fragment.token") -> None:
        super().__init__(message, key=key)


class RunInterrupted(SyncError, StopRequested):
    """A stop was requested; the run ended after its batch in flight, state saved."""


def first_line(exc: BaseException) -> str:
    """The first line of `exc`'s message, or its class name when it has none.

    For one-line reports of an error whose message may run on (a database
    driver's, with the statement and a link after it).
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
