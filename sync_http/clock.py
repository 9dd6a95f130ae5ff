"""This machine's clock, read in one place.

A source stamps its cursors with its own clock; the engine stops each
checkpoint at the time its pass started. To compare the two, a connector
estimates how far its source's clock is from this one (`Connector.clock_offset`)
and the engine reads the time a pass starts; both read `now()`, so they always
agree on what "this machine's clock" says, and a test can shift both at once.
It sits with the HTTP toolkit, the lowest layer, because the session reads each
answer's `Date` header against it (`http_date`).
"""

from __future__ import annotations

import datetime as dt
import email.utils


def now() -> dt.datetime:
    """This machine's time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def http_date(value: str | None) -> dt.datetime | None:
    """An HTTP `Date` header (RFC 9110's IMF-fixdate) as an aware UTC datetime; None if unusable."""
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000": a time in UTC from a source that doesn't say its zone
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)
