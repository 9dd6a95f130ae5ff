"""Reading values out of raw source records by field path.

A field path names a value inside a JSON-like record: `id`, `requester.email`,
`tags.0`. Connectors use it to find a ticket's id, cursor and tombstone flag;
the mapper uses it to read the fields it maps. This module only reads records;
turning values into cursors and timestamps is `connectors.values`' job.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final


class Missing(enum.Enum):
    """The type of `MISSING`: a path that leads nowhere (unlike a JSON null)."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing.MISSING
"""What `get_path` returns when the path is absent; a present null is `None`."""

# Words a tombstone column uses for "not deleted"; compared lower-cased.
_NO_WORDS: Final = ("", "false", "f", "no", "n", "0", "off", "null", "none")


def get_path(record: Any, path: str) -> Any:
    """The value at dotted `path` inside `record`, or `MISSING` when absent.

    Segments are separated by dots. A segment reads a mapping key, or indexes
    a list when it is a non-negative integer (`tags.0`). A key that itself
    contains dots (a CSV column named `requester.email`) is found too: at each
    level the longest run of segments that is a key wins, so an exact flat
    key is preferred over a nested path with the same spelling.
    """
    # The common case, a plain top-level key, skips the segment walk.
    if isinstance(record, dict) and path in record:
        return record[path]
    return _get_segments(record, path.split("."))


def _get_segments(node: Any, segments: list[str]) -> Any:
    if not segments:
        return node
    if isinstance(node, Mapping):
        # Longest key first: {"a.b": 1} and {"a": {"b": 2}} both answer "a.b".
        for width in range(len(segments), 0, -1):
            key = ".".join(segments[:width])
            if key in node:
                found = _get_segments(node[key], segments[width:])
                if found is not MISSING:
                    return found
        return MISSING
    if isinstance(node, Sequence) and not isinstance(node, str | bytes):
        head = segments[0]
        if head.isdigit():
            index = int(head)
            if index < len(node):
                return _get_segments(node[index], segments[1:])
    return MISSING


def is_flag_set(value: Any) -> bool:
    """Whether a tombstone-style value says yes.

    Absent, null, false, zero, empty, and the words "false", "no", "0", "off"
    (any case) say no; anything else says yes, so both `deleted: true` and a
    non-empty `deleted_at` timestamp mark a tombstone.
    """
    if value is MISSING or value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in _NO_WORDS
    return bool(value)
