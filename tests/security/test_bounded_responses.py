"""Answers are bounded, from sources and from Fragment (issue 16, item 4).

A hostile or broken server decides how big and how slow its answer is. Each
test points a source connector or the Fragment client at a `HostileServer`
on loopback sending a gzip bomb, an endless body or a drip, and checks what
a user relies on: the pass fails with a message saying why, memory stays
within a bound (measured with tracemalloc as a bound that must hold, never
as a speed), the client hangs up instead of reading on, and nothing Fragment
did not properly acknowledge counts as acknowledged.
"""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import SourceError
from connectors.rest import RestApiConnector, RestApiOptions
from fakes.hostile import (
    Attack,
    HostileServer,
    MiB,
    Tail,
    acknowledgment,
    drip,
    endless,
    gzip_bomb,
)
from sync.config import build_config
from sync.run import RunOptions, RunSummary, run_once
from sync.state import StateStore
from synckit import MAPPING, TOKEN, write_tickets

API_KEY = "bo-key-5ecret-93f1c2"
SOURCE_DEFAULT_CAP = 64 * MiB
FRAGMENT_DEFAULT_CAP = 16 * MiB


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """The most memory Python held at once inside the block (bytes), in `[0]` afterwards."""
    tracemalloc.start()
    peak = [0]
    try:
        yield peak
    finally:
        peak[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


# A source: the `rest` connector reading a hostile API.


def source(server: HostileServer, **options: Any) -> RestApiConnector:
    raw = {
        "base_url": server.base_url,
        "path": "/tickets",
        "auth": {"type": "header", "header": "X-Api-Key", "value": API_KEY},
        "paginator": {"type": "next_token", "token_path": "next", "param": "cursor"},
        "records_path": "items",
        "max_attempts": 1,
        "requests_per_minute": 100_000,
        **options,
    }
    return RestApiConnector("hostile", RestApiOptions.model_validate(raw))


def pull_error(connector: RestApiConnector) -> str:
    """The `SourceError` a pass over `connector` ends with."""
    try:
        with pytest.raises(SourceError) as caught:
            list(connector.pull(None))
    finally:
        connector.close()
    return str(caught.value)


def test_a_gzip_bomb_from_a_source_fails_the_pass_within_the_default_cap() -> None:
    with HostileServer(gzip_bomb(512 * MiB)) as server, peak_memory() as peak:
        error = pull_error(source(server))
    assert "max_response_size" in error and "64 MiB" in error
    assert peak[0] < 2 * SOURCE_DEFAULT_CAP  # 512 MiB unpacked before, then parsed


def test_an_endless_answer_from_a_source_is_cut_at_max_response_size() -> None:
    with HostileServer(endless(256 * MiB)) as server, peak_memory() as peak:
        error = pull_error(source(server, max_response_size="1MiB"))
    assert "max_response_size" in error and "1 MiB" in error
    exchange = server.exchanges[0].outcome()
    assert exchange.hung_up and exchange.sent < 256 * MiB
    assert peak[0] < 32 * MiB


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate"])
def test_a_compressed_page_within_the_cap_reads_as_sent(encoding: str) -> None:
    """What the bound must not break: pages compressed as servers do, arriving in small pieces."""
    tickets = [{"id": n, "updated_at": f"2026-11-02T09:0{n}:00Z"} for n in range(1, 4)]
    page = json.dumps({"items": tickets}).encode()
    wbits = {"gzip": 31, "deflate": 15, "raw deflate": -15}[encoding]
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    packed = packer.compress(page) + packer.flush()
    pieces = [packed[i : i + 7] for i in range(0, len(packed), 7)]
    name = "gzip" if encoding == "gzip" else "deflate"
    attack = Attack(lambda body: iter(pieces), {"Content-Encoding": name}, chunked=True)
    with HostileServer(attack) as server:
        connector = source(server)
        try:
            pulled = list(connector.pull(None))
        finally:
            connector.close()
    assert [t.source_id for t in pulled] == ["1", "2", "3"]
    assert server.exchanges[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize("where", ["body", "head"])
def test_a_source_dripping_its_answer_is_cut_at_the_request_deadline(where: str) -> None:
    """One byte every 50 ms: each within the read timeout, the whole beyond `request_timeout`."""
    attack = drip(200, 0.05) if where == "body" else drip(20, 0.0, head_pause=0.05)
    with HostileServer(attack) as server:
        error = pull_error(source(server, request_timeout="1s"))
    assert "Timeout" in error
    exchange = server.exchanges[0].outcome()
    assert exchange.hung_up  # the client went away before the answer was complete
    if where == "body":
        assert exchange.sent < 200


# Fragment: the client pushing a batch to a hostile `PUT /tasks/batch`.


def push(server: HostileServer, tmp_path: Path, **fragment: Any) -> tuple[RunSummary, StateStore]:
    """One pass of three tickets from a JSONL file to `server` as Fragment; the store stays open."""
    tickets = [
        {"id": n, "subject": f"Ticket {n}", "priority": "normal", "status": "open"}
        | {"updated_at": f"2026-11-02T09:0{n}:00Z"}
        for n in range(1, 4)
    ]
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    raw = {
        "fragment": {
            "url": f"{server.base_url}/api/v1",
            "token": TOKEN,
            "requests_per_minute": 100_000,
            "max_attempts": 2,
            "max_retry_wait": "1s",
            **fragment,
        },
        "state": {"url": state_url},
        "connectors": {"helpdesk": {"kind": "jsonl", "path": str(path), "mapping": MAPPING}},
    }
    store = StateStore.open(state_url)
    [summary] = run_once(build_config(raw, source="test"), store, options=RunOptions())
    return summary, store


def assert_not_acknowledged(summary: RunSummary, store: StateStore) -> None:
    """The batch neither landed nor was set aside: the next pass sends it again."""
    assert not summary.ok
    assert (summary.pushed, summary.failed) == (0, 0)
    assert store.watermark("helpdesk") is None
    assert store.failed_items("helpdesk") == []


def test_a_gzip_bomb_answered_by_fragment_is_not_an_acknowledgment(tmp_path: Path) -> None:
    """The bomb unpacks to 256 MiB of whitespace and then a perfect acknowledgment."""
    with HostileServer(gzip_bomb(256 * MiB, acknowledgment)) as server, peak_memory() as peak:
        summary, store = push(server, tmp_path)
    try:
        assert_not_acknowledged(summary, store)
    finally:
        store.close()
    assert "max_response_size" in (summary.error or "") and "16 MiB" in (summary.error or "")
    assert peak[0] < 3 * FRAGMENT_DEFAULT_CAP


def test_an_endless_answer_from_fragment_is_cut_at_its_max_response_size(tmp_path: Path) -> None:
    with HostileServer(endless(256 * MiB, acknowledgment)) as server, peak_memory() as peak:
        summary, store = push(server, tmp_path, max_response_size="1MiB")
    try:
        assert_not_acknowledged(summary, store)
    finally:
        store.close()
    assert "max_response_size" in (summary.error or "")
    exchanges = [e.outcome() for e in server.exchanges]
    assert all(e.hung_up and e.sent < 256 * MiB for e in exchanges)
    assert peak[0] < 32 * MiB


def test_fragment_dripping_its_acknowledgment_is_cut_at_the_request_deadline(
    tmp_path: Path,
) -> None:
    with HostileServer(drip(200, 0.05, acknowledgment)) as server:
        summary, store = push(server, tmp_path, timeout="1s", max_attempts=1)
    try:
        assert_not_acknowledged(summary, store)
    finally:
        store.close()
    assert "Timeout" in (summary.error or "")
    exchange = server.exchanges[0].outcome()
    assert exchange.hung_up and exchange.sent < 200


def answer(tail: Tail) -> Attack:
    """A plain 200 whose body is `tail` of the request."""
    return Attack(lambda body: iter([tail(body)]), headers={"Content-Type": "application/json"})


def _items(body: bytes) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(body)["items"]
    return items


NOT_ACKNOWLEDGMENTS: dict[str, Tail] = {
    "not JSON": lambda body: b"<html><body>OK</body></html>",
    "not an object": lambda body: b"[]",
    "no items": lambda body: b'{"ok": true}',
    "one item short": lambda body: json.dumps(
        {"items": [{"uid": i["uid"]} for i in _items(body)[:-1]]}
    ).encode(),
    "other tasks": lambda body: json.dumps(
        {"items": [{"uid": "3c90c3cc-0d44-4b50-8888-8dd25736052a"} for _ in _items(body)]}
    ).encode(),
}


@pytest.mark.parametrize("kind", list(NOT_ACKNOWLEDGMENTS))
def test_a_2xx_that_does_not_acknowledge_the_batch_is_retried_and_never_counted(
    kind: str, tmp_path: Path
) -> None:
    with HostileServer(answer(NOT_ACKNOWLEDGMENTS[kind])) as server:
        summary, store = push(server, tmp_path)
    try:
        assert_not_acknowledged(summary, store)
    finally:
        store.close()
    assert "acknowledg" in (summary.error or "")
    assert [e.method for e in server.exchanges] == ["PUT", "PUT"]  # retried, as a 5xx would be


def test_a_well_formed_acknowledgment_counts(tmp_path: Path) -> None:
    """The control: the same server answering as Fragment does."""
    with HostileServer(answer(acknowledgment)) as server:
        summary, store = push(server, tmp_path)
    try:
        assert summary.ok, summary.error
        assert summary.pushed == 3
        watermark = store.watermark("helpdesk")
    finally:
        store.close()
    assert watermark == dt.datetime(2026, 11, 2, 9, 3, tzinfo=dt.UTC)
