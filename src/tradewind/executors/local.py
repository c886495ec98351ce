"""The local executor: warm worker processes, a forked task process per try.

``start()`` imports the SDK, operators and runtime into this (the scheduler's) process and
forks ``parallelism`` workers from it, so all of them share those pages. Each try goes to an
idle worker, which forks a task process for it (see :mod:`tradewind.executors._worker`); the
task process talks to this executor over a socket of its own (the *try channel*), and the
executor answers its XCom/variable/connection requests by calling the
:class:`~tradewind.executors.base.TaskDataService`. Everything here is non-blocking and driven
by :meth:`LocalExecutor.process_io`, so the scheduler's single thread is never held by task
work.

Events: STARTED when the start handshake succeeded; FINISHED when the task process reported
its outcome (at once: the worker is counted free from then on, as it only has to reap the
process); LOST when the task process ended without an outcome (killed, crashed, timed out
past the hard limit, worker died, executor stopped), with the reason in ``error``, e.g.
``"task process exited with signal 9 (SIGKILL)"``.

A dead worker is replaced at once. The hard timeout: a try still running
``execution_timeout + hard_timeout_margin`` seconds after it began is killed with SIGKILL
(the runtime's own timeout normally ends it long before).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import selectors
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from tradewind.errors import ConnectionNotFound, TradewindError, VariableNotFound, XComError
from tradewind.executors._common import event_from_wire
from tradewind.executors._protocol import Channel
from tradewind.executors._worker import (
    WorkerConfig,
    describe_exit,
    spawn_worker,
    warm_up_runtime,
)
from tradewind.executors.base import BaseExecutor, TaskDataService
from tradewind.executors.workload import EventKind, ExecuteTask, ExecutorEvent, TaskInstanceKey

__all__ = ["PRELOAD_MODULES", "LocalExecutor"]

log = logging.getLogger(__name__)

#: Imported in the scheduler's process before workers are forked, so that workers and task
#: processes share them instead of each importing its own copy. Missing names are skipped.
PRELOAD_MODULES: tuple[str, ...] = (
    "tradewind.sdk",
    "tradewind.sdk.dag_definition",
    "tradewind.sdk.baseoperator",
    "tradewind.sdk.decorators",
    "tradewind.sdk.taskgroup",
    "tradewind.sdk.mapping",
    "tradewind.sdk.params",
    "tradewind.sdk.xcom_arg",
    "tradewind.sdk.context",
    "tradewind.sdk.templating",
    "tradewind.sdk.macros",
    "tradewind.sdk.secrets",
    "tradewind.sdk.timezone",
    "tradewind.timetables",
    "tradewind.operators",
    "tradewind.operators.empty",
    "tradewind.operators.python",
    "tradewind.operators.bash",
    "tradewind.operators.branch",
    "tradewind.operators.latest_only",
    "tradewind.sensors",
    "tradewind.runtime.task_runner",
    "tradewind.runtime.supervisor",
    "tradewind.dag_processing.parser",
    "jinja2",
    "jinja2.sandbox",
    "pendulum",
    "croniter",
    "dateutil.relativedelta",
)


def _preload(names: Sequence[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            continue  # only a warm-up: a module that fails shows up where it is really used
    warm_up_runtime()


@dataclass(eq=False)
class _Try:
    workload: ExecuteTask
    worker: _Worker | None = None
    channel: Channel | None = None
    started: bool = False
    refused: bool = False
    finished: bool = False
    start_date: datetime | None = None
    pid: int | None = None
    lost_reason: str | None = None


@dataclass(eq=False)
class _Worker:
    pid: int
    channel: Channel
    current: _Try | None = None
    retiring: bool = False
    alive: bool = True
    tries: int = 0


@dataclass
class _Stats:
    respawned: int = 0
    lost: int = 0
    finished: int = 0
    requests: int = 0
    #: tries that ran in a worker's spare task process (the rest were forked on arrival)
    spare_used: int = 0


class LocalExecutor(BaseExecutor):
    """Runs tries on this machine in ``parallelism`` warm worker processes.

    Options besides those of :class:`~tradewind.executors.base.BaseExecutor`:

    * ``kill_grace``: seconds between SIGTERM and SIGKILL when a try is killed or stopped;
    * ``hard_timeout_margin``: the hard timeout is ``execution_timeout`` plus this;
    * ``preload_dags``: let workers keep DAG files imported between tries (the big speed-up
      for short tasks; turn off for DAG files with import-time side effects);
    * ``dag_import_timeout``: a worker gives up importing a DAG file after this long (the task
      process then imports it itself and reports the failure);
    * ``preload_modules``: imported here before forking workers;
    * ``spare_processes``: each worker keeps a warmed-up task process forked ahead of time
      (takes the fork and most copy-on-write page copies off a try's start; costs one idle
      process of a few MB per worker).
    """

    name: ClassVar[str] = "local"
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
        kill_grace: float = 5.0,
        hard_timeout_margin: float = 10.0,
        preload_dags: bool = True,
        dag_import_timeout: float | None = 30.0,
        preload_modules: Sequence[str] = PRELOAD_MODULES,
        spare_processes: bool = True,
    ) -> None:
        super().__init__(
            parallelism=parallelism, data=data, log_folder=log_folder, dags_folder=dags_folder
        )
        self.kill_grace = kill_grace
        self.hard_timeout_margin = hard_timeout_margin
        self.preload_dags = preload_dags
        self.dag_import_timeout = dag_import_timeout
        self.preload_modules = tuple(preload_modules)
        self.spare_processes = spare_processes
        self.hostname = socket.gethostname()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._workers: list[_Worker] = []
        self._queue: deque[_Try] = deque()
        self._tries: dict[TaskInstanceKey, _Try] = {}
        self._events: list[ExecutorEvent] = []
        self._unreaped: list[int] = []
        self._no_preload: set[str] = set()
        self._started = False
        self._stopping = False
        self._ended = False
        self.stats = _Stats()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Import the runtime here and fork the workers."""
        if self._started:
            return
        self._started = True
        _preload(self.preload_modules)
        for _ in range(self.parallelism):
            self._spawn()

    def _own_fds(self) -> list[int]:
        fds = [self._selector.fileno(), self._wake_r, self._wake_w]
        fds += [w.channel.fileno() for w in self._workers if not w.channel.closed]
        fds += [
            t.channel.fileno() for t in self._tries.values() if t.channel and not t.channel.closed
        ]
        return [fd for fd in fds if fd >= 0]

    def _spawn(self) -> _Worker | None:
        config = WorkerConfig(
            dags_folder=self.dags_folder,
            import_timeout=self.dag_import_timeout,
            hostname=self.hostname,
            spare=self.spare_processes,
        )
        try:
            pid, sock = spawn_worker(config, self._own_fds())
        except OSError as exc:
            log.error("cannot start a local executor worker: %s", exc)
            return None
        worker = _Worker(pid=pid, channel=Channel(sock))
        self._workers.append(worker)
        self._selector.register(sock, selectors.EVENT_READ, worker)
        return worker

    # -- the interface -------------------------------------------------------------------------
    def submit(self, workloads: Sequence[ExecuteTask]) -> None:
        """Queue the tries; they go to idle workers at once (never blocks)."""
        if self._ended:
            raise TradewindError("the local executor has been stopped: it takes no more work")
        for workload in workloads:
            if workload.key in self._tries:
                log.warning("try %s was submitted twice; the second time is ignored", workload.key)
                continue
            log_path = self.log_path_for(workload)
            if log_path != workload.log_path:
                workload = replace(workload, log_path=log_path)
            item = _Try(workload=workload)
            self._tries[workload.key] = item
            self._queue.append(item)
        self._dispatch()

    def slots_available(self) -> int:
        """Workers free (or only reaping a try that already reported) minus queued tries."""
        free = sum(
            1
            for w in self._workers
            if w.alive and not w.retiring and (w.current is None or w.current.finished)
        )
        return max(0, free - len(self._queue))

    def fileno(self) -> int:
        """The selector's descriptor: readable when any channel has something."""
        return self._selector.fileno()

    def process_io(self, timeout: float = 0) -> list[ExecutorEvent]:
        """Serve requests, collect events; wait at most ``timeout`` s when there are none."""
        if self._ended:
            events, self._events = self._events, []
            return events
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = 0.0 if self._events else max(0.0, deadline - time.monotonic())
            for key, mask in self._selector.select(remaining):
                self._handle(key, mask)
            self._reap()
            self._dispatch()
            if self._events or time.monotonic() >= deadline:
                break
        events, self._events = self._events, []
        return events

    def kill(self, key: TaskInstanceKey) -> None:
        """Stop a queued or running try (SIGTERM to its process group, SIGKILL after
        ``kill_grace``); its LOST (or FINISHED, if it ends first) event follows."""
        item = self._tries.get(key)
        if item is None:
            return
        if item.worker is None:
            self._queue.remove(item)
            self._lose(item, "killed before it started")
            self._wake()
            return
        if not item.finished:
            item.worker.channel.send({"op": "kill", "grace": self.kill_grace})
            self._watch_write(item.worker.channel, item.worker)

    def end(self, *, timeout: float = 10) -> None:
        """Stop running tries and the workers; collect their events with :meth:`process_io`.

        Running tries get SIGTERM (their operators' ``on_kill`` runs) and SIGKILL after
        ``min(kill_grace, timeout)``; a try that still reports an outcome in that time is
        FINISHED, the others LOST. Workers still alive after ``timeout`` are killed.
        """
        if self._ended or not self._started:
            self._ended = True
            self._close_fds()
            return
        while self._queue:
            self._lose(self._queue.popleft(), "the executor stopped before the task started")
        self._stopping = True
        grace = max(0.0, min(self.kill_grace, timeout))
        for worker in self._workers:
            if worker.alive:
                worker.retiring = True
                worker.channel.send({"op": "stop", "grace": grace})
                self._watch_write(worker.channel, worker)
        deadline = time.monotonic() + timeout
        while any(w.alive for w in self._workers) and time.monotonic() < deadline:
            for key, mask in self._selector.select(max(0.0, deadline - time.monotonic())):
                self._handle(key, mask)
        for worker in list(self._workers):
            if worker.alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, 9)
                self._worker_died(worker, "the executor stopped")
        self._ended = True
        self._reap(wait=5.0)
        self._close_fds()

    def _close_fds(self) -> None:
        for item in self._tries.values():
            if item.channel is not None:
                item.channel.close()
        with contextlib.suppress(Exception):
            self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # -- I/O -----------------------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def _watch_write(self, channel: Channel, data: Any) -> None:
        if channel.closed:
            return
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if channel.wants_write else 0)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.modify(channel.sock, mask, data)

    def _handle(self, key: selectors.SelectorKey, mask: int) -> None:
        data = key.data
        if data is None:
            with contextlib.suppress(BlockingIOError, OSError):
                while os.read(self._wake_r, 4096):
                    pass
            return
        channel = data.channel
        if mask & selectors.EVENT_WRITE:
            channel.flush()
            self._watch_write(channel, data)
        if not mask & selectors.EVENT_READ:
            return
        if isinstance(data, _Worker):
            self._on_worker_readable(data)
        else:
            self._on_try_readable(data)

    def _on_worker_readable(self, worker: _Worker) -> None:
        try:
            messages, eof = worker.channel.read()
        except (TradewindError, ValueError) as exc:
            log.error("worker %d sent garbage (%s); replacing it", worker.pid, exc)
            messages, eof = [], True
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, 9)
        for message in messages:
            if message.get("op") == "exited":
                self._on_exited(worker, message)
        if eof:
            self._worker_died(worker, None)

    def _on_try_readable(self, item: _Try) -> None:
        channel = item.channel
        if channel is None:
            return
        try:
            messages, eof = channel.read()
        except (TradewindError, ValueError) as exc:
            item.lost_reason = item.lost_reason or f"task process sent a malformed message ({exc})"
            messages, eof = [], True
        for message in messages:
            if message.get("op") == "outcome":
                self._on_outcome(item, message)
            else:
                self._serve(item, message)
        if channel.wants_write:
            self._watch_write(channel, item)
        if eof:
            self._close_try_channel(item)

    def _close_try_channel(self, item: _Try) -> None:
        if item.channel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(item.channel.sock)
            item.channel.close()
            item.channel = None

    # -- dispatch ------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        if not self._queue:
            return
        for worker in self._workers:
            if not self._queue:
                return
            if worker.alive and not worker.retiring and worker.current is None:
                self._send_run(worker, self._queue.popleft())

    def _send_run(self, worker: _Worker, item: _Try) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        workload = item.workload
        item.worker = worker
        item.channel = Channel(ours)
        worker.current = item
        worker.tries += 1
        self._selector.register(ours, selectors.EVENT_READ, item)
        hard = None
        if workload.execution_timeout is not None:
            hard = workload.execution_timeout + self.hard_timeout_margin
        message = {
            "op": "run",
            "workload": workload.to_dict(),
            "hard_timeout": hard,
            "grace": self.kill_grace,
            "preload": self.preload_dags and workload.fileloc not in self._no_preload,
        }
        worker.channel.send(message, pass_socket=theirs)
        self._watch_write(worker.channel, worker)

    # -- serving a try -------------------------------------------------------------------------
    def _serve(self, item: _Try, message: dict[str, Any]) -> None:
        from tradewind.runtime import xcom
        from tradewind.runtime.supervisor import connection_to_wire
        from tradewind.sdk.timezone import utcnow

        self.stats.requests += 1
        op = message.get("op")
        workload = item.workload
        reply: dict[str, Any] = {"id": message.get("id"), "ok": True, "value": None}
        try:
            if op == "start_task":
                now = utcnow()
                pid = int(message["pid"])
                ok = self.data.start_task(
                    workload.ti_id,
                    workload.key,
                    pid=pid,
                    hostname=str(message.get("hostname") or self.hostname),
                    now=now,
                )
                if ok:
                    item.started, item.start_date, item.pid = True, now, pid
                    reply["value"] = now.isoformat()
                    self._events.append(
                        ExecutorEvent(
                            key=workload.key,
                            kind=EventKind.STARTED,
                            start_date=now,
                            pid=pid,
                            hostname=self.hostname,
                        )
                    )
                else:
                    item.refused = True
            elif not item.started:
                raise TradewindError(f"request {op!r} before the start handshake succeeded")
            elif op == "get_xcom":
                value = self.data.get_xcom(
                    message["dag_id"],
                    message["run_id"],
                    message["task_id"],
                    message["key"],
                    int(message["map_index"]),
                )
                reply["value"] = xcom.encode(value, max_size=None)
            elif op == "get_xcom_map_indexes":
                reply["value"] = list(
                    self.data.get_xcom_map_indexes(
                        message["dag_id"], message["run_id"], message["task_id"], message["key"]
                    )
                )
            elif op == "set_xcom":
                key = workload.key
                target = (
                    message["dag_id"],
                    message["run_id"],
                    message["task_id"],
                    int(message["map_index"]),
                )
                if target != (key.dag_id, key.run_id, key.task_id, key.map_index):
                    raise XComError(
                        "a task may only push XComs for itself", task_id=message["task_id"]
                    )
                self.data.set_xcom(
                    *target[:3], message["key"], target[3], xcom.decode(message["value"])
                )
            elif op == "get_variable":
                reply["value"] = str(self.data.get_variable(message["key"]))
            elif op == "get_connection":
                reply["value"] = connection_to_wire(self.data.get_connection(message["conn_id"]))
            else:
                raise TradewindError(f"unknown request {op!r}")
        except Exception as exc:
            if op == "start_task":
                item.lost_reason = f"the start handshake failed: {type(exc).__name__}: {exc}"
            reply = {"id": message.get("id"), "ok": False, **_error_fields(exc)}
        if item.channel is not None:
            item.channel.send(reply)

    def _on_outcome(self, item: _Try, message: dict[str, Any]) -> None:
        if item.finished or not item.started:
            return
        item.finished = True
        event = event_from_wire(item.workload, message, pid=item.pid, hostname=self.hostname)
        if event.kind is EventKind.LOST:
            self.stats.lost += 1
        else:
            self.stats.finished += 1
        self._events.append(event)
        # The slot counts as free now; let queued work reach the worker as soon as it reaps.

    # -- endings -------------------------------------------------------------------------------
    def _lose(self, item: _Try, error: str) -> None:
        from tradewind.sdk.timezone import utcnow

        self._tries.pop(item.workload.key, None)
        if item.finished or item.refused:
            return
        item.finished = True
        self.stats.lost += 1
        self._events.append(
            ExecutorEvent(
                key=item.workload.key,
                kind=EventKind.LOST,
                error=error,
                start_date=item.start_date,
                end_date=utcnow(),
                pid=item.pid,
                hostname=self.hostname,
            )
        )

    def _finish_try(self, item: _Try) -> None:
        """Read what is left on the try channel (the process is gone) and close it."""
        if item.channel is not None:
            self._on_try_readable(item)
            self._close_try_channel(item)

    def _on_exited(self, worker: _Worker, message: dict[str, Any]) -> None:
        item = worker.current
        worker.current = None
        if message.get("spare"):
            self.stats.spare_used += 1
        if message.get("retire"):
            worker.retiring = True
            if item is not None:
                self._no_preload.add(item.workload.fileloc)
        if item is None:
            return
        self._finish_try(item)
        self._tries.pop(item.workload.key, None)
        if item.finished or item.refused:
            return
        if item.pid is None and isinstance(message.get("pid"), int):
            item.pid = message["pid"]
        status = describe_exit(message.get("code"), message.get("signal"))
        reason = message.get("reason")
        if item.lost_reason:
            error = f"{item.lost_reason} (task process {status})"
        elif reason == "killed":
            error = f"killed on request: task process {status}"
        elif reason == "timeout":
            timeout = item.workload.execution_timeout
            error = (
                f"task ran longer than its execution_timeout ({timeout:g} s) plus "
                f"{self.hard_timeout_margin:g} s and was killed: task process {status}"
            )
        elif reason == "stopping":
            error = f"the executor stopped while the task ran: task process {status}"
        elif isinstance(reason, str) and reason:
            error = f"task process could not run: {reason}"
        elif message.get("code") == 0 and message.get("signal") is None:
            error = "task process exited without reporting an outcome"
        else:
            error = f"task process {status}"
        self._lose(item, error)

    def _worker_died(self, worker: _Worker, why: str | None) -> None:
        if not worker.alive:
            return
        worker.alive = False
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(worker.channel.sock)
        worker.channel.close()
        status = self._reap_one(worker.pid)
        item = worker.current
        worker.current = None
        if item is not None:
            self._finish_try(item)
            self._tries.pop(item.workload.key, None)
            how = why or (f"worker process {status}" if status else "worker process died")
            self._lose(item, f"{how} while running the task")
        self._workers.remove(worker)
        if self._stopping:
            return
        if not worker.retiring:
            log.error("local executor worker %d died (%s); starting another", worker.pid, status)
            self.stats.respawned += 1
        self._spawn()

    def _reap_one(self, pid: int) -> str | None:
        """The worker's exit status, waiting briefly for it (EOF comes just before)."""
        for _ in range(50):
            try:
                waited, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if waited == pid:
                if os.WIFSIGNALED(status):
                    return describe_exit(None, os.WTERMSIG(status))
                return describe_exit(os.waitstatus_to_exitcode(status), None)
            time.sleep(0.001)
        self._unreaped.append(pid)
        return None

    def _reap(self, wait: float = 0.0) -> None:
        deadline = time.monotonic() + wait
        while self._unreaped:
            for pid in list(self._unreaped):
                try:
                    waited, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    waited = pid
                if waited == pid:
                    self._unreaped.remove(pid)
            if not self._unreaped or time.monotonic() >= deadline:
                return
            time.sleep(0.005)


def _error_fields(exc: BaseException) -> dict[str, Any]:
    """The error part of a reply: the kind the task process re-raises, and the message."""
    from tradewind.sdk.secrets import redact

    if isinstance(exc, VariableNotFound):
        kind = "VariableNotFound"
    elif isinstance(exc, ConnectionNotFound):
        kind = "ConnectionNotFound"
    elif isinstance(exc, XComError):
        kind = "XComError"
    elif isinstance(exc, KeyError):
        kind = "KeyError"
    else:
        kind = "Error"
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if kind == "Error":
        text = f"{type(exc).__name__}: {text}"
    return {"error": kind, "message": redact(text)}
