"""The GitLab connector against a fake of GitLab's REST API, plus its own pitfalls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from connectors.base import Person, SourceTicket
from connectors.errors import SourceError
from connectors.gitlab import GitLabConnector, GitLabOptions
from fakes import Reply, Request
from fakes.gitlab import FakeGitLab, rate_limited, stamp
from fakes.suite import T0, ConnectorSuite, ScopesSuite, TwoScopesCase, VendorCase
from fragment_emulator import Emulator
from sync.config import build_config
from sync.errors import ConfigError
from synckit import TOKEN, tasks_by_ticket

GITLAB_TOKEN = "glpat-FAKE0123456789abcdef"
HELPDESK = 42
HELPDESK_PATH = "acme/helpdesk"
SERVERS = 77
INFRA_GROUP = "acme/infra"
HELPDESK_ISSUES = "/api/v4/projects/acme%2Fhelpdesk/issues"
INFRA_ISSUES = "/api/v4/groups/acme%2Finfra/issues"


class GitLabCase(VendorCase):
    """Ticket `n` is the issue whose global id is `n`; its iid, shown in titles, is n + 1000."""

    kind = "gitlab"
    fake: FakeGitLab

    def __init__(self, fake: FakeGitLab) -> None:
        super().__init__(fake)
        self.extra: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        return {
            "base_url": self.fake.base_url,
            "projects": [HELPDESK_PATH],
            "token": GITLAB_TOKEN,
            "page_size": self.page_size,
            **self.extra,
        }

    def project_of(self, number: int) -> int:
        return HELPDESK

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        title = f"Printer {number} jammed v{version}"
        if number in self.fake.issues:
            self.fake.touch(number, updated, title=title)
        else:
            self.fake.add(number, self.project_of(number), updated, iid=number + 1000, title=title)

    def remove(self, number: int, at: dt.datetime) -> None:
        self.fake.delete(number)

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        issue = self.fake.add(number, self.project_of(number), updated, iid=number + 1000)
        issue["updated_at"] = "yesterday-ish"
        return "updated_at"

    def rate_limit(self, wait: int) -> Reply:
        return rate_limited(wait)

    def title(self, number: int, version: int) -> str:
        return f"#{number + 1000} Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path in (HELPDESK_ISSUES, INFRA_ISSUES)

    def connector(self, **options: Any) -> GitLabConnector:
        return GitLabConnector("gitlab", GitLabOptions.model_validate(self.options() | options))


def gitlab_fake() -> FakeGitLab:
    fake = FakeGitLab(GITLAB_TOKEN)
    fake.add_group(9, "acme")
    fake.add_group(10, INFRA_GROUP)
    fake.add_project(HELPDESK, HELPDESK_PATH)
    fake.add_project(SERVERS, f"{INFRA_GROUP}/servers")
    return fake


@pytest.fixture
def case() -> Iterator[GitLabCase]:
    with gitlab_fake() as fake:
        yield GitLabCase(fake)


class TestGitLab(ConnectorSuite):
    pass


class ProjectAndGroupCase(GitLabCase, TwoScopesCase):
    """Odd issues in the project acme/helpdesk (keyset pages), even ones in a project of the
    group acme/infra (offset pages)."""

    def options(self) -> dict[str, Any]:
        return {**super().options(), "groups": [INFRA_GROUP]}

    def project_of(self, number: int) -> int:
        return SERVERS if number % 2 == 0 else HELPDESK

    def in_second_scope(self, request: Request) -> bool:
        return request.path == INFRA_ISSUES

    def move(self, number: int, updated: dt.datetime) -> str:
        """GitLab's move: closed here, copied to the other project as issue 900 + number."""
        to = HELPDESK if self.fake.issues[number]["project_id"] == SERVERS else SERVERS
        self.fake.move(number, to, new_id=900 + number, at=updated)
        self.versions[900 + number] = self.versions[number]
        self.deleted.add(number)
        return str(900 + number)

    def title(self, number: int, version: int) -> str:
        if number > 900:  # a moved copy: the original's title, under its new iid
            iid = self.fake.issues[number]["iid"]
            return f"#{iid} Printer {number - 900} jammed v{version}"
        return super().title(number, version)


