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
import csv
import datetime as dt
import json
import random
import string
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

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

_NAMES: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "fr": (
        (
            "Camille",
            "Léa",
            "Manon",
            "Chloé",
            "Inès",
            "Louis",
            "Hugo",
            "Théo",
            "Noémie",
            "Étienne",
            "Zoé",
            "Gaël",
            "François",
            "Mathis",
        ),
        (
            "Martin",
            "Bernard",
            "Dubois",
            "Thomas",
            "Robert",
            "Richard",
            "Petit",
            "Durand",
            "Lefèvre",
            "Moreau",
            "Girard",
            "Fournier",
            "Lambert",
            "Rousseau",
        ),
    ),
    "de": (
        (
            "Lukas",
            "Jonas",
            "Leon",
            "Lena",
            "Hannah",
            "Sophie",
            "Jürgen",
            "Anja",
            "Björn",
            "Mia",
            "Felix",
            "Lea",
        ),
        (
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Schäfer",
            "Koch",
            "Hoffmann",
            "Krüger",
            "Groß",
        ),
    ),
    "en": (
        (
            "Olivia",
            "Emma",
            "James",
            "Liam",
            "Noah",
            "Ava",
            "Charlotte",
            "Ethan",
            "Amelia",
            "Harry",
            "Jack",
            "Grace",
            "Chloe",
            "Daniel",
        ),
        (
            "Smith",
            "Johnson",
            "Williams",
            "Brown",
            "Jones",
            "Taylor",
            "Davies",
            "Wilson",
            "Evans",
            "Miller",
            "O'Brien",
            "Clarke",
            "Patel",
            "Nguyen",
        ),
    ),
    "es": (
        (
            "Lucía",
            "Sofía",
            "Martín",
            "Hugo",
            "Pablo",
            "Álvaro",
            "María",
            "Carmen",
            "Javier",
            "Nuria",
        ),
        (
            "García",
            "Fernández",
            "González",
            "Rodríguez",
            "López",
            "Martínez",
            "Sánchez",
            "Pérez",
            "Gómez",
            "Núñez",
        ),
    ),
    "it": (
        (
            "Giulia",
            "Francesca",
            "Alessandro",
            "Lorenzo",
            "Matteo",
            "Chiara",
            "Sofia",
            "Niccolò",
            "Elena",
            "Davide",
        ),
        (
            "Rossi",
            "Russo",
            "Ferrari",
            "Esposito",
            "Bianchi",
            "Romano",
            "Colombo",
            "Ricci",
            "Marino",
            "Greco",
        ),
    ),
    "nl": (
        ("Daan", "Sem", "Lucas", "Emma", "Julia", "Tess", "Sanne", "Bram", "Fleur", "Joris"),
        (
            "de Jong",
            "Jansen",
            "de Vries",
            "van den Berg",
            "van Dijk",
            "Bakker",
            "Janssen",
            "Visser",
            "Smit",
            "Meijer",
        ),
    ),
    "pt": (
        (
            "João",
            "Ana",
            "Gabriel",
            "Beatriz",
            "Lucas",
            "Mariana",
            "Rafael",
            "Larissa",
            "Thiago",
            "Camila",
        ),
        (
            "Silva",
            "Santos",
            "Oliveira",
            "Souza",
            "Lima",
            "Pereira",
            "Ferreira",
            "Costa",
            "Rodrigues",
            "Conceição",
        ),
    ),
    "ja": (
        ("Haruto", "Yuto", "Sota", "Yui", "Hina", "Aoi", "Ren", "Sakura", "Kenji", "Yuki"),
        (
            "Sato",
            "Suzuki",
            "Takahashi",
            "Tanaka",
            "Watanabe",
            "Ito",
            "Yamamoto",
            "Nakamura",
            "Kobayashi",
            "Kato",
        ),
    ),
    "hi": (
        (
            "Aarav",
            "Vivaan",
            "Aditya",
            "Ananya",
            "Diya",
            "Priya",
            "Rohan",
            "Ishaan",
            "Kavya",
            "Saanvi",
        ),
        ("Sharma", "Patel", "Singh", "Kumar", "Gupta", "Reddy", "Iyer", "Nair", "Mehta", "Das"),
    ),
    "sv": (
        ("Erik", "Lars", "Astrid", "Elsa", "Maja", "Oskar", "Linnéa", "Nils"),
        ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Lindström", "Åberg"),
    ),
    "pl": (
        ("Jakub", "Kacper", "Zofia", "Zuzanna", "Łukasz", "Małgorzata", "Piotr", "Agnieszka"),
        ("Nowak", "Kowalczyk", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski", "Zieliński"),
    ),
}

