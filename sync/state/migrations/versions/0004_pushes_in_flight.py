"""Pushes in flight: tickets sent to Fragment whose answer is not recorded yet.

A batch Fragment applied may never be checkpointed (its answer lost, the
process killed). If such a ticket is deleted next, only this record tells
the engine its task may exist and must be archived.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pushes_in_flight",
        sa.Column("connector", sa.String(255), primary_key=True),
        sa.Column("source_id", sa.String(255), primary_key=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pushes_in_flight")
