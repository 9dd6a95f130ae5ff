"""`RestConnector`: the base a JSON REST source declares itself on.

A vendor connector states its endpoint, the parameters that carry the
watermark, its paginator, where the records are, and the paths of the id and
the cursor; this base does the rest: the session (auth, pacing, retries,
rate limits), paging with loop detection, turning records into tickets (or
`BadRecord`s naming the field), dropping what lies before the bound, and
moving the query window forward when a source caps how deep one query may
page (Freshdesk's 300 pages) instead of paging deeper.

Scopes: a connector reading several queries per pass (Redmine's projects,
GitHub's repositories, Freshdesk's deleted list) declares them in `scopes`;
each is read as its own query over the one session (one request budget, one
rate-limit wait for all) and the queries are merged in cursor order, so the
stream stays ordered and the engine's watermark never passes a scope's
unread tickets: a ticket of one scope goes out only once every other scope
has been read up to its cursor.

Conversation: a connector whose class sets `comments` may implement
`conversations`; when the engine sets `read_comments`, `pull` hands it the
tickets in batches of `comments_batch` (tombstones left out, their comments
stay None) and fills each ticket's `comments` before it goes out. Comment
requests go through the same session (or one built like it, `new_session`):
pacing, retries, `Retry-After` and the origin guard hold for them too.
`listing` reads one ticket's comment pages, None when the ticket is gone (404).
"""

from __future__ import annotations

import copy
import datetime as dt
import heapq
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import structlog
from pydantic import ByteSize, Field, model_validator

from connectors import base
from connectors.base import BadRecord, Connector, ConnectorOptions, Cursor, SourceTicket
from connectors.errors import SourceError, SourceNotFound
from connectors.http.paginators import PageRequest, PaginationBroken, Paginator
from connectors.records import MISSING, get_path, source_id_text
from connectors.values import CursorKind, Duration, HttpUrl, parse_cursor
from sync_http.bounded import DEFAULT_MAX_RESPONSE_SIZE
from sync_http.policy import SOURCE_POLICY, Classifier, Policy, source_classifier
from sync_http.ratelimit import Backoff, RequestBudget
from sync_http.redaction import excerpt
from sync_http.session import HttpSession, RequestFailed, RetrySettings

log = structlog.get_logger("connectors")

USER_AGENT = "fragment-sync/0.1"
WHOLE_RECORD = "(record)"


_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def vendor_site(name: str, domain: str) -> str:
    """A vendor site's https URL from `acme`, a full host name, or a URL.

    `acme` becomes `https://acme.{domain}`. Raises `ValueError` for anything
    that is not a host name.
    """
    name = name.strip().rstrip("/")
    if "://" in name:
        return name
    if not _HOST.match(name):
        raise ValueError(f"{name!r} is not a site name: give acme for https://acme.{domain}")
    return f"https://{name if '.' in name else f'{name}.{domain}'}"


def base_url_from_site(data: Any, key: str, domain: str) -> Any:
    """For an options model's before-validator: fill `base_url` from the site option `key`."""
    if not isinstance(data, Mapping):
        return data
    name = str(data.get(key) or "").strip()
    if name:
        site = vendor_site(name, domain)  # validated even when base_url is given
        return data if data.get("base_url") else {**data, "base_url": site}
    if not data.get("base_url"):
        raise ValueError(f"set {key} (acme for https://acme.{domain}) or base_url")
    return data


Conversations = Mapping[str, Sequence[base.SourceComment] | BadRecord | None]
"""Each ticket's comments by source id (`RestConnector.conversations`)."""


