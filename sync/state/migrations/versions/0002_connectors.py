"""Per-connector settings fingerprint, so a changed mapping triggers a full pass.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connectors",
        sa.Column("connector", sa.String(255), primary_key=True),
        sa.Column("settings_fingerprint", sa.String(32), nullable=False),
        sa.Column("full_pass_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("connectors")
