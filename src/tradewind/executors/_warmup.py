"""Warming up a process that forks task processes: one no-op try run through the runtime.

The fork server runs it before forking workers, a spare task process before waiting for its
try, and the scheduler's process before forking workers itself (``start_method="fork"``).
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime
from typing import Any

from tradewind.executors._common import try_spec_for
from tradewind.runtime.supervisor import encode_frame

__all__ = ["PRELOAD_MODULES", "warm_up_runtime"]

#: Imported where workers are forked from, so that workers and task processes share them
#: instead of each importing its own copy. Missing names are skipped. Only what every try
#: needs: a module here makes every worker bigger, and forking a task process costs about
#: 0.06 ms per MB of worker memory. A worker imports the rest when a DAG file does, or when
#: a DAG needs it (jinja2 for templates, pendulum for a run's dates), before it forks.
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
    "tradewind.operators",
    "tradewind.operators.empty",
    "tradewind.operators.python",
    "tradewind.runtime.task_runner",
    "tradewind.runtime.supervisor",
    "tradewind.dag_processing.parser",
)


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

        # No template and no logical date: jinja2 and pendulum stay out of the worker's
        # image unless its DAGs need them (see PRELOAD_MODULES).
        day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        with collecting(), DAG("_tradewind_warm_up", schedule=None, start_date=day) as dag:
            PythonOperator(task_id="noop", python_callable=_noop, op_args=["warm-up"])
        run = RunInfo(dag_id=dag.dag_id, run_id="warm_up")
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


def _fill_abc_caches() -> None:
    """Answer, once, the abstract-class checks a try makes on common values (a log record
    checks its argument against Mapping, a Python task's result is checked against
    Awaitable). An unanswered check runs Python code and writes the caches, which every task
    process would otherwise do again."""
    import inspect
    from collections.abc import Mapping

    values: tuple[object, ...] = (None, True, 0, 0.0, "", b"", [], {}, (), set(), frozenset())
    for value in values:
        isinstance(value, Mapping)
        inspect.isawaitable(value)


def warm_up_runtime(*, through_supervisor: bool = False) -> None:
    """Run one no-op task through the runtime in this process.

    The runtime imports some modules on first use and fills caches (regular expressions,
    the log objects a try reuses, abstract-class checks). Done before forking, every task
    process finds them ready and shared.
    ``through_supervisor`` runs the whole try as a task process does (workload record, pipe
    channel, log file, all on a loopback socket and ``/dev/null``), which also makes this
    process copy the memory pages a try writes to (used by spare task processes); otherwise
    only the task runs, with its log silenced (used in the scheduler's process).
    """
    from tradewind.executors.workload import ExecuteTask, RunSpec, TaskInstanceKey
    from tradewind.runtime.supervisor import run_try
    from tradewind.runtime.task_runner import run_task

    _fill_abc_caches()
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
            run=RunSpec(run_type="manual"),
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
