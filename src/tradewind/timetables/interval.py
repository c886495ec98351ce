"""Data-interval timetables: the schedule cuts time into intervals, and each run covers one.

This is Tradewind's native meaning of a cron or delta schedule. The run for ``[S, E)`` has
logical date ``S`` and becomes due at ``E``: the ``@daily`` run for 1 January starts just after
midnight on 2 January.

Scheduling rules (shared by both classes):

* ``catchup=True``: the first run covers the first interval that starts at or after
  ``start_date``; each later run covers the interval after the previous one, so every interval
  up to now runs, in order. Without a start_date nothing is scheduled.
* ``catchup=False``: the next run covers the latest *complete* interval (the one that ends at or
  before now) unless the one after the previous run is later; intervals in between are skipped.
  Nothing runs for intervals that start before ``start_date``.
* ``end_date``: no run whose interval starts after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, ClassVar

from tradewind.sdk.schedule import format_delta
from tradewind.sdk.timezone import UTC, parse_timezone, to_utc, tz_name
from tradewind.timetables._delta import Delta, DeltaGrid, delta_from_dict, delta_to_dict, shift
from tradewind.timetables._grid import CronSpec, Grid, check_delta
from tradewind.timetables.base import (
    DagRunInfo,
    DataInterval,
    TimeRestriction,
    Timetable,
    register_timetable,
)

__all__ = ["CronDataIntervalTimetable", "DeltaDataIntervalTimetable"]


class _DataIntervalTimetable(Timetable):
    """Next-run logic shared by the cron and delta data-interval timetables."""

    def _grid(self, anchor: datetime | None) -> Grid:
        raise NotImplementedError

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        """The next interval to run (see the module docstring for the rules)."""
        now = to_utc(now)
        grid = self._grid(restriction.earliest)
        first = None if restriction.earliest is None else grid.align_up(restriction.earliest)
        candidates: list[datetime | None] = [first]
        if last_automated_data_interval is not None:
            # Aligning matters when the schedule changed since the last run.
            candidates.append(grid.align_down(last_automated_data_interval.end))
        if not restriction.catchup:
            latest_end = grid.align_down(now)
            if latest_end is not None:
                candidates.append(grid.prev_before(latest_end))
        present = [c for c in candidates if c is not None]
        if not present:
            return None
        start = max(present)
        if restriction.latest is not None and start > restriction.latest:
            return None
        end = grid.next_after(start)
        if end is None:
            return None
        return DagRunInfo.interval(start, end)


@register_timetable
class CronDataIntervalTimetable(_DataIntervalTimetable):
    """Intervals between consecutive ticks of a cron expression (the default for cron schedules).

    Ticks are computed on the wall clock of ``timezone`` (DST rules in
    ``tradewind.timetables._cron``) and returned in UTC.

    Manual runs: a manual run with logical date ``D`` covers the interval that contains ``D``,
    i.e. from the latest tick at or before ``D`` to the tick after it. When ``D`` is a tick this
    is exactly the interval a scheduled run with logical date ``D`` has (``@daily``,
    ``D = 2024-01-01T00:00`` gives ``[2024-01-01, 2024-01-02)``).

    Args:
        cron: a cron expression or preset (``"@daily"``).
        timezone: the timezone whose wall clock the expression describes (name or tzinfo).
    """

    type_name: ClassVar[str] = "cron_data_interval"

    def __init__(self, cron: str, timezone: str | tzinfo = UTC) -> None:
        self._spec = CronSpec(cron, timezone)

    @property
    def expression(self) -> str:
        """The expression as given (a preset stays a preset)."""
        return self._spec.expression

    @property
    def timezone(self) -> tzinfo:
        """The timezone the expression is evaluated in."""
        return self._spec.timezone

    def _grid(self, anchor: datetime | None) -> Grid:
        return self._spec.grid

    @property
    def summary(self) -> str:
        """The cron expression (presets expanded), such as ``"0 0 * * *"``."""
        return self._spec.cron

    @property
    def description(self) -> str:
        """A sentence for the UI."""
        return (
            f"Each run covers the time between two ticks of '{self._spec.cron}' "
            f"({tz_name(self.timezone)}) and starts when its interval ends."
        )

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """The interval containing ``run_after``: ``[latest tick <= run_after, next tick)``."""
        at = to_utc(run_after)
        grid = self._spec.grid
        start = grid.align_down(at)
        end = grid.next_after(start) if start is not None else None
        if start is None or end is None:
            return DataInterval.exact(at)
        return DataInterval(start, end)

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "cron_data_interval", "expression": …, "timezone": …}``."""
        return {
            "type": self._registered_name(),
            "expression": self.expression,
            "timezone": tz_name(self.timezone),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CronDataIntervalTimetable:
        """Read back :meth:`to_dict` output."""
        return cls(data["expression"], parse_timezone(data.get("timezone", "UTC")))


@register_timetable
class DeltaDataIntervalTimetable(_DataIntervalTimetable):
    """Back-to-back intervals of a fixed or calendar length (the default for delta schedules).

    The grid is anchored at ``start_date`` (runs cover ``[start_date, start_date + delta)``,
    then the next one, …); without a start_date a timedelta grid lines up with the Unix epoch
    and a relativedelta grid with 1 January 1970 00:00 in ``timezone``. A timedelta is elapsed
    time; a relativedelta with calendar parts follows the wall clock of ``timezone`` (details in
    ``tradewind.timetables._delta``).

    Manual runs: a manual run with logical date ``D`` covers ``[D, D + delta)``.

    Args:
        delta: a positive ``timedelta`` or ``relativedelta``.
        timezone: the timezone for calendar arithmetic (name or tzinfo).
    """

    type_name: ClassVar[str] = "delta_data_interval"

    def __init__(self, delta: Delta, timezone: str | tzinfo = UTC) -> None:
        self.delta = check_delta(delta)
        self.timezone = parse_timezone(timezone)

    def _grid(self, anchor: datetime | None) -> Grid:
        return DeltaGrid(self.delta, self.timezone, anchor)

    @property
    def summary(self) -> str:
        """``"every 1 day, 0:00:00"``, ``"every 1 month"``."""
        return f"every {format_delta(self.delta)}"

    @property
    def description(self) -> str:
        """A sentence for the UI."""
        return (
            f"Each run covers {format_delta(self.delta)} from the start date on, "
            "and starts when its interval ends."
        )

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """``[run_after, run_after + delta)``."""
        at = to_utc(run_after)
        return DataInterval(at, shift(at, self.delta, self.timezone))

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "delta_data_interval", "delta": {…}, "timezone": …}``."""
        return {
            "type": self._registered_name(),
            "delta": delta_to_dict(self.delta),
            "timezone": tz_name(self.timezone),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeltaDataIntervalTimetable:
        """Read back :meth:`to_dict` output."""
        return cls(delta_from_dict(data["delta"]), parse_timezone(data.get("timezone", "UTC")))
