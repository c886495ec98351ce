"""Column types that behave the same on SQLite and PostgreSQL.

* :class:`UTCDateTime` stores every datetime as UTC and always returns an aware UTC datetime
  (SQLite has no time zone support and would hand back naive values).
* :class:`StateEnum` stores a ``str`` enum (``TaskState``, ``RunState``) as its plain value and
  returns the enum member, so the database needs no enum type and adding a state needs no
  migration of a type.
* :data:`JsonType` is JSON whose Python ``None`` is SQL ``NULL``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["JsonType", "StateEnum", "UTCDateTime", "as_utc"]

#: JSON with ``None`` stored as SQL NULL (not the JSON text ``null``).
JsonType = sa.JSON(none_as_null=True)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back as an aware UTC ``datetime``.

    Naive values given to it are taken to be UTC. On PostgreSQL the column is
    ``timestamp with time zone``; on SQLite the text of the naive UTC time, so comparisons in
    SQL order correctly.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        utc = as_utc(value)
        if dialect.name == "sqlite":
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value)


class StateEnum(TypeDecorator[Any]):
    """A ``StrEnum`` stored as its value in a ``VARCHAR(length)`` column."""

    impl = sa.String(32)
    cache_ok = True

    def __init__(self, enum_class: type[StrEnum], length: int = 32) -> None:
        super().__init__(length)
        self.enum_class = enum_class

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        # Accepting plain strings keeps raw SQL and JSON input easy, but only valid ones.
        return self.enum_class(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return self.enum_class(value)

    @property
    def python_type(self) -> type[Any]:
        return self.enum_class
