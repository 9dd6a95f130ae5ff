"""The state tables, as SQLAlchemy Core metadata.

Migrations (`sync/state/migrations/versions/`) create and change these
tables; this module describes the current head for queries. Every table is
keyed by the connector's `uid_namespace`, not its display name, so renaming
a connector in config keeps its watermark, hashes and failed items.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from connectors.values import MAX_CURSOR_TEXT

metadata = sa.MetaData()


class ExactText(sa.String):
    """Text that equals only the same text, on every backend.

    MySQL's and MariaDB's default collations compare ignoring case and accents
    (MariaDB's also trailing spaces), so tickets `ABC-1` and `abc-1` shared
    one row of state there. They get a binary collation that doesn't pad.
    """

    cache_ok = True


class UtcTime(sa.DateTime):
    """A UTC time to the microsecond on every backend (MySQL's `DATETIME` keeps whole seconds)."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)


@compiles(ExactText, "mysql")
@compiles(ExactText, "mariadb")
def _exact_text_on_mysql(kind: ExactText, compiler: Any, **_: Any) -> str:
    dialect = compiler.dialect
    if dialect.is_mariadb:
        collation = "utf8mb4_nopad_bin"
    elif (dialect.server_version_info or (8,)) >= (8,):
        collation = "utf8mb4_0900_bin"
    else:  # MySQL 5.7: its binary collation pads (trailing spaces compare equal)
        collation = "utf8mb4_bin"
    return f"VARCHAR({kind.length}) CHARACTER SET utf8mb4 COLLATE {collation}"


class LongText(sa.Text):
    """Text of any length: MySQL's and MariaDB's `TEXT` holds 64 KB, less than a big ticket."""

    cache_ok = True


@compiles(LongText, "mysql")
@compiles(LongText, "mariadb")
def _long_text_on_mysql(_kind: LongText, _compiler: Any, **_: Any) -> str:
    # Compiled by name: importing MySQL's dialect types would load it for every backend.
    return "LONGTEXT"


@compiles(UtcTime, "mysql")
@compiles(UtcTime, "mariadb")
def _utc_time_on_mysql(_kind: UtcTime, _compiler: Any, **_: Any) -> str:
    return "DATETIME(6)"


MAX_ID_LENGTH = 255
"""Characters of the longest source id (or connector name) the tables keep."""
ID = ExactText(MAX_ID_LENGTH)
CURSOR = sa.String(MAX_CURSOR_TEXT)
UTC_TIME = UtcTime()
LONG_TEXT = LongText()

watermarks = sa.Table(
    "watermarks",
    metadata,
    sa.Column("connector", ID, primary_key=True),
    sa.Column("cursor_kind", sa.String(16), nullable=False),
    sa.Column("cursor_value", CURSOR, nullable=False),
    sa.Column("updated_at", UTC_TIME, nullable=False),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("connector", ID, primary_key=True),
    sa.Column("source_id", ID, primary_key=True),
    sa.Column("uid", sa.String(36), nullable=False),
    sa.Column("content_hash", sa.String(32), nullable=False),
    sa.Column("source_cursor", CURSOR, nullable=False),
    sa.Column("pushed_at", UTC_TIME, nullable=False),
    # Last pushed archived (a deletion, or gone at a census): a census leaves it out.
    sa.Column("archived", sa.Boolean, nullable=False, server_default=sa.false()),
    # The hash of the status and assignee last pushed (sync.mapping.sides_hash): two-way
    # sync tells an operator's change in Fragment from the echo of a push by it.
    sa.Column("sides_hash", sa.String(32)),
    # Two-way sync finds a changed task's ticket by its uid.
    sa.Index("ix_tasks_uid", "connector", "uid"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("connector", ID, nullable=False),
    sa.Column("name", ID, nullable=False),
    sa.Column("started_at", UTC_TIME, nullable=False),
    sa.Column("ended_at", UTC_TIME),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("pulled", sa.Integer, nullable=False, default=0),
    sa.Column("pushed", sa.Integer, nullable=False, default=0),
    sa.Column("unchanged", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("requests", sa.Integer, nullable=False, default=0),
    sa.Column("watermark_before", sa.String(64)),
    sa.Column("watermark_after", sa.String(64)),
    sa.Column("error", sa.Text),
    # "Last run" and the history page read a connector's newest runs; pruning by age reads
    # the oldest of every connector (migration 0014).
    sa.Index("ix_runs_connector_started", "connector", "started_at"),
    sa.Index("ix_runs_started", "started_at"),
)

failed_items = sa.Table(
    "failed_items",
    metadata,
    sa.Column("connector", ID, primary_key=True),
    sa.Column("source_id", ID, primary_key=True),
    sa.Column("uid", sa.String(36)),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("field", sa.String(255)),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("cursor_value", CURSOR),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Column("record", LONG_TEXT),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("first_seen", UTC_TIME, nullable=False),
    sa.Column("last_seen", UTC_TIME, nullable=False),
    # When a pass may try it again; None for what can't be retried (no record to map).
    sa.Column("retry_at", UTC_TIME),
    # A pass reads the items due, not every one: a range, in the order it pages them.
    sa.Index("ix_failed_items_due", "connector", "retry_at", "source_id"),
)

connectors = sa.Table(
    "connectors",
    metadata,
    sa.Column("connector", ID, primary_key=True),
    # The hash of the settings the last complete pass ran with (see sync.run).
    sa.Column("settings_fingerprint", sa.String(32), nullable=False),
    sa.Column("full_pass_at", UTC_TIME, nullable=False),
    # The source's content token then, if its connector gives one (see Connector.snapshot).
    sa.Column("source_snapshot", sa.String(128)),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("connector", ID, primary_key=True),
    # Who runs the connector now ("host:pid:nonce"), and until when unless renewed.
    sa.Column("owner", ID, nullable=False),
    sa.Column("acquired_at", UTC_TIME, nullable=False),
    sa.Column("expires_at", UTC_TIME, nullable=False),
    # When the daemon's next pass of it is due (None: now); replicas claim the rows due
    # (sync.state.claims). Released, the owner is "" and expires_at the release time.
    sa.Column("due_at", UTC_TIME),
    sa.Index("ix_leases_due", "due_at"),
)

pushes_in_flight = sa.Table(
    "pushes_in_flight",
    metadata,
    # Written before a batch goes out, cleared by its checkpoint: a row left here means
    # Fragment may hold the task though no hash was recorded (see sync.run).
    sa.Column("connector", ID, primary_key=True),
    sa.Column("source_id", ID, primary_key=True),
    sa.Column("sent_at", UTC_TIME, nullable=False),
)

censuses = sa.Table(
    "censuses",
    metadata,
    # When the connector's last census began and how it ended (see sync.census).
    sa.Column("connector", ID, primary_key=True),
    sa.Column("began_at", UTC_TIME, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    # Live tasks found gone, and archived (NULL: a census recorded before 0010).
    sa.Column("gone", sa.Integer, nullable=True),
    sa.Column("archived", sa.Integer, nullable=True),
    # Told to archive beyond census_max_share (`census --force`).
    sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
)

MAX_EMAIL_LENGTH = 320
"""The longest email address the people cache keeps (RFC 5321's 64 + 1 + 255)."""

people = sa.Table(
    "people",
    metadata,
    # What each connector's source said of a user id (see sync.people): never a secret.
    sa.Column("connector", ID, primary_key=True),
    sa.Column("user_id", ID, primary_key=True),
    sa.Column("email", sa.String(MAX_EMAIL_LENGTH)),
    sa.Column("name", sa.String(255)),
    # Why `email` is None, in a few words ("email hidden", "no such user").
    sa.Column("reason", sa.String(255)),
    # When the source last answered for them: the cache's TTL counts from here.
    sa.Column("resolved_at", UTC_TIME, nullable=False),
    # When an answer last changed their email (None: never since first asked): a pass
    # reads every ticket again once this is later than its last complete pass knew.
    sa.Column("changed_at", UTC_TIME),
)

comments = sa.Table(
    "comments",
    metadata,
    # Each source comment comment sync met (see sync.comments), by its ticket and its own id.
    sa.Column("connector", ID, primary_key=True),
    sa.Column("source_id", ID, primary_key=True),
    sa.Column("comment_id", ID, primary_key=True),
    sa.Column("created_at", UTC_TIME, nullable=False),
    # pending, sending (written before its POST: it may have landed), posted, failed
    sa.Column("state", sa.String(16), nullable=False),
    # The text to post (kept until posted: later passes post it without reading the source).
    sa.Column("body", LONG_TEXT),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("first_failed", UTC_TIME),
    sa.Column("retry_at", UTC_TIME),
    sa.Column("posted_at", UTC_TIME),
    # Fragment's id of the posted comment, when its answer gave one.
    sa.Column("fragment_id", sa.String(64)),
    sa.Index("ix_comments_state", "connector", "state", "created_at"),
)

comment_sync = sa.Table(
    "comment_sync",
    metadata,
    # When comment sync was first turned on for the connector: comments made before are
    # left out unless `backfill`; when a backfill last read every ticket for them.
    sa.Column("connector", ID, primary_key=True),
    sa.Column("since", UTC_TIME, nullable=False),
    sa.Column("backfilled_at", UTC_TIME),
)

write_backs = sa.Table(
    "write_backs",
    metadata,
    # Two-way sync (sync.write_back): per ticket, what the source last received from Fragment.
    sa.Column("connector", ID, primary_key=True),
    sa.Column("source_id", ID, primary_key=True),
    sa.Column("uid", sa.String(36), nullable=False),
    # The hash of the status and assignee last written back (or met and nothing to write),
    # and the task's `sides_hash` then: while that is still the task's, no push came since,
    # and the source holds what was written.
    sa.Column("written_hash", sa.String(32)),
    sa.Column("written_over", sa.String(32)),
    sa.Column("written_at", UTC_TIME),
    # Written ahead of a write: set, the write may or may not have reached the source.
    sa.Column("writing_hash", sa.String(32)),
    # A refused write: what was asked (JSON: status, assignee), the source's words, and the
    # retry's schedule (sync.failures).
    sa.Column("wanted", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("field", sa.String(64)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_failed", UTC_TIME),
    sa.Column("retry_at", UTC_TIME),
    # A conflict the rule decided (the source won): when, and what Fragment's task said.
    sa.Column("conflict", sa.Text),
    sa.Column("conflict_at", UTC_TIME),
)

write_back_marks = sa.Table(
    "write_back_marks",
    metadata,
    # Where the poll of Fragment's changes resumes, in Fragment's time (sync.changes).
    sa.Column("connector", ID, primary_key=True),
    sa.Column("mark", UTC_TIME, nullable=False),
    sa.Column("updated_at", UTC_TIME, nullable=False),
)
"""Two-way sync: per ticket, what was written back (or refused, or lost to a conflict), and
per connector, where the poll of Fragment's changes resumes."""
connector_stats = sa.Table(
    "connector_stats",
    metadata,
    # One row per connector, updated in place by every pass (see sync.state.history): its last
    # pass, totals since the row was made, and its counts of tasks and failed items as of the
    # last change. Metrics and the status pages read these instead of the history.
    sa.Column("connector", ID, primary_key=True),
    sa.Column("name", ID, nullable=False),
    # The last pass: its id (a `runs` row's when it was recorded), times, outcome and counts.
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("started_at", UTC_TIME, nullable=False),
    sa.Column("ended_at", UTC_TIME),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("pulled", sa.Integer, nullable=False, default=0),
    sa.Column("pushed", sa.Integer, nullable=False, default=0),
    sa.Column("unchanged", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("last_ok_at", UTC_TIME),
    sa.Column("passes", sa.BigInteger, nullable=False, default=0),
    sa.Column("pulled_total", sa.BigInteger, nullable=False, default=0),
    sa.Column("pushed_total", sa.BigInteger, nullable=False, default=0),
    sa.Column("failed_total", sa.BigInteger, nullable=False, default=0),
    # The connector's tasks and failed items, counted when a pass or a command changed them.
    sa.Column("tasks", sa.Integer, nullable=False, default=0),
    sa.Column("failed_items", sa.Integer, nullable=False, default=0),
    # When a pass of it was last written to `runs`: an idle pass is, once per
    # `state.idle_runs_every`.
    sa.Column("recorded_at", UTC_TIME),
)
