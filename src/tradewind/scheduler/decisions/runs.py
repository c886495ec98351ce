"""Run creation: which runs a DAG's timetable asks for now, their ids, backfills and manual runs.

* :func:`next_runs_to_create` asks the timetable for every run that is due (``run_after <= now``)
  and fits under ``max_active_runs``; with catchup that is every missed interval in order, without
  it the timetable itself jumps to the latest one. It also returns the next run after those, for
  the DAG's "next run" fields and displays.
* :func:`runs_to_start` picks the queued runs that may start running under ``max_active_runs``.
* :func:`run_id_for` builds ids like ``scheduled__2024-01-01T00:00:00+00:00``.
* :func:`backfill_intervals` lists every interval whose logical date is within a range.
* :func:`manual_run_interval` is the data interval of a run triggered by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from tradewind.errors import InvalidArgumentError
from tradewind.scheduler.decisions._text import format_when, plural
from tradewind.sdk.timezone import to_utc
from tradewind.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable

__all__ = [
    "RunCreationPlan",
    "RunType",
    "backfill_intervals",
    "manual_run_interval",
    "next_runs_to_create",
    "run_id_for",
    "runs_to_start",
]

_T = TypeVar("_T")


class RunType(StrEnum):
    """How a DAG run came to be; the prefix of its run id."""

    SCHEDULED = "scheduled"
    MANUAL = "manual"
    BACKFILL = "backfill"
    ASSET_TRIGGERED = "asset_triggered"


@dataclass(frozen=True)
class RunCreationPlan:
    """What :func:`next_runs_to_create` decided.

    Attributes:
        to_create: the runs to create now, oldest first.
        next_info: the first run after those (due later, or held by max_active_runs), or None
            when the timetable has no more runs.
        reason: one line saying why no more (or no) runs are created now.
    """

    to_create: tuple[DagRunInfo, ...]
    next_info: DagRunInfo | None
    reason: str


def _never_reason(timetable: Timetable) -> str:
    summary = timetable.summary
    if summary == "None":
        return "the DAG has no schedule: runs start only when triggered"
    return f"schedule {summary!r} does not create runs by time"


def next_runs_to_create(
    *,
    timetable: Timetable,
    start_date: datetime | None,
    end_date: datetime | None,
    catchup: bool,
    last_automated_data_interval: DataInterval | None,
    now: datetime,
    active_runs: int,
    max_active_runs: int,
    is_paused: bool,
    max_new: int | None = None,
) -> RunCreationPlan:
    """The scheduled runs to create now for one DAG.

    Args:
        timetable: the DAG's timetable.
        start_date, end_date, catchup: the DAG's scheduling bounds.
        last_automated_data_interval: the data interval of the DAG's latest scheduled (or
            backfill) run, or None before the first.
        now: the current time.
        active_runs: the DAG's queued plus running runs.
        max_active_runs: the DAG's ``max_active_runs`` (the timetable may lower it: 1 for
            ``@continuous``).
        is_paused: whether the DAG is paused (nothing is created, but ``next_info`` is filled).
        max_new: create at most this many in one call (None: no cap besides max_active_runs).
    """
    if not timetable.can_be_scheduled:
        return RunCreationPlan((), None, _never_reason(timetable))
    restriction = TimeRestriction(start_date, end_date, catchup)
    now = to_utc(now)

    def following(last: DataInterval | None) -> DagRunInfo | None:
        return timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction, now=now
        )

    info = following(last_automated_data_interval)
    if info is None:
        return RunCreationPlan((), None, "the timetable has no further runs (past end_date?)")
    if is_paused:
        return RunCreationPlan((), info, "the DAG is paused")

    limit = max_active_runs
    if timetable.active_runs_limit is not None:
        limit = min(limit, timetable.active_runs_limit)
    room = max(limit - active_runs, 0)
    if max_new is not None:
        room = min(room, max(max_new, 0))

    created: list[DagRunInfo] = []
    while info is not None and info.run_after <= now and len(created) < room:
        created.append(info)
        nxt = following(info.data_interval)
        # A timetable that proposes the same interval again has nothing new to offer.
        info = None if nxt is not None and nxt.data_interval == info.data_interval else nxt

    if info is None:
        reason = "the timetable has no further runs"
    elif info.run_after > now:
        reason = f"next run due at {format_when(info.run_after, now)}"
    elif max_new is not None and len(created) >= max_new:
        reason = f"created the most allowed in one step ({max_new}); more runs are due"
    else:
        reason = f"max_active_runs reached: {active_runs + len(created)} of {limit} runs active"
    if created:
        reason = f"create {plural(len(created), 'run')}; {reason}"
    return RunCreationPlan(tuple(created), info, reason)


def runs_to_start(
    queued: Sequence[_T], *, running: int, max_active_runs: int
) -> tuple[list[_T], str | None]:
    """The queued runs (already in start order, oldest first) that may start running now.

    Returns the runs to start and, when some must stay queued, the reason.
    """
    room = max(max_active_runs - running, 0)
    start = list(queued[:room])
    if len(start) == len(queued):
        return start, None
    return start, (
        f"max_active_runs reached: {running + len(start)} of {max_active_runs} runs running; "
        f"{plural(len(queued) - len(start), 'run')} stay queued"
    )


def run_id_for(run_type: RunType | str, when: datetime, *, suffix: str | None = None) -> str:
    """``"<run_type>__<when as ISO 8601 UTC>"``, e.g. ``scheduled__2024-01-01T00:00:00+00:00``.

    Pass the run's logical date (or its ``run_after`` for a run without one). ``suffix`` (for
    example a few random characters, for runs without a logical date) is appended after ``_``.

    Raises:
        InvalidArgumentError: an unknown run type.
    """
    try:
        kind = RunType(run_type)
    except ValueError:
        raise InvalidArgumentError(
            f"unknown run type {run_type!r}; expected one of {', '.join(RunType)}",
            argument="run_type",
        ) from None
    run_id = f"{kind}__{to_utc(when).isoformat()}"
    return f"{run_id}_{suffix}" if suffix else run_id


def backfill_intervals(
    timetable: Timetable,
    start: datetime,
    end: datetime,
    *,
    max_runs: int | None = None,
) -> list[DagRunInfo]:
    """Every run whose logical date lies in ``[start, end]``, oldest first.

    Raises:
        InvalidArgumentError: ``start`` is after ``end``; the schedule has no intervals to
            backfill (None, ``@once``, ``@continuous``, assets); or more than ``max_runs``
            runs would be needed.
    """
    start, end = to_utc(start), to_utc(end)
    if start > end:
        raise InvalidArgumentError(
            f"backfill start {start.isoformat()} is after its end {end.isoformat()}",
            argument="start_date",
        )
    if not (timetable.periodic and timetable.can_be_scheduled):
        raise InvalidArgumentError(
            f"cannot backfill a DAG with schedule {timetable.summary!r}: only cron and "
            "interval schedules have runs to backfill",
            argument="schedule",
        )
    restriction = TimeRestriction(start, end, True)
    found: list[DagRunInfo] = []
    last: DataInterval | None = None
    while True:
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction, now=end
        )
        if info is None or info.logical_date > end:
            break
        if last is not None and info.data_interval == last:
            break
        last = info.data_interval
        if info.logical_date < start:
            continue
        found.append(info)
        if max_runs is not None and len(found) > max_runs:
            raise InvalidArgumentError(
                f"the backfill from {start.isoformat()} to {end.isoformat()} needs more than "
                f"{max_runs} runs; choose a shorter range",
                argument="end_date",
            )
    return found


def manual_run_interval(timetable: Timetable, logical_date: datetime) -> DataInterval:
    """The data interval of a manual run for ``logical_date`` (the timetable's rule)."""
    return timetable.infer_manual_data_interval(run_after=to_utc(logical_date))
