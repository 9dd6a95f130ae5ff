"""Credentials go only to the origin they were configured for (issue 16, item 1).

A source's pagination link or redirect may point anywhere. Each test points
one at a listener on another port (another origin) that records every
request it gets, and checks two things a user relies on: no credential ever
reaches the listener, and the pass fails with an error naming both origins.
Every paginator is covered: the `rest` connector's five (a next link where
the paginator follows URLs, a redirect mid-scan for all), and the vendor
connectors whose APIs hand out next links (Zendesk, Freshdesk, GitHub, GitLab,
ServiceNow). The Fragment client gets the same protection.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from fakes import FakeApi, Reply, Request
from fakes.backoffice import PATH, FakeBackOffice, PagingStyle
from fakes.freshdesk import FakeFreshdesk
from fakes.github import FakeGitHub
from fakes.gitlab import FakeGitLab
from fakes.salesforce import FakeSalesforce
from fakes.servicenow import FakeServiceNow
from fakes.zendesk import FakeZendesk
from fragment_emulator import Emulator
from sync.config import FragmentSettings, build_config
from sync.errors import FragmentUnavailable
from sync.fragment import FragmentClient
from sync.mapping import TaskPayload
from sync.run import RunOptions, RunSummary, run_once
from sync.state import StateStore
from sync_http.policy import source_classifier
from sync_http.ratelimit import RequestBudget
from sync_http.session import HttpSession, RequestFailed, RetrySettings
from synckit import TOKEN

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
API_KEY = "bo-key-5ecret-93f1c2"
EMAIL, ZENDESK_TOKEN = "ops@acme.example", "zd-5ecret-token-8a7f"
FRESHDESK_KEY = "fd-5ecret-key-41bd"
GITHUB_TOKEN = "github_pat_5ecret0123456789"
GITLAB_TOKEN = "glpat-5ecret0123456789ab"
SN_USER, SN_PASSWORD, SN_TOKEN = "sync.bot", "sn-5ecret-pass-77", "sn-5ecret-token-78"
SF_CLIENT_ID, SF_CLIENT_SECRET = "3MVG9-sync", "sf-5ecret-client-c0ffee"
SECRETS = (
    API_KEY,
    ZENDESK_TOKEN,
    FRESHDESK_KEY,
    GITHUB_TOKEN,
    GITLAB_TOKEN,
    SN_PASSWORD,
    SN_TOKEN,
    SF_CLIENT_SECRET,
    TOKEN,
)


class Listener(FakeApi):
    """Another origin: answers 200 to anything and keeps every request it got."""

    def route(self, request: Request) -> Reply:
        return Reply(200, {"items": [], "tickets": [], "result": [], "end_of_stream": True})

    @property
    def url(self) -> str:
        return f"{self.base_url}/steal"

    def credentials(self) -> list[str]:
        """Every credential-bearing header that arrived, or a header holding a known secret."""
        found = []
        for request in self.requests:
            for name, value in request.headers.items():
                if name in ("authorization", "x-api-key", "cookie") or any(
                    secret in value for secret in SECRETS
                ):
                    found.append(f"{name}: {value}")
        return found


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as server:
        yield server


def assert_refused(summary: RunSummary, source: str, listener: Listener) -> None:
    """No credential reached the listener, and the pass failed naming both origins."""
    assert listener.credentials() == []
    assert listener.requests == []  # not even without credentials: the pass stops there
    assert not summary.ok
    error = summary.error or ""
    assert source in error, error  # the configured origin
    assert listener.base_url in error, error  # and the one the link or redirect pointed at


def sync(raw_connector: dict[str, Any], emulator: Emulator, state_url: str) -> RunSummary:
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
        "state": {"url": state_url},
        "connectors": {
            "source": {
                "max_attempts": 2,
                "rate_limit_floor": "100ms",
                "requests_per_minute": 100_000,
                **raw_connector,
            }
        },
    }
    store = StateStore.open(state_url)
    try:
        [summary] = run_once(build_config(raw, source="test"), store, options=RunOptions())
    finally:
        store.close()
    return summary


def on_page(fake: FakeApi, is_page: Callable[[Request], bool], number: int, reply: Reply) -> None:
    """Answer the `number`th page request (1-based) with `reply`."""
    seen = [0]

    def matches(request: Request) -> bool:
        if is_page(request):
            seen[0] += 1
        return seen[0] == number

    fake.fail_next(reply, when=matches)


def rewrite_pages(
    fake: FakeApi, is_page: Callable[[Request], bool], change: Callable[[Reply], None]
) -> None:
    """Let the fake answer its first pages, then `change` each answer (point its link elsewhere).

    Three, not one: connectors that re-anchor on the cursor (Freshdesk, GitHub)
    issue the query again before they follow a link.
    """
    left = [3]

    def fault(request: Request) -> Reply | None:
        if left[0] == 0 or not is_page(request):
            return None
        left[0] -= 1
        reply = fake.route(request)
        change(reply)
        return reply

    fake.faults.append(fault)


def redirect_to(url: str) -> Reply:
    return Reply(302, raw=b"", headers={"Location": url})


# The `rest` connector: every paginator it offers.

REST_PAGING: dict[PagingStyle, dict[str, Any]] = {
    "next_token": {
        "paginator": {"type": "next_token", "token_path": "paging.next_cursor", "param": "cursor"},
        "page_size_param": "per_page",
    },
    "offset": {"paginator": {"type": "offset", "total_path": "paging.total"}},
    "next_url": {
        "paginator": {"type": "next_url", "url_path": "paging.next"},
        "page_size_param": "per_page",
    },
    "page_number": {
        "paginator": {"type": "page_number", "pages_path": "paging.pages"},
        "page_size_param": "per_page",
    },
    "link_header": {"paginator": {"type": "link_header"}, "page_size_param": "per_page"},
}


def back_office(paging: PagingStyle) -> FakeBackOffice:
    fake = FakeBackOffice(API_KEY, paging).start()
    for ref in range(1, 13):
        fake.add(ref, T0 + dt.timedelta(minutes=ref))
    return fake


def rest_options(fake: FakeBackOffice) -> dict[str, Any]:
    return {
        "kind": "rest",
        "base_url": fake.base_url,
        "path": PATH,
        "auth": {"type": "header", "header": "X-Api-Key", "value": API_KEY},
        "since_param": "modified_since",
        "records_path": "data.tickets",
        "id_path": "ref",
        "cursor_path": "modified",
        "page_size": 5,
        "mapping": {"title": "{headline}"},
        **REST_PAGING[fake.paging],
    }


def is_rest_page(request: Request) -> bool:
    return request.path == PATH


@pytest.mark.parametrize("paging", list(REST_PAGING))
def test_a_redirect_to_another_origin_mid_scan_fails_the_rest_pass_and_sends_no_credential(
    paging: PagingStyle, listener: Listener, emulator: Emulator, sqlite_url: str
) -> None:
    fake = back_office(paging)
    try:
        on_page(fake, is_rest_page, 2, redirect_to(listener.url))
        summary = sync(rest_options(fake), emulator, sqlite_url)
        assert_refused(summary, fake.base_url, listener)
    finally:
        fake.stop()


@pytest.mark.parametrize("paging", ["next_url", "link_header"])
def test_a_next_link_to_another_origin_fails_the_rest_pass_and_sends_no_credential(
    paging: PagingStyle, listener: Listener, emulator: Emulator, sqlite_url: str
) -> None:
    fake = back_office(paging)

    def point_elsewhere(reply: Reply) -> None:
        if paging == "next_url":
            reply.body["paging"]["next"] = listener.url
        else:
            reply.headers["Link"] = f'<{listener.url}>; rel="next"'

    try:
        rewrite_pages(fake, is_rest_page, point_elsewhere)
        summary = sync(rest_options(fake), emulator, sqlite_url)
        assert_refused(summary, fake.base_url, listener)
    finally:
        fake.stop()


def test_a_next_link_that_is_no_url_fails_the_pass_with_a_clear_message(
    emulator: Emulator, sqlite_url: str
) -> None:
    fake = back_office("next_url")
    try:
        rewrite_pages(
            fake, is_rest_page, lambda reply: reply.body["paging"].update(next="http://[::1")
        )
        summary = sync(rest_options(fake), emulator, sqlite_url)
    finally:
        fake.stop()
    assert not summary.ok
    assert "not a URL that can be requested" in (summary.error or "")
    assert "internal error" not in (summary.error or "")


def test_a_same_origin_redirect_is_followed_with_the_credentials(
    emulator: Emulator, sqlite_url: str
) -> None:
    """What stays allowed: a redirect within the configured origin (an API moving a path)."""
    fake = back_office("next_token")
    try:
        on_page(fake, is_rest_page, 1, redirect_to(f"{fake.base_url}{PATH}?per_page=5"))
        summary = sync(rest_options(fake), emulator, sqlite_url)
    finally:
        fake.stop()
    assert summary.ok, summary.error
    assert summary.pushed == 12
    redirected, followed = fake.gets(PATH)[:2]
    assert "per_page" in followed.query and "modified_since" not in redirected.query
    assert followed.headers["x-api-key"] == API_KEY


# Vendor connectors whose APIs hand out next links.


@dataclass
class Vendor:
    """A vendor fake with tickets on more than one page, and how to point its next link away."""

    fake: FakeApi
    options: dict[str, Any]
    is_page: Callable[[Request], bool]
    point_elsewhere: Callable[[Reply, str], None]

    def stop(self) -> None:
        self.fake.stop()


def link_header(reply: Reply, url: str) -> None:
    reply.headers["Link"] = f'<{url}>; rel="next"'


def zendesk() -> Vendor:
    fake = FakeZendesk(EMAIL, ZENDESK_TOKEN).start()
    for n in range(1, 9):
        fake.add(n, T0 + dt.timedelta(minutes=n))

    def after_url(reply: Reply, url: str) -> None:
        reply.body.update(after_url=url, end_of_stream=False)

    options = {"kind": "zendesk", "base_url": fake.base_url, "subdomain": "acme"}
    options |= {"email": EMAIL, "api_token": ZENDESK_TOKEN, "page_size": 5}
    return Vendor(fake, options, lambda r: r.path.endswith("cursor.json"), after_url)


def freshdesk() -> Vendor:
    fake = FakeFreshdesk(FRESHDESK_KEY).start()
    for n in range(1, 9):  # one `updated_at` for all: the connector follows the link
        fake.add(n, T0)
    options = {"kind": "freshdesk", "base_url": fake.base_url, "domain": "acme"}
    options |= {"api_key": FRESHDESK_KEY, "page_size": 5}
    return Vendor(fake, options, lambda r: r.path == "/api/v2/tickets", link_header)


def github() -> Vendor:
    fake = FakeGitHub(GITHUB_TOKEN).start()
    for n in range(1, 9):  # one `updated_at` for all: the connector follows the link
        fake.add(n, T0)
    options = {"kind": "github", "base_url": fake.base_url, "repository": fake.repository}
    options |= {"token": GITHUB_TOKEN, "page_size": 5}
    return Vendor(fake, options, lambda r: r.path.endswith("/issues"), link_header)


def gitlab() -> Vendor:
    fake = FakeGitLab(GITLAB_TOKEN).start()
    fake.add_project(42, "acme/helpdesk")
    for n in range(1, 9):  # one `updated_at` for all: the connector follows the link
        fake.add(n, 42, T0)
    options = {"kind": "gitlab", "base_url": fake.base_url, "projects": ["acme/helpdesk"]}
    options |= {"token": GITLAB_TOKEN, "page_size": 5}
    return Vendor(fake, options, lambda r: r.path.endswith("/issues"), link_header)


def servicenow() -> Vendor:
    fake = FakeServiceNow(SN_USER, SN_PASSWORD, SN_TOKEN).start()
    for n in range(1, 9):
        fake.add(n, T0 + dt.timedelta(minutes=n))
    options = {"kind": "servicenow", "base_url": fake.base_url, "username": SN_USER}
    options |= {"password": SN_PASSWORD, "page_size": 5}
    return Vendor(fake, options, lambda r: r.path.startswith("/api/now/table/"), link_header)


def salesforce() -> Vendor:
    fake = FakeSalesforce(SF_CLIENT_ID, SF_CLIENT_SECRET, "unused-refresh-token").start()
    fake.batch_cap = 5  # Salesforce may send fewer than asked: two batches for eight Cases
    for n in range(1, 9):
        fake.put(n, T0 + dt.timedelta(minutes=n))

    def next_records_url(reply: Reply, url: str) -> None:
        reply.body.update(nextRecordsUrl=url, done=False)

    options = {"kind": "salesforce", "base_url": fake.base_url, "client_id": SF_CLIENT_ID}
    options |= {"client_secret": SF_CLIENT_SECRET, "page_size": 200}
    return Vendor(fake, options, lambda r: r.path.startswith("/services/data/"), next_records_url)


VENDORS = {
    "zendesk": zendesk,
    "freshdesk": freshdesk,
    "github": github,
    "gitlab": gitlab,
    "servicenow": servicenow,
    "salesforce": salesforce,
}


@pytest.mark.parametrize("kind", ["zendesk", "freshdesk", "github", "gitlab", "salesforce"])
def test_a_vendor_next_link_to_another_origin_fails_the_pass_and_sends_no_credential(
    kind: str, listener: Listener, emulator: Emulator, sqlite_url: str
) -> None:
    vendor = VENDORS[kind]()
    try:
        rewrite_pages(
            vendor.fake, vendor.is_page, lambda reply: vendor.point_elsewhere(reply, listener.url)
        )
        summary = sync(vendor.options, emulator, sqlite_url)
        assert_refused(summary, vendor.fake.base_url, listener)
    finally:
        vendor.stop()


@pytest.mark.parametrize("kind", list(VENDORS))
def test_a_vendor_redirect_to_another_origin_fails_the_pass_and_sends_no_credential(
    kind: str, listener: Listener, emulator: Emulator, sqlite_url: str
) -> None:
    vendor = VENDORS[kind]()
    try:
        on_page(vendor.fake, vendor.is_page, 2, redirect_to(listener.url))
        summary = sync(vendor.options, emulator, sqlite_url)
        assert_refused(summary, vendor.fake.base_url, listener)
    finally:
        vendor.stop()


def test_servicenow_never_follows_the_link_header_it_is_sent(
    listener: Listener, emulator: Emulator, sqlite_url: str
) -> None:
    """ServiceNow's pages are keyset queries of its own: a `Link` elsewhere is not a place to go."""
    vendor = servicenow()
    try:
        rewrite_pages(vendor.fake, vendor.is_page, lambda reply: link_header(reply, listener.url))
        summary = sync(vendor.options, emulator, sqlite_url)
    finally:
        vendor.stop()
    assert summary.ok, summary.error
    assert summary.pushed == 8
    assert listener.requests == []


