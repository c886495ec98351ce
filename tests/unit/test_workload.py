"""Executor records and the wire protocol: workloads round-trip through JSON with a version
check, events, log paths, frames, replies and the errors a task process re-raises."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tradewind.errors import (
    ConfigError,
    ConnectionNotFound,
    NotFound,
    TradewindError,
    VariableNotFound,
    XComError,
)
from tradewind.executors import (
    WORKLOAD_VERSION,
    BaseExecutor,
    EventKind,
    ExecuteTask,
    ExecutorEvent,
    InlineExecutor,
    LocalExecutor,
    RunSpec,
    TaskDataService,
    TaskInstanceKey,
    default_log_path,
    executor_class,
)
from tradewind.executors._common import event_from_wire, try_spec_for
from tradewind.executors._protocol import Channel
from tradewind.executors._serving import error_fields, serve_data_request
from tradewind.runtime.supervisor import (
    PipeChannel,
    TaskLogFormatter,
    connection_from_wire,
    connection_to_wire,
    encode_frame,
    outcome_to_wire,
    read_frame,
)
from tradewind.runtime.task_runner import TaskOutcome
from tradewind.sdk import secrets
from tradewind.sdk.connection import Connection
from tradewind.state import TaskState

KEY = TaskInstanceKey("etl", "scheduled__2024-01-01T00:00:00+00:00", "load", 3, 2)
RUN = RunSpec(
    run_type="scheduled",
    logical_date=datetime(2024, 1, 1, tzinfo=UTC),
    data_interval_start=datetime(2024, 1, 1, tzinfo=UTC),
    data_interval_end=datetime(2024, 1, 2, tzinfo=timezone(timedelta(hours=2))),
    conf={"limit": 5, "nested": {"a": [1, 2]}},
    start_date=datetime(2024, 1, 2, 0, 0, 1, tzinfo=UTC),
)
WORKLOAD = ExecuteTask(
    key=KEY,
    ti_id="0123456789abcdef0123456789abcdef",
    dag_version_id=7,
    fileloc="/dags/etl.py",
    run=RUN,
    max_tries=3,
    queue="heavy",
    pool="db",
    priority=9,
    executor_config={"memory": "2Gi"},
    log_path="/logs/x.log",
    execution_timeout=90.0,
)


# --- workloads ---------------------------------------------------------------------------------


def test_a_workload_round_trips_through_json() -> None:
    # given a workload with every field set
    # when it goes through JSON text and back
    text = json.dumps(WORKLOAD.to_dict())
    back = ExecuteTask.from_dict(json.loads(text))

    # expect an equal record, with dates as ISO strings on the wire
    assert back == WORKLOAD
    wire = json.loads(text)
    assert wire["version"] == WORKLOAD_VERSION == 1
    assert wire["run"]["data_interval_end"] == "2024-01-02T00:00:00+02:00"
    assert wire["key"] == {
        "dag_id": "etl",
        "run_id": "scheduled__2024-01-01T00:00:00+00:00",
        "task_id": "load",
        "map_index": 3,
        "try_number": 2,
    }


def test_defaults_fill_optional_fields() -> None:
    # given the smallest workload
    item = ExecuteTask(
        key=TaskInstanceKey("d", "r", "t"), ti_id="x", dag_version_id=1, fileloc="/f.py",
        run=RunSpec(), max_tries=0,
    )  # fmt: skip

    # when it round-trips
    back = ExecuteTask.from_dict(item.to_dict())

    # expect the documented defaults
    assert back == item
    assert (back.queue, back.pool, back.priority) == ("default", "default_pool", 1)
    assert back.key.map_index == -1 and back.key.try_number == 1
    assert back.execution_timeout is None and back.log_path == ""
    assert back.run.run_type == "manual" and back.run.logical_date is None


def test_a_workload_of_another_version_is_refused() -> None:
    # given a record written by a newer Tradewind
    data = WORKLOAD.to_dict() | {"version": 2}

    # when it is read, expect an error naming both versions
    with pytest.raises(TradewindError, match=r"version 2.*reads version 1"):
        ExecuteTask.from_dict(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("ti_id"), "missing the field 'ti_id'"),
        (lambda d: d.update(max_tries="many"), "malformed field"),
        (lambda d: d["run"].update(logical_date="yesterday"), "'logical_date' is not an ISO"),
        (lambda d: d["run"].update(logical_date="2024-01-01T00:00:00"), "has no timezone"),
        (lambda d: d["run"].update(conf=[1]), "'conf' must be an object"),
    ],
)
def test_a_malformed_workload_names_what_is_wrong(change: Any, message: str) -> None:
    # given a record with one broken field
    data = json.loads(json.dumps(WORKLOAD.to_dict()))
    change(data)

    # when it is read, expect an error naming the field
    with pytest.raises(TradewindError, match=message):
        ExecuteTask.from_dict(data)


def test_records_are_frozen() -> None:
    event = ExecutorEvent(key=KEY, kind=EventKind.STARTED)
    with pytest.raises(FrozenInstanceError):
        event.kind = EventKind.LOST
    with pytest.raises(FrozenInstanceError):
        WORKLOAD.fileloc = "/other.py"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            TaskInstanceKey("etl", "manual__1", "load"),
            "dag_id=etl/run_id=manual__1/task_id=load/attempt=1.log",
        ),
        (
            TaskInstanceKey("etl", "manual__1", "load", map_index=4, try_number=3),
            "dag_id=etl/run_id=manual__1/task_id=load/map_index=4/attempt=3.log",
        ),
        (
            TaskInstanceKey("etl", "by/hand", "group.load"),
            "dag_id=etl/run_id=by_hand/task_id=group.load/attempt=1.log",
        ),
    ],
)
def test_default_log_path_follows_the_documented_layout(
    key: TaskInstanceKey, expected: str
) -> None:
    assert default_log_path(Path("/logs"), key) == Path("/logs") / expected


def test_try_spec_carries_what_the_runtime_needs() -> None:
    # when a workload becomes the runtime's try spec
    spec = try_spec_for(WORKLOAD)

    # expect the task instance, its run and the paths
    assert (spec.ti.dag_id, spec.ti.task_id, spec.ti.run_id) == ("etl", "load", KEY.run_id)
    assert (spec.ti.map_index, spec.ti.try_number, spec.ti.max_tries) == (3, 2, 3)
    assert spec.run.conf == {"limit": 5, "nested": {"a": [1, 2]}}
    assert spec.run.data_interval_end == RUN.data_interval_end
    assert (spec.fileloc, spec.log_path, spec.ti_id) == (
        "/dags/etl.py",
        "/logs/x.log",
        WORKLOAD.ti_id,
    )


# --- the executor interface ----------------------------------------------------------------------


def test_executor_classes_by_name() -> None:
    assert executor_class("local") is LocalExecutor
    assert executor_class("inline") is InlineExecutor
    assert issubclass(LocalExecutor, BaseExecutor) and issubclass(InlineExecutor, BaseExecutor)
    assert (LocalExecutor.name, InlineExecutor.name) == ("local", "inline")
    with pytest.raises(ConfigError, match=r"core\.executor"):
        executor_class("celery-ish")


def test_the_public_names_are_pinned() -> None:
    import tradewind.executors as executors

    assert sorted(executors.__all__) == sorted(
        [
            "WORKLOAD_VERSION",
            "BaseExecutor",
            "EventKind",
            "ExecuteTask",
            "ExecutorEvent",
            "InlineExecutor",
            "LocalExecutor",
            "RunSpec",
            "TaskDataService",
            "TaskInstanceKey",
            "default_log_path",
            "executor_class",
        ]
    )


class DictData:
    """A minimal TaskDataService."""

    def __init__(self) -> None:
        self.xcoms: dict[tuple[str, str, str, str, int], Any] = {}

    def start_task(self, ti_id: str, key: TaskInstanceKey, *, pid: int, hostname: str,
                   now: datetime) -> bool:  # fmt: skip
        return True

    def get_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> Any:
        return self.xcoms[(dag_id, run_id, task_id, key, map_index)]

    def get_xcom_map_indexes(self, dag_id: str, run_id: str, task_id: str, key: str) -> list[int]:
        return sorted(k[4] for k in self.xcoms if k[:4] == (dag_id, run_id, task_id, key))

    def set_xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int,
                 value: Any) -> None:  # fmt: skip
        self.xcoms[(dag_id, run_id, task_id, key, map_index)] = value

    def get_variable(self, key: str) -> str:
        raise VariableNotFound(key)

    def get_connection(self, conn_id: str) -> Connection:
        return Connection(
            conn_id=conn_id, conn_type="http", host="example.org", password="pw-123456"
        )


def test_a_dict_service_satisfies_the_protocol() -> None:
    assert isinstance(DictData(), TaskDataService)


# --- serving requests (executor side) ------------------------------------------------------------


def test_requests_are_answered_from_the_service_with_xcom_text() -> None:
    # given a service holding a tuple XCom
    data = DictData()
    data.xcoms[("etl", "r", "extract", "return_value", -1)] = (1, "two")
    item = ExecuteTask(
        key=TaskInstanceKey("etl", "r", "load"), ti_id="x", dag_version_id=1, fileloc="/f.py",
        run=RunSpec(), max_tries=0,
    )  # fmt: skip
    ask = {"dag_id": "etl", "run_id": "r", "task_id": "extract", "key": "return_value"}

    # when a task process asks for it, and pushes its own value
    text = serve_data_request(data, item, {"op": "get_xcom", **ask, "map_index": -1})
    indexes = serve_data_request(data, item, {"op": "get_xcom_map_indexes", **ask})
    push = {"dag_id": "etl", "run_id": "r", "task_id": "load", "key": "k", "map_index": -1}
    serve_data_request(
        data, item, {"op": "set_xcom", **push, "value": '{"__tw_type__":"set","items":[1]}'}
    )

    # expect the codec's text out, and the decoded value in
    assert json.loads(text) == {"__tw_type__": "tuple", "items": [1, "two"]}
    assert indexes == [-1]
    assert data.xcoms[("etl", "r", "load", "k", -1)] == {1}


def test_a_task_may_not_push_xcoms_for_another_task() -> None:
    item = ExecuteTask(
        key=TaskInstanceKey("etl", "r", "load"), ti_id="x", dag_version_id=1, fileloc="/f.py",
        run=RunSpec(), max_tries=0,
    )  # fmt: skip
    other = {"dag_id": "etl", "run_id": "r", "task_id": "extract", "key": "k", "map_index": -1}
    with pytest.raises(XComError, match="only push XComs for itself"):
        serve_data_request(DictData(), item, {"op": "set_xcom", **other, "value": "1"})


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (VariableNotFound("bucket"), "VariableNotFound", "variable 'bucket' not found"),
        (ConnectionNotFound("db"), "ConnectionNotFound", "connection 'db' not found"),
        (XComError("too big", task_id="t", key="k"), "XComError", "too big (task 't', key 'k')"),
        (KeyError("missing"), "KeyError", "missing"),
        (NotFound("DAG", "x"), "KeyError", "DAG 'x' not found"),
        (RuntimeError("disk full"), "Error", "RuntimeError: disk full"),
    ],
)
def test_errors_become_reply_kinds(exc: BaseException, kind: str, message: str) -> None:
    assert error_fields(exc) == {"error": kind, "message": message}


def test_error_messages_are_masked() -> None:
    secrets.mask_secret("very-secret-value")
    try:
        assert "***" in error_fields(RuntimeError("bad very-secret-value"))["message"]
    finally:
        secrets.clear_masked_secrets()


# --- frames and the pipe channel ------------------------------------------------------------------


def test_frames_survive_being_split_anywhere() -> None:
    # given two frames written one byte at a time
    ours, theirs = socket.socketpair()
    channel = Channel(ours)
    raw = encode_frame({"a": 1}) + encode_frame({"b": "é" * 10})
    got: list[dict[str, Any]] = []

    # when they arrive in pieces
    for i in range(len(raw)):
        theirs.sendall(raw[i : i + 1])
        got += channel.read()[0]

    # expect each message exactly once, when complete
    assert got == [{"a": 1}, {"b": "é" * 10}]
    theirs.close()
    assert channel.read() == ([], True)
    channel.close()


def test_read_frame_returns_none_at_end_of_stream() -> None:
    ours, theirs = socket.socketpair()
    theirs.sendall(encode_frame({"x": [1, 2]}) + encode_frame({"y": None})[:3])
    theirs.close()
    assert read_frame(ours) == {"x": [1, 2]}
    assert read_frame(ours) is None  # a half frame: the peer died mid-write
    ours.close()


def serve_in_thread(
    sock: socket.socket, replies: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Answer each request by its op from ``replies`` until the peer closes."""
    seen: list[dict[str, Any]] = []

    def loop() -> None:
        while (message := read_frame(sock)) is not None:
            seen.append(message)
            if message.get("op") in replies:
                sock.sendall(encode_frame({"id": message["id"], **replies[message["op"]]}))

    threading.Thread(target=loop, daemon=True).start()
    return seen


