"""A warm worker process of the local executor, and the task processes it forks.

A worker is forked from the scheduler's process when the executor starts (after the SDK,
operators and runtime were imported and warmed up there, so every worker shares those pages).
It waits on its channel for ``run`` messages and runs each try in a **task process** forked
from itself, so a crash or a leak stays in that process. While the task process runs, the
worker waits for it to exit, for a ``kill``/``stop`` message, or for the hard timeout, then
reports ``exited``.

Two things make a short try fast:

* the worker keeps the DAG files it has imported (:class:`~._dagcache.DagCache`, invalidated
  by DAG version and file modification time), so a task process starts with its DAG imported;
* the worker keeps one **spare** task process forked ahead of time. The spare sets itself up
  and runs a no-op task through the runtime once (with its log going to ``/dev/null``), which
  pays for the copy-on-write page copies every try makes before a real try arrives; then it
  waits for a try on a socket of its own. A try goes to the spare when the spare was forked
  with the try's DAG already in the cache; otherwise (first try of a DAG in this worker) the
  worker imports the DAG, drops the spare and forks a task process directly.

Lifetimes: workers and task processes ask the kernel to kill them when their parent dies
(``PR_SET_PDEATHSIG`` on Linux), so nothing outlives the scheduler. Each task process leads
its own process group, so stopping a try also stops the commands it started.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import ctypes.util
import gc
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from tradewind.errors import TradewindError
from tradewind.executors._common import try_spec_for
from tradewind.executors._dagcache import DagCache, dag_root
from tradewind.executors.workload import ExecuteTask
from tradewind.runtime.supervisor import FRAME_HEADER, MAX_FRAME_SIZE, encode_frame

__all__ = [
    "WorkerConfig",
    "describe_exit",
    "fork_worker",
    "set_child_subreaper",
    "set_parent_death_signal",
    "spawn_worker",
    "warm_up_runtime",
]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_libc: Any = None
# Log handlers inherited from the scheduler are detached in a worker but kept referenced
# here: freeing one would close a file descriptor the scheduler's objects still name.
_detached_handlers: list[logging.Handler] = []
# Exit code of a task process that failed outside the task (EX_SOFTWARE).
_CRASH_CODE = 70
# A worker forks its spare task process only after being idle this long (seconds).
_SPARE_DELAY = 0.002


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux only).

    Returns False where that is not available.
    """
    if not sys.platform.startswith("linux"):
        return False
    return _libc_prctl(_PR_SET_PDEATHSIG, sig) == 0


def _libc_prctl(option: int, value: int) -> int | None:
    global _libc
    try:
        if _libc is None:
            # The usual name first: find_library runs external tools (slow).
            try:
                _libc = ctypes.CDLL("libc.so.6", use_errno=True)
            except OSError:
                _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return int(_libc.prctl(option, value, 0, 0, 0))
    except (OSError, AttributeError, TypeError):
        return None


def set_child_subreaper() -> bool:
    """Make orphaned descendants this process's children (Linux only), to reap them here."""
    if not sys.platform.startswith("linux"):
        return False
    return _libc_prctl(_PR_SET_CHILD_SUBREAPER, 1) == 0


def describe_exit(code: int | None, sig: int | None) -> str:
    """``"exited with signal 9 (SIGKILL)"`` / ``"exited with code 1"``."""
    if sig is not None:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"exited with signal {sig} ({name})"
    return f"exited with code {code}"


def _status_fields(status: int) -> tuple[int | None, int | None]:
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status), None


# --- warming up ---------------------------------------------------------------------------------


def _noop(value: Any) -> Any:
    return value


class _WarmUpChannel:
    """A channel that accepts everything, for the warm-up try."""

    def __init__(self) -> None:
        from tradewind.runtime.client import InMemoryTaskClient

        self._client = InMemoryTaskClient()
        self.get_xcom = self._client.get_xcom
        self.get_xcom_map_indexes = self._client.get_xcom_map_indexes
        self.set_xcom = self._client.set_xcom
        self.get_variable = self._client.get_variable
        self.get_connection = self._client.get_connection

    def start(self, *, pid: int, hostname: str) -> datetime | None:
        from tradewind.sdk.timezone import utcnow

        return utcnow()

    def report(self, outcome: Any, *, start_date: datetime, end_date: datetime) -> None:
        return None


_warm_up_cache: Any = None


