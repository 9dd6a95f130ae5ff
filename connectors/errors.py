"""Failures a connector raises, named by what the engine does with them.

`SourceError` fails this connector's run (the others go on) and leaves its
watermark where the last acknowledged batch put it. Its message is redacted
as it is built (`connectors.redaction`): a source's answer quoted in it may
echo a credential, and nothing that shows the error need think of it.
"""

from __future__ import annotations

from connectors.redaction import redact


class SourceError(Exception):
    """The source could not be read; this connector's run fails with this message."""

    def __init__(self, connector: str, message: str) -> None:
        message = redact(message)
        super().__init__(f"connector {connector!r}: {message}")
        self.connector = connector
        self.reason = message


class StopRequested(Exception):
    """A stop was requested (SIGTERM, a timeout) while a connector waited; not a failure."""
