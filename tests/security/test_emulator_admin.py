"""The emulator's admin routes (`/_emulator/*`) take its token and refuse other sites.

They read every task and can wipe them or break the API at will: without
the emulator's bearer token they answer 401, and a request a browser sends
for a page of another site (an `Origin` or `Sec-Fetch-Site` saying so, as a
form post or a script's `fetch` would carry) is refused with 403 even with
the token, before anything is changed. The compose example publishes the
emulator on this machine's loopback only.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from fragment_emulator import Emulator
from synckit import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
TASK = {
    "uid": "5b7e4c0a-3f1d-4e8a-9b2c-6d5e4f3a2b1c",
    "fields": {"title": "Printer jammed"},
    "status": "TODO",
}


def _with_a_task(emulator: Emulator) -> None:
    answer = httpx.put(f"{emulator.base_url}/tasks/batch", json={"items": [TASK]}, headers=AUTH)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_emulator/stats"),
        ("GET", "/_emulator/faults"),
        ("POST", "/_emulator/faults"),
        ("POST", "/_emulator/reset"),
        ("GET", "/_emulator/tasks"),
    ],
)
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer not-the-token"}, {"Authorization": TOKEN}]
)
def test_each_admin_route_refuses_a_request_without_the_token(
    emulator: Emulator, method: str, path: str, headers: dict[str, str]
) -> None:
    _with_a_task(emulator)

    answer = httpx.request(method, emulator.url + path, json={}, headers=headers)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "Printer jammed" not in answer.text
    assert emulator.store.count() == 1
    assert emulator.faults.drop_rate == 0


def test_the_token_opens_the_admin_routes(emulator: Emulator) -> None:
    _with_a_task(emulator)

    listed = httpx.get(f"{emulator.url}/_emulator/tasks", headers=AUTH)
    reset = httpx.post(f"{emulator.url}/_emulator/reset", headers=AUTH)

    assert listed.status_code == 200 and listed.json()["total_count"] == 1
    assert reset.status_code == 200
    assert emulator.store.count() == 0


@pytest.mark.parametrize(
    "headers",
    [
        # A form on another site posting here: a simple request, no preflight.
        {"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
        # The same with the token (a page that learnt it, or the default one).
        {"Origin": "https://evil.example", **AUTH},
        {"Origin": "null", **AUTH},  # a sandboxed frame or a file:// page
        {"Sec-Fetch-Site": "cross-site", **AUTH},
        # A DNS-rebinding page: its origin names another host than the one it reached.
        {"Origin": "http://rebound.example:8400", **AUTH},
    ],
)
def test_a_cross_origin_reset_is_refused_and_changes_nothing(
    emulator: Emulator, headers: dict[str, str]
) -> None:
    _with_a_task(emulator)

    answer = httpx.post(f"{emulator.url}/_emulator/reset", content=b"x=1", headers=headers)

    assert answer.status_code == 403
    assert emulator.store.count() == 1


def test_a_request_from_the_emulators_own_origin_is_let_through(emulator: Emulator) -> None:
    _with_a_task(emulator)

    answer = httpx.post(
        f"{emulator.url}/_emulator/reset",
        headers={"Origin": emulator.url, "Sec-Fetch-Site": "same-origin", **AUTH},
    )

    assert answer.status_code == 200
    assert emulator.store.count() == 0


def test_the_compose_example_publishes_the_emulator_on_loopback_only() -> None:
    compose = (Path(__file__).parents[2] / "docker-compose.example.yml").read_text()
    service = compose.split("\n  emulator:\n", 1)[1].split("\n  sync:\n", 1)[0]
    [ports] = [
        json.loads(line.split("ports:", 1)[1])  # a flow sequence: JSON
        for line in service.splitlines()
        if line.strip().startswith("ports:")
    ]

    assert ports and all(port.startswith("127.0.0.1:") for port in ports), ports
