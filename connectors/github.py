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
- Comments (`read_comments`): see `GitHubConnector.conversations`.
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
- People: an issue names its assignee by `login` only. `people` asks
  `GET /users/{login}` once per login (GitHub has no batch lookup), on the
  same token's quota and rate-limit handling as the issues; `email` there is
  the address the user made public, null for most, who then resolve without
  one, saying so.
- Write-back (`writes` status and assignee): `PATCH /repos/{owner}/{repo}/issues/{number}`;
  see `GitHubConnector.write`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import (
    WHOLE_SECOND_LOOKBACK,
    BadRecord,
    Cursor,
    Person,
    SourceComment,
    SourceTicket,
    TicketWrite,
    unset,
)
from connectors.comments import CommentShape, read_comments
from connectors.errors import (
    FixConfiguration,
    SourceError,
    WriteConflict,
)
from connectors.http import (
    SOURCE_POLICY,
    Action,
    Conversations,
    GraphQLCursorPaginator,
    HttpOptions,
    LinkHeaderPaginator,
    PageRequest,
    PaginationBroken,
    Paginator,
    RestConnector,
    Rule,
    graphql_request,
)
from connectors.http.people import NO_SUCH_USER, person
from connectors.values import HttpUrl, whole_seconds_utc
from sync_http.auth import GitHubAppAuth, bearer, rsa_private_key
from sync_http.policy import Policy

API_VERSION = "2022-11-28"
COMMENT_SHAPE = CommentShape(body="body", author="user.login", author_id="user.id")
"""An issue comment as GitHub lists it; `body` is the markdown as written. None are private."""
COMMENTS_PER_PAGE = 100
"""GitHub's largest page of an issue's comments."""
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+")
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(\[bot\])?")
"""A user's or an app bot's login (`dependabot[bot]`): what may go in `/users/{login}`."""
NO_PUBLIC_EMAIL = "no public email on the GitHub profile"

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
PLACES_QUERY = """
query($owner: String!, $name: String!, $first: Int!, $after: String) {
  repository(owner: $owner, name: $name) {
    issues(first: $first, after: $after, orderBy: {field: CREATED_AT, direction: DESC},
           states: [OPEN, CLOSED]) {
      nodes { databaseId number }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
"""A page of one repository's issues, newest first, by id and number: where to write one."""
PLACES_PER_PAGE = 100
"""GraphQL's largest page: each costs one point."""

