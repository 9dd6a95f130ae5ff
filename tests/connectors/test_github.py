"""The GitHub connector against a fake of GitHub's issues API, plus its own pitfalls."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs

from connectors import github
from connectors.base import SourceTicket
from connectors.github import GitHubConnector, GitHubOptions
from connectors.http import PageRequest
from fakes import Request
from fakes.github import (
    NO_PERMISSION,
    SECONDARY_RATE_LIMIT,
    AppInstallation,
    FakeGitHub,
    graphql_rate_limited,
    graphql_secondary_rate_limit,
    primary_rate_limit,
    stamp,
)
from fakes.suite import (
    T0,
    ConnectorSuite,
    ScopesSuite,
    TwoScopesCase,
    VendorCase,
    nth_page_request,
)
from fragment_emulator import Emulator
from sync.census import census_once
from sync.config import build_config
from sync.errors import ConfigError
from sync.run import RunSummary
from sync.shell.logs import redact
from sync.state import StateStore
from synckit import TOKEN, tasks_by_ticket

GITHUB_TOKEN = "github_pat_11AAFAKE0123456789"
APP_ID = 583231
CLIENT_ID = "Iv23liFAKEclient42"
INSTALLATION_ID = 52109871


class GitHubCase(VendorCase):
    """Ticket `n` is the issue whose global id is `n`; its number, shown in titles, is n + 1000."""

    kind = "github"
    fake: FakeGitHub

    def __init__(self, fake: FakeGitHub) -> None:
        super().__init__(fake)
        self.extra: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        options = {
            "base_url": self.fake.base_url,
            "repository": self.fake.repository,
            "token": GITHUB_TOKEN,
            "page_size": self.page_size,
            **self.extra,
        }
        return {k: v for k, v in options.items() if v is not None}

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        title = f"Printer {number} jammed v{version}"
        if number in self.fake.issues:
            self.fake.touch(number, updated, title=title)
        else:
            self.fake.add(number, updated, title=title)

    def remove(self, number: int, at: dt.datetime) -> None:
        del self.fake.issues[number]

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        issue = self.fake.add(number, updated)
        issue["updated_at"] = "yesterday-ish"
        return "updated_at"

    def rate_limit(self, wait: int) -> Any:
        return primary_rate_limit(wait)

    def title(self, number: int, version: int) -> str:
        return f"#{number + 1000} Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path == self.fake.issues_path

    def connector(self, **options: Any) -> GitHubConnector:
        return GitHubConnector("github", GitHubOptions.model_validate(self.options() | options))


@pytest.fixture(autouse=True)
def _no_remembered_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with a process that has never asked GitHub anything."""
    monkeypatch.setattr(github, "_REMEMBERED_PAGES", {})


@pytest.fixture
def case() -> Iterator[GitHubCase]:
    with FakeGitHub(GITHUB_TOKEN) as fake:
        yield GitHubCase(fake)


class TestGitHub(ConnectorSuite):
    pass


INFRA = "octo-org/infra"


class TwoRepositoriesCase(GitHubCase, TwoScopesCase):
    """The same tickets spread over two repositories: odd ids in helpdesk, even in infra."""

    def in_second_scope(self, request: Request) -> bool:
        return request.path == f"/repos/{INFRA}/issues"

    def move(self, number: int, updated: dt.datetime) -> str:
        """GitHub's transfer: a new issue, id 900 + number, in the other repository."""
        to = self.fake.repository if self.fake.placement.get(number) else INFRA
        self.fake.transfer(number, to, new_id=900 + number, updated=updated)
        return str(900 + number)

    def options(self) -> dict[str, Any]:
        options = {"repositories": [self.fake.repository, INFRA], **super().options()}
        del options["repository"]
        return options

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        title = f"Printer {number} jammed v{version}"
        if number in self.fake.issues:
            self.fake.touch(number, updated, title=title)
        else:
            home = INFRA if number % 2 == 0 else None
            self.fake.add(number, updated, title=title, repository=home)

    def is_page_request(self, request: Request) -> bool:
        return request.path in (self.fake.issues_path, f"/repos/{INFRA}/issues")


@pytest.fixture
def two_repositories() -> Iterator[TwoRepositoriesCase]:
    with FakeGitHub(GITHUB_TOKEN) as fake:
        fake.add_repository(INFRA)
        yield TwoRepositoriesCase(fake)


class TestGitHubTwoRepositories(ScopesSuite):
    """Every scenario of the suite again, its tickets in two repositories read in one pass."""

    @pytest.fixture
    def case(self, two_repositories: TwoRepositoriesCase) -> TwoRepositoriesCase:
        return two_repositories


