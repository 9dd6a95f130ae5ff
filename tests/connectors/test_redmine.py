"""The Redmine connector against a fake of Redmine's REST API, plus its own pitfalls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from connectors.redmine import RedmineConnector, RedmineOptions
from fakes import HTML_ERROR, Reply, Request
from fakes.redmine import FakeRedmine, stamp
from fakes.suite import T0, ConnectorSuite, ScopesSuite, TwoScopesCase, VendorCase
from fragment_emulator import Emulator
from sync.config import Config, build_config
from sync.errors import ConfigError
from sync.run import RunOptions, RunSummary, run_once
from sync.shell.cli import main
from sync.state import StateStore
from sync.state.schema import failed_items, people
from sync_http import clock
from synckit import TOKEN, tasks_by_ticket

API_KEY = "redmine-key-5b0c11"


class RedmineCase(VendorCase):
    kind = "redmine"
    fake: FakeRedmine

    def options(self) -> dict[str, Any]:
        return {"base_url": self.fake.base_url, "api_key": API_KEY, "page_size": self.page_size}

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        subject = f"Printer {number} jammed v{version}"
        if number in self.fake.issues:
            self.fake.touch(number, updated, subject=subject)
        else:
            self.fake.add(number, updated, subject=subject)

    def remove(self, number: int, at: dt.datetime) -> None:
        del self.fake.issues[number]

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        issue = self.fake.add(number, updated)
        issue["updated_on"] = "yesterday-ish"
        return "updated_on"

    def rate_limit(self, wait: int) -> Reply:
        # Core Redmine has no rate limit; proxies in front of hosted ones answer 429.
        return Reply(429, {"errors": ["Too many requests"]}, headers={"Retry-After": str(wait)})

    def title(self, number: int, version: int) -> str:
        return f"#{number} Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path == "/issues.json"


@pytest.fixture
def case() -> Iterator[RedmineCase]:
    with FakeRedmine(API_KEY) as fake:
        yield RedmineCase(fake)


class TestRedmine(ConnectorSuite):
    pass


class TwoProjectsCase(RedmineCase, TwoScopesCase):
    """The same issues spread over two projects: odd ids in operations, even in facilities."""

    def in_second_scope(self, request: Request) -> bool:
        return request.path == "/issues.json" and request.param("project_id") == "facilities"

    def move(self, number: int, updated: dt.datetime) -> str:
        name = self.fake.issues[number]["project"]["name"]
        self.fake.move(number, "operations" if name == "Facilities" else "facilities", updated)
        return str(number)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "projects": ["operations", "facilities"]}

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        super().put(number, updated, version)
        if number % 2 == 0 and version == 1:
            self.fake.issues[number]["project"] = self.fake.project_ref("facilities")


@pytest.fixture
def two_projects() -> Iterator[TwoProjectsCase]:
    with FakeRedmine(API_KEY) as fake:
        fake.add_project("facilities", "Facilities")
        yield TwoProjectsCase(fake)


class TestRedmineTwoProjects(ScopesSuite):
    """Every scenario of the suite again, its issues in two projects read in one pass."""

    @pytest.fixture
    def case(self, two_projects: TwoProjectsCase) -> TwoProjectsCase:
        return two_projects


def test_an_issue_moved_between_two_projects_stays_one_task(
    two_projects: TwoProjectsCase, emulator: Emulator, sqlite_url: str
) -> None:
    case = two_projects
    for n in range(1, 5):
        case.add(n, T0 + dt.timedelta(minutes=n))
    suite = ConnectorSuite()
    assert suite.sync(case, emulator, sqlite_url).ok
    uid = tasks_by_ticket(emulator)["1"]["uid"]
    case.fake.move(1, "facilities", T0 + dt.timedelta(hours=1))
    moved = suite.sync(case, emulator, sqlite_url)
    assert (moved.ok, moved.pushed) == (True, 1)
    task = tasks_by_ticket(emulator)["1"]
    assert (task["uid"], task["fields"]["project"]) == (uid, "Facilities")
    suite.assert_exact(case, emulator)


def test_an_issue_of_a_subproject_listed_under_its_parent_too_is_pulled_once(
    case: RedmineCase,
) -> None:
    """`project_id=operations` takes in its subproject printers: both queries list its issues."""
    case.fake.add_project("printers", "Printers", parent="operations")
    for n in range(1, 7):
        case.add(n, T0 + dt.timedelta(minutes=n))
        if n > 3:
            case.fake.issues[n]["project"] = case.fake.project_ref("printers")
    options = {**case.options(), "projects": ["operations", "printers"]}
    connector = RedmineConnector("source", RedmineOptions.model_validate(options))
    tickets = list(connector.pull(None))
    connector.close()
    assert [t.source_id for t in tickets] == ["1", "2", "3", "4", "5", "6"]
    assert {r.param("project_id") for r in case.fake.gets("/issues.json")} == {
        "operations",
        "printers",
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"project": "ops", "projects": ["infra"]}, "not both"),
        ({"projects": ["ops", "ops"]}, "ops listed more than once"),
        ({"projects": [" "]}, "empty"),
    ],
)
def test_projects_and_its_shorthand_are_checked_at_config_load(
    options: dict[str, Any], message: str, emulator: Emulator, sqlite_url: str
) -> None:
    with FakeRedmine(API_KEY) as fake, pytest.raises(ConfigError) as caught:
        _config(fake, emulator, sqlite_url, **options)
    assert caught.value.key.startswith("connectors.tracker")
    assert message in str(caught.value)


def test_a_one_project_config_keeps_its_settings_fingerprint() -> None:
    """The new key, left unset, stays out of the fingerprint: no re-read on upgrade."""
    dumped = RedmineOptions(base_url="http://r", api_key="k", project="ops").model_dump()
    assert "projects" not in dumped and dumped["project"] == "ops"


def test_every_status_is_asked_for_and_sorted_by_update(case: RedmineCase) -> None:
    connector = RedmineConnector(
        "redmine", RedmineOptions(base_url=case.fake.base_url, api_key=API_KEY, page_size=5)
    )
    case.add(1, T0)
    case.fake.add(2, T0 + dt.timedelta(minutes=1), status={"id": 5, "name": "Closed"})
    case.versions[2] = 1
    tickets = list(connector.pull(T0))
    connector.close()
    assert [t.source_id for t in tickets] == ["1", "2"]  # the closed one too
    [request] = case.fake.gets("/issues.json")
    assert request.param("status_id") == "*"
    assert request.param("sort") == "updated_on,id"
    assert request.param("updated_on") == ">=2026-11-02T09:00:00Z"
    assert request.headers["x-redmine-api-key"] == API_KEY


# The engine against Redmine's clock and its one-second filter


def _config(fake: FakeRedmine, emulator: Emulator, state_url: str, **settings: Any) -> Config:
    options = {
        "kind": "redmine",
        "base_url": fake.base_url,
        "api_key": API_KEY,
        "max_attempts": 2,
        "max_retry_wait": "1s",
        "requests_per_minute": 100_000,
        **settings,
    }
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
        "state": {"url": state_url},
        "connectors": {"tracker": options},
    }
    return build_config(raw, source="test")


def _sync(config: Config) -> RunSummary:
    store = StateStore.open(config.state.url)
    try:
        [summary] = run_once(config, store, options=RunOptions())
    finally:
        store.close()
    return summary


def _page_requests_from(fake: FakeRedmine, n: int) -> Callable[[Request], bool]:
    """A predicate true for the `n`th page request from now on and every one after it."""
    seen = [0]

    def matches(request: Request) -> bool:
        if request.path == "/issues.json":
            seen[0] += 1
        return seen[0] >= n

    return matches


@pytest.mark.parametrize("sends_date", [False, True], ids=["thin", "behind-a-proxy"])
@pytest.mark.parametrize("host_ahead_s", [2, 5, -3])
def test_an_edit_in_the_second_of_the_last_issue_read_is_not_lost_whatever_the_clocks(
    host_ahead_s: int,
    sends_date: bool,
    emulator: Emulator,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 2 ends a page; it is edited again within that second, and issue 3 a bit later.

    The page after re-anchors on issue 2's second and skips it (read already),
    so only the next pass can bring the edit: the watermark must not pass it,
    with this host's clock ahead of Redmine's (2 s, 5 s) or behind it (3 s),
    and no lookback to hide a loss. Redmine's clock shows in the issues'
    `updated_on`, and in a `Date` header when a proxy in front adds one.
    """
    with FakeRedmine(API_KEY, sends_date=sends_date) as fake:
        for n in range(1, 6):
            fake.add(n, T0 + dt.timedelta(minutes=n), subject=f"Printer {n} jammed")
        config = _config(fake, emulator, sqlite_url, page_size=3, lookback="0s")
        assert _sync(config).ok

        # One time for both clocks, so that the test places changes exactly: Redmine's,
        # stopped a tenth into a second and moved by hand, and this machine's, ahead of it.
        fake.clock.stop_at(dt.datetime.now(dt.UTC).replace(microsecond=100_000))
        ahead = dt.timedelta(seconds=host_ahead_s)
        monkeypatch.setattr(clock, "now", lambda: fake.clock.now() + ahead)
        fake.touch(1, subject="Printer 1 fixed")
        fake.clock.advance(dt.timedelta(milliseconds=1))
        fake.touch(2, subject="Printer 2 fixed")
        fake.clock.advance(dt.timedelta(milliseconds=1))
        fake.touch(4, subject="Printer 4 fixed")

        def edit_while_the_pass_runs() -> None:
            fake.clock.advance(dt.timedelta(milliseconds=500))
            fake.touch(2, subject="Printer 2 fixed, then closed")  # the same second
            fake.clock.advance(dt.timedelta(seconds=2))
            fake.touch(3, subject="Printer 3 fixed")

        # The pass's first page is [5, 1, 2]: issue 2 ends it. Edit as the next is asked.
        fake.when(_page_requests_from(fake, 2), edit_while_the_pass_runs)
        during = _sync(config)
        assert during.ok, during.error
        after = _sync(config)
        assert after.ok, after.error

    titles = {k: t["fields"]["title"] for k, t in tasks_by_ticket(emulator).items()}
    assert titles["2"] == "#2 Printer 2 fixed, then closed"
    assert titles["3"] == "#3 Printer 3 fixed"


