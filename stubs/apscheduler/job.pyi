import datetime as dt

from apscheduler.triggers.base import BaseTrigger

class Job:
    id: str
    name: str
    trigger: BaseTrigger
    next_run_time: dt.datetime | None
