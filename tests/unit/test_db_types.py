"""Column types and state-change checks that need no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from tradewind.db.engine import normalize_url
from tradewind.db.state_changes import transition_run, transition_task
from tradewind.db.types import StateEnum, UTCDateTime
from tradewind.errors import InvalidTransition
from tradewind.state import RunState, TaskState

PLUS2 = timezone(timedelta(hours=2))


def test_utc_datetime_stores_utc_on_both_backends() -> None:
    column = UTCDateTime()
    value = datetime(2024, 1, 1, 2, 0, tzinfo=PLUS2)
    # SQLite gets naive UTC (ordered text); PostgreSQL an aware UTC value
    assert column.process_bind_param(value, sqlite.dialect()) == datetime(2024, 1, 1, 0, 0)
    assert column.process_bind_param(value, postgresql.dialect()) == datetime(
        2024, 1, 1, 0, 0, tzinfo=UTC
    )
    # naive input is taken to be UTC
    naive = datetime(2024, 1, 1, 5)
    assert column.process_bind_param(naive, postgresql.dialect()) == naive.replace(tzinfo=UTC)


def test_utc_datetime_reads_back_aware_utc() -> None:
    column = UTCDateTime()
    out = column.process_result_value(datetime(2024, 1, 1), sqlite.dialect())
    assert out == datetime(2024, 1, 1, tzinfo=UTC) and out is not None and out.tzinfo is UTC
    aware = column.process_result_value(datetime(2024, 1, 1, 2, tzinfo=PLUS2), postgresql.dialect())
    assert aware == datetime(2024, 1, 1, 0, tzinfo=UTC) and aware is not None
    assert aware.utcoffset() == timedelta(0)


def test_utc_datetime_refuses_other_types() -> None:
    with pytest.raises(TypeError, match="expected a datetime"):
        UTCDateTime().process_bind_param("2024-01-01", sqlite.dialect())


def test_state_enum_round_trip_and_validation() -> None:
    column = StateEnum(TaskState)
    assert column.process_bind_param(TaskState.QUEUED, sqlite.dialect()) == "queued"
    assert column.process_bind_param("running", sqlite.dialect()) == "running"
    assert column.process_result_value("success", sqlite.dialect()) is TaskState.SUCCESS
    with pytest.raises(ValueError):
        column.process_bind_param("exploded", sqlite.dialect())


def test_postgres_urls_use_psycopg_3() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_illegal_transitions_are_refused_before_touching_the_database() -> None:
    # the session is never used: the transition table refuses first
    session = None
    now = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidTransition, match="from created to running"):
        transition_task(session, "x", TaskState.CREATED, TaskState.RUNNING, now=now)  # type: ignore[arg-type]
    with pytest.raises(InvalidTransition, match="from success to running"):
        transition_run(session, 1, RunState.SUCCESS, RunState.RUNNING, now=now)  # type: ignore[arg-type]
