"""Claims: each connector's lease row also holds when its next pass is due.

Replicas sharing a state divide the connectors by claiming the rows whose
`due_at` has come (`sync.state.claims`). The row is kept once made: taking,
renewing and releasing the claim update it, where a lease used to be inserted
and deleted every pass. A lease left from before the upgrade has no due time
yet and reads as due now. An added column and its index only.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sync.state.schema import UtcTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("leases", sa.Column("due_at", UtcTime()))
    op.create_index("ix_leases_due", "leases", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_leases_due", table_name="leases")
    op.drop_column("leases", "due_at")
