"""Paginators: small swappable objects that say where the next page is.

Each reads a response and either returns the next `PageRequest` or None.
They stop only on an explicit signal (no next token, no next link, an
`isLast`/`end_of_stream` flag, the total reached), never because a page came
back short: servers return short pages mid-stream. The base class refuses a
token or URL it has already followed (`PaginationLoop`), so a server that
repeats itself fails the run instead of spinning.
"""

from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.records import MISSING, get_path
from sync_http.redaction import excerpt
from sync_http.session import Validate


class PaginationBroken(Exception):
    """The server's answer points to no next page that can be followed, though it has one."""


class PaginationLoop(PaginationBroken):
    """The server sent a page pointer it had already sent."""


@dataclass
class PageRequest:
    """Where to get a page: a URL (absolute or relative), its query parameters and headers;
    for a query sent as a body (a search API, GraphQL), the method and the JSON body."""

    url: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    json: Any = None
    """The JSON body (None: none), sent with `method`, POST for a search or a GraphQL query."""
    check: Validate | None = None
    """Reads an answer its status accepts, for errors an API puts in a 200's body (GraphQL's
    `errors`: `connectors.http.graphql.graphql_answer`); see `sync_http.session.Validate`."""

    def with_params(self, **params: Any) -> PageRequest:
        """This request with `params` set in its query, the rest (method, body) as it was."""
        return dataclasses.replace(self, params={**self.params, **params})

    def with_body_value(self, path: str, value: Any) -> PageRequest:
        """This request with `value` at the dotted `path` of its JSON body (`variables.after`,
        `pagination.starting_after`), the rest as it was."""
        body = copy.deepcopy(self.json) if isinstance(self.json, dict) else {}
        *parents, last = path.split(".")
        node = body
        for key in parents:
            child = node.get(key)
            node[key] = child = child if isinstance(child, dict) else {}
            node = child
        node[last] = value
        return dataclasses.replace(self, json=body)


class Paginator(ABC):
    """Base: `next_page` plus loop detection. One instance per query."""

    def __init__(self) -> None:
        self._followed: set[str] = set()

    @abstractmethod
    def next_page(
        self, current: PageRequest, response: httpx.Response, body: Any, count: int
    ) -> PageRequest | None:
        """The request for the page after `current` (which gave `count` records), or None."""

    def _follow(self, pointer: str) -> None:
        if pointer in self._followed:
            shown = excerpt(pointer, 200)
            raise PaginationLoop(f"the server sent the same page pointer twice: {shown}")
        self._followed.add(pointer)


def _present(value: Any) -> bool:
    return value is not MISSING and value is not None and value != ""


class NextTokenPaginator(Paginator):
    """A token in the body goes back as a parameter (Jira's `nextPageToken`), or, with
    `in_body`, at the dotted path `param` of the request's JSON body (HubSpot's search
    `after`, Intercom's `pagination.starting_after`)."""

    def __init__(
        self, token_path: str, param: str, last_path: str | None = None, *, in_body: bool = False
    ) -> None:
        super().__init__()
        self.token_path, self.param, self.last_path = token_path, param, last_path
        self.in_body = in_body

    def next_page(
        self, current: PageRequest, response: httpx.Response, body: Any, count: int
    ) -> PageRequest | None:
        if self.last_path is not None and get_path(body, self.last_path) is True:
            return None
        token = get_path(body, self.token_path)
        if not _present(token):
            return None
        self._follow(str(token))
        if self.in_body:
            return current.with_body_value(self.param, token)
        return current.with_params(**{self.param: token})


class NextUrlPaginator(Paginator):
    """A full URL to the next page in the body (Zendesk's `after_url`).

    `end_path`: a flag that is true on the last page (`end_of_stream`);
    `more_path`: one that is true while more pages follow (`meta.has_more`).
    """

    def __init__(
        self, url_path: str, end_path: str | None = None, more_path: str | None = None
    ) -> None:
        super().__init__()
        self.url_path, self.end_path, self.more_path = url_path, end_path, more_path

    def next_page(
        self, current: PageRequest, response: httpx.Response, body: Any, count: int
    ) -> PageRequest | None:
        if self.end_path is not None and get_path(body, self.end_path) is True:
            return None
        if self.more_path is not None and get_path(body, self.more_path) is not True:
            return None
        url = get_path(body, self.url_path)
        if not _present(url):
            return None
        self._follow(str(url))
        return PageRequest(str(url))


