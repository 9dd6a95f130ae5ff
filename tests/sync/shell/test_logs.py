"""The JSON log stream: every line JSON, whatever wrote it."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest
import structlog

from sync.shell import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """`logs.configure` writing JSON into a string; the process's logging restored after."""
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, threading.excepthook
    written = io.StringIO()
    logs.configure(fmt="json", stream=written)
    yield written
    threading.excepthook = hook
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def test_an_exception_that_ends_a_thread_is_one_json_line_with_its_trace(
    stream: io.StringIO,
) -> None:
    """Python's default hook wrote the bare trace to stderr, breaking the JSON lines."""

    def fails() -> None:
        raise RuntimeError("the renewal broke")

    thread = threading.Thread(target=fails, name="lease-helpdesk")
    thread.start()
    thread.join()

    [line] = stream.getvalue().splitlines()
    event = json.loads(line)
    assert (event["event"], event["level"], event["thread"]) == (
        "thread_crashed",
        "error",
        "lease-helpdesk",
    )
    assert "RuntimeError: the renewal broke" in event["exception"]


def test_apschedulers_own_error_with_its_trace_is_one_json_line(stream: io.StringIO) -> None:
    """How APScheduler reports a job that raised: through its logger, with the trace."""
    try:
        raise RuntimeError("the tick broke")
    except RuntimeError:
        logging.getLogger("apscheduler.executors.default").exception(
            'Job "claim the connectors due" raised an exception'
        )

    [line] = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["level"] == "error"
    assert "RuntimeError: the tick broke" in event["exception"]
