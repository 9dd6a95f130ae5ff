import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from apscheduler.executors.pool import BasePoolExecutor
from apscheduler.job import Job
from apscheduler.triggers.base import BaseTrigger

class BaseScheduler:
    def __init__(
        self,
        gconfig: Mapping[str, Any] = ...,
        *,
        timezone: dt.tzinfo | str | None = None,
        executors: Mapping[str, BasePoolExecutor] | None = None,
    ) -> None: ...
    @property
    def running(self) -> bool: ...
    def start(self, paused: bool = False) -> None: ...
    def shutdown(self, wait: bool = True) -> None: ...
    def add_job(
        self,
        func: Callable[..., Any],
        trigger: BaseTrigger | None = None,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        id: str | None = None,
        name: str | None = None,
        misfire_grace_time: int | None = ...,
        coalesce: bool = ...,
        max_instances: int = ...,
        next_run_time: dt.datetime | None = ...,
    ) -> Job: ...
    def get_job(self, job_id: str, jobstore: str | None = None) -> Job | None: ...
