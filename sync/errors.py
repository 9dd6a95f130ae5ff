"""The engine's failure kinds, named by what the runtime does with them.

- `ConfigError`: fail at start, exit 2, before any work; names the key.
- `MappingError`: skip this ticket, record it as failed, go on.
- `FragmentUnavailable` / `FragmentAuthError`: fail this connector's run; the
  watermark stays at the last acknowledged batch and the next run resumes.
- `connectors.errors.SourceError`: fail this connector's run, same as above.

Every message is redacted as the error is built (`sync_http.redaction`): it
may quote a ticket's value or a server's answer, and whatever shows it (an
output, a log line, a row of the state) gets it clean.
"""

from __future__ import annotations

from connectors.errors import StopRequested
from sync_http.redaction import redact


class SyncError(Exception):
    """Base of every error fragment-sync raises on purpose; its message is redacted."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class ConfigError(SyncError):
    """The configuration is invalid: `key` says where, the message what is wrong."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.reason = redact(message)


class MappingError(SyncError):
    """A ticket can't be turned into a task; the run records it and goes on."""

    def __init__(self, connector: str, source_id: str, field: str, message: str) -> None:
        super().__init__(
            f"connector {connector!r}, ticket {source_id!r}, field {field!r}: {message}"
        )
        self.connector = connector
        self.source_id = source_id
        self.field = field
        self.reason = redact(message)


class FragmentError(SyncError):
    """Fragment could not take a request."""


class FragmentUnavailable(FragmentError):
    """Retries toward Fragment ran out; the run stops with its checkpoint intact."""


class FragmentAuthError(FragmentError):
    """Fragment refused the token (401/403); nothing will go through until it is fixed."""


class RunInterrupted(SyncError, StopRequested):
    """A stop was requested; the run ended after its batch in flight, state saved."""


def first_line(exc: BaseException) -> str:
    """The first line of `exc`'s message, or its class name when it has none.

    For one-line reports of an error whose message may run on (a database
    driver's, with the statement and a link after it).
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
