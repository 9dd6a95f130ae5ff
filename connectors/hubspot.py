"""HubSpot: tickets through CRM search, oldest change first, plus the recycle bin.

Calls `POST /crm/v3/objects/tickets/search` filtered on and sorted by
`hs_lastmodifieddate` (epoch milliseconds in the filter, ISO 8601 with
milliseconds in the answer), with a private app's access token or OAuth
(`refresh_token` grant at `/oauth/v1/token`, renewed as tokens expire).

The window. Search answers at most 10,000 results per query (an `after` past
them is a 400), its `after` is an offset over a live sorted set (a ticket
edited mid-scan moves to the end and the one behind it is skipped), and it
orders tickets sharing a timestamp in no documented order. So no query is
paged with `after`: each page is a new query from the last
`hs_lastmodifieddate` read (`GTE`, skipping the ids already read there), and
a page whose tickets all share one timestamp, with more behind it (a bulk
update stamps thousands alike), switches to draining that run by id: `GTE T`,
`LTE T` and `hs_object_id GT last id`, sorted by `hs_object_id`, then `GT T` on. The
arithmetic is `next_window`, pure.

Lag. HubSpot's search index trails writes ("it may take a few moments for
newly created or updated CRM objects to appear in search results"): a ticket
changed just before a page was read may appear only later, behind the
watermark. `default_lookback` (one minute) re-reads that much before it.

Statuses. A ticket's `hs_pipeline_stage` is a stage id; `GET
/crm/v3/pipelines/tickets` (read once a pass, and again for a stage it
lacks) gives its label and `ticketState`. `enrich` adds `pipeline_label`,
`stage_label` and `stage_status`: DONE for a CLOSED stage, TODO for the
first OPEN stage of its pipeline, STARTED for the other OPEN ones.

Pipelines. `pipelines` is kept by the connector: search reads every ticket,
and one of another pipeline goes out as a tombstone, which archives the task
of a ticket moved out and is dropped for one never sent.

Deletions. Search never shows archived tickets. The recycle bin, `GET
/crm/v3/objects/tickets?archived=true`, is a second scope: it has no filter,
so each pass lists it whole (100 a request) and yields the tickets archived
since the watermark (`archivedAt`) as tombstones, in order. A census lists
live ids through the plain list (`scope_ids`).

People. `hubspot_owner_id` is an owner's id: `GET /crm/v3/owners`, 500 a
page, until every id asked is found, then the archived owners.

Conversation (`read_comments`): the tickets' notes; see `HubSpotConnector.conversations`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from pydantic import AwareDatetime, Field, SecretStr, model_validator

from connectors import base
from connectors.base import BadRecord, Cursor, Person, SourceTicket
from connectors.comments import CommentShape, read_comments
from connectors.errors import SourceError
from connectors.http import (
    Conversations,
    HttpOptions,
    NextTokenPaginator,
    PageRequest,
    PaginationBroken,
    RestConnector,
)
from connectors.http.people import person
from connectors.http.rest import _PagesRead
from connectors.records import MISSING, get_path
from connectors.values import Duration, HttpUrl, parse_datetime
from sync_http.auth import OAuth2, bearer, token_endpoint
from sync_http.ratelimit import RequestBudget

SEARCH = "/crm/v3/objects/tickets/search"
TICKETS = "/crm/v3/objects/tickets"
PIPELINES = "/crm/v3/pipelines/tickets"
OWNERS = "/crm/v3/owners"
TOKEN_PATH = "/oauth/v1/token"  # noqa: S105 (a path, not a secret)
MODIFIED = "hs_lastmodifieddate"
OBJECT_ID = "hs_object_id"
NOTE_LINKS = "/crm/v4/associations/tickets/notes/batch/read"
NOTES = "/crm/v3/objects/notes/batch/read"
NOTES_BATCH = 100
"""Notes one batch read may ask for (HubSpot's limit for object batch reads)."""
NOTE_SHAPE = CommentShape(
    id="id",
    created_at="properties.hs_timestamp",
    body="properties.hs_note_body",  # HTML, as HubSpot keeps it
    author_id="properties.hubspot_owner_id",
    public=lambda note: False,  # notes are internal: the customer never sees them
)
"""A ticket's note as the notes batch read gives it."""
LIST_PAGE = 100
"""The largest page of the tickets list (the recycle bin, the census)."""
OWNERS_PAGE = 500
"""The largest page of the owners list."""
PROPERTIES = (
    "subject",
    "content",
    "createdate",
    MODIFIED,
    OBJECT_ID,
    "hs_pipeline",
    "hs_pipeline_stage",
    "hs_ticket_priority",
    "hs_ticket_category",
    "hubspot_owner_id",
    "closed_date",
)
"""The ticket properties every search asks for; `properties` adds more."""


class HubSpotOptions(HttpOptions):
    base_url: HttpUrl = "https://api.hubapi.com"
    """HubSpot's API; credentials are sent only there."""
    access_token: SecretStr | None = None
    """A private app's access token (needs the `tickets` scope, and `crm.objects.owners.read`
    for people), sent as `Authorization: Bearer`."""
    client_id: str | None = None
    """A public app's client id: access tokens come from the `refresh_token` grant at
    `/oauth/v1/token` and are renewed as they expire (30 minutes)."""
    client_secret: SecretStr | None = None
    """The public app's client secret."""
    refresh_token: SecretStr | None = None
    """The refresh token the app got when the portal installed it."""
    portal_id: int | None = None
    """The portal's Hub ID: gives each task a link to its ticket (unset: no link)."""
    app_host: str = "app.hubspot.com"
    """Where the ticket links point: `app-eu1.hubspot.com` for a portal hosted in the EU."""
    properties: list[str] = Field(default_factory=list)
    """Ticket properties to read besides the standard ones (custom properties' internal names)."""
    pipelines: list[str] = Field(default_factory=list)
    """Only tickets of these pipelines (ids; `0` is the default pipeline); empty: every
    pipeline. Kept by the connector: every ticket is read, and one moved to another pipeline
    archives its task."""
    include_archived: bool = True
    """List the recycle bin too, so tickets archived (deleted) since the last pass archive
    their tasks."""
    start_date: AwareDatetime | None = None
    """Where the first pass starts (default: every ticket)."""
    page_size: int = Field(default=100, ge=1, le=200)
    """Tickets per search request, up to 200."""
    requests_per_minute: float = Field(default=240.0, gt=0)
    """Paced by the second: 240 is 4 a second, under search's 5 a second per account
    (shared with every other app on the portal)."""
    rate_limit_floor: Duration = dt.timedelta(seconds=1)
    """The least wait on a 429 that names no window: search's limit is per second."""

    @model_validator(mode="after")
    def _one_credential(self) -> HubSpotOptions:
        oauth = (self.client_id, self.client_secret, self.refresh_token)
        if any(part is not None for part in oauth):
            if any(part is None for part in oauth) or not self.client_id:
                raise ValueError("OAuth needs client_id, client_secret and refresh_token")
            if self.access_token is not None:
                raise ValueError("set either access_token or client_id (OAuth), not both")
        elif self.access_token is None:
            raise ValueError(
                "set access_token (a private app's) or client_id, client_secret and "
                "refresh_token (OAuth)"
            )
        return self


@dataclass(frozen=True)
class Window:
    """Where the next search starts.

    `since` None: from the first ticket. Otherwise `hs_lastmodifieddate >= since`
    (`> since` when `strict`), skipping the ids in `seen`, read already at `since`.
    With `ties_after` set, the query drains the tickets stamped exactly `since`
    whose id is above it, by id.
    """

    since: dt.datetime | None = None
    strict: bool = False
    ties_after: int | None = None
    seen: frozenset[str] = field(default_factory=frozenset)

    def admits(self, ticket: SourceTicket) -> bool:
        """Whether `ticket`, found by this window's query, is new to this pass: inside the
        window (the filter's milliseconds are coarser than `since`), and not read already at
        `since` (an id in `seen` stamped later was edited since: that version is new)."""
        if self.since is None:
            return True
        if base.cursor_before(ticket.cursor, self.since):
            return False
        if ticket.cursor == self.since:
            return not self.strict and ticket.source_id not in self.seen
        return True


def next_window(window: Window, page: Sequence[SourceTicket], more: bool) -> Window | None:
    """The window after a page of `window`'s query: `page`, the tickets it listed in the
    query's order (read or not), and `more`, whether the query had more. None: done.

    Raises `ValueError` for a query that has more but a page no ticket of can anchor.
    """
    if window.ties_after is not None:
        if not more:  # the run at `since` is drained: on past it
            return Window(window.since, strict=True)
        if not page:
            raise ValueError("a page of tied tickets came back empty, though more follow")
        last_id = max(int(t.source_id) for t in page)
        return Window(window.since, ties_after=last_id, seen=window.seen)
    if not more:
        return None
    if not page:
        raise ValueError("a page came back without a ticket that can be read, though more follow")
    last = page[-1].cursor
    assert isinstance(last, dt.datetime)
    at_last = frozenset(t.source_id for t in page if t.cursor == last)
    if page[0].cursor == last:
        # A page's worth of one timestamp, and more behind: a new query from it would list
        # the same run again, in another order. Drain the run by id.
        seen = at_last | (window.seen if window.since == last else frozenset())
        return Window(last, ties_after=0, seen=seen)
    return Window(last, seen=at_last)


class HubSpotConnector(RestConnector):
    kind = "hubspot"
    summary = "HubSpot tickets via CRM search, archived ones included; needs an access token"
    Options = HubSpotOptions
    options: HubSpotOptions

    id_path = "id"
    cursor_path = f"properties.{MODIFIED}"
    cursors_from_source_clock = True
    default_lookback = dt.timedelta(minutes=1)
    comments = "requests"
    comments_batch = 100

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "#{id} {properties.subject}",
        "url": "{web_url}",
        "status": "stage_status",
        "status_map": {"TODO": "TODO", "STARTED": "STARTED", "DONE": "DONE"},
        "external_created_at": "properties.createdate",
        "external_updated_at": f"properties.{MODIFIED}",
        "fields": {
            "priority": "properties.hs_ticket_priority",
            "category": "properties.hs_ticket_category",
            "pipeline": "pipeline_label",
            "owner_id": "properties.hubspot_owner_id",
            "closed_at": "properties.closed_date",
            # The stage's own label ("Waiting on contact"); external_status takes the state.
            "source_status": "stage_label",
        },
        "assignee": "properties.hubspot_owner_id",
    }

    _stages: dict[str, Stage] | None = None

    def auth(self) -> httpx.Auth:
        options = self.options
        if options.client_id is not None:
            return OAuth2(
                token_endpoint(TOKEN_PATH, options.base_url),
                "refresh_token",
                client_id=options.client_id,
                client_secret=options.client_secret,
                client_auth="body",  # HubSpot reads client_id and client_secret from the form
                refresh_token=options.refresh_token,
            )
        assert options.access_token is not None
        return bearer(options.access_token)

    def request_budget(self, requests_per_minute: float) -> RequestBudget:
        """Paced by the second: search counts requests a second, and a minute's budget in
        bursts of a tenth (24 at once at 240 a minute) would run into it."""
        per_second = requests_per_minute / 60
        burst = max(1, math.floor(per_second))
        return RequestBudget(burst, burst / per_second, margin=0.05, stop=self.stop)

    def check(self) -> None:
        """One search, one page of the recycle bin: the token reaches both."""
        self.fetch(self.search_request(Window()))
        if self.options.include_archived:
            self.fetch(self._archived_request())

    def scopes(self) -> Sequence[str | None]:
        return [None, "archived"] if self.options.include_archived else [None]

    def is_deleted(self, record: Mapping[str, Any]) -> bool:
        """Archived, or outside the `pipelines` kept (a move out archives the task)."""
        if record.get("archived") is True:
            return True
        kept = self.options.pipelines
        return bool(kept) and get_path(record, "properties.hs_pipeline") not in kept

    def cursor_of(self, record: Mapping[str, Any]) -> Any:
        if record.get("archived") is True:
            return record.get("archivedAt")
        return get_path(record, self.cursor_path)

    # Reading

    def search_request(self, window: Window) -> PageRequest:
        """The search for `window`'s next page (see `Window`)."""
        filters: list[dict[str, Any]] = []
        sort = MODIFIED
        start = window.since or self.options.start_date
        if window.ties_after is not None:
            assert window.since is not None
            # GTE and LTE, not EQ: the same comparison as every other window's, to the millisecond.
            filters.append({"propertyName": MODIFIED, "operator": "GTE", "value": _ms(start)})
            filters.append({"propertyName": MODIFIED, "operator": "LTE", "value": _ms(start)})
            filters.append(
                {"propertyName": OBJECT_ID, "operator": "GT", "value": str(window.ties_after)}
            )
            sort = OBJECT_ID
        elif start is not None:
            operator = "GT" if window.strict else "GTE"
            filters.append({"propertyName": MODIFIED, "operator": operator, "value": _ms(start)})
        body = {
            "filterGroups": [{"filters": filters}] if filters else [],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": list(dict.fromkeys([*PROPERTIES, *self.options.properties])),
            "limit": self.options.page_size,
        }
        return PageRequest(SEARCH, method="POST", json=body)

    def pull_scope(
        self, since: Cursor | None, pages_read: _PagesRead | None = None
    ) -> Iterator[SourceTicket | BadRecord]:
        counter = pages_read or _PagesRead()
        if self.scope == "archived":
            yield from self._archived(since, counter)
            return
        self._stages = None  # stages may have changed since the last pass
        start = since if isinstance(since, dt.datetime) else None
        window: Window | None = Window(start)
        reported: set[str] = set()  # bad records yielded already (a later query lists them again)
        while window is not None:
            _response, body = self.fetch(self.search_request(window))
            records = self.records(body, "results") if body is not None else []
            listed: list[SourceTicket] = []
            for index, raw in enumerate(records):
                if isinstance(raw, dict):
                    raw = self.enrich(raw)
                item = self.ticket(raw, f"search page {counter.pages + 1}, item {index + 1}")
                if isinstance(item, BadRecord):
                    key = item.source_id or repr(raw)
                    if key not in reported:
                        reported.add(key)
                        yield item
                    continue
                listed.append(item)
                if window.admits(item):
                    # Outside the pipelines kept: a bare tombstone, as a census makes one.
                    yield (
                        SourceTicket(item.source_id, item.cursor, {}, True)
                        if item.deleted
                        else item
                    )
            counter.pages += 1
            more = _present(get_path(body, "paging.next.after"))
            try:
                window = next_window(window, listed, more)
            except ValueError as exc:
                raise SourceError(self.name, f"the search can't go on: {exc}") from None
            if window is not None:
                self._count_page(counter.pages)

    def _count_page(self, read: int) -> None:
        if read >= self.options.max_pages_per_pass:
            raise SourceError(
                self.name,
                f"read {read:,} pages in this pass and the search still has more "
                f"(max_pages_per_pass = {self.options.max_pages_per_pass:,}); raise it if the "
                "portal really is that large (the next pass resumes from the last checkpoint)",
            )

    def _next(
        self,
        paginator: NextTokenPaginator,
        request: PageRequest,
        response: httpx.Response,
        body: Any,
        count: int,
    ) -> PageRequest | None:
        """A list's next page (`paging.next.after`), or None; a repeated token fails the pass."""
        try:
            return paginator.next_page(request, response, body, count)
        except PaginationBroken as exc:
            raise SourceError(self.name, str(exc)) from None

    def _archived_request(self) -> PageRequest:
        properties = ",".join(dict.fromkeys([*PROPERTIES, *self.options.properties]))
        params = {"archived": "true", "limit": LIST_PAGE, "properties": properties}
        return PageRequest(TICKETS, params)

    def _archived(
        self, since: Cursor | None, counter: _PagesRead
    ) -> Iterator[SourceTicket | BadRecord]:
        """The recycle bin's tickets archived at or after `since`, oldest archival first.

        The list has no filter and no order by time: it is read whole (100 a
        request), then sorted. Memory: the bin's tickets (HubSpot empties it
        after 90 days). Each is yielded without its record (see the loop).
        """
        tickets: list[SourceTicket] = []
        request: PageRequest | None = self._archived_request()
        paginator = NextTokenPaginator("paging.next.after", "after")
        while request is not None:
            response, body = self.fetch(request)
            records = self.records(body, "results") if body is not None else []
            for index, raw in enumerate(records):
                item = self.ticket(raw, f"archived page {counter.pages + 1}, item {index + 1}")
                if isinstance(item, BadRecord):
                    # An archived ticket's cursor is its `archivedAt` (`cursor_of`): name that.
                    wrong = item.field == self.cursor_path
                    yield dataclasses.replace(item, field="archivedAt") if wrong else item
                elif since is None or not base.cursor_before(item.cursor, since):
                    # A bare tombstone, as a census makes one: the task is archived as it
                    # stands, and the two ways of learning of a deletion push it once.
                    tickets.append(SourceTicket(item.source_id, item.cursor, {}, deleted=True))
            counter.pages += 1
            request = self._next(paginator, request, response, body, len(records))
            if request is not None:
                self._count_page(counter.pages)
        tickets.sort(key=lambda t: (t.cursor, int(t.source_id) if t.source_id.isdigit() else 0))
        yield from tickets

    def scope_ids(self) -> Iterator[str]:
        """Every live ticket's id in the `pipelines` kept: the tickets list, 100 a request,
        asking for two properties."""
        properties = f"{OBJECT_ID},hs_pipeline"
        request = PageRequest(TICKETS, {"limit": LIST_PAGE, "properties": properties})
        paginator = NextTokenPaginator("paging.next.after", "after")
        yield from self.listed_ids(request, paginator, "results")

    # Statuses

    def stages(self, refresh: bool = False) -> dict[str, Stage]:
        """Every ticket pipeline's stages by id, read once a pass (again with `refresh`)."""
        if self._stages is None or refresh:
            _response, body = self.fetch(PageRequest(PIPELINES))
            self._stages = read_stages(self.records(body, "results"))
        return self._stages

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        ticket_id = record.get("id")
        options = self.options
        url = None
        if options.portal_id is not None and ticket_id is not None:
            url = f"https://{options.app_host}/contacts/{options.portal_id}/record/0-5/{ticket_id}"
        stage_id = get_path(record, "properties.hs_pipeline_stage")
        stage = None
        if isinstance(stage_id, str) and stage_id:
            stage = self.stages().get(stage_id)
            if stage is None:  # a stage added since the pipelines were read
                stage = self.stages(refresh=True).get(stage_id)
        return {
            **record,
            "web_url": url,
            "pipeline_label": None if stage is None else stage.pipeline,
            "stage_label": None if stage is None else stage.label,
            "stage_status": None if stage is None else stage.status,
        }

    # Conversation

    def conversations(self, tickets: Sequence[SourceTicket]) -> Conversations:
        """The notes of up to 100 tickets: one associations batch read, then the notes.

        `POST /crm/v4/associations/tickets/notes/batch/read` gives each ticket's
        note ids (a ticket with many is paged by its own `after`); `POST
        /crm/v3/objects/notes/batch/read` reads them, 100 a request. A page of
        tickets costs 1 request plus 1 per 100 notes, whatever the number of
        tickets with notes. Notes are internal, so private. A ticket without
        notes (answered in `errors`, with a 207) has none; a note gone since
        it was listed is left out.
        """
        linked: dict[str, list[str]] = {t.source_id: [] for t in tickets if t.source_id.isdigit()}
        pending: list[dict[str, str]] = [{"id": ticket_id} for ticket_id in linked]
        asked: set[tuple[str, str]] = set()
        while pending:
            request = PageRequest(NOTE_LINKS, method="POST", json={"inputs": pending})
            _response, body = self.commenting.fetch(request)
            pending = []
            for result in self.records(body, "results") if body is not None else []:
                ticket_id = str(get_path(result, "from.id"))
                if ticket_id not in linked:
                    continue
                for link in result.get("to") or []:
                    if isinstance(link, dict) and _present(link.get("toObjectId")):
                        linked[ticket_id].append(str(link["toObjectId"]))
                after = get_path(result, "paging.next.after")
                if _present(after):
                    if (ticket_id, str(after)) in asked:
                        raise SourceError(
                            self.name,
                            f"the notes of ticket {ticket_id} page back to after={after}",
                        )
                    asked.add((ticket_id, str(after)))
                    pending.append({"id": ticket_id, "after": str(after)})
        notes = self._notes(list(dict.fromkeys(n for ids in linked.values() for n in ids)))
        return {
            t.source_id: read_comments(
                t, [notes[n] for n in linked.get(t.source_id, []) if n in notes], NOTE_SHAPE
            )
            for t in tickets
        }

    def _notes(self, note_ids: list[str]) -> dict[str, Any]:
        """The notes by id, `NOTES_BATCH` a request; an id HubSpot lacks is left out."""
        found: dict[str, Any] = {}
        properties = ["hs_note_body", "hs_timestamp", "hubspot_owner_id"]
        for start in range(0, len(note_ids), NOTES_BATCH):
            inputs = [{"id": n} for n in note_ids[start : start + NOTES_BATCH]]
            request = PageRequest(
                NOTES, method="POST", json={"inputs": inputs, "properties": properties}
            )
            _response, body = self.commenting.fetch(request)
            for note in self.records(body, "results") if body is not None else []:
                if isinstance(note, dict) and _present(note.get("id")):
                    found[str(note["id"])] = note
        return found

    # People

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """Owners by id: the owners list, 500 a page, until every id is found; then the
        archived owners (people who left keep their tickets)."""
        pending: dict[str, None] = {}
        for user_id in user_ids:
            if user_id.isdigit():
                pending[user_id] = None
            elif user_id:
                yield Person(user_id, None, reason="not a HubSpot owner id (a number)")
        for archived in ("false", "true"):
            request: PageRequest | None = PageRequest(
                OWNERS, {"limit": OWNERS_PAGE, "archived": archived}
            )
            paginator = NextTokenPaginator("paging.next.after", "after")
            while request is not None and pending:
                response, body = self.fetch(request)
                owners = self.records(body, "results") if body is not None else []
                for owner in owners:
                    owner_id = str(owner.get("id")) if isinstance(owner, dict) else None
                    if owner_id in pending:
                        del pending[owner_id]
                        names = (owner.get("firstName"), owner.get("lastName"))
                        name = " ".join(n for n in names if isinstance(n, str) and n) or None
                        yield person(owner_id, owner.get("email"), name, "the owner has no email")
                request = self._next(paginator, request, response, body, len(owners))
        for user_id in pending:
            yield Person(user_id, None, reason="no such owner")


