"""The site's hook swaps each generated marker and its Markdown-only fallback for the text."""

from __future__ import annotations

import importlib.util
from types import ModuleType, SimpleNamespace

import pytest

from doc_blocks import ROOT


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAGE = SimpleNamespace(file=SimpleNamespace(src_path="page.md"))


def test_a_marker_and_its_fallback_become_the_generated_text_and_the_rest_stays() -> None:
    hooks = _hooks()
    markdown = (
        "# Jira\n\n"
        "<!-- generated: default-mapping jira -->\n"
        "*Reading this file outside the site: see the code.*\n"
        "<!-- /generated -->\n\n"
        "## Options\n\n"
        "<!-- generated: failed-item-policy -->\n\n"
        "The end.\n"
    )

    page = hooks.on_page_markdown(markdown, PAGE, None, None)

    assert "Reading this file outside" not in page and "<!--" not in page
    assert '[connectors.NAME.mapping]  # kind = "jira"' in page
    assert "| failing for | tried again |" in page
    assert page.startswith("# Jira\n\n") and page.endswith("The end.\n")
    assert "## Options" in page


def test_an_unknown_generator_fails_the_build_naming_the_page() -> None:
    with pytest.raises(ValueError, match=r"page\.md: no generator named 'nothing-here'"):
        _hooks().on_page_markdown("<!-- generated: nothing-here -->\n", PAGE, None, None)
