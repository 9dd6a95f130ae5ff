"""The HTTP toolkit REST connectors stand on: session, policy, paginators, auth, the base class.

A vendor connector subclasses `RestConnector` and declares; see `connectors.redmine`
for the smallest example.
"""

from connectors.http.paginators import (
    GraphQLCursorPaginator,
    LinkHeaderPaginator,
    NextTokenPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PageRequest,
    PaginationLoop,
    Paginator,
)
from connectors.http.policy import SOURCE_POLICY, Action, Rule, source_classifier
from connectors.http.rest import HttpOptions, RestConnector
from connectors.http.session import HttpSession, RequestFailed, RetrySettings

__all__ = [
    "SOURCE_POLICY",
    "Action",
    "GraphQLCursorPaginator",
    "HttpOptions",
    "HttpSession",
    "LinkHeaderPaginator",
    "NextTokenPaginator",
    "NextUrlPaginator",
    "OffsetPaginator",
    "PageNumberPaginator",
    "PageRequest",
    "PaginationLoop",
    "Paginator",
    "RequestFailed",
    "RestConnector",
    "RetrySettings",
    "Rule",
    "source_classifier",
]
