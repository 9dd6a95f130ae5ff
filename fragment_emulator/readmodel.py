"""A task's read model and stored document as JSON text, without building dicts first.

`models.render_task` defines the read model, and `pydantic_core.to_json` of
it is the answer's text. Answering a 500-task batch that way built 500 dicts
of 51 keys, most of them null, and encoded every key again: 7 µs per task,
the largest cost left in a batch after validation. Here each document shape
(its keys, in order) gets a template once: the JSON text of every key, with
a slot for each value the task has. The stored document's text comes from
the same encoding of the values (`task_texts`), so a written task's values
are encoded once for both.

`read_model_text` gives exactly `to_json(render_task(...))`, or None where
it cannot vouch for that (a key outside the read model, a text value that
would need escaping, a flag that is not a boolean); the caller then takes
the dict path. It encodes; it stores and looks up nothing (`store` does).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic_core

from fragment_emulator.models import READ_KEYS

# The read keys a stored document can hold: all of them come before the
# server's (`internal_created_at` and after), so a template's slots are the
# document's values, then the server's.
_DOCUMENT_KEYS = frozenset(READ_KEYS[: READ_KEYS.index("internal_created_at")])
_SERVER_KEYS = frozenset({"internal_created_at", "internal_updated_at", "assignee"})
# Keys whose values validation leaves as uids, timestamps or statuses: text
# that, as stored, never needs escaping, so it goes between quotes as it is.
# Which keys are listed only decides speed: every such value is still checked.
_TEXT_KEYS = frozenset(
    {
        "uid",
        "status",
        "queue_uid",
        "assignee_uid",
        "case_uid",
        "parent_uid",
        "metadata_form_uid",
        "assignee_updated_by",
        "queue_updated_by",
        "external_status",
        "external_assignee_uid",
        "due_at",
        "snooze_expires_at",
        "assigned_at",
        "started_at",
        "done_at",
        "created_at",
        "updated_at",
        "external_created_at",
        "external_updated_at",
        "external_status_updated_at",
    }
)
_FLAG_KEYS = frozenset({"archived", "is_assigned_player"})


def _tuple_getter(keys: list[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """`itemgetter(*keys)`, but giving a tuple for any number of keys (not the item for one)."""
    if len(keys) == 1:
        (key,) = keys
        return lambda doc: (doc[key],)
    if not keys:
        return lambda doc: ()
    return operator.itemgetter(*keys)


def _pieces(text: str) -> list[str | None]:
    """`text`'s constant runs with None between them where it has `%s`: to be `_filled`."""
    pieces: list[str | None] = [None] * (2 * text.count("%s") + 1)
    pieces[0::2] = text.split("%s")
    return pieces


def _filled(pieces: list[str | None], values: tuple[str, ...]) -> str:
    """`pieces` with `values` in its slots, as one text.

    A slice assignment and a join: three times as fast as `%` over the
    template, which reads every character of its kilobyte of constant text.
    """
    filled = pieces.copy()
    filled[1::2] = values
    return "".join(filled)  # type: ignore[arg-type]  # every slot is filled now


@dataclass(frozen=True, slots=True)
class _Template:
    """The texts of one document shape, in pieces, with slots where values go.

    `read_model` has a slot per document key in `READ_KEYS` order, then the
    two server timestamps and the assignee, which come last there; `document`
    (the stored text) has the document's slots alone, keys in the same order.
    Text slots are already quoted; `flags` and `json` index the values that
    need turning into JSON text first.
    """

    read_model: list[str | None]
    document: list[str | None]
    values: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    texts: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    flags: tuple[int, ...]
    json: tuple[int, ...]


@functools.lru_cache(maxsize=256)
def _template(shape: tuple[str, ...]) -> _Template | None:
    """The template for documents with these keys, or None for a key no document holds."""
    keys = set(shape)
    if not keys <= _DOCUMENT_KEYS:
        return None
    present = [key for key in READ_KEYS if key in keys]
    entries: list[str] = []
    for key in READ_KEYS:
        if key in _SERVER_KEYS:
            # The server's timestamps are text; the assignee comes as JSON text.
            slot = "%s" if key == "assignee" else '"%s"'
        elif key not in keys:
            slot = "null"
        else:
            slot = '"%s"' if key in _TEXT_KEYS else "%s"
        entries.append(f'"{key}":{slot}')
    document = [f'"{key}":' + ('"%s"' if key in _TEXT_KEYS else "%s") for key in present]
    return _Template(
        read_model=_pieces("{" + ",".join(entries) + "}"),
        document=_pieces("{" + ",".join(document) + "}"),
        values=_tuple_getter(present),
        texts=_tuple_getter([key for key in present if key in _TEXT_KEYS]),
        flags=tuple(i for i, key in enumerate(present) if key in _FLAG_KEYS),
        json=tuple(
            i for i, key in enumerate(present) if key not in _TEXT_KEYS and key not in _FLAG_KEYS
        ),
    )


# The characters JSON shows as they are between quotes: printable ASCII but `"` and `\\`.
_UNESCAPED = bytes(range(0x20, 0x7F)).translate(None, b'"\\')


def _needs_no_escaping(text: str) -> bool:
    """Whether JSON shows `text` as is between quotes.

    (Deleting the unescaped characters and finding none left is about twice
    as fast as `isascii`, `isprintable` and two `in` scans.)
    """
    try:
        return not text.encode("ascii").translate(None, _UNESCAPED)
    except UnicodeEncodeError:
        return False


def _encoded(
    doc: Mapping[str, Any], internal_created_at: str, internal_updated_at: str
) -> tuple[_Template, tuple[str, ...]] | None:
    """The document's template and its values as JSON text, or None if unsure.

    Nested values are encoded as `to_json` encodes them inside the document;
    a non-finite number would be written differently in an answer (as a
    string), so any text that may hold one is left to the dict path.
    """
    template = _template(tuple(doc))
    if template is None:
        return None
    try:
        texts = "".join(template.texts(doc)) + internal_created_at + internal_updated_at
    except TypeError:  # a text key holding something else
        return None
    if not _needs_no_escaping(texts):
        return None
    values = list(template.values(doc))
    for index in template.flags:
        flag = values[index]
        if flag is not True and flag is not False:
            return None
        values[index] = "true" if flag else "false"
    for index in template.json:
        text = pydantic_core.to_json(values[index]).decode()
        if "NaN" in text or "Infinity" in text:
            return None
        values[index] = text
    return template, tuple(values)


def read_model_text(
    doc: Mapping[str, Any], internal_created_at: str, internal_updated_at: str, assignee_json: str
) -> str | None:
    """`to_json(render_task(doc, ...))` as text, or None when a template cannot vouch for it.

    `assignee_json` is the JSON text of the assignee's record (or "null").
    """
    encoded = _encoded(doc, internal_created_at, internal_updated_at)
    if encoded is None:
        return None
    template, values = encoded
    server = (internal_created_at, internal_updated_at, assignee_json)
    return _filled(template.read_model, values + server)


def task_texts(
    doc: Mapping[str, Any], internal_created_at: str, internal_updated_at: str, assignee_json: str
) -> tuple[str, str] | None:
    """The stored document's text and `read_model_text`, from one encoding of the values.

    The document's text is `to_json` of `doc` with its keys in read-model order
    (their order in the stored text was never promised), or None as above.
    """
    encoded = _encoded(doc, internal_created_at, internal_updated_at)
    if encoded is None:
        return None
    template, values = encoded
    server = (internal_created_at, internal_updated_at, assignee_json)
    return _filled(template.document, values), _filled(template.read_model, values + server)