class HttpOptions(ConnectorOptions):
    """Keys every HTTP connector takes, besides its own."""

    site_option: ClassVar[tuple[str, str] | None] = None
    """(option, domain) of a vendor whose site name gives `base_url` when it is unset:
    `("subdomain", "zendesk.com")` makes `subdomain = "acme"` mean https://acme.zendesk.com."""

    base_url: HttpUrl
    """The server's URL; credentials are sent only to its scheme, host and port."""
    request_timeout: Duration = dt.timedelta(seconds=30)
    """One HTTP request's timeout; the connector's `timeout` is the whole pass's."""
    max_attempts: int = Field(default=8, ge=1, le=100)
    """Attempts per request before the pass fails (its checkpoint stays intact)."""
    max_retry_wait: Duration = dt.timedelta(minutes=5)
    """The longest single wait between attempts; a server asking for longer fails the pass (the
    next resumes)."""
    requests_per_minute: float = Field(default=600.0, gt=0)
    """The client-side request budget toward the source."""
    rate_limit_floor: Duration = dt.timedelta(seconds=60)
    """The least wait on a rate limit that names none, doubling with each attempt."""
    page_size: int = Field(default=100, ge=1, le=5000)
    """Records per request."""
    max_pages_per_pass: int = Field(default=10_000, ge=1)
    """A pass that pages further fails: the guard against a source whose pages never end."""
    max_response_size: ByteSize = Field(
        default=ByteSize(DEFAULT_MAX_RESPONSE_SIZE),
        ge=1024,
        exclude=True,  # a bound on reads decides no task: kept out of the settings fingerprint
    )
    """The largest answer read, once unpacked ("64MiB", "512KiB" or bytes); larger fails."""

    @model_validator(mode="before")
    @classmethod
    def _base_url_from_site(cls, data: Any) -> Any:
        if cls.site_option is None:
            return data
        return base_url_from_site(data, *cls.site_option)


