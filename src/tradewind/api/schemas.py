"""JSON shapes several resources share: DAG runs, task instances, pagination and time spans.

Field names follow Airflow's stable REST API v1 (``dag_run_id``, ``execution_date`` beside
``logical_date``, ``total_entries`` …) so clients written for it keep working; Tradewind-only
fields are added beside them, never instead of them. A task instance in Tradewind's
``created`` state shows ``state: null``, as Airflow's "none".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from tradewind.db.models import DagRun, TaskInstance
from tradewind.state import TaskState

__all__ = [
    "MAX_PAGE_LIMIT",
    "Body",
    "DAGRun",
    "DAGRunCollection",
    "PageParams",
    "TaskInstanceCollection",
    "TaskInstanceModel",
    "TimeDelta",
    "as_utc",
    "pagination",
    "parse_task_states",
    "run_model",
    "ti_model",
    "time_delta",
]

#: The largest ``limit`` any listing accepts.
MAX_PAGE_LIMIT = 1000
#: ``limit`` when none is given (as Airflow).
DEFAULT_PAGE_LIMIT = 100


class Body(BaseModel):
    """Base of request bodies: unknown fields are an error naming the field."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class PageParams:
    """``limit``, ``offset`` and ``order_by`` of one listing request."""

    limit: int
    offset: int
    order_by: str


def pagination(default_order: str, orderable: list[str]) -> Any:
    """A dependency reading ``limit``, ``offset`` and ``order_by`` (documented with the
    fields it accepts)."""
    choices = ", ".join(orderable)

    def dependency(
        limit: int = Query(
            DEFAULT_PAGE_LIMIT, ge=1, le=MAX_PAGE_LIMIT, description="Items per page."
        ),
        offset: int = Query(0, ge=0, le=2**31 - 1, description="Items to skip."),
        order_by: str = Query(
            default_order,
            max_length=100,
            description=f"Field to order by, '-' in front for descending: {choices}.",
        ),
    ) -> PageParams:
        return PageParams(limit, offset, order_by)

    return dependency


def as_utc(value: datetime | None) -> datetime | None:
    """A query or body datetime as aware UTC (naive values are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        from tradewind.api.errors import BadRequest

        raise BadRequest(f"date-time {value.isoformat()} is out of range") from None


class TimeDelta(BaseModel):
    """A duration as Airflow writes it."""

    type_: str = Field("TimeDelta", alias="__type")
    days: int
    seconds: int
    microseconds: int

    model_config = ConfigDict(populate_by_name=True)


def time_delta(value: timedelta | None) -> TimeDelta | None:
    """Airflow's form of a duration (None stays None)."""
    if value is None:
        return None
    return TimeDelta.model_validate(
        {
            "__type": "TimeDelta",
            "days": value.days,
            "seconds": value.seconds,
            "microseconds": value.microseconds,
        }
    )


class DAGRun(BaseModel):
    """A DAG run."""

    dag_run_id: str
    dag_id: str
    logical_date: datetime | None
    execution_date: datetime | None = Field(description="The logical date (Airflow 2 name).")
    start_date: datetime | None
    end_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    last_scheduling_decision: datetime | None
    run_type: str
    state: str
    external_trigger: bool
    conf: dict[str, Any]
    note: str | None = None
    queued_at: datetime | None
    run_after: datetime
    updated_at: datetime | None
    dag_version_id: int | None
    backfill_id: int | None
    clear_number: int


class DAGRunCollection(BaseModel):
    """A page of DAG runs."""

    dag_runs: list[DAGRun]
    total_entries: int


def run_model(run: DagRun) -> DAGRun:
    """The API form of a run row."""
    return DAGRun(
        dag_run_id=run.run_id,
        dag_id=run.dag_id,
        logical_date=run.logical_date,
        execution_date=run.logical_date,
        start_date=run.start_date,
        end_date=run.end_date,
        data_interval_start=run.data_interval_start,
        data_interval_end=run.data_interval_end,
        last_scheduling_decision=run.last_scheduling_decision,
        run_type=run.run_type,
        state=str(run.state),
        external_trigger=run.run_type == "manual",
        conf=dict(run.conf or {}),
        queued_at=run.queued_at,
        run_after=run.run_after,
        updated_at=run.updated_at,
        dag_version_id=run.dag_version_id,
        backfill_id=run.backfill_id,
        clear_number=run.clear_number or 0,
    )


class TaskInstanceModel(BaseModel):
    """A task instance (one task of one run at one map index)."""

    task_id: str
    dag_id: str
    dag_run_id: str
    map_index: int
    logical_date: datetime | None
    execution_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    duration: float | None
    state: str | None = Field(description="null while the task instance has no state yet.")
    try_number: int
    max_tries: int
    hostname: str | None
    pool: str
    pool_slots: int
    queue: str
    priority_weight: int
    operator: str | None
    queued_when: datetime | None
    scheduled_when: datetime | None
    pid: int | None
    executor: str | None
    next_retry_at: datetime | None
    rendered_fields: dict[str, Any]
    last_error: str | None
    dag_version_id: int | None
    note: str | None = None


class TaskInstanceCollection(BaseModel):
    """A page of task instances."""

    task_instances: list[TaskInstanceModel]
    total_entries: int


def ti_model(ti: TaskInstance, logical_date: datetime | None) -> TaskInstanceModel:
    """The API form of a task-instance row (``logical_date`` is its run's)."""
    return TaskInstanceModel(
        task_id=ti.task_id,
        dag_id=ti.dag_id,
        dag_run_id=ti.run_id,
        map_index=ti.map_index,
        logical_date=logical_date,
        execution_date=logical_date,
        start_date=ti.start_date,
        end_date=ti.end_date,
        duration=ti.duration,
        state=TaskState(ti.state).airflow_name,
        try_number=ti.try_number,
        max_tries=ti.max_tries,
        hostname=ti.hostname,
        pool=ti.pool,
        pool_slots=ti.pool_slots,
        queue=ti.queue,
        priority_weight=ti.priority_weight,
        operator=ti.operator,
        queued_when=ti.queued_at,
        scheduled_when=ti.scheduled_at,
        pid=ti.pid,
        executor=ti.executor,
        next_retry_at=ti.next_retry_at,
        rendered_fields=dict(ti.rendered_fields or {}),
        last_error=ti.last_error,
        dag_version_id=ti.dag_version_id,
    )


def parse_task_states(values: list[str] | None, field: str = "state") -> list[TaskState] | None:
    """Task-state filter values (``none`` stands for ``created``, as in Airflow); a bad one
    is a :class:`~tradewind.api.errors.BadRequest` naming ``field``."""
    from tradewind.api.errors import BadRequest

    if not values:
        return None
    out = []
    for value in values:
        name = "created" if value in ("none", "null", "") else value
        try:
            out.append(TaskState(name))
        except ValueError:
            raise BadRequest(
                f"unknown task state {value!r}; choose from none, "
                + ", ".join(s.value for s in TaskState if s is not TaskState.CREATED),
                field=field,
            ) from None
    return out
