"""One task try from start handshake to reported outcome, with its log file.

:func:`run_try` is what a task process does for one try, under every executor:

1. the **start handshake** (``channel.start``): the engine moves exactly this try from queued
   to running; when it refuses (the task instance was cleared, or this try ran already) the
   try ends here, before any user code, without a log file and without an outcome;
2. opens the try's **log file** (parent folders created) and sends every log record of the
   process there as ``[timestamp] LEVEL logger - message`` (UTC timestamps, masked secrets
   replaced by ``***``); what the task prints on ``sys.stdout``/``sys.stderr`` becomes log
   records of ``tradewind.task.stdout`` (INFO) / ``tradewind.task.stderr`` (WARNING);
3. loads the DAG (through the ``load_dag`` callable it is given) and runs the task with
   :func:`~tradewind.runtime.task_runner.run_task`, the channel serving as its
   :class:`~tradewind.runtime.client.TaskClient`;
4. closes the log, then **reports** the outcome on the channel.

The channel is the only thing that differs between executors. :class:`PipeChannel` is the
one a forked task process uses: length-prefixed JSON messages over a socket to the executor
in the scheduler's process (the framing is defined here, by :func:`encode_frame` and
:func:`read_frame`, and shared with the executor side). Request/reply exchange on the socket::

    -> {"id": 1, "op": "start_task", "pid": 4242, "hostname": "box"}
    <- {"id": 1, "ok": true, "value": "2024-01-01T00:00:00.001+00:00"}   (null: refused)
    -> {"id": 2, "op": "get_xcom", "dag_id": ..., "run_id": ..., "task_id": ...,
        "key": "return_value", "map_index": -1}
    <- {"id": 2, "ok": true, "value": "<XCom JSON text>"}
    <- {"id": 2, "ok": false, "error": "KeyError", "message": "..."}     (raised here)
    -> {"op": "outcome", "state": "success", "error": null, ...,
        "xcoms": [{"op": "set_xcom", "dag_id": ..., "key": "return_value", ...}]}
                                                                        (no reply)

XCom pushes made after the task's own work (its return value, and what its callbacks push)
travel inside the outcome message (see :meth:`PipeChannel.hold_xcom_pushes`); the executor
stores them before it reports the try finished.

Operations: ``start_task``, ``get_xcom``, ``get_xcom_map_indexes``, ``get_xcom_values``
(every map index's value at once, as ``[[index, XCom JSON], ...]``), ``set_xcom`` (value as
XCom JSON text), ``get_variable``, ``get_connection`` (value: the connection's fields).
Error kinds: ``KeyError``, ``VariableNotFound``, ``ConnectionNotFound``, ``XComError``,
``Error`` (anything else, raised as :class:`~tradewind.errors.TradewindError`).
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Protocol

from tradewind.errors import ConnectionNotFound, TradewindError, VariableNotFound, XComError
from tradewind.runtime.task_runner import RunInfo, TaskInstanceInfo, TaskOutcome, run_task
from tradewind.sdk.connection import Connection
from tradewind.sdk.secrets import redact
from tradewind.serialization import xcom
from tradewind.state import TaskState

if TYPE_CHECKING:
    from tradewind.sdk.dag_definition import DAG

__all__ = [
    "FRAME_HEADER",
    "LOG_FORMAT",
    "MAX_FRAME_SIZE",
    "DagLoader",
    "PipeChannel",
    "TaskLogFormatter",
    "TaskTerminated",
    "TryChannel",
    "TryResult",
    "TrySpec",
    "connection_from_wire",
    "connection_to_wire",
    "encode_frame",
    "mask_connection",
    "outcome_to_wire",
    "read_frame",
    "run_try",
]

#: The line format of task log files.
LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s - %(message)s"
#: Largest message either side accepts (an XCom is at most a few MiB once encoded).
MAX_FRAME_SIZE = 256 * 1024 * 1024
#: The frame header: the length of the JSON body that follows, 4 bytes, big-endian.
FRAME_HEADER = struct.Struct(">I")
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

log = logging.getLogger("tradewind.task")

#: ``load_dag(fileloc, dag_id)``: the live DAG (raises when the file or DAG cannot be loaded).
DagLoader = Callable[[str, str], "DAG"]


class TaskTerminated(KeyboardInterrupt):
    """Raised in a task process asked to stop (SIGTERM).

    A ``KeyboardInterrupt`` so that task code's ``except Exception`` does not swallow it and
    the runtime calls the operator's ``on_kill`` on the way out.
    """


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrySpec:
    """Which try to run: the task instance (``ti.max_tries`` set), its run, and where things are.

    ``ti_id`` is the task-instance row id; ``fileloc`` the DAG file; ``log_path`` the try's
    log file (absolute).
    """

    ti_id: str
    ti: TaskInstanceInfo
    run: RunInfo
    fileloc: str
    log_path: str


@dataclass
class TryResult:
    """How :func:`run_try` ended: ``started`` False means the start was refused."""

    started: bool
    outcome: TaskOutcome | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


class TryChannel(Protocol):
    """The transport between a try and the engine: a TaskClient plus start and report."""

    def start(self, *, pid: int, hostname: str) -> datetime | None:
        """The start handshake: the recorded start date, or None when the engine refuses."""
        ...

    def report(self, outcome: TaskOutcome, *, start_date: datetime, end_date: datetime) -> None:
        """Send the outcome (the last thing a try does)."""
        ...

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
        """See :class:`~tradewind.runtime.client.TaskClient`."""
        ...

    def get_xcom_map_indexes(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[int]:
        """See :class:`~tradewind.runtime.client.TaskClient`."""
        ...

    def set_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int, value: Any
    ) -> None:
        """See :class:`~tradewind.runtime.client.TaskClient`."""
        ...

    def get_variable(self, key: str) -> str:
        """See :class:`~tradewind.runtime.client.TaskClient`."""
        ...

    def get_connection(self, conn_id: str) -> Connection:
        """See :class:`~tradewind.runtime.client.TaskClient`."""
        ...


# --- wire helpers ------------------------------------------------------------------------------


def encode_frame(message: dict[str, Any]) -> bytes:
    """``message`` as one frame: a 4-byte big-endian length, then compact UTF-8 JSON."""
    body = _encode_json(message).encode("utf-8")
    if len(body) > MAX_FRAME_SIZE:
        raise TradewindError(f"message of {len(body)} bytes is larger than {MAX_FRAME_SIZE}")
    return FRAME_HEADER.pack(len(body)) + body


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(min(size - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket) -> dict[str, Any] | None:
    """Read one frame from a blocking socket; None at end of stream (also mid-frame)."""
    header = _recv_exact(sock, FRAME_HEADER.size)
    if header is None:
        return None
    (size,) = FRAME_HEADER.unpack(header)
    if size > MAX_FRAME_SIZE:
        raise TradewindError(f"peer sent a frame of {size} bytes, more than {MAX_FRAME_SIZE}")
    body = _recv_exact(sock, size)
    if body is None:
        return None
    message = json.loads(body.decode("utf-8"))
    if not isinstance(message, dict):
        raise TradewindError(f"peer sent a frame that is not a JSON object: {message!r}")
    return message


def connection_to_wire(conn: Connection) -> dict[str, Any]:
    """A connection's fields as a JSON-ready dict (``extra`` as stored: text or dict)."""
    return {f.name: getattr(conn, f.name) for f in fields(conn)}