def test_a_pass_the_source_fails_keeps_every_issue_it_read(
    emulator: Emulator, sqlite_url: str
) -> None:
    """Redmine goes down after serving 150 issues: what was read lands, the next pass resumes.

    Three pages of 50 bring 148 distinct issues: each page after the first
    re-anchors on the last issue of the one before and reads it again.
    """
    with FakeRedmine(API_KEY, sends_date=True) as fake:  # the watermark is the last issue read
        for n in range(1, 251):
            fake.add(n, T0 + dt.timedelta(minutes=n))
        config = _config(fake, emulator, sqlite_url, page_size=50, lookback="0s")
        fake.fail_next(HTML_ERROR, times=1000, when=_page_requests_from(fake, 4))

        failed = _sync(config)

        assert not failed.ok
        assert "502" in (failed.error or "")
        assert (failed.pulled, failed.pushed) == (148, 148)
        assert set(tasks_by_ticket(emulator)) == {str(n) for n in range(1, 149)}
        fake.faults.clear()
        asked_before = len(fake.gets("/issues.json"))
        resumed = _sync(config)
        asked = fake.gets("/issues.json")[asked_before:]

    assert resumed.ok, resumed.error
    assert set(tasks_by_ticket(emulator)) == {str(n) for n in range(1, 251)}
    assert asked[0].param("updated_on") == f">={stamp(T0 + dt.timedelta(minutes=148))}"
    assert (resumed.pulled, resumed.pushed) == (103, 102)  # issue 148 again, unchanged


