"""DAG runs: list (one DAG or ``~`` for all), get, trigger, mark, clear, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field
from sqlalchemy.orm import Session

from tradewind.api.auth import requires, visible_dag_ids
from tradewind.api.context import Principal, audit_change, db_session, get_context
from tradewind.api.errors import BadRequest, Conflict, responses
from tradewind.api.schemas import (
    MAX_PAGE_LIMIT,
    Body,
    DAGRun,
    DAGRunCollection,
    PageParams,
    TaskInstanceCollection,
    as_utc,
    pagination,
    run_model,
    ti_model,
)
from tradewind.db import dags as db_dags
from tradewind.db import pages
from tradewind.db import runs as db_runs
from tradewind.db import task_instances as db_tis
from tradewind.db.run_actions import clear_runs, mark_run
from tradewind.errors import ParamValidationError
from tradewind.scheduler.decisions import manual_run_interval, run_id_for
from tradewind.sdk.params import merge_params
from tradewind.serialization import deserialize_dag
from tradewind.state import ACTIVE, RunState

__all__ = ["router"]

router = APIRouter(tags=["DAGRun"])

_RUN_ORDER = pages.order_fields("dag_runs")


def _states(values: list[str] | None, field: str = "state") -> list[RunState] | None:
    if not values:
        return None
    try:
        return [RunState(v) for v in values]
    except ValueError:
        raise BadRequest(
            f"unknown run state in {values!r}; choose from {', '.join(RunState)}", field=field
        ) from None


def _dag_filter(
    principal: Principal, session: Session, dag_id: str | None, wanted: list[str] | None = None
) -> list[str] | set[str] | None:
    """The DAG ids a listing may show: ``dag_id`` (checked by the permission dependency), or
    those asked for and visible, or every visible one (None: all)."""
    if dag_id is not None and dag_id != "~":
        db_dags.get_dag(session, dag_id)
        return [dag_id]
    visible = visible_dag_ids(principal, session, "dag_runs", "read")
    if wanted:
        return [d for d in wanted if visible is None or d in visible]
    return visible


@router.get(
    "/dags/{dag_id}/dagRuns",
    response_model=DAGRunCollection,
    responses=responses(400, 401, 403, 404),
)
def get_dag_runs(
    dag_id: str,
    page: PageParams = Depends(pagination("id", _RUN_ORDER)),
    state: list[str] | None = Query(None, description="Only runs in these states."),
    run_type: list[str] | None = Query(None, description="Only runs of these types."),
    execution_date_gte: datetime | None = None,
    execution_date_lte: datetime | None = None,
    logical_date_gte: datetime | None = None,
    logical_date_lte: datetime | None = None,
    start_date_gte: datetime | None = None,
    start_date_lte: datetime | None = None,
    end_date_gte: datetime | None = None,
    end_date_lte: datetime | None = None,
    updated_at_gte: datetime | None = None,
    updated_at_lte: datetime | None = None,
    principal: Principal = Depends(requires("dag_runs", "read")),
    session: Session = Depends(db_session),
) -> DAGRunCollection:
    """List the runs of a DAG (``~`` for every DAG)."""
    result = pages.runs_page(
        session,
        limit=page.limit,
        offset=page.offset,
        order_by=page.order_by,
        dag_ids=_dag_filter(principal, session, dag_id),
        states=_states(state),
        run_types=run_type,
        logical_date_gte=as_utc(logical_date_gte or execution_date_gte),
        logical_date_lte=as_utc(logical_date_lte or execution_date_lte),
        start_date_gte=as_utc(start_date_gte),
        start_date_lte=as_utc(start_date_lte),
        end_date_gte=as_utc(end_date_gte),
        end_date_lte=as_utc(end_date_lte),
        updated_at_gte=as_utc(updated_at_gte),
        updated_at_lte=as_utc(updated_at_lte),
    )
    return DAGRunCollection(
        dag_runs=[run_model(r) for r in result.rows], total_entries=result.total
    )


class ListDagRunsForm(Body):
    """Filters of the batch run listing."""

    order_by: str = Field("id", max_length=100)
    page_offset: int = Field(0, ge=0, le=2**31 - 1)
    page_limit: int = Field(100, ge=1, le=MAX_PAGE_LIMIT)
    dag_ids: list[str] | None = None
    states: list[str] | None = None
    execution_date_gte: datetime | None = None
    execution_date_lte: datetime | None = None
    start_date_gte: datetime | None = None
    start_date_lte: datetime | None = None
    end_date_gte: datetime | None = None
    end_date_lte: datetime | None = None


@router.post(
    "/dags/~/dagRuns/list",
    response_model=DAGRunCollection,
    responses=responses(400, 401, 403),
)
def get_dag_runs_batch(
    body: ListDagRunsForm,
    principal: Principal = Depends(requires("dag_runs", "read")),
    session: Session = Depends(db_session),
) -> DAGRunCollection:
    """List runs across DAGs with the filters in the body."""
    result = pages.runs_page(
        session,
        limit=body.page_limit,
        offset=body.page_offset,
        order_by=body.order_by,
        dag_ids=_dag_filter(principal, session, None, body.dag_ids),
        states=_states(body.states, "states"),
        logical_date_gte=as_utc(body.execution_date_gte),
        logical_date_lte=as_utc(body.execution_date_lte),
        start_date_gte=as_utc(body.start_date_gte),
        start_date_lte=as_utc(body.start_date_lte),
        end_date_gte=as_utc(body.end_date_gte),
        end_date_lte=as_utc(body.end_date_lte),
    )
    return DAGRunCollection(
        dag_runs=[run_model(r) for r in result.rows], total_entries=result.total
    )


class TriggerDAGRun(Body):
    """A manual run to create."""

    dag_run_id: str | None = Field(None, min_length=1, max_length=250)
    logical_date: datetime | None = None
    execution_date: datetime | None = Field(None, description="Airflow 2 name of logical_date.")
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    conf: dict[str, Any] = Field(default_factory=dict)
    note: str | None = Field(None, max_length=1000)


@router.post(
    "/dags/{dag_id}/dagRuns",
    response_model=DAGRun,
    responses=responses(400, 401, 403, 404, 409),
)
def post_dag_run(
    dag_id: str,
    body: TriggerDAGRun,
    request: Request,
    principal: Principal = Depends(requires("dag_runs", "create")),
    session: Session = Depends(db_session),
) -> DAGRun:
    """Trigger a run of a DAG's latest version; ``conf`` is checked against its params."""
    now = get_context(request).clock()
    dag = db_dags.get_dag(session, dag_id)
    if not dag.is_active:
        raise Conflict(f"DAG {dag_id!r} is not active: no file defines it any more")
    version = db_dags.get_latest_version(session, dag_id)
    view = deserialize_dag(version.document)
    try:
        merge_params(view.params, {}, body.conf)
    except ParamValidationError as exc:
        raise BadRequest(f"conf: {exc}", field=f"conf.{exc.param}") from None
    logical = as_utc(body.logical_date or body.execution_date) or now
    if (body.data_interval_start is None) != (body.data_interval_end is None):
        raise BadRequest(
            "give both data_interval_start and data_interval_end, or neither",
            field="data_interval_start",
        )
    if body.data_interval_start is not None and body.data_interval_end is not None:
        start, end = as_utc(body.data_interval_start), as_utc(body.data_interval_end)
        assert start is not None and end is not None
        if end < start:
            raise BadRequest(
                "data_interval_end is before data_interval_start", field="data_interval_end"
            )
        interval = (start, end)
    else:
        inferred = manual_run_interval(view.timetable, logical)
        interval = (inferred.start, inferred.end)
    run_id = body.dag_run_id or run_id_for("manual", logical)
    run = db_runs.create_run(
        session,
        view,
        run_id=run_id,
        run_type="manual",
        run_after=now,
        now=now,
        dag_version_id=version.id,
        logical_date=logical,
        data_interval=interval,
        conf=body.conf,
    )
    audit_change(
        session,
        request,
        principal,
        "api.dag_runs.trigger",
        after={"state": str(run.state), "logical_date": logical.isoformat(), "conf": body.conf},
        dag_id=dag_id,
        run_id=run_id,
    )
    return run_model(run)


