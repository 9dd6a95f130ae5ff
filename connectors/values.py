"""Turning source values into typed cursors and timestamps, and the config types that check them.

Every source spells time its own way: ISO 8601 with `Z` or an offset, with or
without fractions, a naive local time, Unix seconds or milliseconds. These
functions turn them into timezone-aware UTC datetimes (or integers for
version cursors), so that nothing downstream ever compares a naive datetime.
The config types (`Duration`, `HttpUrl`, `TimeZoneName`) check a value once, at
config load, wherever a settings model declares one.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator

from connectors.base import Cursor

CursorKind = Literal["datetime", "int"]

# Unix timestamps above this are taken as milliseconds (year 5138 in seconds).
MILLISECONDS_THRESHOLD = 100_000_000_000

MAX_CURSOR_TEXT = 64
"""Characters of the longest cursor the state keeps (an integer's digits and sign)."""


def parse_datetime(value: Any, default_tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    """`value` as an aware UTC datetime.

    Accepts datetimes, ISO 8601 strings (a naive one is read in `default_tz`)
    and Unix seconds or milliseconds, as numbers or digit-only strings. Raises `ValueError` naming
    what was wrong.
    """
    if type(value) is str and len(value) == 20 and value[19] == "Z":
        # The common shape, `2026-11-02T09:00:00Z`: already UTC, nothing to convert.
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass  # the general path below names the problem
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, bool):
        raise ValueError(f"expected a date-time, got a boolean {value!r}")
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"expected a date-time, got {value!r}")
        seconds = value / 1000 if abs(value) >= MILLISECONDS_THRESHOLD else value
        try:
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"timestamp {value!r} is out of range") from exc
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("expected a date-time, got an empty string")
        if text.isdigit():  # Unix time written as text, as every CSV value is
            return parse_datetime(int(text), default_tz)
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time())
    else:
        raise ValueError(f"expected a date-time, got {type(value).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=default_tz)
    return moment.astimezone(dt.UTC)


def parse_cursor(value: Any, kind: CursorKind, default_tz: dt.tzinfo = dt.UTC) -> Cursor:
    """`value` as a cursor of `kind`; raises `ValueError` when it is not one."""
    if kind == "datetime":
        return parse_datetime(value, default_tz)
    if isinstance(value, bool):
        raise ValueError(f"expected an integer cursor, got a boolean {value!r}")
    if isinstance(value, int):
        cursor = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        _check_cursor_length(value.strip().lstrip("-").lstrip("0"))  # int() caps its digits
        cursor = int(value)
    elif isinstance(value, float) and value.is_integer():
        cursor = int(value)
    else:
        raise ValueError(f"expected an integer cursor, got {value!r}")
    _check_cursor_length(str(cursor))
    return cursor


def _check_cursor_length(text: str) -> None:
    # A version number this long is a mistake, and the state could not keep it whole.
    if len(text) > MAX_CURSOR_TEXT:
        raise ValueError(
            f"an integer cursor of {len(text)} characters; the state keeps at most "
            f"{MAX_CURSOR_TEXT} (it starts {text[:20]}…)"
        )


def check_cursor_kind(connector: str, since: Cursor | None, kind: CursorKind) -> None:
    """Raise `SourceError` when the stored watermark is not of the connector's cursor kind."""
    from connectors.errors import SourceError

    if since is None:
        return
    wanted = dt.datetime if kind == "datetime" else int
    if isinstance(since, bool) or not isinstance(since, wanted):
        raise SourceError(
            connector,
            f"the saved watermark {since!r} is not a {kind} cursor; cursor_kind changed "
            "since the last run, so reset this connector's state (python -m sync reset)",
        )


def timezone(name: str) -> dt.tzinfo:
    """The time zone called `name` ("UTC", "Europe/Paris"); raises `ValueError` if unknown."""
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def record_zone(options: object) -> dt.tzinfo:
    """Where naive date-times in a connector's records are: its `timezone` option, else UTC.

    The file and SQL connectors read their cursors in it, and the mapping every other
    date it reads (`due_at`, `external_created_at`, `external_updated_at`).
    """
    name = getattr(options, "timezone", None)
    return timezone(name) if isinstance(name, str) else dt.UTC


def isoformat(moment: dt.datetime) -> str:
    """`moment` in UTC as ISO 8601 with a `Z`, microseconds only when present."""
    text = moment.astimezone(dt.UTC).isoformat()
    return text.replace("+00:00", "Z")


def whole_seconds_utc(moment: dt.datetime) -> str:
    """`moment` as `YYYY-MM-DDTHH:MM:SSZ`: in UTC, floored to the second.

    How an API that compares whole seconds takes a `since` bound: floored, the
    bound stays inclusive (the engine's hash diff absorbs what is read twice).
    """
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> dt.timedelta:
    """`value` ("90s", "5m", "1h30m", "250ms", or a number of seconds) as a timedelta.

    Raises `ValueError` for anything else, including negative durations.
    """
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        parts = list(_DURATION.finditer(text))
        if not parts or "".join(p.group(0) for p in parts) != text:
            raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1h30m)")
        seconds = sum(float(p.group(1)) * _DURATION_UNITS[p.group(2).lower()] for p in parts)
    else:
        raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1h30m)")
    if seconds < 0:
        raise ValueError("a duration can't be negative")
    return dt.timedelta(seconds=seconds)


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]
"""A config duration: "90s", "5m", "1h30m", "250ms", or a number of seconds."""


def http_url(url: str) -> str:
    """`url` without its trailing slashes; raises `ValueError` unless it is http(s)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(http_url)]
"""A config URL of an HTTP server (Fragment's `url`, a source's `base_url`), kept without
trailing slashes so that paths join on with one."""


def _known_zone(name: str) -> str:
    timezone(name)  # fail at config load, not at the first naive timestamp hours later
    return name


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]
"""A config time zone name ("UTC", "Europe/Paris"), refused at load when unknown."""
