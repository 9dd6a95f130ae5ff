"""Declarative REST: a JSON API no built-in connector covers, described in config alone.

The config says what a vendor connector declares in code (compare
`connectors.redmine`): the endpoint and its auth, the parameter that carries
the watermark and how to spell it, the paginator, and the paths of the
records, ids, cursors and tombstones. Every key is checked at config load and
a problem names the key. The request loop, paging, retries, rate limits,
re-anchoring and turning records into tickets are `RestConnector`'s.

Write-back (`writes` status and assignee, as `write_request` says): one
request per ticket's change, `method` to `path` with `{source_id}` filled in,
its JSON body the `status` and `assignee` templates merged, each `{status}`,
`{assignee_id}` and `{source_id}` in their strings replaced (a string that is
only a placeholder becomes the value itself: null to unassign, a number with
`assignee_id_kind = "int"`). It doesn't read the ticket first: a PUT or PATCH
of a value the ticket holds is harmless, so a write repeated after a crash
changes nothing more. The API's refusal (403, 404 gone, 422) is a
`WriteRefused` quoting its error body; a 409, the ticket's state conflicting
with the change (a closed ticket), is a `WriteConflict`: the source wins.

What it can't describe: request bodies of reads (GET only), OAuth flows that
need a person (authorization code), records spread over several lists, a call
per record, a write of several requests. Those need a connector in code: a
plugin (see `connectors.registry`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final, Literal
from urllib.parse import quote

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connectors.base import ConnectorOptions, Cursor, TicketWrite, unset
from connectors.errors import WriteConflict, WriteRefused
from connectors.http import (
    HttpOptions,
    LinkHeaderPaginator,
    NextTokenPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    Paginator,
    RestConnector,
)
from connectors.records import get_path, is_flag_set
from connectors.values import CursorKind, whole_seconds_utc
from sync_http.auth import (
    OAuth2,
    api_key_header,
    api_key_query,
    basic,
    bearer,
    token_endpoint,
)
from sync_http.redaction import excerpt

SINCE_FORMATS: Final = ("iso8601", "iso8601_offset", "epoch_seconds", "epoch_ms", "date")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# Auth: `[connectors.NAME.auth]`, one table per `type`; each builds its httpx auth.


class NoAuth(_Table):
    type: Literal["none"]
    """`none`: no credentials."""

    def build(self, base_url: str) -> httpx.Auth | None:
        return None


class BearerAuth(_Table):
    """`Authorization: Bearer <token>`."""

    type: Literal["bearer"]
    """`bearer`: `Authorization: Bearer <token>`."""
    token: SecretStr
    """The bearer token."""

    def build(self, base_url: str) -> httpx.Auth | None:
        return bearer(self.token)


class BasicAuth(_Table):
    type: Literal["basic"]
    """`basic`: HTTP Basic authentication."""
    username: str
    """The user name."""
    password: SecretStr
    """The password."""

    def build(self, base_url: str) -> httpx.Auth | None:
        return basic(self.username, self.password)


class HeaderKeyAuth(_Table):
    """The secret alone in a header of its own, e.g. `X-Api-Key`."""

    type: Literal["header"]
    """`header`: the secret alone in a header of its own."""
    header: str
    """The header's name, e.g. `X-Api-Key`."""
    value: SecretStr
    """The secret sent in it."""

    def build(self, base_url: str) -> httpx.Auth | None:
        return api_key_header(self.header, self.value)


class QueryKeyAuth(_Table):
    """The secret as a query parameter, e.g. `?key=…`, for APIs that take it nowhere else."""

    type: Literal["query"]
    """`query`: the secret as a query parameter."""
    param: str = Field(min_length=1)
    """The parameter's name, e.g. `key`."""
    value: SecretStr
    """The secret sent in it."""

    def build(self, base_url: str) -> httpx.Auth | None:
        return api_key_query(self.param, self.value)


