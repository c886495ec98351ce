"""Fixed and calendar steps (timedelta / relativedelta) as grids of instants, and their storage.

Rules:

* A ``timedelta`` is elapsed time: ``timedelta(days=1)`` is always 24 hours, across DST changes
  too. Its grid is ``anchor + k * delta`` for every integer ``k``.
* A ``relativedelta`` with calendar parts (years, months, days, or absolute fields such as
  ``day=1``) is applied to the wall clock of the timetable's timezone, so
  ``relativedelta(months=1)`` from 1 January 00:00 Amsterdam stays at 00:00 on the 1st all year.
  Its grid is ``anchor + k * delta`` computed from the anchor (never step by step, so 31 January
  gives 29 February, 31 March, 30 April … rather than drifting to the 29th). Wall-clock times
  skipped by DST run that much later; repeated ones run at their first occurrence.
* A ``relativedelta`` with only hours, minutes, seconds or microseconds is elapsed time, like a
  timedelta.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from tradewind.sdk.schedule import is_relativedelta
from tradewind.sdk.timezone import UTC

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""The anchor of a delta grid when the DAG has no start_date."""

_RELATIVE_FIELDS = ("years", "months", "days", "leapdays", "hours", "minutes", "seconds")
_RELATIVE_FIELDS_ALL = (*_RELATIVE_FIELDS, "microseconds")
_ABSOLUTE_FIELDS = ("year", "month", "day", "hour", "minute", "second", "microsecond")
_MAX_STEPS = 100_000

Delta = Any  # timedelta | dateutil.relativedelta.relativedelta (dateutil is imported lazily)


def fixed_duration(delta: Delta) -> timedelta | None:
    """``delta`` as a timedelta when it is a fixed length of elapsed time, else None."""
    if isinstance(delta, timedelta):
        return delta
    if any(getattr(delta, f) for f in ("years", "months", "days", "leapdays")):
        return None
    if delta.weekday is not None or any(getattr(delta, f) is not None for f in _ABSOLUTE_FIELDS):
        return None
    return timedelta(
        hours=delta.hours,
        minutes=delta.minutes,
        seconds=delta.seconds,
        microseconds=delta.microseconds,
    )


def _resolve(wall: datetime, tz: tzinfo) -> datetime:
    # fold=0: a skipped wall time moves forward by the gap, a repeated one takes its first
    # occurrence (the same rules as cron ticks).
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def shift(t: datetime, delta: Delta, tz: tzinfo, *, sign: int = 1) -> datetime:
    """``t`` moved by ``delta`` (backwards when ``sign`` is -1), following the module rules."""
    fixed = fixed_duration(delta)
    if fixed is not None:
        return (t + fixed * sign).astimezone(UTC)
    wall = t.astimezone(tz).replace(tzinfo=None)
    return _resolve(wall + delta if sign > 0 else wall - delta, tz)


class DeltaGrid:
    """The ticks ``anchor + k * delta`` (integer ``k``) as aware UTC datetimes."""

    def __init__(self, delta: Delta, tz: tzinfo, anchor: datetime | None) -> None:
        self.delta = delta
        self.tz = tz
        self._fixed = fixed_duration(delta)
        if anchor is None:
            # Without a start_date: fixed steps line up with the Unix epoch, calendar steps with
            # midnight of 1 January 1970 on the timezone's wall clock.
            self._anchor = EPOCH if self._fixed is not None else _resolve(datetime(1970, 1, 1), tz)
        else:
            self._anchor = anchor.astimezone(UTC)
        self._anchor_wall = self._anchor.astimezone(tz).replace(tzinfo=None)

    def tick(self, k: int) -> datetime:
        """The ``k``-th tick (tick 0 is the anchor for fixed steps)."""
        if self._fixed is not None:
            return self._anchor + self._fixed * k
        return _resolve(self._anchor_wall + self.delta * k, self.tz)

    def _floor_index(self, t: datetime) -> int:
        """The largest ``k`` with ``tick(k) <= t``."""
        if self._fixed is not None:
            return (t - self._anchor) // self._fixed
        base = self.tick(0)
        average = (self.tick(12) - base) / 12
        k = (t - base) // average if average > timedelta(0) else 0
        for _ in range(_MAX_STEPS):
            if self.tick(k) > t:
                k -= 1
            elif self.tick(k + 1) <= t:
                k += 1
            else:
                break
        return k

    def align_down(self, t: datetime) -> datetime:
        """``t`` if it is a tick, else the previous tick."""
        return self.tick(self._floor_index(t))

    def align_up(self, t: datetime) -> datetime:
        """``t`` if it is a tick, else the next tick."""
        k = self._floor_index(t)
        low = self.tick(k)
        return low if low == t else self.tick(k + 1)

    def next_after(self, t: datetime) -> datetime:
        """The first tick strictly after ``t``."""
        return self.tick(self._floor_index(t) + 1)

    def prev_before(self, t: datetime) -> datetime:
        """The last tick strictly before ``t``."""
        k = self._floor_index(t)
        low = self.tick(k)
        return low if low < t else self.tick(k - 1)


def delta_to_dict(delta: Delta) -> dict[str, Any]:
    """Store a timedelta or relativedelta as a JSON-compatible dict."""
    if isinstance(delta, timedelta):
        return {
            "kind": "timedelta",
            "days": delta.days,
            "seconds": delta.seconds,
            "microseconds": delta.microseconds,
        }
    if not is_relativedelta(delta):
        raise TypeError(f"expected a timedelta or relativedelta, not {type(delta).__name__}")
    data: dict[str, Any] = {"kind": "relativedelta"}
    for name in _RELATIVE_FIELDS_ALL:
        value = getattr(delta, name)
        if value:
            data[name] = value
    for name in _ABSOLUTE_FIELDS:
        value = getattr(delta, name)
        if value is not None:
            data[name] = value
    if delta.weekday is not None:
        data["weekday"] = [delta.weekday.weekday, delta.weekday.n]
    return data


def delta_from_dict(data: dict[str, Any]) -> Delta:
    """Read back :func:`delta_to_dict` output."""
    kind = data.get("kind")
    if kind == "timedelta":
        return timedelta(
            days=data.get("days", 0),
            seconds=data.get("seconds", 0),
            microseconds=data.get("microseconds", 0),
        )
    if kind == "relativedelta":
        from dateutil.relativedelta import relativedelta, weekday

        kwargs = {
            name: data[name] for name in (*_RELATIVE_FIELDS_ALL, *_ABSOLUTE_FIELDS) if name in data
        }
        if "weekday" in data:
            day, n = data["weekday"]
            kwargs["weekday"] = weekday(day, n)
        return relativedelta(**kwargs)
    raise ValueError(f"unknown delta kind {kind!r}")
