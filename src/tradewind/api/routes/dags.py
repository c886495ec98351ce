"""DAGs: list, get, pause/unpause, delete, details, tasks, versions and source code."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tradewind.api.auth import check_dag, requires, visible_dag_ids
from tradewind.api.context import Principal, audit_change, db_session
from tradewind.api.errors import BadRequest, Conflict, responses
from tradewind.api.schemas import Body, PageParams, TimeDelta, pagination, time_delta
from tradewind.db import dags as db_dags
from tradewind.db import pages
from tradewind.db import task_instances as db_tis
from tradewind.db.models import Dag
from tradewind.errors import NotFound
from tradewind.serialization import SerializedDAG, deserialize_dag
from tradewind.state import ACTIVE

__all__ = ["router"]

router = APIRouter(tags=["DAG"])


class Tag(BaseModel):
    """A DAG tag."""

    name: str


class DAGModel(BaseModel):
    """A DAG as the latest parse of its file describes it."""

    dag_id: str
    dag_display_name: str
    is_paused: bool
    is_active: bool
    last_parsed_time: datetime | None
    fileloc: str | None
    relative_fileloc: str | None
    file_token: str = Field(description="Opaque key of the DAG's source at /dagSources.")
    owners: list[str]
    description: str | None
    timetable_summary: str | None
    timetable_description: str | None
    tags: list[Tag]
    max_active_tasks: int | None
    max_active_runs: int | None
    has_import_errors: bool
    next_dagrun: datetime | None
    next_dagrun_data_interval_start: datetime | None
    next_dagrun_data_interval_end: datetime | None
    next_dagrun_create_after: datetime | None
    latest_version_id: int | None


class DAGCollection(BaseModel):
    """A page of DAGs."""

    dags: list[DAGModel]
    total_entries: int


class DAGPatch(Body):
    """The fields of a DAG that can change."""

    is_paused: bool


class ParamModel(BaseModel):
    """One DAG param: default value, description and JSON schema."""

    value: Any = None
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")


class DAGDetail(DAGModel):
    """A DAG with what its latest version says in full."""

    timezone: str
    catchup: bool
    start_date: datetime | None
    end_date: datetime | None
    dag_run_timeout: TimeDelta | None
    doc_md: str | None
    params: dict[str, ParamModel]
    params_schema: dict[str, Any]
    is_paused_upon_creation: bool | None
    render_template_as_native_obj: bool
    template_search_path: list[str]
    concurrency: int | None
    fail_fast: bool
    max_consecutive_failed_dag_runs: int
    latest_version_number: int | None
    task_count: int


class ClassRef(BaseModel):
    """Where a task's operator class lives."""

    class_name: str
    module_path: str


class TaskModel(BaseModel):
    """One task of a DAG's latest version."""

    task_id: str
    task_display_name: str
    operator_name: str
    class_ref: ClassRef
    owner: str
    start_date: datetime | None
    end_date: datetime | None
    trigger_rule: str
    depends_on_past: bool
    wait_for_downstream: bool
    retries: int
    queue: str
    pool: str
    pool_slots: int
    execution_timeout: TimeDelta | None
    retry_delay: TimeDelta | None
    retry_exponential_backoff: float
    priority_weight: int
    weight_rule: str
    ui_color: str
    ui_fgcolor: str
    template_fields: list[str]
    downstream_task_ids: list[str]
    upstream_task_ids: list[str]
    task_group_id: str | None
    is_mapped: bool
    is_setup: bool
    is_teardown: bool
    doc_md: str | None


class TaskCollection(BaseModel):
    """The tasks of a DAG."""

    tasks: list[TaskModel]
    total_entries: int


class DagVersionModel(BaseModel):
    """One serialized version of a DAG."""

    id: int
    dag_id: str
    version_number: int
    hash: str
    created_at: datetime


class DagVersionCollection(BaseModel):
    """A DAG's versions."""

    dag_versions: list[DagVersionModel]
    total_entries: int


class DAGSource(BaseModel):
    """The text of a DAG's file."""

    content: str


def file_token(dag_id: str) -> str:
    """The opaque key of a DAG's source (its id, URL-safe encoded)."""
    return base64.urlsafe_b64encode(dag_id.encode()).decode().rstrip("=")


