"""Executors: where task tries run.

Names are loaded on first use (PEP 562), so importing this package costs nothing::

    from tradewind.executors import ExecuteTask, LocalExecutor, TaskDataService

* :class:`InlineExecutor` runs tries in the calling process (``tradewind dags test``);
* :class:`LocalExecutor` runs them in task processes forked from warm worker processes.

:func:`executor_class` maps the configured name (``"inline"``, ``"local"``) to the class.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "BaseExecutor": "tradewind.executors.base",
    "EventKind": "tradewind.executors.workload",
    "ExecuteTask": "tradewind.executors.workload",
    "ExecutorEvent": "tradewind.executors.workload",
    "InlineExecutor": "tradewind.executors.inline",
    "LocalExecutor": "tradewind.executors.local",
    "RunSpec": "tradewind.executors.workload",
    "TaskDataService": "tradewind.executors.base",
    "TaskInstanceKey": "tradewind.executors.workload",
    "WORKLOAD_VERSION": "tradewind.executors.workload",
    "default_log_path": "tradewind.executors.workload",
}

_BY_NAME: dict[str, str] = {
    "inline": "InlineExecutor",
    "local": "LocalExecutor",
}

__all__ = [
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


def executor_class(name: str) -> type[BaseExecutor]:
    """The executor class for a configured name (``"inline"`` or ``"local"``).

    Raises :class:`~tradewind.errors.ConfigError` for an unknown name.
    """
    attr = _BY_NAME.get(name)
    if attr is None:
        from tradewind.errors import ConfigError

        raise ConfigError("core.executor", name, f"one of {', '.join(sorted(_BY_NAME))}")
    cls: type[BaseExecutor] = __getattr__(attr)
    return cls


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tradewind.executors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from tradewind.executors.base import BaseExecutor, TaskDataService
    from tradewind.executors.inline import InlineExecutor
    from tradewind.executors.local import LocalExecutor
    from tradewind.executors.workload import (
        WORKLOAD_VERSION,
        EventKind,
        ExecuteTask,
        ExecutorEvent,
        RunSpec,
        TaskInstanceKey,
        default_log_path,
    )
