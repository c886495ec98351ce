"""Cron ticks as instants, evaluated on the wall clock of a timezone.

A cron expression describes wall-clock times ("02:30 every day"). Daylight saving time makes
some wall-clock times happen twice and others not at all, so turning ticks into instants needs
rules. Tradewind follows classic cron:

* An expression that fires every hour (its hour field covers all 24 hours, like
  ``0 * * * *`` or ``*/15 * * * *``) follows the clock on the wall: it fires whenever the wall
  clock shows a matching time, so a repeated hour (fall back) fires twice and a skipped one
  (spring forward) not at all. It keeps firing every real hour.
* Any other expression describes a time of day. A tick in a skipped hour runs that much later
  (02:30 on a day that jumps from 02:00 to 03:00 becomes 03:30; ticks that land on the same
  instant count once), and a tick in a repeated hour runs once, at its first occurrence.

croniter does the cron matching on naive wall-clock times; this module turns those into aware
UTC instants and searches a little around DST changes, where the order of wall-clock times and
of instants differ. croniter is imported on first use.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from tradewind.sdk.timezone import UTC

_ONE_US = timedelta(microseconds=1)
_SPREAD_HOURS = 4  # how far either side of an instant to look for a change of UTC offset
_MAX_STEPS = 200_000  # a guard; real searches take a handful of steps


class CronGrid:
    """The ticks of a cron expression in a timezone, as aware UTC datetimes.

    Every method takes an aware datetime and returns an aware UTC datetime, or None when no
    such tick exists (only possible for expressions with a year field).
    """

    def __init__(self, expression: str, tz: tzinfo) -> None:
        from croniter import croniter

        self.expression = expression
        self.tz = tz
        hours = croniter(expression).expanded[1]
        self._every_hour = hours == ["*"] or len(set(hours)) == 24
        self._fixed = tz.utcoffset(None) is not None

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz).replace(tzinfo=None)

    def _spread(self, instant: datetime) -> timedelta:
        """How much the UTC offset varies within a few hours of ``instant`` (zero mostly)."""
        if self._fixed:
            return timedelta(0)
        offsets = [
            (instant + timedelta(hours=h)).astimezone(self.tz).utcoffset() or timedelta(0)
            for h in range(-_SPREAD_HOURS, _SPREAD_HOURS + 1)
        ]
        return max(offsets) - min(offsets)

    def instants(self, wall: datetime) -> tuple[datetime, ...]:
        """The instants (UTC) at which the naive wall-clock tick ``wall`` fires."""
        first = wall.replace(tzinfo=self.tz).astimezone(UTC)
        if self._fixed:
            return (first,)
        second = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if first == second:
            return (first,)
        if self._wall(first) != wall:
            # Skipped by a spring-forward change. fold=0 reads it with the offset from before
            # the change, which lands it just as much after the change.
            return () if self._every_hour else (first,)
        return (first, second) if self._every_hour else (first,)

    def _iterator(self, start: datetime) -> Any:
        from croniter import croniter

        return croniter(self.expression, start)

    def _search(self, t: datetime, *, forward: bool, inclusive: bool) -> datetime | None:
        from croniter import CroniterBadDateError

        t = t.astimezone(UTC)
        # Near a DST change a tick's wall-clock time and its instant are out of order by up to
        # the change itself, so start that much further back (forward) or ahead (backward).
        spread = self._spread(t)
        if forward:
            itr = self._iterator(self._wall(t) - spread - _ONE_US)
        else:
            itr = self._iterator(self._wall(t) + spread + _ONE_US)
        best: datetime | None = None
        stop: datetime | None = None
        for _ in range(_MAX_STEPS):
            try:
                wall = itr.get_next(datetime) if forward else itr.get_prev(datetime)
            except (CroniterBadDateError, OverflowError, ValueError):
                break
            if stop is not None and (wall > stop if forward else wall < stop):
                break
            for instant in self.instants(wall):
                if forward:
                    ok = instant > t or (inclusive and instant == t)
                    better = best is None or instant < best
                else:
                    ok = instant < t or (inclusive and instant == t)
                    better = best is None or instant > best
                if ok and better:
                    best = instant
                    margin = self._spread(best)
                    stop = self._wall(best) + margin if forward else self._wall(best) - margin
        return best

    def next_after(self, t: datetime) -> datetime | None:
        """The first tick strictly after ``t``."""
        return self._search(t, forward=True, inclusive=False)

    def prev_before(self, t: datetime) -> datetime | None:
        """The last tick strictly before ``t``."""
        return self._search(t, forward=False, inclusive=False)

    def align_up(self, t: datetime) -> datetime | None:
        """``t`` if it is a tick, else the next tick."""
        return self._search(t, forward=True, inclusive=True)

    def align_down(self, t: datetime) -> datetime | None:
        """``t`` if it is a tick, else the previous tick."""
        return self._search(t, forward=False, inclusive=True)