@router.get(
    "/dags/{dag_id}/dagRuns/{dag_run_id}",
    response_model=DAGRun,
    responses=responses(401, 403, 404),
)
def get_dag_run(
    dag_id: str,
    dag_run_id: str,
    principal: Principal = Depends(requires("dag_runs", "read")),
    session: Session = Depends(db_session),
) -> DAGRun:
    """Get a DAG run."""
    return run_model(db_runs.get_run(session, dag_id, dag_run_id))


@router.delete(
    "/dags/{dag_id}/dagRuns/{dag_run_id}",
    status_code=204,
    response_class=Response,
    responses=responses(401, 403, 404, 409),
)
def delete_dag_run(
    dag_id: str,
    dag_run_id: str,
    request: Request,
    principal: Principal = Depends(requires("dag_runs", "delete")),
    session: Session = Depends(db_session),
) -> Response:
    """Delete a DAG run with its task instances and XComs."""
    run = db_runs.get_run(session, dag_id, dag_run_id)
    active = db_tis.count_tis(session, ["dag_id"], states=ACTIVE, dag_id=dag_id, run_id=dag_run_id)
    if active:
        raise Conflict(
            f"run {dag_run_id!r} of DAG {dag_id!r} has queued or running task instances; "
            "mark the run failed first"
        )
    before = {"state": str(run.state), "logical_date": run.logical_date}
    db_runs.delete_run(session, dag_id, dag_run_id)
    audit_change(
        session,
        request,
        principal,
        "api.dag_runs.delete",
        before={k: v.isoformat() if isinstance(v, datetime) else v for k, v in before.items()},
        dag_id=dag_id,
        run_id=dag_run_id,
    )
    return Response(status_code=204)