class OAuth2Auth(_Table):
    """Access tokens from an OAuth 2 token endpoint, renewed before they expire.

    `client_credentials`: the client's own id and secret get each token.
    `refresh_token`: the configured refresh token does (one the server
    rotates is kept in memory only, so a restart uses the configured one).
    """

    type: Literal["oauth2"]
    """`oauth2`: access tokens from an OAuth 2 token endpoint, renewed before they expire."""
    token_url: str
    """https, or a path on base_url's own server (`/oauth/token`): the secret goes nowhere else."""
    grant: Literal["client_credentials", "refresh_token"] = "client_credentials"
    """`client_credentials` (client id and secret get each token) or `refresh_token` (the
    configured refresh token does)."""
    client_id: str | None = None
    """The OAuth client's id."""
    client_secret: SecretStr | None = None
    """The OAuth client's secret."""
    scope: str | None = None
    """The scope to ask for, if the server wants one."""
    refresh_token: SecretStr | None = None
    """The refresh token of the `refresh_token` grant; one the server rotates is kept in memory
    only."""
    client_auth: Literal["basic", "body"] = "basic"
    """How the client authenticates: HTTP Basic (RFC 6749's default) or in the form's body."""

    @model_validator(mode="after")
    def _credentials_for_the_grant(self) -> OAuth2Auth:
        if self.grant == "client_credentials" and (not self.client_id or not self.client_secret):
            raise ValueError("the client_credentials grant needs client_id and client_secret")
        if self.grant == "refresh_token" and self.refresh_token is None:
            raise ValueError("the refresh_token grant needs refresh_token")
        if self.client_secret is not None and not self.client_id:
            raise ValueError("client_secret needs client_id")
        return self

    def build(self, base_url: str) -> httpx.Auth | None:
        return OAuth2(
            token_endpoint(self.token_url, base_url),
            self.grant,
            client_id=self.client_id,
            client_secret=self.client_secret,
            client_auth=self.client_auth,
            scope=self.scope,
            refresh_token=self.refresh_token,
        )


AuthConfig = Annotated[
    NoAuth | BearerAuth | BasicAuth | HeaderKeyAuth | QueryKeyAuth | OAuth2Auth,
    Field(discriminator="type"),
]


# Paginators: `[connectors.NAME.paginator]`, one table per `type`; each builds its paginator.


class NextTokenPaging(_Table):
    """A token in the body goes back as a query parameter."""

    type: Literal["next_token"]
    """`next_token`: a token in the body goes back as a query parameter."""
    token_path: str
    """Where the next page's token is in the body."""
    param: str
    """The query parameter that carries it."""
    last_path: str | None = None
    """A flag in the body that says this page is the last (`isLast`)."""

    def build(self, page_size: int) -> Paginator:
        return NextTokenPaginator(self.token_path, self.param, self.last_path)


class NextUrlPaging(_Table):
    """The body carries the full URL of the next page."""

    type: Literal["next_url"]
    """`next_url`: the body carries the full URL of the next page."""
    url_path: str
    """Where that URL is in the body."""
    end_path: str | None = None
    """A flag in the body that says the stream is at its end (`end_of_stream`)."""

    def build(self, page_size: int) -> Paginator:
        return NextUrlPaginator(self.url_path, self.end_path)


class LinkHeaderPaging(_Table):
    """The `Link` header's `rel="next"` URL."""

    type: Literal["link_header"]
    """`link_header`: the `Link` header names the next page."""
    rel: str = "next"
    """The `rel` of the next page's link."""

    def build(self, page_size: int) -> Paginator:
        return LinkHeaderPaginator(self.rel)