def _warm_up_task() -> tuple[Any, Any, Any]:
    """The no-op DAG, run and task instance of the warm-up (built once per process)."""
    global _warm_up_cache
    if _warm_up_cache is None:
        from tradewind.operators.python import PythonOperator
        from tradewind.runtime.task_runner import RunInfo, TaskInstanceInfo
        from tradewind.sdk._context_stack import collecting
        from tradewind.sdk.dag_definition import DAG
        from tradewind.sdk.timezone import utcnow

        day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        with collecting(), DAG("_tradewind_warm_up", schedule=None, start_date=day) as dag:
            PythonOperator(task_id="noop", python_callable=_noop, op_args=["{{ ds }}"])
        run = RunInfo(
            dag_id=dag.dag_id,
            run_id="warm_up",
            logical_date=day,
            data_interval_start=day,
            data_interval_end=day,
        )
        ti = TaskInstanceInfo(dag_id=dag.dag_id, task_id="noop", run_id="warm_up", max_tries=0)
        _warm_up_cache = (dag, run, ti)
    return _warm_up_cache


def _loopback_channel() -> tuple[Any, socket.socket]:
    """A PipeChannel whose replies are already waiting (the warm-up talks to itself)."""
    from tradewind.runtime.supervisor import PipeChannel
    from tradewind.sdk.timezone import utcnow

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    replies = [{"id": 1, "ok": True, "value": utcnow().isoformat()}]
    replies += [{"id": i, "ok": True, "value": None} for i in range(2, 9)]
    theirs.sendall(b"".join(encode_frame(reply) for reply in replies))
    channel = PipeChannel(ours)
    ours.settimeout(2.0)  # never wait for a reply that is not there
    return channel, theirs


def warm_up_runtime(*, through_supervisor: bool = False) -> None:
    """Run one no-op templated task through the runtime in this process.

    The runtime imports some modules on first use and fills caches (template environments,
    regular expressions). Done before forking, every task process finds them ready and shared.
    ``through_supervisor`` runs the whole try as a task process does (workload record, pipe
    channel, log file, all on a loopback socket and ``/dev/null``), which also makes this
    process copy the memory pages a try writes to (used by spare task processes); otherwise
    only the task runs, with its log silenced (used in the scheduler's process).
    """
    from tradewind.executors.workload import ExecuteTask, RunSpec, TaskInstanceKey
    from tradewind.runtime.supervisor import run_try
    from tradewind.runtime.task_runner import run_task

    task_log = logging.getLogger("tradewind.task")
    disabled = task_log.disabled
    task_log.disabled = not through_supervisor
    try:
        dag, run, ti = _warm_up_task()
        if not through_supervisor:
            run_task(dag.get_task("noop"), dag=dag, run=run, ti=ti, client=_WarmUpChannel())
            return
        record = ExecuteTask(
            key=TaskInstanceKey(dag.dag_id, run.run_id, "noop"),
            ti_id="",
            dag_version_id=0,
            fileloc="",
            run=RunSpec(
                run_type="manual",
                logical_date=run.logical_date,
                data_interval_start=run.data_interval_start,
                data_interval_end=run.data_interval_end,
            ),
            max_tries=0,
            log_path=os.devnull,
        )
        spec = try_spec_for(ExecuteTask.from_dict(record.to_dict()))
        channel, peer = _loopback_channel()
        try:
            run_try(spec, channel, load_dag=lambda fileloc, dag_id: dag)
        finally:
            channel.close()
            peer.close()
    except Exception:
        pass  # only an optimisation: a real try reports whatever is broken
    finally:
        task_log.disabled = disabled


# --- framing on blocking sockets ------------------------------------------------------------------


class _Stop(Exception):
    """The channel says stop (or closed)."""


class _FrameReader:
    """Frames (and passed file descriptors) from a blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.fds: list[int] = []

    def receive_some(self) -> None:
        """One ``recvmsg``; raises :class:`_Stop` at end of stream."""
        data, ancdata, _flags, _addr = self.sock.recvmsg(1 << 16, socket.CMSG_SPACE(16))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
                self.fds.extend(fds)
        if not data:
            raise _Stop()
        self.buf += data

    def next_message_ready(self) -> bool:
        """Whether a complete message is buffered."""
        if len(self.buf) < FRAME_HEADER.size:
            return False
        (size,) = FRAME_HEADER.unpack_from(self.buf)
        return len(self.buf) >= FRAME_HEADER.size + size

    def next_message(self) -> dict[str, Any] | None:
        """A complete buffered message, or None."""
        if len(self.buf) < FRAME_HEADER.size:
            return None
        (size,) = FRAME_HEADER.unpack_from(self.buf)
        if size > MAX_FRAME_SIZE:
            raise _Stop()
        end = FRAME_HEADER.size + size
        if len(self.buf) < end:
            return None
        message: dict[str, Any] = json.loads(bytes(self.buf[FRAME_HEADER.size : end]))
        del self.buf[:end]
        return message

    def read_message(self) -> dict[str, Any]:
        """The next message, blocking; raises :class:`_Stop` at end of stream."""
        while True:
            message = self.next_message()
            if message is not None:
                return message
            self.receive_some()


def _pass_fd(sock: socket.socket, message: dict[str, Any], fd: int) -> None:
    fds = array.array("i", [fd])
    data = encode_frame(message)
    sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    if sent < len(data):
        sock.sendall(data[sent:])


# --- the worker -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to know, fixed when it is forked."""

    dags_folder: Path | None
    import_timeout: float | None
    hostname: str
    max_cached_dags: int = 64
    spare: bool = True


