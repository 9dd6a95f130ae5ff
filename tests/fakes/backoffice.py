"""A fake in-house back-office API: `GET /api/v1/tickets`, paging in a style the test picks.

No vendor stands behind it; it is what the `rest` connector is for. Tickets
are `{"ref", "headline", "state", "modified", "removed"}` under `data.tickets`.
`modified_since` (ISO 8601, or Unix seconds) filters inclusively at whole
seconds; answers are sorted by `(modified, ref)`, oldest first unless the fake
is told to answer newest first (an API that can't sort). A deleted ticket
stays in the feed with `removed` set to when, and `modified` bumped. The key
goes in `X-Api-Key`, as a Bearer token, or in the `key` query parameter (and
then, like many such APIs, every next-page URL echoes it). With `oauth` set,
`POST /oauth/token` is an RFC 6749 token endpoint (client_credentials and
refresh_token grants, the client authenticated by HTTP Basic or in the form;
refresh tokens rotated on use when `rotate` is set) whose access tokens expire
after `lifetime` seconds and are taken as Bearer tokens. Paging styles:

- `next_token`: `cursor` parameter, `paging.next_cursor` in the body; a
  keyset token, so edits mid-scan shift nothing.
- `offset`: `offset`/`limit`, `paging.total`; a live set, so edits shift it.
- `next_url`: `paging.next` holds the next page's full URL.
- `page_number`: `page`/`per_page`, `paging.pages`.
- `link_header`: `page`/`per_page`, with a `Link: <…>; rel="next"` header.

`endless` makes it a broken API whose pages never end: past the last ticket,
`next_token` answers empty pages, each with a new token.

Writes (what the `rest` connector's `write_request` is for): `PATCH` or `PUT
/api/v1/tickets/{ref}` with `{"ticket": {"state": ..., "owner_id": ...}}` (either
key; `owner_id` null unassigns) answers 200 with the ticket, `modified` bumped
to the fake's clock. Refusals, in the error body most in-house APIs use
(`{"error": "..."}`): 404 for a ticket that isn't there or was removed; 422 for
a state outside `STATES` or an owner who isn't a user; 409 for a ticket
`closed` asked into another state (the back office reopens tickets by hand).
Each write is recorded in `writes`, refused or not.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlencode

from fakes import FakeApi, Reply, Request

PagingStyle = Literal["next_token", "offset", "next_url", "page_number", "link_header"]
PATH = "/api/v1/tickets"
STATES = ("open", "working", "done", "closed")
"""The states a write may set."""


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


TOKEN_PATH = "/oauth/token"


@dataclass
class OAuthServer:
    """The back office's token endpoint: one registered client, the tokens it issued."""

    client_id: str
    client_secret: str
    lifetime: float = 3600.0
    refresh_tokens: set[str] = field(default_factory=set)
    rotate: bool = False
    access: dict[str, float] = field(default_factory=dict)
    """Access token → when it expires (time.monotonic())."""

    def valid(self, token: str) -> bool:
        expires = self.access.get(token)
        return expires is not None and time.monotonic() < expires


