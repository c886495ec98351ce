"""The records that cross the boundary between the scheduler and an executor.

An executor gets *data, never code*: an :class:`ExecuteTask` names the task try, the DAG file
to import and the pinned DAG version, and carries what the runtime needs to build the run's
context. It is plain, frozen and JSON-able (:meth:`ExecuteTask.to_dict` /
:meth:`ExecuteTask.from_dict`), so the same record can go down a pipe to a local worker, into
a Celery message or into a Kubernetes pod spec. Records carry a ``version``; a reader refuses
a version it does not know instead of guessing.

What comes back is an :class:`ExecutorEvent` per happening (the try started, finished with an
outcome, or was lost).

Example::

    key = TaskInstanceKey("etl", "manual__2024-01-01", "extract", try_number=1)
    workload = ExecuteTask(
        key=key, ti_id=uuid4().hex, dag_version_id=3, fileloc="/dags/etl.py",
        run=RunSpec(run_type="manual", logical_date=datetime(2024, 1, 1, tzinfo=UTC)),
        max_tries=2, log_path=str(default_log_path(log_folder, key)),
    )
    ExecuteTask.from_dict(workload.to_dict()) == workload   # True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from tradewind.errors import TradewindError
from tradewind.state import TaskState

__all__ = [
    "WORKLOAD_VERSION",
    "EventKind",
    "ExecuteTask",
    "ExecutorEvent",
    "RunSpec",
    "TaskInstanceKey",
    "default_log_path",
]

#: The :class:`ExecuteTask` format this code writes and reads.
WORKLOAD_VERSION = 1


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_iso(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise TradewindError(f"workload field {name!r} must be an ISO date-time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise TradewindError(
            f"workload field {name!r} is not an ISO date-time: {value!r}"
        ) from None
    if parsed.tzinfo is None:
        raise TradewindError(f"workload field {name!r} has no timezone: {value!r}")
    return parsed


@dataclass(frozen=True)
class TaskInstanceKey:
    """One try of one task instance: ``(dag_id, run_id, task_id, map_index, try_number)``.

    ``map_index`` is -1 for an unmapped task.
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
            "try_number": self.try_number,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskInstanceKey:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            dag_id=str(data["dag_id"]),
            run_id=str(data["run_id"]),
            task_id=str(data["task_id"]),
            map_index=int(data.get("map_index", -1)),
            try_number=int(data.get("try_number", 1)),
        )

    def __str__(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{index} run={self.run_id} try={self.try_number}"


@dataclass(frozen=True)
class RunSpec:
    """The DAG run a try belongs to: enough to build the runtime's ``RunInfo``.

    Dates are aware datetimes here and ISO 8601 strings in the dict form. ``run_type`` is
    ``"scheduled"``, ``"manual"``, ``"backfill"`` or ``"asset_triggered"``; a run may have no
    logical date (triggered without one).
    """

    run_type: str = "manual"
    logical_date: datetime | None = None
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    conf: dict[str, Any] = field(default_factory=dict)
    start_date: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (dates as ISO 8601 strings)."""
        return {
            "run_type": self.run_type,
            "logical_date": _iso(self.logical_date),
            "data_interval_start": _iso(self.data_interval_start),
            "data_interval_end": _iso(self.data_interval_end),
            "conf": dict(self.conf),
            "start_date": _iso(self.start_date),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Rebuild from :meth:`to_dict` output."""
        conf = data.get("conf") or {}
        if not isinstance(conf, dict):
            raise TradewindError(f"workload field 'conf' must be an object, got {conf!r}")
        return cls(
            run_type=str(data.get("run_type", "manual")),
            logical_date=_from_iso(data.get("logical_date"), "logical_date"),
            data_interval_start=_from_iso(data.get("data_interval_start"), "data_interval_start"),
            data_interval_end=_from_iso(data.get("data_interval_end"), "data_interval_end"),
            conf=dict(conf),
            start_date=_from_iso(data.get("start_date"), "start_date"),
        )


@dataclass(frozen=True)
class ExecuteTask:
    """Run one task try: what the scheduler hands an executor.

    ``ti_id`` is the task-instance row id the start handshake is checked against.
    ``fileloc`` is the absolute path of the DAG file to import, ``dag_version_id`` the DAG
    version the run is pinned to (executors also use it to tell a cached import is stale).
    ``max_tries`` decides between ``up_for_retry`` and ``failed`` when the try fails.
    ``log_path`` is the absolute path of this try's log file (see :func:`default_log_path`;
    empty means the executor derives it from its ``log_folder``).

    ``execution_timeout`` (seconds, or None) is the task's ``execution_timeout``. The runtime
    enforces it itself; executors that can kill a process use it as a hard backstop and kill
    a try still running ``execution_timeout`` plus a margin (10 s by default) after it began.
    ``executor_config`` is passed through untouched for executors that use it.
    """

    key: TaskInstanceKey
    ti_id: str
    dag_version_id: int
    fileloc: str
    run: RunSpec
    max_tries: int
    queue: str = "default"
    pool: str = "default_pool"
    priority: int = 1
    executor_config: dict[str, Any] = field(default_factory=dict)
    log_path: str = ""
    execution_timeout: float | None = None
    version: int = WORKLOAD_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (no Python objects; dates as ISO strings)."""
        return {
            "version": self.version,
            "key": self.key.to_dict(),
            "ti_id": self.ti_id,
            "dag_version_id": self.dag_version_id,
            "fileloc": self.fileloc,
            "run": self.run.to_dict(),
            "max_tries": self.max_tries,
            "queue": self.queue,
            "pool": self.pool,
            "priority": self.priority,
            "executor_config": dict(self.executor_config),
            "log_path": self.log_path,
            "execution_timeout": self.execution_timeout,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecuteTask:
        """Rebuild from :meth:`to_dict` output.

        Raises :class:`~tradewind.errors.TradewindError` when the record was written in a
        version this code does not read, or a field is missing or malformed.
        """
        version = data.get("version")
        if version != WORKLOAD_VERSION:
            raise TradewindError(
                f"cannot read an ExecuteTask workload of version {version!r}: this Tradewind "
                f"reads version {WORKLOAD_VERSION} (are the scheduler and the worker running "
                "different Tradewind versions?)"
            )
        try:
            timeout = data.get("execution_timeout")
            config = data.get("executor_config") or {}
            if not isinstance(config, dict):
                raise TradewindError(f"executor_config must be an object, got {config!r}")
            return cls(
                key=TaskInstanceKey.from_dict(data["key"]),
                ti_id=str(data["ti_id"]),
                dag_version_id=int(data["dag_version_id"]),
                fileloc=str(data["fileloc"]),
                run=RunSpec.from_dict(data["run"]),
                max_tries=int(data["max_tries"]),
                queue=str(data.get("queue", "default")),
                pool=str(data.get("pool", "default_pool")),
                priority=int(data.get("priority", 1)),
                executor_config=dict(config),
                log_path=str(data.get("log_path", "")),
                execution_timeout=None if timeout is None else float(timeout),
                version=WORKLOAD_VERSION,
            )
        except KeyError as exc:
            raise TradewindError(f"ExecuteTask workload is missing the field {exc}") from None
        except (TypeError, ValueError) as exc:
            raise TradewindError(f"ExecuteTask workload has a malformed field: {exc}") from None


class EventKind(StrEnum):
    """What happened to a try."""

    #: The start handshake succeeded: the try is running (informative).
    STARTED = "started"
    #: The try ended and reported an outcome (``ExecutorEvent.state``).
    FINISHED = "finished"
    #: The try ended without an outcome (process died, killed, executor stopped); ``error``
    #: says why.
    LOST = "lost"


@dataclass(frozen=True)
class ExecutorEvent:
    """Something that happened to one try, reported by an executor.

    For FINISHED, ``state`` is SUCCESS, FAILED, SKIPPED or UP_FOR_RETRY and ``error``,
    ``traceback``, ``skipped_task_ids`` (branch and short-circuit decisions) and
    ``rendered_fields`` describe the outcome. For LOST, ``state`` is None and ``error`` says
    what happened ("task process exited with signal 9 (SIGKILL)").
    """

    key: TaskInstanceKey
    kind: EventKind
    state: TaskState | None = None
    error: str | None = None
    traceback: str | None = None
    skipped_task_ids: tuple[str, ...] = ()
    start_date: datetime | None = None
    end_date: datetime | None = None
    pid: int | None = None
    hostname: str | None = None
    rendered_fields: dict[str, str] | None = None


def _path_part(value: str) -> str:
    # A run id may hold a "/" (it is free text when triggered by hand); it must not make a folder.
    return value.replace("/", "_").replace("\\", "_") or "_"


def default_log_path(log_folder: str | Path, key: TaskInstanceKey) -> Path:
    """Where a try's log goes under ``log_folder``.

    ``dag_id=<id>/run_id=<id>/task_id=<id>[/map_index=<n>]/attempt=<try>.log``
    """
    path = (
        Path(log_folder)
        / f"dag_id={_path_part(key.dag_id)}"
        / f"run_id={_path_part(key.run_id)}"
        / f"task_id={_path_part(key.task_id)}"
    )
    if key.map_index >= 0:
        path = path / f"map_index={key.map_index}"
    return path / f"attempt={key.try_number}.log"
