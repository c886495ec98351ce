"""Timezone helpers: one way to read, name and convert datetimes across Tradewind.

Rules the rest of the code relies on:

* Every datetime Tradewind stores or compares is *aware*. A naive datetime means the default
  timezone (UTC unless the caller says otherwise) and is made aware on the way in by
  :func:`coerce_datetime`.
* Timezones are stored by name (:func:`tz_name`): an IANA key such as ``"Europe/Amsterdam"``,
  ``"UTC"``, or a fixed offset such as ``"+05:30"``. :func:`timezone_from_name` reads the name
  back, so ``timezone_from_name(tz_name(tz))`` behaves exactly like ``tz``.
* :data:`UTC` is the standard library's ``datetime.UTC``. Only the standard library
  (``zoneinfo``) is used. Pendulum objects are accepted because
  pendulum's ``DateTime`` is a ``datetime`` subclass and its timezones are ``tzinfo`` objects;
  they are turned into plain standard-library objects so arithmetic behaves the same everywhere.

Example::

    >>> coerce_datetime("2024-01-01")
    datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> tz_name(parse_timezone("Europe/Amsterdam"))
    'Europe/Amsterdam'
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tradewind.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pendulum

__all__ = [
    "UTC",
    "coerce_datetime",
    "parse_timezone",
    "timezone_from_name",
    "to_pendulum",
    "to_utc",
    "tz_name",
    "utcnow",
]

_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})(?::?(\d{2}))?$")
_ZONEINFO_DIR_RE = re.compile(r"^.*/zoneinfo/")


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime.

    Only code at the edge (the scheduler loop, the CLI) should call this; everything that decides
    something takes ``now`` as an argument so tests can inject it.
    """
    return datetime.now(UTC)


def _fixed_offset_name(offset: timedelta) -> str:
    if offset == timedelta(0):
        return "UTC"
    sign = "-" if offset < timedelta(0) else "+"
    total = abs(offset)
    if total.microseconds:
        raise InvalidArgumentError(
            f"cannot name the fixed offset {offset!r}: sub-second offsets are not supported",
            argument="timezone",
        )
    hours, rest = divmod(total.days * 86400 + total.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    name = f"{sign}{hours:02d}:{minutes:02d}"
    return f"{name}:{seconds:02d}" if seconds else name


def _fixed(offset: timedelta) -> timezone:
    return UTC if offset == timedelta(0) else timezone(offset)


def _zone_key(tz: tzinfo) -> str | None:
    """Find the IANA key of a zone object from zoneinfo, pendulum, pytz or dateutil."""
    key = getattr(tz, "key", None)  # zoneinfo and pendulum
    if isinstance(key, str) and key:
        return key
    zone = getattr(tz, "zone", None)  # pytz
    if isinstance(zone, str) and zone:
        return zone
    filename = getattr(tz, "_filename", None)  # dateutil's tzfile keeps the path it was read from
    if isinstance(filename, str) and filename:
        return _ZONEINFO_DIR_RE.sub("", filename)
    return None


def _normalize_tzinfo(tz: tzinfo) -> tzinfo:
    """Turn any tzinfo into its standard-library equivalent when there is one."""
    if type(tz) is timezone:
        return _fixed(tz.utcoffset(None))
    if type(tz) is ZoneInfo:
        return UTC if tz.key == "UTC" else tz
    key = _zone_key(tz)
    if key is not None:
        if key == "UTC":
            return UTC
        try:
            return ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        offset = tz.utcoffset(None)
    except Exception:  # some third-party zones insist on a datetime
        offset = None
    if isinstance(offset, timedelta):
        # A zone without a key that answers without a datetime has one fixed offset.
        return _fixed(offset)
    return tz


def timezone_from_name(name: str) -> tzinfo:
    """Read a timezone name written by :func:`tz_name`.

    Accepts ``"UTC"`` (any case) or ``"Z"``, a fixed offset (``"+05:30"``, ``"-0800"``,
    ``"+05:30:15"``), or an IANA key (``"Europe/Amsterdam"``).

    Raises:
        InvalidArgumentError: the name is not a known timezone.
    """
    if not isinstance(name, str):
        raise InvalidArgumentError(
            f"a timezone name must be a string, not {type(name).__name__} {name!r}",
            argument="timezone",
        )
    text = name.strip()
    if text.upper() in ("UTC", "Z"):
        return UTC
    match = _OFFSET_RE.match(text)
    if match:
        sign, hours, minutes, seconds = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0))
        if offset >= timedelta(hours=24):
            raise InvalidArgumentError(
                f"unknown timezone {name!r}: a fixed offset must be less than 24 hours",
                argument="timezone",
            )
        return _fixed(-offset if sign == "-" else offset)
    try:
        zone = ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArgumentError(
            f"unknown timezone {name!r}: expected an IANA name such as 'Europe/Amsterdam', "
            f"'UTC', or a fixed offset such as '+05:30' ({exc})",
            argument="timezone",
        ) from None
    return _normalize_tzinfo(zone)


