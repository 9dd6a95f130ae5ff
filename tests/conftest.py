"""Shared fixtures: the Fragment emulator over real HTTP, state stores on real databases.

Every test that syncs talks to a real `fragment_emulator.Emulator` on loopback;
every state test uses a real database: SQLite, the machine's PostgreSQL at
127.0.0.1:5432 (trust auth) and its MariaDB at 127.0.0.1:3306 (root, no
password). Each test session gets a database of its own on each server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from fragment_emulator import Emulator
from sync.state import StateStore
from synckit import TOKEN

PG_ADMIN_URL = os.environ.get(
    "SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_ADMIN_URL = os.environ.get(
    "SYNC_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh in-memory Fragment emulator on a free loopback port."""
    with Emulator(db_path=":memory:", tokens=[TOKEN]) as server:
        yield server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for this session, dropped at the end."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"fragment_sync_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise  # CI machines run PostgreSQL: not reaching it is a failure
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
            {"name": name},
        )
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """The session's PostgreSQL database, emptied of state tables after each test."""
    yield postgres_database
    _drop_every_table(postgres_database)


@pytest.fixture(scope="session")
def mariadb_database() -> Iterator[str]:
    """A throwaway MariaDB (or MySQL) database for this session, dropped at the end."""
    admin = sa.create_engine(MARIADB_ADMIN_URL)
    name = f"fragment_sync_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise  # CI machines run MariaDB: not reaching it is a failure
        pytest.skip(f"MariaDB not reachable at {MARIADB_ADMIN_URL}: {exc}")
    yield (
        sa.engine.make_url(MARIADB_ADMIN_URL)
        .set(database=name)
        .render_as_string(hide_password=False)
    )
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()


@pytest.fixture
def mariadb_url(mariadb_database: str) -> Iterator[str]:
    """The session's MariaDB database, emptied of state tables after each test."""
    yield mariadb_database
    _drop_every_table(mariadb_database)


def _drop_every_table(url: str) -> None:
    engine = sa.create_engine(url)
    tables = sa.MetaData()
    tables.reflect(engine)
    tables.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A state database URL: each test using it runs on SQLite, PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    state = StateStore.open(state_url)
    yield state
    state.close()


SUITE_SECRETS = (TOKEN,)
"""Secrets the whole suite configures; no test's captured output may ever show one."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Fail any test whose captured stdout, stderr or log lines contain a suite secret."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or report.failed:
        return
    captured = "\n".join(content for _name, content in report.sections)
    leaked = [secret for secret in SUITE_SECRETS if secret in captured]
    if leaked:
        report.outcome = "failed"
        report.longrepr = f"a secret reached this test's captured output: {leaked}"
