"""MkDocs hooks: the text generated from the code at build time.

A page asks for it with a line of its own, `<!-- generated: NAME ARG... -->`; the
hook replaces that line with `GENERATORS[NAME](*ARGS)`, Markdown made by
`sync.shell.reference`. Lines after it, up to `<!-- /generated -->`, are what a
reader of the Markdown file itself (on GitHub, in an editor) sees instead: where
else to find it. The site drops them. Nothing generated is kept in git.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sync.shell import reference

GENERATED = re.compile(
    r"^<!-- generated: ([a-z-]+)((?: [\w.-]+)*) -->$"
    r"(?:\n(?:(?!<!-- generated)[^\n]*\n)*?<!-- /generated -->$)?",
    re.M,
)
"""The marker line, and the fallback text for Markdown readers after it, if any."""

GENERATORS: dict[str, Callable[..., str]] = {
    "default-mapping": reference.default_mapping,
    "connector-options": reference.connector_options,
    "connector-capabilities": reference.connector_capabilities,
    "config-reference": reference.config_reference,
    "cli-reference": reference.cli_reference,
    "retry-policy": reference.retry_policy,
    "failed-item-policy": reference.failed_item_policy,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def expand(match: re.Match[str]) -> str:
        name, arguments = match.group(1), match.group(2).split()
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_path}: no generator named {name!r}")
        return GENERATORS[name](*arguments)

    return GENERATED.sub(expand, markdown)
