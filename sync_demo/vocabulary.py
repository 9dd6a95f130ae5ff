"""What the demo's tickets are made of: names, mail domains, agents, topics, tags, and the weights
of each choice.

Data only, read by `sync_demo.generator`. Weights are integers (cumulative where the name says so)
so that every draw stays in plain integer and float arithmetic; see the generator's docstring for
why that keeps the output byte-identical. Changing any table changes the generated tickets and
the digest recorded in `tests/sync_demo/test_generator.py`.
"""

from __future__ import annotations

from typing import Final

DAY: Final = 86_400
HOUR: Final = 3_600
"""Seconds; the tables below count time in seconds."""

# --- Who writes in ------------------------------------------------------------
# First names, then last names, per name pool; comma-separated to keep the
# table short (some last names hold spaces: "van den Berg").

NAME_LISTS: Final = {
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
COUNTRIES: Final = (
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
COMPANY_DOMAINS: Final = (
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

AGENTS: Final = {
    "Technical": ("Inès Moreau", "Tobias Richter", "Priya Nair", "Marco Bianchi"),
    "Billing": ("Sarah O'Connor", "Jan Kowalski"),
    "Accounts": ("Aiko Tanaka", "Lucas Ferreira"),
    "Shipping": ("Émilie Laurent", "Daniel Brooks"),
    "Returns": ("Nora Lindqvist", "Pedro Álvarez"),
}
GROUPS: Final = ("Technical", "Billing", "Accounts", "Shipping", "Returns")
GROUP_CUMULATIVE: Final = (32, 56, 74, 90, 100)

# --- What they write about ------------------------------------------------------------
# (subject, description) pairs per group; {placeholders} are filled per ticket
# so the order number in the subject matches the one in the description.

TOPICS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
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

CLOSERS: Final = (
    "",
    " Thanks in advance.",
    " Could you please look into this?",
    " This is blocking our whole team.",
    " I have attached a screenshot.",
    " Please call me back if that is easier.",
    " Kind regards.",
)


# Numbered placeholders: format, lowest, highest + 1.
NUMBERED: Final = {
    "order": ("#{}", 100_000, 1_000_000),
    "invoice": ("INV-2026-{:05d}", 1, 100_000),
    "rma": ("RMA-{}", 10_000, 100_000),
}
WORDS: Final = {
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

TAGS: Final = {
    "Technical": ("bug", "mobile", "api", "performance", "regression", "vip", "escalated"),
    "Billing": ("refund", "invoice", "vat", "upgrade", "chargeback", "vip", "escalated"),
    "Accounts": ("login", "2fa", "gdpr", "account-merge", "sso", "vip", "escalated"),
    "Shipping": ("late-delivery", "tracking", "damaged", "address-change", "vip", "escalated"),
    "Returns": ("return-label", "exchange", "refund", "missing-item", "vip", "escalated"),
}
TAG_COUNTS: Final = (0, 1, 2, 3)
TAG_COUNT_CUMULATIVE: Final = (20, 60, 88, 100)

PRIORITIES: Final = ("low", "normal", "high", "urgent")
PRIORITY_CUMULATIVE: Final = (25, 75, 93, 100)
# Service-level target per priority, seconds after creation.
SLA: Final = {"low": 7 * DAY, "normal": 3 * DAY, "high": DAY, "urgent": 4 * HOUR}
# Share (in percent) of tickets of each priority that carry a due date.
DUE_SHARE: Final = {"low": 5, "normal": 25, "high": 80, "urgent": 95}

CHANNELS: Final = ("email", "web", "chat", "phone")
CHANNEL_CUMULATIVE: Final = (45, 75, 90, 100)

STATUSES: Final = ("new", "open", "pending", "hold", "solved", "closed")
# Cumulative status weights by ticket age: young tickets are still being worked on.
STATUS_AGE_LIMITS: Final = (2 * DAY, 10 * DAY, 30 * DAY)
STATUS_BY_AGE: Final = (
    (35, 75, 90, 95, 100, 100),  # under 2 days old
    (5, 35, 60, 68, 95, 100),  # under 10 days
    (1, 11, 21, 26, 70, 100),  # under 30 days
    (0, 3, 6, 8, 30, 100),  # older
)
# Help desks close solved tickets automatically after four days.
AUTO_CLOSE: Final = 4 * DAY

# Ticket volume per UTC hour of the day (most requesters are in Europe).
HOUR_WEIGHTS: Final = (1, 1, 1, 1, 1, 1, 2, 4, 9, 9, 9, 10, 10, 10, 10, 10, 8, 8, 5, 5, 5, 2, 2, 2)
