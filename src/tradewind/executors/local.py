"""The local executor: warm worker processes, a forked task process per try.

``start()`` launches ``parallelism`` worker processes (or ``min_workers``, growing to
``parallelism`` on demand). Each try goes to an idle worker, which runs it in a task process
forked from itself (see :mod:`tradewind.executors._worker`), so a crash or a leak stays in
that process. The task process talks to this executor over a socket of its own (the *try
channel*); the executor answers its XCom/variable/connection requests by
calling the :class:`~tradewind.executors.base.TaskDataService`. Everything here is
non-blocking and driven by :meth:`LocalExecutor.process_io`, so the scheduler's single thread
is never held by task work.

Where workers come from (``start_method``):

* ``"forkserver"`` (default): a fresh interpreter (:mod:`tradewind.executors._forkserver`)
  imports and warms up only the task runtime and forks the workers. Forking cost grows with
  the forking process's memory, so task processes forked from lean workers start about twice
  as fast as from a scheduler that holds SQLAlchemy and a database connection; and nothing of
  the scheduler's state reaches task code.
* ``"fork"``: workers are forked from this process after it imported the runtime (quicker to
  start; for tests and small set-ups).

Events: STARTED when the start handshake succeeded; FINISHED when the task process reported
its outcome (at once: the worker counts as free from then on, it only has to reap the
process); LOST when the task process ended without an outcome (killed, crashed, timed out
past the hard limit, worker died, executor stopped), with the reason in ``error``, e.g.
``"task process exited with signal 9 (SIGKILL)"``. A dead worker is replaced at once.

Stopping (:meth:`LocalExecutor.end`) is graceful: tries not started yet are handed back
(they never run and yield no event; their task instances stay queued for the engine's next
start), running tries get ``stop_grace`` seconds to finish, and only those still running then
are stopped (and reported LOST unless they still report an outcome).

Hard timeout: a try still running ``execution_timeout + hard_timeout_margin`` seconds after
its task process began is killed with SIGKILL (the runtime's own timeout normally ends it long
before).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import selectors
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from tradewind.errors import TradewindError
from tradewind.executors._common import ChildReaper, event_from_wire, lost_error
from tradewind.executors._forkserver import launch_forkserver
from tradewind.executors._protocol import Channel
from tradewind.executors._serving import error_fields, serve_data_request, store_outcome_xcoms
from tradewind.executors._warmup import PRELOAD_MODULES, warm_up_runtime
from tradewind.executors._worker import WorkerConfig, spawn_worker
from tradewind.executors.base import BaseExecutor, TaskDataService
from tradewind.executors.workload import EventKind, ExecuteTask, ExecutorEvent, TaskInstanceKey

__all__ = ["PRELOAD_MODULES", "LocalExecutor"]

log = logging.getLogger(__name__)

# A fork server that dies this many times in a row before it is ready is not restarted again.
_MAX_FORKSERVER_FAILURES = 3


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
    pid: int | None
    channel: Channel
    current: _Try | None = None
    retiring: bool = False
    culled: bool = False  # retired for being idle: not replaced
    alive: bool = True
    own_child: bool = True  # forked by this process (so reaped here)
    idle_since: float = field(default_factory=time.monotonic)
    has_spare: bool = False


@dataclass(eq=False)
class _ForkServer:
    process: subprocess.Popen[bytes]
    channel: Channel
    ready: bool = False


@dataclass
class _Stats:
    """Counters, for tests and benchmarks."""

    respawned: int = 0
    lost: int = 0
    finished: int = 0
    requests: int = 0
    #: tries that ran in a worker's spare task process (the rest were forked on arrival)
    spare_used: int = 0


class LocalExecutor(BaseExecutor):
    """Runs tries on this machine in ``parallelism`` warm worker processes.

    Options besides those of :class:`~tradewind.executors.base.BaseExecutor`:

    * ``start_method``: ``"forkserver"`` or ``"fork"`` (see the module docstring);
    * ``kill_grace``: seconds between SIGTERM and SIGKILL when a try is killed or stopped;
    * ``hard_timeout_margin``: the hard timeout is ``execution_timeout`` plus this;
    * ``preload_dags``: let workers keep DAG files imported between tries (the big speed-up
      for short tasks; turn off for DAG files with import-time side effects);
    * ``dag_import_timeout``: a worker gives up importing a DAG file after this long (the task
      process then imports it itself and reports the failure);
    * ``spare_processes``: how many workers keep a warmed-up task process forked ahead of
      time (while idle), so a try neither waits for the fork nor pays most of its
      copy-on-write page faults; each costs an idle process of about 4 MB, and its warm-up
      about the CPU of a try, so workers prepare them only while at most half the CPUs run
      tries and none wait (a chain of tasks, not a wide fan-out). Tries go to those workers
      first. 0 turns it off;
    * ``min_workers``: workers started by :meth:`start` (default: ``parallelism``); more are
      forked when work waits, up to ``parallelism``, and those idle for
      ``idle_worker_timeout`` seconds beyond ``min_workers`` stop again (each idle worker
      holds a few MB of memory of its own);
    * ``preload_modules``: imported before workers are forked;
    * ``stop_grace``: how long :meth:`end` lets running tries finish before it stops them
      (default 20 s: with ``kill_grace`` that stays under the 30 s after which another
      scheduler takes over a silent one's runs, and under the 30 s most supervisors, such
      as Kubernetes, wait before they kill a stopping process).
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
        start_method: Literal["forkserver", "fork"] = "forkserver",
        kill_grace: float = 5.0,
        hard_timeout_margin: float = 10.0,
        preload_dags: bool = True,
        dag_import_timeout: float | None = 30.0,
        spare_processes: int = 4,
        min_workers: int | None = None,
        idle_worker_timeout: float = 60.0,
        preload_modules: Sequence[str] = PRELOAD_MODULES,
        stop_grace: float = 20.0,
    ) -> None:
        super().__init__(
            parallelism=parallelism, data=data, log_folder=log_folder, dags_folder=dags_folder
        )
        if start_method not in ("forkserver", "fork"):
            raise ValueError(f"start_method must be 'forkserver' or 'fork', not {start_method!r}")
        self.start_method = start_method
        self.kill_grace = kill_grace
        self.hard_timeout_margin = hard_timeout_margin
        self.preload_dags = preload_dags
        self.dag_import_timeout = dag_import_timeout
        self.spare_processes = spare_processes
        self.min_workers = (
            parallelism if min_workers is None else max(0, min(min_workers, parallelism))
        )
        self.idle_worker_timeout = idle_worker_timeout
        self.preload_modules = tuple(preload_modules)
        if stop_grace < 0:
            raise ValueError(f"stop_grace must be >= 0, got {stop_grace}")
        self.stop_grace = stop_grace
        #: Tries :meth:`end` handed back without starting them (no event comes for those).
        self.handed_back: list[ExecuteTask] = []
        self._pending_starts: list[tuple[_Try, dict[str, Any]]] = []
        self.hostname = socket.gethostname()
        self.stats = _Stats()
        # Spares are prepared only while at most this many tries run (see _spare_pays_off).
        self._spare_cpu_limit = max(1, (os.cpu_count() or 1) // 2)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._forkserver: _ForkServer | None = None
        self._forkserver_failures = 0
        self._workers: list[_Worker] = []
        self._queue: deque[_Try] = deque()
        self._tries: dict[TaskInstanceKey, _Try] = {}
        self._events: list[ExecutorEvent] = []
        self._children = ChildReaper()
        self._no_preload: set[str] = set()
        self._started = False
        self._stopping = False
        self._ended = False

    # -- the interface -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers (returns at once with ``forkserver``; they report in shortly)."""
        if self._started:
            return
        self._started = True
        if self.start_method == "fork":
            for name in self.preload_modules:
                try:
                    importlib.import_module(name)
                except Exception:
                    continue  # only a warm-up: a broken module shows up where it is used
            warm_up_runtime()
        else:
            self._start_forkserver()
        for _ in range(self.min_workers):
            self._spawn()
        self._dispatch()  # work submitted before start

    def submit(self, workloads: Sequence[ExecuteTask]) -> None:
        """Queue the tries; they go to idle workers at once (never blocks)."""
        if self._ended or self._stopping:
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
        """Workers free (or only reaping a try that already reported), plus workers not
        started yet, minus queued tries."""
        alive = [w for w in self._workers if w.alive and not w.retiring]
        free = sum(1 for w in alive if w.current is None or w.current.finished)
        return max(0, free + max(0, self.parallelism - len(alive)) - len(self._queue))

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
            self._handle_all(self._selector.select(remaining))
            self._children.reap()
            self._dispatch()
            self._cull_idle_workers()
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
            self._send(item.worker, {"op": "kill", "grace": self.kill_grace})

    def end(self, *, timeout: float = 10, grace: float | None = None) -> None:
        """Stop: hand back the tries not started, let running ones finish, stop the rest.

        1. Tries that have not started (queued here, or sent to a worker but not through
           their start handshake yet) are **handed back**: they never run and no event comes
           for them, so they do not count as a try; their task instances stay queued, for
           the engine to queue again when it next starts. :attr:`handed_back` lists them.
        2. Running tries get up to ``grace`` seconds (default :attr:`stop_grace`) to finish
           on their own; their events are collected as usual. A ``KeyboardInterrupt`` (a
           second Ctrl-C) while they do ends the wait at once.
        3. Tries still running then get SIGTERM (their operators' ``on_kill`` runs) and
           SIGKILL after ``min(kill_grace, timeout)``; a try that still reports an outcome in
           that time is FINISHED, the others LOST. Workers still alive ``timeout`` seconds
           after that are killed.

        The events are collected with one more :meth:`process_io` call after this returns.
        """
        if self._ended:
            return
        self._stopping = True
        while self._queue:
            item = self._queue.popleft()
            self._tries.pop(item.workload.key, None)
            self.handed_back.append(item.workload)
        self._let_running_tries_finish(self.stop_grace if grace is None else grace)
        grace = max(0.0, min(self.kill_grace, timeout))
        for worker in self._workers:
            if worker.alive:
                worker.retiring = True
                self._send(worker, {"op": "stop", "grace": grace})
        deadline = time.monotonic() + timeout
        while any(w.alive for w in self._workers) and time.monotonic() < deadline:
            self._handle_all(self._selector.select(max(0.0, deadline - time.monotonic())))
        for worker in list(self._workers):
            if worker.alive and worker.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
            self._worker_died(worker, "the executor stopped")
        self._stop_forkserver(timeout=max(1.0, deadline - time.monotonic()))
        self._ended = True
        self._children.reap(wait=5.0)
        self._close_fds()

    def _let_running_tries_finish(self, grace: float) -> None:
        """Serve the running tries until none is left or ``grace`` seconds have passed."""
        deadline = time.monotonic() + max(0.0, grace)
        try:
            while self._running_tries() and time.monotonic() < deadline:
                self._handle_all(self._selector.select(max(0.0, deadline - time.monotonic())))
                self._children.reap()
        except KeyboardInterrupt:
            log.warning("asked again to stop: stopping the running tries now")

    def _running_tries(self) -> int:
        return sum(
            1
            for w in self._workers
            if w.alive and w.current is not None and not (w.current.finished or w.current.refused)
        )

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers that have reported in (for diagnostics and tests)."""
        return [w.pid for w in self._workers if w.alive and w.pid is not None]

    # -- workers ---------------------------------------------------------------------------------
    def _worker_config(self, *, spare: bool = False) -> WorkerConfig:
        return WorkerConfig(
            dags_folder=self.dags_folder,
            import_timeout=self.dag_import_timeout,
            hostname=self.hostname,
            spare=spare,
        )

    def _own_fds(self) -> list[int]:
        fds = [self._selector.fileno(), self._wake_r, self._wake_w]
        fds += [w.channel.fileno() for w in self._workers]
        fds += [t.channel.fileno() for t in self._tries.values() if t.channel is not None]
        if self._forkserver is not None:
            fds.append(self._forkserver.channel.fileno())
        return [fd for fd in fds if fd >= 0]

    def _spawn(self) -> None:
        spare = sum(1 for w in self._workers if w.has_spare and w.alive) < self.spare_processes
        if self._forkserver is not None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            self._forkserver.channel.send({"op": "spawn", "spare": spare}, pass_socket=theirs)
            self._watch_write(self._forkserver.channel, self._forkserver)
            worker = _Worker(pid=None, channel=Channel(ours), own_child=False, has_spare=spare)
        else:
            try:
                pid, sock = spawn_worker(self._worker_config(spare=spare), self._own_fds())
            except OSError as exc:
                log.error("cannot start a local executor worker: %s", exc)
                return
            worker = _Worker(pid=pid, channel=Channel(sock), has_spare=spare)
        self._workers.append(worker)
        self._selector.register(worker.channel.sock, selectors.EVENT_READ, worker)

    def _start_forkserver(self) -> None:
        process, ours, config = launch_forkserver(self._worker_config(), self.preload_modules)
        server = _ForkServer(process=process, channel=Channel(ours))
        server.channel.send(config)
        self._forkserver = server
        self._selector.register(ours, selectors.EVENT_READ, server)
        self._watch_write(server.channel, server)

    def _stop_forkserver(self, timeout: float) -> None:
        server, self._forkserver = self._forkserver, None
        if server is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(server.channel.sock)
        server.channel.close()  # it reads end of stream and exits
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()

    def _on_forkserver_readable(self, server: _ForkServer) -> None:
        try:
            messages, eof = server.channel.read()
        except (TradewindError, ValueError):
            messages, eof = [], True
        for message in messages:
            if message.get("op") == "ready":
                server.ready = True
                self._forkserver_failures = 0
            elif message.get("op") == "spawn_failed":
                log.error("the fork server cannot start a worker: %s", message.get("error"))
        if not eof or self._stopping:
            return
        # Its workers die with it (and are replaced as they do): start another.
        code = server.process.poll()
        log.error("the local executor's fork server exited (code %s); restarting it", code)
        self._forkserver_failures = 0 if server.ready else self._forkserver_failures + 1
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(server.channel.sock)
        server.channel.close()
        self._forkserver = None
        if server.process.poll() is None:
            self._children.later(server.process.pid)  # reaped later, without waiting here
        if self._forkserver_failures >= _MAX_FORKSERVER_FAILURES:
            log.error(
                "the fork server keeps failing before it is ready; forking workers from this "
                "process from now on"
            )
            self.start_method = "fork"
            return
        self._start_forkserver()

    # -- I/O -----------------------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def _send(self, worker: _Worker, message: dict[str, Any], **kwargs: Any) -> None:
        worker.channel.send(message, **kwargs)
        self._watch_write(worker.channel, worker)

    def _watch_write(self, channel: Channel, data: Any) -> None:
        wants_write = channel.wants_write
        if channel.closed or wants_write == channel.watching_write:
            return  # the usual case: everything was written at once, as before
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if wants_write else 0)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.modify(channel.sock, mask, data)
            channel.watching_write = wants_write

    def _handle(self, key: selectors.SelectorKey, mask: int) -> None:
        data = key.data
        if data is None:
            with contextlib.suppress(BlockingIOError, OSError):
                while os.read(self._wake_r, 4096):
                    pass
            return
        channel = data.channel
        if channel is None or channel.closed:
            return
        if mask & selectors.EVENT_WRITE:
            channel.flush()
            self._watch_write(channel, data)
        if not mask & selectors.EVENT_READ:
            return
        if isinstance(data, _Worker):
            self._on_worker_readable(data)
        elif isinstance(data, _Try):
            self._on_try_readable(data)
        else:
            self._on_forkserver_readable(data)

    def _on_worker_readable(self, worker: _Worker) -> None:
        try:
            messages, eof = worker.channel.read()
        except (TradewindError, ValueError) as exc:
            log.error("worker %s sent a malformed message (%s); replacing it", worker.pid, exc)
            messages, eof = [], True
            if worker.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
        for message in messages:
            op = message.get("op")
            if op == "ready" and isinstance(message.get("pid"), int):
                worker.pid = message["pid"]
            elif op == "exited":
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
                self._on_request(item, message)
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
        if not self._queue or self._stopping or not self._started:
            return
        alive = [w for w in self._workers if w.alive and not w.retiring]
        idle = sum(1 for w in alive if w.current is None)
        for _ in range(min(len(self._queue) - idle, self.parallelism - len(alive))):
            self._spawn()
        # Workers with a spare task process first, the one idle the longest first: it has had
        # time to fork and warm up its spare.
        for worker in sorted(self._workers, key=lambda w: (not w.has_spare, w.idle_since)):
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
            "spare": self._spare_pays_off(),
        }
        self._send(worker, message, pass_socket=theirs)

    def _spare_pays_off(self) -> bool:
        """Whether a worker should prepare a spare task process once its try ends.

        A spare's warm-up costs about as much CPU as a try, to make the next try start
        sooner; that is worth it while the machine has CPU to spare (a chain of tasks), not
        while tries keep the CPUs busy (a wide fan-out), where it only takes CPU from them.
        """
        if self._queue:
            return False
        busy = sum(1 for w in self._workers if w.current is not None and not w.current.finished)
        return busy <= self._spare_cpu_limit

    # -- serving a try ---------------------------------------------------------------------------
    def _handle_all(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        """Handle what the selector found ready, then answer the start handshakes that came
        in meanwhile together (one transaction for all of them)."""
        for key, mask in ready:
            self._handle(key, mask)
        if self._pending_starts:
            self._serve_starts()

    def _serve_starts(self) -> None:
        """Answer the start handshakes of this round: one data-service call for all of them
        when the service can start several tries at once (one transaction)."""
        from tradewind.sdk.timezone import utcnow

        pending, self._pending_starts = self._pending_starts, []
        items: list[tuple[_Try, dict[str, Any]]] = []
        for item, message in pending:
            if item.finished:
                continue
            if item.started or item.refused:
                error = TradewindError("the start handshake was already made for this try")
                self._reply(item, {"id": message.get("id"), "ok": False, **error_fields(error)})
            elif self._stopping:
                # Too late to start: handed back untouched (see end()).
                item.refused = True
                self.handed_back.append(item.workload)
                self._reply(item, {"id": message.get("id"), "ok": True, "value": None})
            else:
                items.append((item, message))
        if not items:
            return
        now = utcnow()
        requests = [
            (item.workload.ti_id, item.workload.key, int(message["pid"]),
             str(message.get("hostname") or self.hostname))
            for item, message in items
        ]  # fmt: skip
        outcomes: list[bool | Exception]
        start_many = getattr(self.data, "start_tasks", None)
        if start_many is not None and len(requests) > 1:
            try:
                outcomes = list(start_many(requests, now=now))
            except Exception as exc:
                outcomes = [exc] * len(requests)
        else:
            outcomes = [self._start_one(request, now) for request in requests]
        for (item, message), (_, _, pid, hostname), outcome in zip(
            items, requests, outcomes, strict=True
        ):
            if isinstance(outcome, Exception):
                item.lost_reason = (
                    f"the start handshake failed: {type(outcome).__name__}: {outcome}"
                )
                reply = {"id": message.get("id"), "ok": False, **error_fields(outcome)}
            elif not outcome:
                item.refused = True
                reply = {"id": message.get("id"), "ok": True, "value": None}
            else:
                item.started, item.start_date, item.pid = True, now, pid
                self._events.append(
                    ExecutorEvent(
                        key=item.workload.key,
                        kind=EventKind.STARTED,
                        start_date=now,
                        pid=pid,
                        hostname=hostname,
                    )
                )
                reply = {"id": message.get("id"), "ok": True, "value": now.isoformat()}
            self._reply(item, reply)

    def _start_one(self, request: tuple[str, TaskInstanceKey, int, str], now: datetime) -> Any:
        """One handshake through ``start_task``: whether it may run, or what went wrong."""
        ti_id, key, pid, hostname = request
        try:
            return self.data.start_task(ti_id, key, pid=pid, hostname=hostname, now=now)
        except Exception as exc:
            return exc

    def _reply(self, item: _Try, reply: dict[str, Any]) -> None:
        if item.channel is not None:
            item.channel.send(reply)
            self._watch_write(item.channel, item)

    def _on_request(self, item: _Try, message: dict[str, Any]) -> None:
        self.stats.requests += 1
        op = message.get("op")
        if op == "start_task":
            # Answered with the other handshakes of this round (see _handle_all).
            self._pending_starts.append((item, message))
            return
        reply: dict[str, Any] = {"id": message.get("id"), "ok": True, "value": None}
        try:
            if not item.started:
                raise TradewindError(f"request {op!r} before the start handshake succeeded")
            reply["value"] = serve_data_request(self.data, item.workload, message)
        except Exception as exc:
            reply = {"id": message.get("id"), "ok": False, **error_fields(exc)}
        self._reply(item, reply)

    def _on_outcome(self, item: _Try, message: dict[str, Any]) -> None:
        if item.finished or not item.started:
            return
        item.finished = True
        event = event_from_wire(item.workload, message, pid=item.pid, hostname=self.hostname)
        if event.kind is EventKind.FINISHED and message.get("xcoms"):
            # Stored before the try counts as finished: its downstream tasks read them.
            self.stats.requests += len(message["xcoms"])
            event = store_outcome_xcoms(self.data, item.workload, message["xcoms"], event)
        if event.kind is EventKind.LOST:
            self.stats.lost += 1
        else:
            self.stats.finished += 1
        self._events.append(event)

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
        self._tries.pop(item.workload.key, None)

    def _on_exited(self, worker: _Worker, message: dict[str, Any]) -> None:
        item = worker.current
        worker.current = None
        worker.idle_since = time.monotonic()
        if message.get("spare"):
            self.stats.spare_used += 1
        if message.get("retire"):
            worker.retiring = True
            if item is not None:
                self._no_preload.add(item.workload.fileloc)
        if item is None:
            return
        self._finish_try(item)
        if item.finished or item.refused:
            return
        if item.pid is None and isinstance(message.get("pid"), int):
            item.pid = message["pid"]
        self._lose(
            item,
            lost_error(
                message,
                lost_reason=item.lost_reason,
                workload=item.workload,
                hard_timeout_margin=self.hard_timeout_margin,
            ),
        )

    def _worker_died(self, worker: _Worker, why: str | None) -> None:
        if not worker.alive:
            return
        worker.alive = False
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(worker.channel.sock)
        worker.channel.close()
        status = self._children.reap_now(worker.pid) if worker.own_child and worker.pid else None
        item = worker.current
        worker.current = None
        if item is not None:
            self._finish_try(item)
            if not item.started and not self._stopping:
                # Most likely the DAG file crashed the worker importing it: let the task
                # processes of that file import it themselves from now on.
                self._no_preload.add(item.workload.fileloc)
            how = why or f"worker process {worker.pid or '?'} {status or 'died'}"
            self._lose(item, f"{how} while running the task")
        self._workers.remove(worker)
        if self._stopping or worker.culled:
            return
        if not worker.retiring:
            log.error("local executor worker %s died (%s); starting another", worker.pid, status)
            self.stats.respawned += 1
        self._spawn()

    def _cull_idle_workers(self) -> None:
        """Stop workers idle for ``idle_worker_timeout`` beyond ``min_workers``."""
        if len(self._workers) <= self.min_workers or self._queue:
            return
        alive = [w for w in self._workers if w.alive and not w.retiring]
        extra = len(alive) - self.min_workers
        if extra <= 0 or self._queue:
            return
        now = time.monotonic()
        for worker in sorted(alive, key=lambda w: w.idle_since):
            if extra <= 0 or now - worker.idle_since < self.idle_worker_timeout:
                return
            if worker.current is None:
                worker.retiring = worker.culled = True
                self._send(worker, {"op": "stop", "grace": self.kill_grace})
                extra -= 1

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
