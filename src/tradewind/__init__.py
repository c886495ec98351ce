"""Tradewind: a workflow orchestrator for data pipelines.

The authoring API is importable from here::

    from tradewind import DAG, task, TaskGroup

Names load on first use, so ``import tradewind`` stays cheap and never loads the server
(database, web framework, task queue).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradewind._version import __version__

__all__ = [
    "DAG",
    "Asset",
    "AssetAlias",
    "BaseOperator",
    "Connection",
    "Context",
    "Label",
    "Param",
    "ParamsDict",
    "TaskGroup",
    "TriggerRule",
    "Variable",
    "WeightRule",
    "XComArg",
    "__version__",
    "chain",
    "chain_linear",
    "cross_downstream",
    "dag",
    "get_current_context",
    "setup",
    "task",
    "task_group",
    "teardown",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tradewind import sdk

        value = getattr(sdk, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tradewind' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from tradewind.sdk import (
        DAG,
        Asset,
        AssetAlias,
        BaseOperator,
        Connection,
        Context,
        Label,
        Param,
        ParamsDict,
        TaskGroup,
        TriggerRule,
        Variable,
        WeightRule,
        XComArg,
        chain,
        chain_linear,
        cross_downstream,
        dag,
        get_current_context,
        setup,
        task,
        task_group,
        teardown,
    )
