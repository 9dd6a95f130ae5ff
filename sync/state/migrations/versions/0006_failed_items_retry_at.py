"""When each failed item may be tried again, indexed.

A pass used to read every failed item (record included) to find the few due
for a retry: a million items waiting out their backoff cost a million rows
each interval. Existing retryable items are due at once.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("failed_items") as batch:
        batch.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
    items = sa.table(
        "failed_items",
        sa.column("retry_at", sa.DateTime(timezone=True)),
        sa.column("last_seen", sa.DateTime(timezone=True)),
        sa.column("record", sa.Text),
        sa.column("stage", sa.String(16)),
    )
    op.execute(
        items.update()
        .where(items.c.record.is_not(None), items.c.stage != "source")
        .values(retry_at=items.c.last_seen)
    )
    op.create_index("ix_failed_items_due", "failed_items", ["connector", "retry_at", "source_id"])


def downgrade() -> None:
    op.drop_index("ix_failed_items_due", "failed_items")
    with op.batch_alter_table("failed_items") as batch:
        batch.drop_column("retry_at")
