"""Source connectors: one module per ticket system, plus the contract they share.

Start at `connectors.base`: `Connector`, `SourceTicket`, `BadRecord`.
"""

from connectors.base import BadRecord, Connector, ConnectorOptions, Cursor, SourceTicket
from connectors.errors import SourceError

__all__ = ["BadRecord", "Connector", "ConnectorOptions", "Cursor", "SourceError", "SourceTicket"]
