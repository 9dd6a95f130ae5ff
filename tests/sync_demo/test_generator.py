"""The demo ticket generator: same bytes every time, realistic fields, same-second ties."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sync_demo import (
    BULK_SIZE,
    CSV_COLUMNS,
    DEMO_COUNT,
    DEMO_SEED,
    REFERENCE,
    generate_tickets,
    write_jsonl,
)
from sync_demo.__main__ import main

REPO = Path(__file__).resolve().parents[2]

# sha256 of `python -m sync_demo --out FILE` with the defaults. If you changed
# the generator on purpose, regenerate and paste the new digest here.
DEMO_DIGEST = "275757b2c3294163c6a6d6e3eaca5149fc46b7fc59bf557918a0975b9a55ce89"

ISO_UTC_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
COUNTRIES = {"FR", "DE", "US", "GB", "ES", "IT", "NL", "BE", "CA", "BR", "JP", "IN"}


@pytest.fixture(scope="module")
def demo() -> list[dict[str, Any]]:
    return list(generate_tickets())


def parse(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))


def test_two_generations_write_identical_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    write_jsonl(first, generate_tickets())
    write_jsonl(second, generate_tickets())

    assert first.read_bytes() == second.read_bytes()


def test_default_demo_file_has_the_recorded_digest(tmp_path: Path) -> None:
    # Guards "byte-identical on every machine": a platform or Python version
    # that draws differently fails here, not in a confusing sync test.
    path = tmp_path / "demo.jsonl"
    write_jsonl(path, generate_tickets(DEMO_COUNT, DEMO_SEED))

    assert hashlib.sha256(path.read_bytes()).hexdigest() == DEMO_DIGEST


def test_another_seed_gives_other_tickets() -> None:
    assert list(generate_tickets(50, seed=1)) != list(generate_tickets(50, seed=2))


@pytest.mark.parametrize("count", [0, 1, 7, 250, DEMO_COUNT])
def test_count_is_honoured_with_unique_ids(count: int) -> None:
    tickets = list(generate_tickets(count))

    assert len(tickets) == count
    assert sorted(ticket["id"] for ticket in tickets) == list(range(10001, 10001 + count))


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="count must be at least 0"):
        list(generate_tickets(-1))


def test_tickets_ascend_by_updated_at(demo: list[dict[str, Any]]) -> None:
    stamps = [ticket["updated_at"] for ticket in demo]

    assert stamps == sorted(stamps)


def test_a_bulk_update_stamps_forty_tickets_with_one_second(demo: list[dict[str, Any]]) -> None:
    ties = Counter(ticket["updated_at"] for ticket in demo)
    stamp, size = ties.most_common(1)[0]
    bulk = [ticket for ticket in demo if ticket["updated_at"] == stamp]

    assert size == BULK_SIZE
    assert {ticket["status"] for ticket in bulk} == {"pending"}
    assert all("carrier-strike" in ticket["tags"] for ticket in bulk)


def test_several_pairs_of_tickets_share_a_second(demo: list[dict[str, Any]]) -> None:
    ties = Counter(ticket["updated_at"] for ticket in demo)

    assert sum(1 for size in ties.values() if size == 2) >= 3


def test_timestamps_are_utc_seconds_in_the_90_days_before_the_reference(
    demo: list[dict[str, Any]],
) -> None:
    earliest = REFERENCE - dt.timedelta(days=90)
    for ticket in demo:
        for field in ("created_at", "updated_at"):
            assert ISO_UTC_SECOND.fullmatch(ticket[field]), ticket
            assert earliest <= parse(ticket[field]) < REFERENCE, ticket
        assert ticket["updated_at"] >= ticket["created_at"], ticket
        if ticket["due_at"] is not None:
            assert ISO_UTC_SECOND.fullmatch(ticket["due_at"]), ticket
            assert ticket["due_at"] > ticket["created_at"], ticket


def test_every_ticket_has_the_documented_fields(demo: list[dict[str, Any]]) -> None:
    for ticket in demo:
        assert isinstance(ticket["id"], int)
        assert ticket["subject"].strip()
        assert ticket["description"].strip()
        requester = ticket["requester"]
        assert set(requester) == {"name", "email", "country"}
        assert re.fullmatch(r"[a-z0-9._-]+@[a-z0-9.-]+\.example", requester["email"]), requester
        assert re.fullmatch(r"[A-Z]{2}", requester["country"])
        assert ticket["priority"] in {"low", "normal", "high", "urgent"}
        assert ticket["status"] in {"new", "open", "pending", "hold", "solved", "closed"}
        assert ticket["group"] in {"Technical", "Billing", "Accounts", "Shipping", "Returns"}
        assert ticket["channel"] in {"email", "web", "chat", "phone"}
        assert len(ticket["tags"]) <= 3
        assert len(set(ticket["tags"])) == len(ticket["tags"])
        assert isinstance(ticket["deleted"], bool)
        if ticket["status"] == "new":
            assert ticket["assignee"] is None
        else:
            assert ticket["assignee"].endswith("@support.example.com")


def test_values_are_varied_like_a_real_help_desk(demo: list[dict[str, Any]]) -> None:
    countries = Counter(ticket["requester"]["country"] for ticket in demo)
    agents = {ticket["assignee"] for ticket in demo} - {None}
    deleted = sum(ticket["deleted"] for ticket in demo)

    assert len({ticket["subject"] for ticket in demo}) > 300
    assert len({ticket["requester"]["email"] for ticket in demo}) > 300
    assert set(countries) >= COUNTRIES
    assert countries["FR"] > countries["JP"]
    assert len(agents) == 12
    assert Counter(ticket["priority"] for ticket in demo).most_common(1)[0][0] == "normal"
    assert len({ticket["status"] for ticket in demo}) == 6
    assert 0 < sum(ticket["due_at"] is not None for ticket in demo) < len(demo)
    assert 1 <= deleted <= len(demo) // 100
    assert any(not name.isascii() for name in (t["requester"]["name"] for t in demo))


def test_jsonl_is_compact_with_sorted_keys_and_unescaped_unicode(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    ticket = {"subject": "Problème", "id": 1, "requester": {"name": "Zoé", "email": "z@x.example"}}

    assert write_jsonl(path, [ticket, ticket]) == 2

    line = '{"id":1,"requester":{"email":"z@x.example","name":"Zoé"},"subject":"Problème"}\n'
    assert path.read_text(encoding="utf-8") == line * 2


def test_command_line_writes_a_flattened_csv(tmp_path: Path) -> None:
    path = tmp_path / "tickets.csv"

    done = subprocess.run(
        [sys.executable, "-m", "sync_demo", "--out", str(path), "--count", "60", "--format", "csv"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"wrote 60 tickets to {path}\n"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = list(generate_tickets(60))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [row["id"] for row in rows] == [str(ticket["id"]) for ticket in expected]
    assert rows[0]["requester_email"] == expected[0]["requester"]["email"]
    assert {row["deleted"] for row in rows} <= {"true", "false"}


def test_main_writes_jsonl_with_seed_and_count(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"

    assert main(["--out", str(path), "--count", "5", "--seed", "7"]) == 0

    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == list(generate_tickets(5, seed=7))
