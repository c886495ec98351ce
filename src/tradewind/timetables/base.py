"""The timetable interface and the small value types it speaks in.

A timetable answers one question for the scheduler: given the last scheduled run, the DAG's
start and end dates, catchup, and the current time, what is the next run? It also says which
data interval a manual run covers. Timetables are pure: they never read the clock (``now`` is
passed in) and never touch the database.

All datetimes going in may be naive (meaning UTC) or aware in any zone; all datetimes coming
out are aware and in UTC.

Custom timetables subclass :class:`Timetable`, implement ``next_dagrun_info`` and
``infer_manual_data_interval``, and (to be stored and read back) implement ``to_dict`` /
``from_dict`` and register with :func:`register_timetable`::

    @register_timetable
    class Workdays(Timetable):
        type_name = "acme.workdays"
        ...
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar, overload

from tradewind.errors import InvalidArgumentError, SerializationError
from tradewind.sdk.timezone import to_utc

__all__ = [
    "DagRunInfo",
    "DataInterval",
    "TimeRestriction",
    "Timetable",
    "register_timetable",
    "registered_timetables",
    "timetable_from_dict",
]


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)


@dataclass(frozen=True)
class DataInterval:
    """The period of data a DAG run covers, ``[start, end)``; both aware UTC datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", to_utc(self.start))
        object.__setattr__(self, "end", to_utc(self.end))
        if self.start > self.end:
            raise InvalidArgumentError(
                f"data interval start {self.start.isoformat()} is after its end "
                f"{self.end.isoformat()}",
                owner="DataInterval",
            )

    @classmethod
    def exact(cls, at: datetime) -> DataInterval:
        """A zero-length interval at ``at``."""
        return cls(at, at)


@dataclass(frozen=True)
class TimeRestriction:
    """Bounds on automated scheduling, taken from the DAG.

    Attributes:
        earliest: the DAG's ``start_date`` (None when it has none).
        latest: the DAG's ``end_date``; no run whose logical date is later is scheduled.
        catchup: whether missed intervals between ``earliest`` and now are all run.
    """

    earliest: datetime | None
    latest: datetime | None
    catchup: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "earliest", _utc_or_none(self.earliest))
        object.__setattr__(self, "latest", _utc_or_none(self.latest))


@dataclass(frozen=True)
class DagRunInfo:
    """What a timetable proposes for the next run.

    Attributes:
        run_after: the earliest time the run may start.
        data_interval: the period the run covers; ``logical_date`` is its start.
    """

    run_after: datetime
    data_interval: DataInterval

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_after", to_utc(self.run_after))

    @property
    def logical_date(self) -> datetime:
        """The run's logical date: the start of its data interval."""
        return self.data_interval.start

    @classmethod
    def interval(cls, start: datetime, end: datetime) -> DagRunInfo:
        """A run covering ``[start, end)``, due once the interval is over (``run_after = end``)."""
        return cls(run_after=end, data_interval=DataInterval(start, end))

    @classmethod
    def exact(cls, at: datetime) -> DagRunInfo:
        """A run for a point in time: zero-length interval at ``at``, due at ``at``."""
        return cls(run_after=at, data_interval=DataInterval.exact(at))


_TT = TypeVar("_TT", bound="Timetable")


