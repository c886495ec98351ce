"""Answering a task process's data requests with a TaskDataService (executor side)."""

from __future__ import annotations

from typing import Any

from tradewind.errors import ConnectionNotFound, TradewindError, VariableNotFound, XComError
from tradewind.executors.base import TaskDataService
from tradewind.executors.workload import ExecuteTask, ExecutorEvent
from tradewind.state import TaskState

__all__ = ["error_fields", "serve_data_request", "store_outcome_xcoms"]


def serve_data_request(
    data: TaskDataService, workload: ExecuteTask, message: dict[str, Any]
) -> Any:
    """The value to reply to one request (everything but ``start_task``) of a started try.

    XCom values cross the socket as XCom JSON text. A try may only push XComs for its own task
    instance. Raises whatever the service raises (turned into the reply's error by
    :func:`error_fields`).
    """
    from tradewind.runtime.supervisor import connection_to_wire
    from tradewind.serialization import xcom

    op = message.get("op")
    texts = getattr(data, "get_xcom_texts", None)
    if texts is not None and op in ("get_xcom", "get_xcom_values"):
        # Stored text passes through as it is: no decoding and encoding again here.
        ids = (message["dag_id"], message["run_id"], message["task_id"], message["key"])
        if op == "get_xcom_values":
            return [[i, text] for i, text in texts(*ids).items()]
        found = texts(*ids, int(message["map_index"]))
        if not found:
            raise KeyError(f"no XCom {message['key']!r} for task {message['task_id']!r}")
        return next(iter(found.values()))
    if op == "get_xcom":
        value = data.get_xcom(
            message["dag_id"],
            message["run_id"],
            message["task_id"],
            message["key"],
            int(message["map_index"]),
        )
        return xcom.encode(value, max_size=None)
    if op == "get_xcom_map_indexes":
        return [
            int(i)
            for i in data.get_xcom_map_indexes(
                message["dag_id"], message["run_id"], message["task_id"], message["key"]
            )
        ]
    if op == "get_xcom_values":
        # [[map_index, value as XCom JSON], ...]; services without the bulk read answer it
        # one index at a time here, still in one round trip for the task.
        ids = (message["dag_id"], message["run_id"], message["task_id"], message["key"])
        bulk = getattr(data, "get_xcom_values", None)
        values = (
            bulk(*ids)
            if bulk is not None
            else {i: data.get_xcom(*ids, i) for i in data.get_xcom_map_indexes(*ids)}
        )
        return [[int(i), xcom.encode(v, max_size=None)] for i, v in sorted(values.items())]
    if op == "set_xcom":
        key = workload.key
        target = (message["dag_id"], message["run_id"], message["task_id"])
        map_index = int(message["map_index"])
        if (*target, map_index) != (key.dag_id, key.run_id, key.task_id, key.map_index):
            raise XComError("a task may only push XComs for itself", task_id=message["task_id"])
        data.set_xcom(*target, message["key"], map_index, xcom.decode(message["value"]))
        return None
    if op == "get_variable":
        return str(data.get_variable(message["key"]))
    if op == "get_connection":
        return connection_to_wire(data.get_connection(message["conn_id"]))
    raise TradewindError(f"unknown request {op!r}")


def error_fields(exc: BaseException) -> dict[str, Any]:
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


def store_outcome_xcoms(
    data: TaskDataService, workload: ExecuteTask, xcoms: Any, event: ExecutorEvent
) -> ExecutorEvent:
    """Store the XComs that came with a try's outcome (``set_xcom`` requests); returns the
    FINISHED ``event`` to report. One that cannot be stored fails a try that had succeeded
    (retried like any task failure, naming the error)."""
    from dataclasses import replace

    try:
        if not isinstance(xcoms, list):
            raise TradewindError(f"malformed XComs with the outcome: {xcoms!r}")
        for message in xcoms:
            if not isinstance(message, dict) or message.get("op") != "set_xcom":
                raise TradewindError(f"malformed XCom with the outcome: {message!r}")
            serve_data_request(data, workload, message)
    except Exception as exc:
        if event.state in (TaskState.FAILED, TaskState.UP_FOR_RETRY):
            return event  # failed already, for a reason of its own
        retry = workload.key.try_number <= (workload.max_tries or 0)
        return replace(
            event,
            state=TaskState.UP_FOR_RETRY if retry else TaskState.FAILED,
            error=f"the task's XCom could not be stored: {error_fields(exc)['message']}",
            skipped_task_ids=(),
        )
    return event
