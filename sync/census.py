"""The census: tasks of tickets deleted at the source, or moved out of scope, get archived.

    connector.scope_ids() (any order) ─> IdSpill (temporary SQLite file) ─┐ sorted
                                                                          ├─> merge ─> gone
    the state's tracked tasks (ORDER BY source_id, a page at a time) ─────┘
    gone ─> safety share ─> tombstones ─> sync.stream (diff, ship, checkpoint)

The source's ids are spilled to disk, never held as a set: a million ids cost a
temporary file, not a gigabyte. The merge is a pure function over two sorted
streams (`merge`). A census that would archive more than `census_max_share` of
the connector's live tasks archives nothing and fails, unless forced: a filter
typo must not wipe a queue. The tombstones (`{"uid", "archived": true}`) go
through the same stream as a pass's pushes, so the request budget, the retry
table and the checkpoint hold for them, and each acknowledged one is recorded
archived in the state: a census cut short archives the rest next time, and
none twice. A ticket that comes back (undeleted, moved back, a reused id) is
pushed with its content by the next pull that reads it: its stored hash is
the tombstone's, which no mapped task equals. Sources that report deletions
themselves keep doing so through the pull. It holds the connector's lease
like a pass, so the two never overlap; it reads no watermark and moves none.
"""

from __future__ import annotations

import datetime as dt
import enum
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import structlog

from connectors.base import Connector, SourceTicket
from connectors.registry import connector_class
from sync.batches import batched
from sync.checkpoint import Checkpointer, FailureLog, Mark, PassCounts
from sync.config import Config, ConnectorConfig
from sync.errors import FixConfiguration
from sync.lease import LeaseKeeper, check_turn, holder_text, leased
from sync.mapping import Mapper, TaskPayload
from sync.ship import Fragment, FragmentOnDemand, Ship
from sync.state import UNREACHABLE, StateStore, unreachable_message, utcnow
from sync.stream import TaskStream
from sync.summary import RunOptions, outcome_of
from sync.watermark import decode_text

log = structlog.get_logger("sync.census")

SPILL_BATCH = 10_000
"""Ids written to the spill file per statement, and read back per fetch."""
STATE_PAGE = 10_000
"""Tracked tasks read from the state per query."""


class CensusRefused(FixConfiguration):
    """The census would archive more than the connector's allowed share: it archived nothing."""

    def __init__(self, message: str, connector: str) -> None:
        super().__init__(message, key=f"connectors.{connector}.census_max_share")


class CensusUnsupported(FixConfiguration):
    """The connector's source can't list its scope's ids (no `scope_ids`)."""

    def __init__(self, message: str, connector: str) -> None:
        super().__init__(message, key=f"connectors.{connector}.census")


# The merge: pure


class Finding(enum.Enum):
    GONE = "gone"
    """Tracked and live in the state, not at the source: its task is archived."""
    BACK = "back"
    """Archived in the state, at the source again: the next pull that reads it un-archives."""


class Found(NamedTuple):
    finding: Finding
    source_id: str


def merge(source_ids: Iterable[str], tracked: Iterable[tuple[str, bool]]) -> Iterator[Found]:
    """The tracked tasks gone from the source, and the archived ones back at it.

    `source_ids`: the source's ids, ascending, each once. `tracked`: the
    state's (source id, archived), ascending by id, each once. Both are read
    once, in step: memory does not grow with either.
    """
    source = iter(source_ids)
    at_source = next(source, None)
    for source_id, archived in tracked:
        while at_source is not None and at_source < source_id:
            at_source = next(source, None)
        present = at_source == source_id
        if present and archived:
            yield Found(Finding.BACK, source_id)
        elif not present and not archived:
            yield Found(Finding.GONE, source_id)


