"""The state database's connection pool: pinged after idling, not on every checkout.

`pool_pre_ping` cost an idle pass nine round trips. A connection handed out
again at once is used as is; one that sat unused past `PING_AFTER_IDLE` is
pinged first, and replaced unseen when the server dropped it meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sync.state import Pool, StateStore, bootstrap


@pytest.fixture
def dropped(postgres_url: str) -> Iterator[StateStore]:
    """A store on PostgreSQL whose one pooled connection the server has just terminated."""
    store = StateStore.open(postgres_url, pool=Pool(size=1))
    store.ping()  # one connection, back in the pool
    parsed = sa.engine.make_url(postgres_url)
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": parsed.database},
        )
    admin.dispose()
    yield store
    store.close()


@pytest.mark.postgres
def test_a_connection_dropped_while_idle_is_replaced_unseen(
    dropped: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "PING_AFTER_IDLE", 0.0)

    dropped.ping()  # no error: the ping found it dead, and the pool opened another


@pytest.mark.postgres
def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(
    dropped: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proof that no ping was sent: the dead connection reaches the statement."""
    monkeypatch.setattr(bootstrap, "PING_AFTER_IDLE", 3600.0)

    with pytest.raises(sa.exc.OperationalError):
        dropped.ping()
