"""Cutting a stream or a list into batches: the one place the engine does it.

A pass reads its source in chunks (to look up stored hashes a chunk at a time) and
sends a shipment to Fragment in requests of `batch_size`; both cut here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def batched(
    items: Iterable[T],
    size: int,
    *,
    flush_on: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> Iterator[list[T]]:
    """`items` in lists of `size`, in order; the last may be shorter.

    When reading `items` raises one of `flush_on`, the items read since the last
    list come out first, then the error: a pass whose source fails after 150
    tickets keeps those. Other errors propagate at once. Raises `ValueError` when
    `size` is below 1.
    """
    if size < 1:
        raise ValueError(f"a batch holds at least 1 item, not {size}")
    batch: list[T] = []
    try:
        for item in items:
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
    except flush_on:
        if batch:
            yield batch
        raise
    if batch:
        yield batch