@pytest.fixture
def project_and_group() -> Iterator[ProjectAndGroupCase]:
    with gitlab_fake() as fake:
        yield ProjectAndGroupCase(fake)


class TestGitLabProjectAndGroup(ScopesSuite):
    """Every scenario of the suite again, over a project and a group read in one pass."""

    @pytest.fixture
    def case(self, project_and_group: ProjectAndGroupCase) -> ProjectAndGroupCase:
        return project_and_group

    def test_a_ticket_moved_to_the_other_scope_keeps_its_task_if_it_keeps_its_id(
        self, case: TwoScopesCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        """GitLab's move keeps no id: the issue is closed and copied with a new id. The
        copy becomes a new task, the original's task is archived (no closed duplicate)."""
        for n in range(1, 5):
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        before = tasks_by_ticket(emulator)
        moved_to = case.move(1, T0 + dt.timedelta(hours=1))
        summary = self.sync(case, emulator, sqlite_url)
        assert summary.ok, summary.error
        after = tasks_by_ticket(emulator)
        assert moved_to == "901"
        assert set(after) == {*before, "901"}
        assert after["901"]["fields"]["title"] == "#1005 Printer 1 jammed v1"  # its iid there
        assert after["1"]["archived"] is True
        assert not any(task["archived"] for key, task in after.items() if key != "1")


def pull(connector: GitLabConnector, since: dt.datetime | None) -> list[SourceTicket]:
    try:
        tickets = list(connector.pull(since))
    finally:
        connector.close()
    assert all(isinstance(t, SourceTicket) for t in tickets)
    return tickets  # type: ignore[return-value]


def test_the_query_asks_for_every_state_oldest_change_first_from_the_watermark(
    case: GitLabCase,
) -> None:
    for n in range(1, 8):
        case.fake.add(
            n, HELPDESK, T0 + dt.timedelta(minutes=n), state="closed" if n == 2 else "opened"
        )
    since = T0 + dt.timedelta(microseconds=123_456)
    tickets = pull(case.connector(), since)
    assert [t.source_id for t in tickets] == [str(n) for n in range(1, 8)]  # the closed one too
    first, second = case.fake.gets(HELPDESK_ISSUES)[:2]
    assert first.param("scope") == "all"
    assert first.param("state") == "all"
    assert first.param("order_by") == "updated_at"
    assert first.param("sort") == "asc"
    assert first.param("pagination") == "keyset"
    assert first.param("updated_after") == "2026-11-02T09:00:00.123Z"  # floored to the ms
    assert first.param("per_page") == "5"
    assert first.headers["private-token"] == GITLAB_TOKEN
    assert "authorization" not in first.headers
    # The second page is the query again from the last update read, not the next cursor.
    assert second.param("updated_after") == stamp(T0 + dt.timedelta(minutes=5))
    assert second.param("cursor") is None


def test_a_group_is_read_by_offset_pages_without_asking_for_keyset(
    project_and_group: ProjectAndGroupCase,
) -> None:
    case = project_and_group
    for n in range(2, 25, 2):
        case.add(n, T0 + dt.timedelta(minutes=n))
    tickets = pull(case.connector(projects=[]), None)
    assert [t.source_id for t in tickets] == [str(n) for n in range(2, 25, 2)]
    requests = case.fake.gets(INFRA_ISSUES)
    assert all(r.param("pagination") is None for r in requests)
    assert all(r.param("page") is None for r in requests)  # re-anchored, never page 2


def test_a_gitlab_without_keyset_issues_reads_projects_by_offset_pages_after_one_refusal(
    case: GitLabCase,
) -> None:
    """GitLab before 18.3 answers `pagination=keyset` on issues with a 405."""
    case.fake.keyset_issues = False
    tie = T0 + dt.timedelta(minutes=1)
    for n in range(1, 13):  # a tie across pages: the Link followed is a page number
        case.fake.add(n, HELPDESK, tie)
    for n in range(13, 20):
        case.fake.add(n, HELPDESK, tie + dt.timedelta(minutes=n))
    with capture_logs() as logs:
        tickets = pull(case.connector(), None)
    assert sorted(int(t.source_id) for t in tickets) == list(range(1, 20))
    requests = case.fake.gets(HELPDESK_ISSUES)
    assert [r.param("pagination") for r in requests].count("keyset") == 1  # the refused one
    assert any(r.param("page") == "2" for r in requests)
    assert [e["event"] for e in logs].count("gitlab_keyset_unavailable") == 1


def test_an_oauth_token_goes_as_a_bearer_token(case: GitLabCase) -> None:
    case.add(1, T0)
    options = {k: v for k, v in case.options().items() if k != "token"}
    connector = GitLabConnector(
        "gitlab", GitLabOptions.model_validate({**options, "oauth_token": GITLAB_TOKEN})
    )
    assert [t.source_id for t in pull(connector, None)] == ["1"]
    [request] = case.fake.gets(HELPDESK_ISSUES)
    assert request.headers["authorization"] == f"Bearer {GITLAB_TOKEN}"
    assert "private-token" not in request.headers


def test_a_numeric_project_id_is_read_by_id(case: GitLabCase) -> None:
    case.add(1, T0)
    assert [t.source_id for t in pull(case.connector(projects=[HELPDESK]), None)] == ["1"]
    assert case.fake.gets(f"/api/v4/projects/{HELPDESK}/issues")


def test_a_whole_page_sharing_one_millisecond_follows_the_keyset_cursor(case: GitLabCase) -> None:
    tie = T0 + dt.timedelta(milliseconds=7)
    for n in range(1, 13):
        case.fake.add(n, HELPDESK, tie)
    case.fake.add(20, HELPDESK, tie + dt.timedelta(milliseconds=1))
    tickets = pull(case.connector(), None)
    assert sorted(int(t.source_id) for t in tickets) == [*range(1, 13), 20]
    assert any(r.param("cursor") for r in case.fake.gets(HELPDESK_ISSUES))


def test_a_rate_limit_with_only_a_reset_header_waits_until_the_reset(case: GitLabCase) -> None:
    case.add(1, T0)
    limited = rate_limited(1)
    del limited.headers["Retry-After"]
    case.fake.fail_next(limited)
    assert [t.source_id for t in pull(case.connector(), None)] == ["1"]
    first, again = case.fake.gets(HELPDESK_ISSUES)
    assert again.at - first.at >= 0.5  # the reset is whole Unix seconds away


def test_an_unknown_project_fails_saying_so(case: GitLabCase) -> None:
    with pytest.raises(SourceError) as failure:
        pull(case.connector(projects=["acme/nothing"]), None)
    assert "no such project or group" in str(failure.value)
    assert "404" in str(failure.value)


def test_open_issues_with_a_started_label_are_started(case: GitLabCase) -> None:
    case.fake.add(1, HELPDESK, T0, labels=["bug", "workflow::In Progress"])
    case.fake.add(2, HELPDESK, T0 + dt.timedelta(seconds=1), labels=["bug"])
    case.fake.add(3, HELPDESK, T0 + dt.timedelta(seconds=2), labels=["doing"], state="closed")
    connector = case.connector(started_labels=["workflow::in progress", "Doing"])
    keys = [t.record["status_key"] for t in pull(connector, None)]
    assert keys == ["started", "opened", "closed"]


def test_the_default_mapping_makes_a_readable_task(
    case: GitLabCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add(
        1,
        HELPDESK,
        T0,
        iid=12,
        title="Printer on fire",
        labels=["Doing"],
        due_date="2026-12-01",
        milestone={"id": 3, "iid": 1, "title": "v4.0"},
    )
    case.fake.add_user(8, "bo", "Bo Dev", public_email="bo@example.com")
    case.fake.assign(1, 8)
    summary = ConnectorSuite().sync(case, emulator, sqlite_url)
    assert summary.ok, summary.error
    task = tasks_by_ticket(emulator)["1"]
    assert task["fields"] == {
        "title": "#12 Printer on fire",
        "url": "https://gitlab.example.com/acme/helpdesk/-/issues/12",
        "ticket_id": "1",
        "reference": "acme/helpdesk#12",
        "iid": 12,
        "labels": ["Doing"],
        "milestone": "v4.0",
        "author": "ana.ops",
        "assignee": "bo",
        "notes": 0,
        "source_status": "opened",
    }
    assert task["status"] == "STARTED"  # open, with a started label


def test_a_census_reads_each_scope_by_creation_and_leaves_moved_issues_out(
    project_and_group: ProjectAndGroupCase,
) -> None:
    case = project_and_group
    for n in range(1, 13):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.move(3, SERVERS, new_id=903, at=T0 + dt.timedelta(hours=1))
    connector = case.connector()
    try:
        ids = sorted(int(i) for i in connector.scope_ids())
    finally:
        connector.close()
    assert ids == sorted([*(n for n in range(1, 13) if n != 3), 903])
    census = [r for r in case.fake.listing_requests() if r.param("order_by") == "created_at"]
    assert census and all(r.param("updated_after") is None for r in census)


def test_an_issue_deleted_during_the_census_archives_no_live_issue(
    project_and_group: ProjectAndGroupCase,
) -> None:
    """The group's pages are offsets: re-anchored on `created_at`, a deletion shifts nothing."""
    case = project_and_group
    for n in range(2, 31, 2):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.when(
        lambda r: r.path == INFRA_ISSUES and r.param("created_after") is not None,
        lambda: case.fake.delete(2),
    )
    connector = case.connector(projects=[])
    try:
        ids = sorted(int(i) for i in connector.scope_ids())
    finally:
        connector.close()
    assert ids == list(range(2, 31, 2))  # 2 was read before it went; none after it skipped


def test_each_user_costs_one_request_and_public_or_admin_emails_resolve(
    case: GitLabCase,
) -> None:
    case.fake.add_user(5, "ana", "Ana Ops", public_email="ana@example.com")
    case.fake.add_user(6, "bo", "Bo Dev", email="bo@corp.example")  # no public email
    connector = case.connector()
    try:
        people = {p.user_id: p for p in connector.people(["5", "6", "5", "99", "bo"])}
    finally:
        connector.close()
    assert people["5"] == Person("5", "ana@example.com", "Ana Ops")
    assert (
        people["6"].email is None and people["6"].reason == "no public email on the GitLab profile"
    )
    assert people["99"].reason == "no such user"
    assert people["bo"].reason == "not a GitLab user id"
    assert len([r for r in case.fake.requests if r.path.startswith("/api/v4/users/")]) == 3

    admin = "glpat-ADMIN0000000000000"
    case.fake.admin_tokens.add(admin)
    connector = case.connector(token=admin)
    try:
        [bo] = connector.people(["6"])
    finally:
        connector.close()
    assert bo.email == "bo@corp.example"


def test_notes_come_without_system_notes_and_internal_ones_are_private(
    case: GitLabCase,
) -> None:
    case.fake.add_user(5, "ana", "Ana Ops")
    case.fake.add(1, HELPDESK, T0)
    case.fake.add(2, HELPDESK, T0 + dt.timedelta(seconds=1))
    case.fake.note(1, T0 + dt.timedelta(minutes=1), "First look", author_id=5)
    case.fake.note(1, T0 + dt.timedelta(minutes=2), "changed the description", system=True)
    case.fake.note(1, T0 + dt.timedelta(minutes=3), "Vendor ticket 77", author_id=5, internal=True)
    connector = case.connector()
    connector.read_comments = True
    tickets = {t.source_id: t for t in pull(connector, None)}
    comments = tickets["1"].comments
    assert comments is not None
    assert [(c.body, c.author, c.author_id, c.public) for c in comments] == [
        ("First look", "Ana Ops", "5", True),
        ("Vendor ticket 77", "Ana Ops", "5", False),
    ]
    assert tickets["2"].comments == []  # user_notes_count 0: no request
    notes = [r for r in case.fake.requests if r.path.endswith("/notes")]
    assert [r.path for r in notes] == ["/api/v4/projects/42/issues/1/notes"]
    assert notes[0].param("sort") == "asc"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"projects": []}, "projects"),
        ({"projects": ["acme/a", "ACME/A"]}, "projects"),
        ({"token": None}, "token"),
        ({"oauth_token": "x"}, "oauth_token"),
        ({"page_size": 500}, "page_size"),
    ],
)
def test_bad_options_fail_at_config_load_naming_the_key(
    emulator: Emulator, sqlite_url: str, options: dict[str, Any], key: str
) -> None:
    source = {"kind": "gitlab", "projects": [HELPDESK_PATH], "token": "t", **options}
    source = {k: v for k, v in source.items() if v is not None}
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN},
        "state": {"url": sqlite_url},
        "connectors": {"source": source},
    }
    with pytest.raises(ConfigError) as failure:
        build_config(raw, source="test")
    assert key in str(failure.value)