def sync(case: GitHubCase, emulator: Emulator, state_url: str) -> RunSummary:
    return ConnectorSuite().sync(case, emulator, state_url)


def pull(connector: GitHubConnector, since: dt.datetime | None) -> list[SourceTicket]:
    try:
        tickets = list(connector.pull(since))
    finally:
        connector.close()
    assert all(isinstance(t, SourceTicket) for t in tickets)
    return tickets  # type: ignore[return-value]


def test_the_query_asks_for_every_state_oldest_change_first_from_the_watermark(
    case: GitHubCase,
) -> None:
    for n in range(1, 8):
        case.fake.add(n, T0 + dt.timedelta(minutes=n), state="closed" if n == 2 else "open")
    tickets = pull(case.connector(), T0)
    assert [t.source_id for t in tickets] == [str(n) for n in range(1, 8)]  # the closed one too
    first, second = case.fake.gets(case.fake.issues_path)
    assert first.param("state") == "all"
    assert first.param("sort") == "updated"
    assert first.param("direction") == "asc"
    assert first.param("since") == "2026-11-02T09:00:00Z"
    assert first.param("per_page") == "5"
    assert first.headers["authorization"] == f"Bearer {GITHUB_TOKEN}"
    assert first.headers["accept"] == "application/vnd.github+json"
    assert first.headers["x-github-api-version"] == "2022-11-28"
    # The second page is the query again from the last update read, not "page=2".
    assert second.param("since") == stamp(T0 + dt.timedelta(minutes=5))
    assert second.param("page") is None


def test_pull_requests_are_left_out_unless_asked_for(case: GitHubCase) -> None:
    case.fake.add(1, T0)
    case.fake.add(2, T0 + dt.timedelta(minutes=1), pull_request=True)
    case.fake.add(3, T0 + dt.timedelta(minutes=2))
    assert [t.source_id for t in pull(case.connector(), None)] == ["1", "3"]

    with_prs = pull(case.connector(include_pull_requests=True), None)
    assert [t.source_id for t in with_prs] == ["1", "2", "3"]
    assert [t.record["is_pull_request"] for t in with_prs] == [False, True, False]


