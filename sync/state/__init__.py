"""The state: watermarks, pushed-content hashes, run history, failed items, leases.

`store` is the API the engine and the shell use (re-exported here);
`bootstrap` opens a database and brings its schema up to date (the Alembic
migrations beside it); `bulk` holds the dialect-specific SQL of a batch;
`history` keeps the passes' summary rows and run history, `upkeep` prunes that
history and keeps PostgreSQL's statistics in step; `text` makes what is kept
about a failure storable and redacted; `comments` keeps comment sync's rows
(`CommentLedger`, over a `StateStore`); `claims` divides the daemon's passes
between replicas (`Claims`, over a `StateStore`); `schema` declares the tables. When a
failed item is due again is `sync.failures`' policy, not the store's.
"""

from sync.state.bootstrap import HEAD_REVISION, MIGRATIONS, Pool, create_private_file
from sync.state.history import KEEP_RUNS, ConnectorStats, HistoryPolicy, PassRecord
from sync.state.store import (
    ABANDONED,
    STATE_FAILURES,
    UNREACHABLE,
    Acked,
    CensusRecord,
    FailedItem,
    KnownPerson,
    Lease,
    LeaseLost,
    PassStart,
    RunRecord,
    StateError,
    StateStore,
    StoredTask,
    state_failure_message,
    unreachable_message,
    utcnow,
)
from sync.state.text import (
    MAX_ERROR_TEXT,
    error_text,
    record_json,
    storable_text,
    ticket_json,
    ticket_parts,
)

__all__ = [
    "ABANDONED",
    "HEAD_REVISION",
    "KEEP_RUNS",
    "MAX_ERROR_TEXT",
    "MIGRATIONS",
    "STATE_FAILURES",
    "UNREACHABLE",
    "Acked",
    "CensusRecord",
    "ConnectorStats",
    "FailedItem",
    "HistoryPolicy",
    "KnownPerson",
    "Lease",
    "LeaseLost",
    "PassRecord",
    "PassStart",
    "Pool",
    "RunRecord",
    "StateError",
    "StateStore",
    "StoredTask",
    "create_private_file",
    "error_text",
    "record_json",
    "state_failure_message",
    "storable_text",
    "ticket_json",
    "ticket_parts",
    "unreachable_message",
    "utcnow",
]
