"""A warm worker process of the local executor, and the task processes it forks.

A worker is forked from the fork server (or the scheduler's process) when the executor starts,
after the runtime was imported and warmed up there, so every worker shares those pages. It
waits on its channel for ``run`` messages and runs each try in a **task process** forked from
itself, so a crash or a leak stays in that process. While the task process runs, the worker
waits for it to exit, for a ``kill``/``stop`` message, or for the hard timeout, then reports
``exited``.

What a try costs is mostly the kernel's: forking (copying page tables, which grows with the
worker's memory), the copy-on-write page copies of every page the task process writes to
(about 3 us each on a small VM; a trivial try writes ~850 pages), and the exit. So:

* the worker keeps the DAG files it has imported (:class:`~._dagcache.DagCache`, invalidated
  by DAG version and file modification time), so a task process starts with its DAG imported;
* it does before the fork what every try would otherwise do again in its own process: the
  task's compiled templates and the run's date context entries
  (:mod:`tradewind.runtime.prepare`), the log objects, the SIGTERM handler, ``/dev/null``;
* between the fork and the task process's exit it does next to nothing (its writes would be
  copied too): it waits, blocked on a pidfd and its channel;
* when the executor says the machine has CPU to spare (few tries running, none waiting), an
  idle worker keeps one **spare** task process forked ahead of time. The spare sets itself up
  and runs a no-op task through the runtime once (its log going to ``/dev/null``), paying the
  page copies a try makes before the try arrives, then waits for a try on a socket of its
  own: the try starts sooner, at the cost of the warm-up's CPU (so no spares while tries
  queue). A try goes to the spare when the spare has what the try needs (see
  ``_Worker._spare_fits``); otherwise the worker drops it and forks a task process directly.

Lifetimes: workers and task processes ask the kernel to kill them when their parent dies
(``PR_SET_PDEATHSIG`` on Linux), so nothing outlives the scheduler. Each task process leads
its own process group, so stopping a try also stops the commands it started.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
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
from pathlib import Path
from typing import Any, NoReturn

from tradewind.errors import TradewindError
from tradewind.executors._common import try_spec_for
from tradewind.executors._dagcache import DagCache, dag_root
from tradewind.executors._warmup import warm_up_runtime
from tradewind.executors.workload import ExecuteTask
from tradewind.runtime.prepare import prepare_run, prepare_task
from tradewind.runtime.supervisor import (
    FRAME_HEADER,
    MAX_FRAME_SIZE,
    PipeChannel,
    TaskTerminated,
    TrySpec,
    encode_frame,
    run_try,
)

__all__ = [
    "WorkerConfig",
    "describe_exit",
    "fork_worker",
    "release_free_memory",
    "set_child_subreaper",
    "set_parent_death_signal",
    "spawn_worker",
]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
# libc's prctl with its argument types declared once (a task process calls it right after
# the fork; the call is then cheap).
_prctl: Any = None
# True in a task process once its try begins: SIGTERM then raises TaskTerminated there.
_in_task_process = False
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
    global _prctl
    try:
        if _prctl is None:
            # The usual name first: find_library runs external tools (slow).
            try:
                libc = ctypes.CDLL("libc.so.6", use_errno=True)
            except OSError:
                # Imported only here: it brings shutil, tempfile and random (whose fork
                # handler would then run in every task process).
                from ctypes.util import find_library

                libc = ctypes.CDLL(find_library("c"), use_errno=True)
            function = libc.prctl
            function.argtypes = (ctypes.c_int, *[ctypes.c_ulong] * 4)
            function.restype = ctypes.c_int
            _prctl = function
        result: int = _prctl(option, value, 0, 0, 0)
        return result
    except (OSError, AttributeError, TypeError, ctypes.ArgumentError):
        return None


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; a no-op
    elsewhere). Forking costs grow with the pages a process holds, free or not: this runs
    after imports, before a process starts forking."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


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
    generation: int  # of the DAG cache when it was forked
    modules: int  # how many modules were imported when it was forked


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
        # Whether the executor wants a spare prepared once idle: not while work waits for
        # workers (the spare's warm-up would take CPU from the tries, and forking on arrival
        # costs less than a warm-up plus the try).
        self.spare_wanted = True
        self.zombies: list[int] = []
        # (id of a cached DAG, task id) of the tasks prepared here, valid for a generation
        # of the cache (see _prepare_task).
        self.prepared: set[tuple[int, str]] = set()
        self.prepared_generation = 0
        self.pid = os.getpid()
        self._setup(parent_pid)

    def _setup(self, parent_pid: int) -> None:
        # A session of its own: a Ctrl-C in the scheduler's terminal is the scheduler's to
        # handle (it stops the executor), not every worker's.
        with contextlib.suppress(OSError):
            os.setsid()
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent_pid:
            os._exit(0)  # the scheduler died before the death signal was armed
        for sig in (signal.SIGINT, signal.SIGCHLD, signal.SIGALRM):
            signal.signal(sig, signal.SIG_DFL)
        # Installed here once, so that a task process inherits it instead of installing it
        # after every fork; this worker still dies of SIGTERM as it would by default.
        signal.signal(signal.SIGTERM, _on_sigterm)
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        # Every task process points its stdin here.
        self.devnull = os.open(os.devnull, os.O_RDONLY)
        # The scheduler's log handlers must not receive what task processes log.
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
            if isinstance(logger, logging.Logger):
                _detached_handlers.extend(logger.handlers)
                logger.handlers = []
        # The level a try logs at, set once here rather than in every task process (a level
        # change walks every logger). Without handlers, nothing logged here goes anywhere
        # but the last-resort handler, which shows warnings only.
        if logging.getLogger().getEffectiveLevel() > logging.INFO:
            logging.getLogger().setLevel(logging.INFO)
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
                if (
                    self.spare is None
                    and self.config.spare
                    and self.spare_wanted
                    and self._idle_for(_SPARE_DELAY)
                ):
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
            _spare_process(self, theirs, self.pid)
        theirs.close()
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        self.spare = _Spare(pid=pid, sock=ours, generation=generation, modules=len(sys.modules))

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
        """One try; returns False when the worker must exit afterwards.

        Everything the try needs is prepared before the fork. From the fork until the task
        process exits, every page this process writes is copied (both processes map it),
        so it does next to nothing then: it waits, blocked, on the process and its channel.
        """
        try:
            workload = ExecuteTask.from_dict(message["workload"])
        except (KeyError, TradewindError) as exc:
            os.close(try_fd)
            self._send({"op": "exited", "pid": None, "code": None, "signal": None,
                        "reason": f"unreadable workload: {exc}", "retire": False})  # fmt: skip
            return True
        preload = bool(message.get("preload", True))
        self.spare_wanted = bool(message.get("spare", True))
        hard = message.get("hard_timeout")
        hard_timeout = None if hard is None else float(hard)
        grace = float(message.get("grace", 5.0))
        key = (workload.fileloc, workload.key.dag_id, workload.dag_version_id)
        threads_before = threading.active_count()
        spec = try_spec_for(workload)
        # What the try would otherwise do itself, done here for all the tries forked from
        # now on (a spare forked earlier lacks it: see _spare_fits).
        prepare_run(spec.run)
        dag = self.cache.cached(*key) if preload else None
        compiled = dag is not None and self._prepare_task(dag, workload.key.task_id)
        pid: int | None = None
        if self._spare_fits(preload, dag is not None, compiled):
            pid = self._hand_to_spare(message, try_fd)
        used_spare = pid is not None
        retire = False
        if pid is None:
            self._drop_spare()
            if preload and dag is None:
                dag = self.cache.preload(*key)
                release_free_memory()
                if dag is not None:
                    self._prepare_task(dag, workload.key.task_id)
            # Forking a process that runs threads is unsafe: a DAG file that started some at
            # import makes this worker retire after this try (the executor forks a fresh one).
            retire = threading.active_count() > threads_before
            gc.freeze()
            try:
                pid = os.fork()
            except OSError as exc:
                os.close(try_fd)
                self._send({"op": "exited", "pid": None, "code": None, "signal": None,
                            "reason": f"fork failed: {exc}", "retire": False})  # fmt: skip
                return True
            if pid == 0:  # pragma: no cover - runs in the task process
                _task_process(self, workload, spec, try_fd, dag, self.pid)
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass
        os.close(try_fd)
        status, reason, stop = self._wait(pid, hard_timeout, grace)
        code, sig = _status_fields(status)
        self._send({"op": "exited", "pid": pid, "code": code, "signal": sig,
                    "reason": reason, "retire": retire, "spare": used_spare})  # fmt: skip
        return not (stop or retire)

    def _prepare_task(self, dag: Any, task_id: str) -> bool:
        """:func:`~tradewind.runtime.prepare.prepare_task`, once per task of each imported
        DAG; True when templates were compiled now."""
        if self.prepared_generation != self.cache.generation:
            self.prepared.clear()  # a DAG was imported again or dropped: its objects changed
            self.prepared_generation = self.cache.generation
        done = (id(dag), task_id)
        if done in self.prepared:
            return False
        self.prepared.add(done)
        return prepare_task(dag, task_id)

    def _spare_fits(self, preload: bool, dag_cached: bool, compiled: bool) -> bool:
        """Whether the spare can take the try: it was forked with the try's DAG imported (or
        the task process is to import the DAG file itself anyway), with every module this
        worker holds now (one imported since, say pendulum for a run's dates, would have to
        be imported again by the try), and without templates compiled since for the task."""
        spare = self.spare
        if spare is None or compiled or spare.modules != len(sys.modules):
            return False
        return not preload or (spare.generation == self.cache.generation and dag_cached)

    def _wait(
        self, pid: int, hard_timeout: float | None, grace: float
    ) -> tuple[int, str | None, bool]:
        """Wait for the task process; returns (wait status, why it was killed, stop after)."""
        pidfd = _open_pidfd(pid)
        # Without a pidfd, nothing wakes this process when the task process exits: poll.
        poll = None if pidfd >= 0 else 0.005
        watched: list[Any] = [self.sock, pidfd] if pidfd >= 0 else [self.sock]
        hard_deadline = None if hard_timeout is None else time.monotonic() + hard_timeout
        kill_deadline: float | None = None
        reason: str | None = None
        stop = False
        try:
            while True:
                # Messages may have come with the "run" one: handle what is buffered first.
                while self.reader.buf and (message := self.reader.next_message()) is not None:
                    op = message.get("op")
                    if op in ("kill", "stop") and kill_deadline is None and reason is None:
                        _signal_group(pid, signal.SIGTERM)
                        kill_deadline = time.monotonic() + float(message.get("grace", grace))
                        reason = "killed" if op == "kill" else "stopping"
                    if op == "stop":
                        stop = True
                timeout = poll
                if hard_deadline is not None or kill_deadline is not None:
                    now = time.monotonic()
                    if hard_deadline is not None and now >= hard_deadline:
                        _signal_group(pid, signal.SIGKILL)
                        reason, hard_deadline = "timeout", None
                    if kill_deadline is not None and now >= kill_deadline:
                        _signal_group(pid, signal.SIGKILL)
                        kill_deadline = None
                    for deadline in (hard_deadline, kill_deadline):
                        if deadline is not None:
                            left = max(0.0, deadline - now)
                            timeout = left if timeout is None else min(timeout, left)
                readable, _, _ = select.select(watched, [], [], timeout)
                if pidfd < 0 or pidfd in readable:
                    waited, status = os.waitpid(pid, os.WNOHANG)
                    if waited == pid:
                        # Commands the try left running in its process group end with it.
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except OSError:  # the usual case: nothing left in the group
                            pass
                        return status, reason, stop
                if self.sock not in readable:
                    continue
                try:
                    self.reader.receive_some()
                except _Stop:
                    # The executor is gone: nobody will ever read this try's outcome.
                    _signal_group(pid, signal.SIGKILL)
                    reason, stop = reason or "stopping", True
                    watched.remove(self.sock)
        finally:
            if pidfd >= 0:
                os.close(pidfd)


def _open_pidfd(pid: int) -> int:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3+), else -1."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return -1
    try:
        fd: int = pidfd_open(pid)
        return fd
    except OSError:
        return -1


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


def _on_sigterm(signum: int, frame: object) -> None:
    if not _in_task_process:
        # A worker (or a spare without a try yet): die of it, as by default.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    # Only once: a second SIGTERM must not interrupt on_kill.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise TaskTerminated()


def _become_task_process(worker: _Worker, worker_pid: int) -> None:
    """Set-up common to spare and direct task processes (right after the fork)."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    # If the worker dies, nobody is left to report this try: die with it.
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != worker_pid:
        os._exit(_CRASH_CODE)
    os.close(worker.sock.fileno())
    if worker.spare is not None:
        os.close(worker.spare.sock.fileno())
    os.dup2(worker.devnull, 0)
    os.close(worker.devnull)