class IdSpill:
    """The source's ids on disk, in a temporary SQLite file: counted, deduplicated, sorted.

    Also keeps the ids the merge finds gone, to count them before archiving any.
    Use it as a context manager: the file is deleted on the way out.
    """

    def __init__(self, folder: str | None = None) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="sync-census-", dir=folder)
        self._db = sqlite3.connect(Path(self._folder.name) / "ids.sqlite3")
        # A scratch file: nothing here outlives the census, so no journal and no fsync.
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-8000;"
            "CREATE TABLE source (id TEXT PRIMARY KEY) WITHOUT ROWID;"
            "CREATE TABLE gone (id TEXT PRIMARY KEY) WITHOUT ROWID;"
        )

    def __enter__(self) -> IdSpill:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._db.close()
        self._folder.cleanup()

    def add(self, ids: Iterable[str], check: Callable[[], None] = lambda: None) -> int:
        """Write `ids` (any order, repeats allowed); returns how many were read."""
        read = 0
        batch: list[tuple[str]] = []
        for source_id in ids:
            batch.append((source_id,))
            if len(batch) >= SPILL_BATCH:
                read += self._write("source", batch)
                batch = []
                check()
        return read + self._write("source", batch)

    def sorted_ids(self) -> Iterator[str]:
        """The source's ids, ascending in code-point order (SQLite's binary collation)."""
        rows = self._db.execute("SELECT id FROM source ORDER BY id")
        while chunk := rows.fetchmany(SPILL_BATCH):
            for (source_id,) in chunk:
                yield source_id

    def count(self, table: str = "source") -> int:
        (count,) = self._db.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        return int(count)

    def keep_gone(self, source_ids: Iterable[str]) -> None:
        for batch in batched(((source_id,) for source_id in source_ids), SPILL_BATCH):
            self._write("gone", batch)

    def gone_pages(self, size: int) -> Iterator[list[str]]:
        rows = self._db.execute("SELECT id FROM gone ORDER BY id")
        while chunk := rows.fetchmany(size):
            yield [source_id for (source_id,) in chunk]

    def _write(self, table: str, batch: list[tuple[str]]) -> int:
        self._db.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?)", batch)  # noqa: S608
        return len(batch)


# The census of one connector


@dataclass
class CensusSummary:
    """What a census found and did, as logged and shown by `python -m sync census`."""

    name: str
    outcome: str
    """ok, refused (over the share), unsupported, failed, interrupted, busy or lease_lost."""
    at_source: int = 0
    """Distinct ids the source listed."""
    tracked: int = 0
    """The connector's live (not archived) tasks in the state before the census."""
    gone: int = 0
    """Live tasks whose tickets the source no longer lists."""
    back: int = 0
    """Archived tasks whose tickets the source lists again (the next pull that reads them
    un-archives them)."""
    archived: int = 0
    """Tasks archived (acknowledged by Fragment) by this census."""
    failed: int = 0
    requests: int = 0
    """Requests to Fragment."""
    duration_s: float = 0.0
    dry_run: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def share(self) -> float:
        """The share of the live tasks the census found gone."""
        return self.gone / self.tracked if self.tracked else 0.0

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "share": round(self.share, 4)}


CENSUS_OBSERVERS: list[Callable[[CensusSummary], None]] = []
"""Called with each census's summary as it ends (the daemon's metrics)."""