def _dag_of_token(token: str) -> str:
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        dag_id = raw.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise BadRequest(f"malformed file token {token!r}", field="file_token") from None
    if not dag_id:
        raise BadRequest(f"malformed file token {token!r}", field="file_token")
    return dag_id


def dag_model(dag: Dag, model: type[DAGModel] = DAGModel, **extra: Any) -> Any:
    """The API form of a DAG row."""
    owners = [o.strip() for o in (dag.owners or "").split(",") if o.strip()]
    return model(
        dag_id=dag.dag_id,
        dag_display_name=extra.pop("dag_display_name", None) or dag.dag_id,
        is_paused=dag.is_paused,
        is_active=dag.is_active,
        last_parsed_time=dag.last_parsed_at,
        fileloc=dag.fileloc,
        relative_fileloc=dag.relative_fileloc,
        file_token=file_token(dag.dag_id),
        owners=owners,
        description=dag.description,
        timetable_summary=dag.timetable_summary,
        timetable_description=dag.timetable_summary,
        tags=[Tag(name=t) for t in dag.tags or []],
        max_active_tasks=dag.max_active_tasks,
        max_active_runs=dag.max_active_runs,
        has_import_errors=dag.has_import_errors,
        next_dagrun=dag.next_dagrun_logical_date,
        next_dagrun_data_interval_start=dag.next_dagrun_data_interval_start,
        next_dagrun_data_interval_end=dag.next_dagrun_data_interval_end,
        next_dagrun_create_after=dag.next_dagrun_run_after,
        latest_version_id=dag.latest_version_id,
        **extra,
    )


def latest_view(session: Session, dag_id: str) -> SerializedDAG:
    """The DAG's latest version, deserialized."""
    return deserialize_dag(db_dags.get_latest_document(session, dag_id))


_DAG_ORDER = pages.order_fields("dags")
_UPDATE_FIELDS = {"is_paused"}


def _check_mask(update_mask: list[str] | None) -> None:
    unknown = sorted(set(update_mask or ()) - _UPDATE_FIELDS)
    if unknown:
        raise BadRequest(
            f"update_mask: {', '.join(unknown)} cannot be changed; only is_paused can",
            field="update_mask",
        )


@router.get("/dags", response_model=DAGCollection, responses=responses(400, 401, 403))
def get_dags(
    page: PageParams = Depends(pagination("dag_id", _DAG_ORDER)),
    tags: list[str] | None = Query(None, description="Only DAGs with one of these tags."),
    only_active: bool = Query(True, description="Leave out DAGs no file defines any more."),
    paused: bool | None = Query(None, description="Only paused (true) or unpaused (false)."),
    dag_id_pattern: str | None = Query(None, max_length=250, description="Part of the id."),
    principal: Principal = Depends(requires("dags", "read")),
    session: Session = Depends(db_session),
) -> DAGCollection:
    """List DAGs."""
    result = pages.dags_page(
        session,
        limit=page.limit,
        offset=page.offset,
        order_by=page.order_by,
        dag_ids=visible_dag_ids(principal, session),
        dag_id_pattern=dag_id_pattern,
        tags=tags,
        only_active=only_active,
        paused=paused,
    )
    return DAGCollection(dags=[dag_model(d) for d in result.rows], total_entries=result.total)


def _set_paused(
    session: Session, request: Request, principal: Principal, dag: Dag, paused: bool
) -> None:
    if dag.is_paused == paused:
        return
    before = {"is_paused": dag.is_paused}
    db_dags.set_paused(session, dag.dag_id, paused)
    audit_change(
        session,
        request,
        principal,
        "api.dags.patch",
        before=before,
        after={"is_paused": paused},
        dag_id=dag.dag_id,
    )


@router.patch("/dags", response_model=DAGCollection, responses=responses(400, 401, 403))
def patch_dags(
    body: DAGPatch,
    request: Request,
    dag_id_pattern: str = Query(..., min_length=1, max_length=250, description="Part of the id."),
    update_mask: list[str] | None = Query(None),
    tags: list[str] | None = Query(None),
    only_active: bool = Query(True),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=2**31 - 1),
    principal: Principal = Depends(requires("dags", "edit")),
    session: Session = Depends(db_session),
) -> DAGCollection:
    """Pause or unpause every DAG matching the filters (that the caller may edit)."""
    _check_mask(update_mask)
    result = pages.dags_page(
        session,
        limit=limit,
        offset=offset,
        dag_ids=visible_dag_ids(principal, session, "dags", "edit"),
        dag_id_pattern=dag_id_pattern,
        tags=tags,
        only_active=only_active,
    )
    for dag in result.rows:
        _set_paused(session, request, principal, dag, body.is_paused)
    return DAGCollection(dags=[dag_model(d) for d in result.rows], total_entries=result.total)


