"""Macros available in templates as ``macros.<name>`` (Airflow-compatible names).

::

    {{ macros.ds_add(ds, 7) }}                     -> "2024-01-09" for ds "2024-01-02"
    {{ macros.ds_format(ds, "%Y-%m-%d", "%d/%m") }}
    {{ macros.datetime.now() }}  {{ macros.timedelta(hours=1) }}
    {{ macros.json.dumps(params) }}  {{ macros.uuid.uuid4() }}  {{ macros.random() }}
    {{ macros.dateutil.relativedelta.relativedelta(months=1) }}

Importing this module is cheap: ``json``, ``uuid``, ``random``, ``dateutil`` and pendulum are
imported the first time they are used. The date formatting helpers used for the ``ds``/``ts``
context keys and filters live here too, so the context and the filters always agree.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import json
    import uuid
    from random import random

    import dateutil

__all__ = [
    "MacrosNamespace",
    "datetime",
    "datetime_diff_for_humans",
    "dateutil",
    "ds_add",
    "ds_format",
    "format_ds",
    "format_ds_nodash",
    "format_ts",
    "format_ts_nodash",
    "format_ts_nodash_with_tz",
    "json",
    "macros",
    "random",
    "time",
    "timedelta",
    "uuid",
]

datetime = _dt.datetime
timedelta = _dt.timedelta

# What `macros.<name>` exposes; the lazy ones are resolved by the module `__getattr__` below.
MACRO_NAMES: tuple[str, ...] = (
    "datetime",
    "datetime_diff_for_humans",
    "dateutil",
    "ds_add",
    "ds_format",
    "json",
    "random",
    "time",
    "timedelta",
    "uuid",
)


def ds_add(ds: str, days: int) -> str:
    """Add ``days`` (may be negative) to a ``YYYY-MM-DD`` date string.

    >>> ds_add("2024-01-30", 5)
    '2024-02-04'
    """
    if not days:
        return str(ds)
    try:
        parsed = _dt.datetime.strptime(str(ds), "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"ds_add expects a date string like 2024-01-31, got {ds!r}")
    return (parsed + _dt.timedelta(days=days)).strftime("%Y-%m-%d")


def ds_format(ds: str, input_format: str, output_format: str) -> str:
    """Re-format a date string from ``input_format`` to ``output_format`` (strftime codes).

    >>> ds_format("2024-01-05", "%Y-%m-%d", "%m/%d/%y")
    '01/05/24'
    """
    try:
        parsed = _dt.datetime.strptime(str(ds), input_format)
    except ValueError as exc:
        raise ValueError(f"ds_format cannot read {ds!r} with format {input_format!r}: {exc}")
    return parsed.strftime(output_format)


def datetime_diff_for_humans(dt: _dt.datetime, since: _dt.datetime | None = None) -> str:
    """A human-readable difference such as ``"2 hours ago"`` or ``"3 days after"``.

    Compares ``dt`` with ``since``, or with now when ``since`` is None. Naive datetimes are UTC.
    """
    import pendulum

    other = pendulum.instance(since) if since is not None else None
    return pendulum.instance(dt).diff_for_humans(other)


# -- date formats shared by the context keys and the template filters ----------------------


def format_ds(value: _dt.datetime | None) -> str | None:
    """``YYYY-MM-DD`` (the ``ds`` key and filter); None stays None."""
    return None if value is None else value.strftime("%Y-%m-%d")


def format_ds_nodash(value: _dt.datetime | None) -> str | None:
    """``YYYYMMDD`` (the ``ds_nodash`` key and filter); None stays None."""
    return None if value is None else value.strftime("%Y%m%d")


def format_ts(value: _dt.datetime | None) -> str | None:
    """ISO 8601 with offset, e.g. ``2024-01-02T00:00:00+00:00`` (``ts``); None stays None."""
    return None if value is None else value.isoformat()


def format_ts_nodash(value: _dt.datetime | None) -> str | None:
    """``YYYYMMDDTHHMMSS`` (``ts_nodash``); None stays None."""
    return None if value is None else value.strftime("%Y%m%dT%H%M%S")


def format_ts_nodash_with_tz(value: _dt.datetime | None) -> str | None:
    """``ts`` without ``-`` and ``:``, e.g. ``20240102T000000+0000``; None stays None."""
    return None if value is None else value.isoformat().replace("-", "").replace(":", "")


def _load_lazy(name: str) -> Any:
    if name == "json":
        import json

        return json
    if name == "uuid":
        import uuid

        return uuid
    if name == "random":
        from random import random

        return random
    if name == "dateutil":
        # Templates reach submodules as attributes (macros.dateutil.relativedelta...), which
        # only works once those submodules are imported.
        import dateutil
        import dateutil.parser
        import dateutil.relativedelta
        import dateutil.rrule
        import dateutil.tz

        return dateutil
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __getattr__(name: str) -> Any:
    value = _load_lazy(name)
    globals()[name] = value  # later lookups skip this hook
    return value


class MacrosNamespace:
    """The ``macros`` object of the template context: ``macros.ds_add(...)`` and friends.

    ``extra`` adds (or overrides) macros, e.g. ones contributed by plugins::

        macros.with_extra(fiscal_quarter=my_function)
    """

    __slots__ = ("_extra",)

    def __init__(self, extra: Mapping[str, Any] | None = None) -> None:
        self._extra: dict[str, Any] = dict(extra or {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._extra:
            return self._extra[name]
        if name in MACRO_NAMES:
            return getattr(sys.modules[__name__], name)
        raise AttributeError(f"macros has no attribute {name!r}")

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*MACRO_NAMES, *self._extra}))

    def __dir__(self) -> list[str]:
        return list(self)

    def with_extra(self, **more: Any) -> MacrosNamespace:
        """A new namespace with the same macros plus ``more``."""
        return MacrosNamespace({**self._extra, **more})

    def __repr__(self) -> str:
        return f"<macros: {', '.join(self)}>"


macros = MacrosNamespace()
"""The shared namespace placed in every template context as ``macros``."""
