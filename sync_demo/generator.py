"""Realistic demo support tickets from a fixed seed, for the built-in demo, tests and benchmarks.

Owns the generator and writing its output as JSON Lines or CSV. The output is
byte-identical on every run and machine: one `random.Random(seed)` drives
every choice, only integer and plain float arithmetic is used (no libm
functions whose last bit may differ between platforms), nothing iterates a
set, and times count back from a fixed reference date rather than the clock.
The generated file is not checked in; run

    python -m sync.demo --out tickets.jsonl [--count N] [--seed S] [--format jsonl|csv]

The tickets deliberately contain same-second `updated_at` ties: a bulk macro
that stamps up to 40 Shipping tickets with one second, and merged duplicate
pairs updated together. The sync's boundary handling is tested on them.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import itertools
import json
import random
import string
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

T = TypeVar("T")

DEMO_SEED: Final = 20261130
DEMO_COUNT: Final = 1200

REFERENCE: Final = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
"""Every ticket was created and last updated within the 90 days before this moment."""

SPAN_DAYS: Final = 90
BULK_SIZE: Final = 40
"""Tickets one bulk macro stamps with the same second."""

CSV_COLUMNS: Final = (
    "id",
    "subject",
    "requester_email",
    "requester_country",
    "priority",
    "status",
    "assignee",
    "group",
    "created_at",
    "updated_at",
    "due_at",
    "deleted",
)

_FIRST_ID: Final = 10001
_REFERENCE_TS: Final = int(REFERENCE.timestamp())
_DAY: Final = 86_400
_HOUR: Final = 3_600

# --- Who writes in ------------------------------------------------------------
# First names, then last names, per name pool; comma-separated to keep the
# table short (some last names hold spaces: "van den Berg").

_NAME_LISTS: Final = {
    "fr": (
        "Camille, Léa, Manon, Chloé, Inès, Louis, Hugo, Théo, Noémie, Étienne, Zoé, Gaël, François",
        "Martin, Bernard, Dubois, Thomas, Robert, Richard, Petit, Durand, Lefèvre, Moreau, Girard, "
        "Fournier, Lambert, Rousseau",
    ),
    "de": (
        "Lukas, Jonas, Leon, Lena, Hannah, Sophie, Jürgen, Anja, Björn, Mia, Felix, Lea",
        "Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schäfer, Koch, "
        "Hoffmann, Krüger, Groß",
    ),
    "en": (
        "Olivia, Emma, James, Liam, Noah, Ava, Charlotte, Ethan, Amelia, Harry, Jack, Grace, "
        "Daniel",
        "Smith, Johnson, Williams, Brown, Jones, Taylor, Davies, Wilson, Evans, Miller, O'Brien, "
        "Clarke, Patel, Nguyen",
    ),
    "es": (
        "Lucía, Sofía, Martín, Hugo, Pablo, Álvaro, María, Carmen, Javier, Nuria",
        "García, Fernández, González, Rodríguez, López, Martínez, Sánchez, Pérez, Gómez, Núñez",
    ),
    "it": (
        "Giulia, Francesca, Alessandro, Lorenzo, Matteo, Chiara, Sofia, Niccolò, Elena, Davide",
        "Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Marino, Greco",
    ),
    "nl": (
        "Daan, Sem, Lucas, Emma, Julia, Tess, Sanne, Bram, Fleur, Joris",
        "de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker, Janssen, Visser, Smit, Meijer",
    ),
    "pt": (
        "João, Ana, Gabriel, Beatriz, Lucas, Mariana, Rafael, Larissa, Thiago, Camila",
        "Silva, Santos, Oliveira, Souza, Lima, Pereira, Ferreira, Costa, Rodrigues, Conceição",
    ),
    "ja": (
        "Haruto, Yuto, Sota, Yui, Hina, Aoi, Ren, Sakura, Kenji, Yuki",
        "Sato, Suzuki, Takahashi, Tanaka, Watanabe, Ito, Yamamoto, Nakamura, Kobayashi, Kato",
    ),
    "hi": (
        "Aarav, Vivaan, Aditya, Ananya, Diya, Priya, Rohan, Ishaan, Kavya, Saanvi",
        "Sharma, Patel, Singh, Kumar, Gupta, Reddy, Iyer, Nair, Mehta, Das",
    ),
    "sv": (
        "Erik, Lars, Astrid, Elsa, Maja, Oskar, Linnéa, Nils",
        "Andersson, Johansson, Karlsson, Nilsson, Eriksson, Lindström, Åberg",
    ),
    "pl": (
        "Jakub, Kacper, Zofia, Zuzanna, Łukasz, Małgorzata, Piotr, Agnieszka",
        "Nowak, Kowalczyk, Wiśniewski, Wójcik, Kamiński, Lewandowski, Zieliński",
    ),
}

# Free-mail providers are spelled under the reserved `.example` TLD so no demo
# address can ever belong to a real person.
_COUNTRIES: Final = (
    # ISO 3166 code, weight, name pool, mail providers
    ("FR", 18, "fr", ("orange.example", "free.example", "laposte.example")),
    ("DE", 13, "de", ("gmx.example", "web.example", "t-online.example")),
    ("US", 15, "en", ("gmail.example", "outlook.example", "yahoo.example")),
    ("GB", 9, "en", ("gmail.example", "btinternet.example", "outlook.example")),
    ("ES", 7, "es", ("gmail.example", "telefonica.example")),
    ("IT", 6, "it", ("libero.example", "gmail.example", "tiscali.example")),
    ("NL", 5, "nl", ("ziggo.example", "kpn.example", "gmail.example")),
    ("BE", 4, "fr", ("skynet.example", "telenet.example")),
    ("CA", 4, "en", ("gmail.example", "rogers.example", "videotron.example")),
    ("BR", 4, "pt", ("uol.example", "gmail.example", "terra.example")),
    ("JP", 3, "ja", ("yahoo-jp.example", "docomo.example")),
    ("IN", 3, "hi", ("gmail.example", "rediffmail.example")),
    ("CH", 2, "de", ("bluewin.example", "gmx.example")),
    ("SE", 2, "sv", ("telia.example", "gmail.example")),
    ("PL", 2, "pl", ("wp.example", "onet.example")),
    ("AU", 2, "en", ("bigpond.example", "gmail.example")),
    ("IE", 1, "en", ("eircom.example", "gmail.example")),
    ("PT", 1, "pt", ("sapo.example", "gmail.example")),
    ("MX", 1, "es", ("prodigy.example", "gmail.example")),
    ("AT", 1, "de", ("aon.example", "gmx.example")),
)
_COMPANY_DOMAINS: Final = (
    "acme-corp.example",
    "northwind.example",
    "globex.example",
    "initech.example",
    "contoso.example",
    "fabrikam.example",
    "umbrella-logistics.example",
    "blue-harbor.example",
)

# --- Who answers ----------------------------------------------------------------

_AGENTS: Final = {
    "Technical": ("Inès Moreau", "Tobias Richter", "Priya Nair", "Marco Bianchi"),
    "Billing": ("Sarah O'Connor", "Jan Kowalski"),
    "Accounts": ("Aiko Tanaka", "Lucas Ferreira"),
    "Shipping": ("Émilie Laurent", "Daniel Brooks"),
    "Returns": ("Nora Lindqvist", "Pedro Álvarez"),
}
_GROUPS: Final = ("Technical", "Billing", "Accounts", "Shipping", "Returns")
_GROUP_CUMULATIVE: Final = (32, 56, 74, 90, 100)

# --- What they write about ------------------------------------------------------------
# (subject, description) pairs per group; {placeholders} are filled per ticket
# so the order number in the subject matches the one in the description.

_TOPICS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "Technical": (
        (
            "App crashes when {action}",
            "The app closes without any message every time I try {action}. It started after the "
            "last update on my {device}.",
        ),
        (
            "Error {code} when {action}",
            "I get error {code} as soon as I try {action}. Reinstalling did not help.",
        ),
        (
            "{feature} won't load since the last update",
            "{feature} shows a spinner forever on my {device}. Other pages work fine.",
        ),
        (
            "Sync between {device} and the web app stopped",
            "Changes I make on my {device} no longer show up on the web. Last successful sync was "
            "two days ago.",
        ),
        (
            "Cannot export report to {format}",
            "Exporting the monthly report to {format} fails with an empty file.",
        ),
        (
            "Notifications not arriving on {device}",
            "Push notifications stopped on my {device} although they are enabled in the settings.",
        ),
        (
            "{feature} is very slow",
            "{feature} takes more than thirty seconds to open for our team since Monday.",
        ),
        (
            "API returns {http} for {endpoint}",
            "Our integration gets HTTP {http} from {endpoint} since this morning. Nothing changed "
            "on our side.",
        ),
    ),
    "Billing": (
        (
            "Charged twice for invoice {invoice}",
            "My card was debited twice for invoice {invoice}. Please refund the duplicate charge.",
        ),
        (
            "Refund not received for order {order}",
            "You confirmed a refund for order {order} two weeks ago but I still have not "
            "received it.",
        ),
        (
            "Wrong VAT number on invoice {invoice}",
            "Invoice {invoice} shows our old VAT number. Could you issue a corrected invoice?",
        ),
        (
            "Card declined when upgrading to {plan}",
            "My card is declined when I try to upgrade to the {plan} plan, but it works "
            "everywhere else.",
        ),
        (
            "Question about {plan} plan pricing",
            "How is the {plan} plan billed when we add users in the middle of the month?",
        ),
        (
            "Need a copy of invoice {invoice}",
            "Our accounting team needs a PDF copy of invoice {invoice}.",
        ),
        (
            "Cancel auto-renewal of my {plan} subscription",
            "Please turn off automatic renewal for our {plan} subscription.",
        ),
    ),
    "Accounts": (
        (
            "Can't log in after password reset",
            "I reset my password but the new one is rejected on my {device}.",
        ),
        (
            "Two-factor code never arrives",
            "The SMS with my two-factor code never arrives, so I am locked out.",
        ),
        (
            "Please merge my two accounts",
            "I accidentally created a second account with my work address. Can you merge them?",
        ),
        (
            "Change the email address on my account",
            "I have a new email address and cannot change it myself in the profile page.",
        ),
        (
            "Account locked after too many attempts",
            "My account is locked after several failed logins. Please unlock it.",
        ),
        (
            "Delete my account and personal data",
            "Please delete my account and all personal data you hold about me.",
        ),
        (
            "Add a new user to our {plan} workspace",
            "We need one more seat on our {plan} workspace for a new colleague.",
        ),
    ),
    "Shipping": (
        (
            "Order {order} has not arrived",
            "Order {order} was due last week and has still not arrived.",
        ),
        (
            "Tracking for {order} stuck at {carrier} depot",
            "The {carrier} tracking for order {order} has not moved from the depot for five days.",
        ),
        (
            "Parcel for order {order} delivered to wrong address",
            "{carrier} says order {order} was delivered, but not to my address.",
        ),
        (
            "Change delivery address for order {order}",
            "I moved last week. Can you change the delivery address for order {order}?",
        ),
        (
            "Package arrived damaged (order {order})",
            "The box for order {order} arrived crushed and the {product} inside is damaged.",
        ),
    ),
    "Returns": (
        (
            "Return label for order {order}",
            "I would like to return part of order {order}. Could you send me a return label?",
        ),
        (
            "Exchange {product} for a different size",
            "The {product} from order {order} is too small. Can I exchange it for one size up?",
        ),
        (
            "Refund for returned {product}",
            "I returned the {product} ({rma}) three weeks ago and have had no refund yet.",
        ),
        (
            "Item missing from return {rma}",
            "Return {rma} was marked as received but one item is missing from the credit note.",
        ),
    ),
}

_CLOSERS: Final = (
    "",
    " Thanks in advance.",
    " Could you please look into this?",
    " This is blocking our whole team.",
    " I have attached a screenshot.",
    " Please call me back if that is easier.",
    " Kind regards.",
)


# Numbered placeholders: format, lowest, highest + 1.
_NUMBERED: Final = {
    "order": ("#{}", 100_000, 1_000_000),
    "invoice": ("INV-2026-{:05d}", 1, 100_000),
    "rma": ("RMA-{}", 10_000, 100_000),
}
_WORDS: Final = {
    "plan": ("Starter", "Team", "Business", "Enterprise"),
    "device": ("iPhone", "Android phone", "iPad", "Windows laptop", "Mac"),
    "action": (
        "uploading an attachment",
        "opening the dashboard",
        "saving a draft",
        "switching workspaces",
        "printing shipping labels",
        "signing in with Google",
    ),
    "code": ("E1042", "E2001", "0x80070005", "SYNC-409", "AUTH-17"),
    "feature": ("The dashboard", "Search", "The calendar view", "Reports", "The inbox"),
    "format": ("PDF", "CSV", "Excel"),
    "http": ("500", "502", "429", "403"),
    "endpoint": ("/v2/orders", "/v2/customers", "/v1/invoices", "/v2/webhooks"),
    "carrier": ("DHL", "UPS", "La Poste", "DPD", "GLS", "Royal Mail", "PostNL"),
    "product": (
        "Trail Runner 2 shoes",
        "merino hoodie",
        "30 L travel backpack",
        "rain jacket",
        "wool socks (3-pack)",
        "insulated bottle",
    ),
}

_TAGS: Final = {
    "Technical": ("bug", "mobile", "api", "performance", "regression", "vip", "escalated"),
    "Billing": ("refund", "invoice", "vat", "upgrade", "chargeback", "vip", "escalated"),
    "Accounts": ("login", "2fa", "gdpr", "account-merge", "sso", "vip", "escalated"),
    "Shipping": ("late-delivery", "tracking", "damaged", "address-change", "vip", "escalated"),
    "Returns": ("return-label", "exchange", "refund", "missing-item", "vip", "escalated"),
}
_TAG_COUNTS: Final = (0, 1, 2, 3)
_TAG_COUNT_CUMULATIVE: Final = (20, 60, 88, 100)

_PRIORITIES: Final = ("low", "normal", "high", "urgent")
_PRIORITY_CUMULATIVE: Final = (25, 75, 93, 100)
# Service-level target per priority, seconds after creation.
_SLA: Final = {"low": 7 * _DAY, "normal": 3 * _DAY, "high": _DAY, "urgent": 4 * _HOUR}
# Share (in percent) of tickets of each priority that carry a due date.
_DUE_SHARE: Final = {"low": 5, "normal": 25, "high": 80, "urgent": 95}

_CHANNELS: Final = ("email", "web", "chat", "phone")
_CHANNEL_CUMULATIVE: Final = (45, 75, 90, 100)

_STATUSES: Final = ("new", "open", "pending", "hold", "solved", "closed")
# Cumulative status weights by ticket age: young tickets are still being worked on.
_STATUS_AGE_LIMITS: Final = (2 * _DAY, 10 * _DAY, 30 * _DAY)
_STATUS_BY_AGE: Final = (
    (35, 75, 90, 95, 100, 100),  # under 2 days old
    (5, 35, 60, 68, 95, 100),  # under 10 days
    (1, 11, 21, 26, 70, 100),  # under 30 days
    (0, 3, 6, 8, 30, 100),  # older
)
# Help desks close solved tickets automatically after four days.
_AUTO_CLOSE: Final = 4 * _DAY

# Ticket volume per UTC hour of the day (most requesters are in Europe).
_HOUR_WEIGHTS: Final = (1, 1, 1, 1, 1, 1, 2, 4, 9, 9, 9, 10, 10, 10, 10, 10, 8, 8, 5, 5, 5, 2, 2, 2)
_FIRST_DAY_TS: Final = _REFERENCE_TS - SPAN_DAYS * _DAY
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


_NAMES: Final = {pool: (_named(first), _named(last)) for pool, (first, last) in _NAME_LISTS.items()}
_COUNTRY_CUMULATIVE: Final = _cumulative([weight for _, weight, _, _ in _COUNTRIES])
_HOUR_CUMULATIVE: Final = _cumulative(_HOUR_WEIGHTS)
_DAY_CUMULATIVE: Final = _cumulative(_DAY_WEIGHTS)
_AGENT_EMAILS: Final = {
    group: tuple(
        ".".join(_fold(part) for part in name.split(" ", 1)) + "@support.example.com"
        for name in names
    )
    for group, names in _AGENTS.items()
}


def _placeholders(*templates: str) -> tuple[str, ...]:
    names = [name for text in templates for _, name, _, _ in string.Formatter().parse(text) if name]
    return tuple(dict.fromkeys(names))


# Per group: (subject, description, the placeholders the pair uses).
_TOPIC_TABLE: Final = {
    group: tuple((subject, body, _placeholders(subject, body)) for subject, body in pairs)
    for group, pairs in _TOPICS.items()
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
    return _FIRST_DAY_TS + day * _DAY + hour * _HOUR + dice.below(_HOUR)


def _requester(dice: _Dice) -> dict[str, str]:
    code, _, pool, providers = dice.weighted(_COUNTRIES, _COUNTRY_CUMULATIVE)
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
    domain = dice.pick(_COMPANY_DOMAINS) if dice.below(3) == 0 else dice.pick(providers)
    return {"name": f"{first} {last}", "email": f"{local}@{domain}", "country": code}


def _ticket(
    dice: _Dice, ticket_id: int, created: int, people: Sequence[dict[str, str]]
) -> dict[str, Any]:
    """One ticket with integer timestamps (formatted once the order is final)."""
    group = dice.weighted(_GROUPS, _GROUP_CUMULATIVE)
    subject, body, names = dice.pick(_TOPIC_TABLE[group])
    fills = {name: _fill(dice, name) for name in names}
    priority = dice.weighted(_PRIORITIES, _PRIORITY_CUMULATIVE)
    subject = subject.format_map(fills)
    prefix = dice.below(100)
    if priority == "urgent" and prefix < 30:
        subject = f"URGENT: {subject}"
    elif prefix < 5:
        subject = f"Re: {subject}"
    elif prefix < 7:
        subject = f"Fwd: {subject}"
    age = _REFERENCE_TS - created
    status = dice.weighted(_STATUSES, _STATUS_BY_AGE[bisect.bisect(_STATUS_AGE_LIMITS, age)])
    room = _REFERENCE_TS - 1 - created
    delay = _delay(dice, status)
    # A delay past the reference date is redrawn within the room left, rather
    # than clamped, so young tickets don't pile up on one second.
    updated = created + (delay if delay <= room else dice.below(room + 1))
    due = None
    if dice.below(100) < _DUE_SHARE[priority]:
        due = created + _SLA[priority] + dice.between(-60, 60) * 60
    return {
        "id": ticket_id,
        "subject": subject,
        "description": body.format_map(fills) + dice.pick(_CLOSERS),
        "requester": dict(dice.pick(people)),
        "priority": priority,
        "status": status,
        "assignee": None if status == "new" else dice.pick(_AGENT_EMAILS[group]),
        "group": group,
        "tags": dice.sample(_TAGS[group], dice.weighted(_TAG_COUNTS, _TAG_COUNT_CUMULATIVE)),
        "channel": dice.weighted(_CHANNELS, _CHANNEL_CUMULATIVE),
        "created_at": created,
        "updated_at": updated,
        "due_at": due,
        "deleted": False,
    }


def _fill(dice: _Dice, placeholder: str) -> str:
    numbered = _NUMBERED.get(placeholder)
    if numbered is not None:
        spelling, low, high = numbered
        return spelling.format(dice.between(low, high))
    return dice.pick(_WORDS[placeholder])


def _delay(dice: _Dice, status: str) -> int:
    """Seconds from creation to the ticket's last update, given where it ended up."""
    if status == "new":
        return 0 if dice.below(10) < 7 else dice.between(1, 1800)
    bucket = dice.below(10)
    if bucket < 3:
        delay = dice.between(60, 2 * _HOUR)
    elif bucket < 7:
        delay = dice.between(2 * _HOUR, 2 * _DAY)
    else:
        delay = dice.between(2 * _DAY, 12 * _DAY)
    if status == "closed":
        delay += _AUTO_CLOSE + dice.below(_HOUR)
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
        moment = _REFERENCE_TS - dice.between(3, 60) * _DAY + dice.between(8, 17) * _HOUR
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
        hour, seconds = divmod(timestamp, _HOUR)
        prefix = self._hours.get(hour)
        if prefix is None:
            prefix = time.strftime("%Y-%m-%dT%H:", time.gmtime(hour * _HOUR))
            self._hours[hour] = prefix
        minutes, seconds = divmod(seconds, 60)
        return prefix + _TWO_DIGITS[minutes] + ":" + _TWO_DIGITS[seconds] + "Z"