def test_pipe_channel_raises_the_replied_error_kinds() -> None:
    # given an executor side answering with errors
    ours, theirs = socket.socketpair()
    seen = serve_in_thread(
        theirs,
        {
            "get_variable": {"ok": False, "error": "VariableNotFound", "message": "x"},
            "get_connection": {"ok": False, "error": "ConnectionNotFound", "message": "x"},
            "get_xcom": {"ok": False, "error": "KeyError", "message": "no value"},
            "set_xcom": {"ok": False, "error": "XComError", "message": "too big"},
            "get_xcom_map_indexes": {"ok": False, "error": "Error", "message": "OSError: boom"},
        },
    )
    channel = PipeChannel(ours)

    # when the task process asks, expect each kind raised as its exception
    with pytest.raises(VariableNotFound) as var_error:
        channel.get_variable("bucket")
    assert var_error.value.key == "bucket"
    with pytest.raises(ConnectionNotFound) as conn_error:
        channel.get_connection("db")
    assert conn_error.value.conn_id == "db"
    with pytest.raises(KeyError):
        channel.get_xcom("d", "r", "t", "k", -1)
    with pytest.raises(XComError, match="too big"):
        channel.set_xcom("d", "r", "t", "k", -1, 1)
    with pytest.raises(TradewindError, match="OSError: boom"):
        channel.get_xcom_map_indexes("d", "r", "t", "k")
    # and the requests to carry increasing ids
    assert [m["id"] for m in seen] == [1, 2, 3, 4, 5]
    ours.close()


