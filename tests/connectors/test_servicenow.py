"""The ServiceNow connector against a fake of the Table API, plus ServiceNow's own traps.

The fake's API user sits in New York, so display values and `gs.dateGenerate`
are five hours behind the UTC that raw values and query literals use.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest

from connectors.base import BadRecord, Person, SourceTicket
from connectors.errors import SourceError
from connectors.records import get_path
from connectors.servicenow import ServiceNowConnector, ServiceNowOptions
from fakes import Reply, Request
from fakes.servicenow import FakeServiceNow, OAuthClient, sys_id_of
from fakes.suite import T0, ConnectorSuite, VendorCase, nth_page_request
from fragment_emulator import Emulator
from sync.config import build_config
from sync.errors import ConfigError
from sync.mapping import Mapper
from sync.run import RunSummary
from sync.shell.logs import redact
from synckit import TOKEN, free_port, tasks_by_ticket

USERNAME = "fragment.sync"
PASSWORD = "snow-pass-81d2"
OAUTH_TOKEN = "snow-oauth-5e77c0"
CLIENT_ID = "be3aeb583ace210011c15b24a43e25d8"
CLIENT_SECRET = "snow-client-secret-2b90d4"
TABLE = "/api/now/table/incident"
ORDER = "ORDERBYsys_updated_on^ORDERBYsys_id"


class ServiceNowCase(VendorCase):
    kind = "servicenow"
    fake: FakeServiceNow

    def __init__(self, fake: FakeServiceNow) -> None:
        super().__init__(fake)
        self.extra: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        options = {
            "base_url": self.fake.base_url,
            "username": USERNAME,
            "password": PASSWORD,
            "page_size": self.page_size,
            **self.extra,
        }
        return {k: v for k, v in options.items() if v is not None}

    def ticket_key(self, number: int) -> str:
        return sys_id_of(number)

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        text = f"Printer {number} jammed v{version}"
        if sys_id_of(number) in self.fake.tables["incident"]:
            self.fake.touch(number, updated, short_description=text)
        else:
            self.fake.add(number, updated, short_description=text)

    def remove(self, number: int, at: dt.datetime) -> None:
        self.fake.delete(number)  # gone from the table; only sys_audit_delete would know

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        # Inserted by a script with autoSysFields(false): no sys_updated_on at all.
        self.fake.add(number, None)
        return "sys_updated_on"

    def rate_limit(self, wait: int) -> Reply:
        return self.fake.rate_limited(wait)

    def title(self, number: int, version: int) -> str:
        return f"INC{number:07d} Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path == TABLE

    def live(self) -> dict[str, str]:
        # Records are keyed on their sys_id, not on the suite's ticket number.
        return {sys_id_of(int(n)): title for n, title in super().live().items()}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServiceNow]:
    fake = FakeServiceNow(USERNAME, PASSWORD, OAUTH_TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def case(server: FakeServiceNow) -> ServiceNowCase:
    server.reset(user_tz="America/New_York")
    return ServiceNowCase(server)


class TestServiceNow(ConnectorSuite):
    def test_a_deleted_ticket_is_archived_or_left_alone_as_the_vendor_allows(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        # The suite's version, reading task "3" by its sys_id (suite.py looks up "3").
        for n in range(1, 6):
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        case.delete(3, T0 + dt.timedelta(hours=1))
        summary = self.sync(case, emulator, sqlite_url)
        assert summary.ok, summary.error
        self.assert_exact(case, emulator)
        assert tasks_by_ticket(emulator)[sys_id_of(3)]["archived"] is False


def connector(case: ServiceNowCase, **overrides: Any) -> ServiceNowConnector:
    options = {"rate_limit_floor": "100ms", "max_retry_wait": "10s", **case.options()}
    merged = {k: v for k, v in {**options, **overrides}.items() if v is not None}
    return ServiceNowConnector("snow", ServiceNowOptions.model_validate(merged))


def pull(
    case: ServiceNowCase, since: dt.datetime | None, **overrides: Any
) -> list[SourceTicket | BadRecord]:
    with closing(connector(case, **overrides)) as source:
        return list(source.pull(since))


def tickets(items: list[SourceTicket | BadRecord]) -> list[SourceTicket]:
    assert all(isinstance(item, SourceTicket) for item in items)
    return [item for item in items if isinstance(item, SourceTicket)]


def ids(items: list[SourceTicket | BadRecord]) -> list[str | None]:
    return [item.source_id for item in items]


def test_the_query_sent_is_the_scope_then_a_keyset_after_the_last_row(
    case: ServiceNowCase,
) -> None:
    for n in range(1, 8):
        case.add(n, T0 + dt.timedelta(minutes=n))

    items = pull(case, T0 + dt.timedelta(minutes=1, microseconds=700), query="active=true")

    assert ids(items) == [sys_id_of(n) for n in range(2, 8)]  # 1 is read, then dropped
    first, second, last = case.fake.gets(TABLE)
    assert first.param("sysparm_query") == (
        f"active=true^sys_updated_on>=2026-11-02 09:01:00^{ORDER}"
    )
    after = f"2026-11-02 09:05:00^sys_id>{sys_id_of(5)}"
    assert second.param("sysparm_query") == (
        "active=true^sys_updated_on>2026-11-02 09:05:00"
        f"^NQactive=true^sys_updated_on={after}^{ORDER}"
    )
    assert (last.param("sysparm_query") or "").endswith(f"^sys_id>{sys_id_of(7)}^{ORDER}")
    for request in (first, second, last):
        assert request.param("sysparm_display_value") == "false"
        assert request.param("sysparm_exclude_reference_link") == "true"
        assert request.param("sysparm_no_count") == "true"
        assert request.param("sysparm_limit") == "5"
        assert request.param("sysparm_offset") == "0"  # never deeper: each page is a keyset


def test_timestamps_without_a_zone_are_read_as_utc(case: ServiceNowCase) -> None:
    late = dt.datetime(2026, 11, 2, 23, 30, tzinfo=dt.UTC)  # 18:30 for the New York user
    case.fake.add(1, late, due_date="2026-11-03 08:00:00")

    [ticket] = tickets(pull(case, late - dt.timedelta(seconds=1)))

    assert ticket.record["sys_updated_on"] == "2026-11-02 23:30:00"
    assert ticket.cursor == late
    task = mapper(case).map(ticket).task()
    assert task["external_updated_at"] == "2026-11-02T23:30:00Z"
    assert task["due_at"] == "2026-11-03T08:00:00Z"
    # The trap the connector avoids: gs.dateGenerate reads the user's zone (23:00 in New
    # York is 04:00 UTC the next day), so this query misses a row it should return.
    user_zoned = "sys_updated_on>=javascript:gs.dateGenerate('2026-11-02','23:00:00')"
    answer = httpx.get(
        case.fake.base_url + TABLE,
        params={"sysparm_query": user_zoned},
        auth=(USERNAME, PASSWORD),
    )
    assert answer.json()["result"] == []


def test_a_tie_group_larger_than_several_pages_is_read_completely_once(
    case: ServiceNowCase,
) -> None:
    tie = T0 + dt.timedelta(minutes=30)  # one bulk import, one second
    for n in range(1, 24):
        case.add(n, tie)
    case.add(50, tie + dt.timedelta(seconds=1))

    items = pull(case, tie)

    counts = Counter(ids(items))
    assert set(counts) == {sys_id_of(n) for n in [*range(1, 24), 50]}
    assert set(counts.values()) == {1}
    assert ids(items)[:-1] == sorted(sys_id_of(n) for n in range(1, 24))  # by sys_id
    assert len(case.fake.gets(TABLE)) == 6  # 24 rows in pages of 5, then the empty page


def test_a_tie_member_edited_mid_scan_does_not_shift_the_rest_out(case: ServiceNowCase) -> None:
    tie = T0 + dt.timedelta(minutes=30)
    for n in range(1, 24):
        case.add(n, tie)
    in_order = sorted(range(1, 24), key=sys_id_of)
    pages = [0]

    def third_page(request: Request) -> bool:
        pages[0] += 1
        return pages[0] == 3

    # Rows read on page 1 leave the tie group: with offsets, the unread ones would
    # move up into pages already passed and be skipped.
    moved = in_order[:3]

    def bulk_edit() -> None:
        for n in moved:
            case.fake.touch(n, tie + dt.timedelta(hours=1))

    case.fake.when(third_page, bulk_edit)

    items = pull(case, tie)

    counts = Counter(ids(items))
    assert set(counts) == {sys_id_of(n) for n in range(1, 24)}  # nothing skipped
    assert {counts[sys_id_of(n)] for n in moved} == {2}  # read before and after the edit
    assert sum(counts.values()) == 23 + len(moved)


def test_rows_hidden_by_acls_leave_short_and_empty_pages_that_do_not_end_the_pull(
    case: ServiceNowCase,
) -> None:
    for n in range(1, 16):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.acl_hidden = {sys_id_of(n) for n in (2, *range(6, 11))}  # page 2 entirely

    items = pull(case, None)

    assert ids(items) == [sys_id_of(n) for n in (1, 3, 4, 5, *range(11, 16))]


def test_bearer_and_basic_auth_both_work(case: ServiceNowCase) -> None:
    case.add(1, T0)

    basic = pull(case, None)
    bearer = pull(case, None, username=None, password=None, token=OAUTH_TOKEN)

    assert ids(basic) == ids(bearer) == [sys_id_of(1)]
    first, second = (r.headers["authorization"] for r in case.fake.gets(TABLE)[::2])
    assert first.startswith("Basic ")
    assert second == f"Bearer {OAUTH_TOKEN}"


def test_a_wrong_password_fails_with_a_clear_message(case: ServiceNowCase) -> None:
    case.add(1, T0)
    with pytest.raises(SourceError) as raised:
        pull(case, None, password="stale")
    assert "credentials" in str(raised.value)
    assert "401" in str(raised.value)


@pytest.mark.parametrize(
    ("credentials", "complaint"),
    [
        ({}, "username and password (Basic auth) or token"),
        ({"username": "u", "password": "p", "token": "t"}, "not both"),
        ({"username": "u"}, "needs both username and password"),
        ({"client_id": "c"}, "needs both client_id and client_secret"),
        ({"client_id": "c", "client_secret": "s", "token": "t"}, "not both"),
        ({"client_id": "c", "client_secret": "s", "password": "p"}, "needs both username"),
        ({"refresh_token": "r"}, "refresh_token needs client_id and client_secret"),
        (
            {"client_id": "c", "client_secret": "s", "refresh_token": "r", "username": "u"},
            "not both",
        ),
    ],
)
def test_credentials_are_checked_at_config_load(
    credentials: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load({"instance": "acme", **credentials})
    assert raised.value.key == "connectors.snow"
    assert complaint in str(raised.value)


def test_a_query_that_would_break_the_keyset_is_refused_at_config_load() -> None:
    for query in ("active=true^ORDERBYnumber", "active=true^NQpriority=1"):
        with pytest.raises(ConfigError) as raised:
            load({"instance": "acme", "token": "t", "query": query})
        assert raised.value.key == "connectors.snow.query"


def test_an_instance_name_becomes_the_service_now_url() -> None:
    config = load({"instance": "acme", "token": "t", "table": "sc_req_item"})
    options = config.connectors["snow"].options
    assert isinstance(options, ServiceNowOptions)
    assert options.base_url == "https://acme.service-now.com"


def test_the_default_mapping_reads_incident_states_and_links_back(case: ServiceNowCase) -> None:
    case.fake.add(1, T0, state="2", assigned_to="5137153cc611227c000bbd1bd8cd2005")
    case.fake.add(2, T0 + dt.timedelta(seconds=1), state="7")

    started, closed = (mapper(case).map(t).task() for t in tickets(pull(case, None)))

    assert (started["status"], closed["status"]) == ("STARTED", "DONE")
    # Without `fields` nothing is dot-walked: the email comes from `people`, by assigned_to.
    assert started["assignee_email"] is None
    assert started["due_at"] is None  # an empty due_date
    assert started["fields"] == {
        "title": "INC0000001 Incident 1",
        "url": f"{case.fake.base_url}/nav_to.do?uri=incident.do?sys_id={sys_id_of(1)}",
        "ticket_id": sys_id_of(1),
        "number": "INC0000001",
        "priority": "4",
        "urgency": "3",
        "impact": "3",
        "category": "inquiry",
        "assignment_group": "287ebd7da9fe198100f92cc8d1d2154e",
        "assigned_to": "5137153cc611227c000bbd1bd8cd2005",
        "caller_id": "681ccaf9c0a8016400b98a06818d57c7",
        "source_status": "2",  # raw values: the state's code, not its label
    }


# OAuth: tokens from /oauth_token.do that expire, renewed on time and once when refused


@pytest.fixture
def oauth(case: ServiceNowCase) -> ServiceNowCase:
    """The case with an OAuth application registered, the connector using the password grant."""
    case.fake.oauth_client = OAuthClient(CLIENT_ID, CLIENT_SECRET)
    case.extra = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    return case


def sync(case: ServiceNowCase, emulator: Emulator, state_url: str) -> RunSummary:
    return ConnectorSuite().sync(case, emulator, state_url)


def test_a_pass_outliving_its_access_token_renews_it_before_it_expires(
    oauth: ServiceNowCase, emulator: Emulator, sqlite_url: str
) -> None:
    oauth.fake.token_lifetime = 3  # the instance says "expires_in": 2
    for n in range(1, 61):
        oauth.add(n, T0 + dt.timedelta(minutes=n))

    def slow_instance(request: Request) -> None:
        if request.path == TABLE:
            time.sleep(0.3)  # 13 pages take about 4 s: the pass outlives its first token

    oauth.fake.faults.append(slow_instance)

    summary = sync(oauth, emulator, sqlite_url)

    assert summary.ok, summary.error
    ConnectorSuite().assert_exact(oauth, emulator)
    grants = oauth.fake.grants()
    assert grants[0] == "password"
    assert len(grants) >= 2 and set(grants[1:]) == {"refresh_token"}  # renewed, no password
    assert oauth.fake.refused == []  # renewed before expiry: no page was refused


def test_a_token_revoked_mid_pass_is_renewed_once_and_the_pass_completes(
    oauth: ServiceNowCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 16):
        oauth.add(n, T0 + dt.timedelta(minutes=n))
    oauth.fake.when(nth_page_request(oauth, 2), oauth.fake.revoke_access_tokens)

    summary = sync(oauth, emulator, sqlite_url)

    assert summary.ok, summary.error
    ConnectorSuite().assert_exact(oauth, emulator)
    assert oauth.fake.grants() == ["password", "refresh_token"]
    [refused] = oauth.fake.refused
    assert refused.param("sysparm_query") == oauth.fake.gets(TABLE)[2].param("sysparm_query")


def test_a_refused_renewal_fails_the_pass_naming_the_connector_and_the_endpoint(
    oauth: ServiceNowCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 16):
        oauth.add(n, T0 + dt.timedelta(minutes=n))

    def lock_the_user_out() -> None:
        oauth.fake.revoke_access_tokens()
        oauth.fake.revoke_refresh_tokens()
        oauth.fake.password = "changed-by-an-admin"

    oauth.fake.when(nth_page_request(oauth, 2), lock_the_user_out)

    summary = sync(oauth, emulator, sqlite_url)

    assert not summary.ok
    error = summary.error or ""
    assert "'source'" in error  # the connector's name
    assert f"{oauth.fake.base_url}/oauth_token.do refused the password grant: 401" in error
    assert "access_denied" in error
    # The refresh token was tried first, then the password grant, then nothing more.
    assert oauth.fake.grants() == ["password", "refresh_token", "password"]
    for secret in (CLIENT_SECRET, PASSWORD, *(t.access_token for t in oauth.fake.issued)):
        assert secret not in error


def test_a_token_refused_again_after_its_renewal_fails_the_pass(
    oauth: ServiceNowCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 16):
        oauth.add(n, T0 + dt.timedelta(minutes=n))
    refusal = Reply(401, {"error": {"message": "User Not Authenticated"}, "status": "failure"})

    def from_the_second_page(request: Request) -> bool:
        return request.path == TABLE and len(oauth.fake.gets(TABLE)) >= 2

    oauth.fake.fail_next(refusal, times=2, when=from_the_second_page)

    summary = sync(oauth, emulator, sqlite_url)

    assert not summary.ok
    assert "'source'" in (summary.error or "")
    assert "refused the credentials" in (summary.error or "")
    assert "401" in (summary.error or "")
    assert oauth.fake.grants() == ["password", "refresh_token"]  # renewed once, not in a loop


def test_the_client_credentials_and_refresh_token_grants_work(oauth: ServiceNowCase) -> None:
    oauth.add(1, T0)
    oauth.fake.refresh_tokens.add("snow-refresh-from-setup-41c7")

    by_client = pull(oauth, None, username=None, password=None)
    by_refresh = pull(
        oauth, None, username=None, password=None, refresh_token="snow-refresh-from-setup-41c7"
    )

    assert ids(by_client) == ids(by_refresh) == [sys_id_of(1)]
    assert oauth.fake.grants() == ["client_credentials", "refresh_token"]
    [by_client_token, by_refresh_token] = oauth.fake.issued
    first, second = (r.headers["authorization"] for r in oauth.fake.gets(TABLE)[::2])
    assert first == f"Bearer {by_client_token.access_token}"
    assert second == f"Bearer {by_refresh_token.access_token}"


def test_a_wrong_client_secret_fails_with_the_instances_reason(oauth: ServiceNowCase) -> None:
    oauth.add(1, T0)
    with pytest.raises(SourceError) as raised:
        pull(oauth, None, client_secret="not-the-secret")
    assert "oauth_token.do refused the password grant: 401 server_error: access_denied" in str(
        raised.value
    )
    assert oauth.fake.gets(TABLE) == []  # nothing was asked without a token


def test_a_token_endpoint_failing_for_a_moment_is_retried(oauth: ServiceNowCase) -> None:
    oauth.add(1, T0)
    busy = Reply(503, raw=b"<html>Instance is starting</html>", content_type="text/html")
    oauth.fake.fail_next(busy, when=lambda request: request.path == "/oauth_token.do")

    assert ids(pull(oauth, None, rate_limit_floor="10ms")) == [sys_id_of(1)]
    assert oauth.fake.grants() == ["password", "password"]


def test_the_tokens_obtained_are_secrets_to_the_log_redaction(oauth: ServiceNowCase) -> None:
    oauth.add(1, T0)

    pull(oauth, None)

    [token] = oauth.fake.issued
    assert token.refresh_token is not None
    echoed = f"the instance said: {token.access_token} / {token.refresh_token}"
    assert redact(echoed) == "the instance said: *** / ***"


def load(options: dict[str, Any]) -> Any:
    return build_config(
        {
            "fragment": {"url": "http://127.0.0.1:9", "token": TOKEN},
            "connectors": {"snow": {"kind": "servicenow", **options}},
        },
        source="test",
    )


def mapper(case: ServiceNowCase) -> Mapper:
    config = load(case.options())
    return Mapper("snow", "snow", config.connectors["snow"].settings.mapping)


def test_a_census_asks_for_sys_ids_only_anchored_on_the_last_one_read(
    case: ServiceNowCase, emulator: Emulator, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors import servicenow

    monkeypatch.setattr(servicenow, "CENSUS_PAGE", 4)
    suite = TestServiceNow()
    for n in range(1, 11):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert suite.sync(case, emulator, sqlite_url).ok
    case.delete(6, T0 + dt.timedelta(hours=1))
    before = len(case.fake.gets(TABLE))

    summary = suite.census(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    assert (summary.at_source, summary.gone, summary.archived) == (9, 1, 1)
    assert tasks_by_ticket(emulator)[sys_id_of(6)]["archived"] is True
    requests = case.fake.gets(TABLE)[before:]
    assert {r.param("sysparm_fields") for r in requests} == {"sys_id"}
    assert {r.param("sysparm_offset") for r in requests} == {None}
    ids = sorted(sys_id_of(n) for n in range(1, 11) if n != 6)
    assert [r.param("sysparm_query") for r in requests] == [
        "ORDERBYsys_id",
        f"sys_id>{ids[3]}^ORDERBYsys_id",
        f"sys_id>{ids[7]}^ORDERBYsys_id",
    ]


def test_the_source_status_field_keeps_the_raw_state_beside_the_mapped_status(
    case: ServiceNowCase, emulator: Emulator, sqlite_url: str
) -> None:
    """The connector reads raw values: the state's code, not its label, is what it has."""
    case.fake.add(1, T0, state="3")
    case.fake.add(2, T0 + dt.timedelta(minutes=1), state="7")
    assert TestServiceNow().sync(case, emulator, sqlite_url).ok
    tasks = tasks_by_ticket(emulator)
    shown = {
        n: (t["fields"]["source_status"], t["status"], t["external_status"])
        for n, t in ((n, tasks[case.ticket_key(n)]) for n in (1, 2))
    }
    assert shown == {1: ("3", "STARTED", "STARTED"), 2: ("7", "DONE", "DONE")}


