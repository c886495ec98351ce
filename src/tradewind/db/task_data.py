"""What running tasks may read and write, served from the metadata database.

:class:`DbTaskDataService` implements the executors' ``TaskDataService`` protocol: the executor
in the scheduler's process answers its task children's requests (start handshake, XCom,
variables, connections) through it. Each call is its own short transaction.

:class:`DbSecretsBackend` makes the stored connections and variables visible to
:mod:`tradewind.sdk.secrets` (``Variable.get``, hooks, templates) in processes that may use
the database directly::

    secrets.register_backend(DbSecretsBackend(factory, fernet=get_fernet(settings)))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from tradewind.db import connections as db_connections
from tradewind.db import variables as db_variables
from tradewind.db import xcom as db_xcom
from tradewind.db.engine import session_scope
from tradewind.db.state_changes import transition_task
from tradewind.errors import ConnectionNotFound, VariableNotFound
from tradewind.serialization import xcom as codec
from tradewind.state import TaskState

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

    from tradewind.sdk.connection import Connection

__all__ = ["DbSecretsBackend", "DbTaskDataService", "TaskKeyLike"]


class TaskKeyLike(Protocol):
    """The fields of ``executors.workload.TaskInstanceKey`` this module reads."""

    @property
    def dag_id(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def map_index(self) -> int: ...
    @property
    def try_number(self) -> int: ...


class DbTaskDataService:
    """The ``TaskDataService`` protocol backed by the metadata database.

    ``xcom_max_size`` is ``[core] xcom_max_size_bytes`` (None: no limit); ``now`` is the clock
    used for timestamps of XComs (injected by tests).
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        fernet: MultiFernet | None,
        xcom_max_size: int | None = codec.DEFAULT_MAX_SIZE,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._factory = session_factory
        self._fernet = fernet
        self._xcom_max_size = xcom_max_size
        self._now = now

    def _clock(self) -> datetime:
        return self._now() if self._now is not None else datetime.now(UTC)

    def start_task(
        self, ti_id: str, key: TaskKeyLike, *, pid: int, hostname: str, now: datetime
    ) -> bool:
        """Compare-and-set queued -> running for exactly this try, and commit.

        Also deletes XComs a previous try of the instance left. False means "do not run": the
        instance was cleared, already started, or is at another try.
        """
        return self.start_tasks([(ti_id, key, pid, hostname)], now=now)[0]

    def start_tasks(
        self, requests: Sequence[tuple[str, TaskKeyLike, int, str]], *, now: datetime
    ) -> list[bool]:
        """:meth:`start_task` for several tries ``(ti_id, key, pid, hostname)`` in one
        transaction; each answer says whether that try may run."""
        with session_scope(self._factory) as session:
            return [
                self._start_one(session, ti_id, key, pid=pid, hostname=hostname, now=now)
                for ti_id, key, pid, hostname in requests
            ]

    @staticmethod
    def _start_one(
        session: Session, ti_id: str, key: TaskKeyLike, *, pid: int, hostname: str, now: datetime
    ) -> bool:
        won = transition_task(
            session,
            ti_id,
            TaskState.QUEUED,
            TaskState.RUNNING,
            now=now,
            where={
                "dag_id": key.dag_id,
                "run_id": key.run_id,
                "task_id": key.task_id,
                "map_index": key.map_index,
                "try_number": key.try_number,
            },
            start_date=now,
            end_date=None,
            pid=pid,
            hostname=hostname,
        )
        if won:
            db_xcom.delete_xcoms(
                session, key.dag_id, key.run_id, task_id=key.task_id, map_index=key.map_index
            )
        return won

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
        """The decoded value; raises ``KeyError`` when there is none."""
        with session_scope(self._factory) as session:
            return db_xcom.get_xcom(session, dag_id, run_id, task_id, key, map_index)

    def get_xcom_map_indexes(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[int]:
        """The map indexes (ascending) with a value under ``key``."""
        with session_scope(self._factory) as session:
            return db_xcom.get_xcom_map_indexes(session, dag_id, run_id, task_id, key)

    def get_xcom_texts(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int | None = None
    ) -> dict[int, str]:
        """Stored XCom JSON text by map index (see :func:`tradewind.db.xcom.get_xcom_texts`)."""
        with session_scope(self._factory) as session:
            return db_xcom.get_xcom_texts(session, dag_id, run_id, task_id, key, map_index)

    def get_xcom_values(self, dag_id: str, run_id: str, task_id: str, key: str) -> dict[int, Any]:
        """Every map index's value under ``key`` (ascending), read at once."""
        with session_scope(self._factory) as session:
            return db_xcom.get_xcom_values(session, dag_id, run_id, task_id, key)

    def set_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int, value: Any
    ) -> None:
        """Store a value; raises ``XComError`` when it cannot be encoded or is too large."""
        with session_scope(self._factory) as session:
            db_xcom.set_xcom(
                session,
                dag_id,
                run_id,
                task_id,
                key,
                map_index,
                value,
                now=self._clock(),
                max_size=self._xcom_max_size,
            )
            if key == "return_value" and isinstance(value, list | tuple | dict):
                # Downstream tasks may map over this result: the scheduler expands them from
                # the recorded length without reading the value.
                from tradewind.db.task_instances import record_task_map

                keys = [str(k) for k in value] if isinstance(value, dict) else None
                record_task_map(session, dag_id, run_id, task_id, map_index, len(value), keys)

    def get_variable(self, key: str) -> str:
        """The variable's value; raises :class:`VariableNotFound`."""
        with session_scope(self._factory) as session:
            return db_variables.get_variable(session, key, fernet=self._fernet)

    def get_connection(self, conn_id: str) -> Connection:
        """The connection; raises :class:`ConnectionNotFound`."""
        with session_scope(self._factory) as session:
            return db_connections.get_connection(session, conn_id, fernet=self._fernet)


class DbSecretsBackend:
    """A :class:`tradewind.sdk.secrets.SecretsBackend` over the stored connections and
    variables (None for "not here", so the lookup chain goes on)."""

    def __init__(
        self, session_factory: sessionmaker[Session], *, fernet: MultiFernet | None
    ) -> None:
        self._factory = session_factory
        self._fernet = fernet

    def get_connection(self, conn_id: str) -> Connection | None:
        """The stored connection, or None."""
        with session_scope(self._factory) as session:
            try:
                return db_connections.get_connection(session, conn_id, fernet=self._fernet)
            except ConnectionNotFound:
                return None

    def get_variable(self, key: str) -> str | None:
        """The stored variable's value, or None."""
        with session_scope(self._factory) as session:
            try:
                return db_variables.get_variable(session, key, fernet=self._fernet)
            except VariableNotFound:
                return None