def _finish(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code)


def _spare_process(worker: _Worker, sock: socket.socket, worker_pid: int) -> NoReturn:
    """Body of a spare task process: warm up, wait for a try, run it; never returns."""
    try:
        _become_task_process(worker, worker_pid)
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
    _run_task_process(worker, workload, None, reader.fds[0], dag)


def _task_process(
    worker: _Worker,
    workload: ExecuteTask,
    spec: TrySpec,
    try_fd: int,
    dag: Any,
    worker_pid: int,
) -> NoReturn:
    """Body of a task process forked for one try; never returns."""
    try:
        _become_task_process(worker, worker_pid)
    except BaseException:
        _finish(_CRASH_CODE)
    _run_task_process(worker, workload, spec, try_fd, dag)


def _run_task_process(
    worker: _Worker, workload: ExecuteTask, spec: TrySpec | None, try_fd: int, dag: Any
) -> NoReturn:
    global _in_task_process
    code = _CRASH_CODE
    try:
        _in_task_process = True
        _run_try(worker, workload, spec or try_spec_for(workload), try_fd, dag)
        code = 0
    except BaseException as exc:
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


def _run_try(worker: _Worker, workload: ExecuteTask, spec: TrySpec, try_fd: int, dag: Any) -> None:
    from tradewind.dag_processing.parser import load_dag_from_file

    preloaded = dag
    dags_folder = worker.config.dags_folder

    def load_dag(fileloc: str, dag_id: str) -> Any:
        if preloaded is not None and fileloc == workload.fileloc and dag_id == workload.key.dag_id:
            return preloaded
        return load_dag_from_file(fileloc, dag_id, root=dag_root(fileloc, dags_folder))

    channel = PipeChannel(socket.socket(fileno=try_fd))
    run_try(
        spec,
        channel,
        load_dag=load_dag,
        capture_fds=True,
        hostname=worker.config.hostname,
    )
