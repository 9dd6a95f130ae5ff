"""Resolving source user ids to people in batches: what every HTTP connector's `people` shares.

A vendor connector says how one batch of ids is read (Zendesk's
`users/show_many`, Jira's `user/bulk`, ServiceNow's `sys_idIN`) and how one
of its user records becomes a `Person`; `resolve_in_batches` does the rest:
each distinct id asked once, batches of the vendor's size, and a `Person`
with a reason for every id the source didn't answer. It sends nothing
itself: the batches go through the connector's session, so its request
budget, rate-limit waits and credential-origin guard cover them.
`SeenPeople` keeps the people a connector's listings showed on the way
(Zendesk's sideloaded users, Jira's assignees), so those cost no request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from connectors.base import Person

NO_SUCH_USER = "no such user"


def in_batches(user_ids: Iterable[str], size: int) -> Iterator[list[str]]:
    """The distinct non-blank ids of `user_ids`, in the order first seen, `size` at a time."""
    batch: list[str] = []
    seen: set[str] = set()
    for user_id in user_ids:
        if not user_id or user_id in seen:
            continue
        seen.add(user_id)
        batch.append(user_id)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def resolve_in_batches(
    user_ids: Iterable[str],
    size: int,
    read_batch: Callable[[list[str]], Iterable[Person]],
    missing: str = NO_SUCH_USER,
) -> Iterator[Person]:
    """One `Person` per distinct id of `user_ids`, read `size` ids a request by `read_batch`.

    `read_batch` returns the people the source knows among the ids it is given
    (others it may return are ignored); each id it leaves out yields a `Person`
    without an email whose reason is `missing`. Raises what `read_batch` raises
    (`SourceError`).
    """
    for batch in in_batches(user_ids, size):
        asked = set(batch)
        for person in read_batch(batch):
            if person.user_id in asked:
                asked.discard(person.user_id)
                yield person
        for user_id in batch:
            if user_id in asked:
                yield Person(user_id, None, reason=missing)


class SeenPeople:
    """The people a connector's listings showed during its pulls, the newest `limit` kept.

    Bounded: once full, the person seen longest ago goes first. Only for what a
    listing shows as fully as the lookup would (a Jira assignee with a visible
    email), so an answer from here is the one a request would give.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._people: dict[str, Person] = {}

    def add(self, person: Person) -> None:
        self._people.pop(person.user_id, None)  # seen again: the newest
        self._people[person.user_id] = person
        if len(self._people) > self.limit:
            del self._people[next(iter(self._people))]

    def get(self, user_id: str) -> Person | None:
        return self._people.get(user_id)

    def __len__(self) -> int:
        return len(self._people)

    def split(self, user_ids: Iterable[str]) -> tuple[list[Person], list[str]]:
        """The distinct non-blank ids of `user_ids` as (the people seen, the ids not seen)."""
        seen: list[Person] = []
        unseen: list[str] = []
        for user_id in dict.fromkeys(user_ids):
            found = self._people.get(user_id) if user_id else None
            if found is not None:
                seen.append(found)
            elif user_id:
                unseen.append(user_id)
        return seen, unseen


def person(user_id: str, email: object, name: object, hidden: str) -> Person:
    """A `Person` from a source's user record: its email when it has one, else `hidden` as
    the reason. A blank or non-text email counts as none (ServiceNow's `""`)."""
    display = name if isinstance(name, str) and name else None
    if isinstance(email, str) and email.strip():
        return Person(user_id, email.strip(), display)
    return Person(user_id, None, display, reason=hidden)
