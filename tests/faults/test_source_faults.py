"""Sources misbehaving: rate limits, 5xx bursts, broken bodies, looping pages, odd records.

Each scenario runs a config with TWO connectors: a Redmine (or Jira) one
against its vendor fake, where the fault is, and a healthy `jsonl` one. The
broken connector's failure is a clear message naming it (and the ticket where
there is one), never a bare traceback; the healthy connector's run is
untouched: its tasks land and its summary is ok.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes import HTML_ERROR, TRUNCATED_JSON, Reply, Request
from fakes.jira import SEARCH, FakeJira
from fakes.redmine import FakeRedmine
from fragment_emulator import Emulator
from sync.config import Config, build_config
from sync.mapping import task_uid
from sync.run import RunOptions, RunSummary, run_once
from sync.state import StateStore
from synckit import MAPPING, TOKEN, write_tickets

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
REDMINE_KEY = "redmine-key-faults-31"
JIRA_EMAIL, JIRA_TOKEN = "ops-bot@example.com", "jira-token-faults-77"
HEALTHY_IDS = [str(1000 + i) for i in range(6)]
SOURCE_OPTIONS = {
    "max_attempts": 4,
    "max_retry_wait": "10s",
    "rate_limit_floor": "100ms",
    "requests_per_minute": 100_000,
}


class LossyRedmine(FakeRedmine):
    """Redmine behind a proxy that drops the fields an issue lists in `_lose` and sends
    the ones it lists in `_epoch` as integer epoch seconds."""

    def route(self, request: Request) -> Reply:
        reply = super().route(request)
        if isinstance(reply.body, dict) and "issues" in reply.body:
            reply.body["issues"] = [_as_sent(issue) for issue in reply.body["issues"]]
        return reply


def _as_sent(issue: dict[str, Any]) -> dict[str, Any]:
    lose, epoch = issue.get("_lose", []), issue.get("_epoch", [])
    sent = {k: v for k, v in issue.items() if k not in [*lose, "_lose", "_epoch"]}
    for name in epoch:
        moment = dt.datetime.fromisoformat(sent[name].replace("Z", "+00:00"))
        sent[name] = int(moment.timestamp())
    return sent


@pytest.fixture
def redmine() -> Iterator[FakeRedmine]:
    with LossyRedmine(REDMINE_KEY) as fake:
        for n in range(1, 13):
            fake.add(n, T0 + dt.timedelta(minutes=n), subject=f"Printer {n} jammed")
        yield fake


@pytest.fixture
def healthy(tmp_path: Path) -> Path:
    tickets = [
        {
            "id": int(i),
            "subject": f"Healthy {i}",
            "priority": "normal",
            "status": "open",
            "assignee": None,
            "requester": {"country": "FR"},
            "updated_at": "2026-11-02T09:00:00Z",
            "deleted": False,
        }
        for i in HEALTHY_IDS
    ]
    return write_tickets(tmp_path / "healthy.jsonl", tickets)


def _raw(emulator: Emulator, state_url: str, healthy: Path, broken: dict[str, Any]) -> dict:
    return {
        "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
        "state": {"url": state_url},
        "connectors": {
            "tracker": {**SOURCE_OPTIONS, **broken},
            "helpdesk": {
                "kind": "jsonl",
                "path": str(healthy),
                "deleted_field": "deleted",
                "mapping": MAPPING,
            },
        },
    }


def _redmine_options(fake: FakeRedmine, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "redmine",
        "base_url": fake.base_url,
        "api_key": REDMINE_KEY,
        "page_size": 5,
        **extra,
    }


def _config(emulator: Emulator, state_url: str, healthy: Path, broken: dict[str, Any]) -> Config:
    return build_config(_raw(emulator, state_url, healthy, broken), source="test")


def _sync(config: Config) -> dict[str, RunSummary]:
    store = StateStore.open(config.state.url)
    try:
        summaries = run_once(config, store, options=RunOptions())
    finally:
        store.close()
    return {s.name: s for s in summaries}


def _landed(emulator: Emulator, namespace: str) -> dict[str, dict[str, Any]]:
    """The tasks in the emulator of connector `namespace`, by source id."""
    tasks = {t["uid"]: t for t in emulator.store.all_tasks()}
    return {
        str(t["fields"]["ticket_id"]): t
        for t in tasks.values()
        if t["uid"] == task_uid(namespace, str(t["fields"]["ticket_id"]))
    }


def _assert_healthy_untouched(summaries: dict[str, RunSummary], emulator: Emulator) -> None:
    helpdesk = summaries["helpdesk"]
    assert (helpdesk.ok, helpdesk.outcome, helpdesk.error) == (True, "ok", None)
    # Read in full, or skipped whole once its file is unchanged since a complete pass.
    assert helpdesk.pushed + helpdesk.unchanged == (len(HEALTHY_IDS) if helpdesk.pulled else 0)
    assert helpdesk.failed == 0
    assert set(_landed(emulator, "helpdesk")) == set(HEALTHY_IDS)


def _assert_clear_failure(summary: RunSummary, *words: str) -> None:
    assert not summary.ok and summary.outcome == "failed"
    error = summary.error or ""
    assert "tracker" in error, error
    assert "Traceback" not in error and "internal error" not in error, error
    for word in words:
        assert word in error, error


def _page_number(fake: Any, path: str) -> Any:
    """A predicate true from the second page request to `path` on."""
    seen = [0]

    def second(request: Request) -> bool:
        if request.path == path:
            seen[0] += 1
        return seen[0] >= 2

    return second


def test_a_rate_limit_mid_run_is_waited_out_and_nothing_is_lost(
    emulator: Emulator, redmine: FakeRedmine, healthy: Path, sqlite_url: str
) -> None:
    redmine.fail_next(
        Reply(429, {"errors": ["Too many requests"]}, headers={"Retry-After": "1"}),
        when=_page_number(redmine, "/issues.json"),
    )

    summaries = _sync(_config(emulator, sqlite_url, healthy, _redmine_options(redmine)))

    assert summaries["tracker"].ok, summaries["tracker"].error
    assert set(_landed(emulator, "tracker")) == {str(n) for n in range(1, 13)}
    pages = redmine.gets("/issues.json")
    assert pages[2].at - pages[1].at >= 1.0
    _assert_healthy_untouched(summaries, emulator)


def test_a_burst_of_5xx_is_retried_and_nothing_is_lost(
    emulator: Emulator, redmine: FakeRedmine, healthy: Path, sqlite_url: str
) -> None:
    redmine.fail_next(Reply(503, {"errors": ["unavailable"]}), times=2)
    redmine.fail_next(HTML_ERROR, times=1)

    summaries = _sync(_config(emulator, sqlite_url, healthy, _redmine_options(redmine)))

    assert summaries["tracker"].ok, summaries["tracker"].error
    assert set(_landed(emulator, "tracker")) == {str(n) for n in range(1, 13)}
    assert len(redmine.gets("/issues.json")) >= 3 + 3  # three refused, then the pages
    _assert_healthy_untouched(summaries, emulator)


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (TRUNCATED_JSON, ["not JSON"]),
        (Reply(200, raw=HTML_ERROR.raw, content_type="text/html"), ["not JSON"]),
        (HTML_ERROR, ["502"]),
        (Reply(200, raw=b'{"issues": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), ["deeply"]),
        (Reply(200, raw=b'{"issues": [], "total_count": 1' + b"0" * 5_000 + b"}"), ["digits"]),
    ],
    ids=["truncated-json", "html-page-200", "html-page-502", "nested-too-deep", "huge-number"],
)
def test_a_broken_body_fails_only_that_connector_with_a_clear_message(
    emulator: Emulator,
    redmine: FakeRedmine,
    healthy: Path,
    sqlite_url: str,
    reply: Reply,
    words: list[str],
) -> None:
    redmine.fail_next(reply, times=100, when=_page_number(redmine, "/issues.json"))
    options = _redmine_options(redmine, batch_size=5)  # the first page is checkpointed

    summaries = _sync(_config(emulator, sqlite_url, healthy, options))

    _assert_clear_failure(summaries["tracker"], *words)
    _assert_healthy_untouched(summaries, emulator)
    # The watermark stayed at the last checkpoint: once the source heals, nothing is missing.
    redmine.faults.clear()
    assert _sync(_config(emulator, sqlite_url, healthy, options))["tracker"].ok
    assert set(_landed(emulator, "tracker")) == {str(n) for n in range(1, 13)}


def test_a_page_token_sent_twice_fails_with_same_page_pointer(
    emulator: Emulator, healthy: Path, sqlite_url: str
) -> None:
    with FakeJira(JIRA_EMAIL, JIRA_TOKEN) as jira:
        for n in range(1, 4):
            jira.add(n, T0 + dt.timedelta(minutes=n))
        looping = Reply(200, {"issues": [], "isLast": False, "nextPageToken": "tok-same"})
        jira.fail_next(looping, times=10, when=lambda r: r.path == SEARCH)
        options = {
            "kind": "jira",
            "base_url": jira.base_url,
            "email": JIRA_EMAIL,
            "api_token": JIRA_TOKEN,
            "jql": "project = OPS",
            "page_size": 5,
        }

        summaries = _sync(_config(emulator, sqlite_url, healthy, options))

        _assert_clear_failure(summaries["tracker"], "same page pointer")
        assert len(jira.gets(SEARCH)) == 2  # it stops at once, no endless loop
    _assert_healthy_untouched(summaries, emulator)


@pytest.mark.parametrize("field", ["id", "updated_on"])
def test_a_record_missing_its_id_or_cursor_is_a_failed_item_and_the_rest_goes_on(
    emulator: Emulator,
    redmine: FakeRedmine,
    healthy: Path,
    sqlite_url: str,
    field: str,
) -> None:
    redmine.add(50, T0 + dt.timedelta(minutes=6, seconds=30), _lose=[field])

    summaries = _sync(_config(emulator, sqlite_url, healthy, _redmine_options(redmine)))

    tracker = summaries["tracker"]
    assert tracker.ok, tracker.error
    assert tracker.failed == 1
    assert set(_landed(emulator, "tracker")) == {str(n) for n in range(1, 13)}
    store = StateStore.open(sqlite_url)
    [failed] = store.failed_items("tracker")
    store.close()
    assert failed.field == field
    assert "'tracker'" in failed.error and field in failed.error
    if field == "updated_on":
        assert failed.source_id == "50"
    _assert_healthy_untouched(summaries, emulator)


def test_a_custom_field_turning_from_text_into_an_object_is_carried_as_json(
    emulator: Emulator, redmine: FakeRedmine, healthy: Path, sqlite_url: str
) -> None:
    for n in redmine.issues:
        redmine.issues[n]["custom"] = f"text {n}"
    mapping = {"title": "#{id} {subject}", "fields": {"custom": "custom", "cf": "custom.value"}}
    options = _redmine_options(redmine, mapping=mapping)
    assert _sync(_config(emulator, sqlite_url, healthy, options))["tracker"].ok

    later = T0 + dt.timedelta(hours=1)
    redmine.touch(4, later, custom={"id": 7, "value": ["a", {"b": 1.5}]})
    redmine.touch(5, later + dt.timedelta(seconds=1), custom=[1, 2, None])
    summaries = _sync(_config(emulator, sqlite_url, healthy, options))

    tracker = summaries["tracker"]
    assert tracker.ok, tracker.error
    assert (tracker.failed, tracker.pushed) == (0, 2)
    landed = _landed(emulator, "tracker")
    assert landed["4"]["fields"]["custom"] == {"id": 7, "value": ["a", {"b": 1.5}]}
    assert landed["4"]["fields"]["cf"] == ["a", {"b": 1.5}]
    assert landed["5"]["fields"]["custom"] == [1, 2, None]
    assert landed["3"]["fields"]["custom"] == "text 3"


def test_a_timestamp_turning_into_an_epoch_int_is_read_as_the_same_instant(
    emulator: Emulator, redmine: FakeRedmine, healthy: Path, sqlite_url: str
) -> None:
    config = _config(emulator, sqlite_url, healthy, _redmine_options(redmine))
    assert _sync(config)["tracker"].ok

    later = T0 + dt.timedelta(hours=1)
    redmine.touch(4, later, subject="Printer 4 on fire", _epoch=["updated_on", "created_on"])
    summaries = _sync(config)

    tracker = summaries["tracker"]
    assert tracker.ok, tracker.error
    assert (tracker.failed, tracker.pushed) == (0, 1)
    task = _landed(emulator, "tracker")["4"]
    assert task["fields"]["title"] == "#4 Printer 4 on fire"
    assert task["external_updated_at"].startswith("2026-11-02T10:00:00")
    _assert_healthy_untouched(summaries, emulator)


def test_the_cli_json_summary_shows_the_broken_connector_and_the_healthy_one_ok(
    emulator: Emulator, redmine: FakeRedmine, healthy: Path, sqlite_url: str, tmp_path: Path
) -> None:
    redmine.fail_next(TRUNCATED_JSON, times=100)
    raw = _raw(emulator, sqlite_url, healthy, _redmine_options(redmine))
    config_file = tmp_path / "sync.toml"
    config_file.write_text(_toml(raw))

    done = subprocess.run(
        [sys.executable, "-m", "sync", "run", "--once", "--json", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )

    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    by_name = {c["name"]: c for c in document["connectors"]}
    assert document["ok"] is False
    assert by_name["helpdesk"]["ok"] and by_name["helpdesk"]["pushed"] == len(HEALTHY_IDS)
    assert not by_name["tracker"]["ok"]
    assert "tracker" in by_name["tracker"]["error"] and "not JSON" in by_name["tracker"]["error"]
    assert "Traceback" not in done.stderr


def _toml(raw: dict[str, Any]) -> str:
    """`raw` as TOML, every section an inline table (enough for these configs)."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    return "".join(f"{key} = {value(section)}\n" for key, section in raw.items())
