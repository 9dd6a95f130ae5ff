"""People: assignees resolved once per person, through the table, the cache and the source.

The stage's own rules run against a connector that counts what it is asked
(no HTTP: the stage only calls `Connector.people`); what a pass does with
them runs end to end, the jsonl connector into the emulator. Redmine's own
lookups are in tests/connectors/test_redmine.py (fake) and
test_redmine_real.py (the real server).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from connectors.base import Connector, ConnectorOptions, Person, SourceTicket
from connectors.errors import SourceError
from fragment_emulator import Emulator
from sync.config import Config, build_config, load_config
from sync.errors import ConfigError
from sync.mapping import Mapper
from sync.people import PEOPLE_BATCH, PeopleResolver
from sync.run import RunOptions, RunSummary, run_once
from sync.shell.cli import main
from sync.spec import MappingSettings
from sync.state import StateStore
from sync.state.schema import failed_items, people
from synckit import TOKEN, tasks_by_ticket, write_tickets

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
ANA, LI = "ana@support.example.com", "li@support.example.com"


class Directory(Connector):
    """A source whose people are `known` (user id → email or None); it records each batch."""

    kind = "directory"

    def __init__(self, known: dict[str, str | None], *, resolves: bool = True) -> None:
        super().__init__("helpdesk", ConnectorOptions())
        self.known = known
        self.batches: list[list[str]] = []
        self.fail = False

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        batch = list(user_ids)
        self.batches.append(batch)
        if self.fail:
            raise SourceError(self.name, "the source is down")
        for user_id in batch:
            if user_id in self.known:
                email = self.known[user_id]
                reason = None if email else "email hidden"
                yield Person(user_id, email, f"User {user_id}", reason)

    @property
    def asked(self) -> list[str]:
        return [user_id for batch in self.batches for user_id in batch]


def _connector(table: dict[str, Any] | None = None, ttl: str = "7d") -> Any:
    raw = {
        "connectors": {
            "helpdesk": {
                "kind": "jsonl",
                "path": "tickets.jsonl",
                "mapping": {"title": "{subject}", "assignee": "agent.id"},
                "people": {"ttl": ttl, "table": table or {}},
            }
        }
    }
    return build_config(raw, source="test").connectors["helpdesk"]


def _resolver(store: StateStore, table: dict[str, Any] | None = None, **kw: Any) -> PeopleResolver:
    connector = _connector(table, kw.pop("ttl", "7d"))
    mapper = Mapper("helpdesk", "helpdesk", connector.settings.mapping)
    return PeopleResolver(connector, store, mapper, structlog.get_logger(), **kw)


def _tickets(agents: Iterable[int | str | None]) -> list[SourceTicket]:
    return [
        SourceTicket(str(n), T0, {"subject": f"T{n}", "agent": {"id": agent}})
        for n, agent in enumerate(agents)
    ]


def test_each_assignee_is_asked_once_in_batches_however_many_tickets_and_chunks_name_them(
    store: StateStore,
) -> None:
    source = Directory({str(n): f"agent{n}@support.example.com" for n in range(300)})
    resolver = _resolver(store)
    # Three chunks of 500 tickets over 250 people, each met in several chunks.
    found: dict[str, str | None] = {}
    for chunk in range(3):
        tickets = _tickets((n * 7 + chunk) % 250 for n in range(500))
        found.update(resolver.lookup(source, tickets))

    assert sorted(source.asked) == sorted(str(n) for n in range(250))  # each once
    assert max(len(batch) for batch in source.batches) == PEOPLE_BATCH
    assert found["42"] == "agent42@support.example.com"
    again = _resolver(store)  # the next pass: every answer comes from the cache
    again.lookup(source, _tickets(range(250)))
    assert len(source.asked) == 250


def test_the_cache_is_asked_again_once_its_ttl_has_passed(store: StateStore) -> None:
    source = Directory({"1": ANA, "2": LI})
    _resolver(store, ttl="1h").lookup(source, _tickets([1, 2]))
    with store.engine.begin() as conn:
        old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        conn.execute(sa.update(people).where(people.c.user_id == "1").values(resolved_at=old))

    _resolver(store, ttl="1h").lookup(source, _tickets([1, 2]))

    assert source.asked == ["1", "2", "1"]


def test_a_pass_remembers_only_so_many_people_and_looks_the_rest_up_in_the_cache(
    store: StateStore,
) -> None:
    source = Directory({str(n): f"a{n}@support.example.com" for n in range(10)})
    resolver = _resolver(store, remembered=3)
    resolver.lookup(source, _tickets(range(10)))
    assert len(resolver._remembered) == 3

    assert resolver.lookup(source, _tickets([0]))["0"] == "a0@support.example.com"
    assert len(source.asked) == 10  # from the cache, not asked again


def test_the_table_wins_over_the_source_which_is_never_asked_about_its_people(
    store: StateStore,
) -> None:
    source = Directory({"1": "old@support.example.com", "2": LI})
    resolver = _resolver(store, {"1": ANA, "3": LI})

    found = resolver.lookup(source, _tickets([1, 2, 3, None, ""]))

    assert found == {"1": ANA, "2": LI, "3": LI}
    assert source.asked == ["2"]


def test_what_the_source_cant_resolve_is_cached_with_why_and_never_a_failure(
    store: StateStore,
) -> None:
    source = Directory({"1": None, "2": "not-an-address"})

    found = _resolver(store).lookup(source, _tickets([1, 2, 3]))

    assert found == {"1": None, "2": None, "3": None}
    kept = store.known_people("helpdesk", ["1", "2", "3"])
    assert kept["1"].reason == "email hidden"
    assert "'not-an-address' is not an email address" in (kept["2"].reason or "")
    assert kept["3"].reason == "the source said nothing about this user"


def test_a_source_that_fails_fails_the_lookup_and_caches_nothing(store: StateStore) -> None:
    source = Directory({"1": ANA})
    source.fail = True
    with pytest.raises(SourceError):
        _resolver(store).lookup(source, _tickets([1]))
    assert store.known_people("helpdesk", ["1"]) == {}


def test_only_an_email_that_changes_changes_the_settings_fingerprint(store: StateStore) -> None:
    source = Directory({"1": ANA, "2": None})
    resolver = _resolver(store, ttl="1s")
    resolver.lookup(source, _tickets([1, 2]))
    first = resolver.fingerprint("settings")
    assert first == "settings"  # first answers change nothing

    refreshed = list(_resolver(store).refresh(source))  # the same answers again
    assert {p.user_id for p in refreshed} == {"1", "2"}
    assert _resolver(store).fingerprint("settings") == "settings"

    source.known["2"] = LI  # a hidden email now shown: a change
    list(_resolver(store).refresh(source))
    changed = _resolver(store).fingerprint("settings")
    assert changed != "settings"
    assert store.known_people("helpdesk", ["2"])["2"].email == LI

    list(_resolver(store).refresh(source))  # nothing new: stays as it is
    assert _resolver(store).fingerprint("settings") == changed


# End to end: the jsonl connector, whose people come from the table only.


def _config(emulator: Emulator, tickets: Path, state_url: str, table: dict[str, Any]) -> Config:
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
        "state": {"url": state_url},
        "connectors": {
            "helpdesk": {
                "kind": "jsonl",
                "path": str(tickets),
                "mapping": {"title": "{subject}", "assignee": "agent_id"},
                "people": {"table": table},
            }
        },
    }
    return build_config(raw, source="test")


def _sync(config: Config) -> RunSummary:
    with StateStore.open(config.state.url) as store:
        [summary] = run_once(config, store, options=RunOptions())
    return summary


def _assignees(emulator: Emulator) -> dict[str, str | None]:
    return {
        number: (task.get("assignee") or {}).get("email")
        for number, task in tasks_by_ticket(emulator).items()
    }


def _agent_tickets(tmp_path: Path, agents: list[int | None]) -> Path:
    tickets = [
        {
            "id": n,
            "subject": f"Ticket {n}",
            "agent_id": agent,
            "updated_at": f"2026-11-02T09:{n:02d}:00Z",
        }
        for n, agent in enumerate(agents)
    ]
    return write_tickets(tmp_path / "tickets.jsonl", tickets)


def test_a_refused_email_is_a_failed_item_naming_it_and_a_table_change_retries_it_at_once(
    tmp_path: Path, state_url: str
) -> None:
    """Fragment knows ana and li only. Agent 2's email in the table is a typo: Fragment
    refuses their ticket. Fixing the table reaches it on the next pass, though the item
    has failed for hours and would otherwise wait an hour; agent 1's tasks follow an
    edit of their email too, though their tickets did not change."""
    path = _agent_tickets(tmp_path, [1, 2, 1, None, 7])
    with Emulator(tokens=[TOKEN], users=[ANA, LI]) as emulator:
        typo = {"1": ANA, "2": "li@support.example.con"}
        first = _sync(_config(emulator, path, state_url, typo))

        assert first.failed == 1
        assert _assignees(emulator) == {"0": ANA, "2": ANA, "3": None, "4": None}
        with StateStore.open(state_url) as store:
            [item] = store.failed_items("helpdesk")
            assert item.source_id == "1" and "li@support.example.con" in item.error
            with store.engine.begin() as conn:  # failing for hours: due in an hour
                hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
                conn.execute(sa.update(failed_items).values(first_seen=hours_ago))
        waiting = _sync(_config(emulator, path, state_url, typo))
        assert (waiting.failed, waiting.pushed) == (1, 0)
        with StateStore.open(state_url) as store:
            [item] = store.failed_items("helpdesk")
            assert item.retry_at is not None
            assert item.retry_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=50)

        fixed = _sync(_config(emulator, path, state_url, {"1": LI, "2": LI}))

        assert fixed.ok and fixed.failed == 0
        assert _assignees(emulator) == {"0": LI, "1": LI, "2": LI, "3": None, "4": None}
        with StateStore.open(state_url) as store:
            assert store.failed_items("helpdesk") == []


def test_an_unresolved_assignee_leaves_the_task_unassigned_and_people_says_why(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _agent_tickets(tmp_path, [1, 9])
    with Emulator(tokens=[TOKEN], users=[ANA]) as emulator:
        config = _config(emulator, path, sqlite_url, {"1": ANA})
        summary = _sync(config)
        assert summary.ok and (summary.pushed, summary.failed) == (2, 0)
        assert _assignees(emulator) == {"0": ANA, "1": None}

        config_file = tmp_path / "sync.toml"
        config_file.write_text(
            f"""
