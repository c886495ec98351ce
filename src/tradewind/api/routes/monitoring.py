"""Health, version, import errors and the audit log (``eventLogs``, read-only)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tradewind._version import __version__
from tradewind.api.auth import requires
from tradewind.api.context import Principal, db_session, get_context
from tradewind.api.errors import responses
from tradewind.api.schemas import PageParams, as_utc, pagination
from tradewind.db import jobs as db_jobs
from tradewind.db import pages
from tradewind.db.engine import session_scope
from tradewind.db.models import AuditLog, DagImportError
from tradewind.errors import NotFound

__all__ = ["router"]

router = APIRouter(tags=["Monitoring"])

#: ``job.job_type`` of each component health reports on.
_COMPONENTS = {"scheduler": "scheduler", "dag_processor": "dag_processor", "triggerer": "triggerer"}


class MetaDatabaseStatus(BaseModel):
    """Whether the metadata database answers."""

    status: str


class ComponentStatus(BaseModel):
    """A component's health from its latest heartbeat (status null: never started)."""

    status: str | None
    latest_heartbeat: datetime | None


class SchedulerStatus(ComponentStatus):
    """The scheduler's health (Airflow's field name for the heartbeat too)."""

    latest_scheduler_heartbeat: datetime | None


class DagProcessorStatus(ComponentStatus):
    """The DAG processor's health (Airflow's field name for the heartbeat too)."""

    latest_dag_processor_heartbeat: datetime | None


class TriggererStatus(ComponentStatus):
    """The triggerer's health (Airflow's field name for the heartbeat too)."""

    latest_triggerer_heartbeat: datetime | None


class HealthInfo(BaseModel):
    """The health of the metadata database and of each component."""

    metadatabase: MetaDatabaseStatus
    scheduler: SchedulerStatus
    dag_processor: DagProcessorStatus
    triggerer: TriggererStatus


def _component(
    session: Session, job_type: str, now: datetime, threshold: timedelta
) -> tuple[str | None, datetime | None]:
    alive = [
        j for j in db_jobs.running_jobs(session, job_type) if now - j.latest_heartbeat <= threshold
    ]
    if alive:
        return "healthy", max(j.latest_heartbeat for j in alive)
    latest = db_jobs.latest_job(session, job_type)
    if latest is None:
        return None, None
    return "unhealthy", latest.latest_heartbeat


@router.get("/health", response_model=HealthInfo)
def get_health(request: Request) -> HealthInfo:
    """Whether the database answers and each component has a recent heartbeat (no login
    needed, so load balancers and monitors can ask)."""
    context = get_context(request)
    now = context.clock()
    threshold = timedelta(seconds=context.settings.scheduler.scheduler_health_check_threshold)
    found: dict[str, tuple[str | None, datetime | None]] = {}
    try:
        with session_scope(context.read_database.session_factory) as session:
            for name, job_type in _COMPONENTS.items():
                found[name] = _component(session, job_type, now, threshold)
        database = "healthy"
    except SQLAlchemyError:
        database = "unhealthy"
    scheduler = found.get("scheduler", (None, None))
    processor = found.get("dag_processor", (None, None))
    triggerer = found.get("triggerer", (None, None))
    return HealthInfo(
        metadatabase=MetaDatabaseStatus(status=database),
        scheduler=SchedulerStatus(
            status=scheduler[0],
            latest_heartbeat=scheduler[1],
            latest_scheduler_heartbeat=scheduler[1],
        ),
        dag_processor=DagProcessorStatus(
            status=processor[0],
            latest_heartbeat=processor[1],
            latest_dag_processor_heartbeat=processor[1],
        ),
        triggerer=TriggererStatus(
            status=triggerer[0],
            latest_heartbeat=triggerer[1],
            latest_triggerer_heartbeat=triggerer[1],
        ),
    )


class VersionInfo(BaseModel):
    """The server's version."""

    version: str
    git_version: str | None = None


@router.get("/version", response_model=VersionInfo)
def get_version() -> VersionInfo:
    """The version of Tradewind serving the API."""
    return VersionInfo(version=__version__)


class ImportErrorModel(BaseModel):
    """A DAG file that failed to import at its latest parse."""

    import_error_id: int
    timestamp: datetime
    filename: str
    relative_filename: str | None
    line: int | None
    message: str
    stack_trace: str


class ImportErrorCollection(BaseModel):
    """A page of import errors."""

    import_errors: list[ImportErrorModel]
    total_entries: int


