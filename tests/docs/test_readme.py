"""The README stays an introduction: short, and every link lands inside the repository.

The rest lives in docs/, whose links `mkdocs build --strict` checks (.ci/run).
"""

from __future__ import annotations

import re

from doc_blocks import ROOT

README = ROOT / "README.md"
MAX_BYTES = 10 * 1024
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def test_the_readme_is_at_most_10_kb() -> None:
    size = len(README.read_bytes())
    assert size <= MAX_BYTES, f"README.md is {size:,} bytes: move detail into docs/"


def test_every_relative_link_of_the_readme_lands_on_a_file_of_the_repository() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(_relative_links(text)) >= 10  # the links into docs/: a broken pattern finds none

    assert not _broken(text), f"README.md links to what a clone doesn't have: {_broken(text)}"


def test_the_check_catches_a_link_outside_the_repository_and_a_missing_page() -> None:
    text = "See [the API](../shared/fragment-api.md), [gone](docs/gone.md), [ok](LICENSE)."

    assert _broken(text) == ["../shared/fragment-api.md", "docs/gone.md"]


def _relative_links(text: str) -> list[str]:
    targets = [match["target"] for match in LINK.finditer(text)]
    return [target for target in targets if not re.match(r"^[a-z]+:", target)]


def _broken(text: str) -> list[str]:
    """The relative links of `text` that name no file inside the repository."""
    return [
        target
        for target in _relative_links(text)
        if not (path := (ROOT / target.partition("#")[0]).resolve()).exists()
        or not path.is_relative_to(ROOT)
    ]