def test_each_task_is_assigned_to_its_gitlab_assignee_asking_once_per_person(
    case: GitLabCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add_user(5, "ana", "Ana Ops", public_email="ana@example.com")
    case.fake.add_user(6, "bo", "Bo Dev")  # shows no email
    for n, assignee in enumerate([5, 6, 5, None, 5], start=1):
        case.fake.add(n, HELPDESK, T0 + dt.timedelta(minutes=n))
        if assignee is not None:
            case.fake.assign(n, assignee)
    summary = ConnectorSuite().sync(case, emulator, sqlite_url)
    assert summary.ok, summary.error
    emails = {
        key: (task.get("assignee") or {}).get("email")
        for key, task in tasks_by_ticket(emulator).items()
    }
    assert emails == {"1": "ana@example.com", "2": None, "3": "ana@example.com", "4": None,
                      "5": "ana@example.com"}  # fmt: skip
    lookups = sorted(r.path for r in case.fake.requests if r.path.startswith("/api/v4/users/"))
    assert lookups == ["/api/v4/users/5", "/api/v4/users/6"]


def test_notes_are_read_only_when_asked_and_long_ones_page_by_100(case: GitLabCase) -> None:
    case.fake.add(1, HELPDESK, T0)
    for minute in range(1, 102):
        case.fake.note(1, T0 + dt.timedelta(minutes=minute), f"note {minute}")
    [plain] = pull(case.connector(), None)
    assert plain.comments is None
    assert not [r for r in case.fake.requests if r.path.endswith("/notes")]

    connector = case.connector()
    connector.read_comments = True
    [read] = pull(connector, None)
    assert read.comments is not None
    assert [c.body for c in read.comments] == [f"note {m}" for m in range(1, 102)]
    pages = [r for r in case.fake.requests if r.path.endswith("/notes")]
    assert [(r.param("per_page"), r.param("page")) for r in pages] == [("100", None), ("100", "2")]


def test_an_issue_deleted_before_its_notes_are_read_keeps_none_and_the_pass_goes_on(
    case: GitLabCase,
) -> None:
    for n in (1, 2):
        case.fake.add(n, HELPDESK, T0 + dt.timedelta(minutes=n))
        case.fake.note(n, T0 + dt.timedelta(minutes=n, seconds=30), f"about {n}")
    case.fake.fail_next(  # deleted between the listing and its notes
        Reply(404, {"message": "404 Issue Not Found"}),
        when=lambda r: r.path == "/api/v4/projects/42/issues/1/notes",
    )
    connector = case.connector()
    connector.read_comments = True
    first, second = pull(connector, None)
    assert first.comments is None
    assert second.comments is not None and [c.body for c in second.comments] == ["about 2"]


def test_notes_become_the_summary_without_system_notes_and_a_new_one_pushes_the_task(
    case: GitLabCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add_user(5, "ana", "Ana Ops")
    case.fake.add(1, HELPDESK, T0)
    case.fake.add(2, HELPDESK, T0 + dt.timedelta(minutes=1))
    case.fake.note(1, T0 + dt.timedelta(minutes=2), "Restarted it.", author_id=5)
    case.fake.note(1, T0 + dt.timedelta(minutes=3), "added ~bug label", system=True)
    case.extra = {"conversation": {"enabled": True}}
    suite = ConnectorSuite()
    first = suite.sync(case, emulator, sqlite_url)
    assert first.ok, first.error
    fields = tasks_by_ticket(emulator)["1"]["fields"]
    assert (fields["comment_count"], fields["last_comment"]) == (1, "Restarted it.")
    assert fields["last_comment_author"] == "Ana Ops"
    assert tasks_by_ticket(emulator)["2"]["fields"]["comment_count"] == 0

    case.fake.note(2, T0 + dt.timedelta(minutes=5), "Vendor called back.", author_id=5)
    second = suite.sync(case, emulator, sqlite_url)
    assert (second.ok, second.pushed) == (True, 1), second.error
    assert tasks_by_ticket(emulator)["2"]["fields"]["last_comment"] == "Vendor called back."
