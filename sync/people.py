"""People: the assignees of a chunk of tickets, resolved to emails, each once.

A mapping whose `assignee` names the assignee by a source user id (Redmine's
`assigned_to.id`) needs that id's email, which Fragment assigns by. For each
chunk a pass maps (a pull's chunk, a page of failed items) this stage collects
the distinct ids and resolves each once:

    the connector's people table (config) ─> the people cache (state, within
    `people.ttl`) ─> the source (`Connector.people`, in batches; cached)

and hands the mapper a plain lookup (`sync.mapping.People`), so the mapper
stays pure. A pass keeps the people it met in memory, at most `REMEMBERED`.

An email that changes (a refreshed answer, an edited table) must reach every
task of that person, not only the tickets a pass re-reads: the cache keeps
when an answer last changed an email, and `PeopleResolver.fingerprint` folds
that into the settings' fingerprint, so the next pass reads every ticket
again and tries every failed item at once, as after any change of the
settings. The table is part of the config's own fingerprint. With no
`mapping.assignee` the stage does nothing: no query, no request.

It reads no tickets but those it is given, and maps, diffs and pushes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from connectors.base import Connector, Person, SourceTicket
from sync.batches import batched
from sync.config import ConnectorConfig
from sync.mapping import NOBODY, Mapper, People
from sync.spec import email_problem
from sync.state import KnownPerson, StateStore, utcnow

PEOPLE_BATCH = 100
"""User ids handed to `Connector.people` at a time (and cached in one transaction)."""
REMEMBERED = 4096
"""People a pass keeps in memory once resolved; beyond that, the least recently met are
looked up in the cache again (one query per chunk)."""


class PeopleResolver:
    """One connector's people, for one pass (or one `python -m sync people` command).

    `mapper` None: for `refresh` only (`python -m sync people`), which reads no
    ticket. `dry_run`: ask the source as a pass would, but cache nothing.
    """

    def __init__(
        self,
        connector: ConnectorConfig,
        store: StateStore,
        mapper: Mapper | None,
        log: Any,
        *,
        dry_run: bool = False,
        remembered: int = REMEMBERED,
    ) -> None:
        self.name, self.namespace = connector.name, connector.uid_namespace
        self.kind = connector.kind
        self.table = connector.people
        self.ttl = connector.settings.people.ttl
        self.store, self.mapper, self.log, self.dry_run = store, mapper, log, dry_run
        self._remembered: OrderedDict[str, str | None] = OrderedDict()
        self._limit = remembered
        self.asked = 0
        """User ids this resolver asked the source about."""

    @property
    def active(self) -> bool:
        """Whether the mapping names assignees by user id, so there is anything to resolve."""
        return self.mapper is not None and self.mapper.resolves_assignees

    def fingerprint(self, settings: str) -> str:
        """The settings' fingerprint `settings`, with when a cached email last changed.

        Unchanged when no answer ever changed an email (or nothing is resolved):
        a config's fingerprint stays as it was until one does.
        """
        if not self.active:
            return settings
        return self.fingerprint_with(settings, self.store.people_changed_at(self.namespace))

    def fingerprint_with(self, settings: str, changed: dt.datetime | None) -> str:
        """`fingerprint`, given when a cached email last changed (as a pass read it at its
        start: `StateStore.pass_start`)."""
        if not self.active or changed is None:
            return settings
        text = f"{settings} people changed {changed.isoformat()}"
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()

    def lookup(self, source: Connector, tickets: Iterable[SourceTicket]) -> People:
        """The email (or None) of each assignee of `tickets`, by source user id.

        Raises `connectors.errors.SourceError` when the source must be asked
        and can't be read: the chunk then waits for the next pass, as when its
        tickets can't be read.
        """
        if self.mapper is None or not self.mapper.resolves_assignees:
            return NOBODY
        wanted = dict.fromkeys(filter(None, map(self.mapper.assignee_id, tickets)))
        found: dict[str, str | None] = {}
        missing: list[str] = []
        for user_id in wanted:
            if user_id in self.table:
                found[user_id] = self.table[user_id].email
            elif user_id in self._remembered:
                self._remembered.move_to_end(user_id)
                found[user_id] = self._remembered[user_id]
            else:
                missing.append(user_id)
        if missing:
            cached = self._cached(missing)
            stale = [user_id for user_id in missing if user_id not in cached]
            resolved = {**cached, **self._ask(source, stale)}
            for user_id, email in resolved.items():
                self._remember(user_id, email)
            found.update(resolved)
        return found

    def refresh(self, source: Connector) -> Iterator[KnownPerson]:
        """Ask the source again about everyone the cache holds; each answer as now cached.

        Within the source's rate limit (the connector's own), `PEOPLE_BATCH`
        at a time. Raises `SourceError` when the source can't be read.
        """
        for page in self.store.people_pages(self.namespace, PEOPLE_BATCH):
            ids = [person.user_id for person in page]
            self._ask(source, ids)
            yield from self.store.known_people(self.namespace, ids).values()

    def _remember(self, user_id: str, email: str | None) -> None:
        """Keep `user_id`'s email for the pass, forgetting the least recently met past the limit."""
        memory = self._remembered
        memory[user_id] = email
        memory.move_to_end(user_id)
        while len(memory) > self._limit:
            memory.popitem(last=False)

    def _cached(self, user_ids: list[str]) -> dict[str, str | None]:
        """The cache's answers for `user_ids` that are younger than the TTL."""
        now = utcnow()
        return {
            user_id: person.email
            for user_id, person in self.store.known_people(self.namespace, user_ids).items()
            if not stale(person, self.ttl, now)
        }

    def _ask(self, source: Connector, user_ids: Sequence[str]) -> dict[str, str | None]:
        """Ask the source about `user_ids` (in batches), cache the answers, return the emails."""
        emails: dict[str, str | None] = {}
        for batch in batched(list(user_ids), PEOPLE_BATCH):
            answers = list(self._answers(source, batch))
            self.asked += len(batch)
            for person in answers:
                emails[person.user_id] = person.email
                if person.email is None:
                    self.log.info("person_unresolved", user_id=person.user_id, reason=person.reason)
            if not self.dry_run:
                changed = self.store.keep_people(self.namespace, answers)
                if changed:
                    self.log.info(
                        "people_changed",
                        count=len(changed),
                        detail="an email changed: the next pass reads every ticket again, "
                        "so every task of theirs is updated",
                    )
        return emails

    def _answers(self, source: Connector, batch: list[str]) -> Iterator[Person]:
        """One `Person` per id of `batch`: the source's answer, checked, or why there is none."""
        if not source.resolves_people:
            reason = (
                f"not in connectors.{self.name}.people, and the {self.kind} connector can't "
                "look people up"
            )
            yield from (Person(user_id, None, reason=reason) for user_id in batch)
            return
        asked = set(batch)
        answered: set[str] = set()
        for person in source.people(batch):
            if person.user_id not in asked or person.user_id in answered:
                continue
            answered.add(person.user_id)
            yield _checked(person)
        for user_id in batch:
            if user_id not in answered:
                yield Person(user_id, None, reason="the source said nothing about this user")


def _checked(person: Person) -> Person:
    """`person` with an email that is no address set aside, and the reason said."""
    if person.email is None:
        return person
    email = person.email.strip()
    problem = email_problem(email)
    if problem is not None:
        return Person(person.user_id, None, person.name, f"the source's email: {problem}")
    return person if email == person.email else Person(person.user_id, email, person.name)


def stale(person: KnownPerson, ttl: dt.timedelta, now: dt.datetime) -> bool:
    """Whether the cached answer `person` is older than `ttl` (the next pass asks again)."""
    return person.resolved_at < now - ttl
