"""Realistic demo support tickets from a fixed seed, for the built-in demo, tests and benchmarks.

Owns drawing the tickets; the tables they are drawn from are `sync_demo.vocabulary`. The output
is byte-identical on every run and machine: one `random.Random(seed)` drives every choice, only
integer and plain float arithmetic is used (no libm functions whose last bit may differ between
platforms), nothing iterates a set, and times count back from a fixed reference date rather than
the clock.

The tickets deliberately contain same-second `updated_at` ties: a bulk macro
that stamps up to 40 Shipping tickets with one second, and merged duplicate
pairs updated together. The sync's boundary handling is tested on them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
import string
import time
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any, Final, TypeVar

from sync_demo.vocabulary import (
    AGENTS,
    AUTO_CLOSE,
    CHANNEL_CUMULATIVE,
    CHANNELS,
    CLOSERS,
    COMPANY_DOMAINS,
    COUNTRIES,
    DAY,
    DUE_SHARE,
    GROUP_CUMULATIVE,
    GROUPS,
    HOUR,
    HOUR_WEIGHTS,
    NAME_LISTS,
    NUMBERED,
    PRIORITIES,
    PRIORITY_CUMULATIVE,
    SLA,
    STATUS_AGE_LIMITS,
    STATUS_BY_AGE,
    STATUSES,
    TAG_COUNT_CUMULATIVE,
    TAG_COUNTS,
    TAGS,
    TOPICS,
    WORDS,
)

T = TypeVar("T")

DEMO_SEED: Final = 20261130
DEMO_COUNT: Final = 1200

REFERENCE: Final = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
"""Every ticket was created and last updated within the 90 days before this moment."""

SPAN_DAYS: Final = 90
BULK_SIZE: Final = 40
"""Tickets one bulk macro stamps with the same second."""

_FIRST_ID: Final = 10001
_REFERENCE_TS: Final = int(REFERENCE.timestamp())
_FIRST_DAY_TS: Final = _REFERENCE_TS - SPAN_DAYS * DAY
# Weekends see half the traffic of a weekday.
_DAY_WEIGHTS: Final = tuple(
    1 if (REFERENCE - dt.timedelta(days=SPAN_DAYS - day)).weekday() >= 5 else 2
    for day in range(SPAN_DAYS)
)

# --- Tables prepared once at import ------------------------------------------------


def _cumulative(weights: Sequence[int]) -> tuple[int, ...]:
    return tuple(itertools.accumulate(weights))


_FOLD_SPECIAL: Final = str.maketrans(
    {"ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "œ": "oe", "ł": "l", "Ł": "L", "đ": "d"}
)


def _fold(text: str) -> str:
    """`text` as lower-case ASCII for an email address: "Groß O'Brien" -> "grossobrien"."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD_SPECIAL))
    plain = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    return "".join(ch for ch in plain if ch.isalnum() or ch == "-")


def _named(names: str) -> tuple[tuple[str, str], ...]:
    """Comma-separated names as (display name, folded for email) pairs."""
    return tuple((name, _fold(name)) for name in names.split(", "))


_NAMES: Final = {pool: (_named(first), _named(last)) for pool, (first, last) in NAME_LISTS.items()}
_COUNTRY_CUMULATIVE: Final = _cumulative([weight for _, weight, _, _ in COUNTRIES])
_HOUR_CUMULATIVE: Final = _cumulative(HOUR_WEIGHTS)
_DAY_CUMULATIVE: Final = _cumulative(_DAY_WEIGHTS)
_AGENT_EMAILS: Final = {
    group: tuple(
        ".".join(_fold(part) for part in name.split(" ", 1)) + "@support.example.com"
        for name in names
    )
    for group, names in AGENTS.items()
}


def _placeholders(*templates: str) -> tuple[str, ...]:
    names = [name for text in templates for _, name, _, _ in string.Formatter().parse(text) if name]
    return tuple(dict.fromkeys(names))


# Per group: (subject, description, the placeholders the pair uses).
_TOPIC_TABLE: Final = {
    group: tuple((subject, body, _placeholders(subject, body)) for subject, body in pairs)
    for group, pairs in TOPICS.items()
}


# --- The generator ---------------------------------------------------------------


class _Dice:
    """Draws from one `random.Random(seed)`.

    Every draw is built from `random()` and a float product, which IEEE 754
    rounds the same way everywhere (and is several times faster than
    `randrange`, which matters at 100,000 tickets).
    """

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed).random

    def below(self, bound: int) -> int:
        """An integer in [0, bound)."""
        return int(self.random() * bound)

    def between(self, low: int, high: int) -> int:
        """An integer in [low, high)."""
        return low + int(self.random() * (high - low))

    def pick(self, options: Sequence[T]) -> T:
        return options[int(self.random() * len(options))]

    def weighted(self, options: Sequence[T], cumulative: Sequence[int]) -> T:
        return options[bisect.bisect(cumulative, self.random() * cumulative[-1])]

    def sample(self, options: Sequence[T], count: int) -> list[T]:
        """`count` distinct members of `options`, in draw order."""
        if not count:
            return []
        pool = list(options)
        for index in range(count):
            other = index + int(self.random() * (len(pool) - index))
            pool[index], pool[other] = pool[other], pool[index]
        return pool[:count]