@router.get("/dags/{dag_id}", response_model=DAGModel, responses=responses(401, 403, 404))
def get_dag(
    dag_id: str,
    principal: Principal = Depends(requires("dags", "read")),
    session: Session = Depends(db_session),
) -> DAGModel:
    """Get a DAG."""
    result: DAGModel = dag_model(db_dags.get_dag(session, dag_id))
    return result


@router.patch("/dags/{dag_id}", response_model=DAGModel, responses=responses(400, 401, 403, 404))
def patch_dag(
    dag_id: str,
    body: DAGPatch,
    request: Request,
    update_mask: list[str] | None = Query(None),
    principal: Principal = Depends(requires("dags", "edit")),
    session: Session = Depends(db_session),
) -> DAGModel:
    """Pause or unpause a DAG."""
    _check_mask(update_mask)
    dag = db_dags.get_dag(session, dag_id)
    _set_paused(session, request, principal, dag, body.is_paused)
    result: DAGModel = dag_model(db_dags.get_dag(session, dag_id))
    return result


@router.delete(
    "/dags/{dag_id}",
    status_code=204,
    response_class=Response,
    responses=responses(401, 403, 404, 409),
)
def delete_dag(
    dag_id: str,
    request: Request,
    principal: Principal = Depends(requires("dags", "delete")),
    session: Session = Depends(db_session),
) -> Response:
    """Delete a DAG with its versions, runs and task instances (not its file)."""
    dag = db_dags.get_dag(session, dag_id)
    active = db_tis.count_tis(session, ["dag_id"], states=ACTIVE, dag_id=dag_id)
    if active:
        raise Conflict(
            f"DAG {dag_id!r} has {sum(active.values())} queued or running task instance(s); "
            "wait for them to finish (or mark them) before deleting it"
        )
    before = {"is_paused": dag.is_paused, "fileloc": dag.fileloc}
    db_dags.delete_dag(session, dag_id)
    audit_change(session, request, principal, "api.dags.delete", before=before, dag_id=dag_id)
    return Response(status_code=204)


@router.get("/dags/{dag_id}/details", response_model=DAGDetail, responses=responses(401, 403, 404))
def get_dag_details(
    dag_id: str,
    principal: Principal = Depends(requires("dags", "read")),
    session: Session = Depends(db_session),
) -> DAGDetail:
    """Get a DAG with the details of its latest version."""
    dag = db_dags.get_dag(session, dag_id)
    version = db_dags.get_latest_version(session, dag_id)
    view = deserialize_dag(version.document)
    params = {
        name: ParamModel(
            value=param.value if param.has_value else None,
            description=param.description,
            schema=dict(param.schema or {}),
        )
        for name, param in view.params.items()
    }
    result: DAGDetail = dag_model(
        dag,
        DAGDetail,
        dag_display_name=view.dag_display_name,
        timezone=str(getattr(view.timezone, "key", None) or view.timezone),
        catchup=view.catchup,
        start_date=view.start_date,
        end_date=view.end_date,
        dag_run_timeout=time_delta(view.dagrun_timeout),
        doc_md=view.doc_md,
        params=params,
        params_schema=view.params_schema,
        is_paused_upon_creation=view.is_paused_upon_creation,
        render_template_as_native_obj=view.render_template_as_native_obj,
        template_search_path=view.template_searchpath,
        concurrency=view.max_active_tasks,
        fail_fast=view.fail_fast,
        max_consecutive_failed_dag_runs=view.max_consecutive_failed_dag_runs,
        latest_version_number=version.version_number,
        task_count=len(view.task_dict),
    )
    return result


