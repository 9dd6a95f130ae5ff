"""The declarative `rest` connector, configured for a fake back-office API in each paging style."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from connectors.base import SourceTicket
from connectors.errors import SourceError
from connectors.rest import RestApiConnector, RestApiOptions, render_since
from fakes import Reply, Request
from fakes.backoffice import PATH, TOKEN_PATH, FakeBackOffice, OAuthServer, PagingStyle
from fakes.suite import T0, ConnectorSuite, VendorCase, nth_page_request
from fragment_emulator import Emulator
from sync.config import ConnectorSettings, build_config
from sync.errors import ConfigError
from sync.state import StateStore
from sync.watermark import encode
from sync_http.auth import token_endpoint
from synckit import TOKEN, tasks_by_ticket

API_KEY = "bo-key-93f1c2"

STYLES: dict[PagingStyle, dict[str, Any]] = {
    "next_token": {
        "paginator": {"type": "next_token", "token_path": "paging.next_cursor", "param": "cursor"},
        "page_size_param": "per_page",
    },
    "offset": {
        # Offsets over a live set shift when a ticket is edited mid-scan: the connector
        # re-anchors every page by default.
        "paginator": {"type": "offset", "total_path": "paging.total"},
        "since_format": "epoch_seconds",
    },
    "next_url": {
        "paginator": {"type": "next_url", "url_path": "paging.next"},
        "page_size_param": "per_page",
        "reanchor_after_pages": 1,
    },
    "page_number": {
        "paginator": {"type": "page_number", "pages_path": "paging.pages"},
        "page_size_param": "per_page",
    },
    "link_header": {
        "paginator": {"type": "link_header"},
        "page_size_param": "per_page",
        "reanchor_after_pages": 1,
    },
}
"""The `rest` options that describe each paging style of the fake."""

MAPPING = {
    "title": "{headline}",
    "status": "state",
    "status_map": {"open": "TODO", "working": "STARTED", "done": "DONE"},
    "external_updated_at": "modified",
    "fields": {"owner": "owner.name"},
}


class BackOfficeCase(VendorCase):
    kind = "rest"
    shows_deletions = True  # the feed keeps deleted tickets, `removed` set
    fake: FakeBackOffice

    def __init__(self, fake: FakeBackOffice, **extra: Any) -> None:
        super().__init__(fake)
        self.extra = {**STYLES[fake.paging], **extra}

    def options(self) -> dict[str, Any]:
        return {
            "base_url": self.fake.base_url,
            "path": PATH,
            "auth": {"type": "header", "header": "X-Api-Key", "value": API_KEY},
            "since_param": "modified_since",
            "records_path": "data.tickets",
            "id_path": "ref",
            "cursor_path": "modified",
            "deleted_path": "removed",
            "page_size": self.page_size,
            "mapping": MAPPING,
            **self.extra,
        }

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        headline = f"Printer {number} jammed v{version}"
        if number in self.fake.tickets:
            self.fake.touch(number, updated, headline=headline)
        else:
            self.fake.add(number, updated, headline=headline)

    def remove(self, number: int, at: dt.datetime) -> None:
        self.fake.remove(number, at)

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        ticket = self.fake.add(number, updated)
        ticket["modified"] = "yesterday-ish"
        return "modified"

    def rate_limit(self, wait: int) -> Reply:
        return Reply(429, {"error": "slow down"}, headers={"Retry-After": str(wait)})

    def title(self, number: int, version: int) -> str:
        return f"Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path == PATH

    def connector(self, **options: Any) -> RestApiConnector:
        settings = ConnectorSettings.model_fields  # the engine's keys, not the connector's
        raw = {k: v for k, v in (self.options() | options).items() if k not in settings}
        return RestApiConnector("backoffice", RestApiOptions.model_validate(raw))


class TestRestWithNextTokenPaging(ConnectorSuite):
    @pytest.fixture
    def case(self) -> Iterator[BackOfficeCase]:
        with FakeBackOffice(API_KEY, "next_token") as fake:
            yield BackOfficeCase(fake)


class TestRestWithOffsetPaging(ConnectorSuite):
    @pytest.fixture
    def case(self) -> Iterator[BackOfficeCase]:
        with FakeBackOffice(API_KEY, "offset") as fake:
            yield BackOfficeCase(fake)


class TestRestWithPageNumberPaging(ConnectorSuite):
    @pytest.fixture
    def case(self) -> Iterator[BackOfficeCase]:
        with FakeBackOffice(API_KEY, "page_number") as fake:
            yield BackOfficeCase(fake)


def pull(connector: RestApiConnector, since: dt.datetime | None) -> list[SourceTicket]:
    try:
        tickets = list(connector.pull(since))
    finally:
        connector.close()
    assert all(isinstance(t, SourceTicket) for t in tickets)
    return tickets  # type: ignore[return-value]


@pytest.mark.parametrize("style", list(STYLES))
def test_every_paging_style_reads_every_page_once(style: PagingStyle) -> None:
    with FakeBackOffice(API_KEY, style) as fake:
        case = BackOfficeCase(fake)
        for n in range(1, 13):
            case.add(n, T0 + dt.timedelta(minutes=n))
        tickets = pull(case.connector(), None)
        assert [t.source_id for t in tickets] == [str(n) for n in range(1, 13)]
        assert len(fake.gets(PATH)) >= 3  # 12 tickets, 5 a page


@pytest.mark.parametrize("style", ["offset", "page_number"])
def test_a_record_edited_mid_scan_is_not_skipped_by_offset_or_page_number_paging(
    style: PagingStyle, emulator: Emulator, sqlite_url: str
) -> None:
    with FakeBackOffice(API_KEY, style) as fake:
        case = BackOfficeCase(fake)  # no reanchor_after_pages: the default must be safe
        assert "reanchor_after_pages" not in case.options()
        for n in range(1, 13):
            case.add(n, T0 + dt.timedelta(minutes=n))

        def edited() -> None:  # read on page 1, it moves to the end; the rest move up a slot
            case.update(2, T0 + dt.timedelta(days=1))

        fake.when(nth_page_request(case, 2), edited)
        summary = ConnectorSuite().sync(case, emulator, sqlite_url)
        assert summary.ok, summary.error
        ConnectorSuite().assert_exact(case, emulator)
        second = fake.gets(PATH)[1]  # the query again from the last record read, page one
        assert second.param("offset") in (None, "0")
        assert second.param("page") in (None, "1")
        assert second.param("modified_since") is not None


@pytest.mark.parametrize(
    ("options", "every"),
    [
        ({}, 1),
        ({"reanchor_after_pages": 0}, None),  # the way to turn it off
        ({"reanchor_after_pages": 3}, 3),
        ({"since_param": None}, None),  # nothing to re-read from
        ({"since_format": "date"}, None),  # each re-read would start the whole day again
        ({"since_format": "%Y-%m-%d %H:%M:%S"}, 1),
        ({"ordered": False}, None),
        ({"paginator": {"type": "next_token", "token_path": "t", "param": "c"}}, None),
        ({"paginator": {"type": "link_header"}}, None),
    ],
)
def test_offset_and_page_number_paging_re_anchor_by_default_where_the_query_allows(
    options: dict[str, Any], every: int | None
) -> None:
    base = {
        "base_url": "https://backoffice.example.com",
        "path": PATH,
        "since_param": "modified_since",
        "paginator": {"type": "offset"},
    }
    connector = RestApiConnector("backoffice", RestApiOptions.model_validate(base | options))
    assert connector.reanchor_after_pages == every


def test_a_source_whose_pages_never_end_fails_the_pass_naming_the_cap(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeBackOffice(API_KEY, "next_token") as fake:
        fake.endless = True  # past the last ticket: empty pages, each with a new token
        case = BackOfficeCase(fake, max_pages_per_pass=25)
        for n in range(1, 8):
            case.add(n, T0 + dt.timedelta(minutes=n))
        summary = ConnectorSuite().sync(case, emulator, sqlite_url)
        assert not summary.ok
        error = summary.error or ""
        assert "connector 'source'" in error
        assert "max_pages_per_pass = 25" in error
        assert "never ends" in error
        assert len(fake.gets(PATH)) == 25
    default = RestApiOptions.model_validate(
        {"base_url": "https://x.example.com", "path": PATH, "paginator": {"type": "link_header"}}
    )
    assert default.max_pages_per_pass == 10_000


def test_the_query_carries_the_configured_parameters_headers_and_auth() -> None:
    with FakeBackOffice(API_KEY, "next_token") as fake:
        case = BackOfficeCase(
            fake,
            auth={"type": "bearer", "token": API_KEY},
            params={"sort": "modified", "include_removed": True},
            headers={"X-Api-Version": "2026-01"},
            since_format="epoch_seconds",
            since_initial="0",
        )
        case.add(1, T0)
        pull(case.connector(), T0 + dt.timedelta(microseconds=999_999))
        pull(case.connector(), None)
        from_watermark, from_scratch = fake.gets(PATH)
        assert from_watermark.param("modified_since") == str(int(T0.timestamp()))  # floored
        assert from_scratch.param("modified_since") == "0"  # since_initial
        assert from_watermark.param("per_page") == "5"
        assert from_watermark.param("sort") == "modified"
        assert from_watermark.param("include_removed") == "true"
        assert from_watermark.headers["x-api-version"] == "2026-01"
        assert from_watermark.headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize(
    ("since_format", "expected"),
    [
        ("iso8601", "2026-11-02T09:00:05Z"),
        ("iso8601_offset", "2026-11-02T09:00:05+00:00"),
        ("epoch_seconds", "1793610005"),
        ("epoch_ms", "1793610005678"),
        ("date", "2026-11-02"),
        ("%Y-%m-%d %H:%M:%S", "2026-11-02 09:00:05"),
    ],
)
def test_the_watermark_is_spelled_as_configured_floored_to_stay_inclusive(
    since_format: str, expected: str
) -> None:
    moment = dt.datetime(2026, 11, 2, 10, 0, 5, 678_900, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert render_since(moment, since_format) == expected
    assert render_since(41, since_format) == "41"  # integer cursors go as they are


def test_an_api_that_cant_sort_moves_the_watermark_only_after_a_whole_pass(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeBackOffice(API_KEY, "next_token", newest_first=True) as fake:
        case = BackOfficeCase(fake, ordered=False, page_size=100)
        assert case.connector().ordered is False
        for n in range(1, 511):
            case.add(n, T0 + dt.timedelta(minutes=n))
        pages = [0]

        def sixth_page(request: Request) -> bool:
            pages[0] += 1
            return pages[0] == 6

        case.fake.fail_next(Reply(400, {"error": "cursor expired"}), when=sixth_page)
        suite = ConnectorSuite()
        broken = suite.sync(case, emulator, sqlite_url)
        assert not broken.ok
        assert broken.pushed == 500  # the engine pushed what it had read ...
        store = StateStore.open(sqlite_url)
        assert store.watermark("source") is None  # ... but could not know it was all up to here
        store.close()

        healed = suite.sync(case, emulator, sqlite_url)
        assert healed.ok, healed.error
        assert healed.watermark == encode(T0 + dt.timedelta(minutes=510))
        suite.assert_exact(case, emulator)


def test_a_tombstone_archives_the_task(emulator: Emulator, sqlite_url: str) -> None:
    with FakeBackOffice(API_KEY, "offset") as fake:
        case = BackOfficeCase(fake)
        case.add(1, T0)
        case.add(2, T0 + dt.timedelta(minutes=1))
        suite = ConnectorSuite()
        assert suite.sync(case, emulator, sqlite_url).ok
        case.delete(2, T0 + dt.timedelta(hours=1))
        assert suite.sync(case, emulator, sqlite_url).ok
        landed = tasks_by_ticket(emulator)
        assert (landed["1"]["archived"], landed["2"]["archived"]) == (False, True)


def test_an_empty_id_is_a_failed_item_and_a_whole_float_id_is_its_integer(
    emulator: Emulator, sqlite_url: str
) -> None:
    """`"ref": ""` was pushed: every ticket with an empty id landed on one task, each
    overwriting the last. And `4.0` and `4` became two tasks of one ticket."""
    with FakeBackOffice(API_KEY, "next_token") as fake:
        case = BackOfficeCase(fake)
        fake.add(1, T0, headline="No id")["ref"] = ""
        fake.add(2, T0 + dt.timedelta(minutes=1), headline="Blank id")["ref"] = " \t"
        fake.add(4, T0 + dt.timedelta(minutes=2), headline="Printer 4 jammed")
        fake.add(5, T0 + dt.timedelta(minutes=3), headline="Printer 5.5 jammed")["ref"] = 5.5
        suite = ConnectorSuite()

        first = suite.sync(case, emulator, sqlite_url)

        assert first.ok, first.error
        assert (first.pushed, first.failed) == (2, 2)
        assert set(tasks_by_ticket(emulator)) == {"4", "5.5"}
        store = StateStore.open(sqlite_url)
        errors = sorted(item.error for item in store.failed_items("source"))
        store.close()
        assert errors == [
            "connector 'source', page 1, item 1, field 'ref': 'ref' is empty",
            "connector 'source', page 1, item 2, field 'ref': 'ref' is empty",
        ]

        # The API now spells the same ticket's id 4.0: the same task, updated.
        fake.touch(4, T0 + dt.timedelta(hours=1), headline="Printer 4 on fire")
        fake.tickets[4]["ref"] = 4.0
        second = suite.sync(case, emulator, sqlite_url)

        assert second.ok, second.error
        landed = tasks_by_ticket(emulator)
        assert set(landed) == {"4", "5.5"}
        assert landed["4"]["fields"]["title"] == "Printer 4 on fire"


def config_error(**options: Any) -> ConfigError:
    connector = {
        "kind": "rest",
        "base_url": "https://backoffice.example.com",
        "path": "/api/v1/tickets",
        "paginator": {"type": "next_token", "token_path": "next", "param": "cursor"},
        **options,
    }
    raw = {"fragment": {"token": TOKEN}, "connectors": {"api": connector}}
    with pytest.raises(ConfigError) as caught:
        build_config(raw, source="test")
    return caught.value


@pytest.mark.parametrize(
    ("options", "key", "words"),
    [
        ({"paginator": {"type": "cursor"}}, "paginator", "'next_token', 'next_url'"),
        (
            {"paginator": {"type": "next_token", "param": "c"}},
            "paginator.next_token.token_path",
            "required",
        ),
        ({"paginator": {"type": "offset", "limit": 50}}, "paginator.offset", "page_size"),
        ({"auth": {"type": "bearer"}}, "auth.bearer.token", "required"),
        ({"auth": {"type": "digest"}}, "auth", "'bearer', 'basic'"),
        (
            {"auth": {"type": "oauth2", "token_url": "https://id.example/token"}},
            "auth.oauth2",
            "client_id",
        ),
        (
            {
                "auth": {
                    "type": "oauth2",
                    "token_url": "https://id.example/t",
                    "grant": "refresh_token",
                }
            },
            "auth.oauth2",
            "needs refresh_token",
        ),
        (
            {
                "auth": {
                    "type": "oauth2",
                    "token_url": "http://id.example/token",
                    "client_id": "c",
                    "client_secret": "s",
                }
            },
            "auth",
            "use https",
        ),
        ({"auth": {"type": "query", "param": "key"}}, "auth.query.value", "required"),
        ({"since_format": "rfc2822"}, "since_format", "strftime"),
        ({"since_initial": "0"}, "since_initial", "since_param"),
        ({"sinse_param": "updated"}, "sinse_param", "unknown key"),
        ({"path": "api/v1/tickets"}, "path", "start with '/'"),
        ({"ordered": False, "reanchor_after_pages": 1}, "ordered", "oldest first"),
        (
            {"paginator": {"type": "offset"}, "page_size_param": "per_page"},
            "page_size_param",
            "limit_param",
        ),
    ],
)
def test_a_bad_config_fails_at_load_naming_the_key(
    options: dict[str, Any], key: str, words: str
) -> None:
    error = config_error(**options)
    assert error.key == f"connectors.api.{key}"
    assert words in error.reason


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        ({"type": "none"}, "authorization", None),
        ({"type": "bearer", "token": "t0k"}, "authorization", "Bearer t0k"),
        ({"type": "basic", "username": "ana", "password": "pw"}, "authorization", "Basic YW5hOnB3"),
        ({"type": "header", "header": "X-Api-Key", "value": "k3y"}, "x-api-key", "k3y"),
    ],
)
def test_each_auth_type_puts_its_secret_where_it_belongs(
    auth: dict[str, str], header: str, value: str | None
) -> None:
    options = RestApiOptions.model_validate(
        {
            "base_url": "https://backoffice.example.com",
            "path": PATH,
            "auth": auth,
            "paginator": {"type": "link_header"},
        }
    )
    built = RestApiConnector("backoffice", options).auth()
    request = httpx.Request("GET", "https://backoffice.example.com/api/v1/tickets")
    sent = request if built is None else next(built.sync_auth_flow(request))
    assert sent.headers.get(header) == value


# Query-parameter keys and OAuth 2 tokens


def test_a_query_key_goes_in_every_request_once_even_when_next_links_echo_it() -> None:
    with FakeBackOffice(API_KEY, "next_url") as fake:
        case = BackOfficeCase(fake, auth={"type": "query", "param": "key", "value": API_KEY})
        for n in range(1, 13):
            case.add(n, T0 + dt.timedelta(minutes=n))

        tickets = pull(case.connector(), None)

        assert [t.source_id for t in tickets] == [str(n) for n in range(1, 13)]
        pages = fake.gets(PATH)
        assert len(pages) >= 3
        assert all(page.query["key"] == [API_KEY] for page in pages)
        assert all("x-api-key" not in p.headers and "authorization" not in p.headers for p in pages)


def test_the_url_an_error_shows_leaves_the_query_key_out() -> None:
    with FakeBackOffice(API_KEY, "next_url") as fake:
        case = BackOfficeCase(fake, auth={"type": "query", "param": "key", "value": API_KEY})
        for n in range(1, 13):
            case.add(n, T0 + dt.timedelta(minutes=n))
        fake.fail_next(
            Reply(200, raw=b"<html>maintenance</html>"), when=lambda r: len(fake.gets(PATH)) == 2
        )

        with pytest.raises(SourceError) as raised:
            pull(case.connector(reanchor_after_pages=None), None)

        assert "page=2" in str(raised.value)  # the next link it followed, shown
        assert API_KEY not in str(raised.value)


@pytest.mark.parametrize(
    ("token_url", "sent_to"),
    [
        ("/oauth/token", "http://127.0.0.1:8080/api/oauth/token"),
        ("http://127.0.0.1:8080/oauth/token", "http://127.0.0.1:8080/oauth/token"),
        ("https://login.example.com/oauth2/token", "https://login.example.com/oauth2/token"),
        ("http://127.0.0.1:8081/oauth/token", None),  # another port, unencrypted
        ("http://login.example.com/oauth2/token", None),
        ("ftp://login.example.com/token", None),
    ],
)
def test_client_secrets_go_only_to_https_or_the_sources_own_server(
    token_url: str, sent_to: str | None
) -> None:
    if sent_to is None:
        with pytest.raises(ValueError, match=r"use https|neither an http"):
            token_endpoint(token_url, "http://127.0.0.1:8080/api")
    else:
        assert token_endpoint(token_url, "http://127.0.0.1:8080/api") == sent_to


def oauth_case(fake: FakeBackOffice, **auth: Any) -> BackOfficeCase:
    fake.oauth = OAuthServer(CLIENT_ID, CLIENT_SECRET)
    return BackOfficeCase(
        fake,
        auth={
            "type": "oauth2",
            "token_url": TOKEN_PATH,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            **auth,
        },
    )


CLIENT_ID = "backoffice sync@acme"  # a space and an @: RFC 6749 form-encodes it for Basic
CLIENT_SECRET = "bo-client-secret-5d1e"


def test_client_credentials_tokens_are_renewed_before_they_expire(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeBackOffice(API_KEY, "next_token") as fake:
        case = oauth_case(fake, scope="tickets:read")
        assert fake.oauth is not None
        fake.oauth.lifetime = 3
        for n in range(1, 61):
            case.add(n, T0 + dt.timedelta(minutes=n))

        def slow_api(request: Request) -> None:
            if request.path == PATH:
                time.sleep(0.3)  # 13 pages take about 4 s: the pass outlives its first token

        fake.faults.append(slow_api)

        summary = ConnectorSuite().sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        ConnectorSuite().assert_exact(case, emulator)
        asked = [r for r in fake.requests if r.path == TOKEN_PATH]
        assert len(asked) >= 2
        for request in asked:
            assert (
                request.headers["authorization"]
                == "Basic "
                + base64.b64encode(b"backoffice%20sync%40acme:bo-client-secret-5d1e").decode()
            )
            assert parse_qs(request.body.decode()) == {
                "grant_type": ["client_credentials"],
                "scope": ["tickets:read"],
            }
        pages = fake.gets(PATH)
        assert all(p.headers["authorization"].startswith("Bearer bo-access-") for p in pages)


def test_a_rotated_refresh_token_is_the_one_used_when_a_token_is_refused_mid_pass(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeBackOffice(API_KEY, "next_token") as fake:
        case = oauth_case(
            fake,
            grant="refresh_token",
            refresh_token="bo-refresh-configured",
            client_auth="body",
        )
        assert fake.oauth is not None
        fake.oauth.rotate = True
        fake.oauth.refresh_tokens.add("bo-refresh-configured")
        for n in range(1, 16):
            case.add(n, T0 + dt.timedelta(minutes=n))
        fake.when(nth_page_request(case, 2), fake.oauth.access.clear)

        summary = ConnectorSuite().sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        ConnectorSuite().assert_exact(case, emulator)
        forms = [parse_qs(r.body.decode()) for r in fake.requests if r.path == TOKEN_PATH]
        first, second = forms
        assert first["refresh_token"] == ["bo-refresh-configured"]
        assert second["refresh_token"] != first["refresh_token"]  # the rotated one
        assert second["client_id"] == [CLIENT_ID] and second["client_secret"] == [CLIENT_SECRET]


def test_a_refused_client_secret_fails_naming_the_connector_and_the_reason() -> None:
    with FakeBackOffice(API_KEY, "next_token") as fake:
        case = oauth_case(fake)
        case.add(1, T0)
        case.extra["auth"] = {**case.extra["auth"], "client_secret": "rotated-away"}

        with pytest.raises(SourceError) as raised:
            pull(case.connector(), None)

        assert "'backoffice'" in str(raised.value)
        assert f"{fake.base_url}{TOKEN_PATH} refused the client_credentials grant: 401" in str(
            raised.value
        )
        assert "invalid_client: Client authentication failed" in str(raised.value)
        assert fake.gets(PATH) == []
