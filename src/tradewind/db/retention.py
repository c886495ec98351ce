"""``tradewind db clean``: delete old rows in small batches, each in its own transaction.

What is old, per table:

===========================  ==================================================================
table                        rows deleted
===========================  ==================================================================
``dag_run``                  finished runs (success/failed) that ended before ``before``,
                             except each DAG's newest run; with their task instances, history,
                             XComs and task maps
``task_instance``            task instances of those runs (the runs stay unless ``dag_run`` is
``task_instance_history``    cleaned too); likewise history rows, XComs and task maps
``xcom``, ``task_map``
``audit_log``                rows written before ``before``
``import_error``             errors recorded before ``before`` (files not parsed since)
``job``                      finished jobs whose last heartbeat is before ``before``
``asset_event``              events before ``before``
===========================  ==================================================================

Each batch deletes at most ``batch_size`` rows of one table and commits, so no lock is held
for long and an interrupted clean simply continues next time. ``dry_run`` counts instead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tradewind.db.engine import session_scope
from tradewind.db.models import (
    AssetEvent,
    AuditLog,
    DagImportError,
    DagRun,
    Job,
    TaskInstance,
    TaskInstanceHistory,
    TaskMap,
    XCom,
)
from tradewind.errors import InvalidArgumentError
from tradewind.state import RunState

__all__ = ["CLEANABLE_TABLES", "RUN_CHILD_TABLES", "ProgressCallback", "clean"]

#: Tables whose rows belong to a run, deleted before the runs themselves (order matters).
RUN_CHILD_TABLES = ("xcom", "task_map", "task_instance_history", "task_instance")
#: Every table ``clean`` can clean, in the order it cleans them.
CLEANABLE_TABLES = (*RUN_CHILD_TABLES, "dag_run", "audit_log", "import_error", "job", "asset_event")

#: Called after each batch with (table, rows deleted so far in that table).
ProgressCallback = Callable[[str, int], None]

_CHILD_MODELS: dict[str, Any] = {
    "xcom": XCom,
    "task_map": TaskMap,
    "task_instance_history": TaskInstanceHistory,
    "task_instance": TaskInstance,
}


def _old_runs(before: datetime) -> Any:
    newest = sa.select(sa.func.max(DagRun.id)).group_by(DagRun.dag_id)
    return sa.select(DagRun.dag_id, DagRun.run_id).where(
        DagRun.state.in_([RunState.SUCCESS, RunState.FAILED]),
        sa.func.coalesce(DagRun.end_date, DagRun.run_after) < before,
        DagRun.id.not_in(newest),
    )


def _child_key(model: Any) -> Any:
    # Composite primary keys (xcom, task_map) are matched as a row value; SQLite (>= 3.15) and
    # PostgreSQL both accept (a, b) IN (SELECT ...).
    pk = list(sa.inspect(model).primary_key)
    return pk[0] if len(pk) == 1 else sa.tuple_(*pk)


def _child_selector(model: Any, before: datetime) -> tuple[Any, Any]:
    runs = _old_runs(before).subquery()
    key = _child_key(model)
    pk = list(sa.inspect(model).primary_key)
    select = sa.select(*pk).join(
        runs, sa.and_(model.dag_id == runs.c.dag_id, model.run_id == runs.c.run_id)
    )
    return key, select


def _selector(table: str, before: datetime) -> tuple[Any, Any]:
    """(key expression, SELECT of the keys of old rows) for one table."""
    if table in _CHILD_MODELS:
        return _child_selector(_CHILD_MODELS[table], before)
    if table == "dag_run":
        runs = _old_runs(before).subquery()
        select = sa.select(DagRun.id).join(
            runs, sa.and_(DagRun.dag_id == runs.c.dag_id, DagRun.run_id == runs.c.run_id)
        )
        return DagRun.id, select
    if table == "audit_log":
        return AuditLog.id, sa.select(AuditLog.id).where(AuditLog.when < before)
    if table == "import_error":
        return DagImportError.id, sa.select(DagImportError.id).where(
            DagImportError.timestamp < before
        )
    if table == "job":
        return Job.id, sa.select(Job.id).where(
            Job.state != "running", Job.latest_heartbeat < before
        )
    if table == "asset_event":
        return AssetEvent.id, sa.select(AssetEvent.id).where(AssetEvent.timestamp < before)
    raise AssertionError(table)


_MODELS: dict[str, Any] = {
    **_CHILD_MODELS,
    "dag_run": DagRun,
    "audit_log": AuditLog,
    "import_error": DagImportError,
    "job": Job,
    "asset_event": AssetEvent,
}


def _tables_to_clean(tables: Collection[str] | None) -> list[str]:
    if tables is None:
        return list(CLEANABLE_TABLES)
    unknown = sorted(set(tables) - set(CLEANABLE_TABLES))
    if unknown:
        raise InvalidArgumentError(
            f"cannot clean table(s) {', '.join(unknown)}; "
            f"choose from {', '.join(CLEANABLE_TABLES)}",
            argument="tables",
        )
    wanted = set(tables)
    if "dag_run" in wanted:
        # A run's rows go with it (the foreign keys would delete them anyway, uncounted and in
        # one big transaction).
        wanted |= set(RUN_CHILD_TABLES)
    return [t for t in CLEANABLE_TABLES if t in wanted]


def _count(session: Session, select: Any) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(select.subquery())) or 0)


def clean(
    session_factory: sessionmaker[Session],
    before: datetime,
    *,
    tables: Collection[str] | None = None,
    dry_run: bool = False,
    batch_size: int = 1000,
    progress: ProgressCallback | None = None,
) -> dict[str, int]:
    """Delete rows older than ``before`` (see the module docstring); returns
    ``{table: rows deleted}`` (or, with ``dry_run``, rows that would be deleted).

    ``tables`` limits the tables (names from :data:`CLEANABLE_TABLES`; cleaning ``dag_run``
    includes its child tables). Raises :class:`InvalidArgumentError` for an unknown table or a
    ``batch_size`` below 1.
    """
    if batch_size < 1:
        raise InvalidArgumentError(
            f"batch_size must be >= 1, got {batch_size}", argument="batch_size"
        )
    selected = _tables_to_clean(tables)
    counts: dict[str, int] = {}
    if dry_run:
        with session_scope(session_factory) as session:
            for table in selected:
                _, select = _selector(table, before)
                counts[table] = _count(session, select)
        return counts
    for table in selected:
        model = _MODELS[table]
        deleted = 0
        while True:
            with session_scope(session_factory) as session:
                key, select = _selector(table, before)
                batch = select.limit(batch_size)
                result = session.execute(
                    sa.delete(model)
                    .where(key.in_(batch))
                    .execution_options(synchronize_session=False)
                )
                done = int(result.rowcount or 0)  # type: ignore[attr-defined]
            deleted += done
            if done and progress is not None:
                progress(table, deleted)
            if done < batch_size:
                break
        counts[table] = deleted
    return counts
