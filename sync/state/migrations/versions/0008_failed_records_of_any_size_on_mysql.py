"""On MySQL and MariaDB: a failed item keeps a record of any size.

Their `TEXT` holds 64 KB, so a failed ticket bigger than that made the whole
checkpoint fail with `Data too long for column 'record'`, on every pass, and
the good tickets of its batch were pushed again each time. The record becomes
`LONGTEXT`. (Error texts are bounded where they are written instead: see
`sync.state.error_text`.) Other databases are unchanged: their text has no such cap.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _convert(mysql.LONGTEXT())


def downgrade() -> None:
    # Refused, in strict mode, while a record is longer than `TEXT` holds.
    _convert(sa.Text())


def _convert(kind: sa.types.TypeEngine[str]) -> None:
    """One `ALTER TABLE`: it rebuilds the table."""
    dialect = op.get_bind().dialect
    if dialect.name not in ("mysql", "mariadb"):
        return
    op.execute(f"ALTER TABLE failed_items MODIFY record {kind.compile(dialect=dialect)} NULL")
