"""What a REST connector is declared with: the base class and the paginators, here, and the
policy and session names it uses from the transport toolkit (`sync_http`), re-exported.

A vendor connector subclasses `RestConnector` and declares; see `connectors.redmine`
for the smallest example. A query sent as a JSON body (a search API, GraphQL) is a
`PageRequest` with `method` and `json`; `graphql_request` makes a GraphQL one.
Transport (session, bounded reads, auth, policy, pacing, redaction) is
`sync_http`'s, shared with the Fragment client.
"""

from connectors.http.graphql import graphql_answer, graphql_classifier, graphql_request
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
    Paginator,
)
from connectors.http.rest import Conversations, HttpOptions, RestConnector
from sync_http.policy import SOURCE_POLICY, Action, Rule, source_classifier
from sync_http.session import HttpSession, RequestFailed, RetrySettings

__all__ = [
    "SOURCE_POLICY",
    "Action",
    "Conversations",
    "GraphQLCursorPaginator",
    "HttpOptions",
    "HttpSession",
    "LinkHeaderPaginator",
    "NextTokenPaginator",
    "NextUrlPaginator",
    "OffsetPaginator",
    "PageNumberPaginator",
    "PageRequest",
    "PaginationBroken",
    "PaginationLoop",
    "Paginator",
    "RequestFailed",
    "RestConnector",
    "RetrySettings",
    "Rule",
    "graphql_answer",
    "graphql_classifier",
    "graphql_request",
    "source_classifier",
]