def _import_error(row: DagImportError) -> ImportErrorModel:
    return ImportErrorModel(
        import_error_id=row.id,
        timestamp=row.timestamp,
        filename=row.filename,
        relative_filename=row.relative_filename,
        line=row.line,
        message=row.message,
        stack_trace=row.stacktrace or row.message,
    )


@router.get(
    "/importErrors", response_model=ImportErrorCollection, responses=responses(400, 401, 403)
)
def get_import_errors(
    page: PageParams = Depends(pagination("import_error_id", pages.order_fields("import_errors"))),
    principal: Principal = Depends(requires("import_errors", "read")),
    session: Session = Depends(db_session),
) -> ImportErrorCollection:
    """List the DAG files that failed to import."""
    result = pages.import_errors_page(
        session, limit=page.limit, offset=page.offset, order_by=page.order_by
    )
    return ImportErrorCollection(
        import_errors=[_import_error(r) for r in result.rows], total_entries=result.total
    )


@router.get(
    "/importErrors/{import_error_id}",
    response_model=ImportErrorModel,
    responses=responses(400, 401, 403, 404),
)
def get_import_error(
    import_error_id: int = Path(..., ge=0, le=2**63 - 1),
    principal: Principal = Depends(requires("import_errors", "read")),
    session: Session = Depends(db_session),
) -> ImportErrorModel:
    """Get one import error."""
    row = session.get(DagImportError, import_error_id)
    if row is None:
        raise NotFound("import error", str(import_error_id))
    return _import_error(row)


class EventLogModel(BaseModel):
    """One audit-log entry: who (``owner``) did what (``event``) when, and ``extra`` (JSON
    text) holding where from and the before/after of the changed fields."""

    event_log_id: int
    when: datetime
    event: str
    owner: str | None
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    map_index: int | None
    try_number: int | None = None
    execution_date: datetime | None = None
    extra: str | None


class EventLogCollection(BaseModel):
    """A page of audit-log entries."""

    event_logs: list[EventLogModel]
    total_entries: int


def _event(row: AuditLog) -> EventLogModel:
    return EventLogModel(
        event_log_id=row.id,
        when=row.when,
        event=row.event,
        owner=row.actor,
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        map_index=row.map_index,
        extra=json.dumps(row.extra, default=str) if row.extra is not None else None,
    )


def _csv(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()] or None


@router.get("/eventLogs", response_model=EventLogCollection, responses=responses(400, 401, 403))
def get_event_logs(
    page: PageParams = Depends(pagination("-event_log_id", pages.order_fields("event_logs"))),
    dag_id: str | None = Query(None, max_length=250),
    task_id: str | None = Query(None, max_length=250),
    run_id: str | None = Query(None, max_length=250),
    map_index: int | None = Query(None, ge=-1, le=2**31 - 1),
    event: str | None = Query(None, max_length=100),
    owner: str | None = Query(None, max_length=500),
    before: datetime | None = Query(None, description="Entries before this time."),
    after: datetime | None = Query(None, description="Entries after this time."),
    included_events: str | None = Query(None, description="Comma-separated events to keep."),
    excluded_events: str | None = Query(None, description="Comma-separated events to drop."),
    principal: Principal = Depends(requires("audit_log", "read")),
    session: Session = Depends(db_session),
) -> EventLogCollection:
    """List audit-log entries (newest first by default). Nothing here can be changed."""
    result = pages.audit_page(
        session,
        limit=page.limit,
        offset=page.offset,
        order_by=page.order_by,
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        map_index=map_index,
        event=event,
        owner=owner,
        before=as_utc(before),
        after=as_utc(after),
        included_events=_csv(included_events),
        excluded_events=_csv(excluded_events),
    )
    return EventLogCollection(
        event_logs=[_event(r) for r in result.rows], total_entries=result.total
    )


@router.get(
    "/eventLogs/{event_log_id}",
    response_model=EventLogModel,
    responses=responses(400, 401, 403, 404),
)
def get_event_log(
    event_log_id: int = Path(..., ge=0, le=2**63 - 1),
    principal: Principal = Depends(requires("audit_log", "read")),
    session: Session = Depends(db_session),
) -> EventLogModel:
    """Get one audit-log entry."""
    row = session.get(AuditLog, event_log_id)
    if row is None:
        raise NotFound("event log", str(event_log_id))
    return _event(row)
