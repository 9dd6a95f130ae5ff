"""Failures a connector raises, named by what the engine does with them.

`SourceError` fails this connector's run (the others go on) and leaves its
watermark where the last acknowledged batch put it.
"""

from __future__ import annotations


class SourceError(Exception):
    """The source could not be read; this connector's run fails with this message."""

    def __init__(self, connector: str, message: str) -> None:
        super().__init__(f"connector {connector!r}: {message}")
        self.connector = connector
        self.reason = message


class StopRequested(Exception):
    """A stop was requested (SIGTERM, a timeout) while a connector waited; not a failure."""