def test_a_first_backfill_cut_short_resumes_from_its_checkpoint(
    emulator: Emulator, sqlite_url: str
) -> None:
    """No pass has completed yet: the next one resumes, with no settings_changed re-read."""
    with FakeRedmine(API_KEY, sends_date=True) as fake:  # the watermark is the last issue read
        for n in range(1, 701):
            fake.add(n, T0 + dt.timedelta(minutes=n))
        config = _config(fake, emulator, sqlite_url, page_size=100, lookback="0s")
        fake.fail_next(HTML_ERROR, times=1000, when=_page_requests_from(fake, 7))

        cut_short = _sync(config)

        assert not cut_short.ok
        last = max(int(n) for n in tasks_by_ticket(emulator))
        fake.faults.clear()
        asked_before = len(fake.gets("/issues.json"))
        with capture_logs() as logs:
            resumed = _sync(config)
        asked = fake.gets("/issues.json")[asked_before:]

    assert "settings_changed" not in [entry["event"] for entry in logs]
    assert asked[0].param("updated_on") == f">={stamp(T0 + dt.timedelta(minutes=last))}"
    assert resumed.ok, resumed.error
    assert set(tasks_by_ticket(emulator)) == {str(n) for n in range(1, 701)}
    assert resumed.pulled == 701 - last  # the last issue read again (unchanged), then the rest