class Timetable(abc.ABC):
    """Decides when a DAG runs and which data interval each run covers.

    Class attributes a subclass may override:

    * ``type_name``: the key under which :func:`timetable_from_dict` finds the class.
    * ``periodic``: runs follow a regular period (cron, delta).
    * ``can_be_scheduled``: the scheduler creates runs from it at all (False for "never" and
      asset-triggered timetables).
    * ``active_runs_limit``: the most runs that may be active at once because of the timetable
      itself (1 for continuous), or None.
    """

    type_name: ClassVar[str] = ""
    periodic: ClassVar[bool] = True
    can_be_scheduled: ClassVar[bool] = True
    active_runs_limit: ClassVar[int | None] = None

    @abc.abstractmethod
    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        """The next run to schedule, or None when there is none (any more).

        Args:
            last_automated_data_interval: the data interval of the latest scheduled (not
                manual) run, or None if there has been none.
            restriction: the DAG's start/end dates and catchup.
            now: the current time, injected by the caller.
        """

    @abc.abstractmethod
    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """The data interval of a manual run whose requested logical date is ``run_after``."""

    @property
    def summary(self) -> str:
        """A short text for lists, such as ``"0 0 * * *"``."""
        return type(self).__name__

    @property
    def description(self) -> str:
        """A sentence explaining when runs happen."""
        return self.summary

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict with a ``"type"`` key, read back by :func:`timetable_from_dict`.

        The default suits timetables without parameters; others override it and
        :meth:`from_dict`.
        """
        return {"type": self._registered_name()}

    @classmethod
    def from_dict(cls: type[_TT], data: Mapping[str, Any]) -> _TT:
        """Rebuild a timetable from :meth:`to_dict` output (the default takes no parameters)."""
        return cls()

    @classmethod
    def _registered_name(cls) -> str:
        """The class's registry key; fails for classes that are not registered themselves.

        A subclass of a registered class inherits its ``type_name``; storing it under that name
        would read back as the parent class and silently lose the subclass's behaviour.
        """
        if not cls.type_name or _REGISTRY.get(cls.type_name) is not cls:
            raise SerializationError(
                f"timetable class {cls.__module__}.{cls.__qualname__} is not registered; "
                "decorate it with @register_timetable to make it serializable"
            )
        return cls.type_name

    def _identity(self) -> str | None:
        """The stored form as text, or None for timetables that cannot be stored."""
        try:
            return json.dumps(self.to_dict(), sort_keys=True, default=str)
        except SerializationError:
            return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Timetable):
            return NotImplemented
        if self is other:
            return True
        mine = self._identity()
        return type(self) is type(other) and mine is not None and mine == other._identity()

    def __hash__(self) -> int:
        mine = self._identity()
        return id(self) if mine is None else hash(mine)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.summary!r}>"


_REGISTRY: dict[str, type[Timetable]] = {}


@overload
def register_timetable(cls: type[_TT], /) -> type[_TT]: ...


@overload
def register_timetable(
    cls: None = None, /, *, type_name: str | None = None
) -> Callable[[type[_TT]], type[_TT]]: ...


def register_timetable(
    cls: type[_TT] | None = None, /, *, type_name: str | None = None
) -> type[_TT] | Callable[[type[_TT]], type[_TT]]:
    """Make a timetable class known to :func:`timetable_from_dict`.

    The key is ``type_name`` if given, else the class's own ``type_name`` attribute, else
    ``"<module>.<qualname>"``. Registering a class again under its key replaces the old entry
    (so re-imported DAG files work); registering a different class under a taken key fails.

    Usable as ``@register_timetable`` or ``@register_timetable(type_name="acme.workdays")``.

    Raises:
        InvalidArgumentError: the key already belongs to an unrelated class.
    """

    def decorate(klass: type[_TT]) -> type[_TT]:
        if not (isinstance(klass, type) and issubclass(klass, Timetable)):
            raise InvalidArgumentError(
                f"register_timetable expects a Timetable subclass, got {klass!r}"
            )
        key = (
            type_name
            or klass.__dict__.get("type_name")
            or (f"{klass.__module__}.{klass.__qualname__}")
        )
        existing = _REGISTRY.get(key)
        if (
            existing is not None
            and existing is not klass
            and (
                (existing.__module__, existing.__qualname__)
                != (klass.__module__, klass.__qualname__)
            )
        ):
            raise InvalidArgumentError(
                f"timetable type {key!r} is already registered to "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        klass.type_name = key
        _REGISTRY[key] = klass
        return klass

    return decorate if cls is None else decorate(cls)


def registered_timetables() -> Mapping[str, type[Timetable]]:
    """A read-only view of the registry: type name -> class."""
    from types import MappingProxyType

    return MappingProxyType(_REGISTRY)


def timetable_from_dict(data: Mapping[str, Any]) -> Timetable:
    """Rebuild a timetable from :meth:`Timetable.to_dict` output.

    Raises:
        SerializationError: no ``type`` key, an unregistered type, or bad parameters.
    """
    if not isinstance(data, Mapping) or "type" not in data:
        raise SerializationError(f"a serialized timetable must be a dict with a 'type': {data!r}")
    kind = data["type"]
    klass = _REGISTRY.get(kind)
    if klass is None:
        known = ", ".join(sorted(_REGISTRY))
        raise SerializationError(
            f"unknown timetable type {kind!r} (known: {known}); a custom timetable must be "
            "imported and decorated with @register_timetable before it is read"
        )
    try:
        return klass.from_dict(data)
    except SerializationError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise SerializationError(f"cannot read timetable of type {kind!r}: {exc}") from None
