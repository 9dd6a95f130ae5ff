"""One-line reports of errors (`sync.errors.first_line`)."""

from __future__ import annotations

import pytest

from sync.errors import first_line


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ValueError("refused"), "refused"),
        (
            OSError("connection refused\n[SQL: SELECT 1]\n(Background: https://sqlalche.me/e/20)"),
            "connection refused",
        ),
        (RuntimeError("\n  \n  the first line\nthe second"), "the first line"),
    ],
)
def test_the_first_line_of_the_message_is_kept(error: BaseException, line: str) -> None:
    assert first_line(error) == line


@pytest.mark.parametrize("error", [TimeoutError(), ConnectionResetError("  \n ")])
def test_an_error_without_a_message_is_named_by_its_class(error: BaseException) -> None:
    assert first_line(error) == type(error).__name__
