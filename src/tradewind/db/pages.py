"""Filtered, ordered, paginated listings with their totals, for the API and the web UI.

Each listing takes ``limit``/``offset``, an ``order_by`` naming one of its orderable fields
(``-`` in front for descending; unknown names raise :class:`InvalidArgumentError` with
``argument="order_by"`` listing the allowed ones) and its own filters, and returns a
:class:`Page`: the rows of the page and the number of rows matching the filters. A
``dag_ids`` filter of None means every DAG (callers pass the DAGs a user may see).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tradewind.db.models import (
    ApiToken,
    AuditLog,
    Connection,
    Dag,
    DagImportError,
    DagRun,
    Role,
    SlotPool,
    TaskInstance,
    User,
    Variable,
    XCom,
)
from tradewind.errors import InvalidArgumentError
from tradewind.state import RunState, TaskState

__all__ = [
    "Page",
    "audit_page",
    "connections_page",
    "dags_page",
    "import_errors_page",
    "order_fields",
    "pools_page",
    "roles_page",
    "runs_page",
    "tis_page",
    "tokens_page",
    "users_page",
    "variables_page",
    "xcom_page",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows and how many rows match in all."""

    rows: list[T]
    total: int


_DAG_ORDER: dict[str, Any] = {
    "dag_id": Dag.dag_id,
    "is_paused": Dag.is_paused,
    "is_active": Dag.is_active,
    "owners": Dag.owners,
    "last_parsed_time": Dag.last_parsed_at,
    "next_dagrun": Dag.next_dagrun_logical_date,
    "next_dagrun_create_after": Dag.next_dagrun_run_after,
    "fileloc": Dag.fileloc,
}
_RUN_ORDER: dict[str, Any] = {
    "id": DagRun.id,
    "dag_id": DagRun.dag_id,
    "dag_run_id": DagRun.run_id,
    "run_id": DagRun.run_id,
    "state": DagRun.state,
    "run_type": DagRun.run_type,
    "logical_date": DagRun.logical_date,
    "execution_date": DagRun.logical_date,
    "run_after": DagRun.run_after,
    "start_date": DagRun.start_date,
    "end_date": DagRun.end_date,
    "queued_at": DagRun.queued_at,
    "updated_at": DagRun.updated_at,
    "data_interval_start": DagRun.data_interval_start,
    "data_interval_end": DagRun.data_interval_end,
}
_TI_ORDER: dict[str, Any] = {
    "dag_id": TaskInstance.dag_id,
    "dag_run_id": TaskInstance.run_id,
    "run_id": TaskInstance.run_id,
    "task_id": TaskInstance.task_id,
    "map_index": TaskInstance.map_index,
    "state": TaskInstance.state,
    "try_number": TaskInstance.try_number,
    "start_date": TaskInstance.start_date,
    "end_date": TaskInstance.end_date,
    "duration": TaskInstance.duration,
    "pool": TaskInstance.pool,
    "queue": TaskInstance.queue,
    "priority_weight": TaskInstance.priority_weight,
    "queued_when": TaskInstance.queued_at,
    "updated_at": TaskInstance.updated_at,
    "logical_date": DagRun.logical_date,
    "execution_date": DagRun.logical_date,
}
_AUDIT_ORDER: dict[str, Any] = {
    "event_log_id": AuditLog.id,
    "when": AuditLog.when,
    "event": AuditLog.event,
    "owner": AuditLog.actor,
    "dag_id": AuditLog.dag_id,
    "task_id": AuditLog.task_id,
    "run_id": AuditLog.run_id,
}
_IMPORT_ERROR_ORDER: dict[str, Any] = {
    "import_error_id": DagImportError.id,
    "timestamp": DagImportError.timestamp,
    "filename": DagImportError.filename,
}
_VARIABLE_ORDER: dict[str, Any] = {"key": Variable.key, "id": Variable.id}
_CONNECTION_ORDER: dict[str, Any] = {
    "connection_id": Connection.conn_id,
    "conn_type": Connection.conn_type,
    "host": Connection.host,
    "id": Connection.id,
}
_POOL_ORDER: dict[str, Any] = {"name": SlotPool.pool, "slots": SlotPool.slots, "id": SlotPool.id}
_USER_ORDER: dict[str, Any] = {
    "username": User.username,
    "email": User.email,
    "created_on": User.created_at,
    "last_login": User.last_login,
    "id": User.id,
}
_ROLE_ORDER: dict[str, Any] = {"name": Role.name, "id": Role.id}
_XCOM_ORDER: dict[str, Any] = {
    "key": XCom.key,
    "task_id": XCom.task_id,
    "map_index": XCom.map_index,
    "timestamp": XCom.created_at,
}
_TOKEN_ORDER: dict[str, Any] = {
    "id": ApiToken.id,
    "name": ApiToken.name,
    "created_at": ApiToken.created_at,
    "expires_at": ApiToken.expires_at,
}

