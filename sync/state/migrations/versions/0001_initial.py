"""Initial state schema: watermarks, tasks, runs, failed items.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(255)
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "watermarks",
        sa.Column("connector", ID, primary_key=True),
        sa.Column("cursor_kind", sa.String(16), nullable=False),
        sa.Column("cursor_value", sa.String(64), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
    )
    op.create_table(
        "tasks",
        sa.Column("connector", ID, primary_key=True),
        sa.Column("source_id", ID, primary_key=True),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("source_cursor", sa.String(64), nullable=False),
        sa.Column("pushed_at", UTC_TIME, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("connector", ID, nullable=False),
        sa.Column("name", ID, nullable=False),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("ended_at", UTC_TIME),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("pulled", sa.Integer, nullable=False),
        sa.Column("pushed", sa.Integer, nullable=False),
        sa.Column("unchanged", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("watermark_before", sa.String(64)),
        sa.Column("watermark_after", sa.String(64)),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_runs_connector", "runs", ["connector"])
    op.create_table(
        "failed_items",
        sa.Column("connector", ID, primary_key=True),
        sa.Column("source_id", ID, primary_key=True),
        sa.Column("uid", sa.String(36)),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("field", sa.String(255)),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("cursor_value", sa.String(64)),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("record", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_seen", UTC_TIME, nullable=False),
        sa.Column("last_seen", UTC_TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("failed_items")
    op.drop_index("ix_runs_connector", "runs")
    op.drop_table("runs")
    op.drop_table("tasks")
    op.drop_table("watermarks")
