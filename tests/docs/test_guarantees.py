"""Every pytest node id the docs cite names a test that exists.

The Guarantees page shows each claim with the test that proves it and the command
that runs it. A test renamed, moved or deleted would leave the page citing nothing,
and the command would run no test. So the ids cited anywhere in `docs/` are checked
against what pytest really collects from the files they name: plain functions,
methods of test classes (inherited ones too, as the connector suites are), and
parametrized tests, cited whole or with one `[parameter]`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

NODE_ID = re.compile(r"tests/[\w/.-]+?\.py(?:::[A-Za-z_]\w*)+(?:\[[^\]\n`']+\])?")
"""A pytest node id as the docs spell one: a test file, `::`, and a class or test name."""


def cited_node_ids(pages: Iterable[Path]) -> dict[str, list[str]]:
    """Each node id cited in `pages`, with the pages (relative to the repo) that cite it."""
    cited: dict[str, list[str]] = {}
    for page in pages:
        for node_id in NODE_ID.findall(page.read_text(encoding="utf-8")):
            where = cited.setdefault(node_id, [])
            name = str(page.relative_to(REPO))
            if name not in where:
                where.append(name)
    return cited


def collected_node_ids(files: Iterable[str]) -> set[str]:
    """The node ids pytest collects from `files` (paths relative to the repo).

    Fails the calling test, with pytest's own output, when a file can't be collected.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p",
         "no:cacheprovider", *files],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return {line.strip() for line in done.stdout.splitlines() if "::" in line}


def names_a_test(node_id: str, collected: set[str]) -> bool:
    """Whether `node_id` is a collected test, a parametrized test cited whole, or a class."""
    return node_id in collected or any(
        test.startswith((f"{node_id}[", f"{node_id}::")) for test in collected
    )


def test_every_node_id_the_docs_cite_is_a_test_pytest_collects() -> None:
    cited = cited_node_ids(sorted(DOCS.rglob("*.md")))
    assert cited, "docs/guarantees.md cites no test: the pattern or the page is wrong"
    files = sorted({node_id.split("::")[0] for node_id in cited})
    absent = [file for file in files if not (REPO / file).is_file()]
    assert absent == [], f"the docs cite tests in files that don't exist: {absent}"

    collected = collected_node_ids(files)

    unknown = [
        f"{node_id} (cited in {', '.join(pages)})"
        for node_id, pages in cited.items()
        if not names_a_test(node_id, collected)
    ]
    assert unknown == [], "the docs cite tests that don't exist (renamed?): " + "; ".join(unknown)


def test_an_invented_node_id_is_reported_as_naming_no_test() -> None:
    file = "tests/sync/test_diff.py"
    collected = collected_node_ids([file])

    assert names_a_test(
        f"{file}::test_an_older_version_never_goes_out_after_a_newer_one", collected
    )
    assert not names_a_test(f"{file}::test_an_invented_guarantee_nobody_wrote", collected)
    assert not names_a_test(f"{file}::test_an_older_version_never_goes_out", collected)


def test_class_and_parametrized_node_ids_are_found_and_checked() -> None:
    text = (
        "`tests/connectors/test_zendesk.py::TestZendesk::test_a_ticket_updated_while_the_sync_"
        "runs_is_not_lost` and `tests/sync/test_run.py::test_a_retry_of_failed_items_checkpoints"
        "_batch_by_batch[sqlite]`, then 'tests/sync/test_run.py::test_no_such_test[sqlite]'."
    )
    found = NODE_ID.findall(text)
    collected = collected_node_ids(["tests/connectors/test_zendesk.py", "tests/sync/test_run.py"])

    assert found == [
        "tests/connectors/test_zendesk.py::TestZendesk::test_a_ticket_updated_while_the_sync_runs_is_not_lost",
        "tests/sync/test_run.py::test_a_retry_of_failed_items_checkpoints_batch_by_batch[sqlite]",
        "tests/sync/test_run.py::test_no_such_test[sqlite]",
    ]
    assert [names_a_test(node_id, collected) for node_id in found] == [True, True, False]
