"""A summary row per connector, and the run history indexed for "last run" and pruning.

`connector_stats` holds, per connector, its last pass (id, times, outcome,
error, counts), when a pass last ended ok, totals of passes and tickets
since the row was made, its tasks and failed items as counted when they
last changed, and when a pass of it was last written to `runs`. Every pass
updates it in place (`sync.state.history`), so metrics and the status pages
read one row per connector, and idle passes need no `runs` row. It is
filled here from the history and the tables it counts.

`runs` gets an index on (connector, started_at), which serves "the newest
runs of a connector" and replaces the one on connector alone, and one on
started_at, for pruning by age.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sync.state.schema import ExactText, UtcTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_runs_connector", table_name="runs")
    op.create_index("ix_runs_connector_started", "runs", ["connector", "started_at"])
    op.create_index("ix_runs_started", "runs", ["started_at"])
    stats = op.create_table(
        "connector_stats",
        sa.Column("connector", ExactText(255), primary_key=True),
        sa.Column("name", ExactText(255), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("started_at", UtcTime(), nullable=False),
        sa.Column("ended_at", UtcTime()),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("pulled", sa.Integer, nullable=False),
        sa.Column("pushed", sa.Integer, nullable=False),
        sa.Column("unchanged", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("last_ok_at", UtcTime()),
        sa.Column("passes", sa.BigInteger, nullable=False),
        sa.Column("pulled_total", sa.BigInteger, nullable=False),
        sa.Column("pushed_total", sa.BigInteger, nullable=False),
        sa.Column("failed_total", sa.BigInteger, nullable=False),
        sa.Column("tasks", sa.Integer, nullable=False),
        sa.Column("failed_items", sa.Integer, nullable=False),
        sa.Column("recorded_at", UtcTime()),
    )
    _fill(stats)


def _fill(stats: sa.Table) -> None:
    """One row per connector with a run, from its newest run, its history's totals, its counts."""
    conn = op.get_bind()
    runs = sa.table(
        "runs",
        *(sa.column(name) for name in (
            "id", "connector", "name", "outcome", "error", "pulled", "pushed", "unchanged",
            "failed",
        )),
        sa.column("started_at", UtcTime()),
        sa.column("ended_at", UtcTime()),
    )  # fmt: skip
    tasks = sa.table("tasks", sa.column("connector"))
    failed_items = sa.table("failed_items", sa.column("connector"))
    totals = {
        row.connector: row
        for row in conn.execute(
            sa.select(
                runs.c.connector,
                sa.func.count().label("passes"),
                sa.func.coalesce(sa.func.sum(runs.c.pulled), 0).label("pulled"),
                sa.func.coalesce(sa.func.sum(runs.c.pushed), 0).label("pushed"),
                sa.func.coalesce(sa.func.sum(runs.c.failed), 0).label("failed"),
                sa.func.max(
                    sa.case((runs.c.outcome == "ok", runs.c.ended_at)), type_=UtcTime()
                ).label("last_ok"),
            ).group_by(runs.c.connector)
        )
    }
    counts: dict[str, dict[str, int]] = {}
    for table, column in ((tasks, "tasks"), (failed_items, "failed_items")):
        for connector, count in conn.execute(
            sa.select(table.c.connector, sa.func.count()).group_by(table.c.connector)
        ):
            counts.setdefault(connector, {})[column] = count
    rows = []
    for connector, total in totals.items():
        last = conn.execute(
            sa.select(runs)
            .where(runs.c.connector == connector)
            .order_by(runs.c.started_at.desc())
            .limit(1)
        ).first()
        if last is None:
            continue
        rows.append(
            {
                "connector": connector,
                "name": last.name,
                "run_id": last.id,
                "started_at": last.started_at,
                "ended_at": last.ended_at,
                "outcome": last.outcome,
                "error": last.error,
                "pulled": last.pulled,
                "pushed": last.pushed,
                "unchanged": last.unchanged,
                "failed": last.failed,
                "last_ok_at": total.last_ok,
                "passes": total.passes,
                "pulled_total": total.pulled,
                "pushed_total": total.pushed,
                "failed_total": total.failed,
                "tasks": counts.get(connector, {}).get("tasks", 0),
                "failed_items": counts.get(connector, {}).get("failed_items", 0),
                "recorded_at": last.started_at,
            }
        )
    if rows:
        op.bulk_insert(stats, rows)


def downgrade() -> None:
    op.drop_table("connector_stats")
    op.drop_index("ix_runs_started", table_name="runs")
    op.drop_index("ix_runs_connector_started", table_name="runs")
    op.create_index("ix_runs_connector", "runs", ["connector"])
