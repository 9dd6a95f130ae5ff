"""The source's content token at the last complete pass.

A connector that can fingerprint its whole source cheaply (a file's hash)
lets a pass over an unchanged source end before reading it.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connectors") as batch:
        batch.add_column(sa.Column("source_snapshot", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connectors") as batch:
        batch.drop_column("source_snapshot")