@pytest.mark.parametrize(("lookback", "bound"), [(None, "08:59:58"), ("0s", "09:00:00")])
def test_a_pass_starts_the_default_lookback_before_the_watermark_unless_one_is_set(
    lookback: str | None, bound: str, emulator: Emulator, sqlite_url: str
) -> None:
    """Redmine's filter compares whole seconds: unless told otherwise, re-read two more."""
    with FakeRedmine(API_KEY, sends_date=True) as fake:  # the watermark is the last issue read
        fake.add(1, T0)
        settings = {} if lookback is None else {"lookback": lookback}
        config = _config(fake, emulator, sqlite_url, **settings)
        assert _sync(config).ok
        assert _sync(config).ok
        second = fake.gets("/issues.json")[-1]

    assert second.param("updated_on") == f">=2026-11-02T{bound}Z"


# The census: deletions and moves, which Redmine's listing never reports


def test_a_census_archives_deleted_issues_and_issues_moved_out_of_the_project(
    emulator: Emulator, sqlite_url: str
) -> None:
    from sync.census import census_once

    with FakeRedmine(API_KEY) as fake:
        for number in range(1, 131):  # two pages of 100
            fake.add(number, T0 + dt.timedelta(seconds=number))
        config = _config(fake, emulator, sqlite_url, project="operations", page_size=100)
        assert _sync(config).ok
        fake.delete(40)
        fake.move(120, "elsewhere")
        assert _sync(config).ok  # the move is a change, but the project's listing loses it
        before = len(fake.gets("/issues.json"))

        with StateStore.open(config.state.url) as store:
            [summary] = census_once(config, store, ["tracker"])

        census_requests = fake.gets("/issues.json")[before:]
    assert summary.ok, summary.error
    assert (summary.at_source, summary.tracked, summary.gone, summary.archived) == (128, 130, 2, 2)
    landed = tasks_by_ticket(emulator)
    assert {key for key, task in landed.items() if task["archived"]} == {"40", "120"}
    # Ids only, anchored on the last id read (an offset would skip the issue after a
    # deleted one), every status, within the project.
    assert [r.param("issue_id") for r in census_requests] == [">=1", ">=102"]
    assert {r.param("offset") for r in census_requests} == {None}
    assert {
        (r.param("status_id"), r.param("sort"), r.param("project_id")) for r in census_requests
    } == {("*", "id", "operations")}


# Fields by name, date-only due dates, the source's status text


def test_custom_fields_by_name_due_dates_and_status_text_reach_the_task(
    emulator: Emulator, sqlite_url: str
) -> None:
    """Issue 1 has a Severity and a due date, 2 has neither (its tracker has no such field),
    3 lacks a field mapped without a default: a failed item naming connector, ticket, field."""
    mapping = {
        "date_only_zone": "Europe/Paris",
        "fields": {
            "Severity": 'custom_fields[name=Severity].value | "unset"',
            "External ID": "custom_fields[name=External ID].value",
        },
    }
    with FakeRedmine(API_KEY) as fake:
        fake.add(
            1,
            T0,
            status={"id": 2, "name": "In Progress"},
            due_date="2026-11-30",
            custom_fields=[
                {"id": 1, "name": "Severity", "value": "High"},
                {"id": 2, "name": "External ID", "value": "CRM-881"},
            ],
        )
        fake.add(2, T0, custom_fields=[{"id": 2, "name": "External ID", "value": "CRM-882"}])
        fake.add(3, T0, custom_fields=[{"id": 1, "name": "Severity", "value": "Low"}])
        config = _config(fake, emulator, sqlite_url, mapping=mapping)
        first = _sync(config)

        assert first.ok and (first.pushed, first.failed) == (2, 1)
        tasks = tasks_by_ticket(emulator)
        assert tasks["1"]["fields"]["severity"] == "High"
        assert tasks["1"]["fields"]["external_id"] == "CRM-881"
        assert tasks["1"]["fields"]["source_status"] == "In Progress"
        assert (tasks["1"]["status"], tasks["1"]["external_status"]) == ("STARTED", "STARTED")
        # 17:00 in Paris, winter time
        assert _moment(tasks["1"]["due_at"]) == dt.datetime(2026, 11, 30, 16, tzinfo=dt.UTC)
        assert tasks["2"]["fields"]["severity"] == "unset"
        assert tasks["2"]["due_at"] is None
        store = StateStore.open(sqlite_url)
        [failed] = store.failed_items("tracker")
        store.close()
        assert (failed.source_id, failed.stage, failed.field) == ("3", "mapping", "external_id")
        assert "custom_fields[name=External ID]" in failed.error

        # A new time for date-only values: the mapping's fingerprint changes, the next pass
        # reads every issue again, and only the task whose due date moves is pushed.
        later = _config(fake, emulator, sqlite_url, mapping={**mapping, "date_only_time": "12:00"})
        second = _sync(later)

        assert second.ok and (second.pulled, second.pushed, second.unchanged) == (3, 1, 1)
        noon = _moment(tasks_by_ticket(emulator)["1"]["due_at"])
        assert noon == dt.datetime(2026, 11, 30, 11, tzinfo=dt.UTC)


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# People: `assigned_to.id` resolved through /users/{id}.json, once per person.