class FakeBackOffice(FakeApi):
    def __init__(
        self, api_key: str, paging: PagingStyle = "next_token", newest_first: bool = False
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.paging = paging
        self.newest_first = newest_first
        self.tickets: dict[int, dict[str, Any]] = {}
        self.endless = False
        self.oauth: OAuthServer | None = None
        self.users: dict[int, dict[str, Any]] = {}
        """The people a write may make owner, by id: `{"name", "email"}`."""
        self.writes: list[tuple[str, int, Any]] = []
        """Each write received: its method, the ticket's ref and the body sent."""

    def add(self, ref: int, modified: dt.datetime, **fields: Any) -> dict[str, Any]:
        ticket = {
            "ref": ref,
            "headline": f"Ticket {ref}",
            "state": "open",
            "owner": {"name": "Ana Ops", "email": "ana@example.com"},
            "modified": stamp(modified),
            "removed": None,
            **fields,
        }
        with self.lock:
            self.tickets[ref] = ticket
        return ticket

    def touch(self, ref: int, modified: dt.datetime, **fields: Any) -> None:
        with self.lock:
            self.tickets[ref].update(fields, modified=stamp(modified))

    def remove(self, ref: int, at: dt.datetime) -> None:
        self.touch(ref, at, removed=stamp(at))

    def route(self, request: Request) -> Reply:
        if request.path == TOKEN_PATH and request.method == "POST" and self.oauth is not None:
            return self._token(self.oauth, request)
        ref = request.path.removeprefix(f"{PATH}/")
        writing = ref != request.path and ref.isdigit() and request.method in ("PATCH", "PUT")
        if request.path != PATH and not writing:
            return Reply(404, {"error": "no such endpoint"})
        bearer = (request.headers.get("authorization") or "").removeprefix("Bearer ")
        if self.api_key not in (
            request.headers.get("x-api-key"),
            bearer,
            request.param("key"),
        ) and not (self.oauth is not None and self.oauth.valid(bearer)):
            return Reply(401, {"error": "missing or wrong API key"})
        if writing:
            return self._write(request, int(ref))
        tickets = sorted(self.tickets.values(), key=lambda t: (t["modified"], t["ref"]))
        since = request.param("modified_since")
        if since:
            try:
                bound = (
                    dt.datetime.fromtimestamp(int(since), dt.UTC)
                    if since.isdigit()
                    else dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
                )
            except ValueError:
                return Reply(400, {"error": f"modified_since: can't read {since!r}"})
            tickets = [t for t in tickets if t["modified"] >= stamp(bound)]
        if self.newest_first:
            tickets.reverse()
        answer = {
            "next_token": self._next_token,
            "offset": self._offset,
            "next_url": self._next_url,
            "page_number": self._page_number,
            "link_header": self._link_header,
        }[self.paging]
        return answer(request, tickets)

    def _write(self, request: Request, ref: int) -> Reply:
        """`PATCH`/`PUT /api/v1/tickets/{ref}`: the ticket changed and returned, or refused."""
        body = request.json()
        change = body.get("ticket") if isinstance(body, dict) else None
        with self.lock:
            self.writes.append((request.method, ref, body))
            ticket = self.tickets.get(ref)
            if ticket is None or ticket["removed"]:
                return Reply(404, {"error": f"ticket {ref} not found"})
            if not isinstance(change, dict) or not change.keys() & {"state", "owner_id"}:
                return Reply(422, {"error": "ticket: give state or owner_id"})
            updates: dict[str, Any] = {}
            if "state" in change:
                state = change["state"]
                if state not in STATES:
                    return Reply(
                        422, {"error": f"state: {state!r} is not one of {', '.join(STATES)}"}
                    )
                if ticket["state"] == "closed" and state != "closed":
                    return Reply(
                        409, {"error": f"ticket {ref} is closed; reopen it in the back office"}
                    )
                updates["state"] = state
            if "owner_id" in change:
                owner = change["owner_id"]
                if owner is not None and (type(owner) is not int or owner not in self.users):
                    return Reply(422, {"error": f"owner_id: no user {owner!r}"})
                updates["owner"] = None if owner is None else {"id": owner, **self.users[owner]}
            ticket.update(updates, modified=stamp(self.clock.now()))
            return Reply(200, {"ticket": ticket})

    def _token(self, oauth: OAuthServer, request: Request) -> Reply:
        """RFC 6749 §4.4 and §6, with §5.2's error answers."""
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        client = (form.get("client_id"), form.get("client_secret"))
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            client = (unquote(user), unquote(password))
        if client != (oauth.client_id, oauth.client_secret):
            return Reply(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                headers={"WWW-Authenticate": 'Basic realm="backoffice"'},
            )
        grant = form.get("grant_type")
        answer: dict[str, Any] = {"token_type": "Bearer", "expires_in": int(oauth.lifetime)}
        with self.lock:
            if grant == "refresh_token":
                refresh = form.get("refresh_token", "")
                if refresh not in oauth.refresh_tokens:
                    return Reply(
                        400,
                        {"error": "invalid_grant", "error_description": "Refresh token revoked"},
                    )
                if oauth.rotate:
                    oauth.refresh_tokens.discard(refresh)
                    refresh = f"bo-refresh-{secrets.token_urlsafe(16)}"
                    oauth.refresh_tokens.add(refresh)
                answer["refresh_token"] = refresh
            elif grant != "client_credentials":
                return Reply(400, {"error": "unsupported_grant_type"})
            token = f"bo-access-{secrets.token_urlsafe(16)}"
            oauth.access[token] = time.monotonic() + oauth.lifetime
        return Reply(200, {"access_token": token, **answer}, headers={"Cache-Control": "no-store"})

    @staticmethod
    def _size(request: Request, name: str) -> int:
        return max(1, min(100, int(request.param(name, "20") or 20)))

    @staticmethod
    def _body(tickets: list[dict[str, Any]], **paging: Any) -> dict[str, Any]:
        return {"data": {"tickets": tickets}, "paging": paging}

    def _next_token(self, request: Request, tickets: list[dict[str, Any]]) -> Reply:
        size = self._size(request, "per_page")
        cursor = request.param("cursor")
        after, turn = ("", 0), 0
        if cursor:
            modified, ref, *endless = base64.urlsafe_b64decode(cursor).decode().split("|")
            after, turn = (modified, int(ref)), int(endless[0]) if endless else 0
            if self.newest_first:
                tickets = [t for t in tickets if (t["modified"], t["ref"]) < after]
            else:
                tickets = [t for t in tickets if (t["modified"], t["ref"]) > after]
        page = tickets[:size]
        token = None
        if len(tickets) > size:
            last = page[-1]
            token = base64.urlsafe_b64encode(f"{last['modified']}|{last['ref']}".encode()).decode()
        elif self.endless:  # a position past the end, spelled anew every time
            modified, ref = (page[-1]["modified"], page[-1]["ref"]) if page else after
            token = base64.urlsafe_b64encode(f"{modified}|{ref}|{turn + 1}".encode()).decode()
        return Reply(200, self._body(page, next_cursor=token))

    def _offset(self, request: Request, tickets: list[dict[str, Any]]) -> Reply:
        size = self._size(request, "limit")
        offset = int(request.param("offset", "0") or 0)
        return Reply(200, self._body(tickets[offset : offset + size], total=len(tickets)))

    def _numbered(self, request: Request, tickets: list[dict[str, Any]]) -> tuple[Any, int, int]:
        size = self._size(request, "per_page")
        page = int(request.param("page", "1") or 1)
        return (
            tickets[(page - 1) * size : page * size],
            page,
            max(1, math.ceil(len(tickets) / size)),
        )

    def _next_url(self, request: Request, tickets: list[dict[str, Any]]) -> Reply:
        page, number, pages = self._numbered(request, tickets)
        following = self._url(request, number + 1) if number < pages else None
        return Reply(200, self._body(page, next=following))

    def _page_number(self, request: Request, tickets: list[dict[str, Any]]) -> Reply:
        page, _number, pages = self._numbered(request, tickets)
        return Reply(200, self._body(page, pages=pages))

    def _link_header(self, request: Request, tickets: list[dict[str, Any]]) -> Reply:
        page, number, pages = self._numbered(request, tickets)
        headers = (
            {"Link": f'<{self._url(request, number + 1)}>; rel="next"'} if number < pages else {}
        )
        return Reply(200, self._body(page), headers=headers)

    def _url(self, request: Request, page: int) -> str:
        query = {name: values[-1] for name, values in request.query.items()}
        return f"{self.base_url}{PATH}?{urlencode({**query, 'page': page})}"