# People: assigned_to sys_ids to emails

USERS = "/api/now/table/sys_user"
HIDDEN = "no email on the ServiceNow user, or an ACL hides it"


def test_with_fields_listing_assigned_to_the_email_comes_dot_walked_at_no_extra_request(
    case: ServiceNowCase,
) -> None:
    ana = case.fake.add_user("ana.ops", "Ana Ops", "ana@acme.example")
    case.fake.add(1, T0, assigned_to=ana)
    case.fake.add(2, T0 + dt.timedelta(seconds=1))  # unassigned
    options = {**case.options(), "fields": ["number", "short_description", "state", "assigned_to"]}

    assigned, unassigned = tickets(pull(case, None, fields=options["fields"]))
    mapping = Mapper("snow", "snow", load(options).connectors["snow"].settings.mapping)
    tasks = [mapping.map(t).task() for t in (assigned, unassigned)]

    first = case.fake.gets(TABLE)[0]  # then an empty page ends the keyset
    assert first.param("sysparm_fields") == (
        "number,short_description,state,assigned_to,sys_id,sys_updated_on,assigned_to.email"
    )
    assert assigned.record["assigned_to"] == ana
    assert tasks[0]["assignee_email"] == "ana@acme.example"
    assert tasks[1].get("assignee_email") is None
    assert case.fake.gets(USERS) == []


