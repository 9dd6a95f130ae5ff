"""Metric families labelled by connector, kept as plain numbers and written as Prometheus text.

`prometheus_client` builds several objects for each sample it exports and
escapes every label as it writes it: at 10,000 connectors and about 30 series
each, a scrape spent over a second in that alone (`python -m bench.scrape`),
against the 1 s a scrape must answer in. These families keep their values in
dictionaries, escape a label once, and write their lines in the text format
(0.0.4) `prometheus_client.generate_latest` writes the rest of the registry
in: the same HELP, TYPE and sample lines. `sync.shell.metrics` owns which
families exist; this module only keeps and writes them. Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Literal

from prometheus_client.utils import floatToGoString

Kind = Literal["counter", "gauge", "histogram"]


def _number(value: float) -> str:
    """`value` as `prometheus_client` writes it: `1.0`, `0.3`, `+Inf`."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Family:
    """One metric family: its samples by label values; `inc`, `set`, `observe` as its kind."""

    def __init__(
        self,
        name: str,
        kind: Kind,
        documentation: str,
        labels: Sequence[str],
        buckets: Sequence[float] = (),
        lock: threading.Lock | None = None,
    ) -> None:
        self.name = f"{name}_total" if kind == "counter" else name
        self.kind, self.labels = kind, tuple(labels)
        self.documentation = documentation.replace("\\", "\\\\").replace("\n", "\\n")
        self.buckets = tuple(buckets)
        self._bounds = [*map(_number, self.buckets), "+Inf"]
        self._lock = lock or threading.Lock()
        self._values: dict[tuple[str, ...], float] = {}
        self._observed: dict[tuple[str, ...], list[float]] = {}
        """A histogram's, by labels: a count per bucket (the last: beyond them), then the sum."""
        self._label_text: dict[tuple[str, ...], str] = {}
        self._text: dict[tuple[str, ...], str] = {}
        """Each series' lines, formatted as its value changes."""

    def touch(self, *labels: str) -> None:
        """Make the series of `labels` exist, at 0 (so `increase()` sees its first event)."""
        with self._lock:
            self._known(labels)
            if self.kind == "histogram":
                self._observed.setdefault(labels, [0.0] * (len(self.buckets) + 2))
            else:
                self._values.setdefault(labels, 0.0)
            if labels not in self._text:
                self._text[labels] = self._lines(labels)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up")
        with self._lock:
            self._known(labels)
            self._values[labels] = self._values.get(labels, 0.0) + amount
            self._text[labels] = self._lines(labels)

    def set(self, *labels: str, value: float) -> None:
        with self._lock:
            self._known(labels)
            if self._values.get(labels) != value:
                self._values[labels] = value
                self._text[labels] = self._lines(labels)

    def discard(self, *labels: str) -> None:
        """Remove the series of `labels`, if it exists: it has no value now."""
        with self._lock:
            self._values.pop(labels, None)
            self._observed.pop(labels, None)
            self._text.pop(labels, None)

    def observe(self, *labels: str, value: float) -> None:
        with self._lock:
            self._known(labels)
            counts = self._observed.setdefault(labels, [0.0] * (len(self.buckets) + 2))
            index = next((i for i, bound in enumerate(self.buckets) if value <= bound), -2)
            counts[index] += 1
            counts[-1] += value
            self._text[labels] = self._lines(labels)

    def write(self, out: list[str]) -> None:
        """Append the family's lines (HELP, TYPE, its samples) to `out`.

        Each series is formatted as its value changes, not at the scrape: at
        10,000 connectors, formatting every line at each scrape made one take
        3.3 s on a replica busy with its passes.
        """
        out.append(f"# HELP {self.name} {self.documentation}\n# TYPE {self.name} {self.kind}\n")
        with self._lock:
            out.append("".join(self._text.values()))

    def _lines(self, labels: tuple[str, ...]) -> str:
        """The sample lines of one series, as `prometheus_client` writes them."""
        name, label_text = self.name, self._label_text[labels]
        if self.kind != "histogram":
            sample = f"{name}{{{label_text}}}" if label_text else name
            return f"{sample} {_number(self._values[labels])}\n"
        counts = self._observed[labels]
        lines, cumulative = [], 0.0
        for bound, count in zip(self._bounds, counts[:-1], strict=True):
            cumulative += count
            lines.append(f'{name}_bucket{{{label_text},le="{bound}"}} {_number(cumulative)}\n')
        lines.append(f"{name}_count{{{label_text}}} {_number(cumulative)}\n")
        lines.append(f"{name}_sum{{{label_text}}} {_number(counts[-1])}\n")
        return "".join(lines)

    def _known(self, labels: tuple[str, ...]) -> None:
        if labels not in self._label_text:
            if len(labels) != len(self.labels):
                raise ValueError(f"{self.name}: labels {self.labels}, given {labels}")
            self._label_text[labels] = ",".join(
                f'{key}="{_escaped(value)}"' for key, value in zip(self.labels, labels, strict=True)
            )


class Families:
    """The families a `Metrics` keeps here, written in the order they were made."""

    def __init__(self) -> None:
        self._families: list[Family] = []

    def add(
        self,
        name: str,
        kind: Kind,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = (),
    ) -> Family:
        family = Family(name, kind, documentation, labels, buckets)
        self._families.append(family)
        return family

    def write(self, out: list[str]) -> None:
        for family in self._families:
            family.write(out)