#: The orderable fields of each listing (for documentation and the UI's sortable columns).
ORDERABLE: dict[str, Mapping[str, Any]] = {
    "dags": _DAG_ORDER,
    "dag_runs": _RUN_ORDER,
    "task_instances": _TI_ORDER,
    "event_logs": _AUDIT_ORDER,
    "import_errors": _IMPORT_ERROR_ORDER,
    "variables": _VARIABLE_ORDER,
    "connections": _CONNECTION_ORDER,
    "pools": _POOL_ORDER,
    "users": _USER_ORDER,
    "roles": _ROLE_ORDER,
    "xcom_entries": _XCOM_ORDER,
    "tokens": _TOKEN_ORDER,
}


def order_fields(listing: str) -> list[str]:
    """The names ``order_by`` accepts for a listing (without the ``-`` prefix)."""
    return sorted(ORDERABLE[listing])


def _order(fields: Mapping[str, Any], order_by: str, tiebreak: Sequence[Any]) -> list[Any]:
    descending = order_by.startswith("-")
    name = order_by[1:] if descending else order_by
    column = fields.get(name)
    if column is None:
        raise InvalidArgumentError(
            f"cannot order by {name!r}; choose one of {', '.join(sorted(fields))} "
            "(with '-' in front for descending)",
            argument="order_by",
        )
    first = column.desc() if descending else column.asc()
    rest = [c.desc() if descending else c.asc() for c in tiebreak if c is not column]
    return [first, *rest]


def _page(
    session: Session,
    statement: Any,
    *,
    order: list[Any],
    limit: int,
    offset: int,
    scalars: bool = True,
) -> Page[Any]:
    total = session.scalar(
        sa.select(sa.func.count()).select_from(statement.order_by(None).subquery())
    )
    ordered = statement.order_by(*order).limit(limit).offset(offset)
    rows: list[Any]
    if scalars:
        rows = list(session.scalars(ordered))
    else:
        rows = [tuple(row) for row in session.execute(ordered)]
    return Page(rows, int(total or 0))


def _in(statement: Any, column: Any, values: Collection[Any] | None) -> Any:
    if values is None:
        return statement
    return statement.where(column.in_(list(values)))


def _between(statement: Any, column: Any, gte: datetime | None, lte: datetime | None) -> Any:
    if gte is not None:
        statement = statement.where(column >= gte)
    if lte is not None:
        statement = statement.where(column <= lte)
    return statement


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def dags_page(
    session: Session,
    *,
    limit: int,
    offset: int,
    order_by: str = "dag_id",
    dag_ids: Collection[str] | None = None,
    dag_id_pattern: str | None = None,
    tags: Collection[str] | None = None,
    only_active: bool = True,
    paused: bool | None = None,
) -> Page[Dag]:
    """DAGs; ``dag_id_pattern`` matches anywhere in the id (case-insensitive), ``tags`` keeps
    DAGs carrying at least one of them."""
    statement = _in(sa.select(Dag), Dag.dag_id, dag_ids)
    if dag_id_pattern:
        statement = statement.where(Dag.dag_id.ilike(_like(dag_id_pattern), escape="\\"))
    if only_active:
        statement = statement.where(Dag.is_active.is_(True))
    if paused is not None:
        statement = statement.where(Dag.is_paused.is_(paused))
    if tags:
        # Tags are a JSON list: match the few candidates in Python rather than per dialect.
        wanted = set(tags)
        matching = [
            dag_id
            for dag_id, dag_tags in session.execute(
                statement.with_only_columns(Dag.dag_id, Dag.tags)
            )
            if wanted & set(dag_tags or ())
        ]
        statement = statement.where(Dag.dag_id.in_(matching))
    order = _order(_DAG_ORDER, order_by, [Dag.dag_id])
    return _page(session, statement, order=order, limit=limit, offset=offset)