def generate_tickets(count: int = DEMO_COUNT, seed: int = DEMO_SEED) -> Iterator[dict[str, Any]]:
    """`count` demo tickets from `seed`, ascending by `updated_at` (ties by `id`).

    Each is a fresh JSON-compatible dict; the same arguments give the same
    tickets on every run and machine. Raises `ValueError` for a negative count.
    """
    if count < 0:
        raise ValueError(f"count must be at least 0, got {count}")
    dice = _Dice(seed)
    # Ids follow creation order, as in a real help desk.
    created = sorted(_created_at(dice) for _ in range(count))
    people = [_requester(dice) for _ in range(max(1, count * 2 // 3))]
    tickets = [_ticket(dice, _FIRST_ID + n, moment, people) for n, moment in enumerate(created)]
    merged = _merge_duplicates(dice, tickets)
    _apply_bulk_macros(dice, tickets, created, merged)
    # Spam, deleted by an agent: about one ticket in two hundred.
    for index in dice.sample(range(count), min(count, max(1, count // 200))):
        tickets[index]["deleted"] = True
    tickets.sort(key=lambda ticket: (ticket["updated_at"], ticket["id"]))
    iso = _IsoFormatter()
    for ticket in tickets:
        ticket["created_at"] = iso(ticket["created_at"])
        ticket["updated_at"] = iso(ticket["updated_at"])
        if ticket["due_at"] is not None:
            ticket["due_at"] = iso(ticket["due_at"])
        yield ticket


def _created_at(dice: _Dice) -> int:
    day = dice.weighted(range(SPAN_DAYS), _DAY_CUMULATIVE)
    hour = dice.weighted(range(24), _HOUR_CUMULATIVE)
    return _FIRST_DAY_TS + day * DAY + hour * HOUR + dice.below(HOUR)


def _requester(dice: _Dice) -> dict[str, str]:
    code, _, pool, providers = dice.weighted(COUNTRIES, _COUNTRY_CUMULATIVE)
    firsts, lasts = _NAMES[pool]
    first, first_folded = dice.pick(firsts)
    last, last_folded = dice.pick(lasts)
    style = dice.below(5)
    if style == 0:
        local = f"{first_folded[0]}{last_folded}"
    elif style == 1:
        local = f"{first_folded}_{last_folded}"
    elif style == 2:
        local = f"{first_folded}.{last_folded}{dice.between(1, 100)}"
    else:
        local = f"{first_folded}.{last_folded}"
    # A third of requesters write from work.
    domain = dice.pick(COMPANY_DOMAINS) if dice.below(3) == 0 else dice.pick(providers)
    return {"name": f"{first} {last}", "email": f"{local}@{domain}", "country": code}


def _ticket(
    dice: _Dice, ticket_id: int, created: int, people: Sequence[dict[str, str]]
) -> dict[str, Any]:
    """One ticket with integer timestamps (formatted once the order is final)."""
    group = dice.weighted(GROUPS, GROUP_CUMULATIVE)
    subject, body, names = dice.pick(_TOPIC_TABLE[group])
    fills = {name: _fill(dice, name) for name in names}
    priority = dice.weighted(PRIORITIES, PRIORITY_CUMULATIVE)
    subject = subject.format_map(fills)
    prefix = dice.below(100)
    if priority == "urgent" and prefix < 30:
        subject = f"URGENT: {subject}"
    elif prefix < 5:
        subject = f"Re: {subject}"
    elif prefix < 7:
        subject = f"Fwd: {subject}"
    age = _REFERENCE_TS - created
    status = dice.weighted(STATUSES, STATUS_BY_AGE[bisect.bisect(STATUS_AGE_LIMITS, age)])
    room = _REFERENCE_TS - 1 - created
    delay = _delay(dice, status)
    # A delay past the reference date is redrawn within the room left, rather
    # than clamped, so young tickets don't pile up on one second.
    updated = created + (delay if delay <= room else dice.below(room + 1))
    due = None
    if dice.below(100) < DUE_SHARE[priority]:
        due = created + SLA[priority] + dice.between(-60, 60) * 60
    return {
        "id": ticket_id,
        "subject": subject,
        "description": body.format_map(fills) + dice.pick(CLOSERS),
        "requester": dict(dice.pick(people)),
        "priority": priority,
        "status": status,
        "assignee": None if status == "new" else dice.pick(_AGENT_EMAILS[group]),
        "group": group,
        "tags": dice.sample(TAGS[group], dice.weighted(TAG_COUNTS, TAG_COUNT_CUMULATIVE)),
        "channel": dice.weighted(CHANNELS, CHANNEL_CUMULATIVE),
        "created_at": created,
        "updated_at": updated,
        "due_at": due,
        "deleted": False,
    }


def _fill(dice: _Dice, placeholder: str) -> str:
    numbered = NUMBERED.get(placeholder)
    if numbered is not None:
        spelling, low, high = numbered
        return spelling.format(dice.between(low, high))
    return dice.pick(WORDS[placeholder])


def _delay(dice: _Dice, status: str) -> int:
    """Seconds from creation to the ticket's last update, given where it ended up."""
    if status == "new":
        return 0 if dice.below(10) < 7 else dice.between(1, 1800)
    bucket = dice.below(10)
    if bucket < 3:
        delay = dice.between(60, 2 * HOUR)
    elif bucket < 7:
        delay = dice.between(2 * HOUR, 2 * DAY)
    else:
        delay = dice.between(2 * DAY, 12 * DAY)
    if status == "closed":
        delay += AUTO_CLOSE + dice.below(HOUR)
    return delay


def _merge_duplicates(dice: _Dice, tickets: list[dict[str, Any]]) -> list[bool]:
    """Merge a few duplicate pairs; both tickets of a pair share one `updated_at`.

    A requester who wrote twice has the later ticket closed into the earlier
    one, which updates both in the same second. Returns, per ticket, whether
    it was merged, so later edits leave the pairs' ties alone.
    """
    merged = [False] * len(tickets)
    pairs = max(2, len(tickets) // 240) if len(tickets) >= 8 else 0
    for _ in range(pairs):
        first = dice.below(len(tickets) - 1)
        if merged[first] or merged[first + 1]:
            continue
        original, duplicate = tickets[first], tickets[first + 1]
        moment = max(original["updated_at"], duplicate["updated_at"])
        duplicate["requester"] = dict(original["requester"])
        duplicate["group"] = original["group"]
        duplicate["subject"] = f"Re: {original['subject'].removeprefix('Re: ')}"
        duplicate["description"] = f"Duplicate of #{original['id']}. {duplicate['description']}"
        duplicate["status"] = "closed"
        duplicate["assignee"] = original["assignee"] or _AGENT_EMAILS[original["group"]][0]
        duplicate["tags"] = ["merged"]
        original["updated_at"] = duplicate["updated_at"] = moment
        merged[first] = merged[first + 1] = True
    return merged


def _apply_bulk_macros(
    dice: _Dice, tickets: list[dict[str, Any]], created: Sequence[int], taken: list[bool]
) -> None:
    """Stamp batches of open Shipping tickets with one `updated_at` second.

    One macro run ("carrier strike: we are on it") per DEMO_COUNT tickets sets
    up to BULK_SIZE tickets to pending in the same second, the way help desk
    bulk updates do. `taken` marks tickets already in a tie, and is updated.
    """
    runs = max(1, len(tickets) // DEMO_COUNT) if len(tickets) >= 4 else 0
    size = min(BULK_SIZE, len(tickets) // 4)
    for _ in range(runs):
        moment = _REFERENCE_TS - dice.between(3, 60) * DAY + dice.between(8, 17) * HOUR
        # Only tickets created before the macro ran; ids follow creation.
        reachable = bisect.bisect_left(created, moment)
        chosen = 0
        # Random probes rather than a scan, so 100,000 tickets stay fast;
        # Shipping tickets first, any group once those probes run out.
        for probe in range(200 * size if reachable else 0):
            if chosen == size:
                break
            index = dice.below(reachable)
            ticket = tickets[index]
            if taken[index] or ticket["updated_at"] >= moment:
                continue
            if ticket["group"] != "Shipping" and probe < 100 * size:
                continue
            ticket["updated_at"] = moment
            ticket["status"] = "pending"
            ticket["assignee"] = ticket["assignee"] or _AGENT_EMAILS[ticket["group"]][0]
            ticket["tags"] = [*ticket["tags"][:2], "carrier-strike"]
            taken[index] = True
            chosen += 1


class _IsoFormatter:
    """Unix seconds as "2026-10-31T23:59:59Z", caching the part up to the hour."""

    def __init__(self) -> None:
        self._hours: dict[int, str] = {}

    def __call__(self, timestamp: int) -> str:
        hour, seconds = divmod(timestamp, HOUR)
        prefix = self._hours.get(hour)
        if prefix is None:
            prefix = time.strftime("%Y-%m-%dT%H:", time.gmtime(hour * HOUR))
            self._hours[hour] = prefix
        minutes, seconds = divmod(seconds, 60)
        return prefix + _TWO_DIGITS[minutes] + ":" + _TWO_DIGITS[seconds] + "Z"


_TWO_DIGITS: Final = tuple(f"{number:02d}" for number in range(60))
