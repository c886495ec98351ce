"""Small pieces both executors use: workload -> runtime records, outcome -> event."""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from tradewind.executors.workload import EventKind, ExecuteTask, ExecutorEvent
from tradewind.runtime.supervisor import TrySpec
from tradewind.runtime.task_runner import RunInfo, TaskInstanceInfo, TaskOutcome
from tradewind.state import TaskState

__all__ = ["ChildReaper", "event_from_outcome", "event_from_wire", "lost_error", "try_spec_for"]

#: Outcome states a try may report.
OUTCOME_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.SKIPPED, TaskState.UP_FOR_RETRY}
)


def try_spec_for(workload: ExecuteTask) -> TrySpec:
    """The runtime's view of a workload (``log_path`` must be filled in)."""
    key = workload.key
    spec = workload.run
    return TrySpec(
        ti_id=workload.ti_id,
        ti=TaskInstanceInfo(
            dag_id=key.dag_id,
            task_id=key.task_id,
            run_id=key.run_id,
            map_index=key.map_index,
            try_number=key.try_number,
            max_tries=workload.max_tries,
        ),
        run=RunInfo(
            dag_id=key.dag_id,
            run_id=key.run_id,
            run_type=spec.run_type,
            logical_date=spec.logical_date,
            data_interval_start=spec.data_interval_start,
            data_interval_end=spec.data_interval_end,
            conf=dict(spec.conf),
            start_date=spec.start_date,
        ),
        fileloc=workload.fileloc,
        log_path=workload.log_path,
    )


def event_from_outcome(
    workload: ExecuteTask,
    outcome: TaskOutcome,
    *,
    start_date: datetime | None,
    end_date: datetime | None,
    pid: int | None,
    hostname: str | None,
) -> ExecutorEvent:
    """The FINISHED event of a try that reported ``outcome``."""
    return ExecutorEvent(
        key=workload.key,
        kind=EventKind.FINISHED,
        state=outcome.state,
        error=outcome.error,
        traceback=outcome.traceback,
        skipped_task_ids=tuple(outcome.skipped_task_ids),
        start_date=start_date,
        end_date=end_date,
        pid=pid,
        hostname=hostname,
        rendered_fields=dict(outcome.rendered_fields),
    )


def _date(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def event_from_wire(
    workload: ExecuteTask, message: dict[str, Any], *, pid: int | None, hostname: str | None
) -> ExecutorEvent:
    """The FINISHED event for an ``outcome`` message from a task process.

    A state that is not an outcome state makes a LOST event instead (a broken task process).
    """
    try:
        state = TaskState(str(message.get("state")))
    except ValueError:
        state = None
    if state not in OUTCOME_STATES:
        return ExecutorEvent(
            key=workload.key,
            kind=EventKind.LOST,
            error=f"task process reported an invalid outcome state {message.get('state')!r}",
            pid=pid,
            hostname=hostname,
        )
    rendered = message.get("rendered_fields")
    return ExecutorEvent(
        key=workload.key,
        kind=EventKind.FINISHED,
        state=state,
        error=message.get("error"),
        traceback=message.get("traceback"),
        skipped_task_ids=tuple(str(t) for t in message.get("skipped_task_ids") or ()),
        start_date=_date(message.get("start_date")),
        end_date=_date(message.get("end_date")),
        pid=pid,
        hostname=hostname,
        rendered_fields={str(k): str(v) for k, v in rendered.items()}
        if isinstance(rendered, dict)
        else None,
    )


def lost_error(
    message: dict[str, Any],
    *,
    lost_reason: str | None,
    workload: ExecuteTask,
    hard_timeout_margin: float,
) -> str:
    """Why a try whose task process exited without an outcome is lost, from its worker's
    ``exited`` message (``lost_reason``: what the executor already knew went wrong)."""
    from tradewind.executors._worker import describe_exit

    status = describe_exit(message.get("code"), message.get("signal"))
    reason = message.get("reason")
    if lost_reason:
        return f"{lost_reason} (task process {status})"
    if reason == "killed":
        return f"killed on request: task process {status}"
    if reason == "timeout":
        timeout = workload.execution_timeout or 0
        return (
            f"task ran longer than its execution_timeout ({timeout:g} s) plus "
            f"{hard_timeout_margin:g} s and was killed: task process {status}"
        )
    if reason == "stopping":
        return f"the executor stopped while the task ran: task process {status}"
    if isinstance(reason, str) and reason:
        return f"task process could not run: {reason}"
    if message.get("code") == 0 and message.get("signal") is None:
        return "task process exited without reporting an outcome"
    return f"task process {status}"


class ChildReaper:
    """Waits for exited child processes without ever blocking for long: ``reap_now`` for one
    whose exit is imminent (its channel just closed), ``later`` for one to collect on the next
    ``reap``."""

    def __init__(self) -> None:
        self._pending: list[int] = []

    def reap_now(self, pid: int) -> str | None:
        """The child's exit status (``"exited with code 1"``), waiting up to ~50 ms; None if
        it has not exited yet (it is collected later) or is not our child."""
        from tradewind.executors._worker import describe_exit

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
        self._pending.append(pid)
        return None

    def later(self, pid: int) -> None:
        """Collect this child in a later :meth:`reap`."""
        self._pending.append(pid)

    def reap(self, wait: float = 0.0) -> None:
        """Collect the children that have exited, waiting up to ``wait`` seconds for the rest."""
        deadline = time.monotonic() + wait
        while self._pending:
            for pid in list(self._pending):
                try:
                    waited, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    waited = pid
                if waited == pid:
                    self._pending.remove(pid)
            if not self._pending or time.monotonic() >= deadline:
                return
            time.sleep(0.005)
