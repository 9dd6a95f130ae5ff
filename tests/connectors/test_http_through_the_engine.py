"""The HTTP connectors' people and comments through the engine, over their fakes.

Each connector's own tests cover what it reads; these show it land: a resolved assignee
as the task's `assignee_email`, a conversation as the task's summary fields.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from connectors import github
from fakes.freshdesk import FakeFreshdesk
from fakes.github import FakeGitHub
from fakes.servicenow import FakeServiceNow, sys_id_of
from fakes.suite import T0
from fakes.zendesk import FakeZendesk
from fragment_emulator import Emulator
from sync.config import build_config
from sync.run import RunOptions, run_once
from sync.state import StateStore
from synckit import TOKEN, tasks_by_ticket

M = dt.timedelta(minutes=1)


def _sync(
    emulator: Emulator, url: str, options: dict[str, Any], *, comments: bool = True, **conv: Any
) -> Any:
    conversation = {"enabled": True, **conv} if comments else {}
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
        "state": {"url": url},
        "connectors": {"src": {**options, "conversation": conversation}},
    }
    config = build_config(raw, source="test")
    store = StateStore.open(config.state.url)
    try:
        [summary] = run_once(config, store, options=RunOptions())
    finally:
        store.close()
    return summary


def test_github_comments_become_the_summary_and_a_new_one_pushes_the_task(
    emulator: Emulator, sqlite_url: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(github, "_REMEMBERED_PAGES", {})
    with FakeGitHub("t") as gh:
        gh.add(1, T0)
        gh.add(2, T0 + M)
        gh.comment(1, T0 + 2 * M, "Restarted it.")
        opts = {
            "kind": "github",
            "base_url": gh.base_url,
            "repository": gh.repository,
            "token": "t",
        }
        s = _sync(emulator, sqlite_url, opts)
        assert s.ok, s.error
        f = tasks_by_ticket(emulator)
        assert f["1"]["fields"]["comment_count"] == 1
        assert f["1"]["fields"]["last_comment"] == "Restarted it."
        assert f["2"]["fields"]["comment_count"] == 0
        gh.comment(2, T0 + 5 * M, "New one")
        s = _sync(emulator, sqlite_url, opts)
        assert s.ok and s.pushed == 1, (s.pushed, s.error)
        assert tasks_by_ticket(emulator)["2"]["fields"]["last_comment_author"] == "bo-dev"


def test_zendesk_internal_notes_stay_out_of_the_summary(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeZendesk("a@b.c", "tok") as zd:
        zd.add(1, T0, description="Jammed.")
        zd.comment(1, T0 + M, "Internal", public=False, author_id=602)
        opts = {"kind": "zendesk", "base_url": zd.base_url, "email": "a@b.c", "api_token": "tok"}
        s = _sync(emulator, sqlite_url, opts)
        assert s.ok, s.error
        f = tasks_by_ticket(emulator)["1"]["fields"]
        assert (f["comment_count"], f["last_comment"], f["last_comment_author"]) == (
            1,
            "Jammed.",
            "Rita Requester",
        )


def test_freshdesk_private_notes_count_when_private_is_on(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeFreshdesk("k") as fd:
        fd.add(1, T0)
        fd.converse(1, T0 + M, "Reply")
        fd.converse(1, T0 + 2 * M, "Note", private=True)
        opts = {"kind": "freshdesk", "base_url": fd.base_url, "api_key": "k"}
        s = _sync(emulator, sqlite_url, opts, private=True)
        assert s.ok, s.error
        f = tasks_by_ticket(emulator)["1"]["fields"]
        assert (f["comment_count"], f["last_comment"]) == (2, "Note")


def test_servicenow_work_notes_stay_out_and_the_author_is_the_user_name(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeServiceNow("u", "p", "t") as sn:
        sn.add(1, T0)
        sn.journal(1, T0 + M, "Customer visible")
        sn.journal(1, T0 + 2 * M, "Work note", element="work_notes")
        opts = {"kind": "servicenow", "base_url": sn.base_url, "username": "u", "password": "p"}
        s = _sync(emulator, sqlite_url, opts)
        assert s.ok, s.error
        f = tasks_by_ticket(emulator)[sys_id_of(1)]["fields"]
        assert (f["comment_count"], f["last_comment"], f["last_comment_author"]) == (
            1,
            "Customer visible",
            "beth.anglin",
        )


# People


def _assignees(emulator: Emulator) -> dict[str, str | None]:
    """Each task's assignee's email, by ticket, as Fragment shows it (None: unassigned)."""
    return {
        number: (task.get("assignee") or {}).get("email")
        for number, task in tasks_by_ticket(emulator).items()
    }


def test_zendesk_assignees_land_from_the_export_sideload_asking_nothing_more(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeZendesk("a@b.c", "tok") as zd:
        zd.add_user(601, "Ana Ops", "ana@acme.example")
        zd.add_user(602, "Gone Agent", "gone@acme.example", active=False)
        zd.add(1, T0, assignee_id=601)
        zd.add(2, T0 + M, assignee_id=601)
        zd.add(3, T0 + 2 * M, assignee_id=602)
        opts = {"kind": "zendesk", "base_url": zd.base_url, "email": "a@b.c", "api_token": "tok"}

        summary = _sync(emulator, sqlite_url, opts, comments=False)

        assert summary.ok, summary.error
        landed = _assignees(emulator)
        assert landed == {"1": "ana@acme.example", "2": "ana@acme.example", "3": None}
        assert zd.gets("/api/v2/users/show_many.json") == []  # the sideload had them all


def test_github_assignees_land_by_public_email_once_per_login(
    emulator: Emulator, sqlite_url: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(github, "_REMEMBERED_PAGES", {})
    with FakeGitHub("t") as gh:
        gh.add_user("ana-ops", "Ana Ops", "ana@acme.example")
        gh.add_user("ben-dev", "Ben Dev", None)
        for n in range(1, 5):
            login = "ana-ops" if n % 2 else "ben-dev"
            gh.add(n, T0 + n * M, assignee={"login": login, "id": n})
        opts = {
            "kind": "github",
            "base_url": gh.base_url,
            "repository": gh.repository,
            "token": "t",
        }

        summary = _sync(emulator, sqlite_url, opts, comments=False)
        again = _sync(emulator, sqlite_url, opts, comments=False)

        assert summary.ok and again.ok, (summary.error, again.error)
        landed = _assignees(emulator)
        assert [landed[str(n)] for n in range(1, 5)] == [
            "ana@acme.example",
            None,
            "ana@acme.example",
            None,
        ]
        # Once per login, then from the people cache in the state.
        assert sorted(r.path for r in gh.requests if r.path.startswith("/users/")) == [
            "/users/ana-ops",
            "/users/ben-dev",
        ]
