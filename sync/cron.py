"""Crontab lines as APScheduler 3 triggers, read as crontab(5) reads them, in UTC.

APScheduler 3's `CronTrigger.from_crontab` takes no jitter, counts weekday
numbers from Monday where crontab counts them from Sunday (`1-5` ran Tuesday
to Saturday), and requires both the day of the month and the weekday to match
where crontab runs on either when both are restricted. So the trigger is built
here from the five fields: the weekday field rewritten as day names, and an
`OrTrigger` for the either-day case. The configuration calls this to refuse a
bad line at load, the daemon (`sync.shell.daemon`) to run it; nothing else schedules.
"""

from __future__ import annotations

import datetime as dt
import re

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

FIELDS = "minute hour day month weekday"
CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
"""Crontab's weekday numbers: 0 is Sunday, and so is 7."""
_WEEKDAY_ITEM = re.compile(r"^(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[0-9]+))?$")


def cron_trigger(line: str, jitter_s: float = 0) -> BaseTrigger:
    """The trigger firing on the five-field crontab `line` in UTC, each fire delayed by up to
    `jitter_s` seconds (uniformly at random).

    Raises `ValueError` saying what is wrong with the line.
    """
    fields = line.split()
    if len(fields) != 5:
        raise ValueError(f"needs five fields ({FIELDS}), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    days = crontab_weekdays(weekday)
    jitter = jitter_s or None

    def trigger(day: str, day_of_week: str, jitter: float | None) -> CronTrigger:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=day_of_week,
            timezone=dt.UTC,
            jitter=jitter,
        )

    if day.startswith("*") or weekday.startswith("*"):
        return trigger(day, days, jitter)
    # Both restricted: crontab runs on a day matching either of them.
    return OrTrigger([trigger(day, "*", None), trigger("*", days, None)], jitter=jitter)


def crontab_weekdays(field: str) -> str:
    """A crontab weekday field (`1-5`, `0,6`, `*/2`, `sat,sun`) as APScheduler's day names.

    Raises `ValueError` for a weekday that is neither 0-7 nor a three-letter day name.
    """
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.lower().split(","):
        match = _WEEKDAY_ITEM.match(item)
        if match is None:
            raise ValueError(f"weekday {item!r} is not a crontab weekday (0-7, sun-sat)")
        first, last = _weekday_range(match["range"])
        step = int(match["step"] or 1)
        if step < 1:
            raise ValueError(f"weekday step in {item!r} must be at least 1")
        if match["step"] and first == last:
            last = 7  # `1/2`: from Monday to the week's end, as crontab reads it
        days.update(number % 7 for number in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    # APScheduler's names, Monday first, as its own weekday numbering goes.
    return ",".join(CRONTAB_DAYS[number] for number in sorted(days, key=lambda n: (n - 1) % 7))


def _weekday_range(text: str) -> tuple[int, int]:
    """The first and last crontab weekday numbers of `*`, `N` or `A-B`."""
    if text == "*":
        return 0, 7
    first_text, _, last_text = text.partition("-")
    first = _weekday(first_text)
    if not last_text:
        return first, first
    last = _weekday(last_text)
    if last == 0 and first > 0:
        last = 7  # `fri-sun`: Sunday ends the week
    if last < first:
        raise ValueError(f"weekday range {text!r} runs backwards")
    return first, last


def _weekday(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text in CRONTAB_DAYS:
        return CRONTAB_DAYS.index(text)
    raise ValueError(f"weekday {text!r} is not a crontab weekday (0-7, sun-sat)")
