"""The inline executor: each try runs in the calling process, inside ``process_io``.

For ``tradewind dags test``, ``dag.test()`` and tests: no processes, no pickling, a debugger
stops in task code. The try goes through the same supervisor code as under the local
executor (start handshake, log file, outcome), with the data service called directly instead
of over a socket. ``submit`` only queues; the next :meth:`InlineExecutor.process_io` runs every
queued try, one after the other, and returns their STARTED and FINISHED events.

There is no hard timeout here (a process cannot kill its own thread): ``execution_timeout`` is
enforced by the runtime alone.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from tradewind.errors import TradewindError
from tradewind.executors._common import event_from_outcome, try_spec_for
from tradewind.executors._dagcache import DagCache
from tradewind.executors.base import BaseExecutor, TaskDataService
from tradewind.executors.workload import EventKind, ExecuteTask, ExecutorEvent, TaskInstanceKey
from tradewind.runtime.task_runner import TaskOutcome

if TYPE_CHECKING:
    from tradewind.sdk.connection import Connection
    from tradewind.sdk.dag_definition import DAG

__all__ = ["InlineExecutor"]


class _DirectChannel:
    """The supervisor's channel, calling the data service in this process."""

    def __init__(self, executor: InlineExecutor, workload: ExecuteTask) -> None:
        self._executor = executor
        self._workload = workload
        self.start_date: datetime | None = None
        self.pid: int | None = None
        self.outcome: TaskOutcome | None = None
        self.end_date: datetime | None = None

    def start(self, *, pid: int, hostname: str) -> datetime | None:
        from tradewind.sdk.timezone import utcnow

        now = utcnow()
        workload = self._workload
        if not self._executor.data.start_task(
            workload.ti_id, workload.key, pid=pid, hostname=hostname, now=now
        ):
            return None
        self.start_date, self.pid = now, pid
        self._executor._events.append(
            ExecutorEvent(
                key=workload.key,
                kind=EventKind.STARTED,
                start_date=now,
                pid=pid,
                hostname=hostname,
            )
        )
        return now

    def report(self, outcome: TaskOutcome, *, start_date: datetime, end_date: datetime) -> None:
        self.outcome, self.end_date = outcome, end_date

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
        return self._executor.data.get_xcom(dag_id, run_id, task_id, key, map_index)

    def get_xcom_map_indexes(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[int]:
        return list(self._executor.data.get_xcom_map_indexes(dag_id, run_id, task_id, key))

    def get_xcom_values(self, dag_id: str, run_id: str, task_id: str, key: str) -> dict[int, Any]:
        data = self._executor.data
        bulk = getattr(data, "get_xcom_values", None)
        if bulk is not None:
            return dict(bulk(dag_id, run_id, task_id, key))
        indexes = data.get_xcom_map_indexes(dag_id, run_id, task_id, key)
        return {i: data.get_xcom(dag_id, run_id, task_id, key, i) for i in indexes}

    def set_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int, value: Any
    ) -> None:
        from tradewind.serialization import xcom

        # Through the codec, so a task sees the same limits and value types as anywhere else.
        text = xcom.encode(value, task_id=task_id, key=key)
        self._executor.data.set_xcom(dag_id, run_id, task_id, key, map_index, xcom.decode(text))

    def get_variable(self, key: str) -> str:
        from tradewind.sdk import secrets

        value = str(self._executor.data.get_variable(key))
        if secrets.is_sensitive_key(key):
            secrets.mask_secret(value)
        return value

    def get_connection(self, conn_id: str) -> Connection:
        from tradewind.runtime.supervisor import mask_connection

        conn = self._executor.data.get_connection(conn_id)
        mask_connection(conn)
        return conn