ADMIN_KEY = "redmine-admin-key-9e41aa"
ANA, LI, MO = "ana.ops@example.com", "li.support@example.com", "mo.hidden@example.com"


@pytest.fixture
def staffed() -> Iterator[FakeRedmine]:
    """Ana and Li show their emails; Mo hides his; group 30 is "Night shift"."""
    with FakeRedmine(API_KEY, admin_keys=(ADMIN_KEY,)) as fake:
        fake.add_user(5, "ana.ops", ANA)
        fake.add_user(6, "li.support", LI, hide_mail=False)
        fake.add_user(7, "mo.hidden", MO)
        fake.groups[30] = "Night shift"
        for number, assignee in enumerate([5, 6, 5, 7, 30, 99, None, 5, 6], start=1):
            named = {} if assignee is None else {"assigned_to": {"id": assignee, "name": "x"}}
            fake.add(number, T0 + dt.timedelta(minutes=number), **named)
        yield fake


def _assignees(emulator: Emulator) -> dict[str, str | None]:
    return {
        number: (task.get("assignee") or {}).get("email")
        for number, task in tasks_by_ticket(emulator).items()
    }


def test_an_admin_key_assigns_each_task_to_its_redmine_assignee_asking_once_per_person(
    staffed: FakeRedmine, state_url: str
) -> None:
    with Emulator(tokens=[TOKEN]) as emulator:
        config = _config(staffed, emulator, state_url, api_key=ADMIN_KEY)
        first = _sync(config)

        assert first.ok and (first.pushed, first.failed) == (9, 0)
        assert _assignees(emulator) == {
            "1": ANA, "2": LI, "3": ANA, "4": MO, "5": None, "6": None, "7": None,
            "8": ANA, "9": LI,
        }  # fmt: skip
        users = [f"/users/{n}.json" for n in (5, 6, 7, 30, 99)]
        groups = ["/groups/30.json", "/groups/99.json"]  # not users: groups, perhaps
        assert sorted(staffed.user_requests) == sorted([*users, *groups])
        with StateStore.open(state_url) as store:
            kept = store.known_people("tracker", ["5", "30", "99"])
        assert (kept["5"].email, kept["5"].name) == (ANA, "Ana Ops")
        assert (kept["30"].name, kept["30"].reason) == ("Night shift", _GROUP_REASON)
        assert kept["99"].reason is not None and kept["99"].reason.startswith("no such user")
        with StateStore.open(state_url) as store, store.engine.connect() as conn:
            rows = [str(tuple(row)) for row in conn.execute(sa.select(people))]
        assert len(rows) == 5 and not any("k000" in row for row in rows)  # users' API keys

        staffed.touch(3, T0 + dt.timedelta(hours=1), assigned_to={"id": 6, "name": "x"})
        second = _sync(config)

        assert second.pushed == 1 and _assignees(emulator)["3"] == LI
        assert len(staffed.user_requests) == 7  # all from the cache


_GROUP_REASON = (
    "a Redmine group: groups have no email (name someone in the connector's people table)"
)