[fragment]
url = "{emulator.base_url}"
[state]
url = "{sqlite_url}"
[connectors.helpdesk]
kind = "jsonl"
path = "{path}"
mapping = {{ title = "{{subject}}", assignee = "agent_id" }}
[connectors.helpdesk.people]
file = "people.csv"
"""
        )
        (tmp_path / "people.csv").write_text(f"user_id,email,name\n1,{ANA},Ana\n")
        capsys.readouterr()
        code = main(["people", "--config", str(config_file), "--json"])

    document = json.loads(capsys.readouterr().out)
    assert code == 0 and document["ok"]
    [helpdesk] = document["connectors"]
    by_id = {person["user_id"]: person for person in helpdesk["people"]}
    assert by_id["1"] | {"at": None} == {
        "user_id": "1", "email": ANA, "name": "Ana", "from": "table", "at": None,
        "stale": False, "reason": None,
    }  # fmt: skip
    assert by_id["9"]["email"] is None and by_id["9"]["from"] == "cache"
    assert "not in connectors.helpdesk.people" in by_id["9"]["reason"]
    assert (helpdesk["resolved"], helpdesk["unresolved"]) == (1, 1)

    assert main(["people", "--config", str(config_file)]) == 0
    text = capsys.readouterr().out
    assert "helpdesk (mapping.assignee = agent_id): 1 resolved, 1 not" in text
    assert "9: NOT RESOLVED: not in connectors.helpdesk.people" in text
    assert main(["people", "--config", str(config_file), "--connector", "nope"]) == 2


def test_an_assignee_email_from_a_path_wins_over_the_resolved_one() -> None:
    settings = MappingSettings(title="{subject}", assignee="agent.id", assignee_email="email")
    mapper = Mapper("helpdesk", "helpdesk", settings)
    record = {"subject": "x", "agent": {"id": 5}, "email": LI}

    with_email = mapper.map(SourceTicket("1", T0, record), {"5": ANA}).task()
    without = mapper.map(SourceTicket("1", T0, {**record, "email": None}), {"5": ANA}).task()

    assert (with_email["assignee_email"], without["assignee_email"]) == (LI, ANA)


def test_an_assignee_that_is_no_user_id_fails_the_ticket_naming_the_field() -> None:
    mapper = Mapper("helpdesk", "helpdesk", MappingSettings(assignee="agent"))
    ticket = SourceTicket("1", T0, {"agent": {"id": 5}})
    with pytest.raises(Exception, match="assignee") as failure:
        mapper.map(ticket)
    assert getattr(failure.value, "field", None) == "assignee"
    assert mapper.assignee_id(ticket) is None


def test_a_mapping_without_assignee_adds_no_assignee_key() -> None:
    mapper = Mapper("helpdesk", "helpdesk", MappingSettings(title="{subject}"))
    assert "assignee_email" not in mapper.map(SourceTicket("1", T0, {"subject": "x"})).task()


# The people table and file in the config.


def _load(tmp_path: Path, people_toml: str, csv_text: str | None = None) -> Config:
    if csv_text is not None:
        (tmp_path / "people.csv").write_text(csv_text)
    path = tmp_path / "sync.toml"
    path.write_text(
        f"""
