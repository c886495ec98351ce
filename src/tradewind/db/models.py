"""The metadata database's tables as typed SQLAlchemy 2 models: columns only, no behaviour.

Query functions live in one module per aggregate (``tradewind.db.runs`` …) and every state
change goes through :mod:`tradewind.db.state_changes`. Timestamps are :class:`UTCDateTime`
(aware UTC in, aware UTC out); states are :class:`StateEnum` columns holding the values of
:class:`~tradewind.state.TaskState` / :class:`~tradewind.state.RunState`.

The schema is created by the Alembic migrations in ``tradewind/db/migrations`` (a test checks
that they match these models on SQLite and PostgreSQL), never by ``metadata.create_all``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tradewind.db.types import JsonType, StateEnum, UTCDateTime
from tradewind.state import RunState, TaskState

__all__ = [
    "DEFAULT_POOL_NAME",
    "DEFAULT_POOL_SLOTS",
    "TI_SHARED_COLUMNS",
    "Asset",
    "AssetDagRunQueue",
    "AssetEvent",
    "AuditLog",
    "Backfill",
    "Base",
    "Connection",
    "Dag",
    "DagImportError",
    "DagRun",
    "DagScheduleAssetReference",
    "DagVersion",
    "Job",
    "SlotPool",
    "TaskInstance",
    "TaskInstanceHistory",
    "TaskMap",
    "Variable",
    "XCom",
]

#: The pool every task uses unless it names another; created by the first migration.
DEFAULT_POOL_NAME = "default_pool"
#: Slots of :data:`DEFAULT_POOL_NAME` when the database is created.
DEFAULT_POOL_SLOTS = 128

ID_LEN = 250
_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every Tradewind table (constraint names are deterministic)."""

    metadata = sa.MetaData(naming_convention=_NAMING)


def _id() -> Any:
    return sa.String(ID_LEN)