# Free-mail providers are spelled under the reserved `.example` TLD so no demo
# address can ever belong to a real person.
_COUNTRIES: Final = (
    # code, weight, name pool, mail domains
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
_COUNTRY_CUMULATIVE: Final = tuple(
    sum(weight for _, weight, _, _ in _COUNTRIES[: i + 1]) for i in range(len(_COUNTRIES))
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

_AGENTS: Final[dict[str, tuple[str, ...]]] = {
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
            "{feature} not loading since the last update",
            "{feature} shows a spinner forever on {device}. Other pages work fine.",
        ),
        (
            "Sync between {device} and the web app stopped",
            "Changes I make on {device} no longer show up on the web. Last successful sync was "
            "two days ago.",
        ),
        (
            "Cannot export report to {format}",
            "Exporting the monthly report to {format} fails with an empty file.",
        ),
        (
            "Notifications not arriving on {device}",
            "Push notifications stopped on {device} although they are enabled in the settings.",
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
            "I reset my password but the new one is rejected on {device}.",
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


def _fill_order(rng: random.Random) -> str:
    return f"#{rng.randrange(100_000, 1_000_000)}"


def _fill_invoice(rng: random.Random) -> str:
    return f"INV-2026-{rng.randrange(1, 100_000):05d}"


def _fill_rma(rng: random.Random) -> str:
    return f"RMA-{rng.randrange(10_000, 100_000)}"


def _pick(options: Sequence[str]) -> Callable[[random.Random], str]:
    return lambda rng: options[rng.randrange(len(options))]


_FILLERS: Final[dict[str, Callable[[random.Random], str]]] = {
    "order": _fill_order,
    "invoice": _fill_invoice,
    "rma": _fill_rma,
    "plan": _pick(("Starter", "Team", "Business", "Enterprise")),
    "device": _pick(("iPhone", "Android phone", "iPad", "Windows laptop", "Mac")),
    "action": _pick(
        (
            "uploading an attachment",
            "opening the dashboard",
            "saving a draft",
            "switching workspaces",
            "printing shipping labels",
            "signing in with Google",
        )
    ),
    "code": _pick(("E1042", "E2001", "0x80070005", "SYNC-409", "AUTH-17")),
    "feature": _pick(("The dashboard", "Search", "The calendar view", "Reports", "The inbox")),
    "format": _pick(("PDF", "CSV", "Excel")),
    "http": _pick(("500", "502", "429", "403")),
    "endpoint": _pick(("/v2/orders", "/v2/customers", "/v1/invoices", "/v2/webhooks")),
    "carrier": _pick(("DHL", "UPS", "La Poste", "DPD", "GLS", "Royal Mail", "PostNL")),
    "product": _pick(
        (
            "Trail Runner 2 shoes",
            "merino hoodie",
            "30 L travel backpack",
            "rain jacket",
            "wool socks (3-pack)",
            "insulated bottle",
        )
    ),
}


def _placeholders(*templates: str) -> tuple[str, ...]:
    names = [name for text in templates for _, name, _, _ in string.Formatter().parse(text) if name]
    return tuple(dict.fromkeys(names))


# Per group: (subject, description, placeholders the pair uses).
_TOPIC_TABLE: Final = {
    group: tuple((subject, body, _placeholders(subject, body)) for subject, body in pairs)
    for group, pairs in _TOPICS.items()
}

_TAGS: Final[dict[str, tuple[str, ...]]] = {
    "Technical": ("bug", "mobile", "api", "performance", "regression", "vip", "escalated"),
    "Billing": ("refund", "invoice", "vat", "upgrade", "chargeback", "vip", "escalated"),
    "Accounts": ("login", "2fa", "gdpr", "account-merge", "sso", "vip", "escalated"),
    "Shipping": ("late-delivery", "tracking", "damaged", "address-change", "vip", "escalated"),
    "Returns": ("return-label", "exchange", "refund", "missing-item", "vip", "escalated"),
}

_PRIORITIES: Final = ("low", "normal", "high", "urgent")
_PRIORITY_CUMULATIVE: Final = (25, 75, 93, 100)
# Service-level target per priority, seconds after creation.
_SLA: Final = {"low": 7 * _DAY, "normal": 3 * _DAY, "high": _DAY, "urgent": 4 * _HOUR}
# Share (in percent) of tickets of each priority that carry a due date.
_DUE_SHARE: Final = {"low": 5, "normal": 25, "high": 80, "urgent": 95}

_CHANNELS: Final = ("email", "web", "chat", "phone")
_CHANNEL_CUMULATIVE: Final = (45, 75, 90, 100)

_STATUSES: Final = ("new", "open", "pending", "hold", "solved", "closed")
# Status weights by ticket age: young tickets are still being worked on.
_STATUS_BY_AGE: Final = (
    (2 * _DAY, (35, 75, 90, 95, 100, 100)),
    (10 * _DAY, (5, 35, 60, 68, 95, 100)),
    (30 * _DAY, (1, 11, 21, 26, 70, 100)),
    (SPAN_DAYS * _DAY + _DAY, (0, 3, 6, 8, 30, 100)),
)
# Help desks close solved tickets automatically after four days.
_AUTO_CLOSE: Final = 4 * _DAY

# Ticket volume per UTC hour of the day (most requesters are in Europe).
_HOUR_WEIGHTS: Final = (1, 1, 1, 1, 1, 1, 2, 4, 9, 9, 9, 10, 10, 10, 10, 10, 8, 8, 5, 5, 5, 2, 2, 2)
_HOUR_CUMULATIVE: Final = tuple(sum(_HOUR_WEIGHTS[: i + 1]) for i in range(24))

_FIRST_DAY_TS: Final = _REFERENCE_TS - SPAN_DAYS * _DAY
# Weekends see half the traffic of a weekday.
_DAY_WEIGHTS: Final = tuple(
    1 if (REFERENCE - dt.timedelta(days=SPAN_DAYS - day)).weekday() >= 5 else 2
    for day in range(SPAN_DAYS)
)
_DAY_CUMULATIVE: Final = tuple(sum(_DAY_WEIGHTS[: i + 1]) for i in range(SPAN_DAYS))


def _fold(text: str) -> str:
    """`text` as lower-case ASCII for an email address: "Groß O'Brien" -> "grossobrien"."""
    text = text.translate(_FOLD_SPECIAL)
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in ascii_text.lower() if ch.isalnum() or ch == "-")


_FOLD_SPECIAL: Final = str.maketrans(
    {"ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "œ": "oe", "ł": "l", "Ł": "L", "đ": "d"}
)

_AGENT_EMAILS: Final = {
    group: tuple(
        f"{_fold(name.split(' ', 1)[0])}.{_fold(name.split(' ', 1)[1])}@support.example.com"
        for name in names
    )
    for group, names in _AGENTS.items()
}


def _choose(rng: random.Random, options: Sequence[str], cumulative: Sequence[int]) -> str:
    return rng.choices(options, cum_weights=cumulative)[0]


def _requester(rng: random.Random) -> dict[str, str]:
    code, _, pool, domains = rng.choices(_COUNTRIES, cum_weights=_COUNTRY_CUMULATIVE)[0]
    firsts, lasts = _NAMES[pool]
    first = firsts[rng.randrange(len(firsts))]
    last = lasts[rng.randrange(len(lasts))]
    local_first, local_last = _fold(first), _fold(last)
    style = rng.randrange(5)
    if style == 0:
        local = f"{local_first[0]}{local_last}"
    elif style == 1:
        local = f"{local_first}_{local_last}"
    elif style == 2:
        local = f"{local_first}.{local_last}{rng.randrange(1, 100)}"
    else:
        local = f"{local_first}.{local_last}"
    # A third of requesters write from work.
    if rng.randrange(3) == 0:
        domain = _COMPANY_DOMAINS[rng.randrange(len(_COMPANY_DOMAINS))]
    else:
        domain = domains[rng.randrange(len(domains))]
    return {"name": f"{first} {last}", "email": f"{local}@{domain}", "country": code}


def _created_at(rng: random.Random) -> int:
    day = rng.choices(range(SPAN_DAYS), cum_weights=_DAY_CUMULATIVE)[0]
    hour = rng.choices(range(24), cum_weights=_HOUR_CUMULATIVE)[0]
    return _FIRST_DAY_TS + day * _DAY + hour * _HOUR + rng.randrange(_HOUR)


def _delay(rng: random.Random, status: str) -> int:
    """Seconds from creation to the ticket's last update, given where it ended up."""
    if status == "new":
        return 0 if rng.randrange(10) < 7 else rng.randrange(1, 1800)
    bucket = rng.randrange(10)
    if bucket < 3:
        delay = rng.randrange(60, 2 * _HOUR)
    elif bucket < 7:
        delay = rng.randrange(2 * _HOUR, 2 * _DAY)
    else:
        delay = rng.randrange(2 * _DAY, 12 * _DAY)
    if status == "closed":
        delay += _AUTO_CLOSE + rng.randrange(_HOUR)
    return delay


def _iso(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def generate_tickets(count: int = DEMO_COUNT, seed: int = DEMO_SEED) -> Iterator[dict[str, Any]]:
    """`count` demo tickets from `seed`, ascending by `updated_at` (ties by `id`).

    Each is a fresh JSON-compatible dict; the same arguments give the same
    tickets on every run and machine. Raises `ValueError` for a negative count.
    """
    if count < 0:
        raise ValueError(f"count must be at least 0, got {count}")
    rng = random.Random(seed)
    # Ids follow creation order, as in a real help desk.
    created = sorted(_created_at(rng) for _ in range(count))
    people = [_requester(rng) for _ in range(max(1, count * 2 // 3))]
    tickets = [_ticket(rng, _FIRST_ID + n, at, people) for n, at in enumerate(created)]
    untouchable = _merge_duplicates(rng, tickets)
    _apply_bulk_macros(rng, tickets, untouchable)
    for index in rng.sample(range(count), min(count, max(1, round(count * 0.005)))):
        # Spam, deleted by an agent: the deletion is its last update.
        tickets[index]["deleted"] = True
    tickets.sort(key=lambda ticket: (ticket["updated_at"], ticket["id"]))
    for ticket in tickets:
        ticket["created_at"] = _iso(ticket["created_at"])
        ticket["updated_at"] = _iso(ticket["updated_at"])
        if ticket["due_at"] is not None:
            ticket["due_at"] = _iso(ticket["due_at"])
        yield ticket


def _ticket(
    rng: random.Random, ticket_id: int, created: int, people: Sequence[dict[str, str]]
) -> dict[str, Any]:
    """One ticket with integer timestamps (formatted once the order is final)."""
    group = _choose(rng, _GROUPS, _GROUP_CUMULATIVE)
    topics = _TOPIC_TABLE[group]
    subject, body, names = topics[rng.randrange(len(topics))]
    fills = {name: _FILLERS[name](rng) for name in names}
    priority = _choose(rng, _PRIORITIES, _PRIORITY_CUMULATIVE)
    subject = subject.format_map(fills)
    prefix = rng.randrange(100)
    if priority == "urgent" and prefix < 30:
        subject = f"URGENT: {subject}"
    elif prefix < 5:
        subject = f"Re: {subject}"
    elif prefix < 7:
        subject = f"Fwd: {subject}"
    age = _REFERENCE_TS - created
    weights = next(weights for limit, weights in _STATUS_BY_AGE if age < limit)
    status = _choose(rng, _STATUSES, weights)
    room = _REFERENCE_TS - 1 - created
    delay = _delay(rng, status)
    # A delay past the reference date is redrawn within the room left, rather
    # than clamped, so young tickets don't pile up on one second.
    updated = created + (delay if delay <= room else rng.randrange(room + 1))
    agents = _AGENT_EMAILS[group]
    assignee = None if status == "new" else agents[rng.randrange(len(agents))]
    tag_pool = _TAGS[group]
    tags = rng.sample(tag_pool, rng.choices((0, 1, 2, 3), cum_weights=(20, 60, 88, 100))[0])
    due = None
    if rng.randrange(100) < _DUE_SHARE[priority]:
        due = created + _SLA[priority] + rng.randrange(-_HOUR, _HOUR) // 60 * 60
    return {
        "id": ticket_id,
        "subject": subject,
        "description": body.format_map(fills) + _CLOSERS[rng.randrange(len(_CLOSERS))],
        "requester": dict(people[rng.randrange(len(people))]),
        "priority": priority,
        "status": status,
        "assignee": assignee,
        "group": group,
        "tags": tags,
        "channel": _choose(rng, _CHANNELS, _CHANNEL_CUMULATIVE),
        "created_at": created,
        "updated_at": updated,
        "due_at": due,
        "deleted": False,
    }


def _merge_duplicates(rng: random.Random, tickets: list[dict[str, Any]]) -> list[bool]:
    """Merge a few duplicate pairs; both tickets of a pair share one `updated_at`.

    A requester who wrote twice has the later ticket closed into the earlier
    one, which updates both in the same second. Returns, per ticket, whether
    it was merged, so later edits leave the pairs' ties alone.
    """
    merged = [False] * len(tickets)
    pairs = max(2, len(tickets) // 240) if len(tickets) >= 8 else 0
    for _ in range(pairs):
        first = rng.randrange(len(tickets) - 1)
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
    rng: random.Random, tickets: list[dict[str, Any]], untouchable: list[bool]
) -> None:
    """Stamp groups of Shipping tickets with one `updated_at` second.

    One macro run ("carrier strike: we are on it") per DEMO_COUNT tickets
    sets up to BULK_SIZE open tickets to pending at the same second, the way
    help desk bulk updates do.
    """
    runs = max(1, len(tickets) // DEMO_COUNT) if len(tickets) >= 4 else 0
    for _ in range(runs):
        moment = _REFERENCE_TS - rng.randrange(3, 60) * _DAY + rng.randrange(8, 17) * _HOUR
        eligible = [
            index
            for index, ticket in enumerate(tickets)
            if not untouchable[index] and ticket["updated_at"] < moment
        ]
        shipping = [index for index in eligible if tickets[index]["group"] == "Shipping"]
        # Small demo sets may hold too few Shipping tickets; top up from the rest.
        others = [index for index in eligible if tickets[index]["group"] != "Shipping"]
        size = min(BULK_SIZE, len(tickets) // 4)
        chosen = rng.sample(shipping, min(size, len(shipping)))
        chosen += rng.sample(others, min(size - len(chosen), len(others)))
        for index in chosen:
            ticket = tickets[index]
            ticket["updated_at"] = moment
            ticket["status"] = "pending"
            ticket["assignee"] = ticket["assignee"] or _AGENT_EMAILS[ticket["group"]][0]
            ticket["tags"] = [*ticket["tags"][:2], "carrier-strike"]
            untouchable[index] = True


def write_jsonl(path: Path, tickets: Iterable[dict[str, Any]]) -> int:
    """Write `tickets` to `path` as JSON Lines (compact, sorted keys); returns how many."""
    written = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for ticket in tickets:
            out.write(json.dumps(ticket, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
            out.write("\n")
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
