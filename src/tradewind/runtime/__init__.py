"""The task runtime: runs one task try in this process and reports its outcome.

Names are loaded on first use (PEP 562)::

    from tradewind.runtime import InMemoryTaskClient, RunInfo, TaskInstanceInfo, run_task
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradewind._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "InMemoryTaskClient": "tradewind.runtime.client",
    "RunInfo": "tradewind.runtime.task_runner",
    "RuntimeTaskInstance": "tradewind.runtime.task_runner",
    "TaskClient": "tradewind.runtime.client",
    "TaskInstanceInfo": "tradewind.runtime.task_runner",
    "TaskOutcome": "tradewind.runtime.task_runner",
    "prepare_dag": "tradewind.runtime.prepare",
    "prepare_run": "tradewind.runtime.prepare",
    "prepare_task": "tradewind.runtime.prepare",
    "run_task": "tradewind.runtime.task_runner",
}

__all__ = [
    "InMemoryTaskClient",
    "RunInfo",
    "RuntimeTaskInstance",
    "TaskClient",
    "TaskInstanceInfo",
    "TaskOutcome",
    "prepare_dag",
    "prepare_run",
    "prepare_task",
    "run_task",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from tradewind.runtime.client import InMemoryTaskClient, TaskClient
    from tradewind.runtime.prepare import prepare_dag, prepare_run, prepare_task
    from tradewind.runtime.task_runner import (
        RunInfo,
        RuntimeTaskInstance,
        TaskInstanceInfo,
        TaskOutcome,
        run_task,
    )
