import datetime as dt

from apscheduler.triggers.base import BaseTrigger

class IntervalTrigger(BaseTrigger):
    def __init__(
        self,
        weeks: float = 0,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        start_date: dt.datetime | str | None = None,
        end_date: dt.datetime | str | None = None,
        timezone: dt.tzinfo | str | None = None,
        jitter: float | None = None,
    ) -> None: ...
