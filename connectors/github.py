"""GitHub: the issues of one or more repositories, every state, oldest change first.

Calls, for each repository, `GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc
&since=W&per_page=N` with a Bearer token (a personal access token, or a GitHub
App's installation token, minted with the app's key and renewed before its
hour is up: `sync_http.auth.GitHubAppAuth`) and follows the `Link` header's
`rel="next"` (page numbers are never computed). `state=all` matters: the
default is open issues only.

- `since` filters on `updated_at` at whole seconds. It is read as inclusive:
  GitHub's older docs say "at or after"; today's "after" is wording shared by
  every `since` parameter (github/docs#25608). Ids read at the bound are
  skipped, and the engine's hash diff absorbs any other re-read.
- Page numbers shift when an issue already read is edited mid-scan (it jumps
  to the end, the rest move up a slot, one is skipped for good). So every page
  re-anchors: the query is issued again from the last `updated_at` seen.
  The `Link` header is followed only when a whole page shares one second; on
  a large repository it carries an `after=` cursor (deep `page=` numbers are
  a 422), a keyset that edits don't shift.
- Pull requests come through this endpoint too, marked by a `pull_request`
  key; they are dropped unless `include_pull_requests` is set. A dropped one
  still moves the re-anchoring cursor (see `RestConnector.keep`).
- Rate limits: 403 or 429 with `x-ratelimit-remaining: 0` waits until
  `x-ratelimit-reset`; a secondary limit (`retry-after`, or only a message)
  waits at least `rate_limit_floor`, doubling. A 403 without those signals is
  a permission problem and fails the run saying which permission.
- Conditional requests: see `GitHubConnector.fetch`.
- A renamed or transferred repository answers its old name with a 301 to
  `/repositories/{id}/...`; the session follows it (same origin, token kept)
  and logs once that `repositories` should be updated.
- Several repositories: one query each, merged in `updated_at` order
  (`RestConnector.scopes`), all on one token's quota and one request budget.
- The ticket id is the issue's `id`, unique across all repositories of the
  server and kept when the repository is renamed, so a repository added to
  `repositories` changes no task's uid; the `number` people see, unique only
  within its repository, is kept as a field. Transferring an issue to another
  repository makes a new issue there (a new `id`, `node_id` and `number`; the
  old URL redirects to it): it becomes a new task, even between two of the
  connector's repositories, and the old issue vanishes from its list. A pass
  can't see that, nor a deletion: a census (`scope_ids`) archives both tasks.
- The census lists each repository's issues through GraphQL (`POST /graphql`):
  `issues(first: N, after: $cursor, orderBy: {field: CREATED_AT, direction:
  ASC}, states: [OPEN, CLOSED])`, `databaseId` only (the REST `id` a pass keys
  tasks by). Its cursors are keysets, so an issue deleted while the listing
  runs shifts nothing; the REST listing's page numbers would move every later
  issue up a slot and skip one, whose task would be archived though live.
  One point a page of GraphQL's own hourly quota, apart from REST's. Pull
  requests are not in that connection, and GraphQL gives them the pull
  request's id, not the issue id the REST listing keys them by: with
  `include_pull_requests` the connector takes no census.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import WHOLE_SECOND_LOOKBACK, Cursor, unset
from connectors.http import (
    SOURCE_POLICY,
    Action,
    GraphQLCursorPaginator,
    HttpOptions,
    LinkHeaderPaginator,
    PageRequest,
    Paginator,
    RestConnector,
    Rule,
    graphql_request,
)
from connectors.values import HttpUrl, whole_seconds_utc
from sync_http.auth import GitHubAppAuth, bearer, rsa_private_key
from sync_http.policy import Policy

API_VERSION = "2022-11-28"
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+")

CENSUS_QUERY = """
query($owner: String!, $name: String!, $first: Int!, $after: String) {
  repository(owner: $owner, name: $name) {
    issues(first: $first, after: $after, orderBy: {field: CREATED_AT, direction: ASC},
           states: [OPEN, CLOSED]) {
      nodes { databaseId }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
"""A page of one repository's issues for the census: their ids and the cursor to the next."""
CENSUS_PAGE_INFO = "data.repository.issues.pageInfo"
CENSUS_NODES = "data.repository.issues.nodes"

GITHUB_POLICY: Policy = {
    **SOURCE_POLICY,
    401: Rule(
        Action.FAIL_AUTH,
        "GitHub refused the credentials: the token is invalid, expired or revoked",
    ),
    403: Rule(
        Action.FAIL_AUTH,
        "GitHub denied the token permission to read this repository's issues: a "
        "fine-grained token needs 'Issues: read' on the repository, a classic token the "
        "'repo' scope for a private one; an organisation with SAML SSO must authorise it",
    ),
    404: Rule(
        Action.FAIL,
        "no such repository, or the token can't see it (GitHub answers 404 for private "
        "repositories outside the token's access): check repository and the token",
    ),
    410: Rule(Action.FAIL, "issues are disabled for this repository (410 Gone)"),
}
"""GitHub's answers. Rate limits in 403s are recognised before this table is read."""


class GitHubOptions(HttpOptions):
    repositories: list[str] = Field(default_factory=list, exclude_if=unset)
    """`owner/name` of each repository, e.g. `["octo-org/helpdesk", "octo-org/infra"]`; each is
    read by requests of its own, all on one token's quota."""
    repository: str | None = Field(default=None, exclude_if=unset)
    """One repository, `owner/name`: shorthand for `repositories = ["owner/name"]`."""
    token: SecretStr | None = None
    """A fine-grained token with 'Issues: read', or a classic one (or set the app_* keys)."""
    app_id: str | int | None = None
    """A GitHub App's client ID (GitHub recommends it) or numeric app ID, to act as the app."""
    installation_id: int | None = Field(default=None, ge=1)
    """The app's installation on the repository's account (its settings URL ends with it)."""
    private_key: SecretStr | None = None
    """The app's private key, PEM: `${GITHUB_APP_KEY}` with `GITHUB_APP_KEY_FILE=/path/app.pem`."""
    base_url: HttpUrl = "https://api.github.com"
    """GitHub Enterprise Server: `https://HOST/api/v3`."""
    include_pull_requests: bool = False
    """GitHub lists pull requests among issues; they are left out unless this is true (the
    connector then takes no census: see its page of the docs)."""
    page_size: int = Field(default=100, ge=1, le=100)
    """Issues per request, up to 100."""

    @field_validator("repository")
    @classmethod
    def _owner_and_name(cls, value: str | None) -> str | None:
        if value is not None:
            _check_owner_and_name(value)
        return value

    @field_validator("repositories")
    @classmethod
    def _each_owner_and_name_once(cls, values: list[str]) -> list[str]:
        for value in values:
            _check_owner_and_name(value)
        folded = [v.lower() for v in values]  # GitHub's names ignore case
        repeated = sorted({v for v in values if folded.count(v.lower()) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        return values

    @model_validator(mode="after")
    def _list_or_shorthand(self) -> GitHubOptions:
        if self.repository is not None and self.repositories:
            raise ValueError("set repositories or its shorthand repository, not both")
        if self.repository is None and not self.repositories:
            raise ValueError('set repositories (e.g. ["octo-org/helpdesk"]) or repository')
        return self

    @property
    def scopes(self) -> list[str]:
        """The repositories read, one query each."""
        return [self.repository] if self.repository is not None else list(self.repositories)

    @field_validator("private_key")
    @classmethod
    def _rsa_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None:
            rsa_private_key(key.get_secret_value())  # its reason names no part of the key
        return key

    @model_validator(mode="after")
    def _one_credential(self) -> GitHubOptions:
        app: dict[str, object] = {
            "app_id": self.app_id,
            "installation_id": self.installation_id,
            "private_key": self.private_key,
        }
        given = [name for name, value in app.items() if value is not None]
        if self.token is not None and given:
            raise ValueError(f"set either token or the GitHub App's keys ({', '.join(given)})")
        if self.token is None and len(given) < len(app):
            missing = [name for name in app if name not in given]
            raise ValueError(
                "set token (a personal access token) or, to act as a GitHub App, "
                f"app_id, installation_id and private_key (missing: {', '.join(missing)})"
            )
        return self


def _check_owner_and_name(value: str) -> None:
    if not _REPOSITORY.fullmatch(value) or value.endswith(("/.", "/..")):
        raise ValueError(f"{value!r} is not owner/name (e.g. octo-org/helpdesk)")


@dataclass(frozen=True)
class _RememberedPage:
    params: tuple[tuple[str, str], ...]
    etag: str
    body: Any


_REMEMBERED_PAGES: dict[tuple[str, str, str], _RememberedPage] = {}
"""The last single-page answer per server, repository and token; this process only."""


class GitHubConnector(RestConnector):
    kind = "github"
    summary = (
        "GitHub issues of one or more repositories (REST); needs repositories and a token "
        "(Issues: read)"
    )
    Options = GitHubOptions
    options: GitHubOptions

    id_path = "id"
    cursor_path = "updated_at"
    default_lookback = WHOLE_SECOND_LOOKBACK
    cursors_from_source_clock = True
    reanchor_after_pages = 1
    policy = GITHUB_POLICY
    moved_hint = (
        "GitHub moved the repository (renamed or transferred) and redirects to it by id: "
        "put its new owner/name in repositories (or repository)"
    )

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "#{number} {title}",
        "url": "{html_url}",
        "status": "state",
        "status_map": {"open": "TODO", "closed": "DONE"},
        "external_created_at": "created_at",
        "external_updated_at": "updated_at",
        "fields": {
            "issue_number": "number",
            "state_reason": "state_reason",
            "labels": "label_names",
            "milestone": "milestone.title",
            "author": "user.login",
            "assignee": "assignee.login",
            "comments": "comments",
            "is_pull_request": "is_pull_request",
            "source_status": "state_text",  # "closed (not_planned)", added by enrich
        },
    }

    def auth(self) -> httpx.Auth:
        options = self.options
        if options.token is not None:
            return bearer(options.token)
        assert options.installation_id is not None and options.private_key is not None
        return GitHubAppAuth(
            options.base_url,
            str(options.app_id),
            options.installation_id,
            options.private_key,
            headers=self.headers(),
        )

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}

    def paginator(self) -> Paginator:
        return LinkHeaderPaginator()

    def scopes(self) -> Sequence[str | None]:
        return self.options.scopes

    @property
    def issues_path(self) -> str:
        """The issues of the repository this instance reads (`self.scope`)."""
        return f"/repos/{self.scope}/issues"

    def first_request(self, since: Cursor | None, paginator: Paginator) -> PageRequest:
        return PageRequest(self.issues_path, self.params(since))

    def params(self, since: Cursor | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "state": "all",
            "sort": "updated",
            "direction": "asc",
            "per_page": self.options.page_size,
        }
        if isinstance(since, dt.datetime):
            # GitHub compares whole seconds; flooring keeps the bound inclusive.
            params["since"] = whole_seconds_utc(since)
        return params

    @property
    def graphql_url(self) -> str:
        """GitHub's GraphQL endpoint: `/graphql` beside the REST API's root
        (`https://HOST/api/graphql` on GitHub Enterprise Server, whose REST is `/api/v3`)."""
        base = self.options.base_url.rstrip("/")
        if base.endswith("/api/v3"):
            return base.removesuffix("/v3") + "/graphql"
        return base + "/graphql"

    @property
    def takes_census(self) -> bool:
        """Not with pull requests: GraphQL can't list the ids they are tracked by."""
        return not self.options.include_pull_requests

    def scope_ids(self) -> Iterator[str]:
        """Every issue of every repository, open or closed, by id: GraphQL, `page_size` a page.

        Oldest first along GraphQL's cursor (see the module docstring): an issue
        deleted or transferred meanwhile shifts nothing. A repository that
        can't be read fails the census (`SourceError`), never lists nothing.
        """
        for repository in self.options.scopes:
            owner, name = repository.split("/", 1)
            variables = {"owner": owner, "name": name, "first": self.options.page_size}
            request = graphql_request(self.graphql_url, CENSUS_QUERY, variables)
            paginator = GraphQLCursorPaginator(CENSUS_PAGE_INFO)
            yield from self.listed_ids(request, paginator, CENSUS_NODES, "databaseId")

    def keep(self, record: Mapping[str, Any]) -> bool:
        return self.options.include_pull_requests or "pull_request" not in record

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        labels = record.get("labels") or []
        names = [label.get("name") if isinstance(label, dict) else label for label in labels]
        return {
            **record,
            "label_names": names,
            "is_pull_request": "pull_request" in record,
            "state_text": state_text(record),
            "repository": self.scope,  # owner/name as configured: `number` is unique only in it
        }

    def fetch(self, request: PageRequest) -> tuple[httpx.Response, Any]:
        """GET one page, conditionally when the same query was answered in one page before.

        A daemon polling a quiet repository asks the same question every pass
        (`since` = a watermark that has not moved) and gets the same page. So
        the last answer that fit in one page is remembered with its ETag, and
        the identical query goes out with `If-None-Match`; a 304 costs no
        quota. A 304 replays the remembered page instead of yielding nothing,
        so it reads exactly as a 200 would: a pass that read the page but
        could not push it gets its tickets again. Memory only, per process:
        ETags belong to one token and one page (App installation tokens
        rotate hourly, which just costs one full answer). Answers of several
        pages are not remembered: they are a catch-up, where one request saved
        is nothing.
        """
        first_page = request.url == self.issues_path
        if not first_page:
            return super().fetch(request)
        key = self._conditional_key()
        params = tuple(sorted((name, str(value)) for name, value in request.params.items()))
        remembered = _REMEMBERED_PAGES.get(key)
        if remembered is None or remembered.params != params:
            response, body = super().fetch(request)
        else:
            conditional = PageRequest(
                request.url, request.params, {**request.headers, "If-None-Match": remembered.etag}
            )
            response, body = super().fetch(conditional)
            if response.status_code == 304:
                return response, remembered.body
        etag = response.headers.get("etag")
        if etag and "next" not in response.links:
            _REMEMBERED_PAGES[key] = _RememberedPage(params, etag, body)
        else:
            _REMEMBERED_PAGES.pop(key, None)
        return response, body

    def _conditional_key(self) -> tuple[str, str, str]:
        options = self.options
        # An app's installation tokens change hourly; its ETags are the installation's.
        who = (
            options.token.get_secret_value()
            if options.token is not None
            else f"app {options.app_id} installation {options.installation_id}"
        )
        digest = hashlib.blake2b(who.encode(), digest_size=16)
        return (options.base_url, str(self.scope), digest.hexdigest())


def state_text(issue: Mapping[str, Any]) -> str | None:
    """The issue's state as GitHub words it, with the reason when there is one:
    `open`, `closed (completed)`, `closed (not_planned)`, `open (reopened)`."""
    state, reason = issue.get("state"), issue.get("state_reason")
    if state is None:
        return None
    return f"{state} ({reason})" if reason else str(state)