class ConnectorCensus:
    """One census of one connector. Call `execute()` once.

    `force`: archive even beyond `census_max_share`. With `options.dry_run` it
    counts and lists nothing to Fragment and records nothing.
    """

    def __init__(
        self,
        connector: ConnectorConfig,
        store: StateStore,
        client: Fragment | None,
        batch_size: int,
        options: RunOptions,
        *,
        force: bool = False,
        spill_folder: str | None = None,
    ) -> None:
        self.config, self.name, self.namespace = connector, connector.name, connector.uid_namespace
        self.store, self.client, self.options, self.force = store, client, options, force
        self.batch_size = connector.settings.batch_size or batch_size
        self.mapper = Mapper(connector.name, self.namespace, connector.settings.mapping)
        self.summary = CensusSummary(self.name, "ok", dry_run=options.dry_run)
        self.log = log.bind(connector=self.name)
        self.spill_folder = spill_folder
        self._lease_keeper: LeaseKeeper | None = None
        self._deadline: float | None = None

    def execute(self) -> CensusSummary:
        """Take the census; never raises for a failure of this connector, it reports it."""
        started = time.monotonic()
        began = utcnow()
        try:
            self._leased()
        except Exception as exc:
            if isinstance(exc, UNREACHABLE):
                self.summary.outcome, self.summary.error = "failed", unreachable_message(exc)
            elif isinstance(exc, CensusRefused):
                self.summary.outcome, self.summary.error = "refused", str(exc)
            elif isinstance(exc, CensusUnsupported):
                self.summary.outcome, self.summary.error = "unsupported", str(exc)
            else:
                self.summary.outcome, self.summary.error = outcome_of(exc, self.log)
        self.summary.duration_s = round(time.monotonic() - started, 3)
        summary = self.summary
        if summary.outcome not in ("busy", "unsupported") and not summary.dry_run:
            try:
                self.store.record_census(
                    self.namespace, began, summary.outcome,
                    gone=summary.gone, archived=summary.archived, forced=self.force,
                )  # fmt: skip
            except UNREACHABLE as exc:
                self.log.warning("census_not_recorded", error=unreachable_message(exc))
        event = self.log.info if summary.ok or summary.outcome == "busy" else self.log.error
        event("census_finished", **summary.as_json())
        for observer in CENSUS_OBSERVERS:
            observer(summary)
        return summary

    def _leased(self) -> None:
        if self.options.dry_run:
            self._take()
            return
        o = self.options
        lease = leased(
            self.store, self.namespace, o.owner, o.lease_ttl,
            wait=o.wait_for_lease, stop=o.stop, held=o.lease_held,
        )  # fmt: skip
        with lease as self._lease_keeper:
            if self._lease_keeper is None:
                who = holder_text(self.store, self.namespace)
                self.summary.outcome = "busy"
                self.summary.error = f"connector {self.name!r} is being run by {who}"
                return
            self._take()

    def _take(self) -> None:
        self._deadline = time.monotonic() + self.config.settings.pass_timeout.total_seconds()
        source = connector_class(self.config.kind)(
            self.name, self.config.options, self.options.stop
        )
        try:
            if not source.takes_census:
                raise CensusUnsupported(
                    f"connector {self.name!r}: a {self.config.kind} source can't list the ids "
                    "in its scope, so it takes no census (see its page of the docs for how "
                    "its deletions reach Fragment)",
                    self.name,
                )
            with IdSpill(self.spill_folder) as spill:
                self._count(source, spill)
                self._judge()
                if not self.options.dry_run and self.summary.gone:
                    self._archive(spill)
        finally:
            source.close()

    def _count(self, source: Connector, spill: IdSpill) -> None:
        """List the source's ids to disk, merge them with the state's, keep those gone."""
        self.log.info("census_started")
        spill.add(source.scope_ids(), self._check_stop)
        self.summary.at_source = spill.count()
        self.summary.tracked = self.store.live_task_count(self.namespace)
        tracked = (
            row for page in self.store.tracked_pages(self.namespace, STATE_PAGE) for row in page
        )
        back = 0

        def gone() -> Iterator[str]:
            nonlocal back
            for found in merge(spill.sorted_ids(), tracked):
                if found.finding is Finding.GONE:
                    yield found.source_id
                else:
                    back += 1

        spill.keep_gone(gone())
        self.summary.gone, self.summary.back = spill.count("gone"), back
        if back:
            self.log.info(
                "census_found_tickets_back",
                count=back,
                detail="archived tasks whose tickets the source lists again: the next pull that "
                "reads them un-archives them (`run --full` reads them all)",
            )

    def _judge(self) -> None:
        """Refuse a census that would archive more than the allowed share, unless forced."""
        limit = self.config.settings.census_max_share
        summary = self.summary
        if summary.gone == 0 or summary.share <= limit or self.force:
            return
        raise CensusRefused(
            f"connector {self.name!r}: the census found {summary.gone} of {summary.tracked} "
            f"tracked tasks ({summary.share:.1%}) gone from the source, more than "
            f"census_max_share ({limit:.0%}) allows; nothing was archived. If the source's "
            "filter or credentials changed, fix them; if the tickets really are gone, run "
            f"`python -m sync census --connector {self.name} --force`",
            self.name,
        )

    def _archive(self, spill: IdSpill) -> None:
        """Push a tombstone for each gone ticket, checkpointed like a pass's pushes."""
        counts = PassCounts()
        failures = FailureLog(self.name, self.mapper.uid, counts, self.log)
        watermark = self.store.watermark(self.namespace)
        o = self.options
        checkpoints = Checkpointer(
            self.store, self.namespace, failures, watermark=watermark,
            stored_watermark=watermark, lease=(o.owner, o.lease_ttl),
        )  # fmt: skip
        ship = None
        if self.client is not None:
            in_flight = self.client.settings.max_in_flight
            ship = Ship[SourceTicket, TaskPayload, Mark](
                self.client, self.batch_size, in_flight, self.name
            )
        stream = TaskStream(
            self.store, self.namespace, self.mapper, ship, checkpoints,
            batch_size=self.batch_size, pass_started=utcnow(), check_stop=self._check_stop,
        )  # fmt: skip
        try:
            try:
                for page in spill.gone_pages(self.batch_size):
                    stored = self.store.stored_tasks(self.namespace, page)
                    tombstones = [
                        SourceTicket(source_id, decode_text(stored[source_id].cursor), {}, True)
                        for source_id in page
                        if source_id in stored  # forgotten meanwhile (`state forget`)
                    ]
                    stream.feed(tombstones, stored, {})
                    stream.flush(None)
                stream.settle_all()
                failures.report()
            except BaseException:
                stream.abandon()
                raise
        finally:
            stream.close()
            self.summary.archived = counts.pushed
            self.summary.failed, self.summary.requests = counts.failed, counts.requests

    def _check_stop(self) -> None:
        check_turn(
            self.name,
            self._lease_keeper,
            self.options.stop,
            self._deadline,
            stopped="stop requested; the census ends at its last checkpoint",
            timed_out=(
                f"timed out after {self.config.settings.pass_timeout} (connectors.{self.name}"
                ".timeout); what was archived is recorded, the next census does the rest"
            ),
        )


def census_due(interval: dt.timedelta | None, last: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a connector whose census runs every `interval` is due one at `now`.

    `last`: when its last census began (None: never). No interval: never due.
    """
    if interval is None:
        return False
    return last is None or now - last >= interval


def census_once(
    config: Config,
    store: StateStore,
    names: Iterable[str] | None = None,
    options: RunOptions | None = None,
    *,
    force: bool = False,
) -> list[CensusSummary]:
    """A census of each named connector (else of each enabled one with `census` set).

    A connector that fails does not stop the others.
    """
    options = options or RunOptions()
    selected = (
        list(names)
        if names
        else [
            name
            for name, c in config.connectors.items()
            if c.settings.enabled and c.settings.census is not None
        ]
    )
    client = None if options.dry_run else FragmentOnDemand(config.fragment, options.stop)
    summaries = []
    try:
        for name in selected:
            if options.stop.is_set():
                break
            census = ConnectorCensus(
                config.connectors[name], store, client, config.fragment.batch_size, options,
                force=force,
            )  # fmt: skip
            summaries.append(census.execute())
    finally:
        if client is not None:
            client.close()
    return summaries
