"""Timetables without a period: never, once, continuous, and asset-triggered."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from tradewind.sdk.assets import BaseAsset, asset_from_dict, coerce_asset_expression
from tradewind.sdk.timezone import to_utc
from tradewind.timetables.base import (
    DagRunInfo,
    DataInterval,
    TimeRestriction,
    Timetable,
    register_timetable,
)

__all__ = ["AssetTriggeredTimetable", "ContinuousTimetable", "NullTimetable", "OnceTimetable"]


class _PointManualMixin:
    """Manual runs cover the single instant they were requested for."""

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """A zero-length interval at ``run_after``."""
        return DataInterval.exact(run_after)


@register_timetable
class NullTimetable(_PointManualMixin, Timetable):
    """``schedule=None``: never scheduled; runs come only from manual, API or asset triggers."""

    type_name: ClassVar[str] = "null"
    periodic: ClassVar[bool] = False
    can_be_scheduled: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        """``"None"``."""
        return "None"

    @property
    def description(self) -> str:
        """A sentence for the UI."""
        return "Never scheduled; runs start only when triggered."

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        """Always None."""
        return None


@register_timetable
class OnceTimetable(_PointManualMixin, Timetable):
    """``schedule="@once"``: one run, at ``start_date``, whatever ``catchup`` says.

    Without a start_date the run is due at once (at ``now``). The run's data interval has zero
    length. No run is made if ``end_date`` is before ``start_date``.
    """

    type_name: ClassVar[str] = "once"
    periodic: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        """``"@once"``."""
        return "@once"

    @property
    def description(self) -> str:
        """A sentence for the UI."""
        return "Once, at the start date."

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        """The single run, or None once it exists."""
        if last_automated_data_interval is not None:
            return None
        at = restriction.earliest if restriction.earliest is not None else to_utc(now)
        if restriction.latest is not None and at > restriction.latest:
            return None
        return DagRunInfo.exact(at)


@register_timetable
class ContinuousTimetable(_PointManualMixin, Timetable):
    """``schedule="@continuous"``: a new run as soon as the previous one ends, one at a time.

    Each run is due at ``now`` (or at ``start_date`` if that is later) and covers the time from
    the end of the previous scheduled run's interval (or from when it is due, for the first) up
    to then. Nothing is scheduled once ``now`` is past ``end_date``. ``active_runs_limit`` is 1,
    which is what keeps runs from piling up.
    """

    type_name: ClassVar[str] = "continuous"
    periodic: ClassVar[bool] = False
    active_runs_limit: ClassVar[int | None] = 1

    @property
    def summary(self) -> str:
        """``"@continuous"``."""
        return "@continuous"

    @property
    def description(self) -> str:
        """A sentence for the UI."""
        return "As often as possible, one run at a time."

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        """A run due at ``now`` (or at start_date when that is later)."""
        now = to_utc(now)
        run_at = now if restriction.earliest is None else max(now, restriction.earliest)
        if restriction.latest is not None and run_at > restriction.latest:
            return None
        start = run_at
        if last_automated_data_interval is not None:
            start = min(last_automated_data_interval.end, run_at)
        return DagRunInfo.interval(start, run_at)


@register_timetable
class AssetTriggeredTimetable(_PointManualMixin, Timetable):
    """``schedule=[assets]`` or an asset condition: runs when the condition holds.

    It never schedules by time (``next_dagrun_info`` is always None); the scheduler evaluates
    :attr:`asset_condition` against new asset events and creates runs itself.

    Args:
        assets: an Asset, an asset condition, or a list/tuple of them (meaning all of them).
    """

    type_name: ClassVar[str] = "asset_triggered"
    periodic: ClassVar[bool] = False
    can_be_scheduled: ClassVar[bool] = False

    def __init__(self, assets: BaseAsset | list[BaseAsset] | tuple[BaseAsset, ...]) -> None:
        self.asset_condition: BaseAsset = coerce_asset_expression(assets)

    @property
    def summary(self) -> str:
        """``"asset: a & b"``."""
        return f"asset: {self.asset_condition.describe()}"

    @property
    def description(self) -> str:
        """A sentence for the UI."""
        return f"Triggered by asset updates: {self.asset_condition.describe()}"

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
        now: datetime,
    ) -> DagRunInfo | None:
        """Always None: runs come from asset events, not from the clock."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """``{"type": "asset_triggered", "asset_condition": {…}}``."""
        return {"type": self._registered_name(), "asset_condition": self.asset_condition.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AssetTriggeredTimetable:
        """Read back :meth:`to_dict` output."""
        return cls(asset_from_dict(data["asset_condition"]))
