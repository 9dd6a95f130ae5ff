"""Two-way sync: what each ticket last received from Fragment, and where the poll resumes.

`tasks.sides_hash` keeps the hash of the status and assignee each push set, so
an operator's change in Fragment is told from the echo of a push; an index on
(connector, uid) finds a changed task's ticket. `write_backs` keeps, per
ticket, what was last written back, a refused write with its retry schedule,
and a conflict the rule decided; `write_back_marks` where each connector's
poll of Fragment's changes resumes. A new column (null until the next push)
and new tables: an existing state keeps working as it was.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sync.state.schema import ExactText, UtcTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("sides_hash", sa.String(32)))
    op.create_index("ix_tasks_uid", "tasks", ["connector", "uid"])
    op.create_table(
        "write_backs",
        sa.Column("connector", ExactText(255), primary_key=True),
        sa.Column("source_id", ExactText(255), primary_key=True),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("written_hash", sa.String(32)),
        sa.Column("written_over", sa.String(32)),
        sa.Column("written_at", UtcTime()),
        sa.Column("writing_hash", sa.String(32)),
        sa.Column("wanted", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("field", sa.String(64)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_failed", UtcTime()),
        sa.Column("retry_at", UtcTime()),
        sa.Column("conflict", sa.Text),
        sa.Column("conflict_at", UtcTime()),
    )
    op.create_table(
        "write_back_marks",
        sa.Column("connector", ExactText(255), primary_key=True),
        sa.Column("mark", UtcTime(), nullable=False),
        sa.Column("updated_at", UtcTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("write_back_marks")
    op.drop_table("write_backs")
    op.drop_index("ix_tasks_uid", table_name="tasks")
    op.drop_column("tasks", "sides_hash")
