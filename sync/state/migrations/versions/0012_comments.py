"""Comment sync: each source comment met, whether it is posted, and when sync began.

`comments` holds one row per source comment comment sync met (`sync.comments`):
pending until posted, `sending` from just before its POST (it may have landed:
the next try looks first), then posted or failed. `comment_sync` holds, per
connector, when comment sync was first turned on (older comments are posted
only with `backfill`) and when a backfill last read every ticket for them.
New tables only: an existing state is left as it was.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sync.state.schema import ExactText, LongText, UtcTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comments",
        sa.Column("connector", ExactText(255), primary_key=True),
        sa.Column("source_id", ExactText(255), primary_key=True),
        sa.Column("comment_id", ExactText(255), primary_key=True),
        sa.Column("created_at", UtcTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("body", LongText()),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("first_failed", UtcTime()),
        sa.Column("retry_at", UtcTime()),
        sa.Column("posted_at", UtcTime()),
        sa.Column("fragment_id", sa.String(64)),
    )
    op.create_index("ix_comments_state", "comments", ["connector", "state", "created_at"])
    op.create_table(
        "comment_sync",
        sa.Column("connector", ExactText(255), primary_key=True),
        sa.Column("since", UtcTime(), nullable=False),
        sa.Column("backfilled_at", UtcTime()),
    )


def downgrade() -> None:
    op.drop_table("comment_sync")
    op.drop_index("ix_comments_state", table_name="comments")
    op.drop_table("comments")