def parse_timezone(value: str | tzinfo) -> tzinfo:
    """Return a standard-library tzinfo for a timezone name or a tzinfo object.

    Names are read with :func:`timezone_from_name`. tzinfo objects from pendulum, pytz or
    dateutil are replaced by their ``zoneinfo`` / ``datetime.timezone`` equivalent when one
    exists, so that datetimes built from them compare and add the same way.

    Raises:
        InvalidArgumentError: an unknown name, or a value that is not a timezone at all.
    """
    if isinstance(value, str):
        return timezone_from_name(value)
    if isinstance(value, tzinfo):
        return _normalize_tzinfo(value)
    raise InvalidArgumentError(
        f"timezone must be a name such as 'Europe/Amsterdam' or a tzinfo, "
        f"not {type(value).__name__} {value!r}",
        argument="timezone",
    )


def tz_name(tz: tzinfo) -> str:
    """Return a name for ``tz`` that :func:`timezone_from_name` reads back.

    The name is the IANA key for named zones, ``"UTC"`` for UTC and every zero offset, and
    ``"+HH:MM"`` (``"+HH:MM:SS"`` when needed) for other fixed offsets.

    Raises:
        InvalidArgumentError: the timezone has no serializable name (for example a custom tzinfo
            whose offset changes over time and which has no IANA key).
    """
    normalized = _normalize_tzinfo(tz)
    if normalized is UTC:
        return "UTC"
    if isinstance(normalized, ZoneInfo):
        if normalized.key is None:
            raise InvalidArgumentError(
                f"timezone {tz!r} was read from a file and has no IANA key to store; "
                "create it with ZoneInfo('Area/City') instead",
                argument="timezone",
            )
        return normalized.key
    if isinstance(normalized, timezone):
        return _fixed_offset_name(normalized.utcoffset(None))
    raise InvalidArgumentError(
        f"timezone {tz!r} has no serializable name; use an IANA zone such as "
        "ZoneInfo('Europe/Amsterdam') or a fixed offset",
        argument="timezone",
    )


_default_timezone: tzinfo = UTC


def set_default_timezone(value: str | tzinfo) -> None:
    """Set the zone naive DAG dates are read in (``[core] default_timezone``; UTC by default).

    DAG processing and the task runtime call this from the settings before importing DAG files.
    """
    global _default_timezone
    _default_timezone = parse_timezone(value)


def get_default_timezone() -> tzinfo:
    """The zone naive DAG dates are read in."""
    return _default_timezone


def coerce_datetime(
    value: Any,
    default_tz: str | tzinfo = UTC,
    *,
    argument: str | None = None,
) -> datetime:
    """Return ``value`` as an aware standard-library datetime.

    * An aware datetime keeps its timezone (a pendulum ``DateTime`` becomes a plain datetime with
      the equivalent zoneinfo timezone).
    * A naive datetime is taken to be wall-clock time in ``default_tz``.
    * A date means midnight of that day in ``default_tz``.
    * A string is read as ISO 8601 (``"2024-01-01"``, ``"2024-01-01T06:00:00+02:00"``,
      ``"2024-01-01T06:00Z"``); without an offset it is in ``default_tz``.

    ``argument`` names the argument in error messages (for example ``"start_date"``).

    Raises:
        InvalidArgumentError: the value is of another type or the string is not ISO 8601.
    """
    label = argument or "value"
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            result = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidArgumentError(
                f"{label} {value!r} is not an ISO 8601 date or date-time "
                "(for example '2024-01-31' or '2024-01-31T06:00:00+00:00')",
                argument=argument,
            ) from None
    else:
        raise InvalidArgumentError(
            f"{label} must be a datetime, a date or an ISO 8601 string, "
            f"not {type(value).__name__} {value!r}",
            argument=argument,
        )
    if result.tzinfo is None or result.utcoffset() is None:
        return datetime(
            result.year,
            result.month,
            result.day,
            result.hour,
            result.minute,
            result.second,
            result.microsecond,
            tzinfo=parse_timezone(default_tz),
            fold=result.fold,
        )
    zone = _normalize_tzinfo(result.tzinfo)
    if type(result) is datetime:
        return result if zone is result.tzinfo else result.replace(tzinfo=zone)
    # A subclass (pendulum): rebuild as a plain datetime so arithmetic follows the standard
    # library's rules everywhere.
    return datetime(
        result.year,
        result.month,
        result.day,
        result.hour,
        result.minute,
        result.second,
        result.microsecond,
        tzinfo=zone,
        fold=result.fold,
    )


def to_utc(value: Any, default_tz: str | tzinfo = UTC) -> datetime:
    """Return ``value`` (anything :func:`coerce_datetime` accepts) as an aware UTC datetime."""
    return coerce_datetime(value, default_tz).astimezone(UTC)


def to_pendulum(value: Any, default_tz: str | tzinfo = UTC) -> pendulum.DateTime:
    """Return ``value`` as a pendulum ``DateTime`` on the same instant and in the same timezone.

    For template contexts and Airflow-compatible code that expects pendulum objects. pendulum is
    imported only when this is called.
    """
    import pendulum

    dt = coerce_datetime(value, default_tz)
    return pendulum.instance(dt, tz=tz_name(dt.tzinfo or UTC))