[connectors.helpdesk]
kind = "jsonl"
path = "tickets.jsonl"
mapping = {{ assignee = "agent_id" }}
{people_toml}
"""
    )
    return load_config(path)


def test_the_people_file_beside_the_config_and_the_table_over_it(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        f'[connectors.helpdesk.people]\nfile = "people.csv"\ntable = {{ 2 = "{LI}" }}',
        f"user_id,email,name\n1,{ANA},Ana Ops\n2,old@support.example.com,Li\n\n",
    )
    directory = config.connectors["helpdesk"].people
    assert directory["1"] == Person("1", ANA, "Ana Ops")
    assert directory["2"] == Person("2", LI, "Li")


@pytest.mark.parametrize(
    ("people_toml", "csv_text", "key", "words"),
    [
        ('[connectors.helpdesk.people.table]\n5 = "ana"', None, "people.table", "not an email"),
        ('[connectors.helpdesk.people]\nttl = "0s"', None, "people.ttl", "longer than 0s"),
        ('[connectors.helpdesk.people]\nfile = "missing.csv"', None, "people.file", "can't read"),
        ('[connectors.helpdesk.people]\nfile = "people.csv"', "id,mail\n", "people.file", "header"),
        (
            '[connectors.helpdesk.people]\nfile = "people.csv"',
            f"user_id,email\n1,{ANA}\n1,{LI}\n",
            "people.file",
            "line 3: user 1 is listed twice",
        ),
        (
            '[connectors.helpdesk.people]\nfile = "people.csv"',
            "user_id,email\n1,ana at example\n",
            "people.file",
            "line 2 (user 1)",
        ),
        ('[connectors.helpdesk.people]\nwho = "x"', None, "people.who", "unknown key"),
    ],
)
def test_a_bad_people_table_or_file_is_a_config_error_naming_the_key(
    tmp_path: Path, people_toml: str, csv_text: str | None, key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, people_toml, csv_text)
    assert error.value.key.startswith(f"connectors.helpdesk.{key}")
    assert words in str(error.value)


def test_the_people_table_enters_the_fingerprint_only_when_set() -> None:
    bare = _connector()
    assert _connector({}).fingerprint() == bare.fingerprint()
    assert _connector({"1": ANA}).fingerprint() != bare.fingerprint()
    assert _connector({"1": ANA}).fingerprint() != _connector({"1": LI}).fingerprint()


def test_the_cache_is_listed_a_page_at_a_time_in_user_id_order(store: StateStore) -> None:
    answers = [Person(f"u{n}", f"u{n}@support.example.com", f"User {n}") for n in (3, 1, 4, 2, 5)]
    assert store.keep_people("helpdesk", answers) == []  # first answers: no change
    store.keep_people("other", [Person("u1", None, reason="hidden")])

    pages = list(store.people_pages("helpdesk", 2))

    assert [[p.user_id for p in page] for page in pages] == [["u1", "u2"], ["u3", "u4"], ["u5"]]
    assert pages[0][0].email == "u1@support.example.com" and pages[0][0].name == "User 1"
    assert store.people_changed_at("helpdesk") is None
    assert store.keep_people("helpdesk", [Person("u2", None, reason="gone")]) == ["u2"]
    assert store.people_changed_at("helpdesk") is not None
    assert store.people_changed_at("other") is None