def test_pipe_channel_values_and_masking() -> None:
    # given an executor side with a connection and a secret variable
    ours, theirs = socket.socketpair()
    conn = Connection(conn_id="db", conn_type="postgres", host="h", password="pg-secret-42",
                      extra={"api_key": "key-987654"})  # fmt: skip
    serve_in_thread(
        theirs,
        {
            "start_task": {"ok": True, "value": "2024-01-01T00:00:00+00:00"},
            "get_connection": {"ok": True, "value": connection_to_wire(conn)},
            "get_variable": {"ok": True, "value": "token-1234567"},
            "get_xcom": {"ok": True, "value": '{"__tw_type__":"tuple","items":[1,2]}'},
            "get_xcom_map_indexes": {"ok": True, "value": [0, 2]},
        },
    )
    channel = PipeChannel(ours)
    secrets.clear_masked_secrets()
    try:
        # when the task process uses them
        started = channel.start(pid=1, hostname="h")
        got = channel.get_connection("db")
        token = channel.get_variable("api_token")

        # expect the values, and the secrets masked in logs from then on
        assert started == datetime(2024, 1, 1, tzinfo=UTC)
        assert got.password == "pg-secret-42" and got.extra_dejson == {"api_key": "key-987654"}
        assert token == "token-1234567"
        assert channel.get_xcom("d", "r", "t", "k", -1) == (1, 2)
        assert channel.get_xcom_map_indexes("d", "r", "t", "k") == [0, 2]
        masked = secrets.redact("pg-secret-42 key-987654 token-1234567")
        assert masked == "*** *** ***"
    finally:
        secrets.clear_masked_secrets()
        ours.close()