WRITE_STATES: dict[str, tuple[str, str | None]] = {
    "open": ("open", None),
    "open (reopened)": ("open", None),
    "closed": ("closed", "completed"),
    "closed (completed)": ("closed", "completed"),
    "closed (not_planned)": ("closed", "not_planned"),
}
"""The status names `write_back.status` may give a GitHub issue: its `state` and the
`state_reason` a close sends. The same words as the `source_status` field shows."""
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
_REMEMBERED_COMMENTS: OrderedDict[tuple[str, str, str], _RememberedPage] = OrderedDict()
"""The last single-page comment listing per server, issue and token, the most recently used
`REMEMBERED_COMMENT_LISTINGS` of them; this process only."""
REMEMBERED_COMMENT_LISTINGS = 500
"""How many issues' comment listings are remembered for conditional requests: a few MB."""
_COMMENTS_PATH = re.compile(r"/repos/[^/]+/[^/]+/issues/\d+/comments")
_ISSUE_PLACES: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()
"""Where each issue seen lives, by server and issue id: its repository and number, as a pass
read them or a write-back's search found them; the most recently seen `REMEMBERED_PLACES`,
this process only (ids and numbers never change: a transferred issue gets a new id)."""
REMEMBERED_PLACES = 100_000
"""How many issues' places are remembered for write-back: about 15 MB."""


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
    comments = "requests"
    writes = frozenset({"status", "assignee"})
    write_refusals = frozenset({403, 404, 409, 410, 422})
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
        "assignee": "assignee.login",
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

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """Logins to their public emails: one `GET /users/{login}` each (no batch exists)."""
        for login in dict.fromkeys(user_id for user_id in user_ids if user_id):
            if not _LOGIN.fullmatch(login):
                yield Person(login, None, reason="not a GitHub login")
                continue
            user = self.lookup(PageRequest(f"/users/{quote(login)}"))
            if not isinstance(user, dict):
                yield Person(login, None, reason=NO_SUCH_USER)
            else:
                yield person(login, user.get("email"), user.get("name"), NO_PUBLIC_EMAIL)

    def keep(self, record: Mapping[str, Any]) -> bool:
        return self.options.include_pull_requests or "pull_request" not in record

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        labels = record.get("labels") or []
        names = [label.get("name") if isinstance(label, dict) else label for label in labels]
        number = record.get("number")
        if self.scope is not None and isinstance(number, int):
            self._remember_place(str(record.get("id")), (self.scope, number))
        return {
            **record,
            "label_names": names,
            "is_pull_request": "pull_request" in record,
            "state_text": state_text(record),
            "repository": self.scope,  # owner/name as configured: `number` is unique only in it
        }

    def conversations(self, tickets: Sequence[SourceTicket]) -> Conversations:
        """Each issue's comments: `GET /repos/{owner}/{repo}/issues/{number}/comments`.

        One request per 100 comments of each issue read, and none at all for an
        issue whose `comments` count is 0: the listing says so for free. The
        repository-wide listing (`/issues/comments?since=`) would cost less, but
        only holds the comments changed since the watermark, where the summary
        needs each changed issue's whole conversation. A pull request's comments
        come the same way (its conversation tab; review comments on code are
        another endpoint, not read). An issue gone since it was listed (404)
        keeps `comments` None.
        """
        found: dict[str, list[SourceComment] | BadRecord | None] = {}
        for ticket in tickets:
            record = ticket.record
            count, number = record.get("comments"), record.get("number")
            if count == 0:
                found[ticket.source_id] = []
                continue
            if not isinstance(number, int) or isinstance(number, bool):
                found[ticket.source_id] = BadRecord(
                    ticket.source_id,
                    "issue",
                    "number",
                    f"no issue number to read the comments of: {number!r:.40}",
                    record,
                    ticket.cursor,
                )
                continue
            path = f"/repos/{record.get('repository') or self.scope}/issues/{number}/comments"
            request = PageRequest(path, {"per_page": COMMENTS_PER_PAGE})
            raw = self.listing(request, LinkHeaderPaginator())
            found[ticket.source_id] = (
                None if raw is None else read_comments(ticket, raw, COMMENT_SHAPE)
            )
        return found

    def write(self, change: TicketWrite) -> None:
        """`PATCH /repos/{owner}/{repo}/issues/{number}` with `state` (and `state_reason`)
        and `assignees`, after reading the issue (one request) so that a change already
        made sends nothing.

        A status is one of `WRITE_STATES` (any case): "closed" closes the issue as
        completed, "closed (not_planned)" as not planned, "open" keeps it open. A closed
        issue is where the source put it, and that wins over Fragment: "open" asked of
        it is a `WriteConflict`, a close asked of it is done already, whatever the
        reason. The assignee replaces the issue's assignees with that one login (None
        clears them); GitHub drops that change without a word for a token without push
        access, which its answer shows, and which is refused here. Where the issue is:
        see `_place`. Raises `FixConfiguration` for a status GitHub has not.
        """
        target = None
        if change.status is not None:
            target = WRITE_STATES.get(change.status.strip().casefold())
            if target is None:
                raise FixConfiguration(
                    f"connector {self.name!r}: GitHub has no issue status {change.status!r} "
                    f"(write_back.status takes: {', '.join(WRITE_STATES)})",
                    key=f"connectors.{self.name}.write_back.status",
                )
        place = self._place(change.source_id)
        if place is None:
            raise self.refused(
                change,
                "the issue is gone: no issue of the configured repositories has this id "
                "(deleted, or transferred to another repository, where it is a new issue)",
            )
        url = f"/repos/{place[0]}/issues/{place[1]}"
        shown = self.send_write("GET", url, None)
        if shown.status_code >= 300:
            raise self.refused(change, _github_said(shown))
        issue = self.decoded(PageRequest(url), shown)
        if not isinstance(issue, dict):
            raise SourceError(self.name, f"GET {url} answered no issue: {issue!r:.80}")
        if str(issue.get("id")) != change.source_id:
            raise self.refused(
                change,
                f"the issue was transferred: {url} is now {issue.get('html_url')}, a new "
                "issue (a task of its own)",
            )
        update: dict[str, Any] = {}
        if target is not None and issue.get("state") == "closed" and target[0] == "open":
            raise WriteConflict(
                self.name,
                change.source_id,
                "status",
                change.status,
                f"the issue is {state_text(issue)!r} on GitHub: the source closed it, and "
                "that wins over Fragment's status",
            )
        if target is not None and issue.get("state") != target[0]:
            update["state"], update["state_reason"] = target
        wanted = [] if change.assignee_id is None else [change.assignee_id]
        if change.assign and _logins(issue) != [w.casefold() for w in wanted]:
            update["assignees"] = wanted
        if not update:
            return  # already there
        answer = self.send_write("PATCH", url, {k: v for k, v in update.items() if v is not None})
        if answer.status_code >= 300:
            raise self.refused(change, _github_said(answer))
        written = self.decoded(PageRequest(url), answer)
        if "assignees" in update and _logins(written) != [w.casefold() for w in wanted]:
            raise self.refused(
                change,
                "GitHub kept the assignees as they were: it drops an assignee change without "
                "a word when the token has no push access to the repository",
            )

    def _place(self, issue_id: str) -> tuple[str, int] | None:
        """The repository and number of issue `issue_id`; None when no configured repository
        has it.

        A write names an issue by its id, and GitHub's REST API finds issues by
        repository and number only. What a pass of this process read is remembered
        (`_ISSUE_PLACES`); otherwise each repository's issues are searched, newest
        first, through GraphQL (`databaseId number`, 100 a page, one point each), and
        every issue seen on the way is remembered: a search over a large repository
        costs its pages once per process.
        """
        key = (self.options.base_url, issue_id)
        if key in _ISSUE_PLACES:
            return _ISSUE_PLACES[key]
        for repository in self.options.scopes:
            owner, name = repository.split("/", 1)
            variables = {"owner": owner, "name": name, "first": PLACES_PER_PAGE}
            current: PageRequest | None = graphql_request(self.graphql_url, PLACES_QUERY, variables)
            paginator = GraphQLCursorPaginator(CENSUS_PAGE_INFO)
            while current is not None:
                response, body = self.fetch(current)
                nodes = self.records(body, CENSUS_NODES)
                for node in nodes:
                    if isinstance(node, dict) and isinstance(node.get("number"), int):
                        self._remember_place(
                            str(node.get("databaseId")), (repository, node["number"])
                        )
                if key in _ISSUE_PLACES:
                    return _ISSUE_PLACES[key]
                try:
                    current = paginator.next_page(current, response, body, len(nodes))
                except PaginationBroken as exc:
                    raise SourceError(self.name, str(exc)) from None
        return None

    def _remember_place(self, issue_id: str, place: tuple[str, int]) -> None:
        key = (self.options.base_url, issue_id)
        _ISSUE_PLACES[key] = place
        _ISSUE_PLACES.move_to_end(key)
        while len(_ISSUE_PLACES) > REMEMBERED_PLACES:
            _ISSUE_PLACES.popitem(last=False)

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
        is nothing. An issue's comment listing is remembered the same way, for
        the last `REMEMBERED_COMMENT_LISTINGS` issues read: an issue read again
        without a new comment (a label changed; the lookback's re-read) costs
        no quota for its comments.
        """
        memory: MutableMapping[tuple[str, str, str], _RememberedPage]
        if request.url == self.issues_path:
            memory = _REMEMBERED_PAGES
        elif _COMMENTS_PATH.fullmatch(request.url):
            memory = _REMEMBERED_COMMENTS
        else:
            return super().fetch(request)
        key = self._conditional_key(request.url)
        params = tuple(sorted((name, str(value)) for name, value in request.params.items()))
        remembered = memory.get(key)
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
            memory[key] = _RememberedPage(params, etag, body)
            if memory is _REMEMBERED_COMMENTS:
                _REMEMBERED_COMMENTS.move_to_end(key)
                while len(_REMEMBERED_COMMENTS) > REMEMBERED_COMMENT_LISTINGS:
                    _REMEMBERED_COMMENTS.popitem(last=False)
        else:
            memory.pop(key, None)
        return response, body

    def _conditional_key(self, path: str) -> tuple[str, str, str]:
        options = self.options
        # An app's installation tokens change hourly; its ETags are the installation's.
        who = (
            options.token.get_secret_value()
            if options.token is not None
            else f"app {options.app_id} installation {options.installation_id}"
        )
        digest = hashlib.blake2b(who.encode(), digest_size=16)
        return (options.base_url, path, digest.hexdigest())


def _logins(issue: Any) -> list[str]:
    """An issue's assignees' logins, casefolded (GitHub's logins ignore case)."""
    users = issue.get("assignees") if isinstance(issue, dict) else None
    return [str(user.get("login")).casefold() for user in users or [] if isinstance(user, dict)]


def _github_said(response: httpx.Response) -> str:
    """GitHub's refusal in its own words: its `message` and each of its `errors`."""
    gone = {404: "the issue is gone or the token can't see it", 410: "gone"}
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return f"GitHub answered {response.status_code}: {response.text[:200]}"
    said = str(body.get("message") or "")
    errors = body.get("errors")
    details = [
        " ".join(f"{k}={e[k]!r}" for k in ("field", "code", "value", "message") if k in e)
        for e in (errors if isinstance(errors, list) else [])
        if isinstance(e, dict)
    ]
    if details:
        said += f" ({'; '.join(details)})"
    prefix = gone.get(response.status_code)
    return f"{prefix + ': ' if prefix else ''}GitHub answered {response.status_code}: {said}"


def state_text(issue: Mapping[str, Any]) -> str | None:
    """The issue's state as GitHub words it, with the reason when there is one:
    `open`, `closed (completed)`, `closed (not_planned)`, `open (reopened)`."""
    state, reason = issue.get("state"), issue.get("state_reason")
    if state is None:
        return None
    return f"{state} ({reason})" if reason else str(state)
