"""The executor interface, and the data service executors answer running tasks from.

An executor takes :class:`~tradewind.executors.workload.ExecuteTask` records, runs each try
somewhere, and hands back :class:`~tradewind.executors.workload.ExecutorEvent` records. It is
driven entirely by the scheduler's loop and never blocks it:

.. code-block:: python

    executor = LocalExecutor(parallelism=8, data=service, log_folder=home / "logs")
    executor.start()
    while running:
        if executor.slots_available():
            executor.submit(ready_workloads[: executor.slots_available()])
        for event in executor.process_io(timeout=seconds_to_next_timer):
            apply(event)                 # compare-and-set in the database
    executor.end()
    for event in executor.process_io():  # LOST events of the tries end() stopped
        apply(event)

Running tasks never touch the metadata database: their XCom, variable and connection requests
travel to the executor, which answers them with a :class:`TaskDataService` in the scheduler's
process (backed by the database there; by dictionaries in tests).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from tradewind.executors.workload import (
    ExecuteTask,
    ExecutorEvent,
    TaskInstanceKey,
    default_log_path,
)

if TYPE_CHECKING:
    from tradewind.sdk.connection import Connection

__all__ = ["BaseExecutor", "TaskDataService"]


@runtime_checkable
class TaskDataService(Protocol):
    """What a running try may read and write, answered in the executor's process.

    ``map_index`` is -1 for an unmapped task. XCom values cross this interface as Python
    values (the transports encode them with :mod:`tradewind.serialization.xcom`).
    """

    def start_task(
        self, ti_id: str, key: TaskInstanceKey, *, pid: int, hostname: str, now: datetime
    ) -> bool:
        """Move exactly this try from QUEUED to RUNNING (compare-and-set) and commit.

        False means "do not run": the task instance was cleared, is no longer queued for this
        ``key.try_number``, or ran already. A try runs user code only after this returned True.
        """
        ...

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
        """The value; raises ``KeyError`` when there is none."""
        ...

    def get_xcom_map_indexes(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[int]:
        """The map indexes (ascending) that have a value under ``key``."""
        ...

    def set_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int, value: Any
    ) -> None:
        """Store ``value``, replacing any earlier one; raises ``XComError`` if it cannot."""
        ...

    def get_variable(self, key: str) -> str:
        """The variable's raw value; raises ``VariableNotFound``."""
        ...

    def get_connection(self, conn_id: str) -> Connection:
        """The connection; raises ``ConnectionNotFound``."""
        ...


class BaseExecutor(abc.ABC):
    """Runs task tries; see the module docstring for how a scheduler drives one.

    Contract:

    * :meth:`submit` never waits for task work; what does not fit in a free slot waits in
      the executor, in submission order.
    * Every submitted try yields exactly one final event, FINISHED or LOST, except a try whose
      start handshake the :class:`TaskDataService` refused: that one yields no event at all
      (the database already says what became of it) and its slot is simply freed.
    * :meth:`process_io` returns events as soon as there are any, and otherwise waits at most
      ``timeout`` seconds. It may return an empty list after it freed a slot; call
      :meth:`slots_available` again after every call.
    * :meth:`fileno` is readable whenever :meth:`process_io` has something to do, so a
      scheduler can wait on it together with its own file descriptors.

    Capability flags tell the scheduler what the executor itself honours (``supports_pools``:
    pool slots are counted by the executor; ``supports_queues``: ``ExecuteTask.queue`` routes
    work; ``is_local``: tries run on this machine).
    """

    name: ClassVar[str] = "base"
    supports_pools: ClassVar[bool] = False
    supports_queues: ClassVar[bool] = False
    is_local: ClassVar[bool] = True

    def __init__(
        self,
        *,
        parallelism: int,
        data: TaskDataService,
        log_folder: str | Path,
        dags_folder: str | Path | None = None,
    ) -> None:
        if parallelism < 1:
            raise ValueError(f"{type(self).__name__}: parallelism must be >= 1, got {parallelism}")
        self.parallelism = parallelism
        self.data = data
        self.log_folder = Path(log_folder)
        #: Put on ``sys.path`` while a DAG file is imported (helper modules next to DAG files).
        self.dags_folder = Path(dags_folder) if dags_folder is not None else None

    def log_path_for(self, workload: ExecuteTask) -> str:
        """The try's log file: ``workload.log_path``, else the default under ``log_folder``."""
        if workload.log_path:
            return workload.log_path
        return str(default_log_path(self.log_folder, workload.key))

    @abc.abstractmethod
    def start(self) -> None:
        """Start whatever runs tries (worker processes, connections)."""

    @abc.abstractmethod
    def submit(self, workloads: Sequence[ExecuteTask]) -> None:
        """Queue tries to run; never blocks on task work."""

    @abc.abstractmethod
    def slots_available(self) -> int:
        """How many more tries could start now."""

    @abc.abstractmethod
    def fileno(self) -> int:
        """A file descriptor that is readable when :meth:`process_io` has work."""

    @abc.abstractmethod
    def process_io(self, timeout: float = 0) -> list[ExecutorEvent]:
        """Serve pending data requests and collect events, waiting at most ``timeout`` s."""

    @abc.abstractmethod
    def kill(self, key: TaskInstanceKey) -> None:
        """Stop that try if it is queued or running (its final event follows later)."""

    @abc.abstractmethod
    def end(self, *, timeout: float = 10) -> None:
        """Stop everything; tries still running become LOST events.

        Those events are collected by one more :meth:`process_io` call after ``end``.
        """

    def __enter__(self) -> BaseExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()
