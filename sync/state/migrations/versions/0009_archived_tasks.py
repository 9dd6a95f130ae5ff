"""Whether each tracked task was last pushed archived.

A census (`sync.census`) compares the source's ids with the tracked tasks that
are not archived, read in id order; a task archived by a deletion the source
reported, or by a census, is left out of the next one's count and share.
The census's own row per connector says when it last began, for the daemon's
schedule to survive a restart. Existing rows read as not archived: a census
archives any that are gone again, and pushing an archived task's tombstone once
more changes nothing in Fragment.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sync.state.schema import ExactText, UtcTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("archived", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "censuses",
        sa.Column("connector", ExactText(255), primary_key=True),
        sa.Column("began_at", UtcTime(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("censuses")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("archived")