def connection_from_wire(data: dict[str, Any]) -> Connection:
    """Rebuild :func:`connection_to_wire` output."""
    names = {f.name for f in fields(Connection)}
    return Connection(**{k: v for k, v in data.items() if k in names})


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def outcome_to_wire(
    outcome: TaskOutcome, *, start_date: datetime, end_date: datetime
) -> dict[str, Any]:
    """The ``outcome`` message for ``outcome`` (the return value travels as XCom, not here)."""
    return {
        "op": "outcome",
        "state": outcome.state.value,
        "error": outcome.error,
        "traceback": outcome.traceback,
        "skipped_task_ids": list(outcome.skipped_task_ids),
        "rendered_fields": dict(outcome.rendered_fields),
        "duration": outcome.duration,
        "start_date": _iso(start_date),
        "end_date": _iso(end_date),
    }


def mask_connection(conn: Connection) -> None:
    """Mask a connection's password and secret-sounding extra values in logs from now on."""
    from tradewind.sdk import secrets
    from tradewind.sdk.connection import is_sensitive_key

    secrets.mask_secret(conn.password)
    try:
        extra = conn.extra_dejson
    except TradewindError:
        return
    for key, value in extra.items():
        if is_sensitive_key(key):
            secrets.mask_secret(value)


# --- the pipe channel ----------------------------------------------------------------------------

