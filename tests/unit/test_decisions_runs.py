"""Run creation from timetables, run ids, backfill intervals and manual runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tradewind.errors import InvalidArgumentError
from tradewind.scheduler.decisions import (
    RunCreationPlan,
    RunType,
    backfill_intervals,
    manual_run_interval,
    next_runs_to_create,
    run_id_for,
    runs_to_start,
)
from tradewind.sdk.assets import Asset
from tradewind.timetables import (
    AssetTriggeredTimetable,
    ContinuousTimetable,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    DataInterval,
    DeltaDataIntervalTimetable,
    NullTimetable,
    OnceTimetable,
    Timetable,
)


def utc(day: int, hour: int = 0, month: int = 1) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


DAILY = CronDataIntervalTimetable("@daily")


def plan(timetable: Timetable = DAILY, **kwargs: Any) -> RunCreationPlan:
    kwargs.setdefault("start_date", utc(1))
    kwargs.setdefault("end_date", None)
    kwargs.setdefault("catchup", True)
    kwargs.setdefault("last_automated_data_interval", None)
    kwargs.setdefault("now", utc(5))
    kwargs.setdefault("active_runs", 0)
    kwargs.setdefault("max_active_runs", 16)
    kwargs.setdefault("is_paused", False)
    return next_runs_to_create(timetable=timetable, **kwargs)


def starts(p: RunCreationPlan) -> list[datetime]:
    return [info.logical_date for info in p.to_create]


def test_catchup_creates_every_due_interval_in_order() -> None:
    # given a daily DAG starting 1 January, at midnight on 5 January
    result = plan()
    # expect the runs for 1 to 4 January; the 5 January one is due on the 6th
    assert starts(result) == [utc(1), utc(2), utc(3), utc(4)]
    assert result.to_create[0].data_interval == DataInterval(utc(1), utc(2))
    assert result.next_info is not None and result.next_info.logical_date == utc(5)
    assert result.reason == "create 4 runs; next run due at 2024-01-06 00:00:00 UTC (in 24h00m)"


def test_catchup_resumes_after_the_last_run() -> None:
    result = plan(last_automated_data_interval=DataInterval(utc(2), utc(3)))
    assert starts(result) == [utc(3), utc(4)]


def test_without_catchup_only_the_latest_interval_runs() -> None:
    result = plan(catchup=False, now=utc(5, 6))
    assert starts(result) == [utc(4)]


def test_max_active_runs_limits_creation() -> None:
    result = plan(max_active_runs=3, active_runs=1)
    assert starts(result) == [utc(1), utc(2)]
    assert result.next_info is not None and result.next_info.logical_date == utc(3)
    assert result.reason == "create 2 runs; max_active_runs reached: 3 of 3 runs active"
    full = plan(max_active_runs=3, active_runs=3)
    assert full.to_create == ()
    assert full.reason == "max_active_runs reached: 3 of 3 runs active"
    assert full.next_info is not None and full.next_info.logical_date == utc(1)


def test_max_new_caps_one_step() -> None:
    result = plan(max_new=1)
    assert starts(result) == [utc(1)]
    assert "more runs are due" in result.reason


def test_paused_dag_creates_nothing_but_knows_its_next_run() -> None:
    result = plan(is_paused=True)
    assert result.to_create == ()
    assert result.reason == "the DAG is paused"
    assert result.next_info is not None and result.next_info.logical_date == utc(1)


def test_nothing_due_yet() -> None:
    result = plan(start_date=utc(10))
    assert result.to_create == ()
    assert result.next_info is not None and result.next_info.run_after == utc(11)
    assert result.reason.startswith("next run due at 2024-01-11 00:00:00 UTC")


def test_end_date_stops_scheduling() -> None:
    result = plan(end_date=utc(2))
    assert starts(result) == [utc(1), utc(2)]
    assert result.next_info is None
    after = plan(end_date=utc(2), last_automated_data_interval=DataInterval(utc(2), utc(3)))
    assert after.to_create == ()
    assert "no further runs" in after.reason


@pytest.mark.parametrize(
    ("timetable", "text"),
    [
        (NullTimetable(), "the DAG has no schedule: runs start only when triggered"),
        (AssetTriggeredTimetable(Asset("s3://bucket/key")), "does not create runs by time"),
    ],
)
def test_unscheduled_timetables(timetable: Timetable, text: str) -> None:
    result = plan(timetable)
    assert (result.to_create, result.next_info) == ((), None)
    assert text in result.reason


def test_once_runs_once() -> None:
    first = plan(OnceTimetable())
    assert starts(first) == [utc(1)]
    again = plan(OnceTimetable(), last_automated_data_interval=first.to_create[0].data_interval)
    assert again.to_create == ()


def test_continuous_keeps_one_run_active() -> None:
    first = plan(ContinuousTimetable(), start_date=None)
    assert len(first.to_create) == 1
    assert first.to_create[0].run_after == utc(5)
    busy = plan(ContinuousTimetable(), start_date=None, active_runs=1)
    assert busy.to_create == ()
    assert "1 of 1 runs active" in busy.reason


def test_trigger_timetable_runs_at_each_tick() -> None:
    result = plan(CronTriggerTimetable("@daily"), now=utc(3))
    assert starts(result) == [utc(1), utc(2), utc(3)]


# -- queued runs ---------------------------------------------------------------------------------


def test_queued_runs_start_under_max_active_runs() -> None:
    assert runs_to_start(["a", "b", "c"], running=1, max_active_runs=3) == (
        ["a", "b"],
        "max_active_runs reached: 3 of 3 runs running; 1 run stay queued",
    )
    assert runs_to_start(["a"], running=0, max_active_runs=3) == (["a"], None)
    assert runs_to_start(["a"], running=5, max_active_runs=3)[0] == []


# -- run ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_type", "when", "expected"),
    [
        (RunType.SCHEDULED, utc(1), "scheduled__2024-01-01T00:00:00+00:00"),
        ("manual", utc(2, 13), "manual__2024-01-02T13:00:00+00:00"),
        ("backfill", datetime(2024, 1, 1), "backfill__2024-01-01T00:00:00+00:00"),
        (
            "asset_triggered",
            datetime(2024, 1, 1, 2, tzinfo=ZoneInfo("Europe/Amsterdam")),
            "asset_triggered__2024-01-01T01:00:00+00:00",
        ),
    ],
)
def test_run_ids(run_type: str, when: datetime, expected: str) -> None:
    assert run_id_for(run_type, when) == expected


def test_run_id_suffix_and_unknown_type() -> None:
    assert run_id_for("manual", utc(1), suffix="x1y2") == "manual__2024-01-01T00:00:00+00:00_x1y2"
    with pytest.raises(InvalidArgumentError, match="unknown run type 'adhoc'"):
        run_id_for("adhoc", utc(1))


# -- backfill ----------------------------------------------------------------------------------


def test_backfill_covers_every_logical_date_in_range() -> None:
    infos = backfill_intervals(DAILY, utc(1), utc(3))
    assert [i.logical_date for i in infos] == [utc(1), utc(2), utc(3)]
    assert infos[-1].data_interval == DataInterval(utc(3), utc(4))


def test_backfill_aligns_to_the_schedule() -> None:
    infos = backfill_intervals(DAILY, utc(1, 6), utc(3, 6))
    assert [i.logical_date for i in infos] == [utc(2), utc(3)]
    hourly = backfill_intervals(DeltaDataIntervalTimetable(timedelta(hours=12)), utc(1), utc(2))
    assert [i.logical_date for i in hourly] == [utc(1), utc(1, 12), utc(2)]


def test_backfill_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="is after its end"):
        backfill_intervals(DAILY, utc(3), utc(1))
    with pytest.raises(InvalidArgumentError, match="cannot backfill a DAG with schedule '@once'"):
        backfill_intervals(OnceTimetable(), utc(1), utc(3))
    with pytest.raises(InvalidArgumentError, match="needs more than 2 runs"):
        backfill_intervals(DAILY, utc(1), utc(10), max_runs=2)


def test_manual_run_interval_uses_the_timetable() -> None:
    assert manual_run_interval(DAILY, utc(1)) == DataInterval(utc(1), utc(2))
    assert manual_run_interval(DAILY, utc(1, 15)) == DataInterval(utc(1), utc(2))
    assert manual_run_interval(NullTimetable(), utc(1, 15)) == DataInterval.exact(utc(1, 15))
    assert manual_run_interval(DAILY, datetime(2024, 1, 1)) == DataInterval(utc(1), utc(2))
