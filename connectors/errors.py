"""Failures a connector raises, named by what the engine does with them.

`SourceError` fails this connector's run (the others go on) and leaves its
watermark where the last acknowledged batch put it. Its message is redacted
as it is built (`sync_http.redaction`): a source's answer quoted in it may
echo a credential, and nothing that shows the error need think of it.
`StopRequested` (from `sync_http.ratelimit`, where waits end on a stop) is
re-exported: a connector's waits end with it too.
"""

from __future__ import annotations

from sync_http.ratelimit import StopRequested
from sync_http.redaction import redact

__all__ = ["SourceError", "StopRequested"]


class SourceError(Exception):
    """The source could not be read; this connector's run fails with this message."""

    def __init__(self, connector: str, message: str) -> None:
        message = redact(message)
        super().__init__(f"connector {connector!r}: {message}")
        self.connector = connector
        self.reason = message
