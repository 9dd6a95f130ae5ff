"""`python -m sync people`: who each connector's assignees are, resolved or not, and why.

Lists, per connector, the people its config's table names and those the
people cache holds (`sync.people`), a page at a time; `--refresh` asks the
source again about everyone cached first. Reads no ticket and pushes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from connectors.base import Connector
from connectors.errors import SourceError
from connectors.registry import connector_class
from sync.config import ConnectorConfig
from sync.people import PEOPLE_BATCH, PeopleResolver, stale
from sync.state import KnownPerson, StateStore, utcnow

log = structlog.get_logger("sync.shell.people")


@dataclass(frozen=True)
class PersonRow:
    """One person as the command shows them."""

    user_id: str
    email: str | None
    name: str | None
    source: str
    """Where the answer comes from: `table` (the config), `cache` (the source, earlier),
    `source` (asked just now, by `--refresh`)."""
    at: dt.datetime | None
    """When the source answered (None for the table)."""
    stale: bool = False
    """Older than `people.ttl`: the next pass that meets them asks again."""
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "email": self.email,
            "name": self.name,
            "from": self.source,
            "at": None if self.at is None else self.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "stale": self.stale,
            "reason": self.reason,
        }


@dataclass
class ConnectorPeople:
    """One connector's people, and whether `--refresh` could ask its source."""

    name: str
    assignee: str | None
    resolves: bool
    rows: list[PersonRow]
    error: str | None = None

    @property
    def resolved(self) -> int:
        return sum(1 for row in self.rows if row.email is not None)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "assignee": self.assignee,
            "resolves_people": self.resolves,
            "ok": self.error is None,
            "error": self.error,
            "resolved": self.resolved,
            "unresolved": len(self.rows) - self.resolved,
            "people": [row.as_json() for row in self.rows],
        }


def connector_people(
    connector: ConnectorConfig, store: StateStore, *, refresh: bool
) -> ConnectorPeople:
    """`connector`'s people: its table's, then its cache's (asked again first when `refresh`).

    A source that fails during `refresh` is reported in `error`; what is cached
    is listed all the same.
    """
    kind = connector_class(connector.kind)
    resolves = kind.people is not Connector.people  # as `Connector.resolves_people` tells
    result = ConnectorPeople(connector.name, connector.settings.mapping.assignee, resolves, [])
    table = connector.people
    result.rows.extend(PersonRow(p.user_id, p.email, p.name, "table", None) for p in table.values())
    asked: set[str] = set()
    if refresh and resolves:
        source = kind(connector.name, connector.options)
        resolver = PeopleResolver(connector, store, None, log.bind(connector=connector.name))
        try:
            for person in resolver.refresh(source):
                asked.add(person.user_id)
        except SourceError as exc:
            result.error = str(exc)
        finally:
            source.close()
    now = utcnow()
    ttl = connector.settings.people.ttl
    for page in _pages(store, connector.uid_namespace):
        for person in page:
            if person.user_id in table:
                continue  # the table wins: the cached answer is not used
            where = "source" if person.user_id in asked else "cache"
            result.rows.append(_row(person, where, stale(person, ttl, now)))
    return result


def _pages(store: StateStore, namespace: str) -> Iterator[list[KnownPerson]]:
    return store.people_pages(namespace, PEOPLE_BATCH * 10)


def _row(person: KnownPerson, where: str, is_stale: bool) -> PersonRow:
    return PersonRow(
        person.user_id,
        person.email,
        person.name,
        where,
        person.resolved_at,
        is_stale,
        person.reason,
    )


def render(people: ConnectorPeople) -> str:
    """`people` as lines of text: a heading, then one line per person."""
    path = people.assignee or "unset: nothing is resolved"
    lines = [
        f"{people.name} (mapping.assignee = {path}): {people.resolved} resolved, "
        f"{len(people.rows) - people.resolved} not"
    ]
    if people.error is not None:
        lines.append(f"  REFRESH FAILED: {people.error}")
    for row in people.rows:
        name = f" ({row.name})" if row.name else ""
        when = "" if row.at is None else f" {row.at:%Y-%m-%dT%H:%M:%SZ}"
        stale_note = ", stale" if row.stale else ""
        what = row.email if row.email is not None else f"NOT RESOLVED: {row.reason}"
        lines.append(f"  {row.user_id}{name}: {what} [{row.source}{when}{stale_note}]")
    return "\n".join(lines)