def runs_page(
    session: Session,
    *,
    limit: int,
    offset: int,
    order_by: str = "id",
    dag_ids: Collection[str] | None = None,
    run_ids: Collection[str] | None = None,
    states: Collection[RunState] | None = None,
    run_types: Collection[str] | None = None,
    logical_date_gte: datetime | None = None,
    logical_date_lte: datetime | None = None,
    start_date_gte: datetime | None = None,
    start_date_lte: datetime | None = None,
    end_date_gte: datetime | None = None,
    end_date_lte: datetime | None = None,
    updated_at_gte: datetime | None = None,
    updated_at_lte: datetime | None = None,
) -> Page[DagRun]:
    """DAG runs matching every given filter."""
    statement = _in(sa.select(DagRun), DagRun.dag_id, dag_ids)
    statement = _in(statement, DagRun.run_id, run_ids)
    statement = _in(statement, DagRun.state, [RunState(s) for s in states] if states else None)
    statement = _in(statement, DagRun.run_type, run_types or None)
    statement = _between(statement, DagRun.logical_date, logical_date_gte, logical_date_lte)
    statement = _between(statement, DagRun.start_date, start_date_gte, start_date_lte)
    statement = _between(statement, DagRun.end_date, end_date_gte, end_date_lte)
    statement = _between(statement, DagRun.updated_at, updated_at_gte, updated_at_lte)
    order = _order(_RUN_ORDER, order_by, [DagRun.id])
    return _page(session, statement, order=order, limit=limit, offset=offset)


def tis_page(
    session: Session,
    *,
    limit: int,
    offset: int,
    order_by: str = "map_index",
    dag_ids: Collection[str] | None = None,
    run_ids: Collection[str] | None = None,
    task_ids: Collection[str] | None = None,
    states: Collection[TaskState] | None = None,
    pools: Collection[str] | None = None,
    queues: Collection[str] | None = None,
    executors: Collection[str] | None = None,
    map_index: int | None = None,
    logical_date_gte: datetime | None = None,
    logical_date_lte: datetime | None = None,
    start_date_gte: datetime | None = None,
    start_date_lte: datetime | None = None,
    end_date_gte: datetime | None = None,
    end_date_lte: datetime | None = None,
    updated_at_gte: datetime | None = None,
    updated_at_lte: datetime | None = None,
    duration_gte: float | None = None,
    duration_lte: float | None = None,
) -> Page[Any]:
    """Task instances across runs; rows are ``(TaskInstance, run logical date)``."""
    statement = sa.select(TaskInstance, DagRun.logical_date).join(
        DagRun,
        sa.and_(DagRun.dag_id == TaskInstance.dag_id, DagRun.run_id == TaskInstance.run_id),
    )
    statement = _in(statement, TaskInstance.dag_id, dag_ids)
    statement = _in(statement, TaskInstance.run_id, run_ids)
    statement = _in(statement, TaskInstance.task_id, task_ids)
    statement = _in(
        statement, TaskInstance.state, [TaskState(s) for s in states] if states else None
    )
    statement = _in(statement, TaskInstance.pool, pools or None)
    statement = _in(statement, TaskInstance.queue, queues or None)
    statement = _in(statement, TaskInstance.executor, executors or None)
    if map_index is not None:
        statement = statement.where(TaskInstance.map_index == map_index)
    statement = _between(statement, DagRun.logical_date, logical_date_gte, logical_date_lte)
    statement = _between(statement, TaskInstance.start_date, start_date_gte, start_date_lte)
    statement = _between(statement, TaskInstance.end_date, end_date_gte, end_date_lte)
    statement = _between(statement, TaskInstance.updated_at, updated_at_gte, updated_at_lte)
    if duration_gte is not None:
        statement = statement.where(TaskInstance.duration >= duration_gte)
    if duration_lte is not None:
        statement = statement.where(TaskInstance.duration <= duration_lte)
    order = _order(
        _TI_ORDER,
        order_by,
        [TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index],
    )
    return _page(session, statement, order=order, limit=limit, offset=offset, scalars=False)