def task_model(task: Any) -> TaskModel:
    """The API form of a serialized task."""
    module, _, name = task.operator_class.rpartition(".")
    return TaskModel(
        task_id=task.task_id,
        task_display_name=task.task_display_name or task.task_id,
        operator_name=task.operator_name,
        class_ref=ClassRef(class_name=name, module_path=module),
        owner=task.owner,
        start_date=task.start_date,
        end_date=task.end_date,
        trigger_rule=str(task.trigger_rule),
        depends_on_past=task.depends_on_past,
        wait_for_downstream=task.wait_for_downstream,
        retries=int(task.retries or 0),
        queue=task.queue,
        pool=task.pool,
        pool_slots=int(task.pool_slots),
        execution_timeout=time_delta(task.execution_timeout),
        retry_delay=time_delta(task.retry_delay),
        retry_exponential_backoff=float(task.retry_exponential_backoff or 0),
        priority_weight=int(task.priority_weight_total),
        weight_rule=str(task.weight_rule),
        ui_color=task.ui_color,
        ui_fgcolor=task.ui_fgcolor,
        template_fields=list(task.template_fields),
        downstream_task_ids=sorted(task.downstream_task_ids),
        upstream_task_ids=sorted(task.upstream_task_ids),
        task_group_id=task.task_group_id,
        is_mapped=task.is_mapped,
        is_setup=task.is_setup,
        is_teardown=task.is_teardown,
        doc_md=task.doc_md,
    )


_TASK_ORDER = ["task_id", "operator_name", "priority_weight", "pool", "queue"]


@router.get(
    "/dags/{dag_id}/tasks", response_model=TaskCollection, responses=responses(400, 401, 403, 404)
)
def get_tasks(
    dag_id: str,
    order_by: str = Query("task_id", max_length=100, description=", ".join(_TASK_ORDER)),
    principal: Principal = Depends(requires("dags", "read")),
    session: Session = Depends(db_session),
) -> TaskCollection:
    """List the tasks of a DAG's latest version."""
    name = order_by.removeprefix("-")
    if name not in _TASK_ORDER:
        raise BadRequest(
            f"cannot order tasks by {name!r}; choose one of {', '.join(_TASK_ORDER)}",
            field="order_by",
        )
    tasks = [task_model(t) for t in latest_view(session, dag_id).tasks]
    tasks.sort(key=lambda t: getattr(t, name), reverse=order_by.startswith("-"))
    return TaskCollection(tasks=tasks, total_entries=len(tasks))


@router.get(
    "/dags/{dag_id}/tasks/{task_id}", response_model=TaskModel, responses=responses(401, 403, 404)
)
def get_task(
    dag_id: str,
    task_id: str,
    principal: Principal = Depends(requires("dags", "read")),
    session: Session = Depends(db_session),
) -> TaskModel:
    """Get one task of a DAG's latest version."""
    return task_model(latest_view(session, dag_id).get_task(task_id))


@router.get(
    "/dags/{dag_id}/dagVersions",
    response_model=DagVersionCollection,
    responses=responses(401, 403, 404),
)
def get_dag_versions(
    dag_id: str,
    principal: Principal = Depends(requires("dags", "read")),
    session: Session = Depends(db_session),
) -> DagVersionCollection:
    """List a DAG's serialized versions, oldest first (Tradewind extension)."""
    db_dags.get_dag(session, dag_id)
    versions = [
        DagVersionModel(
            id=v.id,
            dag_id=v.dag_id,
            version_number=v.version_number,
            hash=v.hash,
            created_at=v.created_at,
        )
        for v in db_dags.list_versions(session, dag_id)
    ]
    return DagVersionCollection(dag_versions=versions, total_entries=len(versions))


@router.get(
    "/dagSources/{file_token}",
    response_model=DAGSource,
    responses={
        **responses(400, 401, 403, 404),
        200: {"content": {"text/plain": {}}, "description": "The source"},
    },
)
def get_dag_source(
    file_token: str,
    request: Request,
    principal: Principal = Depends(requires("dags", "read")),
    session: Session = Depends(db_session),
) -> Any:
    """Get the source of a DAG's file (``Accept: text/plain`` for the bare text)."""
    dag_id = _dag_of_token(file_token)
    check_dag(principal, session, "dags", "read", dag_id)
    dag = db_dags.get_dag(session, dag_id)
    if not dag.fileloc:
        raise NotFound("DAG source", dag_id)
    try:
        content = Path(dag.fileloc).read_text(encoding="utf-8", errors="replace")
    except OSError:
        raise NotFound("DAG source", f"{dag_id} ({dag.fileloc})") from None
    if "text/plain" in request.headers.get("accept", ""):
        return PlainTextResponse(content)
    return DAGSource(content=content)
