"""Cutting streams and lists into batches (`sync.batches.batched`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync.batches import batched


class SourceBroke(Exception):
    pass


def failing_after(count: int, error: Exception) -> Iterator[int]:
    yield from range(count)
    raise error


@pytest.mark.parametrize(
    ("count", "size", "sizes"),
    [(0, 3, []), (1, 3, [1]), (3, 3, [3]), (7, 3, [3, 3, 1]), (6, 1, [1] * 6)],
)
def test_items_come_in_order_in_batches_of_size_the_last_shorter(
    count: int, size: int, sizes: list[int]
) -> None:
    batches = list(batched(iter(range(count)), size))

    assert [len(batch) for batch in batches] == sizes
    assert [item for batch in batches for item in batch] == list(range(count))


def test_a_list_is_cut_like_a_stream() -> None:
    assert list(batched(["a", "b", "c", "d", "e"], 2)) == [["a", "b"], ["c", "d"], ["e"]]


def test_a_flushed_error_comes_after_the_items_read_before_it() -> None:
    batches = batched(failing_after(7, SourceBroke("page 2 failed")), 3, flush_on=SourceBroke)

    assert next(batches) == [0, 1, 2]
    assert next(batches) == [3, 4, 5]
    assert next(batches) == [6]
    with pytest.raises(SourceBroke, match="page 2 failed"):
        next(batches)


def test_an_error_at_a_batch_boundary_leaves_no_empty_batch() -> None:
    batches = batched(failing_after(6, SourceBroke("gone")), 3, flush_on=SourceBroke)

    assert [next(batches), next(batches)] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(SourceBroke):
        next(batches)


def test_another_error_drops_the_partial_batch() -> None:
    batches = batched(failing_after(7, KeyError("bug")), 3, flush_on=SourceBroke)

    assert [next(batches), next(batches)] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(KeyError):
        next(batches)


@pytest.mark.parametrize("size", [0, -1])
def test_a_batch_size_below_one_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="at least 1 item"):
        list(batched([1, 2], size))