class RestConnector(Connector):
    """Base of the JSON REST connectors. Subclasses declare; see the module docstring."""

    Options: ClassVar[type[ConnectorOptions]] = HttpOptions
    path: str = ""
    records_path: str = ""
    """Where the list of records is in the body; "" when the body is the list."""
    id_path: str = "id"
    cursor_path: str = "updated_at"
    cursor_kind: CursorKind = "datetime"
    policy: ClassVar[Policy] = SOURCE_POLICY
    write_refusals: ClassVar[frozenset[int]] = frozenset({403, 404, 409, 422})
    """Answers to a write (`send_write`) that refuse that one ticket's change, not the
    connector's access (a workflow, a permission, a gone ticket, an invalid value), handed
    back to be read. A vendor adds its own: Jira's, Freshdesk's and ServiceNow's 400 for a
    value they won't take, GitHub's 410 for a deleted issue."""
    reanchor_after_pages: int | None = None
    """Re-issue the query from the last cursor seen after this many pages, when it moved.

    Class-wide by default; a connector may set it per instance from its options.

    For offset paging over a live set (Redmine, ServiceNow): a ticket edited
    mid-scan shifts the offsets, and re-anchoring on the cursor is what keeps
    the shift from skipping a ticket.
    """
    max_pages_per_query: int | None = None
    """A hard cap on how deep one query may page (Freshdesk: 300); the window moves first."""
    backoff: ClassVar[Backoff] = Backoff()
    """The wait before retrying a transient failure that names none; see `Backoff`."""
    moved_hint: ClassVar[str] = "update base_url (or path) in the connector's config"
    """What to change when the source says a URL moved for good (logged once per URL)."""
    comments_batch: ClassVar[int] = 1
    """How many tickets one call of `conversations` gets: 1 where each ticket's comments are
    a listing of their own, more where one request serves many tickets (ServiceNow's journal)."""

    options: HttpOptions
    _session: HttpSession | None = None
    _paced: dict[str, RestConnector] | None = None
    """The views `paced` made, by the option that sets their budget."""
    scope: str | None = None
    """The scope this instance's queries read: one of `scopes()`, set on the views `pull` makes."""

    # What a vendor declares

    def scopes(self) -> Sequence[str | None]:
        """The scopes a pass reads, one query each, merged in cursor order (see the module).

        `(None,)`, one unscoped query, by default. `params`, `first_request` and
        `is_deleted` see the scope being read as `self.scope`.
        """
        return (None,)

    def params(self, since: Cursor | None) -> dict[str, Any]:
        """Query parameters of the first page for a pull from `since`."""
        return {}

    def paginator(self) -> Paginator:
        raise NotImplementedError

    def first_request(self, since: Cursor | None, paginator: Paginator) -> PageRequest:
        params = self.params(since)
        start = getattr(paginator, "first", None)
        return PageRequest(self.path, start(params) if callable(start) else params)

    def auth(self) -> httpx.Auth | None:
        return None

    def classifier(self) -> Classifier:
        """What each answer means (`sync_http.policy`): `policy`, with rate limits recognised in
        any guise. A vendor whose answers say more in their bodies than their statuses reads
        them here, before the table (Salesforce's `errorCode`; a GraphQL source's 4xx
        bodies, `graphql_classifier`)."""
        return source_classifier(self.policy)

    def headers(self) -> dict[str, str]:
        return {}

    def keep(self, record: Mapping[str, Any]) -> bool:
        """False for records that are not tickets (GitHub's pull requests).

        A record left out is not yielded, but its cursor still counts as read:
        the next re-anchored query starts past it.
        """
        return True

    def is_deleted(self, record: Mapping[str, Any]) -> bool:
        return False

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        """Add keys the source lacks but a mapping wants, such as `web_url` back to the ticket."""
        return record

    def cursor_of(self, record: Mapping[str, Any]) -> Any:
        return get_path(record, self.cursor_path)

    def parse_cursor(self, value: Any) -> Cursor:
        return parse_cursor(value, self.cursor_kind)

    # The machinery

    def conversations(self, tickets: Sequence[SourceTicket]) -> Conversations:
        """The comments of each of `tickets` (none a tombstone), by source id, oldest first.

        None for a ticket the source no longer has (its listing answered 404:
        deleted since it was listed); a `BadRecord` for one with a comment that
        can't be read (`connectors.comments.read_comments`). A ticket left out
        keeps `comments` None. Only for a connector whose `comments` is set.
        """
        raise NotImplementedError

    @property
    def session(self) -> HttpSession:
        if self._session is None:
            self._session = self.new_session(self.options.requests_per_minute)
        return self._session

    @property
    def commenting(self) -> RestConnector:
        """This connector as comment requests should go: over a session with a budget of its
        own when the options give comments one (`comment_requests_per_minute`), else itself."""
        return self.paced("comment_requests_per_minute")

    @property
    def writing(self) -> RestConnector:
        """This connector as write-back's requests should go: over a session with a budget of
        its own when the options give writes one (`write_requests_per_minute`), else itself."""
        return self.paced("write_requests_per_minute")

    def paced(self, option: str) -> RestConnector:
        """This connector over a session of its own, on the budget the option named `option`
        sets (requests a minute), made at the first call; itself when it has no such option.

        For requests the source limits apart from the listing (Zendesk's export allows 10
        a minute; its comments and ticket updates count against the account's limit).
        """
        rate = getattr(self.options, option, None)
        if rate is None:
            return self
        views = self._paced if self._paced is not None else {}
        self._paced = views
        if option not in views:
            view = copy.copy(self)
            view._session = self.new_session(rate)
            view._paced = {option: view}
            views[option] = view
        return views[option]

    def new_session(self, requests_per_minute: float) -> HttpSession:
        """A session to the source as this connector's own is built, on a budget of its own.

        For requests the source limits apart (Zendesk's comments beside its export's
        10 a minute): the same auth, retries, rate-limit handling and origin guard.
        """
        options = self.options
        return HttpSession(
            self.name,
            options.base_url,
            classify=self.classifier(),
            budget=self.request_budget(requests_per_minute),
            retry=RetrySettings(
                max_attempts=options.max_attempts,
                max_wait=options.max_retry_wait.total_seconds(),
                rate_limit_floor=options.rate_limit_floor.total_seconds(),
                backoff=self.backoff,
            ),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **self.headers()},
            auth=self.auth(),
            timeout=options.request_timeout.total_seconds(),
            max_response_size=options.max_response_size,
            moved_hint=self.moved_hint,
            stop=self.stop,
        )

    def request_budget(self, requests_per_minute: float) -> RequestBudget:
        """The pace of a session's requests: `requests_per_minute`, in bursts of at most a
        tenth of it (`RequestBudget.per_minute`). A source that counts by the second (HubSpot's
        search) paces by the second instead."""
        return RequestBudget.per_minute(requests_per_minute, stop=self.stop)

    def close(self) -> None:
        views, self._paced = self._paced or {}, None
        for view in views.values():
            if view is not self:
                view.close()
        if self._session is not None:
            self._session.close()
            self._session = None

    def clock_offset(self) -> dt.timedelta | None:
        """From the `Date` headers of the answers so far (see `HttpSession.clock_offset`)."""
        return None if self._session is None else self._session.clock_offset

    def check(self) -> None:
        """Read the first page of every scope: each must exist and be readable."""
        for scope in self.scopes():
            view = self.reading(scope)
            view.fetch(view.first_request(None, view.paginator()))

    def reading(self, scope: str | None) -> RestConnector:
        """This connector narrowed to `scope`, over its session (and so its request budget)."""
        if scope == self.scope:
            return self
        view = copy.copy(self)
        view._session = self.session
        view.scope = scope
        return view

    def fetch(self, request: PageRequest) -> tuple[httpx.Response, Any]:
        """One page (GET, or the request's method with its JSON body); its response and
        decoded body. Raises `SourceError`.

        The request goes through the session like any other: paced, retried, its
        rate limits waited out, its URL held to the base URL's origin. `request.check`
        reads an answer inside that loop (GraphQL's errors in a 200).
        """
        try:
            response = self.session.send(
                request.method,
                request.url,
                params=request.params or None,
                headers=request.headers or None,
                json=request.json,
                validate=request.check,
            )
        except RequestFailed as exc:
            gone = exc.response is not None and exc.response.status_code == 404
            error = SourceNotFound if gone else SourceError
            raise error(self.name, f"{self.options.base_url}: {exc}") from None
        return response, self.decoded(request, response)

    def lookup(self, request: PageRequest) -> Any | None:
        """GET one thing by its own URL (a user, an agent): its decoded body, or None when
        the source answers 404, it has no such thing. Raises `SourceError` otherwise.

        Only for a URL that names the thing: a 404 there says it is gone, where
        a 404 for a listing says the configuration is wrong.
        """
        try:
            response = self.session.send(
                "GET", request.url, params=request.params or None, headers=request.headers or None
            )
        except RequestFailed as exc:
            if exc.response is not None and exc.response.status_code == 404:
                return None
            raise SourceError(self.name, f"{self.options.base_url}: {exc}") from None
        return self.decoded(request, response)

    def send_write(
        self, method: str, url: str, body: Any, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """A write to the source (write-back), or the read of the ticket before it, through
        the session: its answer, a refusal of this one ticket's change (`write_refusals`)
        included, for the connector to read. Raises `SourceError` when
        the source can't be reached or refuses the credentials (401), as `fetch` does.
        """
        try:
            return self.session.send(method, url, params=params or None, json=body)
        except RequestFailed as exc:
            if exc.response is not None and exc.response.status_code in self.write_refusals:
                return exc.response
            raise SourceError(self.name, f"{self.options.base_url}: {exc}") from None

    def decoded(self, request: PageRequest, response: httpx.Response) -> Any:
        """`response`'s JSON body (None for a 304). Raises `SourceError` naming what it is."""
        if response.status_code == 304:
            return None
        try:
            body = response.json()
        except RecursionError:
            raise SourceError(
                self.name,
                f"{request.url} answered JSON nested too deeply for the parser "
                "(about 1,000 levels)",
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            start = excerpt(response.text, 120)
            raise SourceError(
                self.name,
                f"{request.url} answered {response.status_code} with something that is not "
                f"JSON (it starts {start!r}); a proxy error page, or a truncated answer",
            ) from None
        except ValueError:  # the one other refusal: Python's cap on an integer's digits
            raise SourceError(
                self.name,
                f"{request.url} answered JSON holding a number of more than "
                f"{sys.get_int_max_str_digits():,} digits",
            ) from None
        return body

    def records(self, body: Any, path: str | None = None) -> list[Any]:
        """The list of records in `body`, at `path` (by default `records_path`)."""
        path = self.records_path if path is None else path
        found = get_path(body, path) if path else body
        if not isinstance(found, list):
            where = f"at {path!r}" if path else "as the body"
            raise SourceError(self.name, f"the answer has no list of records {where}")
        return found

    def pull(self, since: Cursor | None) -> Iterator[SourceTicket | BadRecord]:
        """Every scope's tickets from `since`, in cursor order (see the module docstring)."""
        pages = _PagesRead()
        scopes = self.scopes()
        queries = [self.reading(scope).pull_scope(since, pages) for scope in scopes]
        stream = queries[0] if len(queries) == 1 else merge_in_cursor_order(queries)
        if self.read_comments and self.reads_conversations:
            return self.with_comments(stream)
        return stream

    @property
    def reads_conversations(self) -> bool:
        """Whether this connector fills comments through `conversations` (a connector that
        reads them its own way, in `ticket` or `enrich`, leaves it out)."""
        return type(self).conversations is not RestConnector.conversations

    def with_comments(
        self, stream: Iterator[SourceTicket | BadRecord]
    ) -> Iterator[SourceTicket | BadRecord]:
        """`stream` with each ticket's `comments` filled, `comments_batch` tickets at a time.

        Order is kept. A tombstone's comments stay None (not read: its task is
        archived). A ticket whose comments can't be read goes out as the
        `BadRecord` `conversations` gave in its place. Memory: one batch of
        tickets and their comments at a time.
        """
        batch: list[SourceTicket | BadRecord] = []
        for item in stream:
            batch.append(item)
            if len(batch) >= self.comments_batch:
                yield from self._conversed(batch)
                batch = []
        yield from self._conversed(batch)

    def _conversed(
        self, batch: list[SourceTicket | BadRecord]
    ) -> Iterator[SourceTicket | BadRecord]:
        wanted = [t for t in batch if isinstance(t, SourceTicket) and not t.deleted]
        found = self.conversations(wanted) if wanted else {}
        for item in batch:
            if isinstance(item, SourceTicket) and not item.deleted:
                comments = found.get(item.source_id)
                if isinstance(comments, BadRecord):
                    yield comments
                    continue
                item.comments = comments
            yield item

    def listing(
        self,
        request: PageRequest,
        paginator: Paginator,
        records_path: str = "",
        page_records: Callable[[Any], Any] | None = None,
    ) -> list[Any] | None:
        """Every record `request` and its next pages list (one ticket's comments), in order.

        The records of a page are at `records_path` in its body, or what
        `page_records(body)` makes of it (joining what the page side-loads).
        None when the source answers 404 (the ticket is gone). Raises
        `SourceError` for anything else that stops the read, as a page of
        tickets would (`max_pages_per_pass` bounds it the same way).
        """
        records: list[Any] = []
        current: PageRequest | None = request
        pages = 0
        while current is not None:
            try:
                response, body = self.fetch(current)
            except SourceNotFound:
                log.warning(
                    "comments_not_found",
                    connector=self.name,
                    path=httpx.URL(request.url).path,
                    meaning="the ticket was deleted since it was listed; its comments are "
                    "left unread and its task keeps the ones it had",
                )
                return None
            if page_records is not None:
                found = page_records(body)
            else:
                found = get_path(body, records_path) if records_path else body
            if not isinstance(found, list):
                where = f"at {records_path!r}" if records_path else "as the body"
                raise SourceError(self.name, f"{request.url} answered no list of records {where}")
            records.extend(found)
            pages += 1
            if pages >= self.options.max_pages_per_pass:
                raise SourceError(
                    self.name,
                    f"read {pages:,} pages of {request.url} and the source still links a "
                    f"next one (max_pages_per_pass = {self.options.max_pages_per_pass:,})",
                )
            try:
                current = paginator.next_page(current, response, body, len(found))
            except PaginationBroken as exc:  # a loop, or a next page it can't follow
                raise SourceError(self.name, str(exc)) from None
        return records

    def pull_scope(
        self, since: Cursor | None, pages_read: _PagesRead | None = None
    ) -> Iterator[SourceTicket | BadRecord]:
        """This instance's scope's tickets from `since`; `pages_read` counts over all scopes."""
        counter = pages_read or _PagesRead()
        anchor = since
        boundary: set[str] = set()  # ids already yielded at cursor == anchor
        reported: set[str] = set()  # bad records already yielded (a re-anchor reads them again)
        while True:
            paginator = self.paginator()
            request: PageRequest | None = self.first_request(anchor, paginator)
            assert request is not None
            pages = 0
            last: Cursor | None = None
            at_last: set[str] = set()
            while True:
                response, body = self.fetch(request)
                records = self.records(body) if body is not None else []
                for index, raw in enumerate(records):
                    # A record that is no ticket (GitHub's pull request) is still a
                    # position in the stream: the re-read must start past it too, or a
                    # page of nothing else falls back to paging that edits shift.
                    kept = not isinstance(raw, dict) or self.keep(raw)
                    if kept and isinstance(raw, dict):
                        raw = self.enrich(raw)
                    item = self.ticket(raw, f"page {pages + 1}, item {index + 1}")
                    if isinstance(item, BadRecord):
                        if not kept:
                            continue
                        # Without an id, the record itself is what says it was seen before.
                        key = item.source_id or json.dumps(raw, sort_keys=True, default=str)
                        if key in reported:
                            continue
                        reported.add(key)
                    else:
                        try:
                            early = anchor is not None and base.cursor_before(item.cursor, anchor)
                        except base.CursorKindMismatch:
                            early = False  # a watermark saved under the other cursor kind
                        if early:
                            continue  # the server's filter is looser (coarser) than ours
                        if item.cursor == anchor and item.source_id in boundary:
                            continue  # read already, before the window moved
                        if last is None or item.cursor != last:
                            last, at_last = item.cursor, set()
                        at_last.add(item.source_id)
                        if not kept:
                            continue
                    yield item
                pages += 1
                counter.pages += 1
                read = counter.pages  # pages this pass, over every query of every scope
                try:
                    request = paginator.next_page(request, response, body, len(records))
                except PaginationBroken as exc:
                    raise SourceError(self.name, str(exc)) from None
                if request is None:
                    return
                if read >= self.options.max_pages_per_pass:
                    # A new pointer every page, forever, never trips the loop check.
                    raise SourceError(
                        self.name,
                        f"read {read:,} pages in this pass and the source still links a next "
                        f"one (max_pages_per_pass = {self.options.max_pages_per_pass:,}): a "
                        "paginator that never ends, such as empty pages or the same records "
                        "with a new token each time; check the paginator's settings, or raise "
                        "max_pages_per_pass if the source really is that large (the next pass "
                        "resumes from the last checkpoint)",
                    )
                must = self.max_pages_per_query is not None and pages >= self.max_pages_per_query
                may = self.reanchor_after_pages is not None and pages >= self.reanchor_after_pages
                if (must or may) and last is not None and last != anchor:
                    break
                if must:
                    raise SourceError(
                        self.name,
                        f"the cursor stopped advancing: {pages} pages of tickets share {anchor}, "
                        "more than one query can page through (raise page_size)",
                    )
            # Re-read from the last cursor, inclusively, skipping the ids already yielded there.
            boundary, anchor = at_last, last

    def listed_ids(
        self,
        request: PageRequest,
        paginator: Paginator | None = None,
        records_path: str | None = None,
        id_path: str | None = None,
    ) -> Iterator[str]:
        """The ids of the records `request` and its next pages list: a census's listing.

        Paged by `paginator`, records at `records_path`, ids at `id_path` (by
        default the connector's own, as a pass reads them; a listing of another
        shape, such as a GraphQL query's, names its own). Records that are no
        tickets (`keep`) or are deleted (`is_deleted`) are left out, and so are
        those without a usable id. Only for a listing whose pages a deletion
        can't shift (a server cursor, or pages anchored on the last id): an
        offset would skip the record after one deleted meanwhile.
        """
        paginator = paginator or self.paginator()
        id_path = id_path or self.id_path
        current: PageRequest | None = request
        read = 0
        while current is not None:
            response, body = self.fetch(current)
            records = self.records(body, records_path) if body is not None else []
            for raw in records:
                if not isinstance(raw, dict) or not self.keep(raw) or self.is_deleted(raw):
                    continue
                try:
                    yield source_id_text(get_path(raw, id_path), id_path)
                except ValueError:
                    continue  # no ticket without an id: a pass reports it
            read += 1
            if read >= self.options.max_pages_per_pass:
                raise SourceError(
                    self.name,
                    f"read {read:,} pages of ids and the source still links a next one "
                    f"(max_pages_per_pass = {self.options.max_pages_per_pass:,})",
                )
            try:
                current = paginator.next_page(current, response, body, len(records))
            except PaginationBroken as exc:
                raise SourceError(self.name, str(exc)) from None

    def ticket(self, raw: Any, locator: str) -> SourceTicket | BadRecord:
        """`raw` as a ticket, or a `BadRecord` naming what is wrong with it."""
        if not isinstance(raw, dict):
            return BadRecord(None, locator, WHOLE_RECORD, f"expected an object, got {raw!r:.80}")
        try:
            source_id = source_id_text(get_path(raw, self.id_path), self.id_path)
        except ValueError as exc:
            return BadRecord(None, locator, self.id_path, str(exc), raw)
        value = self.cursor_of(raw)
        if value is MISSING or value is None:
            return BadRecord(source_id, locator, self.cursor_path, "the cursor is missing", raw)
        try:
            cursor = self.parse_cursor(value)
        except ValueError as exc:
            return BadRecord(source_id, locator, self.cursor_path, str(exc), raw)
        return SourceTicket(source_id, cursor, raw, self.is_deleted(raw))


@dataclass
class _PagesRead:
    """Pages a pass has read so far, over every scope's queries (`max_pages_per_pass`)."""

    pages: int = 0


def merge_in_cursor_order(
    streams: Iterable[Iterator[SourceTicket | BadRecord]],
) -> Iterator[SourceTicket | BadRecord]:
    """Several ordered streams of tickets as one, oldest cursor first.

    Each stream is read only as far as the merge needs: a ticket goes out once
    every other stream's next one is at or after it. So a failure reading one
    stream stops the pass before anything later than that stream's unread
    tickets went out, and the watermark can't pass them. A ticket read in two
    streams at the same cursor with the same content (a subproject's issue,
    listed under its parent project too) goes out once. A `BadRecord` without
    a cursor goes out as soon as it is read.
    """
    at: Cursor | None = None
    seen: dict[str, tuple[bool, Mapping[str, Any]]] = {}
    for item in heapq.merge(*streams, key=_merge_key):
        if isinstance(item, SourceTicket):
            version = (item.deleted, item.record)
            if item.cursor != at:
                at, seen = item.cursor, {}
            elif seen.get(item.source_id) == version:
                continue
            seen[item.source_id] = version
        yield item


def _merge_key(item: SourceTicket | BadRecord) -> tuple[int] | tuple[int, Cursor]:
    return (0,) if item.cursor is None else (1, item.cursor)
