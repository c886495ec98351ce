"""The metadata database: SQLAlchemy 2 models, Alembic migrations and query functions.

Query functions take a session explicitly and live in one module per aggregate:
:mod:`~tradewind.db.dags`, :mod:`~tradewind.db.runs`, :mod:`~tradewind.db.task_instances`,
:mod:`~tradewind.db.xcom`, :mod:`~tradewind.db.connections`, :mod:`~tradewind.db.variables`,
:mod:`~tradewind.db.pools`, :mod:`~tradewind.db.import_errors`, :mod:`~tradewind.db.audit`,
:mod:`~tradewind.db.assets`, :mod:`~tradewind.db.backfills`, :mod:`~tradewind.db.jobs`.
Every task-instance and run state change goes through :mod:`~tradewind.db.state_changes`.

::

    from tradewind.db import Database, session_scope
    db = Database.from_settings(settings)
    db.migrate()
    with db.session() as session:
        runs.list_runs(session, dag_id="etl")

Names below load on first use, so importing this package does not import SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradewind._lazy import lazy_exports

if TYPE_CHECKING:
    from tradewind.db.database import Database
    from tradewind.db.engine import create_engine, make_session_factory, session_scope
    from tradewind.db.migrate import MigrationStatus, check, migrate, reset
    from tradewind.db.state_changes import transition_run, transition_task, transition_tasks

__all__ = [
    "Database",
    "MigrationStatus",
    "check",
    "create_engine",
    "make_session_factory",
    "migrate",
    "reset",
    "session_scope",
    "transition_run",
    "transition_task",
    "transition_tasks",
]

_EXPORTS = {
    "Database": "tradewind.db.database",
    "create_engine": "tradewind.db.engine",
    "make_session_factory": "tradewind.db.engine",
    "session_scope": "tradewind.db.engine",
    "MigrationStatus": "tradewind.db.migrate",
    "check": "tradewind.db.migrate",
    "migrate": "tradewind.db.migrate",
    "reset": "tradewind.db.migrate",
    "transition_run": "tradewind.db.state_changes",
    "transition_task": "tradewind.db.state_changes",
    "transition_tasks": "tradewind.db.state_changes",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
