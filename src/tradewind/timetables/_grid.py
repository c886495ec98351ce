"""The shape shared by cron and delta grids, and helpers both kinds of timetable use."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, Protocol

from tradewind.errors import ScheduleError
from tradewind.sdk.schedule import (
    CONTINUOUS,
    ONCE,
    cron_expression,
    is_relativedelta,
    validate_schedule,
)
from tradewind.sdk.timezone import parse_timezone
from tradewind.timetables._cron import CronGrid


class Grid(Protocol):
    """An ordered set of instants ("ticks"); every method returns aware UTC datetimes."""

    def next_after(self, t: datetime) -> datetime | None:
        """The first tick strictly after ``t``."""

    def prev_before(self, t: datetime) -> datetime | None:
        """The last tick strictly before ``t``."""

    def align_up(self, t: datetime) -> datetime | None:
        """``t`` if it is a tick, else the next tick."""

    def align_down(self, t: datetime) -> datetime | None:
        """``t`` if it is a tick, else the previous tick."""


class CronSpec:
    """A checked cron expression (or preset) with its timezone, shared by cron timetables."""

    def __init__(self, cron: str, timezone: str | tzinfo) -> None:
        if not isinstance(cron, str) or cron.strip() in (ONCE, CONTINUOUS):
            raise ScheduleError(cron, "a cron timetable needs a cron expression or preset")
        problem = validate_schedule(cron)
        if problem:
            raise ScheduleError(cron, problem)
        self.expression = cron.strip()
        self.cron = cron_expression(cron)
        self.timezone = parse_timezone(timezone)
        self.grid = CronGrid(self.cron, self.timezone)


def check_delta(delta: Any) -> Any:
    """Return ``delta`` if it is a positive timedelta or relativedelta, else raise ScheduleError."""
    from datetime import timedelta

    if not (isinstance(delta, timedelta) or is_relativedelta(delta)):
        raise ScheduleError(delta, "expected a timedelta or relativedelta")
    problem = validate_schedule(delta)
    if problem:
        raise ScheduleError(delta, problem)
    return delta
