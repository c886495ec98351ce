"""Task instances: list across runs, get, mark a state, clear, and why one is not running."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tradewind.api.auth import requires, visible_dag_ids
from tradewind.api.context import Principal, audit_change, db_session, get_context
from tradewind.api.errors import BadRequest, responses
from tradewind.api.schemas import (
    MAX_PAGE_LIMIT,
    Body,
    PageParams,
    TaskInstanceCollection,
    TaskInstanceModel,
    as_utc,
    pagination,
    parse_task_states,
    ti_model,
)
from tradewind.db import dags as db_dags
from tradewind.db import pages
from tradewind.db import runs as db_runs
from tradewind.db import task_instances as db_tis
from tradewind.db.models import DagRun, TaskInstance
from tradewind.db.run_actions import clear_runs
from tradewind.serialization import SerializedDAG, deserialize_dag
from tradewind.state import TaskState, can_transition

__all__ = ["router"]

router = APIRouter(tags=["TaskInstance"])

_TI_ORDER = pages.order_fields("task_instances")
_RUN_PATH = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances"


def _dag_scope(
    principal: Principal, session: Session, dag_id: str, wanted: list[str] | None = None
) -> list[str] | set[str] | None:
    if dag_id != "~":
        db_dags.get_dag(session, dag_id)
        return [dag_id]
    visible = visible_dag_ids(principal, session, "task_instances", "read")
    if wanted:
        return [d for d in wanted if visible is None or d in visible]
    return visible


def _page_models(rows: list[Any]) -> list[TaskInstanceModel]:
    return [ti_model(ti, logical_date) for ti, logical_date in rows]


@router.get(
    _RUN_PATH, response_model=TaskInstanceCollection, responses=responses(400, 401, 403, 404)
)
def get_task_instances(
    dag_id: str,
    dag_run_id: str,
    page: PageParams = Depends(pagination("task_id", _TI_ORDER)),
    state: list[str] | None = Query(None, description="States ('none' for no state yet)."),
    pool: list[str] | None = Query(None),
    queue: list[str] | None = Query(None),
    executor: list[str] | None = Query(None),
    task_id: list[str] | None = Query(None, description="Only these tasks (Tradewind)."),
    map_index: int | None = Query(None, ge=-1, le=2**31 - 1),
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
    duration_gte: float | None = Query(None, allow_inf_nan=False),
    duration_lte: float | None = Query(None, allow_inf_nan=False),
    principal: Principal = Depends(requires("task_instances", "read")),
    session: Session = Depends(db_session),
) -> TaskInstanceCollection:
    """List task instances of a run (``~`` for every run, and for every DAG)."""
    dag_ids = _dag_scope(principal, session, dag_id)
    if dag_run_id != "~" and dag_id != "~":
        db_runs.get_run(session, dag_id, dag_run_id)
    result = pages.tis_page(
        session,
        limit=page.limit,
        offset=page.offset,
        order_by=page.order_by,
        dag_ids=dag_ids,
        run_ids=None if dag_run_id == "~" else [dag_run_id],
        task_ids=task_id,
        states=parse_task_states(state),
        pools=pool,
        queues=queue,
        executors=executor,
        map_index=map_index,
        logical_date_gte=as_utc(logical_date_gte or execution_date_gte),
        logical_date_lte=as_utc(logical_date_lte or execution_date_lte),
        start_date_gte=as_utc(start_date_gte),
        start_date_lte=as_utc(start_date_lte),
        end_date_gte=as_utc(end_date_gte),
        end_date_lte=as_utc(end_date_lte),
        updated_at_gte=as_utc(updated_at_gte),
        updated_at_lte=as_utc(updated_at_lte),
        duration_gte=duration_gte,
        duration_lte=duration_lte,
    )
    return TaskInstanceCollection(
        task_instances=_page_models(result.rows), total_entries=result.total
    )


class ListTaskInstanceForm(Body):
    """Filters of the batch task-instance listing."""

    order_by: str = Field("task_id", max_length=100)
    page_offset: int = Field(0, ge=0, le=2**31 - 1)
    page_limit: int = Field(100, ge=1, le=MAX_PAGE_LIMIT)
    dag_ids: list[str] | None = None
    dag_run_ids: list[str] | None = None
    task_ids: list[str] | None = None
    state: list[str] | None = None
    pool: list[str] | None = None
    queue: list[str] | None = None
    executor: list[str] | None = None
    execution_date_gte: datetime | None = None
    execution_date_lte: datetime | None = None
    start_date_gte: datetime | None = None
    start_date_lte: datetime | None = None
    end_date_gte: datetime | None = None
    end_date_lte: datetime | None = None
    duration_gte: float | None = Field(None, allow_inf_nan=False)
    duration_lte: float | None = Field(None, allow_inf_nan=False)


@router.post(
    "/dags/~/dagRuns/~/taskInstances/list",
    response_model=TaskInstanceCollection,
    responses=responses(400, 401, 403),
)
def get_task_instances_batch(
    body: ListTaskInstanceForm,
    principal: Principal = Depends(requires("task_instances", "read")),
    session: Session = Depends(db_session),
) -> TaskInstanceCollection:
    """List task instances across DAGs and runs with the filters in the body."""
    result = pages.tis_page(
        session,
        limit=body.page_limit,
        offset=body.page_offset,
        order_by=body.order_by,
        dag_ids=_dag_scope(principal, session, "~", body.dag_ids),
        run_ids=body.dag_run_ids,
        task_ids=body.task_ids,
        states=parse_task_states(body.state),
        pools=body.pool,
        queues=body.queue,
        executors=body.executor,
        logical_date_gte=as_utc(body.execution_date_gte),
        logical_date_lte=as_utc(body.execution_date_lte),
        start_date_gte=as_utc(body.start_date_gte),
        start_date_lte=as_utc(body.start_date_lte),
        end_date_gte=as_utc(body.end_date_gte),
        end_date_lte=as_utc(body.end_date_lte),
        duration_gte=body.duration_gte,
        duration_lte=body.duration_lte,
    )
    return TaskInstanceCollection(
        task_instances=_page_models(result.rows), total_entries=result.total
    )


def _one(
    session: Session, dag_id: str, dag_run_id: str, task_id: str, map_index: int
) -> tuple[DagRun, TaskInstance]:
    run = db_runs.get_run(session, dag_id, dag_run_id)
    return run, db_tis.get_ti_by_key(session, dag_id, dag_run_id, task_id, map_index)


@router.get(
    _RUN_PATH + "/{task_id}", response_model=TaskInstanceModel, responses=responses(401, 403, 404)
)
def get_task_instance(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    principal: Principal = Depends(requires("task_instances", "read")),
    session: Session = Depends(db_session),
) -> TaskInstanceModel:
    """Get a task instance (map index -1)."""
    run, ti = _one(session, dag_id, dag_run_id, task_id, -1)
    return ti_model(ti, run.logical_date)


@router.get(
    _RUN_PATH + "/{task_id}/listMapped",
    response_model=TaskInstanceCollection,
    responses=responses(401, 403, 404),
)
def get_mapped_task_instances(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    principal: Principal = Depends(requires("task_instances", "read")),
    session: Session = Depends(db_session),
) -> TaskInstanceCollection:
    """List every instance of a task in a run (all map indexes)."""
    run = db_runs.get_run(session, dag_id, dag_run_id)
    tis = db_tis.list_tis(session, dag_id, dag_run_id, task_ids=[task_id])
    return TaskInstanceCollection(
        task_instances=[ti_model(t, run.logical_date) for t in tis], total_entries=len(tis)
    )


@router.get(
    _RUN_PATH + "/{task_id}/{map_index:int}",
    response_model=TaskInstanceModel,
    responses=responses(401, 403, 404),
)
def get_mapped_task_instance(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    map_index: int = Path(..., ge=-1, le=2**31 - 1),
    principal: Principal = Depends(requires("task_instances", "read")),
    session: Session = Depends(db_session),
) -> TaskInstanceModel:
    """Get one instance of a mapped task."""
    run, ti = _one(session, dag_id, dag_run_id, task_id, map_index)
    return ti_model(ti, run.logical_date)


class TaskInstanceReference(BaseModel):
    """A task instance a change touched (its state before the change)."""

    task_id: str
    dag_id: str
    dag_run_id: str
    map_index: int
    execution_date: datetime | None
    state: str | None


class TaskInstanceReferenceCollection(BaseModel):
    """The task instances a change touched (or would touch)."""

    task_instances: list[TaskInstanceReference]


def _ref(ti: TaskInstance, logical_date: datetime | None) -> TaskInstanceReference:
    return TaskInstanceReference(
        task_id=ti.task_id,
        dag_id=ti.dag_id,
        dag_run_id=ti.run_id,
        map_index=ti.map_index,
        execution_date=logical_date,
        state=TaskState(ti.state).airflow_name,
    )


def _version_view(session: Session, run: DagRun) -> SerializedDAG:
    version = (
        db_dags.get_version(session, run.dag_version_id)
        if run.dag_version_id is not None
        else db_dags.get_latest_version(session, run.dag_id)
    )
    return deserialize_dag(version.document)


def _mark(
    session: Session,
    request: Request,
    principal: Principal,
    run: DagRun,
    tis: list[TaskInstance],
    new_state: str,
    dry_run: bool,
) -> TaskInstanceReferenceCollection:
    target = TaskState(new_state)
    refs = {
        t.id: _ref(t, run.logical_date)
        for t in tis
        if t.state is not target and can_transition(TaskState(t.state), target)
    }
    if dry_run or not refs:
        return TaskInstanceReferenceCollection(task_instances=list(refs.values()))
    now = get_context(request).clock()
    changed = db_tis.mark_state(session, list(refs), target, now=now)
    for ti_id in changed:
        ref = refs[ti_id]
        audit_change(
            session,
            request,
            principal,
            "api.task_instances.patch",
            before={"state": ref.state or "none"},
            after={"state": new_state},
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id=ref.task_id,
            map_index=ref.map_index,
        )
    return TaskInstanceReferenceCollection(task_instances=[refs[i] for i in changed])


class SetTaskInstanceState(Body):
    """The state to set a task instance to."""

    new_state: Literal["success", "failed", "skipped"]
    dry_run: bool = False


@router.patch(
    _RUN_PATH + "/{task_id}",
    response_model=TaskInstanceReferenceCollection,
    responses=responses(400, 401, 403, 404, 409),
)
def patch_task_instance(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    body: SetTaskInstanceState,
    request: Request,
    map_index: int | None = Query(
        None, ge=-1, le=2**31 - 1, description="Default: every instance."
    ),
    principal: Principal = Depends(requires("task_instances", "edit")),
    session: Session = Depends(db_session),
) -> TaskInstanceReferenceCollection:
    """Mark a task instance success, failed or skipped (every map index unless one is given);
    returns the instances that changed (or would, with ``dry_run``)."""
    run = db_runs.get_run(session, dag_id, dag_run_id)
    tis = db_tis.list_tis(session, dag_id, dag_run_id, task_ids=[task_id])
    if map_index is not None:
        tis = [t for t in tis if t.map_index == map_index]
    if not tis:
        db_tis.get_ti_by_key(session, dag_id, dag_run_id, task_id, map_index or -1)
    return _mark(session, request, principal, run, tis, body.new_state, body.dry_run)


class UpdateTaskInstancesState(Body):
    """Mark a task (and optionally its relatives) in one run."""

    dag_run_id: str = Field(..., min_length=1)
    task_id: str = Field(..., min_length=1)
    new_state: Literal["success", "failed", "skipped"]
    dry_run: bool = True
    include_upstream: bool = False
    include_downstream: bool = False


@router.post(
    "/dags/{dag_id}/updateTaskInstancesState",
    response_model=TaskInstanceReferenceCollection,
    responses=responses(400, 401, 403, 404),
)
def post_set_task_instances_state(
    dag_id: str,
    body: UpdateTaskInstancesState,
    request: Request,
    principal: Principal = Depends(requires("task_instances", "edit")),
    session: Session = Depends(db_session),
) -> TaskInstanceReferenceCollection:
    """Mark a task and, optionally, its upstream and/or downstream tasks in one run."""
    run = db_runs.get_run(session, dag_id, body.dag_run_id)
    view = _version_view(session, run)
    wanted = db_tis.selected_tasks(
        view,
        [body.task_id],
        upstream=body.include_upstream,
        downstream=body.include_downstream,
    )
    tis = db_tis.list_tis(session, dag_id, run.run_id, task_ids=wanted)
    return _mark(session, request, principal, run, tis, body.new_state, body.dry_run)


class ClearTaskInstances(Body):
    """Which task instances of a DAG to clear (defaults as in Airflow: a dry run of the
    failed ones)."""

    dry_run: bool = True
    task_ids: list[str] | None = None
    dag_run_id: str | None = None
    start_date: datetime | None = Field(None, description="Runs with a logical date from this.")
    end_date: datetime | None = Field(None, description="Runs with a logical date up to this.")
    only_failed: bool = True
    include_upstream: bool = False
    include_downstream: bool = False
    reset_dag_runs: bool = Field(True, description="Finished runs are always queued again.")


@router.post(
    "/dags/{dag_id}/clearTaskInstances",
    response_model=TaskInstanceReferenceCollection,
    responses=responses(400, 401, 403, 404),
)
def post_clear_task_instances(
    dag_id: str,
    body: ClearTaskInstances,
    request: Request,
    principal: Principal = Depends(requires("task_instances", "edit")),
    session: Session = Depends(db_session),
) -> TaskInstanceReferenceCollection:
    """Clear task instances so the scheduler runs them again; returns what was (or, with
    ``dry_run``, would be) cleared, with the states before."""
    db_dags.get_dag(session, dag_id)
    if body.dag_run_id is not None:
        runs = [db_runs.get_run(session, dag_id, body.dag_run_id)]
    else:
        runs = db_runs.list_runs(
            session,
            dag_id=dag_id,
            logical_date_from=as_utc(body.start_date),
            logical_date_to=as_utc(body.end_date),
        )
    if body.task_ids is not None:
        known = set(deserialize_dag(db_dags.get_latest_document(session, dag_id)).task_ids)
        for run in runs:
            known |= set(_version_view(session, run).task_ids) if run.dag_version_id else set()
        unknown = sorted(set(body.task_ids) - known)
        if unknown:
            raise BadRequest(
                f"DAG {dag_id!r} has no task(s) {', '.join(unknown)}", field="task_ids"
            )
    matched = clear_runs(
        session,
        runs,
        now=get_context(request).clock(),
        task_ids=body.task_ids,
        upstream=body.include_upstream,
        downstream=body.include_downstream,
        only_failed=body.only_failed,
        dry_run=body.dry_run,
    )
    refs = [
        TaskInstanceReference(
            task_id=m.task_id,
            dag_id=m.dag_id,
            dag_run_id=m.run_id,
            map_index=m.map_index,
            execution_date=m.logical_date,
            state=m.state.airflow_name,
        )
        for m in matched
    ]
    if not body.dry_run and refs:
        audit_change(
            session,
            request,
            principal,
            "api.task_instances.clear",
            extra={
                "runs": sorted({m.run_id for m in matched}),
                "task_ids": body.task_ids,
                "upstream": body.include_upstream,
                "downstream": body.include_downstream,
                "only_failed": body.only_failed,
                "cleared": len(refs),
            },
            dag_id=dag_id,
        )
    return TaskInstanceReferenceCollection(task_instances=refs)


class Dependency(BaseModel):
    """One thing holding a task instance back."""

    name: str = Field(description="The kind of rule: trigger_rule, pool, depends_on_past …")
    reason: str


class UpstreamState(BaseModel):
    """An upstream task instance the decision looked at."""

    task_id: str
    map_index: int
    state: str | None


class TaskInstanceDependencies(BaseModel):
    """Why a task instance is not running (what ``tradewind tasks why`` prints)."""

    dependencies: list[Dependency]
    reasons: list[str] = Field(description="Sentences for people, most fundamental first.")
    state: str | None
    run_state: str
    dag_paused: bool
    decision: dict[str, str]
    upstream: list[UpstreamState]


@router.get(
    _RUN_PATH + "/{task_id}/dependencies",
    response_model=TaskInstanceDependencies,
    responses=responses(401, 403, 404),
)
def get_task_instance_dependencies(
    dag_id: str,
    dag_run_id: str,
    task_id: str,
    request: Request,
    map_index: int = Query(-1, ge=-1, le=2**31 - 1),
    principal: Principal = Depends(requires("task_instances", "read")),
    session: Session = Depends(db_session),
) -> TaskInstanceDependencies:
    """Explain why a task instance is not running: the scheduler's decision for it now,
    pool and concurrency limits, the run's state and whether the DAG is paused."""
    from tradewind.api.explain import admission_blocker
    from tradewind.scheduler import decisions as d
    from tradewind.scheduler import loading

    context = get_context(request)
    dag = db_dags.get_dag(session, dag_id)
    run, ti = _one(session, dag_id, dag_run_id, task_id, map_index)
    view = _version_view(session, run)
    view.get_task(task_id)
    decision, ups = loading.decide_ti(
        session,
        view,
        run,
        ti,
        now=context.clock(),
        max_map_length=context.settings.core.max_map_length,
    )
    admission = (
        admission_blocker(session, view, run, ti, context.settings)
        if ti.state is TaskState.SCHEDULED
        else None
    )
    run_blocked = any(b.kind is d.BlockerKind.RUN_STATE for b in decision.blockers)
    reasons = d.why_not_running(
        ti=loading.snapshot(ti),
        decision=decision,
        admission=admission,
        run_state=None if run_blocked else run.state,
        dag_paused=dag.is_paused and run.backfill_id is None,
    )
    blockers = [*decision.blockers, *([admission] if admission is not None else [])]
    return TaskInstanceDependencies(
        dependencies=[Dependency(name=str(b.kind), reason=b.message) for b in blockers],
        reasons=reasons,
        state=TaskState(ti.state).airflow_name,
        run_state=str(run.state),
        dag_paused=dag.is_paused,
        decision={"action": str(decision.action), "reason": decision.reason},
        upstream=[
            UpstreamState(
                task_id=u.task_id, map_index=u.map_index, state=TaskState(u.state).airflow_name
            )
            for u in sorted(ups, key=lambda u: (u.task_id, u.map_index))
        ],
    )
