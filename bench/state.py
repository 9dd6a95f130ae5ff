"""Where a scenario keeps its sync state: a SQLite file, or a fresh PostgreSQL database.

SQLite is the default, as it is the daemon's. `--state-server` names a
PostgreSQL server (production's state) on which each source's scenario gets a
database of its own, dropped when the figures are taken.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa


@contextlib.contextmanager
def state_database(server: str | None, directory: Path, name: str) -> Iterator[str]:
    """The state URL of one scenario: `directory`'s SQLite file, or database `name` on `server`."""
    if server is None:
        yield f"sqlite:///{directory / 'state.db'}"
        return
    database = f"{name}_{os.getpid()}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
        yield (
            sa.engine.make_url(server).set(database=database).render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()
