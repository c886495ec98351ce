"""What a DAG's ``schedule`` may be, checked when the DAG is defined.

The DAG calls :func:`validate_schedule` and reports the message as one of its problems; the
timetable is built later from the same value (``tradewind.timetables.create_timetable``). This
module never imports the timetables package, so defining a DAG stays cheap.

Accepted values:

* ``None`` — never scheduled; runs start only when triggered (manually, by the API, or by assets).
* ``"@once"`` — one run, at ``start_date``.
* ``"@continuous"`` — a new run as soon as the previous one ends, one at a time.
* a preset from :data:`CRON_PRESETS` (``"@daily"`` …) or a cron expression (``"30 6 * * 1-5"``).
* a positive ``datetime.timedelta`` or ``dateutil.relativedelta.relativedelta``.
* an :class:`~tradewind.sdk.assets.Asset`, an asset condition (``a | b``, ``a & b``), or a
  non-empty list or tuple of them (meaning all of them).
* a timetable object (anything with ``next_dagrun_info`` and ``infer_manual_data_interval``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

__all__ = [
    "CONTINUOUS",
    "CRON_PRESETS",
    "ONCE",
    "cron_expression",
    "describe_schedule",
    "format_delta",
    "is_relativedelta",
    "is_timetable",
    "validate_schedule",
]

ONCE = "@once"
"""Schedule value for a single run at ``start_date``."""

CONTINUOUS = "@continuous"
"""Schedule value for back-to-back runs, one at a time."""

CRON_PRESETS: Mapping[str, str] = MappingProxyType(
    {
        "@hourly": "0 * * * *",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *",
        "@quarterly": "0 0 1 */3 *",
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
    }
)
"""Cron presets and the cron expression each one stands for."""

# Dates a relativedelta is tried on to decide whether it always moves forward: month ends, a
# leap day and a year end are where calendar arithmetic clamps or wraps.
_PROBE_DATES = (
    datetime(2001, 1, 1),
    datetime(2001, 1, 31, 12),
    datetime(2000, 2, 29),
    datetime(2001, 6, 30, 23, 59, 59),
    datetime(2001, 12, 31, 23, 59, 59),
)


def cron_expression(schedule: str) -> str:
    """The cron expression for a preset or cron string (presets are expanded, spaces trimmed)."""
    text = schedule.strip()
    return CRON_PRESETS.get(text, text)


def is_relativedelta(value: object) -> bool:
    """Whether ``value`` is a ``dateutil.relativedelta.relativedelta``."""
    if type(value).__module__ != "dateutil.relativedelta":
        return False  # avoids importing dateutil for every other value
    from dateutil.relativedelta import relativedelta

    return isinstance(value, relativedelta)


def is_timetable(value: object) -> bool:
    """Whether ``value`` looks like a timetable instance (duck-typed, classes excluded)."""
    return (
        not isinstance(value, type)
        and callable(getattr(value, "next_dagrun_info", None))
        and callable(getattr(value, "infer_manual_data_interval", None))
    )


def _cron_problem(text: str) -> str | None:
    from croniter import CroniterBadDateError, croniter

    try:
        itr = croniter(text, datetime(2000, 1, 1))
    except Exception as exc:  # croniter raises several unrelated types for bad input
        return f"{text!r} is not a valid cron expression: {exc}"
    try:
        itr.get_next(datetime)
    except CroniterBadDateError:
        return f"{text!r} is a cron expression that never matches a date"
    return None


def _string_problem(schedule: str) -> str | None:
    text = schedule.strip()
    if not text:
        return "schedule is an empty string; use None for no schedule"
    if text in (ONCE, CONTINUOUS) or text in CRON_PRESETS:
        return None
    if text.startswith("@"):
        import difflib

        known = [ONCE, CONTINUOUS, *CRON_PRESETS]
        close = difflib.get_close_matches(text, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{schedule!r} is not a known schedule preset (known: {', '.join(known)}){hint}"
    return _cron_problem(text)


def _relativedelta_problem(delta: Any) -> str | None:
    try:
        forward = all(probe + delta > probe for probe in _PROBE_DATES)
    except (ValueError, OverflowError) as exc:
        return f"schedule {delta!r} cannot be applied to dates: {exc}"
    if not forward:
        return f"schedule {delta!r} must be positive (move every date forward)"
    return None


def _assets_problem(items: list[Any] | tuple[Any, ...]) -> str | None:
    from tradewind.sdk.assets import BaseAsset

    if not items:
        return "schedule is an empty list; use None for no schedule, or list at least one Asset"
    for position, item in enumerate(items):
        if not isinstance(item, BaseAsset):
            return (
                f"schedule list item {position} is {type(item).__name__} {item!r}; "
                "a list schedule may only hold Assets, AssetAliases or asset conditions"
            )
    return None


def validate_schedule(schedule: object) -> str | None:
    """Return what is wrong with a ``schedule`` value, or None when it is fine.

    Example::

        >>> validate_schedule("0 0 * *")
        "'0 0 * *' is not a valid cron expression: Exactly 5, 6 or 7 columns ..."
        >>> validate_schedule("@daily") is None
        True
    """
    from tradewind.sdk.assets import BaseAsset

    if schedule is None:
        return None
    if isinstance(schedule, str):
        return _string_problem(schedule)
    if isinstance(schedule, timedelta):
        if schedule <= timedelta(0):
            return f"schedule timedelta must be positive, got {schedule}"
        return None
    if is_relativedelta(schedule):
        return _relativedelta_problem(schedule)
    if isinstance(schedule, BaseAsset):
        return None
    if isinstance(schedule, (list, tuple)):
        return _assets_problem(schedule)
    if isinstance(schedule, type) and hasattr(schedule, "next_dagrun_info"):
        return f"schedule is the timetable class {schedule.__name__}; pass an instance instead"
    if is_timetable(schedule):
        return None
    return (
        "schedule must be None, '@once', '@continuous', a cron preset or expression, "
        "a timedelta or relativedelta, assets, or a timetable; "
        f"got {type(schedule).__name__} {schedule!r}"
    )


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if abs(count) == 1 else f"{count} {unit}s"


def format_delta(delta: Any) -> str:
    """A readable length for a timedelta (``"1 day, 0:00:00"``) or relativedelta (``"1 month"``)."""
    if isinstance(delta, timedelta):
        return str(delta)
    if not is_relativedelta(delta):
        return repr(delta)
    parts = [
        _plural(value, unit)
        for unit, value in (
            ("year", delta.years),
            ("month", delta.months),
            ("day", delta.days),
            ("hour", delta.hours),
            ("minute", delta.minutes),
            ("second", delta.seconds),
            ("microsecond", delta.microseconds),
        )
        if value
    ]
    parts.extend(
        f"{field}={getattr(delta, field)}"
        for field in ("year", "month", "day", "weekday", "hour", "minute", "second", "microsecond")
        if getattr(delta, field) is not None
    )
    return ", ".join(parts) or "0"


def describe_schedule(schedule: object) -> str:
    """A short text for showing a schedule in lists and the UI.

    ``None`` gives ``"None"``; presets and cron give the cron expression (``"0 0 * * *"``);
    ``"@once"``/``"@continuous"`` themselves; deltas ``"every 1 day, 0:00:00"``; assets
    ``"asset: a | b"``; a timetable its ``summary``. An invalid value gives its ``repr``.
    """
    from tradewind.sdk.assets import BaseAsset, coerce_asset_expression

    if schedule is None:
        return "None"
    if isinstance(schedule, str):
        return cron_expression(schedule)
    if isinstance(schedule, timedelta) or is_relativedelta(schedule):
        return f"every {format_delta(schedule)}"
    if isinstance(schedule, BaseAsset) or (
        isinstance(schedule, (list, tuple))
        and schedule
        and all(isinstance(item, BaseAsset) for item in schedule)
    ):
        return f"asset: {coerce_asset_expression(schedule).describe()}"
    if is_timetable(schedule):
        summary = getattr(schedule, "summary", None)
        return summary if isinstance(summary, str) else type(schedule).__name__
    return repr(schedule)