def spawn_worker(config: WorkerConfig, close_fds: list[int]) -> tuple[int, socket.socket]:
    """Fork a worker from this process; returns its pid and this side's end of its channel.

    ``close_fds`` are this process's own descriptors (other channels, its selector), closed in
    the worker so that a worker never keeps another one's channel open.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = fork_worker(theirs, config, [ours.fileno(), *close_fds])
    theirs.close()
    return pid, ours


def fork_worker(sock: socket.socket, config: WorkerConfig, close_fds: list[int]) -> int:
    """Fork a worker serving the channel ``sock``; returns its pid (the caller closes
    ``sock``). Raises ``OSError`` when the fork fails."""
    parent_pid = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the worker
        code = _CRASH_CODE
        try:
            for fd in close_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            _Worker(sock, config, parent_pid).serve()
            code = 0
        except BaseException:
            with contextlib.suppress(BaseException):
                import traceback

                traceback.print_exc()
        finally:
            os._exit(code)
    return pid


@dataclass
class _Spare:
    pid: int
    sock: socket.socket
    generation: int


class _Worker:
    """The worker's loop (runs in the worker process)."""

    def __init__(self, sock: socket.socket, config: WorkerConfig, parent_pid: int) -> None:
        self.sock = sock
        self.reader = _FrameReader(sock)
        self.config = config
        self.cache = DagCache(
            dags_folder=config.dags_folder,
            max_entries=config.max_cached_dags,
            import_timeout=config.import_timeout,
        )
        self.spare: _Spare | None = None
        self.zombies: list[int] = []
        self._setup(parent_pid)

    def _setup(self, parent_pid: int) -> None:
        # A session of its own: a Ctrl-C in the scheduler's terminal is the scheduler's to
        # handle (it stops the executor), not every worker's.
        with contextlib.suppress(OSError):
            os.setsid()
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent_pid:
            os._exit(0)  # the scheduler died before the death signal was armed
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGALRM):
            signal.signal(sig, signal.SIG_DFL)
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        # The scheduler's log handlers must not receive what task processes log.
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            if isinstance(logger, logging.Logger):
                _detached_handlers.extend(logger.handlers)
                logger.handlers = []
        self.sock.setblocking(True)
        # Everything imported so far is shared with the scheduler and every task process;
        # keeping the collector off those objects keeps their pages shared.
        gc.freeze()

    def _send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(encode_frame(message))

    def _idle_for(self, seconds: float) -> bool:
        """Whether no message arrives within ``seconds`` (a spare is worth forking only
        then: a busy worker forks each task process on demand and saves the warm-up)."""
        if self.reader.next_message_ready():
            return False
        readable, _, _ = select.select([self.sock], [], [], seconds)
        return not readable

    # -- loop -----------------------------------------------------------------------------------
    def serve(self) -> None:
        """Run tries until told to stop or the executor goes away."""
        self._send({"op": "ready", "pid": os.getpid()})
        try:
            while True:
                self._reap_zombies()
                if self.spare is None and self.config.spare and self._idle_for(_SPARE_DELAY):
                    self._fork_spare()
                try:
                    message = self.reader.read_message()
                except _Stop:
                    return
                op = message.get("op")
                if op == "stop":
                    return
                if op == "run":
                    try_fd = self.reader.fds.pop(0) if self.reader.fds else -1
                    if not self._run(message, try_fd):
                        return
                # a "kill" for a try that already ended: nothing to do
        finally:
            self._drop_spare()

    # -- the spare task process --------------------------------------------------------------------
    def _fork_spare(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        generation = self.cache.generation
        # DAG modules imported since the last fork: keep the task process's collector off
        # them too, so their pages stay shared instead of being copied on the first collection.
        gc.freeze()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return
        if pid == 0:  # pragma: no cover - runs in the spare
            ours.close()
            _spare_process(self, theirs)
        theirs.close()
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        self.spare = _Spare(pid=pid, sock=ours, generation=generation)

    def _drop_spare(self) -> None:
        spare, self.spare = self.spare, None
        if spare is not None:
            spare.sock.close()  # it reads end of stream and exits
            with contextlib.suppress(ProcessLookupError):
                os.kill(spare.pid, signal.SIGKILL)
            self.zombies.append(spare.pid)

    def _reap_zombies(self) -> None:
        for pid in list(self.zombies):
            try:
                waited, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                waited = pid
            if waited == pid:
                self.zombies.remove(pid)

    def _hand_to_spare(self, message: dict[str, Any], try_fd: int) -> int | None:
        spare, self.spare = self.spare, None
        assert spare is not None
        try:
            handoff = {"workload": message["workload"], "preload": message.get("preload", True)}
            _pass_fd(spare.sock, handoff, try_fd)
        except OSError:
            self.spare = spare
            self._drop_spare()
            return None
        spare.sock.close()
        return spare.pid

    # -- one try ------------------------------------------------------------------------------------
    def _run(self, message: dict[str, Any], try_fd: int) -> bool:
        """One try; returns False when the worker must exit afterwards."""
        try:
            workload = ExecuteTask.from_dict(message["workload"])
        except (KeyError, TradewindError) as exc:
            os.close(try_fd)
            self._send({"op": "exited", "pid": None, "code": None, "signal": None,
                        "reason": f"unreadable workload: {exc}", "retire": False})  # fmt: skip
            return True
        preload = bool(message.get("preload", True))
        key = (workload.fileloc, workload.key.dag_id, workload.dag_version_id)
        threads_before = threading.active_count()
        pid: int | None = None
        spare = self.spare
        # The spare can take the try when it was forked with the DAG already imported (or
        # when the task process is to import the DAG file itself anyway).
        if spare is not None and (
            not preload
            or (spare.generation == self.cache.generation and self.cache.cached(*key) is not None)
        ):
            pid = self._hand_to_spare(message, try_fd)
        used_spare = pid is not None
        if pid is None:
            self._drop_spare()
            dag = self.cache.preload(*key) if preload else None
            gc.freeze()
            try:
                pid = os.fork()
            except OSError as exc:
                os.close(try_fd)
                self._send({"op": "exited", "pid": None, "code": None, "signal": None,
                            "reason": f"fork failed: {exc}", "retire": False})  # fmt: skip
                return True
            if pid == 0:  # pragma: no cover - runs in the task process
                _task_process(self, workload, try_fd, dag)
            with contextlib.suppress(OSError):
                os.setpgid(pid, pid)
        os.close(try_fd)
        # Forking a process that runs threads is unsafe: a DAG file that started some at
        # import makes this worker retire after this try (the executor forks a fresh one).
        retire = threading.active_count() > threads_before
        hard = message.get("hard_timeout")
        grace = float(message.get("grace", 5.0))
        status, reason, stop = self._wait(pid, None if hard is None else float(hard), grace)
        code, sig = _status_fields(status)
        self._send({"op": "exited", "pid": pid, "code": code, "signal": sig,
                    "reason": reason, "retire": retire, "spare": used_spare})  # fmt: skip
        return not (stop or retire)

    def _wait(
        self, pid: int, hard_timeout: float | None, grace: float
    ) -> tuple[int, str | None, bool]:
        """Wait for the task process; returns (wait status, why it was killed, stop after)."""
        pidfd = -1
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                pidfd = -1
        started = time.monotonic()
        hard_deadline = None if hard_timeout is None else started + hard_timeout
        kill_deadline: float | None = None
        reason: str | None = None
        stop = False
        executor_gone = False
        try:
            while True:
                waited, status = os.waitpid(pid, os.WNOHANG)
                if waited == pid:
                    # Commands the try left running in its process group end with it.
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                    return status, reason, stop
                # Messages may have come with the "run" one: handle what is buffered first.
                while (message := self.reader.next_message()) is not None:
                    op = message.get("op")
                    if op in ("kill", "stop") and kill_deadline is None and reason is None:
                        _signal_group(pid, signal.SIGTERM)
                        kill_deadline = time.monotonic() + float(message.get("grace", grace))
                        reason = "killed" if op == "kill" else "stopping"
                    if op == "stop":
                        stop = True
                now = time.monotonic()
                if hard_deadline is not None and now >= hard_deadline:
                    _signal_group(pid, signal.SIGKILL)
                    reason, hard_deadline = "timeout", None
                if kill_deadline is not None and now >= kill_deadline:
                    _signal_group(pid, signal.SIGKILL)
                    kill_deadline = None
                deadlines = [d for d in (hard_deadline, kill_deadline) if d is not None]
                timeout = max(0.0, min(deadlines) - now) if deadlines else None
                watched: list[Any] = [] if executor_gone else [self.sock]
                if pidfd >= 0:
                    watched.append(pidfd)
                if pidfd < 0:
                    timeout = 0.005 if timeout is None else min(timeout, 0.005)
                readable, _, _ = select.select(watched, [], [], timeout)
                if self.sock not in readable:
                    continue
                try:
                    self.reader.receive_some()
                except _Stop:
                    # The executor is gone: nobody will ever read this try's outcome.
                    _signal_group(pid, signal.SIGKILL)
                    reason, stop, executor_gone = reason or "stopping", True, True
        finally:
            if pidfd >= 0:
                os.close(pidfd)


def _signal_group(pid: int, sig: int) -> None:
    """Signal the task process's group (the commands it started too), else the process."""
    try:
        os.killpg(pid, sig)
        return
    except (ProcessLookupError, PermissionError):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# --- task processes ---------------------------------------------------------------------------------


def _raise_terminated(signum: int, frame: object) -> None:
    from tradewind.runtime.supervisor import TaskTerminated

    # Only once: a second SIGTERM must not interrupt on_kill.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise TaskTerminated()


def _become_task_process(worker: _Worker) -> None:
    """Set-up common to spare and direct task processes (right after the fork)."""
    worker_pid = os.getppid()
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    # If the worker dies, nobody is left to report this try: die with it.
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != worker_pid:
        os._exit(_CRASH_CODE)
    os.close(worker.sock.fileno())
    if worker.spare is not None:
        os.close(worker.spare.sock.fileno())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def _finish(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code)


def _spare_process(worker: _Worker, sock: socket.socket) -> NoReturn:
    """Body of a spare task process: warm up, wait for a try, run it; never returns."""
    try:
        _become_task_process(worker)
        warm_up_runtime(through_supervisor=True)
        reader = _FrameReader(sock)
        sock.setblocking(True)
        message = reader.read_message()
        sock.close()
        workload = ExecuteTask.from_dict(message["workload"])
        if not reader.fds:
            _finish(_CRASH_CODE)
        dag = None
        if message.get("preload", True):
            dag = worker.cache.cached(
                workload.fileloc, workload.key.dag_id, workload.dag_version_id
            )
    except BaseException:
        _finish(0)  # dropped by the worker (or broken before a try): nothing to report
    _run_task_process(worker, workload, reader.fds[0], dag)


def _task_process(worker: _Worker, workload: ExecuteTask, try_fd: int, dag: Any) -> NoReturn:
    """Body of a task process forked for one try; never returns."""
    try:
        _become_task_process(worker)
    except BaseException:
        _finish(_CRASH_CODE)
    _run_task_process(worker, workload, try_fd, dag)


def _run_task_process(worker: _Worker, workload: ExecuteTask, try_fd: int, dag: Any) -> NoReturn:
    code = _CRASH_CODE
    try:
        signal.signal(signal.SIGTERM, _raise_terminated)
        _run_try(worker, workload, try_fd, dag)
        code = 0
    except BaseException as exc:
        from tradewind.runtime.supervisor import TaskTerminated

        if isinstance(exc, TaskTerminated):
            _die_by_sigterm()
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
    _finish(code)


def _die_by_sigterm() -> None:
    # Report the stop as what it is: killed by SIGTERM (after on_kill ran).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(1)


def _run_try(worker: _Worker, workload: ExecuteTask, try_fd: int, dag: Any) -> None:
    from tradewind.dag_processing.parser import load_dag_from_file
    from tradewind.runtime.supervisor import PipeChannel, run_try

    preloaded = dag
    dags_folder = worker.config.dags_folder

    def load_dag(fileloc: str, dag_id: str) -> Any:
        if preloaded is not None and fileloc == workload.fileloc and dag_id == workload.key.dag_id:
            return preloaded
        return load_dag_from_file(fileloc, dag_id, root=dag_root(fileloc, dags_folder))

    channel = PipeChannel(socket.socket(fileno=try_fd))
    run_try(
        try_spec_for(workload),
        channel,
        load_dag=load_dag,
        capture_fds=True,
        hostname=worker.config.hostname,
    )
