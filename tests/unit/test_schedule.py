"""Tests for tradewind.sdk.schedule: what a DAG's schedule may be, and how it is shown."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta

import tradewind.sdk.schedule as schedule_module
from tradewind.sdk.assets import Asset, AssetAlias
from tradewind.sdk.schedule import (
    CRON_PRESETS,
    cron_expression,
    describe_schedule,
    format_delta,
    is_timetable,
    validate_schedule,
)
from tradewind.timetables import CronDataIntervalTimetable, create_timetable

A = Asset("s3://a", name="a")
B = Asset("s3://b", name="b")


class DuckTimetable:
    """Has the two methods a timetable needs, without subclassing Timetable."""

    summary = "duck"

    def next_dagrun_info(self, **kwargs: Any) -> None:
        return None

    def infer_manual_data_interval(self, **kwargs: Any) -> None:
        return None


def test_presets_map_to_the_documented_expressions() -> None:
    assert dict(CRON_PRESETS) == {
        "@hourly": "0 * * * *",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *",
        "@quarterly": "0 0 1 */3 *",
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
    }


def test_presets_cannot_be_changed() -> None:
    with pytest.raises(TypeError):
        CRON_PRESETS["@daily"] = "0 1 * * *"  # type: ignore[index]


def test_cron_expression_expands_presets_only() -> None:
    assert cron_expression(" @daily ") == "0 0 * * *"
    assert cron_expression("5 4 * * *") == "5 4 * * *"


@pytest.mark.parametrize(
    "schedule",
    [
        None,
        "@once",
        "@continuous",
        *CRON_PRESETS,
        "*/5 * * * *",
        "30 6 * * 1-5",
        "0 0 1 jan *",
        "0 0 * * * 30",  # croniter's optional seconds field
        timedelta(hours=1),
        relativedelta(months=1),
        relativedelta(months=1, day=1),
        A,
        A | B,
        A & AssetAlias("x"),
        [A, B],
        (A,),
        CronDataIntervalTimetable("@daily"),
        DuckTimetable(),
    ],
)
def test_accepted_schedules(schedule: object) -> None:
    assert validate_schedule(schedule) is None


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("0 0 * *", "'0 0 * *' is not a valid cron expression: "),
        ("61 * * * *", "'61 * * * *' is not a valid cron expression: "),
        ("every day", "'every day' is not a valid cron expression: "),
        ("0 0 30 2 *", "'0 0 30 2 *' is a cron expression that never matches a date"),
        ("@dayly", "'@dayly' is not a known schedule preset"),
        ("", "schedule is an empty string; use None for no schedule"),
        (timedelta(0), "schedule timedelta must be positive, got 0:00:00"),
        (timedelta(hours=-1), "schedule timedelta must be positive"),
        (relativedelta(months=-1), "must be positive"),
        (relativedelta(months=1, days=-40), "must be positive"),
        (relativedelta(day=31), "must be positive"),
        ([], "schedule is an empty list"),
        ([A, "s3://b"], "schedule list item 1 is str 's3://b'"),
        (CronDataIntervalTimetable, "timetable class CronDataIntervalTimetable; pass an instance"),
        (5, "schedule must be None, '@once'"),
        (datetime(2024, 1, 1), "got datetime"),
        (True, "got bool True"),
    ],
)
def test_rejected_schedules_say_why(schedule: object, message: str) -> None:
    problem = validate_schedule(schedule)
    assert problem is not None
    assert message in problem


def test_unknown_preset_suggests_the_closest() -> None:
    problem = validate_schedule("@dayly")
    assert problem is not None
    assert "did you mean '@daily'?" in problem


def test_schedule_module_does_not_import_timetables() -> None:
    source = Path(schedule_module.__file__).read_text()
    imported: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
        elif isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
    assert imported, "the parser found no imports at all"
    assert not [name for name in imported if name.startswith("tradewind.timetables")]


def test_is_timetable_excludes_classes() -> None:
    assert is_timetable(DuckTimetable())
    assert not is_timetable(DuckTimetable)
    assert not is_timetable("@daily")


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (None, "None"),
        ("@once", "@once"),
        ("@continuous", "@continuous"),
        ("@daily", "0 0 * * *"),
        ("0 0 * * *", "0 0 * * *"),
        (timedelta(days=1), "every 1 day, 0:00:00"),
        (timedelta(minutes=30), "every 0:30:00"),
        (relativedelta(months=1), "every 1 month"),
        (relativedelta(months=2, days=3), "every 2 months, 3 days"),
        (relativedelta(months=1, day=1), "every 1 month, day=1"),
        (A | B, "asset: a | b"),
        ([A, B], "asset: a & b"),
        (DuckTimetable(), "duck"),
        (5, "5"),
    ],
)
def test_describe_schedule(schedule: object, text: str) -> None:
    assert describe_schedule(schedule) == text


@pytest.mark.parametrize(
    "schedule",
    [None, "@once", "@continuous", "@daily", "*/5 * * * *", timedelta(hours=6), [A, B], A | B],
)
def test_describe_matches_the_timetable_summary(schedule: object) -> None:
    assert describe_schedule(schedule) == create_timetable(schedule, timezone="UTC").summary


def test_format_delta_of_zero_relativedelta() -> None:
    assert format_delta(relativedelta()) == "0"
