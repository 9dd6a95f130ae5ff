"""Finding connectors (built-ins and an installed plugin), and task uids that never collide.

The plugin is `tests/plugin_example`, pip-installed offline into a temporary
directory that only the subprocesses under test see (through PYTHONPATH), so
it never lands in this environment or leaks into other tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.registry import available
from fragment_emulator import Emulator
from sync.config import UID_NAMESPACE, build_config
from sync.errors import ConfigError
from sync.mapping import task_uid
from synckit import TOKEN, small_config_file, tasks_by_ticket

PLUGIN_SOURCE = Path(__file__).parents[1] / "plugin_example"
SEPARATOR = "#ticket#"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the example plugin, installed as pip installs it."""
    site = tmp_path_factory.mktemp("plugin-site")
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--no-cache-dir",
            "--target",
            str(site),
            str(PLUGIN_SOURCE),
        ],
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},  # leave the source tree as it is
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return site


def sync_cli(*args: str, cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`python -m sync ARGS` in a process that also sees what is installed in `site`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(site), *filter(None, [environment.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_installed_plugin_is_listed_beside_the_built_ins(
    plugin_site: Path, tmp_path: Path
) -> None:
    listed = sync_cli("connectors", cwd=tmp_path, site=plugin_site)
    assert listed.returncode == 0, listed.stderr
    summaries = dict(line.split(None, 1) for line in listed.stdout.splitlines())
    assert summaries["example"] == "a few bundled example tickets (the plugin example)"
    for kind, cls in available().items():
        assert summaries[kind] == cls.summary
    assert {"jsonl", "csv", "redmine", "github", "rest"} <= set(available())
    # This process never saw it: the plugin lives only where the subprocess looks.
    assert "example" not in available()
    assert importlib.util.find_spec("example_plugin") is None


def test_a_plugin_connector_syncs_into_fragment_like_a_built_in(
    plugin_site: Path, tmp_path: Path, emulator: Emulator
) -> None:
    config = small_config_file(
        tmp_path / "sync.toml",
        emulator.base_url,
        f"sqlite:///{tmp_path / 'state.db'}",
        "examples",
        {"kind": "example", "count": 2},
    )
    ran = sync_cli(
        "run", "--once", "--config", str(config), "--json", cwd=tmp_path, site=plugin_site
    )
    assert ran.returncode == 0, ran.stderr
    [summary] = json.loads(ran.stdout)["connectors"]
    assert (summary["ok"], summary["pushed"]) == (True, 2)
    landed = tasks_by_ticket(emulator)
    assert {k: (t["fields"]["title"], t["status"]) for k, t in landed.items()} == {
        "EX-1": ("Printer on floor 3 jams", "TODO"),
        "EX-2": ("VPN drops every hour", "STARTED"),
    }
    assert landed["EX-1"]["uid"] == task_uid("examples", "EX-1")


# Task uids. A uid is md5("{namespace}#ticket#{source_id}"), so two tickets share one
# when their keys are equal: when one connector's namespace is used twice, or when a
# key can be split into (namespace, id) in two ways. A namespace of UID_NAMESPACE's
# characters has no '#', so the first '#' of a key ends it and the split is unique.

namespaces = st.from_regex(UID_NAMESPACE, fullmatch=True)
source_ids = st.text(alphabet=st.sampled_from("#ticket-_.A7é"), max_size=24) | st.text(max_size=24)


def splits(key: str) -> set[tuple[str, str]]:
    """Every (namespace, id) whose key is `key`, namespace of the allowed characters."""
    found = set()
    start = key.find(SEPARATOR)
    while start != -1:
        namespace = key[:start]
        if UID_NAMESPACE.fullmatch(namespace):
            found.add((namespace, key[start + len(SEPARATOR) :]))
        start = key.find(SEPARATOR, start + 1)
    return found


@given(namespaces, source_ids)
def test_a_uid_key_splits_back_into_its_namespace_and_id_only(
    namespace: str, source_id: str
) -> None:
    assert splits(f"{namespace}{SEPARATOR}{source_id}") == {(namespace, source_id)}


@given(namespaces, source_ids, namespaces, source_ids)
def test_tickets_of_different_connectors_or_ids_never_share_a_uid(
    namespace_a: str, id_a: str, namespace_b: str, id_b: str
) -> None:
    if (namespace_a, id_a) != (namespace_b, id_b):
        assert task_uid(namespace_a, id_a) != task_uid(namespace_b, id_b)


def jsonl_connectors(*connectors: tuple[str, str | None]) -> dict[str, object]:
    tables: dict[str, object] = {}
    for name, namespace in connectors:
        table = {"kind": "jsonl", "path": "tickets.jsonl"}
        tables[name] = table if namespace is None else {**table, "uid_namespace": namespace}
    return {"fragment": {"token": TOKEN}, "connectors": tables}


@pytest.mark.parametrize(
    "connectors",
    [
        (("helpdesk", "support"), ("tracker", "support")),
        (("helpdesk", None), ("tracker", "helpdesk")),  # a pinned namespace equal to a name
    ],
)
def test_two_connectors_sharing_a_namespace_are_refused(
    connectors: tuple[tuple[str, str | None], ...],
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(jsonl_connectors(*connectors), source="test")
    assert caught.value.key == "connectors.tracker.uid_namespace"


def test_no_config_lets_two_connectors_produce_the_same_uid() -> None:
    # "helpdesk" ticket "7#ticket#1" and "helpdesk#ticket#7" ticket "1" would share a key:
    # a connector name standing in for the namespace must obey the namespace's rules.
    with pytest.raises(ConfigError) as caught:
        build_config(
            jsonl_connectors(("helpdesk", None), ("helpdesk#ticket#7", None)), source="test"
        )
    assert caught.value.key == "connectors.helpdesk#ticket#7"
    assert "uid_namespace" in str(caught.value)
    config = build_config(
        jsonl_connectors(("helpdesk", None), ("helpdesk#ticket#7", "helpdesk-7")), source="test"
    )
    for connector in config.connectors.values():
        assert UID_NAMESPACE.fullmatch(connector.uid_namespace), connector.uid_namespace
