"""The Salesforce connector against a fake of the REST API's SOQL resources, plus Salesforce's
own traps: OAuth sessions without `expires_in`, an `instance_url` naming another origin,
403s that are limits, the recycle bin, and Cases owned by queues."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from connectors.base import BadRecord, SourceTicket
from connectors.errors import SourceError
from connectors.salesforce import NO_EMAIL, QUEUE_OWNER, SalesforceConnector, SalesforceOptions
from fakes import HTML_ERROR, Reply, Request
from fakes.salesforce import (
    CONCURRENT,
    INVALID_SESSION,
    TOTAL_REQUESTS,
    FakeSalesforce,
    case_id,
    error,
)
from fakes.suite import T0, ConnectorSuite, VendorCase, nth_page_request
from fragment_emulator import Emulator
from sync.config import build_config
from sync.errors import ConfigError
from sync.mapping import Mapper
from sync.run import RunSummary
from sync.shell.logs import redact
from sync.state import StateStore
from sync_http.auth import OAuth2
from synckit import TOKEN, tasks_by_ticket

CLIENT_ID = "3MVG9fakeConsumerKey.Q1w2e3r4"
CLIENT_SECRET = "sf-consumer-secret-8A4BE698"
REFRESH_TOKEN = "5Aep861fakeRefreshToken"
VERSION = "62.0"
QUERY_ALL = f"/services/data/v{VERSION}/queryAll"
QUERY = f"/services/data/v{VERSION}/query"


class SalesforceCase(VendorCase):
    kind = "salesforce"
    fake: FakeSalesforce
    shows_deletions = True  # queryAll returns the recycle bin's Cases, IsDeleted = true

    def __init__(self, fake: FakeSalesforce) -> None:
        super().__init__(fake)
        self.extra: dict[str, Any] = {}
        # Salesforce may answer fewer records a batch than asked; 5 makes the suite's pages.
        fake.batch_cap = self.page_size

    def options(self) -> dict[str, Any]:
        options = {
            "base_url": self.fake.base_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "page_size": 200,
            **self.extra,
        }
        return {k: v for k, v in options.items() if v is not None}

    def ticket_key(self, number: int) -> str:
        return case_id(number)

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        self.fake.put(number, updated, Subject=f"Printer {number} jammed v{version}")

    def remove(self, number: int, at: dt.datetime) -> None:
        self.fake.delete(number, at)

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        # Salesforce always sets SystemModstamp; a record without one must still be named.
        self.fake.put(number, updated)
        self.fake.cases[case_id(number)]["SystemModstamp"] = None
        return "SystemModstamp"

    def rate_limit(self, wait: int) -> Reply:
        # Salesforce's 403 names no wait: the connector waits its floor, here `wait` seconds.
        self.extra["rate_limit_floor"] = f"{wait}s"
        return self.fake.limit_exceeded(CONCURRENT)

    def title(self, number: int, version: int) -> str:
        return f"{number:08d} Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path == QUERY_ALL or request.path.startswith(f"{QUERY}/01g")

    def live(self) -> dict[str, str]:
        return {case_id(int(n)): title for n, title in super().live().items()}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeSalesforce]:
    fake = FakeSalesforce(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def case(server: FakeSalesforce) -> SalesforceCase:
    server.reset()
    return SalesforceCase(server)


class TestSalesforce(ConnectorSuite):
    def assert_exact(self, case: VendorCase, emulator: Emulator) -> None:
        # The suite's, with tasks keyed by the Case Id rather than the suite's number.
        landed = tasks_by_ticket(emulator)
        archived = {k for k, t in landed.items() if t["archived"]}
        present = {k: t["fields"]["title"] for k, t in landed.items() if k not in archived}
        assert present == case.live()
        assert archived == {case_id(n) for n in case.deleted}

    def test_a_census_archives_the_tasks_of_deleted_tickets_or_says_it_takes_none(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        """The suite's, but the pass after the census sends the two Cases once more: it reads
        them from the recycle bin (queryAll) as tombstones with their content, which the
        census's bare tombstones (`{"uid", "archived"}`) don't equal. They stay archived, and
        the pass after that has nothing to send."""
        for n in range(1, 26):
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        case.delete(3, T0 + dt.timedelta(hours=1))
        case.delete(17, T0 + dt.timedelta(hours=1))

        summary = self.census(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        assert (summary.at_source, summary.tracked, summary.gone) == (23, 25, 2)
        landed = tasks_by_ticket(emulator)
        assert {n: landed[case_id(n)]["archived"] for n in range(1, 26)} == {
            n: n in (3, 17) for n in range(1, 26)
        }
        again = self.sync(case, emulator, sqlite_url)
        assert (again.ok, again.pushed) == (True, 2)
        self.assert_exact(case, emulator)
        last = self.sync(case, emulator, sqlite_url)
        assert (last.ok, last.pushed) == (True, 0)

    def test_refused_credentials_fail_the_run_with_a_clear_message(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        """The suite's, with Salesforce's refusal on the API (the token endpoint answers): a
        session refused the moment it was obtained is not renewed (the user lacks access, a
        new one would not change that), and the run fails naming it."""
        case.add(1, T0)
        case.fake.fail_next(Reply(401, INVALID_SESSION), times=10, when=is_data)
        summary = self.sync(case, emulator, sqlite_url)
        assert not summary.ok
        assert "the source refused the credentials (the session is invalid)" in (
            summary.error or ""
        )
        assert "answered 401" in (summary.error or "")
        assert case.fake.grants() == ["client_credentials"]

    def test_an_html_error_page_fails_the_run_with_a_clear_message(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        """The suite's, with the page answered by the API rather than the token endpoint (whose
        own refusal of a page that is no JSON object is `sync_http.auth`'s, tested there)."""
        case.add(1, T0)
        page = Reply(200, raw=HTML_ERROR.raw, content_type="text/html")
        case.fake.fail_next(page, times=10, when=is_data)
        summary = self.sync(case, emulator, sqlite_url)
        assert not summary.ok
        assert "not JSON" in (summary.error or "")
        assert "Traceback" not in (summary.error or "")


