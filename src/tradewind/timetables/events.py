"""A timetable from an explicit list of moments."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from tradewind.errors import InvalidArgumentError
from tradewind.sdk.timezone import to_utc
from tradewind.timetables.base import (
    DagRunInfo,
    DataInterval,
    TimeRestriction,
    Timetable,
    register_timetable,
)

__all__ = ["EventsTimetable"]


@register_timetable
class EventsTimetable(Timetable):
    """One run at each of the given moments; each run's data interval has zero length.

    * ``catchup=True``: every event at or after ``start_date``, in order.
    * ``catchup=False``: the latest event at or before now that comes after the previous run;
      if there is none, the next event after the previous run.
    * ``end_date``: events after it are ignored.

    Manual runs: with ``restrict_to_events`` a manual run with logical date ``D`` is snapped to
    the latest event at or before ``D`` (the first event if ``D`` is before all of them);
    otherwise it covers the instant ``D``.

    Args:
        event_dates: the moments (naive ones mean UTC); duplicates are dropped.
        restrict_to_events: snap manual runs to events (see above).
        presorted: accepted for compatibility; the dates are always sorted.
        description: a custom description for the UI.
    """

    type_name: ClassVar[str] = "events"
    periodic: ClassVar[bool] = False

    def __init__(
        self,
        event_dates: Iterable[datetime],
        restrict_to_events: bool = False,
        presorted: bool = False,
        description: str | None = None,
    ) -> None:
        self.event_dates: list[datetime] = sorted({to_utc(d) for d in event_dates})
        if not self.event_dates:
            raise InvalidArgumentError(
                "EventsTimetable needs at least one event date",
                argument="event_dates",
                owner="EventsTimetable",
            )
        self.restrict_to_events = bool(restrict_to_events)
        self._description = description

    @property
    def summary(self) -> str:
        """``"3 events"``."""
        count = len(self.event_dates)
        return f"{count} event" if count == 1 else f"{count} events"

    @property
    def description(self) -> str:
        """The custom description, or the first few events."""
        if self._description:
            return self._description
        shown = ", ".join(d.isoformat() for d in self.event_dates[:3])
        more = f" and {len(self.event_dates) - 3} more" if len(self.event_dates) > 3 else ""
        return f"At {shown}{more}."

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        """The next event to run (see the class docstring for the rules)."""
        events = self.event_dates
        low = 0
        if last_automated_data_interval is not None:
            low = bisect.bisect_right(events, last_automated_data_interval.end)
        if restriction.earliest is not None:
            low = max(low, bisect.bisect_left(events, restriction.earliest))
        high = len(events)
        if restriction.latest is not None:
            high = bisect.bisect_right(events, restriction.latest)
        if low >= high:
            return None
        index = low
        if not restriction.catchup:
            past = bisect.bisect_right(events, to_utc(now), low, high) - 1
            index = max(low, past)
        return DagRunInfo.exact(events[index])

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """The instant ``run_after``, or the event it snaps to (see the class docstring)."""
        at = to_utc(run_after)
        if not self.restrict_to_events:
            return DataInterval.exact(at)
        index = bisect.bisect_right(self.event_dates, at) - 1
        return DataInterval.exact(self.event_dates[max(index, 0)])

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "events", "event_dates": [iso, …], "restrict_to_events", "description"}``."""
        return {
            "type": self._registered_name(),
            "event_dates": [d.isoformat() for d in self.event_dates],
            "restrict_to_events": self.restrict_to_events,
            "description": self._description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventsTimetable:
        """Read back :meth:`to_dict` output."""
        return cls(
            [datetime.fromisoformat(d) for d in data["event_dates"]],
            restrict_to_events=data.get("restrict_to_events", False),
            description=data.get("description"),
        )