class OffsetPaging(_Table):
    """`offset`/`limit` parameters; the limit is the connector's `page_size`."""

    type: Literal["offset"]
    """`offset`: offset and limit parameters; the limit is `page_size`."""
    offset_param: str = "offset"
    """The parameter carrying the offset."""
    limit_param: str = "limit"
    """The parameter carrying the limit."""
    total_path: str | None = None
    """Where the body reports how many records match; without it, an empty page ends."""

    @model_validator(mode="before")
    @classmethod
    def _no_limit(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "limit" in data:
            raise ValueError("the limit is the connector's page_size; set that instead")
        return data

    def build(self, page_size: int) -> Paginator:
        return OffsetPaginator(page_size, self.offset_param, self.limit_param, self.total_path)


class PageNumberPaging(_Table):
    """A page-number parameter counting from `start`."""

    type: Literal["page_number"]
    """`page_number`: a page-number parameter."""
    param: str = "page"
    """The parameter carrying the page number."""
    start: int = Field(default=1, ge=0)
    """The number of the first page."""
    pages_path: str | None = None
    """Where the body reports the number of pages; without it, an empty page ends."""

    def build(self, page_size: int) -> Paginator:
        return PageNumberPaginator(self.param, self.start, self.pages_path)


PagingConfig = Annotated[
    NextTokenPaging | NextUrlPaging | LinkHeaderPaging | OffsetPaging | PageNumberPaging,
    Field(discriminator="type"),
]

ParamValue = str | int | float | bool

_PLACEHOLDER: Final = re.compile(r"\{(\w*)\}")
"""`{name}` in a write's path or body template."""

BodyTemplate = dict[
    str, ParamValue | dict[str, ParamValue | dict[str, ParamValue | dict[str, ParamValue]]]
]
"""A write's JSON body as TOML tables: objects nested up to four deep, no arrays (the
schema of sync.toml spells each level)."""


class WriteRequest(_Table):
    """How write-back changes a ticket: one request, its body the templates of the fields
    changed, merged. Placeholders: `{source_id}`, `{status}`, `{assignee_id}`."""

    method: Literal["PATCH", "PUT", "POST"] = "PATCH"
    """The request's method; a repeat must be harmless (PUT and PATCH of the same value are)."""
    path: str
    """The ticket's URL under `base_url`, with `{source_id}`: `/api/v1/tickets/{source_id}`."""
    status: BodyTemplate | None = None
    """The JSON body that sets a status, with `{status}` where the source's status name goes:
    `{ ticket = { state = "{status}" } }`. Unset: statuses aren't written."""
    assignee: BodyTemplate | None = None
    """The JSON body that sets the assignee, with `{assignee_id}` where the source user id
    goes (a string that is only the placeholder becomes null to unassign). Unset: assignees
    aren't written."""
    assignee_id_kind: Literal["text", "int"] = "text"
    """How a whole-string `{assignee_id}` is sent: `text` ("7") or `int` (7)."""

    @field_validator("path")
    @classmethod
    def _path_names_the_ticket(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"{path!r} must start with '/' (the server goes in base_url)")
        _check_placeholders(path, needs="source_id", may=("source_id",))
        return path

    @field_validator("status")
    @classmethod
    def _status_template(cls, body: BodyTemplate | None) -> BodyTemplate | None:
        if body is not None:
            _check_placeholders(body, needs="status", may=("source_id", "status"))
        return body

    @field_validator("assignee")
    @classmethod
    def _assignee_template(cls, body: BodyTemplate | None) -> BodyTemplate | None:
        if body is not None:
            _check_placeholders(body, needs="assignee_id", may=("source_id", "assignee_id"))
        return body

    @model_validator(mode="after")
    def _writes_something(self) -> WriteRequest:
        if self.status is None and self.assignee is None:
            raise ValueError("give the body of a status write (status), an assignee's, or both")
        return self

    def body(self, change: TicketWrite) -> Any:
        """The JSON body of `change`: its fields' templates, filled in and merged.

        Raises `ValueError` for an assignee id that isn't the integer `assignee_id_kind` asks.
        """
        values: dict[str, str | None] = {
            "source_id": change.source_id,
            "status": change.status,
            "assignee_id": change.assignee_id,
        }
        body: dict[str, Any] = {}
        if change.status is not None and self.status is not None:
            body = _merged(body, self._filled(self.status, values))
        if change.assign and self.assignee is not None:
            body = _merged(body, self._filled(self.assignee, values))
        return body

    def url(self, source_id: str) -> str:
        """`path` with the ticket's id in it, escaped: an id can't reach another path."""
        return self.path.replace("{source_id}", quote(source_id, safe=""))

    def _filled(self, template: Any, values: Mapping[str, str | None]) -> Any:
        if isinstance(template, dict):
            return {key: self._filled(value, values) for key, value in template.items()}
        if not isinstance(template, str):
            return template
        whole = _PLACEHOLDER.fullmatch(template)
        if whole is None:  # text around placeholders: each filled in as text
            return _PLACEHOLDER.sub(lambda found: values[found.group(1)] or "", template)
        value = values[whole.group(1)]
        if whole.group(1) != "assignee_id" or value is None or self.assignee_id_kind == "text":
            return value
        if not value.strip().lstrip("-").isdigit():
            raise ValueError(f"the assignee id {value!r} is not an integer")
        return int(value)


def _check_placeholders(template: Any, *, needs: str, may: tuple[str, ...]) -> None:
    """Raises `ValueError` unless `template`'s strings name `{needs}` and nothing but `may`."""
    named: set[str] = set()
    pending = [template]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, str):
            named.update(_PLACEHOLDER.findall(item))
    allowed = ", ".join(f"{{{name}}}" for name in may)
    unknown = sorted(named - set(may))
    if unknown:
        shown = ", ".join(f"{{{name}}}" for name in unknown)
        raise ValueError(f"names {shown}; it may name {allowed}")
    if needs not in named:
        raise ValueError(f"must name {{{needs}}} (it may name {allowed})")