def is_data(request: Request) -> bool:
    """Whether `request` goes to the REST API (not to the token endpoint)."""
    return request.path.startswith("/services/data/")


def connector(case: SalesforceCase, **overrides: Any) -> SalesforceConnector:
    options = {"rate_limit_floor": "100ms", "max_retry_wait": "10s", **case.options()}
    merged = {k: v for k, v in {**options, **overrides}.items() if v is not None}
    return SalesforceConnector("sf", SalesforceOptions.model_validate(merged))


def pull(
    case: SalesforceCase, since: dt.datetime | None, **overrides: Any
) -> list[SourceTicket | BadRecord]:
    with closing(connector(case, **overrides)) as source:
        return list(source.pull(since))


def tickets(items: list[SourceTicket | BadRecord]) -> list[SourceTicket]:
    assert all(isinstance(item, SourceTicket) for item in items)
    return [item for item in items if isinstance(item, SourceTicket)]


def ids(items: list[SourceTicket | BadRecord]) -> list[str | None]:
    return [item.source_id for item in items]


def sync(case: SalesforceCase, emulator: Emulator, state_url: str) -> RunSummary:
    return ConnectorSuite().sync(case, emulator, state_url)


def load(options: dict[str, Any]) -> Any:
    return build_config(
        {
            "fragment": {"url": "http://127.0.0.1:9", "token": TOKEN},
            "connectors": {"sf": {"kind": "salesforce", **options}},
        },
        source="test",
    )


def mapper(case: SalesforceCase) -> Mapper:
    return Mapper("sf", "sf", load(case.options()).connectors["sf"].settings.mapping)


# The query


