"""Claims on SQLite, PostgreSQL and MariaDB: replicas divide the due connectors between them.

Two `Claims` of one state stand for two replicas. Each connector's row is made
once; claiming, renewing and releasing update it. A renewal that arrives after
its pass released the claim neither takes it back nor reports it lost.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import sqlalchemy as sa
from structlog.testing import capture_logs

from sync.lease import LeaseKeeper
from sync.state import StateStore, utcnow
from sync.state.claims import Claims
from sync.state.schema import leases
from sync.state.store import aware

NAMES = ["alpha", "beta", "gamma", "delta", "epsilon"]


def rows(store: StateStore) -> dict[str, tuple[str, dt.datetime | None]]:
    """Each connector's row: its owner ("" when free) and its due time (None: not set)."""
    with store.engine.connect() as conn:
        found = conn.execute(sa.select(leases.c.connector, leases.c.owner, leases.c.due_at)).all()
    return {r.connector: (r.owner, aware(r.due_at)) for r in found}


def due_at(store: StateStore, connector: str) -> dt.datetime:
    due = rows(store)[connector][1]
    assert due is not None
    return due


def horizons(
    names: list[str], ahead: dt.timedelta = dt.timedelta(minutes=5)
) -> dict[str, dt.datetime]:
    return {name: utcnow() + ahead for name in names}


def test_each_connector_gets_one_row_due_now_and_keeps_it_across_restarts(
    store: StateStore,
) -> None:
    replica = Claims(store, "host-a:1:x", ttl=30, connectors=NAMES)
    replica.register(horizons(NAMES))
    first = rows(store)
    claims = replica.take_due(limit=5)
    replica.release("alpha", utcnow() + dt.timedelta(minutes=4))
    for claim in claims[1:]:
        replica.release(claim.connector, None)

    # Another replica starts.
    Claims(store, "host-b:2:y", ttl=30, connectors=NAMES).register(horizons(NAMES))

    after = rows(store)
    assert sorted(after) == sorted(NAMES)
    assert all(owner == "" and due is not None and due <= utcnow() for owner, due in first.values())
    assert due_at(store, "alpha") > utcnow() + dt.timedelta(minutes=3)  # its rhythm is kept


def test_a_due_time_beyond_a_shortened_schedule_is_brought_forward(store: StateStore) -> None:
    replica = Claims(store, "host-a:1:x", ttl=30, connectors=["alpha"])
    replica.register(horizons(["alpha"]))
    [claim] = replica.take_due(limit=1)
    replica.release(claim.connector, utcnow() + dt.timedelta(days=1))  # was daily

    replica.register(horizons(["alpha"], dt.timedelta(minutes=1)))  # now every minute

    assert due_at(store, "alpha") <= utcnow() + dt.timedelta(minutes=1)


def test_two_replicas_claiming_divide_the_due_connectors_earliest_first(
    store: StateStore,
) -> None:
    a = Claims(store, "host-a:1:x", ttl=30, connectors=NAMES)
    b = Claims(store, "host-b:2:y", ttl=30, connectors=NAMES)
    a.register(horizons(NAMES))
    assert len(a.take_due(limit=5)) == 5
    for name, age in zip(NAMES, (5, 1, 4, 2, 3), strict=True):  # alpha due longest ago
        a.release(name, utcnow() - dt.timedelta(minutes=age))

    first = a.take_due(limit=2)
    second = b.take_due(limit=2)
    third = a.take_due(limit=5)

    assert [c.connector for c in first] == ["alpha", "gamma"]
    assert [c.connector for c in second] == ["epsilon", "delta"]
    assert [c.connector for c in third] == ["beta"]
    assert b.take_due(limit=5) == []  # every one is held
    owners = {name: owner for name, (owner, _due) in rows(store).items()}
    assert owners == {
        "alpha": "host-a:1:x",
        "gamma": "host-a:1:x",
        "beta": "host-a:1:x",
        "epsilon": "host-b:2:y",
        "delta": "host-b:2:y",
    }


def test_rows_of_connectors_a_replica_does_not_run_are_left_as_they_are_and_starve_none(
    store: StateStore,
) -> None:
    """A replica's read names no connector until it meets a row not of its own: rows of
    connectors taken out of the configuration stay due for ever, earliest of all."""
    gone = [f"gone-{n}" for n in range(4)]
    old = Claims(store, "old:1:x", ttl=30, connectors=gone)
    old.register(horizons(gone))
    for claim in old.take_due(limit=4):
        old.release(claim.connector, utcnow() - dt.timedelta(hours=1))
    before = {name: rows(store)[name] for name in gone}
    replica = Claims(store, "host-a:1:x", ttl=30, connectors=NAMES)
    replica.register(horizons(NAMES))

    taken: list[str] = []
    turns = 0
    while len(taken) < len(NAMES) and turns < 10:
        taken += [claim.connector for claim in replica.take_due(limit=2)]
        turns += 1

    assert sorted(taken) == sorted(NAMES)
    assert turns == 5  # two turns met the four rows, three took its five
    assert replica.foreign == set(gone)
    assert {name: rows(store)[name] for name in gone} == before  # neither taken nor moved

    solo = Claims(store, "solo:2:y", ttl=30, connectors=["beta"])  # fewer than it meets
    replica.release("beta", None)
    assert solo.take_due(limit=1) == []  # met gone-0, due earliest
    assert [claim.connector for claim in solo.take_due(limit=1)] == ["beta"]  # names its own