def audit_page(
    session: Session,
    *,
    limit: int,
    offset: int,
    order_by: str = "-event_log_id",
    dag_id: str | None = None,
    task_id: str | None = None,
    run_id: str | None = None,
    map_index: int | None = None,
    event: str | None = None,
    owner: str | None = None,
    before: datetime | None = None,
    after: datetime | None = None,
    included_events: Collection[str] | None = None,
    excluded_events: Collection[str] | None = None,
) -> Page[AuditLog]:
    """Audit log rows (newest first by default)."""
    statement = sa.select(AuditLog)
    for column, value in (
        (AuditLog.dag_id, dag_id),
        (AuditLog.task_id, task_id),
        (AuditLog.run_id, run_id),
        (AuditLog.map_index, map_index),
        (AuditLog.event, event),
        (AuditLog.actor, owner),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if before is not None:
        statement = statement.where(AuditLog.when < before)
    if after is not None:
        statement = statement.where(AuditLog.when > after)
    statement = _in(statement, AuditLog.event, included_events or None)
    if excluded_events:
        statement = statement.where(AuditLog.event.not_in(list(excluded_events)))
    order = _order(_AUDIT_ORDER, order_by, [AuditLog.id])
    return _page(session, statement, order=order, limit=limit, offset=offset)


def _simple(
    session: Session,
    model: Any,
    fields: Mapping[str, Any],
    order_by: str,
    limit: int,
    offset: int,
    *conditions: Any,
) -> Page[Any]:
    statement = sa.select(model).where(*conditions)
    order = _order(fields, order_by, [model.id])
    return _page(session, statement, order=order, limit=limit, offset=offset)


def import_errors_page(
    session: Session, *, limit: int, offset: int, order_by: str = "import_error_id"
) -> Page[DagImportError]:
    """Import errors."""
    return _simple(session, DagImportError, _IMPORT_ERROR_ORDER, order_by, limit, offset)


def variables_page(
    session: Session, *, limit: int, offset: int, order_by: str = "key"
) -> Page[Variable]:
    """Variable rows (values still encrypted)."""
    return _simple(session, Variable, _VARIABLE_ORDER, order_by, limit, offset)


def connections_page(
    session: Session, *, limit: int, offset: int, order_by: str = "connection_id"
) -> Page[Connection]:
    """Connection rows (secrets still encrypted)."""
    return _simple(session, Connection, _CONNECTION_ORDER, order_by, limit, offset)


def pools_page(
    session: Session, *, limit: int, offset: int, order_by: str = "name"
) -> Page[SlotPool]:
    """Pool rows."""
    return _simple(session, SlotPool, _POOL_ORDER, order_by, limit, offset)


def users_page(
    session: Session, *, limit: int, offset: int, order_by: str = "username"
) -> Page[User]:
    """Users."""
    return _simple(session, User, _USER_ORDER, order_by, limit, offset)


def roles_page(session: Session, *, limit: int, offset: int, order_by: str = "name") -> Page[Role]:
    """Roles."""
    return _simple(session, Role, _ROLE_ORDER, order_by, limit, offset)


def tokens_page(
    session: Session, user_id: int, *, limit: int, offset: int, order_by: str = "-created_at"
) -> Page[ApiToken]:
    """A user's API tokens."""
    return _simple(
        session, ApiToken, _TOKEN_ORDER, order_by, limit, offset, ApiToken.user_id == user_id
    )


def xcom_page(
    session: Session,
    dag_id: str,
    run_id: str,
    task_id: str,
    *,
    limit: int,
    offset: int,
    order_by: str = "key",
    map_index: int | None = None,
    key: str | None = None,
) -> Page[XCom]:
    """A task instance's XCom rows (values still encoded)."""
    statement = sa.select(XCom).where(
        XCom.dag_id == dag_id, XCom.run_id == run_id, XCom.task_id == task_id
    )
    if map_index is not None:
        statement = statement.where(XCom.map_index == map_index)
    if key is not None:
        statement = statement.where(XCom.key == key)
    order = _order(_XCOM_ORDER, order_by, [XCom.map_index, XCom.key])
    return _page(session, statement, order=order, limit=limit, offset=offset)