def test_the_soql_sent_is_queryall_from_the_watermarks_second_in_cursor_order(
    case: SalesforceCase,
) -> None:
    for n in range(1, 8):
        case.add(n, T0 + dt.timedelta(minutes=n))

    items = pull(case, T0 + dt.timedelta(minutes=1, microseconds=700), where="Origin = 'Email'")

    assert ids(items) == [case_id(n) for n in range(2, 8)]  # 1 is read, then dropped
    first, second = case.fake.data_requests()
    assert first.path == QUERY_ALL
    soql = first.param("q") or ""
    assert soql.startswith("SELECT Id, CaseNumber, Subject,")
    assert "Owner.Type, Owner.Name, Owner.Email" in soql
    assert soql.endswith(
        " FROM Case WHERE (SystemModstamp >= 2026-11-02T09:01:00Z) AND (Origin = 'Email') "
        "ORDER BY SystemModstamp, Id"
    )  # an unquoted literal, whole seconds, floored: the bound stays inclusive
    assert first.headers["sforce-query-options"] == "batchSize=200"
    # The next batch is the nextRecordsUrl, as is: no parameters of its own.
    assert second.path.startswith(f"{QUERY}/01g") and second.path.endswith("-5")
    assert second.query == {}


def test_salesforce_timestamps_with_a_numeric_offset_are_read_as_utc(case: SalesforceCase) -> None:
    case.fake.put(1, T0)

    [ticket] = tickets(pull(case, None))

    assert ticket.record["SystemModstamp"] == "2026-11-02T09:00:00.000+0000"
    assert ticket.cursor == T0
    task = mapper(case).map(ticket).task()
    assert task["external_updated_at"] == "2026-11-02T09:00:00Z"


