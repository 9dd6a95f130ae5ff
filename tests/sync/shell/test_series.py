"""The connector families write what prometheus_client writes for the same events."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from sync.shell.series import Families


def test_the_families_write_the_lines_prometheus_client_writes() -> None:
    disable_created_metrics()  # type: ignore[no-untyped-call]  # as `Metrics` does
    registry = CollectorRegistry()
    counter = Counter("x_pulled", 'Tickets "read".\nA \\ b', ["connector"], registry=registry)
    gauge = Gauge("x_running", "Running.", ["connector", "outcome"], registry=registry)
    histogram = Histogram("x_seconds", "Took.", ["connector"], buckets=(0.1, 1), registry=registry)
    up = Gauge("x_up", "Up.", registry=registry)
    families = Families()
    ours = (
        families.add("x_pulled", "counter", 'Tickets "read".\nA \\ b', ["connector"]),
        families.add("x_running", "gauge", "Running.", ["connector", "outcome"]),
        families.add("x_seconds", "histogram", "Took.", ["connector"], buckets=(0.1, 1)),
        families.add("x_up", "gauge", "Up."),
    )
    strange = 'a "quoted"\\name\nline'

    counter.labels(strange).inc(3)
    ours[0].inc(strange, amount=3)
    counter.labels("b")
    ours[0].touch("b")
    gauge.labels("a", "ok").set(1.5)
    ours[1].set("a", "ok", value=1.5)
    for seconds in (0.05, 0.5, 7.0):
        histogram.labels("a").observe(seconds)
        ours[2].observe("a", value=seconds)
    up.set(1)
    ours[3].set(value=1)

    written: list[str] = []
    families.write(written)
    assert "".join(written) == generate_latest(registry).decode()