def test_a_refused_start_returns_none() -> None:
    ours, theirs = socket.socketpair()
    serve_in_thread(theirs, {"start_task": {"ok": True, "value": None}})
    assert PipeChannel(ours).start(pid=1, hostname="h") is None
    ours.close()


def test_connections_round_trip_on_the_wire() -> None:
    conn = Connection(conn_id="c", conn_type="http", host="x", login="u", password="p", port=8080,
                      extra='{"a": 1}', description="d")  # fmt: skip
    assert connection_from_wire(json.loads(json.dumps(connection_to_wire(conn)))) == conn


# --- outcomes -------------------------------------------------------------------------------------


def test_an_outcome_becomes_a_finished_event() -> None:
    # given an outcome as a task process sends it
    outcome = TaskOutcome(
        state=TaskState.SKIPPED, error="skip me", skipped_task_ids=["a", "b"],
        rendered_fields={"cmd": "echo 1"},
    )  # fmt: skip
    start = datetime(2024, 1, 1, tzinfo=UTC)
    wire = json.loads(json.dumps(outcome_to_wire(outcome, start_date=start, end_date=start)))

    # when the executor turns it into an event
    event = event_from_wire(WORKLOAD, wire, pid=42, hostname="box")

    # expect every field carried over
    assert event == ExecutorEvent(
        key=KEY, kind=EventKind.FINISHED, state=TaskState.SKIPPED, error="skip me",
        skipped_task_ids=("a", "b"), start_date=start, end_date=start, pid=42, hostname="box",
        rendered_fields={"cmd": "echo 1"},
    )  # fmt: skip


def test_an_outcome_with_a_non_final_state_is_lost() -> None:
    event = event_from_wire(WORKLOAD, {"op": "outcome", "state": "running"}, pid=1, hostname="h")
    assert event.kind is EventKind.LOST
    assert "invalid outcome state 'running'" in (event.error or "")


def test_log_lines_are_utc_iso_and_masked() -> None:
    import logging

    secrets.mask_secret("s3cr3t-value")
    try:
        record = logging.LogRecord(
            "tradewind.task", logging.INFO, "f", 1, "pw=%s", ("s3cr3t-value",), None
        )
        record.created = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC).timestamp()
        line = TaskLogFormatter().format(record)
    finally:
        secrets.clear_masked_secrets()
    assert line == "[2024-05-06T07:08:09.123+00:00] INFO tradewind.task - pw=***"