class Dag(Base):
    """One DAG known to the installation (the latest parse of it)."""

    __tablename__ = "dag"

    dag_id: Mapped[str] = mapped_column(_id(), primary_key=True)
    is_paused: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    fileloc: Mapped[str | None] = mapped_column(sa.String(2000))
    relative_fileloc: Mapped[str | None] = mapped_column(sa.String(2000))
    owners: Mapped[str | None] = mapped_column(sa.String(2000))
    description: Mapped[str | None] = mapped_column(sa.Text)
    tags: Mapped[list[str] | None] = mapped_column(JsonType)
    timetable_summary: Mapped[str | None] = mapped_column(sa.String(1000))
    max_active_runs: Mapped[int | None] = mapped_column(sa.Integer)
    max_active_tasks: Mapped[int | None] = mapped_column(sa.Integer)
    has_import_errors: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # No foreign key: dag_version points back at dag, and a cycle of keys makes every insert
    # and drop order-dependent for no gain.
    latest_version_id: Mapped[int | None] = mapped_column(sa.Integer)
    next_dagrun_logical_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_dagrun_data_interval_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_dagrun_data_interval_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_dagrun_run_after: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_parsed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DagVersion(Base):
    """One serialized version of a DAG; a new one is written only when the hash changes."""

    __tablename__ = "dag_version"
    __table_args__ = (sa.UniqueConstraint("dag_id", "version_number"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(_id(), sa.ForeignKey("dag.dag_id", ondelete="CASCADE"))
    version_number: Mapped[int] = mapped_column(sa.Integer)
    hash: Mapped[str] = mapped_column(sa.String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Backfill(Base):
    """A backfill: runs over a past date range that the scheduler creates and owns."""

    __tablename__ = "backfill"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(
        _id(), sa.ForeignKey("dag.dag_id", ondelete="CASCADE"), index=True
    )
    from_date: Mapped[datetime] = mapped_column(UTCDateTime)
    to_date: Mapped[datetime] = mapped_column(UTCDateTime)
    conf: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    is_paused: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    max_active_runs: Mapped[int] = mapped_column(sa.Integer, default=10)
    reprocess_behavior: Mapped[str] = mapped_column(sa.String(20), default="none")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DagRun(Base):
    """One run of a DAG, pinned to the DAG version it started with."""

    __tablename__ = "dag_run"
    __table_args__ = (
        sa.UniqueConstraint("dag_id", "run_id"),
        # Two runs of one DAG for the same logical date would share XComs' meaning and
        # templates' ``ds``; NULLs (runs without a logical date) never collide.
        sa.UniqueConstraint("dag_id", "logical_date"),
        sa.Index("ix_dag_run_dag_id_state", "dag_id", "state"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(_id(), sa.ForeignKey("dag.dag_id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(_id())
    run_type: Mapped[str] = mapped_column(sa.String(50))
    logical_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_interval_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_interval_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[RunState] = mapped_column(StateEnum(RunState), index=True)
    conf: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    start_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dag_version_id: Mapped[int | None] = mapped_column(
        sa.Integer, sa.ForeignKey("dag_version.id", ondelete="SET NULL")
    )
    backfill_id: Mapped[int | None] = mapped_column(
        sa.Integer, sa.ForeignKey("backfill.id", ondelete="SET NULL"), index=True
    )
    clear_number: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_scheduling_decision: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the scheduler job working on the run while it is running (None: nobody yet); only
    #: that scheduler examines the run and queues its tasks
    scheduler_job_id: Mapped[int | None] = mapped_column(sa.Integer, index=True)


_TI_SPEC: dict[str, tuple[Any, dict[str, Any]]] = {
    "dag_id": (_id, {}),
    "run_id": (_id, {}),
    "task_id": (_id, {}),
    "map_index": (sa.Integer, {"default": -1}),
    "state": (lambda: StateEnum(TaskState), {}),
    "try_number": (sa.Integer, {"default": 0}),
    "max_tries": (sa.Integer, {"default": 0}),
    "start_date": (UTCDateTime, {}),
    "end_date": (UTCDateTime, {}),
    "duration": (sa.Float, {}),
    "pool": (lambda: sa.String(256), {"default": DEFAULT_POOL_NAME}),
    "pool_slots": (sa.Integer, {"default": 1}),
    "queue": (lambda: sa.String(256), {"default": "default"}),
    "priority_weight": (sa.Integer, {"default": 1}),
    "executor": (lambda: sa.String(256), {}),
    "hostname": (lambda: sa.String(1000), {}),
    "pid": (sa.Integer, {}),
    "queued_at": (UTCDateTime, {}),
    "scheduled_at": (UTCDateTime, {}),
    "next_retry_at": (UTCDateTime, {}),
    "reschedule_at": (UTCDateTime, {}),
    "dag_version_id": (sa.Integer, {}),
    "operator": (lambda: sa.String(1000), {}),
    "rendered_fields": (lambda: JsonType, {}),
    "last_error": (sa.Text, {}),
    "updated_at": (UTCDateTime, {}),
}


def _ti(name: str) -> Any:
    """A fresh column for ``name``: ``task_instance`` and its history share these definitions."""
    type_factory, kwargs = _TI_SPEC[name]
    return mapped_column(type_factory(), **kwargs)


class _TaskInstanceColumns:
    """The columns ``task_instance`` and ``task_instance_history`` share (one definition;
    SQLAlchemy copies them into each table)."""

    dag_id: Mapped[str] = _ti("dag_id")
    run_id: Mapped[str] = _ti("run_id")
    task_id: Mapped[str] = _ti("task_id")
    map_index: Mapped[int] = _ti("map_index")
    state: Mapped[TaskState] = _ti("state")
    try_number: Mapped[int] = _ti("try_number")
    max_tries: Mapped[int] = _ti("max_tries")
    start_date: Mapped[datetime | None] = _ti("start_date")
    end_date: Mapped[datetime | None] = _ti("end_date")
    duration: Mapped[float | None] = _ti("duration")
    pool: Mapped[str] = _ti("pool")
    pool_slots: Mapped[int] = _ti("pool_slots")
    queue: Mapped[str] = _ti("queue")
    priority_weight: Mapped[int] = _ti("priority_weight")
    executor: Mapped[str | None] = _ti("executor")
    hostname: Mapped[str | None] = _ti("hostname")
    pid: Mapped[int | None] = _ti("pid")
    queued_at: Mapped[datetime | None] = _ti("queued_at")
    scheduled_at: Mapped[datetime | None] = _ti("scheduled_at")
    next_retry_at: Mapped[datetime | None] = _ti("next_retry_at")
    reschedule_at: Mapped[datetime | None] = _ti("reschedule_at")
    dag_version_id: Mapped[int | None] = _ti("dag_version_id")
    operator: Mapped[str | None] = _ti("operator")
    rendered_fields: Mapped[dict[str, Any] | None] = _ti("rendered_fields")
    last_error: Mapped[str | None] = _ti("last_error")
    updated_at: Mapped[datetime | None] = _ti("updated_at")


class TaskInstance(_TaskInstanceColumns, Base):
    """One task of one run at one map index (-1 when unmapped or not yet expanded)."""

    __tablename__ = "task_instance"
    __table_args__ = (
        sa.UniqueConstraint("dag_id", "run_id", "task_id", "map_index"),
        sa.ForeignKeyConstraint(
            ["dag_id", "run_id"], ["dag_run.dag_id", "dag_run.run_id"], ondelete="CASCADE"
        ),
        sa.Index("ix_task_instance_state", "state"),
        sa.Index("ix_task_instance_dag_id_run_id", "dag_id", "run_id"),
        # Admission reads the highest-priority scheduled few without sorting them all.
        sa.Index("ix_task_instance_state_priority", "state", "priority_weight"),
    )

    #: uuid4 hex, stable across tries and clears (it names the row, not the try).
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)


#: Column names a task instance and its history rows share (everything but the ids).
TI_SHARED_COLUMNS: tuple[str, ...] = tuple(_TI_SPEC)


class TaskInstanceHistory(_TaskInstanceColumns, Base):
    """One finished try of a task instance: a copy of the row as the try ended."""

    __tablename__ = "task_instance_history"
    __table_args__ = (
        sa.UniqueConstraint("ti_id", "try_number"),
        sa.Index("ix_task_instance_history_dag_id_run_id", "dag_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    ti_id: Mapped[str] = mapped_column(sa.String(32))


class TaskMap(Base):
    """The length (and keys) of a task's result that downstream tasks map over."""

    __tablename__ = "task_map"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["dag_id", "run_id"], ["dag_run.dag_id", "dag_run.run_id"], ondelete="CASCADE"
        ),
    )

    dag_id: Mapped[str] = mapped_column(_id(), primary_key=True)
    run_id: Mapped[str] = mapped_column(_id(), primary_key=True)
    task_id: Mapped[str] = mapped_column(_id(), primary_key=True)
    map_index: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    length: Mapped[int] = mapped_column(sa.Integer)
    keys: Mapped[list[Any] | None] = mapped_column(JsonType)


class XCom(Base):
    """One XCom value, as JSON text written by :mod:`tradewind.serialization.xcom`."""

    __tablename__ = "xcom"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["dag_id", "run_id"], ["dag_run.dag_id", "dag_run.run_id"], ondelete="CASCADE"
        ),
    )

    dag_id: Mapped[str] = mapped_column(_id(), primary_key=True)
    run_id: Mapped[str] = mapped_column(_id(), primary_key=True)
    task_id: Mapped[str] = mapped_column(_id(), primary_key=True)
    map_index: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(512), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DagImportError(Base):
    """A DAG file that failed to import at its latest parse."""

    __tablename__ = "import_error"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    filename: Mapped[str] = mapped_column(sa.String(2000), index=True)
    relative_filename: Mapped[str | None] = mapped_column(sa.String(2000))
    line: Mapped[int | None] = mapped_column(sa.Integer)
    message: Mapped[str] = mapped_column(sa.Text)
    stacktrace: Mapped[str | None] = mapped_column(sa.Text)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)


class Connection(Base):
    """A stored connection; ``password`` and ``extra`` are Fernet tokens when encrypted."""

    __tablename__ = "connection"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    conn_id: Mapped[str] = mapped_column(_id(), unique=True)
    conn_type: Mapped[str | None] = mapped_column(sa.String(500))
    description: Mapped[str | None] = mapped_column(sa.Text)
    host: Mapped[str | None] = mapped_column(sa.String(500))
    schema: Mapped[str | None] = mapped_column(sa.String(500))
    login: Mapped[str | None] = mapped_column(sa.Text)
    password: Mapped[str | None] = mapped_column(sa.Text)
    port: Mapped[int | None] = mapped_column(sa.Integer)
    extra: Mapped[str | None] = mapped_column(sa.Text)
    is_encrypted: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    is_extra_encrypted: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Variable(Base):
    """A stored variable; ``val`` is a Fernet token when ``is_encrypted``."""

    __tablename__ = "variable"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(_id(), unique=True)
    val: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str | None] = mapped_column(sa.Text)
    is_encrypted: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SlotPool(Base):
    """A pool: tasks naming it hold ``pool_slots`` of its ``slots`` while queued or running."""

    __tablename__ = "slot_pool"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    pool: Mapped[str] = mapped_column(sa.String(256), unique=True)
    slots: Mapped[int] = mapped_column(sa.Integer)
    description: Mapped[str | None] = mapped_column(sa.Text)
    include_deferred: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class Asset(Base):
    """An asset (a piece of data) some DAG produces or is scheduled on."""

    __tablename__ = "asset"
    __table_args__ = (sa.UniqueConstraint("name", "uri"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(1500))
    uri: Mapped[str] = mapped_column(sa.String(1500), index=True)
    group: Mapped[str] = mapped_column(sa.String(1500), default="asset")
    extra: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AssetEvent(Base):
    """An update of an asset, by a task or from outside."""

    __tablename__ = "asset_event"
    __table_args__ = (sa.Index("ix_asset_event_asset_id_timestamp", "asset_id", "timestamp"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    asset_id: Mapped[int] = mapped_column(sa.Integer, sa.ForeignKey("asset.id", ondelete="CASCADE"))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    source_dag_id: Mapped[str | None] = mapped_column(_id())
    source_task_id: Mapped[str | None] = mapped_column(_id())
    source_run_id: Mapped[str | None] = mapped_column(_id())
    source_map_index: Mapped[int | None] = mapped_column(sa.Integer)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)


class DagScheduleAssetReference(Base):
    """A DAG scheduled on an asset: an event of the asset queues a run of the DAG."""

    __tablename__ = "dag_schedule_asset_reference"

    asset_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True
    )
    dag_id: Mapped[str] = mapped_column(
        _id(), sa.ForeignKey("dag.dag_id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AssetDagRunQueue(Base):
    """An asset update waiting to be consumed by a run of a DAG scheduled on it."""

    __tablename__ = "asset_dag_run_queue"

    asset_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True
    )
    target_dag_id: Mapped[str] = mapped_column(
        _id(), sa.ForeignKey("dag.dag_id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditLog(Base):
    """An append-only record of one change made through the CLI, API or UI."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    when: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    event: Mapped[str] = mapped_column(sa.String(100), index=True)
    actor: Mapped[str | None] = mapped_column(sa.String(500))
    dag_id: Mapped[str | None] = mapped_column(_id(), index=True)
    run_id: Mapped[str | None] = mapped_column(_id())
    task_id: Mapped[str | None] = mapped_column(_id())
    map_index: Mapped[int | None] = mapped_column(sa.Integer)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class Job(Base):
    """A running component (scheduler, DAG processor, triggerer …) and its heartbeat."""

    __tablename__ = "job"
    __table_args__ = (
        sa.Index("ix_job_job_type_state_latest_heartbeat", "job_type", "state", "latest_heartbeat"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    job_type: Mapped[str] = mapped_column(sa.String(30))
    state: Mapped[str] = mapped_column(sa.String(20))
    hostname: Mapped[str | None] = mapped_column(sa.String(500))
    pid: Mapped[int | None] = mapped_column(sa.Integer)
    start_date: Mapped[datetime] = mapped_column(UTCDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    latest_heartbeat: Mapped[datetime] = mapped_column(UTCDateTime)


# Users, roles and API tokens (the API's authentication and access control).
__all__ += ["ApiToken", "Role", "User", "UserRole"]


class Role(Base):
    """A named set of permissions (``"<resource>.<action>"`` strings), optionally limited to
    some DAGs: by ``dag_ids`` (fnmatch patterns) and/or ``dag_tags``. With neither, the
    role's DAG permissions hold for every DAG."""

    __tablename__ = "role"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    permissions: Mapped[list[str]] = mapped_column(JsonType)
    dag_ids: Mapped[list[str] | None] = mapped_column(JsonType)
    dag_tags: Mapped[list[str] | None] = mapped_column(JsonType)
    #: one of the roles every installation has (Admin, Op, User, Viewer); cannot be deleted
    builtin: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class User(Base):
    """A person or script that logs in to the API or UI; the password is an argon2 hash."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(sa.String(256), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(320))
    first_name: Mapped[str | None] = mapped_column(sa.String(256))
    last_name: Mapped[str | None] = mapped_column(sa.String(256))
    password_hash: Mapped[str | None] = mapped_column(sa.String(512))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login: Mapped[datetime | None] = mapped_column(UTCDateTime)
    login_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: failed logins since the last successful one (throttling)
    failed_login_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: no login is accepted before this time (set after repeated failures)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserRole(Base):
    """A user holding a role."""

    __tablename__ = "user_role"

    user_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("role.id", ondelete="CASCADE"), primary_key=True
    )


class ApiToken(Base):
    """A personal API token: only its SHA-256 is stored; revocable and expiring."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(256))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: the first characters of the token, shown so people can tell their tokens apart
    prefix: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
