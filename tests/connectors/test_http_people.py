"""Batched resolution of user ids (`connectors.http.people`), shared by the HTTP connectors."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connectors.base import Person
from connectors.http.people import SeenPeople, in_batches, person, resolve_in_batches

IDS = st.lists(st.sampled_from(["", "1", "2", "3", "4", "5", "6", "7"]), max_size=40)


@given(IDS, st.integers(min_value=1, max_value=4), st.sets(st.sampled_from(list("1234567"))))
def test_each_distinct_id_is_asked_once_in_batches_and_answered_once(
    asked: list[str], size: int, known: set[str]
) -> None:
    batches: list[list[str]] = []

    def read_batch(ids: list[str]) -> list[Person]:
        batches.append(ids)
        # A source answers the ids it knows, and may throw in one nobody asked for.
        return [Person(i, f"u{i}@acme.example") for i in ids if i in known] + [
            Person("stray", "stray@acme.example")
        ]

    people = list(resolve_in_batches(asked, size, read_batch))

    distinct = list(dict.fromkeys(i for i in asked if i))
    assert [i for batch in batches for i in batch] == distinct
    assert all(1 <= len(batch) <= size for batch in batches)
    assert sorted(p.user_id for p in people) == sorted(distinct)
    for found in people:
        if found.user_id in known:
            assert found.email == f"u{found.user_id}@acme.example"
        else:
            assert (found.email, found.reason) == (None, "no such user")


def test_batches_keep_the_order_ids_were_first_seen() -> None:
    assert list(in_batches(["9", "3", "9", "", "4", "3", "5"], 2)) == [["9", "3"], ["4", "5"]]


def test_a_blank_email_is_none_with_the_reason_and_a_blank_name_is_none() -> None:
    assert person("7", "  ", "", "hidden") == Person("7", None, None, reason="hidden")
    assert person("7", " ana@acme.example ", "Ana", "hidden") == Person(
        "7", "ana@acme.example", "Ana"
    )


def test_people_seen_are_bounded_dropping_the_one_seen_longest_ago() -> None:
    seen = SeenPeople(limit=2)
    seen.add(Person("1", "one@acme.example"))
    seen.add(Person("2", "two@acme.example"))
    seen.add(Person("1", "one@acme.example"))  # seen again: now the newest
    seen.add(Person("3", "three@acme.example"))

    known, unknown = seen.split(["3", "2", "1", "1", ""])

    assert len(seen) == 2
    assert [p.user_id for p in known] == ["3", "1"]
    assert unknown == ["2"]