def test_a_quoted_date_time_literal_is_refused_as_salesforce_refuses_it(
    case: SalesforceCase,
) -> None:
    """The trap the connector avoids: SOQL compares a date-time field with an unquoted
    literal only; quoted, it is a string, and the query fails."""
    case.add(1, T0)
    token = case.fake.issue_session()
    quoted = "SELECT Id FROM Case WHERE SystemModstamp >= '2026-11-02T09:00:00Z'"

    answer = httpx.get(
        case.fake.base_url + QUERY,
        params={"q": quoted},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert answer.status_code == 400
    [refusal] = answer.json()
    assert refusal["errorCode"] == "INVALID_FIELD"
    assert "should not be enclosed in quotes" in refusal["message"]


def test_a_tie_group_larger_than_several_batches_is_read_completely_once(
    case: SalesforceCase,
) -> None:
    tie = T0 + dt.timedelta(minutes=30)  # one bulk update, one second
    for n in range(1, 24):
        case.add(n, tie)
    case.add(50, tie + dt.timedelta(seconds=1))

    items = pull(case, tie)

    counts = Counter(ids(items))
    assert set(counts) == {case_id(n) for n in [*range(1, 24), 50]}
    assert set(counts.values()) == {1}
    assert ids(items)[:-1] == sorted(case_id(n) for n in range(1, 24))  # ties by Id
    assert len(case.fake.data_requests()) == 5  # one query, four more batches of its locator


def test_a_system_change_moves_the_cursor_where_last_modified_stays(case: SalesforceCase) -> None:
    case.add(1, T0)
    case.fake.stamp_only(1, T0 + dt.timedelta(hours=1))  # a sharing recalculation

    [ticket] = tickets(pull(case, T0 + dt.timedelta(minutes=30)))

    assert ticket.cursor == T0 + dt.timedelta(hours=1)
    assert ticket.record["LastModifiedDate"] == "2026-11-02T09:00:00.000+0000"


# Deletions: the recycle bin, merges, and what the census finds once it is emptied


def test_deleted_and_merged_cases_come_back_as_tombstones(case: SalesforceCase) -> None:
    for n in range(1, 5):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.delete(2, T0 + dt.timedelta(hours=1))
    case.fake.delete(3, T0 + dt.timedelta(hours=2), merged_into=4)

    items = tickets(pull(case, T0 + dt.timedelta(minutes=30)))

    assert [(t.source_id, t.deleted) for t in items] == [(case_id(2), True), (case_id(3), True)]
    assert items[1].record["MasterRecordId"] == case_id(4)


def test_a_case_purged_from_the_recycle_bin_is_archived_by_the_census_only(
    case: SalesforceCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 13):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert sync(case, emulator, sqlite_url).ok
    case.fake.delete(2, T0 + dt.timedelta(hours=1))
    case.fake.purge(2)  # emptied before a pass saw it in the bin

    missed = sync(case, emulator, sqlite_url)
    assert (missed.ok, missed.pushed) == (True, 0)
    assert tasks_by_ticket(emulator)[case_id(2)]["archived"] is False

    census = ConnectorSuite().census(case, emulator, sqlite_url)

    assert census.ok, census.error
    assert (census.at_source, census.gone) == (11, 1)
    assert tasks_by_ticket(emulator)[case_id(2)]["archived"] is True
    [listing] = [r for r in case.fake.data_requests() if r.path == QUERY]
    assert listing.param("q") == "SELECT Id FROM Case ORDER BY Id"  # query, not queryAll


# Auth: OAuth sessions without expires_in, and an instance_url pointing elsewhere


def test_an_expired_session_is_renewed_once_and_the_pass_completes(
    case: SalesforceCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 16):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.when(nth_page_request(case, 2), case.fake.expire_sessions)

    summary = sync(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    TestSalesforce().assert_exact(case, emulator)
    assert case.fake.grants() == ["client_credentials", "client_credentials"]
    batches = [r for r in case.fake.data_requests() if r.path.startswith(f"{QUERY}/01g")]
    refused, again = batches[0], batches[1]
    assert refused.path == again.path  # the same batch, sent again with the new token
    assert refused.headers["authorization"] != again.headers["authorization"]


def test_a_refresh_token_is_used_when_configured(case: SalesforceCase) -> None:
    case.add(1, T0)

    items = pull(case, None, refresh_token=REFRESH_TOKEN)

    assert ids(items) == [case_id(1)]
    assert case.fake.grants() == ["refresh_token"]
    [token_request] = [r for r in case.fake.requests if r.path == "/services/oauth2/token"]
    form = {k: v[-1] for k, v in parse_qs(token_request.body.decode()).items()}
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }  # the client's credentials in the form, as Salesforce's examples send them


def test_a_refused_grant_fails_with_salesforces_reason_and_no_secret(case: SalesforceCase) -> None:
    case.add(1, T0)

    with pytest.raises(SourceError) as raised:
        pull(case, None, client_secret="rotated-by-an-admin")

    message = str(raised.value)
    assert "/services/oauth2/token refused the client_credentials grant: 400" in message
    assert "invalid_client" in message
    assert "rotated-by-an-admin" not in message
    assert case.fake.data_requests() == []  # nothing asked without a token


def test_the_token_goes_to_the_configured_instance_only_whatever_instance_url_says(
    case: SalesforceCase,
) -> None:
    elsewhere = FakeSalesforce(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN).start()
    try:
        case.fake.announced_instance = elsewhere.base_url
        for n in range(1, 8):
            case.add(n, T0 + dt.timedelta(minutes=n))

        items = pull(case, None)

        assert ids(items) == [case_id(n) for n in range(1, 8)]
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_a_next_records_url_on_another_origin_is_refused_unsent(case: SalesforceCase) -> None:
    elsewhere = FakeSalesforce(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN).start()
    try:
        for n in range(1, 8):
            case.add(n, T0 + dt.timedelta(minutes=n))
        hijacked = {
            "totalSize": 7,
            "done": False,
            "records": [],
            "nextRecordsUrl": f"{elsewhere.base_url}/services/data/v{VERSION}/query/01gX-5",
        }
        case.fake.fail_next(Reply(200, hijacked), when=lambda r: r.path == QUERY_ALL)

        with pytest.raises(SourceError) as raised:
            pull(case, None)

        assert "refused to send credentials to another origin" in str(raised.value)
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_the_tokens_obtained_are_secrets_to_the_log_redaction(case: SalesforceCase) -> None:
    case.add(1, T0)

    pull(case, None)

    [session] = case.fake.sessions
    assert redact(f"Salesforce said: {session.token}") == "Salesforce said: ***"


# Limits: the org's 24-hour allocation, shared; concurrent long requests


def test_a_spent_daily_allocation_fails_the_pass_at_once_keeping_the_watermark(
    case: SalesforceCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 16):
        case.add(n, T0 + dt.timedelta(minutes=n))

    def other_integrations_spend_the_rest() -> None:
        case.fake.used = case.fake.daily_limit

    # The first query and one batch go through, then the org's allocation is gone.
    case.fake.when(nth_page_request(case, 3), other_integrations_spend_the_rest)

    summary = sync(case, emulator, sqlite_url)

    assert not summary.ok
    assert "24-hour API request allocation is used up" in (summary.error or "")
    assert TOTAL_REQUESTS in (summary.error or "")
    assert len(case.fake.data_requests()) == 3  # not retried: waiting minutes can't help
    with StateStore.open(sqlite_url) as store:
        watermark = store.watermark("source")
    assert watermark == T0 + dt.timedelta(minutes=10)  # the two batches read were pushed

    case.fake.used = 0  # older requests aged out of the window
    again = sync(case, emulator, sqlite_url)
    assert again.ok, again.error
    TestSalesforce().assert_exact(case, emulator)


def test_a_pass_stops_before_taking_the_orgs_last_requests(case: SalesforceCase) -> None:
    for n in range(1, 16):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.daily_limit = 20
    case.fake.used = 16  # other integrations' requests

    with pytest.raises(SourceError) as raised:
        pull(case, None, max_api_usage=0.9)

    assert "has used 18 of its 20 API requests" in str(raised.value)
    assert len(case.fake.data_requests()) == 2  # 17 and 18 sent, then the pass stopped


def test_too_many_concurrent_requests_are_waited_out(case: SalesforceCase) -> None:
    for n in range(1, 8):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.fail_next(case.fake.limit_exceeded(CONCURRENT), times=2, when=is_data)

    items = pull(case, None)

    assert ids(items) == [case_id(n) for n in range(1, 8)]
    assert [r.path for r in case.fake.data_requests()][:3] == [QUERY_ALL] * 3


def test_a_field_the_org_lacks_fails_naming_salesforces_complaint(case: SalesforceCase) -> None:
    case.add(1, T0)

    with pytest.raises(SourceError) as raised:
        pull(case, None, fields=["Product__c"])

    message = str(raised.value)
    assert "Salesforce refused a field (check `fields` and `where`)" in message
    assert "No such column 'Product__c' on entity 'Case'" in message
    assert len(case.fake.data_requests()) == 1  # not retried


# Mapping and people


def test_the_default_mapping_reads_is_closed_first_then_the_status_label(
    case: SalesforceCase,
) -> None:
    case.fake.put(1, T0)  # New
    case.fake.put(2, T0 + dt.timedelta(seconds=1), Status="Waiting on Customer")
    case.fake.put(3, T0 + dt.timedelta(seconds=2), Status="Closed")
    case.fake.put(4, T0 + dt.timedelta(seconds=3))
    case.fake.cases[case_id(4)].update(Status="Resolved", IsClosed=True)  # a custom closed one

    tasks = [mapper(case).map(t).task() for t in tickets(pull(case, None))]

    assert [t["status"] for t in tasks] == ["TODO", "STARTED", "DONE", "DONE"]
    assert [t["fields"]["source_status"] for t in tasks] == [
        "New",
        "Waiting on Customer",
        "Closed",
        "Resolved",
    ]
    assert tasks[0]["fields"]["url"] == (f"{case.fake.base_url}/lightning/r/Case/{case_id(1)}/view")
    assert tasks[0]["fields"]["title"] == "00000001 Case 1"


def test_a_user_owner_gives_the_email_and_a_queue_owner_says_why_it_has_none(
    case: SalesforceCase,
) -> None:
    agent = case.fake.add_user("Ada Agent", "ada@example.com")
    queue = case.fake.add_queue("Tier 1", email="tier1@example.com")
    case.fake.put(1, T0, OwnerId=agent)
    case.fake.put(2, T0 + dt.timedelta(seconds=1), OwnerId=queue)

    with closing(connector(case)) as source:
        owned_by_agent, owned_by_queue = tickets(list(source.pull(None)))
        people = {p.user_id: p for p in source.people([agent, queue])}
    requests = len(case.fake.data_requests())

    task = mapper(case).map(owned_by_agent).task()
    assert task["assignee_email"] == "ada@example.com"
    assert task["fields"]["owner"] == "Ada Agent"
    queued = mapper(case).map(owned_by_queue).task()
    assert queued["assignee_email"] is None  # the queue's shared mailbox is no assignee
    assert queued["fields"]["owner"] == "Tier 1"
    assert people[agent].email == "ada@example.com"
    assert (people[queue].email, people[queue].reason) == (None, QUEUE_OWNER)
    assert requests == 1  # the owners came with the Cases


def test_owners_not_seen_in_a_pass_are_read_from_user_in_one_query(case: SalesforceCase) -> None:
    ada = case.fake.add_user("Ada Agent", "ada@example.com")
    bob = case.fake.add_user("Bob Builder", None)
    queue = case.fake.add_queue("Tier 2")
    unknown = "005000000000000AAA"

    with closing(connector(case)) as source:
        people = {p.user_id: p for p in source.people([ada, bob, queue, unknown, "not-an-id"])}

    assert people[ada].email == "ada@example.com"
    assert (people[bob].email, people[bob].reason) == (None, NO_EMAIL)
    assert people[queue].reason == QUEUE_OWNER
    assert people[unknown].reason == "no such user"
    assert people["not-an-id"].reason == "not a Salesforce User Id (005...)"
    [lookup] = case.fake.data_requests()
    assert lookup.param("q") == (
        f"SELECT Id, Name, Email FROM User WHERE Id IN ('{ada}', '{bob}', '{unknown}')"  # noqa: S608
    )


# Configuration


@pytest.mark.parametrize(
    ("options", "key", "complaint"),
    [
        ({"where": "Origin = 'Web' ORDER BY CreatedDate"}, "where", "without ORDER BY"),
        ({"where": "Origin = 'Web' LIMIT 5"}, "where", "without LIMIT"),
        ({"where": "(Origin = 'Web'"}, "where", "unbalanced"),
        ({"fields": ["Product__c; DROP"]}, "fields", "not a SOQL field name"),
        ({"api_version": "62"}, "api_version", "pattern"),
        ({"page_size": 100}, "page_size", "greater than or equal to 200"),
    ],
)
def test_bad_options_are_refused_at_config_load_naming_the_key(
    options: dict[str, Any], key: str, complaint: str
) -> None:
    base = {"my_domain": "acme", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    with pytest.raises(ConfigError) as raised:
        load({**base, **options})
    assert raised.value.key == f"connectors.sf.{key}"
    assert complaint in str(raised.value)


def test_a_my_domain_becomes_the_instance_url_and_the_token_endpoint() -> None:
    config = load({"my_domain": "acme", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    options = config.connectors["sf"].options
    assert isinstance(options, SalesforceOptions)
    assert options.base_url == "https://acme.my.salesforce.com"
    assert options.api_version == "62.0"
    auth = SalesforceConnector("sf", options).auth()
    assert isinstance(auth, OAuth2)
    assert auth.token_url == "https://acme.my.salesforce.com/services/oauth2/token"


def test_check_reads_one_case_within_the_scope(case: SalesforceCase) -> None:
    case.add(1, T0)

    with closing(connector(case, where="Origin = 'Email'")) as source:
        source.check()

    [request] = case.fake.data_requests()
    assert request.path == QUERY
    assert request.param("q") == "SELECT Id FROM Case WHERE (Origin = 'Email') LIMIT 1"


def test_an_unknown_error_array_is_quoted(case: SalesforceCase) -> None:
    case.add(1, T0)
    case.fake.fail_next(error(400, "QUERY_TIMEOUT", "Your query request was running too long"))

    with pytest.raises(SourceError) as raised:
        pull(case, None)

    assert "QUERY_TIMEOUT" in str(raised.value)


# Conversation: CaseComments, one query per 100 Cases


def test_case_comments_are_read_only_when_asked_published_ones_public(
    case: SalesforceCase,
) -> None:
    agent = case.fake.add_user("Ada Agent", "ada@example.com")
    case.add(1, T0)
    case.add(2, T0 + dt.timedelta(minutes=1))
    case.fake.comment(1, T0 + dt.timedelta(minutes=5), "Replaced the toner.", by=agent)
    case.fake.comment(1, T0 + dt.timedelta(minutes=3), "Asked for the model.", public=False)

    plain = pull(case, None)
    assert [t.comments for t in tickets(plain)] == [None, None]
    assert case.fake.comment_queries() == []

    with closing(connector(case)) as source:
        source.read_comments = True
        second, first = tickets(list(source.pull(None)))  # case 1 moved with its comments

    assert second.comments == []
    comments = first.comments or []
    assert [(c.body, c.public, c.author) for c in comments] == [
        ("Asked for the model.", False, None),
        ("Replaced the toner.", True, "Ada Agent"),
    ]
    assert comments[1].author_id == agent
    assert comments[1].created_at == T0 + dt.timedelta(minutes=5)


def test_comments_cost_one_query_per_100_cases_whatever_their_number(
    case: SalesforceCase,
) -> None:
    for n in range(1, 121):
        case.add(n, T0 + dt.timedelta(seconds=n))
    for k in range(7):  # case 1's comments span two batches of the comment query's locator
        case.fake.comment(1, T0 + dt.timedelta(hours=1, seconds=k), f"note {k}", touch=False)
    case.fake.comment(120, T0 + dt.timedelta(hours=1), "last one", touch=False)

    with closing(connector(case)) as source:
        source.read_comments = True
        read = {t.source_id: t.comments for t in tickets(list(source.pull(None)))}

    assert [c.body for c in read[case_id(1)] or []] == [f"note {k}" for k in range(7)]
    assert [c.body for c in read[case_id(120)] or []] == ["last one"]
    assert sum(len(c or []) for c in read.values()) == 8
    queries = case.fake.comment_queries()
    assert len(queries) == 2  # 100 Cases, then 20
    assert (queries[0].param("q") or "").count("'500") == 100
    assert (queries[0].param("q") or "").endswith(") ORDER BY CreatedDate, Id")


def test_a_deleted_case_asks_for_no_comments(case: SalesforceCase) -> None:
    case.add(1, T0)
    case.fake.delete(1, T0 + dt.timedelta(minutes=1))

    with closing(connector(case)) as source:
        source.read_comments = True
        [tombstone] = tickets(list(source.pull(None)))

    assert (tombstone.deleted, tombstone.comments) == (True, None)
    assert case.fake.comment_queries() == []


def test_a_comment_without_a_time_fails_its_case_only(case: SalesforceCase) -> None:
    case.add(1, T0)
    case.add(2, T0 + dt.timedelta(minutes=1))
    broken = case.fake.comment(1, T0 + dt.timedelta(minutes=2), touch=False)
    broken["CreatedDate"] = None

    with closing(connector(case)) as source:
        source.read_comments = True
        bad, good = list(source.pull(None))

    assert isinstance(bad, BadRecord) and bad.source_id == case_id(1)
    assert bad.field == "comments.0.CreatedDate"
    assert isinstance(good, SourceTicket) and good.comments == []


def test_comments_land_as_the_tasks_summary_through_the_engine(
    case: SalesforceCase, emulator: Emulator, sqlite_url: str
) -> None:
    agent = case.fake.add_user("Ada Agent", "ada@example.com")
    case.add(1, T0)
    case.fake.comment(1, T0 + dt.timedelta(minutes=1), "Replaced the toner.", by=agent)
    case.extra["conversation"] = {"enabled": True}

    summary = sync(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    fields = tasks_by_ticket(emulator)[case_id(1)]["fields"]
    assert fields["comment_count"] == 1
    assert fields["last_comment"] == "Replaced the toner."
    assert fields["last_comment_author"] == "Ada Agent"