# The toolkit itself: host, port and scheme all make the origin.


def session(base_url: str) -> HttpSession:
    return HttpSession(
        "vendor",
        base_url,
        classify=source_classifier(),
        budget=RequestBudget(1000, 1.0),
        retry=RetrySettings(max_attempts=1),
        headers={"X-Api-Key": API_KEY},
    )


@pytest.mark.parametrize("differs", ["host", "port", "scheme"])
def test_a_request_off_the_configured_origin_is_refused_before_anything_is_sent(
    differs: str, listener: Listener
) -> None:
    target = f"{listener.base_url}/steal"
    port = listener.base_url.rsplit(":", 1)[1]
    with Listener() as other:
        base = {
            "host": f"http://localhost:{port}",
            "port": other.base_url,
            "scheme": f"https://127.0.0.1:{port}",  # a downgrade from https to http
        }[differs]
        client = session(base)
        try:
            with pytest.raises(RequestFailed) as caught:
                client.send("GET", target)
        finally:
            client.close()
        assert listener.base_url in str(caught.value)
        assert base in str(caught.value)
        assert listener.requests == [] and other.requests == []


# The Fragment client.


class RedirectingFragment(FakeApi):
    """A Fragment whose batch endpoint redirects to `location`, keeping method and body (307)."""

    def __init__(self) -> None:
        super().__init__()
        self.location = ""

    def route(self, request: Request) -> Reply:
        return Reply(307, raw=b"", headers={"Location": self.location})


def test_fragment_redirecting_elsewhere_gets_no_token_and_the_batch_is_not_acknowledged(
    listener: Listener,
) -> None:
    with RedirectingFragment() as fragment:
        fragment.location = f"{listener.base_url}/api/v1/tasks/batch"
        settings = FragmentSettings(
            url=f"{fragment.base_url}/api/v1", token=SecretStr(TOKEN), max_attempts=2
        )
        item = TaskPayload.encode("1", 1, {"uid": "3c90c3cc-0d44-4b50-8888-8dd25736052a"})
        client = FragmentClient(settings, stop=threading.Event())
        with client, pytest.raises(FragmentUnavailable) as caught:
            client.push([item])
        assert fragment.base_url in str(caught.value)
    assert listener.base_url in str(caught.value)
    assert listener.requests == []
