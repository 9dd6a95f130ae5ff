"""The emulated Fragment API and the emulator's admin routes, minus the sockets.

Turns one parsed HTTP request (`ApiRequest`) into one `Reply`: routing (404 /
405), bearer auth (401), the rate limit (429), body and query validation (422)
and the task endpoints of fragment-api.md §5-§7 and §12, a task's comments
(§14) among them. Transport faults (drops, hangs, 5xx, lost responses) are
not here: `server` applies them around `FragmentApi.handle`, because they
need the socket.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from fragment_emulator.faults import Faults
from fragment_emulator.models import (
    STATUSES,
    ErrorDetail,
    JsonObject,
    Loc,
    TaskBatch,
    TaskWrite,
    Timestamp,
    WrittenTask,
    error_detail,
    json_syntax_detail,
    validation_details,
)
from fragment_emulator.store import ORDERS, START, Position, TaskPage, TaskQuery, TaskStore
from fragment_emulator.tasks import ItemError, WriteMode, assign_uids, plan_writes
from fragment_emulator.traffic import TrafficLog
from fragment_emulator.users import UserDirectory

API_PREFIX = "/api/v1"
ADMIN_PREFIX = "/_emulator"
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
ACCOUNT = {
    "uid": "0f6f3f7e-5d8e-4a8b-9c1d-2e3f4a5b6c7d",
    "name": "Fragment emulator",
    "email": "admin@fragment-emulator.local",
}

Handler = Callable[["ApiRequest", Mapping[str, str]], "Reply"]


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One HTTP request, body fully read; `query` as `urllib.parse.parse_qs` gives it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Message  # case-insensitive, as http.server parses them
    body: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer. `route` and `items` are for the traffic log only."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    route: str = ""
    items: int = 0


def json_reply(
    status: int, payload: Any, headers: tuple[tuple[str, str], ...] = (), items: int = 0
) -> Reply:
    """A JSON `Reply`, encoded once (pydantic-core's encoder: batch answers are large).

    Always standard JSON: a non-finite number a 422 echoes as its `input`
    goes out as the string "NaN", "Infinity" or "-Infinity".
    """
    body = pydantic_core.to_json(payload, inf_nan_mode="strings")
    return Reply(status, body, headers=headers, items=items)


def task_list_reply(tasks: list[bytes], meta: JsonObject, items: int = 0) -> Reply:
    """`json_reply(200, {"items": tasks, "meta": meta})` for tasks already JSON.

    The tasks are spliced into the envelope, not decoded and encoded again.
    The envelope rides on the first and last task so that one join makes the
    whole answer: it can be a megabyte, and each extra copy of it costs more
    than all the small pieces.
    """
    head, end = b'{"items":[', b'],"meta":' + pydantic_core.to_json(meta, inf_nan_mode="strings")
    if not tasks:
        return Reply(200, head + end + b"}", items=items)
    parts = list(tasks)
    parts[0] = head + parts[0]
    parts[-1] += end + b"}"
    return Reply(200, b",".join(parts), items=items)


class HttpError(Exception):
    """An error answer with FastAPI's `{"detail": ...}` body."""

    def __init__(self, status: int, detail: Any, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers

    def reply(self) -> Reply:
        """The answer to send."""
        return json_reply(self.status, {"detail": self.detail}, self.headers)


class Unprocessable(HttpError):
    """422 with a list of validation errors."""

    def __init__(self, details: list[ErrorDetail]) -> None:
        super().__init__(422, details)


@dataclass(frozen=True, slots=True)
class Route:
    """`method` on paths matching `pattern`; `template` names it in the traffic log."""

    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    """Routes in declaration order; the first route matching method and path wins."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        """Route `method template` (`{name}` segments capture one path segment)."""
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self._routes.append(Route(method, template, re.compile(f"^{regex}/?$"), handler))

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for this request and its path parameters.

        Raises `HttpError` 404 when no route has this path, 405 (with `Allow`)
        when some do but none with this method.
        """
        allowed: list[str] = []
        for route in self._routes:
            match = route.pattern.match(path)
            if match is None:
                continue
            if route.method == method:
                return route, match.groupdict()
            allowed.append(route.method)
        if allowed:
            raise HttpError(
                405, "Method Not Allowed", (("Allow", ", ".join(dict.fromkeys(allowed))),)
            )
        raise HttpError(404, "Not Found")

    def template_of(self, method: str, path: str) -> str:
        """The route template serving this request, or `path` itself when none does."""
        try:
            return self.resolve(method, path)[0].template
        except HttpError:
            return path


def _dispatch(
    router: Router, request: ApiRequest, before: Callable[[ApiRequest], None] | None = None
) -> Reply:
    """Route `request`, run `before` (auth, limits), then its handler; errors become replies."""
    route_name = request.path
    try:
        route, params = router.resolve(request.method, request.path)
        route_name = route.template
        if before is not None:
            before(request)
        reply = route.handler(request, params)
    except HttpError as exc:
        reply = exc.reply()
    return replace(reply, route=route_name)


def _cross_site(request: ApiRequest) -> bool:
    """Whether a browser sent `request` for a page of another origin than the one it reached.

    Browsers say so in `Sec-Fetch-Site` and, on every POST, in `Origin`
    ("null" from a sandboxed frame or a file); other clients send neither.
    A DNS-rebinding page reaches this host under its own name: its origin's
    host differs from this one's.
    """
    if request.headers.get("Sec-Fetch-Site", "same-origin").lower() not in (
        "same-origin",
        "none",
    ):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.headers.get("Host", "").lower()


# -- request parsing ---------------------------------------------------------


def _require_json_body(request: ApiRequest) -> None:
    """Refuse bodies that are absent or declared as something other than JSON."""
    content_type = request.headers.get("Content-Type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise Unprocessable(
            [
                error_detail(
                    ["body"],
                    f"Content-Type must be application/json, got {content_type!r}",
                    "content_type",
                )
            ]
        )
    if not request.body.strip():
        raise Unprocessable([error_detail(["body"], "Field required", "missing")])


def _parse_task(request: ApiRequest) -> WrittenTask:
    """The single-task body, or `Unprocessable` with `["body", <field>]` locations."""
    _require_json_body(request)
    try:
        return TaskWrite.model_validate_json(request.body, strict=True).written()
    except ValidationError as exc:
        raise Unprocessable(validation_details(exc, request.body)) from None


COMMENT_KEYS = ("content", "body", "text")
"""The keys a comment's text may come under: Fragment's docs don't show the body (§14)."""
MAX_COMMENT_LENGTH = 65_536


def _comment_text(request: ApiRequest) -> str:
    """The text of a comment body, `{"content"|"body"|"text": str}`; else 422."""
    _require_json_body(request)
    try:
        body = json.loads(request.body)
    except ValueError:
        raise Unprocessable([json_syntax_detail(request.body)]) from None
    if not isinstance(body, dict):
        raise Unprocessable([error_detail(["body"], "Input should be an object", "dict_type")])
    given = [key for key in COMMENT_KEYS if key in body]
    if not given:
        msg = "Field required: one of " + ", ".join(COMMENT_KEYS)
        raise Unprocessable([error_detail(["body", "content"], msg, "missing")])
    key = given[0]
    text = body[key]
    if not isinstance(text, str):
        raise Unprocessable(
            [error_detail(["body", key], "Input should be a string", "string_type")]
        )
    if not text.strip():
        msg = "String should have at least 1 character"
        raise Unprocessable([error_detail(["body", key], msg, "string_too_short", text)])
    if len(text) > MAX_COMMENT_LENGTH:
        msg = f"String should have at most {MAX_COMMENT_LENGTH} characters"
        raise Unprocessable([error_detail(["body", key], msg, "string_too_long")])
    return text


def _item_index(detail: ErrorDetail) -> int | None:
    loc = detail["loc"]
    if len(loc) > 2 and loc[1] == "items" and isinstance(loc[2], int):
        return int(loc[2])
    return None


def _parse_batch(
    request: ApiRequest, max_items: int | None
) -> tuple[list[WrittenTask | None], list[ErrorDetail]]:
    """The batch items (None where an item is invalid) and the validation errors.

    When some items are invalid, the valid ones are still returned so that
    their own problems (unknown uid, missing title...) can be reported in the
    same 422: a client then drops every bad item in one round trip.
    """
    _require_json_body(request)
    items, details = _validated_batch(request)
    if max_items is not None and len(items) > max_items:
        raise Unprocessable(
            [
                error_detail(
                    ["body", "items"],
                    f"batch holds {len(items)} items; at most {max_items} are allowed per request",
                    "too_long",
                    len(items),
                )
            ]
        )
    return items, details


def _validated_batch(request: ApiRequest) -> tuple[list[WrittenTask | None], list[ErrorDetail]]:
    """`_parse_batch`'s validation: the batch by `TaskBatch`; if an item fails, the rest alone."""
    try:
        batch = TaskBatch.model_validate_json(request.body, strict=True)
        return [item.written() for item in batch.items], []
    except ValidationError as exc:
        details = validation_details(exc, request.body)
        try:
            raw_items = json.loads(request.body).get("items")
        except (ValueError, AttributeError):
            raise Unprocessable(details) from None
        if not isinstance(raw_items, list):
            raise Unprocessable(details) from None
        bad = {_item_index(detail) for detail in details}
        items = [
            None if index in bad else _revalidate(raw_item)
            for index, raw_item in enumerate(raw_items)
        ]
        return items, details


def _revalidate(raw_item: Any) -> WrittenTask | None:
    try:
        return TaskWrite.model_validate_json(json.dumps(raw_item), strict=True).written()
    except ValidationError:
        return None


def _path_uid(text: str) -> str:
    """The canonical form of a uid from the path, or 422 at `["path", "uid"]`."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise Unprocessable(
            [error_detail(["path", "uid"], "Input should be a valid UUID", "uuid_parsing", text)]
        ) from None


def _located(prefix: Loc, problem: ItemError) -> ErrorDetail:
    return error_detail((*prefix, *problem.loc), problem.msg, problem.type, problem.input)


def encode_cursor(after: Position, order_by: str | None = None) -> str:
    """The opaque cursor of the page starting after `after` in the `order_by` order.

    Insertion order's cursors name the rank alone (`after:RANK`); an ordered
    listing's name the order too, so a cursor can't be replayed in another order.
    """
    text = f"after:{after.seq}" if order_by is None else f"after:{order_by}:{after.seq}:{after.key}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order_by: str | None = None) -> Position:
    """Where a cursor points; raises `ValueError` if it is not ours or not of this order."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(cursor) from None
    if order_by is None:
        prefix, _, number = text.partition(":")
        if prefix != "after" or not number.isdigit():
            raise ValueError(cursor)
        return Position("", int(number))
    prefix, order, number, key = [*text.split(":", 3), "", "", ""][:4]
    if prefix != "after" or order != order_by or not number.isdigit():
        raise ValueError(cursor)
    return Position(key, int(number))


_TIMESTAMP = TypeAdapter(Timestamp)
# Query keys with a meaning of their own; any other key filters a task field.
_LIST_PARAMS = frozenset(
    {
        "limit",
        "cursor",
        "status",
        "archived",
        "assignee_uid",
        "updated_at_after",
        "created_at_after",
        "order_by",
    }
)
_TOP_LEVEL_KEYS = frozenset(TaskWrite.model_fields) - {"fields"}


def _task_query(query: Mapping[str, list[str]]) -> TaskQuery:
    """The `GET /tasks` query string as a `TaskQuery`; 422 at `["query", name]` if bad."""
    last = {name: values[-1] for name, values in query.items()}
    problems: list[ErrorDetail] = []

    def fail(name: str, msg: str, type_: str) -> None:
        problems.append(error_detail(["query", name], msg, type_, last[name]))

    limit = DEFAULT_LIMIT
    if "limit" in last:
        try:
            limit = int(last["limit"])
        except ValueError:
            fail("limit", "Input should be a valid integer", "int_parsing")
        else:
            if not 1 <= limit <= MAX_LIMIT:
                fail("limit", f"Input should be between 1 and {MAX_LIMIT}", "limit_range")
    order_by = last.get("order_by")
    if order_by is not None and order_by not in ORDERS:
        fail("order_by", "Input should be 'created_at' or 'updated_at'", "enum")
        order_by = None
    after = None
    if last.get("cursor"):
        try:
            after = decode_cursor(last["cursor"], order_by)
        except ValueError:
            fail("cursor", "Invalid cursor", "cursor_invalid")
    status = last.get("status")
    if status is not None and status not in STATUSES:
        fail("status", "Input should be 'TODO', 'STARTED' or 'DONE'", "enum")
    archived: bool | None = None
    if "archived" in last:
        flag = last["archived"].lower()
        if flag not in ("true", "false"):
            fail("archived", "Input should be true or false", "bool_parsing")
        archived = flag == "true"
    assignee_uid = last.get("assignee_uid")
    if assignee_uid is not None:
        try:
            assignee_uid = str(uuid.UUID(assignee_uid))
        except ValueError:
            fail("assignee_uid", "Input should be a valid UUID", "uuid_parsing")
    moments: dict[str, str] = {}
    for name in ("updated_at_after", "created_at_after"):
        if name in last:
            try:
                moments[name] = _TIMESTAMP.validate_python(last[name])
            except ValidationError as exc:
                fail(name, exc.errors(include_url=False)[0]["msg"], "datetime_parsing")
    field_equals: list[tuple[str, str]] = []
    for name, wanted in last.items():
        if name in _LIST_PARAMS:
            continue
        if name.startswith("fields."):
            path = "$.fields." + json.dumps(name.removeprefix("fields."))
        elif name in _TOP_LEVEL_KEYS:
            path = "$." + name
        else:
            # `country=FR` is the quickstart's shorthand for `fields.country=FR`.
            path = "$.fields." + json.dumps(name)
        field_equals.append((path, wanted))
    if problems:
        raise Unprocessable(problems)
    return TaskQuery(
        limit=limit,
        after=after,
        order_by=order_by,
        status=status,
        archived=archived,
        assignee_uid=assignee_uid,
        updated_after=moments.get("updated_at_after"),
        created_after=moments.get("created_at_after"),
        field_equals=tuple(field_equals),
    )


def _page_meta(query: TaskQuery, page: TaskPage) -> JsonObject:
    def cursor(after: Position | None) -> str | None:
        return None if after is None else encode_cursor(after, query.order_by)

    return {
        "limit": query.limit,
        "self_cursor": cursor(query.after or START),
        "prev_cursor": cursor(page.prev_after),
        "next_cursor": cursor(page.next_after),
        "total_count": page.total_count,
    }


def _whole_meta(count: int) -> JsonObject:
    """The `meta` of an answer that is one whole page (a batch write's)."""
    cursors = dict.fromkeys(("self_cursor", "prev_cursor", "next_cursor"))
    return {"limit": count, **cursors, "total_count": count}


# -- the Fragment API --------------------------------------------------------


class FragmentApi:
    """The `/api/v1` routes over a `TaskStore`.

    `tokens` are the accepted bearer tokens; `users` decides which
    `assignee_email`s exist; `max_batch_items` caps batch size (None = no cap).
    """

    def __init__(
        self,
        store: TaskStore,
        tokens: Sequence[str],
        users: UserDirectory,
        faults: Faults,
        max_batch_items: int | None = 1000,
    ) -> None:
        self.store = store
        self.tokens = frozenset(tokens)
        self.users = users
        self.faults = faults
        self.max_batch_items = max_batch_items
        self.router = Router()
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/accounts/me", self._me),
            ("GET", "/tasks", self._list),
            ("POST", "/tasks", lambda r, p: self._write_one(WriteMode.CREATE, r, None)),
            ("POST", "/tasks/batch", lambda r, p: self._write_batch(WriteMode.CREATE, r)),
            ("PUT", "/tasks/batch", lambda r, p: self._write_batch(WriteMode.UPSERT, r)),
            ("PATCH", "/tasks/batch", lambda r, p: self._write_batch(WriteMode.UPDATE, r)),
            ("GET", "/tasks/{uid}", self._get),
            ("PUT", "/tasks/{uid}", lambda r, p: self._write_one(WriteMode.UPSERT, r, p["uid"])),
            ("PATCH", "/tasks/{uid}", lambda r, p: self._write_one(WriteMode.UPDATE, r, p["uid"])),
            ("DELETE", "/tasks/{uid}", self._delete),
            ("POST", "/tasks/{uid}/comments", self._comment),
            ("GET", "/tasks/{uid}/comments", self._comments),
        ]
        for method, template, handler in routes:
            self.router.add(method, API_PREFIX + template, handler)

    def handle(self, request: ApiRequest) -> Reply:
        """The answer to one `/api/v1` request (transport faults excluded)."""
        return _dispatch(self.router, request, self._admit)

    def _admit(self, request: ApiRequest) -> None:
        """401 without a known bearer token; 429 over the token's rate limit."""
        token = _bearer_token(request, self.tokens)
        retry_after = self.faults.admit(token)
        if retry_after is not None:
            raise HttpError(429, "Too Many Requests", (("Retry-After", str(retry_after)),))

    def _me(self, request: ApiRequest, params: Mapping[str, str]) -> Reply:
        return json_reply(200, ACCOUNT)

    def _get(self, request: ApiRequest, params: Mapping[str, str]) -> Reply:
        task = self.store.stored(_path_uid(params["uid"]))
        if task is None:
            raise HttpError(404, "Task not found")
        return Reply(200, self.store.render_json(task))

    def _delete(self, request: ApiRequest, params: Mapping[str, str]) -> Reply:
        uid = _path_uid(params["uid"])
        with self.store.writing() as writer:
            deleted = writer.delete(uid)
        if deleted is None:
            raise HttpError(404, "Task not found")
        return Reply(200, self.store.render_json(deleted))

    def _comment(self, request: ApiRequest, params: Mapping[str, str]) -> Reply:
        """POST /tasks/{uid}/comments: a comment on an existing task (fragment-api.md §14)."""
        uid = _path_uid(params["uid"])
        text = _comment_text(request)
        comment: JsonObject = {
            "uid": str(uuid.uuid4()),
            "task_uid": uid,
            "content": text,
            "created_at": self.faults.now_text(),
        }
        with self.store.writing() as writer:
            if not writer.load([uid]):
                raise HttpError(404, "Task not found")
            writer.add_comment(comment)
        return json_reply(200, comment, items=1)

    def _comments(self, request: ApiRequest, params: Mapping[str, str]) -> Reply:
        """GET /tasks/{uid}/comments (inferred): every comment on the task, oldest first."""
        uid = _path_uid(params["uid"])
        if self.store.stored(uid) is None:
            raise HttpError(404, "Task not found")
        comments = self.store.comments(uid)
        return json_reply(200, {"items": comments, "meta": {"total_count": len(comments)}})

    def _list(self, request: ApiRequest, params: Mapping[str, str]) -> Reply:
        query = _task_query(request.query)
        page = self.store.list_page(query)
        meta = _page_meta(query, page)
        return task_list_reply(page.items, meta)

    def _write_one(self, mode: WriteMode, request: ApiRequest, path_uid: str | None) -> Reply:
        """POST /tasks, PUT and PATCH /tasks/{uid}."""
        uid = None if path_uid is None else _path_uid(path_uid)
        item = _parse_task(request)
        body_uid = item.get("uid")
        if uid is not None and body_uid is not None and body_uid != uid:
            raise Unprocessable(
                [
                    error_detail(
                        ["body", "uid"],
                        f"uid in the body ({body_uid}) differs from the path ({uid})",
                        "uid_mismatch",
                        body_uid,
                    )
                ]
            )
        uids: list[str | None] = [uid] if uid is not None else assign_uids(mode, [item])[0]
        now = self.faults.now_text()
        with self.store.writing() as writer:
            stored = writer.load(uids)
            target = uids[0]
            if mode is WriteMode.CREATE and target in stored:
                raise HttpError(409, f"Task {target} already exists")
            if mode is WriteMode.UPDATE and target not in stored:
                raise HttpError(404, "Task not found")
            plan = plan_writes(mode, [item], uids, stored, self.users, now)
            if plan.errors:
                raise Unprocessable([_located(("body",), problem) for problem in plan.errors])
            writer.add_users(plan.new_user_emails, now)
            writer.save(plan)
        (task,) = plan.tasks
        return Reply(200, self.store.render_json(task), items=1)

    def _write_batch(self, mode: WriteMode, request: ApiRequest) -> Reply:
        """POST, PUT and PATCH /tasks/batch: validate everything, then apply all or nothing."""
        items, details = _parse_batch(request, self.max_batch_items)
        uids, uid_problems = assign_uids(mode, items)
        now = self.faults.now_text()
        with self.store.writing() as writer:
            stored = writer.load(uids)
            plan = plan_writes(mode, items, uids, stored, self.users, now)
            problems = [
                _located(("body", "items", p.index), p) for p in (*uid_problems, *plan.errors)
            ]
            if (details or problems) and self.faults.unnamed_rejections:
                raise Unprocessable([error_detail(["body", "items"], "invalid batch", "invalid")])
            if details or problems:
                # Stable sort: envelope errors first, then items in request order.
                every = sorted(
                    [*details, *problems], key=lambda d: -1 if (i := _item_index(d)) is None else i
                )
                raise Unprocessable(every)
            writer.add_users(plan.new_user_emails, now)
            writer.save(plan)
        tasks = [self.store.render_json(task) for task in plan.tasks]
        meta = _whole_meta(len(tasks))
        return task_list_reply(tasks, meta, items=len(items))


def _bearer_token(request: ApiRequest, tokens: frozenset[str]) -> str:
    """The request's bearer token, one of `tokens`; else 401."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HttpError(401, "Not authenticated", (("WWW-Authenticate", "Bearer"),))
    if token not in tokens:
        raise HttpError(401, "Invalid token", (("WWW-Authenticate", "Bearer"),))
    return token


# -- admin routes --------------------------------------------------------------


class AdminApi:
    """`/_emulator/*`: inspect and steer the emulator (no faults).

    They read every task, wipe them, break the API at will: each takes one
    of the emulator's `tokens`, and a browser's request on behalf of another
    site is refused (403) before anything else, token or not: a page could
    otherwise post a form here (no preflight), and the default token is no
    secret.
    """

    def __init__(
        self, store: TaskStore, traffic: TrafficLog, faults: Faults, tokens: Sequence[str]
    ) -> None:
        self.store = store
        self.traffic = traffic
        self.faults = faults
        self.tokens = frozenset(tokens)
        self.router = Router()
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/stats", lambda r, p: json_reply(200, self.traffic.stats())),
            ("GET", "/faults", lambda r, p: json_reply(200, self.faults.snapshot())),
            ("POST", "/faults", self._set_faults),
            ("POST", "/reset", self._reset),
            ("GET", "/tasks", self._tasks),
        ]
        for method, template, handler in routes:
            self.router.add(method, ADMIN_PREFIX + template, handler)

    def handle(self, request: ApiRequest) -> Reply:
        """The answer to one `/_emulator` request."""
        return _dispatch(self.router, request, self._admit)

    def _admit(self, request: ApiRequest) -> None:
        """403 for a request on behalf of another site's page; 401 without a token."""
        if _cross_site(request):
            raise HttpError(403, "Cross-origin requests to the admin routes are refused")
        _bearer_token(request, self.tokens)

    def _set_faults(self, request: ApiRequest, params: Mapping[str, str]) -> Reply:
        try:
            changes = json.loads(request.body or b"{}")
        except ValueError:
            raise Unprocessable([json_syntax_detail(request.body)]) from None
        if not isinstance(changes, dict):
            raise Unprocessable(
                [error_detail(["body"], "Input should be an object", "dict_type", changes)]
            )
        try:
            self.faults.update(changes)
        except ValueError as exc:
            raise Unprocessable(
                [error_detail(["body"], str(exc), "value_error", changes)]
            ) from None
        return json_reply(200, self.faults.snapshot())

    def reset(self) -> None:
        """Forget tasks, traffic and rate-limit history (fault switches and users stay)."""
        self.store.clear_tasks()
        self.traffic.clear()
        self.faults.limiter.clear()

    def _reset(self, request: ApiRequest, params: Mapping[str, str]) -> Reply:
        self.reset()
        return json_reply(200, {"reset": True})

    def _tasks(self, request: ApiRequest, params: Mapping[str, str]) -> Reply:
        tasks = self.store.all_tasks()
        return json_reply(200, {"items": tasks, "total_count": len(tasks)})