def test_a_non_admin_key_sees_only_shown_emails_and_the_table_stands_in_for_the_rest(
    staffed: FakeRedmine, sqlite_url: str
) -> None:
    with Emulator(tokens=[TOKEN]) as emulator:
        plain = _config(staffed, emulator, sqlite_url)
        assert _sync(plain).ok
        hidden = _assignees(emulator)
        assert (hidden["1"], hidden["2"], hidden["4"]) == (None, LI, None)
        with StateStore.open(sqlite_url) as store:
            kept = store.known_people("tracker", ["5"])["5"]
        assert kept.email is None and kept.reason is not None
        assert kept.reason.startswith("email hidden")

        tabled = _config(staffed, emulator, sqlite_url, people={"table": {"5": ANA, "30": MO}})
        summary = _sync(tabled)  # the table changed the settings: every issue read again

        assert summary.pulled == 9
        assignees = _assignees(emulator)
        assert (assignees["1"], assignees["4"], assignees["5"]) == (ANA, None, MO)


def test_an_email_changed_at_the_source_reaches_every_task_of_that_person_after_a_refresh(
    staffed: FakeRedmine, sqlite_url: str, tmp_path: Path
) -> None:
    """Ana's issues don't change; her email does. `people --refresh` sees it, and the
    next pass reads every issue again, so all three of her tasks follow."""
    with Emulator(tokens=[TOKEN]) as emulator:
        config = _config(staffed, emulator, sqlite_url, api_key=ADMIN_KEY)
        assert _sync(config).ok
        staffed.users[5]["mail"] = "ana.new@example.com"
        config_file = _people_config(tmp_path, staffed, sqlite_url)
        assert main(["people", "--config", str(config_file), "--refresh", "--json"]) == 0
        assert len(staffed.user_requests) == 14  # each person asked once more

        again = _sync(config)

        assert again.pulled == 9 and again.pushed == 3
        assigned = _assignees(emulator)
        assert [assigned[n] for n in ("1", "3", "8")] == ["ana.new@example.com"] * 3
        quiet = _sync(config)
        assert quiet.pulled < 9 and quiet.pushed == 0


def _people_config(folder: Path, fake: FakeRedmine, state_url: str) -> Path:
    """A sync.toml for `python -m sync people` over `fake`, with an admin's key."""
    path = folder / "sync.toml"
    path.write_text(
        f"""
[state]
url = "{state_url}"
[connectors.tracker]
kind = "redmine"
base_url = "{fake.base_url}"
api_key = "{ADMIN_KEY}"
"""
    )
    return path


def test_a_refused_email_fixed_at_the_source_is_retried_at_once_after_a_refresh(
    staffed: FakeRedmine, state_url: str, tmp_path: Path
) -> None:
    """Fragment knows Li and Mo, not Ana's old address: her three issues are failed items
    naming it, failing for hours, so due again in an hour. Her address is fixed in
    Redmine; once `people --refresh` sees it, the next pass sends them at once."""
    with Emulator(tokens=[TOKEN], users=[LI, MO, "ana.fixed@example.com"]) as emulator:
        config = _config(staffed, emulator, state_url, api_key=ADMIN_KEY)
        first = _sync(config)
        assert first.failed == 3
        with StateStore.open(state_url) as store:
            refused = store.failed_items("tracker")
            assert {i.source_id for i in refused} == {"1", "3", "8"}
            assert all(ANA in item.error for item in refused)
            with store.engine.begin() as conn:
                hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
                conn.execute(sa.update(failed_items).values(first_seen=hours_ago))
        assert _sync(config).failed == 3  # tried once more, now due in an hour
        staffed.users[5]["mail"] = "ana.fixed@example.com"
        waiting = _sync(config)  # not due: nothing tried, and the cache knows nothing new
        assert (waiting.failed, waiting.pushed) == (0, 0)
        with StateStore.open(state_url) as store:
            assert len(store.failed_items("tracker")) == 3

        config_file = _people_config(tmp_path, staffed, state_url)
        assert main(["people", "--config", str(config_file), "--refresh"]) == 0
        healed = _sync(config)

        assert healed.ok and (healed.pushed, healed.failed) == (3, 0)
        assigned = _assignees(emulator)
        assert [assigned[n] for n in ("1", "3", "8")] == ["ana.fixed@example.com"] * 3
        with StateStore.open(state_url) as store:
            assert store.failed_items("tracker") == []