class LinkHeaderPaginator(Paginator):
    """The `Link: <…>; rel="next"` header (GitHub, ServiceNow, Freshdesk)."""

    def __init__(self, rel: str = "next") -> None:
        super().__init__()
        self.rel = rel

    def next_page(
        self, current: PageRequest, response: httpx.Response, body: Any, count: int
    ) -> PageRequest | None:
        link = response.links.get(self.rel)
        if not link or not link.get("url"):
            return None
        self._follow(link["url"])
        return PageRequest(link["url"])


class OffsetPaginator(Paginator):
    """`offset`/`limit` parameters; stops at the reported total, else on an empty page.

    Offset paging over a set that changes while it is read skips or repeats
    rows; connectors using it re-anchor on the cursor (see `RestConnector`).
    """

    def __init__(
        self,
        limit: int,
        offset_param: str = "offset",
        limit_param: str = "limit",
        total_path: str | None = None,
    ) -> None:
        super().__init__()
        self.limit, self.offset_param, self.limit_param = limit, offset_param, limit_param
        self.total_path = total_path

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, self.offset_param: 0, self.limit_param: self.limit}

    def next_page(
        self, current: PageRequest, response: httpx.Response, body: Any, count: int
    ) -> PageRequest | None:
        offset = int(current.params.get(self.offset_param, 0)) + count
        if self.total_path is not None:
            total = get_path(body, self.total_path)
            if isinstance(total, int) and offset >= total:
                return None
        if count == 0:
            return None  # without a total, an empty page is the only end there is
        self._follow(str(offset))
        return current.with_params(**{self.offset_param: offset})


class PageNumberPaginator(Paginator):
    """A `page` parameter; stops at the reported page count, else on an empty page."""

    def __init__(self, param: str = "page", start: int = 1, pages_path: str | None = None) -> None:
        super().__init__()
        self.param, self.start, self.pages_path = param, start, pages_path

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, self.param: self.start}

    def next_page(
        self, current: PageRequest, response: httpx.Response, body: Any, count: int
    ) -> PageRequest | None:
        page = int(current.params.get(self.param, self.start))
        if self.pages_path is not None:
            pages = get_path(body, self.pages_path)
            if isinstance(pages, int) and page >= pages:
                return None
        if count == 0:
            return None
        self._follow(str(page + 1))
        return current.with_params(**{self.param: page + 1})


class GraphQLCursorPaginator(Paginator):
    """Relay-style `pageInfo { hasNextPage endCursor }` at `page_info_path` of the answer
    (`data.repository.issues.pageInfo`); the cursor goes back as the query's `variable`.

    `backward`: the pages are read from the end of the list to its start (`last` and
    `before`), so `hasPreviousPage` and `startCursor` point to the next one, and the
    variable is `before` unless named. Linear lists the most recently updated first: read
    backward, its pages come oldest change first.

    For a request `connectors.http.graphql.graphql_request` made: the variable is set
    in the JSON body's `variables`. A page that says it has a next one but gives no
    cursor is an error, not the end: stopping there would leave the rest unread.
    """

    def __init__(
        self, page_info_path: str, variable: str | None = None, *, backward: bool = False
    ) -> None:
        super().__init__()
        self.page_info_path = page_info_path
        self.variable = variable or ("before" if backward else "after")
        self.more, self.cursor = (
            ("hasPreviousPage", "startCursor") if backward else ("hasNextPage", "endCursor")
        )

    def next_page(
        self, current: PageRequest, response: httpx.Response, body: Any, count: int
    ) -> PageRequest | None:
        info = get_path(body, self.page_info_path)
        if not isinstance(info, dict):
            raise PaginationBroken(f"the answer has no pageInfo at {self.page_info_path!r}")
        if info.get(self.more) is not True:
            return None
        cursor = info.get(self.cursor)
        if not _present(cursor):
            raise PaginationBroken(
                f"the answer says it has a next page but gives no {self.cursor} at "
                f"{self.page_info_path!r}"
            )
        self._follow(str(cursor))
        return current.with_body_value(f"variables.{self.variable}", cursor)
