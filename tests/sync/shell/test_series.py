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


def test_a_series_is_written_anew_after_it_changes_and_gone_once_discarded() -> None:
    """Each series' lines are kept between writes: only the ones that changed are new."""
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    counter = Counter("y_pulled", "Pulled.", ["connector"], registry=registry)
    histogram = Histogram("y_seconds", "Took.", ["connector"], buckets=(1,), registry=registry)
    families = Families()
    pulled = families.add("y_pulled", "counter", "Pulled.", ["connector"])
    seconds = families.add("y_seconds", "histogram", "Took.", ["connector"], buckets=(1,))
    lag = families.add("y_lag", "gauge", "Lag.", ["connector"])
    for name in ("a", "b"):
        counter.labels(name).inc()
        pulled.inc(name)
        histogram.labels(name).observe(0.5)
        seconds.observe(name, value=0.5)
    families.write([])  # every series formatted once

    counter.labels("b").inc(2)
    pulled.inc("b", amount=2)
    histogram.labels("a").observe(3)
    seconds.observe("a", value=3)
    lag.set("a", value=5)
    lag.set("a", value=7)
    lag.set("b", value=1)
    lag.discard("b")

    written: list[str] = []
    families.write(written)
    text = "".join(written)
    expected = generate_latest(registry).decode()
    assert text.startswith(expected)
    assert (
        text[len(expected) :] == '# HELP y_lag Lag.\n# TYPE y_lag gauge\ny_lag{connector="a"} 7.0\n'
    )