def test_a_page_of_only_pull_requests_still_moves_the_re_read_past_them(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.page_size = 3
    for n in (101, 102, 103):  # the first page holds pull requests only
        case.fake.add(n, T0 + dt.timedelta(minutes=n - 100), pull_request=True)
    for n in range(1, 10):
        case.add(n, T0 + dt.timedelta(minutes=10 + n))

    def pull_request_edited() -> None:  # it jumps to the end; what follows moves up a slot
        case.fake.touch(101, T0 + dt.timedelta(days=1))

    case.fake.when(nth_page_request(case, 2), pull_request_edited)
    first = sync(case, emulator, sqlite_url)
    assert first.ok, first.error
    assert sorted(tasks_by_ticket(emulator), key=int) == [str(n) for n in range(1, 10)]
    again = sync(case, emulator, sqlite_url)
    assert again.ok, again.error
    ConnectorSuite().assert_exact(case, emulator)
    # The second page re-read from the last pull request's update, not "page=2".
    second = case.fake.gets(case.fake.issues_path)[1]
    assert (second.param("since"), second.param("page")) == (
        stamp(T0 + dt.timedelta(minutes=3)),
        None,
    )


def test_a_repository_too_large_for_page_numbers_is_read_through_after_cursors(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.page_size = 3
    case.fake.deepest_page = 2  # GitHub's is about 99; past it, `page=` is a 422
    for n in range(101, 108):  # pages of pull requests only
        case.fake.add(n, T0 + dt.timedelta(minutes=n - 100), pull_request=True)
    bulk = T0 + dt.timedelta(hours=1)  # a bulk edit: more issues in one second than pages reach
    for n in range(1, 14):
        case.add(n, bulk)
    case.add(14, bulk + dt.timedelta(seconds=1))

    def pull_request_edited() -> None:
        case.fake.touch(101, T0 + dt.timedelta(days=1))

    case.fake.when(nth_page_request(case, 4), pull_request_edited)
    summary = sync(case, emulator, sqlite_url)
    assert summary.ok, summary.error
    ConnectorSuite().assert_exact(case, emulator)
    followed = [r for r in case.fake.gets(case.fake.issues_path) if r.param("after")]
    assert followed  # the bulk second was paged by GitHub's cursor, not by page number
    assert all(int(r.param("page") or 1) <= 2 for r in case.fake.gets(case.fake.issues_path))
    deep = httpx.get(
        case.fake.base_url + case.fake.issues_path,
        params={"state": "all", "per_page": 3, "page": 3},
        headers={"Authorization": f"Bearer {GITHUB_TOKEN}"},
    )
    assert deep.status_code == 422  # the fake refuses what GitHub refuses
    assert "cursor based pagination" in deep.json()["message"]


def test_a_primary_rate_limit_403_is_waited_out_until_the_reset(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 4):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.fail_next(primary_rate_limit(1))
    summary = sync(case, emulator, sqlite_url)
    assert summary.ok, summary.error
    assert summary.pushed == 3
    limited, retried = case.fake.gets(case.fake.issues_path)
    assert retried.at - limited.at >= 1.0  # until x-ratelimit-reset, not the floor


def test_a_secondary_rate_limit_with_only_a_message_waits_the_floor(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.add(1, T0)
    case.extra = {"rate_limit_floor": "400ms"}
    case.fake.fail_next(SECONDARY_RATE_LIMIT)
    summary = sync(case, emulator, sqlite_url)
    assert summary.ok, summary.error
    limited, retried = case.fake.gets(case.fake.issues_path)
    assert retried.at - limited.at >= 0.4


def test_a_403_without_rate_limit_signals_fails_naming_the_permission(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.add(1, T0)
    case.fake.fail_next(NO_PERMISSION, times=10)
    summary = sync(case, emulator, sqlite_url)
    assert not summary.ok
    error = summary.error or ""
    assert "'Issues: read'" in error
    assert "403" in error
    assert "Resource not accessible" in error  # GitHub's own words
    assert len(case.fake.gets(case.fake.issues_path)) == 1  # not retried


def test_an_unknown_repository_fails_saying_so(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.extra = {"repository": "octo-org/no-such-repo"}
    summary = sync(case, emulator, sqlite_url)
    assert not summary.ok
    assert "no such repository" in (summary.error or "")
    assert "404" in (summary.error or "")


def test_an_unknown_repository_among_several_is_named(
    two_repositories: TwoRepositoriesCase, emulator: Emulator, sqlite_url: str
) -> None:
    case = two_repositories
    case.add(1, T0)
    case.extra = {"repositories": [case.fake.repository, "octo-org/no-such-repo"]}
    summary = sync(case, emulator, sqlite_url)
    assert not summary.ok
    assert "octo-org/no-such-repo" in (summary.error or "")
    assert "no such repository" in (summary.error or "")


def test_a_quiet_repository_is_polled_with_etags_at_no_quota_cost(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 4):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert sync(case, emulator, sqlite_url).pushed == 3
    assert sync(case, emulator, sqlite_url).pushed == 0  # a new query: since moved
    spent = case.fake.quota_used

    quiet = sync(case, emulator, sqlite_url)
    assert (quiet.ok, quiet.pushed) == (True, 0)
    assert case.fake.quota_used == spent  # answered 304
    assert "if-none-match" in case.fake.gets(case.fake.issues_path)[-1].headers

    case.update(3, T0 + dt.timedelta(minutes=3, seconds=30))
    changed = sync(case, emulator, sqlite_url)
    assert (changed.ok, changed.pushed) == (True, 1)
    assert tasks_by_ticket(emulator)["3"]["fields"]["title"] == case.title(3, 2)


def test_a_304_replays_the_remembered_page_so_a_pass_that_failed_to_push_loses_nothing(
    case: GitHubCase,
) -> None:
    for n in range(1, 4):
        case.add(n, T0 + dt.timedelta(minutes=n))
    first = pull(case.connector(), T0)
    spent = case.fake.quota_used
    again = pull(case.connector(), T0)  # a new pass builds a new connector
    assert case.fake.quota_used == spent  # a 304
    assert [(t.source_id, t.cursor, t.record) for t in again] == [
        (t.source_id, t.cursor, t.record) for t in first
    ]


def test_the_default_mapping_makes_a_readable_task(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add(
        7,
        T0,
        title="Printer on floor 3 jams",
        state="closed",
        state_reason="completed",
        labels=[{"id": 1, "name": "bug"}, {"id": 2, "name": "printer"}],
        milestone={"id": 9, "title": "Q4 cleanup", "due_on": "2026-12-01T08:00:00Z"},
        assignee={"login": "bo-dev", "id": 8},
        comments=4,
    )
    assert sync(case, emulator, sqlite_url).ok
    task = tasks_by_ticket(emulator)["7"]
    assert task["fields"] == {
        "title": "#1007 Printer on floor 3 jams",
        "url": f"https://github.com/{case.fake.repository}/issues/1007",
        "ticket_id": "7",
        "issue_number": 1007,
        "state_reason": "completed",
        "labels": ["bug", "printer"],
        "milestone": "Q4 cleanup",
        "author": "ana-ops",
        "assignee": "bo-dev",
        "comments": 4,
        "is_pull_request": False,
        "source_status": "closed (completed)",
    }
    assert task["status"] == "DONE"


def test_repositories_share_one_request_budget(two_repositories: TwoRepositoriesCase) -> None:
    """20 a minute is 2 at once, then one every 3 s: the pass's four requests take 6 s,
    where a budget per repository (two requests each) would send all four at once."""
    case = two_repositories
    for n in range(1, 13):  # six in each: two pages each
        case.add(n, T0 + dt.timedelta(minutes=n))
    connector = case.connector(requests_per_minute=20)
    pull(connector, None)
    pages = [r for r in case.fake.requests if case.is_page_request(r)]
    assert len(pages) == 4
    assert {r.path for r in pages} == {case.fake.issues_path, f"/repos/{INFRA}/issues"}
    assert pages[-1].at - pages[0].at >= 5.0


def test_a_second_repository_added_keeps_the_first_ones_tasks(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    """`repository = X` then `repositories = [X, Y]`: X's issues keep their tasks' uids."""
    case.fake.add_repository(INFRA)
    for n in range(1, 6):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert sync(case, emulator, sqlite_url).ok
    before = {k: t["uid"] for k, t in tasks_by_ticket(emulator).items()}
    case.fake.add(50, T0 + dt.timedelta(hours=1), repository=INFRA)
    case.extra = {"repository": None, "repositories": [case.fake.repository, INFRA]}
    summary = sync(case, emulator, sqlite_url)
    assert summary.ok, summary.error
    assert summary.pushed == 1  # infra's issue; helpdesk's are unchanged, not pushed again
    after = {k: t["uid"] for k, t in tasks_by_ticket(emulator).items()}
    assert after == {**before, "50": after["50"]}


def test_a_one_repository_config_keeps_its_settings_fingerprint() -> None:
    """The new key, left unset, stays out of the fingerprint: no re-read on upgrade."""
    options = GitHubOptions(repository="octo-org/helpdesk", token="t")
    dumped = options.model_dump(mode="json")
    assert "repositories" not in dumped and dumped["repository"] == "octo-org/helpdesk"
    listed = GitHubOptions(repositories=["octo-org/helpdesk"], token="t").model_dump(mode="json")
    assert "repository" not in listed


def test_each_issue_carries_the_repository_it_was_read_from_for_the_mapping(
    two_repositories: TwoRepositoriesCase,
) -> None:
    """Numbers repeat across repositories: `repository` tells #1 of helpdesk from #1 of infra."""
    case = two_repositories
    case.fake.add(1, T0, number=1)
    case.fake.add(2, T0 + dt.timedelta(minutes=1), number=1, repository=INFRA)
    connector = GitHubConnector("github", GitHubOptions.model_validate(case.options()))
    tickets = pull(connector, None)
    assert [(t.record["repository"], t.record["number"]) for t in tickets] == [
        ("octo-org/helpdesk", 1),
        (INFRA, 1),
    ]


def test_a_mapping_can_put_the_repository_in_the_title(
    two_repositories: TwoRepositoriesCase, emulator: Emulator, sqlite_url: str
) -> None:
    case = two_repositories
    case.fake.add(1, T0, number=1, title="Printer jammed")
    case.fake.add(2, T0 + dt.timedelta(minutes=1), number=1, title="Disk full", repository=INFRA)
    case.extra = {"mapping": {"title": "{repository}#{number} {title}"}}
    assert sync(case, emulator, sqlite_url).ok
    titles = {k: t["fields"]["title"] for k, t in tasks_by_ticket(emulator).items()}
    assert titles == {"1": "octo-org/helpdesk#1 Printer jammed", "2": "octo-org/infra#1 Disk full"}


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"repository": None}, ""),
        ({"repositories": ["octo-org/infra"]}, ""),
        ({"repository": None, "repositories": ["octo-org/a", "Octo-Org/A"]}, "repositories"),
        ({"repository": None, "repositories": ["octo-org"]}, "repositories"),
        ({"repository": "octo-org"}, "repository"),
        ({"repository": "https://github.com/octo-org/helpdesk"}, "repository"),
        ({"page_size": 101}, "page_size"),
        ({"token": None}, ""),
        ({"token": None, "app_id": CLIENT_ID, "installation_id": 7}, ""),
        ({"app_id": CLIENT_ID}, ""),
        ({"token": None, "app_id": 1, "installation_id": 7, "private_key": "x"}, "private_key"),
    ],
)
def test_bad_options_fail_at_config_load_naming_the_key(
    options: dict[str, Any], key: str, emulator: Emulator
) -> None:
    connector = {"kind": "github", "repository": "octo-org/helpdesk", "token": "t", **options}
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN},
        "connectors": {"issues": {k: v for k, v in connector.items() if v is not None}},
    }
    with pytest.raises(ConfigError) as caught:
        build_config(raw, source="test")
    assert caught.value.key == "connectors.issues" + (f".{key}" if key else "")


# GitHub Apps: installation tokens minted with a JWT, lasting an hour, renewed in time


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN RSA PRIVATE KEY", as GitHub's
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def app(case: GitHubCase, app_key: rsa.RSAPrivateKey) -> GitHubCase:
    """The case with a GitHub App installed, the connector acting as the app (no token)."""
    public = app_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    case.fake.install_app(AppInstallation(APP_ID, CLIENT_ID, INSTALLATION_ID, public.decode()))
    case.extra = {
        "token": None,
        "app_id": CLIENT_ID,
        "installation_id": INSTALLATION_ID,
        "private_key": _pem(app_key),
    }
    return case


def minted(case: GitHubCase) -> list[dict[str, Any]]:
    assert case.fake.app is not None
    return case.fake.app.jwts


def test_an_app_pass_outliving_its_installation_token_renews_it_before_it_expires(
    app: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    assert app.fake.app is not None
    app.fake.app.token_lifetime = 3
    for n in range(1, 61):
        app.add(n, T0 + dt.timedelta(minutes=n))

    def slow_github(request: Request) -> None:
        if request.path == app.fake.issues_path:
            time.sleep(0.3)  # 13 pages take about 4 s: the pass outlives its first token

    app.fake.faults.append(slow_github)

    summary = sync(app, emulator, sqlite_url)

    assert summary.ok, summary.error
    ConnectorSuite().assert_exact(app, emulator)
    assert len(minted(app)) >= 2
    assert app.fake.refused == []  # renewed before expiry: no page was refused


def test_an_installation_token_revoked_mid_pass_is_renewed_once_and_the_pass_completes(
    app: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    assert app.fake.app is not None
    for n in range(1, 16):
        app.add(n, T0 + dt.timedelta(minutes=n))
    app.fake.when(nth_page_request(app, 2), app.fake.app.revoke)

    summary = sync(app, emulator, sqlite_url)

    assert summary.ok, summary.error
    ConnectorSuite().assert_exact(app, emulator)
    assert len(minted(app)) == 2
    assert len(app.fake.refused) == 1


def test_the_app_jwt_carries_what_github_checks(app: GitHubCase) -> None:
    app.add(1, T0)
    before = int(time.time())

    assert [t.source_id for t in pull(app.connector(), None)] == ["1"]

    [claims] = minted(app)
    assert claims["iss"] == CLIENT_ID
    assert before - 61 <= claims["iat"] <= int(time.time()) - 59  # a minute back, for drift
    assert claims["exp"] - claims["iat"] == 600  # GitHub's most
    [mint] = [r for r in app.fake.requests if r.method == "POST"]
    assert mint.path == f"/app/installations/{INSTALLATION_ID}/access_tokens"
    assert mint.headers["accept"] == "application/vnd.github+json"
    assert mint.headers["x-github-api-version"] == "2022-11-28"
    [page] = app.fake.gets(app.fake.issues_path)
    assert page.headers["authorization"].startswith("Bearer ghs_")


def test_installation_tokens_are_secrets_to_the_log_redaction(app: GitHubCase) -> None:
    assert app.fake.app is not None
    app.add(1, T0)

    pull(app.connector(), None)

    [token] = app.fake.app.tokens
    assert redact(f"Bad credentials for {token}") == "Bad credentials for ***"


def test_a_numeric_app_id_is_the_jwts_issuer_too(app: GitHubCase) -> None:
    app.add(1, T0)
    assert [t.source_id for t in pull(app.connector(app_id=APP_ID), None)] == ["1"]
    assert [claims["iss"] for claims in minted(app)] == [str(APP_ID)]  # RFC 7519: a string


def test_a_key_github_does_not_know_fails_the_pass_with_githubs_reason(
    app: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    app.add(1, T0)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    app.extra["private_key"] = _pem(other)

    summary = sync(app, emulator, sqlite_url)

    assert not summary.ok
    error = summary.error or ""
    assert "'source'" in error
    assert f"/app/installations/{INSTALLATION_ID}/access_tokens refused the app's JWT: 401" in error
    assert "A JSON web token could not be decoded" in error
    assert "PRIVATE KEY" not in error
    assert app.fake.gets(app.fake.issues_path) == []


def test_a_renamed_repository_is_followed_and_the_operator_told_to_update_the_config(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 4):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.extra = {"repository": case.fake.repository}  # the config keeps the old name
    assert sync(case, emulator, sqlite_url).pushed == 3
    old_path = case.fake.issues_path
    case.fake.rename("octo-org/support-desk")
    for n in range(4, 12):
        case.add(n, T0 + dt.timedelta(hours=1, minutes=n))

    with capture_logs() as logs:
        summary = sync(case, emulator, sqlite_url)
    assert summary.ok, summary.error
    assert summary.pushed == 8
    ConnectorSuite().assert_exact(case, emulator)
    redirected = case.fake.gets(old_path)[1:]  # the first pass's request came before the rename
    followed = case.fake.gets(case.fake.id_issues_path)
    assert redirected and len(followed) >= len(redirected)
    assert followed[0].query == redirected[0].query  # the same request, at the new place
    assert all(r.headers["authorization"] == f"Bearer {GITHUB_TOKEN}" for r in followed)
    [moved] = [line for line in logs if line["event"] == "http_moved_permanently"]
    assert moved["log_level"] == "warning"
    assert (moved["old"], moved["new"]) == (old_path, case.fake.id_issues_path)
    assert "new owner/name in repositories" in moved["hint"]


def test_the_source_status_field_keeps_the_state_and_its_reason_beside_the_mapped_status(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add(1, T0)
    case.fake.add(2, T0 + dt.timedelta(minutes=1), state="closed", state_reason="not_planned")
    case.fake.add(3, T0 + dt.timedelta(minutes=2), state="open", state_reason="reopened")
    assert sync(case, emulator, sqlite_url).ok
    tasks = tasks_by_ticket(emulator)
    shown = {
        k: (t["fields"]["source_status"], t["status"], t["external_status"])
        for k, t in tasks.items()
    }
    assert shown == {
        "1": ("open", "TODO", "TODO"),
        "2": ("closed (not_planned)", "DONE", "DONE"),
        "3": ("open (reopened)", "TODO", "TODO"),
    }


# The census: GraphQL's cursor listing of every issue


def census(case: GitHubCase, emulator: Emulator, state_url: str, force: bool = False) -> Any:
    config = ConnectorSuite().config(case, emulator, state_url)
    with StateStore.open(state_url) as store:
        [summary] = census_once(config, store, ["source"], force=force)
    return summary


def graphql_posts(case: GitHubCase) -> list[Request]:
    return [r for r in case.fake.requests if r.method == "POST" and r.path == "/graphql"]


def test_a_census_archives_the_tasks_of_a_deleted_and_a_transferred_issue(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add_repository("octo-org/elsewhere")
    for n in range(1, 31):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert sync(case, emulator, sqlite_url).ok
    rest_requests = case.fake.quota_used
    del case.fake.issues[4]  # deleted
    case.fake.transfer(9, "octo-org/elsewhere", new_id=909, updated=T0 + dt.timedelta(hours=1))

    summary = census(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    assert (summary.at_source, summary.tracked, summary.gone, summary.archived) == (28, 30, 2, 2)
    landed = tasks_by_ticket(emulator)
    assert {k for k, task in landed.items() if task["archived"]} == {"4", "9"}
    # Six pages of five, one point each, from GraphQL's quota; the REST quota is untouched.
    assert len(graphql_posts(case)) == 6
    assert case.fake.graphql_points_used == 6
    assert case.fake.quota_used == rest_requests
    first = json.loads(graphql_posts(case)[0].body)
    assert first["variables"] == {"owner": "octo-org", "name": "helpdesk", "first": 5}
    assert "orderBy: {field: CREATED_AT, direction: ASC}" in first["query"]
    assert "states: [OPEN, CLOSED]" in first["query"]
    assert graphql_posts(case)[0].headers["authorization"] == f"Bearer {GITHUB_TOKEN}"


def test_an_issue_deleted_during_the_census_listing_archives_no_live_issue(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    """Why GraphQL: its cursor is a keyset. The REST listing's page numbers shift when an
    issue already read is deleted, and the issue that moves up across the page boundary
    is never listed: its live task would be archived."""
    for n in range(1, 13):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert sync(case, emulator, sqlite_url).ok

    def second_page(request: Request) -> bool:
        return request.path == "/graphql" and len(graphql_posts(case)) == 2

    case.fake.when(second_page, lambda: case.fake.issues.pop(2))
    summary = census(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    assert (summary.at_source, summary.gone) == (12, 0)  # 2 was listed before it went
    assert not any(task["archived"] for task in tasks_by_ticket(emulator).values())
    assert census(case, emulator, sqlite_url).archived == 1  # the next census archives 2 only
    assert {k for k, t in tasks_by_ticket(emulator).items() if t["archived"]} == {"2"}

    # The same deletion under the REST listing's page numbers: issue 6 moves up to page 1,
    # already read, and page 2 starts at 7. A census by it would archive a live issue.
    case.fake.add(2, T0 + dt.timedelta(minutes=2), title="Printer 2 jammed v1")
    connector = case.connector()
    rest = PageRequest(
        case.fake.issues_path,
        {"state": "all", "sort": "created", "direction": "asc", "per_page": 5},
    )

    def second_rest_page(request: Request) -> bool:
        return request.path == case.fake.issues_path and request.param("page") == "2"

    case.fake.when(second_rest_page, lambda: case.fake.issues.pop(2))
    try:
        listed = set(connector.listed_ids(rest))
    finally:
        connector.close()
    assert "6" not in listed and 6 in case.fake.issues
    assert listed == {"1", "2", "3", "4", "5", *(str(n) for n in range(7, 13))}


def test_the_census_share_safety_holds_for_github(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    """A token that lost access to most issues must not archive their tasks."""
    for n in range(1, 11):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert sync(case, emulator, sqlite_url).ok
    for n in (3, 5, 7):
        del case.fake.issues[n]

    refused = census(case, emulator, sqlite_url)
    assert refused.outcome == "refused"
    assert "census_max_share" in (refused.error or "")
    assert not any(task["archived"] for task in tasks_by_ticket(emulator).values())

    forced = census(case, emulator, sqlite_url, force=True)
    assert (forced.ok, forced.archived) == (True, 3)
    assert {k for k, t in tasks_by_ticket(emulator).items() if t["archived"]} == {"3", "5", "7"}


def test_a_graphql_rate_limit_in_a_200_is_waited_out_until_the_reset(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 4):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert sync(case, emulator, sqlite_url).ok
    case.fake.fail_next(graphql_rate_limited(1), when=lambda r: r.path == "/graphql")
    summary = census(case, emulator, sqlite_url)
    assert (summary.ok, summary.at_source) == (True, 3), summary.error
    limited, retried = graphql_posts(case)
    assert retried.at - limited.at >= 1.0  # until x-ratelimit-reset
    assert retried.body == limited.body  # the same query, body and all


@pytest.mark.parametrize("status", [200, 403])
def test_a_graphql_secondary_rate_limit_waits_the_floor_not_the_hours_reset(
    case: GitHubCase, emulator: Emulator, sqlite_url: str, status: int
) -> None:
    """Its headers are the primary quota's, points left and a reset most of an hour away:
    waiting for that reset would fail the census (max_retry_wait is 10 s here)."""
    case.add(1, T0)
    assert sync(case, emulator, sqlite_url).ok
    case.extra = {"rate_limit_floor": "300ms"}
    case.fake.fail_next(graphql_secondary_rate_limit(status), when=lambda r: r.path == "/graphql")
    summary = census(case, emulator, sqlite_url)
    assert (summary.ok, summary.at_source) == (True, 1), summary.error
    limited, retried = graphql_posts(case)
    assert retried.at - limited.at >= 0.3


def test_a_graphql_rate_limit_longer_than_allowed_fails_the_census_saying_so(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.add(1, T0)
    assert sync(case, emulator, sqlite_url).ok
    case.fake.fail_next(graphql_rate_limited(3000), when=lambda r: r.path == "/graphql")
    summary = census(case, emulator, sqlite_url)
    assert summary.outcome == "failed"
    error = summary.error or ""
    assert "rate limited (GraphQL): RATE_LIMITED: API rate limit exceeded" in error
    assert "max_retry_wait" in error
    assert not any(task["archived"] for task in tasks_by_ticket(emulator).values())


def test_a_repository_graphql_cant_resolve_fails_the_census_naming_it(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    """GitHub answers 200, `data.repository` null and a NOT_FOUND error: no empty listing."""
    case.add(1, T0)
    assert sync(case, emulator, sqlite_url).ok
    case.extra = {"repository": "octo-org/helpdesk-old"}
    summary = census(case, emulator, sqlite_url)
    assert summary.outcome == "failed"
    error = summary.error or ""
    assert "the GraphQL query failed: NOT_FOUND: Could not resolve to a Repository" in error
    assert "'octo-org/helpdesk-old'" in error and "(at repository)" in error
    assert GITHUB_TOKEN not in error
    assert len(graphql_posts(case)) == 1  # not retried
    assert not any(task["archived"] for task in tasks_by_ticket(emulator).values())


def test_the_census_reads_every_configured_repository(
    two_repositories: TwoRepositoriesCase, emulator: Emulator, sqlite_url: str
) -> None:
    case = two_repositories
    for n in range(1, 25):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert sync(case, emulator, sqlite_url).ok
    del case.fake.issues[3]  # helpdesk
    del case.fake.issues[6]  # infra
    summary = census(case, emulator, sqlite_url)
    assert (summary.ok, summary.at_source, summary.gone) == (True, 22, 2), summary.error
    asked = {json.loads(r.body)["variables"]["name"] for r in graphql_posts(case)}
    assert asked == {"helpdesk", "infra"}
    assert {k for k, t in tasks_by_ticket(emulator).items() if t["archived"]} == {"3", "6"}


def test_with_pull_requests_the_connector_takes_no_census(
    case: GitHubCase, emulator: Emulator, sqlite_url: str
) -> None:
    """GraphQL gives a pull request its own id, not the issue id the REST listing keys its task
    by: a census would archive every pull request's task."""
    case.add(1, T0)
    case.fake.add(2, T0, pull_request=True)
    case.extra = {"include_pull_requests": True}
    assert sync(case, emulator, sqlite_url).ok
    summary = census(case, emulator, sqlite_url)
    assert summary.outcome == "unsupported"
    assert "takes no census" in (summary.error or "")
    assert graphql_posts(case) == []
    assert not any(task["archived"] for task in tasks_by_ticket(emulator).values())


@pytest.mark.parametrize(
    ("base_url", "graphql"),
    [
        ("https://api.github.com", "https://api.github.com/graphql"),
        ("https://github.acme.test/api/v3", "https://github.acme.test/api/graphql"),
        ("https://github.acme.test/api/v3/", "https://github.acme.test/api/graphql"),
    ],
)
def test_the_graphql_endpoint_is_beside_the_rest_root(base_url: str, graphql: str) -> None:
    options = GitHubOptions(base_url=base_url, repository="o/r", token=GITHUB_TOKEN)
    assert GitHubConnector("github", options).graphql_url == graphql


def test_the_fake_graphql_endpoint_answers_as_githubs_docs_describe(case: GitHubCase) -> None:
    """The fake's own shapes: the rateLimit object and headers, pull requests left out of
    `issues`, keyset cursors, and the errors GitHub sends for a bad query."""
    for n in range(1, 5):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.add(5, T0, pull_request=True)

    def ask(query: str, **variables: Any) -> httpx.Response:
        return httpx.post(
            case.fake.base_url + "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {GITHUB_TOKEN}"},
        )

    page = """query($after: String) {
      repository(owner: "octo-org", name: "helpdesk") {
        issues(first: 2, after: $after) { totalCount nodes { number databaseId }
                                          pageInfo { hasNextPage endCursor } }
      }
      rateLimit { cost remaining limit }
    }"""
    first = ask(page)
    assert first.headers["x-ratelimit-resource"] == "graphql"
    data = first.json()["data"]
    assert data["rateLimit"] == {"cost": 1, "remaining": 4999, "limit": 5000}
    issues = data["repository"]["issues"]
    assert issues["totalCount"] == 4  # the pull request is not an issue here
    assert issues["nodes"] == [{"number": 1001, "databaseId": 1}, {"number": 1002, "databaseId": 2}]
    del case.fake.issues[1]  # before the cursor: nothing after it moves
    cursor = issues["pageInfo"]["endCursor"]
    second = ask(page, after=cursor).json()["data"]["repository"]["issues"]
    assert [n["databaseId"] for n in second["nodes"]] == [3, 4]
    assert second["pageInfo"]["hasNextPage"] is False

    unknown = ask('query { repository(owner: "octo-org", name: "helpdesk") { issues(first: 1) '
                  "{ nodes { severity } } } }").json()  # fmt: skip
    assert "data" not in unknown
    assert unknown["errors"][0]["message"] == "Field 'severity' doesn't exist on type 'Issue'"
    unbounded = ask('query { repository(owner: "octo-org", name: "helpdesk") { issues '
                    "{ totalCount } } }").json()  # fmt: skip
    assert unbounded["errors"][0]["type"] == "MISSING_PAGINATION_BOUNDARIES"
    refused = httpx.post(case.fake.base_url + "/graphql", json={"query": "query { rateLimit }"})
    assert (refused.status_code, refused.json()["message"]) == (401, "Bad credentials")