class UpdateDagRunState(Body):
    """The state to set a run to."""

    state: Literal["success", "failed", "queued"]


@router.patch(
    "/dags/{dag_id}/dagRuns/{dag_run_id}",
    response_model=DAGRun,
    responses=responses(400, 401, 403, 404, 409),
)
def patch_dag_run(
    dag_id: str,
    dag_run_id: str,
    body: UpdateDagRunState,
    request: Request,
    principal: Principal = Depends(requires("dag_runs", "edit")),
    session: Session = Depends(db_session),
) -> DAGRun:
    """Mark a run success or failed (its unfinished task instances too), or queue it again."""
    run = db_runs.get_run(session, dag_id, dag_run_id)
    before = str(run.state)
    changed = mark_run(session, run, RunState(body.state), now=get_context(request).clock())
    session.expire(run)
    run = db_runs.get_run(session, dag_id, dag_run_id)
    if before != str(run.state):
        audit_change(
            session,
            request,
            principal,
            "api.dag_runs.patch",
            before={"state": before},
            after={"state": str(run.state)},
            extra={"task_instances_changed": changed},
            dag_id=dag_id,
            run_id=dag_run_id,
        )
    return run_model(run)


class ClearDagRun(Body):
    """Options of clearing a run."""

    dry_run: bool = True
    only_failed: bool = False


@router.post(
    "/dags/{dag_id}/dagRuns/{dag_run_id}/clear",
    response_model=DAGRun | TaskInstanceCollection,
    responses=responses(400, 401, 403, 404),
)
def clear_dag_run(
    dag_id: str,
    dag_run_id: str,
    body: ClearDagRun,
    request: Request,
    principal: Principal = Depends(requires("dag_runs", "edit")),
    session: Session = Depends(db_session),
) -> DAGRun | TaskInstanceCollection:
    """Clear a run's task instances so they run again. With ``dry_run`` (the default, as in
    Airflow) nothing changes and the task instances that would be cleared are returned."""
    run = db_runs.get_run(session, dag_id, dag_run_id)
    now = get_context(request).clock()
    if body.dry_run:
        matched = clear_runs(session, [run], now=now, only_failed=body.only_failed, dry_run=True)
        keys = {(m.task_id, m.map_index) for m in matched}
        tis = [
            t
            for t in db_tis.list_tis(session, dag_id, dag_run_id)
            if (t.task_id, t.map_index) in keys
        ]
        return TaskInstanceCollection(
            task_instances=[ti_model(t, run.logical_date) for t in tis], total_entries=len(tis)
        )
    cleared = clear_runs(session, [run], now=now, only_failed=body.only_failed)
    audit_change(
        session,
        request,
        principal,
        "api.dag_runs.clear",
        extra={"only_failed": body.only_failed, "cleared": len(cleared)},
        dag_id=dag_id,
        run_id=dag_run_id,
    )
    session.expire_all()
    return run_model(db_runs.get_run(session, dag_id, dag_run_id))