def _merged(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """`other` merged into `into`, objects key by key: `{"ticket": {...}}` twice is one."""
    merged = dict(into)
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


class RestApiOptions(HttpOptions):
    """The keys of a `kind = "rest"` connector; see the README for an example."""

    path: str
    """The endpoint under `base_url`, e.g. `/api/v2/tickets`."""
    auth: AuthConfig = NoAuth(type="none")
    """How requests authenticate: a table whose `type` is none, bearer, basic, header, query or
    oauth2."""
    paginator: PagingConfig
    """How the API pages: a table whose `type` is next_token, next_url, link_header, offset or
    page_number."""
    params: dict[str, ParamValue] = Field(default_factory=dict)
    """Query parameters sent with the first request of every query (sort order, filters)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers (an API version); secrets belong in `auth`."""
    page_size_param: str | None = None
    """The parameter carrying `page_size` (`per_page`); offset paging sends its `limit_param`."""
    since_param: str | None = None
    """The parameter carrying the watermark; without it every pass reads everything."""
    since_format: str = "iso8601"
    """How the watermark is spelled: `iso8601`, `iso8601_offset`, `epoch_seconds`,
    `epoch_ms`, `date`, or a strftime pattern (UTC)."""
    since_initial: str | None = None
    """Sent as is in `since_param` when there is no watermark yet; omitted when unset."""
    records_path: str = ""
    """Where the list of records is in the body; "" when the body is the list."""
    id_path: str = "id"
    """The path to each record's id."""
    cursor_path: str = "updated_at"
    """The path to each record's change cursor."""
    cursor_kind: CursorKind = "datetime"
    """`datetime` (ISO 8601 or Unix time) or `int` (a version number)."""
    deleted_path: str | None = None
    """A record field whose truthy value (true, a timestamp) marks a deletion."""
    reanchor_after_pages: int | None = Field(default=None, ge=0)
    """Re-issue the query from the last cursor seen after this many pages; 0 never.

    Unset: after every page for offset and page-number paging of a sorted query filtered
    to the second (an edit mid-scan shifts those pages), else never.
    """
    max_pages_per_query: int | None = Field(default=None, ge=1)
    """How deep the API lets one query page; the query moves its window first."""
    ordered: bool = True
    """False when the API can't sort by the cursor, oldest first."""
    write_request: WriteRequest | None = Field(default=None, exclude_if=unset)
    """How write-back (two-way sync) changes a ticket: a table of `method`, `path` and the
    JSON bodies of a `status` and an `assignee` write. Unset: the connector can't write."""

    @property
    def reanchor_every(self) -> int | None:
        """After how many pages a query re-reads from the last cursor; None for never.

        Offset and page-number paging shift when a record already read is edited
        and moves to the end: the next page then starts one record late, and that
        record is skipped for good. Where the query is sorted (`ordered`) and
        filtered on the cursor to the second (`since_param`), re-reading from the
        last cursor after every page costs nothing and skips nothing, so that is
        the default there. A day-wide filter would re-read the whole day on every
        page, and a server-side cursor (a token, a URL) doesn't shift.
        """
        if self.reanchor_after_pages is not None:
            return self.reanchor_after_pages or None
        shifting = isinstance(self.paginator, OffsetPaging | PageNumberPaging)
        filtered = self.since_param is not None and (
            self.cursor_kind == "int" or _keeps_seconds(self.since_format)
        )
        return 1 if shifting and filtered and self.ordered else None

    # Fields are validated in the order above; each check sits on the later key it involves.

    @field_validator("path")
    @classmethod
    def _relative_path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError(f"{path!r} must start with '/' (the server goes in base_url)")
        return path

    @field_validator("auth")
    @classmethod
    def _token_endpoint_may_get_secrets(cls, auth: Any, info: ValidationInfo) -> Any:
        base_url = info.data.get("base_url")
        if isinstance(auth, OAuth2Auth) and isinstance(base_url, str):
            try:
                token_endpoint(auth.token_url, base_url)
            except ValueError as exc:
                raise ValueError(f"token_url: {exc}") from None
        return auth

    @field_validator("page_size_param")
    @classmethod
    def _not_with_offset(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and isinstance(info.data.get("paginator"), OffsetPaging):
            raise ValueError("offset paging already sends page_size, as its limit_param")
        return value

    @field_validator("since_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in SINCE_FORMATS and "%" not in value:
            named = ", ".join(SINCE_FORMATS)
            raise ValueError(
                f"{value!r} is neither one of {named} nor a strftime pattern "
                "such as '%Y-%m-%d %H:%M:%S'"
            )
        return value

    @field_validator("since_initial")
    @classmethod
    def _has_a_parameter(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("since_param") is None:
            raise ValueError("needs since_param, the parameter to send it in")
        return value

    @field_validator("ordered")
    @classmethod
    def _restarts_need_order(cls, ordered: bool, info: ValidationInfo) -> bool:
        restarts = [k for k in ("reanchor_after_pages", "max_pages_per_query") if info.data.get(k)]
        if not ordered and restarts:
            verb = "restarts" if len(restarts) == 1 else "restart"
            raise ValueError(
                f"{' and '.join(restarts)} {verb} the query from the last cursor read, "
                "which needs records oldest first; drop it or set ordered = true"
            )
        return ordered


def render_since(since: Cursor, since_format: str) -> str:
    """`since` as the API wants it in its query; integer cursors go as they are.

    Times go in UTC, floored to the format's precision (seconds, milliseconds
    for `epoch_ms`, the day for `date`), so the bound stays inclusive: the
    engine's hash diff absorbs what is read twice.
    """
    if isinstance(since, int):
        return str(since)
    moment = since.astimezone(dt.UTC)
    if since_format == "epoch_ms":
        return str((moment - _EPOCH) // dt.timedelta(milliseconds=1))
    if since_format == "iso8601":
        return whole_seconds_utc(moment)
    moment = moment.replace(microsecond=0)
    if since_format == "iso8601_offset":
        return moment.isoformat()
    if since_format == "epoch_seconds":
        return str((moment - _EPOCH) // dt.timedelta(seconds=1))
    if since_format == "date":
        return moment.date().isoformat()
    return moment.strftime(since_format)


def _keeps_seconds(since_format: str) -> bool:
    """Whether `since_format` tells apart two moments a second apart (a day-wide one doesn't)."""
    second = dt.timedelta(seconds=1)
    return render_since(_EPOCH, since_format) != render_since(_EPOCH + second, since_format)


class RestApiConnector(RestConnector):
    kind = "rest"
    summary = "any JSON REST API described in config: path, auth, since parameter, paginator"
    Options = RestApiOptions
    options: RestApiOptions
    writes = frozenset({"status", "assignee"})

    @classmethod
    def writes_with(cls, options: ConnectorOptions) -> frozenset[str]:
        """The fields `write_request` has a body template for."""
        request = getattr(options, "write_request", None)
        if not isinstance(request, WriteRequest):
            return frozenset()
        return frozenset(field for field in cls.writes if getattr(request, field) is not None)

    _DECLARED: ClassVar[tuple[str, ...]] = (
        "path",
        "records_path",
        "id_path",
        "cursor_path",
        "cursor_kind",
        "max_pages_per_query",
        "ordered",
    )
    """What a vendor connector declares per class and this one reads from its config."""

    def __init__(
        self, name: str, options: ConnectorOptions, stop: threading.Event | None = None
    ) -> None:
        super().__init__(name, options, stop)
        # Vendor connectors declare these per class; the base and the engine read
        # them through the instance (`self.path`, `source.ordered`), so this one sets
        # them per instance.
        for attribute in self._DECLARED:
            setattr(self, attribute, getattr(self.options, attribute))
        self.reanchor_after_pages = self.options.reanchor_every

    def auth(self) -> httpx.Auth | None:
        return self.options.auth.build(self.options.base_url)

    def fetch(self, request: PageRequest) -> tuple[httpx.Response, Any]:
        auth = self.options.auth
        if isinstance(auth, QueryKeyAuth) and auth.param in httpx.URL(request.url).params:
            # A next-page link echoing the key: the auth sets it again on the way out, and
            # the URL any error shows goes without it.
            url = httpx.URL(request.url).copy_remove_param(auth.param)
            request = PageRequest(str(url), request.params, request.headers)
        return super().fetch(request)

    def headers(self) -> dict[str, str]:
        return dict(self.options.headers)

    def paginator(self) -> Paginator:
        return self.options.paginator.build(self.options.page_size)

    def params(self, since: Cursor | None) -> dict[str, Any]:
        options = self.options
        params: dict[str, Any] = dict(options.params)
        if options.page_size_param is not None:
            params[options.page_size_param] = options.page_size
        if options.since_param is not None:
            if since is not None:
                params[options.since_param] = render_since(since, options.since_format)
            elif options.since_initial is not None:
                params[options.since_param] = options.since_initial
        return params

    def is_deleted(self, record: Mapping[str, Any]) -> bool:
        path = self.options.deleted_path
        return path is not None and is_flag_set(get_path(record, path))

    def write(self, change: TicketWrite) -> None:
        """One `write_request` (see the module). Raises `WriteRefused` quoting the API's
        refusal, `WriteConflict` on a 409, `SourceError` when the API can't be reached."""
        request = self.options.write_request
        if request is None:  # config load refuses write_back without it
            raise TypeError(f"connector {self.name!r}: no write_request to write with")
        field = "+".join(change.fields)
        target = change.target
        try:
            body = request.body(change)
        except ValueError as exc:  # an id that can't go as the integer the config asks
            raise WriteRefused(self.name, change.source_id, field, target, str(exc)) from None
        response = self.send_write(request.method, request.url(change.source_id), body)
        if response.status_code < 300:
            return
        said = _said(response)
        if response.status_code == 409:
            raise WriteConflict(
                self.name,
                change.source_id,
                field,
                target,
                f"the ticket's state conflicts with the change (the API answered 409: {said}); "
                "the source's state wins over Fragment's",
            )
        if response.status_code == 404:
            said = f"the ticket is gone (the API answered 404: {said})"
        else:
            said = f"the API answered {response.status_code}: {said}"
        raise WriteRefused(self.name, change.source_id, field, target, said)


def _said(response: httpx.Response) -> str:
    """What an API's refusal says: its body, JSON made compact, cut to a few hundred chars."""
    try:
        text = json.dumps(response.json(), ensure_ascii=False)
    except ValueError:
        text = response.text
    return excerpt(text, 300) or "(an empty body)"