@dataclass(frozen=True)
class Stage:
    """A pipeline stage as the default mapping reads it."""

    label: str
    pipeline: str
    status: str
    """TODO, STARTED or DONE (see `read_stages`)."""


def read_stages(pipelines: Iterable[Any]) -> dict[str, Stage]:
    """Stages by id from the pipelines API's `results`.

    A CLOSED stage is DONE; the first OPEN stage of a pipeline (lowest
    `displayOrder`) is TODO, the other OPEN ones STARTED. A stage without a
    `ticketState` counts as OPEN.
    """
    stages: dict[str, Stage] = {}
    for pipeline in pipelines:
        if not isinstance(pipeline, dict):
            continue
        label = str(pipeline.get("label") or pipeline.get("id"))
        listed = [s for s in pipeline.get("stages") or [] if isinstance(s, dict) and "id" in s]
        listed.sort(key=lambda s: s.get("displayOrder") or 0)
        first_open = True
        for stage in listed:
            closed = get_path(stage, "metadata.ticketState") == "CLOSED"
            status = "DONE" if closed else "TODO" if first_open else "STARTED"
            first_open = first_open and closed
            stages[str(stage["id"])] = Stage(str(stage.get("label")), label, status)
    return stages


def _ms(moment: dt.datetime | None) -> str:
    """A search filter's time: epoch milliseconds, floored (so `GTE` stays inclusive)."""
    assert moment is not None
    return str(math.floor(parse_datetime(moment).timestamp() * 1000))


def _present(value: Any) -> bool:
    return value is not MISSING and value is not None and value != ""
