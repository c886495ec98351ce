"""Timetables: when a DAG runs, and which data interval each run covers.

:func:`create_timetable` turns a DAG's ``schedule`` value into a timetable:

=============================  =====================================  ===========================
schedule                       native (``data_intervals=True``)       ``data_intervals=False``
=============================  =====================================  ===========================
``None``                       :class:`NullTimetable`                 same
``"@once"``                    :class:`OnceTimetable`                 same
``"@continuous"``              :class:`ContinuousTimetable`           same
cron expression or preset      :class:`CronDataIntervalTimetable`     :class:`CronTriggerTimetable`
timedelta / relativedelta      :class:`DeltaDataIntervalTimetable`    :class:`DeltaTriggerTimetable`
assets or asset condition      :class:`AssetTriggeredTimetable`       same
a timetable                    itself                                 itself
=============================  =====================================  ===========================

Everything here is pure computation: ``now`` is always passed in, nothing reads the clock or
the database, and every datetime returned is aware UTC.
"""

from __future__ import annotations

from datetime import timedelta, tzinfo
from typing import Any

from tradewind.errors import ScheduleError
from tradewind.sdk.schedule import CONTINUOUS, ONCE, is_relativedelta, is_timetable
from tradewind.sdk.schedule import validate_schedule as _validate_schedule
from tradewind.timetables.base import (
    DagRunInfo,
    DataInterval,
    TimeRestriction,
    Timetable,
    register_timetable,
    registered_timetables,
    timetable_from_dict,
)
from tradewind.timetables.events import EventsTimetable
from tradewind.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable
from tradewind.timetables.simple import (
    AssetTriggeredTimetable,
    ContinuousTimetable,
    NullTimetable,
    OnceTimetable,
)
from tradewind.timetables.trigger import CronTriggerTimetable, DeltaTriggerTimetable

__all__ = [
    "AssetTriggeredTimetable",
    "ContinuousTimetable",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "DagRunInfo",
    "DataInterval",
    "DeltaDataIntervalTimetable",
    "DeltaTriggerTimetable",
    "EventsTimetable",
    "NullTimetable",
    "OnceTimetable",
    "TimeRestriction",
    "Timetable",
    "create_timetable",
    "register_timetable",
    "registered_timetables",
    "timetable_from_dict",
]


def create_timetable(
    schedule: Any, *, timezone: str | tzinfo, data_intervals: bool = True
) -> Timetable:
    """Build the timetable for a DAG's ``schedule`` value.

    Args:
        schedule: any value :func:`tradewind.sdk.schedule.validate_schedule` accepts.
        timezone: the DAG's timezone; cron expressions and calendar deltas use its wall clock.
        data_intervals: True (native) for data-interval timetables, False for the trigger
            flavours where the logical date is the tick (Airflow 3 defaults).

    A timetable object is returned as it is (``timezone`` does not apply to it).

    Raises:
        ScheduleError: the schedule is invalid (the message says why).
    """
    problem = _validate_schedule(schedule)
    if problem:
        raise ScheduleError(schedule, problem)
    if schedule is None:
        return NullTimetable()
    if isinstance(schedule, str):
        text = schedule.strip()
        if text == ONCE:
            return OnceTimetable()
        if text == CONTINUOUS:
            return ContinuousTimetable()
        if data_intervals:
            return CronDataIntervalTimetable(text, timezone)
        return CronTriggerTimetable(text, timezone=timezone)
    if isinstance(schedule, timedelta) or is_relativedelta(schedule):
        if data_intervals:
            return DeltaDataIntervalTimetable(schedule, timezone)
        return DeltaTriggerTimetable(schedule, timezone=timezone)
    if is_timetable(schedule):
        # Duck-typed timetables (an Airflow-style class, say) are used as they are too.
        return schedule
    return AssetTriggeredTimetable(schedule)
