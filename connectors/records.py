"""Reading values out of raw source records by field path.

A field path names a value inside a JSON-like record: `id`, `requester.email`,
`tags.0`. Connectors use it to find a ticket's id, cursor and tombstone flag;
the mapper uses it to read the fields it maps. This module only reads records;
turning values into cursors and timestamps is `connectors.values`' job.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Collection, Mapping, Sequence
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
    # The common case, a plain top-level key, skips compiling the path.
    if type(record) is dict and path in record:
        return record[path]
    return field_path(path).read(record)


class FieldPath:
    """A dotted path parsed once, to read from many records (`get_path`'s rules).

    The mapper and the connectors read the same few paths from every ticket;
    splitting and re-joining them each time was a measurable share of a
    backfill's CPU.
    """

    __slots__ = ("_count", "_head", "_keys", "_tail", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        segments = path.split(".")
        self._count = len(segments)
        self._head, self._tail = segments[0], segments[-1]
        # For each level: the keys to try there, longest run of segments first,
        # with the level each one leads to.
        self._keys: tuple[tuple[tuple[str, int], ...], ...] = tuple(
            tuple((".".join(segments[start:end]), end) for end in range(len(segments), start, -1))
            for start in range(len(segments))
        )

    def read(self, record: Any) -> Any:
        """The value at this path inside `record`, or `MISSING`."""
        if type(record) is dict:
            value = record.get(self.path, MISSING)
            if value is not MISSING or self._count == 1:
                return value  # found as it is spelt, or a one-key path that is absent
            if self._count == 2:  # `requester.email`, the common nested path, without the walk
                inner = record.get(self._head)
                if type(inner) is dict:
                    return inner.get(self._tail, MISSING)
        return self._walk(record, 0)

    def _walk(self, node: Any, level: int) -> Any:
        if level == self._count:
            return node
        if type(node) is dict or isinstance(node, Mapping):
            for key, following in self._keys[level]:
                if key in node:
                    found = self._walk(node[key], following)
                    if found is not MISSING:
                        return found
            return MISSING
        if isinstance(node, Sequence) and not isinstance(node, str | bytes):
            head = self._keys[level][-1][0]
            if head.isdigit():
                index = int(head)
                if index < len(node):
                    return self._walk(node[index], level + 1)
        return MISSING


@functools.lru_cache(maxsize=1024)
def field_path(path: str) -> FieldPath:
    """`path` parsed, shared by every caller that reads it."""
    return FieldPath(path)


def source_id_text(value: Any, field: str, option: str | None = None) -> str:
    """A record's id value, read from `field`, as source-id text.

    Every JSON-reading connector spells ids this one way, since the task uid is made
    from the text: a string as written; an integer as its digits; a float that is a
    whole number as that integer's digits, so that `4.0` and `4` (one JSON number,
    which exports spell either way) are one ticket "4"; any other finite float in its
    shortest form ("4.5"). Raises `ValueError` saying why `value` can't be an id:
    absent or null (naming the config key `option` to fix, if the user sets the
    field), empty or only whitespace (every such ticket would share one task), a
    boolean, an object or a list, a number that is not finite.
    """
    if isinstance(value, str):
        if value and not value.isspace():
            return value
        raise ValueError(f"{field!r} is empty")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return str(int(value)) if value.is_integer() else repr(value)
        raise ValueError(f"{field!r} is {value!r}, not a finite number")
    if value is MISSING or value is None:
        hint = f" (set {option} to its field)" if option else ""
        raise ValueError(f"no {field!r} value; every ticket needs an id{hint}")
    raise ValueError(
        f"{field!r} is {value!r:.80} ({type(value).__name__}); expected a string or a number"
    )


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


def outside_scope(record: Mapping[str, Any], scope: Mapping[str, Collection[Any]]) -> bool:
    """Whether `record` falls outside a scope a connector keeps by itself, field by field.

    `scope` maps a field to the values kept (`{"group_id": {701, 702}}`); a
    field with no values keeps everything. A record whose field is missing or
    null is outside any scope that names values for it.
    """
    return any(values and record.get(name) not in values for name, values in scope.items())
