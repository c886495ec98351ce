"""``LatestOnlyOperator``: let downstream tasks run only in the most recent scheduled run.

Useful when catching up (or backfilling) many intervals and some tasks, such as sending a
notification or refreshing a dashboard, only make sense for the newest one::

    latest = LatestOnlyOperator(task_id="latest_only")
    latest >> notify

How "latest" is decided (without importing timetables, which sit above operators): the run
for data interval ``[start, end)`` is the latest while ``end <= now < next_end``, where
``next_end`` is the end of the following interval. ``next_end`` is taken from the context key
``next_data_interval_end`` when the runtime provides it (it knows the DAG's timetable, so it
is exact for irregular cron schedules); otherwise it is ``end + (end - start)``, exact for
fixed-length intervals. ``now`` is the context key ``now`` when present (tests inject it),
else the current time.

A manually triggered run always proceeds, and so does a run without a data interval (or with
a zero-length one and no ``next_data_interval_end``), since there is nothing to compare.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradewind.operators.branch import BaseBranchOperator

if TYPE_CHECKING:
    from tradewind.sdk.context import Context

__all__ = ["LatestOnlyOperator", "latest_window"]

log = logging.getLogger("tradewind.task")


def _as_aware(value: Any) -> datetime | None:
    if value is None:
        return None
    from tradewind.sdk.timezone import coerce_datetime

    return coerce_datetime(value)


def _run_type(dag_run: Any) -> str:
    run_type = getattr(dag_run, "run_type", None)
    return str(getattr(run_type, "value", run_type) or "")


def latest_window(context: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    """``(end, next_end)``: the span of time in which this run is the latest one, or None
    when it cannot be told (see the module docstring)."""
    dag_run = context.get("dag_run")
    start = _as_aware(getattr(dag_run, "data_interval_start", None))
    end = _as_aware(getattr(dag_run, "data_interval_end", None))
    if end is None:
        return None
    next_end = _as_aware(context.get("next_data_interval_end"))
    if next_end is None:
        if start is None or end <= start:
            return None
        next_end = end + (end - start)
    return end, next_end


class LatestOnlyOperator(BaseBranchOperator):
    """Skip the direct downstream tasks unless this is the latest scheduled run.

    See the module docstring for how "latest" is decided.
    """

    ui_color = "#e9ffdb"

    def choose_branch(self, context: Context) -> str | Iterable[str] | None:
        """All direct downstream ids when this run is the latest (or manual), else none."""
        downstream = sorted(self.downstream_task_ids)
        dag_run = context.get("dag_run")
        if _run_type(dag_run) == "manual":
            log.info("Manually triggered run: downstream tasks proceed")
            return downstream
        window = latest_window(context)
        if window is None:
            log.info("The run has no data interval to compare: downstream tasks proceed")
            return downstream
        now = _as_aware(context.get("now"))
        if now is None:
            from tradewind.sdk.timezone import utcnow

            now = utcnow()
        left, right = window
        log.info(
            "Latest window is [%s, %s); now is %s",
            left.isoformat(),
            right.isoformat(),
            now.isoformat(),
        )
        if left <= now < right:
            log.info("This is the latest run: downstream tasks proceed")
            return downstream
        log.info("Not the latest run: skipping the direct downstream tasks")
        return []
