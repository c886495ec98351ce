"""Small helpers for decision texts and times (private to the decisions package)."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; naive datetimes mean UTC throughout Tradewind."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_utc_or_none(value: datetime | None) -> datetime | None:
    """:func:`as_utc`, passing None through."""
    return None if value is None else as_utc(value)


def plural(count: int, word: str, many: str | None = None) -> str:
    """``"1 task"``, ``"3 tasks"`` (``many`` for irregular plurals)."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def format_when(when: datetime, now: datetime | None = None) -> str:
    """A moment for reason texts: ``"12:00:05 UTC"`` on the same UTC day as ``now``, with the
    date otherwise, followed by how far away it is (``"(in 4s)"``) when ``now`` is given."""
    when_utc = as_utc(when)
    if now is None:
        return when_utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    now_utc = as_utc(now)
    fmt = "%H:%M:%S UTC" if when_utc.date() == now_utc.date() else "%Y-%m-%d %H:%M:%S UTC"
    seconds = (when_utc - now_utc).total_seconds()
    distance = _duration(abs(seconds))
    relative = f"in {distance}" if seconds >= 0 else f"{distance} ago"
    return f"{when_utc.strftime(fmt)} ({relative})"


def _duration(seconds: float) -> str:
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"