_TWO_DIGITS: Final = tuple(f"{number:02d}" for number in range(60))


# --- Writing files ---------------------------------------------------------------

_JSON: Final = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def write_jsonl(path: Path, tickets: Iterable[dict[str, Any]]) -> int:
    """Write `tickets` to `path` as JSON Lines (compact, sorted keys); returns how many."""
    written = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for ticket in tickets:
            out.write(_JSON.encode(ticket) + "\n")
            written += 1
    return written


def write_csv(path: Path, tickets: Iterable[dict[str, Any]]) -> int:
    """Write `tickets` to `path` as CSV with `CSV_COLUMNS`; returns how many.

    The requester is flattened to `requester_email` and `requester_country`;
    null is an empty field and `deleted` is "true" or "false".
    """
    written = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for ticket in tickets:
            requester = ticket["requester"]
            writer.writerow(
                (
                    ticket["id"],
                    ticket["subject"],
                    requester["email"],
                    requester["country"],
                    ticket["priority"],
                    ticket["status"],
                    ticket["assignee"] or "",
                    ticket["group"],
                    ticket["created_at"],
                    ticket["updated_at"],
                    ticket["due_at"] or "",
                    "true" if ticket["deleted"] else "false",
                )
            )
            written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sync.demo`: write demo tickets to a file; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m sync.demo", description="Write realistic demo support tickets."
    )
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--count", type=int, default=DEMO_COUNT, help="number of tickets")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="random seed")
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be at least 0")
    write = write_csv if args.format == "csv" else write_jsonl
    written = write(args.out, generate_tickets(args.count, args.seed))
    print(f"wrote {written} tickets to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