def test_a_released_claim_is_due_again_only_at_its_next_due_time(store: StateStore) -> None:
    a = Claims(store, "host-a:1:x", ttl=30, connectors=["alpha", "beta"])
    b = Claims(store, "host-b:2:y", ttl=30, connectors=["alpha", "beta"])
    a.register(horizons(["alpha", "beta"]))
    claims = a.take_due(limit=2)
    a.release("alpha", utcnow() + dt.timedelta(minutes=5))
    a.release("beta", None)  # handed back unstarted: still due

    assert [c.connector for c in b.take_due(limit=2)] == ["beta"]
    assert len(claims) == 2
    assert store.lease("alpha") is None


def test_the_claims_of_a_replica_that_died_are_taken_over_once_they_expire(
    store: StateStore,
) -> None:
    dead = Claims(store, "dead:1:x", ttl=0.5, connectors=NAMES)
    alive = Claims(store, "alive:2:y", ttl=30, connectors=NAMES)
    dead.register(horizons(NAMES))
    assert len(dead.take_due(limit=5)) == 5
    assert alive.take_due(limit=5) == []

    time.sleep(0.6)

    assert sorted(c.connector for c in alive.take_due(limit=5)) == sorted(NAMES)
    dead.release("alpha", utcnow())  # too late: no longer its claim
    holder = store.lease("alpha")
    assert holder is not None and holder.owner == "alive:2:y"


def test_run_once_and_the_daemon_take_turns_on_the_same_row(store: StateStore) -> None:
    daemon = Claims(store, "daemon:1:x", ttl=30, connectors=["alpha"])
    daemon.register(horizons(["alpha"]))
    assert store.acquire_lease("alpha", "once:2:y", ttl=30)  # `run --once`

    assert daemon.take_due(limit=1) == []
    store.release_lease("alpha", "once:2:y")
    assert [c.connector for c in daemon.take_due(limit=1)] == ["alpha"]
    assert not store.acquire_lease("alpha", "once:2:y", ttl=30)  # busy: exit 75
    assert len(rows(store)) == 1


def test_a_keeper_renews_a_long_pass_and_starts_no_thread_for_a_short_one(
    store: StateStore,
) -> None:
    """A thread started and joined for every pass was a twentieth of an idle pass's CPU."""
    assert store.acquire_lease("alpha", "host-a:1:x", ttl=0.6)
    short = LeaseKeeper(store, "alpha", "host-a:1:x", ttl=0.6)
    short.start()
    short.stop()  # its pass ended before its first renewal was due
    keeper = LeaseKeeper(store, "alpha", "host-a:1:x", ttl=0.6)
    keeper.start()

    time.sleep(1.5)  # two and a half TTLs
    held = store.lease("alpha")
    keeper.stop()

    assert short._thread is None
    assert held is not None and held.owner == "host-a:1:x"
    assert not keeper.lost and keeper._thread is not None


class GatedRenewal(StateStore):
    """A real store whose lease renewals wait at a gate, as one waiting for a free
    connection of a busy pool does."""

    def __init__(self, store: StateStore) -> None:
        super().__init__(store.engine)
        self.waiting = threading.Event()
        self.gate = threading.Event()

    def renew_lease(self, connector: str, owner: str, ttl: float) -> bool:
        self.waiting.set()
        self.gate.wait(10)
        return super().renew_lease(connector, owner, ttl)


def test_a_renewal_that_ends_after_its_pass_neither_reports_the_lease_lost_nor_keeps_it(
    store: StateStore,
) -> None:
    """41 false `lease_lost` errors came 6-37 s after their passes: the renewal thread,
    waiting for a connection, outlived the pass (stop() gives up joining after 5 s) and
    found the lease released. An UPDATE-released row must not be renewed back either."""
    gated = GatedRenewal(store)
    assert store.acquire_lease("alpha", "host-a:1:x", ttl=3)
    keeper = LeaseKeeper(gated, "alpha", "host-a:1:x", ttl=3)
    keeper.start()
    assert gated.waiting.wait(5)  # a renewal is under way

    with capture_logs() as logs:
        ending = threading.Thread(target=keeper.stop)  # the pass ends
        ending.start()
        while not keeper._stop.is_set():  # stop() sets it first, then joins
            time.sleep(0.01)
        store.release_lease("alpha", "host-a:1:x")
        gated.gate.set()  # the renewal gets its connection now
        ending.join()

    assert not keeper.lost
    assert [e for e in logs if e["event"] == "lease_lost"] == []
    assert store.lease("alpha") is None
    assert rows(store)["alpha"][0] == ""


def test_replicas_starting_together_each_find_every_row_made_once(store: StateStore) -> None:
    other = Claims(store, "host-b:2:y", ttl=30, connectors=NAMES)

    class RacedReplica(Claims):
        """Another replica makes some of the rows between this one's read and insert."""

        def _insert(self, connectors: list[str], now: dt.datetime) -> None:
            other.register(horizons(connectors[:2]))
            super()._insert(connectors, now)

    RacedReplica(store, "host-a:1:x", ttl=30, connectors=NAMES).register(horizons(NAMES))

    assert sorted(rows(store)) == sorted(NAMES)
    assert len(other.take_due(limit=10)) == len(NAMES)
