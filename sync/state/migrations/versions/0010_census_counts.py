"""What each connector's last census found and did, for `status` and the status page.

`gone`: the live tasks whose tickets the source no longer listed; `archived`: the
tasks it archived; `forced`: whether it was told to archive beyond
`census_max_share` (`census --force`). A refused census shows as its outcome,
`refused`, with what it would have archived in `gone`. Rows of censuses taken
before this revision read as not forced, their counts unknown (NULL).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("censuses") as batch:
        batch.add_column(sa.Column("gone", sa.Integer, nullable=True))
        batch.add_column(sa.Column("archived", sa.Integer, nullable=True))
        batch.add_column(sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("censuses") as batch:
        batch.drop_column("forced")
        batch.drop_column("archived")
        batch.drop_column("gone")
