"""MkDocs hooks: the pages generated from the code at build time.

A page asks for generated text with a line of its own, `<!-- generated: NAME -->`;
the hook replaces it with `GENERATORS[NAME]()`. Nothing generated is kept in git.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

GENERATED = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)

GENERATORS: dict[str, Callable[[], str]] = {}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def expand(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_path}: no generator named {name!r}")
        return GENERATORS[name]()

    return GENERATED.sub(expand, markdown)
