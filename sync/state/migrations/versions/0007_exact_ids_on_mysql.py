"""On MySQL and MariaDB: ids compared byte for byte, times kept to the microsecond.

Their default collations compare text ignoring case and accents (MariaDB's
also trailing spaces), so tickets `ABC-1` and `abc-1` shared one row of
state; and `DATETIME` kept whole seconds. Other databases are unchanged.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sync.state.schema import ExactText, UtcTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# (table, column, nullable) of every id and every time column at revision 0006.
_IDS = (
    ("watermarks", "connector", False),
    ("tasks", "connector", False),
    ("tasks", "source_id", False),
    ("runs", "connector", False),
    ("runs", "name", False),
    ("failed_items", "connector", False),
    ("failed_items", "source_id", False),
    ("connectors", "connector", False),
    ("leases", "connector", False),
    ("leases", "owner", False),
    ("pushes_in_flight", "connector", False),
    ("pushes_in_flight", "source_id", False),
)
_TIMES = (
    ("watermarks", "updated_at", False),
    ("tasks", "pushed_at", False),
    ("runs", "started_at", False),
    ("runs", "ended_at", True),
    ("failed_items", "first_seen", False),
    ("failed_items", "last_seen", False),
    ("failed_items", "retry_at", True),
    ("connectors", "full_pass_at", False),
    ("leases", "acquired_at", False),
    ("leases", "expires_at", False),
    ("pushes_in_flight", "sent_at", False),
)


def upgrade() -> None:
    _convert(ExactText(255), UtcTime())


def downgrade() -> None:
    _convert(sa.String(255), sa.DateTime(timezone=True))


def _convert(text: sa.String, time: sa.DateTime) -> None:
    """One `ALTER TABLE` per table: each rebuilds it, and `tasks` can hold millions of rows."""
    dialect = op.get_bind().dialect
    if dialect.name not in ("mysql", "mariadb"):
        return
    changes: dict[str, list[str]] = {}
    for columns, kind in ((_IDS, text), (_TIMES, time)):
        for table, column, nullable in columns:
            null = "NULL" if nullable else "NOT NULL"
            changes.setdefault(table, []).append(
                f"MODIFY {column} {kind.compile(dialect=dialect)} {null}"
            )
    for table, modifications in changes.items():
        op.execute(f"ALTER TABLE {table} {', '.join(modifications)}")
