"""Trigger timetables: a run at each tick, with the tick as its logical date (Airflow 3 style).

Used for Airflow-3-compatible DAGs (``create_timetable(..., data_intervals=False)``) or when a
DAG passes one explicitly. A run is due at each tick ``T``; its data interval is
``[T - interval, T]`` and its logical date is the interval start, so with the default
``interval`` of zero the logical date, both interval ends and ``run_after`` all equal ``T``.

Scheduling rules (shared by both classes):

* ``catchup=True``: the first tick at or after ``start_date``, then every tick after the
  previous run.
* ``catchup=False``: the latest of the most recent tick at or before now, the tick after the
  previous run, and the first tick at or after ``start_date``. Missed ticks are skipped but the
  most recent one still runs.
* ``end_date``: no run whose tick is after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any, ClassVar

from tradewind.errors import InvalidArgumentError
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

__all__ = ["CronTriggerTimetable", "DeltaTriggerTimetable"]

_ZERO = timedelta(0)
_MIN_BUFFER = timedelta(minutes=5)


def _check_interval(interval: Delta) -> Delta:
    if isinstance(interval, timedelta) and interval == _ZERO:
        return interval
    return check_delta(interval)


class _TriggerTimetable(Timetable):
    """Next-run logic shared by the cron and delta trigger timetables."""

    def __init__(self, timezone: str | tzinfo, interval: Delta) -> None:
        self.timezone = parse_timezone(timezone)
        self.interval = _check_interval(interval)

    def _grid(self, anchor: datetime | None) -> Grid:
        raise NotImplementedError

    def _first_without_start(self, grid: Grid, now: datetime) -> datetime | None:
        """The first tick to run for a DAG without start_date."""
        return grid.align_down(now)

    def _info(self, tick: datetime) -> DagRunInfo:
        start = (
            tick if self.interval == _ZERO else shift(tick, self.interval, self.timezone, sign=-1)
        )
        return DagRunInfo.interval(start, tick)

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        """The next tick to run (see the module docstring for the rules)."""
        now = to_utc(now)
        grid = self._grid(restriction.earliest)
        first = None if restriction.earliest is None else grid.align_up(restriction.earliest)
        candidates: list[datetime | None] = [first]
        if last_automated_data_interval is not None:
            candidates.append(grid.next_after(last_automated_data_interval.end))
        elif restriction.earliest is None:
            candidates.append(self._first_without_start(grid, now))
        if not restriction.catchup:
            candidates.append(grid.align_down(now))
        present = [c for c in candidates if c is not None]
        if not present:
            return None
        tick = max(present)
        if restriction.latest is not None and tick > restriction.latest:
            return None
        return self._info(tick)

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """``[run_after - interval, run_after]``."""
        at = to_utc(run_after)
        return self._info(at).data_interval


@register_timetable
class CronTriggerTimetable(_TriggerTimetable):
    """A run at each tick of a cron expression; logical date = tick (with the default interval).

    Args:
        cron: a cron expression or preset.
        timezone: the timezone whose wall clock the expression describes.
        interval: the length of each run's data interval, ending at the tick (default zero).
        run_immediately: for a DAG without start_date, whether the first run is the latest
            past tick (True), the next tick (False, the default), the latest past tick if it
            was at most this long ago (a timedelta), or if it was at most a tenth of the period
            or 5 minutes ago, whichever is longer (None).
    """

    type_name: ClassVar[str] = "cron_trigger"

    def __init__(
        self,
        cron: str,
        *,
        timezone: str | tzinfo = UTC,
        interval: Delta = _ZERO,
        run_immediately: bool | timedelta | None = False,
    ) -> None:
        self._spec = CronSpec(cron, timezone)
        super().__init__(self._spec.timezone, interval)
        if not (run_immediately is None or isinstance(run_immediately, (bool, timedelta))):
            raise InvalidArgumentError(
                "run_immediately must be True, False, None or a timedelta, "
                f"not {type(run_immediately).__name__}",
                argument="run_immediately",
                owner="CronTriggerTimetable",
            )
        self.run_immediately = run_immediately

    @property
    def expression(self) -> str:
        """The expression as given (a preset stays a preset)."""
        return self._spec.expression

    def _grid(self, anchor: datetime | None) -> Grid:
        return self._spec.grid

    def _first_without_start(self, grid: Grid, now: datetime) -> datetime | None:
        past = grid.align_down(now)
        upcoming = grid.align_up(now)
        if past is None or self.run_immediately is False:
            return upcoming
        if self.run_immediately is True or past == now:
            return past
        if isinstance(self.run_immediately, timedelta):
            buffer = self.run_immediately
        else:
            following = grid.next_after(past)
            period = (following - past) if following is not None else _ZERO
            buffer = max(period / 10, _MIN_BUFFER)
        return past if now - past <= buffer else upcoming

    @property
    def summary(self) -> str:
        """The cron expression (presets expanded)."""
        return self._spec.cron

    @property
    def description(self) -> str:
        """A sentence for the UI."""
        return f"At each tick of '{self._spec.cron}' ({tz_name(self.timezone)})."

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "cron_trigger", "expression", "timezone", "interval", "run_immediately"}``."""
        run_immediately: Any = self.run_immediately
        if isinstance(run_immediately, timedelta):
            run_immediately = delta_to_dict(run_immediately)
        return {
            "type": self._registered_name(),
            "expression": self.expression,
            "timezone": tz_name(self.timezone),
            "interval": delta_to_dict(self.interval),
            "run_immediately": run_immediately,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CronTriggerTimetable:
        """Read back :meth:`to_dict` output."""
        run_immediately = data.get("run_immediately", False)
        if isinstance(run_immediately, Mapping):
            run_immediately = delta_from_dict(dict(run_immediately))
        interval = data.get("interval")
        return cls(
            data["expression"],
            timezone=parse_timezone(data.get("timezone", "UTC")),
            interval=delta_from_dict(dict(interval)) if interval else _ZERO,
            run_immediately=run_immediately,
        )


@register_timetable
class DeltaTriggerTimetable(_TriggerTimetable):
    """A run every ``delta``, on a grid anchored at ``start_date``; logical date = tick.

    Without a start_date the grid lines up with the Unix epoch (timedelta) or with 1 January
    1970 00:00 in ``timezone`` (relativedelta), and the first run is the latest past tick.

    Args:
        delta: a positive timedelta or relativedelta.
        timezone: the timezone for calendar arithmetic.
        interval: the length of each run's data interval, ending at the tick (default zero).
    """

    type_name: ClassVar[str] = "delta_trigger"

    def __init__(
        self, delta: Delta, *, timezone: str | tzinfo = UTC, interval: Delta = _ZERO
    ) -> None:
        self.delta = check_delta(delta)
        super().__init__(timezone, interval)

    def _grid(self, anchor: datetime | None) -> Grid:
        return DeltaGrid(self.delta, self.timezone, anchor)

    @property
    def summary(self) -> str:
        """``"every 1 day, 0:00:00"``."""
        return f"every {format_delta(self.delta)}"

    @property
    def description(self) -> str:
        """A sentence for the UI."""
        return f"Every {format_delta(self.delta)} from the start date on."

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "delta_trigger", "delta", "timezone", "interval"}``."""
        return {
            "type": self._registered_name(),
            "delta": delta_to_dict(self.delta),
            "timezone": tz_name(self.timezone),
            "interval": delta_to_dict(self.interval),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeltaTriggerTimetable:
        """Read back :meth:`to_dict` output."""
        interval = data.get("interval")
        return cls(
            delta_from_dict(dict(data["delta"])),
            timezone=parse_timezone(data.get("timezone", "UTC")),
            interval=delta_from_dict(dict(interval)) if interval else _ZERO,
        )
