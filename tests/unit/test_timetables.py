"""Scenario tests for tradewind.timetables: next-run computation, manual runs, storage."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from tradewind.errors import InvalidArgumentError, ScheduleError, SerializationError
from tradewind.sdk.assets import Asset, AssetAll
from tradewind.timetables import (
    AssetTriggeredTimetable,
    ContinuousTimetable,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    DagRunInfo,
    DataInterval,
    DeltaDataIntervalTimetable,
    DeltaTriggerTimetable,
    EventsTimetable,
    NullTimetable,
    OnceTimetable,
    TimeRestriction,
    Timetable,
    create_timetable,
    register_timetable,
    registered_timetables,
    timetable_from_dict,
)

AMS = ZoneInfo("Europe/Amsterdam")
NYC = ZoneInfo("America/New_York")
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def runs(
    timetable: Timetable,
    *,
    start: datetime | None,
    now: datetime = FAR_FUTURE,
    catchup: bool = True,
    end: datetime | None = None,
    count: int = 5,
) -> list[DagRunInfo]:
    """Ask for up to ``count`` consecutive scheduled runs, as the scheduler would."""
    restriction = TimeRestriction(start, end, catchup)
    last: DataInterval | None = None
    found: list[DagRunInfo] = []
    for _ in range(count):
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction, now=now
        )
        if info is None:
            break
        found.append(info)
        last = info.data_interval
    return found


def intervals(infos: list[DagRunInfo]) -> list[tuple[datetime, datetime]]:
    return [(i.data_interval.start, i.data_interval.end) for i in infos]


# -- value types ---------------------------------------------------------------------------------


class TestValueTypes:
    def test_interval_run_is_due_at_the_end_and_logical_date_is_the_start(self) -> None:
        info = DagRunInfo.interval(utc(2024, 1, 1), utc(2024, 1, 2))
        assert info.run_after == utc(2024, 1, 2)
        assert info.logical_date == utc(2024, 1, 1)

    def test_exact_run_has_a_zero_length_interval(self) -> None:
        info = DagRunInfo.exact(utc(2024, 1, 1, 6))
        assert info.data_interval == DataInterval(utc(2024, 1, 1, 6), utc(2024, 1, 1, 6))
        assert info.run_after == info.logical_date == utc(2024, 1, 1, 6)

    def test_values_are_normalised_to_utc(self) -> None:
        interval = DataInterval(datetime(2024, 1, 1), datetime(2024, 7, 1, 2, tzinfo=AMS))
        assert interval.start.tzinfo is UTC
        assert interval.end == utc(2024, 7, 1, 0)
        restriction = TimeRestriction(datetime(2024, 1, 1), None, catchup=False)
        assert restriction.earliest == utc(2024, 1, 1)

    def test_interval_end_before_start_is_rejected(self) -> None:
        with pytest.raises(InvalidArgumentError, match="is after its end"):
            DataInterval(utc(2024, 1, 2), utc(2024, 1, 1))


# -- cron, data intervals (the native default) ----------------------------------------------------


class TestCronDataInterval:
    def test_daily_catchup_walks_every_interval_from_start_date(self) -> None:
        found = runs(CronDataIntervalTimetable("@daily"), start=utc(2024, 1, 1), count=3)
        assert intervals(found) == [
            (utc(2024, 1, 1), utc(2024, 1, 2)),
            (utc(2024, 1, 2), utc(2024, 1, 3)),
            (utc(2024, 1, 3), utc(2024, 1, 4)),
        ]
        assert [i.run_after for i in found] == [utc(2024, 1, 2), utc(2024, 1, 3), utc(2024, 1, 4)]

    def test_start_date_between_ticks_starts_at_the_next_tick(self) -> None:
        found = runs(CronDataIntervalTimetable("@daily"), start=utc(2024, 1, 1, 10), count=1)
        assert intervals(found) == [(utc(2024, 1, 2), utc(2024, 1, 3))]

    @pytest.mark.parametrize("now", [utc(2024, 1, 10), utc(2024, 1, 10, 15, 30)])
    def test_daily_without_catchup_jumps_to_the_latest_complete_interval(
        self, now: datetime
    ) -> None:
        found = runs(
            CronDataIntervalTimetable("@daily"), start=utc(2024, 1, 1), now=now, catchup=False
        )
        assert intervals(found)[0] == (utc(2024, 1, 9), utc(2024, 1, 10))

    def test_without_catchup_the_run_after_the_last_one_wins_when_later(self) -> None:
        timetable = CronDataIntervalTimetable("@daily")
        info = timetable.next_dagrun_info(
            last_automated_data_interval=DataInterval(utc(2024, 1, 9), utc(2024, 1, 10)),
            restriction=TimeRestriction(utc(2024, 1, 1), None, catchup=False),
            now=utc(2024, 1, 10, 12),
        )
        assert info is not None
        assert info.data_interval == DataInterval(utc(2024, 1, 10), utc(2024, 1, 11))
        assert info.run_after > utc(2024, 1, 10, 12)  # due in the future, not yet

    def test_without_catchup_and_a_stale_last_run_missed_intervals_are_skipped(self) -> None:
        timetable = CronDataIntervalTimetable("@daily")
        info = timetable.next_dagrun_info(
            last_automated_data_interval=DataInterval(utc(2024, 1, 1), utc(2024, 1, 2)),
            restriction=TimeRestriction(utc(2024, 1, 1), None, catchup=False),
            now=utc(2024, 3, 1, 5),
        )
        assert info is not None
        assert info.logical_date == utc(2024, 2, 29)

    def test_without_catchup_a_future_start_date_still_wins(self) -> None:
        found = runs(
            CronDataIntervalTimetable("@daily"),
            start=utc(2024, 6, 1),
            now=utc(2024, 1, 10),
            catchup=False,
        )
        assert found[0].data_interval == DataInterval(utc(2024, 6, 1), utc(2024, 6, 2))

    def test_without_start_date_catchup_schedules_nothing(self) -> None:
        assert runs(CronDataIntervalTimetable("@daily"), start=None) == []

    def test_without_start_date_and_catchup_runs_the_latest_complete_interval(self) -> None:
        found = runs(
            CronDataIntervalTimetable("@hourly"),
            start=None,
            now=utc(2024, 1, 1, 5, 20),
            count=1,
            catchup=False,
        )
        assert intervals(found) == [(utc(2024, 1, 1, 4), utc(2024, 1, 1, 5))]

    def test_hourly(self) -> None:
        found = runs(CronDataIntervalTimetable("@hourly"), start=utc(2024, 1, 1, 22), count=3)
        assert [i.logical_date for i in found] == [
            utc(2024, 1, 1, 22),
            utc(2024, 1, 1, 23),
            utc(2024, 1, 2, 0),
        ]

    def test_end_date_stops_scheduling_after_the_last_interval_starting_on_it(self) -> None:
        found = runs(
            CronDataIntervalTimetable("@daily"),
            start=utc(2024, 1, 1),
            end=utc(2024, 1, 3),
            count=10,
        )
        assert [i.logical_date for i in found] == [
            utc(2024, 1, 1),
            utc(2024, 1, 2),
            utc(2024, 1, 3),
        ]

    def test_weekday_cron_skips_the_weekend(self) -> None:
        # 2024-01-05 is a Friday.
        found = runs(CronDataIntervalTimetable("0 6 * * 1-5"), start=utc(2024, 1, 5), count=2)
        assert intervals(found) == [
            (utc(2024, 1, 5, 6), utc(2024, 1, 8, 6)),
            (utc(2024, 1, 8, 6), utc(2024, 1, 9, 6)),
        ]

    def test_cron_is_evaluated_in_the_dag_timezone(self) -> None:
        found = runs(
            CronDataIntervalTimetable("@daily", "Asia/Kolkata"), start=utc(2024, 1, 1), count=1
        )
        # Midnight in Kolkata is 18:30 UTC the day before.
        assert found[0].logical_date == utc(2024, 1, 1, 18, 30)
        assert found[0].logical_date.tzinfo is UTC

    def test_invalid_expression_is_a_schedule_error(self) -> None:
        with pytest.raises(ScheduleError, match="'0 0 \\* \\*' is not a valid cron expression"):
            CronDataIntervalTimetable("0 0 * *")
        with pytest.raises(ScheduleError, match="needs a cron expression"):
            CronDataIntervalTimetable("@once")

    def test_summary_and_description(self) -> None:
        timetable = CronDataIntervalTimetable("@daily", AMS)
        assert timetable.summary == "0 0 * * *"
        assert "Europe/Amsterdam" in timetable.description
        assert timetable.periodic and timetable.can_be_scheduled
        assert timetable.active_runs_limit is None


class TestDaylightSavingTime:
    """Amsterdam: 2024-03-31 02:00 -> 03:00 (spring), 2024-10-27 03:00 -> 02:00 (autumn)."""

    def test_daily_interval_is_23_hours_on_the_spring_forward_day(self) -> None:
        found = runs(
            CronDataIntervalTimetable("@daily", AMS), start=datetime(2024, 3, 30, tzinfo=AMS)
        )
        lengths = [i.data_interval.end - i.data_interval.start for i in found[:3]]
        assert lengths == [timedelta(hours=24), timedelta(hours=23), timedelta(hours=24)]
        local_starts = [i.logical_date.astimezone(AMS).hour for i in found]
        assert local_starts == [0] * len(found)

    def test_daily_interval_is_25_hours_on_the_fall_back_day(self) -> None:
        found = runs(
            CronDataIntervalTimetable("@daily", AMS),
            start=datetime(2024, 10, 27, tzinfo=AMS),
            count=1,
        )
        assert found[0].data_interval == DataInterval(utc(2024, 10, 26, 22), utc(2024, 10, 27, 23))

    def test_hourly_runs_every_real_hour_through_fall_back(self) -> None:
        start = datetime(2024, 10, 27, tzinfo=AMS)
        found = runs(CronDataIntervalTimetable("@hourly", AMS), start=start, count=30)
        day = [i for i in found if i.logical_date < datetime(2024, 10, 28, tzinfo=AMS)]
        assert len(day) == 25
        assert all(i.data_interval.end - i.data_interval.start == timedelta(hours=1) for i in found)

    def test_hourly_skips_nothing_real_through_spring_forward(self) -> None:
        start = datetime(2024, 3, 31, tzinfo=AMS)
        found = runs(CronDataIntervalTimetable("@hourly", AMS), start=start, count=30)
        day = [i for i in found if i.logical_date < datetime(2024, 4, 1, tzinfo=AMS)]
        assert len(day) == 23
        assert all(i.data_interval.end - i.data_interval.start == timedelta(hours=1) for i in found)

    def test_every_hour_expression_skips_a_wall_time_that_never_shows(self) -> None:
        # Lord Howe Island: 2024-10-06 02:00 -> 02:30 (a half-hour change); 02:00 never shows.
        lord_howe = ZoneInfo("Australia/Lord_Howe")
        found = runs(
            CronDataIntervalTimetable("0 * * * *", lord_howe),
            start=datetime(2024, 10, 6, 1, tzinfo=lord_howe),
            count=2,
        )
        local = [i.logical_date.astimezone(lord_howe).hour for i in found]
        assert local == [1, 3]
        assert found[0].data_interval == DataInterval(
            utc(2024, 10, 5, 14, 30), utc(2024, 10, 5, 16)
        )

    def test_tick_in_the_skipped_hour_runs_after_the_jump(self) -> None:
        # New York: 2024-03-10 02:00 -> 03:00; 02:30 does not exist that day.
        found = runs(
            CronDataIntervalTimetable("30 2 * * *", NYC),
            start=datetime(2024, 3, 9, tzinfo=NYC),
            count=3,
        )
        local = [i.logical_date.astimezone(NYC) for i in found]
        assert [(d.day, d.hour, d.minute) for d in local] == [(9, 2, 30), (10, 3, 30), (11, 2, 30)]
        assert found[1].logical_date == utc(2024, 3, 10, 7, 30)

    def test_tick_in_the_repeated_hour_runs_once(self) -> None:
        # New York: 2024-11-03 02:00 -> 01:00; 01:30 happens twice.
        found = runs(
            CronDataIntervalTimetable("30 1 * * *", NYC),
            start=datetime(2024, 11, 2, tzinfo=NYC),
            count=3,
        )
        assert [i.logical_date for i in found] == [
            utc(2024, 11, 2, 5, 30),
            utc(2024, 11, 3, 5, 30),  # the first 01:30 (EDT)
            utc(2024, 11, 4, 6, 30),
        ]

    def test_trigger_timetable_fires_every_real_hour_through_fall_back(self) -> None:
        found = runs(
            CronTriggerTimetable("0 * * * *", timezone=AMS),
            start=datetime(2024, 10, 27, 1, tzinfo=AMS),
            count=4,
        )
        assert [i.run_after for i in found] == [
            utc(2024, 10, 26, 23),
            utc(2024, 10, 27, 0),  # 02:00 CEST
            utc(2024, 10, 27, 1),  # 02:00 CET
            utc(2024, 10, 27, 2),
        ]

    def test_latest_complete_interval_inside_the_repeated_hour(self) -> None:
        # now = 02:20 CET, the second 02:xx; the last complete quarter hour is 02:00-02:15 CET.
        found = runs(
            CronDataIntervalTimetable("*/15 * * * *", AMS),
            start=None,
            now=utc(2024, 10, 27, 1, 20),
            catchup=False,
            count=1,
        )
        assert intervals(found) == [(utc(2024, 10, 27, 1, 0), utc(2024, 10, 27, 1, 15))]


class TestManualIntervals:
    def test_cron_on_a_boundary_gives_the_scheduled_interval(self) -> None:
        timetable = CronDataIntervalTimetable("@daily")
        manual = timetable.infer_manual_data_interval(run_after=utc(2024, 1, 1))
        assert manual == DataInterval(utc(2024, 1, 1), utc(2024, 1, 2))
        scheduled = runs(timetable, start=utc(2024, 1, 1), count=1)[0].data_interval
        assert manual == scheduled

    def test_cron_off_a_boundary_gives_the_interval_containing_it(self) -> None:
        timetable = CronDataIntervalTimetable("@daily")
        manual = timetable.infer_manual_data_interval(run_after=utc(2024, 1, 1, 15, 45))
        assert manual == DataInterval(utc(2024, 1, 1), utc(2024, 1, 2))

    def test_cron_in_a_timezone(self) -> None:
        timetable = CronDataIntervalTimetable("@daily", AMS)
        manual = timetable.infer_manual_data_interval(run_after=utc(2024, 7, 1, 12))
        assert manual == DataInterval(utc(2024, 6, 30, 22), utc(2024, 7, 1, 22))

    def test_delta_covers_one_delta_from_the_logical_date(self) -> None:
        timetable = DeltaDataIntervalTimetable(timedelta(hours=6))
        manual = timetable.infer_manual_data_interval(run_after=utc(2024, 1, 1, 1, 5))
        assert manual == DataInterval(utc(2024, 1, 1, 1, 5), utc(2024, 1, 1, 7, 5))

    def test_trigger_interval_ends_at_the_logical_date(self) -> None:
        plain = CronTriggerTimetable("@daily")
        assert plain.infer_manual_data_interval(run_after=utc(2024, 1, 1, 3)) == DataInterval(
            utc(2024, 1, 1, 3), utc(2024, 1, 1, 3)
        )
        wide = CronTriggerTimetable("@daily", interval=timedelta(hours=1))
        assert wide.infer_manual_data_interval(run_after=utc(2024, 1, 1, 3)) == DataInterval(
            utc(2024, 1, 1, 2), utc(2024, 1, 1, 3)
        )

    @pytest.mark.parametrize(
        "timetable",
        [
            NullTimetable(),
            OnceTimetable(),
            ContinuousTimetable(),
            AssetTriggeredTimetable([Asset("a")]),
        ],
    )
    def test_point_timetables_give_the_instant(self, timetable: Timetable) -> None:
        assert timetable.infer_manual_data_interval(run_after=utc(2024, 1, 1, 3)) == (
            DataInterval.exact(utc(2024, 1, 1, 3))
        )


# -- deltas --------------------------------------------------------------------------------------


class TestDeltaDataInterval:
    def test_fixed_timedelta_aligns_on_start_date(self) -> None:
        found = runs(
            DeltaDataIntervalTimetable(timedelta(hours=1)), start=utc(2024, 1, 1, 10, 17), count=2
        )
        assert intervals(found) == [
            (utc(2024, 1, 1, 10, 17), utc(2024, 1, 1, 11, 17)),
            (utc(2024, 1, 1, 11, 17), utc(2024, 1, 1, 12, 17)),
        ]

    def test_timedelta_without_catchup_takes_the_latest_complete_interval_on_the_grid(
        self,
    ) -> None:
        found = runs(
            DeltaDataIntervalTimetable(timedelta(hours=6)),
            start=utc(2024, 1, 1, 1),
            now=utc(2024, 1, 3, 14),
            catchup=False,
            count=1,
        )
        # The grid is 01:00, 07:00, 13:00, 19:00; at 14:00 the 07:00-13:00 interval is complete.
        assert intervals(found) == [(utc(2024, 1, 3, 7), utc(2024, 1, 3, 13))]

    def test_timedelta_without_start_date_lines_up_with_the_epoch(self) -> None:
        found = runs(
            DeltaDataIntervalTimetable(timedelta(hours=6)),
            start=None,
            now=utc(2024, 1, 3, 14),
            catchup=False,
            count=1,
        )
        assert intervals(found) == [(utc(2024, 1, 3, 6), utc(2024, 1, 3, 12))]

    def test_timedelta_is_elapsed_time_across_dst(self) -> None:
        found = runs(
            DeltaDataIntervalTimetable(timedelta(days=1), AMS),
            start=datetime(2024, 3, 30, tzinfo=AMS),
            count=2,
        )
        assert found[1].data_interval.end - found[1].data_interval.start == timedelta(hours=24)
        assert found[1].data_interval.end.astimezone(AMS).hour == 1

    def test_monthly_relativedelta_keeps_the_day_of_the_anchor(self) -> None:
        found = runs(
            DeltaDataIntervalTimetable(relativedelta(months=1)), start=utc(2024, 1, 31), count=4
        )
        assert [i.logical_date for i in found] == [
            utc(2024, 1, 31),
            utc(2024, 2, 29),
            utc(2024, 3, 31),
            utc(2024, 4, 30),
        ]

    def test_monthly_relativedelta_follows_the_wall_clock(self) -> None:
        found = runs(
            DeltaDataIntervalTimetable(relativedelta(months=1), AMS),
            start=datetime(2024, 1, 1, tzinfo=AMS),
            count=6,
        )
        local = [i.logical_date.astimezone(AMS) for i in found]
        assert [(d.month, d.day, d.hour) for d in local] == [(m, 1, 0) for m in range(1, 7)]

    def test_relativedelta_catchup_after_a_last_run(self) -> None:
        timetable = DeltaDataIntervalTimetable(relativedelta(months=1))
        info = timetable.next_dagrun_info(
            last_automated_data_interval=DataInterval(utc(2024, 2, 29), utc(2024, 3, 31)),
            restriction=TimeRestriction(utc(2024, 1, 31), None, catchup=True),
            now=FAR_FUTURE,
        )
        assert info is not None
        assert info.data_interval == DataInterval(utc(2024, 3, 31), utc(2024, 4, 30))

    def test_summary(self) -> None:
        assert DeltaDataIntervalTimetable(timedelta(days=1)).summary == "every 1 day, 0:00:00"
        assert DeltaDataIntervalTimetable(relativedelta(months=1)).summary == "every 1 month"

    def test_non_positive_delta_is_rejected(self) -> None:
        with pytest.raises(ScheduleError, match="must be positive"):
            DeltaDataIntervalTimetable(timedelta(0))


# -- trigger timetables (Airflow 3 style) ---------------------------------------------------------


class TestCronTrigger:
    def test_logical_date_is_the_tick(self) -> None:
        found = runs(CronTriggerTimetable("@daily"), start=utc(2024, 1, 1), count=2)
        assert [(i.logical_date, i.run_after) for i in found] == [
            (utc(2024, 1, 1), utc(2024, 1, 1)),
            (utc(2024, 1, 2), utc(2024, 1, 2)),
        ]

    def test_interval_reaches_back_from_the_tick(self) -> None:
        found = runs(
            CronTriggerTimetable("@daily", interval=timedelta(hours=4)),
            start=utc(2024, 1, 1),
            count=1,
        )
        assert found[0].data_interval == DataInterval(utc(2023, 12, 31, 20), utc(2024, 1, 1))
        assert found[0].run_after == utc(2024, 1, 1)

    def test_without_catchup_the_most_recent_tick_runs(self) -> None:
        found = runs(
            CronTriggerTimetable("@daily"),
            start=utc(2024, 1, 1),
            now=utc(2024, 1, 10, 15),
            catchup=False,
            count=2,
        )
        assert [i.run_after for i in found] == [utc(2024, 1, 10), utc(2024, 1, 11)]

    def test_end_date(self) -> None:
        found = runs(
            CronTriggerTimetable("@daily"),
            start=utc(2024, 1, 1),
            end=utc(2024, 1, 2, 12),
            count=10,
        )
        assert [i.run_after for i in found] == [utc(2024, 1, 1), utc(2024, 1, 2)]

    @pytest.mark.parametrize(
        ("run_immediately", "now", "expected"),
        [
            (False, utc(2024, 1, 1, 0, 3), utc(2024, 1, 2)),
            (True, utc(2024, 1, 1, 20), utc(2024, 1, 1)),
            (timedelta(hours=1), utc(2024, 1, 1, 0, 30), utc(2024, 1, 1)),
            (timedelta(hours=1), utc(2024, 1, 1, 1, 30), utc(2024, 1, 2)),
            (None, utc(2024, 1, 1, 2), utc(2024, 1, 1)),  # within a tenth of a day
            (None, utc(2024, 1, 1, 3), utc(2024, 1, 2)),
            (False, utc(2024, 1, 1), utc(2024, 1, 1)),  # exactly on a tick
        ],
    )
    def test_first_run_without_start_date(
        self, run_immediately: bool | timedelta | None, now: datetime, expected: datetime
    ) -> None:
        timetable = CronTriggerTimetable("@daily", run_immediately=run_immediately)
        found = runs(timetable, start=None, now=now, count=1)
        assert [i.run_after for i in found] == [expected]

    def test_bad_run_immediately(self) -> None:
        with pytest.raises(InvalidArgumentError, match="run_immediately"):
            CronTriggerTimetable("@daily", run_immediately="soon")  # type: ignore[arg-type]


class TestDeltaTrigger:
    def test_ticks_on_a_grid_from_start_date(self) -> None:
        found = runs(DeltaTriggerTimetable(timedelta(minutes=90)), start=utc(2024, 1, 1), count=3)
        assert [i.logical_date for i in found] == [
            utc(2024, 1, 1),
            utc(2024, 1, 1, 1, 30),
            utc(2024, 1, 1, 3),
        ]
        assert all(i.data_interval.start == i.data_interval.end for i in found)

    def test_without_start_date_the_latest_past_tick_runs(self) -> None:
        found = runs(
            DeltaTriggerTimetable(timedelta(hours=1)), start=None, now=utc(2024, 5, 5, 7, 59)
        )
        assert found[0].run_after == utc(2024, 5, 5, 7)

    def test_relativedelta_interval(self) -> None:
        timetable = DeltaTriggerTimetable(relativedelta(months=1), interval=relativedelta(months=1))
        found = runs(timetable, start=utc(2024, 3, 1), count=1)
        assert found[0].data_interval == DataInterval(utc(2024, 2, 1), utc(2024, 3, 1))


# -- timetables without a period ------------------------------------------------------------------


class TestSimpleTimetables:
    def test_null_never_schedules(self) -> None:
        timetable = NullTimetable()
        assert runs(timetable, start=utc(2024, 1, 1)) == []
        assert not timetable.can_be_scheduled
        assert timetable.summary == "None"

    def test_once_runs_once_at_start_date_whatever_catchup(self) -> None:
        for catchup in (True, False):
            found = runs(
                OnceTimetable(), start=utc(2024, 1, 1), now=utc(2024, 5, 1), catchup=catchup
            )
            assert [i.run_after for i in found] == [utc(2024, 1, 1)]
            assert found[0].data_interval == DataInterval.exact(utc(2024, 1, 1))

    def test_once_without_start_date_runs_now(self) -> None:
        found = runs(OnceTimetable(), start=None, now=utc(2024, 5, 1, 8))
        assert [i.run_after for i in found] == [utc(2024, 5, 1, 8)]

    def test_once_after_end_date_never_runs(self) -> None:
        assert runs(OnceTimetable(), start=utc(2024, 2, 1), end=utc(2024, 1, 1)) == []

    def test_continuous_runs_now_and_covers_since_the_previous_run(self) -> None:
        timetable = ContinuousTimetable()
        first = timetable.next_dagrun_info(
            last_automated_data_interval=None,
            restriction=TimeRestriction(utc(2024, 1, 1), None, False),
            now=utc(2024, 1, 5, 12),
        )
        assert first == DagRunInfo.exact(utc(2024, 1, 5, 12))
        second = timetable.next_dagrun_info(
            last_automated_data_interval=first.data_interval,
            restriction=TimeRestriction(utc(2024, 1, 1), None, False),
            now=utc(2024, 1, 5, 12, 3),
        )
        assert second == DagRunInfo.interval(utc(2024, 1, 5, 12), utc(2024, 1, 5, 12, 3))
        assert timetable.active_runs_limit == 1

    def test_continuous_waits_for_start_date_and_stops_after_end_date(self) -> None:
        timetable = ContinuousTimetable()
        early = runs(timetable, start=utc(2024, 2, 1), now=utc(2024, 1, 1), count=1)
        assert early[0].run_after == utc(2024, 2, 1)
        assert runs(timetable, start=None, end=utc(2024, 1, 1), now=utc(2024, 1, 2)) == []

    def test_asset_triggered_never_schedules_by_time(self) -> None:
        a, b = Asset("s3://a", name="a"), Asset("s3://b", name="b")
        timetable = AssetTriggeredTimetable([a, b])
        assert runs(timetable, start=utc(2024, 1, 1)) == []
        assert timetable.asset_condition == AssetAll(a, b)
        assert timetable.summary == "asset: a & b"
        assert not timetable.can_be_scheduled


class TestEvents:
    EVENTS: ClassVar[list[datetime]] = [
        utc(2024, 3, 1),
        utc(2024, 1, 1),
        datetime(2024, 2, 1),  # naive means UTC
        utc(2024, 2, 1),  # a duplicate
    ]

    def test_catchup_runs_every_event_in_order(self) -> None:
        found = runs(EventsTimetable(self.EVENTS), start=None, count=10)
        assert [i.run_after for i in found] == [utc(2024, 1, 1), utc(2024, 2, 1), utc(2024, 3, 1)]

    def test_without_catchup_the_latest_past_event_runs(self) -> None:
        found = runs(EventsTimetable(self.EVENTS), start=None, now=utc(2024, 2, 15), catchup=False)
        assert [i.run_after for i in found] == [utc(2024, 2, 1), utc(2024, 3, 1)]

    def test_start_and_end_date_filter_events(self) -> None:
        found = runs(
            EventsTimetable(self.EVENTS), start=utc(2024, 1, 15), end=utc(2024, 2, 20), count=10
        )
        assert [i.run_after for i in found] == [utc(2024, 2, 1)]

    def test_manual_runs_snap_to_events_only_when_asked(self) -> None:
        free = EventsTimetable(self.EVENTS)
        snapped = EventsTimetable(self.EVENTS, restrict_to_events=True)
        at = utc(2024, 2, 10)
        assert free.infer_manual_data_interval(run_after=at) == DataInterval.exact(at)
        assert snapped.infer_manual_data_interval(run_after=at) == DataInterval.exact(
            utc(2024, 2, 1)
        )
        assert snapped.infer_manual_data_interval(run_after=utc(2023, 1, 1)) == (
            DataInterval.exact(utc(2024, 1, 1))
        )

    def test_needs_events(self) -> None:
        with pytest.raises(InvalidArgumentError, match="at least one event"):
            EventsTimetable([])


# -- create_timetable -----------------------------------------------------------------------------


class TestCreateTimetable:
    @pytest.mark.parametrize(
        ("schedule", "native", "trigger"),
        [
            (None, NullTimetable, NullTimetable),
            ("@once", OnceTimetable, OnceTimetable),
            ("@continuous", ContinuousTimetable, ContinuousTimetable),
            ("@daily", CronDataIntervalTimetable, CronTriggerTimetable),
            ("*/5 * * * *", CronDataIntervalTimetable, CronTriggerTimetable),
            (timedelta(hours=1), DeltaDataIntervalTimetable, DeltaTriggerTimetable),
            (relativedelta(months=1), DeltaDataIntervalTimetable, DeltaTriggerTimetable),
            ([Asset("a")], AssetTriggeredTimetable, AssetTriggeredTimetable),
            (Asset("a") | Asset("b"), AssetTriggeredTimetable, AssetTriggeredTimetable),
        ],
    )
    def test_mapping(self, schedule: object, native: type, trigger: type) -> None:
        assert type(create_timetable(schedule, timezone="UTC")) is native
        assert type(create_timetable(schedule, timezone="UTC", data_intervals=False)) is trigger

    def test_timezone_is_passed_on(self) -> None:
        timetable = create_timetable("@daily", timezone=AMS)
        assert isinstance(timetable, CronDataIntervalTimetable)
        assert timetable.timezone == AMS

    def test_a_timetable_is_used_as_it_is(self) -> None:
        given_timetable = CronTriggerTimetable("@hourly", timezone=AMS)
        assert create_timetable(given_timetable, timezone="UTC") is given_timetable

    def test_invalid_schedule_raises_with_the_reason(self) -> None:
        with pytest.raises(ScheduleError, match="is not a valid cron expression") as info:
            create_timetable("0 0 * *", timezone="UTC")
        assert info.value.schedule == "0 0 * *"


# -- storage -------------------------------------------------------------------------------------


ALL_TIMETABLES: list[Timetable] = [
    NullTimetable(),
    OnceTimetable(),
    ContinuousTimetable(),
    CronDataIntervalTimetable("@daily", AMS),
    CronDataIntervalTimetable("30 6 * * 1-5", "+05:30"),
    CronTriggerTimetable(
        "0 * * * *", timezone=NYC, interval=timedelta(minutes=30), run_immediately=None
    ),
    CronTriggerTimetable("@hourly", run_immediately=timedelta(minutes=5)),
    DeltaDataIntervalTimetable(timedelta(days=1, seconds=5, microseconds=7)),
    DeltaDataIntervalTimetable(relativedelta(months=1, day=31, hours=2), AMS),
    DeltaTriggerTimetable(relativedelta(weeks=1), timezone=AMS, interval=relativedelta(days=1)),
    AssetTriggeredTimetable((Asset("s3://a") & Asset("s3://b")) | Asset("c")),
    EventsTimetable([utc(2024, 1, 1), utc(2024, 6, 1)], restrict_to_events=True, description="x"),
]


class TestStorage:
    @pytest.mark.parametrize("timetable", ALL_TIMETABLES, ids=lambda t: type(t).__name__)
    def test_round_trip_through_json(self, timetable: Timetable) -> None:
        data = json.loads(json.dumps(timetable.to_dict()))
        again = timetable_from_dict(data)
        assert type(again) is type(timetable)
        assert again == timetable
        assert again.to_dict() == timetable.to_dict()
        assert again.summary == timetable.summary

    def test_round_trip_keeps_behaviour(self) -> None:
        timetable = DeltaDataIntervalTimetable(relativedelta(months=1, day=31, hours=2), AMS)
        again = timetable_from_dict(json.loads(json.dumps(timetable.to_dict())))
        assert runs(again, start=utc(2024, 1, 1)) == runs(timetable, start=utc(2024, 1, 1))

    def test_every_builtin_is_registered(self) -> None:
        names = {type(t).type_name for t in ALL_TIMETABLES}
        assert names <= set(registered_timetables())

    def test_unknown_type(self) -> None:
        with pytest.raises(SerializationError, match="unknown timetable type 'lunar'"):
            timetable_from_dict({"type": "lunar"})
        with pytest.raises(SerializationError, match="with a 'type'"):
            timetable_from_dict({"expression": "@daily"})

    def test_bad_parameters(self) -> None:
        with pytest.raises(SerializationError, match="cannot read timetable of type 'cron_data"):
            timetable_from_dict({"type": "cron_data_interval"})

    def test_custom_timetable_registers_and_round_trips(self) -> None:
        @register_timetable
        class EveryMonday(Timetable):
            type_name = "tests.every_monday"

            def __init__(self, hour: int = 0) -> None:
                self.hour = hour

            def next_dagrun_info(self, **kwargs: Any) -> DagRunInfo | None:
                return None

            def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
                return DataInterval.exact(run_after)

            def to_dict(self) -> dict[str, Any]:
                return {"type": self.type_name, "hour": self.hour}

            @classmethod
            def from_dict(cls, data: Mapping[str, Any]) -> EveryMonday:
                return cls(data["hour"])

        again = timetable_from_dict({"type": "tests.every_monday", "hour": 6})
        assert isinstance(again, EveryMonday)
        assert again.hour == 6

    def test_registering_an_unrelated_class_under_a_taken_name_fails(self) -> None:
        with pytest.raises(InvalidArgumentError, match="already registered"):

            @register_timetable(type_name="cron_data_interval")
            class Impostor(NullTimetable):
                pass

    def test_unregistered_class_cannot_be_stored(self) -> None:
        class Unregistered(NullTimetable):
            type_name = ""

        with pytest.raises(SerializationError, match="is not registered"):
            Unregistered().to_dict()

    def test_unregistered_subclass_is_not_stored_as_its_parent(self) -> None:
        class Shifted(CronDataIntervalTimetable):
            pass

        shifted = Shifted("@daily")
        with pytest.raises(SerializationError, match="Shifted is not registered"):
            shifted.to_dict()
        # Comparing and hashing still work; unstorable timetables equal only themselves.
        assert shifted == shifted
        assert shifted != Shifted("@daily")
        assert len({shifted, shifted}) == 1


# -- properties ----------------------------------------------------------------------------------

CRONS = [
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "*/15 * * * *",
    "30 2 * * *",
    "0 */6 * * *",
    "15 1,2,3 * * *",
    "0 0 * * 1-5",
]
ZONES = ["UTC", "Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
DELTAS = [
    timedelta(hours=1),
    timedelta(minutes=45),
    timedelta(days=1),
    relativedelta(days=1),
    relativedelta(months=1),
    relativedelta(weeks=1),
    relativedelta(months=1, day=31),
]
naive_dates = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31))


def _assert_tiled(found: list[DagRunInfo], start: datetime) -> None:
    assert found, "catchup from a start_date must schedule something"
    assert found[0].logical_date >= start
    for info in found:
        assert info.data_interval.start < info.data_interval.end
        assert info.run_after == info.data_interval.end
        assert info.logical_date.tzinfo is UTC
    for before, after in itertools.pairwise(found):
        assert after.data_interval.start == before.data_interval.end


@settings(max_examples=60, deadline=None)
@given(cron=st.sampled_from(CRONS), zone=st.sampled_from(ZONES), when=naive_dates)
def test_cron_catchup_runs_tile_time(cron: str, zone: str, when: datetime) -> None:
    start = when.replace(tzinfo=ZoneInfo(zone))
    found = runs(CronDataIntervalTimetable(cron, zone), start=start, count=30)
    _assert_tiled(found, start)


@settings(max_examples=60, deadline=None)
@given(delta=st.sampled_from(DELTAS), zone=st.sampled_from(ZONES), when=naive_dates)
def test_delta_catchup_runs_tile_time(delta: Any, zone: str, when: datetime) -> None:
    start = when.replace(tzinfo=ZoneInfo(zone))
    found = runs(DeltaDataIntervalTimetable(delta, zone), start=start, count=30)
    _assert_tiled(found, start)


@settings(max_examples=60, deadline=None)
@given(cron=st.sampled_from(CRONS), zone=st.sampled_from(ZONES), when=naive_dates)
def test_cron_manual_interval_contains_the_logical_date(
    cron: str, zone: str, when: datetime
) -> None:
    at = when.replace(tzinfo=UTC)
    interval = CronDataIntervalTimetable(cron, zone).infer_manual_data_interval(run_after=at)
    assert interval.start <= at < interval.end


@settings(max_examples=60, deadline=None)
@given(cron=st.sampled_from(CRONS), zone=st.sampled_from(ZONES), when=naive_dates)
def test_no_catchup_picks_the_latest_complete_interval(
    cron: str, zone: str, when: datetime
) -> None:
    now = when.replace(tzinfo=UTC)
    timetable = CronDataIntervalTimetable(cron, zone)
    found = runs(timetable, start=None, now=now, catchup=False, count=1)
    assert found
    interval = found[0].data_interval
    assert interval.end <= now
    # The interval after it is not complete yet.
    following = timetable.infer_manual_data_interval(run_after=interval.end)
    assert following.start == interval.end
    assert following.end > now


@settings(max_examples=60, deadline=None)
@given(cron=st.sampled_from(CRONS), zone=st.sampled_from(ZONES), when=naive_dates)
def test_trigger_ticks_strictly_increase(cron: str, zone: str, when: datetime) -> None:
    start = when.replace(tzinfo=ZoneInfo(zone))
    found = runs(CronTriggerTimetable(cron, timezone=zone), start=start, count=30)
    ticks = [i.run_after for i in found]
    assert ticks[0] >= start
    assert all(a < b for a, b in itertools.pairwise(ticks))
