"""Paginators: each follows its API's own signal for the next page, and a repeat is a loop."""

from __future__ import annotations

import httpx
import pytest

from connectors.http.graphql import graphql_request
from connectors.http.paginators import (
    GraphQLCursorPaginator,
    LinkHeaderPaginator,
    NextTokenPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    PaginationBroken,
    PaginationLoop,
)


def response(status: int, headers: dict[str, str] | None = None, text: str = "") -> httpx.Response:
    return httpx.Response(
        status, headers=headers, text=text, request=httpx.Request("GET", "http://x")
    )


def test_token_paginator_stops_on_is_last_or_a_missing_token_never_on_a_short_page() -> None:
    paginator = NextTokenPaginator("nextPageToken", "nextPageToken", last_path="isLast")
    first = PageRequest("/search", {"jql": "x"})
    short = paginator.next_page(first, response(200), {"nextPageToken": "t1", "isLast": False}, 1)
    assert short == PageRequest("/search", {"jql": "x", "nextPageToken": "t1"})
    assert (
        paginator.next_page(first, response(200), {"nextPageToken": "t2", "isLast": True}, 50)
        is None
    )
    assert paginator.next_page(first, response(200), {}, 50) is None


def test_a_repeated_token_is_a_loop_not_another_page() -> None:
    paginator = NextUrlPaginator("next")
    request = PageRequest("/x")
    paginator.next_page(request, response(200), {"next": "/x?page=2"}, 10)
    with pytest.raises(PaginationLoop):
        paginator.next_page(request, response(200), {"next": "/x?page=2"}, 10)


def test_link_header_and_offset_paginators() -> None:
    linked = response(
        200, {"Link": '<http://x/items?page=2>; rel="next", <http://x/items?page=9>; rel="last"'}
    )
    assert LinkHeaderPaginator().next_page(PageRequest("/items"), linked, [], 30) == PageRequest(
        "http://x/items?page=2"
    )
    assert LinkHeaderPaginator().next_page(PageRequest("/items"), response(200), [], 30) is None
    offset = OffsetPaginator(10, total_path="total")
    request = PageRequest("/i", offset.first({}))
    following = offset.next_page(request, response(200), {"total": 25}, 10)
    assert following is not None and following.params["offset"] == 10
    assert (
        offset.next_page(PageRequest("/i", {"offset": 20}), response(200), {"total": 25}, 5) is None
    )


def test_page_number_and_graphql_paginators_stop_on_their_own_signals() -> None:
    pages = PageNumberPaginator(pages_path="meta.pages")
    request = PageRequest("/list", pages.first({"q": "x"}))
    assert request.params == {"q": "x", "page": 1}
    second = pages.next_page(request, response(200), {"meta": {"pages": 2}}, 3)
    assert second is not None and second.params["page"] == 2
    assert pages.next_page(second, response(200), {"meta": {"pages": 2}}, 3) is None

    graph = GraphQLCursorPaginator("data.issues.pageInfo")
    query = graphql_request("/graphql", "query($first: Int!, $after: String) {…}", {"first": 50})
    more = {"data": {"issues": {"pageInfo": {"hasNextPage": True, "endCursor": "c1"}}}}
    done = {"data": {"issues": {"pageInfo": {"hasNextPage": False, "endCursor": "c2"}}}}
    following = graph.next_page(query, response(200), more, 50)
    assert following is not None
    assert (following.method, following.url, following.check) == ("POST", "/graphql", query.check)
    assert following.json == {
        "query": query.json["query"],
        "variables": {"first": 50, "after": "c1"},
    }
    assert query.json["variables"] == {"first": 50}  # the first page's request is left as it was
    assert graph.next_page(following, response(200), done, 50) is None


def test_a_graphql_page_that_has_a_next_one_but_no_cursor_is_an_error_not_the_end() -> None:
    """Stopping there would leave the rest unread: a census would archive their tasks."""
    graph = GraphQLCursorPaginator("data.issues.pageInfo")
    query = graphql_request("/graphql", "query {…}")
    broken = {"data": {"issues": {"pageInfo": {"hasNextPage": True, "endCursor": None}}}}
    with pytest.raises(PaginationBroken, match="no endCursor"):
        graph.next_page(query, response(200), broken, 50)
    with pytest.raises(PaginationBroken, match="no pageInfo"):
        graph.next_page(query, response(200), {"data": {"issues": None}}, 0)


def test_a_token_can_go_back_in_the_json_body_of_a_search_request() -> None:
    """HubSpot's and Intercom's search APIs page by a token in the POSTed body."""
    paginator = NextTokenPaginator(
        "pages.next.starting_after", "pagination.starting_after", in_body=True
    )
    search = {"query": {"field": "updated_at"}, "pagination": {"per_page": 150}}
    first = PageRequest("/conversations/search", method="POST", json=search)
    second = paginator.next_page(
        first, response(200), {"pages": {"next": {"starting_after": "WzE"}}}, 150
    )
    assert second is not None and second.method == "POST"
    assert second.json == {
        "query": {"field": "updated_at"},
        "pagination": {"per_page": 150, "starting_after": "WzE"},
    }
    assert first.json["pagination"] == {"per_page": 150}


def test_a_backward_graphql_paginator_follows_the_start_cursor_as_before() -> None:
    """Linear lists the newest first: read from the end, with `last`/`before`."""
    graph = GraphQLCursorPaginator("data.issues.pageInfo", backward=True)
    query = graphql_request("/graphql", "query($last: Int!, $before: String) {…}", {"last": 50})
    more = {"data": {"issues": {"pageInfo": {"hasPreviousPage": True, "startCursor": "s1"}}}}
    done = {"data": {"issues": {"pageInfo": {"hasPreviousPage": False, "hasNextPage": True}}}}
    following = graph.next_page(query, response(200), more, 50)
    assert following is not None
    assert following.json["variables"] == {"last": 50, "before": "s1"}
    assert graph.next_page(following, response(200), done, 50) is None
    broken = {"data": {"issues": {"pageInfo": {"hasPreviousPage": True, "startCursor": ""}}}}
    with pytest.raises(PaginationBroken, match="no startCursor"):
        graph.next_page(query, response(200), broken, 50)