# Signals that raise inside task code. A half-written frame would corrupt the stream for good,
# so they are held back while a request and its reply cross the socket.
_DEFERRED_SIGNALS = frozenset(
    s for s in (getattr(signal, "SIGALRM", None), getattr(signal, "SIGTERM", None)) if s
)
# The C function itself: signal.pthread_sigmask wraps it only to turn the mask it returns
# into enum members, which is most of its cost.
_sigmask: Any = getattr(getattr(signal, "_signal", None), "pthread_sigmask", None) or getattr(
    signal, "pthread_sigmask", None
)


class PipeChannel:
    """A :class:`TryChannel` over a connected stream socket to the executor (blocking).

    Requests are strictly one at a time (a lock serialises threads of the task).
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._lock = threading.Lock()
        self._next_id = 0
        # Signals can be held back only in the main thread (where Python runs handlers).
        self._main_ident = threading.main_thread().ident
        # XCom pushes kept for the outcome message (None: each push is a request of its own).
        self._held: list[dict[str, Any]] | None = None

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def _exchange(self, message: dict[str, Any], *, want_reply: bool) -> dict[str, Any] | None:
        blocked = _sigmask is not None and threading.get_ident() == self._main_ident
        with self._lock:
            if want_reply:
                self._next_id += 1
                message = {"id": self._next_id, **message}
            frame = encode_frame(message)
            if blocked:
                old = _sigmask(signal.SIG_BLOCK, _DEFERRED_SIGNALS)
            try:
                self._sock.sendall(frame)
                reply = read_frame(self._sock) if want_reply else None
            finally:
                if blocked:
                    _sigmask(signal.SIG_SETMASK, old)
        if want_reply and reply is None:
            raise TradewindError("the executor closed the connection to this task process")
        return reply

    def hold_xcom_pushes(self) -> None:
        """Keep the XCom pushes from now on and send them with the outcome, in one message
        (the runtime calls this when the task's own work is done). A read request sends the
        kept pushes first, so the try still reads what it pushed."""
        if self._held is None:
            self._held = []

    def _send_held(self) -> None:
        while self._held:
            self._request(self._held.pop(0))

    def request(self, op: str, **args: Any) -> Any:
        """Send one request and return the reply's value (raising its error as an exception)."""
        self._send_held()
        return self._request({"op": op, **args})

    def _request(self, args: dict[str, Any]) -> Any:
        reply = self._exchange(args, want_reply=True)
        assert reply is not None
        if reply.get("ok"):
            return reply.get("value")
        kind = reply.get("error")
        message = str(reply.get("message", ""))
        if kind == "VariableNotFound":
            raise VariableNotFound(str(args.get("key", message)))
        if kind == "ConnectionNotFound":
            raise ConnectionNotFound(str(args.get("conn_id", message)))
        if kind == "KeyError":
            raise KeyError(message)
        if kind == "XComError":
            raise XComError(message)
        raise TradewindError(message or f"request {args['op']!r} failed")

    # -- TryChannel ----------------------------------------------------------------------------
    def start(self, *, pid: int, hostname: str) -> datetime | None:
        """The start handshake; None when refused."""
        value = self.request("start_task", pid=pid, hostname=hostname)
        return None if value is None else datetime.fromisoformat(value)

    def report(self, outcome: TaskOutcome, *, start_date: datetime, end_date: datetime) -> None:
        """Send the outcome message (no reply), with the XCom pushes held back."""
        message = outcome_to_wire(outcome, start_date=start_date, end_date=end_date)
        if self._held:
            message["xcoms"], self._held = self._held, []
        self._exchange(message, want_reply=False)

    # -- TaskClient ------------------------------------------------------------------------------
    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
        """The decoded value; raises ``KeyError`` when there is none."""
        text = self.request(
            "get_xcom",
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            key=key,
            map_index=map_index,
        )
        return xcom.decode(text)

    def get_xcom_map_indexes(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[int]:
        """The map indexes (ascending) with a value under ``key``."""
        value = self.request(
            "get_xcom_map_indexes", dag_id=dag_id, run_id=run_id, task_id=task_id, key=key
        )
        return [int(i) for i in value]

    def get_xcom_values(self, dag_id: str, run_id: str, task_id: str, key: str) -> dict[int, Any]:
        """Every map index's value under ``key`` (ascending), in one round trip."""
        pairs = self.request(
            "get_xcom_values", dag_id=dag_id, run_id=run_id, task_id=task_id, key=key
        )
        return {int(i): xcom.decode(text) for i, text in pairs}

    def set_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int, value: Any
    ) -> None:
        """Encode here (so a bad value fails in the task, naming it) and store (or keep it
        for the outcome message, see :meth:`hold_xcom_pushes`)."""
        text = xcom.encode(value, task_id=task_id, key=key)
        message = {
            "op": "set_xcom",
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "key": key,
            "map_index": map_index,
            "value": text,
        }
        if self._held is not None:
            self._held.append(message)
        else:
            self._request(message)

    def get_variable(self, key: str) -> str:
        """The variable; a secret-sounding key's value is masked in logs from now on."""
        from tradewind.sdk import secrets

        value = str(self.request("get_variable", key=key))
        if secrets.is_sensitive_key(key):
            secrets.mask_secret(value)
        return value

    def get_connection(self, conn_id: str) -> Connection:
        """The connection; its password and secret extras are masked in logs from now on."""
        conn = connection_from_wire(self.request("get_connection", conn_id=conn_id))
        mask_connection(conn)
        return conn


# --- the log ----------------------------------------------------------------------------------------


class TaskLogFormatter(logging.Formatter):
    """``[2024-01-01T00:00:00.123+00:00] INFO tradewind.task - message``, secrets masked."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """UTC, ISO 8601, milliseconds."""
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record with every masked secret replaced by ``***``."""
        # LOG_FORMAT spelt out: what Formatter.format does for it, in fewer steps.
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        text = f"[{record.asctime}] {record.levelname} {record.name} - {record.message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += record.exc_text if text.endswith("\n") else "\n" + record.exc_text
        if record.stack_info:
            stack = self.formatStack(record.stack_info)
            text += stack if text.endswith("\n") else "\n" + stack
        return redact(text)


class _FileHandler(logging.Handler):
    """Writes each record to a file descriptor at once, in one ``write`` call."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.fd = 2

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            while data:
                data = data[os.write(self.fd, data) :]
        except Exception:
            self.handleError(record)


class _LogWriter(io.TextIOBase):
    """A text stream that turns each written line into a log record (print capture)."""

    def __init__(self, logger: logging.Logger, level: int, fd: int | None) -> None:
        super().__init__()
        self._logger = logger
        self._level = level
        self._fd = fd
        self._partial = ""
        self._busy = threading.local()

    def reset(self, fd: int | None) -> None:
        """Start afresh for another try (``fd``: the descriptor it stands for, if any)."""
        self._fd = fd
        self._partial = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        if self._fd is None:
            raise io.UnsupportedOperation("task output is captured into the task log")
        return self._fd

    def write(self, text: str) -> int:
        if getattr(self._busy, "active", False):
            return len(text)  # a logging problem writing to stderr: never recurse
        self._busy.active = True
        try:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            for line in lines:
                self._logger.log(self._level, "%s", line.rstrip("\r"))
        finally:
            self._busy.active = False
        return len(text)

    def flush(self) -> None:
        if self._partial:
            partial, self._partial = self._partial, ""
            self.write(partial + "\n")


class _LogKit:
    """The objects that route a try's log: the file handler and the two print-capturing
    streams. Built once per process and reused by its tries (a worker builds them, through
    its warm-up try, before it forks: a task process then only points them at its file)."""

    def __init__(self) -> None:
        self.formatter = TaskLogFormatter()
        self.handler = _FileHandler(self.formatter)
        self.stdout = _LogWriter(logging.getLogger("tradewind.task.stdout"), logging.INFO, None)
        self.stderr = _LogWriter(logging.getLogger("tradewind.task.stderr"), logging.WARNING, None)
        self.in_use = False


_log_kit: _LogKit | None = None
_log_kit_lock = threading.Lock()


def _take_log_kit() -> _LogKit:
    global _log_kit
    with _log_kit_lock:
        kit = _log_kit
        if kit is None or kit.in_use:  # the first try here, or tries in parallel threads
            kit = _LogKit()
            if _log_kit is None:
                _log_kit = kit
        kit.in_use = True
        return kit


@contextmanager
def _try_log(path: str, *, capture_fds: bool, echo: IO[str] | None) -> Iterator[None]:
    """Send every log record (and ``print`` output) of this process to the try's log file.

    A log file that cannot be written must not stop the try: its lines then go to the
    process's standard error, after a line saying why.
    """
    problem: OSError | None = None
    try:
        fd = _open_log(path)
    except OSError as exc:
        fd, problem = -1, exc
    kit = _take_log_kit()
    kit.handler.fd = fd if fd >= 0 else 2
    handlers: list[logging.Handler] = [kit.handler]
    if echo is not None:
        handlers.append(logging.StreamHandler(echo))
        handlers[-1].setFormatter(kit.formatter)
    root = logging.getLogger()
    task_logger = logging.getLogger("tradewind.task")
    # Levels change only when they must: each change clears the cache of every logger.
    restore: list[tuple[logging.Logger, int]] = []
    for handler in handlers:
        root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        restore.append((root, root.level))
        root.setLevel(logging.INFO)
    if task_logger.level > logging.INFO:
        restore.append((task_logger, task_logger.level))
        task_logger.setLevel(logging.INFO)
    if problem is not None:
        log.warning("cannot write the task log %s (%s); logging here instead", path, problem)
    if capture_fds and fd >= 0:
        # Output written straight to the file descriptors (C extensions, child processes
        # inheriting them) lands in the log too, unformatted.
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    old_out, old_err = sys.stdout, sys.stderr
    kit.stdout.reset(1 if capture_fds else None)
    kit.stderr.reset(2 if capture_fds else None)
    sys.stdout, sys.stderr = kit.stdout, kit.stderr
    try:
        yield
    finally:
        for writer in (kit.stdout, kit.stderr):
            try:
                writer.flush()
            except Exception:
                pass
        sys.stdout, sys.stderr = old_out, old_err
        for handler in handlers:
            root.removeHandler(handler)
            handler.flush()
        for logger, level in restore:
            logger.setLevel(level)
        kit.handler.fd = 2
        kit.in_use = False
        if fd >= 0:
            os.close(fd)


def _open_log(path: str) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, flags, 0o666)


# --- the try ----------------------------------------------------------------------------------------


def _failed_outcome(spec: TrySpec, exc: BaseException) -> TaskOutcome:
    """The outcome of a try whose DAG or task could not be loaded (retried like a failure)."""
    max_tries = spec.ti.max_tries or 0
    state = TaskState.UP_FOR_RETRY if spec.ti.try_number <= max_tries else TaskState.FAILED
    return TaskOutcome(
        state=state,
        error=redact(f"{type(exc).__name__}: {exc}"),
        traceback=redact("".join(traceback.format_exception(exc))),
    )


def run_try(
    spec: TrySpec,
    channel: TryChannel,
    *,
    load_dag: DagLoader,
    capture_fds: bool = False,
    echo: IO[str] | None = None,
    hostname: str | None = None,
) -> TryResult:
    """Run one try (see the module docstring) and return how it went.

    ``load_dag(fileloc, dag_id)`` gives the live DAG (a cache, or
    :func:`tradewind.dag_processing.parser.load_dag_from_file`). ``capture_fds`` also points
    file descriptors 1 and 2 at the log file; only for a process that ends with the try.
    ``echo`` gets a copy of every log line (``tradewind dags test`` shows them on stderr).

    Never raises for a task failure (that is an outcome); ``KeyboardInterrupt`` (including
    :class:`TaskTerminated`) propagates after the log is closed, without an outcome.
    """
    from tradewind.sdk.timezone import utcnow

    pid = os.getpid()
    host = hostname or socket.gethostname()
    start_date = channel.start(pid=pid, hostname=host)
    if start_date is None:
        return TryResult(started=False)
    ti = spec.ti
    with _try_log(spec.log_path, capture_fds=capture_fds, echo=echo):
        index = f"[{ti.map_index}]" if ti.map_index >= 0 else ""
        log.info(
            "Starting %s.%s%s, run %s, try %d, on %s (pid %d)",
            ti.dag_id,
            ti.task_id,
            index,
            ti.run_id,
            ti.try_number,
            host,
            pid,
        )
        try:
            try:
                dag = load_dag(spec.fileloc, ti.dag_id)
                task = dag.get_task(ti.task_id)
            except (Exception, SystemExit) as exc:
                log.error("Cannot load task %r from %s", ti.task_id, spec.fileloc, exc_info=exc)
                outcome = _failed_outcome(spec, exc)
            else:
                outcome = run_task(
                    task, dag=dag, run=spec.run, ti=ti, client=channel, now=start_date
                )
        except KeyboardInterrupt as exc:
            reason = "terminated (SIGTERM)" if isinstance(exc, TaskTerminated) else "interrupted"
            log.error("Task %s; no outcome is reported", reason)
            raise
        end_date = utcnow()
        log.info("Try finished: %s", outcome.state.value)
    channel.report(outcome, start_date=start_date, end_date=end_date)
    return TryResult(started=True, outcome=outcome, start_date=start_date, end_date=end_date)
