"""The people cache: what each connector's source said of a user id (see sync.people).

One row per (connector, user id): the email or None, the person's name, why
the email is missing, when the source answered, and when an answer last
changed the email (a later pass then reads every ticket again). Nothing to
migrate: the cache fills as passes resolve assignees.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sync.state.schema import ExactText, UtcTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("connector", ExactText(255), primary_key=True),
        sa.Column("user_id", ExactText(255), primary_key=True),
        sa.Column("email", sa.String(320)),
        sa.Column("name", sa.String(255)),
        sa.Column("reason", sa.String(255)),
        sa.Column("resolved_at", UtcTime(), nullable=False),
        sa.Column("changed_at", UtcTime()),
    )


def downgrade() -> None:
    op.drop_table("people")