class InlineExecutor(BaseExecutor):
    """Runs tries one at a time in this process when :meth:`process_io` is called.

    Besides the common options: ``load_dag(fileloc, dag_id)`` gives the live DAG (default:
    import the file, cached per DAG version and file modification time; ``dag.test()`` passes
    the DAG object it already has), and ``log_stream`` receives a copy of every task log line
    (``tradewind dags test`` passes stderr). ``parallelism`` only bounds
    :meth:`slots_available`.
    """

    name: ClassVar[str] = "inline"
    supports_pools: ClassVar[bool] = False
    supports_queues: ClassVar[bool] = False
    is_local: ClassVar[bool] = True

    def __init__(
        self,
        *,
        parallelism: int = 1,
        data: TaskDataService,
        log_folder: str | Path,
        dags_folder: str | Path | None = None,
        load_dag: Callable[[str, str], DAG] | None = None,
        log_stream: IO[str] | None = None,
    ) -> None:
        super().__init__(
            parallelism=parallelism, data=data, log_folder=log_folder, dags_folder=dags_folder
        )
        self._cache = DagCache(dags_folder=self.dags_folder)
        self._load_dag = load_dag
        self.log_stream = log_stream
        self.hostname = socket.gethostname()
        self._pending: deque[ExecuteTask] = deque()
        self._events: list[ExecutorEvent] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._ended = False

    def start(self) -> None:
        """Nothing to start."""

    def submit(self, workloads: Sequence[ExecuteTask]) -> None:
        """Queue the tries; they run in the next :meth:`process_io`."""
        if self._ended:
            raise TradewindError("the inline executor has been stopped: it takes no more work")
        for workload in workloads:
            log_path = self.log_path_for(workload)
            if log_path != workload.log_path:
                workload = replace(workload, log_path=log_path)
            self._pending.append(workload)
        self._wake()

    def slots_available(self) -> int:
        """``parallelism`` minus the tries waiting for :meth:`process_io`."""
        return max(0, self.parallelism - len(self._pending))

    def fileno(self) -> int:
        """A pipe that is readable while tries or events are waiting."""
        return self._wake_r

    def process_io(self, timeout: float = 0) -> list[ExecutorEvent]:
        """Run every queued try now; with nothing queued, wait up to ``timeout`` s for work."""
        if not self._pending and not self._events and timeout > 0 and not self._ended:
            select.select([self._wake_r], [], [], timeout)
        self._drain_wake()
        while self._pending:
            self._run(self._pending.popleft())
        events, self._events = self._events, []
        return events

    def kill(self, key: TaskInstanceKey) -> None:
        """Drop a queued try (LOST); a running try cannot be killed from its own thread."""
        for workload in list(self._pending):
            if workload.key == key:
                self._pending.remove(workload)
                self._lost(workload, "killed before it started")
                self._wake()

    def end(self, *, timeout: float = 10) -> None:
        """Queued tries become LOST events (collect them with :meth:`process_io`)."""
        while self._pending:
            self._lost(self._pending.popleft(), "the executor stopped before the task started")
        self._ended = True

    def close(self) -> None:
        """Release the wake-up pipe (after :meth:`end`)."""
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- internals -------------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _loader(self, workload: ExecuteTask) -> Callable[[str, str], DAG]:
        if self._load_dag is not None:
            return self._load_dag
        version = workload.dag_version_id
        return lambda fileloc, dag_id: self._cache.load(fileloc, dag_id, version)

    def _lost(self, workload: ExecuteTask, error: str, *, pid: int | None = None) -> None:
        from tradewind.sdk.timezone import utcnow

        self._events.append(
            ExecutorEvent(
                key=workload.key,
                kind=EventKind.LOST,
                error=error,
                end_date=utcnow(),
                pid=pid,
                hostname=self.hostname,
            )
        )

    def _run(self, workload: ExecuteTask) -> None:
        from tradewind.runtime.supervisor import run_try

        channel = _DirectChannel(self, workload)
        try:
            result = run_try(
                try_spec_for(workload),
                channel,
                load_dag=self._loader(workload),
                echo=self.log_stream,
                hostname=self.hostname,
            )
        except Exception as exc:
            self._lost(
                workload, f"the try could not run: {type(exc).__name__}: {exc}", pid=channel.pid
            )
            return
        if not result.started or result.outcome is None:
            return  # refused at the start handshake: no event
        self._events.append(
            event_from_outcome(
                workload,
                result.outcome,
                start_date=result.start_date,
                end_date=result.end_date,
                pid=channel.pid,
                hostname=self.hostname,
            )
        )