def test_people_resolve_sys_ids_100_a_request_not_once_per_ticket(case: ServiceNowCase) -> None:
    users = [
        case.fake.add_user(f"agent.{n}", f"Agent {n}", f"agent{n}@acme.example") for n in range(150)
    ]
    for n in range(1, 4):
        case.fake.add(n, T0 + dt.timedelta(seconds=n), assigned_to=users[n])
    source = connector(case)

    assigned = [
        get_path(t.record, source.default_mapping["assignee"]) for t in tickets(pull(case, None))
    ]
    people = {p.user_id: p for p in source.people([*assigned, *users, *users])}
    source.close()

    assert assigned == users[1:4]  # the raw sys_id: the connector reads raw values
    assert len(people) == 150
    assert people[users[7]] == Person(users[7], "agent7@acme.example", "Agent 7")
    requests = case.fake.gets(USERS)
    queried = [
        (r.param("sysparm_query") or "").removeprefix("sys_idIN").split(",") for r in requests
    ]
    assert [len(q) for q in queried] == [100, 50]
    assert {r.param("sysparm_fields") for r in requests} == {"sys_id,name,email"}


def test_a_hidden_email_and_an_unknown_sys_id_resolve_without_email_saying_why(
    case: ServiceNowCase,
) -> None:
    ana = case.fake.add_user("ana.ops", "Ana Ops", "ana@acme.example")
    ben = case.fake.add_user("ben.private", "Ben Private", "ben@acme.example", hidden=True)
    gone = "0123456789abcdef0123456789abcdef"
    source = connector(case)

    people = {p.user_id: p for p in source.people([ana, ben, gone, "x^ORactive=true"])}
    source.close()

    assert people == {
        ana: Person(ana, "ana@acme.example", "Ana Ops"),
        ben: Person(ben, None, "Ben Private", reason=HIDDEN),
        gone: Person(gone, None, reason="no such user"),
        "x^ORactive=true": Person("x^ORactive=true", None, reason="not a sys_id"),
    }
    [request] = case.fake.gets(USERS)
    assert request.param("sysparm_query") == f"sys_idIN{ana},{ben},{gone}"


def test_a_rate_limited_user_lookup_is_waited_out_and_asked_again(case: ServiceNowCase) -> None:
    ana = case.fake.add_user("ana.ops", "Ana Ops", "ana@acme.example")
    case.fake.fail_next(case.fake.rate_limited(1), when=lambda r: r.path == USERS)
    source = connector(case)

    people = list(source.people([ana]))
    source.close()

    assert people == [Person(ana, "ana@acme.example", "Ana Ops")]
    assert len(case.fake.gets(USERS)) == 2


def test_people_from_an_unreachable_instance_raise_a_source_error(case: ServiceNowCase) -> None:
    source = connector(case, base_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    with pytest.raises(SourceError, match="connector 'snow'"):
        list(source.people(["0123456789abcdef0123456789abcdef"]))
    source.close()
